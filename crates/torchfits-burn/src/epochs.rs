//! Epochs that advance themselves: a loader that starts a new epoch on each `iter()`.
//!
//! The random crops, symmetries, substitutions and shard orders of this crate are drawn from a
//! seed and an [`Epoch`] handle. A training loop that owns its epochs (burn-train's Learner calls
//! `iter()` on its training loader once per epoch) never sets that handle: [`EpochLoader`] does,
//! on each `iter()`, so the same code gives new augmentations every epoch, and the same ones on
//! every run with the same seed, under the Learner as under a hand-written loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::data::dataloader::{DataLoader, DataLoaderIterator};
use burn::tensor::Device;

/// The epoch a dataset's or a batcher's random draws (crops, symmetries, substitutions) are made
/// for: a shared handle, which an [`EpochLoader`] advances on each `iter()` (or a hand-written
/// loop sets).
#[derive(Debug, Clone, Default)]
pub struct Epoch(Arc<AtomicU64>);

impl Epoch {
    /// Sets the epoch.
    pub fn set(&self, epoch: u64) {
        self.0.store(epoch, Ordering::Relaxed);
    }

    /// The epoch.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A loader that sets its [`Epoch`] handles to `start + n` before its `n`-th `iter()` (n from 0),
/// then iterates the loader it wraps.
///
/// Its copies for other devices and its slices (burn-train makes them for multi-device training)
/// count their own iterations from the same start, so every copy's `n`-th epoch is the same
/// epoch: the handles are set to one value however many copies iterate.
///
/// ```no_run
/// use std::sync::Arc;
/// use burn::data::dataloader::DataLoaderBuilder;
/// use torchfits_burn::transforms::Symmetries;
/// use torchfits_burn::{CatalogCutoutDataset, EpochLoader, StampBatcher};
///
/// # fn main() -> Result<(), torchfits_core::Error> {
/// let dataset = CatalogCutoutDataset::builder("catalog.fits", ["field.fits"]).build()?;
/// let batcher = StampBatcher::new().transform(Symmetries(7));
/// let epochs = [batcher.epoch()];
/// let loader = DataLoaderBuilder::new(batcher).batch_size(64).shuffle(7).build(dataset);
/// let loader = EpochLoader::new(loader, &epochs); // hand this to the Learner
/// # Ok(())
/// # }
/// ```
pub struct EpochLoader<O> {
    inner: Arc<dyn DataLoader<O>>,
    epochs: Vec<Epoch>,
    start: u64,
    iterations: AtomicU64,
}

impl<O: Send + 'static> EpochLoader<O> {
    /// `inner`, advancing `epochs` from epoch 0: a loader as burn's builder returns one (and as
    /// burn-train's Learner takes it).
    // returns the trait object, not `Self`: what burn's builder returns and the Learner takes
    #[allow(clippy::new_ret_no_self)]
    pub fn new(inner: Arc<dyn DataLoader<O>>, epochs: &[Epoch]) -> Arc<dyn DataLoader<O>> {
        Self::starting_at(inner, epochs, 0)
    }

    /// `inner`, advancing `epochs` from epoch `start` (a run resumed from a checkpoint of epoch
    /// `start`).
    pub fn starting_at(inner: Arc<dyn DataLoader<O>>, epochs: &[Epoch], start: u64) -> Arc<dyn DataLoader<O>> {
        Arc::new(EpochLoader { inner, epochs: epochs.to_vec(), start, iterations: AtomicU64::new(0) })
    }

    fn with_inner(&self, inner: Arc<dyn DataLoader<O>>) -> Arc<dyn DataLoader<O>> {
        Arc::new(EpochLoader {
            inner,
            epochs: self.epochs.clone(),
            start: self.start,
            iterations: AtomicU64::new(self.iterations.load(Ordering::Relaxed)),
        })
    }
}

impl<O: Send + 'static> DataLoader<O> for EpochLoader<O> {
    fn iter<'a>(&'a self) -> Box<dyn DataLoaderIterator<O> + 'a> {
        let n = self.iterations.fetch_add(1, Ordering::Relaxed);
        let epoch = self.start + n;
        for handle in &self.epochs {
            handle.set(epoch);
        }
        tracing::debug!(epoch, "epoch started");
        self.inner.iter()
    }

    fn num_items(&self) -> usize {
        self.inner.num_items()
    }

    fn to_device(&self, device: &Device) -> Arc<dyn DataLoader<O>> {
        self.with_inner(self.inner.to_device(device))
    }

    fn slice(&self, start: usize, end: usize) -> Arc<dyn DataLoader<O>> {
        self.with_inner(self.inner.slice(start, end))
    }
}
