//! The direct (pread / mmap) path against cfitsio's own conversion: identical results for every
//! pixel type and scaling rule, for whole images, sections and reads split across threads.

use std::path::Path;

use torchfits::{Dtype, ErrorKind, FitsFile, OpenOptions, Pixel, Section};

use crate::common::{self, be, image, write};

/// Every way of opening: cfitsio only, direct pread (1 and 2 threads), direct mmap.
fn openers() -> Vec<(&'static str, OpenOptions)> {
    vec![
        ("pread", OpenOptions::new().threads(1)),
        ("pread-2-threads", OpenOptions::new().threads(2)),
        ("mmap", OpenOptions::new().mmap(true).threads(2)),
    ]
}

/// Reads `sections` of HDU 0 of `path` as `T` every way; each must equal the cfitsio read.
fn same_as_cfitsio<T: Pixel + PartialEq + std::fmt::Debug>(path: &std::path::Path, sections: &[Section]) {
    let reference = OpenOptions::new().direct_reads(false).open(path).expect("open");
    let reference = reference.image(0).expect("image");
    for (name, options) in openers() {
        let file = options.open(path).expect("open");
        let img = file.image(0).expect("image");
        for s in sections {
            let want: Vec<T> = reference.read_section(s).expect("cfitsio read");
            let got: Vec<T> = img.read_section(s).expect("direct read");
            // compare bit patterns, so that NaN == NaN and -0.0 != 0.0
            let bits = |v: &[T]| bytemuck::cast_slice::<T, u8>(v).to_vec();
            assert_eq!(bits(&got), bits(&want), "{name}: {} section {:?}", path.display(), s.ranges());
        }
    }
}

fn sections_for(shape: &[usize]) -> Vec<Section> {
    let full = Section::full(shape);
    let mut out = vec![full];
    let mid: Vec<std::ops::Range<usize>> = shape.iter().map(|&n| n / 4..(3 * n / 4).max(n / 4 + 1)).collect();
    out.push(Section::new(mid));
    let rows: Vec<std::ops::Range<usize>> =
        shape.iter().enumerate().map(|(k, &n)| if k == 0 { 1..n.min(3) } else { 0..n }).collect();
    out.push(Section::new(rows));
    let last: Vec<std::ops::Range<usize>> = shape.iter().map(|&n| n - 1..n).collect();
    out.push(Section::new(last));
    out
}

