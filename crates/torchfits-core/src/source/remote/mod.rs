//! FITS files in object storage (S3, GCS, Azure Blob, plain HTTP) read by range requests through
//! the `object_store` crate: only the blocks a read touches are fetched, into a block cache every
//! remote file shares.
//!
//! Each object is pinned to the version its first response named (its ETag, or its modification
//! time where the server gives no ETag): every later request asks for that version (`If-Match`)
//! and checks what it got, so an object rewritten under a read is an error, and blocks of two
//! versions are never mixed (the cache keys blocks by version).

mod cache;
mod list;
mod runtime;
#[cfg(feature = "remote")]
mod stores;

use std::fmt;
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, GetRange, ObjectStore};
use torchfits_format::error::{Error, Result};

use super::{ByteSource, SourceId};

pub use list::{MAX_LISTED, list, list_at_most};
#[cfg(feature = "remote")]
pub(crate) use stores::store_for;

/// Bytes per cached block: the smallest fetch.
const BLOCK: u64 = 64 << 10;
/// The largest single request: bigger spans are split and fetched concurrently. Large, because
/// each request costs a round trip (and, on S3, a fee) whatever its size, and one connection
/// carries tens of MB/s: concurrency comes from the many spans of cutouts and tiles.
const MAX_REQUEST: u64 = 64 << 20;
/// Gaps up to this many bytes between wanted blocks are fetched rather than costing another
/// request (a request costs about as much time as this many bytes on a fast link).
const COALESCE_GAP: u64 = 256 << 10;
/// The largest sequential read-ahead (header blocks, streamed table rows).
const MAX_READ_AHEAD: u64 = 4 << 20;
/// Requests in flight at once, across every remote file of the process.
const CONCURRENT_REQUESTS: usize = 32;

/// Requests and bytes fetched by every remote file of this process so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteStats {
    /// Range requests sent (retries included).
    pub requests: u64,
    /// Body bytes received.
    pub bytes: u64,
}

static REQUESTS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

/// What every remote file of this process has fetched so far.
///
/// ```
/// let before = torchfits_core::remote::stats();
/// assert!(torchfits_core::remote::stats().requests >= before.requests);
/// ```
pub fn stats() -> RemoteStats {
    RemoteStats { requests: REQUESTS.load(Ordering::Relaxed), bytes: BYTES.load(Ordering::Relaxed) }
}

/// Bounds the block cache that every remote file of the process shares (256 MiB by default, or
/// `TORCHFITS_REMOTE_CACHE_BYTES`); 0 keeps nothing between reads.
pub fn set_cache_bytes(bytes: u64) {
    cache::shared().set_budget(bytes);
}

/// Empties the shared block cache (the next read of every remote file fetches again).
pub fn clear_cache() {
    cache::shared().clear();
}

/// Bytes the shared block cache holds now.
pub fn cache_bytes() -> u64 {
    cache::shared().bytes()
}

/// Whether `name` is a URL this crate reads from object storage (`s3://`, `s3a://`, `gs://`,
/// `az://`, `abfs://`, `abfss://`, `azure://`, `adl://`, `http://`, `https://`).
pub fn is_url(name: &str) -> bool {
    super::is_url(name)
}

/// The object at `url` as a byte source of any format (a Parquet or Arrow catalog beside the FITS
/// files), read by range requests through the shared block cache, as [`crate::FitsFile::open`]
/// reads FITS.
///
/// ```no_run
/// let object = torchfits_core::remote::open_object("s3://survey/catalog.parquet")?;
/// let mut magic = [0u8; 4];
/// object.read_exact_at(&mut magic, 0)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn open_object(url: &str) -> Result<Arc<dyn ByteSource>> {
    let shown = redact(url);
    let name = std::path::Path::new(&shown);
    let (store, path) = store_for(url).map_err(|e| e.in_file(name))?;
    open(store, path, &shown, torchfits_format::limits::Limits::default().max_alloc).map_err(|e| e.in_file(name))
}

