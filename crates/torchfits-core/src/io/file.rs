//! Opening a FITS file and finding its HDUs.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::cfitsio::{cfitsio_can_take, check_tile_descriptors};
use crate::compression::TileCompression;
use crate::error::{Error, ErrorKind, Result};
use crate::ffi::cfitsio::Handle;
use crate::format::hdu::{HduInfo, HduKind, HduSelector, ImageLayout, classify};
use crate::format::header::Header;
use crate::format::table_schema::TableSchema;
use crate::io::image::ImageReader;
use crate::io::index::Index;
use crate::io::table::TableReader;
use crate::limits::Limits;
use crate::source::LocalFile;
use crate::threads::default_threads;

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

    /// LocalFile reads copy from a memory map of the file instead of `pread` (off by default). Faster
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

    /// Opens `path` read-only. A plain FITS file is opened with one `open` and one read of its
    /// first block; cfitsio is opened only when a compressed image is read. A gzip-compressed
    /// file is inflated first (by this crate, within [`Limits::max_alloc`]: never by cfitsio,
    /// which trusts the size in the gzip trailer) into an unlinked temporary file, then read as a
    /// plain one. A path in cfitsio's extended syntax is opened by cfitsio at once.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<FitsFile> {
        let path = path.as_ref();
        let plain = if self.extended_syntax {
            None
        } else {
            LocalFile::open(path, self.mmap, self.limits.max_alloc).map_err(|e| e.in_file(path))?
        };
        let data_path = plain.as_ref().and_then(LocalFile::inflated_path).unwrap_or(path).to_path_buf();
        let source = match plain {
            Some(file) => Source::Plain { file, index: Index::default(), cfitsio: None },
            None => Source::Cfitsio(Handle::open(path, self.extended_syntax).map_err(|e| e.in_file(path))?),
        };
        Ok(FitsFile {
            source,
            path: path.to_path_buf(),
            data_path,
            tiles_checked: Vec::new(),
            limits: self.limits,
            direct: self.direct,
            threads: self.threads,
            extended_syntax: self.extended_syntax,
        })
    }
}

/// An open FITS file, read-only.
///
/// `FitsFile` is `Send` but not `Sync`: move it to another thread, or open the same path once per
/// thread for parallel reads (there is no global lock when cfitsio is built reentrant). Paths are
/// opened literally: `a[1].fits` is a file name, `http://x` is not fetched (see
/// [`OpenOptions::cfitsio_extended_syntax`]).
///
/// For a plain FITS file, headers are read and parsed in Rust and uncompressed pixels go straight
/// from the file into the caller's buffer; cfitsio decodes tile-compressed images. A gzip file is
/// inflated once, at open, within [`Limits::max_alloc`]. Like astropy, this reads files that cfitsio refuses for keyword order
/// alone (for example NAXIS before BITPIX), and ignores bytes after the last HDU.
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
    /// Where cfitsio opens the file's bytes: `path`, or the inflated copy of a gzip file.
    data_path: PathBuf,
    /// HDUs whose tile descriptors were found within the heap (see [`check_tile_descriptors`](crate::cfitsio::check_tile_descriptors)).
    tiles_checked: Vec<usize>,
    limits: Limits,
    direct: bool,
    threads: usize,
    extended_syntax: bool,
}

