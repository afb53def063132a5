//! Opening a FITS file and finding its HDUs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use crate::cfitsio::{HandlePool, cfitsio_can_take, check_tile_descriptors};
use crate::compression::TileCompression;
use crate::ffi::cfitsio::Handle;
use crate::io::index::{HduSpan, Index};
use crate::io::table::TableReader;
use crate::io::table::tiles::TableTiles;
use crate::io::tile_memo;
use crate::io::tiled::{NativeTiles, Undecoded};
use crate::source::{self, ByteSource, InMemory};
use torchfits_format::error::{Error, ErrorKind, Result};
use torchfits_format::hdu::{HduInfo, HduKind, HduSelector, classify};
use torchfits_format::header::Header;
use torchfits_format::limits::Limits;
use torchfits_format::table_schema::TableSchema;
use torchfits_format::threads::default_threads;

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
    urls: bool,
    tile_memo: bool,
    stored_tables: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions {
            limits: Limits::default(),
            extended_syntax: false,
            direct: true,
            mmap: false,
            threads: default_threads(),
            urls: false,
            tile_memo: false,
            stored_tables: false,
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

    /// Read images with torchfits' own code (the default): the bytes go from the file into the
    /// caller's buffer with one conversion pass, tiles are decoded here. `false` hands every
    /// image read to cfitsio's decoders and conversion instead: slower, the same values (but a
    /// value out of an integer type's range is clipped rather than an error, and quantised
    /// floats read into integers lose their dither), and cfitsio then parses the file's bytes:
    /// for trusted files only, like [`OpenOptions::cfitsio_extended_syntax`].
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

    /// Keeps the tiles this file decodes (of RICE_1 and GZIP images) in the process's store of
    /// decoded tiles, bounded by [`crate::set_tile_memo_bytes`] (256 MiB by default), so that a
    /// later read of a section that shares them decodes nothing again: for many cutouts of one
    /// compressed image, as a stream of stamps reads them. Off by default.
    ///
    /// ```no_run
    /// let f = torchfits_core::OpenOptions::new().tile_memo(true).open("survey.fits.fz")?;
    /// # Ok::<(), torchfits_core::Error>(())
    /// ```
    pub fn tile_memo(mut self, yes: bool) -> Self {
        self.tile_memo = yes;
        self
    }

    /// Shows tile-compressed binary tables (`ZTABLE = T`) as they are stored, one row of
    /// compressed cells per tile, as astropy does, instead of as the tables they hold (the
    /// default: [`FitsFile::table`] reads the rows, [`FitsFile::header`] gives the held table's
    /// header and [`FitsFile::hdu`] its rows, with `compressed` set).
    ///
    /// ```no_run
    /// let f = torchfits_core::OpenOptions::new().stored_tables(true).open("catalog.fits.fz")?;
    /// # Ok::<(), torchfits_core::Error>(())
    /// ```
    pub fn stored_tables(mut self, yes: bool) -> Self {
        self.stored_tables = yes;
        self
    }

    /// Whether [`OpenOptions::open`] (and a [`crate::FileCache`] opening with these options) takes
    /// a name that is a URL of object storage (`s3://`, `gs://`, `az://`, `abfs://`,
    /// `http(s)://`) as the object it names. Off by default: a name is a path, so that a file name
    /// read from data (a catalog column, a config file) never makes the process send a request
    /// to an address of the data's choosing. Turn it on where the caller chose the names; or open
    /// one URL with [`OpenOptions::open_url`].
    ///
    /// ```
    /// use torchfits_core::OpenOptions;
    /// // by default a URL is a file name, and there is no such file
    /// let e = OpenOptions::new().open("http://127.0.0.1:9/x.fits").unwrap_err();
    /// assert_eq!(e.kind(), torchfits_core::ErrorKind::Io);
    /// ```
    pub fn urls(mut self, yes: bool) -> Self {
        self.urls = yes;
        self
    }

    /// Whether a name given to [`OpenOptions::open`] may be a URL ([`OpenOptions::urls`]).
    pub fn takes_urls(&self) -> bool {
        self.urls
    }

    /// Threads a large read may use (default: the available cores; 1 reads on the calling thread).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }

    /// Opens `path` read-only. A plain FITS file is opened with one `open` and one read of its
    /// first block; cfitsio is opened only when a read asks for it ([`OpenOptions::direct_reads`]
    /// off). A gzip, compress (.Z) or zip file is
    /// inflated first (by this crate, within [`Limits::max_alloc`]: never by cfitsio, which trusts
    /// the sizes the file declares) into an unlinked temporary file, then read as a plain one. A
    /// file that is none of these is an error. A path in cfitsio's extended syntax is opened by
    /// cfitsio at once. `path` is a path even where it reads like a URL, unless
    /// [`OpenOptions::urls`] is on.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<FitsFile> {
        let path = path.as_ref();
        let _span = tracing::debug_span!("open", path = %source::redact(&path.to_string_lossy())).entered();
        if self.extended_syntax {
            tracing::debug!("cfitsio opens the file (extended filename syntax)");
            let handle = Handle::open(path, true).map_err(|e| e.in_file(path))?;
            let cfitsio = HandlePool::with_open(path, true, handle);
            return Ok(self.shared(path, None, cfitsio));
        }
        if let Some(url) = path.to_str().filter(|p| self.urls && source::is_url(p)) {
            return self.open_url(url);
        }
        let file = source::open_path(path, self.mmap, self.limits.max_alloc).map_err(|e| e.in_file(path))?;
        Ok(self.with_source(path, Arc::new(file)))
    }

    /// Opens the object a URL names (`s3://bucket/key`, `gs://`, `az://`, `abfs://`,
    /// `http(s)://`), read by range requests (the `remote` feature; without it, an error that says
    /// so). Credentials come from the environment as `object_store` reads them; errors and logs
    /// name the URL without its credentials or query string. A name that is not such a URL is an
    /// error: this never opens a local file.
    ///
    /// ```
    /// let e = torchfits_core::OpenOptions::new().open_url("tile.fits").unwrap_err();
    /// assert!(e.to_string().contains("not a URL"));
    /// ```
    pub fn open_url(&self, url: &str) -> Result<FitsFile> {
        let name = PathBuf::from(source::redact(url));
        if !source::is_url(url) {
            return Err(Error::parameter("not a URL of object storage (s3://, gs://, az://, abfs://, http(s)://)")
                .in_file(&name));
        }
        self.open_url_unchecked(url, &name)
    }

    #[cfg(feature = "remote-store")]
    fn open_url_unchecked(&self, url: &str, name: &Path) -> Result<FitsFile> {
        let (store, object) = source::remote::store_for(url).map_err(|e| e.in_file(name))?;
        self.open_remote(name, store, object)
    }

    #[cfg(not(feature = "remote-store"))]
    fn open_url_unchecked(&self, _url: &str, name: &Path) -> Result<FitsFile> {
        Err(Error::unsupported("a URL: this build of torchfits reads local files only (enable the `remote` feature)")
            .in_file(name))
    }

    /// Opens the object at `path` in `store` (named `name` in errors), read by range requests:
    /// for a store configured by the caller (credentials, endpoint, retries, a test's store)
    /// rather than from the environment. Sends one request, for the object's first block.
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use object_store::aws::AmazonS3Builder;
    /// let store = Arc::new(AmazonS3Builder::new().with_bucket_name("survey").with_region("us-east-1").build()?);
    /// let file = torchfits_core::OpenOptions::new().open_store("s3://survey/tile.fits", store, "tile.fits".into())?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[cfg(feature = "remote-store")]
    pub fn open_store(
        &self,
        name: &str,
        store: Arc<dyn object_store::ObjectStore>,
        path: object_store::path::Path,
    ) -> Result<FitsFile> {
        self.open_remote(Path::new(&source::redact(name)), store, path)
    }

    #[cfg(feature = "remote-store")]
    fn open_remote(
        &self,
        name: &Path,
        store: Arc<dyn object_store::ObjectStore>,
        object: object_store::path::Path,
    ) -> Result<FitsFile> {
        let _span = tracing::debug_span!("open_remote", url = %name.display()).entered();
        let remote = source::remote::open(store, object, &name.to_string_lossy(), self.limits.max_alloc)
            .map_err(|e| e.in_file(name))?;
        self.open_source(name, remote)
    }

    /// Opens the FITS file whose bytes `source` reads (named `name` in errors). Headers, images
    /// and tables are read from it as from a file on disk (reads with [`OpenOptions::direct_reads`]
    /// off need [`ByteSource::cfitsio_path`]). Reads the first block.
    ///
    /// ```
    /// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
    /// let bytes = std::fs::read(path)?;
    /// let file = torchfits_core::FitsFile::from_bytes(bytes)?;     // the same file, from memory
    /// assert_eq!(file.image("SCI")?.shape(), &[48, 64]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open_source(&self, name: impl AsRef<Path>, source: Arc<dyn ByteSource>) -> Result<FitsFile> {
        let name = name.as_ref();
        let mut magic = [0u8; 9];
        if source.read_exact_at(&mut magic, 0).is_err() || &magic != b"SIMPLE  =" {
            return Err(Error::decoding("not a FITS file (no SIMPLE card at its start)").in_file(name));
        }
        Ok(self.with_source(name, source))
    }

    /// A file read from `source` (plain FITS bytes), named `path`.
    fn with_source(&self, path: &Path, source: Arc<dyn ByteSource>) -> FitsFile {
        let cfitsio = HandlePool::new(source.cfitsio_path().unwrap_or(path), false);
        self.shared(path, Some(source), cfitsio)
    }

    fn shared(&self, path: &Path, source: Option<Arc<dyn ByteSource>>, cfitsio: HandlePool) -> FitsFile {
        FitsFile {
            inner: Arc::new(Shared {
                path: path.to_path_buf(),
                source,
                index: RwLock::new(Index::default()),
                cfitsio,
                checked_for_cfitsio: Mutex::new(Vec::new()),
                options: self.clone(),
                tile_memo: self.tile_memo.then(tile_memo::new_file),
                loaded: RwLock::default(),
            }),
        }
    }
}