pub use super::redact;

/// `text` (a message from a client library, which may quote the URL it fetched) with every URL
/// in it redacted as [`redact`] shows one.
pub(crate) fn scrub(text: &str) -> String {
    // a URL is one word: split at the characters that end one, and redact each word that holds one
    let ends_url = |c: char| c.is_whitespace() || "\"'<>()[]{}`,".contains(c);
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        match word.find("://") {
            Some(at) => {
                // the scheme starts after the last character that cannot be in one
                let (head, url) = word.split_at(
                    word.char_indices()
                        .take_while(|&(i, _)| i < at)
                        .filter(|&(_, c)| !(c.is_ascii_alphanumeric() || "+-.".contains(c)))
                        .last()
                        .map_or(0, |(i, c)| i + c.len_utf8()),
                );
                out.push_str(head);
                let bare = url.split(['?', '#']).next().unwrap_or(url);
                out.push_str(&if super::is_url(url) { redact(url) } else { bare.to_string() });
            }
            None => out.push_str(word),
        }
        word.clear();
    };
    for c in text.chars() {
        if ends_url(c) {
            flush(&mut word, &mut out);
            out.push(c);
        } else {
            word.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[cfg(test)]
mod redaction_tests {
    use super::{redact, scrub};

    #[test]
    fn credentials_and_queries_are_taken_out_of_every_url_in_a_message() {
        let msg = "Error GET https://u:SECRET@h:1/a.fits?sig=SECRET2 (s3://k:SECRET3@b/x?y=SECRET4), done";
        let clean = scrub(msg);
        assert!(!clean.contains("SECRET"), "{clean}");
        assert_eq!(clean, "Error GET https://h:1/a.fits (s3://b/x), done");
        assert_eq!(redact("s3://bucket/key"), "s3://bucket/key");
        assert_eq!(redact("http://a@b@host/p"), "http://host/p");
    }

}

/// Without the object-store clients (the `remote-store` feature alone), no URL names a store:
/// only stores given in code are read (`OpenOptions::open_store`).
#[cfg(not(feature = "remote"))]
pub(crate) fn store_for(url: &str) -> Result<(Arc<dyn ObjectStore>, ObjectPath)> {
    Err(Error::unsupported(format!(
        "{}: this build reads stores given in code only (enable the `remote` feature for URLs)",
        redact(url)
    )))
}

/// Which version of an object a file reads: its ETag, or where the server gives none its
/// modification time.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Version {
    etag: Option<String>,
    modified: String,
    size: u64,
}

impl Version {
    fn of(meta: &object_store::ObjectMeta) -> Version {
        Version { etag: meta.e_tag.clone(), modified: meta.last_modified.to_rfc3339(), size: meta.size }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.etag {
            Some(etag) => write!(f, "ETag {etag}"),
            None => write!(f, "modified {}", self.modified),
        }
    }
}

/// A FITS file in object storage, read by range requests into the shared block cache.
pub(crate) struct RemoteSource {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    /// The URL, redacted, for errors.
    name: String,
    version: Version,
    /// The cache's key for this object's version.
    key: u64,
    /// Sequential read-ahead: the block the next sequential read would start at, and the
    /// read-ahead it earns.
    ahead: Mutex<(u64, u64)>,
}

impl fmt::Debug for RemoteSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RemoteSource").field("url", &self.name).field("version", &self.version).finish()
    }
}

