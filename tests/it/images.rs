//! Image reads: astropy's dtype rules, N-D sections, tile-compressed images, threads.

use std::ops::Range;

use torchfits::{Dtype, ErrorKind, FitsFile, Limits, OpenOptions, Pixels, Section};

use crate::common::{self, be, image, pattern, slice, write};

/// Writes a one-HDU file of `bitpix` with `extra` cards and `data`, reads it with its own dtype.
fn read_one(name: &str, bitpix: i32, shape: &[usize], extra: &[(&str, &str)], data: Vec<u8>) -> Pixels {
    let dir = common::tempdir(name);
    let path = dir.join("img.fits");
    write(&path, &[image(true, bitpix, shape, extra, data)]);
    let file = FitsFile::open(&path).expect("open");
    let img = file.image(0).expect("image");
    let data = img.read_data(None).expect("read");
    assert_eq!(data.shape, shape);
    data.pixels
}

#[test]
fn unscaled_types_are_stored_types() {
    let u8s: Vec<u8> = (0..12).map(|i| i * 20).collect();
    assert_eq!(read_one("u8", 8, &[3, 4], &[], u8s.clone()), Pixels::U8(u8s));
    let i16s: Vec<i16> = (0..12i32).map(|i| (i * 5000 - 27000) as i16).collect();
    assert_eq!(read_one("i16", 16, &[3, 4], &[], be(&i16s, i16::to_be_bytes)), Pixels::I16(i16s));
    let i32s: Vec<i32> = (0..12i64).map(|i| (i * 300_000_000 - 1_800_000_000) as i32).collect();
    assert_eq!(read_one("i32", 32, &[3, 4], &[], be(&i32s, i32::to_be_bytes)), Pixels::I32(i32s));
    let i64s: Vec<i64> = (0..12).map(|i| (i - 6) * 1_000_000_000_000_000).collect();
    assert_eq!(read_one("i64", 64, &[3, 4], &[], be(&i64s, i64::to_be_bytes)), Pixels::I64(i64s));
    let f32s: Vec<f32> = (0..12).map(|i| i as f32 * 0.25 - 1.0).collect();
    assert_eq!(read_one("f32", -32, &[3, 4], &[], be(&f32s, f32::to_be_bytes)), Pixels::F32(f32s));
    let f64s: Vec<f64> = (0..12).map(|i| i as f64 / 3.0).collect();
    assert_eq!(read_one("f64", -64, &[3, 4], &[], be(&f64s, f64::to_be_bytes)), Pixels::F64(f64s));
    // explicit identity scaling changes nothing
    let u8s: Vec<u8> = (0..12).collect();
    assert_eq!(read_one("u8id", 8, &[3, 4], &[("BSCALE", "1.0"), ("BZERO", "0.0")], u8s.clone()), Pixels::U8(u8s));
}

#[test]
fn unsigned_and_int8_through_bzero() {
    let raw: Vec<u8> = vec![0, 1, 127, 128, 200, 255];
    let want: Vec<i8> = raw.iter().map(|&r| (r as i16 - 128) as i8).collect();
    assert_eq!(read_one("i8", 8, &[6], &[("BZERO", "-128")], raw), Pixels::I8(want));

    let raw: Vec<i16> = vec![-32768, -1, 0, 1, 32767, 100];
    let want: Vec<u16> = raw.iter().map(|&r| (r as i32 + 32768) as u16).collect();
    let got = read_one("u16", 16, &[6], &[("BSCALE", "1"), ("BZERO", "32768")], be(&raw, i16::to_be_bytes));
    assert_eq!(got, Pixels::U16(want.clone()));
    // BLANK is not applied to unsigned data (astropy)
    let got = read_one("u16blank", 16, &[6], &[("BZERO", "32768"), ("BLANK", "-1")], be(&raw, i16::to_be_bytes));
    assert_eq!(got, Pixels::U16(want));

    let raw: Vec<i32> = vec![i32::MIN, -1, 0, i32::MAX];
    let want: Vec<u32> = raw.iter().map(|&r| (r as i64 + (1 << 31)) as u32).collect();
    let got = read_one("u32", 32, &[4], &[("BZERO", "2147483648")], be(&raw, i32::to_be_bytes));
    assert_eq!(got, Pixels::U32(want));

    let raw: Vec<i64> = vec![i64::MIN, -1, 0, i64::MAX];
    let want: Vec<u64> = raw.iter().map(|&r| (r as i128 + (1i128 << 63)) as u64).collect();
    let got = read_one("u64", 64, &[4], &[("BZERO", "9223372036854775808")], be(&raw, i64::to_be_bytes));
    assert_eq!(got, Pixels::U64(want));
}

