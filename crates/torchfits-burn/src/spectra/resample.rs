//! Spectra onto one wavelength grid, each as the dataset reads it, so that spectra of several
//! instruments (other lengths, arms, steps) stack into one batch.

// Indexing: sample indices come from searches in the arm's own wavelengths, grid points from
// the grid's; every buffer is sized rows x length of what it holds.
#![allow(clippy::indexing_slicing)]

use std::sync::Arc;

use torchfits_core::{Error, ErrorKind, Result};

use crate::roles::ChannelRole;

/// How a spectrum's samples become the grid's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rebin {
    /// Each grid point is the mean flux density over its bin (from half-way to the point before
    /// to half-way to the one after), the samples weighted by how much of the bin they cover:
    /// the flux in any range of whole bins is kept (as SpectRes does).
    #[default]
    FluxConserving,
    /// Linear interpolation between the two samples around each grid point.
    Linear,
}

/// A wavelength grid (vacuum Ångström, as the dataset gives wavelengths) that a
/// [`crate::SpectroscopicDataset`] resamples every spectrum onto when it reads it
/// ([`crate::SpectraBuilder::resample`]). Inverse variances (or variances) are propagated as the
/// variance of the weighted sum; a mask sample has the bits of every sample it is made of. The
/// arms of a spectrum are resampled one by one and combined where they overlap: the flux
/// weighted by inverse variance (a plain mean without one), the inverse variances summed, the
/// mask bits those set in every arm. A grid point outside every arm (a bin not wholly inside
/// one, flux-conserving) has flux 0 and inverse variance 0.
#[derive(Debug, Clone)]
pub struct Resample {
    grid: Arc<[f64]>,
    method: Rebin,
}

impl Resample {
    /// Onto `grid` (increasing), flux-conserving.
    pub fn new(grid: impl Into<Arc<[f64]>>) -> Self {
        Self { grid: grid.into(), method: Rebin::FluxConserving }
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

    /// How samples become grid points (default [`Rebin::FluxConserving`]).
    pub fn method(mut self, method: Rebin) -> Self {
        self.method = method;
        self
    }

    /// The grid.
    pub fn grid(&self) -> &Arc<[f64]> {
        &self.grid
    }

    /// An error unless the grid has 2 points or more and increases.
    pub(crate) fn check(&self) -> Result<()> {
        let increasing = self.grid.windows(2).all(|w| w[0] < w[1]);
        if self.grid.len() < 2 || !increasing || self.grid.iter().any(|x| !x.is_finite()) {
            return Err(Error::new(ErrorKind::Parameter, "a resampling grid has 2 finite points or more, increasing"));
        }
        Ok(())
    }
}

/// One spectrum as read: `[rows, length]` values with their roles, `[mask rows, length]` masks,
/// the wavelength of each sample and the samples of each arm.
pub(crate) struct Samples<'a> {
    pub values: &'a [f32],
    pub roles: &'a [ChannelRole],
    pub masks: Option<&'a [i64]>,
    pub wavelength: &'a [f64],
    pub arms: &'a [usize],
}

/// What a grid point takes from one arm: `(sample, weight)` pairs, the weights summing to 1.
type Stencil = Vec<Vec<(usize, f64)>>;

