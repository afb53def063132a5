//! Trigonometry in the kernels, in `F`.

use cubecl::prelude::*;

// Vulkan requires of a device's f32 `sin` and `cos` only an absolute
// error of 2^-11 and of `atan` 4096 ulp (Mesa's lavapipe errs by ~1e-6 rad: 1e-4 degree after a
// few steps), so in f32 the kernel computes them itself, with additions and multiplications
// only (which every device rounds correctly): Cody-Waite reduction and Cephes' minimax
// polynomials (sinf, cosf, atanf: ~1 ulp). In f64 (`wide`) it uses the device's own, which the
// probe in `wcs.rs` checked.

/// sin(x), x in radians.
#[cube]
#[allow(unused_assignments)]
pub(super) fn k_sin<F: Float>(x: F, #[comptime] wide: bool) -> F {
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
pub(super) fn k_cos<F: Float>(x: F, #[comptime] wide: bool) -> F {
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
pub(super) fn k_atan<F: Float>(x: F, #[comptime] wide: bool) -> F {
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
pub(super) fn k_atan2<F: Float>(y: F, x: F, #[comptime] wide: bool) -> F {
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
pub(super) fn k_asin<F: Float>(x: F, #[comptime] wide: bool) -> F {
    k_atan2::<F>(x, F::sqrt(F::max((F::new(1.0) - x) * (F::new(1.0) + x), F::new(0.0))), wide)
}

/// acos(x), radians, |x| <= 1.
#[cube]
pub(super) fn k_acos<F: Float>(x: F, #[comptime] wide: bool) -> F {
    k_atan2::<F>(F::sqrt(F::max((F::new(1.0) - x) * (F::new(1.0) + x), F::new(0.0))), x, wide)
}
