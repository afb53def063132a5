//! The kernels and their launches: the one place of this crate with `unsafe` (a launch trusts
//! the kernel to stay inside the buffers it is given).

// Indexing: the CubeCL kernels index device arrays by the launch's own point index,
// guarded by `ABSOLUTE_POS < len` (an out-of-range read on the device is the runtime's, not a Rust
// panic); the host side indexes the parameter block of fixed length `NPARAMS`.
#![allow(clippy::indexing_slicing)]
#![allow(unsafe_code)]

use cubecl::prelude::*;
use torchfits_core::{Error, ErrorKind, Result};

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

/// One SIP polynomial at (u, v): `sum over p, q < n1 of c[p][q] u^p v^q`, its coefficients
/// `c[p][q]` at `params[base + p * n1 + q]` (the `A` polynomial gives the u distortion, `B` the v
/// one). The loops unroll at compile time.
#[cube]
fn sip_polynomial<F: Float>(params: &[F], base: usize, u: F, v: F, #[comptime] n1: usize) -> F {
    let mut sum = F::new(0.0);
    let mut up = F::new(1.0);
    #[unroll]
    for p in 0..n1 {
        let mut vq = F::new(1.0);
        #[unroll]
        for q in 0..n1 {
            sum += params[base + p * n1 + q] * up * vq;
            vq *= v;
        }
        up *= u;
    }
    sum
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
        let pi = F::new(core::f32::consts::PI);
        let one = F::new(1.0);
        let zero = F::new(0.0);
        let xj = params[N_CD] * u + params[N_CD + 1] * v + params[N_OFF];
        let yj = params[N_CD + 2] * u + params[N_CD + 3] * v + params[N_OFF + 1];
        let k0 = params[N_K];
        let k1 = params[N_K + 1];
        let k2 = params[N_K + 2];
        let k3 = params[N_K + 3];
        let k4 = params[N_K + 4];
        let k7 = params[N_K + 7];
        // phi (degrees), sin and cos of theta; state 0 valid, 1 invalid, 2 for the host
        let mut phi = F::new(0.0);
        let mut st = F::new(1.0);
        let mut ct = F::new(0.0);
        let mut state = 0u32;
        // theta as an angle (degrees), for the projections that give one: range-checked below
        let mut theta = F::new(0.0);
        let mut angle = false;
        let mut check_phi = false;
        if comptime![proj <= 8] {
            // zenithal: phi from the direction, theta from the radius
            let r = F::sqrt(xj * xj + yj * yj);
            if r > zero {
                phi = k_atan2::<F>(xj, -yj, wide) * r2d;
            }
            if comptime![proj == 0] {
                // TAN: k0 = r0
                let rho = F::sqrt(k0 * k0 + r * r);
                st = k0 / rho;
                ct = r / rho;
            } else if comptime![proj == 1 || proj == 6] {
                // SIN (k1, k2 = xi, eta) and SZP (k1..k3 = wcslib's w[1..3]): k0 = 1/r0; the
                // quadratic in z = 1 - sin(theta), whose small root cancels nothing
                let xr = xj * k0;
                let yr = yj * k0;
                let mut cx = k1;
                let mut cy = k2;
                if comptime![proj == 6] {
                    cx = (xr - k1) / k3;
                    cy = (yr - k2) / k3;
                }
                let rr = xr * xr + yr * yr;
                let h = one + xr * cx + yr * cy;
                let d = h * h - (one + cx * cx + cy * cy) * rr;
                if d < F::new(-1.0e-5) {
                    state = 1;
                } else if d < F::new(5.0e-2) * h * h || h < F::new(1.0e-3) {
                    // near the limb, where two solutions meet, z is ill-conditioned
                    state = 2;
                } else {
                    let z = rr / (h + F::sqrt(d));
                    if z > F::new(1.9999) {
                        state = 2;
                    }
                    st = one - z;
                    ct = F::sqrt(z * (F::new(2.0) - z));
                    let a = xr - cx * z;
                    let b = -(yr - cy * z);
                    if a != zero || b != zero {
                        phi = k_atan2::<F>(a, b, wide) * r2d;
                    } else {
                        phi = zero;
                    }
                }
            } else if comptime![proj == 2] {
                // ARC: k0 = (180/pi)/r0
                let zeta = r * k0;
                if zeta > F::new(180.001) {
                    state = 1;
                } else if zeta > F::new(179.999) {
                    state = 2;
                }
                st = k_cos::<F>(zeta * d2r, wide);
                ct = k_sin::<F>(zeta * d2r, wide);
            } else if comptime![proj == 3] {
                // STG: k0 = 1/(2 r0)
                let t = r * k0;
                let t2 = t * t;
                st = (one - t2) / (one + t2);
                ct = F::new(2.0) * t / (one + t2);
            } else if comptime![proj == 4] {
                // ZEA: k0 = 1/(2 r0)
                let s = r * k0;
                if s > F::new(1.00001) {
                    state = 1;
                } else if s > F::new(0.99999) {
                    state = 2;
                } else {
                    st = one - F::new(2.0) * s * s;
                    ct = F::new(2.0) * s * F::sqrt((one - s) * (one + s));
                }
            } else if comptime![proj == 5] {
                // AZP: k0 = r0 (mu + 1), k1 = mu, k2 = cos(gamma), k3 = sin(gamma)
                let yc = yj * k2;
                let rc = F::sqrt(xj * xj + yc * yc);
                theta = F::new(90.0);
                angle = true;
                if rc > zero {
                    phi = k_atan2::<F>(xj, -yc, wide) * r2d;
                    let q = k0 + yj * k3;
                    if F::abs(q) < F::abs(k0) * F::new(1.0e-6) {
                        state = 2;
                    } else {
                        let s = rc / q;
                        let t = s * k1 / F::sqrt(s * s + one);
                        if F::abs(t) > F::new(1.00001) {
                            state = 1;
                        } else if F::abs(t) > F::new(0.95) {
                            // near the limb, where two solutions meet: ill-conditioned in f32
                            state = 2;
                        } else {
                            let sa = k_atan2::<F>(one, s, wide) * r2d;
                            let ta = k_asin::<F>(t, wide) * r2d;
                            let mut a = sa - ta;
                            let mut b = sa + ta + F::new(180.0);
                            if F::abs(a - F::new(90.0)) < F::new(1.0e-3) || F::abs(b - F::new(90.0)) < F::new(1.0e-3) {
                                state = 2;
                            }
                            if a > F::new(90.0) {
                                a -= F::new(360.0);
                            }
                            if b > F::new(90.0) {
                                b -= F::new(360.0);
                            }
                            theta = F::max(a, b);
                        }
                    }
                }
            } else if comptime![proj == 7] {
                // ZPN: k0 = 1/r0, k2 and k3 the zenith distance and radius of the first point of
                // inflection; zd from the polynomial `poly` of degree nz (wcslib's solutions)
                let rn = r * k0;
                let mut zd = zero;
                if comptime![nz == 1] {
                    zd = (rn - poly[0]) / poly[1];
                } else if comptime![nz == 2] {
                    let a = poly[2];
                    let b = poly[1];
                    let c = poly[0] - rn;
                    let d = b * b - F::new(4.0) * a * c;
                    if d < F::new(-1.0e-6) {
                        state = 1;
                    } else if d < F::new(1.0e-6) {
                        state = 2;
                    } else {
                        let sd = F::sqrt(d);
                        let z1 = (-b + sd) / (F::new(2.0) * a);
                        let z2 = (-b - sd) / (F::new(2.0) * a);
                        zd = F::min(z1, z2);
                        if F::abs(zd) < F::new(1.0e-5) {
                            state = 2;
                        }
                        if zd < zero {
                            zd = F::max(z1, z2);
                        }
                    }
                } else {
                    if rn < poly[0] - F::new(1.0e-5) || rn > k3 + F::new(1.0e-5) {
                        state = 1;
                    } else if rn < poly[0] + F::new(1.0e-5) || rn > k3 - F::new(1.0e-5) {
                        state = 2;
                    } else {
                        let mut zd1 = zero;
                        let mut r1 = poly[0];
                        let mut zd2 = k2;
                        let mut r2 = k3;
                        for _ in 0..60u32 {
                            let mut lambda = F::new(0.5);
                            if r2 - r1 > zero {
                                lambda = F::min(F::max((r2 - rn) / (r2 - r1), F::new(0.1)), F::new(0.9));
                            }
                            let z = zd2 - lambda * (zd2 - zd1);
                            let mut rt = zero;
                            #[unroll]
                            for m in 0..=nz {
                                rt = rt * z + poly[nz - m];
                            }
                            if rt < rn {
                                r1 = rt;
                                zd1 = z;
                            } else {
                                r2 = rt;
                                zd2 = z;
                            }
                        }
                        zd = (zd1 + zd2) * F::new(0.5);
                        // where the polynomial is flat (near its point of inflection) f32's
                        // error in r becomes a large one in zd: the host
                        let mut dr = zero;
                        #[unroll]
                        for m in 0..nz {
                            dr = dr * zd + F::cast_from(nz - m) * poly[nz - m];
                        }
                        if F::abs(dr) < F::new(0.5) {
                            state = 2;
                        }
                    }
                }
                if state == 0 {
                    if zd < F::new(-1.0e-5) || zd > pi + F::new(1.0e-5) {
                        state = 1;
                    } else if zd < F::new(1.0e-5) || zd > pi - F::new(1.0e-5) {
                        state = 2;
                    }
                }
                st = k_cos::<F>(zd, wide);
                ct = k_sin::<F>(zd, wide);
            } else {
                // AIR: k0 = 2 r0, k1 = wcslib's w[1], k2 = its w[5] (the small-angle cutoff),
                // k3 = its w[6] (degrees per unit); xi by weighted division, in xi itself
                let ra = r / k0;
                let mut xi = zero;
                if ra < k2 {
                    xi = ra * k3 * d2r;
                } else {
                    let mut x1 = one;
                    let mut r1 = zero;
                    let mut x2 = one;
                    let mut r2 = zero;
                    let mut found = false;
                    for _ in 0..30u32 {
                        if !found {
                            x2 = x1 * F::new(0.5);
                            let tanxi = F::sqrt(one - x2 * x2) / x2;
                            r2 = -(F::ln(x2) / tanxi + k1 * tanxi);
                            if r2 >= ra {
                                found = true;
                            } else {
                                x1 = x2;
                                r1 = r2;
                            }
                        }
                    }
                    if found {
                        let mut xi1 = k_acos::<F>(x1, wide);
                        let mut xi2 = k_acos::<F>(x2, wide);
                        for _ in 0..60u32 {
                            let mut lambda = F::new(0.5);
                            if r2 - r1 > zero {
                                lambda = F::min(F::max((r2 - ra) / (r2 - r1), F::new(0.1)), F::new(0.9));
                            }
                            let x = xi2 - lambda * (xi2 - xi1);
                            let sx = k_sin::<F>(x, wide);
                            let cx = k_cos::<F>(x, wide);
                            let tanxi = sx / cx;
                            // ln(cos(xi)) = ln(1 - q) / 2, q = sin^2: for q < 1/2 from
                            // atanh's series (the device's ln near 1 errs by 2^-21, absolutely)
                            let q = sx * sx;
                            let mut lncos = F::ln(cx);
                            if comptime![!wide] {
                                if q < F::new(0.5) {
                                    let y = q / (F::new(2.0) - q);
                                    let y2 = y * y;
                                    let mut sum = zero;
                                    let mut odd = F::new(21.0);
                                    #[unroll]
                                    for _ in 0..11 {
                                        sum = sum * y2 + one / odd;
                                        odd -= F::new(2.0);
                                    }
                                    lncos = -y * sum;
                                }
                            }
                            let rt = -(lncos / tanxi + k1 * tanxi);
                            if rt < ra {
                                r1 = rt;
                                xi1 = x;
                            } else {
                                r2 = rt;
                                xi2 = x;
                            }
                        }
                        xi = (xi1 + xi2) * F::new(0.5);
                    } else {
                        state = 1;
                    }
                }
                st = k_cos::<F>(F::new(2.0) * xi, wide);
                ct = k_sin::<F>(F::new(2.0) * xi, wide);
            }
        } else if comptime![proj <= 16] {
            // cylindrical and pseudo-cylindrical: k0 = (180/pi)/r0 (degrees per unit) unless
            // said otherwise
            check_phi = true;
            if comptime![proj == 9] {
                // CYP: k0 = wcslib's w[1], k1 = its w[3], k2 = mu
                phi = k0 * xj;
                let eta = k1 * yj;
                let t = F::min(F::max(eta * k2 / F::sqrt(eta * eta + one), -one), one);
                theta = (k_atan::<F>(eta, wide) + k_asin::<F>(t, wide)) * r2d;
                angle = true;
            } else if comptime![proj == 10] {
                // CEA: k1 = lambda / r0
                phi = k0 * xj;
                let s = k1 * yj;
                if F::abs(s) > F::new(1.000001) {
                    state = 1;
                } else if F::abs(s) > F::new(0.995) {
                    state = 2;
                } else {
                    st = s;
                    ct = F::sqrt((one - s) * (one + s));
                }
            } else if comptime![proj == 11] {
                // CAR
                phi = k0 * xj;
                theta = k0 * yj;
                angle = true;
            } else if comptime![proj == 12] {
                // MER: k1 = 1/r0 (sin and cos of the Gudermannian)
                phi = k0 * xj;
                let w = yj * k1;
                st = F::tanh(w);
                ct = one / F::cosh(w);
            } else if comptime![proj == 13] {
                // SFL: k1 = 1/r0
                theta = k0 * yj;
                angle = true;
                let c = k_cos::<F>(yj * k1, wide);
                if F::abs(c) < F::new(1.0e-3) {
                    state = 2;
                } else {
                    phi = k0 * xj / c;
                }
            } else if comptime![proj == 14] {
                // PAR: k1 = 1/(pi r0)
                let rr = k1 * yj;
                if F::abs(rr) > F::new(1.000001) {
                    state = 1;
                } else if F::abs(rr) > F::new(0.999999) {
                    state = 2;
                } else {
                    let s = one - F::new(4.0) * rr * rr;
                    if F::abs(s) < F::new(1.0e-3) {
                        state = 2;
                    } else {
                        phi = k0 * xj / s;
                    }
                    theta = F::new(3.0) * k_asin::<F>(rr, wide) * r2d;
                    angle = true;
                }
            } else if comptime![proj == 15] {
                // MOL: k0 = 90/r0, k1 = 1/r0, k2 = 1/(sqrt(2) r0)
                let y0 = yj * k1;
                let rr = F::new(2.0) - y0 * y0;
                let z0 = yj * k2;
                if rr < F::new(-1.0e-4) || F::abs(z0) > F::new(1.000001) {
                    state = 1;
                } else if rr < F::new(1.0e-4) || F::abs(z0) > F::new(0.999999) {
                    state = 2;
                } else {
                    let rs = F::sqrt(rr);
                    let z = k_asin::<F>(z0, wide) * F::new(2.0) / pi + y0 * rs / pi;
                    if F::abs(z) > F::new(1.000001) {
                        state = 1;
                    } else if F::abs(z) > F::new(0.99) {
                        state = 2;
                    } else {
                        phi = k0 * xj / rs;
                        st = z;
                        ct = F::sqrt((one - z) * (one + z));
                    }
                }
            } else {
                // AIT: k0 = 1/(2 r0)^2, k1 = 1/(4 r0)^2, k2 = 1/(2 r0), k3 = 1/r0
                check_phi = false;
                let s = one - xj * xj * k1 - yj * yj * k0;
                if s < F::new(0.49999) {
                    state = 1;
                } else if s < F::new(0.501) {
                    state = 2;
                } else {
                    let z = F::sqrt(s);
                    let x0 = F::new(2.0) * z * z - one;
                    let y0 = z * xj * k2;
                    if x0 != zero || y0 != zero {
                        phi = F::new(2.0) * k_atan2::<F>(y0, x0, wide) * r2d;
                    }
                    let t = z * yj * k3;
                    if F::abs(t) > F::new(1.000001) {
                        state = 1;
                    } else if F::abs(t) > F::new(0.99) {
                        state = 2;
                    } else {
                        st = t;
                        ct = F::sqrt((one - t) * (one + t));
                    }
                }
            }
        } else {
            // conic and polyconic
            check_phi = true;
            if comptime![proj <= 21] {
                // k0 = Y0 (wcslib's w[2]), k1 = 1/C, k7 = -1 when sigma < 0
                let dy = k0 - yj;
                let r = F::sqrt(xj * xj + dy * dy) * k7;
                let mut alpha = zero;
                if r != zero {
                    alpha = k_atan2::<F>(xj / r, dy / r, wide) * r2d;
                }
                phi = alpha * k1;
                if comptime![proj == 17] {
                    // COP: k2 = sigma, k3 = cot(sigma), k4 = 1/(r0 cos(delta))
                    theta = k2 + k_atan::<F>(k3 - r * k4, wide) * r2d;
                    angle = true;
                } else if comptime![proj == 18] {
                    // COE: k2 = wcslib's w[8], k3 = its w[6], k4 = its w[7]
                    let w = (k3 - r * r) * k4;
                    if F::abs(r - k2) < F::abs(k2) * F::new(1.0e-5) {
                        state = 2;
                    } else if F::abs(w) > F::new(1.000001) {
                        state = 1;
                    } else if F::abs(w) > F::new(0.9) {
                        // near the poles theta = asin(w) comes from the difference of two
                        // large numbers (w6 and r^2): ill-conditioned in f32
                        state = 2;
                    } else {
                        st = w;
                        ct = F::sqrt((one - w) * (one + w));
                    }
                } else if comptime![proj == 19] {
                    // COD: k2 = Y0 + sigma
                    theta = k2 - r;
                    angle = true;
                } else if comptime![proj == 20] {
                    // COO: k2 = 1/psi
                    let q = r * k2;
                    if q <= F::new(1.0e-6) {
                        state = 2;
                    } else {
                        let t = F::powf(q, k1);
                        st = (one - t * t) / (one + t * t);
                        ct = F::new(2.0) * t / (one + t * t);
                    }
                } else {
                    // BON: k1 = r0 pi/180 (degrees to units), k2 = 1/r0; phi recomputed
                    theta = (k0 - r) / k1;
                    angle = true;
                    let c = k_cos::<F>(theta * d2r, wide);
                    // phi = alpha r / (r0 cos(theta)): near the poles f32's error in alpha grows
                    if F::abs(c) < F::new(5.0e-2) {
                        state = 2;
                    } else {
                        phi = alpha * (r * k2) / c;
                    }
                }
            } else {
                // PCO: k0 = r0 pi/180, k1 = (180/pi)/r0, k2 = 2 r0, k3 = r0; theta by weighted
                // division, as wcslib
                let w = F::abs(yj * k1);
                if w < F::new(1.0e-3) || F::abs(w - F::new(90.0)) < F::new(1.0e-3) {
                    state = 2;
                } else {
                    let mut thepos = F::new(90.0);
                    if yj < zero {
                        thepos = F::new(-90.0);
                    }
                    let mut theneg = zero;
                    let xx = xj * xj;
                    let mut ymthe = yj - k0 * thepos;
                    let mut fpos = xx + ymthe * ymthe;
                    let mut fneg = F::new(-999.0);
                    let mut the = zero;
                    let mut tanthe = zero;
                    for _ in 0..64u32 {
                        if fneg < F::new(-100.0) {
                            the = (thepos + theneg) * F::new(0.5);
                        } else {
                            let lambda = F::min(F::max(fpos / (fpos - fneg), F::new(0.1)), F::new(0.9));
                            the = thepos - lambda * (thepos - theneg);
                        }
                        ymthe = yj - k0 * the;
                        tanthe = k_sin::<F>(the * d2r, wide) / k_cos::<F>(the * d2r, wide);
                        let f = xx + ymthe * (ymthe - k2 / tanthe);
                        if f > zero {
                            thepos = the;
                            fpos = f;
                        } else {
                            theneg = the;
                            fneg = f;
                        }
                    }
                    let x1 = k3 - ymthe * tanthe;
                    let y1 = xj * tanthe;
                    phi = zero;
                    if x1 != zero || y1 != zero {
                        phi = k_atan2::<F>(y1, x1, wide) * r2d / k_sin::<F>(the * d2r, wide);
                    }
                    theta = the;
                    angle = true;
                }
            }
        }
        // wcslib's range check of the native coordinates (bounds & 4)
        if check_phi && state == 0 {
            if F::abs(phi) > F::new(180.001) {
                state = 1;
            } else if F::abs(phi) > F::new(179.999) {
                state = 2;
            }
        }
        if angle {
            if state == 0 {
                if F::abs(theta) > F::new(90.001) {
                    state = 1;
                } else if F::abs(theta) > F::new(89.999) {
                    state = 2;
                }
            }
            st = k_sin::<F>(theta * d2r, wide);
            ct = k_cos::<F>(theta * d2r, wide);
        }
        // native to celestial (wcslib's sphx2s); the pole's celestial longitude is added on
        // the host
        let dphi = (phi - params[N_ROT]) * d2r;
        let c1 = params[N_ROT + 1];
        let s1 = params[N_ROT + 2];
        let cp = k_cos::<F>(dphi, wide);
        let x = st * s1 - ct * c1 * cp;
        let y = -ct * k_sin::<F>(dphi, wide);
        let z = st * c1 + ct * s1 * cp;
        let h = F::sqrt(x * x + y * y);
        let mut dlng = zero;
        if h > zero {
            dlng = k_atan2::<F>(y, x, wide) * r2d;
        }
        if state == 0 {
            out[2 * i] = dlng;
            out[2 * i + 1] = k_atan2::<F>(z, h, wide) * r2d;
        } else if state == 1 {
            out[2 * i] = F::new(-HOST);
            out[2 * i + 1] = F::new(-HOST);
        } else {
            out[2 * i] = F::new(HOST);
            out[2 * i + 1] = F::new(HOST);
        }
    }
}

