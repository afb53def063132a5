//! Transforms of image batches: the planes of a batch by role, and the transforms that come
//! with torchfits.

// Indexing: per-item draws indexed by batch position; the normalisation lists are cut to
// the channels they cover.
#![allow(clippy::indexing_slicing)]

use burn::tensor::module::interpolate;
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use burn::tensor::{Int, Tensor, TensorData};
use torchfits_core::{Error, ErrorKind, Result};

use super::{TransformContext, clipped_stats, nan_median};
use crate::roles::{Channel, ChannelRole};
use crate::seeds::draw;

/// A batch's planes by role, as the transforms see them: each transform decides which it
/// touches. The ones torchfits provides change the values of `science` only (masks, weights
/// and the float flag channels stay exact) and move every plane alike when they move pixels
/// (symmetries, crops).
#[derive(Debug, Clone)]
pub struct ImagePlanes {
    /// `[batch, channels, height, width]` science pixels.
    pub science: Tensor<4>,
    /// `[batch, flags, height, width]` 0/1 float channels that follow the science channels in
    /// the batch's `images`: a cutout's edge mask, [`NanFill`]'s NaN mask.
    pub flags: Option<Tensor<4>>,
    /// `[batch, planes, height, width]` integer mask planes ([`ChannelRole::Mask`]).
    pub masks: Option<Tensor<4, Int>>,
    /// `[batch, planes, height, width]` weight planes; `weight_roles` says which each is.
    pub weights: Option<Tensor<4>>,
    /// The role of each weight plane.
    pub weight_roles: Vec<ChannelRole>,
    /// `[batch, 2, height, width]` longitude and latitude planes, degrees.
    pub coordinates: Option<Tensor<4>>,
}

impl ImagePlanes {
    /// `[batch, channels, height, width]`.
    pub fn dims(&self) -> [usize; 4] {
        self.science.dims()
    }

    /// The batch's `images`: the science channels, then the flags.
    pub fn images(self) -> Tensor<4> {
        match self.flags {
            Some(f) => Tensor::cat(vec![self.science, f], 1),
            None => self.science,
        }
    }

    /// Every plane gathered through `index` (`[batch, 1, height * width]` source pixels of
    /// the `[h, w]` output, row-major over the input planes).
    pub fn gather(self, index: Tensor<3, Int>, [h, w]: [usize; 2]) -> Self {
        Self {
            science: gather_float(self.science, index.clone(), [h, w]),
            flags: self.flags.map(|t| gather_float(t, index.clone(), [h, w])),
            masks: self.masks.map(|t| gather_int(t, index.clone(), [h, w])),
            weights: self.weights.map(|t| gather_float(t, index.clone(), [h, w])),
            weight_roles: self.weight_roles,
            coordinates: self.coordinates.map(|t| gather_float(t, index, [h, w])),
        }
    }
}

fn gather_float(t: Tensor<4>, index: Tensor<3, Int>, [h, w]: [usize; 2]) -> Tensor<4> {
    let [b, c, ih, iw] = t.dims();
    t.reshape([b, c, ih * iw]).gather(2, index.expand([b, c, h * w])).reshape([b, c, h, w])
}

fn gather_int(t: Tensor<4, Int>, index: Tensor<3, Int>, [h, w]: [usize; 2]) -> Tensor<4, Int> {
    let [b, c, ih, iw] = t.dims();
    t.reshape([b, c, ih * iw]).gather(2, index.expand([b, c, h * w])).reshape([b, c, h, w])
}

/// A transform of image batches on their device ([`crate::StampBatcher::transform`]).
///
/// ```
/// use torchfits_burn::burn::tensor::Tensor;
/// use torchfits_burn::transforms::{ImagePlanes, ImageTransform, TransformContext};
///
/// /// Clips the science pixels to `[0, max]`.
/// struct ClipTo(f32);
///
/// impl ImageTransform for ClipTo {
///     fn apply(&self, mut planes: ImagePlanes, _: &TransformContext) -> torchfits_core::Result<ImagePlanes> {
///         planes.science = planes.science.clamp(0.0, self.0);
///         Ok(planes)
///     }
/// }
/// ```
pub trait ImageTransform: Send + Sync {
    /// The transformed planes, or why the batch cannot be transformed.
    fn apply(&self, planes: ImagePlanes, context: &TransformContext) -> Result<ImagePlanes>;

    /// The transform's name, for logs and `Debug`.
    fn name(&self) -> &str {
        std::any::type_name::<Self>()
    }

