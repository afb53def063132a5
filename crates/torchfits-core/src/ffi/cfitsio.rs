//! cfitsio's C API, behind safe wrappers.
//!
//! A [`Handle`] owns one `fitsfile*`. It is `Send` but not `Sync`: every method takes `&mut self`,
//! so one thread at a time uses it, and parallel readers open one handle each. cfitsio keeps some
//! global state (the error message stack, its table of open files); it is safe to use from several
//! threads only when it was built reentrant (`fits_is_reentrant()`). When it was not, every call
//! here takes one process-wide lock instead, so correctness never depends on how the system library
//! was configured.

use std::ffi::{CStr, CString, c_char, c_int, c_long, c_void};
use std::path::Path;
use std::ptr::{self, NonNull};
use std::sync::{Mutex, MutexGuard, OnceLock};

use fitsio_sys as sys;

use torchfits_format::error::{CfitsioError, Error, Result};

unsafe extern "C" {
    /// cfitsio's raw read at the current position (`fitsio2.h`, exported by libcfitsio; not in
    /// fitsio-sys's bindings).
    fn ffgbyt(fptr: *mut sys::fitsfile, nbytes: i64, buffer: *mut c_void, status: *mut c_int) -> c_int;
    /// IRAF's PLIO line-list encoder, as cfitsio builds it (`fitsio2.h`).
    fn pl_p2li(pxsrc: *mut c_int, xs: c_int, lldst: *mut std::os::raw::c_short, npix: c_int) -> c_int;
}

/// cfitsio's H-compress coder keeps its state in static variables: one call at a time.
static HCOMPRESS: Mutex<()> = Mutex::new(());

/// HCOMPRESS_1 of one tile of `nx` x `ny` pixels (x fastest) at `scale`; 64-bit coder for 32-bit
/// images. The output buffer is sized for incompressible data
/// (cfitsio's own tile writer sizes it too small and corrupts its heap on such tiles).
pub(crate) fn hcompress(pixels: &[i32], nx: usize, ny: usize, scale: i32, wide: bool) -> Result<Vec<u8>> {
    if nx * ny != pixels.len() || nx == 0 || ny == 0 {
        return Err(Error::parameter("an HCOMPRESS tile of no pixels"));
    }
    let (cx, cy) = (c_int::try_from(nx), c_int::try_from(ny));
    let (Ok(cx), Ok(cy)) = (cx, cy) else { return Err(Error::parameter("an HCOMPRESS tile too large")) };
    let cap = pixels
        .len()
        .checked_mul(24)
        .and_then(|b| b.checked_add(4096))
        .ok_or_else(|| Error::parameter("tile too large"))?;
    let mut out = vec![0u8; cap];
    let mut nbytes: c_long = c_long::try_from(cap).map_err(|_| Error::parameter("tile too large"))?;
    let mut status: c_int = 0;
    let _g = HCOMPRESS.lock().unwrap_or_else(|p| p.into_inner());
    // the coders transform their input in place: a copy of the tile, in the coder's type
    if wide {
        let mut longs: Vec<i64> = pixels.iter().map(|&v| i64::from(v)).collect();
        // SAFETY: `longs` holds nx*ny LONGLONGs, `out` holds `nbytes` bytes (cfitsio checks
        // against it); both outlive the call; the coder's statics are guarded by the lock.
        unsafe {
            sys::fits_hcompress64(longs.as_mut_ptr(), cy, cx, scale, out.as_mut_ptr().cast(), &mut nbytes, &mut status)
        };
    } else {
        let mut ints: Vec<c_int> = pixels.to_vec();
        // SAFETY: as above, with nx*ny C ints.
        unsafe {
            sys::fits_hcompress(ints.as_mut_ptr(), cy, cx, scale, out.as_mut_ptr().cast(), &mut nbytes, &mut status)
        };
    }
    check(status, "cannot H-compress a tile")?;
    out.truncate(usize::try_from(nbytes).unwrap_or(0).min(cap));
    Ok(out)
}

