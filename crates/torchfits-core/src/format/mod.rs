//! The FITS format as data, without I/O: cards and headers (parsing and formatting), HDU layout,
//! pixel types and sections, table schemas, checksums. Everything above it reads bytes and hands
//! them here; nothing here opens a file.

pub(crate) mod cards;
pub(crate) mod checksum;
pub(crate) mod hdu;
pub(crate) mod header;
pub(crate) mod pixel;
pub(crate) mod table_schema;
