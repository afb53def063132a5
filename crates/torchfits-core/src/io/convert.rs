//! The uncompressed fast path: bytes go from the file (`pread`, or a memory map) straight into the
//! caller's buffer, with one fused byte-swap + BSCALE/BZERO/BLANK pass, split across threads for
//! large reads. Sections read only the rows they need.
//!
//! The HDU index supplies the geometry and the data offset; this module never parses a header. Its
//! results are identical to cfitsio's (tests compare both paths on every pixel type).

// Indexing: indices come from a `Section` already checked against the image's shape
// (`Section::check`) and from lengths computed from it; the caller's buffer is checked to be the
// section's size before any read. No value read from a file indexes anything here.
#![allow(clippy::indexing_slicing)]

use bytemuck::Pod;

use torchfits_format::error::{Error, Result};

use crate::source::ByteSource;
use torchfits_format::pixel::{Dtype, Pixel, Section};

/// Raw bytes read per `pread` call (and converted while they are in cache).
const CHUNK_BYTES: usize = 256 * 1024;
thread_local! {
    /// Raw bytes of scaled reads, reused by each thread (at most [`CHUNK_BYTES`]).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Reads smaller than this (output bytes) stay on the calling thread.
const PARALLEL_MIN_BYTES: usize = 4 << 20;

/// How stored big-endian values become the output type.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Conversion {
    /// Byte swap, then flip the sign bit (`^ mask`, 0 for plain types): identity, unsigned via
    /// BZERO = 2^(n-1), int8 via BZERO = -128.
    Swap { xor: u64 },
    /// `raw * bscale + bzero` in double, rounded once to the float output; integer `blank` -> NaN.
    Scale { bscale: f64, bzero: f64, blank: Option<i64> },
    /// Into an integer type other than the image's own: `raw * bscale + bzero` (see
    /// [`cast_into`]); BLANK is a value like any other, as cfitsio converts into integers.
    Cast { bscale: f64, bzero: f64 },
}

/// What the fast path needs to read one image HDU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Plan {
    pub bitpix: i32,
    pub conversion: Conversion,
    /// Byte offset of the data in the file.
    pub data_offset: u64,
    /// Byte offset of the end of the data (without padding).
    pub data_end: u64,
}

impl Plan {
    /// The plan for reading an image of `bitpix` with scaling into its natural `dtype`, or `None`
    /// when the fast path does not apply (`dtype` is not the natural type).
    pub(crate) fn new(
        bitpix: i32,
        dtype: Dtype,
        bscale: f64,
        bzero: f64,
        blank: Option<i64>,
        data: (u64, u64),
    ) -> Option<Plan> {
        let stored = Dtype::stored(bitpix)?;
        let sign = |bits: u32| 1u64 << (bits - 1);
        let conversion = match (stored, dtype) {
            (s, d) if s == d && bscale == 1.0 && bzero == 0.0 => Conversion::Swap { xor: 0 },
            (Dtype::U8, Dtype::I8) => Conversion::Swap { xor: sign(8) },
            (Dtype::I16, Dtype::U16) => Conversion::Swap { xor: sign(16) },
            (Dtype::I32, Dtype::U32) => Conversion::Swap { xor: sign(32) },
            (Dtype::I64, Dtype::U64) => Conversion::Swap { xor: sign(64) },
            (_, Dtype::F32 | Dtype::F64) => Conversion::Scale { bscale, bzero, blank },
            _ => return None,
        };
        Some(Plan { bitpix, conversion, data_offset: data.0, data_end: data.1 })
    }

    fn stored_size(&self) -> usize {
        (self.bitpix.unsigned_abs() / 8) as usize
    }
}

