//! Stacking stamps into tensors on the loader's device, with on-device transforms.

use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{AllocationProperty, Bytes, DType, Device, FloatDType, Int, Tensor, TensorData};
use torchfits_core::{BufferPool, PooledBuffer};

use crate::columns::SideBatch;
use crate::epochs::Epoch;
use crate::roles::{Channel, ChannelRole};
use crate::stamp::Stamp;
use crate::transforms::{ImagePlanes, ImageTransform, TransformContext};

/// A batch of stamps on a device.
#[derive(Debug, Clone)]
pub struct StampBatch {
    /// `[batch, channels, height, width]`: the stamps' science channels (after the transforms),
    /// then their float flag channels (a cutout's edge mask, [`crate::transforms::NanFill`]'s
    /// NaN mask).
    pub images: Tensor<4>,
    /// `[batch]` labels, when every item has one.
    pub labels: Option<Tensor<1, Int>>,
    /// `[batch, mask planes, height, width]` integer flags, exact and untransformed (but for the
    /// symmetries, which move every plane alike), where the dataset has mask channels
    /// ([`ChannelRole::Mask`]): I64 where the device has 64-bit integers, else I32 holding the
    /// flags' low 32 bits (a 32-bit mask's bits whole).
    pub masks: Option<Tensor<4, Int>>,
    /// `[batch, weight planes, height, width]` inverse variances or variances, untransformed
    /// (but for the symmetries), where the dataset has weight channels; `weight_roles` says
    /// which each plane is.
    pub weights: Option<Tensor<4>>,
    /// The role of each weight plane.
    pub weight_roles: Vec<ChannelRole>,
    /// `[batch, 2, height, width]` longitude and latitude planes (degrees), when
    /// [`StampBatcher::coordinates`] is set.
    pub coordinates: Option<Tensor<4>>,
    /// The dataset's side columns ([`crate::CutoutBuilder::targets`]) for the batch's items,
    /// in the order they were asked for: exact host values and a tensor each.
    pub targets: Vec<(String, SideBatch)>,
    /// The items' dataset indices, in batch order.
    pub indices: Vec<usize>,
}

impl StampBatch {
    /// The side column `name` of the batch.
    pub fn target(&self, name: &str) -> Option<&SideBatch> {
        self.targets.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }
}

/// The world coordinates of stamps' pixels: implemented for the datasets whose stamps have a
/// WCS ([`crate::CutoutCoordinates`]).
pub trait StampCoordinates: Send + Sync + std::fmt::Debug {
    /// `[stamps, 2, height, width]` longitude and latitude planes of `stamps` (all of one
    /// shape), degrees (NaN where the WCS is invalid), made on `device`.
    fn planes(&self, stamps: &[Stamp], device: &Device) -> torchfits_core::Result<Tensor<4>>;
}

/// Stacks [`Stamp`]s into a [`StampBatch`]: one contiguous host buffer, one upload per batch,
/// then the [`ImageTransform`]s as tensor operations on the device, in the order they were
/// added; random ones draw from their seed, the epoch and each item's index, so the same seed
/// and epoch give the same batch on any device.
///
/// ```
/// use torchfits_burn::StampBatcher;
/// use torchfits_burn::transforms::{Asinh, NanFill, RandomCrop, SubtractBackground, Symmetries};
///
/// let batcher = StampBatcher::new()
///     .transform(NanFill(0.0))
///     .transform(SubtractBackground::default())
///     .transform(Asinh(0.1))
///     .transform(RandomCrop { height: 48, width: 48, seed: 7 })
///     .transform(Symmetries(42));
/// let epoch = batcher.epoch(); // advanced by an `EpochLoader`, or set by a hand-written loop
/// ```
#[derive(Clone)]
pub struct StampBatcher {
    transforms: Vec<Arc<dyn ImageTransform>>,
    epoch: Epoch,
    coordinates: Option<Arc<dyn StampCoordinates>>,
    target_dtype: FloatDType,
    /// Where the batches' pixel buffers come from and go back to.
    pool: BufferPool,
}

