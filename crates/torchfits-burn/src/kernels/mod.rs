//! The CubeCL kernels of the device WCS and their launches: the one place of this crate with
//! `unsafe` (a launch trusts the kernel to stay inside the buffers it is given). The entry points
//! and launches are here; each projection family's inverse is a module of its own (`zenithal`,
//! `cylindrical`, `conic`), beside the SIP polynomials (`sip`) and the trigonometry (`trig`) they
//! share. The host side (parameters, fallbacks to wcslib, the tensors) is the `wcs` module.
//!
//! Every launch works on buffers that stay on the device: the points (a tensor's own buffer),
//! the world coordinates and a state per point (0 valid, 1 invalid, 2 left to the host) are
//! device buffers; the points the kernel leaves to the host are compacted on the device (an
//! atomic counter and a list of their indices), so that only they cross to wcslib and back.

// Indexing: the CubeCL kernels index device arrays by the launch's own point index,
// guarded against the length of the buffer they index (an out-of-range read on the device is the
// runtime's, not a Rust panic).
#![allow(clippy::indexing_slicing)]
#![allow(unsafe_code)]
// Without a runtime (features wgpu, cuda) nothing launches these kernels.
#![cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]

mod conic;
mod cylindrical;
mod sip;
mod trig;
mod zenithal;

use cubecl::prelude::*;
use cubecl::server::Handle;
use sip::sip_polynomial;
use torchfits_format::{Error, ErrorKind, Result};
use trig::{k_atan2, k_cos, k_sin};

use crate::transfers;

/// A point's state: valid.
pub(crate) const VALID: u32 = 0;
/// A point's state: outside the projection's domain (wcslib's invalid points; world NaN).
pub(crate) const INVALID: u32 = 1;
/// A point's state: near one of the projection's limits (or beyond what f32 holds to 1e-4
/// degree, or NaN): computed by wcslib on the host.
pub(crate) const ON_HOST: u32 = 2;

/// Offsets of [`offsets_sky`]'s parameter block: CRPIX (2), the CD matrix (4, row-major), sin
/// and cos of the reference latitude, the reference longitude and latitude (degrees) each as a
/// pair (the value rounded to f32, then the rest: so that an f32 kernel adds an offset to them
/// with one rounding), NaN (what an invalid point's coordinates are: WGSL has no NaN literal),
/// then the SIP `a` and `b` coefficients (`n1 * n1` each, `a[p][q]` at `p * n1 + q`).
pub(crate) const O_LNG0: usize = 8;
pub(crate) const O_LAT0: usize = 10;
pub(crate) const O_NAN: usize = 12;
pub(crate) const O_SIP: usize = 13;

/// Offsets of [`native_sky`]'s parameter block: the CD matrix with the longitude's row first
/// (4), the projection-plane offsets x0, y0 (2), the projection's constants (8), the rotation
/// (native longitude of the celestial pole in degrees, cos and sin of the pole's colatitude),
/// CRPIX - 1 (2: a 0-based pixel minus these is the pixel offset), the celestial longitude of
/// the native pole (the longitudes' offset) as a pair (rounded to f32, then the rest), 1 if the
/// latitude is world axis 0 (else 0), NaN (an invalid point's coordinates), then the SIP `a` and
/// `b` coefficients (`n1 * n1` each).
pub(crate) const N_CD: usize = 0;
pub(crate) const N_OFF: usize = 4;
pub(crate) const N_K: usize = 6;
pub(crate) const N_ROT: usize = 14;
pub(crate) const N_PIX0: usize = 17;
pub(crate) const N_LNG0: usize = 19;
pub(crate) const N_SWAP: usize = 21;
pub(crate) const N_NAN: usize = 22;
pub(crate) const N_SIP: usize = 23;

/// A point on the celestial sphere as the kernels leave it: the longitude as an offset from the
/// celestial longitude of the native pole (or of the reference point), the latitude, both in
/// degrees, and the point's state.
#[derive(CubeType)]
pub(crate) struct Sky<F: Float> {
    pub dlng: F,
    pub lat: F,
    pub state: u32,
}

/// [`offsets_delta`] of the 0-based pixel (`x`, `y`), its latitude made absolute.
#[cube]
fn offsets_sky<F: Float>(x: F, y: F, params: &[F], #[comptime] n1: usize, #[comptime] proj: u32) -> Sky<F> {
    let mut sky = offsets_delta::<F>(x + F::new(1.0) - params[0], y + F::new(1.0) - params[1], params, n1, proj);
    sky.lat = params[O_LAT0] + (sky.lat + params[O_LAT0 + 1]);
    sky
}

