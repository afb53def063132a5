//! Writing: every pixel type, shapes, scaling, every compression, headers, checksums, the
//! atomic-write guarantees; every file written is checked by `fitsverify` and read back.

use std::path::Path;
use std::time::Duration;

use torchfits::write::{Algorithm, ChecksumStatus, Compression, Dither, Quantize, verify};
use torchfits::{ErrorKind, FitsFile, FitsWriter, Header, Pixel, Value, WriteOptions};

use crate::common;

/// Runs `fitsverify` on `path` and asserts 0 warnings and 0 errors. Without fitsverify the check
/// is skipped, except under CI, where the set-up installs it.
pub fn fitsverify(path: &Path) {
    let out = match std::process::Command::new("fitsverify").arg(path).output() {
        Ok(out) => out,
        Err(_) if std::env::var_os("CI").is_none() => {
            eprintln!("fitsverify not installed: {} not verified", path.display());
            return;
        }
        Err(e) => panic!("fitsverify: {e} (scripts/setup.sh --test installs it)"),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("Verification found 0 warning(s) and 0 error(s)"),
        "fitsverify on {}:\n{text}",
        path.display()
    );
}

fn values<T: Pixel>(n: usize, f: impl Fn(usize) -> T) -> Vec<T> {
    (0..n).map(f).collect()
}

/// A header with one of each kind of card a user writes.
fn user_header() -> Header {
    let mut h = Header::new();
    h.set("OBJECT", "M31 'core'", Some("target")).expect("set");
    h.set("EXPTIME", 300.25, Some("seconds")).expect("set");
    h.set("NCOMBINE", 7, None).expect("set");
    h.set("FLAG", true, None).expect("set");
    h.set("LONGSTR", "a string far longer than one card holds, ".repeat(4), Some("continued")).expect("set");
    h.set("ESO DET CHIP NAME", "CCD-1", None).expect("set");
    h.add_comment("written by the torchfits tests");
    h.add_history("step 1");
    h
}

fn check_user_header(h: &Header) {
    assert_eq!(h.get_str("OBJECT"), Some("M31 'core'"));
    assert_eq!(h.get_f64("EXPTIME"), Some(300.25));
    assert_eq!(h.get_i64("NCOMBINE"), Some(7));
    assert_eq!(h.get_bool("FLAG"), Some(true));
    let long = "a string far longer than one card holds, ".repeat(4);
    assert_eq!(h.get_str("LONGSTR"), Some(long.trim_end()));
    assert_eq!(h.get_str("ESO DET CHIP NAME"), Some("CCD-1"));
    assert!(h.iter().any(|c| c.keyword() == "HISTORY" && c.value().as_str() == Some("step 1")));
}

fn round_trip<T: Pixel + std::fmt::Debug + PartialEq>(dir: &Path, name: &str, data: Vec<T>, shape: &[usize]) {
    let path = dir.join(format!("{name}.fits"));
    let mut w = WriteOptions::new().checksum(true).create(&path).expect("create");
    w.image(&data, shape).header(&user_header()).write().expect("primary");
    let mut ext = user_header();
    ext.set("EXTNAME", "SCI", None).expect("set");
    w.image(&data, shape).header(&ext).write().expect("extension");
    assert_eq!(w.finish().expect("finish"), path);
    fitsverify(&path);
    for s in verify(&path).expect("verify") {
        assert_eq!((s.data, s.hdu), (ChecksumStatus::Valid, ChecksumStatus::Valid), "{name} HDU {}", s.index);
    }
    let file = FitsFile::open(&path).expect("open");
    for hdu in [0usize, 1] {
        let img = file.image(hdu).expect("image");
        assert_eq!(img.dtype(), T::DTYPE, "{name}");
        assert_eq!(img.shape(), shape, "{name}");
        // compared as text: NaN equals NaN, -0.0 differs from 0.0
        assert_eq!(format!("{:?}", img.read::<T>().expect("read")), format!("{data:?}"), "{name} HDU {hdu}");
        check_user_header(&file.header(hdu).expect("header"));
    }
    assert_eq!(file.header("SCI").expect("by name").get_str("EXTNAME"), Some("SCI"));
}

#[test]
fn every_pixel_type_round_trips_and_passes_fitsverify() {
    let dir = common::tempdir("write-types");
    let shape = [3, 5, 7];
    let n = 105;
    round_trip(&dir, "u8", values(n, |i| (i * 37 % 256) as u8), &shape);
    round_trip(&dir, "i8", values(n, |i| (i as i64 * 37 % 256 - 128) as i8), &shape);
    round_trip(&dir, "i16", values(n, |i| (i as i16 - 50).wrapping_mul(611)), &shape);
    round_trip(&dir, "u16", values(n, |i| (i * 611) as u16 ^ 0xf000), &shape);
    round_trip(&dir, "i32", values(n, |i| (i as i32 - 50).wrapping_mul(40_000_001)), &shape);
    round_trip(&dir, "u32", values(n, |i| (i as u32).wrapping_mul(41_000_017)), &shape);
    round_trip(&dir, "i64", values(n, |i| (i as i64 - 50).wrapping_mul(90_000_000_000_000_017)), &shape);
    round_trip(&dir, "u64", values(n, |i| (i as u64).wrapping_mul(190_000_000_000_000_017)), &shape);
    round_trip(&dir, "f32", values(n, |i| if i == 3 { f32::NAN } else { i as f32 * -1.25e-3 }), &[n]);
    round_trip(&dir, "f64", values(n, |i| if i == 4 { f64::INFINITY } else { i as f64 * 1e300 / 7.0 }), &[5, 21]);
    // an empty image and a 1x1 image
    round_trip::<i16>(&dir, "empty", vec![], &[0, 4]);
    round_trip(&dir, "one", vec![42i32], &[1, 1]);
}