impl Resample {
    /// `from` onto the grid: `[rows, m]` values into `values` and `[mask rows, m]` into `masks`.
    pub(crate) fn apply(&self, from: &Samples<'_>, values: &mut [f32], mut masks: Option<&mut [i64]>) -> Result<()> {
        let m = self.grid.len();
        let length = from.wavelength.len();
        let rows = from.roles.len();
        let weight = from.roles.iter().position(|r| r.is_weight());
        let mask_rows = from.masks.map_or(0, |k| k.len() / length.max(1));
        // per grid point, over the arms that cover it: the weighted and plain sums of each row,
        // the arms' inverse variances summed, how many arms, and the bits every arm sets
        let mut weighted = vec![0f64; rows * m];
        let mut plain = vec![0f64; rows * m];
        let mut ivar_sum = vec![0f64; m];
        let mut arms_at = vec![0u32; m];
        let mut bits = vec![-1i64; mask_rows * m];
        let mut offset = 0;
        for (a, &len) in from.arms.iter().enumerate() {
            let wave = from.wavelength.get(offset..offset + len).unwrap_or_default();
            if wave.windows(2).any(|w| w[0].partial_cmp(&w[1]) != Some(std::cmp::Ordering::Less)) {
                return Err(Error::new(ErrorKind::Parameter, format!("the wavelengths of arm {a} do not increase")));
            }
            let stencil = match self.method {
                Rebin::Linear => linear_stencil(&self.grid, wave),
                Rebin::FluxConserving => flux_stencil(&self.grid, wave),
            };
            for (p, taps) in stencil.iter().enumerate().filter(|(_, t)| !t.is_empty()) {
                let at = |r: usize, j: usize| f64::from(from.values[r * length + offset + j]);
                let ivar = match weight {
                    Some(k) => arm_ivar(taps, |j| at(k, j), from.roles[k]),
                    None => 1.0,
                };
                for r in 0..rows {
                    let v: f64 = taps.iter().map(|&(j, w)| w * at(r, j)).sum();
                    // the weight row itself is combined as inverse variances, below
                    weighted[r * m + p] += ivar * v;
                    plain[r * m + p] += v;
                }
                ivar_sum[p] += ivar;
                arms_at[p] += 1;
                if let Some(k) = from.masks {
                    for r in 0..mask_rows {
                        let arm_bits = taps.iter().fold(0, |b, &(j, _)| b | k[r * length + offset + j]);
                        bits[r * m + p] &= arm_bits;
                    }
                }
            }
            offset += len;
        }
        for p in 0..m {
            for r in 0..rows {
                values[r * m + p] = match (arms_at[p], weight) {
                    (0, _) => 0.0,
                    (_, Some(k)) if r == k => weight_value(ivar_sum[p], from.roles[k]),
                    (_, Some(_)) if ivar_sum[p] > 0.0 => (weighted[r * m + p] / ivar_sum[p]) as f32,
                    (n, _) => (plain[r * m + p] / f64::from(n)) as f32,
                };
            }
            if let Some(out) = masks.as_deref_mut() {
                for r in 0..mask_rows {
                    out[r * m + p] = if arms_at[p] == 0 { 0 } else { bits[r * m + p] };
                }
            }
        }
        Ok(())
    }
}

/// An arm's inverse variance at a grid point: that of the weighted sum of its samples (0, no
/// information, where one of them has none).
fn arm_ivar(taps: &[(usize, f64)], weight: impl Fn(usize) -> f64, role: ChannelRole) -> f64 {
    let mut variance = 0.0;
    for &(j, w) in taps {
        let x = weight(j);
        let var = match role {
            ChannelRole::Variance => x,
            _ if x > 0.0 => 1.0 / x,
            _ => return 0.0,
        };
        if !var.is_finite() {
            return 0.0;
        }
        variance += w * w * var;
    }
    if variance > 0.0 { 1.0 / variance } else { 0.0 }
}

/// The weight row's value from the summed inverse variance, in the row's own role.
fn weight_value(ivar: f64, role: ChannelRole) -> f32 {
    match role {
        ChannelRole::Variance if ivar > 0.0 => (1.0 / ivar) as f32,
        ChannelRole::Variance => f32::INFINITY,
        _ => ivar as f32,
    }
}

/// Linear interpolation: each grid point inside the arm from the two samples around it.
fn linear_stencil(grid: &[f64], wave: &[f64]) -> Stencil {
    let n = wave.len();
    grid.iter()
        .map(|&x| {
            if n < 2 || x < wave[0] || x > wave[n - 1] {
                return Vec::new();
            }
            let j = wave.partition_point(|&v| v <= x).saturating_sub(1).min(n - 2);
            let t = (x - wave[j]) / (wave[j + 1] - wave[j]);
            [(j, 1.0 - t), (j + 1, t)].into_iter().filter(|&(_, w)| w > 0.0).collect()
        })
        .collect()
}

