//! A loader of stamps read as a stream: burn's `DataLoader` over a dataset's shards, in the order
//! of [`EpochOrder`] (a function of the seed, the epoch and the device's share alone), read by
//! worker threads and put back in that order before the shuffle buffer, so that the batches are
//! the same for any number of workers.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, OnceLock};

use burn::data::dataloader::{DataLoader, DataLoaderIterator, Progress};
use burn::data::dataset::DatasetError;
use burn::tensor::Device;

use super::cache::StampCache;
use super::handoff::{Handoff, Numbered, ReaderGuard};
use super::order::{EpochOrder, ShardIndex};
use super::source::ShardedStamps;
use crate::batch::{StampBatch, StampBatcher};
use crate::epochs::Epoch;
use crate::stamp::Stamp;

/// A reader thread reads a chunk of the sequence at a time: the pieces of shards it holds whole
/// (so that one thread reads an image's stamps and decodes its tiles once), at least
/// `MIN_CHUNK` items where pieces are small, at most `MAX_CHUNK` (a longer piece is cut).
const MIN_CHUNK: u64 = 256;
const MAX_CHUNK: u64 = 2048;
/// Chunks each reader may read past the first the batching thread still waits for.
const AHEAD_PER_WORKER: usize = 3;

/// Burn's `DataLoader` over a sharded dataset of stamps, read as a stream: each epoch visits the
/// shards (the images) in an order drawn from the seed and the epoch, takes this loader's share of
/// that sequence of items (all of it, or a device's: [`DataLoader::slice`], what burn-train's
/// multi-device training calls, or [`StampStream::rank`]), reads it with `workers` threads a
/// chunk at a time, mixes it in a shuffle buffer of `buffer` items and stacks batches of
/// `batch_size` with the batcher on a thread of its own. The batches depend on the seed, the
/// epoch and the share alone: not on the number of workers. The epoch is [`StampStream::epoch`]'s
/// handle: an [`crate::EpochLoader`] advances it on each `iter()` (from the epoch of a
/// checkpoint, with `EpochLoader::starting_at`), so a resumed run sees the batches an
/// uninterrupted one would have.
///
/// ```
/// use std::sync::Arc;
/// use burn::data::dataloader::DataLoader;
/// use torchfits_burn::stream::StampStream;
/// use torchfits_burn::{CatalogCutoutDataset, StampBatcher};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
/// let ds = CatalogCutoutDataset::builder(sample, [sample]).catalog_hdu("CATALOG").hdu("SCI").size(8).build()?;
/// let stream = StampStream::new(Arc::new(ds), StampBatcher::new()).batch_size(2).seed(7);
/// for batch in stream.iter() {
///     assert_eq!(batch?.images.dims(), [2, 2, 8, 8]); // the two stars, in an order drawn from the seed
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct StampStream {
    dataset: Arc<dyn ShardedStamps>,
    index: Arc<ShardIndex>,
    batcher: StampBatcher,
    device: Device,
    batch_size: usize,
    buffer: usize,
    workers: usize,
    seed: u64,
    share: Range<u64>,
    epoch: Epoch,
    /// Batches the next `iter()` passes over (a resumed epoch), then 0.
    skip: Arc<AtomicUsize>,
    cache: Option<Arc<StampCache>>,
}

impl std::fmt::Debug for StampStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StampStream")
            .field("shards", &self.index.shards())
            .field("share", &self.share)
            .field("batch_size", &self.batch_size)
            .field("buffer", &self.buffer)
            .field("workers", &self.workers)
            .field("seed", &self.seed)
            .field("epoch", &self.epoch)
            .finish()
    }
}