#[derive(Debug)]
enum Source {
    /// A plain FITS file on disk: our HDU index; cfitsio opened on first need.
    Plain { file: LocalFile, index: Index, cfitsio: Option<Handle> },
    /// A file only cfitsio reads (extended syntax, or a format other than plain FITS and gzip).
    Cfitsio(Handle),
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
    /// The header (for a compressed image, the header of the image it holds), shared with the
    /// HDU index: copied only when it must change.
    header: Arc<Header>,
    /// For a compressed image, the tile shape in C order.
    tiles: Option<Vec<usize>>,
    /// For a RICE_1 or GZIP image of a plain file: where its tiles are (decoded without cfitsio).
    native: Option<crate::io::tiled::NativeTiles>,
    /// For an uncompressed image of a plain file, the byte offset of its data.
    data_start: Option<u64>,
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
        Reopener { path: self.data_path.clone(), extended_syntax: self.extended_syntax }
    }

    /// The file for direct reads: a plain file on disk, direct reads not turned off.
    pub(crate) fn direct(&self) -> Option<&LocalFile> {
        match &self.source {
            Source::Plain { file, .. } if self.direct => Some(file),
            _ => None,
        }
    }

    /// The plain file on disk, whether or not direct image reads are on (tables always read it).
    pub(crate) fn plain(&self) -> Option<&LocalFile> {
        match &self.source {
            Source::Plain { file, .. } => Some(file),
            Source::Cfitsio(_) => None,
        }
    }

    /// `len` bytes at `at` of the file's memory map, in mmap mode (`None` otherwise, or out of range).
    pub(crate) fn mapped(&self, at: Option<u64>, len: usize) -> Option<&[u8]> {
        let at = usize::try_from(at?).ok()?;
        self.plain()?.mapped_bytes()?.get(at..at.checked_add(len)?)
    }

    /// In mmap mode, maps the pages of `len` bytes at `at` in one call before they are all read.
    pub(crate) fn populate(&self, at: Option<u64>, len: usize) {
        if let (Some(plain), Some(at)) = (self.plain(), at.and_then(|a| usize::try_from(a).ok())) {
            plain.populate(at, len);
        }
    }

    /// Whether this is a plain (or inflated gzip) file, not one opened by cfitsio.
    pub(crate) fn is_plain(&self) -> bool {
        matches!(self.source, Source::Plain { .. })
    }

    /// Number of HDUs (reads every header in the file).
    pub fn hdu_count(&mut self) -> Result<usize> {
        let limits = self.limits;
        let n = match &mut self.source {
            Source::Plain { file, index, .. } => index.count(file.file(), file.len(), &limits),
            Source::Cfitsio(handle) => handle.num_hdus(),
        }
        .map_err(|e| e.in_file(&self.path))?;
        if n > limits.max_hdus {
            return Err(Error::new(
                ErrorKind::Limits,
                format!("{n} HDUs, over the limit of {} (Limits::max_hdus)", limits.max_hdus),
            )
            .in_file(&self.path));
        }
        Ok(n)
    }

    fn no_hdu(&mut self, index: usize) -> Error {
        let n = self.hdu_count().unwrap_or(index);
        Error::new(ErrorKind::Parameter, format!("no HDU {index}: the file has {n}")).in_file(&self.path)
    }

    /// Checks, for a plain file, what cfitsio would trust in HDU `index` and the headers before it
    /// (axes, structural cards, tile descriptors and tiles; each HDU's tiles once, and cfitsio's
    /// place for the HDU in `handle_at`): every path that hands an HDU
    /// to cfitsio comes through here.
    pub(crate) fn check_for_cfitsio(&mut self, index: usize) -> Result<()> {
        let path = self.path.clone();
        let wrap = |e: Error| e.in_hdu(index).in_file(&path);
        let limits = self.limits;
        let Source::Plain { file, index: hdus, .. } = &mut self.source else { return Ok(()) };
        // cfitsio walks every header up to this one: none may be one it cannot take
        for i in 0..=index {
            if let Some(span) = hdus.get(file.file(), file.len(), i, &limits).map_err(wrap)? {
                cfitsio_can_take(&span.header).map_err(|e| e.in_hdu(i).in_file(&path))?;
            }
        }
        // and it allocates what a compressed image's tile descriptors claim: check them once,
        // against the heap and the file
        if !self.tiles_checked.contains(&index)
            && let Some(span) = hdus.get(file.file(), file.len(), index, &limits).map_err(wrap)?
        {
            if span.header.get_bool("ZIMAGE") == Some(true) {
                check_tile_descriptors(file, &span.header, span.data_start, &limits).map_err(wrap)?;
            }
            self.tiles_checked.push(index);
        }
        Ok(())
    }

    /// The cfitsio handle at HDU `index` (opened now, for a plain file, if not yet).
    pub(crate) fn handle_at(&mut self, index: usize) -> Result<&mut Handle> {
        self.check_for_cfitsio(index)?;
        let path = self.path.clone();
        let wrap = |e: Error| e.in_hdu(index).in_file(&path);
        let limits = self.limits;
        let expected = match &mut self.source {
            Source::Plain { file, index: hdus, .. } => {
                hdus.get(file.file(), file.len(), index, &limits).map_err(wrap)?.map(|span| span.data_start)
            }
            Source::Cfitsio(_) => None,
        };
        let handle = match &mut self.source {
            Source::Plain { cfitsio, .. } => match cfitsio {
                Some(h) => h,
                None => cfitsio.insert(Handle::open(&self.data_path, false).map_err(wrap)?),
            },
            Source::Cfitsio(handle) => handle,
        };
        handle.move_to(index).map_err(wrap)?;
        // what torchfits checked must be what cfitsio reads: a file whose HDUs the two would
        // delimit differently (an END card with bytes after it; cfitsio then
        // decoded another HDU's tiles unchecked) is not handed over
        if let Some(want) = expected {
            let (_, got, _) = handle.hdu_span().map_err(wrap)?;
            if got != want {
                return Err(wrap(Error::decoding(format!(
                    "torchfits finds this HDU's data at byte {want}, cfitsio at byte {got}: the file's structure is ambiguous"
                ))));
            }
        }
        Ok(handle)
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
        let file_len = std::fs::metadata(&self.data_path).map(|m| m.len()).ok();
        let span = match &mut self.source {
            Source::Cfitsio(handle) => handle.hdu_span().ok(),
            Source::Plain { cfitsio: Some(handle), .. } => handle.hdu_span().ok(),
            Source::Plain { .. } => None,
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

    /// Reads HDU `index`'s header and classifies it.
    fn load(&mut self, index: usize) -> Result<Loaded> {
        let limits = self.limits;
        let path = self.path.clone();
        let wrap = |e: Error| e.in_hdu(index).in_file(&path);
        let (mut header, data_start) = match &mut self.source {
            Source::Plain { file, index: hdus, .. } => {
                match hdus.get(file.file(), file.len(), index, &limits).map_err(|e| e.in_file(&path))? {
                    Some(span) => (Arc::clone(&span.header), Some(span.data_start)),
                    None => return Err(self.no_hdu(index)),
                }
            }
            Source::Cfitsio(handle) => {
                if let Err(e) = handle.move_to(index) {
                    // END_OF_FILE / BAD_HDU_NUM: past the last HDU
                    if index > 0 && e.cfitsio().is_some_and(|c| c.status == 107 || c.status == 301) {
                        return Err(self.no_hdu(index));
                    }
                    return Err(wrap(e));
                }
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
                (Arc::new(Header::parse_limited(&bytes, limits.max_header_cards).map_err(wrap)?), None)
            }
        };
        let (kind, compressed) = classify(index, &header).map_err(wrap)?;
        let mut tiles = None;
        let mut native = None;
        if compressed {
            tiles = TileCompression::from_header(&header).ok().map(|d| d.tile_shape());
            native = data_start.and_then(|start| crate::io::tiled::NativeTiles::from_header(&header, start));
            header = Arc::new(header.compressed_image_header().map_err(wrap)?);
        }
        if kind == HduKind::RandomGroups {
            Arc::make_mut(&mut header).normalise_random_groups();
        }
        let data_start = if compressed { None } else { data_start };
        Ok(Loaded { kind, compressed, header, tiles, native, data_start })
    }

    /// The HDU `selector` names, loaded. A name is looked up by reading headers from the start.
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
        Err(Error::new(ErrorKind::Parameter, format!("no HDU named {selector} (the file has {n} HDUs)"))
            .in_file(&self.path))
    }

    /// The 0-based index of the HDU `selector` names (for a name, reads headers from the start).
    pub fn resolve(&mut self, selector: impl Into<HduSelector>) -> Result<usize> {
        self.find(selector.into()).map(|(i, _)| i)
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
    /// of the image it holds. Reads the header blocks once per file and parses them once;
    /// returns a copy.
    pub fn header(&mut self, selector: impl Into<HduSelector>) -> Result<Header> {
        Ok(Arc::unwrap_or_clone(self.find(selector.into())?.1.header))
    }

    /// A reader for the binary or ASCII table in HDU `selector` (reads its header; see
    /// [`TableReader`]). Fails with a [`Parameter`](ErrorKind::Parameter) error for an image.
    pub fn table(&mut self, selector: impl Into<HduSelector>) -> Result<TableReader<'_>> {
        let (i, Loaded { kind, header, data_start, .. }) = self.find(selector.into())?;
        let path = self.path.clone();
        let wrap = |e: Error| e.in_hdu(i).in_file(&path);
        match kind {
            HduKind::BinTable | HduKind::AsciiTable => {}
            other => {
                return Err(wrap(Error::parameter(format!("the HDU is a {other}, not a table"))));
            }
        }
        let schema = TableSchema::from_header(&header).map_err(wrap)?;
        let heap = schema.data_len.saturating_sub(schema.heap_offset);
        if schema.columns.iter().any(|c| c.variable.is_some()) && heap > self.limits.max_heap {
            return Err(wrap(Error::limits(format!(
                "the heap of {heap} bytes is over the limit of {} (Limits::max_heap)",
                self.limits.max_heap
            ))));
        }
        Ok(TableReader::new(self, i, schema, data_start))
    }

    /// The world coordinate system of an HDU's header (for a compressed image, of the image it
    /// holds): see [`crate::Wcs`].
    pub fn wcs(&mut self, selector: impl Into<HduSelector>) -> Result<crate::Wcs> {
        self.wcs_with(selector, crate::WcsOptions::default())
    }

    /// [`FitsFile::wcs`] with an alternate, or binary-table keywords.
    pub fn wcs_with(&mut self, selector: impl Into<HduSelector>, options: crate::WcsOptions) -> Result<crate::Wcs> {
        let (i, loaded) = self.find(selector.into())?;
        let path = self.path.clone();
        crate::Wcs::with_options(&loaded.header, options).map_err(|e| e.in_hdu(i).in_file(&path))
    }

    /// Reads `out.len()` bytes of HDU `index`'s data from byte `offset` of its data (for a table,
    /// its heap) through cfitsio: for a file cfitsio reads (extended syntax).
    pub(crate) fn read_data_bytes(&mut self, index: usize, offset: u64, out: &mut [u8]) -> Result<()> {
        let handle = self.handle_at(index)?;
        let (_, start, _) = handle.hdu_span()?;
        handle.read_raw(start + offset, out)
    }

    /// Reads raw rows of the table at HDU `index` (whose data starts at `data_start` in a plain
    /// file) from row `first_row` into `out` (a whole number of rows).
    pub(crate) fn read_table_rows(
        &mut self,
        index: usize,
        data_start: Option<u64>,
        first_row: u64,
        row_bytes: usize,
        out: &mut [u8],
    ) -> Result<()> {
        if let (Source::Plain { file, .. }, Some(start)) = (&self.source, data_start) {
            let at = first_row
                .checked_mul(row_bytes as u64)
                .and_then(|o| o.checked_add(start))
                .ok_or_else(|| Error::decoding("row offset overflows"))?;
            return file.file().read_exact_at(out, at).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    Error::decoding(format!(
                        "the file is truncated: the table's rows from {first_row} end past its {} bytes",
                        file.len()
                    ))
                } else {
                    Error::io(e, "cannot read the table")
                }
            });
        }
        self.handle_at(index)?.read_table_bytes(first_row, out)
    }

    /// A reader for the image in HDU `selector` (reads its header). Fails with a
    /// [`Parameter`](ErrorKind::Parameter) error for a table, an
    /// [`Unsupported`](ErrorKind::Unsupported) one for random groups.
    pub fn image(&mut self, selector: impl Into<HduSelector>) -> Result<ImageReader<'_>> {
        let (i, Loaded { kind, header, tiles, native, data_start, .. }) = self.find(selector.into())?;
        let path = self.path.clone();
        let wrap = |e: Error| e.in_hdu(i).in_file(&path);
        match kind {
            HduKind::Image => {}
            HduKind::RandomGroups => {
                return Err(wrap(Error::unsupported("random-groups arrays are not read as images")));
            }
            other => {
                return Err(wrap(Error::parameter(format!("the HDU is a {other}, not an image"))));
            }
        }
        let layout = ImageLayout::from_header(&header, &self.limits).map_err(wrap)?;
        if let Some(tiles) = &tiles {
            // a decoder holds one whole tile (ZTILEn, cut to the image) per thread
            let bytepix = u64::from(layout.bitpix.unsigned_abs() / 8);
            let bytes = tiles
                .iter()
                .zip(layout.shape.iter().chain(std::iter::repeat(&usize::MAX)))
                .try_fold(bytepix, |acc, (&t, &n)| acc.checked_mul(t.min(n) as u64))
                .unwrap_or(u64::MAX);
            self.limits.check_tile(bytes).map_err(wrap)?;
        }
        let data_start = if self.direct { data_start } else { None };
        let native = if self.direct { native } else { None };
        Ok(ImageReader::new(self, i, layout, header, data_start, tiles, native))
    }
}