impl Default for StampBatcher {
    fn default() -> Self {
        Self {
            transforms: Vec::new(),
            epoch: Epoch::default(),
            coordinates: None,
            target_dtype: FloatDType::F32,
            pool: BufferPool::new(BATCH_POOL_IDLE_BYTES),
        }
    }
}

/// The idle bytes a batcher's pool keeps: the buffers of a few batches in flight (burn's loader
/// queues up to 100 batches; those beyond the bound are freed as they return).
const BATCH_POOL_IDLE_BYTES: usize = 256 << 20;

impl std::fmt::Debug for StampBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.transforms.iter().map(|t| t.name()).collect();
        f.debug_struct("StampBatcher")
            .field("transforms", &names)
            .field("epoch", &self.epoch)
            .field("coordinates", &self.coordinates)
            .finish()
    }
}

impl StampBatcher {
    /// A batcher that stacks the stamps as they are.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a transform, applied after those added before.
    pub fn transform(mut self, transform: impl ImageTransform + 'static) -> Self {
        self.transforms.push(Arc::new(transform));
        self
    }

    /// Adds the stamps' longitude/latitude planes to each batch (made before the transforms,
    /// which move them with the pixels).
    pub fn coordinates(mut self, source: Arc<dyn StampCoordinates>) -> Self {
        self.coordinates = Some(source);
        self
    }

    /// The dtype of float target tensors (default F32, on every device; the exact values stay
    /// beside them in [`SideBatch::values`]). A device without it fails the batch.
    pub fn target_dtype(mut self, dtype: FloatDType) -> Self {
        self.target_dtype = dtype;
        self
    }

    /// The planes of this batcher's batches' `images`, the model's input, for a dataset whose
    /// items have the planes `dataset` (its `channels()`): its science and flag planes, as the
    /// transforms leave them (a [`crate::transforms::NanFill`] adds a flag per science plane).
    ///
    /// ```
    /// use torchfits_burn::transforms::{Asinh, NanFill};
    /// use torchfits_burn::{Channel, ChannelRole, StampBatcher};
    ///
    /// let dataset = vec![Channel::new(ChannelRole::Science, "r"), Channel::new(ChannelRole::Flag, "r")];
    /// let batcher = StampBatcher::new().transform(NanFill(0.0)).transform(Asinh(1.0));
    /// let input = batcher.channels(&dataset);
    /// assert_eq!(input.len(), 3); // r, its edge flag, its NaN flag: a model of 3 input channels
    /// ```
    pub fn channels(&self, dataset: &[Channel]) -> Vec<Channel> {
        let images: Vec<Channel> = dataset.iter().filter(|c| c.in_images()).cloned().collect();
        self.transforms.iter().fold(images, |planes, t| t.channels(planes))
    }

    /// The handle on the epoch the augmentations are drawn for.
    pub fn epoch(&self) -> Epoch {
        self.epoch.clone()
    }

    /// The symmetry (0..8, as [`crate::transforms::Symmetries::code`]) the batcher's
    /// [`crate::transforms::Symmetries`] transform gives item `index` in the current epoch (the
    /// first such transform's, where there are several); 0, the identity, without one.
    pub fn symmetry(&self, index: usize, square: bool) -> u8 {
        let epoch = self.epoch.get();
        self.transforms.iter().find_map(|t| t.symmetry(epoch, index, square)).unwrap_or(0)
    }