/// PLIO_1 of one tile (values 0 to 2^24 - 1, checked by the caller): the line list as shorts.
pub(crate) fn plio(pixels: &mut [i32]) -> Result<Vec<i16>> {
    let n = c_int::try_from(pixels.len()).map_err(|_| Error::parameter("a PLIO tile too large"))?;
    // a line list never takes more than 3 shorts a pixel plus its header
    let cap = pixels
        .len()
        .checked_mul(4)
        .and_then(|c| c.checked_add(64))
        .ok_or_else(|| Error::parameter("tile too large"))?;
    let mut out = vec![0i16; cap];
    // SAFETY: `pixels` holds `n` C ints, `out` more shorts than the encoder can write for them.
    let len = unsafe { pl_p2li(pixels.as_mut_ptr(), 1, out.as_mut_ptr(), n) };
    let len = usize::try_from(len).map_err(|_| Error::decoding("the PLIO coder failed"))?;
    out.truncate(len.min(cap));
    Ok(out)
}
use torchfits_format::pixel::{Dtype, Pixel};

/// Whether the linked cfitsio was built reentrant (thread-safe with one handle per thread).
pub(crate) fn is_reentrant() -> bool {
    static REENTRANT: OnceLock<bool> = OnceLock::new();
    // SAFETY: fits_is_reentrant takes no arguments and reads a compile-time constant.
    *REENTRANT.get_or_init(|| unsafe { sys::fits_is_reentrant() } != 0)
}

/// The process-wide lock taken around every cfitsio call when cfitsio is not reentrant.
fn serialise() -> Option<MutexGuard<'static, ()>> {
    static LOCK: Mutex<()> = Mutex::new(());
    if is_reentrant() { None } else { Some(LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())) }
}

/// cfitsio's status text and message stack for `status`; empties the stack.
fn cfitsio_error(status: c_int) -> CfitsioError {
    let mut text = [0 as c_char; 32];
    // SAFETY: ffgerr writes at most FLEN_STATUS (31 chars + NUL) into `text`, which has 32.
    unsafe { sys::ffgerr(status, text.as_mut_ptr()) };
    // SAFETY: ffgerr NUL-terminates `text`.
    let text = unsafe { CStr::from_ptr(text.as_ptr()) }.to_string_lossy().into_owned();
    let mut messages = Vec::new();
    loop {
        let mut msg = [0 as c_char; 96];
        // SAFETY: ffgmsg writes at most FLEN_ERRMSG (80 chars + NUL) into `msg`, which has 96,
        // and returns 0 when the stack is empty.
        let more = unsafe { sys::ffgmsg(msg.as_mut_ptr()) };
        if more == 0 {
            break;
        }
        // SAFETY: ffgmsg NUL-terminates `msg`.
        let m = unsafe { CStr::from_ptr(msg.as_ptr()) }.to_string_lossy().trim_end().to_string();
        messages.push(m);
        if messages.len() > 64 {
            break;
        }
    }
    CfitsioError { status, text, messages }
}

/// `path` as the NUL-terminated bytes cfitsio takes (literally: no character is special).
fn c_path(path: &Path) -> Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(path.as_os_str().as_bytes()).map_err(|_| Error::parameter("the path contains a NUL byte"))
}

fn check(status: c_int, what: &str) -> Result<()> {
    if status > 0 { Err(Error::from_cfitsio(cfitsio_error(status), what)) } else { Ok(()) }
}

/// cfitsio's data type code for a pixel type: the buffer cfitsio writes into must have exactly
/// this element type, which is why [`Pixel`] is sealed.
fn datatype(dtype: Dtype) -> c_int {
    match dtype {
        Dtype::U8 => 11,  // TBYTE
        Dtype::I8 => 12,  // TSBYTE
        Dtype::U16 => 20, // TUSHORT
        Dtype::I16 => 21, // TSHORT
        Dtype::U32 => 30, // TUINT (C unsigned int is 32-bit on every platform we build for)
        Dtype::I32 => 31, // TINT
        Dtype::U64 => 80, // TULONGLONG
        Dtype::I64 => 81, // TLONGLONG
        Dtype::F32 => 42, // TFLOAT
        Dtype::F64 => 82, // TDOUBLE
    }
}

const _: () = assert!(std::mem::size_of::<c_int>() == 4 && std::mem::size_of::<c_long>() == 8);

/// One open cfitsio file.
#[derive(Debug)]
pub(crate) struct Handle {
    ptr: NonNull<sys::fitsfile>,
}

