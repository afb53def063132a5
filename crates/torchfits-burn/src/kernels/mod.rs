//! The CubeCL kernels of the device WCS and their launches: the one place of this crate with
//! `unsafe` (a launch trusts the kernel to stay inside the buffers it is given). The entry points
//! and launches are here; each projection family's inverse is a module of its own (`zenithal`,
//! `cylindrical`, `conic`), beside the SIP polynomials (`sip`) and the trigonometry (`trig`) they
//! share. The host side (parameters, fallbacks to wcslib) is the `wcs` module, which uses these.

// Indexing: the CubeCL kernels index device arrays by the launch's own point index,
// guarded by `ABSOLUTE_POS < len` (an out-of-range read on the device is the runtime's, not a Rust
// panic); the host side indexes the parameter block of fixed length `NPARAMS`.
#![allow(clippy::indexing_slicing)]
#![allow(unsafe_code)]

mod conic;
mod cylindrical;
mod sip;
mod trig;
mod zenithal;

use cubecl::prelude::*;
use sip::sip_polynomial;
use torchfits_format::{Error, ErrorKind, Result};
use trig::{k_atan2, k_cos, k_sin};

/// The kernel's mark for a point the host computes (offsets never exceed 360 degrees).
pub(crate) const HOST: f32 = 1.0e30;
/// The kernel's mark for a point outside the projection's domain (wcslib's invalid points).
pub(crate) const INVALID: f32 = -1.0e30;

/// Projection-plane to sky for the zenithal projections, in offsets from the reference point. `params`: CRPIX1,
/// CRPIX2, CD (4, row-major), sin and cos of the reference latitude, then the SIP `a` and `b`
/// coefficients (`n1 * n1` each, `a[p][q]` at `p * n1 + q`) when `n1 > 0`. `pix`: (x, y) pairs,
/// 0-based. `out`: (dlng, dlat) pairs, degrees.
#[cube(launch_unchecked)]
fn tan_offsets_kernel<F: Float>(pix: &[F], params: &[F], out: &mut [F], #[comptime] n1: usize, #[comptime] proj: u32) {
    let i = ABSOLUTE_POS;
    if 2 * i + 1 < pix.len() {
        let mut u = pix[2 * i] + F::new(1.0) - params[0];
        let mut v = pix[2 * i + 1] + F::new(1.0) - params[1];
        if comptime![n1 > 0] {
            // SIP: the distortion at (u, v), added to both
            let du = sip_polynomial::<F>(params, 8, u, v, n1);
            let dv = sip_polynomial::<F>(params, 8 + n1 * n1, u, v, n1);
            u += du;
            v += dv;
        }
        let d2r = F::new(core::f32::consts::PI / 180.0);
        let x0 = (params[2] * u + params[3] * v) * d2r;
        let y0 = (params[4] * u + params[5] * v) * d2r;
        // a zenithal projection's radius, in radians, as the gnomonic (TAN) one of the same
        // native latitude: the TAN formulas below then hold for all (k = 0: beyond what the
        // TAN plane reaches, left to the host)
        let r = F::sqrt(x0 * x0 + y0 * y0);
        let mut k = F::new(1.0);
        let mut valid = true;
        if comptime![proj == 1] {
            // SIN
            let q = F::new(1.0) - r * r;
            valid = q > F::new(1.0e-6);
            k = F::new(1.0) / F::sqrt(F::max(q, F::new(1.0e-6)));
        } else if comptime![proj == 2] {
            // ARC
            valid = r < F::new(1.5);
            if r > F::new(1.0e-7) {
                let a = F::min(r, F::new(1.5));
                k = k_sin::<F>(a, false) / k_cos::<F>(a, false) / r;
            }
        } else if comptime![proj == 3] {
            // STG
            let t = r * F::new(0.5);
            let q = F::new(1.0) - t * t;
            valid = q > F::new(1.0e-3);
            k = F::new(1.0) / F::max(q, F::new(1.0e-3));
        } else if comptime![proj == 4] {
            // ZEA
            let s2 = r * r * F::new(0.25);
            let q = F::new(1.0) - F::new(2.0) * s2;
            valid = q > F::new(1.0e-3);
            k = F::sqrt(F::new(1.0) - s2) / F::max(q, F::new(1.0e-3));
        }
        // more than 26 degrees from the reference point (TAN-plane radius 0.5), f32 loses what
        // 1e-4 degree needs (measured on lavapipe)
        valid = valid && r * k < F::new(0.5);
        let x = x0 * k;
        let y = y0 * k;
        let s = params[6];
        let c = params[7];
        // the gnomonic deprojection about (0, dec0), rearranged so that nothing cancels
        let dd = c - y * s;
        let dlng = k_atan2::<F>(x, dd, false);
        let rho = F::sqrt(x * x + dd * dd);
        let c_minus_rho = (y * s * (F::new(2.0) * c - y * s) - x * x) / (c + rho);
        let num = y * c * c + s * c_minus_rho;
        let den = rho * c + (s + y * c) * s;
        let dlat = k_atan2::<F>(num, den, false);
        if valid {
            out[2 * i] = dlng / d2r;
            out[2 * i + 1] = dlat / d2r;
        } else {
            // no NaN literal in WGSL: a marker no offset reaches
            out[2 * i] = F::new(HOST);
            out[2 * i + 1] = F::new(HOST);
        }
    }
}