/// Pixel offset (u, v: the 1-based pixel minus CRPIX) to sky for the plain zenithal projections
/// (`proj`: 0 TAN, 1 SIN, 2 ARC, 3 STG, 4 ZEA), in f32 offsets from the reference point, to a few
/// 1e-7 degree: `lat` is the latitude's offset from the reference point's.
#[cube]
fn offsets_delta<F: Float>(u0: F, v0: F, params: &[F], #[comptime] n1: usize, #[comptime] proj: u32) -> Sky<F> {
    let mut u = u0;
    let mut v = v0;
    if comptime![n1 > 0] {
        // SIP: the distortion at (u, v), added to both
        let du = sip_polynomial::<F>(params, O_SIP, u, v, n1);
        let dv = sip_polynomial::<F>(params, O_SIP + n1 * n1, u, v, n1);
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
    let mut state = 0u32;
    if !valid {
        // left to the host
        state = 2u32;
    }
    Sky::<F> { dlng: dlng / d2r, lat: dlat / d2r, state }
}

/// The general kernel's projections (comptime `proj`), in [`native_sky`]'s numbering.
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

/// Pixel offset to sky for the celestial projections of wcslib's zenithal, cylindrical,
/// pseudo-cylindrical, conic and polyconic families (wcslib's formulas, in `F`): SIP, the
/// projection-plane coordinates, the native spherical ones as a longitude and the sine and cosine
/// of the latitude (never through an angle near the pole, where f32 loses them), then the
/// rotation to the celestial sphere. (`u`, `v`): the 1-based pixel minus CRPIX. `poly`: ZPN's
/// coefficients (`nz + 1`).
#[cube]
#[allow(clippy::too_many_arguments, clippy::collapsible_if, unused_assignments)]
fn native_sky<F: Float>(
    u0: F,
    v0: F,
    params: &[F],
    poly: &[F],
    #[comptime] n1: usize,
    #[comptime] proj: u32,
    #[comptime] nz: usize,
    #[comptime] wide: bool,
) -> Sky<F> {
    let mut u = u0;
    let mut v = v0;
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
    // native to celestial (wcslib's sphx2s), as an offset from the pole's celestial longitude
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
    Sky::<F> { dlng, lat: k_atan2::<F>(z, h, wide) * r2d, state: p.state }
}

/// Writes point `i`'s world coordinates at `world[at0]` and `world[at1]` (world-axis order:
/// `swap` when the latitude is axis 0), the longitude `lng0 + lng0_rest + sky.dlng` normalised as
/// wcslib does (`nan` for an invalid point), and its state; a point for the host takes the next
/// slot of the host list.
#[cube]
#[allow(clippy::too_many_arguments)]
fn emit<F: Float>(
    world: &mut [F],
    state: &mut [u32],
    counter: &mut [Atomic<u32>],
    host: &mut [u32],
    i: usize,
    at0: usize,
    at1: usize,
    sky: Sky<F>,
    lng0: F,
    lng0_rest: F,
    swap: bool,
    nan: F,
) {
    let zero = F::new(0.0);
    let full = F::new(360.0);
    if sky.state == 0u32 {
        let mut lng = lng0 + (sky.dlng + lng0_rest);
        if lng0 >= zero {
            if lng < zero {
                lng += full;
            }
        } else if lng > zero {
            lng -= full;
        }
        if lng > full {
            lng -= full;
        } else if lng < -full {
            lng += full;
        }
        if swap {
            world[at0] = sky.lat;
            world[at1] = lng;
        } else {
            world[at0] = lng;
            world[at1] = sky.lat;
        }
    } else if sky.state == 1u32 {
        world[at0] = nan;
        world[at1] = nan;
    } else if sky.state == 2u32 {
        let slot = counter[0].fetch_add(1u32);
        host[usize::cast_from(slot)] = u32::cast_from(i);
    }
    state[i] = sky.state;
}

/// Whether `x` is not a finite number (NaN fails every comparison; no pixel is near 3e38).
#[cube]
#[allow(clippy::neg_cmp_op_on_partial_ord)]
fn not_finite<F: Float>(x: F) -> bool {
    !(F::abs(x) <= F::new(3.0e38))
}

/// [`offsets_sky`] over the (x, y) points of `pix` (0-based), from point `base` on.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn offsets_points_kernel<F: Float>(
    pix: &[F],
    params: &[F],
    world: &mut [F],
    state: &mut [u32],
    counter: &mut [Atomic<u32>],
    host: &mut [u32],
    base: u32,
    #[comptime] n1: usize,
    #[comptime] proj: u32,
) {
    let i = ABSOLUTE_POS + usize::cast_from(base);
    if i < state.len() {
        let x = pix[2 * i];
        let y = pix[2 * i + 1];
        let mut sky = offsets_sky::<F>(x, y, params, n1, proj);
        if not_finite::<F>(x) || not_finite::<F>(y) {
            // wcslib says what NaN gives
            sky.state = 2u32;
        }
        emit::<F>(
            world,
            state,
            counter,
            host,
            i,
            2 * i,
            2 * i + 1,
            sky,
            params[O_LNG0],
            params[O_LNG0 + 1],
            false,
            params[O_NAN],
        );
    }
}

/// [`native_sky`] over the (x, y) points of `pix` (0-based), from point `base` on.
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn native_points_kernel<F: Float>(
    pix: &[F],
    params: &[F],
    poly: &[F],
    world: &mut [F],
    state: &mut [u32],
    counter: &mut [Atomic<u32>],
    host: &mut [u32],
    base: u32,
    #[comptime] n1: usize,
    #[comptime] proj: u32,
    #[comptime] nz: usize,
    #[comptime] wide: bool,
) {
    let i = ABSOLUTE_POS + usize::cast_from(base);
    if i < state.len() {
        let x = pix[2 * i];
        let y = pix[2 * i + 1];
        let mut sky = native_sky::<F>(x - params[N_PIX0], y - params[N_PIX0 + 1], params, poly, n1, proj, nz, wide);
        if not_finite::<F>(x) || not_finite::<F>(y) {
            sky.state = 2u32;
        }
        let swap = params[N_SWAP] > F::new(0.5);
        emit::<F>(
            world,
            state,
            counter,
            host,
            i,
            2 * i,
            2 * i + 1,
            sky,
            params[N_LNG0],
            params[N_LNG0 + 1],
            swap,
            params[N_NAN],
        );
    }
}

