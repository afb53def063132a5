//! Transforms of batches on their device: a trait for images ([`ImageTransform`]) and one for
//! spectra ([`SpectrumTransform`]), applied by the batchers in the order they were added, each
//! with the batch's epoch and item indices to draw its random choices from.
//!
//! The statistics the astronomy transforms need (medians, sigma-clipped means and spreads) are
//! computed here as tensor operations that ignore NaN: on a CubeCL device (wgpu, CUDA) by
//! bisection on counts, which keeps every value on the device (Burn's sort there goes through
//! the host); on the CPU backend by sorting, which is exact and fast where the data already is.

// Indexing: none on data; the per-item draws are indexed by the batch positions they were made for.
#![allow(clippy::indexing_slicing)]

mod image;
mod spectrum;

use burn::tensor::{Device, Int, Tensor};

use crate::seeds::draw;

pub use image::{
    Asinh, ImagePlanes, ImageTransform, NanFill, Normalize, RandomCrop, RobustScale, SigmaClip, SubtractBackground,
    Symmetries,
};
pub use spectrum::{MaskByIvar, NormalizeFlux, SpectrumNanFill, SpectrumPlanes, SpectrumTransform};

/// What a transform knows of the batch it transforms: its device, the epoch and the dataset
/// index of each item, so that a random choice depends on `(seed, epoch, item)` only and a batch
/// reproduces on any device, in any order, with any batch size.
#[derive(Debug, Clone, Copy)]
pub struct TransformContext<'a> {
    /// The batch's device.
    pub device: &'a Device,
    /// The epoch the batch belongs to ([`crate::Epoch`]).
    pub epoch: u64,
    /// The items' dataset indices, in batch order.
    pub indices: &'a [usize],
}

impl TransformContext<'_> {
    /// One 64-bit draw per item of the batch, from `seed`, the epoch and the item's index.
    pub fn draws(&self, seed: u64) -> Vec<u64> {
        self.indices.iter().map(|&i| draw(seed, self.epoch, i)).collect()
    }
}

/// Bisection steps of the device median: each halves the bracket, and 48 take any f32 range
/// below the spacing of f32 values, so the median found is a sample of the data.
const BISECTION_STEPS: usize = 48;

/// The lower median of each row of `x` (`[a, b, n]`, along the last axis), NaN ignored:
/// `[a, b, 1]`, NaN for a row with no value. The lower median is numpy's median for an odd
/// count and the lower of the two middle values for an even one (PyTorch's convention).
pub(crate) fn nan_median(x: Tensor<3>) -> Tensor<3> {
    let [a, b, n] = x.dims();
    let missing = x.clone().is_nan();
    let count = missing.clone().bool_not().int().sum_dim(2);
    // the rank of the lower median among the row's values
    let rank = (count.clone() - 1).clamp_min(0).div_scalar(2);
    let none = count.equal_elem(0);
    let filled = x.mask_fill(missing, f32::INFINITY);
    let median = if !crate::tensors::on_host(&filled.device()) {
        bisect_rank(filled, rank, [a, b, n])
    } else {
        // the missing values sort last, past every rank looked up
        filled.sort(2).gather(2, rank)
    };
    median.mask_fill(none, f32::NAN)
}

/// The value of rank `rank` (`[a, b, 1]`) in each row of `x` (missing values +inf), by
/// bisection on `count(x <= v)`: it keeps `count(x <= lo) <= rank < count(x <= hi)`, then takes
/// the smallest value above `lo`.
fn bisect_rank(x: Tensor<3>, rank: Tensor<3, Int>, [a, b, n]: [usize; 3]) -> Tensor<3> {
    let needed = (rank + 1).float();
    let count_le = |v: &Tensor<3>| x.clone().lower_equal(v.clone().expand([a, b, n])).float().sum_dim(2);
    let lo0 = x.clone().min_dim(2);
    let finite = x.clone().mask_fill(x.clone().equal_elem(f32::INFINITY), f32::NEG_INFINITY);
    let mut hi = finite.max_dim(2);
    let at_min = count_le(&lo0).greater_equal(needed.clone());
    let mut lo = lo0.clone();
    for _ in 0..BISECTION_STEPS {
        let mid = (lo.clone() + hi.clone()).div_scalar(2.0);
        let enough = count_le(&mid).greater_equal(needed.clone());
        hi = hi.mask_where(enough.clone(), mid.clone());
        lo = mid.mask_where(enough, lo);
    }
    let above = x.clone().greater(lo.expand([a, b, n]));
    let next = x.mask_fill(above.bool_not(), f32::INFINITY).min_dim(2);
    next.mask_where(at_min, lo0)
}

/// The mean and standard deviation (population, numpy's `std`) of each row of `x`, NaN
/// ignored: `[a, b, 1]` each, NaN for a row with no value.
pub(crate) fn nan_mean_std(x: Tensor<3>) -> (Tensor<3>, Tensor<3>) {
    let [a, b, n] = x.dims();
    let missing = x.clone().is_nan();
    let count = missing.clone().bool_not().float().sum_dim(2);
    let zeroed = x.mask_fill(missing.clone(), 0.0);
    let mean = zeroed.clone().sum_dim(2) / count.clone();
    let deviation = (zeroed - mean.clone().expand([a, b, n])).mask_fill(missing, 0.0);
    let std = (deviation.square().sum_dim(2) / count).sqrt();
    (mean, std)
}

/// Sigma clipping as astropy's `sigma_clip` (centre: median, spread: standard deviation):
/// `iterations` rounds of setting to NaN the values of each row farther than `sigma` spreads
/// from its centre; the clipped rows' centre and spread, `[a, b, 1]` each.
pub(crate) fn clipped_stats(x: Tensor<3>, sigma: f32, iterations: usize) -> (Tensor<3>, Tensor<3>) {
    let [a, b, n] = x.dims();
    let mut kept = x;
    for _ in 0..iterations {
        let centre = nan_median(kept.clone());
        let (_, std) = nan_mean_std(kept.clone());
        let far = (kept.clone() - centre.expand([a, b, n])).abs().greater(std.mul_scalar(sigma).expand([a, b, n]));
        kept = kept.mask_fill(far, f32::NAN);
    }
    let centre = nan_median(kept.clone());
    let (_, std) = nan_mean_std(kept);
    (centre, std)
}