    /// For a transform that moves each item's planes by a symmetry of the square
    /// ([`Symmetries`]): the symmetry (0..8, as [`Symmetries::code`]) it gives item `index` in
    /// `epoch`, `square` saying whether the planes it sees are square. `None` for the others.
    fn symmetry(&self, epoch: u64, index: usize, square: bool) -> Option<u8> {
        let _ = (epoch, index, square);
        None
    }

    /// The planes of the batch's `images` after this transform, given those before (science
    /// planes first, then flags): the same, for a transform that adds or removes none.
    fn channels(&self, images: Vec<Channel>) -> Vec<Channel> {
        images
    }
}

/// NaN science pixels to `value`, with one flag channel per science channel, 1.0 where that
/// channel was NaN (appended to the flags, in the science channels' order).
#[derive(Debug, Clone, Copy)]
pub struct NanFill(pub f32);

impl ImageTransform for NanFill {
    fn channels(&self, mut images: Vec<Channel>) -> Vec<Channel> {
        let nan_flags: Vec<Channel> = images
            .iter()
            .filter(|c| c.role == ChannelRole::Science)
            .map(|c| Channel::new(ChannelRole::Flag, c.band.clone()))
            .collect();
        images.extend(nan_flags);
        images
    }

    fn apply(&self, mut planes: ImagePlanes, _: &TransformContext) -> Result<ImagePlanes> {
        let nan = planes.science.clone().is_nan();
        let flags = nan.clone().float();
        planes.science = planes.science.mask_fill(nan, self.0);
        planes.flags = Some(match planes.flags {
            Some(f) => Tensor::cat(vec![f, flags], 1),
            None => flags,
        });
        Ok(planes)
    }
}

/// `asinh(x / scale)` on the science channels (a Lupton stretch: linear near 0, logarithmic for
/// bright pixels).
#[derive(Debug, Clone, Copy)]
pub struct Asinh(pub f32);

impl ImageTransform for Asinh {
    fn apply(&self, mut planes: ImagePlanes, _: &TransformContext) -> Result<ImagePlanes> {
        planes.science = planes.science.div_scalar(self.0).asinh();
        Ok(planes)
    }
}

/// `(x - mean[c]) / std[c]` on the first `mean.len()` science channels.
#[derive(Debug, Clone)]
pub struct Normalize {
    /// Per channel.
    pub mean: Vec<f32>,
    /// Per channel.
    pub std: Vec<f32>,
}

impl ImageTransform for Normalize {
    fn apply(&self, mut planes: ImagePlanes, context: &TransformContext) -> Result<ImagePlanes> {
        let c = planes.dims()[1];
        let n = self.mean.len().min(self.std.len()).min(c);
        if n == 0 {
            return Ok(planes);
        }
        let device = context.device;
        let m = upload(TensorData::new(self.mean[..n].to_vec(), [n]), device).reshape([1, n, 1, 1]);
        let s = upload(TensorData::new(self.std[..n].to_vec(), [n]), device).reshape([1, n, 1, 1]);
        let head = planes.science.clone().narrow(1, 0, n);
        let head = (head - m) / s;
        planes.science = if n < c { Tensor::cat(vec![head, planes.science.narrow(1, n, c - n)], 1) } else { head };
        Ok(planes)
    }
}

fn upload(data: TensorData, device: &burn::tensor::Device) -> Tensor<1> {
    crate::transfers::up(data.bytes().len());
    Tensor::<1>::from_data(data, device)
}

fn upload_int(data: Vec<i64>, device: &burn::tensor::Device) -> Tensor<1, Int> {
    let n = data.len();
    let data = TensorData::new(data, [n]);
    crate::transfers::up(data.bytes().len());
    Tensor::<1, Int>::from_data(data, device)
}

/// Random flips and quarter turns (the 8 symmetries of the square; the 4 flips for stamps that
/// are not square), drawn from the seed, the epoch and the item's index; every plane moves alike.
#[derive(Debug, Clone, Copy)]
pub struct Symmetries(pub u64);

impl Symmetries {
    /// The symmetry (0..8: bit 0 flips x, bit 1 flips y, bit 2 transposes) of item `index` in
    /// `epoch`.
    pub fn code(&self, epoch: u64, index: usize, square: bool) -> u8 {
        let h = draw(self.0, epoch, index);
        if square { (h % 8) as u8 } else { (h % 4) as u8 }
    }
}

impl ImageTransform for Symmetries {
    fn apply(&self, planes: ImagePlanes, context: &TransformContext) -> Result<ImagePlanes> {
        let [_, _, h, w] = planes.dims();
        let codes: Vec<u8> = context.indices.iter().map(|&i| self.code(context.epoch, i, h == w)).collect();
        if codes.iter().all(|&k| k == 0) {
            return Ok(planes);
        }
        let index = symmetry_indices(&codes, h, w, context.device);
        Ok(planes.gather(index, [h, w]))
    }

