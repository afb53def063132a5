//! Splits and shards of a dataset (as burn's `SelectionDataset`s).

// Indexing: the permutation is split at a count checked against its length.
#![allow(clippy::indexing_slicing)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, PoisonError};

use burn::data::dataset::transform::SelectionDataset;
use burn::data::dataset::{Dataset, DatasetError};
use torchfits_core::{Error, ErrorKind};

use crate::epochs::Epoch;
use crate::seeds::splitmix;

/// A permutation of `0..n` drawn from `seed` (Fisher-Yates over splitmix64): the same on every
/// machine and every run.
pub fn permutation(n: usize, seed: u64) -> Vec<usize> {
    let mut p: Vec<usize> = (0..n).collect();
    let mut state = seed;
    for i in (1..n).rev() {
        state = splitmix(state);
        let j = (state % (i as u64 + 1)) as usize;
        p.swap(i, j);
    }
    p
}

/// Splits `0..n` at random (from `seed`) into a first part of `round(n * fraction)` indices and
/// the rest.
pub fn split(n: usize, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let p = permutation(n, seed);
    let k = ((n as f64 * fraction).round() as usize).min(n);
    (p[..k].to_vec(), p[k..].to_vec())
}

/// Splits items `0..groups.len()` in two by group (item `i` belongs to `groups[i]`: its image,
/// field, tile or any column's value), every group wholly on one side, so that the two sides share
/// no source. The distinct groups are shuffled from `seed` and taken in that order until the
/// first side holds at least `round(n * fraction)` items (so it may hold a group's worth more);
/// the same groups and seed give the same split on every machine.
///
/// ```
/// use torchfits_burn::split_by_group;
///
/// let images = [0, 0, 1, 1, 1, 2, 3, 3]; // the image each stamp comes from
/// let (train, valid) = split_by_group(&images, 0.75, 7);
/// assert_eq!(train.len() + valid.len(), 8);
/// assert!(train.iter().all(|&i| valid.iter().all(|&j| images[i] != images[j])));
/// ```
pub fn split_by_group<G: Ord>(groups: &[G], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut sizes: BTreeMap<&G, usize> = BTreeMap::new();
    for g in groups {
        *sizes.entry(g).or_default() += 1;
    }
    let keys: Vec<&G> = sizes.keys().copied().collect();
    let target = ((groups.len() as f64 * fraction.clamp(0.0, 1.0)).round() as usize).min(groups.len());
    let mut first: BTreeSet<&G> = BTreeSet::new();
    let mut count = 0;
    for k in permutation(keys.len(), seed) {
        if count >= target {
            break;
        }
        first.insert(keys[k]);
        count += sizes[keys[k]];
    }
    (0..groups.len()).partition(|&i| first.contains(&groups[i]))
}

/// [`split_by_group`] as two of burn's `SelectionDataset`s over one shared dataset (burn's
/// contract: `get` past the end panics); an error if `groups` has not one entry per item.
pub fn split_dataset_by_group<D, I, G>(
    dataset: Arc<D>,
    groups: &[G],
    fraction: f64,
    seed: u64,
) -> torchfits_core::Result<(SelectionDataset<D, I>, SelectionDataset<D, I>)>
where
    D: Dataset<I>,
    I: Clone + Send + Sync,
    G: Ord,
{
    if groups.len() != dataset.len() {
        return Err(Error::new(
            ErrorKind::Parameter,
            format!("{} group keys for a dataset of {} items", groups.len(), dataset.len()),
        ));
    }
    let (first, second) = split_by_group(groups, fraction, seed);
    // every index is below groups.len() == dataset.len()
    Ok((
        SelectionDataset::from_indices_unchecked(dataset.clone(), first),
        SelectionDataset::from_indices_unchecked(dataset, second),
    ))
}

/// Rank `rank`'s shard of a dataset of `n` items among `world_size` ranks, for `epoch`: the
/// dataset is shuffled from `seed` and the epoch (every rank draws the same permutation), and
/// rank r takes positions r, r + world_size, ... The shards of one epoch are disjoint and
/// together hold every item exactly once (they differ in length by at most one item; a loop that
/// needs equal steps per rank drops or repeats the last one itself).
pub fn shard_indices(n: usize, rank: usize, world_size: usize, seed: u64, epoch: u64) -> Vec<usize> {
    if world_size == 0 || rank >= world_size {
        return Vec::new();
    }
    let p = permutation(n, splitmix(seed) ^ splitmix(epoch.wrapping_add(0x5eed)));
    p.into_iter().skip(rank).step_by(world_size).collect()
}

