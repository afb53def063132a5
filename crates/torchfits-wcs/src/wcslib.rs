//! wcslib, through the wcs-sys shim, behind a safe handle.
//! Every `unsafe` block of the crate: raw pointers never leave this module, and each block says
//! why it is sound in a `// SAFETY:` line.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_char, c_int};
use std::ptr::NonNull;

use torchfits_format::error::{Error, Result};

/// One wcslib `wcsprm`, parsed, fixed and set up (through the wcs-sys shim). Each thread
/// transforms with its own (see `Wcs`): wcslib's transforms write into the struct.
#[derive(Debug)]
pub(crate) struct WcsHandle {
    ptr: NonNull<wcs_sys::tfw_wcs>,
}

// SAFETY: a handle is used by one thread at a time (`&mut self` for transforms); wcslib keeps no
// global state for a parsed, set-up wcsprm.
unsafe impl Send for WcsHandle {}

/// Why wcslib gave no WCS: its message.
pub(crate) struct WcsParseError(pub String);

impl WcsHandle {
    /// Parses 80-byte `cards` (no END) into the WCS of alternate `alt`; `table`: wcsbth's
    /// binary-table keywords.
    /// Without WCS keywords: wcslib's default 2-axis identity (`true` in the result), as astropy.
    pub(crate) fn parse(
        cards: &[u8],
        alt: char,
        table: bool,
        drop_pv: bool,
    ) -> std::result::Result<(WcsHandle, bool), WcsParseError> {
        let nkeyrec = c_int::try_from(cards.len() / 80).map_err(|_| WcsParseError("header too long".into()))?;
        let mut text = cards.to_vec();
        text.push(0);
        let mut err = vec![0 as c_char; 512];
        let mut nowcs: c_int = 0;
        // SAFETY: `text` is NUL-terminated and holds `nkeyrec` 80-byte cards; `err` holds 512
        // bytes; the shim returns an owned handle or NULL.
        let ptr = unsafe {
            wcs_sys::tfw_parse(
                text.as_mut_ptr().cast(),
                nkeyrec,
                alt as u8 as c_char,
                c_int::from(table),
                c_int::from(drop_pv),
                &mut nowcs,
                err.as_mut_ptr(),
                512,
            )
        };
        match NonNull::new(ptr) {
            Some(ptr) => Ok((WcsHandle { ptr }, nowcs != 0)),
            None => {
                // SAFETY: the shim wrote a NUL-terminated message into `err`.
                let msg = unsafe { CStr::from_ptr(err.as_ptr()) }.to_string_lossy().into_owned();
                Err(WcsParseError(msg))
            }
        }
    }

    /// A deep copy for another thread.
    pub(crate) fn copy(&self) -> Result<WcsHandle> {
        // SAFETY: `self.ptr` is a live handle; the shim returns an owned copy or NULL.
        let ptr = unsafe { wcs_sys::tfw_copy(self.ptr.as_ptr()) };
        NonNull::new(ptr).map(|ptr| WcsHandle { ptr }).ok_or_else(|| Error::decoding("wcslib cannot copy the WCS"))
    }

    pub(crate) fn naxis(&self) -> usize {
        // SAFETY: a live handle.
        usize::try_from(unsafe { wcs_sys::tfw_naxis(self.ptr.as_ptr()) }).unwrap_or(0)
    }

    /// (longitude axis, latitude axis), when celestial.
    pub(crate) fn celestial_axes(&self) -> Option<(usize, usize)> {
        // SAFETY: a live handle.
        let (lng, lat) = unsafe { (wcs_sys::tfw_lng(self.ptr.as_ptr()), wcs_sys::tfw_lat(self.ptr.as_ptr())) };
        Some((usize::try_from(lng).ok()?, usize::try_from(lat).ok()?))
    }

