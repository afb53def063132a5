//! The order in which a streamed epoch visits its items: shards (the stamps of one image) in an
//! order drawn for the epoch, each device's share of that sequence, and a bounded shuffle buffer
//! that mixes the items of the shards it holds. Everything is a function of (seed, epoch, share):
//! never of the number of loader workers, and never a list of every item (the index is one
//! number per shard).

use std::ops::Range;

use crate::seeds::splitmix;

/// What the draws of the shard order and of the buffer are salted with, so that the two never
/// repeat one another (or the map-style datasets' draws) for one seed and epoch.
const SHARD_ORDER: u64 = 0x5eed_0f5a_a4d5_0001;
const BUFFER_DRAWS: u64 = 0xb0ff_e400_5eed_0002;

/// Items grouped into shards, numbered shard after shard: shard `s` holds the items
/// `range(s)`. One number per shard, whatever the number of items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardIndex {
    /// Where each shard's items end (the running total of the shard sizes).
    ends: Vec<u64>,
}

impl ShardIndex {
    /// Shards of `sizes` items each, in order.
    pub fn new(sizes: impl IntoIterator<Item = u64>) -> Self {
        let ends = sizes
            .into_iter()
            .scan(0u64, |total, n| {
                *total += n;
                Some(*total)
            })
            .collect();
        ShardIndex { ends }
    }

    /// Number of items.
    pub fn items(&self) -> u64 {
        self.ends.last().copied().unwrap_or(0)
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.ends.len()
    }

    /// The items of shard `s` (empty for a shard that does not exist).
    pub fn range(&self, s: usize) -> Range<u64> {
        let start = match s.checked_sub(1) {
            Some(p) => self.ends.get(p).copied().unwrap_or(0),
            None => 0,
        };
        start..self.ends.get(s).copied().unwrap_or(start)
    }

    /// The shard of item `item`.
    pub fn shard_of(&self, item: u64) -> Option<usize> {
        let s = self.ends.partition_point(|&end| end <= item);
        (s < self.ends.len()).then_some(s)
    }
}

/// One device's items of one epoch, in order: the shards in the epoch's order (drawn from the
/// seed and the epoch), the positions `share` of that sequence of items (a device's share: the
/// shares of all devices cover it once), mixed in a shuffle buffer of `buffer` items. Two
/// consecutive items of the sequence come from one shard (one image read with one prefetch);
/// the buffer mixes items of as many shards as it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochOrder {
    /// The seed of every draw.
    pub seed: u64,
    /// The epoch: another shard order and other buffer draws each epoch.
    pub epoch: u64,
    /// The positions of the epoch's sequence of items that this device reads.
    pub share: Range<u64>,
    /// Items the shuffle buffer holds (1: the sequence as it is).
    pub buffer: usize,
}

impl EpochOrder {
    /// The share of device `rank` of `world` in an epoch of `items` items: positions
    /// `[rank * items / world, (rank + 1) * items / world)`.
    pub fn share_of(rank: usize, world: usize, items: u64) -> Range<u64> {
        let world = world.max(1) as u128;
        let at = |r: usize| (r as u128 * items as u128 / world) as u64;
        at(rank)..at(rank + 1)
    }

    /// The shards in the epoch's order: a permutation of `0..index.shards()`, the same for every
    /// device (each takes its share of the sequence it gives).
    pub fn shard_order(&self, index: &ShardIndex) -> Vec<usize> {
        let mut order: Vec<usize> = (0..index.shards()).collect();
        let mut state = splitmix(self.seed ^ splitmix(self.epoch ^ SHARD_ORDER));
        for i in (1..order.len()).rev() {
            state = splitmix(state);
            order.swap(i, (state % (i as u64 + 1)) as usize);
        }
        order
    }

    /// The pieces of shards that make this device's share, in order: `(shard, items)`.
    pub fn pieces(&self, index: &ShardIndex) -> Vec<(usize, Range<u64>)> {
        let mut out = Vec::new();
        let mut position = 0u64;
        for s in self.shard_order(index) {
            let items = index.range(s);
            let n = items.end - items.start;
            let (from, to) = (self.share.start.max(position), self.share.end.min(position + n));
            if from < to {
                out.push((s, items.start + (from - position)..items.start + (to - position)));
            }
            position += n;
            if position >= self.share.end {
                break;
            }
        }
        out
    }

    /// This device's items, in the order it reads them.
    pub fn items(&self, index: &ShardIndex) -> Shuffled<impl Iterator<Item = u64>> {
        self.shuffle(self.pieces(index).into_iter().flat_map(|(_, items)| items))
    }