/// Reads `section` of an image of `shape` into `out` by `plan`, with up to `threads` threads.
pub(crate) fn read_section<T: Pixel>(
    source: &dyn ByteSource,
    plan: &Plan,
    shape: &[usize],
    section: &Section,
    out: &mut [T],
    threads: usize,
) -> Result<()> {
    let runs = Runs::new(shape, section);
    let size = plan.stored_size();
    if source.remote() {
        return read_remote(source, plan, size, &runs, out);
    }
    let out_bytes = std::mem::size_of_val(out);
    let threads = if out_bytes >= PARALLEL_MIN_BYTES { threads.max(1) } else { 1 };
    // pieces: (first element in the file, element count), in output order
    let mut pieces: Vec<(u64, usize)> = Vec::new();
    if runs.count == 1 && threads > 1 {
        let per = runs.len.div_ceil(threads);
        let mut done = 0;
        while done < runs.len {
            let n = per.min(runs.len - done);
            pieces.push((runs.first + done as u64, n));
            done += n;
        }
    }
    if threads == 1 || pieces.is_empty() {
        if threads == 1 {
            touch_runs(source, plan, size, &runs);
            return runs
                .for_each(|start, n, k| read_run(source, plan, size, start, &mut out[k * runs.len..k * runs.len + n]));
        }
        runs.for_each(|start, n, _| {
            pieces.push((start, n));
            Ok(())
        })?;
    }
    // split the pieces into `threads` groups of consecutive output
    let groups = threads.min(pieces.len());
    let per_group = pieces.len().div_ceil(groups);
    std::thread::scope(|scope| {
        let mut rest: &mut [T] = out;
        let mut handles = Vec::with_capacity(groups);
        for group in pieces.chunks(per_group) {
            let n: usize = group.iter().map(|p| p.1).sum();
            let (mine, tail) = rest.split_at_mut(n);
            rest = tail;
            handles.push(scope.spawn(move || {
                let mut at = 0;
                for &(start, len) in group {
                    read_run(source, plan, size, start, &mut mine[at..at + len])?;
                    at += len;
                }
                Ok::<(), Error>(())
            }));
        }
        handles
            .into_iter()
            .try_for_each(|h| h.join().unwrap_or_else(|_| Err(Error::decoding("a reader thread panicked"))))
    })
}

/// The byte ranges of the file `section` of an image of `shape` reads by `plan`.
pub(crate) fn section_ranges(plan: &Plan, shape: &[usize], section: &Section) -> Vec<std::ops::Range<u64>> {
    let runs = Runs::new(shape, section);
    let size = plan.stored_size() as u64;
    let mut ranges = Vec::with_capacity(runs.count);
    let _ = runs.for_each(|start, n, _| {
        let at = plan.data_offset + start * size;
        ranges.push(at..at + n as u64 * size);
        Ok(())
    });
    ranges
}

/// The bytes a remote section read fetches before it converts them: the window bounds the
/// memory a read of a large image holds in the block cache at once.
const REMOTE_WINDOW_BYTES: u64 = 32 << 20;

/// Reads a section from a remote source: its runs announced a window at a time (so the source
/// fetches each window in a few concurrent, coalesced requests), then read from memory on this
/// thread.
fn read_remote<T: Pixel>(source: &dyn ByteSource, plan: &Plan, size: usize, runs: &Runs, out: &mut [T]) -> Result<()> {
    let window_elements = (REMOTE_WINDOW_BYTES / size as u64).max(1) as usize;
    // pieces: (first element in the file, element count, first element in `out`), each within
    // one window
    let mut pieces: Vec<(u64, usize, usize)> = Vec::new();
    runs.for_each(|start, n, k| {
        let mut done = 0;
        while done < n {
            let m = window_elements.min(n - done);
            pieces.push((start + done as u64, m, k * runs.len + done));
            done += m;
        }
        Ok(())
    })?;
    let mut rest = pieces.as_slice();
    while !rest.is_empty() {
        let mut elements = 0;
        let take = rest
            .iter()
            .take_while(|p| {
                elements += p.1;
                elements <= window_elements
            })
            .count()
            .max(1);
        let (window, tail) = rest.split_at(take);
        rest = tail;
        let byte = |element: u64| plan.data_offset + element * size as u64;
        let ranges: Vec<std::ops::Range<u64>> = window.iter().map(|p| byte(p.0)..byte(p.0 + p.1 as u64)).collect();
        source.prefetch(&ranges).map_err(|e| Error::io(e, "cannot read the image"))?;
        for &(start, n, at) in window {
            let chunk =
                out.get_mut(at..at + n).ok_or_else(|| Error::decoding("a section run is outside the output"))?;
            read_run(source, plan, size, start, chunk)?;
        }
    }
    Ok(())
}