#[test]
fn scaled_integers_become_floats_computed_in_double() {
    let raw: Vec<i16> = vec![-32768, -1, 0, 1, 12345, 32767];
    let got = read_one("scaled16", 16, &[2, 3], &[("BSCALE", "0.01"), ("BZERO", "1000")], be(&raw, i16::to_be_bytes));
    let want: Vec<f32> = raw.iter().map(|&r| (r as f64 * 0.01 + 1000.0) as f32).collect();
    assert_eq!(got, Pixels::F32(want));

    let raw: Vec<u8> = vec![0, 10, 255];
    let got = read_one("scaled8", 8, &[3], &[("BSCALE", "2.5")], raw.clone());
    assert_eq!(got, Pixels::F32(raw.iter().map(|&r| (r as f64 * 2.5) as f32).collect()));

    let raw: Vec<i32> = vec![-5, 0, 7, 1 << 30];
    let got = read_one("scaled32", 32, &[4], &[("BSCALE", "2.0"), ("BZERO", "-1.5")], be(&raw, i32::to_be_bytes));
    assert_eq!(got, Pixels::F64(raw.iter().map(|&r| r as f64 * 2.0 - 1.5).collect()));

    let raw: Vec<i64> = vec![-5, 0, 7];
    let got = read_one("scaled64", 64, &[3], &[("BZERO", "0.5")], be(&raw, i64::to_be_bytes));
    assert_eq!(got, Pixels::F64(raw.iter().map(|&r| r as f64 + 0.5).collect()));

    // BSCALE on a float image: stays f32, scaled
    let raw: Vec<f32> = vec![1.5, -2.0, f32::NAN];
    let Pixels::F32(got) = read_one("scaledf32", -32, &[3], &[("BSCALE", "2.0")], be(&raw, f32::to_be_bytes)) else {
        panic!("f32 expected")
    };
    assert_eq!(&got[..2], &[3.0, -4.0]);
    assert!(got[2].is_nan());
}

#[test]
fn blank_makes_integers_float_with_nan() {
    let raw: Vec<i16> = vec![-999, 1, 2, -999, 4, 5];
    let Pixels::F32(got) = read_one("blank16", 16, &[2, 3], &[("BLANK", "-999")], be(&raw, i16::to_be_bytes)) else {
        panic!("f32 expected")
    };
    assert!(got[0].is_nan() && got[3].is_nan());
    assert_eq!([got[1], got[2], got[4], got[5]], [1.0, 2.0, 4.0, 5.0]);

    let raw: Vec<i64> = vec![2, 3];
    let Pixels::F64(got) = read_one("blank64", 64, &[2], &[("BLANK", "2")], be(&raw, i64::to_be_bytes)) else {
        panic!("f64 expected")
    };
    assert!(got[0].is_nan());
    assert_eq!(got[1], 3.0);

    let raw: Vec<i32> = vec![7, 8];
    let Pixels::F64(got) =
        read_one("blank32s", 32, &[2], &[("BLANK", "7"), ("BSCALE", "0.5")], be(&raw, i32::to_be_bytes))
    else {
        panic!("f64 expected")
    };
    assert!(got[0].is_nan());
    assert_eq!(got[1], 4.0);

    // astropy ignores BLANK = 0 (the type still becomes float) and BLANK on float images
    let raw: Vec<i16> = vec![0, 1];
    assert_eq!(
        read_one("blank0", 16, &[2], &[("BLANK", "0")], be(&raw, i16::to_be_bytes)),
        Pixels::F32(vec![0.0, 1.0])
    );
    let raw: Vec<f32> = vec![5.0, 6.0];
    assert_eq!(
        read_one("blankf", -32, &[2], &[("BLANK", "5")], be(&raw, f32::to_be_bytes)),
        Pixels::F32(vec![5.0, 6.0])
    );
}

#[test]
fn read_into_converts_and_checks_the_buffer() {
    let dir = common::tempdir("into");
    let path = dir.join("img.fits");
    let raw: Vec<i16> = (0..12).map(|i| i * 100 - 600).collect();
    write(&path, &[image(true, 16, &[3, 4], &[], be(&raw, i16::to_be_bytes))]);
    let file = FitsFile::open(&path).expect("open");
    let img = file.image(0).expect("image");
    assert_eq!((img.dtype(), img.len(), img.shape()), (Dtype::I16, 12, &[3usize, 4][..]));
    let mut as_f32 = vec![0f32; 12];
    img.read_into(&mut as_f32).expect("read as f32");
    assert_eq!(as_f32, raw.iter().map(|&v| v as f32).collect::<Vec<_>>());
    let mut short = vec![0i16; 11];
    let err = img.read_into(&mut short).expect_err("wrong length");
    assert_eq!(err.kind(), ErrorKind::Parameter);
    assert!(err.to_string().contains("img.fits") && err.to_string().contains("HDU 0"), "{err}");
    // a value that does not fit the requested type is the caller's error, not a silent wrap
    let mut as_u8 = vec![0u8; 12];
    assert_eq!(img.read_into(&mut as_u8).expect_err("overflow").kind(), ErrorKind::Parameter);
}

