//! The inverse of wcslib's cylindrical and pseudo-cylindrical projections on the device, in `F`.

use cubecl::prelude::*;

use super::N_K;
use super::NativePoint;
use super::trig::{k_asin, k_atan, k_atan2, k_cos};

/// The cylindrical (CYP, CEA, CAR, MER) and pseudo-cylindrical (SFL, PAR, MOL, AIT) projections.
#[cube]
#[allow(clippy::collapsible_if, unused_assignments)]
pub(super) fn cylindrical<F: Float>(
    xj: F,
    yj: F,
    params: &[F],
    #[comptime] proj: u32,
    #[comptime] wide: bool,
) -> NativePoint<F> {
    let r2d = F::new(180.0 / core::f32::consts::PI);
    let pi = F::new(core::f32::consts::PI);
    let one = F::new(1.0);
    let zero = F::new(0.0);
    let k0 = params[N_K];
    let k1 = params[N_K + 1];
    let k2 = params[N_K + 2];
    let k3 = params[N_K + 3];
    let mut p = NativePoint::<F>::start();
    // cylindrical and pseudo-cylindrical: k0 = (180/pi)/r0 (degrees per unit) unless
    // said otherwise
    p.check_phi = true;
    if comptime![proj == 9] {
        // CYP: k0 = wcslib's w[1], k1 = its w[3], k2 = mu
        p.phi = k0 * xj;
        let eta = k1 * yj;
        let t = F::min(F::max(eta * k2 / F::sqrt(eta * eta + one), -one), one);
        p.theta = (k_atan::<F>(eta, wide) + k_asin::<F>(t, wide)) * r2d;
        p.angle = true;
    } else if comptime![proj == 10] {
        // CEA: k1 = lambda / r0
        p.phi = k0 * xj;
        let s = k1 * yj;
        if F::abs(s) > F::new(1.000001) {
            p.state = 1u32;
        } else if F::abs(s) > F::new(0.995) {
            p.state = 2u32;
        } else {
            p.st = s;
            p.ct = F::sqrt((one - s) * (one + s));
        }
    } else if comptime![proj == 11] {
        // CAR
        p.phi = k0 * xj;
        p.theta = k0 * yj;
        p.angle = true;
    } else if comptime![proj == 12] {
        // MER: k1 = 1/r0 (sin and cos of the Gudermannian)
        p.phi = k0 * xj;
        let w = yj * k1;
        p.st = F::tanh(w);
        p.ct = one / F::cosh(w);
    } else if comptime![proj == 13] {
        // SFL: k1 = 1/r0
        p.theta = k0 * yj;
        p.angle = true;
        let c = k_cos::<F>(yj * k1, wide);
        if F::abs(c) < F::new(1.0e-3) {
            p.state = 2u32;
        } else {
            p.phi = k0 * xj / c;
        }
    } else if comptime![proj == 14] {
        // PAR: k1 = 1/(pi r0)
        let rr = k1 * yj;
        if F::abs(rr) > F::new(1.000001) {
            p.state = 1u32;
        } else if F::abs(rr) > F::new(0.999999) {
            p.state = 2u32;
        } else {
            let s = one - F::new(4.0) * rr * rr;
            if F::abs(s) < F::new(1.0e-3) {
                p.state = 2u32;
            } else {
                p.phi = k0 * xj / s;
            }
            p.theta = F::new(3.0) * k_asin::<F>(rr, wide) * r2d;
            p.angle = true;
        }
    } else if comptime![proj == 15] {
        // MOL: k0 = 90/r0, k1 = 1/r0, k2 = 1/(sqrt(2) r0)
        let y0 = yj * k1;
        let rr = F::new(2.0) - y0 * y0;
        let z0 = yj * k2;
        if rr < F::new(-1.0e-4) || F::abs(z0) > F::new(1.000001) {
            p.state = 1u32;
        } else if rr < F::new(1.0e-4) || F::abs(z0) > F::new(0.999999) {
            p.state = 2u32;
        } else {
            let rs = F::sqrt(rr);
            let z = k_asin::<F>(z0, wide) * F::new(2.0) / pi + y0 * rs / pi;
            if F::abs(z) > F::new(1.000001) {
                p.state = 1u32;
            } else if F::abs(z) > F::new(0.99) {
                p.state = 2u32;
            } else {
                p.phi = k0 * xj / rs;
                p.st = z;
                p.ct = F::sqrt((one - z) * (one + z));
            }
        }
    } else {
        // AIT: k0 = 1/(2 r0)^2, k1 = 1/(4 r0)^2, k2 = 1/(2 r0), k3 = 1/r0
        p.check_phi = false;
        let s = one - xj * xj * k1 - yj * yj * k0;
        if s < F::new(0.49999) {
            p.state = 1u32;
        } else if s < F::new(0.501) {
            p.state = 2u32;
        } else {
            let z = F::sqrt(s);
            let x0 = F::new(2.0) * z * z - one;
            let y0 = z * xj * k2;
            if x0 != zero || y0 != zero {
                p.phi = F::new(2.0) * k_atan2::<F>(y0, x0, wide) * r2d;
            }
            let t = z * yj * k3;
            if F::abs(t) > F::new(1.000001) {
                p.state = 1u32;
            } else if F::abs(t) > F::new(0.99) {
                p.state = 2u32;
            } else {
                p.st = t;
                p.ct = F::sqrt((one - t) * (one + t));
            }
        }
    }
    p
}