    /// The celestial projection code (`TAN`, ...), empty when not celestial.
    pub(crate) fn projection(&self) -> String {
        let mut code = [0 as c_char; 4];
        // SAFETY: a live handle; `code` holds 4 bytes, the shim writes at most 3 and a NUL.
        unsafe { wcs_sys::tfw_projection(self.ptr.as_ptr(), code.as_mut_ptr()) };
        // SAFETY: NUL-terminated by the shim.
        unsafe { CStr::from_ptr(code.as_ptr()) }.to_string_lossy().into_owned()
    }

    /// The resolved parameters of a plain celestial WCS (layout: see the shim) and its
    /// projection code.
    pub(crate) fn celestial_params(&self) -> Option<([f64; wcs_sys::NPARAMS], [u8; 3])> {
        let mut out = [0.0f64; wcs_sys::NPARAMS];
        let mut code = [0 as c_char; 4];
        // SAFETY: a live handle; `out` holds the NPARAMS doubles and `code` the 4 bytes the shim
        // writes.
        let ok = unsafe { wcs_sys::tfw_celestial_params(self.ptr.as_ptr(), out.as_mut_ptr(), code.as_mut_ptr()) };
        (ok == 1).then(|| (out, [code[0] as u8, code[1] as u8, code[2] as u8]))
    }

    /// Transforms `n = stat.len()` points: `forward` pixel (1-based) -> world, else world ->
    /// pixel. `scratch` is resized as needed. Points wcslib finds invalid get a nonzero `stat`.
    pub(crate) fn transform(
        &mut self,
        forward: bool,
        input: &[f64],
        output: &mut [f64],
        stat: &mut [c_int],
        scratch: &mut Vec<f64>,
    ) -> Result<()> {
        let naxis = self.naxis();
        let n = stat.len();
        if input.len() != n * naxis || output.len() != n * naxis {
            return Err(Error::parameter("coordinate arrays do not match the WCS's axes"));
        }
        if n == 0 {
            return Ok(());
        }
        let ncoord = c_int::try_from(n).map_err(|_| Error::parameter("too many points in one call"))?;
        scratch.resize(2 * n * naxis + 2 * n, 0.0);
        // SAFETY: a live handle owned by this thread; every array holds what the shim reads or
        // writes for `ncoord` points of `naxis` values (checked above), `scratch` its workspace.
        let status = unsafe {
            if forward {
                wcs_sys::tfw_p2s(
                    self.ptr.as_ptr(),
                    ncoord,
                    input.as_ptr(),
                    output.as_mut_ptr(),
                    stat.as_mut_ptr(),
                    scratch.as_mut_ptr(),
                )
            } else {
                wcs_sys::tfw_s2p(
                    self.ptr.as_ptr(),
                    ncoord,
                    input.as_ptr(),
                    output.as_mut_ptr(),
                    stat.as_mut_ptr(),
                    scratch.as_mut_ptr(),
                )
            }
        };
        // 8 / 9: some points invalid (flagged in `stat`), not a failure of the batch
        if status != 0 && status != 8 && status != 9 {
            // SAFETY: a live handle; the message is NUL-terminated.
            let msg = unsafe { CStr::from_ptr(wcs_sys::tfw_errmsg(self.ptr.as_ptr())) }.to_string_lossy().into_owned();
            return Err(Error::decoding(format!("wcslib (status {status}): {msg}")));
        }
        Ok(())
    }
}

/// How many times wcslib's messages have been switched off in this process: 1 once any WCS has
/// been parsed (the switch is a global wcslib reads on every call, written once).
#[cfg(test)]
pub(crate) fn message_switches() -> i32 {
    // SAFETY: takes no argument; the shim guards its one write with pthread_once.
    unsafe { wcs_sys::tfw_wcserr_enable_calls() }
}

impl Drop for WcsHandle {
    fn drop(&mut self) {
        // SAFETY: the handle is live and freed exactly once, here.
        unsafe { wcs_sys::tfw_free(self.ptr.as_ptr()) };
    }
}
