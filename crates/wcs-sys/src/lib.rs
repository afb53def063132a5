//! A thin binding to the system wcslib (found by pkg-config): a C shim (`shim/shim.c`) over
//! `wcspih`/`wcsbth`, `wcsfixi`, `wcsset`, `wcsp2s`, `wcss2p`, `wcssub` and `wcsvfree` behind an
//! opaque handle, so that no Rust code depends on the layout of `struct wcsprm`.
//!
//! Everything here is `unsafe` FFI; torchfits-core wraps it in a safe `Wcs`.

#![allow(non_camel_case_types)]
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, clippy::string_slice)
)]

use std::os::raw::{c_char, c_double, c_int};

/// The shim's opaque handle over one `wcsprm`.
#[repr(C)]
pub struct tfw_wcs {
    _private: [u8; 0],
}

/// Doubles in the parameter block of `tfw_celestial_params` (the shim's `TFW_NPARAMS`).
pub const NPARAMS: usize = 50;

unsafe extern "C" {
    /// Parses a header of `nkeyrec` cards (NUL-terminated), picks alternate `alt`, fixes and sets
    /// it (without its PVi_m if `drop_pv`); NULL on error (message in `err`). No WCS keywords at
    /// all: wcslib's default 2-axis identity, `*nowcs` set.
    pub fn tfw_parse(
        header: *mut c_char,
        nkeyrec: c_int,
        alt: c_char,
        table: c_int,
        drop_pv: c_int,
        nowcs: *mut c_int,
        err: *mut c_char,
        errlen: c_int,
    ) -> *mut tfw_wcs;
    /// A deep copy, or NULL.
    pub fn tfw_copy(src: *const tfw_wcs) -> *mut tfw_wcs;
    /// How many times the shim has switched wcslib's messages off: 1, once any parse has run
    /// (it does so once per process, under `pthread_once`).
    pub fn tfw_wcserr_enable_calls() -> c_int;
    /// Frees a handle (NULL is ignored).
    pub fn tfw_free(w: *mut tfw_wcs);
    /// Number of axes.
    pub fn tfw_naxis(w: *const tfw_wcs) -> c_int;
    /// Index of the longitude axis, -1 if none.
    pub fn tfw_lng(w: *const tfw_wcs) -> c_int;
    /// Index of the latitude axis, -1 if none.
    pub fn tfw_lat(w: *const tfw_wcs) -> c_int;
    /// Pixel (1-based) to world; `scratch` holds `2*ncoord*naxis + 2*ncoord` doubles.
    pub fn tfw_p2s(
        w: *mut tfw_wcs,
        ncoord: c_int,
        pix: *const c_double,
        world: *mut c_double,
        stat: *mut c_int,
        scratch: *mut c_double,
    ) -> c_int;
    /// World to pixel (1-based), as `tfw_p2s`.
    pub fn tfw_s2p(
        w: *mut tfw_wcs,
        ncoord: c_int,
        world: *const c_double,
        pix: *mut c_double,
        stat: *mut c_int,
        scratch: *mut c_double,
    ) -> c_int;
    /// The handle's last error message (NUL-terminated, empty when none).
    pub fn tfw_errmsg(w: *const tfw_wcs) -> *const c_char;
    /// The projection code (3 characters and a NUL; empty when not celestial).
    pub fn tfw_projection(w: *const tfw_wcs, code: *mut c_char);
    /// The resolved parameters of a plain celestial WCS (2 axes, no wcslib distortions; the
    /// layout is in the shim), [`NPARAMS`] doubles, and its projection code; 1 if it is one.
    pub fn tfw_celestial_params(w: *const tfw_wcs, out: *mut c_double, code: *mut c_char) -> c_int;
}