/// [`native_sky`] over every pixel of cutouts of `w` x `h` pixels, from pixel `base` on:
/// cutout `c` starts at the pixel offset (`origins[2c]`, `origins[2c + 1]`) of the WCS whose
/// parameter block is number `blocks[c]` of `params` (`block_len` values each), and fills slot
/// `slots[c]` of `world` (`[slots, 2, h, w]` planes, world-axis order) and `state`
/// (`[slots, h, w]`).
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments)]
fn native_grid_kernel<F: Float>(
    origins: &[F],
    blocks: &[u32],
    slots: &[u32],
    params: &[F],
    poly: &[F],
    world: &mut [F],
    state: &mut [u32],
    counter: &mut [Atomic<u32>],
    host: &mut [u32],
    base: u32,
    #[comptime] n1: usize,
    #[comptime] proj: u32,
    #[comptime] nz: usize,
    #[comptime] block_len: usize,
    #[comptime] w: usize,
    #[comptime] h: usize,
    #[comptime] wide: bool,
) {
    let per = comptime![w * h];
    let local = ABSOLUTE_POS + usize::cast_from(base);
    if local < blocks.len() * per {
        let c = local / per;
        let rem = local % per;
        let b = usize::cast_from(blocks[c]);
        let p = params.slice(b * block_len, (b + 1) * block_len);
        let u = origins[2 * c] + F::cast_from(rem % w);
        let v = origins[2 * c + 1] + F::cast_from(rem / w);
        let sky = native_sky::<F>(u, v, p, poly, n1, proj, nz, wide);
        let slot = usize::cast_from(slots[c]);
        let at0 = slot * 2 * per + rem;
        let swap = p[N_SWAP] > F::new(0.5);
        let (lng0, rest, nan) = (p[N_LNG0], p[N_LNG0 + 1], p[N_NAN]);
        emit::<F>(world, state, counter, host, slot * per + rem, at0, at0 + per, sky, lng0, rest, swap, nan);
    }
}

/// `d` in (-180, 180] degrees.
#[cube]
fn wrap180<F: Float>(d: F) -> F {
    let mut r = d;
    if r > F::new(180.0) {
        r -= F::new(360.0);
    } else if r <= F::new(-180.0) {
        r += F::new(360.0);
    }
    r
}

/// `lng - (hi + lo)` as an offset in (-180, 180], with no rounding where `lng` and `hi` are close
/// (Sterbenz), the wrap taken before the subtraction.
#[cube]
fn lng_offset<F: Float>(lng: F, hi: F, lo: F) -> F {
    let mut l = lng;
    let d = l - hi;
    if d > F::new(180.0) {
        l -= F::new(360.0);
    } else if d <= F::new(-180.0) {
        l += F::new(360.0);
    }
    (l - hi) - lo
}

/// The sky offsets of pixel offset (u, v) as the world-to-pixel iteration compares them with its
/// target: [`offsets_delta`] (`offsets`) or [`native_sky`].
#[cube]
#[allow(clippy::too_many_arguments)]
fn sky_at<F: Float>(
    u: F,
    v: F,
    params: &[F],
    poly: &[F],
    #[comptime] offsets: bool,
    #[comptime] n1: usize,
    #[comptime] proj: u32,
    #[comptime] nz: usize,
    #[comptime] wide: bool,
) -> Sky<F> {
    if comptime![offsets] {
        offsets_delta::<F>(u, v, params, n1, proj)
    } else {
        native_sky::<F>(u, v, params, poly, n1, proj, nz, wide)
    }
}

