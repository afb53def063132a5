//! Stacking stamps into tensors on the loader's device, with on-device transforms.

// Indexing: symmetry tables of fixed size indexed modulo their length; the mean and
// std lists are checked to have one value per channel when the batcher is built.
#![allow(clippy::indexing_slicing)]

use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::tensor::{DType, Device, Int, Tensor, TensorData};

use crate::columns::SideBatch;
use crate::epochs::Epoch;
use crate::roles::ChannelRole;
use crate::stamp::Stamp;

/// A batch of stamps on a device.
#[derive(Debug, Clone)]
pub struct StampBatch {
    /// `[batch, channels, height, width]`: the stamps' channels (after the transforms), then a
    /// NaN-mask channel if [`StampBatcher::nan_to`] is set.
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
/// then the transforms as tensor operations on the device, in this order: NaN to a value (with a
/// mask channel), arcsinh stretch, per-channel normalisation, random flips and quarter turns
/// (seeded per item and per epoch: the same seed and epoch give the same batch on any device).
///
/// ```no_run
/// use torchfits_burn::StampBatcher;
///
/// let batcher = StampBatcher::new().nan_to(0.0).asinh(0.1).normalize(vec![0.0], vec![1.0]).augment(42);
/// let epoch = batcher.epoch(); // advanced by an `EpochLoader`, or set by a hand-written loop
/// ```
#[derive(Debug, Clone, Default)]
pub struct StampBatcher {
    nan: Option<f32>,
    asinh: Option<f32>,
    normalize: Option<(Vec<f32>, Vec<f32>)>,
    augment: Option<u64>,
    epoch: Epoch,
    coordinates: Option<Arc<dyn StampCoordinates>>,
}

impl StampBatcher {
    /// A batcher that stacks the stamps as they are.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces NaN pixels by `value` and appends a channel that is 1.0 where the first channel
    /// was NaN.
    pub fn nan_to(mut self, value: f32) -> Self {
        self.nan = Some(value);
        self
    }

    /// `asinh(x / scale)` on every image channel (the masks the dataset or `nan_to` added
    /// excepted).
    pub fn asinh(mut self, scale: f32) -> Self {
        self.asinh = Some(scale);
        self
    }

    /// `(x - mean[c]) / std[c]` on the first `mean.len()` channels.
    pub fn normalize(mut self, mean: Vec<f32>, std: Vec<f32>) -> Self {
        self.normalize = Some((mean, std));
        self
    }

    /// Random flips and quarter turns (the 8 symmetries of the square; flips only for stamps
    /// that are not square), drawn from `seed`, the epoch and the item's index.
    pub fn augment(mut self, seed: u64) -> Self {
        self.augment = Some(seed);
        self
    }

    /// Adds the stamps' longitude/latitude planes to each batch.
    pub fn coordinates(mut self, source: Arc<dyn StampCoordinates>) -> Self {
        self.coordinates = Some(source);
        self
    }

    /// The handle on the epoch the augmentations are drawn for.
    pub fn epoch(&self) -> Epoch {
        self.epoch.clone()
    }

    /// The symmetry (0..8) applied to item `index` in the current epoch.
    pub fn symmetry(&self, index: usize, square: bool) -> u8 {
        let Some(seed) = self.augment else { return 0 };
        let h = splitmix(seed ^ splitmix(self.epoch.get() ^ splitmix(index as u64)));
        if square { (h % 8) as u8 } else { [0u8, 1, 2, 3][(h % 4) as usize] }
    }

