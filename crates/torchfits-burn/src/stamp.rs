//! The items the image datasets return.

use std::sync::Arc;

use torchfits_core::PooledBuffer;

use crate::columns::SideColumns;
use crate::roles::ChannelRole;

/// One item of an image dataset: `channels` science planes of `height` x `width` pixels (C
/// order), then `flag_channels` 0/1 flag planes the dataset adds (a cutout's edge flag), each in
/// a buffer taken from the dataset's pool (it returns there when the last clone of the item is
/// dropped, after the batcher has stacked it).
#[derive(Debug, Clone)]
pub struct Stamp {
    /// `[channels, height, width]` science pixels.
    pub pixels: Arc<PooledBuffer<f32>>,
    /// Science planes.
    pub channels: usize,
    /// `[flag_channels, height, width]` flags, 1.0 where a pixel has no value (off its image,
    /// a band that lacks the position), or `None` where every flag is 0: a stamp wholly on its
    /// image carries no plane of zeros (the batcher writes them).
    pub flags: Option<Arc<PooledBuffer<f32>>>,
    /// Flag planes every item of the dataset has (1 for a [`crate::CatalogCutoutDataset`]
    /// stamp's edge, one per band for a [`crate::SurveyCutoutDataset`] stamp, 0 for an
    /// [`crate::ImagingDataset`] item), whether or not this one's are all 0.
    pub flag_channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// The label, where the dataset has one.
    pub label: Option<i64>,
    /// The dataset's index of the image file the stamp comes from (a survey's files are numbered
    /// band after band: its first band that has the position).
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
    /// The science pixels, `[channels, height, width]`.
    pub fn data(&self) -> &[f32] {
        &self.pixels
    }

    /// Flag plane `k` (below `flag_channels`): `None` where it is all 0.
    pub fn flag(&self, k: usize) -> Option<&[f32]> {
        let plane = self.height * self.width;
        self.flags.as_ref().filter(|_| k < self.flag_channels).and_then(|f| f.get(k * plane..(k + 1) * plane))
    }
}