/// Opens the object at `path` in `store` (named `name` in errors): one request, for its first
/// block, which also gives the object's size and version. A gzip, compress (.Z) or zip object is
/// fetched whole (at most `max_inflated` bytes) and inflated as a local file is.
pub(crate) fn open(
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
    name: &str,
    max_inflated: u64,
) -> Result<Arc<dyn ByteSource>> {
    let name = redact(name);
    let first = {
        let (store, path) = (Arc::clone(&store), path.clone());
        runtime::block_on(async move { fetch(&*store, &path, 0..BLOCK, None).await })
    };
    let (bytes, version) = first.and_then(|r| r).map_err(|e| Error::io(e, "cannot open"))?;
    let key = object_key(&name, &version);
    let compressed = super::is_compressed(&bytes);
    cache::shared().insert(key, split_blocks(0, bytes));
    let remote = RemoteSource { store, path, name, version, key, ahead: Mutex::new((0, 0)) };
    if !compressed {
        return Ok(Arc::new(remote));
    }
    if remote.version.size > max_inflated {
        return Err(Error::limits(format!(
            "a compressed object of {} bytes: more than the {max_inflated} bytes it may be fetched into (Limits::max_alloc)",
            remote.version.size
        )));
    }
    Ok(Arc::new(remote.download(max_inflated)?))
}

impl RemoteSource {
    /// The whole object fetched into an unlinked temporary file, and opened as a local file
    /// (inflated there).
    fn download(&self, max_inflated: u64) -> Result<super::LocalFile> {
        let scratch = super::inflate::unlinked_temp_file()
            .map_err(|e| Error::io(e, "cannot make a temporary file to fetch into"))?;
        let mut at = 0;
        // a buffer of one request, or of the whole object where it is smaller
        let mut buf = vec![0u8; self.version.size.min(MAX_REQUEST) as usize];
        while at < self.version.size {
            let n = (self.version.size - at).min(MAX_REQUEST) as usize;
            let chunk = buf.get_mut(..n).unwrap_or_default();
            self.read_exact_at(chunk, at).map_err(|e| Error::io(e, "cannot fetch"))?;
            std::os::unix::fs::FileExt::write_all_at(&scratch, chunk, at)
                .map_err(|e| Error::io(e, "cannot write the fetched object"))?;
            at += n as u64;
        }
        super::open_file(scratch, std::path::Path::new(&self.name), false, max_inflated)
    }
}

/// FNV-1a of the object's URL and version: its key in the block cache.
fn object_key(name: &str, version: &Version) -> u64 {
    let text = format!("{name}\n{version}\n{}", version.size);
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3))
}

/// `bytes` fetched from `start` (a block boundary) as cache blocks.
fn split_blocks(start: u64, bytes: Bytes) -> Vec<(u64, Bytes)> {
    let first = start / BLOCK;
    (0..bytes.len().div_ceil(BLOCK as usize))
        .map(|k| {
            let lo = k * BLOCK as usize;
            (first + k as u64, bytes.slice(lo..(lo + BLOCK as usize).min(bytes.len())))
        })
        .collect()
}

/// The bytes `range` of the object (clipped to its end), and the version that served them: one
/// range request (the store retries it), checked to be of version `expect` where one is given
/// and to hold every byte asked for.
async fn fetch(
    store: &dyn ObjectStore,
    path: &ObjectPath,
    range: Range<u64>,
    expect: Option<&Version>,
) -> io::Result<(Bytes, Version)> {
    static PERMITS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    let permits = PERMITS.get_or_init(|| tokio::sync::Semaphore::new(CONCURRENT_REQUESTS));
    let _permit = permits.acquire().await.map_err(io::Error::other)?;
    let options = GetOptions {
        range: Some(GetRange::Bounded(range.clone())),
        if_match: expect.and_then(|v| v.etag.clone()),
        ..GetOptions::default()
    };
    REQUESTS.fetch_add(1, Ordering::Relaxed);
    let result = store.get_opts(path, options).await.map_err(|e| store_error(e, expect))?;
    let version = Version::of(&result.meta);
    if let Some(expect) = expect.filter(|&v| *v != version) {
        return Err(changed(expect, &version));
    }
    let got = result.range.clone();
    let want = range.start..range.end.min(version.size);
    if got != want {
        return Err(io::Error::other(format!(
            "the server answered bytes {}..{} for bytes {}..{}",
            got.start, got.end, want.start, want.end
        )));
    }
    let bytes = body_within(result, want.end - want.start, expect).await?;
    if bytes.len() as u64 != want.end - want.start {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "the server sent {} bytes of {}..{} (bytes {}..{} asked for): a truncated answer",
                bytes.len(),
                got.start,
                got.end,
                want.start,
                want.end
            ),
        ));
    }
    Ok((bytes, version))
}

