//! Image reads: whole images and N-D sections, plain or tile-compressed, into caller-owned buffers.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use crate::direct::Plan;
use crate::error::{Error, Result};
use crate::file::FitsFile;
use crate::hdu::{ImageLayout, checked_len};
use crate::header::Header;

/// The element type of image data as a read returns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// 8-bit unsigned (BITPIX 8).
    U8,
    /// 8-bit signed (BITPIX 8 with BZERO = -128).
    I8,
    /// 16-bit signed (BITPIX 16).
    I16,
    /// 16-bit unsigned (BITPIX 16 with BZERO = 32768).
    U16,
    /// 32-bit signed (BITPIX 32).
    I32,
    /// 32-bit unsigned (BITPIX 32 with BZERO = 2^31).
    U32,
    /// 64-bit signed (BITPIX 64).
    I64,
    /// 64-bit unsigned (BITPIX 64 with BZERO = 2^63).
    U64,
    /// 32-bit float (BITPIX -32, or scaled/blanked BITPIX 8 and 16).
    F32,
    /// 64-bit float (BITPIX -64, or scaled/blanked BITPIX 32 and 64).
    F64,
}

impl Dtype {
    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::U8 | Dtype::I8 => 1,
            Dtype::I16 | Dtype::U16 => 2,
            Dtype::I32 | Dtype::U32 | Dtype::F32 => 4,
            Dtype::I64 | Dtype::U64 | Dtype::F64 => 8,
        }
    }

    /// NumPy's name for the type (`uint8`, `int16`, `float32`, ...).
    pub fn numpy_name(self) -> &'static str {
        match self {
            Dtype::U8 => "uint8",
            Dtype::I8 => "int8",
            Dtype::I16 => "int16",
            Dtype::U16 => "uint16",
            Dtype::I32 => "int32",
            Dtype::U32 => "uint32",
            Dtype::I64 => "int64",
            Dtype::U64 => "uint64",
            Dtype::F32 => "float32",
            Dtype::F64 => "float64",
        }
    }

    /// The type a BITPIX stores (`None` for an invalid BITPIX).
    pub fn stored(bitpix: i32) -> Option<Dtype> {
        match bitpix {
            8 => Some(Dtype::U8),
            16 => Some(Dtype::I16),
            32 => Some(Dtype::I32),
            64 => Some(Dtype::I64),
            -32 => Some(Dtype::F32),
            -64 => Some(Dtype::F64),
            _ => None,
        }
    }

    /// Whether this is a floating-point type.
    pub fn is_float(self) -> bool {
        matches!(self, Dtype::F32 | Dtype::F64)
    }
}

impl fmt::Display for Dtype {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.numpy_name())
    }
}

mod private {
    pub trait Sealed {}
}

/// A Rust type image pixels can be read into. Implemented for `u8, i8, u16, i16, u32, i32, u64,
/// i64, f32, f64` only (sealed: cfitsio writes these types' memory directly).
///
/// Reading into a type other than the image's [`Dtype`] converts (cfitsio's conversion, in double
/// precision); a value that does not fit the target type is a [`Parameter`] error.
///
/// [`Parameter`]: crate::ErrorKind::Parameter
pub trait Pixel: private::Sealed + bytemuck::Pod + Default + Send + Sync + 'static {
    /// The matching [`Dtype`].
    const DTYPE: Dtype;
}

macro_rules! pixel {
    ($($t:ty => $d:ident),* $(,)?) => {$(
        impl private::Sealed for $t {}
        impl Pixel for $t { const DTYPE: Dtype = Dtype::$d; }
    )*};
}
pixel!(u8 => U8, i8 => I8, u16 => U16, i16 => I16, u32 => U32, i32 => I32, u64 => U64, i64 => I64, f32 => F32, f64 => F64);

/// How stored pixel values map to the values a read returns (BSCALE, BZERO, BLANK).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scaling {
    /// BSCALE (1 when absent).
    pub bscale: f64,
    /// BZERO (0 when absent).
    pub bzero: f64,
    /// BLANK, for integer images only (ignored on float images, as astropy does).
    pub blank: Option<i64>,
}

impl Scaling {
    pub(crate) fn from_header(header: &Header, bitpix: i32) -> Result<Scaling> {
        let bscale = header.number_or("BSCALE", 1.0)?;
        if bscale == 0.0 {
            return Err(Error::decoding("BSCALE = 0 maps every pixel to BZERO"));
        }
        let blank = match header.get("BLANK") {
            Some(v) if bitpix > 0 => {
                Some(v.as_i64().ok_or_else(|| Error::decoding(format!("BLANK = {v:?} is not an integer")))?)
            }
            _ => None,
        };
        Ok(Scaling { bscale, bzero: header.number_or("BZERO", 0.0)?, blank })
    }

