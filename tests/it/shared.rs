//! One open file, shared by threads: every path (plain pread, memory map, RICE_1, GZIP_2 and
//! HCOMPRESS_1 decoded natively, and a read into another integer type through cfitsio's pooled
//! handles) gives each thread exactly what one thread reads alone.

use std::sync::Arc;

use torchfits::write::Algorithm;
use torchfits::{Compression, FitsFile, OpenOptions, Section, WriteOptions};

use crate::common::{slice, tempdir};

const H: usize = 256;
const W: usize = 320;
const STAMP: usize = 64;

fn value(y: usize, x: usize) -> i32 {
    ((y * 131 + x * 7) % 20_000) as i32 - 10_000
}

/// (name, open options, compression) of each case; every image holds [`value`] as i16 or f32.
fn cases() -> Vec<(&'static str, OpenOptions, Option<Compression>)> {
    vec![
        ("plain", OpenOptions::new(), None),
        ("mmap", OpenOptions::new().mmap(true), None),
        ("rice", OpenOptions::new(), Some(Compression::new(Algorithm::Rice).tile(&[16, W]))),
        ("gzip2", OpenOptions::new(), Some(Compression::new(Algorithm::Gzip2).tile(&[32, 64]))),
        ("hcompress", OpenOptions::new(), Some(Compression::new(Algorithm::Hcompress).tile(&[16, 16]))),
    ]
}

#[test]
fn eight_threads_on_one_open_file_read_what_one_thread_reads() {
    let dir = tempdir("shared");
    let ints: Vec<i32> = (0..H * W).map(|i| value(i / W, i % W)).collect();
    let i16s: Vec<i16> = ints.iter().map(|&v| v as i16).collect();
    let f32s: Vec<f32> = ints.iter().map(|&v| v as f32 * 0.5).collect();
    for (name, options, compression) in cases() {
        let path = dir.join(format!("{name}.fits"));
        let mut writer = WriteOptions::new().overwrite(true).create(&path).expect("create");
        // floats for the plain cases (a scaled conversion), integers where tiles are coded
        match &compression {
            None => writer.image(&f32s, &[H, W]).write().expect("image"),
            Some(c) => writer.image(&i16s, &[H, W]).compress(c.clone()).write().expect("image"),
        }
        writer.finish().expect("finish");

        // a compressed image is an extension after an empty primary HDU
        let hdu = usize::from(compression.is_some());
        let file = Arc::new(options.threads(1).open(&path).expect("open"));
        let whole: Vec<f64> = file.image(hdu).expect("image").read_data(None).expect("read").pixels.to_f64();
        let expected: Vec<f64> = match compression {
            None => f32s.iter().map(|&v| f64::from(v)).collect(),
            Some(_) => ints.iter().map(|&v| f64::from(v)).collect(),
        };
        assert_eq!(whole, expected, "{name}: the single-threaded read");

        let threads: Vec<_> = (0..8usize)
            .map(|t| {
                let (file, whole) = (Arc::clone(&file), whole.clone());
                std::thread::spawn(move || {
                    // one reader per thread for half the cutouts, a fresh one per cutout for the rest
                    let image = file.image(hdu).expect("image");
                    for k in 0..40usize {
                        let y = (t * 37 + k * 53) % (H - STAMP);
                        let x = (t * 71 + k * 29) % (W - STAMP);
                        let section = Section::new(vec![y..y + STAMP, x..x + STAMP]);
                        let got = if k % 2 == 0 {
                            image.read_data(Some(&section))
                        } else {
                            file.image(hdu).and_then(|i| i.read_data(Some(&section)))
                        };
                        let got = got.map_err(|e| format!("thread {t}, cutout {k}: {e}"))?.pixels.to_f64();
                        if got != slice(&whole, &[H, W], section.ranges()) {
                            return Err(format!("thread {t}: cutout {:?} differs", section.ranges()));
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for t in threads {
            t.join().expect("a reader thread panicked").unwrap_or_else(|e| panic!("{name}: {e}"));
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_open_file_is_send_sync_and_cheap_to_clone() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<FitsFile>();
    send_sync::<torchfits::ImageReader>();
    send_sync::<torchfits::TableReader>();
    let file = FitsFile::open(crate::common::sample()).expect("open");
    let clone = file.clone();
    assert!(file.same_open_file(&clone));
    assert!(!file.same_open_file(&FitsFile::open(crate::common::sample()).expect("open")));
}

#[test]
fn eight_threads_through_pooled_cfitsio_handles_read_what_one_thread_reads() {
    // an i16 image read as i32 with direct reads off: cfitsio decodes it, one handle per thread
    let dir = tempdir("shared-cfitsio");
    let path = dir.join("rice.fits");
    let ints: Vec<i32> = (0..H * W).map(|i| value(i / W, i % W)).collect();
    let i16s: Vec<i16> = ints.iter().map(|&v| v as i16).collect();
    let mut writer = WriteOptions::new().overwrite(true).create(&path).expect("create");
    writer.image(&i16s, &[H, W]).compress(Compression::new(Algorithm::Rice).tile(&[16, W])).write().expect("image");
    writer.finish().expect("finish");
    let file = Arc::new(torchfits::OpenOptions::new().direct_reads(false).open(&path).expect("open"));
    let before = torchfits::cfitsio_handles_opened();
    assert_eq!(file.image(1).expect("image").read::<i32>().expect("read"), ints);
    assert!(torchfits::cfitsio_handles_opened() > before, "the read went through cfitsio");
    let threads: Vec<_> = (0..8usize)
        .map(|t| {
            let (file, ints) = (Arc::clone(&file), ints.clone());
            std::thread::spawn(move || {
                let image = file.image(1).expect("image");
                for k in 0..20usize {
                    let (y, x) = ((t * 37 + k * 53) % (H - STAMP), (t * 71 + k * 29) % (W - STAMP));
                    let section = Section::new(vec![y..y + STAMP, x..x + STAMP]);
                    let got: Vec<i32> = image.read_section(&section).expect("section");
                    assert_eq!(got, slice(&ints, &[H, W], section.ranges()), "thread {t}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a reader thread panicked");
    }
}