#[test]
fn quantised_floats_keep_nan_and_the_step() {
    let dir = common::tempdir("write-quantize");
    let data: Vec<f32> =
        (0..1000).map(|i| if i % 97 == 0 { f32::NAN } else { (i as f32 * 0.37).sin() * 50.0 }).collect();
    for bitpix in [16, 32] {
        let path = dir.join(format!("q{bitpix}.fits"));
        let q = Quantize::fit(bitpix, &data).expect("fit");
        let mut w = FitsWriter::create(&path).expect("create");
        w.image(&data, &[10, 100]).quantize(q).write().expect("write");
        w.finish().expect("finish");
        fitsverify(&path);
        let file = FitsFile::open(&path).expect("open");
        let header = file.header(0).expect("header");
        assert_eq!(header.get_i64("BITPIX"), Some(bitpix.into()));
        let back: Vec<f32> = file.image(0).expect("image").read().expect("read");
        for (a, b) in data.iter().zip(&back) {
            if a.is_nan() {
                assert!(b.is_nan());
            } else {
                assert!((f64::from(*a) - f64::from(*b)).abs() <= q.bscale * 0.51 + 1e-6, "{a} vs {b}");
            }
        }
    }
    assert!(Quantize::new(8, 1.0, 0.0).is_err());
    let mut w = FitsWriter::create(dir.join("bad.fits")).expect("create");
    let err = w.image(&[1i16, 2], &[2]).quantize(Quantize::new(16, 1.0, 0.0).expect("q")).write().expect_err("ints");
    assert_eq!(err.kind(), ErrorKind::Parameter);
}

/// A smooth image with unit-sigma noise (a fixed pseudo-random sequence).
fn noisy(n: usize) -> Vec<f32> {
    let mut state = 12345u64;
    (0..n)
        .map(|i| {
            let mut g = 0.0f32;
            for _ in 0..12 {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                g += (state >> 40) as f32 / (1u64 << 24) as f32;
            }
            1000.0 + (i % 64) as f32 * 0.5 + (g - 6.0)
        })
        .collect()
}