    /// The type a read returns, by astropy's rules: unsigned via BZERO = 2^(bits-1), int8 via
    /// BZERO = -128 (both with BSCALE = 1; BLANK then not applied); any other scaling, or a BLANK
    /// on an integer image, gives f32 (BITPIX 8, 16) or f64 (32, 64); float images stay as stored.
    pub fn dtype(&self, bitpix: i32) -> Dtype {
        let stored = Dtype::stored(bitpix).unwrap_or(Dtype::F64);
        let unscaled = self.bscale == 1.0 && self.bzero == 0.0;
        if unscaled && self.blank.is_none() {
            return stored;
        }
        if self.bscale == 1.0 {
            let unsigned_zero = match bitpix {
                16 | 32 | 64 => Some(2f64.powi(bitpix - 1)),
                _ => None,
            };
            match bitpix {
                8 if self.bzero == -128.0 => return Dtype::I8,
                16 if unsigned_zero == Some(self.bzero) => return Dtype::U16,
                32 if unsigned_zero == Some(self.bzero) => return Dtype::U32,
                64 if unsigned_zero == Some(self.bzero) => return Dtype::U64,
                _ => {}
            }
        }
        match bitpix {
            8 | 16 => Dtype::F32,
            32 | 64 => Dtype::F64,
            _ => stored,
        }
    }

    /// Whether a float read should turn undefined pixels into NaN. astropy ignores `BLANK = 0`.
    pub(crate) fn nulls_to_nan(&self) -> bool {
        self.blank != Some(0)
    }
}

/// An N-D section of an image: one 0-based, half-open range per axis, in C order (slowest first).
///
/// ```
/// use torchfits_core::Section;
/// let s = Section::parse("10:20, :", &[100, 200])?;
/// assert_eq!(s.ranges(), &[10..20, 0..200]);
/// assert_eq!(s.shape(), vec![10, 200]);
/// let s = Section::parse("-5:, 3", &[100, 200])?;
/// assert_eq!(s.ranges(), &[95..100, 3..4]);
/// # Ok::<(), torchfits_core::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Section {
    ranges: Vec<Range<usize>>,
}

impl Section {
    /// A section from explicit ranges (checked against the image when read).
    pub fn new(ranges: Vec<Range<usize>>) -> Self {
        Section { ranges }
    }

    /// The whole of an image of `shape`.
    pub fn full(shape: &[usize]) -> Self {
        Section { ranges: shape.iter().map(|&n| 0..n).collect() }
    }

    /// Parses a NumPy-style spec, `y0:y1,x0:x1`, for an image of `shape`: one item per axis, each
    /// `a:b`, `a:`, `:b`, `:` or a single index `i`; negative numbers count from the axis end, as in
    /// Python. Bounds are checked against `shape`.
    pub fn parse(spec: &str, shape: &[usize]) -> Result<Section> {
        let items: Vec<&str> = spec.split(',').map(str::trim).collect();
        if items.len() != shape.len() {
            return Err(Error::parameter(format!(
                "section {spec:?} has {} ranges for an image of {} axes (shape {shape:?})",
                items.len(),
                shape.len()
            )));
        }
        let mut ranges = Vec::with_capacity(items.len());
        for (axis, (item, &n)) in items.iter().zip(shape).enumerate() {
            let bad = || Error::parameter(format!("section {spec:?}: axis {axis}: {item:?} is not a range like a:b"));
            let bound = |t: &str, default: usize| -> Result<usize> {
                let t = t.trim();
                if t.is_empty() {
                    return Ok(default);
                }
                let v: i64 = t.parse().map_err(|_| bad())?;
                let nn = n as i64;
                let v = if v < 0 { v + nn } else { v };
                Ok(v.clamp(0, nn) as usize)
            };
            let r = match item.split_once(':') {
                Some((a, b)) => bound(a, 0)?..bound(b, n)?,
                None => {
                    let v: i64 = item.parse().map_err(|_| bad())?;
                    let v = if v < 0 { v + n as i64 } else { v };
                    if v < 0 || v >= n as i64 {
                        return Err(Error::parameter(format!(
                            "section {spec:?}: axis {axis}: index {item} is outside 0..{n}"
                        )));
                    }
                    v as usize..v as usize + 1
                }
            };
            ranges.push(r.start..r.end.max(r.start));
        }
        let s = Section { ranges };
        s.check(shape)?;
        Ok(s)
    }

