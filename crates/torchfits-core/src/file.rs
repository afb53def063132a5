//! Opening a FITS file and finding its HDUs.

use std::path::{Path, PathBuf};

use crate::direct::Direct;
use crate::error::{Error, ErrorKind, Result};
use crate::ffi::Handle;
use crate::hdu::{HduInfo, HduKind, HduSelector, ImageLayout};
use crate::header::Header;
use crate::image::ImageReader;
use crate::limits::Limits;
use crate::scan;

/// How to open a file: the [`Limits`] to enforce and whether cfitsio's extended filename syntax is
/// allowed.
///
/// ```
/// use torchfits_core::{FitsFile, Limits, OpenOptions};
/// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
/// let file = OpenOptions::new().limits(Limits::default().with_max_alloc(1 << 30)).open(path)?;
/// # Ok::<(), torchfits_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct OpenOptions {
    limits: Limits,
    extended_syntax: bool,
    direct: bool,
    mmap: bool,
    threads: usize,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            limits: Limits::default(),
            extended_syntax: false,
            direct: true,
            mmap: false,
            threads: default_threads(),
        }
    }
}

/// The default thread count of large reads: the available cores.
fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

impl OpenOptions {
    /// Default options: default [`Limits`], paths taken literally.
    pub fn new() -> Self {
        Self::default()
    }

    /// The [`Limits`] reads from this file enforce.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Interpret the path with cfitsio's extended filename syntax (`file.fits[1]`, row filters,
    /// `http://` URLs, `-` for stdin, compressed pipes) instead of as a literal file name.
    ///
    /// **Never use this with untrusted names**: the syntax can fetch URLs and run filters.
    pub fn cfitsio_extended_syntax(mut self, yes: bool) -> Self {
        self.extended_syntax = yes;
        self
    }

    /// Read uncompressed images directly (the default): cfitsio locates the data, the bytes go
    /// from the file into the caller's buffer with one conversion pass. `false` sends every read
    /// through cfitsio's own conversion (slower; the results are identical).
    pub fn direct_reads(mut self, yes: bool) -> Self {
        self.direct = yes;
        self
    }

    /// Direct reads copy from a memory map of the file instead of `pread` (off by default). Faster
    /// for many small sections; but if another process truncates the file while it is mapped, the
    /// process gets SIGBUS: use it only on files nothing else rewrites.
    pub fn mmap(mut self, yes: bool) -> Self {
        self.mmap = yes;
        self
    }

    /// Threads a large read may use (default: the available cores; 1 reads on the calling thread).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }

    /// Opens `path` read-only (one cfitsio handle; reads the primary header).
    pub fn open(&self, path: impl AsRef<Path>) -> Result<FitsFile> {
        let path = path.as_ref();
        let source = match Handle::open(path, self.extended_syntax) {
            Ok(handle) => Source::Cfitsio(handle),
            // cfitsio refuses some headers other readers accept (keywords out of the standard's
            // order): list such a file's HDUs and headers from our own reader
            Err(refusal) if refusal.kind() == ErrorKind::Decoding && !self.extended_syntax => {
                match scan::read_headers(path, &self.limits) {
                    Ok(headers) => Source::HeadersOnly { headers, refusal },
                    Err(_) => return Err(refusal.in_file(path)),
                }
            }
            Err(e) => return Err(e.in_file(path)),
        };
        Ok(FitsFile {
            source,
            path: path.to_path_buf(),
            limits: self.limits,
            direct: if self.direct && !self.extended_syntax {
                DirectState::Untried
            } else {
                DirectState::Off
            },
            mmap: self.mmap,
            threads: self.threads,
            extended_syntax: self.extended_syntax,
        })
    }
}

/// An open FITS file: one cfitsio handle, read-only.
///
/// `FitsFile` is `Send` but not `Sync`: move it to another thread, or open the same path once per
/// thread for parallel reads (there is no global lock when cfitsio is built reentrant). Paths are
/// opened literally: `a[1].fits` is a file name, `http://x` is not fetched (see
/// [`OpenOptions::cfitsio_extended_syntax`]).
///
/// A file whose headers cfitsio refuses but which is otherwise readable FITS (for example a
/// primary header with NAXIS before BITPIX, which astropy accepts) still opens: its HDUs and
/// headers are listed, and a data read reports cfitsio's refusal.
///
/// ```
/// use torchfits_core::{FitsFile, HduKind};
/// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
/// let mut file = FitsFile::open(path)?;
/// for hdu in file.hdus()? {
///     println!("{} {:?} {:?} {:?}", hdu.index, hdu.kind, hdu.extname, hdu.shape);
/// }
/// let header = file.header(0)?;
/// assert_eq!(header.get_bool("SIMPLE"), Some(true));
/// assert_eq!(file.hdu("SCI")?.kind, HduKind::Image);
/// # Ok::<(), torchfits_core::Error>(())
/// ```
#[derive(Debug)]
pub struct FitsFile {
    source: Source,
    path: PathBuf,
    limits: Limits,
    direct: DirectState,
    mmap: bool,
    threads: usize,
    extended_syntax: bool,
}