// Trigonometry in the kernel. Vulkan requires of a device's f32 `sin` and `cos` only an absolute
// error of 2^-11 and of `atan` 4096 ulp (Mesa's lavapipe errs by ~1e-6 rad: 1e-4 degree after a
// few steps), so in f32 the kernel computes them itself, with additions and multiplications
// only (which every device rounds correctly): Cody-Waite reduction and Cephes' minimax
// polynomials (sinf, cosf, atanf: ~1 ulp). In f64 (`wide`) it uses the device's own, which the
// probe in `wcs.rs` checked.

/// sin(x), x in radians.
#[cube]
#[allow(unused_assignments)]
fn k_sin<F: Float>(x: F, #[comptime] wide: bool) -> F {
    let mut r = F::new(0.0);
    if comptime![wide] {
        r = F::sin(x);
    } else {
        let mut sign = F::new(1.0);
        let mut ax = x;
        if x < F::new(0.0) {
            sign = F::new(-1.0);
            ax = -x;
        }
        let mut j = F::floor(ax * F::new(1.273_239_5));
        if j - F::new(2.0) * F::floor(j * F::new(0.5)) > F::new(0.5) {
            j += F::new(1.0);
        }
        let y = j;
        let mut j8 = j - F::new(8.0) * F::floor(j * F::new(0.125));
        if j8 > F::new(3.5) {
            sign = -sign;
            j8 -= F::new(4.0);
        }
        let xr = ((ax - y * F::new(0.785_156_25)) - y * F::new(2.418_756_5e-4)) - y * F::new(3.774_895e-8);
        let z = xr * xr;
        if j8 > F::new(0.5) && j8 < F::new(2.5) {
            r = ((F::new(2.443_315_7e-5) * z - F::new(1.388_731_6e-3)) * z + F::new(4.166_664_6e-2)) * z * z
                - F::new(0.5) * z
                + F::new(1.0);
        } else {
            r = ((F::new(-1.951_529_6e-4) * z + F::new(8.332_161e-3)) * z - F::new(1.666_665_5e-1)) * z * xr + xr;
        }
        r *= sign;
    }
    r
}