    /// The ranges, one per axis, C order.
    pub fn ranges(&self) -> &[Range<usize>] {
        &self.ranges
    }

    /// Number of elements the section selects (saturating; no allocation).
    pub fn len(&self) -> usize {
        self.ranges.iter().fold(1usize, |acc, r| acc.saturating_mul(r.end.saturating_sub(r.start)))
    }

    /// Whether the section selects nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of the data the section selects.
    pub fn shape(&self) -> Vec<usize> {
        self.ranges.iter().map(|r| r.end.saturating_sub(r.start)).collect()
    }

    /// `Ok` if the section fits an image of `shape`.
    pub fn check(&self, shape: &[usize]) -> Result<()> {
        if self.ranges.len() != shape.len() {
            return Err(Error::parameter(format!(
                "section has {} ranges for an image of {} axes",
                self.ranges.len(),
                shape.len()
            )));
        }
        for (axis, (r, &n)) in self.ranges.iter().zip(shape).enumerate() {
            if r.start > r.end || r.end > n {
                return Err(Error::parameter(format!("section axis {axis}: {}..{} is outside 0..{n}", r.start, r.end)));
            }
        }
        Ok(())
    }
}

/// Typed pixel storage of any [`Dtype`], as returned by [`ImageReader::read_data`].
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
pub enum Pixels {
    U8(Vec<u8>),
    I8(Vec<i8>),
    I16(Vec<i16>),
    U16(Vec<u16>),
    I32(Vec<i32>),
    U32(Vec<u32>),
    I64(Vec<i64>),
    U64(Vec<u64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
}

macro_rules! each_pixels {
    ($p:expr, $v:ident => $body:expr) => {
        match $p {
            Pixels::U8($v) => $body,
            Pixels::I8($v) => $body,
            Pixels::I16($v) => $body,
            Pixels::U16($v) => $body,
            Pixels::I32($v) => $body,
            Pixels::U32($v) => $body,
            Pixels::I64($v) => $body,
            Pixels::U64($v) => $body,
            Pixels::F32($v) => $body,
            Pixels::F64($v) => $body,
        }
    };
}
pub(crate) use each_pixels;

impl Pixels {
    /// The element type.
    pub fn dtype(&self) -> Dtype {
        match self {
            Pixels::U8(_) => Dtype::U8,
            Pixels::I8(_) => Dtype::I8,
            Pixels::I16(_) => Dtype::I16,
            Pixels::U16(_) => Dtype::U16,
            Pixels::I32(_) => Dtype::I32,
            Pixels::U32(_) => Dtype::U32,
            Pixels::I64(_) => Dtype::I64,
            Pixels::U64(_) => Dtype::U64,
            Pixels::F32(_) => Dtype::F32,
            Pixels::F64(_) => Dtype::F64,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        each_pixels!(self, v => v.len())
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values as f64 (allocates; exact for every type except 64-bit integers beyond 2^53).
    #[allow(clippy::unnecessary_cast)] // the F64 arm casts f64 to itself
    pub fn to_f64(&self) -> Vec<f64> {
        each_pixels!(self, v => v.iter().map(|&x| x as f64).collect())
    }
}

/// An image (or a section of one) in memory: shape in C order and typed pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageData {
    /// Shape in C order.
    pub shape: Vec<usize>,
    /// The pixels, row-major (C order).
    pub pixels: Pixels,
}

/// Reads one image HDU of an open [`FitsFile`]. Made by [`FitsFile::image`], which reads the
/// header; reads then go straight from the file into the caller's buffer.
///
/// ```
/// use torchfits_core::{FitsFile, Section};
/// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
/// let mut file = FitsFile::open(path)?;
/// let mut image = file.image("SCI")?;
/// let shape = image.shape().to_vec();            // C order: [rows, cols]
/// let mut pixels = vec![0f32; image.len()];
/// image.read_into(&mut pixels)?;                 // no allocation by the reader
/// let section = Section::new(vec![10..20, 5..15]);
/// let cutout: Vec<f32> = image.read_section(&section)?;
/// assert_eq!(cutout[0], pixels[10 * shape[1] + 5]);
/// # Ok::<(), torchfits_core::Error>(())
/// ```
#[derive(Debug)]
pub struct ImageReader<'f> {
    file: &'f mut FitsFile,
    index: usize,
    layout: ImageLayout,
    /// Shared with the file's HDU index (no copy per reader).
    header: Arc<Header>,
    /// For an uncompressed image: the direct-read plan (data offsets, conversion).
    plan: Option<Plan>,
    /// For a compressed image: the tile shape, C order.
    tiles: Option<Vec<usize>>,
    /// For a RICE_1 or GZIP image of a plain file: its tiles, decoded here rather than by cfitsio.
    native: Option<crate::tiled::NativeTiles>,
    /// The whole image as a section.
    full: Section,
}

/// Compressed reads smaller than this (output bytes) are decoded on the calling thread.
const PARALLEL_DECODE_MIN_BYTES: usize = 1 << 20;

impl<'f> ImageReader<'f> {
    pub(crate) fn new(
        file: &'f mut FitsFile,
        index: usize,
        layout: ImageLayout,
        header: Arc<Header>,
        data_start: Option<u64>,
        tiles: Option<Vec<usize>>,
        native: Option<crate::tiled::NativeTiles>,
    ) -> Self {
        let plan = data_start.and_then(|start| {
            let bytes = (layout.bitpix.unsigned_abs() / 8) as u64;
            let len = if layout.shape.is_empty() { 0 } else { layout.len().ok()? as u64 };
            let end = start.checked_add(len.checked_mul(bytes)?)?;
            let s = layout.scaling;
            // astropy ignores BLANK = 0
            let blank = s.blank.filter(|&b| b != 0);
            Plan::new(layout.bitpix, layout.dtype, s.bscale, s.bzero, blank, (start, end))
        });
        let full = Section::full(&layout.shape);
        ImageReader { file, index, layout, header, plan, tiles, native, full }
    }