impl StampStream {
    /// A stream over every item of `dataset`, on Burn's CPU backend: batches of 64, a buffer of
    /// 4096 items, 2 workers, seed 0, epoch 0.
    pub fn new<D: ShardedStamps + 'static>(dataset: Arc<D>, batcher: StampBatcher) -> Self {
        let index = Arc::new(dataset.shards());
        let share = 0..index.items();
        StampStream {
            dataset,
            index,
            batcher,
            device: Device::flex(),
            batch_size: 64,
            buffer: 4096,
            workers: 2,
            seed: 0,
            share,
            epoch: Epoch::default(),
            skip: Arc::default(),
            cache: None,
        }
    }

    /// Reads the stamps from a decoded-stamp cache of `max_bytes` at most under `dir` where they
    /// are there, and writes there those it decodes: the first epoch fills it, later epochs
    /// (and other processes of the node, and later runs) read the cached shards and decode
    /// nothing. The stamps are the same with and without it.
    pub fn cache(mut self, dir: impl AsRef<std::path::Path>, max_bytes: u64) -> torchfits_core::Result<Self> {
        self.cache = Some(Arc::new(StampCache::open(dir, &*self.dataset, max_bytes)?));
        Ok(self)
    }

    /// The decoded-stamp cache, where the stream has one.
    pub fn stamp_cache(&self) -> Option<&StampCache> {
        self.cache.as_deref()
    }

    /// Items per batch (the last batch of an epoch may hold fewer).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n.max(1);
        self
    }

    /// Items the shuffle buffer holds (1: the shards' items in order).
    pub fn buffer(mut self, n: usize) -> Self {
        self.buffer = n.max(1);
        self
    }

    /// Reader threads (at least 1).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// The seed of the shard orders and the buffer's draws.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// The device batches are made on.
    pub fn device(mut self, device: Device) -> Self {
        self.device = device;
        self
    }

    /// Only the share of process `rank` of `world` (one process per node; each reads a disjoint
    /// share of every epoch, their union the epoch).
    pub fn rank(mut self, rank: usize, world: usize) -> Self {
        self.share = EpochOrder::share_of(rank, world, self.index.items());
        self
    }

    /// Resumes an epoch stopped after `batches` batches: the next `iter()` gives the batches an
    /// uninterrupted epoch would have given after those (the items of the skipped batches are
    /// not read; those still in the shuffle buffer are), later ones whole epochs. For a loop of
    /// its own that saved (epoch, batches done): set [`StampStream::epoch`] to the epoch, then
    /// this.
    pub fn skip_batches(self, batches: usize) -> Self {
        self.skip.store(batches, Ordering::Relaxed);
        self
    }

    /// Another loader like this one, with the same epoch handle and batches still to skip of its
    /// own (a copy for another device skips what this one does, once).
    fn copy(&self) -> Self {
        let skip = Arc::new(AtomicUsize::new(self.skip.load(Ordering::Relaxed)));
        StampStream { skip, ..self.clone() }
    }

    /// The handle on the epoch this loader reads ([`crate::EpochLoader`] advances it).
    pub fn epoch(&self) -> Epoch {
        self.epoch.clone()
    }

    /// The order of the current epoch.
    pub fn order(&self) -> EpochOrder {
        EpochOrder { seed: self.seed, epoch: self.epoch.get(), share: self.share.clone(), buffer: self.buffer }
    }
}

impl DataLoader<StampBatch> for StampStream {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<StampBatch> + 'a> {
        Box::new(StreamIter::start(self))
    }

    fn num_items(&self) -> usize {
        (self.share.end - self.share.start) as usize
    }

    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<StampBatch>> {
        Arc::new(self.copy().device(device.clone()))
    }

    /// Positions `start..end` of this loader's share of each epoch (burn-train gives each device
    /// one such range): a disjoint share of the epoch's shard sequence, which is drawn again each
    /// epoch, so a device never reads one contiguous part of the catalog.
    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<StampBatch>> {
        let at = |k: usize| (self.share.start + k as u64).min(self.share.end);
        let mut sliced = self.copy();
        sliced.share = at(start)..at(end.max(start));
        Arc::new(sliced)
    }
}

/// What a reader thread sends: a chunk's items (`None` for one a resumed epoch gave before it
/// stopped, which is not read again), or the error reading one.
type Chunk = Result<Vec<Option<Stamp>>, DatasetError>;

/// One epoch of a [`StampStream`]: its reader threads and its batching thread, stopped when it
/// is dropped (their channels close).
struct StreamIter {
    batches: Receiver<Result<StampBatch, DatasetError>>,
    done: usize,
    total: usize,
}