/// World to pixel over the (world-axis order) points of `world`, from point `base` on, by Newton's
/// method on the pixel-to-world functions themselves ([`offsets_delta`] for the plain zenithal
/// projections in f32, [`native_sky`] for the others: every projection and SIP the kernels invert,
/// with no forward formulas of their own), in offsets from the reference point where `offsets`
/// (the target's longitude and latitude both as offsets, with no rounding where they are small),
/// the Jacobian by differences over one pixel. A point whose iteration leaves the projection's
/// domain or does not converge in `max_steps` goes to the host (wcslib decides it). `pixels`:
/// 0-based (x, y).
#[cube(launch_unchecked)]
#[allow(clippy::too_many_arguments, unused_assignments)]
fn world_to_pixel_kernel<F: Float>(
    world: &[F],
    params: &[F],
    poly: &[F],
    pixels: &mut [F],
    state: &mut [u32],
    counter: &mut [Atomic<u32>],
    host: &mut [u32],
    base: u32,
    #[comptime] offsets: bool,
    #[comptime] n1: usize,
    #[comptime] proj: u32,
    #[comptime] nz: usize,
    #[comptime] wide: bool,
) {
    let i = ABSOLUTE_POS + usize::cast_from(base);
    if i < state.len() {
        let a = world[2 * i];
        let b = world[2 * i + 1];
        let zero = F::new(0.0);
        let one = F::new(1.0);
        // the target, and where the pixel offsets are counted from
        let mut tl = zero;
        let mut tb = zero;
        let mut px0 = zero;
        let mut py0 = zero;
        let mut nan = zero;
        if comptime![offsets] {
            tl = lng_offset::<F>(a, params[O_LNG0], params[O_LNG0 + 1]);
            tb = (b - params[O_LAT0]) - params[O_LAT0 + 1];
            px0 = params[0] - one;
            py0 = params[1] - one;
            nan = params[O_NAN];
        } else {
            let mut lng = a;
            let mut lat = b;
            if params[N_SWAP] > F::new(0.5) {
                lng = b;
                lat = a;
            }
            tl = lng_offset::<F>(lng, params[N_LNG0], params[N_LNG0 + 1]);
            tb = lat;
            px0 = params[N_PIX0];
            py0 = params[N_PIX0 + 1];
            nan = params[N_NAN];
        }
        // the first guess: near the reference pixel (not on it: some projections are singular
        // there), or (plain zenithal) the inverse CD matrix applied to the offsets
        let mut u = F::new(0.37);
        let mut v = F::new(0.29);
        if comptime![offsets] {
            let east = tl * k_cos::<F>((params[O_LAT0] + tb) * F::new(core::f32::consts::PI / 180.0), false);
            let det = params[2] * params[5] - params[3] * params[4];
            if F::abs(det) > zero {
                u = (params[5] * east - params[3] * tb) / det;
                v = (params[2] * tb - params[4] * east) / det;
            }
        }
        let mut done = false;
        let mut failed = not_finite::<F>(a) || not_finite::<F>(b);
        let tolerance = if comptime![wide] { F::new(1.0e-9) } else { F::new(1.0e-3) };
        // the Jacobian's step: a quarter pixel (inside a map's edge, where a whole one may not be)
        let h = F::new(0.25);
        let mut du = zero;
        let mut dv = zero;
        let mut step = 0u32;
        let mut halvings = 0u32;
        while !done && !failed && step < 16u32 {
            let f = sky_at::<F>(u, v, params, poly, offsets, n1, proj, nz, wide);
            if f.state != 0u32 {
                // the last step left the projection's domain: back off half of it
                if step > 0u32 && halvings < 8u32 {
                    du *= F::new(0.5);
                    dv *= F::new(0.5);
                    u -= du;
                    v -= dv;
                    halvings += 1u32;
                } else {
                    failed = true;
                }
            } else {
                // forward differences, or backward ones where the forward point is outside
                let mut hx = h;
                let fxp = sky_at::<F>(u + h, v, params, poly, offsets, n1, proj, nz, wide);
                let mut fxl = fxp.dlng;
                let mut fxb = fxp.lat;
                let mut fxs = fxp.state;
                if fxs != 0u32 {
                    hx = -h;
                    let fxm = sky_at::<F>(u - h, v, params, poly, offsets, n1, proj, nz, wide);
                    fxl = fxm.dlng;
                    fxb = fxm.lat;
                    fxs = fxm.state;
                }
                let mut hy = h;
                let fyp = sky_at::<F>(u, v + h, params, poly, offsets, n1, proj, nz, wide);
                let mut fyl = fyp.dlng;
                let mut fyb = fyp.lat;
                let mut fys = fyp.state;
                if fys != 0u32 {
                    hy = -h;
                    let fym = sky_at::<F>(u, v - h, params, poly, offsets, n1, proj, nz, wide);
                    fyl = fym.dlng;
                    fyb = fym.lat;
                    fys = fym.state;
                }
                if fxs != 0u32 || fys != 0u32 {
                    failed = true;
                } else {
                    let j00 = wrap180::<F>(fxl - f.dlng) / hx;
                    let j01 = wrap180::<F>(fyl - f.dlng) / hy;
                    let j10 = (fxb - f.lat) / hx;
                    let j11 = (fyb - f.lat) / hy;
                    let det = j00 * j11 - j01 * j10;
                    let rl = wrap180::<F>(tl - f.dlng);
                    let rb = tb - f.lat;
                    if F::abs(det) > zero {
                        du = (j11 * rl - j01 * rb) / det;
                        dv = (j00 * rb - j10 * rl) / det;
                        u += du;
                        v += dv;
                        done = F::abs(du) + F::abs(dv) < tolerance;
                        if comptime![!offsets && !wide] {
                            // f32 holds the native kernel's coordinates to a few 1e-6 degree: where
                            // the map stretches so much that this is more than 5e-4 pixel (near a
                            // cylindrical map's native poles), wcslib decides
                            let scale = F::sqrt(j00 * j00 + j01 * j01 + j10 * j10 + j11 * j11);
                            let error = F::new(1.5e-7) * F::max(F::max(F::abs(f.dlng), F::abs(f.lat)), one);
                            failed = error * scale > F::new(5.0e-4) * F::abs(det);
                        }
                    } else {
                        failed = true;
                    }
                }
            }
            step += 1u32;
        }
        if done {
            // the last step's point must lie in the domain too
            let last = sky_at::<F>(u, v, params, poly, offsets, n1, proj, nz, wide);
            done = last.state == 0u32;
        }
        if done {
            pixels[2 * i] = u + px0;
            pixels[2 * i + 1] = v + py0;
            state[i] = 0u32;
        } else {
            pixels[2 * i] = nan;
            pixels[2 * i + 1] = nan;
            state[i] = 2u32;
            let slot = counter[0].fetch_add(1u32);
            host[usize::cast_from(slot)] = u32::cast_from(i);
        }
    }
}