/// Reads `out.len()` elements starting at element `start` of the data.
fn read_run<T: Pixel>(source: &dyn ByteSource, plan: &Plan, size: usize, start: u64, out: &mut [T]) -> Result<()> {
    let offset = plan.data_offset + start * size as u64;
    let per_chunk = (CHUNK_BYTES / size).max(1);
    if let Some(bytes) = source.as_bytes() {
        for (k, chunk) in out.chunks_mut(per_chunk).enumerate() {
            let at = (offset + (k * per_chunk * size) as u64) as usize;
            let src = bytes.get(at..at + chunk.len() * size).ok_or_else(|| truncated(source, plan))?;
            convert(plan, src, chunk)?;
        }
        return Ok(());
    }
    for (k, chunk) in out.chunks_mut(per_chunk).enumerate() {
        let at = offset + (k * per_chunk * size) as u64;
        if let Conversion::Swap { xor } = plan.conversion {
            // same size in and out: read into the destination, swap in place while in cache
            read_exact_at(source, bytemuck::cast_slice_mut(chunk), at, plan)?;
            swap_in_place(chunk, xor)?;
        } else {
            // the raw values of a scaled read go through this thread's reusable scratch
            SCRATCH.with_borrow_mut(|scratch| {
                scratch.resize(chunk.len() * size, 0);
                read_exact_at(source, scratch, at, plan)?;
                convert(plan, scratch, chunk)
            })?;
        }
    }
    Ok(())
}

/// Loads one byte of every cache line of a memory-mapped section's runs before they are copied,
/// when the section is small enough to stay in cache: a section of many short runs (a stamp's
/// rows, each on its own page) costs a cache and TLB miss per run, and the copy of each run waits
/// for its own; loads that depend on nothing are in flight together, so the misses overlap and
/// the copies then find their lines in cache.
fn touch_runs(source: &dyn ByteSource, plan: &Plan, size: usize, runs: &Runs) {
    const LINE: usize = 64;
    let run_bytes = runs.len * size;
    if runs.count < 2 || runs.count * run_bytes > TOUCH_MAX_BYTES {
        return;
    }
    let Some(bytes) = source.as_bytes() else { return };
    let mut seen = 0u8;
    let _ = runs.for_each(|start, _, _| {
        let at = (plan.data_offset + start * size as u64) as usize;
        if let Some(run) = bytes.get(at..at + run_bytes) {
            seen = run.iter().step_by(LINE).fold(seen, |acc, &b| acc ^ b);
        }
        Ok(())
    });
    std::hint::black_box(seen);
}

/// Sections up to this many bytes are touched before they are copied ([`touch_runs`]).
const TOUCH_MAX_BYTES: usize = 256 * 1024;

/// The error for data missing from the end of the file.
fn truncated(source: &dyn ByteSource, plan: &Plan) -> Error {
    Error::decoding(format!(
        "the file is truncated: the HDU's data ends at byte {}, the file has {} bytes",
        plan.data_end,
        source.len()
    ))
}

fn read_exact_at(source: &dyn ByteSource, buf: &mut [u8], at: u64, plan: &Plan) -> Result<()> {
    source.read_exact_at(buf, at).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            truncated(source, plan)
        } else {
            Error::io(e, "cannot read the image")
        }
    })
}