    /// Stacks `items` and applies the transforms; an error for items of differing shapes or a
    /// coordinate plane that cannot be computed.
    pub fn try_batch(&self, items: Vec<Stamp>, device: &Device) -> torchfits_core::Result<StampBatch> {
        let _span = tracing::trace_span!("batch", items = items.len()).entered();
        let b = items.len();
        let (c, h, w) = items.first().map(|s| (s.channels, s.height, s.width)).unwrap_or((1, 1, 1));
        let mask_channels = items.first().map_or(0, |s| s.mask_channels.min(s.channels));
        let plane = h * w;
        let mut data = Vec::with_capacity(b * c * plane);
        let mut labels = Vec::with_capacity(b);
        for s in &items {
            if (s.channels, s.height, s.width) != (c, h, w) || s.pixels.len() != c * plane {
                return Err(torchfits_core::Error::new(
                    torchfits_core::ErrorKind::Parameter,
                    format!("stamps of shapes {:?} and {:?} in one batch", (c, h, w), (s.channels, s.height, s.width)),
                ));
            }
            data.extend_from_slice(s.data());
            if let Some(l) = s.label {
                labels.push(l);
            }
        }
        if !labels.is_empty() && labels.len() != b {
            return Err(torchfits_core::Error::new(
                torchfits_core::ErrorKind::Parameter,
                format!("{} of {b} items have a label: a batch has a label for every item or for none", labels.len()),
            ));
        }
        let targets = match items.first().and_then(|s| s.side.clone()) {
            Some(side) => side.batch(&items.iter().map(|s| s.row).collect::<Vec<_>>(), device),
            None => Vec::new(),
        };
        let (mut masks, mut weights, weight_roles) = side_planes(&items, plane, device)?;
        let mut coordinates = match &self.coordinates {
            Some(src) => Some(src.planes(&items, device)?),
            None => None,
        };
        let indices: Vec<usize> = items.iter().map(|s| s.index).collect();
        let symmetries: Vec<u8> = items.iter().map(|s| self.symmetry(s.index, h == w)).collect();
        // the items' buffers go back to their pool now
        drop(items);
        let mut images = upload::<4>(TensorData::new(data, [b, c, h, w]), device);
        // the image channels: all but the dataset's mask channels (the last ones)
        let image_channels = c - mask_channels;
        if let Some(value) = self.nan {
            let first = images.clone().narrow(1, 0, 1);
            let mask = first.is_nan();
            images = images.clone().mask_fill(images.is_nan(), value);
            images = Tensor::cat(vec![images, mask.float()], 1);
        }
        if let Some(scale) = self.asinh {
            let (head, tail) = split_channels(images, image_channels);
            let head = head.div_scalar(scale).asinh();
            images = join_channels(head, tail);
        }
        if let Some((mean, std)) = &self.normalize {
            let n = mean.len().min(std.len()).min(images.dims()[1]);
            if n > 0 {
                let m = upload::<1>(TensorData::new(mean[..n].to_vec(), [n]), device).reshape([1, n, 1, 1]);
                let s = upload::<1>(TensorData::new(std[..n].to_vec(), [n]), device).reshape([1, n, 1, 1]);
                let (head, tail) = split_channels(images, n);
                images = join_channels((head - m) / s, tail);
            }
        }
        if symmetries.iter().any(|&k| k != 0) {
            let index = symmetry_indices(&symmetries, h, w, device);
            images = apply_symmetries(images, index.clone());
            coordinates = coordinates.map(|t| apply_symmetries(t, index.clone()));
            masks = masks.map(|t| apply_int_symmetries(t, index.clone()));
            weights = weights.map(|t| apply_symmetries(t, index));
        }
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

/// [`apply_symmetries`] for integer planes.
fn apply_int_symmetries(t: Tensor<4, Int>, index: Tensor<3, Int>) -> Tensor<4, Int> {
    let [b, c, h, w] = t.dims();
    t.reshape([b, c, h * w]).gather(2, index.expand([b, c, h * w])).reshape([b, c, h, w])
}

/// Moves each item's pixels by its symmetry: one gather over the flattened planes, by the
/// `[b, 1, h * w]` source indices of [`symmetry_indices`].
fn apply_symmetries(t: Tensor<4>, index: Tensor<3, Int>) -> Tensor<4> {
    let [b, c, h, w] = t.dims();
    t.reshape([b, c, h * w]).gather(2, index.expand([b, c, h * w])).reshape([b, c, h, w])
}

fn split_channels(t: Tensor<4>, n: usize) -> (Tensor<4>, Option<Tensor<4>>) {
    let c = t.dims()[1];
    if n >= c {
        return (t, None);
    }
    (t.clone().narrow(1, 0, n), Some(t.narrow(1, n, c - n)))
}

fn join_channels(head: Tensor<4>, tail: Option<Tensor<4>>) -> Tensor<4> {
    match tail {
        Some(t) => Tensor::cat(vec![head, t], 1),
        None => head,
    }
}

/// For each item, the source pixel (y * w + x) of each output pixel under its symmetry, made on
/// the device from the items' symmetry codes (the only upload: one integer per item): bit 0
/// flips x, bit 1 flips y, bit 2 transposes (square stamps only). `[b, 1, h * w]`.
fn symmetry_indices(symmetries: &[u8], h: usize, w: usize, device: &Device) -> Tensor<3, Int> {
    let b = symmetries.len();
    let codes = TensorData::new(symmetries.iter().map(|&k| i64::from(k)).collect::<Vec<i64>>(), [b]);
    crate::transfers::up(codes.bytes().len());
    let codes = Tensor::<1, Int>::from_data(codes, device).reshape([b, 1, 1]).expand([b, h, w]);
    let flip_x = codes.clone().remainder_scalar(2);
    let flip_y = codes.clone().div_scalar(2).remainder_scalar(2);
    let transpose = codes.div_scalar(4).remainder_scalar(2);
    let x = Tensor::<1, Int>::arange(0..w as i64, device).reshape([1, 1, w]).expand([b, h, w]);
    let y = Tensor::<1, Int>::arange(0..h as i64, device).reshape([1, h, 1]).expand([b, h, w]);
    // transposed: (x, y) -> (y, x); only square stamps are, so both grids have one shape
    let sx = x.clone() + transpose.clone() * (y.clone() - x.clone());
    let sy = y.clone() + transpose * (x - y);
    // flipped: s -> (n - 1) - s
    let sx = sx.clone() + flip_x * sx.mul_scalar(-2).add_scalar(w as i64 - 1);
    let sy = sy.clone() + flip_y * sy.mul_scalar(-2).add_scalar(h as i64 - 1);
    (sy.mul_scalar(w as i64) + sx).reshape([b, 1, h * w])
}

/// A 64-bit mix (splitmix64's finaliser).
pub(crate) fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
