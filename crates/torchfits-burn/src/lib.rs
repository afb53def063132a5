//! # torchfits-burn
//!
//! FITS data into Burn training loops: datasets of stamps around catalog positions
//! ([`CatalogCutoutDataset`]), of images with their mask and weight planes as channels
//! ([`ImagingDataset`]) and of spectra ([`SpectroscopicDataset`]); batchers that stack them into
//! tensors on the loader's device with on-device transforms ([`StampBatcher`],
//! [`SpectrumBatcher`]); reading ahead in a fixed order ([`Prefetch`]); shards for multi-node
//! training ([`shard`]); catalogs from FITS, Parquet and Arrow files ([`Catalog`]); images and
//! table columns straight into tensors ([`tensors`]); and world coordinates on Burn tensors, on
//! their own device ([`wcs`]): pixel to world and back for the celestial projections of wcslib's
//! zenithal, cylindrical, pseudo-cylindrical, conic and polyconic families, with SIP, and whole
//! coordinate planes of cutouts in one launch, through a Burn backend extension whose CubeCL
//! kernels are written once for the wgpu and CUDA runtimes (features `wgpu` and `cuda`; neither
//! is on by default: Burn's CPU backend, burn-flex, always is, where wcslib computes them).
#![deny(missing_docs)]
#![deny(unsafe_code)]
// no panic a file can trigger: each exception is a reviewed `allow` with its reason
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, clippy::string_slice)
)]

mod batch;
mod catalog;
mod columns;
mod coords;
mod cutout;
mod epochs;
mod failures;
mod fingerprint;
mod groups;
mod imaging;
mod item;
mod kernels;
mod plan;
mod planes;
mod prefetch;
mod reading;
mod roles;
mod seeds;
mod spectra;
mod stamp;
pub mod stream;
mod subset;
mod survey;
pub mod tensors;
pub mod transfers;
pub mod transforms;
pub mod wcs;

pub use batch::{StampBatch, StampBatcher, StampCoordinates};
/// The Burn these types are built on (its `Device` and `Tensor` are this crate's).
pub use burn;
pub use catalog::Catalog;
pub use columns::{SideBatch, SideColumns, SideTensor, SideValues};
pub use coords::{CutoutCoordinates, StampImages};
pub use cutout::{CatalogCutoutDataset, CatalogCutouts, CutoutBuilder, CutoutSpec, StampSpec};
pub use epochs::{Epoch, EpochLoader};
pub use failures::{FailureCause, FailureReport, Failures, FileFailures, OnError, REPLACEMENT_TRIES};
pub use groups::GroupBy;
pub use imaging::{Crop, ImageFiles, ImagingBuilder, ImagingDataset, ImagingSpec};
pub use plan::{Overlap, Placement, PlanItem, SurveyPlan, SurveyPlanner};
pub use prefetch::Prefetch;
pub use reading::{DatasetBuilder, FitsDataset, Items, ItemsSpec, ReadOptions, Reader, Selection};
pub use roles::{Channel, ChannelRole};
pub use spectra::{
    Arm, Rebin, Resample, Spectra, SpectraBuilder, SpectraSpec, SpectroscopicDataset, Spectrum, SpectrumBatch,
    SpectrumBatcher, Wavelength, WavelengthFrame,
};
pub use stamp::Stamp;
pub use subset::{
    EpochShard, ShardExt, permutation, shard, shard_indices, split, split_by_group, split_dataset_by_group,
};
pub use survey::{SurveyCutoutBuilder, SurveyCutoutDataset, SurveyCutouts, SurveySpec};
pub use transfers::Transfers;