    fn symmetry(&self, epoch: u64, index: usize, square: bool) -> Option<u8> {
        Some(self.code(epoch, index, square))
    }
}

/// For each item, the source pixel (y * w + x) of each output pixel under its symmetry, made on
/// the device from the items' codes (the only upload: one integer per item). `[b, 1, h * w]`.
fn symmetry_indices(codes: &[u8], h: usize, w: usize, device: &burn::tensor::Device) -> Tensor<3, Int> {
    let b = codes.len();
    let codes = upload_int(codes.iter().map(|&k| i64::from(k)).collect(), device).reshape([b, 1, 1]).expand([b, h, w]);
    let flip_x = codes.clone().remainder_scalar(2);
    let flip_y = codes.clone().div_scalar(2).remainder_scalar(2);
    let transpose = codes.div_scalar(4).remainder_scalar(2);
    let (x, y) = grid(b, h, w, device);
    // transposed: (x, y) -> (y, x); only square stamps are, so both grids have one shape
    let sx = x.clone() + transpose.clone() * (y.clone() - x.clone());
    let sy = y.clone() + transpose * (x - y);
    // flipped: s -> (n - 1) - s
    let sx = sx.clone() + flip_x * sx.mul_scalar(-2).add_scalar(w as i64 - 1);
    let sy = sy.clone() + flip_y * sy.mul_scalar(-2).add_scalar(h as i64 - 1);
    (sy.mul_scalar(w as i64) + sx).reshape([b, 1, h * w])
}

/// `[b, h, w]` column and row numbers.
fn grid(b: usize, h: usize, w: usize, device: &burn::tensor::Device) -> (Tensor<3, Int>, Tensor<3, Int>) {
    let x = Tensor::<1, Int>::arange(0..w as i64, device).reshape([1, 1, w]).expand([b, h, w]);
    let y = Tensor::<1, Int>::arange(0..h as i64, device).reshape([1, h, 1]).expand([b, h, w]);
    (x, y)
}

/// The index that cuts `[h, w]` windows at per-item offsets `(y, x)` out of planes `iw` wide.
fn window_indices(
    offsets: &[(usize, usize)],
    iw: usize,
    [h, w]: [usize; 2],
    device: &burn::tensor::Device,
) -> Tensor<3, Int> {
    let b = offsets.len();
    let starts: Vec<i64> = offsets.iter().map(|&(y, x)| (y * iw + x) as i64).collect();
    let starts = upload_int(starts, device).reshape([b, 1, 1]).expand([b, h, w]);
    let (x, y) = grid(b, h, w, device);
    (starts + y.mul_scalar(iw as i64) + x).reshape([b, 1, h * w])
}

fn check_window(name: &str, [ih, iw]: [usize; 2], [h, w]: [usize; 2]) -> Result<()> {
    if h == 0 || w == 0 || h > ih || w > iw {
        return Err(Error::new(
            ErrorKind::Parameter,
            format!("{name}: a {h}x{w} window does not fit {ih}x{iw} stamps"),
        ));
    }
    Ok(())
}

/// A `height` x `width` window at a place drawn from the seed, the epoch and the item's index;
/// every plane is cut alike: a jitter of stamps already read. (Which pixels of a file are read,
/// a centre or a random window of a large image, is the dataset's: [`crate::Crop`], or the
/// cutouts' `size`.)
#[derive(Debug, Clone, Copy)]
pub struct RandomCrop {
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// The seed.
    pub seed: u64,
}

impl ImageTransform for RandomCrop {
    fn apply(&self, planes: ImagePlanes, context: &TransformContext) -> Result<ImagePlanes> {
        let [_, _, ih, iw] = planes.dims();
        let out = [self.height, self.width];
        check_window("RandomCrop", [ih, iw], out)?;
        let offsets: Vec<(usize, usize)> = context
            .draws(self.seed)
            .iter()
            .map(|&d| {
                ((d % (ih - self.height + 1) as u64) as usize, ((d >> 32) % (iw - self.width + 1) as u64) as usize)
            })
            .collect();
        let index = window_indices(&offsets, iw, out, context.device);
        Ok(planes.gather(index, out))
    }
}

/// The MAD of a normal distribution times this is its standard deviation.
const MAD_TO_SIGMA: f32 = 1.482_602_2;

/// `(x - median) / (1.4826 * MAD)` per item and science channel (NaN ignored): a scaling that
/// a few bright sources or bad pixels do not move. A plane whose MAD is 0 is only centred.
#[derive(Debug, Clone, Copy, Default)]
pub struct RobustScale;