/// A test image: name, BITPIX, extra cards, big-endian data.
type Case = (&'static str, i32, Vec<(&'static str, &'static str)>, Vec<u8>);

#[test]
fn every_pixel_type_and_scaling_matches_cfitsio() {
    let dir = common::tempdir("direct");
    let shape = [13usize, 7, 9];
    let n: usize = shape.iter().product();
    let ints: Vec<i64> = common::pattern(&shape, -40000, 40000);
    let cases: Vec<Case> = vec![
        ("u8", 8, vec![], ints.iter().map(|&v| v as u8).collect()),
        ("i8", 8, vec![("BZERO", "-128")], ints.iter().map(|&v| v as u8).collect()),
        ("u8scaled", 8, vec![("BSCALE", "0.5"), ("BZERO", "3")], ints.iter().map(|&v| v as u8).collect()),
        ("u8blank", 8, vec![("BLANK", "7")], ints.iter().map(|&v| (v % 10) as u8).collect()),
        ("i16", 16, vec![], be(&ints.iter().map(|&v| v as i16).collect::<Vec<_>>(), i16::to_be_bytes)),
        (
            "u16",
            16,
            vec![("BZERO", "32768")],
            be(&ints.iter().map(|&v| v as i16).collect::<Vec<_>>(), i16::to_be_bytes),
        ),
        (
            "i16scaled",
            16,
            vec![("BSCALE", "0.01"), ("BZERO", "1000")],
            be(&ints.iter().map(|&v| v as i16).collect::<Vec<_>>(), i16::to_be_bytes),
        ),
        (
            "i16blank",
            16,
            vec![("BLANK", "-3")],
            be(&ints.iter().map(|&v| (v % 5) as i16).collect::<Vec<_>>(), i16::to_be_bytes),
        ),
        (
            "i16blank0",
            16,
            vec![("BLANK", "0")],
            be(&ints.iter().map(|&v| (v % 5) as i16).collect::<Vec<_>>(), i16::to_be_bytes),
        ),
        ("i32", 32, vec![], be(&ints.iter().map(|&v| (v * 50000) as i32).collect::<Vec<_>>(), i32::to_be_bytes)),
        (
            "u32",
            32,
            vec![("BZERO", "2147483648")],
            be(&ints.iter().map(|&v| (v * 50000) as i32).collect::<Vec<_>>(), i32::to_be_bytes),
        ),
        (
            "i32scaled",
            32,
            vec![("BSCALE", "1.5e-3"), ("BZERO", "-7.25"), ("BLANK", "100")],
            be(&ints.iter().map(|&v| (v % 300) as i32).collect::<Vec<_>>(), i32::to_be_bytes),
        ),
        ("i64", 64, vec![], be(&ints.iter().map(|&v| v << 40).collect::<Vec<_>>(), i64::to_be_bytes)),
        (
            "u64",
            64,
            vec![("BZERO", "9223372036854775808")],
            be(&ints.iter().map(|&v| v << 40).collect::<Vec<_>>(), i64::to_be_bytes),
        ),
        (
            "i64scaled",
            64,
            vec![("BSCALE", "2"), ("BLANK", "-4")],
            be(&ints.iter().map(|&v| v % 9).collect::<Vec<_>>(), i64::to_be_bytes),
        ),
        (
            "f32",
            -32,
            vec![],
            be(
                &ints.iter().map(|&v| if v % 11 == 0 { f32::NAN } else { v as f32 / 7.0 }).collect::<Vec<_>>(),
                f32::to_be_bytes,
            ),
        ),
        (
            "f32scaled",
            -32,
            vec![("BSCALE", "3"), ("BZERO", "0.5")],
            be(
                &ints.iter().map(|&v| if v % 11 == 0 { f32::NAN } else { v as f32 / 7.0 }).collect::<Vec<_>>(),
                f32::to_be_bytes,
            ),
        ),
        (
            "f64",
            -64,
            vec![("BLANK", "1")],
            be(&ints.iter().map(|&v| v as f64 / 3.0).collect::<Vec<_>>(), f64::to_be_bytes),
        ),
        (
            "f64scaled",
            -64,
            vec![("BZERO", "-1e10")],
            be(&ints.iter().map(|&v| v as f64 / 3.0).collect::<Vec<_>>(), f64::to_be_bytes),
        ),
    ];
    let sections = sections_for(&shape);
    for (name, bitpix, extra, data) in cases {
        assert_eq!(data.len(), n * (bitpix.unsigned_abs() as usize / 8), "{name}");
        let path = dir.join(format!("{name}.fits"));
        write(&path, &[image(true, bitpix, &shape, &extra, data)]);
        let dtype = FitsFile::open(&path).expect("open").image(0).expect("image").dtype();
        match dtype {
            torchfits::Dtype::U8 => same_as_cfitsio::<u8>(&path, &sections),
            torchfits::Dtype::I8 => same_as_cfitsio::<i8>(&path, &sections),
            torchfits::Dtype::I16 => same_as_cfitsio::<i16>(&path, &sections),
            torchfits::Dtype::U16 => same_as_cfitsio::<u16>(&path, &sections),
            torchfits::Dtype::I32 => same_as_cfitsio::<i32>(&path, &sections),
            torchfits::Dtype::U32 => same_as_cfitsio::<u32>(&path, &sections),
            torchfits::Dtype::I64 => same_as_cfitsio::<i64>(&path, &sections),
            torchfits::Dtype::U64 => same_as_cfitsio::<u64>(&path, &sections),
            torchfits::Dtype::F32 => same_as_cfitsio::<f32>(&path, &sections),
            torchfits::Dtype::F64 => same_as_cfitsio::<f64>(&path, &sections),
        }
    }
}

#[test]
fn large_reads_split_across_threads_match_cfitsio() {
    // 6 MiB of f32 and of scaled i16 -> f32: over the parallel threshold
    let dir = common::tempdir("direct-large");
    let shape = [1024usize, 1536];
    let ints = common::pattern(&shape, -30000, 30000);
    let f32s: Vec<f32> = ints.iter().map(|&v| v as f32 * 0.25).collect();
    let path = dir.join("f32.fits");
    write(&path, &[image(true, -32, &shape, &[], be(&f32s, f32::to_be_bytes))]);
    same_as_cfitsio::<f32>(&path, &sections_for(&shape));
    let i16s: Vec<i16> = ints.iter().map(|&v| v as i16).collect();
    let path = dir.join("scaled.fits");
    write(&path, &[image(true, 16, &shape, &[("BSCALE", "0.01"), ("BZERO", "1000")], be(&i16s, i16::to_be_bytes))]);
    same_as_cfitsio::<f32>(&path, &sections_for(&shape));
    // a band of whole rows and a wide section with many runs, both over the threshold
    let band = Section::new(vec![100..900, 0..1536]);
    let wide = Section::new(vec![0..1024, 1..1535]);
    same_as_cfitsio::<f32>(&path, &[band, wide]);
}

#[test]
fn a_truncated_file_is_an_error_on_every_path() {
    let dir = common::tempdir("direct-trunc");
    let path = dir.join("t.fits");
    let values: Vec<i16> = (0..20000).map(|i| i as i16).collect();
    write(&path, &[image(true, 16, &[100, 200], &[], be(&values, i16::to_be_bytes))]);
    let bytes = std::fs::read(&path).expect("read");
    std::fs::write(&path, &bytes[..2880 + 30000]).expect("truncate");
    for (name, options) in openers() {
        let file = options.open(&path).expect("header intact");
        let err = file.image(0).expect("image").read::<i16>().expect_err(name);
        assert_eq!(err.kind(), torchfits::ErrorKind::Decoding, "{name}: {err}");
        assert!(err.to_string().contains("truncated") && err.to_string().contains("HDU 0"), "{name}: {err}");
        // the rows that are there still read
        let first: Vec<i16> =
            file.image(0).expect("image").read_section(&Section::new(vec![0..10, 0..200])).expect(name);
        assert_eq!(first, values[..2000]);
    }
}

/// Reads HDU `hdu` of `path` into `T`, an integer type, here and through cfitsio. Where torchfits
/// reads it, the values are the ones cfitsio's conversion gives; where it refuses, with a
/// Parameter error, some value does not fit `T` (cfitsio clips it without a word) or is NaN.
/// A quantised floating-point image is checked against its values in double truncated instead:
/// cfitsio converts its integers into integers without the dither. Returns whether torchfits
/// read it.
fn into_integer_as_cfitsio<T: Pixel + PartialEq + std::fmt::Debug>(path: &Path, hdu: usize, quantised: bool) -> bool {
    let ours = FitsFile::open(path).expect("open");
    let theirs = OpenOptions::new().direct_reads(false).open(path).expect("open");
    let (img, cf) = (ours.image(hdu).expect("image"), theirs.image(hdu).expect("image"));
    let name = format!("{} HDU {hdu} into {}", path.display(), T::DTYPE);
    let (lo, hi) = range_of(T::DTYPE);
    let fits = |v: &f64| (lo - 0.49..=hi + 0.49).contains(v);
    match img.read::<T>() {
        // cfitsio does not decompress into 64-bit integers
        Ok(got) if quantised || cf.read::<T>().is_err() => {
            let values: Vec<f64> = img.read().expect("f64");
            let want: Vec<i128> = values.iter().map(|v| v.trunc() as i128).collect();
            assert_eq!(as_i128(&got), want, "{name}");
            true
        }
        Ok(got) => {
            let want: Vec<T> = cf.read().unwrap_or_else(|e| panic!("{name}: cfitsio: {e}"));
            assert_eq!(got, want, "{name}");
            true
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Parameter, "{name}: {e}");
            assert!(e.to_string().contains(&format!("HDU {hdu}")), "{name}: {e}");
            // 64-bit values are exact only as 64-bit integers
            let exact = img.read::<i64>().map(|v| as_i128(&v)).or_else(|_| img.read::<u64>().map(|v| as_i128(&v)));
            let misfit = match exact {
                Ok(values) if img.bitpix() == 64 => values.iter().any(|&v| !(lo as i128..=hi as i128).contains(&v)),
                _ => !img.read::<f64>().expect("f64").iter().all(fits),
            };
            assert!(misfit, "{name}: {e}");
            false
        }
    }
}