/// An open FITS file, read-only: cheap to clone, and shared by any number of threads.
///
/// Opening reads the first block; the HDU index (where each header and data unit starts, each
/// header parsed once) is built as far as reads need it, and shared by every clone. Readers take
/// `&self`: many threads read cutouts of one open file at once, with no lock on the plain,
/// memory-mapped and natively decoded tile paths. What only cfitsio decodes goes through a pool
/// of cfitsio handles, each used by one thread at a time. Paths are opened literally:
/// `a[1].fits` is a file name, `http://x` is not fetched (see
/// [`OpenOptions::cfitsio_extended_syntax`]).
///
/// Headers are read and parsed in Rust and uncompressed pixels go straight from the file into
/// the caller's buffer. A gzip file is inflated once, at open, within [`Limits::max_alloc`].
/// Like astropy, this reads files that cfitsio refuses for keyword order alone (for example
/// NAXIS before BITPIX), and ignores bytes after the last HDU.
///
/// ```
/// use torchfits_core::{FitsFile, HduKind, Section};
/// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
/// let file = FitsFile::open(path)?;
/// for hdu in file.hdus()? {
///     println!("{} {:?} {:?} {:?}", hdu.index, hdu.kind, hdu.extname, hdu.shape);
/// }
/// assert_eq!(file.header(0)?.get_bool("SIMPLE"), Some(true));
/// assert_eq!(file.hdu("SCI")?.kind, HduKind::Image);
/// // one open file, read by two threads at once
/// let image = file.image("SCI")?;
/// let stamps = std::thread::scope(|s| {
///     let reads: Vec<_> = (0..2)
///         .map(|k| {
///             let image = &image;
///             s.spawn(move || image.read_section::<f32>(&Section::new(vec![8 * k..8 * k + 8, 0..8])))
///         })
///         .collect();
///     reads.into_iter().map(|r| r.join().expect("a reader thread")).collect::<Result<Vec<_>, _>>()
/// })?;
/// assert_eq!(stamps.len(), 2);
/// # Ok::<(), torchfits_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct FitsFile {
    inner: Arc<Shared>,
}