impl ImageTransform for RobustScale {
    fn apply(&self, mut planes: ImagePlanes, _: &TransformContext) -> Result<ImagePlanes> {
        let [b, c, h, w] = planes.dims();
        let flat = planes.science.reshape([b, c, h * w]);
        let median = nan_median(flat.clone());
        let centred = flat - median.expand([b, c, h * w]);
        let mad = nan_median(centred.clone().abs()).mul_scalar(MAD_TO_SIGMA);
        let spread = mad.clone().mask_fill(mad.lower_equal_elem(0.0), 1.0);
        planes.science = (centred / spread.expand([b, c, h * w])).reshape([b, c, h, w]);
        Ok(planes)
    }
}

/// Sigma clipping per item and science channel, as astropy's `sigma_clip` (median centre,
/// standard deviation, `iterations` rounds): the pixels farther than `sigma` deviations from
/// the clipped centre are clamped to `centre ± sigma * std` (NaN stay NaN).
#[derive(Debug, Clone, Copy)]
pub struct SigmaClip {
    /// The clipping threshold in standard deviations (astropy's default: 3).
    pub sigma: f32,
    /// Rounds of clipping (astropy's default `maxiters`: 5).
    pub iterations: usize,
}

impl Default for SigmaClip {
    fn default() -> Self {
        Self { sigma: 3.0, iterations: 5 }
    }
}

impl ImageTransform for SigmaClip {
    fn apply(&self, mut planes: ImagePlanes, _: &TransformContext) -> Result<ImagePlanes> {
        let [b, c, h, w] = planes.dims();
        let flat = planes.science.reshape([b, c, h * w]);
        let (centre, std) = clipped_stats(flat.clone(), self.sigma, self.iterations);
        let low = (centre.clone() - std.clone().mul_scalar(self.sigma)).expand([b, c, h * w]);
        let high = (centre + std.mul_scalar(self.sigma)).expand([b, c, h * w]);
        let nan = flat.clone().is_nan();
        // max/min with NaN bounds (a plane without values) leave the pixel as it is
        let clamped = flat.clone().max_pair(low).min_pair(high).mask_where(nan, flat);
        planes.science = clamped.reshape([b, c, h, w]);
        Ok(planes)
    }
}

/// Background subtraction per item and science channel: the sigma-clipped median (`sigma`,
/// `iterations` as [`SigmaClip`]) of the whole plane, or with `cell` set, of each `cell` x
/// `cell` box, interpolated bilinearly between the boxes' centres (the mesh background of
/// SExtractor and photutils' `Background2D`, with a median estimator).
#[derive(Debug, Clone, Copy)]
pub struct SubtractBackground {
    /// The clipping threshold in standard deviations.
    pub sigma: f32,
    /// Rounds of clipping.
    pub iterations: usize,
    /// The side of the mesh's boxes (it must divide the stamps' height and width); `None`: one
    /// value per plane.
    pub cell: Option<usize>,
}

impl Default for SubtractBackground {
    fn default() -> Self {
        Self { sigma: 3.0, iterations: 5, cell: None }
    }
}

impl ImageTransform for SubtractBackground {
    fn apply(&self, mut planes: ImagePlanes, _: &TransformContext) -> Result<ImagePlanes> {
        let [b, c, h, w] = planes.dims();
        let background = match self.cell {
            None => {
                let flat = planes.science.clone().reshape([b, c, h * w]);
                let (centre, _) = clipped_stats(flat, self.sigma, self.iterations);
                centre.reshape([b, c, 1, 1]).expand([b, c, h, w])
            }
            Some(cell) => {
                if cell == 0 || h % cell != 0 || w % cell != 0 {
                    return Err(Error::new(
                        ErrorKind::Parameter,
                        format!("SubtractBackground: {cell}-pixel boxes do not tile {h}x{w} stamps"),
                    ));
                }
                let (ny, nx) = (h / cell, w / cell);
                let boxes = planes.science.clone().reshape([b * c, ny, cell, nx, cell]).swap_dims(2, 3).reshape([
                    b * c,
                    ny * nx,
                    cell * cell,
                ]);
                let (centre, _) = clipped_stats(boxes, self.sigma, self.iterations);
                // a box without a value takes the plane's median of box values
                let mesh = centre.reshape([b * c, 1, ny * nx]);
                let fallback = nan_median(mesh.clone()).expand([b * c, 1, ny * nx]);
                let mesh = mesh.clone().mask_where(mesh.is_nan(), fallback).reshape([b, c, ny, nx]);
                let mut options = InterpolateOptions::new(InterpolateMode::Bilinear);
                options.align_corners = false;
                options.output_size = Some([h, w]);
                interpolate(mesh, options)
            }
        };
        planes.science = planes.science - background;
        Ok(planes)
    }
}
