//! The decoded-stamp cache: stamps decoded once (in a stream's first epoch, or ahead of time by
//! `torchfits stamps`) are written to local files, and later epochs read them back at the speed
//! of the page cache, decoding nothing.
//!
//! One file per shard, `<dir>/<fingerprint>/shard-<s>.stamps`, of fixed-size records, one per
//! item of the shard at its place in the shard. A record carries a CRC-32 of its bytes and the
//! item it holds: a record that was never written, was cut short or does not check is read
//! again from the images and written again, never trusted. Records are written with one
//! positioned write each and read with one positioned read, so processes of one node (a device
//! each) share a cache safely: two writers of one record write the same bytes. The files are
//! read with `pread`, not memory-mapped: a map of a file that other processes write would let
//! them change bytes under a reader, while `pread` reads the same cached pages into a buffer of
//! our own.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use torchfits_core::{BufferPool, Error, ErrorKind, PooledBuffer, Result};

use super::order::ShardIndex;
use super::source::{HEADER, ShardedStamps, StampLayout};
use crate::stamp::Stamp;

/// What marks a record as written (the bytes "STC1").
const WRITTEN: u32 = 0x3143_5453;

/// A decoded-stamp cache of one dataset, bounded in size: a stream
/// ([`super::StampStream::cache`]) reads its stamps from it where they are there and writes
/// those it decodes.
#[derive(Debug)]
pub struct StampCache {
    dir: PathBuf,
    layout: StampLayout,
    index: Arc<ShardIndex>,
    /// Shards `0..cached` are cached (the first that fit in the bound, in shard order).
    cached: usize,
    files: Vec<OnceLock<Option<File>>>,
    /// The buffers of the stamps read back.
    pool: BufferPool,
}

