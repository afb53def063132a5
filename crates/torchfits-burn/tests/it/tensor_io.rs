//! Images and table columns read straight into Burn tensors: every FITS pixel type as the values
//! the core reads, in the dtypes the `tensors` module documents, on the CPU backend and (feature
//! `wgpu`) on the device, uploaded once.

use crate::common::tmpdir;
use burn::tensor::{Bool, DType, Device, Int, Tensor};
use torchfits_burn::tensors::{read_column_tensor, read_tensor};
use torchfits_core::{ColumnData, ColumnValues, FitsFile, Section, TableBatch, WriteOptions};

const H: usize = 6;
const W: usize = 10;

/// A file with an image of every pixel type (HDU k + 1 for type k of `TYPES`), values spanning
/// the type (its extremes included), and a table of numeric, logical, vector and string columns.
fn fixture() -> std::path::PathBuf {
    let path = tmpdir("tensor-io").join("types.fits");
    let mut w = WriteOptions::new().overwrite(true).create(&path).expect("create");
    let n = H * W;
    macro_rules! image {
        ($t:ty, $lo:expr, $hi:expr) => {{
            let v: Vec<$t> = (0..n)
                .map(|i| {
                    if i == 0 {
                        $lo
                    } else if i == 1 {
                        $hi
                    } else {
                        (i as i64 * 3 - 40) as $t
                    }
                })
                .collect();
            w.image(&v, &[H, W]).write().expect("image");
        }};
    }
    w.image(&[0u8; 0], &[0]).write().expect("primary");
    image!(u8, 0, u8::MAX);
    image!(i8, i8::MIN, i8::MAX);
    image!(i16, i16::MIN, i16::MAX);
    image!(u16, 0, u16::MAX);
    image!(i32, i32::MIN, i32::MAX);
    image!(u32, 0, u32::MAX);
    image!(i64, i64::MIN, i64::MAX);
    image!(u64, 0, u64::MAX);
    image!(f32, f32::MIN_POSITIVE, 3.0e38);
    image!(f64, -1e300, 1e300);
    let t = TableBatch::new(vec![
        ColumnData::new("I16", ColumnValues::I16(vec![-7, 0, 32767])),
        ColumnData::new("I64", ColumnValues::I64(vec![i64::MIN, 5, i64::MAX])),
        ColumnData::new("F64", ColumnValues::F64(vec![0.5, -2.25, 1e200])),
        ColumnData::new("OK", ColumnValues::Bool(vec![true, false, true])),
        ColumnData::new("VEC", ColumnValues::F32((0..9).map(|i| i as f32 * 0.5).collect())).with_per_row(3),
        ColumnData::strings("NAME", &["a", "bb", "ccc"]),
    ])
    .expect("table");
    w.write_table(&t, "CAT", None).expect("table");
    w.finish().expect("finish");
    path
}

/// (HDU, Int dtype, Float dtype) per pixel type, as the module documents them on a device that
/// holds every type.
const TYPES: [(usize, DType, DType); 10] = [
    (1, DType::U8, DType::F32),
    (2, DType::I8, DType::F32),
    (3, DType::I16, DType::F32),
    (4, DType::U16, DType::F32),
    (5, DType::I32, DType::F64),
    (6, DType::U32, DType::F64),
    (7, DType::I64, DType::F64),
    (8, DType::U64, DType::F64),
    (9, DType::F32, DType::F32),
    (10, DType::F64, DType::F64),
];