/// The pixels of the points listed in `host` (from entry `base` on): `out[2j..2j+2]` =
/// `pix[2 host[j]..]`.
#[cube(launch_unchecked)]
fn gather_pixels_kernel<F: Float>(host: &[u32], pix: &[F], out: &mut [F], base: u32) {
    let j = ABSOLUTE_POS + usize::cast_from(base);
    if 2 * j + 1 < out.len() {
        let i = usize::cast_from(host[j]);
        out[2 * j] = pix[2 * i];
        out[2 * j + 1] = pix[2 * i + 1];
    }
}

/// wcslib's results for the points listed in `host` (from entry `base` on) into `world` and
/// `state`: as points (`per` = 0) or as planes of `per` pixels.
#[cube(launch_unchecked)]
fn scatter_kernel<F: Float>(
    host: &[u32],
    values: &[F],
    states: &[u32],
    world: &mut [F],
    state: &mut [u32],
    base: u32,
    #[comptime] per: usize,
) {
    let j = ABSOLUTE_POS + usize::cast_from(base);
    if j < states.len() {
        let i = usize::cast_from(host[j]);
        let mut at0 = 2 * i;
        let mut at1 = 2 * i + 1;
        if comptime![per > 0] {
            at0 = (i / per) * 2 * per + i % per;
            at1 = at0 + per;
        }
        world[at0] = values[2 * j];
        world[at1] = values[2 * j + 1];
        state[i] = states[j];
    }
}

/// How the device computes a WCS.
#[derive(Debug, Clone)]
pub(crate) enum Path {
    /// The plain zenithal projections in f32 offsets from the reference point ([`offsets_sky`]):
    /// its parameter block, `proj` 0 TAN, 1 SIN, 2 ARC, 3 STG, 4 ZEA.
    Offsets { params: Vec<f64>, proj: u32 },
    /// The general kernel ([`native_sky`]), in f64 when `wide`: its parameter block, ZPN's
    /// coefficients (`nz + 1`).
    Native { params: Vec<f64>, poly: Vec<f64>, proj: u32, nz: usize, wide: bool },
}

/// What the kernels need of a WCS: the path and SIP's order + 1 (`n1`; 0: no SIP).
#[derive(Debug, Clone)]
pub(crate) struct Kernel {
    pub path: Path,
    pub n1: usize,
}

impl Kernel {
    /// The kernel for points given as offsets from the 0-based pixel `origin`.
    pub fn with_origin(&self, origin: [f64; 2]) -> Kernel {
        let mut k = self.clone();
        if origin != [0.0, 0.0] {
            let (at, params) = match &mut k.path {
                Path::Offsets { params, .. } => (0, params),
                Path::Native { params, .. } => (N_PIX0, params),
            };
            params[at] -= origin[0];
            params[at + 1] -= origin[1];
        }
        k
    }

    /// Whether the kernel computes in f64.
    pub fn wide(&self) -> bool {
        matches!(self.path, Path::Native { wide: true, .. })
    }
}

/// Points per launch: a dispatch of at most 16384 cubes of 256 (wgpu allows 65535 cubes per
/// dimension); longer lists take several launches over the same buffers.
pub(crate) const LAUNCH_POINTS: usize = 1 << 22;
const CUBE: usize = 256;

/// Calls `launch(base, cubes)` for each launch that covers `n` items.
fn in_launches(n: usize, mut launch: impl FnMut(u32, u32)) -> Result<()> {
    let mut base = 0;
    while base < n {
        let len = (n - base).min(LAUNCH_POINTS);
        let first = u32::try_from(base).map_err(|_| Error::new(ErrorKind::Parameter, "more than 2^32 points"))?;
        launch(first, len.div_ceil(CUBE) as u32);
        base += len;
    }
    Ok(())
}

/// The device buffers of a launch: world coordinates (`F`, two per point: as points, or planes
/// of `per` pixels), a state per point, and the list of points left to the host.
pub(crate) struct Launched {
    pub world: Handle,
    pub state: Handle,
    counter: Handle,
    host: Handle,
    pub points: usize,
    /// Pixels per plane (a grid of cutouts), or 0 (points).
    pub per: usize,
}

impl Launched {
    /// Buffers for `points` points (`float` bytes per value), as planes of `per` pixels (or 0).
    pub fn new(client: &cubecl::client::Client, points: usize, per: usize, float: usize) -> Launched {
        Launched {
            world: client.empty((2 * points * float).max(4)),
            state: client.empty((4 * points).max(4)),
            counter: transfers::upload(client, u32::as_bytes(&[0u32])),
            host: client.empty((4 * points).max(4)),
            points,
            per,
        }
    }
}

