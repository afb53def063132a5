//! Every `unsafe` block of the crate: cfitsio's C API, the memory map of a file, and the one plain-old-data type whose `Pod` impl is written by hand.
//! Raw pointers never leave this module; each block says why it is sound in a `// SAFETY:` line.
#![allow(unsafe_code)]

pub(crate) mod cfitsio;
pub(crate) mod mmap;

/// 64 bytes aligned to 64: the unit of [`crate::BufferPool`] storage, so that every pooled
/// buffer is cache-line aligned and can be viewed as a slice of any pixel type.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
pub(crate) struct Line(pub [u8; 64]);

// SAFETY: `Line` is `repr(C)` around a byte array: no padding, every bit pattern is valid, and
// the all-zero pattern is a valid value.
unsafe impl bytemuck::Zeroable for Line {}
// SAFETY: as above; it is also `Copy` and `'static`.
unsafe impl bytemuck::Pod for Line {}
