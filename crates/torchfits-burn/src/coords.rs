//! Coordinate planes of stamps, from their images' WCS, made on the batch's device: on a CubeCL
//! device by the kernel, one launch per batch (per projection, for batches that mix them), the
//! planes written straight into the batch's buffer; on the CPU backend by wcslib.

use std::path::Path;

use burn::tensor::{Device, Tensor};
use torchfits_core::{HduSelector, Result, with_cached_file};

use crate::batch::StampCoordinates;
use crate::cutout::CatalogCutoutDataset;
use crate::stamp::Stamp;
use crate::survey::SurveyCutoutDataset;
use crate::wcs::{Cutout, DeviceWcs};

/// The WCS of each image of a dataset, for the coordinate planes of its stamps.
#[derive(Debug)]
pub struct CutoutCoordinates {
    images: Vec<DeviceWcs>,
}

/// A dataset whose stamps are cut from images with a WCS: catalog cutouts and survey stamps.
pub trait StampImages {
    /// The image files, in the numbering of [`Stamp::image`].
    fn stamp_images(&self) -> Vec<&Path>;

    /// The HDU whose WCS places the stamps.
    fn wcs_hdu(&self) -> &HduSelector;
}

impl StampImages for CatalogCutoutDataset {
    fn stamp_images(&self) -> Vec<&Path> {
        self.image_paths().collect()
    }

    fn wcs_hdu(&self) -> &HduSelector {
        self.reader().hdu()
    }
}

/// A survey stamp's coordinates are those of its first band that has the position (the band
/// of its [`Stamp::origin`]), on whose pixel grid every band was resampled.
impl StampImages for SurveyCutoutDataset {
    fn stamp_images(&self) -> Vec<&Path> {
        self.image_paths().collect()
    }

    fn wcs_hdu(&self) -> &HduSelector {
        self.reader().hdu()
    }
}

/// A shared dataset (as the loaders hold it) is its dataset.
impl<D: StampImages> StampImages for std::sync::Arc<D> {
    fn stamp_images(&self) -> Vec<&Path> {
        D::stamp_images(self)
    }

    fn wcs_hdu(&self) -> &HduSelector {
        D::wcs_hdu(self)
    }
}

impl CutoutCoordinates {
    /// The planes of `dataset`'s stamps (each image's WCS read once, here).
    ///
    /// ```
    /// use burn::data::dataset::Dataset;
    /// use std::sync::Arc;
    /// use torchfits_burn::{CatalogCutoutDataset, CutoutCoordinates, StampBatcher};
    ///
    /// # fn main() -> Result<(), torchfits_core::Error> {
    /// let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
    /// let ds = CatalogCutoutDataset::builder(sample, [sample]).catalog_hdu("CATALOG").hdu("SCI").size(8).build()?;
    /// let batcher = StampBatcher::new().coordinates(Arc::new(CutoutCoordinates::new(&ds)?));
    /// let stamp = ds.get(0).expect("a stamp");
    /// let batch = batcher.try_batch(vec![stamp], &burn::tensor::Device::flex())?;
    /// assert_eq!(batch.coordinates.map(|c| c.dims()), Some([1, 2, 8, 8])); // RA and Dec planes
    /// # Ok(())
    /// # }
    /// ```
    pub fn new(dataset: &impl StampImages) -> Result<CutoutCoordinates> {
        let hdu = dataset.wcs_hdu();
        let images = dataset
            .stamp_images()
            .into_iter()
            .map(|path| Ok(DeviceWcs::new(with_cached_file(path, |f| f.wcs(hdu.clone()))?)))
            .collect::<Result<_>>()?;
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
