//! Budgets that bound what a file's header can make this crate allocate.

use crate::error::{Error, Result};

/// Bounds on what reading a file may cost, checked (with overflow-checked arithmetic) before
/// anything a header asks for is allocated. Exceeding one is an [`ErrorKind::Limits`] error that
/// names the limit.
///
/// The defaults admit every real survey file we know of; [`Limits::unlimited`] is the explicit
/// opt-out for trusted data.
///
/// ```
/// use torchfits_format::Limits;
/// let strict = Limits::default().with_max_alloc(1 << 20).with_max_header_cards(1000);
/// assert!(strict.check_alloc(2 << 20, "an image").is_err());
/// assert!(Limits::unlimited().check_alloc(u64::MAX, "anything").is_ok());
/// assert!(Limits::default().with_max_tile(1 << 20).check_tile(4 << 20).is_err());
/// ```
///
/// [`ErrorKind::Limits`]: crate::ErrorKind::Limits
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Largest single buffer, in bytes, that a read may allocate on the caller's behalf.
    pub max_alloc: u64,
    /// Most header cards per HDU.
    pub max_header_cards: usize,
    /// Most axes (NAXIS) of an image.
    pub max_naxis: usize,
    /// Most HDUs in one file.
    pub max_hdus: usize,
    /// Longest image axis (any NAXISn of an image, ZNAXISn of a compressed one), in pixels.
    pub max_axis_len: u64,
    /// Largest heap (PCOUNT bytes) of a table with variable-length array columns.
    pub max_heap: u64,
    /// Largest decoded tile of a tile-compressed image, in bytes (a decoder holds one whole tile
    /// per thread). Never more than [`Limits::max_alloc`] in effect.
    pub max_tile: u64,
}

impl Limits {
    /// Default [`Limits::max_alloc`]: 8 GiB.
    pub const DEFAULT_MAX_ALLOC: u64 = 8 << 30;
    /// Default [`Limits::max_header_cards`]: 100 000 cards (8 MB of header).
    pub const DEFAULT_MAX_HEADER_CARDS: usize = 100_000;
    /// Default [`Limits::max_naxis`]: 999, the FITS standard's own maximum.
    pub const DEFAULT_MAX_NAXIS: usize = 999;
    /// Default [`Limits::max_hdus`]: 100 000.
    pub const DEFAULT_MAX_HDUS: usize = 100_000;
    /// Default [`Limits::max_axis_len`]: 2^31 - 1 pixels (cfitsio's own bound on a 32-bit C
    /// `long`; the largest survey images are ~10^5 pixels on a side).
    pub const DEFAULT_MAX_AXIS_LEN: u64 = i32::MAX as u64;
    /// Default [`Limits::max_heap`]: 8 GiB.
    pub const DEFAULT_MAX_HEAP: u64 = 8 << 30;
    /// Default [`Limits::max_tile`]: 1 GiB (a 16384 x 16384 float image as one tile).
    pub const DEFAULT_MAX_TILE: u64 = 1 << 30;

    /// No limits beyond the FITS standard's: for trusted files only.
    pub fn unlimited() -> Self {
        Limits {
            max_alloc: u64::MAX,
            max_header_cards: usize::MAX,
            max_naxis: Self::DEFAULT_MAX_NAXIS,
            max_hdus: usize::MAX,
            max_axis_len: u64::MAX,
            max_heap: u64::MAX,
            max_tile: u64::MAX,
        }
    }

    /// Sets [`Limits::max_alloc`].
    pub fn with_max_alloc(mut self, bytes: u64) -> Self {
        self.max_alloc = bytes;
        self
    }

    /// Sets [`Limits::max_header_cards`].
    pub fn with_max_header_cards(mut self, cards: usize) -> Self {
        self.max_header_cards = cards;
        self
    }

    /// Sets [`Limits::max_naxis`] (at most 999).
    pub fn with_max_naxis(mut self, naxis: usize) -> Self {
        self.max_naxis = naxis.min(Self::DEFAULT_MAX_NAXIS);
        self
    }

    /// Sets [`Limits::max_hdus`].
    pub fn with_max_hdus(mut self, hdus: usize) -> Self {
        self.max_hdus = hdus;
        self
    }

    /// Sets [`Limits::max_axis_len`].
    pub fn with_max_axis_len(mut self, pixels: u64) -> Self {
        self.max_axis_len = pixels;
        self
    }

    /// Sets [`Limits::max_heap`].
    pub fn with_max_heap(mut self, bytes: u64) -> Self {
        self.max_heap = bytes;
        self
    }

    /// Sets [`Limits::max_tile`].
    pub fn with_max_tile(mut self, bytes: u64) -> Self {
        self.max_tile = bytes;
        self
    }