// SAFETY: a `fitsfile` has no thread affinity; `Handle` is not `Sync` and every use goes through
// `&mut self`, so one thread at a time touches it. cfitsio's shared globals are either protected by
// cfitsio itself (reentrant build) or by `serialise()`.
unsafe impl Send for Handle {}

/// cfitsio handles opened on existing files by this process.
static OPENED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many cfitsio handles this process has opened on existing files.
pub(crate) fn handles_opened() -> u64 {
    OPENED.load(std::sync::atomic::Ordering::Relaxed)
}

impl Handle {
    /// Opens `path` read-only. `extended_syntax` selects `fits_open_file` (cfitsio's filename
    /// syntax: filters, URLs, pipes); otherwise `fits_open_diskfile` takes the name literally.
    pub(crate) fn open(path: &Path, extended_syntax: bool) -> Result<Handle> {
        let cpath = c_path(path)?;
        OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _g = serialise();
        let mut fptr: *mut sys::fitsfile = ptr::null_mut();
        let mut status: c_int = 0;
        // SAFETY: `cpath` is NUL-terminated and outlives the call; `fptr` and `status` are valid
        // out-pointers. READONLY = 0.
        unsafe {
            if extended_syntax {
                sys::ffopen(&mut fptr, cpath.as_ptr(), 0, &mut status);
            } else {
                sys::ffdkopn(&mut fptr, cpath.as_ptr(), 0, &mut status);
            }
        }
        Handle::from_raw(fptr, status, "cannot open")
    }

    /// The handle cfitsio returned with `status`; on an error, the handle (if any) closed.
    fn from_raw(fptr: *mut sys::fitsfile, status: c_int, what: &str) -> Result<Handle> {
        if status > 0 {
            if !fptr.is_null() {
                let mut s2 = 0;
                // SAFETY: cfitsio returned a handle despite the error; close it once.
                unsafe { sys::ffclos(fptr, &mut s2) };
            }
            return Err(Error::from_cfitsio(cfitsio_error(status), what));
        }
        NonNull::new(fptr).map(|ptr| Handle { ptr }).ok_or_else(|| Error::decoding("cfitsio returned no handle"))
    }