/// The file opened a second time, by us, for direct reads (on the first such read).
#[derive(Debug)]
enum DirectState {
    Untried,
    Off,
    Open(Direct),
}

#[derive(Debug)]
enum Source {
    Cfitsio(Handle),
    /// cfitsio refused the file; its headers, read by [`scan`].
    HeadersOnly {
        headers: Vec<Vec<u8>>,
        refusal: Error,
    },
}

/// Opens more cfitsio handles on one file, for worker threads (a handle is never shared).
#[derive(Debug, Clone)]
pub(crate) struct Reopener {
    path: PathBuf,
    extended_syntax: bool,
}

impl Reopener {
    /// A new handle, at HDU `index`.
    pub(crate) fn open_at(&self, index: usize) -> Result<Handle> {
        let mut handle = Handle::open(&self.path, self.extended_syntax)?;
        handle.move_to(index)?;
        Ok(handle)
    }
}

/// One HDU's header, read and classified.
struct Loaded {
    kind: HduKind,
    compressed: bool,
    /// The header (for a compressed image, the header of the image it holds).
    header: Header,
    /// For a compressed image, the tile shape in C order.
    tiles: Option<Vec<usize>>,
}

/// The tile shape (C order) of a compressed image, from its binary table's header: ZTILEn, by
/// default whole rows (ZTILE1 = ZNAXIS1, the others 1).
fn tile_shape(table: &Header) -> Option<Vec<usize>> {
    let naxis = usize::try_from(table.get_i64("ZNAXIS")?).ok()?;
    let mut tiles = Vec::with_capacity(naxis);
    for k in (1..=naxis).rev() {
        let default = if k == 1 { table.get_i64("ZNAXIS1")? } else { 1 };
        let t = table.get_i64(&format!("ZTILE{k}")).unwrap_or(default);
        tiles.push(usize::try_from(t).ok().filter(|&t| t > 0)?);
    }
    Some(tiles)
}

/// What an HDU is, by its header (the same rules for both sources).
fn classify(index: usize, header: &Header) -> Result<(HduKind, bool)> {
    let first = header
        .iter()
        .next()
        .map(|c| c.keyword())
        .unwrap_or_default();
    if index == 0 || first == "SIMPLE" {
        // astropy: a primary header with GROUPS = T is random groups
        let groups = header.get_bool("GROUPS") == Some(true);
        return Ok((
            if groups {
                HduKind::RandomGroups
            } else {
                HduKind::Image
            },
            false,
        ));
    }
    let xtension = header.get_str("XTENSION").map(str::trim_end).unwrap_or("");
    match xtension {
        "IMAGE" | "IUEIMAGE" => Ok((HduKind::Image, false)),
        "TABLE" => Ok((HduKind::AsciiTable, false)),
        "BINTABLE" | "A3DTABLE" if header.get_bool("ZIMAGE") == Some(true) => {
            Ok((HduKind::Image, true))
        }
        "BINTABLE" | "A3DTABLE" => Ok((HduKind::BinTable, false)),
        other => Err(Error::unsupported(format!(
            "extension type XTENSION = {other:?}"
        ))),
    }
}

impl FitsFile {
    /// Opens `path` read-only with default [`OpenOptions`].
    pub fn open(path: impl AsRef<Path>) -> Result<FitsFile> {
        OpenOptions::new().open(path)
    }

    /// The path this file was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The limits reads from this file enforce.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Threads a large read may use.
    pub(crate) fn threads(&self) -> usize {
        self.threads
    }

    /// What a worker thread needs to open its own cfitsio handle on this file.
    pub(crate) fn reopener(&self) -> Reopener {
        Reopener {
            path: self.path.clone(),
            extended_syntax: self.extended_syntax,
        }
    }

