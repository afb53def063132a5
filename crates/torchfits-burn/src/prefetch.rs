//! Reading ahead on threads of our own, in a fixed order.

// Indexing: the queue index is taken modulo the number of queues (at least one).
#![allow(clippy::indexing_slicing)]

use std::sync::Arc;
use std::thread::JoinHandle;

use burn::data::dataset::{Dataset, DatasetError};
use crossbeam_channel::{Receiver, bounded};

/// Items of a dataset in the order `order`, read ahead by `threads` threads into bounded queues
/// (`depth` items each): thread `t` reads positions `t, t + threads, ...` and the iterator takes
/// them back in turn, so the order is `order`'s whatever the threads' timing (burn's own loader
/// delivers batches in the order its workers finish them). Dropping the iterator stops the
/// threads.
///
/// When it helps: a training loop of its own (not burn's `DataLoader`) that must overlap reading
/// with compute, or that needs a deterministic order with several reading threads; or to read
/// ahead across many small files (each thread keeps its own open files). With burn's
/// `DataLoader`, its `num_workers` already reads ahead (each worker builds whole batches); the
/// two are not stacked.
///
/// ```no_run
/// use std::sync::Arc;
/// use torchfits_burn::{CatalogCutoutDataset, Prefetch, permutation};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let ds = Arc::new(CatalogCutoutDataset::builder("cat.fits", ["a.fits"]).size(32).build()?);
/// let order = permutation(ds.len(), 7);
/// for (index, item) in Prefetch::new(ds, order, 2, 64) {
///     let stamp = item?; // the item at dataset index `index`
/// }
/// # Ok(())
/// # }
/// ```
pub struct Prefetch<I> {
    queues: Vec<Receiver<(usize, Result<I, DatasetError>)>>,
    threads: Vec<JoinHandle<()>>,
    next: usize,
    len: usize,
}

impl<I: Send + 'static> Prefetch<I> {
    /// Starts `threads` threads (at least 1) reading `dataset`'s items `order` ahead, at most
    /// `depth` items (at least 1) queued per thread.
    pub fn new<D: Dataset<I> + 'static>(dataset: Arc<D>, order: Vec<usize>, threads: usize, depth: usize) -> Self {
        let threads = threads.max(1).min(order.len().max(1));
        let order = Arc::new(order);
        let mut queues = Vec::with_capacity(threads);
        let mut handles = Vec::with_capacity(threads);
        for t in 0..threads {
            let (tx, rx) = bounded(depth.max(1));
            let (ds, order) = (dataset.clone(), order.clone());
            handles.push(std::thread::spawn(move || {
                for &index in order.iter().skip(t).step_by(threads) {
                    let item = if index < ds.len() {
                        ds.get(index)
                    } else {
                        Err(DatasetError::new(std::io::Error::other(format!(
                            "index {index} beyond the dataset's {} items",
                            ds.len()
                        ))))
                    };
                    if tx.send((index, item)).is_err() {
                        // the iterator was dropped
                        return;
                    }
                }
            }));
            queues.push(rx);
        }
        Prefetch { queues, threads: handles, next: 0, len: order.len() }
    }
}

impl<I> Iterator for Prefetch<I> {
    /// The dataset index and the item (or the error reading it).
    type Item = (usize, Result<I, DatasetError>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.next >= self.len {
            return None;
        }
        let queue = &self.queues[self.next % self.queues.len()];
        self.next += 1;
        queue.recv().ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.len - self.next;
        (left, Some(left))
    }
}

impl<I> Drop for Prefetch<I> {
    fn drop(&mut self) {
        // closing the queues ends the threads at their next send
        self.queues.clear();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl<I> std::fmt::Debug for Prefetch<I> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefetch")
            .field("threads", &self.threads.len())
            .field("next", &self.next)
            .field("len", &self.len)
            .finish()
    }
}
