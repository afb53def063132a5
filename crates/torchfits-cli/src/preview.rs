//! Quick-look rendering of an image as an 8-bit grayscale PNG, with the stretches astronomers
//! expect from ds9 and fits2bitmap: IRAF's zscale, or an asinh stretch.

// Indexing: the sorted sample is non-empty (an empty image is refused before), and
// rows are cut from the image's own shape.
#![allow(clippy::indexing_slicing)]

use std::fs::File;
use std::io::BufWriter;
use std::path::Path;

use torchfits_core::{Error, Result};

/// How pixel values map to gray levels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Stretch {
    /// IRAF's zscale interval (contrast 0.25), linear in between.
    #[default]
    ZScale,
    /// asinh stretch (`a = 0.1`) over the 0.25-99.75 percentile interval.
    Asinh,
    /// Linear between the finite minimum and maximum.
    Linear,
}

impl std::str::FromStr for Stretch {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "zscale" => Ok(Stretch::ZScale),
            "asinh" => Ok(Stretch::Asinh),
            "linear" | "minmax" => Ok(Stretch::Linear),
            _ => Err(Error::parameter(format!("unknown stretch {s:?} (zscale, asinh or linear)"))),
        }
    }
}

/// IRAF's zscale interval of `values` (non-finite values ignored), as astropy's `ZScaleInterval`
/// computes it: at most 1000 evenly strided samples, a line fitted to the sorted samples with
/// 2.5-sigma rejection (5 iterations, rejected points grown by 1%), slope divided by the contrast
/// 0.25. Returns `(lo, hi)`.
pub fn zscale(values: &[f64]) -> (f64, f64) {
    const SAMPLES: usize = 1000;
    const CONTRAST: f64 = 0.25;
    const KREJ: f64 = 2.5;
    let finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    let stride = (finite.len() / SAMPLES).max(1);
    let mut s: Vec<f64> = finite.iter().step_by(stride).take(SAMPLES).copied().collect();
    if s.is_empty() {
        return (0.0, 1.0);
    }
    s.sort_by(|a, b| a.total_cmp(b));
    let npix = s.len();
    let (mut lo, mut hi) = (s[0], s[npix - 1]);
    let minpix = 5.max(npix / 2);
    let ngrow = 1.max(npix / 100);
    let mut bad = vec![false; npix];
    let mut ngood = npix;
    let mut last_ngood = npix + 1;
    let mut slope = 0.0;
    for _ in 0..5 {
        if ngood >= last_ngood || ngood < minpix {
            break;
        }
        // weighted least squares line through (i, s[i]) for good points
        let (mut n, mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (i, &v) in s.iter().enumerate() {
            if !bad[i] {
                let x = i as f64;
                n += 1.0;
                sx += x;
                sy += v;
                sxx += x * x;
                sxy += x * v;
            }
        }
        let den = n * sxx - sx * sx;
        if den == 0.0 {
            break;
        }
        slope = (n * sxy - sx * sy) / den;
        let icpt = (sy - slope * sx) / n;
        let flat: Vec<f64> = s.iter().enumerate().map(|(i, &v)| v - (icpt + slope * i as f64)).collect();
        let good: Vec<f64> = flat.iter().zip(&bad).filter(|(_, b)| !**b).map(|(f, _)| *f).collect();
        let mean = good.iter().sum::<f64>() / good.len() as f64;
        let sd = (good.iter().map(|f| (f - mean).powi(2)).sum::<f64>() / good.len() as f64).sqrt();
        let thr = KREJ * sd;
        let reject: Vec<bool> = flat.iter().map(|f| *f < -thr || *f > thr).collect();
        // grow rejected points by ngrow (as astropy's convolution does)
        let mut grown = bad.clone();
        for (i, r) in reject.iter().enumerate() {
            if *r || bad[i] {
                let a = i.saturating_sub(ngrow / 2);
                let b = (i + ngrow - ngrow / 2).min(npix);
                grown[a..b].iter_mut().for_each(|g| *g = true);
            }
        }
        bad = grown;
        last_ngood = ngood;
        ngood = bad.iter().filter(|b| !**b).count();
    }
    if ngood >= minpix {
        let slope = slope / CONTRAST;
        let center = (npix - 1) / 2;
        let median = if npix % 2 == 1 { s[npix / 2] } else { 0.5 * (s[npix / 2 - 1] + s[npix / 2]) };
        lo = lo.max(median - (center as f64 - 1.0) * slope);
        hi = hi.min(median + (npix - center) as f64 * slope);
    }
    (lo, hi)
}

fn percentile_interval(values: &[f64], lower: f64, upper: f64) -> (f64, f64) {
    let mut s: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if s.is_empty() {
        return (0.0, 1.0);
    }
    s.sort_by(|a, b| a.total_cmp(b));
    let at = |p: f64| s[((p / 100.0) * (s.len() - 1) as f64).round() as usize];
    (at(lower), at(upper))
}

/// Maps a 2-D image (`height` rows of `width` values, row 0 first as stored) to 8-bit gray levels,
/// flipped so that row 0 is at the bottom, as ds9 shows FITS images. NaN is black.
pub fn render(values: &[f64], height: usize, width: usize, stretch: Stretch) -> Result<Vec<u8>> {
    if values.len() != height.saturating_mul(width) {
        return Err(Error::parameter("preview: value count does not match height x width"));
    }
    if height == 0 || width == 0 {
        return Err(Error::parameter(format!("the image is empty ({height} x {width} pixels): nothing to preview")));
    }
    let (lo, hi) = match stretch {
        Stretch::ZScale => zscale(values),
        Stretch::Asinh => percentile_interval(values, 0.25, 99.75),
        Stretch::Linear => percentile_interval(values, 0.0, 100.0),
    };
    let span = if hi > lo { hi - lo } else { 1.0 };
    let a = 0.1f64;
    let norm = (1.0 / a).asinh();
    let level = |v: f64| -> u8 {
        if !v.is_finite() {
            return 0;
        }
        let x = ((v - lo) / span).clamp(0.0, 1.0);
        let y = if stretch == Stretch::Asinh { (x / a).asinh() / norm } else { x };
        (y * 255.0).round() as u8
    };
    let mut out = Vec::with_capacity(values.len());
    for row in (0..height).rev() {
        out.extend(values[row * width..(row + 1) * width].iter().map(|&v| level(v)));
    }
    Ok(out)
}

/// Writes 8-bit gray levels (`height` rows of `width`) as a PNG file.
pub fn write_png(path: &Path, gray: &[u8], height: usize, width: usize) -> Result<()> {
    let io = |e: std::io::Error| Error::io(e, "cannot write the PNG").in_file(path);
    let (w, h) = (u32::try_from(width), u32::try_from(height));
    let (Ok(w), Ok(h)) = (w, h) else {
        return Err(Error::parameter("image too large for a PNG").in_file(path));
    };
    let file = File::create(path).map_err(io)?;
    let mut enc = png::Encoder::new(BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer =
        enc.write_header().map_err(|e| Error::io(std::io::Error::other(e), "cannot write the PNG").in_file(path))?;
    writer
        .write_image_data(gray)
        .map_err(|e| Error::io(std::io::Error::other(e), "cannot write the PNG").in_file(path))?;
    writer.finish().map_err(|e| Error::io(std::io::Error::other(e), "cannot write the PNG").in_file(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zscale_matches_astropy() {
        // reference values from astropy.visualization.ZScaleInterval().get_limits on the same data
        let mut v: Vec<f64> = (0..10_000).map(|i| 100.0 + (i % 7) as f64).collect();
        v[17] = 1e9;
        v[4000] = -1e9;
        v[5000] = f64::NAN;
        assert_eq!(zscale(&v), (100.0, 106.0));
        let w: Vec<f64> = (0..5000).map(|i| (i as f64 * 0.37).sin() * 50.0 + i as f64 * 0.01).collect();
        let (lo, hi) = zscale(&w);
        assert!((lo - -49.42762941019946).abs() < 1e-9 && (hi - 99.72187586970779).abs() < 1e-9, "{lo} {hi}");
    }

    #[test]
    fn render_flips_rows_and_blackens_nan() {
        let v = [0.0, 0.0, 10.0, f64::NAN];
        let g = render(&v, 2, 2, Stretch::Linear).expect("renders");
        assert_eq!(g, vec![255, 0, 0, 0]);
    }
}