/// The contiguous runs of a C-order section: `count` runs of `len` elements each.
struct Runs<'a> {
    shape: &'a [usize],
    section: &'a Section,
    /// The last axis that is not read whole (runs span it and every axis after it).
    split: usize,
    len: usize,
    count: usize,
    first: u64,
}

impl<'a> Runs<'a> {
    fn new(shape: &'a [usize], section: &'a Section) -> Self {
        let ranges = section.ranges();
        let mut split = shape.len() - 1;
        while split > 0 && ranges[split].start == 0 && ranges[split].end == shape[split] {
            split -= 1;
        }
        let inner: usize = shape[split + 1..].iter().product();
        let len = ranges[split].len() * inner;
        let count: usize = ranges[..split].iter().map(|r| r.len()).product();
        let mut runs = Runs { shape, section, split, len, count, first: 0 };
        runs.first = runs.start_of(0);
        runs
    }

    /// The first element (flat C-order index) of run `k`: `k` in mixed radix over the section's
    /// outer axes (no allocation, so that a steady-state read allocates nothing).
    fn start_of(&self, mut k: usize) -> u64 {
        let ranges = self.section.ranges();
        let mut offset = 0u64;
        let mut stride = 1u64;
        for a in (0..self.shape.len()).rev() {
            let i = if a < self.split {
                let n = ranges[a].len();
                let digit = k % n;
                k /= n;
                ranges[a].start + digit
            } else {
                ranges[a].start
            };
            offset += i as u64 * stride;
            stride *= self.shape[a] as u64;
        }
        offset
    }

    /// Calls `f(first element, length, run number)` for each run in C order.
    fn for_each(&self, mut f: impl FnMut(u64, usize, usize) -> Result<()>) -> Result<()> {
        if self.len == 0 || self.count == 0 {
            return Ok(());
        }
        for k in 0..self.count {
            f(self.start_of(k), self.len, k)?;
        }
        Ok(())
    }
}

/// A stored big-endian FITS value.
trait Stored: Copy {
    const SIZE: usize;
    const INTEGER: bool;
    fn from_be(b: &[u8]) -> Self;
    fn to_f64(self) -> f64;
    /// The value as an integer (`None` for floats): compared with BLANK, converted exactly.
    fn as_int(self) -> Option<i64>;
}

macro_rules! stored {
    ($($t:ty, $n:expr, $integer:expr, $int:expr);* $(;)?) => {$(
        impl Stored for $t {
            const SIZE: usize = $n;
            const INTEGER: bool = $integer;
            #[inline(always)]
            fn from_be(b: &[u8]) -> Self {
                let mut a = [0u8; $n];
                a.copy_from_slice(&b[..$n]);
                <$t>::from_be_bytes(a)
            }
            #[inline(always)]
            fn to_f64(self) -> f64 { self as f64 }
            #[inline(always)]
            #[allow(clippy::redundant_closure_call)]
            fn as_int(self) -> Option<i64> { ($int)(self) }
        }
    )*};
}
stored! {
    u8, 1, true, |v: u8| Some(v as i64);
    i16, 2, true, |v: i16| Some(v as i64);
    i32, 4, true, |v: i32| Some(v as i64);
    i64, 8, true, |v: i64| Some(v);
    f32, 4, false, |_: f32| None;
    f64, 8, false, |_: f64| None;
}

/// An unsigned integer of one pixel's width, for byte swapping.
trait Word: Pod {
    fn swap_xor(self, xor: u64) -> Self;
}
macro_rules! word {
    ($($t:ty),*) => {$(
        impl Word for $t {
            #[inline(always)]
            fn swap_xor(self, xor: u64) -> Self { <$t>::from_be(self) ^ (xor as $t) }
        }
    )*};
}
word!(u8, u16, u32, u64);

