//! The inverse of wcslib's zenithal projections on the device, in `F`.

use cubecl::prelude::*;

use super::N_K;
use super::NativePoint;
use super::trig::{k_acos, k_asin, k_atan2, k_cos, k_sin};

/// The zenithal projections (TAN, SIN, ARC, STG, ZEA, AZP, SZP, ZPN, AIR): phi from the direction of
/// the projection-plane point, theta from its radius. `poly`: ZPN's coefficients (`nz + 1`).
#[cube]
#[allow(clippy::collapsible_if, unused_assignments)]
pub(super) fn zenithal<F: Float>(
    xj: F,
    yj: F,
    params: &[F],
    poly: &[F],
    #[comptime] proj: u32,
    #[comptime] nz: usize,
    #[comptime] wide: bool,
) -> NativePoint<F> {
    let d2r = F::new(core::f32::consts::PI / 180.0);
    let r2d = F::new(180.0 / core::f32::consts::PI);
    let pi = F::new(core::f32::consts::PI);
    let one = F::new(1.0);
    let zero = F::new(0.0);
    let k0 = params[N_K];
    let k1 = params[N_K + 1];
    let k2 = params[N_K + 2];
    let k3 = params[N_K + 3];
    let mut p = NativePoint::<F>::start();
    // zenithal: phi from the direction, theta from the radius
    let r = F::sqrt(xj * xj + yj * yj);
    if r > zero {
        p.phi = k_atan2::<F>(xj, -yj, wide) * r2d;
    }
    if comptime![proj == 0] {
        // TAN: k0 = r0
        let rho = F::sqrt(k0 * k0 + r * r);
        p.st = k0 / rho;
        p.ct = r / rho;
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
            p.state = 1u32;
        } else if d < F::new(5.0e-2) * h * h || h < F::new(1.0e-3) {
            // near the limb, where two solutions meet, z is ill-conditioned
            p.state = 2u32;
        } else {
            let z = rr / (h + F::sqrt(d));
            if z > F::new(1.9999) {
                p.state = 2u32;
            }
            p.st = one - z;
            p.ct = F::sqrt(z * (F::new(2.0) - z));
            let a = xr - cx * z;
            let b = -(yr - cy * z);
            if a != zero || b != zero {
                p.phi = k_atan2::<F>(a, b, wide) * r2d;
            } else {
                p.phi = zero;
            }
        }
    } else if comptime![proj == 2] {
        // ARC: k0 = (180/pi)/r0
        let zeta = r * k0;
        if zeta > F::new(180.001) {
            p.state = 1u32;
        } else if zeta > F::new(179.999) {
            p.state = 2u32;
        }
        p.st = k_cos::<F>(zeta * d2r, wide);
        p.ct = k_sin::<F>(zeta * d2r, wide);
    } else if comptime![proj == 3] {
        // STG: k0 = 1/(2 r0)
        let t = r * k0;
        let t2 = t * t;
        p.st = (one - t2) / (one + t2);
        p.ct = F::new(2.0) * t / (one + t2);
    } else if comptime![proj == 4] {
        // ZEA: k0 = 1/(2 r0)
        let s = r * k0;
        if s > F::new(1.00001) {
            p.state = 1u32;
        } else if s > F::new(0.99999) {
            p.state = 2u32;
        } else {
            p.st = one - F::new(2.0) * s * s;
            p.ct = F::new(2.0) * s * F::sqrt((one - s) * (one + s));
        }
    } else if comptime![proj == 5] {
        // AZP: k0 = r0 (mu + 1), k1 = mu, k2 = cos(gamma), k3 = sin(gamma)
        let yc = yj * k2;
        let rc = F::sqrt(xj * xj + yc * yc);
        p.theta = F::new(90.0);
        p.angle = true;
        if rc > zero {
            p.phi = k_atan2::<F>(xj, -yc, wide) * r2d;
            let q = k0 + yj * k3;
            if F::abs(q) < F::abs(k0) * F::new(1.0e-6) {
                p.state = 2u32;
            } else {
                let s = rc / q;
                let t = s * k1 / F::sqrt(s * s + one);
                if F::abs(t) > F::new(1.00001) {
                    p.state = 1u32;
                } else if F::abs(t) > F::new(0.95) {
                    // near the limb, where two solutions meet: ill-conditioned in f32
                    p.state = 2u32;
                } else {
                    let sa = k_atan2::<F>(one, s, wide) * r2d;
                    let ta = k_asin::<F>(t, wide) * r2d;
                    let mut a = sa - ta;
                    let mut b = sa + ta + F::new(180.0);
                    if F::abs(a - F::new(90.0)) < F::new(1.0e-3) || F::abs(b - F::new(90.0)) < F::new(1.0e-3) {
                        p.state = 2u32;
                    }
                    if a > F::new(90.0) {
                        a -= F::new(360.0);
                    }
                    if b > F::new(90.0) {
                        b -= F::new(360.0);
                    }
                    p.theta = F::max(a, b);
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
                p.state = 1u32;
            } else if d < F::new(1.0e-6) {
                p.state = 2u32;
            } else {
                let sd = F::sqrt(d);
                let z1 = (-b + sd) / (F::new(2.0) * a);
                let z2 = (-b - sd) / (F::new(2.0) * a);
                zd = F::min(z1, z2);
                if F::abs(zd) < F::new(1.0e-5) {
                    p.state = 2u32;
                }
                if zd < zero {
                    zd = F::max(z1, z2);
                }
            }
        } else {
            if rn < poly[0] - F::new(1.0e-5) || rn > k3 + F::new(1.0e-5) {
                p.state = 1u32;
            } else if rn < poly[0] + F::new(1.0e-5) || rn > k3 - F::new(1.0e-5) {
                p.state = 2u32;
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
                    p.state = 2u32;
                }
            }
        }
        if p.state == 0u32 {
            if zd < F::new(-1.0e-5) || zd > pi + F::new(1.0e-5) {
                p.state = 1u32;
            } else if zd < F::new(1.0e-5) || zd > pi - F::new(1.0e-5) {
                p.state = 2u32;
            }
        }
        p.st = k_cos::<F>(zd, wide);
        p.ct = k_sin::<F>(zd, wide);
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
                p.state = 1u32;
            }
        }
        p.st = k_cos::<F>(F::new(2.0) * xi, wide);
        p.ct = k_sin::<F>(F::new(2.0) * xi, wide);
    }
    p
}