impl StreamIter {
    fn start(stream: &StampStream) -> StreamIter {
        let order = stream.order();
        let size = stream.batch_size;
        // a resumed epoch: the items its first batches held (the buffer's draws, no read) are
        // passed over, and the buffer draws as in the uninterrupted epoch
        let skipped = stream.skip.swap(0, Ordering::Relaxed).saturating_mul(size);
        let given: Arc<HashSet<u64>> = Arc::new(order.items(&stream.index).take(skipped).collect());
        let pieces = order.pieces(&stream.index);
        let total: usize = pieces.iter().map(|(_, items)| (items.end - items.start) as usize).sum();
        let sequence = Arc::new(Sequence::new(pieces.into_iter().map(|(_, items)| items).collect()));
        let chunks = sequence.chunks.len();
        let workers = stream.workers.min(chunks.max(1));
        let (handoff, to_batcher, in_order) = Handoff::new(chunks, AHEAD_PER_WORKER * workers);
        for _ in 0..workers {
            let source = Source { dataset: stream.dataset.clone(), cache: stream.cache.clone() };
            let (sequence, given, handoff, to) = (sequence.clone(), given.clone(), handoff.clone(), to_batcher.clone());
            std::thread::spawn(move || read_chunks(&source, &sequence, &given, &handoff, &to));
        }
        drop(to_batcher);
        let (to, batches) = sync_channel(2);
        let (batcher, device) = (stream.batcher.clone(), stream.device.clone());
        std::thread::spawn(move || {
            // the sequence in order, whatever reader read each chunk; a chunk no reader sends (a
            // reader panicked) ends the epoch with an error, not short
            let items = in_order.map(|chunk| {
                chunk.unwrap_or_else(|| {
                    Err(DatasetError::new(std::io::Error::other("a reader thread of the stream stopped")))
                })
            });
            let after = order.shuffle(items.flat_map(flatten)).skip(skipped).map(|item| {
                item.and_then(|stamp| stamp.ok_or_else(|| DatasetError::new(std::io::Error::other(PASSED_OVER))))
            });
            batch_stream(after, &batcher, &device, size, &to)
        });
        StreamIter { batches, done: 0, total: total.saturating_sub(skipped) }
    }
}

/// What a resumed epoch would say if an item it passed over came out of the buffer after the
/// batches it skips: the buffer's draws would then differ from the uninterrupted epoch's.
const PASSED_OVER: &str = "a resumed epoch's buffer gave an item of the batches it skipped";

/// A chunk's items one by one (an error as one item).
fn flatten(chunk: Chunk) -> Vec<Result<Option<Stamp>, DatasetError>> {
    match chunk {
        Ok(items) => items.into_iter().map(Ok).collect(),
        Err(e) => vec![Err(e)],
    }
}

/// A device's items in sequence order, as pieces of shards: one number pair per piece.
struct Sequence {
    pieces: Vec<Range<u64>>,
    /// The position of each piece's first item.
    starts: Vec<u64>,
    /// Set when a piece's bytes have been fetched ahead: once per piece, whichever reader comes
    /// first (the others wait for it rather than fetch the same bytes themselves).
    fetched: Vec<OnceLock<()>>,
    /// The positions each chunk holds, in order.
    chunks: Vec<Range<u64>>,
}

impl Sequence {
    fn new(pieces: Vec<Range<u64>>) -> Sequence {
        let mut starts = Vec::with_capacity(pieces.len());
        let mut total = 0;
        for p in &pieces {
            starts.push(total);
            total += p.end - p.start;
        }
        let fetched = pieces.iter().map(|_| OnceLock::new()).collect();
        let chunks = chunks(&pieces);
        Sequence { pieces, starts, fetched, chunks }
    }

    /// Fetches ahead the pieces `positions` touch (each once, by the first reader to touch it):
    /// an image's stamps of the epoch in a few requests over object storage. A failed fetch is
    /// left to the reads, which fail or are replaced by the dataset's error policy.
    fn fetch(&self, dataset: &dyn ShardedStamps, positions: &Range<u64>) {
        let first = self.starts.partition_point(|&s| s <= positions.start).saturating_sub(1);
        let touched = self.starts.get(first..).unwrap_or_default().iter().take_while(|&&s| s < positions.end);
        for (k, _) in touched.enumerate() {
            let (Some(piece), Some(once)) = (self.pieces.get(first + k), self.fetched.get(first + k)) else { break };
            once.get_or_init(|| {
                if let Err(e) = dataset.prefetch(piece.clone()) {
                    tracing::debug!(error = %e, "fetching a shard ahead failed; its reads will fetch it");
                }
            });
        }
    }

    /// The items at `positions`.
    fn items(&self, positions: Range<u64>) -> impl Iterator<Item = u64> + '_ {
        let first = self.starts.partition_point(|&s| s <= positions.start).saturating_sub(1);
        let mut offset = positions.start - self.starts.get(first).copied().unwrap_or(0);
        let mut left = positions.end.saturating_sub(positions.start);
        let pieces = self.pieces.get(first..).unwrap_or_default();
        pieces
            .iter()
            .map_while(move |p| {
                let from = p.start + offset;
                let n = p.end.saturating_sub(from).min(left);
                (offset, left) = (0, left - n);
                (n > 0).then_some(from..from + n)
            })
            .flatten()
    }
}

