//! # torchfits-format
//!
//! The FITS format as data, without I/O: cards and headers (parsing and formatting), HDU layout
//! and classification, pixel types and sections, table schemas, checksums, and the error and
//! limit types every torchfits crate shares. Everything above it reads bytes and hands them here;
//! nothing here opens a file or calls C.
//!
//! Most users want `torchfits-core`, which re-exports the types of this crate that its API uses.
//! This crate is for code that handles FITS headers without reading files, such as the `wcs`
//! crate, or a tool that builds headers.
//!
//! ```
//! use torchfits_format::{Header, Value};
//! let mut header = Header::new();
//! header.set("CTYPE1", "RA---TAN", Some("gnomonic"))?.set("CRVAL1", 150.0, None)?;
//! assert_eq!(header.get_str("CTYPE1"), Some("RA---TAN"));
//! assert_eq!(header.get("CRVAL1"), Some(&Value::Float(150.0)));
//! # Ok::<(), torchfits_format::Error>(())
//! ```
#![deny(unsafe_code)]
// no panic a file can trigger: every exception is a module's reviewed `allow` with its reason
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, clippy::string_slice)
)]
#![deny(missing_docs)]

pub mod cards;
pub mod checksum;
pub mod error;
pub mod hdu;
pub mod header;
pub mod limits;
pub mod pixel;
pub mod table_schema;
pub mod threads;

pub use error::{CfitsioError, Error, ErrorKind, Result};
pub use hdu::{HduInfo, HduKind, HduSelector};
pub use header::{CARD_LEN, Card, Header, Value};
pub use limits::Limits;
pub use pixel::{Dtype, ImageData, Pixel, Pixels, Scaling, Section};
