//! Byte sources: where a FITS file's bytes come from, behind one trait ([`ByteSource`]) that
//! every reader above takes. A plain file on disk is read with `pread` or through a memory map;
//! a gzip or compress (.Z) file is inflated first, within the limits, into an unlinked temporary
//! file read the same way; bytes in memory are read in place.

mod inflate;
#[cfg(feature = "remote-store")]
pub mod remote;

use std::fmt;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ffi::mmap::Map;
use torchfits_format::error::{Error, Result};
use torchfits_format::limits::{Limits, try_resize};

/// The most [`read_vec_at`](ByteSource::read_vec_at) grows its buffer by before the bytes of one
/// step have arrived.
const READ_STEP: u64 = 64 << 20;

/// Positional reads of a FITS file's bytes: the seam between the readers and where the bytes
/// live. Every method takes `&self`, and many threads read one source at once.
///
/// Implemented here for files on disk (`pread`, or a memory map) and for bytes in memory; open
/// any implementation with [`OpenOptions::open_source`](crate::OpenOptions::open_source).
pub trait ByteSource: Send + Sync + fmt::Debug {
    /// Length in bytes.
    fn len(&self) -> u64;

    /// Whether the source holds no bytes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Fills `buf` with the bytes from `offset`. A source that ends before `offset + buf.len()`
    /// fails with [`io::ErrorKind::UnexpectedEof`]. Blocks until the bytes are there.
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;

    /// All of the source's bytes as one slice, where they are in memory already (a memory map,
    /// bytes in memory): readers then copy from it rather than call
    /// [`read_exact_at`](ByteSource::read_exact_at). `None` by default.
    fn as_bytes(&self) -> Option<&[u8]> {
        None
    }

    /// A hint that `len` bytes at `offset` are about to be read in full (a memory map faults
    /// them in at once). Does nothing by default.
    fn will_read(&self, offset: u64, len: u64) {
        let _ = (offset, len);
    }

    /// Whether each read costs a round trip to a server (object storage): readers then announce
    /// the byte ranges they are about to read with [`prefetch`](ByteSource::prefetch), so that
    /// they are fetched together. `false` by default.
    fn remote(&self) -> bool {
        false
    }

    /// Fetches `ranges` (sorted or not, overlapping or not), which are about to be read, into
    /// memory in as few requests as is worth it. Does nothing by default.
    fn prefetch(&self, ranges: &[Range<u64>]) -> io::Result<()> {
        let _ = ranges;
        Ok(())
    }

    /// What names this version of the bytes, for caches: two sources with equal ids hold the
    /// same bytes.
    fn id(&self) -> SourceId;

    /// A path by which cfitsio can open the same bytes (a file on disk), for the few things only
    /// cfitsio decodes (HCOMPRESS and PLIO tiles). `None` by default: those then fail as
    /// unsupported.
    fn cfitsio_path(&self) -> Option<&Path> {
        None
    }
}

/// The identity of one version of a [`ByteSource`]'s bytes: where they live and which version.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SourceId {
    /// Where the bytes live (a path, a URL, or a name unique to bytes in memory).
    pub location: String,
    /// Which version (for a file: device, inode, length and modification time).
    pub version: String,
}

impl dyn ByteSource + '_ {
    /// [`ByteSource::read_exact_at`], with a short source reported as a truncated file.
    pub(crate) fn read_bytes_at(&self, buf: &mut [u8], at: u64) -> Result<()> {
        self.read_exact_at(buf, at).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                Error::decoding(format!("the file is truncated: it ends before byte {}", at + buf.len() as u64))
            } else {
                Error::io(e, "cannot read")
            }
        })
    }

    /// `len` bytes at `at` into `buf` (what it held is replaced), for `what` (named in errors).
    /// The range is checked against the source's length and `limits` before anything is
    /// allocated, and `buf` grows as the bytes arrive, [`READ_STEP`] at a time: a size read from a
    /// header or a descriptor is never allocated before the bytes it claims are shown to exist,
    /// and a source shorter than the length it states (a server's claim) fails after one step.
    /// `what` is formatted only for an error: a read per tile costs no allocation for its name.
    pub(crate) fn read_vec_at(
        &self,
        buf: &mut Vec<u8>,
        at: u64,
        len: u64,
        limits: &Limits,
        what: &dyn std::fmt::Display,
    ) -> Result<()> {
        let end = at.saturating_add(len);
        if end > self.len() {
            return Err(Error::decoding(format!(
                "the file is truncated: {what} needs bytes {at} to {end}, and the file ends at byte {}",
                self.len()
            )));
        }
        if len > limits.max_alloc {
            limits.check_alloc(len, &what.to_string())?;
        }
        buf.truncate(usize::try_from(len).unwrap_or(usize::MAX));
        let mut done = 0u64;
        while done < len {
            let step = (len - done).min(READ_STEP);
            let from = usize::try_from(done).map_err(|_| Error::limits(format!("{what} does not fit in memory")))?;
            let to =
                usize::try_from(done + step).map_err(|_| Error::limits(format!("{what} does not fit in memory")))?;
            // a reused buffer is cut, not cleared: every byte up to `to` is read over below
            if buf.len() >= to {
                buf.truncate(to);
            } else {
                try_resize(buf, to, 0).map_err(|e| Error::limits(format!("{what}: {e}")))?;
            }
            self.read_bytes_at(buf.get_mut(from..to).unwrap_or(&mut []), at + done)?;
            done += step;
        }
        Ok(())
    }

    /// `len` bytes at `at`, where the source is in memory (`None` otherwise, or out of range).
    pub(crate) fn slice(&self, at: Option<u64>, len: usize) -> Option<&[u8]> {
        let at = usize::try_from(at?).ok()?;
        self.as_bytes()?.get(at..at.checked_add(len)?)
    }
}