/// Where a reader thread's stamps come from: the cache where it holds them, the dataset else.
struct Source {
    dataset: Arc<dyn ShardedStamps>,
    cache: Option<Arc<StampCache>>,
}

impl Source {
    /// Item `item` from the cache (annotated by the dataset), or None.
    fn cached(&self, item: u64) -> Option<Result<Stamp, DatasetError>> {
        let mut stamp = self.cache.as_ref()?.get(item)?;
        Some(self.dataset.annotate(&mut stamp).map(|()| stamp).map_err(DatasetError::new))
    }

    /// Item `item` read from the images (and written to the cache).
    fn read(&self, item: u64) -> Result<Stamp, DatasetError> {
        let stamp = self.dataset.get(item as usize)?;
        if let Some(cache) = &self.cache {
            cache.put(item, &stamp);
        }
        Ok(stamp)
    }
}

/// The chunks of a sequence of `pieces`: boundaries at the ends of pieces once a chunk holds
/// `MIN_CHUNK` items, and inside a piece longer than `MAX_CHUNK` (cut in equal parts).
fn chunks(pieces: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut out = Vec::new();
    let (mut start, mut at) = (0u64, 0u64);
    for p in pieces {
        let n = p.end - p.start;
        if n > MAX_CHUNK {
            if at > start {
                out.push(start..at);
            }
            let parts = n.div_ceil(MAX_CHUNK);
            out.extend((0..parts).map(|k| at + k * n / parts..at + (k + 1) * n / parts));
            (start, at) = (at + n, at + n);
            continue;
        }
        at += n;
        if at - start >= MIN_CHUNK {
            out.push(start..at);
            start = at;
        }
    }
    if at > start {
        out.push(start..at);
    }
    out
}

/// A reader: takes the next chunk of `sequence` until none is left, and sends each whole (the
/// items `given` before a resumed epoch stopped as `None`, unread); stops at the first error or
/// when the batching thread is gone. The shard pieces a chunk touches are fetched ahead at its
/// first item the cache does not hold.
fn read_chunks(
    source: &Source,
    sequence: &Sequence,
    given: &HashSet<u64>,
    handoff: &Arc<Handoff>,
    to: &SyncSender<Numbered<Chunk>>,
) {
    let _guard = ReaderGuard(handoff.clone());
    while let Some(k) = handoff.take() {
        let Some(positions) = sequence.chunks.get(k) else { return };
        let mut fetched = false;
        let mut read = |i: u64| {
            if given.contains(&i) {
                return Ok(None);
            }
            if let Some(cached) = source.cached(i) {
                return cached.map(Some);
            }
            if !fetched {
                sequence.fetch(&*source.dataset, positions);
                fetched = true;
            }
            source.read(i).map(Some)
        };
        let items = sequence.items(positions.clone()).map(&mut read).collect::<Result<Vec<_>, _>>();
        let failed = items.is_err();
        if to.send((k, items)).is_err() || failed {
            return;
        }
    }
}

/// Stacks the items of `items` into batches of `size` and sends them; stops at the first error
/// (sent) or when the receiver is gone.
fn batch_stream(
    mut items: impl Iterator<Item = Result<Stamp, DatasetError>>,
    batcher: &StampBatcher,
    device: &Device,
    size: usize,
    to: &SyncSender<Result<StampBatch, DatasetError>>,
) {
    loop {
        let mut batch = Vec::with_capacity(size);
        for item in items.by_ref().take(size) {
            match item {
                Ok(stamp) => batch.push(stamp),
                Err(e) => {
                    let _ = to.send(Err(e));
                    return;
                }
            }
        }
        if batch.is_empty() {
            return;
        }
        let made = batcher.try_batch(batch, device).map_err(DatasetError::new);
        let failed = made.is_err();
        if to.send(made).is_err() || failed {
            return;
        }
    }
}

impl Iterator for StreamIter {
    type Item = Result<StampBatch, DatasetError>;

    fn next(&mut self) -> Option<Self::Item> {
        let batch = self.batches.recv().ok()?;
        if let Ok(b) = &batch {
            self.done += b.indices.len();
        }
        Some(batch)
    }
}

impl DataLoaderIterator<StampBatch> for StreamIter {
    fn progress(&self) -> Progress {
        Progress::new(self.done, self.total, Some("items".to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_hold_small_pieces_whole_and_cut_long_ones() {
        let pieces = [7..107, 200..500, 0..5000, 9..19];
        let got = chunks(&pieces);
        assert_eq!(got, vec![0..400, 400..2066, 2066..3733, 3733..5400, 5400..5410]);
        assert!(chunks(&[]).is_empty());
    }
}