#[test]
fn every_compression_round_trips() {
    let dir = common::tempdir("write-compress");
    let shape = [64, 48];
    let n = 64 * 48;
    let i16s: Vec<i16> = values(n, |i| ((i * 7919) % 4000) as i16 - 2000);
    let u16s: Vec<u16> = values(n, |i| (i * 977 % 65536) as u16);
    let i32s: Vec<i32> = values(n, |i| (i as i32 * 104_729) % 3_000_000 - 1_500_000);
    let mask: Vec<i32> = values(n, |i| ((i / 50) % 3) as i32);
    let u8s: Vec<u8> = values(n, |i| (i % 251) as u8);
    let f64s: Vec<f64> = values(n, |i| (i as f64).sqrt() * 1e-3);
    let floats = noisy(n);
    for (k, algorithm) in [Algorithm::Rice, Algorithm::Gzip1, Algorithm::Gzip2, Algorithm::Hcompress, Algorithm::Plio]
        .into_iter()
        .enumerate()
    {
        let path = dir.join(format!("c{k}.fits"));
        let c = Compression::new(algorithm);
        let mut w = WriteOptions::new().checksum(true).create(&path).expect("create");
        let mut header = user_header();
        header.set("EXTNAME", "COMP", None).expect("set");
        // lossless integers of each width the algorithm takes
        if algorithm == Algorithm::Plio {
            w.image(&mask, &shape).header(&header).compress(c.clone()).write().expect("plio");
        } else {
            w.image(&i16s, &shape).header(&header).compress(c.clone()).write().expect("i16");
            w.image(&u16s, &shape).compress(c.clone()).write().expect("u16");
            w.image(&i32s, &shape).compress(c.clone()).write().expect("i32");
            w.image(&u8s, &shape).compress(c.clone()).write().expect("u8");
            // quantised floats (not by HCOMPRESS: see below)
            if algorithm != Algorithm::Hcompress {
                w.image(&floats, &shape).compress(c.clone().quantize_level(16.0)).write().expect("f32");
            }
        }
        if matches!(algorithm, Algorithm::Gzip1 | Algorithm::Gzip2) {
            // lossless floats
            w.image(&f64s, &shape).compress(c.clone().quantize_level(0.0)).write().expect("f64");
            w.image(&floats, &shape).compress(c.clone().quantize_level(0.0).dither(Dither::None)).write().expect("f32");
        }
        w.finish().expect("finish");
        fitsverify(&path);
        for s in verify(&path).expect("verify") {
            assert_eq!(
                (s.data, s.hdu),
                (ChecksumStatus::Valid, ChecksumStatus::Valid),
                "{algorithm:?} HDU {}",
                s.index
            );
        }
        let file = FitsFile::open(&path).expect("open");
        let info = file.hdus().expect("hdus");
        assert!(info.iter().skip(1).all(|h| h.compressed), "{algorithm:?}");
        check_user_header(&file.header("COMP").expect("header"));
        let mut hdu = 1;
        let mut next = || {
            hdu += 1;
            hdu - 1
        };
        if algorithm == Algorithm::Plio {
            assert_eq!(file.image(next()).expect("img").read::<i32>().expect("read"), mask);
        } else {
            assert_eq!(file.image(next()).expect("img").read::<i16>().expect("read"), i16s, "{algorithm:?}");
            assert_eq!(file.image(next()).expect("img").read::<u16>().expect("read"), u16s, "{algorithm:?}");
            assert_eq!(file.image(next()).expect("img").read::<i32>().expect("read"), i32s, "{algorithm:?}");
            assert_eq!(file.image(next()).expect("img").read::<u8>().expect("read"), u8s, "{algorithm:?}");
            if algorithm != Algorithm::Hcompress {
                let back: Vec<f32> = file.image(next()).expect("img").read().expect("read");
                // q = 16 on unit noise: a step of about 1/16
                let worst = floats.iter().zip(&back).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                assert!(worst < 0.1, "{algorithm:?}: worst error {worst}");
            }
        }
        if matches!(algorithm, Algorithm::Gzip1 | Algorithm::Gzip2) {
            assert_eq!(file.image(next()).expect("img").read::<f64>().expect("read"), f64s);
            assert_eq!(file.image(next()).expect("img").read::<f32>().expect("read"), floats);
        }
    }
    // tiles of the caller's shape; a bad tile and an unknown name are clear errors
    let path = dir.join("tiled.fits");
    let mut w = FitsWriter::create(&path).expect("create");
    w.image(&i16s, &shape).compress(Compression::new(Algorithm::Rice).tile(&[16, 16])).write().expect("tiled");
    let err =
        w.image(&i16s, &shape).compress(Compression::new(Algorithm::Rice).tile(&[16])).write().expect_err("bad tile");
    assert_eq!(err.kind(), ErrorKind::Parameter);
    w.finish().expect("finish");
    fitsverify(&path);
    assert_eq!(FitsFile::open(&path).expect("open").image(1).expect("img").read::<i16>().expect("read"), i16s);
    // RICE_1 (coded by torchfits, tiles in parallel): odd shapes and tiles, 3-D, every width,
    // extreme values (differences that overflow the pixel type)
    let path = dir.join("rice-shapes.fits");
    let cube: Vec<i32> = values(5 * 37 * 53, |i| {
        if i % 11 == 0 {
            i32::MIN
        } else if i % 13 == 0 {
            i32::MAX
        } else {
            i as i32 * 7
        }
    });
    let i8s: Vec<i8> = values(37 * 53, |i| (i * 31 % 256) as u8 as i8);
    let u32s: Vec<u32> = values(37 * 53, |i| (i as u32).wrapping_mul(2_654_435_761));
    let flat: Vec<i16> = vec![-7; 37 * 53];
    let mut w = WriteOptions::new().checksum(true).create(&path).expect("create");
    let rice = Compression::new(Algorithm::Rice);
    w.image(&cube, &[5, 37, 53]).compress(rice.clone().tile(&[2, 10, 7])).write().expect("cube");
    w.image(&i8s, &[37, 53]).compress(rice.clone()).write().expect("i8");
    w.image(&u32s, &[37, 53]).compress(rice.clone().tile(&[37, 53])).write().expect("u32");
    w.image(&flat, &[37, 53]).compress(rice.clone().tile(&[1, 1])).write().expect("flat");
    w.finish().expect("finish");
    fitsverify(&path);
    assert!(verify(&path).expect("verify").iter().all(|s| s.hdu == ChecksumStatus::Valid));
    let file = FitsFile::open(&path).expect("open");
    assert_eq!(file.image(1).expect("img").read::<i32>().expect("read"), cube);
    assert_eq!(file.image(2).expect("img").read::<i8>().expect("read"), i8s);
    assert_eq!(file.image(3).expect("img").read::<u32>().expect("read"), u32s);
    assert_eq!(file.image(4).expect("img").read::<i16>().expect("read"), flat);
    // incompressible tiles (uniform noise over the whole range), where cfitsio's own tile writer
    // overflows its buffers for HCOMPRESS and PLIO: round trips, no crash
    let path = dir.join("noise.fits");
    let mut state = 99u64;
    let mut next = move || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        state >> 16
    };
    let n16: Vec<i16> = (0..17 * 23).map(|_| next() as i16).collect();
    let n32: Vec<i32> = (0..17 * 23).map(|_| next() as i32).collect();
    let n8: Vec<u8> = (0..17 * 23).map(|_| next() as u8).collect();
    let mask: Vec<i32> = (0..170 * 23).map(|_| (next() % (1 << 24)) as i32).collect();
    let mut w = FitsWriter::create(&path).expect("create");
    for algorithm in [Algorithm::Rice, Algorithm::Hcompress] {
        let c = Compression::new(algorithm);
        w.image(&n16, &[17, 23]).compress(c.clone()).write().expect("i16");
        w.image(&n32, &[17, 23]).compress(c.clone()).write().expect("i32");
        w.image(&n8, &[17, 23]).compress(c.clone()).write().expect("u8");
    }
    w.image(&mask, &[170, 23]).compress(Compression::new(Algorithm::Plio)).write().expect("plio");
    // what cannot be written is an error, not a crash
    let err = w.image(&[1i32 << 25], &[1]).compress(Compression::new(Algorithm::Plio)).write().expect_err("range");
    assert!(err.to_string().contains("2^24"), "{err}");
    assert!(w.image(&n16[..9], &[3, 3]).compress(Compression::new(Algorithm::Hcompress)).write().is_err());
    let err = w.image(&floats, &shape).compress(Compression::new(Algorithm::Hcompress)).write().expect_err("floats");
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    w.finish().expect("finish");
    fitsverify(&path);
    let file = FitsFile::open(&path).expect("open");
    for k in 0..2 {
        assert_eq!(file.image(1 + 3 * k).expect("img").read::<i16>().expect("read"), n16, "{k}");
        assert_eq!(file.image(2 + 3 * k).expect("img").read::<i32>().expect("read"), n32, "{k}");
        assert_eq!(file.image(3 + 3 * k).expect("img").read::<u8>().expect("read"), n8, "{k}");
    }
    assert_eq!(file.image(7).expect("img").read::<i32>().expect("read"), mask);
    assert!(Compression::parse("zstd").is_err());
    assert_eq!(Compression::parse("RICE_1").expect("rice").algorithm, Algorithm::Rice);
}

#[test]
fn headers_from_a_read_file_are_rewritten_without_their_structure() {
    let dir = common::tempdir("write-header");
    let src = FitsFile::open(common::sample()).expect("open sample");
    let header = src.header("SCI").expect("header");
    let data: Vec<f32> = src.image("SCI").expect("image").read().expect("read");
    let shape = src.image("SCI").expect("image").shape().to_vec();
    let path = dir.join("copy.fits");
    let mut w = FitsWriter::create(&path).expect("create");
    // the source's BITPIX/NAXISn/XTENSION are skipped; the data's own are written
    w.image(&data[..data.len() / 2], &[shape[0] / 2, shape[1]]).header(&header).write().expect("write");
    w.finish().expect("finish");
    fitsverify(&path);
    let file = FitsFile::open(&path).expect("open");
    let copy = file.header(0).expect("header");
    assert_eq!(copy.get_i64("NAXIS2"), Some((shape[0] / 2) as i64));
    assert_eq!(copy.get_bool("SIMPLE"), Some(true));
    assert!(!copy.contains("XTENSION"));
    for key in ["EXTNAME", "EXPTIME", "CTYPE1", "CRVAL1", "CD1_1"] {
        if header.contains(key) {
            assert_eq!(copy.get(key), header.get(key), "{key}");
        }
    }
    // a card no header can hold is an error naming the keyword, and nothing is left behind
    let mut bad = Header::new();
    bad.set("NOTE", "café", None).expect("set");
    let mut w = FitsWriter::create(dir.join("bad.fits")).expect("create");
    let err = w.image(&[1u8], &[1]).header(&bad).write().expect_err("non-ASCII");
    assert!(err.to_string().contains("NOTE") && err.to_string().contains("bad.fits"), "{err}");
    drop(w);
    assert!(!dir.join("bad.fits").exists());
    let mut nan = Header::new();
    assert!(nan.set("X", f64::NAN, None).is_ok());
    let mut w = FitsWriter::create(dir.join("nan.fits")).expect("create");
    assert!(w.image(&[1u8], &[1]).header(&nan).write().is_err());
    let _ = Value::Undefined;
}