impl StampCache {
    /// The cache of `dataset`'s stamps under `root`, holding at most `max_bytes` (whole shards,
    /// in shard order: the same ones in every process). Its folder is named by the dataset's
    /// fingerprint, so that stamps of other inputs or options are never taken for these.
    pub fn open(root: impl AsRef<Path>, dataset: &dyn ShardedStamps, max_bytes: u64) -> Result<StampCache> {
        let fingerprint = dataset.fingerprint()?;
        let dir = root.as_ref().join(format!("{fingerprint:016x}"));
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::new(ErrorKind::Io, format!("cannot create the stamp cache's folder: {e}")).in_file(&dir)
        })?;
        let (layout, index) = (dataset.layout(), Arc::new(dataset.shards()));
        let record = layout.record() as u64;
        let mut total = 0u64;
        let cached = (0..index.shards())
            .take_while(|&s| {
                let items = index.range(s);
                total = total.saturating_add((items.end - items.start).saturating_mul(record));
                total <= max_bytes
            })
            .count();
        let files = (0..cached).map(|_| OnceLock::new()).collect();
        Ok(StampCache { dir, layout, index, cached, files, pool: BufferPool::default() })
    }

    /// The folder of this dataset's shard files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Shards the bound lets the cache hold (the first ones, in shard order).
    pub fn cached_shards(&self) -> usize {
        self.cached
    }

    /// The shard file and the offset of item `item`'s record, where its shard is cached.
    fn place(&self, item: u64) -> Option<(&File, u64)> {
        let s = self.index.shard_of(item)?;
        let once = self.files.get(s)?;
        let items = self.index.range(s);
        let record = self.layout.record() as u64;
        let file = once.get_or_init(|| self.open_shard(s, (items.end - items.start) * record)).as_ref()?;
        Some((file, (item - items.start) * record))
    }

    /// Shard `s`'s file, `len` bytes long (extended with zeros, records not written, where it is
    /// shorter); None where it cannot be opened (its items are then read from the images).
    fn open_shard(&self, s: usize, len: u64) -> Option<File> {
        let path = self.dir.join(format!("shard-{s:06}.stamps"));
        let opened = std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path);
        let file = opened
            .and_then(|f| {
                if f.metadata()?.len() != len {
                    f.set_len(len)?;
                }
                Ok(f)
            })
            .map_err(
                |e| tracing::debug!(error = %e, path = %path.display(), "the stamp cache cannot use a shard file"),
            );
        file.ok()
    }

    /// Item `item`'s stamp from the cache (without what [`ShardedStamps::annotate`] adds), or
    /// None where its record is not there or does not check.
    pub fn get(&self, item: u64) -> Option<Stamp> {
        let (file, at) = self.place(item)?;
        let mut bytes = vec![0u8; self.layout.record()];
        file.read_exact_at(&mut bytes, at).ok()?;
        let (head, body) = bytes.split_at(8);
        let word = |b: &[u8], k: usize| b.get(k..k + 8).and_then(|w| w.try_into().ok()).map(u64::from_le_bytes);
        let crc = u32::from_le_bytes(head.get(..4)?.try_into().ok()?);
        let mark = u32::from_le_bytes(head.get(4..8)?.try_into().ok()?);
        if mark != WRITTEN || crc != crc32fast::hash(body) || word(body, 0)? != item {
            return None;
        }
        let image = usize::try_from(word(body, 8)?).ok()?;
        let origin = (f64::from_bits(word(body, 16)?), f64::from_bits(word(body, 24)?));
        let has_flags = body.get(32).copied()? == 1;
        self.stamp(body.get(HEADER - 8..)?, (item, image, origin, has_flags)).ok()
    }

    /// A stamp of the planes in `planes` (a record's body after its header).
    fn stamp(&self, planes: &[u8], (item, image, origin, has_flags): Meta) -> Result<Stamp> {
        let (l, pool) = (&self.layout, &self.pool);
        let p = l.plane();
        let mut at = 0;
        let mut take = |n: usize| -> Result<&[u8]> {
            let part = planes.get(at..at + n).ok_or_else(|| Error::new(ErrorKind::Decoding, "a short record"))?;
            at += n;
            Ok(part)
        };
        let pixels = filled::<f32>(pool, take(4 * p * l.channels)?)?;
        let flags = take(4 * p * l.flag_channels)?;
        let flags = has_flags.then(|| filled::<f32>(pool, flags)).transpose()?;
        let masks = take(8 * p * l.masks)?;
        let masks = (l.masks > 0).then(|| filled::<i64>(pool, masks)).transpose()?;
        let weights = take(4 * p * l.weights)?;
        let weights = (l.weights > 0).then(|| filled::<f32>(pool, weights)).transpose()?;
        Ok(Stamp {
            pixels: Arc::new(pixels),
            channels: l.channels,
            flags: flags.map(Arc::new),
            flag_channels: l.flag_channels,
            height: l.height,
            width: l.width,
            label: None,
            image,
            origin,
            index: item as usize,
            masks: masks.map(Arc::new),
            weights: weights.map(Arc::new),
            weight_roles: Arc::from([]),
            row: 0,
            side: None,
        })
    }

    /// Writes `stamp` as item `item`'s record, where its shard is cached and it has the
    /// dataset's layout; a stamp that stands in for another item (a replacement of the error
    /// policy) is not written, so that later epochs read the item again as an uncached run does.
    pub fn put(&self, item: u64, stamp: &Stamp) {
        let l = &self.layout;
        let fits = stamp.index as u64 == item
            && (stamp.channels, stamp.flag_channels, stamp.height, stamp.width)
                == (l.channels, l.flag_channels, l.height, l.width)
            && stamp.masks.as_ref().map_or(0, |m| m.len()) == l.masks * l.plane()
            && stamp.weights.as_ref().map_or(0, |w| w.len()) == l.weights * l.plane();
        let Some((file, at)) = self.place(item).filter(|_| fits) else { return };
        let bytes = self.record(item, stamp);
        if let Err(e) = file.write_all_at(&bytes, at) {
            tracing::debug!(error = %e, "the stamp cache could not write a record");
        }
    }

    /// The record of `stamp`, item `item`.
    fn record(&self, item: u64, stamp: &Stamp) -> Vec<u8> {
        let l = &self.layout;
        let mut out = Vec::with_capacity(l.record());
        out.extend_from_slice(&[0; 4]);
        out.extend_from_slice(&WRITTEN.to_le_bytes());
        out.extend_from_slice(&item.to_le_bytes());
        out.extend_from_slice(&(stamp.image as u64).to_le_bytes());
        out.extend_from_slice(&stamp.origin.0.to_bits().to_le_bytes());
        out.extend_from_slice(&stamp.origin.1.to_bits().to_le_bytes());
        out.push(u8::from(stamp.flags.is_some()));
        out.resize(HEADER, 0);
        out.extend_from_slice(bytemuck::cast_slice(&stamp.pixels[..]));
        match &stamp.flags {
            Some(f) => out.extend_from_slice(bytemuck::cast_slice(&f[..])),
            None => out.resize(out.len() + 4 * l.plane() * l.flag_channels, 0),
        }
        if let Some(m) = &stamp.masks {
            out.extend_from_slice(bytemuck::cast_slice(&m[..]));
        }
        if let Some(w) = &stamp.weights {
            out.extend_from_slice(bytemuck::cast_slice(&w[..]));
        }
        let crc = crc32fast::hash(out.get(8..).unwrap_or_default());
        out.get_mut(..4).unwrap_or_default().copy_from_slice(&crc.to_le_bytes());
        out
    }
}

/// A record's item, image, origin and whether it has flags.
type Meta = (u64, usize, (f64, f64), bool);

/// A pooled buffer holding the values of `bytes` (the node's byte order).
fn filled<T: torchfits_core::Pixel + bytemuck::Pod>(pool: &BufferPool, bytes: &[u8]) -> Result<PooledBuffer<T>> {
    let mut buffer = pool.get::<T>(bytes.len() / std::mem::size_of::<T>())?;
    bytemuck::cast_slice_mut::<T, u8>(&mut buffer).copy_from_slice(bytes);
    Ok(buffer)
}