/// Whether `name` matches `pattern`, where `*` matches any run of bytes and `?` any one byte.
pub(crate) fn wildcard(pattern: &[u8], name: &[u8]) -> bool {
    match (pattern.split_first(), name.split_first()) {
        (None, None) => true,
        (Some((b'*', rest)), _) => {
            wildcard(rest, name) || name.split_first().is_some_and(|(_, tail)| wildcard(pattern, tail))
        }
        (Some((b'?', rest)), Some((_, tail))) => wildcard(rest, tail),
        (Some((a, rest)), Some((b, tail))) if a == b => wildcard(rest, tail),
        _ => false,
    }
}

/// The files matching `pattern` (`*` and `?` in the last path segment, not in the directories),
/// in name order: a local directory listed, or with the `remote` feature a URL's prefix
/// (`s3://bucket/tiles/*.fits`). An error if none matches.
///
/// ```
/// # let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data");
/// let files = torchfits_core::glob(&format!("{dir}/sample*.fits"))?;
/// assert!(files.iter().any(|f| f.ends_with("sample.fits")));
/// # Ok::<(), torchfits_core::Error>(())
/// ```
pub fn glob(pattern: &str) -> Result<Vec<PathBuf>> {
    #[cfg(feature = "remote-store")]
    if is_url(pattern) {
        let urls = remote::list(pattern)?;
        if urls.is_empty() {
            return Err(Error::parameter(format!("no object matches {}", redact(pattern))));
        }
        return Ok(urls.into_iter().map(PathBuf::from).collect());
    }
    let pattern = Path::new(pattern);
    let dir = pattern.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let name = pattern.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(e, &format!("cannot list {}", dir.display())))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| wildcard(name.as_bytes(), n.as_bytes())))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::parameter(format!("no file matches {}", pattern.display())));
    }
    Ok(files)
}

/// Whether `name` is a URL of object storage (`s3://`, `s3a://`, `gs://`, `az://`, `abfs://`,
/// `abfss://`, `azure://`, `adl://`, `http://`, `https://`): what
/// [`OpenOptions::open_url`](crate::OpenOptions::open_url) opens (with the `remote` feature;
/// without it, an error that says so).
///
/// ```
/// assert!(torchfits_core::is_url("s3://bucket/tile.fits"));
/// assert!(!torchfits_core::is_url("data/tile.fits"));
/// ```
pub fn is_url(name: &str) -> bool {
    const SCHEMES: [&str; 10] = ["s3", "s3a", "gs", "az", "abfs", "abfss", "azure", "adl", "http", "https"];
    name.split_once("://").is_some_and(|(scheme, _)| SCHEMES.contains(&scheme.to_ascii_lowercase().as_str()))
}

/// `url` as errors, logs and listings show it: without the credentials of a `user:password@`
/// and without its query and fragment (a signed URL's signature). A name that is not a URL is
/// shown as it is.
///
/// ```
/// use torchfits_core::redact;
/// assert_eq!(redact("https://me:hunter2@host:8080/a/b.fits?X-Amz-Signature=abc#x"), "https://host:8080/a/b.fits");
/// assert_eq!(redact("data/a?b.fits"), "data/a?b.fits");
/// ```
pub fn redact(url: &str) -> String {
    if !is_url(url) {
        return url.to_string();
    }
    let bare = url.split(['?', '#']).next().unwrap_or(url);
    match bare.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
            format!("{scheme}://{host}{path}")
        }
        None => bare.to_string(),
    }
}

/// The gzip magic number.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Opens the file at `path` as a byte source: plain FITS, or gzip, compress (.Z) or zip data
/// holding FITS, inflated here, never by cfitsio (which allocates the size an untrusted gzip
/// trailer or zip header claims, up to 4 GiB for a file of a few bytes); `max_inflated` bounds the
/// inflated size. Anything else is an error. `mmap`: reads copy from a memory map of the file.
pub(crate) fn open_path(path: &Path, mmap: bool, max_inflated: u64) -> Result<LocalFile> {
    let file = File::open(path).map_err(|e| Error::io(e, "cannot open"))?;
    open_file(file, path, mmap, max_inflated)
}