    /// 0-based index of the HDU.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Shape in C order (`[]` when the HDU has no data).
    pub fn shape(&self) -> &[usize] {
        &self.layout.shape
    }

    /// Number of pixels (0 when the HDU has no data).
    pub fn len(&self) -> usize {
        if self.layout.shape.is_empty() { 0 } else { self.layout.len().unwrap_or(0) }
    }

    /// Whether the image has no pixels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type [`ImageReader::read_data`] returns.
    pub fn dtype(&self) -> Dtype {
        self.layout.dtype
    }

    /// BITPIX of the stored image (of the image a compressed HDU holds).
    pub fn bitpix(&self) -> i32 {
        self.layout.bitpix
    }

    /// BSCALE, BZERO and BLANK.
    pub fn scaling(&self) -> Scaling {
        self.layout.scaling
    }

    /// The image's header (for a compressed HDU, the header of the image it holds).
    pub fn header(&self) -> &Header {
        &self.header
    }

    fn err(&self, e: Error) -> Error {
        e.in_hdu(self.index).in_file(self.file.path())
    }

    fn no_data(&self) -> Error {
        self.err(Error::parameter("the HDU has no image data (NAXIS = 0)"))
    }

    /// Reads the whole image into `out`, which must hold exactly [`ImageReader::len`] elements.
    /// Allocates nothing; blocks on the file read.
    pub fn read_into<T: Pixel>(&mut self, out: &mut [T]) -> Result<()> {
        if self.layout.shape.is_empty() {
            return Err(self.no_data());
        }
        // the whole-image section is kept by the reader, so that this allocates nothing
        let full = std::mem::take(&mut self.full);
        let result = self.read_section_into(&full, out);
        self.full = full;
        result
    }