/// The general kernel's projections (comptime `proj`), in [`native_kernel`]'s numbering.
pub(crate) mod proj {
    pub const TAN: u32 = 0;
    pub const SIN: u32 = 1;
    pub const ARC: u32 = 2;
    pub const STG: u32 = 3;
    pub const ZEA: u32 = 4;
    pub const AZP: u32 = 5;
    pub const SZP: u32 = 6;
    pub const ZPN: u32 = 7;
    pub const AIR: u32 = 8;
    pub const CYP: u32 = 9;
    pub const CEA: u32 = 10;
    pub const CAR: u32 = 11;
    pub const MER: u32 = 12;
    pub const SFL: u32 = 13;
    pub const PAR: u32 = 14;
    pub const MOL: u32 = 15;
    pub const AIT: u32 = 16;
    pub const COP: u32 = 17;
    pub const COE: u32 = 18;
    pub const COD: u32 = 19;
    pub const COO: u32 = 20;
    pub const BON: u32 = 21;
    pub const PCO: u32 = 22;
}

/// Offsets of [`native_kernel`]'s parameter block: the CD matrix with the longitude's row first
/// (4), the projection-plane offsets x0, y0 (2), the projection's constants (8), the rotation
/// (native longitude of the celestial pole in degrees, cos and sin of the pole's colatitude),
/// then the SIP `a` and `b` coefficients (`n1 * n1` each).
pub(crate) const N_CD: usize = 0;
pub(crate) const N_OFF: usize = 4;
pub(crate) const N_K: usize = 6;
pub(crate) const N_ROT: usize = 14;
pub(crate) const N_SIP: usize = 17;

/// A point on the native sphere as a projection's inverse leaves it: phi (degrees), the sine and
/// cosine of theta, or theta as an angle (degrees, `angle`) for the projections that give one;
/// `state` 0 valid, 1 invalid, 2 for the host; `check_phi`: phi is range-checked as wcslib does.
#[derive(CubeType)]
pub(crate) struct NativePoint<F: Float> {
    pub phi: F,
    pub st: F,
    pub ct: F,
    pub theta: F,
    pub state: u32,
    pub angle: bool,
    pub check_phi: bool,
}

#[cube]
impl<F: Float> NativePoint<F> {
    /// The pole, valid, nothing checked yet.
    pub fn start() -> NativePoint<F> {
        NativePoint::<F> {
            phi: F::new(0.0),
            st: F::new(1.0),
            ct: F::new(0.0),
            theta: F::new(0.0),
            state: 0u32,
            angle: false,
            check_phi: false,
        }
    }
}

/// The inverse of projection `proj` at the projection-plane point (xj, yj), by family.
#[cube]
fn native_point<F: Float>(
    xj: F,
    yj: F,
    params: &[F],
    poly: &[F],
    #[comptime] proj: u32,
    #[comptime] nz: usize,
    #[comptime] wide: bool,
) -> NativePoint<F> {
    if comptime![proj <= 8] {
        zenithal::zenithal::<F>(xj, yj, params, poly, proj, nz, wide)
    } else if comptime![proj <= 16] {
        cylindrical::cylindrical::<F>(xj, yj, params, proj, wide)
    } else {
        conic::conic::<F>(xj, yj, params, proj, wide)
    }
}