/// What every clone of one open file shares.
#[derive(Debug)]
struct Shared {
    path: PathBuf,
    /// The file's bytes, for a plain (or inflated) file; `None` for a file only cfitsio opens
    /// (extended syntax, or a format other than FITS, gzip and .Z).
    source: Option<Arc<dyn ByteSource>>,
    /// The HDUs found so far in `source`.
    index: RwLock<Index>,
    /// cfitsio handles on the file, for what only cfitsio reads.
    cfitsio: HandlePool,
    /// HDUs whose structure and tiles were checked before cfitsio reads them.
    checked_for_cfitsio: Mutex<Vec<usize>>,
    options: OpenOptions,
    /// This open file's number in the process's store of decoded tiles, where it keeps them
    /// ([`OpenOptions::tile_memo`]): never given to another file, so no file reads another's
    /// tiles.
    tile_memo: Option<u64>,
    /// The HDUs of `source` loaded so far: a compressed image's header and tile table are
    /// parsed once per open file, not on every `image()` (a stream of stamps calls it for each).
    loaded: RwLock<HashMap<usize, Loaded>>,
}

/// One HDU's header, read and classified.
#[derive(Clone, Debug)]
pub(crate) struct Loaded {
    pub(crate) kind: HduKind,
    pub(crate) compressed: bool,
    /// The header (for a compressed image, the header of the image it holds), shared with the
    /// HDU index: copied only when it must change.
    pub(crate) header: Arc<Header>,
    /// For a compressed image, the tile shape in C order.
    pub(crate) tiles: Option<Vec<usize>>,
    /// For a compressed image of a plain file: where its tiles are (decoded without cfitsio), or
    /// why torchfits does not decode them.
    pub(crate) native: Option<std::result::Result<NativeTiles, Undecoded>>,
    /// For an uncompressed image of a plain file, the byte offset of its data.
    pub(crate) data_start: Option<u64>,
    /// For a tile-compressed table shown as the table it holds: the stored header, and where
    /// the stored rows begin (in a plain file).
    pub(crate) stored_table: Option<(Arc<Header>, Option<u64>)>,
}