/// Integer pixels as i128.
fn as_i128<T: Pixel>(values: &[T]) -> Vec<i128> {
    let bytes: &[u8] = bytemuck::cast_slice(values);
    match T::DTYPE {
        Dtype::U8 => bytes.iter().map(|&v| i128::from(v)).collect(),
        Dtype::I8 => bytemuck::cast_slice::<u8, i8>(bytes).iter().map(|&v| i128::from(v)).collect(),
        Dtype::U16 => bytemuck::cast_slice::<u8, u16>(bytes).iter().map(|&v| i128::from(v)).collect(),
        Dtype::I16 => bytemuck::cast_slice::<u8, i16>(bytes).iter().map(|&v| i128::from(v)).collect(),
        Dtype::U32 => bytemuck::cast_slice::<u8, u32>(bytes).iter().map(|&v| i128::from(v)).collect(),
        Dtype::I32 => bytemuck::cast_slice::<u8, i32>(bytes).iter().map(|&v| i128::from(v)).collect(),
        Dtype::U64 => bytemuck::cast_slice::<u8, u64>(bytes).iter().map(|&v| i128::from(v)).collect(),
        Dtype::I64 => bytemuck::cast_slice::<u8, i64>(bytes).iter().map(|&v| i128::from(v)).collect(),
        Dtype::F32 | Dtype::F64 => Vec::new(),
    }
}

