//! Opening a FITS file and finding its HDUs.

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::direct::Direct;
use crate::error::{Error, ErrorKind, Result};
use crate::ffi::Handle;
use crate::hdu::{HduInfo, HduKind, HduSelector, ImageLayout};
use crate::header::Header;
use crate::image::ImageReader;
use crate::limits::Limits;
use crate::scan::Index;
use crate::table::{TableReader, TableSchema};

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

/// The default thread count of large reads and writes: the available cores, asked once per
/// process (the standard library reads the cgroup files under /proc for it: 30 us an open).
pub(crate) fn default_threads() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
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
            Direct::open(path, self.mmap, self.limits.max_alloc).map_err(|e| e.in_file(path))?
        };
        let data_path = plain.as_ref().and_then(Direct::inflated_path).unwrap_or(path).to_path_buf();
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
    /// HDUs whose tile descriptors were found within the heap (see [`check_tile_descriptors`]).
    tiles_checked: Vec<usize>,
    limits: Limits,
    direct: bool,
    threads: usize,
    extended_syntax: bool,
}

#[derive(Debug)]
enum Source {
    /// A plain FITS file on disk: our HDU index; cfitsio opened on first need.
    Plain { file: Direct, index: Index, cfitsio: Option<Handle> },
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
    native: Option<crate::tiled::NativeTiles>,
    /// For an uncompressed image of a plain file, the byte offset of its data.
    data_start: Option<u64>,
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

/// What an HDU is, by its header.
fn classify(index: usize, header: &Header) -> Result<(HduKind, bool)> {
    let first = header.iter().next().map(|c| c.keyword()).unwrap_or_default();
    if index == 0 || first == "SIMPLE" {
        // astropy: a primary header with GROUPS = T is random groups
        let groups = header.get_bool("GROUPS") == Some(true);
        return Ok((if groups { HduKind::RandomGroups } else { HduKind::Image }, false));
    }
    let xtension = header.get_str("XTENSION").map(str::trim_end).unwrap_or("");
    match xtension {
        "IMAGE" | "IUEIMAGE" => Ok((HduKind::Image, false)),
        "TABLE" => Ok((HduKind::AsciiTable, false)),
        "BINTABLE" | "A3DTABLE" if header.get_bool("ZIMAGE") == Some(true) => Ok((HduKind::Image, true)),
        "BINTABLE" | "A3DTABLE" => Ok((HduKind::BinTable, false)),
        other => Err(Error::unsupported(format!("extension type XTENSION = {other:?}"))),
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
        Reopener { path: self.data_path.clone(), extended_syntax: self.extended_syntax }
    }

    /// The file for direct reads: a plain file on disk, direct reads not turned off.
    pub(crate) fn direct(&self) -> Option<&Direct> {
        match &self.source {
            Source::Plain { file, .. } if self.direct => Some(file),
            _ => None,
        }
    }

    /// The plain file on disk, whether or not direct image reads are on (tables always read it).
    pub(crate) fn plain(&self) -> Option<&Direct> {
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
        // delimit differently (a fuzz finding: an END card with bytes after it; cfitsio then
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
            tiles = tile_shape(&header);
            native = data_start.and_then(|start| crate::tiled::NativeTiles::from_header(&header, start));
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

/// Most axes cfitsio reads without crashing: 4.6 segfaults on a header of more than ~101 (an
/// image of 110 axes, measured), though the standard allows 999.
pub(crate) const CFITSIO_MAX_NAXIS: i64 = 99;

/// Whether cfitsio can be handed the HDU of `header` (torchfits' own readers take any NAXIS up to
/// the standard's 999).
pub(crate) fn cfitsio_can_take(header: &crate::header::Header) -> Result<()> {
    for key in ["NAXIS", "ZNAXIS"] {
        if let Some(n) = header.get_i64(key)
            && n > CFITSIO_MAX_NAXIS
        {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("{key} = {n}: this needs cfitsio, which cannot read more than {CFITSIO_MAX_NAXIS} axes"),
            ));
        }
    }
    structural_cards_readable(header)
}

/// Refuses a header whose structural cards torchfits cannot read as cfitsio would need them: an
/// unreadable card is one torchfits sizes or checks differently from cfitsio (a `PCOUNT` it
/// could not parse and a `ZCMPTYPE` with a NUL in its value indicator let cfitsio ask for
/// 2e16 bytes past torchfits' tile checks, a fuzz finding). The sizes of every HDU cfitsio walks
/// must be integers; a compressed image's parameters must be what the convention says they are.
fn structural_cards_readable(header: &Header) -> Result<()> {
    let indexed = |key: &str, prefix: &str| {
        key.strip_prefix(prefix).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let compressed = header.get_bool("ZIMAGE") == Some(true);
    for card in header.iter() {
        let key = card.base_keyword();
        let integer = matches!(key, "BITPIX" | "NAXIS" | "PCOUNT" | "GCOUNT" | "TFIELDS" | "THEAP")
            || indexed(key, "NAXIS")
            || compressed
                && (matches!(key, "ZBITPIX" | "ZNAXIS" | "ZPCOUNT" | "ZGCOUNT" | "ZBLANK" | "ZDITHER0")
                    || indexed(key, "ZNAXIS")
                    || indexed(key, "ZTILE"));
        let number = compressed && indexed(key, "ZVAL");
        let text = indexed(key, "TFORM")
            || compressed && (matches!(key, "ZCMPTYPE" | "ZQUANTIZ") || indexed(key, "ZNAME") || indexed(key, "TTYPE"));
        let value = card.value();
        let readable = card.field_specifier().is_none()
            && if integer {
                value.as_i64().is_some()
            } else if number {
                value.as_f64().is_some()
            } else if text {
                value.as_str().is_some_and(|s| s.bytes().all(|b| (0x20..0x7f).contains(&b)))
            } else {
                true
            };
        if !readable {
            return Err(Error::decoding(format!(
                "the {key} card cannot be read (its value is not what the FITS standard requires); cfitsio would read this HDU differently"
            )));
        }
    }
    if compressed {
        let cmp = header.get_str("ZCMPTYPE").map(|c| c.trim_end().to_ascii_uppercase());
        let known = ["RICE_1", "RICE_ONE", "GZIP_1", "GZIP_2", "PLIO_1", "HCOMPRESS_1", "NOCOMPRESS"];
        if !cmp.as_deref().is_some_and(|c| known.contains(&c)) {
            return Err(Error::unsupported(format!(
                "ZCMPTYPE = {:?}: not a tile compression this reader knows ({})",
                header.get_str("ZCMPTYPE").unwrap_or("(missing)"),
                known.join(", ")
            )));
        }
    }
    Ok(())
}

/// Checks every HDU of `file` (plain, or an inflated gzip file; named `path` in errors) with
/// [`cfitsio_can_take`].
pub(crate) fn cfitsio_can_take_file(path: &Path, file: &Direct) -> Result<()> {
    let mut index = Index::default();
    let limits = Limits::default();
    let n = index.count(file.file(), file.len(), &limits).unwrap_or(0);
    for i in 0..n {
        if let Ok(Some(span)) = index.get(file.file(), file.len(), i, &limits) {
            cfitsio_can_take(&span.header).map_err(|e| e.in_hdu(i).in_file(path))?;
        }
    }
    Ok(())
}

/// Checks that every variable-length descriptor of the compressed image whose binary table
/// `table` starts its data at `data_start` lies inside the table's heap and the file: cfitsio
/// allocates a tile's buffer from its descriptor before reading it (3.5 GB for one garbage
/// descriptor of a 16 x 16 image, a fuzz finding).
pub(crate) fn check_tile_descriptors(file: &Direct, table: &Header, data_start: u64, limits: &Limits) -> Result<()> {
    let schema = TableSchema::from_header(table)?;
    let heap_len = schema.data_len.saturating_sub(schema.heap_offset);
    let heap_end = data_start.saturating_add(schema.data_len);
    if heap_end > file.len() {
        return Err(Error::decoding("the file is truncated: it ends inside the compressed image's heap"));
    }
    let rows_len = (schema.row_bytes as u64).saturating_mul(schema.nrows);
    limits.check_alloc(rows_len, "the table of tiles")?;
    let mut rows = vec![0u8; usize::try_from(rows_len).map_err(|_| Error::limits("the table of tiles is too large"))?];
    file.read_bytes_at(&mut rows, data_start)?;
    let word = |b: &[u8]| b.iter().fold(0i64, |acc, &x| acc << 8 | i64::from(x));
    let check = tile_check(table)?;
    let mut code = Vec::new();
    let mut pixels = Vec::new();
    let mut raw = Vec::new();
    for (tile, row) in rows.chunks_exact(schema.row_bytes.max(1)).enumerate() {
        for col in schema.columns.iter().filter(|c| c.variable.is_some()) {
            let half = if col.variable == Some(crate::table::VarArray::Q) { 8 } else { 4 };
            let cell = row
                .get(col.offset..col.offset + 2 * half)
                .ok_or_else(|| Error::decoding("a tile descriptor lies outside its row"))?;
            let (count, offset) = cell.split_at(half);
            let (count, offset) = if half == 4 {
                (i64::from(word(count) as u32), i64::from(word(offset) as u32))
            } else {
                (word(count), word(offset))
            };
            let bytes = u64::try_from(count).ok().and_then(|n| n.checked_mul(col.fits_type.size() as u64));
            let end = bytes.zip(u64::try_from(offset).ok()).and_then(|(b, o)| b.checked_add(o));
            let Some(end) = end.filter(|&end| end <= heap_len) else {
                return Err(Error::decoding(format!(
                    "tile {tile}: its {} descriptor ({count} elements at heap byte {offset}) points outside the heap of {heap_len} bytes",
                    col.name
                )));
            };
            // cfitsio's Rice decoder reads past the end of a tile that ends early (a SEGV under
            // AddressSanitizer on a garbage tile, a fuzz finding): every Rice tile must decode
            // in full with torchfits' bounds-checked decoder first. cfitsio leaks its buffer when
            // a gzipped tile inflates to the wrong size (a fuzz finding): every gzipped tile must
            // inflate to exactly its pixels first.
            let Some(g) = &check else { continue };
            if end == 0 {
                continue;
            }
            let gzip_column = col.name.eq_ignore_ascii_case("GZIP_COMPRESSED_DATA");
            if !gzip_column && !col.name.eq_ignore_ascii_case("COMPRESSED_DATA") {
                continue;
            }
            let offset = offset.unsigned_abs(); // >= 0: checked with `end` above
            code.resize(usize::try_from(end - offset).unwrap_or(0), 0);
            let start = data_start.saturating_add(schema.heap_offset).saturating_add(offset);
            file.read_bytes_at(&mut code, start)?;
            let bad = |e: String| Error::decoding(format!("tile {tile}: {e}"));
            match g.codec {
                _ if gzip_column => crate::tiled::inflate_exact(&code, g.pixels(tile).saturating_mul(g.raw_width), false, 1, &mut raw).map_err(bad)?,
                TileCodec::Rice { bytepix, block } => {
                    crate::tiled::decode(&code, bytepix, block, g.pixels(tile), &mut pixels).map_err(bad)?
                }
                TileCodec::Gzip { width } => {
                    crate::tiled::inflate_exact(&code, g.pixels(tile).saturating_mul(width), false, 1, &mut raw).map_err(bad)?
                }
                TileCodec::Hcompress => hcompress_size_is(&code, g.pixels(tile)).map_err(bad)?,
            }
        }
    }
    Ok(())
}

/// Checks that an HCOMPRESS tile's header (magic `DD 99`, then nx and ny, big-endian) gives
/// `want` pixels: cfitsio leaks the tile's buffer when they differ (a fuzz finding).
fn hcompress_size_is(code: &[u8], want: usize) -> std::result::Result<(), String> {
    let word = |at: usize| code.get(at..at + 4).and_then(|b| b.try_into().ok()).map(|b| u64::from(u32::from_be_bytes(b)));
    if code.get(..2) != Some(&[0xdd, 0x99][..]) {
        return Err("it is not an HCOMPRESS stream (no DD 99 at its start)".into());
    }
    let (Some(nx), Some(ny)) = (word(2), word(6)) else { return Err("its HCOMPRESS header is cut short".into()) };
    if nx.checked_mul(ny) != Some(want as u64) {
        return Err(format!("its HCOMPRESS header gives {nx} x {ny} pixels, not the {want} of the tile"));
    }
    Ok(())
}


/// How a compressed image's tiles are coded, for checking them before cfitsio decodes them.
#[derive(Clone, Copy)]
enum TileCodec {
    /// RICE_1: bytes per coded pixel and the block size.
    Rice { bytepix: usize, block: usize },
    /// GZIP_1 / GZIP_2: bytes per pixel once inflated.
    Gzip { width: usize },
    /// HCOMPRESS_1: the tile header's pixel count is checked.
    Hcompress,
}

/// What checking a compressed image's tiles needs: their codec, the width of a value stored raw
/// (GZIP_COMPRESSED_DATA), and the tile grid (FITS order) to count each tile's pixels.
struct TileCheck {
    codec: TileCodec,
    raw_width: usize,
    dims: Vec<usize>,
    tile: Vec<usize>,
}

impl TileCheck {
    /// Pixels of tile `k` (edge tiles are cut by the image).
    fn pixels(&self, k: usize) -> usize {
        let mut rest = k;
        let mut n = 1usize;
        for (&d, &t) in self.dims.iter().zip(&self.tile) {
            let count = d.div_ceil(t).max(1);
            let c = rest % count;
            rest /= count;
            n = n.saturating_mul(t.min(d.saturating_sub(c * t)));
        }
        n
    }
}

/// The tile check of a compressed image's table header; `None` for codecs other than RICE_1,
/// GZIP_1/2 and HCOMPRESS_1. A header whose parameters torchfits cannot read is refused (its tiles could not be
/// checked).
fn tile_check(table: &Header) -> Result<Option<TileCheck>> {
    let cmp = table.get_str("ZCMPTYPE").map(|c| c.trim().to_ascii_uppercase()).unwrap_or_default();
    let unreadable = |what: &str| Error::decoding(format!("the {cmp} image's {what} cannot be read"));
    let int = |key: &str| table.get_i64(key).ok_or_else(|| unreadable(key));
    let size = |key: &str| int(key).and_then(|v| usize::try_from(v).map_err(|_| unreadable(key)));
    let zbitpix = int("ZBITPIX")?;
    let raw_width = zbitpix.unsigned_abs() as usize / 8;
    let codec = match cmp.as_str() {
        "RICE_1" | "RICE_ONE" => {
            let (mut block, mut bytepix) = (32usize, if zbitpix > 0 { (zbitpix / 8) as usize } else { 4 });
            for k in 1..=9 {
                match table.get_str(&format!("ZNAME{k}")).map(|s| s.trim().to_ascii_uppercase()).as_deref() {
                    Some("BLOCKSIZE") => block = size(&format!("ZVAL{k}"))?,
                    Some("BYTEPIX") => bytepix = size(&format!("ZVAL{k}"))?,
                    _ => {}
                }
            }
            if !matches!(bytepix, 1 | 2 | 4) || block == 0 || block > 1 << 16 {
                return Err(unreadable("BYTEPIX or BLOCKSIZE"));
            }
            TileCodec::Rice { bytepix, block }
        }
        "GZIP_1" | "GZIP_2" => {
            // as cfitsio stores them: integers as they are, floats quantised to 32-bit integers
            // unless ZQUANTIZ = 'NONE' or there is no ZSCALE (lossless: the floats themselves)
            let lossless = crate::tiled::stores_raw_floats(table);
            let width = if zbitpix > 0 || lossless { raw_width } else { 4 };
            TileCodec::Gzip { width }
        }
        "HCOMPRESS_1" => TileCodec::Hcompress,
        _ => return Ok(None),
    };
    if !matches!(raw_width, 1 | 2 | 4 | 8) {
        return Err(unreadable("ZBITPIX"));
    }
    let naxis = size("ZNAXIS")?;
    let dims = (1..=naxis).map(|k| size(&format!("ZNAXIS{k}"))).collect::<Result<Vec<_>>>()?;
    let mut tile = tile_shape(table).ok_or_else(|| unreadable("tile shape"))?;
    tile.reverse();
    Ok(Some(TileCheck { codec, raw_width, dims, tile }))
}