/// The edges of the bins around points `x` (half-way between neighbours; the outer ones as far
/// out as the inner ones).
fn edges(x: &[f64]) -> Vec<f64> {
    let n = x.len();
    let mut e = Vec::with_capacity(n + 1);
    e.push(x[0] - (x[1] - x[0]) / 2.0);
    e.extend(x.windows(2).map(|w| (w[0] + w[1]) / 2.0));
    e.push(x[n - 1] + (x[n - 1] - x[n - 2]) / 2.0);
    e
}

/// Flux-conserving: each grid bin wholly inside the arm's bins from the samples whose bins it
/// overlaps, weighted by the overlap.
fn flux_stencil(grid: &[f64], wave: &[f64]) -> Stencil {
    if wave.len() < 2 {
        return vec![Vec::new(); grid.len()];
    }
    let (out, inp) = (edges(grid), edges(wave));
    let (first, last) = (inp[0], inp[inp.len() - 1]);
    (0..grid.len())
        .map(|p| {
            let (a, b) = (out[p], out[p + 1]);
            if a < first || b > last {
                return Vec::new();
            }
            // the first sample whose bin ends after a
            let mut j = inp.partition_point(|&e| e <= a).saturating_sub(1);
            let mut taps = Vec::new();
            while j < wave.len() && inp[j] < b {
                let overlap = b.min(inp[j + 1]) - a.max(inp[j]);
                if overlap > 0.0 {
                    taps.push((j, overlap / (b - a)));
                }
                j += 1;
            }
            taps
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_arm(values: &[f32], wave: &[f64], grid: Vec<f64>, method: Rebin) -> Vec<f32> {
        let samples = Samples {
            values,
            roles: &[ChannelRole::Science, ChannelRole::InverseVariance],
            masks: None,
            wavelength: wave,
            arms: &[wave.len()],
        };
        let mut out = vec![0f32; 2 * grid.len()];
        Resample::new(grid).method(method).apply(&samples, &mut out, None).expect("resample");
        out
    }

    #[test]
    fn flux_conserving_keeps_the_flux_of_whole_bins() {
        // samples 1 Å apart; grid bins 2 Å wide, each covering two whole samples
        let wave: Vec<f64> = (0..8).map(|i| 1000.0 + i as f64).collect();
        let flux = [1.0, 3.0, 2.0, 2.0, 5.0, 7.0, 0.0, 4.0];
        let ivar = [1.0f32; 8];
        let values: Vec<f32> = flux.iter().chain(&ivar).copied().collect();
        let out = one_arm(&values, &wave, vec![1000.5, 1002.5, 1004.5, 1006.5], Rebin::FluxConserving);
        assert_eq!(&out[..4], &[2.0, 2.0, 6.0, 2.0], "the mean of each pair");
        // the variance of a mean of two is half: the inverse variance doubles
        assert_eq!(&out[4..], &[2.0; 4]);
        // a bin that is not wholly inside the samples has nothing
        let out = one_arm(&values, &wave, vec![998.0, 1003.0, 1010.0], Rebin::FluxConserving);
        assert_eq!((out[0], out[2], out[3], out[5]), (0.0, 0.0, 0.0, 0.0));
        // a bin over part of a sample takes that part: [1002.5, 1003.5) is all of sample 3
        let out = one_arm(&values, &wave, vec![1002.0, 1003.0, 1004.0], Rebin::FluxConserving);
        assert_eq!(out[1], 2.0);
    }

    #[test]
    fn linear_interpolation_between_the_samples_around_each_point() {
        let wave = [10.0, 20.0, 30.0];
        let values = [0.0, 10.0, 40.0, 1.0, 4.0, 1.0];
        let out = one_arm(&values, &wave, vec![15.0, 25.0, 30.0], Rebin::Linear);
        assert_eq!(&out[..3], &[5.0, 25.0, 40.0]);
        // var = (1/4) 1 + (1/4) (1/4) at 15
        assert!((out[3] - 1.0 / (0.25 + 0.25 / 4.0)).abs() < 1e-6);
        assert_eq!(out[5], 1.0, "a grid point on a sample is that sample");
    }
}
