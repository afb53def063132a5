//! Coordinate planes of stamps, from their images' WCS, made on the batch's device: on a CubeCL
//! device by the kernel, one launch per batch (per projection, for batches that mix them), the
//! planes written straight into the batch's buffer; on the CPU backend by wcslib.

use burn::tensor::{Device, Tensor};
use torchfits_core::{Result, with_cached_file};

use crate::batch::StampCoordinates;
use crate::cutout::CatalogCutoutDataset;
use crate::stamp::Stamp;
use crate::wcs::{Cutout, DeviceWcs};

/// The WCS of each image of a dataset, for the coordinate planes of its stamps.
#[derive(Debug)]
pub struct CutoutCoordinates {
    images: Vec<DeviceWcs>,
}

impl CutoutCoordinates {
    /// The planes of `dataset`'s stamps (each image's WCS read once, here).
    pub fn new(dataset: &CatalogCutoutDataset) -> Result<CutoutCoordinates> {
        let mut images = Vec::new();
        for path in dataset.image_paths() {
            let hdu = dataset.hdu().clone();
            images.push(DeviceWcs::new(with_cached_file(path, |f| f.wcs(hdu))?));
        }
        Ok(CutoutCoordinates { images })
    }
}

impl StampCoordinates for CutoutCoordinates {
    fn planes(&self, stamps: &[Stamp], device: &Device) -> Result<Tensor<4>> {
        let (h, w) = stamps.first().map_or((1, 1), |s| (s.height, s.width));
        let cutouts: Vec<Cutout> =
            stamps.iter().map(|s| Cutout { image: s.image, x0: s.origin.0, y0: s.origin.1 }).collect();
        crate::wcs::planes(&self.images, &cutouts, w, h, device)
    }
}
