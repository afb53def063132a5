//! Coordinate planes of stamps, from their images' WCS: on a GPU through the kernel
//! ([`crate::wcs::DeviceWcs::coordinate_grid`], one launch per image in a batch), or on the CPU
//! through wcslib.

// Indexing: stamp indices come from the batch's own list; world coordinates from the
// transform are sized to its `2 * points` input.
#![allow(clippy::indexing_slicing)]

use torchfits_core::{Result, Wcs, with_cached_file};

use crate::batch::StampCoordinates;
use crate::cutout::CatalogCutoutDataset;
use crate::stamp::Stamp;
use crate::wcs::{DeviceWcs, GpuDevice};

/// The WCS of each image of a dataset, where the coordinate planes are computed.
#[derive(Debug)]
pub struct CutoutCoordinates {
    images: Vec<Where>,
}

#[derive(Debug)]
enum Where {
    Gpu(Box<DeviceWcs>),
    Cpu(Box<Wcs>),
}

impl CutoutCoordinates {
    /// The planes of `dataset`'s stamps: through the kernel on `device` (`None`: wcslib on the
    /// CPU, every core).
    pub fn new(dataset: &CatalogCutoutDataset, device: Option<GpuDevice>) -> Result<CutoutCoordinates> {
        let mut images = Vec::new();
        for path in dataset.image_paths() {
            let hdu = dataset.hdu().clone();
            let wcs = with_cached_file(path, |f| f.wcs(hdu))?;
            images.push(match device {
                Some(d) => Where::Gpu(Box::new(DeviceWcs::new(wcs, d)?)),
                None => Where::Cpu(Box::new(wcs)),
            });
        }
        Ok(CutoutCoordinates { images })
    }
}

impl StampCoordinates for CutoutCoordinates {
    fn planes(&self, stamps: &[Stamp], out: &mut Vec<f32>) -> Result<()> {
        let Some(first) = stamps.first() else { return Ok(()) };
        let (h, w) = (first.height, first.width);
        let plane = h * w;
        let base = out.len();
        out.resize(base + stamps.len() * 2 * plane, f32::NAN);
        // one call per image: the stamps of that image, in batch order
        let mut order: Vec<usize> = (0..stamps.len()).collect();
        order.sort_by_key(|&i| stamps[i].image);
        for group in order.chunk_by(|&a, &b| stamps[a].image == stamps[b].image) {
            let image = stamps[group[0]].image;
            let Some(source) = self.images.get(image) else {
                return Err(torchfits_core::Error::new(
                    torchfits_core::ErrorKind::Parameter,
                    format!("stamp of image {image}, which the coordinates do not have"),
                ));
            };
            let origins: Vec<(f64, f64)> = group.iter().map(|&i| stamps[i].origin).collect();
            let planes = match source {
                Where::Gpu(d) => d.coordinate_grid(&origins, w, h)?,
                Where::Cpu(wcs) => {
                    let pix: Vec<f64> = origins
                        .iter()
                        .flat_map(|&(x0, y0)| {
                            (0..h).flat_map(move |r| (0..w).flat_map(move |q| [x0 + q as f64, y0 + r as f64]))
                        })
                        .collect();
                    let mut world = vec![0.0; pix.len()];
                    wcs.pixel_to_world(&pix, &mut world)?;
                    let mut planes = vec![0f32; origins.len() * 2 * plane];
                    for (c, chunk) in planes.chunks_exact_mut(2 * plane).enumerate() {
                        let (lng, lat) = chunk.split_at_mut(plane);
                        for r in 0..plane {
                            lng[r] = world[2 * (c * plane + r)] as f32;
                            lat[r] = world[2 * (c * plane + r) + 1] as f32;
                        }
                    }
                    planes
                }
            };
            for (j, &i) in group.iter().enumerate() {
                let at = base + i * 2 * plane;
                out[at..at + 2 * plane].copy_from_slice(&planes[j * 2 * plane..(j + 1) * 2 * plane]);
            }
        }
        Ok(())
    }
}
