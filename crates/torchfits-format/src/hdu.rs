//! HDUs: what kind each is, how to name one, and what a read of it returns.

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::header::Header;
use crate::limits::Limits;
use crate::pixel::{Dtype, Scaling};

/// What an HDU holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HduKind {
    /// An image (primary array, IMAGE extension, or a tile-compressed image).
    Image,
    /// A binary table (BINTABLE).
    BinTable,
    /// An ASCII table (TABLE).
    AsciiTable,
    /// A random-groups primary array (`NAXIS1 = 0`, `GROUPS = T`).
    RandomGroups,
}

impl HduKind {
    /// The name used by the `torchfits` command's JSON: `image`, `bintable`, `asciitable`,
    /// `random_groups`.
    pub fn as_str(self) -> &'static str {
        match self {
            HduKind::Image => "image",
            HduKind::BinTable => "bintable",
            HduKind::AsciiTable => "asciitable",
            HduKind::RandomGroups => "random_groups",
        }
    }
}

impl fmt::Display for HduKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which HDU to read: a 0-based index, an EXTNAME, or an EXTNAME with an EXTVER.
///
/// Names match case-insensitively, ignoring trailing blanks, as astropy matches them; `PRIMARY`
/// names HDU 0 when it has no EXTNAME of its own; a missing EXTVER counts as 1.
///
/// ```
/// use torchfits_format::HduSelector;
/// assert_eq!("2".parse::<HduSelector>()?, HduSelector::Index(2));
/// assert_eq!("SCI".parse::<HduSelector>()?, HduSelector::Name("SCI".into()));
/// assert_eq!("SCI,2".parse::<HduSelector>()?, HduSelector::NameVersion("SCI".into(), 2));
/// assert_eq!(HduSelector::from(0), HduSelector::Index(0));
/// # Ok::<(), torchfits_format::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HduSelector {
    /// 0-based position in the file.
    Index(usize),
    /// The first HDU with this EXTNAME.
    Name(String),
    /// The HDU with this EXTNAME and EXTVER.
    NameVersion(String, i64),
}

impl From<usize> for HduSelector {
    fn from(i: usize) -> Self {
        HduSelector::Index(i)
    }
}

impl From<&str> for HduSelector {
    fn from(name: &str) -> Self {
        HduSelector::Name(name.to_string())
    }
}

impl From<(&str, i64)> for HduSelector {
    fn from((name, ver): (&str, i64)) -> Self {
        HduSelector::NameVersion(name.to_string(), ver)
    }
}

impl FromStr for HduSelector {
    type Err = Error;
    /// `3` (index), `SCI` (EXTNAME) or `SCI,2` (EXTNAME, EXTVER).
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.is_empty() {
            return Err(Error::parameter("empty HDU selector"));
        }
        if let Ok(i) = s.parse::<usize>() {
            return Ok(HduSelector::Index(i));
        }
        if let Some((name, ver)) = s.rsplit_once(',') {
            let ver = ver
                .trim()
                .parse::<i64>()
                .map_err(|_| Error::parameter(format!("HDU selector {s:?}: EXTVER {ver:?} is not an integer")))?;
            return Ok(HduSelector::NameVersion(name.trim().to_string(), ver));
        }
        Ok(HduSelector::Name(s.to_string()))
    }
}

impl fmt::Display for HduSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HduSelector::Index(i) => write!(f, "{i}"),
            HduSelector::Name(n) => write!(f, "{n}"),
            HduSelector::NameVersion(n, v) => write!(f, "{n},{v}"),
        }
    }
}

impl HduSelector {
    /// Whether the HDU at `index` with `header` is the one selected.
    pub fn matches(&self, index: usize, header: &Header) -> bool {
        let name = extname(header);
        let wanted = match self {
            HduSelector::Index(i) => return *i == index,
            HduSelector::Name(n) | HduSelector::NameVersion(n, _) => n.trim_end(),
        };
        let name_ok = match &name {
            Some(n) => n.eq_ignore_ascii_case(wanted),
            None => index == 0 && wanted.eq_ignore_ascii_case("PRIMARY"),
        };
        match self {
            HduSelector::NameVersion(_, v) => name_ok && header.get_i64("EXTVER").unwrap_or(1) == *v,
            _ => name_ok,
        }
    }
}

fn extname(header: &Header) -> Option<String> {
    header.get_str("EXTNAME").map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

/// The geometry and pixel type of an image HDU, as a read returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageLayout {
    /// Shape in C order (slowest axis first).
    pub shape: Vec<usize>,
    /// BITPIX of the stored (or, compressed, the original) image.
    pub bitpix: i32,
    /// The type a read returns.
    pub dtype: Dtype,
    /// The scaling a read applies.
    pub scaling: Scaling,
}

