//! The inverse of wcslib's conic and polyconic projections on the device, in `F`.

use cubecl::prelude::*;

use super::N_K;
use super::NativePoint;
use super::trig::{k_atan, k_atan2, k_cos, k_sin};

/// The conic (COP, COE, COD, COO) and polyconic (BON, PCO) projections.
#[cube]
#[allow(clippy::collapsible_if, unused_assignments)]
pub(super) fn conic<F: Float>(
    xj: F,
    yj: F,
    params: &[F],
    #[comptime] proj: u32,
    #[comptime] wide: bool,
) -> NativePoint<F> {
    let d2r = F::new(core::f32::consts::PI / 180.0);
    let r2d = F::new(180.0 / core::f32::consts::PI);
    let one = F::new(1.0);
    let zero = F::new(0.0);
    let k0 = params[N_K];
    let k1 = params[N_K + 1];
    let k2 = params[N_K + 2];
    let k3 = params[N_K + 3];
    let k4 = params[N_K + 4];
    let k7 = params[N_K + 7];
    let mut p = NativePoint::<F>::start();
    // conic and polyconic
    p.check_phi = true;
    if comptime![proj <= 21] {
        // k0 = Y0 (wcslib's w[2]), k1 = 1/C, k7 = -1 when sigma < 0
        let dy = k0 - yj;
        let r = F::sqrt(xj * xj + dy * dy) * k7;
        let mut alpha = zero;
        if r != zero {
            alpha = k_atan2::<F>(xj / r, dy / r, wide) * r2d;
        }
        p.phi = alpha * k1;
        if comptime![proj == 17] {
            // COP: k2 = sigma, k3 = cot(sigma), k4 = 1/(r0 cos(delta))
            p.theta = k2 + k_atan::<F>(k3 - r * k4, wide) * r2d;
            p.angle = true;
        } else if comptime![proj == 18] {
            // COE: k2 = wcslib's w[8], k3 = its w[6], k4 = its w[7]
            let w = (k3 - r * r) * k4;
            if F::abs(r - k2) < F::abs(k2) * F::new(1.0e-5) {
                p.state = 2u32;
            } else if F::abs(w) > F::new(1.000001) {
                p.state = 1u32;
            } else if F::abs(w) > F::new(0.9) {
                // near the poles theta = asin(w) comes from the difference of two
                // large numbers (w6 and r^2): ill-conditioned in f32
                p.state = 2u32;
            } else {
                p.st = w;
                p.ct = F::sqrt((one - w) * (one + w));
            }
        } else if comptime![proj == 19] {
            // COD: k2 = Y0 + sigma
            p.theta = k2 - r;
            p.angle = true;
        } else if comptime![proj == 20] {
            // COO: k2 = 1/psi
            let q = r * k2;
            if q <= F::new(1.0e-6) {
                p.state = 2u32;
            } else {
                let t = F::powf(q, k1);
                p.st = (one - t * t) / (one + t * t);
                p.ct = F::new(2.0) * t / (one + t * t);
            }
        } else {
            // BON: k1 = r0 pi/180 (degrees to units), k2 = 1/r0; phi recomputed
            p.theta = (k0 - r) / k1;
            p.angle = true;
            let c = k_cos::<F>(p.theta * d2r, wide);
            // phi = alpha r / (r0 cos(theta)): near the poles f32's error in alpha grows
            if F::abs(c) < F::new(5.0e-2) {
                p.state = 2u32;
            } else {
                p.phi = alpha * (r * k2) / c;
            }
        }
    } else {
        // PCO: k0 = r0 pi/180, k1 = (180/pi)/r0, k2 = 2 r0, k3 = r0; theta by weighted
        // division, as wcslib
        let w = F::abs(yj * k1);
        if w < F::new(1.0e-3) || F::abs(w - F::new(90.0)) < F::new(1.0e-3) {
            p.state = 2u32;
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
            p.phi = zero;
            if x1 != zero || y1 != zero {
                p.phi = k_atan2::<F>(y1, x1, wide) * r2d / k_sin::<F>(the * d2r, wide);
            }
            p.theta = the;
            p.angle = true;
        }
    }
    p
}