fn leftovers(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("list")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("torchfits-tmp"))
        .collect()
}

#[test]
fn writes_are_atomic_and_never_clobber() {
    let dir = common::tempdir("write-atomic");
    let path = dir.join("target.fits");
    let big: Vec<f32> = (0..100_000).map(|i| i as f32).collect();
    // a failed write of a new file leaves nothing
    let mut w = WriteOptions::new().fail_after(10_000).create(&path).expect("create");
    let err = w.image(&big, &[100, 1000]).write().expect_err("injected failure");
    assert!(err.to_string().contains("target.fits") && err.to_string().contains("no space"), "{err}");
    drop(w);
    assert!(!path.exists());
    assert_eq!(leftovers(&dir), Vec::<String>::new());

    // the same for a large image (byte-swapped on a second thread while the first writes)
    let large: Vec<f64> = (0..2_000_000).map(|i| i as f64).collect();
    let mut w = WriteOptions::new().fail_after(5 << 20).create(&path).expect("create");
    let err = w.image(&large, &[2000, 1000]).write().expect_err("injected failure");
    assert!(err.to_string().contains("no space"), "{err}");
    drop(w);
    assert!(!path.exists());
    assert_eq!(leftovers(&dir), Vec::<String>::new());
    let mut w = WriteOptions::new().checksum(true).create(&path).expect("create");
    w.image(&large, &[2000, 1000]).write().expect("large");
    w.finish().expect("finish");
    assert!(verify(&path).expect("verify").iter().all(|s| s.data == ChecksumStatus::Valid));
    assert_eq!(FitsFile::open(&path).expect("open").image(0).expect("img").read::<f64>().expect("read"), large);
    std::fs::remove_file(&path).expect("remove");

    // the same for a compressed HDU (cfitsio's scratch file included)
    let mut w = WriteOptions::new().fail_after(4_000).create(&path).expect("create");
    let err = w.image(&big, &[100, 1000]).compress(Compression::new(Algorithm::Gzip2)).write().expect_err("failure");
    assert!(err.to_string().contains("no space"), "{err}");
    drop(w);
    assert!(!path.exists());
    assert_eq!(leftovers(&dir), Vec::<String>::new());

    // and mid-tile: torchfits' own RICE_1 coder (tiles coded on every core, written in order) and
    // cfitsio's coders, the disk filling inside the header, the tile table and the heap
    let ints: Vec<i32> = (0..400 * 500).map(|i| (i * 7919 % 65_521) - 30_000).collect();
    for algorithm in [Algorithm::Rice, Algorithm::Gzip1, Algorithm::Plio] {
        let data: Vec<i32> = if algorithm == Algorithm::Plio {
            ints.iter().map(|v| v.rem_euclid(1 << 20)).collect()
        } else {
            ints.clone()
        };
        for at in [3_000, 9_000, 60_000, 200_000] {
            let mut w = WriteOptions::new().fail_after(at).create(&path).expect("create");
            let c = Compression::new(algorithm).tile(&[20, 500]);
            let err = w.image(&data, &[400, 500]).compress(c).write().expect_err("failure");
            assert!(err.to_string().contains("no space"), "{algorithm:?} at {at}: {err}");
            drop(w);
            assert!(!path.exists(), "{algorithm:?} at {at}");
            assert_eq!(leftovers(&dir), Vec::<String>::new(), "{algorithm:?} at {at}");
        }
    }

    // an existing file is not overwritten unless asked, and is untouched by a failed overwrite
    let mut w = FitsWriter::create(&path).expect("create");
    w.image(&[1i16, 2, 3], &[3]).write().expect("write");
    w.finish().expect("finish");
    let before = std::fs::read(&path).expect("read");
    let err = FitsWriter::create(&path).expect_err("exists");
    assert!(err.to_string().contains("exists"), "{err}");
    let mut w = WriteOptions::new().overwrite(true).fail_after(20_000).create(&path).expect("create");
    w.image(&big, &[100, 1000]).write().expect_err("injected failure");
    drop(w);
    assert_eq!(std::fs::read(&path).expect("read"), before);
    assert_eq!(leftovers(&dir), Vec::<String>::new());
    // a writer dropped without finish leaves the old file too
    let mut w = WriteOptions::new().overwrite(true).create(&path).expect("create");
    w.image(&big, &[100, 1000]).write().expect("write");
    drop(w);
    assert_eq!(std::fs::read(&path).expect("read"), before);
    assert_eq!(leftovers(&dir), Vec::<String>::new());

    // overwrite and append
    let mut w = WriteOptions::new().overwrite(true).create(&path).expect("create");
    w.image(&big, &[100, 1000]).write().expect("write");
    w.finish().expect("finish");
    let mut w = WriteOptions::new().append(true).create(&path).expect("append");
    assert_eq!(w.hdu_count(), 1);
    w.image(&[7u8, 8], &[2]).write().expect("write");
    w.finish().expect("finish");
    fitsverify(&path);
    let file = FitsFile::open(&path).expect("open");
    assert_eq!(file.hdu_count().expect("count"), 2);
    assert_eq!(file.image(0).expect("img").read::<f32>().expect("read"), big);
    assert_eq!(file.image(1).expect("img").read::<u8>().expect("read"), vec![7, 8]);
    // nothing written: an empty primary HDU, a valid file
    let empty = dir.join("empty.fits");
    FitsWriter::create(&empty).expect("create").finish().expect("finish");
    fitsverify(&empty);
    assert_eq!(FitsFile::open(&empty).expect("open").hdu_count().expect("count"), 1);
}

