//! Pixel types and image geometry: what a read returns (dtypes, scaling, sections, typed pixels).

use std::fmt;
use std::ops::Range;

use crate::error::{Error, Result};
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
/// Reading into a type other than the image's [`Dtype`] converts as cfitsio does: `stored *
/// BSCALE + BZERO` in double precision (exact for integers offset by an integer BZERO), rounded
/// once into floats (BLANK as NaN), truncated toward zero into integers (BLANK a value like any
/// other); a value that does not fit the target type, or NaN into an integer type, is a
/// [`Parameter`] error.
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
    /// BSCALE, BZERO and BLANK of an image header with pixel type `bitpix`; an error when BSCALE is 0
    /// or either is not a finite number.
    pub fn from_header(header: &Header, bitpix: i32) -> Result<Scaling> {
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
    pub fn nulls_to_nan(&self) -> bool {
        self.blank != Some(0)
    }
}

/// An N-D section of an image: one 0-based, half-open range per axis, in C order (slowest first).
///
/// ```
/// use torchfits_format::Section;
/// let s = Section::parse("10:20, :", &[100, 200])?;
/// assert_eq!(s.ranges(), &[10..20, 0..200]);
/// assert_eq!(s.shape(), vec![10, 200]);
/// let s = Section::parse("-5:, 3", &[100, 200])?;
/// assert_eq!(s.ranges(), &[95..100, 3..4]);
/// # Ok::<(), torchfits_format::Error>(())
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

/// Typed pixel storage of any [`Dtype`], as torchfits-core's `ImageReader::read_data` returns it.
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

    /// The values' bytes, in the machine's byte order (no copy).
    pub fn as_bytes(&self) -> &[u8] {
        each_pixels!(self, v => bytemuck::cast_slice(v))
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