impl Launched {
    /// Buffers holding `values` (two per point) and `states`, computed on the host (a WCS the
    /// kernels do not compute), as planes of `per` pixels (or 0).
    pub fn uploaded<F: DeviceFloat>(
        client: &cubecl::client::Client,
        values: &[f64],
        states: &[u32],
        per: usize,
    ) -> Launched {
        Launched {
            world: transfers::upload(client, F::as_bytes(&in_f::<F>(values))),
            state: transfers::upload(client, u32::as_bytes(states)),
            counter: transfers::upload(client, u32::as_bytes(&[0u32])),
            host: client.empty(4),
            points: states.len(),
            per,
        }
    }
}

fn in_f<F: DeviceFloat>(v: &[f64]) -> Vec<F> {
    v.iter().map(|&x| F::of(x)).collect()
}

/// Runs the kernel of `k` in `F` over the `n` (x, y) points of `pix` (0-based pixels, `F`, on
/// the device).
pub(crate) fn points<F: DeviceFloat>(
    client: &cubecl::client::Client,
    k: &Kernel,
    pix: &Handle,
    n: usize,
) -> Result<Launched> {
    let out = Launched::new(client, n, 0, std::mem::size_of::<F>());
    let n1 = k.n1;
    let arg = |h: &Handle, len: usize| {
        // SAFETY: `len` is the number of `F` (or u32) the buffer was created with.
        unsafe { BufferArg::from_raw_parts(h.clone(), len.max(1)) }
    };
    match &k.path {
        Path::Offsets { params, proj } => {
            if params.len() < O_SIP + 2 * n1 * n1 {
                return Err(Error::new(ErrorKind::Parameter, "the kernel's parameters are incomplete"));
            }
            let par = transfers::upload(client, F::as_bytes(&in_f::<F>(params)));
            in_launches(n, |base, cubes| {
                // SAFETY: the kernel reads `pix` and writes `world` below 2n, `state` and `host`
                // below n (each point's index is checked against `state`'s length, n; a host
                // slot is below the number of points); it reads `params` below O_SIP + 2 n1^2
                // (checked above).
                unsafe {
                    offsets_points_kernel::launch_unchecked::<F>(
                        client,
                        CubeCount::Static(cubes, 1, 1),
                        CubeDim::new_1d(CUBE as u32),
                        arg(pix, 2 * n),
                        arg(&par, params.len()),
                        arg(&out.world, 2 * n),
                        arg(&out.state, n),
                        arg(&out.counter, 1),
                        arg(&out.host, n),
                        base,
                        n1,
                        *proj,
                    )
                }
            })?;
        }
        Path::Native { params, poly, proj, nz, .. } => {
            if params.len() < N_SIP + 2 * n1 * n1 || poly.len() <= *nz {
                return Err(Error::new(ErrorKind::Parameter, "the kernel's parameters are incomplete"));
            }
            let par = transfers::upload(client, F::as_bytes(&in_f::<F>(params)));
            let pol = transfers::upload(client, F::as_bytes(&in_f::<F>(poly)));
            in_launches(n, |base, cubes| {
                // SAFETY: as for the offsets kernel; `poly` is read up to nz (checked above).
                unsafe {
                    native_points_kernel::launch_unchecked::<F>(
                        client,
                        CubeCount::Static(cubes, 1, 1),
                        CubeDim::new_1d(CUBE as u32),
                        arg(pix, 2 * n),
                        arg(&par, params.len()),
                        arg(&pol, poly.len()),
                        arg(&out.world, 2 * n),
                        arg(&out.state, n),
                        arg(&out.counter, 1),
                        arg(&out.host, n),
                        base,
                        n1,
                        *proj,
                        *nz,
                        std::mem::size_of::<F>() == 8,
                    )
                }
            })?;
        }
    }
    Ok(out)
}

/// Runs [`world_to_pixel_kernel`] in `F` for `k` over the `n` world points of `world` (`F`, on the
/// device, world-axis order).
pub(crate) fn world_to_pixel<F: DeviceFloat>(
    client: &cubecl::client::Client,
    k: &Kernel,
    world: &Handle,
    n: usize,
) -> Result<Launched> {
    let out = Launched::new(client, n, 0, std::mem::size_of::<F>());
    let n1 = k.n1;
    let (params, poly, offsets, proj, nz) = match &k.path {
        Path::Offsets { params, proj } => (params, &vec![0.0], true, *proj, 0),
        Path::Native { params, poly, proj, nz, .. } => (params, poly, false, *proj, *nz),
    };
    let need = if offsets { O_SIP } else { N_SIP } + 2 * n1 * n1;
    if params.len() < need || poly.len() <= nz {
        return Err(Error::new(ErrorKind::Parameter, "the kernel's parameters are incomplete"));
    }
    let par = transfers::upload(client, F::as_bytes(&in_f::<F>(params)));
    let pol = transfers::upload(client, F::as_bytes(&in_f::<F>(poly)));
    in_launches(n, |base, cubes| {
        // SAFETY: point i < n (checked against `state`'s length, n) reads `world` and writes
        // `pixels` below 2n, `state` below n and one host slot below n; `params` is read below
        // its checked length, `poly` up to nz.
        unsafe {
            world_to_pixel_kernel::launch_unchecked::<F>(
                client,
                CubeCount::Static(cubes, 1, 1),
                CubeDim::new_1d(CUBE as u32),
                BufferArg::from_raw_parts(world.clone(), (2 * n).max(1)),
                BufferArg::from_raw_parts(par.clone(), params.len()),
                BufferArg::from_raw_parts(pol.clone(), poly.len()),
                BufferArg::from_raw_parts(out.world.clone(), (2 * n).max(1)),
                BufferArg::from_raw_parts(out.state.clone(), n.max(1)),
                BufferArg::from_raw_parts(out.counter.clone(), 1),
                BufferArg::from_raw_parts(out.host.clone(), n.max(1)),
                base,
                offsets,
                n1,
                proj,
                nz,
                std::mem::size_of::<F>() == 8,
            )
        }
    })?;
    Ok(out)
}