#[test]
fn a_changed_byte_fails_the_checksum() {
    let dir = common::tempdir("write-checksum");
    let path = dir.join("sums.fits");
    let mut w = WriteOptions::new().checksum(true).create(&path).expect("create");
    w.image(&[1.0f64, 2.0, 3.0], &[3]).write().expect("write");
    w.image(&[5i32; 1000], &[10, 100]).compress(Compression::new(Algorithm::Rice)).write().expect("write");
    w.finish().expect("finish");
    assert!(verify(&path).expect("verify").iter().all(|s| s.hdu == ChecksumStatus::Valid));
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[2880 + 1] ^= 1; // the first HDU's data
    std::fs::write(&path, &bytes).expect("write");
    let sums = verify(&path).expect("verify");
    assert_eq!((sums[0].data, sums[0].hdu), (ChecksumStatus::Invalid, ChecksumStatus::Invalid));
    assert_eq!(sums[1].hdu, ChecksumStatus::Valid);
    // without checksums: missing
    let plain = dir.join("plain.fits");
    let mut w = FitsWriter::create(&plain).expect("create");
    w.image(&[1u8], &[1]).write().expect("write");
    w.finish().expect("finish");
    assert_eq!(verify(&plain).expect("verify")[0].hdu, ChecksumStatus::Missing);
}

#[test]
fn checksums_astropy_wrote_verify_as_astropy_says() {
    // ../shared/corpus: astropy's checksum test files, one intact and one whose sums are wrong
    let corpus = common::repo().join("../shared/corpus/images-tables");
    if !corpus.is_dir() {
        return;
    }
    let sums = verify(corpus.join("astropy-checksum.fits")).expect("verify");
    assert!(sums.iter().all(|s| (s.data, s.hdu) == (ChecksumStatus::Valid, ChecksumStatus::Valid)), "{sums:?}");
    let sums = verify(corpus.join("astropy-checksum_false.fits")).expect("verify");
    assert!(sums.iter().all(|s| (s.data, s.hdu) == (ChecksumStatus::Invalid, ChecksumStatus::Invalid)), "{sums:?}");
}

mod tables {
    use torchfits::table::{ColumnData, ColumnType, ColumnValues, TableBatch};
    use torchfits::write::{ChecksumStatus, ColumnSpec, verify};
    use torchfits::{ErrorKind, FitsFile, FitsWriter, Header, WriteOptions};

    use super::fitsverify;
    use crate::common;

    /// Rows `first..first + n` of a table with one column of every kind.
    fn batch(first: usize, n: usize) -> TableBatch {
        let r = |f: fn(usize) -> f64| (first..first + n).map(f).collect::<Vec<f64>>();
        let ints = |m: i64| (first..first + n).map(move |i| i as i64 * m);
        let mut lists = vec![0i32];
        let mut elems = Vec::new();
        for i in first..first + n {
            for k in 0..(i % 4) {
                elems.push((i * 10 + k) as i32);
            }
            lists.push(elems.len() as i32);
        }
        let names: Vec<String> = (first..first + n).map(|i| format!("obj {}", i % 13)).collect();
        TableBatch::new(vec![
            ColumnData::new("flag", ColumnValues::Bool((first..first + n).map(|i| i % 2 == 0).collect()))
                .with_nulls((first..first + n).map(|i| i % 7 == 3).collect()),
            ColumnData::new(
                "bits",
                ColumnValues::Bool((first..first + n).flat_map(|i| (0..11).map(move |k| (i + k) % 3 == 0)).collect()),
            )
            .with_per_row(11),
            ColumnData::new("u8", ColumnValues::U8(ints(3).map(|v| (v % 200) as u8).collect())),
            ColumnData::new("i16", ColumnValues::I16(ints(-7).map(|v| v as i16).collect()))
                .with_nulls((first..first + n).map(|i| i % 5 == 1).collect()),
            ColumnData::new("u16", ColumnValues::U16(ints(611).map(|v| v as u16).collect())),
            ColumnData::new("i32", ColumnValues::I32(ints(-100_003).map(|v| v as i32).collect())),
            ColumnData::new("u32", ColumnValues::U32(ints(4_000_037).map(|v| v as u32).collect()))
                .with_nulls((first..first + n).map(|i| i == 2).collect()),
            ColumnData::new("i64", ColumnValues::I64(ints(-(1 << 40)).collect())),
            ColumnData::new("u64", ColumnValues::U64(ints(1 << 50).map(|v| v as u64 | (1 << 63)).collect())),
            ColumnData::new("f32", ColumnValues::F32(r(|i| i as f64 * 0.25).into_iter().map(|v| v as f32).collect()))
                .with_nulls((first..first + n).map(|i| i % 9 == 4).collect()),
            ColumnData::new(
                "spec",
                ColumnValues::F64(
                    (first..first + n).flat_map(|i| (0..6).map(move |k| (i * 6 + k) as f64 / 3.0)).collect(),
                ),
            )
            .with_per_row(6),
            ColumnData::new(
                "c32",
                ColumnValues::ComplexF32((first..first + n).map(|i| [i as f32, -(i as f32)]).collect()),
            ),
            ColumnData::new(
                "c64",
                ColumnValues::ComplexF64((first..first + n).map(|i| [i as f64 / 7.0, 1.5]).collect()),
            ),
            ColumnData::strings("name", &names),
            ColumnData::list("hits", ColumnValues::I32(elems), lists),
        ])
        .expect("batch")
    }

    fn specs() -> Vec<ColumnSpec> {
        let mut specs: Vec<ColumnSpec> = batch(0, 40).columns.iter().map(ColumnSpec::of).collect();
        specs[1] = ColumnSpec::new("bits", ColumnType::Bits, 11);
        specs[10] = specs[10].clone().dims(&[2, 3]).unit("erg/s");
        specs[13].repeat = 12;
        specs
    }