/// Pixel to sky for the celestial projections of wcslib's zenithal, cylindrical,
/// pseudo-cylindrical, conic and polyconic families (wcslib's formulas, in `F`): projection-plane
/// coordinates, the native spherical ones as a longitude and the sine and cosine of the latitude
/// (never through an angle near the pole, where f32 loses them), then the rotation to the
/// celestial sphere. `pix`: (u, v) pairs, the pixel minus CRPIX (1-based), or, for a grid
/// (`grid_w > 0`), the (u, v) of each cutout's first pixel, the others following row by row.
/// `poly`: ZPN's coefficients (`nz + 1`). `out`: (longitude minus the pole's celestial
/// longitude, latitude) pairs, degrees; [`HOST`] where the point is near one of the
/// projection's limits (or where `F` cannot hold it to 1e-4 degree), [`INVALID`] beyond them.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments, clippy::collapsible_if, unused_assignments)]
fn native_kernel<F: Float>(
    pix: &[F],
    params: &[F],
    poly: &[F],
    out: &mut [F],
    #[comptime] n1: usize,
    #[comptime] proj: u32,
    #[comptime] nz: usize,
    #[comptime] grid_w: usize,
    #[comptime] grid_h: usize,
    #[comptime] wide: bool,
) {
    let i = ABSOLUTE_POS;
    if 2 * i + 1 < out.len() {
        let mut u = F::new(0.0);
        let mut v = F::new(0.0);
        if comptime![grid_w > 0] {
            let per = comptime![grid_w * grid_h];
            let b = i / per;
            let rem = i % per;
            u = pix[2 * b] + F::cast_from(rem % grid_w);
            v = pix[2 * b + 1] + F::cast_from(rem / grid_w);
        } else {
            u = pix[2 * i];
            v = pix[2 * i + 1];
        }
        if comptime![n1 > 0] {
            let du = sip_polynomial::<F>(params, N_SIP, u, v, n1);
            let dv = sip_polynomial::<F>(params, N_SIP + n1 * n1, u, v, n1);
            u += du;
            v += dv;
        }
        let d2r = F::new(core::f32::consts::PI / 180.0);
        let r2d = F::new(180.0 / core::f32::consts::PI);
        let zero = F::new(0.0);
        let xj = params[N_CD] * u + params[N_CD + 1] * v + params[N_OFF];
        let yj = params[N_CD + 2] * u + params[N_CD + 3] * v + params[N_OFF + 1];
        // the native spherical coordinates, by projection family
        let mut p = native_point::<F>(xj, yj, params, poly, proj, nz, wide);
        // wcslib's range check of the native coordinates (bounds & 4)
        if p.check_phi && p.state == 0u32 {
            if F::abs(p.phi) > F::new(180.001) {
                p.state = 1u32;
            } else if F::abs(p.phi) > F::new(179.999) {
                p.state = 2u32;
            }
        }
        if p.angle {
            if p.state == 0u32 {
                if F::abs(p.theta) > F::new(90.001) {
                    p.state = 1u32;
                } else if F::abs(p.theta) > F::new(89.999) {
                    p.state = 2u32;
                }
            }
            p.st = k_sin::<F>(p.theta * d2r, wide);
            p.ct = k_cos::<F>(p.theta * d2r, wide);
        }
        // native to celestial (wcslib's sphx2s); the pole's celestial longitude is added on
        // the host
        let dphi = (p.phi - params[N_ROT]) * d2r;
        let c1 = params[N_ROT + 1];
        let s1 = params[N_ROT + 2];
        let cp = k_cos::<F>(dphi, wide);
        let x = p.st * s1 - p.ct * c1 * cp;
        let y = -p.ct * k_sin::<F>(dphi, wide);
        let z = p.st * c1 + p.ct * s1 * cp;
        let h = F::sqrt(x * x + y * y);
        let mut dlng = zero;
        if h > zero {
            dlng = k_atan2::<F>(y, x, wide) * r2d;
        }
        if p.state == 0u32 {
            out[2 * i] = dlng;
            out[2 * i + 1] = k_atan2::<F>(z, h, wide) * r2d;
        } else if p.state == 1u32 {
            out[2 * i] = F::new(-HOST);
            out[2 * i + 1] = F::new(-HOST);
        } else {
            out[2 * i] = F::new(HOST);
            out[2 * i + 1] = F::new(HOST);
        }
    }
}

/// Runs [`tan_offsets_kernel`] for projection `proj` (0 TAN, 1 SIN, 2 ARC, 3 STG, 4 ZEA) over
/// the (x, y) pairs of `pix`: the (dlng, dlat) pairs, degrees ([`HOST`] where the host must
/// compute).
pub(crate) fn tan_offsets(
    client: &cubecl::client::Client,
    pix: &[f32],
    params: &[f32],
    n1: usize,
    proj: u32,
) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(pix.len());
    for part in pix.chunks(2 * LAUNCH_POINTS) {
        out.extend(tan_offsets_once(client, part, params, n1, proj)?);
    }
    Ok(out)
}