/// Deterministic sections of `shape`, including single rows/cols, edges, full and empty ranges.
fn sections(shape: &[usize]) -> Vec<Vec<Range<usize>>> {
    let mut out = vec![shape.iter().map(|&n| 0..n).collect::<Vec<_>>()];
    for seed in 0..6usize {
        out.push(
            shape
                .iter()
                .enumerate()
                .map(|(k, &n)| {
                    let a = (seed * 7 + k * 3) % n;
                    let b = (a + 1 + (seed * 5 + k) % (n - a)).min(n);
                    a..b
                })
                .collect(),
        );
    }
    out.push(shape.iter().map(|&n| n - 1..n).collect());
    out.push(shape.iter().enumerate().map(|(k, &n)| if k == 0 { 1..1 } else { 0..n }).collect());
    out
}

#[test]
fn sections_of_1d_to_4d_images_match_the_full_read() {
    for shape in [vec![37], vec![9, 13], vec![4, 6, 11], vec![3, 4, 5, 7]] {
        let n: usize = shape.iter().product();
        let values: Vec<i32> = pattern(&shape, -100_000, 100_000).into_iter().map(|v| v as i32).collect();
        assert_eq!(values.len(), n);
        let dir = common::tempdir(&format!("sect{}", shape.len()));
        let path = dir.join("img.fits");
        write(&path, &[image(true, 32, &shape, &[], be(&values, i32::to_be_bytes))]);
        let file = FitsFile::open(&path).expect("open");
        let img = file.image(0).expect("image");
        assert_eq!(img.read::<i32>().expect("full"), values);
        for ranges in sections(&shape) {
            let got: Vec<i32> = img.read_section(&Section::new(ranges.clone())).expect("section");
            assert_eq!(got, slice(&values, &shape, &ranges), "shape {shape:?} section {ranges:?}");
        }
        let mut too_far: Vec<Range<usize>> = shape.iter().map(|&n| 0..n).collect();
        too_far[0] = 0..shape[0] + 1;
        let err = img.read_section::<i32>(&Section::new(too_far)).expect_err("out of bounds");
        assert_eq!(err.kind(), ErrorKind::Parameter);
    }
}