    #[test]
    fn every_column_type_in_batches_round_trips() {
        let dir = common::tempdir("write-tables");
        let path = dir.join("table.fits");
        let mut w = WriteOptions::new().checksum(true).create(&path).expect("create");
        let mut header = Header::new();
        header.set("EXTNAME", "CATALOG", None).expect("set");
        header.set("SURVEY", "test", Some("where the rows come from")).expect("set");
        let mut t = w.table(specs(), Some(&header)).expect("table");
        // three batches, the last one partial; an empty one in between
        for (first, n) in [(0, 17), (17, 0), (17, 17), (34, 6)] {
            t.write(&batch(first, n)).expect("batch");
        }
        t.finish().expect("finish table");
        w.finish().expect("finish");
        fitsverify(&path);
        assert!(
            verify(&path)
                .expect("verify")
                .iter()
                .all(|s| s.hdu == ChecksumStatus::Valid && s.data == ChecksumStatus::Valid)
        );

        let file = FitsFile::open(&path).expect("open");
        assert_eq!(file.header("CATALOG").expect("header").get_str("SURVEY"), Some("test"));
        let reader = file.table("CATALOG").expect("table");
        let schema = reader.schema().clone();
        assert_eq!(schema.nrows, 40);
        let col = |name: &str| schema.column(name).expect("column").clone();
        assert_eq!(col("spec").dims, Some(vec![2, 3]));
        assert_eq!(col("spec").unit.as_deref(), Some("erg/s"));
        assert_eq!(col("name").tform, "12A");
        assert_eq!(col("hits").tform, "1PJ(3)");
        assert_eq!(col("u64").column_type, ColumnType::U64);
        let back = reader.build().expect("build").next().expect("batch").expect("read");
        let want = batch(0, 40);
        for (a, b) in back.columns.iter().zip(&want.columns) {
            assert_eq!(a.name, b.name);
            if a.name == "f32" {
                // undefined floats come back NaN
                let (ColumnValues::F32(x), ColumnValues::F32(y)) = (&a.values, &b.values) else { panic!("f32") };
                for (i, (p, q)) in x.iter().zip(y).enumerate() {
                    assert!(if i % 9 == 4 { p.is_nan() } else { p == q }, "row {i}: {p} vs {q}");
                }
                continue;
            }
            if a.name == "flag" {
                // an undefined logical reads false, its null flag set
                let ColumnValues::Bool(x) = &a.values else { panic!("bool") };
                assert_eq!(x, &(0..40).map(|i| i % 2 == 0 && i % 7 != 3).collect::<Vec<_>>());
                assert_eq!(a.nulls, b.nulls);
                continue;
            }
            // an undefined integer reads back as TNULL (the smallest i16, the largest u32 here)
            let mut want_values = b.values.clone();
            match (&mut want_values, &b.nulls) {
                (ColumnValues::I16(v), Some(m)) => {
                    v.iter_mut().zip(m).filter(|(_, n)| **n).for_each(|(x, _)| *x = i16::MIN)
                }
                (ColumnValues::U32(v), Some(m)) => {
                    v.iter_mut().zip(m).filter(|(_, n)| **n).for_each(|(x, _)| *x = u32::MAX)
                }
                _ => {}
            }
            assert_eq!(a.values, want_values, "{}", a.name);
            assert_eq!(a.list_offsets, b.list_offsets, "{}", a.name);
            if b.nulls.is_some() && !matches!(b.values, ColumnValues::F32(_)) {
                assert_eq!(a.nulls, b.nulls, "{}", a.name);
            }
        }
    }

    #[test]
    fn a_table_read_is_written_back_identically() {
        let dir = common::tempdir("write-copy");
        let corpus = |name: &str| common::repo().join("../shared/corpus/images-tables").join(name);
        let sources = [
            (common::sample(), 4usize),
            (corpus("astropy-btable.fits"), 1),
            (corpus("astropy-table.fits"), 1),
            (corpus("astropy-tb.fits"), 1),
            (corpus("astropy-ascii.fits"), 1),
            (corpus("astropy-variable_length_table.fits"), 1),
            (corpus("astropy-vla_logical_null.fits"), 1),
        ];
        for (k, (src, hdu)) in sources.into_iter().enumerate() {
            if !src.exists() {
                continue;
            }
            let file = FitsFile::open(&src).expect("open");
            let header = file.header(hdu).expect("header");
            let original =
                file.table(hdu).expect("table").build().expect("build").next().expect("batch").expect("read");
            let path = dir.join(format!("copy{k}.fits"));
            let mut w = FitsWriter::create(&path).expect("create");
            let specs = original.columns.iter().map(ColumnSpec::of).collect();
            // an ASCII table's header describes text fields: only its names and values carry over
            let keep = if header.get_str("XTENSION") == Some("TABLE") { None } else { Some(&header) };
            let mut t = w.table(specs, keep).expect("table");
            t.write(&original).unwrap_or_else(|e| panic!("{}: {e}", src.display()));
            t.finish().expect("finish");
            w.finish().expect("finish");
            fitsverify(&path);
            let copy = FitsFile::open(&path).expect("open");
            let back = copy.table(1).expect("table").build().expect("build").next().expect("batch").expect("read");
            // compared as text (NaN equals NaN); an undefined value reads back as NaN or TNULL
            // with its flag, so undefined elements compare by flag only
            for (a, b) in back.columns.iter().zip(&original.columns) {
                assert_eq!((&a.name, a.per_row, &a.list_offsets), (&b.name, b.per_row, &b.list_offsets));
                let flags = |c: &ColumnData| c.nulls.clone().unwrap_or_else(|| vec![false; elements(c).len()]);
                let nan = |c: &ColumnData| elements(c).iter().map(|e| e == "NaN").collect::<Vec<_>>();
                let undefined: Vec<bool> = flags(b).iter().zip(nan(b)).map(|(f, n)| *f || n).collect();
                let back_undefined: Vec<bool> = flags(a).iter().zip(nan(a)).map(|(f, n)| *f || n).collect();
                assert_eq!(back_undefined, undefined, "{} {}", src.display(), a.name);
                let defined = |c: &ColumnData| -> Vec<String> {
                    elements(c).into_iter().zip(&undefined).filter(|(_, u)| !**u).map(|(e, _)| e).collect()
                };
                assert_eq!(defined(a), defined(b), "{} {}", src.display(), a.name);
            }
            if keep.is_some() {
                assert_eq!(copy.header(1).expect("header").get_str("EXTNAME"), header.get_str("EXTNAME"));
            }
        }
    }