    /// Reads `section` into `out`, which must hold exactly the section's element count. For a
    /// tile-compressed image only the tiles the section touches are decoded. Allocates nothing.
    pub fn read_section_into<T: Pixel>(&mut self, section: &Section, out: &mut [T]) -> Result<()> {
        if self.layout.shape.is_empty() {
            return Err(self.no_data());
        }
        section.check(&self.layout.shape).map_err(|e| self.err(e))?;
        let n = section.len();
        if out.len() != n {
            return Err(
                self.err(Error::parameter(format!("output buffer holds {} elements, the read needs {n}", out.len())))
            );
        }
        if n == 0 {
            return Ok(());
        }
        let index = self.index;
        // the fast path: an uncompressed image read in its own type
        if T::DTYPE == self.layout.dtype
            && let Some(plan) = &self.plan
        {
            let threads = self.file.threads();
            if let Some(direct) = self.file.direct() {
                return direct.read(plan, &self.layout.shape, section, out, threads).map_err(|e| self.err(e));
            }
        }
        // RICE_1 and GZIP_1/2 tiles: decoded here
        if let Some(native) = &self.native
            && native.decodes::<T>(self.layout.dtype, self.layout.scaling.blank.is_some())
        {
            let threads = self.file.threads();
            if let Some(plain) = self.file.plain() {
                return native.read(plain, section, out, threads).map_err(|e| self.err(e));
            }
        }
        // cfitsio: other compressed images, conversions to other types, gzip files
        let nan_nulls = self.layout.scaling.nulls_to_nan();
        let bands = self.tile_bands(section, std::mem::size_of::<T>());
        let result = if bands.len() > 1 {
            // the bands' handles are opened afresh: check the HDU (and where cfitsio finds it) as
            // every read through cfitsio does
            let checked = self.file.handle_at(index).map(|_| ());
            checked.map_err(|e| self.err(e))?;
            self.read_bands(&bands, out, nan_nulls)
        } else {
            self.file.handle_at(index)?.read_section(section, out, nan_nulls)
        };
        result.map_err(|e| {
            let e = self.file.explain_read_error(index, e);
            self.err(e)
        })
    }

    /// For a tile-compressed plain file whose read decodes enough tiles to be worth it: the section
    /// split along its first axis into one band of whole tile rows per thread. Otherwise the
    /// section as one band. The work is the tiles the section touches, not its own size: a small
    /// cutout of an image compressed in whole rows decodes every row it crosses in full.
    fn tile_bands(&self, section: &Section, elem_bytes: usize) -> Vec<Section> {
        let threads = self.file.threads();
        let one = vec![section.clone()];
        let Some(tiles) = self.tiles.as_ref().filter(|t| t.len() == section.ranges().len()) else {
            return one;
        };
        let Some(&tile_rows) = tiles.first() else { return one };
        let decoded =
            section.ranges().iter().zip(tiles).zip(&self.layout.shape).fold(elem_bytes, |acc, ((r, &t), &n)| {
                let span = (r.end.div_ceil(t) * t).min(n).saturating_sub(r.start / t * t);
                acc.saturating_mul(span)
            });
        if threads < 2 || decoded < PARALLEL_DECODE_MIN_BYTES || !self.file.is_plain() {
            return one;
        }
        let Some(rows) = section.ranges().first().cloned() else { return one };
        let first_tile = rows.start / tile_rows;
        let tile_count = rows.end.div_ceil(tile_rows) - first_tile;
        if tile_count < 2 {
            return one;
        }
        let per = tile_count.div_ceil(threads.min(tile_count));
        let mut bands = Vec::new();
        let mut t = first_tile;
        while t * tile_rows < rows.end {
            let a = (t * tile_rows).max(rows.start);
            let b = ((t + per) * tile_rows).min(rows.end);
            let mut ranges = section.ranges().to_vec();
            if let Some(first) = ranges.first_mut() {
                *first = a..b;
            }
            bands.push(Section::new(ranges));
            t += per;
        }
        bands
    }

