//! Transforms of spectrum batches: the planes of a batch by role, and the transforms that come
//! with torchfits (NaN fill, masking by inverse variance, flux normalisation, resampling to a
//! common wavelength grid).

// Indexing: per-item grids and host index tables sized to the batch they were made for.
#![allow(clippy::indexing_slicing)]

use std::sync::Arc;

use burn::tensor::{Int, Tensor};
use torchfits_core::{Error, ErrorKind, Result};

use super::{TransformContext, nan_mean_std, nan_median};
use crate::roles::ChannelRole;

/// A spectrum batch's planes as the transforms see them.
#[derive(Debug, Clone)]
pub struct SpectrumPlanes {
    /// `[batch, channels, length]`: flux first, then the other channels that are not masks.
    pub spectra: Tensor<3>,
    /// The role of each channel of `spectra`.
    pub roles: Vec<ChannelRole>,
    /// `[batch, mask rows, length]` integer flags.
    pub masks: Option<Tensor<3, Int>>,
    /// `[batch, length]` the wavelength of each sample.
    pub wavelength: Option<Tensor<2>>,
    /// The same wavelengths on the host, per item (empty where the dataset has none).
    pub host_wavelength: Vec<Arc<[f64]>>,
    /// The samples of each arm, in order along `length`.
    pub arms: Vec<usize>,
}

impl SpectrumPlanes {
    /// The first channel of `role`.
    pub fn channel(&self, role: ChannelRole) -> Option<usize> {
        self.roles.iter().position(|r| *r == role)
    }

    /// The weight channel (inverse variance or variance) and its role.
    pub fn weight(&self) -> Option<(usize, ChannelRole)> {
        self.roles.iter().position(|r| r.is_weight()).map(|k| (k, self.roles[k]))
    }

    /// `[batch, 1, length]` channel `k`.
    pub fn row(&self, k: usize) -> Tensor<3> {
        self.spectra.clone().narrow(1, k, 1)
    }

    /// The planes with channel `k` replaced by `value` (`[batch, 1, length]`).
    pub fn with_row(mut self, k: usize, value: Tensor<3>) -> Self {
        let c = self.spectra.dims()[1];
        let mut parts = Vec::with_capacity(3);
        if k > 0 {
            parts.push(self.spectra.clone().narrow(1, 0, k));
        }
        parts.push(value);
        if k + 1 < c {
            parts.push(self.spectra.clone().narrow(1, k + 1, c - k - 1));
        }
        self.spectra = Tensor::cat(parts, 1);
        self
    }
}

/// A transform of spectrum batches on their device ([`crate::SpectrumBatcher::transform`]).
pub trait SpectrumTransform: Send + Sync {
    /// The transformed planes, or why the batch cannot be transformed.
    fn apply(&self, planes: SpectrumPlanes, context: &TransformContext) -> Result<SpectrumPlanes>;

    /// The transform's name, for logs and `Debug`.
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }
}

/// NaN values of every channel to the value; where the flux was NaN, the inverse variance to 0
/// (the sample carries no information).
#[derive(Debug, Clone, Copy)]
pub struct SpectrumNanFill(pub f32);

impl SpectrumTransform for SpectrumNanFill {
    fn apply(&self, mut planes: SpectrumPlanes, _: &TransformContext) -> Result<SpectrumPlanes> {
        let flux_nan = planes.row(0).is_nan();
        planes.spectra = planes.spectra.clone().mask_fill(planes.spectra.is_nan(), self.0);
        if let Some(k) = planes.channel(ChannelRole::InverseVariance) {
            let ivar = planes.row(k).mask_fill(flux_nan, 0.0);
            planes = planes.with_row(k, ivar);
        }
        Ok(planes)
    }
}

/// Masks the samples without information: where the inverse variance is not positive (or the
/// variance not positive and finite), or any mask bit is set when `use_masks` is on, the flux
/// becomes `fill` and the inverse variance 0 (the variance +inf).
#[derive(Debug, Clone, Copy)]
pub struct MaskByIvar {
    /// The flux of a masked sample.
    pub fill: f32,
    /// Whether a set mask bit masks the sample too.
    pub use_masks: bool,
}

impl Default for MaskByIvar {
    fn default() -> Self {
        Self { fill: 0.0, use_masks: true }
    }
}

impl SpectrumTransform for MaskByIvar {
    fn apply(&self, planes: SpectrumPlanes, _: &TransformContext) -> Result<SpectrumPlanes> {
        let (k, role) = planes.weight().ok_or_else(|| {
            Error::new(ErrorKind::Parameter, "MaskByIvar needs an inverse-variance or variance channel (roles)")
        })?;
        let weight = planes.row(k);
        let mut bad = match role {
            ChannelRole::Variance => weight.clone().greater_elem(0.0).bool_and(weight.clone().is_finite()).bool_not(),
            _ => weight.clone().greater_elem(0.0).bool_not(),
        };
        if self.use_masks
            && let Some(masks) = &planes.masks
        {
            let flagged = masks.clone().not_equal_elem(0).int().sum_dim(1).greater_elem(0);
            bad = bad.bool_or(flagged);
        }
        let flux = planes.row(0).mask_fill(bad.clone(), self.fill);
        let weight = weight.mask_fill(bad, if role == ChannelRole::Variance { f32::INFINITY } else { 0.0 });
        Ok(planes.with_row(0, flux).with_row(k, weight))
    }
}

/// How [`NormalizeFlux`] measures a spectrum's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FluxLevel {
    /// The median of the good samples.
    Median,
    /// The mean of the good samples.
    Mean,
}

/// Divides each spectrum's flux by its level (the median or mean of its samples with a finite
/// flux and a positive weight), scaling the inverse variance by the level squared (the
/// variance by its inverse) so that the weights stay those of the flux. A spectrum whose level
/// is not positive keeps its values.
#[derive(Debug, Clone, Copy)]
pub struct NormalizeFlux {
    /// How the level is measured.
    pub level: FluxLevel,
}

impl NormalizeFlux {
    /// By the median.
    pub fn median() -> Self {
        Self { level: FluxLevel::Median }
    }

    /// By the mean.
    pub fn mean() -> Self {
        Self { level: FluxLevel::Mean }
    }
}

impl SpectrumTransform for NormalizeFlux {
    fn apply(&self, planes: SpectrumPlanes, _: &TransformContext) -> Result<SpectrumPlanes> {
        let flux = planes.row(0);
        let mut good = flux.clone().is_finite();
        let weight = planes.weight();
        if let Some((k, role)) = weight {
            let w = planes.row(k);
            good = good.bool_and(match role {
                ChannelRole::Variance => w.clone().greater_elem(0.0).bool_and(w.is_finite()),
                _ => w.greater_elem(0.0),
            });
        }
        let samples = flux.clone().mask_fill(good.bool_not(), f32::NAN);
        let level = match self.level {
            FluxLevel::Median => nan_median(samples),
            FluxLevel::Mean => nan_mean_std(samples).0,
        };
        // NaN (no good sample) and non-positive levels leave the spectrum as it is
        let level = level.clone().mask_fill(level.greater_elem(0.0).bool_not(), 1.0);
        let l = flux.dims()[2];
        let scale = level.expand([flux.dims()[0], 1, l]);
        let mut planes = planes.with_row(0, flux / scale.clone());
        if let Some((k, role)) = weight {
            let w = planes.row(k);
            let squared = scale.square();
            let w = if role == ChannelRole::Variance { w / squared } else { w * squared };
            planes = planes.with_row(k, w);
        }
        Ok(planes)
    }
}
