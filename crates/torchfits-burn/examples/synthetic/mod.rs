//! The synthetic survey the examples train on: images of sky noise, point sources and extended
//! galaxies with a TAN WCS, and a catalog of the sources.

use std::path::{Path, PathBuf};

use torchfits_core::table::{ColumnData, ColumnValues, TableBatch};
use torchfits_core::write::{Algorithm, Compression};
use torchfits_core::{Header, Value, WriteOptions};

/// splitmix64: the same numbers on every machine.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    pub fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Writes 8 images with a TAN WCS (sky noise, point sources of class 0 and extended galaxies of
/// class 1), tile-compressed (GZIP, in HDU 1) if `compress`, and a FITS catalog of the sources
/// (RA, DEC, LABEL, and FLUX: each source's total flux), plus a few positions on no image.
pub fn survey(dir: &Path, seed: u64, compress: bool) -> Result<(PathBuf, Vec<PathBuf>), Box<dyn std::error::Error>> {
    const N: usize = 1024;
    const SOURCES: usize = 750;
    const FIELDS: usize = 8;
    let scale = 0.25 / 3600.0; // degrees per pixel
    let mut rng = Rng(seed);
    let (mut ra, mut dec, mut label, mut fluxes) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut paths = Vec::new();
    for k in 0..FIELDS {
        let crval = [150.0 + (k % 4) as f64 * 0.08, 2.0 + (k / 4) as f64 * 0.08];
        let mut img = vec![0f32; N * N];
        for p in img.iter_mut() {
            *p = rng.normal() as f32;
        }
        for _ in 0..SOURCES {
            let (x, y) = (rng.uniform() * (N as f64 + 20.0) - 10.0, rng.uniform() * (N as f64 + 20.0) - 10.0);
            let class = (rng.next() % 2) as i64;
            let flux = 150.0 + rng.uniform() * 600.0;
            let (sa, sb, th) = if class == 0 {
                (1.3, 1.3, 0.0)
            } else {
                let a = 2.6 + rng.uniform() * 1.8;
                (a, a * (0.45 + 0.55 * rng.uniform()), rng.uniform() * std::f64::consts::PI)
            };
            let norm = flux / (2.0 * std::f64::consts::PI * sa * sb);
            let (c, s) = (th.cos(), th.sin());
            let r = (5.0 * sa) as i64;
            for yy in (y as i64 - r).max(0)..(y as i64 + r).min(N as i64) {
                for xx in (x as i64 - r).max(0)..(x as i64 + r).min(N as i64) {
                    let (dx, dy) = (xx as f64 - x, yy as f64 - y);
                    let (u, v) = (c * dx + s * dy, -s * dx + c * dy);
                    img[yy as usize * N + xx as usize] +=
                        (norm * (-0.5 * (u * u / (sa * sa) + v * v / (sb * sb))).exp()) as f32;
                }
            }
            // the position through the same TAN WCS as the header (x, y 0-based)
            let (xi, eta) = ((x + 1.0 - (N as f64 / 2.0 + 0.5)) * -scale, (y + 1.0 - (N as f64 / 2.0 + 0.5)) * scale);
            let (a, d) = tan_inverse(crval, xi, eta);
            ra.push(a);
            dec.push(d);
            label.push(class as i32);
            fluxes.push(flux);
        }
        let mut h = Header::new();
        for (key, v) in [
            ("CTYPE1", Value::Str("RA---TAN".into())),
            ("CTYPE2", Value::Str("DEC--TAN".into())),
            ("CRPIX1", Value::Float(N as f64 / 2.0 + 0.5)),
            ("CRPIX2", Value::Float(N as f64 / 2.0 + 0.5)),
            ("CRVAL1", Value::Float(crval[0])),
            ("CRVAL2", Value::Float(crval[1])),
            ("CDELT1", Value::Float(-scale)),
            ("CDELT2", Value::Float(scale)),
            ("BUNIT", Value::Str("adu".into())),
        ] {
            h.set(key, v, None)?;
        }
        let path = dir.join(format!("field{k}.fits"));
        let mut w = WriteOptions::new().overwrite(true).create(&path)?;
        let image = w.image(&img, &[N, N]).header(&h);
        match compress {
            true => image.compress(Compression::new(Algorithm::Gzip1)).write()?,
            false => image.write()?,
        }
        w.finish()?;
        paths.push(path);
    }
    // positions on no image (the dataset reports them)
    for i in 0..5 {
        ra.push(10.0 + i as f64);
        dec.push(-40.0);
        label.push(0);
        fluxes.push(0.0);
    }
    let catalog = dir.join("catalog.fits");
    let table = TableBatch::new(vec![
        ColumnData::new("RA", ColumnValues::F64(ra)),
        ColumnData::new("DEC", ColumnValues::F64(dec)),
        ColumnData::new("LABEL", ColumnValues::I32(label)),
        ColumnData::new("FLUX", ColumnValues::F64(fluxes)),
    ])?;
    let mut w = WriteOptions::new().overwrite(true).create(&catalog)?;
    w.write_table(&table, "CATALOG", None)?;
    w.finish()?;
    Ok((catalog, paths))
}

/// The gnomonic projection's inverse about `crval` (degrees), for offsets (xi, eta) in degrees.
fn tan_inverse(crval: [f64; 2], xi: f64, eta: f64) -> (f64, f64) {
    let (a0, d0) = (crval[0].to_radians(), crval[1].to_radians());
    let (x, y) = (xi.to_radians(), eta.to_radians());
    let den = d0.cos() - y * d0.sin();
    let a = a0 + x.atan2(den);
    let d = (d0.sin() + y * d0.cos()).atan2((x * x + den * den).sqrt());
    (a.to_degrees().rem_euclid(360.0), d.to_degrees())
}
