//! Stacking spectra into tensors on the loader's device, then the spectrum transforms.

use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{DType, Device, FloatDType, Int, Tensor, TensorData};
use torchfits_core::{Error, ErrorKind, Result};

use super::Spectrum;
use crate::columns::SideBatch;
use crate::epochs::Epoch;
use crate::roles::ChannelRole;
use crate::transforms::{SpectrumPlanes, SpectrumTransform, TransformContext};

/// A batch of spectra on a device.
#[derive(Debug, Clone)]
pub struct SpectrumBatch {
    /// `[batch, channels, length]`: flux, then the other channels that are not masks, after
    /// the transforms.
    pub spectra: Tensor<3>,
    /// The role of each channel of `spectra`.
    pub roles: Vec<ChannelRole>,
    /// `[batch, mask rows, length]` integer flags, exact: I64 where the device has 64-bit
    /// integers, else I32 holding the flags' low 32 bits.
    pub masks: Option<Tensor<3, Int>>,
    /// `[batch, length]` the wavelength of each sample (f32), where the dataset has them.
    pub wavelength: Option<Tensor<2>>,
    /// The samples of each arm, one after the other along `length` (one entry for a single arm,
    /// or after resampling to a common grid).
    pub arms: Vec<usize>,
    /// `[length]` the arm (0, 1, ...) of each sample, for spectra of several arms.
    pub arm: Option<Tensor<1, Int>>,
    /// `[batch, columns]` metadata as f32 features, when the dataset has some.
    pub meta: Option<Tensor<2>>,
    /// `[batch]` labels, when every spectrum has one ([`crate::SpectraBuilder::join`]).
    pub labels: Option<Tensor<1, Int>>,
    /// The metadata columns, then the targets joined to them, exact (integers as Int, a 64-bit
    /// TARGETID whole; see [`crate::SideBatch`]), in the order given.
    pub columns: Vec<(String, SideBatch)>,
    /// The items' dataset indices.
    pub indices: Vec<usize>,
}

/// Stacks [`Spectrum`]s into a [`SpectrumBatch`] (one upload per tensor), then applies the
/// [`SpectrumTransform`]s on the device in the order they were added.
///
/// ```
/// use torchfits_burn::SpectrumBatcher;
/// use torchfits_burn::transforms::{MaskByIvar, NormalizeFlux};
///
/// // spectra of several instruments are resampled onto one grid by their datasets
/// // (`SpectraBuilder::resample`), before they reach the batcher
/// let batcher = SpectrumBatcher::new().transform(MaskByIvar::default()).transform(NormalizeFlux::median());
/// ```
#[derive(Clone)]
pub struct SpectrumBatcher {
    transforms: Vec<Arc<dyn SpectrumTransform>>,
    epoch: Epoch,
    target_dtype: FloatDType,
}

impl Default for SpectrumBatcher {
    fn default() -> Self {
        Self { transforms: Vec::new(), epoch: Epoch::default(), target_dtype: FloatDType::F32 }
    }
}

impl std::fmt::Debug for SpectrumBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.transforms.iter().map(|t| t.name()).collect();
        f.debug_struct("SpectrumBatcher").field("transforms", &names).field("epoch", &self.epoch).finish()
    }
}

impl SpectrumBatcher {
    /// A batcher that stacks the spectra as they are.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a transform, applied after those added before.
    pub fn transform(mut self, transform: impl SpectrumTransform + 'static) -> Self {
        self.transforms.push(Arc::new(transform));
        self
    }

    /// The dtype of float column tensors (default F32, on every device; the exact values stay
    /// beside them). A device without it fails the batch.
    pub fn target_dtype(mut self, dtype: FloatDType) -> Self {
        self.target_dtype = dtype;
        self
    }

    /// The handle on the epoch the transforms' draws are made for.
    pub fn epoch(&self) -> Epoch {
        self.epoch.clone()
    }

