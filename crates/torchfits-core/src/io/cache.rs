//! A small LRU of shared open files, for loops that read many small pieces of the same few files.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use crate::io::file::{FitsFile, OpenOptions};
use torchfits_format::error::{Error, Result};

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
    /// The key of the file at `path`; with `urls`, a URL's key is the URL alone.
    fn of(path: &Path, urls: bool) -> Result<FileKey> {
        // an object in storage is pinned to its version at open: a read after it changes is an
        // error naming it, so the cache keeps it without asking the server at each open
        if urls && path.to_str().is_some_and(crate::source::is_url) {
            return Ok(FileKey { dev: 0, ino: 0, len: 0, mtime: (0, 0) });
        }
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

/// A least-recently-used cache of open [`FitsFile`]s, shared by every thread that holds it
/// (`Send + Sync`: put one in an `Arc`, or a `static`). An open through the cache costs one `stat`
/// when the file is cached and returns a clone of the open file: its HDU index, parsed headers,
/// memory map and cfitsio handles stay warm between reads, whichever thread reads.
///
/// ```
/// use torchfits_core::{FileCache, OpenOptions, Section};
/// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
/// let cache = FileCache::new(FileCache::DEFAULT_CAPACITY, OpenOptions::new());
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
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Least recently used first.
    entries: Vec<(PathBuf, FileKey, FitsFile)>,
    stats: CacheStats,
}

impl FileCache {
    /// Default capacity: 64 open files.
    pub const DEFAULT_CAPACITY: usize = 64;

    /// An empty cache holding at most `capacity` files (at least 1), opened with `options`.
    pub fn new(capacity: usize, options: OpenOptions) -> Self {
        FileCache { capacity: capacity.max(1), options, state: Mutex::new(State::default()) }
    }

    /// The cache's state; a panic elsewhere while it was locked leaves whole entries and
    /// counters, still good.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The open file at `path` (a clone, sharing the cached file's index and handles): the cached
    /// one if the file has not changed since it was opened, otherwise a new open (closing the
    /// least recently used file when the cache is full). Opens outside the cache's lock.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<FitsFile> {
        let path = path.as_ref();
        let key = FileKey::of(path, self.options.takes_urls())?;
        {
            let mut state = self.state();
            // paths compare as bytes: `Path`'s == parses both into components, and this runs per read
            let at = state.entries.iter().position(|(p, _, _)| p.as_os_str() == path.as_os_str());
            match at {
                Some(i) if state.entries.get(i).is_some_and(|e| e.1 == key) => {
                    state.stats.hits += 1;
                    let entry = state.entries.remove(i);
                    let file = entry.2.clone();
                    state.entries.push(entry);
                    return Ok(file);
                }
                Some(i) => {
                    state.entries.remove(i);
                    state.stats.reopened += 1;
                }
                None => {}
            }
            state.stats.misses += 1;
        }
        let file = self.options.open(path)?;
        let mut state = self.state();
        // another thread may have opened it meanwhile: keep one entry, the newer
        state.entries.retain(|(p, _, _)| p.as_os_str() != path.as_os_str());
        if state.entries.len() >= self.capacity {
            state.entries.remove(0);
            state.stats.evicted += 1;
        }
        state.entries.push((path.to_path_buf(), key, file.clone()));
        Ok(file)
    }

    /// Runs `f` on the open file at `path` (see [`FileCache::open`]).
    pub fn with<R>(&self, path: impl AsRef<Path>, f: impl FnOnce(&FitsFile) -> Result<R>) -> Result<R> {
        f(&self.open(path)?)
    }

    /// Number of open files held.
    pub fn len(&self) -> usize {
        self.state().entries.len()
    }

    /// Whether no file is held.
    pub fn is_empty(&self) -> bool {
        self.state().entries.is_empty()
    }

    /// Whether `path` is held (without checking whether it changed).
    pub fn contains(&self, path: impl AsRef<Path>) -> bool {
        self.state().entries.iter().any(|(p, _, _)| p.as_os_str() == path.as_ref().as_os_str())
    }

    /// Drops every held file (clones handed out stay open until dropped).
    pub fn clear(&self) {
        self.state().entries.clear();
    }

    /// The cache's counters.
    pub fn stats(&self) -> CacheStats {
        self.state().stats
    }
}

/// The process-wide cache of [`with_cached_file`]: default capacity and options.
fn process_cache() -> &'static FileCache {
    static CACHE: OnceLock<FileCache> = OnceLock::new();
    CACHE.get_or_init(|| FileCache::new(FileCache::DEFAULT_CAPACITY, OpenOptions::new()))
}

/// Runs `f` on the open file for `path` from a process-wide [`FileCache`] of default capacity and
/// options (shared by every thread).
///
/// ```
/// use torchfits_core::with_cached_file;
/// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
/// let shape = with_cached_file(path, |file| Ok(file.image("SCI")?.shape().to_vec()))?;
/// assert_eq!(shape, vec![48, 64]);
/// # Ok::<(), torchfits_core::Error>(())
/// ```
pub fn with_cached_file<R>(path: impl AsRef<Path>, f: impl FnOnce(&FitsFile) -> Result<R>) -> Result<R> {
    f(&process_cache().open(path)?)
}