/// The range of an integer type, in double.
fn range_of(dtype: Dtype) -> (f64, f64) {
    match dtype {
        Dtype::U8 => (0.0, 255.0),
        Dtype::I8 => (-128.0, 127.0),
        Dtype::U16 => (0.0, 65535.0),
        Dtype::I16 => (-32768.0, 32767.0),
        Dtype::U32 => (0.0, f64::from(u32::MAX)),
        Dtype::I32 => (f64::from(i32::MIN), f64::from(i32::MAX)),
        Dtype::U64 => (0.0, u64::MAX as f64),
        Dtype::I64 => (i64::MIN as f64, i64::MAX as f64),
        Dtype::F32 | Dtype::F64 => (f64::NEG_INFINITY, f64::INFINITY),
    }
}

/// [`into_integer_as_cfitsio`] into every integer type; returns how many were read.
pub fn into_every_integer_as_cfitsio(path: &Path, hdu: usize, quantised: bool) -> usize {
    [
        into_integer_as_cfitsio::<u8>(path, hdu, quantised),
        into_integer_as_cfitsio::<i8>(path, hdu, quantised),
        into_integer_as_cfitsio::<u16>(path, hdu, quantised),
        into_integer_as_cfitsio::<i16>(path, hdu, quantised),
        into_integer_as_cfitsio::<u32>(path, hdu, quantised),
        into_integer_as_cfitsio::<i32>(path, hdu, quantised),
        into_integer_as_cfitsio::<u64>(path, hdu, quantised),
        into_integer_as_cfitsio::<i64>(path, hdu, quantised),
    ]
    .into_iter()
    .filter(|&read| read)
    .count()
}