fn swap_words<W: Word>(out: &mut [W], xor: u64) {
    if xor == 0 {
        out.iter_mut().for_each(|w| *w = w.swap_xor(0));
    } else {
        out.iter_mut().for_each(|w| *w = w.swap_xor(xor));
    }
}

/// Byte-swaps (and sign-flips) `out`, which holds the raw big-endian values, in place.
fn swap_in_place<T: Pixel>(out: &mut [T], xor: u64) -> Result<()> {
    match std::mem::size_of::<T>() {
        1 => swap_words::<u8>(bytemuck::cast_slice_mut(out), xor),
        2 => swap_words::<u16>(bytemuck::cast_slice_mut(out), xor),
        4 => swap_words::<u32>(bytemuck::cast_slice_mut(out), xor),
        8 => swap_words::<u64>(bytemuck::cast_slice_mut(out), xor),
        _ => return Err(Error::parameter("unsupported pixel size")),
    }
    Ok(())
}

fn scale<S: Stored, F: Pod>(
    src: &[u8],
    out: &mut [F],
    bscale: f64,
    bzero: f64,
    blank: Option<i64>,
    from: impl Fn(f64) -> F,
) {
    let src = src.chunks_exact(S::SIZE);
    match blank {
        None => out.iter_mut().zip(src).for_each(|(o, b)| *o = from(S::from_be(b).to_f64() * bscale + bzero)),
        Some(blank) => out.iter_mut().zip(src).for_each(|(o, b)| {
            let v = S::from_be(b);
            *o = if v.as_int() == Some(blank) { from(f64::NAN) } else { from(v.to_f64() * bscale + bzero) };
        }),
    }
}

/// [`scale`] from stored values of `bitpix` (BLANK only on integers, as astropy reads them).
fn scale_from<F: Pod>(
    bitpix: i32,
    src: &[u8],
    out: &mut [F],
    bscale: f64,
    bzero: f64,
    blank: Option<i64>,
    from: impl Fn(f64) -> F,
) -> Result<()> {
    match bitpix {
        8 => scale::<u8, F>(src, out, bscale, bzero, blank, from),
        16 => scale::<i16, F>(src, out, bscale, bzero, blank, from),
        32 => scale::<i32, F>(src, out, bscale, bzero, blank, from),
        64 => scale::<i64, F>(src, out, bscale, bzero, blank, from),
        -32 => scale::<f32, F>(src, out, bscale, bzero, None, from),
        -64 => scale::<f64, F>(src, out, bscale, bzero, None, from),
        _ => return Err(Error::parameter("no direct conversion for this pixel type")),
    }
    Ok(())
}

/// Converts raw big-endian `src` (exactly `out.len()` stored values) into `out` by `plan`.
fn convert<T: Pixel>(plan: &Plan, src: &[u8], out: &mut [T]) -> Result<()> {
    debug_assert_eq!(src.len(), out.len() * plan.stored_size());
    match plan.conversion {
        Conversion::Swap { xor } => {
            bytemuck::cast_slice_mut::<T, u8>(out).copy_from_slice(src);
            swap_in_place(out, xor)
        }
        Conversion::Scale { bscale, bzero, blank } => match T::DTYPE {
            Dtype::F32 => {
                scale_from(plan.bitpix, src, bytemuck::cast_slice_mut(out), bscale, bzero, blank, |v| v as f32)
            }
            Dtype::F64 => scale_from(plan.bitpix, src, bytemuck::cast_slice_mut(out), bscale, bzero, blank, |v| v),
            _ => Err(Error::parameter("no direct conversion for this pixel type")),
        },
        Conversion::Cast { bscale, bzero } => match plan.bitpix {
            8 => cast_into::<u8, T>(src, out, bscale, bzero),
            16 => cast_into::<i16, T>(src, out, bscale, bzero),
            32 => cast_into::<i32, T>(src, out, bscale, bzero),
            64 => cast_into::<i64, T>(src, out, bscale, bzero),
            -32 => cast_into::<f32, T>(src, out, bscale, bzero),
            -64 => cast_into::<f64, T>(src, out, bscale, bzero),
            _ => Err(Error::parameter("no direct conversion for this pixel type")),
        },
    }
}

