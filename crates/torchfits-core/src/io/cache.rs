//! A small LRU of open files, for loops that read many small pieces of the same few files.

use std::cell::RefCell;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::io::file::{FitsFile, OpenOptions};

/// What identifies one version of a file: a rewritten file (new inode, size or mtime) is a
/// different key, so it is reopened rather than read through a stale index.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileKey {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
}

impl FileKey {
    fn of(path: &Path) -> Result<FileKey> {
        let m = std::fs::metadata(path).map_err(|e| Error::io(e, "cannot open").in_file(path))?;
        Ok(FileKey { dev: m.dev(), ino: m.ino(), len: m.len(), mtime: (m.mtime(), m.mtime_nsec()) })
    }
}

/// Counters of a [`FileCache`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheStats {
    /// Opens served by a cached file.
    pub hits: u64,
    /// Opens that opened the file.
    pub misses: u64,
    /// Cached files found rewritten and opened again.
    pub reopened: u64,
    /// Files closed to stay within the capacity.
    pub evicted: u64,
}

/// A least-recently-used cache of open [`FitsFile`]s, for one thread (it is `Send`, not `Sync`:
/// keep one per worker). An open through the cache costs one `stat` when the file is cached; the
/// file's HDU index, parsed headers and (in mmap mode) its memory map stay warm between reads.
///
/// ```
/// use torchfits_core::{FileCache, OpenOptions, Section};
/// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
/// let mut cache = FileCache::new(FileCache::DEFAULT_CAPACITY, OpenOptions::new());
/// let mut stamp = vec![0f32; 8 * 8];
/// for k in 0..10 {
///     let file = cache.open(path)?;                  // opened once, then a stat per call
///     let y = 4 * k;
///     file.image("SCI")?.read_section_into(&Section::new(vec![y..y + 8, 0..8]), &mut stamp)?;
/// }
/// assert_eq!((cache.stats().misses, cache.stats().hits), (1, 9));
/// # Ok::<(), torchfits_core::Error>(())
/// ```
#[derive(Debug)]
pub struct FileCache {
    capacity: usize,
    options: OpenOptions,
    /// Least recently used first.
    entries: Vec<(PathBuf, FileKey, FitsFile)>,
    stats: CacheStats,
}

impl FileCache {
    /// Default capacity: 64 open files.
    pub const DEFAULT_CAPACITY: usize = 64;

    /// An empty cache holding at most `capacity` files (at least 1), opened with `options`.
    pub fn new(capacity: usize, options: OpenOptions) -> Self {
        FileCache { capacity: capacity.max(1), options, entries: Vec::new(), stats: CacheStats::default() }
    }

    /// The open file at `path`: the cached one if the file has not changed since it was opened,
    /// otherwise a new open (closing the least recently used file when the cache is full).
    pub fn open(&mut self, path: impl AsRef<Path>) -> Result<&mut FitsFile> {
        let path = path.as_ref();
        let key = FileKey::of(path)?;
        let at = self.entries.iter().position(|(p, _, _)| p == path);
        let entry = match at {
            Some(i) if self.entries.get(i).is_some_and(|e| e.1 == key) => {
                self.stats.hits += 1;
                self.entries.remove(i)
            }
            stale => {
                if let Some(i) = stale {
                    self.entries.remove(i);
                    self.stats.reopened += 1;
                }
                self.stats.misses += 1;
                let file = self.options.open(path)?;
                if self.entries.len() >= self.capacity {
                    self.entries.remove(0);
                    self.stats.evicted += 1;
                }
                (path.to_path_buf(), key, file)
            }
        };
        self.entries.push(entry);
        match self.entries.last_mut() {
            Some(entry) => Ok(&mut entry.2),
            None => Err(Error::decoding("the file cache lost the file it just opened").in_file(path)),
        }
    }

    /// Number of open files held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no file is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether `path` is held (without checking whether it changed).
    pub fn contains(&self, path: impl AsRef<Path>) -> bool {
        self.entries.iter().any(|(p, _, _)| p == path.as_ref())
    }

    /// Closes every held file.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// The cache's counters.
    pub fn stats(&self) -> CacheStats {
        self.stats
    }
}

thread_local! {
    static THREAD_CACHE: RefCell<FileCache> = RefCell::new(FileCache::new(FileCache::DEFAULT_CAPACITY, OpenOptions::new()));
}

/// Runs `f` on the calling thread's cached open file for `path` (a per-thread [`FileCache`] of
/// default capacity and options).
///
/// ```
/// use torchfits_core::with_cached_file;
/// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
/// let shape = with_cached_file(path, |file| Ok(file.image("SCI")?.shape().to_vec()))?;
/// assert_eq!(shape, vec![48, 64]);
/// # Ok::<(), torchfits_core::Error>(())
/// ```
pub fn with_cached_file<R>(path: impl AsRef<Path>, f: impl FnOnce(&mut FitsFile) -> Result<R>) -> Result<R> {
    THREAD_CACHE.with_borrow_mut(|cache| f(cache.open(path)?))
}