/// Rank `rank`'s shard of `dataset` for `epoch` (see [`shard_indices`]), as one of burn's
/// `SelectionDataset`s.
pub fn shard<I, D>(dataset: Arc<D>, rank: usize, world_size: usize, seed: u64, epoch: u64) -> SelectionDataset<D, I>
where
    D: Dataset<I>,
    I: Clone + Send + Sync,
{
    let n = dataset.len();
    // every index is below n
    SelectionDataset::from_indices_unchecked(dataset, shard_indices(n, rank, world_size, seed, epoch))
}

/// Rank `rank`'s shard of a shared dataset, drawn again for each epoch of an [`Epoch`] handle
/// (see [`shard_indices`]): advanced by an [`crate::EpochLoader`], every rank reads a new,
/// disjoint share of the dataset each epoch, with no call from the training loop. Its length is
/// the same every epoch.
#[derive(Debug)]
pub struct EpochShard<D> {
    inner: Arc<D>,
    rank: usize,
    world_size: usize,
    seed: u64,
    epoch: Epoch,
    /// the epoch the indices were drawn for, and them
    drawn: Mutex<Option<(u64, Arc<Vec<usize>>)>>,
}

impl<D> EpochShard<D> {
    /// Rank `rank`'s shard of `inner` among `world_size` ranks, for the epochs of `epoch`.
    pub fn new(inner: Arc<D>, rank: usize, world_size: usize, seed: u64, epoch: Epoch) -> Self {
        EpochShard { inner, rank, world_size, seed, epoch, drawn: Mutex::new(None) }
    }

    /// The handle on the epoch the shard is drawn for.
    pub fn epoch(&self) -> Epoch {
        self.epoch.clone()
    }

    /// The inner dataset's indices of this rank's items in the current epoch.
    pub fn indices<I>(&self) -> Arc<Vec<usize>>
    where
        D: Dataset<I>,
    {
        let epoch = self.epoch.get();
        // a poisoned lock only means another thread panicked mid-draw: the draw is redone below
        let mut drawn = self.drawn.lock().unwrap_or_else(PoisonError::into_inner);
        match &*drawn {
            Some((e, indices)) if *e == epoch => indices.clone(),
            _ => {
                let n = self.inner.len();
                let indices = Arc::new(shard_indices(n, self.rank, self.world_size, self.seed, epoch));
                *drawn = Some((epoch, indices.clone()));
                indices
            }
        }
    }
}

impl<I, D: Dataset<I>> Dataset<I> for EpochShard<D> {
    /// Panics for `index >= len()`, as burn's datasets do.
    fn get(&self, index: usize) -> Result<I, DatasetError> {
        let indices = self.indices();
        assert!(index < indices.len(), "Index out of bounds for dataset: {index} >= {}", indices.len());
        self.inner.get(indices[index])
    }

    fn len(&self) -> usize {
        let n = self.inner.len();
        if self.world_size == 0 || self.rank >= self.world_size {
            return 0;
        }
        n / self.world_size + usize::from(self.rank < n % self.world_size)
    }
}

/// `.shard(..)` on a shared dataset.
pub trait ShardExt<I: Clone + Send + Sync>: Dataset<I> + Sized {
    /// Rank `rank`'s shard of this dataset for `epoch` (see [`shard_indices`]).
    ///
    /// ```no_run
    /// use std::sync::Arc;
    /// use torchfits_burn::{CatalogCutoutDataset, ShardExt};
    ///
    /// # fn main() -> Result<(), torchfits_core::Error> {
    /// let (rank, world_size, seed, epoch) = (1, 4, 7, 0);
    /// let ds = Arc::new(CatalogCutoutDataset::builder("cat.fits", ["a.fits"]).build()?);
    /// let mine = ds.shard(rank, world_size, seed, epoch); // build this rank's loader on it
    /// # Ok(())
    /// # }
    /// ```
    fn shard(self: Arc<Self>, rank: usize, world_size: usize, seed: u64, epoch: u64) -> SelectionDataset<Self, I> {
        shard(self, rank, world_size, seed, epoch)
    }

    /// Rank `rank`'s shard of this dataset, drawn again each epoch of `epoch` (see
    /// [`EpochShard`]).
    fn shard_each_epoch(self: Arc<Self>, rank: usize, world_size: usize, seed: u64, epoch: Epoch) -> EpochShard<Self> {
        EpochShard::new(self, rank, world_size, seed, epoch)
    }
}

impl<I: Clone + Send + Sync, D: Dataset<I>> ShardExt<I> for D {}