/// A grid of cutouts for [`grid`]: every WCS's parameter block (`block_len` values each, all of
/// one projection, SIP order and ZPN coefficients), and per cutout its first pixel's offset
/// (u, v: the 1-based pixel minus CRPIX), the number of its WCS's block and its slot in the
/// output.
pub(crate) struct Grid<'a> {
    pub params: &'a [f64],
    pub block_len: usize,
    pub poly: &'a [f64],
    pub n1: usize,
    pub proj: u32,
    pub nz: usize,
    pub origins: &'a [f64],
    pub blocks: &'a [u32],
    pub slots: &'a [u32],
    pub width: usize,
    pub height: usize,
}

/// Runs the general kernel in `F` over every pixel of the cutouts of `g`, into their slots of
/// `out` (made by [`Launched::new`] with planes of `width * height` pixels): one launch (or
/// several, over the same buffers, beyond [`LAUNCH_POINTS`] pixels).
pub(crate) fn grid<F: DeviceFloat>(client: &cubecl::client::Client, g: &Grid<'_>, out: &Launched) -> Result<()> {
    let cutouts = g.blocks.len();
    let per = g.width.checked_mul(g.height).ok_or_else(|| Error::new(ErrorKind::Parameter, "cutouts too large"))?;
    let n = per.checked_mul(cutouts).ok_or_else(|| Error::new(ErrorKind::Parameter, "grid too large"))?;
    let blocks_held = g.params.len() / g.block_len.max(1);
    let slots_held = out.points / per.max(1);
    if per == 0
        || per != out.per
        || g.origins.len() != 2 * cutouts
        || g.slots.len() != cutouts
        || g.block_len < N_SIP + 2 * g.n1 * g.n1
        || g.blocks.iter().any(|&b| b as usize >= blocks_held)
        || g.slots.iter().any(|&s| s as usize >= slots_held)
        || g.poly.len() <= g.nz
    {
        return Err(Error::new(ErrorKind::Parameter, "the grid's parameters are incomplete"));
    }
    if n == 0 {
        return Ok(());
    }
    let arg = |h: &Handle, len: usize| {
        // SAFETY: `len` is the number of values the buffer was created with.
        unsafe { BufferArg::from_raw_parts(h.clone(), len.max(1)) }
    };
    let ori = transfers::upload(client, F::as_bytes(&in_f::<F>(g.origins)));
    let blk = transfers::upload(client, u32::as_bytes(g.blocks));
    let slt = transfers::upload(client, u32::as_bytes(g.slots));
    let par = transfers::upload(client, F::as_bytes(&in_f::<F>(g.params)));
    let pol = transfers::upload(client, F::as_bytes(&in_f::<F>(g.poly)));
    in_launches(n, |base, cubes| {
        // SAFETY: pixel `local` < n (checked against blocks.len() * per) belongs to cutout
        // local / per < cutouts, whose origin, block number and slot exist; its block number is
        // below the blocks `params` holds (checked above), each block_len long (at least
        // N_SIP + 2 n1^2, checked above); its slot is below the slots `out` holds (checked
        // above), so its point index is below out.points and its world values below
        // 2 out.points.
        unsafe {
            native_grid_kernel::launch_unchecked::<F>(
                client,
                CubeCount::Static(cubes, 1, 1),
                CubeDim::new_1d(CUBE as u32),
                arg(&ori, g.origins.len()),
                arg(&blk, cutouts),
                arg(&slt, cutouts),
                arg(&par, g.params.len()),
                arg(&pol, g.poly.len()),
                arg(&out.world, 2 * out.points),
                arg(&out.state, out.points),
                arg(&out.counter, 1),
                arg(&out.host, out.points),
                base,
                g.n1,
                g.proj,
                g.nz,
                g.block_len,
                g.width,
                g.height,
                std::mem::size_of::<F>() == 8,
            )
        }
    })
}

/// The indices of the points a launch left to the host: its counter read back (4 bytes), then,
/// if any, that many indices (their order is the device's).
pub(crate) fn host_list(client: &cubecl::client::Client, l: &Launched) -> Result<Vec<u32>> {
    let bytes = transfers::download(client, l.counter.clone())?;
    let count = bytes.get(..4).map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]])) as usize;
    if count == 0 {
        return Ok(Vec::new());
    }
    if count > l.points {
        return Err(Error::new(ErrorKind::Parameter, "the kernel counted more host points than points"));
    }
    let unused = (4 * (l.points - count)) as u64;
    let bytes = transfers::download(client, l.host.clone().offset_end(unused))?;
    Ok(u32::from_bytes(&bytes).to_vec())
}