    /// The file opened for direct reads, or `None` where they do not apply (disabled, extended
    /// syntax, a gzip file that cfitsio decompresses in memory, a file cfitsio refused).
    pub(crate) fn direct(&mut self) -> Result<Option<&Direct>> {
        if let DirectState::Untried = self.direct {
            self.direct = match (&self.source, Direct::open(&self.path, self.mmap)) {
                (Source::Cfitsio(_), Ok(Some(d))) => DirectState::Open(d),
                (_, Err(e)) => return Err(e.in_file(&self.path)),
                _ => DirectState::Off,
            };
        }
        Ok(match &self.direct {
            DirectState::Open(d) => Some(d),
            _ => None,
        })
    }

    /// Number of HDUs (cfitsio reads every header in the file to count them).
    pub fn hdu_count(&mut self) -> Result<usize> {
        let n = match &mut self.source {
            Source::Cfitsio(handle) => handle.num_hdus().map_err(|e| e.in_file(&self.path))?,
            Source::HeadersOnly { headers, .. } => headers.len(),
        };
        if n > self.limits.max_hdus {
            return Err(Error::new(
                ErrorKind::Limits,
                format!(
                    "{n} HDUs, over the limit of {} (Limits::max_hdus)",
                    self.limits.max_hdus
                ),
            )
            .in_file(&self.path));
        }
        Ok(n)
    }

    fn no_hdu(&mut self, index: usize) -> Error {
        let n = self.hdu_count().unwrap_or(index);
        Error::new(
            ErrorKind::Parameter,
            format!("no HDU {index}: the file has {n}"),
        )
        .in_file(&self.path)
    }

    /// Moves to HDU `index`.
    fn seek(&mut self, index: usize) -> Result<()> {
        let result = match &mut self.source {
            Source::Cfitsio(handle) => handle.move_to(index).map(|_| ()),
            Source::HeadersOnly { headers, .. } => {
                return if index < headers.len() {
                    Ok(())
                } else {
                    Err(self.no_hdu(index))
                };
            }
        };
        match result {
            Ok(()) => Ok(()),
            // END_OF_FILE / BAD_HDU_NUM: past the last HDU
            Err(e)
                if index > 0
                    && e.cfitsio()
                        .is_some_and(|c| c.status == 107 || c.status == 301) =>
            {
                Err(self.no_hdu(index))
            }
            Err(e) => Err(e.in_hdu(index).in_file(&self.path)),
        }
    }

    /// The cfitsio handle, moved to HDU `index`, for reading data.
    pub(crate) fn handle_at(&mut self, index: usize) -> Result<&mut Handle> {
        self.seek(index)?;
        match &mut self.source {
            Source::Cfitsio(handle) => Ok(handle),
            Source::HeadersOnly { refusal, .. } => Err(Error::new(
                ErrorKind::Decoding,
                format!(
                    "cfitsio cannot read data from this non-standard file: {}",
                    refusal.message()
                ),
            )
            .in_hdu(index)
            .in_file(&self.path)),
        }
    }

    /// A read error, with truncation named as such: cfitsio reports reading past the end of the
    /// file as a plain READ_ERROR.
    pub(crate) fn explain_read_error(&mut self, index: usize, e: Error) -> Error {
        let Some(status) = e.cfitsio().map(|c| c.status) else {
            return e;
        };
        if status != 107 && status != 108 {
            return e;
        }
        let file_len = std::fs::metadata(&self.path).map(|m| m.len()).ok();
        let span = match &mut self.source {
            Source::Cfitsio(handle) => handle.hdu_span().ok(),
            Source::HeadersOnly { .. } => None,
        };
        match (file_len, span) {
            (Some(len), Some((_, _, end))) if end > len => Error::new(
                ErrorKind::Decoding,
                format!("the file is truncated: the HDU's data ends at byte {end}, the file has {len} bytes"),
            )
            .in_hdu(index),
            _ => e,
        }
    }

