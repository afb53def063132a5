//! A small survey for the dataset tests: two 128x128 images with a TAN WCS (pixel values encode
//! their position: image k, pixel (x, y) holds 1000 k + y + x / 1000) and a catalog of positions
//! on them, at their edges and on neither.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use torchfits_core::table::{ColumnData, ColumnValues, TableBatch};
use torchfits_core::{Header, Value, Wcs, WriteOptions};

pub const N: usize = 128;
pub const SCALE: f64 = 1.0 / 3600.0;

pub fn crval(k: usize) -> [f64; 2] {
    [150.0 + k as f64 * 0.2, 2.0]
}

pub fn header(k: usize) -> Header {
    let mut h = Header::new();
    for (key, v) in [
        ("CTYPE1", Value::Str("RA---TAN".into())),
        ("CTYPE2", Value::Str("DEC--TAN".into())),
        ("CRPIX1", Value::Float(64.5)),
        ("CRPIX2", Value::Float(64.5)),
        ("CRVAL1", Value::Float(crval(k)[0])),
        ("CRVAL2", Value::Float(crval(k)[1])),
        ("CDELT1", Value::Float(-SCALE)),
        ("CDELT2", Value::Float(SCALE)),
    ] {
        h.set(key, v, None).expect("set");
    }
    h
}

pub fn value(k: usize, x: usize, y: usize) -> f32 {
    (1000 * k + y) as f32 + x as f32 / 1000.0
}

/// Writes the survey into `dir`: (catalog, images, the catalog's (image, x, y) per row, None
/// for rows on no image).
/// Where each catalog row lies: (image, x, y), or None.
pub type Truth = Vec<Option<(usize, f64, f64)>>;

pub fn survey(dir: &Path) -> (PathBuf, Vec<PathBuf>, Truth) {
    std::fs::create_dir_all(dir).expect("dir");
    let mut images = Vec::new();
    for k in 0..2 {
        let pixels: Vec<f32> = (0..N * N).map(|i| value(k, i % N, i / N)).collect();
        let path = dir.join(format!("img{k}.fits"));
        let mut w = WriteOptions::new().overwrite(true).create(&path).expect("create");
        w.image(&pixels, &[N, N]).header(&header(k)).write().expect("image");
        w.finish().expect("finish");
        images.push(path);
    }
    // positions: inside, near each edge, a corner, and off both images
    let spots: [(usize, f64, f64); 8] = [
        (0, 40.2, 50.7),
        (0, 2.0, 64.0),
        (0, 126.4, 3.3),
        (1, 64.0, 64.0),
        (1, 100.0, 127.2),
        (1, 0.0, 0.0),
        (0, 90.0, 20.0),
        (1, 10.3, 99.2),
    ];
    let mut ra = Vec::new();
    let mut dec = Vec::new();
    let mut label = Vec::new();
    let mut truth = Vec::new();
    for (i, &(k, x, y)) in spots.iter().enumerate() {
        let wcs = Wcs::from_header(&header(k)).expect("wcs");
        let mut w = [0.0; 2];
        wcs.pixel_to_world(&[x, y], &mut w).expect("p2w");
        ra.push(w[0]);
        dec.push(w[1]);
        label.push((i % 2) as i32);
        truth.push(Some((k, x, y)));
    }
    ra.push(10.0);
    dec.push(-40.0);
    label.push(1);
    truth.push(None);
    let catalog = dir.join("catalog.fits");
    let t = TableBatch::new(vec![
        ColumnData::new("RA", ColumnValues::F64(ra)),
        ColumnData::new("DEC", ColumnValues::F64(dec)),
        ColumnData::new("LABEL", ColumnValues::I32(label)),
    ])
    .expect("table");
    let mut w = WriteOptions::new().overwrite(true).create(&catalog).expect("create");
    w.write_table(&t, "CATALOG", None).expect("table");
    w.finish().expect("finish");
    (catalog, images, truth)
}

/// A fresh directory under the target directory.
pub fn tmpdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp");
    dir
}
