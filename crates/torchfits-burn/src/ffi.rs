//! The kernels and their launches: the one place of this crate with `unsafe` (a launch trusts
//! the kernel to stay inside the buffers it is given).
#![allow(unsafe_code)]

use cubecl::prelude::*;
use torchfits_core::{Error, ErrorKind, Result};

/// The kernel's mark for a point the host computes (offsets never exceed 360 degrees).
pub(crate) const HOST: f32 = 1.0e30;

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
            let mut du = F::new(0.0);
            let mut dv = F::new(0.0);
            let mut up = F::new(1.0);
            #[unroll]
            for p in 0..n1 {
                let mut vq = F::new(1.0);
                #[unroll]
                for q in 0..n1 {
                    du += params[8 + p * n1 + q] * up * vq;
                    dv += params[8 + n1 * n1 + p * n1 + q] * up * vq;
                    vq *= v;
                }
                up *= u;
            }
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
                k = F::tan(F::min(r, F::new(1.5))) / r;
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
        let dlng = F::atan2(x, dd);
        let rho = F::sqrt(x * x + dd * dd);
        let c_minus_rho = (y * s * (F::new(2.0) * c - y * s) - x * x) / (c + rho);
        let num = y * c * c + s * c_minus_rho;
        let den = rho * c + (s + y * c) * s;
        let dlat = F::atan2(num, den);
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
