//! Byte sources: where a FITS file's bytes come from. A plain file on disk is read with `pread` or
//! through a memory map; a gzip or compress (.Z) file is inflated first, within the limits, into an
//! unlinked temporary file read the same way.

mod inflate;

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::error::{Error, Result};
use crate::ffi::mmap::Map;

/// A plain FITS file on disk: the handle for `pread`, and the memory map in mmap mode (made on the
/// first read). A gzip-compressed file is inflated (within [`Limits::max_alloc`]) into an unlinked
/// temporary file first, and read from there like any plain file.
///
/// [`Limits::max_alloc`]: crate::Limits::max_alloc
#[derive(Debug)]
pub(crate) struct LocalFile {
    file: File,
    len: u64,
    mmap: bool,
    map: OnceLock<Map>,
    /// For an inflated gzip file: the path by which cfitsio opens the inflated copy.
    inflated: Option<PathBuf>,
}

impl LocalFile {
    /// A file already open and known to hold FITS bytes (`len` of them).
    fn new(file: File, len: u64, mmap: bool, inflated: Option<PathBuf>) -> LocalFile {
        LocalFile { file, len, mmap, map: OnceLock::new(), inflated }
    }
}

/// The gzip magic number.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

impl LocalFile {
    /// Opens `path`; `None` when the file on disk is neither plain FITS nor gzip-compressed (it
    /// is then cfitsio's to open, or to refuse). A gzip file is inflated here, never by cfitsio:
    /// cfitsio allocates the size the (untrusted) gzip trailer claims, up to 4 GiB for a file of a
    /// few bytes. `max_inflated` bounds the inflated size.
    pub(crate) fn open(path: &Path, mmap: bool, max_inflated: u64) -> Result<Option<LocalFile>> {
        let file = File::open(path).map_err(|e| Error::io(e, "cannot open"))?;
        let mut magic = [0u8; 9];
        let n = file.read_at(&mut magic, 0).map_err(|e| Error::io(e, "cannot read"))?;
        if n >= 2 && magic[..2] == GZIP_MAGIC {
            return inflate::gunzip(file, mmap, max_inflated).map(Some);
        }
        if n >= 2 && magic[..2] == crate::compression::unlzw::MAGIC {
            return inflate::uncompress(file, mmap, max_inflated).map(Some);
        }
        if n >= 2 && (magic[..2] == [0x1f, 0x1e] || magic[..2] == [0x1f, 0xa0]) {
            // cfitsio would inflate these into a buffer it grows without bound
            return Err(Error::unsupported(
                "a pack or LZH-compressed file (read by neither torchfits nor astropy): decompress it first",
            ));
        }
        if n >= 2 && magic[..2] == *b"PK" {
            // cfitsio takes any file starting "PK" for a zip file, to inflate into a buffer of the
            // size bytes 22..26 declare: bound that first
            let mut size = [0u8; 4];
            file.read_exact_at(&mut size, 22).map_err(|e| Error::io(e, "cannot read the zip header"))?;
            let size = u64::from(u32::from_le_bytes(size));
            if size > max_inflated {
                return Err(Error::limits(format!(
                    "the zip file declares {size} inflated bytes, over the limit of {max_inflated} (Limits::max_alloc)"
                )));
            }
        }
        if n < magic.len() || &magic != b"SIMPLE  =" {
            return Ok(None);
        }
        let len = file.metadata().map_err(|e| Error::io(e, "cannot stat"))?.len();
        Ok(Some(LocalFile::new(file, len, mmap, None)))
    }

    /// Where cfitsio opens this file's FITS bytes: the inflated copy of a gzip file, else `None`
    /// (the path as given).
    pub(crate) fn inflated_path(&self) -> Option<&Path> {
        self.inflated.as_deref()
    }

    /// The open file.
    pub(crate) fn file(&self) -> &File {
        &self.file
    }

    /// The file's length in bytes when opened.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The whole file, mapped, in mmap mode (made on first use; `None` otherwise or if mapping fails).
    pub(crate) fn mapped_bytes(&self) -> Option<&[u8]> {
        self.map().ok().flatten().map(Map::bytes)
    }

    /// In mmap mode, maps the pages of a range about to be read in full, in one call.
    pub(crate) fn populate(&self, offset: usize, len: usize) {
        if let Ok(Some(map)) = self.map() {
            map.populate(offset, len);
        }
    }

    /// `pread` of exactly `buf.len()` bytes at `at`; a short file is a truncation error.
    pub(crate) fn read_bytes_at(&self, buf: &mut [u8], at: u64) -> Result<()> {
        self.file.read_exact_at(buf, at).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::decoding(format!("the file is truncated: it ends before byte {}", at + buf.len() as u64))
            } else {
                Error::io(e, "cannot read")
            }
        })
    }

    /// The whole file, mapped, in mmap mode (made on first use); `None` when not in mmap mode.
    pub(crate) fn map(&self) -> Result<Option<&Map>> {
        if !self.mmap || self.len == 0 {
            return Ok(None);
        }
        if let Some(m) = self.map.get() {
            return Ok(Some(m));
        }
        let m = Map::new(&self.file)?;
        Ok(Some(self.map.get_or_init(|| m)))
    }
}