/// The body of `result`, read as it arrives and refused as soon as it holds more than the `most`
/// bytes asked for: a server that sends more than its range, or a chunked body without end,
/// costs at most one chunk more than the answer, never its claim.
async fn body_within(result: object_store::GetResult, most: u64, expect: Option<&Version>) -> io::Result<Bytes> {
    let mut stream = result.into_stream();
    let mut chunks: Vec<Bytes> = Vec::new();
    let mut received = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| store_error(e, expect))?;
        received += chunk.len() as u64;
        BYTES.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        if received > most {
            return Err(io::Error::other(format!(
                "the server sent more than the {most} bytes asked for: its answer is refused"
            )));
        }
        chunks.push(chunk);
    }
    Ok(match chunks.len() {
        1 => chunks.pop().unwrap_or_default(),
        _ => chunks.concat().into(),
    })
}

/// The error for an object whose version is no longer the one a read started on.
fn changed(expect: &Version, now: &Version) -> io::Error {
    io::Error::other(format!("the object changed while it was read ({expect}, now {now})"))
}

/// An `object_store` error as an I/O error of the matching kind, its message cut to its first
/// line (a server's error page stays out of it).
fn store_error(e: object_store::Error, expect: Option<&Version>) -> io::Error {
    match e {
        object_store::Error::NotFound { .. } => io::Error::new(io::ErrorKind::NotFound, "no such object (404)"),
        object_store::Error::Precondition { .. } => io::Error::other(format!(
            "the object changed while it was read (it is no longer {})",
            expect.map_or_else(|| "the version first read".to_string(), Version::to_string)
        )),
        other => {
            let text = other.to_string();
            let line = text.lines().next().unwrap_or_default();
            io::Error::other(scrub(&line.chars().take(400).collect::<String>()))
        }
    }
}

impl RemoteSource {
    /// Fetches the blocks `runs` (ranges of block indices) concurrently, each run split into
    /// requests of at most [`MAX_REQUEST`], caches them and returns them.
    fn fetch_blocks(&self, runs: &[Range<u64>]) -> io::Result<Vec<(u64, Bytes)>> {
        let size = self.version.size;
        let per_request = MAX_REQUEST / BLOCK;
        let mut spans = Vec::new();
        for run in runs {
            let mut b = run.start;
            while b < run.end {
                let e = (b + per_request).min(run.end);
                spans.push((b * BLOCK)..(e * BLOCK).min(size));
                b = e;
            }
        }
        let (store, path, version) = (Arc::clone(&self.store), self.path.clone(), self.version.clone());
        let fetched = runtime::block_on(async move {
            futures_util::stream::iter(spans)
                .map(|span| {
                    let (store, path, version) = (&store, &path, &version);
                    async move {
                        let (bytes, _) = fetch(&**store, path, span.clone(), Some(version)).await?;
                        Ok::<_, io::Error>(split_blocks(span.start, bytes))
                    }
                })
                .buffer_unordered(CONCURRENT_REQUESTS)
                .try_concat()
                .await
        })??;
        cache::shared().insert(self.key, fetched.iter().cloned());
        Ok(fetched)
    }

    /// The read-ahead a miss at block `first` earns: doubling while reads follow one another,
    /// none after a jump.
    fn read_ahead(&self, first: u64, end: u64) -> u64 {
        let mut state = self.ahead.lock().unwrap_or_else(PoisonError::into_inner);
        let ahead = if state.0 == first { (state.1 * 2).clamp(BLOCK, MAX_READ_AHEAD) / BLOCK } else { 0 };
        *state = (end + ahead, ahead * BLOCK);
        ahead
    }