/// The pixels (x, y) of the points `list` of the `F` points of `pix`, gathered on the device and
/// read back.
pub(crate) fn gather_pixels<F: DeviceFloat>(
    client: &cubecl::client::Client,
    l: &Launched,
    pix: &Handle,
    count: usize,
) -> Result<Vec<f64>> {
    let out = client.empty(2 * count * std::mem::size_of::<F>());
    in_launches(count, |base, cubes| {
        // SAFETY: entry j < count of the host list (which holds `count` indices, each below the
        // launch's points) reads `pix` below 2 points and writes `out` below 2 count.
        unsafe {
            gather_pixels_kernel::launch_unchecked::<F>(
                client,
                CubeCount::Static(cubes, 1, 1),
                CubeDim::new_1d(CUBE as u32),
                BufferArg::from_raw_parts(l.host.clone(), l.points.max(1)),
                BufferArg::from_raw_parts(pix.clone(), 2 * l.points),
                BufferArg::from_raw_parts(out.clone(), 2 * count),
                base,
            )
        }
    })?;
    let bytes = transfers::download(client, out)?;
    Ok(F::from_bytes(&bytes).iter().map(|&v| v.wide()).collect())
}

/// Writes wcslib's world coordinates (`values`, two per point, in world-axis order) and states
/// of the first `states.len()` points of the host list into the launch's buffers.
pub(crate) fn scatter<F: DeviceFloat>(
    client: &cubecl::client::Client,
    l: &Launched,
    values: &[f64],
    states: &[u32],
) -> Result<()> {
    scatter_to::<F>(client, l, &l.host, l.points, values, states)
}

/// Writes whole planes computed on the host into slots `slots` of a grid launch: `planes`
/// `[slots, 2, h, w]`, `states` `[slots, h, w]`.
pub(crate) fn write_planes<F: DeviceFloat>(
    client: &cubecl::client::Client,
    l: &Launched,
    slots: &[u32],
    planes: &[f64],
    states: &[u32],
) -> Result<()> {
    let per = l.per;
    if per == 0
        || planes.len() != 2 * per * slots.len()
        || states.len() != per * slots.len()
        || slots.iter().any(|&s| (s as usize + 1) * per > l.points)
    {
        return Err(Error::new(ErrorKind::Parameter, "planes do not match the grid"));
    }
    let list: Vec<u32> = slots.iter().flat_map(|&s| (0..per).map(move |r| s * per as u32 + r as u32)).collect();
    let values: Vec<f64> = (0..slots.len())
        .flat_map(|c| (0..per).flat_map(move |r| [planes[2 * per * c + r], planes[2 * per * c + per + r]]))
        .collect();
    let idx = transfers::upload(client, u32::as_bytes(&list));
    scatter_to::<F>(client, l, &idx, list.len(), &values, states)
}

/// Writes `values` (two per point) and `states` at the points `list` names (a device buffer of
/// `list_len` u32, each below `l.points`).
fn scatter_to<F: DeviceFloat>(
    client: &cubecl::client::Client,
    l: &Launched,
    list: &Handle,
    list_len: usize,
    values: &[f64],
    states: &[u32],
) -> Result<()> {
    let count = states.len();
    if count == 0 {
        return Ok(());
    }
    if values.len() != 2 * count || count > list_len || count > l.points {
        return Err(Error::new(ErrorKind::Parameter, "host results do not match the host list"));
    }
    let val = transfers::upload(client, F::as_bytes(&in_f::<F>(values)));
    let st = transfers::upload(client, u32::as_bytes(states));
    in_launches(count, |base, cubes| {
        // SAFETY: entry j < count reads `list` (list_len >= count entries), `values` below
        // 2 count and `states` below count; the point it names is below l.points (the host list
        // holds the kernel's own point indices; a plane list is built from slots below the
        // grid's), so its world values lie below 2 l.points and its state below l.points.
        unsafe {
            scatter_kernel::launch_unchecked::<F>(
                client,
                CubeCount::Static(cubes, 1, 1),
                CubeDim::new_1d(CUBE as u32),
                BufferArg::from_raw_parts(list.clone(), list_len.max(1)),
                BufferArg::from_raw_parts(val.clone(), 2 * count),
                BufferArg::from_raw_parts(st.clone(), count),
                BufferArg::from_raw_parts(l.world.clone(), 2 * l.points),
                BufferArg::from_raw_parts(l.state.clone(), l.points),
                base,
                l.per,
            )
        }
    })
}

/// Reads a buffer of `F` back as f64 (counted).
pub(crate) fn read_floats<F: DeviceFloat>(client: &cubecl::client::Client, h: &Handle) -> Result<Vec<f64>> {
    let bytes = transfers::download(client, h.clone())?;
    Ok(F::from_bytes(&bytes).iter().map(|&v| v.wide()).collect())
}

/// Reads a buffer of u32 back (counted).
pub(crate) fn read_u32s(client: &cubecl::client::Client, h: &Handle) -> Result<Vec<u32>> {
    let bytes = transfers::download(client, h.clone())?;
    Ok(u32::from_bytes(&bytes).to_vec())
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
