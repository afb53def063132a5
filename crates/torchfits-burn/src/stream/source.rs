//! What a stream reads: a dataset of stamps grouped into shards, and the planes each of its
//! stamps has.

use std::ops::Range;

use burn::data::dataset::Dataset;

use super::order::ShardIndex;
use crate::reading::{FitsDataset, Items, Reader};
use crate::stamp::Stamp;

/// A dataset of stamps whose items are grouped into shards (numbered shard after shard), which
/// a [`super::StampStream`] reads one after the other.
pub trait ShardedStamps: Dataset<Stamp> + Send + Sync {
    /// The shards: item `k` is in the shard whose range holds it.
    fn shards(&self) -> ShardIndex;

    /// Fetches ahead, in a few requests, what reading `items` (part of one shard) needs, where
    /// the files are in object storage; nothing for local files.
    fn prefetch(&self, items: Range<u64>) -> torchfits_core::Result<()>;

    /// A fingerprint of what the stamps' planes depend on (the files, their sizes and times,
    /// the options): a [`super::StampCache`] keeps the stamps of each fingerprint apart.
    fn fingerprint(&self) -> torchfits_core::Result<u64>;

    /// The planes every stamp has.
    fn layout(&self) -> StampLayout;

    /// Adds to a stamp read back from a [`super::StampCache`] (its planes, image, origin and index)
    /// what the dataset gives item `stamp.index` besides: label, catalog row, side columns and
    /// weight roles.
    fn annotate(&self, stamp: &mut Stamp) -> torchfits_core::Result<()>;
}

/// The planes every stamp of a dataset has, which fix the size of a cache record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StampLayout {
    /// Science planes.
    pub channels: usize,
    /// Flag planes.
    pub flag_channels: usize,
    /// Integer mask planes.
    pub masks: usize,
    /// Weight planes.
    pub weights: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
}

/// The record's header (numbers in the node's byte order, as the planes): CRC-32, mark, item, image, origin x and y, whether it has flags (padded).
pub(super) const HEADER: usize = 48;

impl StampLayout {
    pub(super) fn plane(&self) -> usize {
        self.height * self.width
    }

    /// Bytes of one record: the header, then pixels, flags (f32), masks (i64), weights (f32).
    pub(super) fn record(&self) -> usize {
        let p = self.plane();
        HEADER + 4 * p * (self.channels + self.flag_channels + self.weights) + 8 * p * self.masks
    }
}

/// What the items of a dataset of stamps give a stream ([`crate::CatalogCutouts`],
/// [`crate::SurveyCutouts`]): the dataset that reads them is then [`ShardedStamps`].
pub trait StreamItems: Items<Item = Stamp> {
    /// The items grouped into shards (numbered shard after shard).
    fn shards(&self) -> ShardIndex;

    /// Fetches ahead, through `reader`, what reading `items` (part of one shard) needs, where
    /// the files are in object storage.
    fn prefetch(&self, reader: &Reader, items: Range<usize>) -> torchfits_core::Result<()>;

    /// See [`ShardedStamps::fingerprint`].
    fn fingerprint(&self) -> torchfits_core::Result<u64>;

    /// See [`ShardedStamps::layout`].
    fn layout(&self) -> StampLayout;

    /// See [`ShardedStamps::annotate`].
    fn annotate(&self, stamp: &mut Stamp) -> torchfits_core::Result<()>;
}

impl<I: StreamItems> ShardedStamps for FitsDataset<I>
where
    FitsDataset<I>: Dataset<Stamp>,
{
    fn shards(&self) -> ShardIndex {
        self.items().shards()
    }

    fn prefetch(&self, items: Range<u64>) -> torchfits_core::Result<()> {
        self.items().prefetch(self.reader(), items.start as usize..items.end as usize)
    }

    fn fingerprint(&self) -> torchfits_core::Result<u64> {
        self.items().fingerprint()
    }

    fn layout(&self) -> StampLayout {
        self.items().layout()
    }

    fn annotate(&self, stamp: &mut Stamp) -> torchfits_core::Result<()> {
        self.items().annotate(stamp)
    }
}