fn load_npy_f32(path: &std::path::Path) -> Vec<f32> {
    let bytes = std::fs::read(path).expect("npy");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = String::from_utf8_lossy(&bytes[10..10 + hlen]);
    assert!(header.contains("'<f4'"), "{header}");
    bytes[10 + hlen..].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

#[test]
fn compressed_images_decode_exactly_and_sections_match() {
    let path = common::compressed_fixture();
    let file = FitsFile::open(&path).expect("open");
    let ints: [(&str, i64, i64, Dtype); 8] = [
        ("RICE_I16", -3000, 3000, Dtype::I16),
        ("RICE_ROWS_I32", -100000, 100000, Dtype::I32),
        ("GZIP1_I32", -100000, 100000, Dtype::I32),
        ("GZIP2_I16", -3000, 3000, Dtype::I16),
        ("HCOMP_I16", -3000, 3000, Dtype::I16),
        ("PLIO_I32", 0, 4096, Dtype::I32),
        ("RICE_U16", 0, 65535, Dtype::U16),
        ("RICE_CUBE_I16", -3000, 3000, Dtype::I16),
    ];
    for (name, lo, hi, dtype) in ints {
        assert!(file.hdu(name).expect("info").compressed, "{name}");
        let img = file.image(name).expect("image");
        assert_eq!(img.dtype(), dtype, "{name}");
        let shape = img.shape().to_vec();
        let want = pattern(&shape, lo, hi);
        // cfitsio decompresses into at most 32-bit integers: read as i32, compare as i64
        let full: Vec<i64> = img.read::<i32>().expect("full").into_iter().map(i64::from).collect();
        assert_eq!(full, want, "{name}: lossless decoding");
        for ranges in sections(&shape) {
            let got: Vec<i64> = img
                .read_section::<i32>(&Section::new(ranges.clone()))
                .expect("section")
                .into_iter()
                .map(i64::from)
                .collect();
            assert_eq!(got, slice(&full, &shape, &ranges), "{name} section {ranges:?}");
        }
    }

    // into 64-bit integers too, which cfitsio does not decompress into
    let wide: Vec<i64> = file.image("RICE_I16").expect("image").read().expect("into i64");
    let narrow: Vec<i16> = file.image("RICE_I16").expect("image").read().expect("i16");
    assert!(wide.iter().zip(&narrow).all(|(a, b)| *a == i64::from(*b)) && wide.len() == narrow.len());

    // quantized, dithered floats: exactly what astropy decodes; sections equal the full read's slice
    let astropy = load_npy_f32(&common::repo().join("tests/data/rice_f32_dither.npy"));
    let img = file.image("RICE_F32_DITHER").expect("image");
    assert_eq!(img.dtype(), Dtype::F32);
    let full: Vec<f32> = img.read().expect("full");
    assert_eq!(full, astropy);
    let smooth: Vec<f32> = pattern(&[40, 50], 0, 1000).iter().map(|&p| (1000.0 + p as f64 * 0.37) as f32).collect();
    let max_err = full.iter().zip(&smooth).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(max_err > 0.0 && max_err < 10.0, "quantization error {max_err}");
    for ranges in sections(&[40, 50]) {
        let got: Vec<f32> = img.read_section(&Section::new(ranges.clone())).expect("section");
        assert_eq!(got, slice(&full, &[40, 50], &ranges), "section {ranges:?}");
    }

    // lossless compressed doubles
    let img = file.image("GZIP2_F64_LOSSLESS").expect("image");
    let want: Vec<f64> = smooth.iter().map(|&v| v as f64 / 3.0).collect();
    assert_eq!(img.read::<f64>().expect("full"), want);
}

#[test]
fn allocating_reads_respect_limits_and_read_into_does_not_allocate() {
    let path = common::sample();
    let file = OpenOptions::new().limits(Limits::default().with_max_alloc(1000)).open(&path).expect("open");
    let img = file.image("SCI").expect("image");
    let err = img.read::<f32>().expect_err("over max_alloc");
    assert_eq!(err.kind(), ErrorKind::Limits);
    assert!(err.to_string().contains("max_alloc") && err.to_string().contains("HDU 1"), "{err}");
    let mut buf = vec![0f32; img.len()];
    img.read_into(&mut buf).expect("caller's buffer is not limited");
    let small: Vec<f32> = img.read_section(&Section::new(vec![0..10, 0..10])).expect("small section");
    assert_eq!(small.len(), 100);
}

#[test]
fn no_data_tables_and_random_groups_are_clear_errors() {
    let file = FitsFile::open(common::sample()).expect("open");
    let err = file.image(0).expect("primary").read::<u8>().expect_err("no data");
    assert_eq!(err.kind(), ErrorKind::Parameter);
    assert!(err.to_string().contains("NAXIS = 0"), "{err}");
    let err = file.image("CATALOG").expect_err("a table");
    assert_eq!(err.kind(), ErrorKind::Parameter);
    assert!(err.to_string().contains("bintable"), "{err}");
    let groups = common::repo().join("../shared/corpus/images-tables/astropy-random_groups.fits");
    if groups.exists() {
        let err = FitsFile::open(&groups).expect("open").image(0).expect_err("random groups");
        assert_eq!(err.kind(), ErrorKind::Unsupported);
    }
}

#[test]
fn handles_are_send_and_threads_read_the_same_file_independently() {
    fn assert_send<T: Send>() {}
    assert_send::<FitsFile>();
    let path = common::compressed_fixture();
    let reference: Vec<i16> =
        FitsFile::open(&path).expect("open").image("RICE_CUBE_I16").expect("img").read().expect("read");
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let file = FitsFile::open(&path).expect("open");
                let img = file.image("RICE_CUBE_I16").expect("image");
                let plane = t % 6;
                let mut out = vec![0i16; 20 * 30];
                for _ in 0..20 {
                    img.read_section_into(&Section::new(vec![plane..plane + 1, 0..20, 0..30]), &mut out).expect("read");
                }
                (plane, out)
            })
        })
        .collect();
    for th in threads {
        let (plane, out) = th.join().expect("thread");
        assert_eq!(out, reference[plane * 600..(plane + 1) * 600]);
    }
}

