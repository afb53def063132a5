//! Transforms of spectrum batches: the planes of a batch by role, and the transforms that come
//! with torchfits (NaN fill, masking by inverse variance, flux normalisation, resampling to a
//! common wavelength grid).

// Indexing: per-item grids and host index tables sized to the batch they were made for.
#![allow(clippy::indexing_slicing)]

use std::sync::Arc;

use burn::tensor::{Int, Tensor, TensorData};
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

/// Resamples every spectrum onto one wavelength grid by linear interpolation between the two
/// samples around each grid point, on the device (the host only finds, per item, which samples
/// those are). The inverse variance is propagated (`var = (1-t)² var_j + t² var_j+1`); masks
/// take the bits of both samples. Arms are resampled one by one and combined where they
/// overlap: the flux weighted by inverse variance (a plain mean without one), the inverse
/// variances summed, the mask bits those set in every arm. Grid points outside every arm get
/// flux 0 and inverse variance 0 (variance +inf). The items' wavelengths must increase within
/// each arm; after it the batch has one arm, the grid.
#[derive(Debug, Clone)]
pub struct Resample {
    grid: Arc<[f64]>,
}

impl Resample {
    /// Onto `grid` (increasing, in the dataset's wavelength unit).
    pub fn new(grid: impl Into<Arc<[f64]>>) -> Self {
        Self { grid: grid.into() }
    }

    /// Onto `n` points from `start` to `end`, evenly spaced.
    pub fn linear(start: f64, end: f64, n: usize) -> Self {
        let step = if n > 1 { (end - start) / (n - 1) as f64 } else { 0.0 };
        Self::new((0..n).map(|i| start + step * i as f64).collect::<Vec<_>>())
    }

    /// Onto `n` points from `start` to `end`, evenly spaced in log wavelength (constant
    /// velocity steps, as SDSS and DESI redshift fitters use).
    pub fn log_linear(start: f64, end: f64, n: usize) -> Self {
        let (a, b) = (start.ln(), end.ln());
        let step = if n > 1 { (b - a) / (n - 1) as f64 } else { 0.0 };
        Self::new((0..n).map(|i| (a + step * i as f64).exp()).collect::<Vec<_>>())
    }

    /// The grid.
    pub fn grid(&self) -> &[f64] {
        &self.grid
    }
}

/// For each item and arm, per grid point: the left sample (an index along the whole
/// spectrum), the interpolation weight `t` of the right one, and whether the point lies in the
/// arm's range.
struct Stencil {
    left: Vec<i64>,
    t: Vec<f32>,
    inside: Vec<f32>,
}

impl Resample {
    fn stencil(&self, grids: &[Arc<[f64]>], arms: &[usize]) -> Result<Stencil> {
        let m = self.grid.len();
        let n = grids.len() * arms.len() * m;
        let mut s = Stencil { left: vec![0; n], t: vec![0.0; n], inside: vec![0.0; n] };
        for (i, wave) in grids.iter().enumerate() {
            let mut offset = 0;
            for (a, &len) in arms.iter().enumerate() {
                let arm = wave.get(offset..offset + len).unwrap_or(&[]);
                if arm.windows(2).any(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less)) {
                    return Err(Error::new(
                        ErrorKind::Parameter,
                        format!("Resample: the wavelengths of item {i}, arm {a} do not increase"),
                    ));
                }
                let base = (i * arms.len() + a) * m;
                if len >= 2 {
                    for (p, &x) in self.grid.iter().enumerate() {
                        if x < arm[0] || x > arm[len - 1] {
                            continue;
                        }
                        // the last sample at or below x, kept one short of the end
                        let j = arm.partition_point(|&v| v <= x).saturating_sub(1).min(len - 2);
                        let t = (x - arm[j]) / (arm[j + 1] - arm[j]);
                        s.left[base + p] = (offset + j) as i64;
                        s.t[base + p] = t as f32;
                        s.inside[base + p] = 1.0;
                    }
                }
                offset += len;
            }
        }
        Ok(s)
    }
}