/// cos(x), x in radians.
#[cube]
#[allow(unused_assignments)]
fn k_cos<F: Float>(x: F, #[comptime] wide: bool) -> F {
    let mut r = F::new(0.0);
    if comptime![wide] {
        r = F::cos(x);
    } else {
        let ax = F::abs(x);
        let mut sign = F::new(1.0);
        let mut j = F::floor(ax * F::new(1.273_239_5));
        if j - F::new(2.0) * F::floor(j * F::new(0.5)) > F::new(0.5) {
            j += F::new(1.0);
        }
        let y = j;
        let mut j8 = j - F::new(8.0) * F::floor(j * F::new(0.125));
        if j8 > F::new(3.5) {
            j8 -= F::new(4.0);
            sign = -sign;
        }
        if j8 > F::new(1.5) {
            sign = -sign;
        }
        let xr = ((ax - y * F::new(0.785_156_25)) - y * F::new(2.418_756_5e-4)) - y * F::new(3.774_895e-8);
        let z = xr * xr;
        if j8 > F::new(0.5) && j8 < F::new(2.5) {
            r = ((F::new(-1.951_529_6e-4) * z + F::new(8.332_161e-3)) * z - F::new(1.666_665_5e-1)) * z * xr + xr;
        } else {
            r = ((F::new(2.443_315_7e-5) * z - F::new(1.388_731_6e-3)) * z + F::new(4.166_664_6e-2)) * z * z
                - F::new(0.5) * z
                + F::new(1.0);
        }
        r *= sign;
    }
    r
}

