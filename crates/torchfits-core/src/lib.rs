//! # torchfits-core
//!
//! FITS I/O for Rust data pipelines: open a file (on disk, in memory, or any [`ByteSource`]),
//! list its HDUs, read headers as typed cards, images (whole, N-D sections, tile-compressed) and
//! tables (columns, row ranges, filters, Arrow) straight into buffers the caller owns, with
//! astropy's semantics; write images, tables and headers atomically. An open [`FitsFile`] is
//! shared by any number of threads. Headers, plain images, RICE_1 and GZIP tiles and tables are
//! read in Rust; cfitsio only decodes HCOMPRESS and PLIO tiles (after torchfits has checked them).
//!
//! What it does not do: it knows nothing of Burn or any tensor library (that is `torchfits-burn`),
//! and it has no command line or output formats of its own (that is `torchfits-cli`). World
//! coordinates come from wcslib ([`Wcs`]). The repository's `ARCHITECTURE.md` maps its layers.
//!
//! ```
//! use torchfits_core::{Dtype, FitsFile, Section};
//! # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
//! let file = FitsFile::open(path)?;                 // literal path, read-only
//! println!("{} HDUs", file.hdu_count()?);
//! let header = file.header("SCI")?;                      // by EXTNAME, index or (EXTNAME, EXTVER)
//! let exptime = header.get_f64("EXPTIME");
//! let image = file.image("SCI")?;
//! assert_eq!(image.dtype(), Dtype::F32);
//! let mut buf = vec![0f32; image.len()];
//! image.read_into(&mut buf)?;                             // into a caller-owned buffer
//! let stamp: Vec<f32> = image.read_section(&Section::new(vec![0..8, 0..8]))?;
//! # let _ = (exptime, stamp);
//! # Ok::<(), torchfits_core::Error>(())
//! ```
//!
//! ## Semantics
//! - Axis order is C order (slowest first): an image with `NAXIS1 = 200`, `NAXIS2 = 100` has
//!   shape `[100, 200]`; sections are 0-based and half-open in the same order.
//! - Pixel types follow astropy: see [`Scaling::dtype`].
//! - Tile-compressed images are presented as the images they hold; a section decodes only the
//!   tiles it touches.
//! - Every error names the file, the HDU and the cause ([`Error`]); sizes read from a file are
//!   checked against [`Limits`] before anything is allocated.
//!
//! ```
//! use torchfits_core::{ErrorKind, FitsFile};
//! # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
//! let err = FitsFile::open(path)?.image("CATALOG").unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Parameter);            // the caller asked a table for pixels
//! assert_eq!(err.hdu(), Some(4));
//! assert!(err.to_string().ends_with("HDU 4: the HDU is a bintable, not an image"));
//!
//! let err = FitsFile::open("/no/such/file.fits").unwrap_err();
//! assert_eq!(err.kind(), ErrorKind::Io);
//! assert!(err.to_string().starts_with("/no/such/file.fits: cannot open"));
//! # Ok::<(), torchfits_core::Error>(())
//! ```
#![deny(unsafe_code)]
// no panic a file can trigger: every exception is a module's reviewed `allow` with its reason
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, clippy::string_slice)
)]
#![deny(missing_docs)]

// The layers, bottom up: compression, ffi, source, cfitsio, io; each uses only those before it
// (ARCHITECTURE.md). Below them are two crates: torchfits-format (errors, limits, cards, headers,
// HDU layout, pixel types, table schemas, checksums) and torchfits-wcs (over wcs-sys).
mod cfitsio;
mod compression;
mod ffi;
mod io;
mod source;

pub use io::cache::{CacheStats, FileCache, with_cached_file};
pub use io::file::{FitsFile, OpenOptions};
pub use io::image::ImageReader;
pub use io::pool::{BufferPool, PoolStats, PooledBuffer};
pub use io::tile_memo::set_tile_memo_bytes;
pub use io::table::{self, ColumnData, ColumnPool, ColumnValues, TableBatch, TableReader, TableSchema};
pub use io::write::{self, Compression, FitsWriter, Quantize, WriteOptions};
#[cfg(feature = "remote-store")]
pub use source::remote;
pub use source::{ByteSource, SourceId, glob, is_url, redact};
pub use torchfits_format::{
    CARD_LEN, Card, CfitsioError, Dtype, Error, ErrorKind, HduInfo, HduKind, HduSelector, Header, ImageData, Limits,
    Pixel, Pixels, Result, Scaling, Section, Value,
};
pub use torchfits_wcs::{ProjectionParameters, SipPolynomials, Wcs, WcsOptions};

/// How many cfitsio handles this process has opened on existing files. Reads with the default
/// [`OpenOptions`] open none: headers, tables, every image into every pixel type, every tile
/// codec are torchfits' own code. cfitsio is left for what a caller asks of it: extended filename
/// syntax ([`OpenOptions::cfitsio_extended_syntax`]), reads with
/// [`OpenOptions::direct_reads`]`(false)`, and the writer's HCOMPRESS and PLIO coders.
///
/// ```standalone_crate
/// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
/// let before = torchfits_core::cfitsio_handles_opened();
/// let file = torchfits_core::FitsFile::open(path)?;
/// let _pixels: Vec<f32> = file.image("SCI")?.read()?;
/// assert_eq!(torchfits_core::cfitsio_handles_opened(), before);
/// # Ok::<(), torchfits_core::Error>(())
/// ```
pub fn cfitsio_handles_opened() -> u64 {
    ffi::cfitsio::handles_opened()
}

/// Whether the linked cfitsio is reentrant, i.e. separate handles may be used from separate
/// threads at once without a process-wide lock (this crate falls back to such a lock otherwise).
pub fn cfitsio_is_reentrant() -> bool {
    ffi::cfitsio::is_reentrant()
}