    /// Stacks `items` and applies the transforms; an error for items of differing shapes, a
    /// coordinate plane that cannot be computed or a transform that cannot apply.
    pub fn try_batch(&self, items: Vec<Stamp>, device: &Device) -> torchfits_core::Result<StampBatch> {
        let _span = tracing::trace_span!("batch", items = items.len()).entered();
        let b = items.len();
        let shape = |s: &Stamp| (s.channels, s.flag_channels, s.height, s.width);
        let (c, fc, h, w) = items.first().map(shape).unwrap_or((1, 0, 1, 1));
        let plane = h * w;
        let mut labels = Vec::with_capacity(b);
        for s in &items {
            let flags_fit = s.flags.as_ref().is_none_or(|f| f.len() == fc * plane);
            if shape(s) != (c, fc, h, w) || s.pixels.len() != c * plane || !flags_fit {
                return Err(torchfits_core::Error::new(
                    torchfits_core::ErrorKind::Parameter,
                    format!(
                        "stamps of shapes {:?} and {:?} in one batch (science and flag planes, rows, columns)",
                        (c, fc, h, w),
                        shape(s)
                    ),
                ));
            }
            labels.extend(s.label);
        }
        if !labels.is_empty() && labels.len() != b {
            return Err(torchfits_core::Error::new(
                torchfits_core::ErrorKind::Parameter,
                format!("{} of {b} items have a label: a batch has a label for every item or for none", labels.len()),
            ));
        }
        let rows: Vec<_> = items.iter().map(|s| (s.side.as_ref(), s.row)).collect();
        let targets = crate::columns::batch_rows(&rows, device, self.target_dtype)?;
        let (masks, weights, weight_roles) = side_planes(&items, plane, device)?;
        let coordinates = match &self.coordinates {
            Some(src) => Some(src.planes(&items, device)?),
            None => None,
        };
        let indices: Vec<usize> = items.iter().map(|s| s.index).collect();
        // with no transform nothing changes a plane: each stamp's science and flag planes are
        // stacked as the batch's images as they are (splitting them by role and joining them
        // again would copy every pixel twice); with transforms, the science channels and the
        // flag channels are two contiguous tensors, which the transforms change without copying
        let whole = self.transforms.is_empty();
        let first_planes = if whole { c + fc } else { c };
        let mut first = self.pool.get::<f32>(b * first_planes * plane)?;
        let mut flags = (!whole && fc > 0).then(|| self.pool.get::<f32>(b * fc * plane)).transpose()?;
        let mut flag_slots = flags.as_deref_mut().map(|f| f.chunks_exact_mut((fc * plane).max(1)));
        for (s, item) in items.iter().zip(first.chunks_exact_mut((first_planes * plane).max(1))) {
            let (science, rest) = item.split_at_mut(c * plane);
            science.copy_from_slice(s.data());
            let to = match flag_slots.as_mut() {
                Some(slots) => slots.next().unwrap_or_default(),
                None => rest,
            };
            match &s.flags {
                Some(f) => to.copy_from_slice(f),
                // a stamp wholly on its image carries no plane of zeros
                None => to.fill(0.0),
            }
        }
        // the items' buffers go back to their pool now
        drop(items);
        let first = upload::<4>(pooled_data(first, [b, first_planes, h, w])?, device);
        let (images, masks, weights, weight_roles, coordinates) = if whole {
            (first, masks, weights, weight_roles, coordinates)
        } else {
            let planes = ImagePlanes {
                science: first,
                flags: flags.map(|f| pooled_data(f, [b, fc, h, w])).transpose()?.map(|f| upload::<4>(f, device)),
                masks,
                weights,
                weight_roles,
                coordinates,
            };
            let context = TransformContext { device, epoch: self.epoch.get(), indices: &indices };
            let p = self.transforms.iter().try_fold(planes, |p, t| t.apply(p, &context))?;
            let (masks, weights, weight_roles, coordinates) =
                (p.masks.clone(), p.weights.clone(), p.weight_roles.clone(), p.coordinates.clone());
            (p.images(), masks, weights, weight_roles, coordinates)
        };
        let labels = (labels.len() == b && b > 0).then(|| {
            let data = TensorData::new(labels, [b]);
            crate::transfers::up(data.bytes().len());
            Tensor::<1, Int>::from_data(data, device)
        });
        Ok(StampBatch { images, labels, masks, weights, weight_roles, coordinates, targets, indices })
    }
}