    /// `Ok` if one decoded tile of `bytes` is within [`Limits::max_tile`] and
    /// [`Limits::max_alloc`].
    pub fn check_tile(&self, bytes: u64) -> Result<()> {
        let (limit, name) =
            if self.max_tile <= self.max_alloc { (self.max_tile, "max_tile") } else { (self.max_alloc, "max_alloc") };
        if bytes > limit {
            Err(Error::limits(format!("a tile of {bytes} bytes is over the limit of {limit} (Limits::{name})")))
        } else {
            Ok(())
        }
    }

    /// `Ok` if allocating `bytes` for `what` is within [`Limits::max_alloc`].
    pub fn check_alloc(&self, bytes: u64, what: &str) -> Result<()> {
        if bytes > self.max_alloc {
            Err(Error::limits(format!(
                "{what} needs {bytes} bytes, over the limit of {} (Limits::max_alloc)",
                self.max_alloc
            )))
        } else {
            Ok(())
        }
    }
}

impl Limits {
    /// `n` zeroed values for `what`, within [`Limits::max_alloc`] and allocated fallibly: a
    /// system without the memory gives an [`ErrorKind::Limits`] error, never an abort. The pages
    /// come zeroed from the allocator and are not touched here, as `vec![0; n]`'s are not.
    ///
    /// ```
    /// use torchfits_format::Limits;
    /// let v: Vec<f32> = Limits::default().zeroed_vec(1000, "an image")?;
    /// assert!(v.len() == 1000 && v.iter().all(|&x| x == 0.0));
    /// assert!(Limits::default().with_max_alloc(100).zeroed_vec::<f32>(1000, "an image").is_err());
    /// # Ok::<(), torchfits_format::Error>(())
    /// ```
    ///
    /// [`ErrorKind::Limits`]: crate::ErrorKind::Limits
    pub fn zeroed_vec<T: bytemuck::Zeroable>(&self, n: usize, what: &str) -> Result<Vec<T>> {
        self.check_alloc(bytes_of::<T>(n), what)?;
        bytemuck::allocation::try_zeroed_vec(n).map_err(|()| out_of_memory(bytes_of::<T>(n), what))
    }

    /// Resizes `v` to `n` values (new ones `value`), within [`Limits::max_alloc`] and allocated
    /// fallibly: an error, never an abort. `v`'s contents up to `n` are kept.
    ///
    /// ```
    /// use torchfits_format::Limits;
    /// let mut v = vec![1u8, 2];
    /// Limits::default().resize_vec(&mut v, 4, 0, "a tile")?;
    /// assert_eq!(v, [1, 2, 0, 0]);
    /// assert!(Limits::default().resize_vec(&mut v, usize::MAX, 0, "a tile").is_err());
    /// # Ok::<(), torchfits_format::Error>(())
    /// ```
    pub fn resize_vec<T: Clone>(&self, v: &mut Vec<T>, n: usize, value: T, what: &str) -> Result<()> {
        self.check_alloc(bytes_of::<T>(n), what)?;
        try_resize(v, n, value).map_err(|e| Error::limits(format!("{what}: {e}")))
    }
}

/// Bytes of `n` values of `T` (saturating: a count that overflows is over any limit).
fn bytes_of<T>(n: usize) -> u64 {
    (n as u64).saturating_mul(std::mem::size_of::<T>() as u64)
}

/// Resizes `v` to `n` values (new ones `value`), allocating fallibly: where the system has not
/// the memory, an error saying how much was asked, never an abort. For code that has bounded `n`
/// already (a tile decoder, its tile within [`Limits::max_tile`]); [`Limits::resize_vec`] also
/// checks the limit.
///
/// ```
/// let mut v = vec![7u16];
/// torchfits_format::limits::try_resize(&mut v, 3, 0)?;
/// assert_eq!(v, [7, 0, 0]);
/// assert!(torchfits_format::limits::try_resize(&mut v, usize::MAX / 2, 0).is_err());
/// # Ok::<(), String>(())
/// ```
pub fn try_resize<T: Clone>(v: &mut Vec<T>, n: usize, value: T) -> std::result::Result<(), String> {
    v.try_reserve_exact(n.saturating_sub(v.len()))
        .map_err(|_| format!("{} bytes cannot be allocated", bytes_of::<T>(n)))?;
    v.resize(n, value);
    Ok(())
}

fn out_of_memory(bytes: u64, what: &str) -> Error {
    Error::limits(format!("{what} needs {bytes} bytes, more than the system can allocate"))
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_alloc: Self::DEFAULT_MAX_ALLOC,
            max_header_cards: Self::DEFAULT_MAX_HEADER_CARDS,
            max_naxis: Self::DEFAULT_MAX_NAXIS,
            max_hdus: Self::DEFAULT_MAX_HDUS,
            max_axis_len: Self::DEFAULT_MAX_AXIS_LEN,
            max_heap: Self::DEFAULT_MAX_HEAP,
            max_tile: Self::DEFAULT_MAX_TILE,
        }
    }
}