fn check_images(device: &Device) {
    let path = fixture();
    let file = FitsFile::open(&path).expect("open");
    for (hdu, int, float) in TYPES {
        let image = file.image(hdu).expect("image");
        let want: Vec<f64> = image.read::<f64>().expect("f64");
        let t: Tensor<2> = read_tensor(&file, hdu, None, device).expect("float");
        assert_eq!(t.dims(), [H, W]);
        let want_float = if device.supports_dtype(float) { float } else { DType::F32 };
        assert_eq!(t.dtype(), want_float, "HDU {hdu}");
        let got: Vec<f64> = t.into_data().iter::<f64>().collect();
        for (g, w) in got.iter().zip(&want) {
            let w = if want_float == DType::F32 { f64::from(*w as f32) } else { *w };
            assert_eq!(g.to_bits(), w.to_bits(), "HDU {hdu}: {g} vs {w}");
        }
        if int == DType::F32 || int == DType::F64 {
            let e = read_tensor::<2, Int>(&file, hdu, None, device).expect_err("a float image as Int");
            assert!(e.to_string().contains(&path.display().to_string()) && e.to_string().contains("Float"), "{e}");
            continue;
        }
        let want: Vec<i128> = match int {
            DType::U64 => image.read::<u64>().expect("u64").iter().map(|&v| i128::from(v)).collect(),
            _ => image.read::<i64>().expect("i64").iter().map(|&v| i128::from(v)).collect(),
        };
        match read_tensor::<2, Int>(&file, hdu, None, device) {
            Ok(t) => {
                assert!(t.dtype() == int || !device.supports_dtype(int), "HDU {hdu}: {:?}", t.dtype());
                let data = t.into_data();
                let got: Vec<i128> = match data.dtype() {
                    DType::U64 => data.iter::<u64>().map(i128::from).collect(),
                    _ => data.iter::<i64>().map(i128::from).collect(),
                };
                assert_eq!(got, want, "HDU {hdu}");
            }
            // a device that holds the type neither as it is nor widened
            Err(e) => assert!(!device.supports_dtype(int) && e.to_string().contains("holds no integer type"), "{e}"),
        }
    }
    // a section, and the dimensions checked
    let part: Tensor<2, Int> = read_tensor(&file, 3, Some(&Section::new(vec![2..4, 5..9])), device).expect("section");
    assert_eq!(part.dims(), [2, 4]);
    let whole: Vec<i64> = file.image(3).expect("image").read::<i64>().expect("i16");
    let got: Vec<i64> = part.into_data().iter::<i64>().collect();
    assert_eq!(got, [25, 26, 27, 28, 35, 36, 37, 38].map(|i| whole[i]));
    let e = read_tensor::<3, burn::tensor::Float>(&file, 3, None, device).expect_err("3 dimensions of a 2-D image");
    assert!(e.to_string().contains("HDU 3") || e.to_string().contains("hdu 3") || e.to_string().contains("[3]"), "{e}");
}

fn check_columns(device: &Device) {
    let path = fixture();
    let file = FitsFile::open(&path).expect("open");
    let i16s: Tensor<1, Int> = read_column_tensor(&file, "CAT", "I16", None, device).expect("i16");
    assert_eq!(i16s.into_data().iter::<i64>().collect::<Vec<_>>(), [-7, 0, 32767]);
    if device.supports_dtype(DType::I64) {
        let i64s: Tensor<1, Int> = read_column_tensor(&file, "CAT", "I64", None, device).expect("i64");
        assert_eq!(i64s.into_data().iter::<i64>().collect::<Vec<_>>(), [i64::MIN, 5, i64::MAX]);
    }
    let f: Tensor<1> = read_column_tensor(&file, "CAT", "F64", Some(1..3), device).expect("f64");
    assert_eq!(f.dims(), [2]);
    let ok: Tensor<1, Bool> = read_column_tensor(&file, "CAT", "OK", None, device).expect("bool");
    assert_eq!(ok.into_data().iter::<bool>().collect::<Vec<_>>(), [true, false, true]);
    let v: Tensor<2> = read_column_tensor(&file, "CAT", "VEC", None, device).expect("vector");
    assert_eq!(v.dims(), [3, 3]);
    assert_eq!(v.into_data().iter::<f32>().collect::<Vec<_>>(), (0..9).map(|i| i as f32 * 0.5).collect::<Vec<_>>());
    let e = read_column_tensor::<1, burn::tensor::Float>(&file, "CAT", "NAME", None, device).expect_err("strings");
    assert!(e.to_string().contains("NAME") && e.to_string().contains(&path.display().to_string()), "{e}");
    let e = read_column_tensor::<1, Bool>(&file, "CAT", "I16", None, device).expect_err("not logical");
    assert!(e.to_string().contains("Bool"), "{e}");
}

#[test]
fn every_pixel_type_reads_into_tensors_on_the_cpu() {
    check_images(&Device::flex());
    check_images(&Device::flex().autodiff());
}

#[test]
fn table_columns_read_into_tensors_on_the_cpu() {
    check_columns(&Device::flex());
}

#[cfg(feature = "wgpu")]
fn wgpu() -> Option<Device> {
    match std::panic::catch_unwind(|| {
        let d = Device::wgpu(Default::default());
        let _ = Tensor::<1>::from_floats([1.0], &d).into_data();
        d
    }) {
        Ok(d) => Some(d),
        Err(_) if std::env::var_os("CI").is_none() => None,
        Err(_) => panic!("no wgpu adapter (scripts/setup.sh --test installs Mesa's lavapipe)"),
    }
}

#[cfg(feature = "wgpu")]
#[test]
fn every_pixel_type_reads_into_tensors_on_wgpu_in_one_upload() {
    let Some(device) = wgpu() else { return };
    check_images(&device);
    check_columns(&device);
    let file = FitsFile::open(fixture()).expect("open");
    let before = torchfits_burn::Transfers::now();
    let t: Tensor<2> = read_tensor(&file, 9, None, &device).expect("f32");
    let moved = torchfits_burn::Transfers::now().since(before);
    assert_eq!((moved.uploads, moved.bytes_up, moved.bytes_down), (1, (H * W * 4) as u64, 0));
    assert_eq!(t.device(), device);
}