    /// `sequence` (this device's share, in sequence order: the items, or what is read of them)
    /// through this epoch's shuffle buffer.
    pub fn shuffle<I: Iterator>(&self, sequence: I) -> Shuffled<I> {
        let state = splitmix(self.seed ^ splitmix(self.epoch ^ splitmix(self.share.start ^ BUFFER_DRAWS)));
        let size = self.buffer.max(1);
        Shuffled { source: sequence, buffer: Vec::with_capacity(size), size, state }
    }
}

/// A sequence mixed through a shuffle buffer: the buffer fills with the first items, then each
/// next item takes the place of one drawn from the buffer, which comes out; at the end the buffer
/// empties in a drawn order.
pub struct Shuffled<I: Iterator> {
    source: I,
    buffer: Vec<I::Item>,
    size: usize,
    state: u64,
}

impl<I: Iterator> Shuffled<I> {
    fn draw(&mut self, n: usize) -> usize {
        self.state = splitmix(self.state);
        (self.state % n as u64) as usize
    }
}

impl<I: Iterator> Iterator for Shuffled<I> {
    type Item = I::Item;

    fn next(&mut self) -> Option<I::Item> {
        while self.buffer.len() < self.size {
            match self.source.next() {
                Some(item) => self.buffer.push(item),
                None => break,
            }
        }
        if self.buffer.is_empty() {
            return None;
        }
        let j = self.draw(self.buffer.len());
        Some(self.buffer.swap_remove(j))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// 37 shards of 0 to 60 items (some empty).
    fn index() -> ShardIndex {
        ShardIndex::new((0..37u64).map(|s| (s * 17 + 5) % 61))
    }

    /// The shares burn-train's `split_dataloader` gives `devices` devices (`slice(start, end)`:
    /// equal steps, the last to the end).
    fn burn_shares(items: u64, devices: u64) -> Vec<Range<u64>> {
        let step = items / devices;
        (0..devices).map(|d| d * step..if d == devices - 1 { items } else { (d + 1) * step }).collect()
    }

    #[test]
    fn every_item_once_per_epoch_for_one_to_eight_devices() {
        let index = index();
        let n = index.items();
        for devices in 1..=8u64 {
            for epoch in 0..3 {
                let mut seen = Vec::new();
                for share in burn_shares(n, devices) {
                    seen.extend(EpochOrder { seed: 9, epoch, share, buffer: 64 }.items(&index));
                }
                seen.sort_unstable();
                assert_eq!(seen, (0..n).collect::<Vec<_>>(), "{devices} devices, epoch {epoch}");
            }
        }
    }

    #[test]
    fn the_order_is_a_function_of_seed_epoch_and_share_only() {
        let index = index();
        let order =
            |seed, epoch, buffer| EpochOrder { seed, epoch, share: 100..700, buffer }.items(&index).collect::<Vec<_>>();
        assert_eq!(order(1, 2, 50), order(1, 2, 50));
        assert_ne!(order(1, 2, 50), order(1, 3, 50), "another epoch, another order");
        assert_ne!(order(1, 2, 50), order(4, 2, 50), "another seed, another order");
        let set = |v: Vec<u64>| v.into_iter().collect::<BTreeSet<_>>();
        assert_eq!(set(order(1, 2, 50)), set(order(1, 2, 1)), "the buffer mixes, it does not choose");
    }

    #[test]
    fn a_device_share_mixes_shards_from_all_over_the_index() {
        // 1000 images of 100 stamps each, in catalog order: a contiguous share would be 1/4 of
        // the images, one region of the sky
        let index = ShardIndex::new(std::iter::repeat_n(100, 1000));
        let share = EpochOrder::share_of(0, 4, index.items());
        let order = EpochOrder { seed: 3, epoch: 0, share, buffer: 1000 };
        let shards: BTreeSet<usize> = order.pieces(&index).iter().map(|(s, _)| *s).collect();
        assert!(shards.iter().any(|&s| s < 250) && shards.iter().any(|&s| s >= 750), "spread over the index");
        // the first 200 items come from many shards, not one after the other
        let first: BTreeSet<usize> = order.items(&index).take(200).filter_map(|i| index.shard_of(i)).collect();
        assert!(first.len() >= 8, "{} shards among the first 200 items", first.len());
    }

    #[test]
    fn the_index_is_one_number_per_shard() {
        // 10^9 items: a device's first items come without a list of every item
        let index = ShardIndex::new(std::iter::repeat_n(10_000, 100_000));
        assert_eq!(index.items(), 1_000_000_000);
        let share = EpochOrder::share_of(3, 8, index.items());
        let first: Vec<u64> =
            EpochOrder { seed: 1, epoch: 5, share: share.clone(), buffer: 4096 }.items(&index).take(1000).collect();
        assert_eq!(first.len(), 1000);
        assert_eq!(index.shard_of(1_000_000_000), None);
        assert_eq!(index.range(2), 20_000..30_000);
    }
}