impl SpectrumTransform for Resample {
    fn apply(&self, planes: SpectrumPlanes, context: &TransformContext) -> Result<SpectrumPlanes> {
        if planes.host_wavelength.is_empty() {
            return Err(Error::new(ErrorKind::Parameter, "Resample needs the spectra's wavelengths (wavelength())"));
        }
        let [b, c, l] = planes.spectra.dims();
        let (m, arms) = (self.grid.len(), planes.arms.len());
        if l < 2 || m == 0 {
            return Err(Error::new(ErrorKind::Parameter, "Resample needs spectra and a grid of 2 samples or more"));
        }
        let s = self.stencil(&planes.host_wavelength, &planes.arms)?;
        let device = context.device;
        let shape = [b, arms, m];
        let left = upload_int(s.left, shape, device).reshape([b, 1, arms * m]);
        let t = upload(s.t, shape, device).reshape([b, 1, arms * m]);
        let inside = upload(s.inside, shape, device).reshape([b, 1, arms, m]);
        let right = left.clone().add_scalar(1);
        let gather = |x: Tensor<3>, index: &Tensor<3, Int>| {
            let rows = x.dims()[1];
            x.gather(2, index.clone().expand([b, rows, arms * m]))
        };
        let (x0, x1) = (gather(planes.spectra.clone(), &left), gather(planes.spectra.clone(), &right));
        let t = t.expand([b, c, arms * m]);
        let one_minus = t.clone().neg().add_scalar(1.0);
        // per arm, the interpolated values: [b, c, arms, m]
        let mut values = (x0.clone() * one_minus.clone() + x1.clone() * t.clone()).reshape([b, c, arms, m]);
        let weight = planes.weight();
        if let Some((k, role)) = weight {
            let variance = |x: Tensor<3>| match role {
                ChannelRole::Variance => x,
                _ => x.recip(),
            };
            let term =
                |w: Tensor<3>, x: Tensor<3>| (w.clone().square() * variance(x)).mask_fill(w.equal_elem(0.0), 0.0);
            let var = term(one_minus.clone().narrow(1, k, 1), x0.narrow(1, k, 1))
                + term(t.clone().narrow(1, k, 1), x1.narrow(1, k, 1));
            let w = if role == ChannelRole::Variance { var } else { var.recip() };
            values = slice_assign_channel(values, k, w.reshape([b, 1, arms, m]));
        }
        let spectra = combine_arms(values, inside.clone(), weight);
        let masks = planes.masks.map(|f| {
            let rows = f.dims()[1];
            let f0 = f.clone().gather(2, left.clone().expand([b, rows, arms * m]));
            let f1 = f.gather(2, right.clone().expand([b, rows, arms * m]));
            let or = f0.bitwise_or(f1).reshape([b, rows, arms, m]);
            // bits set in every arm that covers the point; none outside every arm
            let covers = inside.clone().expand([b, rows, arms, m]).equal_elem(1.0);
            let all_bits = or.mask_fill(covers.clone().bool_not(), -1);
            let mut and = all_bits.clone().narrow(2, 0, 1);
            for a in 1..arms {
                and = and.bitwise_and(all_bits.clone().narrow(2, a, 1));
            }
            let covered = covers.int().sum_dim(2).greater_elem(0);
            and.mask_fill(covered.bool_not(), 0).reshape([b, rows, m])
        });
        let grid: Vec<f32> = self.grid.iter().map(|&v| v as f32).collect();
        let wavelength = upload(grid, [1, m], device).expand([b, m]);
        Ok(SpectrumPlanes {
            spectra,
            roles: planes.roles,
            masks,
            wavelength: Some(wavelength),
            host_wavelength: vec![self.grid.clone(); b],
            arms: vec![m],
        })
    }
}

/// `values` (`[b, c, arms, m]`) with channel `k` replaced.
fn slice_assign_channel(values: Tensor<4>, k: usize, row: Tensor<4>) -> Tensor<4> {
    let c = values.dims()[1];
    let mut parts = Vec::with_capacity(3);
    if k > 0 {
        parts.push(values.clone().narrow(1, 0, k));
    }
    parts.push(row);
    if k + 1 < c {
        parts.push(values.narrow(1, k + 1, c - k - 1));
    }
    Tensor::cat(parts, 1)
}

/// One spectrum from the arms' resampled ones (`[b, c, arms, m]`, `inside` `[b, 1, arms, m]`):
/// values weighted by inverse variance where there is one (plain means otherwise), inverse
/// variances summed (variances combined alike); 0 (variance +inf) outside every arm.
fn combine_arms(values: Tensor<4>, inside: Tensor<4>, weight: Option<(usize, ChannelRole)>) -> Tensor<3> {
    let [b, c, arms, m] = values.dims();
    let inside_c = inside.clone().expand([b, c, arms, m]);
    let count = inside.clone().sum_dim(2);
    let outside = count.clone().equal_elem(0.0);
    // a value outside its arm is 0 and weighs 0
    let values = values.mask_fill(inside_c.clone().equal_elem(0.0), 0.0);
    let w = match weight {
        Some((k, role)) => {
            let w = values.clone().narrow(1, k, 1);
            let ivar = if role == ChannelRole::Variance { w.recip() } else { w };
            ivar.mask_fill(inside.clone().equal_elem(0.0), 0.0)
        }
        None => inside,
    };
    let total = w.clone().sum_dim(2);
    // where every covering arm has weight 0, a plain mean of the covering arms
    let no_weight = total.clone().equal_elem(0.0);
    let w = w.clone().mask_where(no_weight.clone().expand([b, 1, arms, m]), inside_c.clone().narrow(1, 0, 1));
    let total = total.mask_where(no_weight, count).mask_fill(outside.clone(), 1.0);
    let mut combined = (values.clone() * w.expand([b, c, arms, m])).sum_dim(2) / total.expand([b, c, 1, m]);
    if let Some((k, role)) = weight {
        let ivar = values.narrow(1, k, 1);
        let ivar = if role == ChannelRole::Variance { ivar.recip() } else { ivar };
        let sum = ivar.mask_fill(inside_c.narrow(1, 0, 1).equal_elem(0.0), 0.0).sum_dim(2);
        let row = if role == ChannelRole::Variance { sum.recip() } else { sum };
        combined = slice_assign_channel(combined, k, row);
    }
    let outside = outside.expand([b, c, 1, m]);
    let mut combined = combined.mask_fill(outside.clone(), 0.0);
    if let Some((k, ChannelRole::Variance)) = weight {
        let row = combined.clone().narrow(1, k, 1).mask_fill(outside.narrow(1, 0, 1), f32::INFINITY);
        combined = slice_assign_channel(combined, k, row);
    }
    combined.reshape([b, c, m])
}

fn upload<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &burn::tensor::Device) -> Tensor<D> {
    let data = TensorData::new(values, shape);
    crate::transfers::up(data.bytes().len());
    Tensor::<D>::from_data(data, device)
}

fn upload_int<const D: usize>(values: Vec<i64>, shape: [usize; D], device: &burn::tensor::Device) -> Tensor<D, Int> {
    let data = TensorData::new(values, shape);
    crate::transfers::up(data.bytes().len());
    Tensor::<D, Int>::from_data(data, device)
}