#[test]
fn compressed_reads_split_into_tile_bands_across_threads() {
    let path = common::compressed_fixture();
    let want = |y: usize, x: usize| (7 * y + x / 128) as i16;
    for name in ["RICE_BIG_I16", "GZIP_BIG_TILES_I16"] {
        for threads in [1, 2, 3, 8] {
            let file = OpenOptions::new().threads(threads).open(&path).expect("open");
            let img = file.image(name).expect("image");
            assert_eq!(img.shape(), &[1024, 1024]);
            let full: Vec<i16> = img.read().expect("full");
            for (k, v) in full.iter().enumerate() {
                assert_eq!(*v, want(k / 1024, k % 1024), "{name} threads {threads} pixel {k}");
            }
            // bands that start and end inside tiles, and a narrow one
            for ranges in [vec![5..1019, 3..1000], vec![100..900, 0..1024], vec![0..1024, 512..513]] {
                let got: Vec<i16> = img.read_section(&Section::new(ranges.clone())).expect("section");
                assert_eq!(got, slice(&full, &[1024, 1024], &ranges), "{name} threads {threads} {ranges:?}");
            }
        }
    }
}

#[test]
fn rice_tiles_decoded_natively_equal_cfitsio_on_every_section() {
    use torchfits::{OpenOptions, Section};
    let path = common::compressed_fixture();
    let native = FitsFile::open(&path).expect("open");
    let cfitsio = OpenOptions::new().direct_reads(false).open(&path).expect("open");
    let count = native.hdu_count().expect("count");
    let mut checked = 0;
    for hdu in 1..count {
        let (dtype, shape) = {
            let img = native.image(hdu).expect("image");
            (img.dtype(), img.shape().to_vec())
        };
        let sections: Vec<Section> = {
            let full = Section::new(shape.iter().map(|&n| 0..n).collect());
            let inner = Section::new(shape.iter().map(|&n| n / 3..(2 * n / 3).max(n / 3 + 1)).collect());
            let corner = Section::new(shape.iter().map(|&n| n.saturating_sub(2)..n).collect());
            vec![full, inner, corner]
        };
        macro_rules! same {
            ($t:ty) => {
                for s in &sections {
                    let a: Vec<$t> = native.image(hdu).expect("image").read_section(s).expect("native");
                    let b: Vec<$t> = cfitsio.image(hdu).expect("image").read_section(s).expect("cfitsio");
                    assert_eq!(format!("{a:?}"), format!("{b:?}"), "HDU {hdu} section {s:?}");
                }
            };
        }
        match dtype {
            Dtype::I16 => same!(i16),
            Dtype::U16 => same!(u16),
            Dtype::I32 => same!(i32),
            Dtype::U8 => same!(u8),
            Dtype::F32 => same!(f32),
            Dtype::F64 => same!(f64),
            other => panic!("a fixture of {other:?}"),
        }
        checked += 1;
    }
    assert!(checked >= 10, "{checked} compressed HDUs");
}

