//! The items the image datasets return.

use std::sync::Arc;

use torchfits_core::PooledBuffer;

use crate::columns::SideColumns;
use crate::roles::ChannelRole;

/// One item of an image dataset: `channels` planes of `height` x `width` pixels (C order), in a
/// buffer taken from the dataset's pool (it returns there when the last clone of the item is
/// dropped, after the batcher has stacked it).
#[derive(Debug, Clone)]
pub struct Stamp {
    /// `[channels, height, width]` pixels: the image channels, then the mask channel where the
    /// dataset adds one (1.0 where the stamp lies outside the image, 0.0 inside).
    pub pixels: Arc<PooledBuffer<f32>>,
    /// Planes (image channels plus the mask channel, if any).
    pub channels: usize,
    /// How many of the last planes are masks the dataset added (1 for a
    /// [`crate::CatalogCutoutDataset`] stamp's edge mask, 0 for an [`crate::ImagingDataset`]
    /// item, whose planes are all the file's): the batcher's stretch leaves them alone.
    pub mask_channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// The label, where the dataset has one.
    pub label: Option<i64>,
    /// The dataset's index of the image file the stamp comes from.
    pub image: usize,
    /// The 0-based pixel (x, y) of the image at the stamp's first pixel (it may lie outside the
    /// image, for a padded stamp): with the image's WCS, the stamp's sky coordinates.
    pub origin: (f64, f64),
    /// The item's index in its dataset.
    pub index: usize,
    /// `[mask_planes, height, width]` integer flags, exact (an [`crate::ImagingDataset`]'s
    /// [`ChannelRole::Mask`] channels), where the dataset has some.
    pub masks: Option<Arc<PooledBuffer<i64>>>,
    /// `[weights, height, width]` weight planes (its [`ChannelRole::InverseVariance`] and
    /// [`ChannelRole::Variance`] channels), where the dataset has some; `weight_roles` says which.
    pub weights: Option<Arc<PooledBuffer<f32>>>,
    /// The role of each weight plane, in order.
    pub weight_roles: Arc<[ChannelRole]>,
    /// The item's row in `side` (a catalog row for a stamp around a catalog position).
    pub row: usize,
    /// The dataset's side columns (targets, features), where it has some: the batch takes row
    /// `row` of each.
    pub side: Option<Arc<SideColumns>>,
}

impl Stamp {
    /// The pixels.
    pub fn data(&self) -> &[f32] {
        &self.pixels
    }
}