    /// Decodes each band on its own thread (the first on this one), each with its own cfitsio
    /// handle, into disjoint parts of `out`.
    fn read_bands<T: Pixel>(&mut self, bands: &[Section], out: &mut [T], nan_nulls: bool) -> Result<()> {
        let mut chunks: Vec<(&Section, &mut [T])> = Vec::with_capacity(bands.len());
        let mut rest = out;
        for band in bands {
            let n: usize = band.shape().iter().product();
            let (mine, tail) = rest.split_at_mut(n);
            chunks.push((band, mine));
            rest = tail;
        }
        let mut chunks = chunks.into_iter();
        let Some((first_band, first_out)) = chunks.next() else {
            return Ok(());
        };
        let index = self.index;
        let reopener = self.file.reopener();
        let reopener = &reopener;
        let workers: Vec<_> = chunks.collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = workers
                .into_iter()
                .map(|(band, chunk)| scope.spawn(move || reopener.open_at(index)?.read_section(band, chunk, nan_nulls)))
                .collect();
            // the first band on this thread, with a fresh handle too (this reader's handle is
            // borrowed by `self`, and its position would move under other reads)
            let mine = reopener.open_at(index).and_then(|mut h| h.read_section(first_band, first_out, nan_nulls));
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(Error::decoding("a decoding thread panicked"))))
                .fold(mine, |acc, r| acc.and(r))
        })
    }

    /// Reads the whole image into a new `Vec<T>` (allocates, within [`crate::Limits::max_alloc`]).
    pub fn read<T: Pixel>(&mut self) -> Result<Vec<T>> {
        if self.layout.shape.is_empty() {
            return Err(self.no_data());
        }
        let section = Section::full(&self.layout.shape);
        self.read_section(&section)
    }

    /// Reads `section` into a new `Vec<T>` (allocates, within [`crate::Limits::max_alloc`]).
    pub fn read_section<T: Pixel>(&mut self, section: &Section) -> Result<Vec<T>> {
        let mut out = self.alloc::<T>(section)?;
        self.read_section_into(section, &mut out)?;
        Ok(out)
    }

    /// Reads the image, or `section` of it, in its own [`Dtype`] (allocates, within
    /// [`crate::Limits::max_alloc`]).
    ///
    /// ```
    /// use torchfits_core::{FitsFile, Pixels};
    /// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
    /// let mut file = FitsFile::open(path)?;
    /// let data = file.image("DQ")?.read_data(None)?;
    /// assert_eq!(data.shape, vec![48, 64]);
    /// assert!(matches!(data.pixels, Pixels::I16(_)));
    /// # Ok::<(), torchfits_core::Error>(())
    /// ```
    pub fn read_data(&mut self, section: Option<&Section>) -> Result<ImageData> {
        if self.layout.shape.is_empty() {
            return Err(self.no_data());
        }
        let full;
        let section = match section {
            Some(s) => s,
            None => {
                full = Section::full(&self.layout.shape);
                &full
            }
        };
        let pixels = match self.layout.dtype {
            Dtype::U8 => Pixels::U8(self.read_section(section)?),
            Dtype::I8 => Pixels::I8(self.read_section(section)?),
            Dtype::I16 => Pixels::I16(self.read_section(section)?),
            Dtype::U16 => Pixels::U16(self.read_section(section)?),
            Dtype::I32 => Pixels::I32(self.read_section(section)?),
            Dtype::U32 => Pixels::U32(self.read_section(section)?),
            Dtype::I64 => Pixels::I64(self.read_section(section)?),
            Dtype::U64 => Pixels::U64(self.read_section(section)?),
            Dtype::F32 => Pixels::F32(self.read_section(section)?),
            Dtype::F64 => Pixels::F64(self.read_section(section)?),
        };
        Ok(ImageData { shape: section.shape(), pixels })
    }

    fn alloc<T: Pixel>(&self, section: &Section) -> Result<Vec<T>> {
        section.check(&self.layout.shape).map_err(|e| self.err(e))?;
        let n = checked_len(&section.shape()).map_err(|e| self.err(e))?;
        let bytes = (n as u64).saturating_mul(std::mem::size_of::<T>() as u64);
        self.file.limits().check_alloc(bytes, "the image read").map_err(|e| self.err(e))?;
        Ok(vec![T::default(); n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rice_and_gzip_images_are_decoded_here_not_by_cfitsio() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/quantized.fits");
        let mut file = crate::FitsFile::open(&path).expect("open");
        for hdu in 1..file.hdu_count().expect("count") {
            let img = file.image(hdu).expect("image");
            let native = img.native.as_ref().unwrap_or_else(|| panic!("HDU {hdu}: not decoded here"));
            let native = match img.layout.dtype {
                Dtype::F32 => native.decodes::<f32>(Dtype::F32, false),
                dtype => native.decodes::<f64>(dtype, false),
            };
            assert!(native, "HDU {hdu}: {:?}", img.layout.dtype);
        }
        // and every RICE_1 and GZIP image of the fixture; HCOMPRESS and PLIO go to cfitsio
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/compressed.fits");
        let mut file = crate::FitsFile::open(&path).expect("open");
        for hdu in 1..file.hdu_count().expect("count") {
            let name = file.hdu(hdu).expect("info").extname.clone().unwrap_or_default();
            let img = file.image(hdu).expect("image");
            let here = img.native.as_ref().is_some_and(|n| match img.layout.dtype {
                Dtype::I16 => n.decodes::<i16>(Dtype::I16, false),
                Dtype::U16 => n.decodes::<u16>(Dtype::U16, false),
                Dtype::I32 => n.decodes::<i32>(Dtype::I32, false),
                Dtype::F32 => n.decodes::<f32>(Dtype::F32, false),
                Dtype::F64 => n.decodes::<f64>(Dtype::F64, false),
                _ => false,
            });
            let want = name.starts_with("RICE") || name.starts_with("GZIP");
            assert_eq!(here, want, "{name}");
        }
    }
}