    /// Number of HDUs in the file (cfitsio scans the whole file for this).
    pub(crate) fn num_hdus(&mut self) -> Result<usize> {
        let _g = serialise();
        let (mut n, mut status): (c_int, c_int) = (0, 0);
        // SAFETY: the handle is open; out-pointers are valid.
        unsafe { sys::ffthdu(self.ptr.as_ptr(), &mut n, &mut status) };
        check(status, "cannot count the HDUs")?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Moves to the 0-based HDU `index`; returns cfitsio's HDU type code.
    pub(crate) fn move_to(&mut self, index: usize) -> Result<c_int> {
        let hdunum = c_int::try_from(index + 1).map_err(|_| Error::parameter("HDU index too large"))?;
        let _g = serialise();
        let (mut kind, mut status): (c_int, c_int) = (0, 0);
        // SAFETY: the handle is open; out-pointers are valid.
        unsafe { sys::ffmahd(self.ptr.as_ptr(), hdunum, &mut kind, &mut status) };
        check(status, "cannot read the HDU")?;
        Ok(kind)
    }

    /// Number of cards in the current HDU's header (without END).
    pub(crate) fn card_count(&mut self) -> Result<usize> {
        let _g = serialise();
        let (mut nexist, mut nmore, mut status): (c_int, c_int, c_int) = (0, 0, 0);
        // SAFETY: the handle is open; out-pointers are valid.
        unsafe { sys::ffghsp(self.ptr.as_ptr(), &mut nexist, &mut nmore, &mut status) };
        check(status, "cannot read the header size")?;
        Ok(usize::try_from(nexist).unwrap_or(0))
    }

    /// The current HDU's header as raw 80-byte cards, in one call (`fits_hdr2str`). For a
    /// tile-compressed image these are the binary table's cards: the image header is derived in
    /// Rust (`fits_convert_hdr2str` fails on valid files whose ZTENSION card comes late).
    pub(crate) fn header_bytes(&mut self) -> Result<Vec<u8>> {
        let _g = serialise();
        let mut text: *mut c_char = ptr::null_mut();
        let (mut nkeys, mut status): (c_int, c_int) = (0, 0);
        // SAFETY: the handle is open; no exclusion list (NULL, 0); cfitsio allocates `text` and we
        // free it with fffree below.
        unsafe { sys::ffhdr2str(self.ptr.as_ptr(), 0, ptr::null_mut(), 0, &mut text, &mut nkeys, &mut status) };
        if text.is_null() {
            check(status, "cannot read the header")?;
            return Err(Error::decoding("cfitsio returned no header"));
        }
        // SAFETY: cfitsio returns a NUL-terminated string of nkeys*80 chars when text is not NULL.
        let bytes = unsafe { CStr::from_ptr(text) }.to_bytes().to_vec();
        let mut s2 = 0;
        // SAFETY: `text` was allocated by cfitsio and is freed once.
        unsafe { sys::fffree(text.cast::<c_void>(), &mut s2) };
        check(status, "cannot read the header")?;
        Ok(bytes)
    }

    /// Reads `section` (0-based, half-open, C order) of the current image HDU into `out`; see
    /// [`Handle::read_subset`].
    pub(crate) fn read_section<T: Pixel>(
        &mut self,
        section: &torchfits_format::pixel::Section,
        out: &mut [T],
        nan_nulls: bool,
    ) -> Result<()> {
        // cfitsio: 1-based, inclusive, FITS axis order (fastest first)
        let first: Vec<i64> = section.ranges().iter().rev().map(|r| r.start as i64 + 1).collect();
        let last: Vec<i64> = section.ranges().iter().rev().map(|r| r.end as i64).collect();
        self.read_subset(&first, &last, out, nan_nulls)
    }

    /// Reads `out.len()` raw bytes of the current table HDU's rows, from the start of 0-based row
    /// `first_row` (`fits_read_tblbytes`).
    pub(crate) fn read_table_bytes(&mut self, first_row: u64, out: &mut [u8]) -> Result<()> {
        let first = i64::try_from(first_row + 1).map_err(|_| Error::parameter("row number too large"))?;
        let n = i64::try_from(out.len()).map_err(|_| Error::parameter("read too large"))?;
        let _g = serialise();
        let mut status: c_int = 0;
        // SAFETY: the handle is open at a table HDU; `out` holds `n` writable bytes.
        unsafe { sys::ffgtbb(self.ptr.as_ptr(), first, 1, n, out.as_mut_ptr(), &mut status) };
        check(status, "cannot read the table")
    }

    /// Reads `out.len()` bytes from byte `at` of the file as cfitsio sees it (decompressed, for
    /// a gzip file), through its buffers.
    pub(crate) fn read_raw(&mut self, at: u64, out: &mut [u8]) -> Result<()> {
        let at = i64::try_from(at).map_err(|_| Error::parameter("offset too large"))?;
        let n = i64::try_from(out.len()).map_err(|_| Error::parameter("read too large"))?;
        let _g = serialise();
        let mut status: c_int = 0;
        // SAFETY: the handle is open; `out` holds `n` writable bytes. `ffmbyt` only moves the
        // file position (REPORT_EOF: reading past the end is an error, not a zero fill).
        unsafe {
            sys::ffmbyt(self.ptr.as_ptr(), at, 0, &mut status);
            ffgbyt(self.ptr.as_ptr(), n, out.as_mut_ptr().cast(), &mut status);
        }
        check(status, "cannot read the data")
    }

    /// Byte offsets of the current HDU: (header start, data start, data end).
    pub(crate) fn hdu_span(&mut self) -> Result<(u64, u64, u64)> {
        let _g = serialise();
        let (mut head, mut data, mut end, mut status): (i64, i64, i64, c_int) = (0, 0, 0, 0);
        // SAFETY: the handle is open; out-pointers are valid.
        unsafe { sys::ffghadll(self.ptr.as_ptr(), &mut head, &mut data, &mut end, &mut status) };
        check(status, "cannot locate the HDU")?;
        Ok((head.max(0) as u64, data.max(0) as u64, end.max(0) as u64))
    }

    /// Reads the pixels `first..=last` (1-based, FITS axis order, inclusive) of the current image
    /// HDU into `out`, converted by cfitsio to `T` (BSCALE/BZERO applied in double). For a float
    /// `T` and `nan_nulls`, undefined pixels (BLANK, compressed nulls) become NaN. A compressed image decodes only the tiles the
    /// range touches. `out.len()` must be the number of pixels in the range.
    pub(crate) fn read_subset<T: Pixel>(
        &mut self,
        first: &[i64],
        last: &[i64],
        out: &mut [T],
        nan_nulls: bool,
    ) -> Result<()> {
        let n = first.len();
        let count = first
            .iter()
            .zip(last)
            .try_fold(1usize, |acc, (&a, &b)| usize::try_from(b - a + 1).ok().and_then(|k| acc.checked_mul(k)));
        if n == 0 || last.len() != n || count != Some(out.len()) {
            return Err(Error::parameter("read range does not match the output buffer"));
        }
        if out.is_empty() {
            return Ok(());
        }
        let mut blc: Vec<c_long> = first.to_vec();
        let mut trc: Vec<c_long> = last.to_vec();
        let mut inc: Vec<c_long> = vec![1; n];
        let nan_f32 = f32::NAN;
        let nan_f64 = f64::NAN;
        let nulval: *mut c_void = match T::DTYPE {
            _ if !nan_nulls => ptr::null_mut(),
            Dtype::F32 => (&nan_f32 as *const f32).cast_mut().cast(),
            Dtype::F64 => (&nan_f64 as *const f64).cast_mut().cast(),
            _ => ptr::null_mut(),
        };
        let _g = serialise();
        let (mut anynul, mut status): (c_int, c_int) = (0, 0);
        // SAFETY: `out` holds exactly count elements of the C type `datatype(T::DTYPE)` (Pixel is
        // sealed and implemented only for the matching Rust types); blc/trc/inc have NAXIS entries
        // each; `nulval` is NULL or points to a value of type T alive for the call (cfitsio only
        // reads it).
        unsafe {
            sys::ffgsv(
                self.ptr.as_ptr(),
                datatype(T::DTYPE),
                blc.as_mut_ptr(),
                trc.as_mut_ptr(),
                inc.as_mut_ptr(),
                nulval,
                out.as_mut_ptr().cast::<c_void>(),
                &mut anynul,
                &mut status,
            )
        };
        check(status, "cannot read the image")
    }
}

/// What cfitsio needs to write a tile-compressed image (see `write::Compression`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CompressParams {
    /// RICE_1 = 11, GZIP_1 = 21, GZIP_2 = 22, PLIO_1 = 31, HCOMPRESS_1 = 41.
    pub algorithm: c_int,
    /// Tile shape in FITS axis order (x first), one per axis.
    pub tile: [i64; 9],
    /// Float quantisation level (0: lossless, GZIP only).
    pub quantize_level: f32,
    /// SUBTRACTIVE_DITHER_1 = 1, SUBTRACTIVE_DITHER_2 = 2, NO_DITHER = -1.
    pub dither: c_int,
    /// Seed of the dither (1..=10000), or 0 for cfitsio's clock-based one.
    pub dither_seed: c_int,
    /// HCOMPRESS scale (0: lossless).
    pub hcomp_scale: f32,
}