#[test]
fn uncompressed_images_read_into_other_integer_types_as_cfitsio_converts_them() {
    // the images of every_pixel_type_and_scaling_matches_cfitsio, small enough values that most
    // types hold them, with 64-bit values that only an exact conversion keeps
    let dir = common::tempdir("direct-integers");
    let shape = [5usize, 7];
    let ints: Vec<i64> = common::pattern(&shape, -100, 100);
    let cases: Vec<Case> = vec![
        ("u8", 8, vec![], ints.iter().map(|&v| (v + 100) as u8).collect()),
        ("i8", 8, vec![("BZERO", "-128")], ints.iter().map(|&v| (v + 100) as u8).collect()),
        ("u8scaled", 8, vec![("BSCALE", "0.5"), ("BZERO", "3")], ints.iter().map(|&v| (v + 100) as u8).collect()),
        (
            "i16blank",
            16,
            vec![("BLANK", "-3")],
            be(&ints.iter().map(|&v| v as i16).collect::<Vec<_>>(), i16::to_be_bytes),
        ),
        (
            "u16",
            16,
            vec![("BZERO", "32768")],
            be(&ints.iter().map(|&v| v as i16).collect::<Vec<_>>(), i16::to_be_bytes),
        ),
        (
            "i32scaled",
            32,
            vec![("BSCALE", "-1.5"), ("BZERO", "7.25")],
            be(&ints.iter().map(|&v| v as i32).collect::<Vec<_>>(), i32::to_be_bytes),
        ),
        (
            "u32",
            32,
            vec![("BZERO", "2147483648")],
            be(&ints.iter().map(|&v| (v + 100) as i32 - i32::MAX).collect::<Vec<_>>(), i32::to_be_bytes),
        ),
        ("i64", 64, vec![], be(&ints, i64::to_be_bytes)),
        ("i64wide", 64, vec![], be(&ints.iter().map(|&v| (1 << 60) + v).collect::<Vec<_>>(), i64::to_be_bytes)),
        (
            "u64",
            64,
            vec![("BZERO", "9223372036854775808")],
            be(&ints.iter().map(|&v| v + 100 + i64::MIN).collect::<Vec<_>>(), i64::to_be_bytes),
        ),
        ("f32", -32, vec![], be(&ints.iter().map(|&v| v as f32 / 7.0).collect::<Vec<_>>(), f32::to_be_bytes)),
        (
            "f64scaled",
            -64,
            vec![("BZERO", "-1e3")],
            be(&ints.iter().map(|&v| v as f64 * 3.7).collect::<Vec<_>>(), f64::to_be_bytes),
        ),
    ];
    let mut read = 0;
    for (name, bitpix, extra, data) in cases {
        let path = dir.join(format!("{name}.fits"));
        write(&path, &[image(true, bitpix, &shape, &extra, data)]);
        read += into_every_integer_as_cfitsio(&path, 0, false);
    }
    // every case reads into some types and not others (u8 holds no negative value)
    assert!(read >= 40, "{read} reads");
    // the 64-bit values stay exact into i64 and u64, where a conversion in double would round them
    let wide: Vec<i64> =
        FitsFile::open(dir.join("i64wide.fits")).expect("open").image(0).expect("image").read().expect("i64");
    let as_u64: Vec<u64> =
        FitsFile::open(dir.join("i64wide.fits")).expect("open").image(0).expect("image").read().expect("u64");
    assert_eq!(wide.first(), Some(&((1i64 << 60) + ints[0])));
    assert!(wide.iter().zip(&as_u64).all(|(a, b)| *a as u64 == *b));
}