/// Points per launch: a dispatch of at most 16384 cubes of 256 and buffers of at most 64 MiB
/// (wgpu's defaults allow 65535 cubes per dimension and 128 MiB per storage buffer).
pub(crate) const LAUNCH_POINTS: usize = 1 << 22;

fn tan_offsets_once(
    client: &cubecl::client::Client,
    pix: &[f32],
    params: &[f32],
    n1: usize,
    proj: u32,
) -> Result<Vec<f32>> {
    let n = pix.len() / 2;
    let block = 256usize;
    let cubes = u32::try_from(n.div_ceil(block)).map_err(|_| Error::new(ErrorKind::Parameter, "too many points"))?;
    if params.len() < 8 + 2 * n1 * n1 {
        return Err(Error::new(ErrorKind::Parameter, "the kernel's parameters are incomplete"));
    }
    let pin = client.create_from_slice(f32::as_bytes(pix));
    let par = client.create_from_slice(f32::as_bytes(params));
    let out = client.empty(std::mem::size_of_val(pix));
    // SAFETY: the kernel checks every point index against `pix.len()` (the length given for both
    // `pix` and `out`) and reads `params` only below 8 + 2 * n1 * n1 (checked above).
    unsafe {
        tan_offsets_kernel::launch_unchecked::<f32>(
            client,
            CubeCount::Static(cubes, 1, 1),
            CubeDim::new_1d(block as u32),
            BufferArg::from_raw_parts(pin, pix.len()),
            BufferArg::from_raw_parts(par, params.len()),
            BufferArg::from_raw_parts(out.clone(), pix.len()),
            n1,
            proj,
        )
    };
    let bytes = client.read_one_unchecked(out);
    Ok(f32::from_bytes(&bytes).to_vec())
}

/// What [`native`] computes.
#[derive(Clone, Copy)]
pub(crate) struct NativeLaunch<'a> {
    /// (u, v) pairs (points), or the (u, v) of each cutout's first pixel (grid).
    pub pix: &'a [f64],
    pub params: &'a [f64],
    pub poly: &'a [f64],
    pub n1: usize,
    pub proj: u32,
    pub nz: usize,
    /// The grid's width and height (0, 0: points).
    pub grid: (usize, usize),
}

/// Runs [`native_kernel`] in `F` (f32, or f64 where the device has it): the (longitude offset,
/// latitude) pairs, degrees, as f64 ([`HOST`] and [`INVALID`] marks as they are).
pub(crate) fn native<F: DeviceFloat>(client: &cubecl::client::Client, l: &NativeLaunch<'_>) -> Result<Vec<f64>> {
    let (w, h) = l.grid;
    let mut out = Vec::new();
    if w > 0 && w.saturating_mul(h) > LAUNCH_POINTS {
        // cutouts too large for one launch each: their pixels as points
        for c in l.pix.chunks_exact(2) {
            for rows in (0..h).collect::<Vec<_>>().chunks((LAUNCH_POINTS / w).max(1)) {
                let pix: Vec<f64> =
                    rows.iter().flat_map(|&r| (0..w).flat_map(move |q| [c[0] + q as f64, c[1] + r as f64])).collect();
                out.extend(native_once::<F>(client, &NativeLaunch { pix: &pix, grid: (0, 0), ..*l })?);
            }
        }
    } else {
        // whole cutouts (grid) or points per launch
        let per = if w > 0 { 2 * (LAUNCH_POINTS / (w * h).max(1)).max(1) } else { 2 * LAUNCH_POINTS };
        for part in l.pix.chunks(per) {
            out.extend(native_once::<F>(client, &NativeLaunch { pix: part, ..*l })?);
        }
    }
    Ok(out)
}