/// The bits of a little-endian f4 or f8 .npy (astropy's decoding of a fixture), widened to u64.
fn load_npy_bits(path: &std::path::Path) -> (Dtype, Vec<u64>) {
    let bytes = std::fs::read(path).expect("npy");
    let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = String::from_utf8_lossy(&bytes[10..10 + hlen]).to_string();
    let data = &bytes[10 + hlen..];
    if header.contains("'<f4'") {
        (Dtype::F32, data.chunks_exact(4).map(|c| u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect())
    } else {
        assert!(header.contains("'<f8'"), "{header}");
        (Dtype::F64, data.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect())
    }
}

#[test]
fn compressed_floats_decode_as_astropy_does_bit_for_bit() {
    // tests/data/quantized.fits (astropy): RICE_1 with every ZQUANTIZ, ZDITHER0 = 9999 with
    // 12000-pixel tiles, NaN, exact zeros, f64, a row of +inf that astropy stored as gzipped
    // floats; GZIP_1/2 of quantised and of lossless floats
    let path = common::repo().join("tests/data/quantized.fits");
    let names = [
        "DITHER1_ROWS",
        "DITHER2_TILES",
        "NO_DITHER",
        "SEED_WRAPS",
        "F64",
        "GZIP_TILE",
        "GZIP1_DITHER1",
        "GZIP2_DITHER2",
        "GZIP2_LOSSLESS",
        "GZIP1_LOSSLESS_F64",
    ];
    for threads in [1, 3] {
        let native = OpenOptions::new().threads(threads).open(&path).expect("open");
        let cfitsio = OpenOptions::new().direct_reads(false).open(&path).expect("open");
        for name in names {
            let (dtype, want) = load_npy_bits(&common::repo().join(format!("tests/data/quantized_{name}.npy")));
            let mut img = native.image(name).expect("image");
            assert_eq!(img.dtype(), dtype, "{name}");
            let shape = img.shape().to_vec();
            let bits = |img: &mut torchfits::ImageReader, s: &Section| -> Vec<u64> {
                match dtype {
                    Dtype::F32 => {
                        img.read_section::<f32>(s).expect("read").iter().map(|v| u64::from(v.to_bits())).collect()
                    }
                    _ => img.read_section::<f64>(s).expect("read").iter().map(|v| v.to_bits()).collect(),
                }
            };
            let full = bits(&mut img, &Section::full(&shape));
            assert_eq!(full, want, "{name} (threads {threads}): astropy's values");
            for ranges in sections(&shape) {
                let got = bits(&mut img, &Section::new(ranges.clone()));
                assert_eq!(got, slice(&full, &shape, &ranges), "{name} section {ranges:?}");
            }
            // cfitsio agrees, except that it reads the +inf of a tile stored in GZIP_COMPRESSED_DATA
            // as NaN (astropy keeps it; so does cfitsio in a lossless GZIP image)
            let theirs = bits(&mut cfitsio.image(name).expect("image"), &Section::full(&shape));
            for (k, (a, b)) in full.iter().zip(&theirs).enumerate() {
                let inf =
                    if dtype == Dtype::F32 { u64::from(f32::INFINITY.to_bits()) } else { f64::INFINITY.to_bits() };
                if *a == inf && name == "GZIP_TILE" {
                    let nan = if dtype == Dtype::F32 {
                        f64::from(f32::from_bits(*b as u32)).is_nan()
                    } else {
                        f64::from_bits(*b).is_nan()
                    };
                    assert!(nan, "{name} pixel {k}: cfitsio's value {b:#x}");
                } else {
                    assert_eq!(a, b, "{name} pixel {k}: torchfits and cfitsio");
                }
            }
        }
    }
}

/// Each pixel's bits, whatever its type: comparisons that tell NaN, -0.0 and infinities apart.
fn pixel_bits(pixels: &Pixels) -> Vec<u64> {
    let size = pixels.dtype().size();
    pixels.as_bytes().chunks_exact(size).map(|c| c.iter().rev().fold(0u64, |a, &b| a << 8 | u64::from(b))).collect()
}

/// The compressed HDUs of tests/data/older_layouts.fits (tests/data/make_older_layouts.py), each
/// followed by NAME_ASTROPY, astropy's reading of it.
const OLDER_LAYOUTS: [&str; 9] = [
    "RICE_NO_BYTEPIX",
    "GZIP1_I16_AS_I32",
    "GZIP2_U8_AS_I32",
    "UNCOMPRESSED_I16",
    "UNCOMPRESSED_U16_Q",
    "UNCOMPRESSED_I32",
    "NOCOMPRESS_I16",
    "QUANTIZED_UNCOMPRESSED_F32",
    "GZIP_DATA_I16",
];

/// Each compressed image `name` of the fixture `path` reads as its NAME_ASTROPY HDU (astropy's
/// reading of it), bit for bit, whole and in sections, by pread on 1 and 3 threads and by memory
/// map; and through cfitsio too, except the `refused` (name, HDU) pairs, which must be errors.
fn reads_as_astropy_reads(path: &std::path::Path, names: &[&str], refused: &[(&str, usize)]) {
    let ways = [
        ("pread", OpenOptions::new().threads(1)),
        ("pread, 3 threads", OpenOptions::new().threads(3)),
        ("mmap, 3 threads", OpenOptions::new().mmap(true).threads(3)),
    ];
    for (way, options) in ways {
        let file = options.open(path).expect("open");
        for &name in names {
            let want =
                file.image(format!("{name}_ASTROPY").as_str()).expect("astropy's").read_data(None).expect("read");
            let img = file.image(name).expect("image");
            assert_eq!(img.dtype(), want.pixels.dtype(), "{name}");
            let full = pixel_bits(&img.read_data(None).expect("read").pixels);
            assert_eq!(full, pixel_bits(&want.pixels), "{name} ({way}): astropy's values");
            for ranges in sections(img.shape()) {
                let got = img.read_data(Some(&Section::new(ranges.clone()))).expect("section");
                assert_eq!(pixel_bits(&got.pixels), slice(&full, img.shape(), &ranges), "{name} ({way}) {ranges:?}");
            }
        }
    }
    let cfitsio = OpenOptions::new().direct_reads(false).open(path).expect("open");
    for &name in names {
        let want = cfitsio.image(format!("{name}_ASTROPY").as_str()).expect("astropy's").read_data(None).expect("read");
        match cfitsio.image(name).and_then(|img| img.read_data(None)) {
            Ok(got) => assert_eq!(pixel_bits(&got.pixels), pixel_bits(&want.pixels), "{name}: cfitsio"),
            Err(e) => assert!(refused.contains(&(name, e.hdu().unwrap_or(0))), "{name}: {e}"),
        }
    }
}

#[test]
fn layouts_of_older_writers_read_as_astropy_reads_them() {
    // cfitsio refuses two: the gzipped tile of an integer image, and the stored (offset) values
    // of an unsigned image in UNCOMPRESSED_DATA, which it converts to unsigned before the offset
    // ("datatype conversion overflow")
    let refused = [("GZIP_DATA_I16", 17), ("UNCOMPRESSED_U16_Q", 9)];
    reads_as_astropy_reads(&common::repo().join("tests/data/older_layouts.fits"), &OLDER_LAYOUTS, &refused);
}

#[test]
fn hcompress_and_plio_images_read_as_astropy_reads_them() {
    // tests/data/hcompress_plio.fits (tests/data/make_hcompress_plio.py): lossless and lossy
    // (SCALE, SMOOTH) HCOMPRESS_1 of 8-, 16- and 32-bit integers and of quantised floats, PLIO_1
    // of 8-, 16- and 32-bit integers
    let names = [
        "HC_I16",
        "HC_I16_ODD",
        "HC_U8",
        "HC_I32",
        "HC_I16_SCALE",
        "HC_I16_SMOOTH",
        "HC_I32_BAND",
        "HC_F32",
        "PLIO_U8",
        "PLIO_I16",
        "PLIO_I32",
    ];
    reads_as_astropy_reads(&common::repo().join("tests/data/hcompress_plio.fits"), &names, &[]);
}

#[test]
fn images_read_into_floats_here_as_cfitsio_converts_them() {
    // every image of the fixtures, plain and compressed (integers of every width, scaled, unsigned,
    // BLANK, quantised and lossless floats), into f32 and f64: scaled in double and rounded once
    let fixtures = ["tests/data/compressed.fits", "tests/data/hcompress_plio.fits", "tests/data/older_layouts.fits"];
    let mut checked = 0;
    for fixture in
        fixtures.iter().map(|f| common::repo().join(f)).chain([common::repo().join("examples/data/sample.fits")])
    {
        let ours = FitsFile::open(&fixture).expect("open");
        let theirs = OpenOptions::new().direct_reads(false).open(&fixture).expect("open");
        for hdu in 0..ours.hdu_count().expect("count") {
            let Ok(img) = ours.image(hdu) else { continue };
            // cfitsio misreads the offset values of an unsigned image in UNCOMPRESSED_DATA (as an
            // integer it refuses them; see layouts_of_older_writers_read_as_astropy_reads_them)
            let misread = fixture.ends_with("older_layouts.fits") && hdu == 9;
            if img.is_empty() || matches!(img.dtype(), Dtype::I64 | Dtype::U64) || misread {
                continue;
            }
            let cf = theirs.image(hdu).expect("image");
            let name = format!("{} HDU {hdu}", fixture.display());
            let (Ok(want32), Ok(want64)) = (cf.read::<f32>(), cf.read::<f64>()) else { continue };
            let got32 = img.read::<f32>().expect("f32");
            let got64 = img.read::<f64>().expect("f64");
            // cfitsio reads the infinities of a tile kept as floats beside COMPRESSED_DATA as NaN;
            // astropy and torchfits keep them
            let same = |a: f64, b: f64| a.to_bits() == b.to_bits() || b.is_nan() && (a.is_nan() || a.is_infinite());
            let same32 = got32.iter().zip(&want32).all(|(a, b)| same(f64::from(*a), f64::from(*b)));
            let same64 = got64.iter().zip(&want64).all(|(a, b)| same(*a, *b));
            assert!(same32 && got32.len() == want32.len(), "{name}: f32");
            assert!(same64 && got64.len() == want64.len(), "{name}: f64");
            checked += 1;
        }
    }
    assert!(checked >= 30, "{checked} images");
}

#[test]
fn compressed_images_read_into_other_integer_types_as_cfitsio_converts_them() {
    // every compressed image of the fixtures (every codec, integers of every width, unsigned,
    // BLANK, quantised and lossless floats), decoded here into each integer type
    let fixtures = [
        "tests/data/compressed.fits",
        "tests/data/hcompress_plio.fits",
        "tests/data/older_layouts.fits",
        "tests/data/quantized.fits",
    ];
    let (mut images, mut reads) = (0, 0);
    for fixture in fixtures.iter().map(|f| common::repo().join(f)) {
        let file = FitsFile::open(&fixture).expect("open");
        for hdu in 1..file.hdu_count().expect("count") {
            let info = file.hdu(hdu).expect("info");
            // cfitsio misreads the offset values of an unsigned image in UNCOMPRESSED_DATA
            let misread = fixture.ends_with("older_layouts.fits") && hdu == 9;
            if !info.compressed || misread || file.image(hdu).expect("image").is_empty() {
                continue;
            }
            let floats = file.image(hdu).expect("image").bitpix() < 0;
            reads += crate::direct::into_every_integer_as_cfitsio(&fixture, hdu, floats);
            images += 1;
        }
    }
    assert!(images >= 40 && reads >= 3 * images, "{images} images, {reads} reads");
}

#[test]
fn tiles_beside_compressed_data_that_cfitsio_would_misread_are_refused_on_every_path() {
    // tests/bad/make.py: an UNCOMPRESSED_DATA cell longer than its tile (cfitsio would write past
    // the tile's buffer), and empty COMPRESSED_DATA cells with no other column
    for name in ["compressed_uncompressed_data_too_long.fits", "compressed_empty_tiles.fits"] {
        let path = common::repo().join("tests/bad").join(name);
        for options in [OpenOptions::new(), OpenOptions::new().direct_reads(false)] {
            let read = options.open(&path).expect("open").image(1).and_then(|img| img.read_data(None));
            let err = read.expect_err(name);
            assert_eq!(err.kind(), ErrorKind::Decoding, "{name}: {err}");
            assert!(err.to_string().contains("tile 0"), "{name}: {err}");
        }
    }
}

#[test]
fn corrupt_or_truncated_rice_tiles_are_errors_not_crashes() {
    let dir = common::tempdir("rice-corrupt");
    let bytes = std::fs::read(common::compressed_fixture()).expect("read");
    let file = FitsFile::open(common::compressed_fixture()).expect("open");
    let n = file.hdu_count().expect("count");
    // every byte pattern below either decodes or is an error: never a panic, never a hang
    for (k, cut) in [bytes.len() / 3, bytes.len() / 2, bytes.len() - 3000].into_iter().enumerate() {
        let path = dir.join(format!("cut{k}.fits"));
        std::fs::write(&path, &bytes[..cut]).expect("write");
        let f = FitsFile::open(&path).expect("header of HDU 0");
        for hdu in 1..n {
            if let Ok(img) = f.image(hdu) {
                let _ = img.read_data(None);
            }
        }
    }
    let mut flipped = bytes.clone();
    for i in (2880 * 3..flipped.len()).step_by(97) {
        flipped[i] ^= 0xa5;
    }
    let path = dir.join("flipped.fits");
    std::fs::write(&path, &flipped).expect("write");
    if let Ok(f) = FitsFile::open(&path) {
        for hdu in 1..n {
            if let Ok(img) = f.image(hdu) {
                let _ = img.read_data(None);
            }
        }
    }
}

#[test]
fn sections_read_through_kept_tiles_equal_sections_decoded_each_time() {
    use torchfits::write::{Algorithm, Compression};
    let dir = common::tempdir("tile-memo");
    let ints: Vec<i16> = (0..200 * 150).map(|k| ((k * 7919) % 3001) as i16 - 1500).collect();
    let floats: Vec<f32> = (0..200 * 150).map(|k| ((k * 31) % 977) as f32 * 0.37 - 50.0).collect();
    let rice = || Compression::new(Algorithm::Rice).tile(&[32, 48]);
    let path = dir.join("kept.fits");
    let mut w = torchfits::WriteOptions::new().overwrite(true).create(&path).expect("create");
    w.image(&ints, &[150, 200]).compress(rice()).write().expect("ints");
    w.image(&floats, &[150, 200]).compress(rice()).write().expect("quantised floats");
    w.finish().expect("finish");
    let plain = FitsFile::open(&path).expect("open");
    let kept = OpenOptions::new().tile_memo(true).open(&path).expect("open with kept tiles");
    // overlapping sections, each read twice: the second read of a tile comes from the store
    let sections = [(0..40, 0..70), (20..90, 50..130), (100..150, 150..200), (0..150, 0..200), (25..26, 10..190)];
    for _ in 0..2 {
        for (ys, xs) in sections.clone() {
            let s = Section::new(vec![ys, xs]);
            for hdu in [1usize, 2] {
                let want: Vec<f64> = plain.image(hdu).expect("image").read_section(&s).expect("plain");
                let got: Vec<f64> = kept.image(hdu).expect("image").read_section(&s).expect("kept");
                assert_eq!(got, want, "HDU {hdu}, {s:?}");
            }
        }
    }
}