/// Stored values `src` as `raw * bscale + bzero` into `out`: in integers when the stored values
/// are integers and the scaling an integer offset (so that 64-bit values stay exact), else in
/// double, as cfitsio converts (see [`doubles_into`]).
fn cast_into<S: Stored, T: Pixel>(src: &[u8], out: &mut [T], bscale: f64, bzero: f64) -> Result<()> {
    let values = src.chunks_exact(S::SIZE).map(S::from_be);
    let offset = (bscale == 1.0 && bzero.fract() == 0.0 && bzero.abs() <= 2f64.powi(64)).then_some(bzero as i128);
    match offset {
        Some(offset) if S::INTEGER => ints_into(out, values.map(|v| i128::from(v.as_int().unwrap_or(0)) + offset)),
        _ => doubles_into(out, values.map(|v| v.to_f64() * bscale + bzero)),
    }
}

/// `$each!(t)` with `t` the Rust type of integer `$dtype`; `$floats` for f32 and f64.
macro_rules! for_integer_type {
    ($dtype:expr, $each:ident, $floats:expr) => {
        match $dtype {
            Dtype::F32 | Dtype::F64 => $floats,
            Dtype::U8 => $each!(u8),
            Dtype::I8 => $each!(i8),
            Dtype::U16 => $each!(u16),
            Dtype::I16 => $each!(i16),
            Dtype::U32 => $each!(u32),
            Dtype::I32 => $each!(i32),
            Dtype::U64 => $each!(u64),
            Dtype::I64 => $each!(i64),
        }
    };
}

/// The error for a value that the output type cannot hold.
fn overflow(value: impl std::fmt::Display, dtype: Dtype) -> Error {
    Error::parameter(format!("a pixel's value, {value}, does not fit in {dtype}: read the image into a wider type"))
}

/// Writes `values` into `out` (converted to its type): exact integers, so an error for one out of
/// the type's range.
pub(crate) fn ints_into<T: Pixel>(out: &mut [T], values: impl Iterator<Item = i128>) -> Result<()> {
    macro_rules! each {
        ($t:ty) => {
            for (o, v) in bytemuck::cast_slice_mut::<T, $t>(out).iter_mut().zip(values) {
                *o = <$t>::try_from(v).map_err(|_| overflow(v, T::DTYPE))?;
            }
        };
    }
    for_integer_type!(T::DTYPE, each, return doubles_into(out, values.map(|v| v as f64)));
    Ok(())
}

/// Writes `values` into `out` as cfitsio converts doubles: into floats rounded once; into an
/// integer type truncated toward zero, an error for a value outside the type's range by more
/// than cfitsio's margin of 0.49, and for NaN (an undefined pixel, which no integer holds).
pub(crate) fn doubles_into<T: Pixel>(out: &mut [T], values: impl Iterator<Item = f64>) -> Result<()> {
    macro_rules! each {
        ($t:ty) => {{
            let (lo, hi) = (<$t>::MIN as f64 - 0.49, <$t>::MAX as f64 + 0.49);
            for (o, v) in bytemuck::cast_slice_mut::<T, $t>(out).iter_mut().zip(values) {
                if !(lo..=hi).contains(&v) {
                    return Err(overflow(v, T::DTYPE));
                }
                *o = v as $t;
            }
        }};
    }
    for_integer_type!(
        T::DTYPE,
        each,
        if T::DTYPE == Dtype::F32 {
            bytemuck::cast_slice_mut::<T, f32>(out).iter_mut().zip(values).for_each(|(o, v)| *o = v as f32)
        } else {
            bytemuck::cast_slice_mut::<T, f64>(out).iter_mut().zip(values).for_each(|(o, v)| *o = v)
        }
    );
    Ok(())
}