fn native_once<F: DeviceFloat>(client: &cubecl::client::Client, l: &NativeLaunch<'_>) -> Result<Vec<f64>> {
    let points = if l.grid.0 > 0 { (l.pix.len() / 2) * l.grid.0 * l.grid.1 } else { l.pix.len() / 2 };
    let block = 256usize;
    let cubes =
        u32::try_from(points.div_ceil(block)).map_err(|_| Error::new(ErrorKind::Parameter, "too many points"))?;
    if l.params.len() < N_SIP + 2 * l.n1 * l.n1 || l.poly.len() <= l.nz {
        return Err(Error::new(ErrorKind::Parameter, "the kernel's parameters are incomplete"));
    }
    if points == 0 {
        return Ok(Vec::new());
    }
    let cast = |v: &[f64]| -> Vec<F> { v.iter().map(|&x| F::of(x)).collect() };
    let (pix, params, poly) = (cast(l.pix), cast(l.params), cast(l.poly));
    let pin = client.create_from_slice(F::as_bytes(&pix));
    let par = client.create_from_slice(F::as_bytes(&params));
    let pol = client.create_from_slice(F::as_bytes(&poly));
    let out = client.empty(2 * points * std::mem::size_of::<F>());
    // SAFETY: every index the kernel computes is below 2 * points (checked against `out`'s
    // length, given as 2 * points) or, for a grid, below 2 * cutouts in `pix`; it reads `params`
    // below N_SIP + 2 * n1 * n1 and `poly` up to nz (both checked above).
    unsafe {
        native_kernel::launch_unchecked::<F>(
            client,
            CubeCount::Static(cubes, 1, 1),
            CubeDim::new_1d(block as u32),
            BufferArg::from_raw_parts(pin, pix.len()),
            BufferArg::from_raw_parts(par, params.len()),
            BufferArg::from_raw_parts(pol, poly.len()),
            BufferArg::from_raw_parts(out.clone(), 2 * points),
            l.n1,
            l.proj,
            l.nz,
            l.grid.0,
            l.grid.1,
            std::mem::size_of::<F>() == 8,
        )
    };
    let bytes = client.read_one_unchecked(out);
    Ok(F::from_bytes(&bytes).iter().map(|&v| v.wide()).collect())
}

/// The kernel's float types.
pub(crate) trait DeviceFloat: Float + CubeElement {
    fn of(v: f64) -> Self;
    fn wide(self) -> f64;
}

impl DeviceFloat for f32 {
    fn of(v: f64) -> f32 {
        v as f32
    }
    fn wide(self) -> f64 {
        f64::from(self)
    }
}

impl DeviceFloat for f64 {
    fn of(v: f64) -> f64 {
        v
    }
    fn wide(self) -> f64 {
        self
    }
}

#[cfg(all(test, feature = "wgpu"))]
mod tests {
    use super::trig::{k_acos, k_asin, k_atan};
    use super::*;

    #[cube(launch_unchecked)]
    fn trig_kernel<F: Float>(a: &[F], b: &[F], out: &mut [F]) {
        let i = ABSOLUTE_POS;
        if i < a.len() {
            out[6 * i] = k_sin::<F>(a[i], false);
            out[6 * i + 1] = k_cos::<F>(a[i], false);
            out[6 * i + 2] = k_atan2::<F>(a[i], b[i], false);
            out[6 * i + 3] = k_atan::<F>(a[i], false);
            out[6 * i + 4] = k_asin::<F>(b[i] / F::new(3.0), false);
            out[6 * i + 5] = k_acos::<F>(b[i] / F::new(3.0), false);
        }
    }

    /// The kernel's own f32 trigonometry on the device, over every quadrant, against the host's
    /// f64: within a few 1e-7 radian (the device's own `atan2` errs by 2e-5, relatively, on
    /// lavapipe).
    #[test]
    fn the_kernels_trigonometry_holds_f32_precision_on_the_device() {
        let client = cubecl::Device::Wgpu(Default::default()).client();
        let n = 100_000usize;
        let a: Vec<f32> = (0..n).map(|i| -7.0 + (i as f32) * 1.4e-4).collect();
        let b: Vec<f32> = (0..n).map(|i| -3.0 + ((i * 7919) % 1001) as f32 * 0.006).collect();
        let pa = client.create_from_slice(f32::as_bytes(&a));
        let pb = client.create_from_slice(f32::as_bytes(&b));
        let out = client.empty(6 * n * 4);
        // SAFETY: the kernel indexes below a.len() = b.len() = n and out below 6 n.
        unsafe {
            trig_kernel::launch_unchecked::<f32>(
                &client,
                CubeCount::Static(n.div_ceil(256) as u32, 1, 1),
                CubeDim::new_1d(256),
                BufferArg::from_raw_parts(pa, n),
                BufferArg::from_raw_parts(pb, n),
                BufferArg::from_raw_parts(out.clone(), 6 * n),
            )
        };
        let o = f32::from_bytes(&client.read_one_unchecked(out)).to_vec();
        let mut worst = [0f64; 6];
        for i in 0..n {
            let (x, y) = (f64::from(a[i]), f64::from(b[i]));
            let want = [x.sin(), x.cos(), x.atan2(y), x.atan(), (y / 3.0).asin(), (y / 3.0).acos()];
            for k in 0..6 {
                worst[k] = worst[k].max((f64::from(o[6 * i + k]) - want[k]).abs());
            }
        }
        for (name, w) in ["sin", "cos", "atan2", "atan", "asin", "acos"].iter().zip(worst) {
            assert!(w < 6e-7, "{name}: {w:e} rad");
        }
    }
}
