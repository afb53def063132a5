//! Reading and writing: the HDU index of an open file, image and table readers over a byte
//! source, the native tile decoder's reads, the atomic writer, buffer pools and the open-file cache.

pub(crate) mod cache;
pub(crate) mod convert;
pub(crate) mod file;
pub(crate) mod image;
pub(crate) mod index;
pub(crate) mod pool;
pub mod table;
pub(crate) mod tile_memo;
pub(crate) mod tiled;
pub mod write;