    /// The blocks of `blocks` not in the cache, as runs of block indices, runs closer than
    /// [`COALESCE_GAP`] merged.
    fn missing_runs(&self, blocks: impl Iterator<Item = u64>) -> Vec<Range<u64>> {
        let cache = cache::shared();
        let gap = COALESCE_GAP / BLOCK;
        let mut runs: Vec<Range<u64>> = Vec::new();
        for b in blocks.filter(|&b| !cache.contains(self.key, b)) {
            match runs.last_mut() {
                Some(last) if b >= last.start && b < last.end => {}
                Some(last) if b >= last.end && b - last.end <= gap => last.end = b + 1,
                _ => runs.push(b..b + 1),
            }
        }
        runs
    }
}

impl ByteSource for RemoteSource {
    fn len(&self) -> u64 {
        self.version.size
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let end = offset
            .checked_add(buf.len() as u64)
            .filter(|&e| e <= self.version.size)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end of the object"))?;
        if buf.is_empty() {
            return Ok(());
        }
        let (first, last) = (offset / BLOCK, (end - 1) / BLOCK);
        let cache = cache::shared();
        let mut blocks: Vec<Option<Bytes>> = (first..=last).map(|b| cache.get(self.key, b)).collect();
        let missing: Vec<u64> = (first..=last).zip(&blocks).filter(|(_, b)| b.is_none()).map(|(k, _)| k).collect();
        if let (Some(&lo), Some(&hi)) = (missing.first(), missing.last()) {
            let ahead = self.read_ahead(lo, hi + 1);
            let total = self.version.size.div_ceil(BLOCK);
            let run = lo..(hi + 1 + ahead).min(total);
            for (b, bytes) in self.fetch_blocks(&[run])? {
                if let Some(slot) = b.checked_sub(first).and_then(|k| blocks.get_mut(k as usize)) {
                    *slot = Some(bytes);
                }
            }
        }
        let mut at = offset;
        let mut out = buf;
        for (k, block) in blocks.into_iter().enumerate() {
            let bytes = block.ok_or_else(|| io::Error::other("a block was not fetched"))?;
            let lo = (at - (first + k as u64) * BLOCK) as usize;
            let n = (bytes.len().saturating_sub(lo)).min(out.len());
            let src = bytes
                .get(lo..lo + n)
                .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "a block ends early"))?;
            let (head, tail) = out.split_at_mut(n);
            head.copy_from_slice(src);
            out = tail;
            at += n as u64;
        }
        if out.is_empty() { Ok(()) } else { Err(io::Error::new(io::ErrorKind::UnexpectedEof, "blocks end early")) }
    }

    fn remote(&self) -> bool {
        true
    }

    fn prefetch(&self, ranges: &[Range<u64>]) -> io::Result<()> {
        let size = self.version.size;
        // what the cache cannot hold until it is read is not fetched ahead: the reads fetch it.
        // Ranges named by a file (a tile's descriptor) or sized by a server's claim are cut to
        // that room before they become blocks, so neither can make this list long.
        let mut room = cache::shared().budget() / 2 / BLOCK;
        let mut blocks: Vec<u64> = ranges
            .iter()
            .filter(|r| r.start < r.end.min(size))
            .flat_map(|r| (r.start / BLOCK)..=((r.end.min(size) - 1) / BLOCK).min(r.start / BLOCK + room))
            .take(usize::try_from(room.saturating_mul(4)).unwrap_or(usize::MAX))
            .collect();
        blocks.sort_unstable();
        blocks.dedup();
        let mut runs = self.missing_runs(blocks.into_iter());
        runs.retain_mut(|run| {
            run.end = run.end.min(run.start + room);
            room -= run.end - run.start;
            run.end > run.start
        });
        if !runs.is_empty() {
            self.fetch_blocks(&runs)?;
        }
        Ok(())
    }

    fn id(&self) -> SourceId {
        SourceId { location: self.name.clone(), version: self.version.to_string() }
    }
}