    /// Each element of a column as text.
    fn elements(c: &ColumnData) -> Vec<String> {
        fn each<T: std::fmt::Debug>(v: &[T]) -> Vec<String> {
            v.iter().map(|x| format!("{x:?}")).collect()
        }
        match &c.values {
            ColumnValues::Bool(v) => each(v),
            ColumnValues::U8(v) => each(v),
            ColumnValues::I16(v) => each(v),
            ColumnValues::U16(v) => each(v),
            ColumnValues::I32(v) => each(v),
            ColumnValues::U32(v) => each(v),
            ColumnValues::I64(v) => each(v),
            ColumnValues::U64(v) => each(v),
            ColumnValues::F32(v) => each(v),
            ColumnValues::F64(v) => each(v),
            ColumnValues::ComplexF32(v) => each(v),
            ColumnValues::ComplexF64(v) => each(v),
            ColumnValues::Str { offsets, .. } => {
                (0..offsets.len() - 1).map(|i| format!("{:?}", c.values.str_at(i))).collect()
            }
            other => panic!("a new kind of column: {other:?}"),
        }
    }

    #[test]
    fn bad_batches_are_clear_errors_and_lose_nothing() {
        let dir = common::tempdir("write-table-errors");
        let path = dir.join("t.fits");
        let ints = |v: Vec<i16>| ColumnData::new("x", ColumnValues::I16(v));
        let spec = vec![ColumnSpec::new("x", ColumnType::I16, 1)];
        let mut w = FitsWriter::create(&path).expect("create");
        let mut t = w.table(spec.clone(), None).expect("table");
        // undefined values without TNULL
        let err = t
            .write(&TableBatch::new(vec![ints(vec![1, 2]).with_nulls(vec![false, true])]).expect("b"))
            .expect_err("no TNULL");
        assert!(err.to_string().contains("TNULL") && err.to_string().contains("t.fits"), "{err}");
        // a column of another type or name
        let err = t
            .write(&TableBatch::new(vec![ColumnData::new("x", ColumnValues::I32(vec![1]))]).expect("b"))
            .expect_err("type");
        assert_eq!(err.kind(), ErrorKind::Parameter);
        t.finish().expect("the table is still whole");
        // a value equal to TNULL
        let mut t = w.table(vec![ColumnSpec::new("x", ColumnType::I16, 1).nullable(true)], None).expect("table");
        let err = t.write(&TableBatch::new(vec![ints(vec![i16::MIN])]).expect("b")).expect_err("collides");
        assert!(err.to_string().contains("TNULL"), "{err}");
        t.finish().expect("finish");
        // a string wider than its column, or not text
        let mut t = w.table(vec![ColumnSpec::new("s", ColumnType::Str, 3)], None).expect("table");
        assert!(t.write(&TableBatch::new(vec![ColumnData::strings("s", &["abcd"])]).expect("b")).is_err());
        assert!(t.write(&TableBatch::new(vec![ColumnData::strings("s", &[&b"\xff"[..]])]).expect("b")).is_err());
        // a table dropped unfinished: the file cannot be completed, and nothing is left behind
        drop(t);
        let err = w.finish().expect_err("incomplete");
        assert!(err.to_string().contains("incomplete"), "{err}");
        assert!(!path.exists());
        let left: Vec<_> = std::fs::read_dir(&dir).expect("list").filter_map(|e| e.ok()).collect();
        assert!(left.is_empty(), "{left:?}");
        // rows of different lengths in one batch
        assert!(TableBatch::new(vec![ints(vec![1, 2]), ColumnData::new("y", ColumnValues::F32(vec![1.0]))]).is_err());
    }
}

