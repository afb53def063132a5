//! Writing: every pixel type, shapes, scaling, every compression, headers, checksums, the
//! atomic-write guarantees; every file written is checked by `fitsverify` and read back.

use std::path::Path;

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
    let mut file = FitsFile::open(&path).expect("open");
    for hdu in [0usize, 1] {
        let mut img = file.image(hdu).expect("image");
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
        let mut file = FitsFile::open(&path).expect("open");
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
            // quantised floats (hcompress: lossless integers only here)
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
        let mut file = FitsFile::open(&path).expect("open");
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
    let mut file = FitsFile::open(&path).expect("open");
    assert_eq!(file.image(1).expect("img").read::<i32>().expect("read"), cube);
    assert_eq!(file.image(2).expect("img").read::<i8>().expect("read"), i8s);
    assert_eq!(file.image(3).expect("img").read::<u32>().expect("read"), u32s);
    assert_eq!(file.image(4).expect("img").read::<i16>().expect("read"), flat);
    assert!(Compression::parse("zstd").is_err());
    assert_eq!(Compression::parse("RICE_1").expect("rice").algorithm, Algorithm::Rice);
}

#[test]
fn headers_from_a_read_file_are_rewritten_without_their_structure() {
    let dir = common::tempdir("write-header");
    let mut src = FitsFile::open(common::sample()).expect("open sample");
    let header = src.header("SCI").expect("header");
    let data: Vec<f32> = src.image("SCI").expect("image").read().expect("read");
    let shape = src.image("SCI").expect("image").shape().to_vec();
    let path = dir.join("copy.fits");
    let mut w = FitsWriter::create(&path).expect("create");
    // the source's BITPIX/NAXISn/XTENSION are skipped; the data's own are written
    w.image(&data[..data.len() / 2], &[shape[0] / 2, shape[1]]).header(&header).write().expect("write");
    w.finish().expect("finish");
    fitsverify(&path);
    let mut file = FitsFile::open(&path).expect("open");
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

    // the same for a compressed HDU (cfitsio's scratch file included)
    let mut w = WriteOptions::new().fail_after(4_000).create(&path).expect("create");
    let err = w.image(&big, &[100, 1000]).compress(Compression::new(Algorithm::Gzip2)).write().expect_err("failure");
    assert!(err.to_string().contains("no space"), "{err}");
    drop(w);
    assert!(!path.exists());
    assert_eq!(leftovers(&dir), Vec::<String>::new());

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
    let mut file = FitsFile::open(&path).expect("open");
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