/// atan(x), radians.
#[cube]
#[allow(unused_assignments)]
fn k_atan<F: Float>(x: F, #[comptime] wide: bool) -> F {
    let mut r = F::new(0.0);
    if comptime![wide] {
        r = F::atan(x);
    } else {
        let mut sign = F::new(1.0);
        let mut ax = x;
        if x < F::new(0.0) {
            sign = F::new(-1.0);
            ax = -x;
        }
        let mut y = F::new(0.0);
        if ax > F::new(2.414_213_6) {
            y = F::new(core::f32::consts::FRAC_PI_2);
            ax = F::new(-1.0) / ax;
        } else if ax > F::new(0.414_213_57) {
            y = F::new(core::f32::consts::FRAC_PI_4);
            ax = (ax - F::new(1.0)) / (ax + F::new(1.0));
        }
        let z = ax * ax;
        y += (((F::new(8.053_744_5e-2) * z - F::new(1.387_768_6e-1)) * z + F::new(1.997_771_1e-1)) * z
            - F::new(3.333_295e-1))
            * z
            * ax
            + ax;
        r = sign * y;
    }
    r
}

/// atan2(y, x), radians in [-pi, pi].
#[cube]
#[allow(unused_assignments)]
fn k_atan2<F: Float>(y: F, x: F, #[comptime] wide: bool) -> F {
    let mut r = F::new(0.0);
    if comptime![wide] {
        r = F::atan2(y, x);
    } else {
        let pi = F::new(core::f32::consts::PI);
        if x == F::new(0.0) {
            if y > F::new(0.0) {
                r = pi * F::new(0.5);
            } else if y < F::new(0.0) {
                r = -pi * F::new(0.5);
            }
        } else if F::abs(y) > F::abs(x) {
            // the ratio below 1: no overflow, and atan's reduction stays accurate
            r = k_atan::<F>(-x / y, wide);
            if y > F::new(0.0) {
                r += pi * F::new(0.5);
            } else {
                r -= pi * F::new(0.5);
            }
        } else {
            r = k_atan::<F>(y / x, wide);
            if x < F::new(0.0) {
                if y < F::new(0.0) {
                    r -= pi;
                } else {
                    r += pi;
                }
            }
        }
    }
    r
}

/// asin(x), radians, |x| <= 1.
#[cube]
fn k_asin<F: Float>(x: F, #[comptime] wide: bool) -> F {
    k_atan2::<F>(x, F::sqrt(F::max((F::new(1.0) - x) * (F::new(1.0) + x), F::new(0.0))), wide)
}

/// acos(x), radians, |x| <= 1.
#[cube]
fn k_acos<F: Float>(x: F, #[comptime] wide: bool) -> F {
    k_atan2::<F>(F::sqrt(F::max((F::new(1.0) - x) * (F::new(1.0) + x), F::new(0.0))), x, wide)
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