impl ImageLayout {
    /// From an image header (for a compressed HDU, the header of the image it holds).
    pub fn from_header(header: &Header, limits: &Limits) -> Result<ImageLayout> {
        let bitpix = header.get_i64("BITPIX").ok_or_else(|| Error::decoding("BITPIX missing or not an integer"))?;
        let bitpix = match bitpix {
            8 | 16 | 32 | 64 | -32 | -64 => bitpix as i32,
            other => {
                return Err(Error::decoding(format!("BITPIX = {other} is not a FITS pixel type")));
            }
        };
        let naxis = header.get_i64("NAXIS").ok_or_else(|| Error::decoding("NAXIS missing or not an integer"))?;
        let naxis = usize::try_from(naxis)
            .ok()
            .filter(|n| *n <= 999)
            .ok_or_else(|| Error::decoding(format!("NAXIS = {naxis} is outside 0..=999")))?;
        if naxis > limits.max_naxis {
            return Err(Error::limits(format!(
                "NAXIS = {naxis} is over the limit of {} (Limits::max_naxis)",
                limits.max_naxis
            )));
        }
        let mut shape = Vec::with_capacity(naxis);
        for k in (1..=naxis).rev() {
            let n = header
                .get_i64(&format!("NAXIS{k}"))
                .ok_or_else(|| Error::decoding(format!("NAXIS{k} missing or not an integer")))?;
            let n = usize::try_from(n).map_err(|_| Error::decoding(format!("NAXIS{k} = {n} is negative")))?;
            if n as u64 > limits.max_axis_len {
                return Err(Error::limits(format!(
                    "NAXIS{k} = {n} is over the limit of {} (Limits::max_axis_len)",
                    limits.max_axis_len
                )));
            }
            shape.push(n);
        }
        let scaling = Scaling::from_header(header, bitpix)?;
        let dtype = scaling.dtype(bitpix);
        Ok(ImageLayout { shape, bitpix, dtype, scaling })
    }

    /// Number of pixels, checked for overflow.
    pub fn pixel_count(&self) -> Result<usize> {
        checked_len(&self.shape)
    }
}

/// The number of elements of `shape`; a limits error when it overflows `usize`.
pub fn checked_len(shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |acc, &n| acc.checked_mul(n))
        .ok_or_else(|| Error::limits(format!("image shape {shape:?} overflows the address space")))
}

/// What one HDU is, read from its header without touching its data.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct HduInfo {
    /// 0-based position in the file.
    pub index: usize,
    /// What the HDU holds.
    pub kind: HduKind,
    /// EXTNAME, trimmed; `None` when absent or blank.
    pub extname: Option<String>,
    /// EXTVER when present.
    pub extver: Option<i64>,
    /// Whether this is a tile-compressed image (presented as the image it holds).
    pub compressed: bool,
    /// Image shape in C order (`[]` when NAXIS = 0); `None` for tables and random groups.
    pub shape: Option<Vec<usize>>,
    /// BITPIX of the image (of the image a compressed HDU holds); `None` for tables.
    pub bitpix: Option<i32>,
    /// The element type an image read returns; `None` for tables and random groups.
    pub dtype: Option<Dtype>,
    /// Table rows (NAXIS2); `None` for images.
    pub nrows: Option<u64>,
    /// Table columns (TFIELDS); `None` for images.
    pub ncols: Option<usize>,
    /// Number of header cards (joined CONTINUE cards count once).
    pub ncards: usize,
}

impl HduInfo {
    /// What HDU `index` is, from its header and its classification ([`classify`]); sizes are
    /// checked against `limits`.
    pub fn from_header(
        index: usize,
        kind: HduKind,
        compressed: bool,
        header: &Header,
        limits: &Limits,
    ) -> Result<HduInfo> {
        let mut info = HduInfo {
            index,
            kind,
            extname: extname(header),
            extver: header.get_i64("EXTVER"),
            compressed,
            shape: None,
            bitpix: header.get_i64("BITPIX").and_then(|b| i32::try_from(b).ok()),
            dtype: None,
            nrows: None,
            ncols: None,
            ncards: header.len(),
        };
        match kind {
            HduKind::Image => {
                let layout = ImageLayout::from_header(header, limits)?;
                info.shape = Some(layout.shape);
                info.dtype = Some(layout.dtype);
            }
            HduKind::BinTable | HduKind::AsciiTable => {
                info.bitpix = None;
                info.nrows = Some(
                    header
                        .get_i64("NAXIS2")
                        .and_then(|n| u64::try_from(n).ok())
                        .ok_or_else(|| Error::decoding("NAXIS2 (row count) missing or negative"))?,
                );
                info.ncols = Some(
                    header
                        .get_i64("TFIELDS")
                        .and_then(|n| usize::try_from(n).ok())
                        .ok_or_else(|| Error::decoding("TFIELDS missing or negative"))?,
                );
            }
            HduKind::RandomGroups => {}
        }
        Ok(info)
    }
}

/// What an HDU is, by its header.
pub fn classify(index: usize, header: &Header) -> Result<(HduKind, bool)> {
    let first = header.iter().next().map(|c| c.keyword()).unwrap_or_default();
    if index == 0 || first == "SIMPLE" {
        // astropy: a primary header with GROUPS = T is random groups
        let groups = header.get_bool("GROUPS") == Some(true);
        return Ok((if groups { HduKind::RandomGroups } else { HduKind::Image }, false));
    }
    let xtension = header.get_str("XTENSION").map(str::trim_end).unwrap_or("");
    match xtension {
        "IMAGE" | "IUEIMAGE" => Ok((HduKind::Image, false)),
        "TABLE" => Ok((HduKind::AsciiTable, false)),
        "BINTABLE" | "A3DTABLE" if header.get_bool("ZIMAGE") == Some(true) => Ok((HduKind::Image, true)),
        "BINTABLE" | "A3DTABLE" => Ok((HduKind::BinTable, false)),
        other => Err(Error::unsupported(format!("extension type XTENSION = {other:?}"))),
    }
}