/// A writer killed (SIGKILL, from the parent) in the middle of writing, plain HDUs or compressed
/// ones (cfitsio's scratch file included), loses nothing: the target is byte for byte what it was,
/// and all that is left is the dead writer's temporary file(s), named after its pid. The test
/// binary runs itself as the writer.
#[test]
fn a_killed_writer_leaves_the_target_untouched() {
    if let Ok(spec) = std::env::var("TORCHFITS_KILLED_WRITER") {
        // the child: overwrite the target with HDU after HDU until killed
        let (mode, path) = spec.split_once(':').expect("mode:path");
        let data: Vec<i32> = (0..200 * 500).map(|i| i * 7 % 1000).collect();
        let mut w = WriteOptions::new().overwrite(true).create(path).expect("create");
        // at most 300 HDUs (120 MB), then wait to be killed: never an unbounded file
        for k in 0..300 {
            let img = w.image(&data, &[200, 500]);
            let img = if mode == "compressed" { img.compress(Compression::new(Algorithm::Gzip1)) } else { img };
            img.write().expect("write");
            if k == 3 {
                println!("\nWRITING {}", std::process::id());
            }
        }
        std::thread::sleep(Duration::from_secs(60));
        std::process::exit(1);
    }
    use std::io::BufRead;
    let dir = common::tempdir("killed-writer");
    let path = dir.join("target.fits");
    let mut w = FitsWriter::create(&path).expect("create");
    w.image(&[1i16, 2, 3], &[3]).write().expect("write");
    w.finish().expect("finish");
    let before = std::fs::read(&path).expect("read");
    let exe = std::env::current_exe().expect("exe");
    for mode in ["plain", "compressed"] {
        let mut child = std::process::Command::new(&exe)
            .args(["--exact", "write::a_killed_writer_leaves_the_target_untouched", "--nocapture", "--test-threads=1"])
            .env("TORCHFITS_KILLED_WRITER", format!("{mode}:{}", path.display()))
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("spawn the writer");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let pid = std::io::BufReader::new(stdout)
                .lines()
                .map_while(|l| l.ok())
                .find_map(|l| l.split_once("WRITING ").map(|(_, p)| p.trim().to_string()));
            let _ = tx.send(pid);
        });
        let pid = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(pid)) => pid,
            other => {
                let _ = child.kill();
                panic!("{mode}: the writer did not start: {other:?}");
            }
        };
        std::thread::sleep(Duration::from_millis(50));
        child.kill().expect("kill");
        let status = child.wait().expect("wait");
        assert!(!status.success(), "{mode}: the writer was killed");
        assert_eq!(std::fs::read(&path).expect("read"), before, "{mode}: the target is untouched");
        let left = leftovers(&dir);
        assert!(!left.is_empty() && left.iter().all(|n| n.contains(&format!(".{pid}-"))), "{mode}: {left:?}");
        // the next writer is not disturbed by them; they can be deleted
        for n in left {
            std::fs::remove_file(dir.join(n)).expect("remove");
        }
        assert_eq!(
            FitsFile::open(&path).expect("open").image(0).expect("image").read::<i16>().expect("read"),
            [1, 2, 3]
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// A one-HDU file of 4 x 4 int16 `value`s at `path`, written with `options`.
fn write_small(options: &WriteOptions, path: &Path, value: i16) -> torchfits::Result<std::path::PathBuf> {
    let mut w = options.create(path)?;
    w.image(&[value; 16], &[4, 4]).write()?;
    w.finish()
}

#[test]
fn a_replaced_file_keeps_its_permissions_and_its_links() {
    use std::os::unix::fs::PermissionsExt;
    let dir = common::tempdir("write-keeps");
    let real = dir.join("real.fits");
    write_small(&WriteOptions::new(), &real, 1).expect("write");
    std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    write_small(&WriteOptions::new().overwrite(true), &real, 2).expect("overwrite");
    assert_eq!(std::fs::metadata(&real).expect("stat").permissions().mode() & 0o777, 0o640);
    // a link (relative, through a second link) is written through, and stays a link
    let link = dir.join("link.fits");
    let link2 = dir.join("link2.fits");
    std::os::unix::fs::symlink("real.fits", &link).expect("link");
    std::os::unix::fs::symlink(&link, &link2).expect("link to the link");
    write_small(&WriteOptions::new().overwrite(true), &link2, 3).expect("overwrite through the links");
    for l in [&link, &link2] {
        assert!(std::fs::symlink_metadata(l).expect("stat").file_type().is_symlink(), "{} is still a link", l.display());
    }
    let px: Vec<i16> = FitsFile::open(&real).expect("open").image(0).expect("image").read().expect("read");
    assert_eq!(px, vec![3; 16]);
    assert_eq!(std::fs::metadata(&real).expect("stat").permissions().mode() & 0o777, 0o640);
    // appending through the link appends to the file it points to
    write_small(&WriteOptions::new().append(true), &link, 4).expect("append through the link");
    assert_eq!(FitsFile::open(&real).expect("open").hdu_count().expect("count"), 2);
    assert!(leftovers(&dir).is_empty(), "{:?}", leftovers(&dir));
}

#[test]
fn writers_appending_to_one_file_lose_none_of_each_others_hdus() {
    let dir = common::tempdir("write-append-race");
    let path = dir.join("shared.fits");
    write_small(&WriteOptions::new(), &path, 0).expect("the first HDU");
    let rounds = 12;
    std::thread::scope(|s| {
        for t in 1..=3i16 {
            let path = &path;
            s.spawn(move || {
                for _ in 0..rounds {
                    write_small(&WriteOptions::new().append(true), path, t).expect("append");
                }
            });
        }
    });
    let f = FitsFile::open(&path).expect("open");
    assert_eq!(f.hdu_count().expect("count"), 1 + 3 * rounds);
    let mut per_writer = [0usize; 4];
    for k in 0..f.hdu_count().expect("count") {
        let px: Vec<i16> = f.image(k).expect("image").read().expect("read");
        per_writer[px[0] as usize] += 1;
    }
    assert_eq!(per_writer, [1, rounds, rounds, rounds]);
}

#[test]
fn a_directory_that_cannot_be_flushed_is_reported() {
    let dir = common::tempdir("write-dir-sync");
    let path = dir.join("x.fits");
    let e = write_small(&WriteOptions::new().fail_dir_sync(true), &path, 1).expect_err("the directory's fsync failed");
    assert_eq!(e.kind(), ErrorKind::Io, "{e}");
    assert!(e.to_string().contains("x.fits") && e.to_string().contains("directory"), "{e}");
    // the file itself is complete and in place
    let px: Vec<i16> = FitsFile::open(&path).expect("open").image(0).expect("image").read().expect("read");
    assert_eq!(px, vec![1; 16]);
}

/// Fuzz finding (write target): a compressed image with an axis of length 0 reached cfitsio's
/// tile-table set-up, which divided by the tile's size (SIGFPE). It is an error naming the shape,
/// for every codec; uncompressed, such an image is written as it is.
#[test]
fn an_image_without_pixels_is_not_compressed() {
    let dir = common::tempdir("write-empty-compressed");
    for algorithm in [Algorithm::Rice, Algorithm::Gzip1, Algorithm::Gzip2, Algorithm::Hcompress, Algorithm::Plio] {
        let path = dir.join("empty.fits");
        let mut w = WriteOptions::new().overwrite(true).create(&path).expect("create");
        let e = w.image::<f32>(&[], &[3, 0]).compress(Compression::new(algorithm)).write().expect_err("no pixels");
        assert_eq!(e.kind(), ErrorKind::Parameter, "{algorithm:?}: {e}");
        assert!(e.to_string().contains("[3, 0]"), "{e}");
    }
    let path = dir.join("plain.fits");
    let mut w = FitsWriter::create(&path).expect("create");
    w.image::<f32>(&[], &[3, 0]).write().expect("an empty image, uncompressed");
    w.finish().expect("finish");
    assert_eq!(FitsFile::open(&path).expect("open").image(0).expect("image").shape(), &[3, 0]);
}
