//! What a dataset returns for an item it cannot read.

use burn::data::dataset::DatasetError;

/// The error for item `index`, which could not be read; also a debug event naming the item and
/// the cause (the file and HDU), for loaders that count or drop failed items.
pub(crate) fn failed(index: usize, e: torchfits_core::Error) -> DatasetError {
    tracing::debug!(index, error = %e, "a dataset item could not be read");
    DatasetError::new(e)
}