impl FitsFile {
    /// Opens `path` read-only with default [`OpenOptions`]: a path, even one that reads like a
    /// URL (for object storage see [`FitsFile::open_url`]).
    pub fn open(path: impl AsRef<Path>) -> Result<FitsFile> {
        OpenOptions::new().open(path)
    }

    /// Opens the object a URL names with default [`OpenOptions`] (see [`OpenOptions::open_url`]).
    pub fn open_url(url: &str) -> Result<FitsFile> {
        OpenOptions::new().open_url(url)
    }

    /// Opens a FITS file held in memory, with default [`OpenOptions`] (see
    /// [`OpenOptions::open_source`]).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<FitsFile> {
        let source = Arc::new(InMemory::new(bytes));
        let name = PathBuf::from(source.id().location);
        OpenOptions::new().open_source(name, source)
    }

    /// The path this file was opened with.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The limits reads from this file enforce.
    pub fn limits(&self) -> &Limits {
        &self.inner.options.limits
    }

    /// Whether `self` and `other` are clones of one open file (sharing its index and handles).
    pub fn same_open_file(&self, other: &FitsFile) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Threads a large read may use.
    pub(crate) fn threads(&self) -> usize {
        self.inner.options.threads
    }

    /// Which bytes this open file reads: where they live and which version (for a local file its
    /// device, inode, size and modification time; for an object in storage its URL and ETag).
    /// `None` for a file only cfitsio opened (extended filename syntax).
    pub fn source_id(&self) -> Option<crate::SourceId> {
        self.source().map(ByteSource::id)
    }

    /// The file's bytes, for a file torchfits reads itself (not one only cfitsio opens).
    pub(crate) fn source(&self) -> Option<&dyn ByteSource> {
        self.inner.source.as_deref()
    }

    /// The bytes for direct image reads: [`FitsFile::source`], unless direct reads are off.
    pub(crate) fn direct_source(&self) -> Option<&dyn ByteSource> {
        self.source().filter(|_| self.direct_reads())
    }

    /// Whether images are read without cfitsio where torchfits can ([`OpenOptions::direct_reads`]).
    pub(crate) fn direct_reads(&self) -> bool {
        self.inner.options.direct
    }

    pub(crate) fn in_file(&self, e: Error) -> Error {
        e.in_file(&self.inner.path)
    }

    /// HDU `index` of a plain file, from the shared index (scanned now if not yet).
    fn span(&self, source: &dyn ByteSource, index: usize) -> Result<Option<HduSpan>> {
        let limits = self.limits();
        // a panic while the index was locked leaves it as it was before the HDU being scanned
        // (HDUs are appended whole): still a good index
        if let Some(span) = self.inner.index.read().unwrap_or_else(PoisonError::into_inner).scanned(index) {
            return Ok(Some(span.clone()));
        }
        let mut hdus = self.inner.index.write().unwrap_or_else(PoisonError::into_inner);
        Ok(hdus.get(source, index, limits).map_err(|e| self.in_file(e))?.cloned())
    }

    /// Bytes of HDU `selector`'s data that its header declares and the file does not have: 0 for
    /// a whole HDU. A truncated HDU opens, and a read of the bytes it lacks is an error naming
    /// them (astropy opens such a file with a warning; `torchfits info` warns too). Nothing is
    /// allocated for the declared size.
    ///
    /// ```
    /// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
    /// let file = torchfits_core::FitsFile::open(path)?;
    /// assert_eq!(file.missing_bytes(0)?, 0);
    /// # Ok::<(), torchfits_core::Error>(())
    /// ```
    pub fn missing_bytes(&self, selector: impl Into<HduSelector>) -> Result<u64> {
        let index = self.resolve(selector)?;
        let Some(source) = self.source() else { return Ok(0) };
        let Some(span) = self.span(source, index)? else { return Err(self.no_hdu(index)) };
        Ok(span.data_start.saturating_add(span.data_len).saturating_sub(source.len()))
    }

    /// Number of HDUs (reads every header in the file).
    pub fn hdu_count(&self) -> Result<usize> {
        let limits = *self.limits();
        let n = match self.source() {
            Some(source) => {
                let known = self.inner.index.read().unwrap_or_else(PoisonError::into_inner).known_count();
                match known {
                    Some(n) => Ok(n),
                    None => self.inner.index.write().unwrap_or_else(PoisonError::into_inner).count(source, &limits),
                }
            }
            None => self.inner.cfitsio.with(|handle| handle.num_hdus()),
        }
        .map_err(|e| self.in_file(e))?;
        if n > limits.max_hdus {
            return Err(self.in_file(Error::new(
                ErrorKind::Limits,
                format!("{n} HDUs, over the limit of {} (Limits::max_hdus)", limits.max_hdus),
            )));
        }
        Ok(n)
    }

    fn no_hdu(&self, index: usize) -> Error {
        let n = self.hdu_count().unwrap_or(index);
        self.in_file(Error::new(ErrorKind::Parameter, format!("no HDU {index}: the file has {n}")))
    }

    /// Checks, for a plain file, what cfitsio would trust in HDU `index` and the headers before it
    /// (axes, structural cards, tile descriptors and tiles; each HDU once): every path that hands
    /// an HDU to cfitsio comes through here.
    fn check_for_cfitsio(&self, index: usize) -> Result<()> {
        let Some(source) = self.source() else { return Ok(()) };
        let checked =
            |i: usize| self.inner.checked_for_cfitsio.lock().unwrap_or_else(PoisonError::into_inner).contains(&i);
        if checked(index) {
            return Ok(());
        }
        let wrap = |i: usize| move |e: Error| self.in_file(e.in_hdu(i));
        // cfitsio walks every header up to this one: none may be one it cannot take
        for i in 0..=index {
            if let Some(span) = self.span(source, i)? {
                cfitsio_can_take(&span.header).map_err(wrap(i))?;
            }
        }
        // and it allocates what a compressed image's tile descriptors claim: check them against
        // the heap and the file, and decode every tile it would
        if let Some(span) = self.span(source, index)?
            && span.header.get_bool("ZIMAGE") == Some(true)
        {
            check_tile_descriptors(source, &span.header, span.data_start, self.limits()).map_err(wrap(index))?;
        }
        self.inner.checked_for_cfitsio.lock().unwrap_or_else(PoisonError::into_inner).push(index);
        Ok(())
    }

    /// Runs `f` on a cfitsio handle of this file's own, moved to HDU `index` (the HDU checked
    /// first, for a plain file). Errors name the file and the HDU, and a read past the end of the
    /// file is reported as a truncation.
    pub(crate) fn with_cfitsio<R>(&self, index: usize, f: impl FnOnce(&mut Handle) -> Result<R>) -> Result<R> {
        let wrap = |e: Error| self.in_file(e.in_hdu(index));
        self.check_for_cfitsio(index)?;
        let expected = match self.source() {
            Some(source) => self.span(source, index)?.map(|span| span.data_start),
            None => None,
        };
        if self.source().is_some_and(|s| s.cfitsio_path().is_none()) {
            return Err(wrap(Error::unsupported("this HDU needs cfitsio, which reads only files on disk")));
        }
        self.inner
            .cfitsio
            .with(|handle| {
                handle.move_to(index)?;
                // what torchfits checked must be what cfitsio reads: a file whose HDUs the two
                // would delimit differently (an END card with bytes after it) is not handed over
                if let Some(want) = expected {
                    let (_, got, _) = handle.hdu_span()?;
                    if got != want {
                        return Err(Error::decoding(format!(
                            "torchfits finds this HDU's data at byte {want}, cfitsio at byte {got}: the file's structure is ambiguous"
                        )));
                    }
                }
                f(handle).map_err(|e| explain_read_error(handle, self.source(), e))
            })
            .map_err(wrap)
    }

    /// Reads HDU `index`'s header and classifies it.
    fn load(&self, index: usize) -> Result<Loaded> {
        if let Some(loaded) = self.inner.loaded.read().unwrap_or_else(PoisonError::into_inner).get(&index) {
            return Ok(loaded.clone());
        }
        let loaded = self.parse(index)?;
        // only what the byte source's index found is kept: a file only cfitsio opens is read
        // through its handles, whose HDUs are not known to stay put
        if self.source().is_some() {
            self.inner.loaded.write().unwrap_or_else(PoisonError::into_inner).insert(index, loaded.clone());
        }
        Ok(loaded)
    }

    /// HDU `index`'s header, read and classified.
    fn parse(&self, index: usize) -> Result<Loaded> {
        let limits = *self.limits();
        let wrap = |e: Error| self.in_file(e.in_hdu(index));
        let (mut header, data_start) = match self.source() {
            Some(source) => match self.span(source, index)? {
                Some(span) => (span.header, Some(span.data_start)),
                None => return Err(self.no_hdu(index)),
            },
            None => {
                let bytes = self.inner.cfitsio.with(|handle| {
                    match handle.move_to(index) {
                        // END_OF_FILE / BAD_HDU_NUM: past the last HDU
                        Err(e) if index > 0 && e.cfitsio().is_some_and(|c| c.status == 107 || c.status == 301) => {
                            return Ok(None);
                        }
                        Err(e) => return Err(e),
                        Ok(_) => {}
                    }
                    let ncards = handle.card_count()?;
                    if ncards > limits.max_header_cards {
                        return Err(Error::limits(format!(
                            "header has {ncards} cards, over the limit of {} (Limits::max_header_cards)",
                            limits.max_header_cards
                        )));
                    }
                    handle.header_bytes().map(Some)
                });
                let Some(bytes) = bytes.map_err(wrap)? else { return Err(self.no_hdu(index)) };
                (Arc::new(Header::parse_limited(&bytes, limits.max_header_cards).map_err(wrap)?), None)
            }
        };
        let (kind, mut compressed) = classify(index, &header).map_err(wrap)?;
        let mut stored_table = None;
        if kind == HduKind::BinTable && header.is_compressed_table() && !self.inner.options.stored_tables {
            let held = Arc::new(header.compressed_table_header().map_err(wrap)?);
            stored_table = Some((std::mem::replace(&mut header, held), data_start));
            compressed = true;
        }
        let mut tiles = None;
        let mut native = None;
        if compressed && kind == HduKind::Image {
            tiles = TileCompression::from_header(&header).ok().map(|d| d.tile_shape());
            let memo = self.inner.tile_memo.map(|file| (file, index));
            native = data_start.map(|start| NativeTiles::from_header(&header, start, limits).map(|t| t.kept(memo)));
            header = Arc::new(header.compressed_image_header().map_err(wrap)?);
        }
        if kind == HduKind::RandomGroups {
            Arc::make_mut(&mut header).normalise_random_groups();
        }
        let data_start = if compressed { None } else { data_start };
        Ok(Loaded { kind, compressed, header, tiles, native, data_start, stored_table })
    }

    /// The HDU `selector` names, loaded. A name is looked up by reading headers from the start.
    pub(crate) fn find(&self, selector: HduSelector) -> Result<(usize, Loaded)> {
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
        Err(self.in_file(Error::new(ErrorKind::Parameter, format!("no HDU named {selector} (the file has {n} HDUs)"))))
    }

    /// The 0-based index of the HDU `selector` names (for a name, reads headers from the start).
    pub fn resolve(&self, selector: impl Into<HduSelector>) -> Result<usize> {
        self.find(selector.into()).map(|(i, _)| i)
    }

    /// What HDU `selector` holds (reads its header, not its data).
    pub fn hdu(&self, selector: impl Into<HduSelector>) -> Result<HduInfo> {
        let (i, l) = self.find(selector.into())?;
        HduInfo::from_header(i, l.kind, l.compressed, &l.header, self.limits()).map_err(|e| self.in_file(e.in_hdu(i)))
    }

    /// Every HDU in file order (reads every header).
    pub fn hdus(&self) -> Result<Vec<HduInfo>> {
        let n = self.hdu_count()?;
        (0..n).map(|i| self.hdu(i)).collect()
    }

    /// The header of HDU `selector`, all cards in file order. For a compressed image, the header
    /// of the image it holds. Reads the header blocks once per open file and parses them once;
    /// returns a copy.
    pub fn header(&self, selector: impl Into<HduSelector>) -> Result<Header> {
        Ok(Arc::unwrap_or_clone(self.find(selector.into())?.1.header))
    }

    /// A reader for the binary or ASCII table in HDU `selector` (reads its header; see
    /// [`TableReader`]). Fails with a [`Parameter`](ErrorKind::Parameter) error for an image.
    /// The reader holds a clone of this open file.
    pub fn table(&self, selector: impl Into<HduSelector>) -> Result<TableReader> {
        let (i, Loaded { kind, header, data_start, stored_table, .. }) = self.find(selector.into())?;
        let wrap = |e: Error| self.in_file(e.in_hdu(i));
        match kind {
            HduKind::BinTable | HduKind::AsciiTable => {}
            other => {
                return Err(wrap(Error::parameter(format!("the HDU is a {other}, not a table"))));
            }
        }
        let schema = TableSchema::from_header(&header).map_err(wrap)?;
        if let Some((stored, start)) = stored_table {
            let start = start.ok_or_else(|| {
                wrap(Error::unsupported("a compressed table is read from a plain file, not through cfitsio"))
            })?;
            let tiles = TableTiles::new(&stored, &schema, start, *self.limits()).map_err(wrap)?;
            return Ok(TableReader::new(self.clone(), i, schema, None).with_tiles(tiles));
        }
        let heap = schema.data_len.saturating_sub(schema.heap_offset);
        let max_heap = self.limits().max_heap;
        if schema.columns.iter().any(|c| c.variable.is_some()) && heap > max_heap {
            return Err(wrap(Error::limits(format!(
                "the heap of {heap} bytes is over the limit of {max_heap} (Limits::max_heap)"
            ))));
        }
        Ok(TableReader::new(self.clone(), i, schema, data_start))
    }

    /// The world coordinate system of an HDU's header (for a compressed image, of the image it
    /// holds): see [`crate::Wcs`].
    pub fn wcs(&self, selector: impl Into<HduSelector>) -> Result<crate::Wcs> {
        self.wcs_with(selector, crate::WcsOptions::default())
    }

    /// [`FitsFile::wcs`] with an alternate, or binary-table keywords.
    pub fn wcs_with(&self, selector: impl Into<HduSelector>, options: crate::WcsOptions) -> Result<crate::Wcs> {
        let (i, loaded) = self.find(selector.into())?;
        crate::Wcs::with_options(&loaded.header, options).map_err(|e| self.in_file(e.in_hdu(i)))
    }

    /// Reads `out.len()` bytes of HDU `index`'s data from byte `offset` of its data (for a table,
    /// its heap) through cfitsio: for a file cfitsio reads (extended syntax).
    pub(crate) fn read_data_bytes(&self, index: usize, offset: u64, out: &mut [u8]) -> Result<()> {
        self.with_cfitsio(index, |handle| {
            let (_, start, _) = handle.hdu_span()?;
            handle.read_raw(start + offset, out)
        })
    }

    /// Reads raw rows of the table at HDU `index` (whose data starts at `data_start` in a plain
    /// file) from row `first_row` into `out` (a whole number of rows).
    pub(crate) fn read_table_rows(
        &self,
        index: usize,
        data_start: Option<u64>,
        first_row: u64,
        row_bytes: usize,
        out: &mut [u8],
    ) -> Result<()> {
        if let (Some(source), Some(start)) = (self.source(), data_start) {
            let at = first_row
                .checked_mul(row_bytes as u64)
                .and_then(|o| o.checked_add(start))
                .ok_or_else(|| Error::decoding("row offset overflows"))?;
            return source.read_exact_at(out, at).map_err(|e| {
                if e.kind() == std::io::ErrorKind::UnexpectedEof {
                    Error::decoding(format!(
                        "the file is truncated: the table's rows from {first_row} end past its {} bytes",
                        source.len()
                    ))
                } else {
                    Error::io(e, "cannot read the table")
                }
            });
        }
        self.with_cfitsio(index, |handle| handle.read_table_bytes(first_row, out))
    }
}

/// A read error, with truncation named as such: cfitsio reports reading past the end of the file
/// as a plain READ_ERROR.
fn explain_read_error(handle: &mut Handle, source: Option<&dyn ByteSource>, e: Error) -> Error {
    let Some(status) = e.cfitsio().map(|c| c.status) else {
        return e;
    };
    if status != 107 && status != 108 {
        return e;
    }
    let file_len = source.map(|s| s.len());
    match (file_len, handle.hdu_span().ok()) {
        (Some(len), Some((_, _, end))) if end > len => Error::new(
            ErrorKind::Decoding,
            format!("the file is truncated: the HDU's data ends at byte {end}, the file has {len} bytes"),
        ),
        _ => e,
    }
}