    /// Reads HDU `index`'s kind, compressed flag and header (for a compressed image, the header
    /// of the image it holds), with one header call.
    fn load(&mut self, index: usize) -> Result<Loaded> {
        self.seek(index)?;
        let limits = self.limits;
        let path = self.path.clone();
        let wrap = |e: Error| e.in_hdu(index).in_file(&path);
        let mut header = match &mut self.source {
            Source::Cfitsio(handle) => {
                let ncards = handle.card_count().map_err(wrap)?;
                if ncards > limits.max_header_cards {
                    return Err(wrap(Error::new(
                        ErrorKind::Limits,
                        format!(
                            "header has {ncards} cards, over the limit of {} (Limits::max_header_cards)",
                            limits.max_header_cards
                        ),
                    )));
                }
                let bytes = handle.header_bytes().map_err(wrap)?;
                Header::parse_limited(&bytes, limits.max_header_cards).map_err(wrap)?
            }
            Source::HeadersOnly { headers, .. } => {
                Header::parse_limited(&headers[index], limits.max_header_cards).map_err(wrap)?
            }
        };
        let (kind, compressed) = classify(index, &header).map_err(wrap)?;
        let mut tiles = None;
        if compressed {
            tiles = tile_shape(&header);
            header = header.compressed_image_header().map_err(wrap)?;
        }
        if kind == HduKind::RandomGroups {
            header.normalise_random_groups();
        }
        Ok(Loaded {
            kind,
            compressed,
            header,
            tiles,
        })
    }

    /// The HDU `selector` names, loaded: index, kind, compressed flag, header. A name is looked up
    /// by reading headers from the start.
    fn find(&mut self, selector: HduSelector) -> Result<(usize, Loaded)> {
        if let HduSelector::Index(i) = selector {
            return Ok((i, self.load(i)?));
        }
        let n = self.hdu_count()?;
        for i in 0..n {
            let loaded = self.load(i)?;
            if selector.matches(i, &loaded.header) {
                return Ok((i, loaded));
            }
        }
        Err(Error::new(
            ErrorKind::Parameter,
            format!("no HDU named {selector} (the file has {n} HDUs)"),
        )
        .in_file(&self.path))
    }

    /// The 0-based index of the HDU `selector` names (for a name, reads headers from the start).
    pub fn resolve(&mut self, selector: impl Into<HduSelector>) -> Result<usize> {
        match selector.into() {
            HduSelector::Index(i) => self.seek(i).map(|()| i),
            named => self.find(named).map(|(i, ..)| i),
        }
    }

    /// What HDU `selector` holds (reads its header, not its data).
    pub fn hdu(&mut self, selector: impl Into<HduSelector>) -> Result<HduInfo> {
        let (i, l) = self.find(selector.into())?;
        HduInfo::from_header(i, l.kind, l.compressed, &l.header, &self.limits)
            .map_err(|e| e.in_hdu(i).in_file(&self.path))
    }

    /// Every HDU in file order (reads every header).
    pub fn hdus(&mut self) -> Result<Vec<HduInfo>> {
        let n = self.hdu_count()?;
        (0..n).map(|i| self.hdu(i)).collect()
    }

    /// The header of HDU `selector`, all cards in file order. For a compressed image, the header
    /// of the image it holds. One cfitsio call, then parsing (allocates the cards).
    pub fn header(&mut self, selector: impl Into<HduSelector>) -> Result<Header> {
        Ok(self.find(selector.into())?.1.header)
    }

    /// A reader for the image in HDU `selector` (reads its header). Fails with a
    /// [`Parameter`](ErrorKind::Parameter) error for a table, an
    /// [`Unsupported`](ErrorKind::Unsupported) one for random groups.
    pub fn image(&mut self, selector: impl Into<HduSelector>) -> Result<ImageReader<'_>> {
        let (
            i,
            Loaded {
                kind,
                compressed,
                header,
                tiles,
            },
        ) = self.find(selector.into())?;
        let path = self.path.clone();
        let wrap = |e: Error| e.in_hdu(i).in_file(&path);
        match kind {
            HduKind::Image => {}
            HduKind::RandomGroups => {
                return Err(wrap(Error::unsupported(
                    "random-groups arrays are not read as images",
                )));
            }
            other => {
                return Err(wrap(Error::parameter(format!(
                    "the HDU is a {other}, not an image"
                ))));
            }
        }
        let layout = ImageLayout::from_header(&header, &self.limits).map_err(wrap)?;
        // where the data starts, for direct reads of an uncompressed image
        let data_start = match (&mut self.source, &self.direct, compressed) {
            (Source::Cfitsio(handle), DirectState::Untried | DirectState::Open(_), false) => {
                Some(handle.hdu_span().map_err(wrap)?.1)
            }
            _ => None,
        };
        Ok(ImageReader::new(self, i, layout, header, data_start, tiles))
    }
}