impl Handle {
    /// Creates a new FITS file at `path` (literally; an existing file is an error) holding an
    /// empty primary HDU.
    pub(crate) fn create(path: &Path) -> Result<Handle> {
        let cpath = c_path(path)?;
        let _g = serialise();
        let mut fptr: *mut sys::fitsfile = ptr::null_mut();
        let mut status: c_int = 0;
        // SAFETY: `cpath` is NUL-terminated and outlives the call; out-pointers are valid. An
        // empty primary array: BITPIX 8, no axes (the axes pointer is not read).
        unsafe {
            sys::ffdkinit(&mut fptr, cpath.as_ptr(), &mut status);
            if status <= 0 {
                sys::ffcrim(fptr, 8, 0, ptr::null_mut(), &mut status);
            }
        }
        Handle::from_raw(fptr, status, "cannot create")
    }

    /// Appends a tile-compressed image HDU of cfitsio image type `bitpix` (8, 10, 16, 20, 32, 40,
    /// 64, 80, -32, -64) and `shape` (FITS order) at the end of the file.
    pub(crate) fn append_compressed_image(&mut self, bitpix: c_int, shape: &[i64], p: &CompressParams) -> Result<()> {
        let mut naxes: Vec<i64> = shape.to_vec();
        let mut tile: Vec<c_long> = p.tile.iter().take(shape.len()).map(|&t| t as c_long).collect();
        let naxis = c_int::try_from(naxes.len()).map_err(|_| Error::parameter("too many axes"))?;
        let _g = serialise();
        let mut status: c_int = 0;
        // SAFETY: the handle is open read-write; `naxes` and `tile` hold `naxis` values and
        // outlive the calls; the setters only store parameters in the handle.
        unsafe {
            let f = self.ptr.as_ptr();
            sys::fits_set_compression_type(f, p.algorithm, &mut status);
            sys::fits_set_tile_dim(f, naxis, tile.as_mut_ptr(), &mut status);
            sys::fits_set_quantize_level(f, p.quantize_level, &mut status);
            if p.quantize_level != 0.0 {
                sys::fits_set_quantize_method(f, p.dither, &mut status);
                sys::fits_set_dither_seed(f, p.dither_seed, &mut status);
            }
            if p.algorithm == 41 {
                sys::fits_set_hcomp_scale(f, p.hcomp_scale, &mut status);
            }
            sys::ffcrimll(f, bitpix, naxis, naxes.as_mut_ptr(), &mut status);
        }
        check(status, "cannot create the compressed image")
    }