/// Whether bytes starting with `magic` are compressed (gzip, compress, zip, pack or LZH) rather
/// than plain FITS.
#[cfg(feature = "remote-store")]
fn is_compressed(magic: &[u8]) -> bool {
    matches!(magic, [0x1f, 0x8b | 0x9d | 0x1e | 0xa0, ..] | [b'P', b'K', ..])
}

/// [`open_path`] of a file already open (named `path`).
fn open_file(file: File, path: &Path, mmap: bool, max_inflated: u64) -> Result<LocalFile> {
    let mut magic = [0u8; 9];
    let n = file.read_at(&mut magic, 0).map_err(|e| Error::io(e, "cannot read"))?;
    if n >= 2 && magic[..2] == GZIP_MAGIC {
        tracing::debug!("a gzip file: inflated into a temporary file");
        return inflate::gunzip(file, mmap, max_inflated);
    }
    if n >= 2 && magic[..2] == crate::compression::unlzw::MAGIC {
        tracing::debug!("a compress (.Z) file: inflated into a temporary file");
        return inflate::uncompress(file, mmap, max_inflated);
    }
    if n >= 2 && (magic[..2] == [0x1f, 0x1e] || magic[..2] == [0x1f, 0xa0]) {
        // cfitsio would inflate these into a buffer it grows without bound
        return Err(Error::unsupported(
            "a pack or LZH-compressed file (read by neither torchfits nor astropy): decompress it first",
        ));
    }
    if n >= 2 && magic[..2] == *b"PK" {
        tracing::debug!("a zip file: its first member inflated into a temporary file");
        return inflate::unzip(file, mmap, max_inflated);
    }
    if n < magic.len() || &magic != b"SIMPLE  =" {
        return Err(Error::decoding("not a FITS file: it does not start with a SIMPLE card"));
    }
    LocalFile::new(file, mmap, path.to_path_buf())
}

/// A plain FITS file on disk (or the unlinked, inflated copy of a gzip or .Z file): `pread`, and
/// in mmap mode a memory map made on the first read.
#[derive(Debug)]
pub(crate) struct LocalFile {
    file: File,
    len: u64,
    mmap: bool,
    map: OnceLock<Map>,
    /// Where cfitsio opens the same bytes: the path opened, or `/proc/self/fd/N` of an inflated
    /// copy.
    cfitsio_path: PathBuf,
    id: SourceId,
}

impl LocalFile {
    /// A file already open and known to hold FITS bytes, named `path` (one `fstat` for its length
    /// and its identity).
    fn new(file: File, mmap: bool, path: PathBuf) -> Result<LocalFile> {
        let meta = file.metadata().map_err(|e| Error::io(e, "cannot stat"))?;
        let len = meta.len();
        let version = format!("{}:{}:{}:{}.{}", meta.dev(), meta.ino(), meta.len(), meta.mtime(), meta.mtime_nsec());
        let id = SourceId { location: path.display().to_string(), version };
        Ok(LocalFile { file, len, mmap, map: OnceLock::new(), cfitsio_path: path, id })
    }

    /// The whole file, mapped, in mmap mode (made on first use); `None` when not in mmap mode.
    fn map(&self) -> Result<Option<&Map>> {
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

impl ByteSource for LocalFile {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        if let Some(bytes) = self.as_bytes() {
            return copy_from(bytes, buf, offset);
        }
        self.file.read_exact_at(buf, offset)
    }

    fn as_bytes(&self) -> Option<&[u8]> {
        self.map().ok().flatten().map(Map::bytes)
    }

    fn will_read(&self, offset: u64, len: u64) {
        if let (Ok(Some(map)), Ok(offset), Ok(len)) = (self.map(), usize::try_from(offset), usize::try_from(len)) {
            map.populate(offset, len);
        }
    }

    fn id(&self) -> SourceId {
        self.id.clone()
    }

    fn cfitsio_path(&self) -> Option<&Path> {
        Some(&self.cfitsio_path)
    }
}

/// Copies `buf.len()` bytes at `offset` of `bytes` into `buf`, or fails as a short read would.
fn copy_from(bytes: &[u8], buf: &mut [u8], offset: u64) -> io::Result<()> {
    let src = usize::try_from(offset)
        .ok()
        .and_then(|at| bytes.get(at..at.checked_add(buf.len())?))
        .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of the bytes"))?;
    buf.copy_from_slice(src);
    Ok(())
}

/// A FITS file's bytes in memory (for example fetched by the caller, or made by a test).
#[derive(Debug)]
pub(crate) struct InMemory {
    bytes: Vec<u8>,
    id: SourceId,
}

impl InMemory {
    /// The bytes of one FITS file, named by a counter unique to this process.
    pub(crate) fn new(bytes: Vec<u8>) -> InMemory {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = SourceId { location: format!("memory:{}:{n}", std::process::id()), version: bytes.len().to_string() };
        InMemory { bytes, id }
    }
}

impl ByteSource for InMemory {
    fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        copy_from(&self.bytes, buf, offset)
    }

    fn as_bytes(&self) -> Option<&[u8]> {
        Some(&self.bytes)
    }

    fn id(&self) -> SourceId {
        self.id.clone()
    }
}