    /// Stacks `items` and applies the transforms; an error for spectra of differing shapes or
    /// a transform that cannot apply.
    pub fn try_batch(&self, items: Vec<Spectrum>, device: &Device) -> Result<SpectrumBatch> {
        let _span = tracing::trace_span!("batch", items = items.len()).entered();
        let b = items.len();
        let Some(first) = items.first() else {
            return Err(Error::new(ErrorKind::Parameter, "no spectrum to batch"));
        };
        let (c, l, m) = (first.channels, first.length, first.meta.len());
        let (roles, arms) = (first.roles.clone(), first.arms.clone());
        let mask_rows = first.masks.as_ref().map_or(0, |v| v.len() / l.max(1));
        let mut data = Vec::with_capacity(b * c * l);
        let mut meta = Vec::with_capacity(b * m);
        let mut flags = Vec::with_capacity(b * mask_rows * l);
        let mut grids = Vec::with_capacity(b);
        for s in &items {
            let same = (s.channels, s.length, s.meta.len()) == (c, l, m)
                && s.roles == roles
                && s.arms == arms
                && s.masks.as_ref().map_or(0, |v| v.len()) == mask_rows * l;
            if !same {
                return Err(Error::new(ErrorKind::Parameter, "spectra of different shapes in one batch"));
            }
            data.extend_from_slice(&s.values);
            meta.extend(s.meta.iter().map(|&v| v as f32));
            if let Some(f) = &s.masks {
                flags.extend_from_slice(f);
            }
            grids.extend(s.wavelength.clone());
        }
        let indices: Vec<usize> = items.iter().map(|s| s.index).collect();
        let rows: Vec<_> = items.iter().map(|s| (s.side.as_ref(), s.index)).collect();
        let columns = crate::columns::batch_rows(&rows, device, self.target_dtype)?;
        let labels: Vec<i64> = items.iter().filter_map(|s| s.label).collect();
        if !labels.is_empty() && labels.len() != b {
            return Err(Error::new(
                ErrorKind::Parameter,
                format!("{} of {b} spectra have a label: a batch has a label for every item or for none", labels.len()),
            ));
        }
        drop(items);
        let grids = if grids.len() == b { grids } else { Vec::new() };
        let planes = SpectrumPlanes {
            spectra: upload_float(data, [b, c, l], device),
            roles: roles.to_vec(),
            masks: (mask_rows > 0).then(|| upload_masks(flags, [b, mask_rows, l], device)),
            wavelength: wavelength_tensor(&grids, device),
            host_wavelength: grids,
            arms: arms.to_vec(),
        };
        let epoch = self.epoch.get();
        let context = TransformContext { device, epoch, indices: &indices };
        let planes = self.transforms.iter().try_fold(planes, |p, t| t.apply(p, &context))?;
        let meta = (m > 0).then(|| upload_float(meta, [b, m], device));
        let labels = (!labels.is_empty()).then(|| {
            let data = TensorData::new(labels, [b]);
            crate::transfers::up(data.bytes().len());
            Tensor::<1, Int>::from_data(data, device)
        });
        Ok(SpectrumBatch {
            arm: arm_index(&planes.arms, device),
            spectra: planes.spectra,
            roles: planes.roles,
            masks: planes.masks,
            wavelength: planes.wavelength,
            arms: planes.arms,
            meta,
            labels,
            columns,
            indices,
        })
    }
}

fn upload_float<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    let data = TensorData::new(values, shape);
    crate::transfers::up(data.bytes().len());
    Tensor::<D>::from_data(data, device)
}

/// Mask flags as I64 where the device has them, else their low 32 bits (FITS masks are at
/// most 32 bits wide).
fn upload_masks(flags: Vec<i64>, shape: [usize; 3], device: &Device) -> Tensor<3, Int> {
    let (data, dtype) = if device.supports_dtype(DType::I64) {
        (TensorData::new(flags, shape), DType::I64)
    } else {
        (TensorData::new(flags.iter().map(|&f| f as i32).collect::<Vec<i32>>(), shape), DType::I32)
    };
    crate::transfers::up(data.bytes().len());
    Tensor::<3, Int>::from_data(data, (device, dtype))
}

fn wavelength_tensor(grids: &[Arc<[f64]>], device: &Device) -> Option<Tensor<2>> {
    let l = grids.first()?.len();
    let values: Vec<f32> = grids.iter().flat_map(|g| g.iter().map(|&v| v as f32)).collect();
    Some(upload_float(values, [grids.len(), l], device))
}

/// `[length]` arm numbers, for spectra of several arms.
fn arm_index(arms: &[usize], device: &Device) -> Option<Tensor<1, Int>> {
    if arms.len() < 2 {
        return None;
    }
    let index: Vec<i64> = arms.iter().enumerate().flat_map(|(a, &n)| std::iter::repeat_n(a as i64, n)).collect();
    let n = index.len();
    let data = TensorData::new(index, [n]);
    crate::transfers::up(data.bytes().len());
    Some(Tensor::<1, Int>::from_data(data, device))
}

impl Batcher<Spectrum, SpectrumBatch> for SpectrumBatcher {
    /// As [`SpectrumBatcher::try_batch`]; panics on its error (burn's `Batcher` cannot fail).
    fn batch(&self, items: Vec<Spectrum>, device: &Device) -> SpectrumBatch {
        match self.try_batch(items, device) {
            Ok(b) => b,
            // burn's `Batcher::batch` returns no error, and the datasets never
            // give items this rejects (documented on the method); `try_batch` is the fallible way
            #[allow(clippy::panic)]
            Err(e) => panic!("torchfits: cannot batch the spectra: {e}"),
        }
    }
}