impl Batcher<Stamp, StampBatch> for StampBatcher {
    /// As [`StampBatcher::try_batch`]; panics on its errors (burn's `Batcher` cannot fail): a
    /// dataset gives one shape, and coordinate planes fail only for a WCS that cannot be used.
    fn batch(&self, items: Vec<Stamp>, device: &Device) -> StampBatch {
        match self.try_batch(items, device) {
            Ok(b) => b,
            // burn's `Batcher::batch` returns no error, and the datasets never
            // give items this rejects (documented on the method); `try_batch` is the fallible way
            #[allow(clippy::panic)]
            Err(e) => panic!("torchfits: cannot batch the stamps: {e}"),
        }
    }
}

/// A batch buffer as tensor data, without a copy: on the CPU backend the tensor holds the buffer,
/// which returns to its pool (warm, its pages faulted in) when the batch is dropped, instead of
/// a fresh allocation of the whole batch each time (a page fault per 4 KiB, and a free from the
/// training thread into the loader thread's heap).
fn pooled_data(values: PooledBuffer<f32>, shape: [usize; 4]) -> torchfits_core::Result<TensorData> {
    let bytes = bytes::Bytes::from_owner(PooledBytes(values));
    TensorData::try_from_bytes(Bytes::from_shared(bytes, AllocationProperty::Native), shape, DType::F32)
        .map_err(|e| torchfits_core::Error::new(torchfits_core::ErrorKind::Parameter, format!("a batch buffer: {e}")))
}

/// A pooled buffer of f32 seen as bytes (what a tensor's storage is).
struct PooledBytes(PooledBuffer<f32>);

impl AsRef<[u8]> for PooledBytes {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

/// `data` on `device`, counted as an upload.
fn upload<const D: usize>(data: TensorData, device: &Device) -> Tensor<D> {
    crate::transfers::up(data.bytes().len());
    Tensor::<D>::from_data(data, device)
}

/// The items' mask and weight planes as tensors on `device` (each one upload), with the roles of
/// the weight planes; an error for items whose planes differ in number.
#[allow(clippy::type_complexity)] // the three parts of one batch, named where they are used
fn side_planes(
    items: &[Stamp],
    plane: usize,
    device: &Device,
) -> torchfits_core::Result<(Option<Tensor<4, Int>>, Option<Tensor<4>>, Vec<ChannelRole>)> {
    let Some(first) = items.first() else { return Ok((None, None, Vec::new())) };
    let (h, w) = (first.height, first.width);
    let planes_of = |len: usize| len / plane.max(1);
    let mask_planes = first.masks.as_ref().map_or(0, |m| planes_of(m.len()));
    let weight_planes = first.weights.as_ref().map_or(0, |m| planes_of(m.len()));
    let differ = || {
        torchfits_core::Error::new(
            torchfits_core::ErrorKind::Parameter,
            "items with different mask or weight planes in one batch",
        )
    };
    let b = items.len();
    let masks = match mask_planes {
        0 => None,
        n => {
            let mut flags: Vec<i64> = Vec::with_capacity(b * n * plane);
            for s in items {
                flags.extend_from_slice(s.masks.as_ref().filter(|m| m.len() == n * plane).ok_or_else(differ)?);
            }
            let (data, dtype) = if device.supports_dtype(DType::I64) {
                (TensorData::new(flags, [b, n, h, w]), DType::I64)
            } else {
                // the low 32 bits: a mask is bits, and FITS masks are at most 32 bits wide
                let low: Vec<i32> = flags.iter().map(|&f| f as i32).collect();
                (TensorData::new(low, [b, n, h, w]), DType::I32)
            };
            crate::transfers::up(data.bytes().len());
            Some(Tensor::<4, Int>::from_data(data, (device, dtype)))
        }
    };
    let weights = match weight_planes {
        0 => None,
        n => {
            let mut values: Vec<f32> = Vec::with_capacity(b * n * plane);
            for s in items {
                values.extend_from_slice(s.weights.as_ref().filter(|m| m.len() == n * plane).ok_or_else(differ)?);
            }
            Some(upload::<4>(TensorData::new(values, [b, n, h, w]), device))
        }
    };
    Ok((masks, weights, first.weight_roles.to_vec()))
}
