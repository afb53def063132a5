//! A read-only memory map of a file (memmap2).

use torchfits_format::error::{Error, Result};

/// The bytes of the file at `path`, memory-mapped read-only, as an Arrow buffer: no copy, and
/// only the pages read become resident (an Arrow IPC file decoded in place with `arrow_ipc`'s
/// `FileDecoder`, for one). [`read_file`](crate::table::arrow::read_file) reads the bytes instead,
/// with no contract.
///
/// # Safety
///
/// The buffer's bytes are the file's pages: while the buffer or any slice of it lives, no
/// process may truncate the file (a read of a lost page raises SIGBUS) or write to it (the
/// "immutable" bytes would change under the reader). Map only files written whole and renamed
/// into place, which nothing modifies.
///
/// ```
/// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
/// // SAFETY: the example file is part of the repository; nothing rewrites it while this runs.
/// let bytes = unsafe { torchfits_core::table::arrow::map_file(path)? };
/// assert_eq!(&bytes[..6], b"SIMPLE");
/// # Ok::<(), torchfits_core::Error>(())
/// ```
#[cfg(feature = "arrow")]
pub unsafe fn map_file(path: impl AsRef<std::path::Path>) -> Result<arrow_buffer::Buffer> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|e| Error::io(e, "cannot open the file").in_file(path))?;
    let map = Map::new(&file).map_err(|e| e.in_file(path))?;
    Ok(map.into_arrow_buffer())
}

/// A read-only memory map of a whole file (the `mmap` mode of direct reads).
#[derive(Debug)]
pub(crate) struct Map(memmap2::Mmap);

impl Map {
    pub(crate) fn new(file: &std::fs::File) -> Result<Map> {
        // SAFETY: the map is read-only and its bytes are only ever copied out. If another process
        // truncates the file while it is mapped, touching the lost pages raises SIGBUS: that is
        // the documented risk of mmap mode (`OpenOptions::mmap`), which is off by default.
        let map = unsafe { memmap2::Mmap::map(file) };
        map.map(Map).map_err(|e| Error::io(e, "cannot map the file"))
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }

    /// Maps the pages of `offset..offset + len` in one call (`MADV_POPULATE_READ`) rather than one
    /// fault at a time as they are first read. Best effort: kernels without it fault as usual.
    pub(crate) fn populate(&self, offset: usize, len: usize) {
        let _ = self.0.advise_range(memmap2::Advice::PopulateRead, offset, len);
    }
}

#[cfg(feature = "arrow")]
impl Map {
    /// The whole map as an Arrow buffer that keeps the map alive (no copy).
    pub(crate) fn into_arrow_buffer(self) -> arrow_buffer::Buffer {
        let len = self.0.len();
        match std::ptr::NonNull::new(self.0.as_ptr().cast_mut()) {
            // SAFETY: the pointer and length are the map's own, and the buffer owns the map (the
            // `Arc`), so the pages outlive every slice of it; an Arrow `Buffer` is immutable, so
            // nothing writes through the read-only mapping.
            Some(ptr) if len > 0 => unsafe {
                arrow_buffer::Buffer::from_custom_allocation(ptr, len, std::sync::Arc::new(self))
            },
            _ => arrow_buffer::Buffer::from_vec(Vec::<u8>::new()),
        }
    }
}