    /// Writes one 80-byte header record into the current HDU (before its END).
    pub(crate) fn write_record(&mut self, record: &[u8; 80]) -> Result<()> {
        let text = CString::new(record.to_vec()).map_err(|_| Error::parameter("a header card holds a NUL byte"))?;
        let _g = serialise();
        let mut status: c_int = 0;
        // SAFETY: the handle is open read-write; `text` is NUL-terminated and outlives the call.
        unsafe { sys::ffprec(self.ptr.as_ptr(), text.as_ptr(), &mut status) };
        check(status, "cannot write a header card")
    }

    /// Writes all pixels of the current image HDU from `data` (cfitsio converts, scales and
    /// compresses).
    pub(crate) fn write_pixels<T: Pixel>(&mut self, data: &[T]) -> Result<()> {
        let n = i64::try_from(data.len()).map_err(|_| Error::parameter("too many pixels"))?;
        let mut first = [1i64; 9];
        let _g = serialise();
        let mut status: c_int = 0;
        // SAFETY: the handle is open read-write at an image HDU of `data.len()` pixels; cfitsio
        // only reads `n` elements of the type `datatype` names, which is `T`'s (sealed `Pixel`).
        unsafe {
            sys::ffppxll(
                self.ptr.as_ptr(),
                datatype(T::DTYPE),
                first.as_mut_ptr(),
                n,
                data.as_ptr() as *mut c_void,
                &mut status,
            )
        };
        check(status, "cannot write the pixels")
    }

    /// Writes CHECKSUM and DATASUM into the current HDU's header.
    pub(crate) fn write_checksum(&mut self) -> Result<()> {
        let _g = serialise();
        let mut status: c_int = 0;
        // SAFETY: the handle is open read-write.
        unsafe { sys::ffpcks(self.ptr.as_ptr(), &mut status) };
        check(status, "cannot write the checksum")
    }

    /// Closes the file, reporting errors of the final flush.
    pub(crate) fn close(self) -> Result<()> {
        let this = std::mem::ManuallyDrop::new(self);
        let _g = serialise();
        let mut status: c_int = 0;
        // SAFETY: the handle is open and, wrapped in ManuallyDrop, is closed exactly once, here.
        unsafe { sys::ffclos(this.ptr.as_ptr(), &mut status) };
        check(status, "cannot close the file")
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        let _g = serialise();
        let mut status: c_int = 0;
        // SAFETY: the handle is open and is closed exactly once, here. Errors on closing a
        // read-only file are not actionable; the message stack is emptied.
        unsafe { sys::ffclos(self.ptr.as_ptr(), &mut status) };
        if status > 0 {
            let _ = cfitsio_error(status);
        }
    }
}
