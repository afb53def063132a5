//! The backend extension that puts [`DeviceWcs`] on Burn tensors: one trait, implemented for the
//! CubeCL backend (the kernels, `on_cube`), for the CPU backend (Flex: wcslib, the values of
//! [`torchfits_wcs::Wcs`] exactly) and for autodiff over either (world coordinates are constants:
//! no gradient flows through them).

use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::ops::{FloatTensorOps, IntTensorOps};
use burn::backend::tensor::{FloatTensor, IntTensor};
use burn::backend::{Autodiff, AutodiffBackend, Backend, ExtensionType, Flex, TensorMetadata, backend_extension};
use burn::tensor::{DType, FloatDType, IntDType, Shape, TensorData};
use torchfits_format::{Error, ErrorKind, Result};

use super::DeviceWcs;
use crate::kernels::VALID;

/// A cutout of a coordinate-plane batch: its image (an index into the batch's WCS list) and
/// its first pixel (0-based x, y).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Cutout {
    pub image: usize,
    pub x0: f64,
    pub y0: f64,
}

/// What the extension's operations give: world coordinates (points `[N, 2]`, or planes
/// `[cutouts, 2, h, w]`) and a state per point (the kernels' [`VALID`], [`INVALID`]), the number
/// of points wcslib computed on the host, and the error, if any (the tensors are then empty).
#[derive(ExtensionType)]
pub(crate) struct WorldOutput<B: Backend> {
    pub world: FloatTensor<B>,
    pub state: IntTensor<B>,
    pub host_points: usize,
    /// The indices of the points the kernel left to wcslib (points only; empty where every point
    /// went to wcslib).
    pub host_list: Vec<u32>,
    pub error: Option<Error>,
}

impl<B: Backend> WorldOutput<B> {
    /// The output of a failed operation on `device`: empty tensors and the error.
    pub fn failed(error: Error, device: &B::Device) -> WorldOutput<B> {
        WorldOutput {
            world: B::float_zeros(Shape::new([0, 2]), device, FloatDType::F32),
            state: B::int_zeros(Shape::new([0]), device, IntDType::I32),
            host_points: 0,
            host_list: Vec::new(),
            error: Some(error),
        }
    }
}

#[backend_extension(Cube: cfg(any(feature = "wgpu", feature = "cuda")), Flex, Autodiff)]
pub(crate) trait WcsBackend: Backend {
    /// Pixel to world for the `[N, 2]` points of `pixels`: each the 0-based pixel minus `origin`
    /// (the host-slice call passes pixels near CRPIX as small offsets, which f32 holds finely).
    fn wcs_pixel_to_world(pixels: FloatTensor<Self>, wcs: &DeviceWcs, origin: [f64; 2]) -> WorldOutput<Self>;

    /// World to pixel for the `[N, 2]` world coordinates (world-axis order, degrees) of `world`:
    /// 0-based pixels (x first), NaN where invalid.
    fn wcs_world_to_pixel(world: FloatTensor<Self>, wcs: &DeviceWcs) -> WorldOutput<Self>;

    /// The `[cutouts.len(), 2, height, width]` world-coordinate planes of `cutouts` (each of
    /// `images[cutout.image]`), made on `anchor`'s device (a tensor that only says where).
    fn wcs_coordinate_planes(
        anchor: FloatTensor<Self>,
        images: &[DeviceWcs],
        cutouts: &[Cutout],
        width: usize,
        height: usize,
    ) -> WorldOutput<Self>;
}

/// Points per call to wcslib on the CPU backend.
const CPU_PART: usize = 1 << 20;

/// Waits for a future of the CPU backend (whose data is ready: it completes at once).
fn ready<T>(f: impl Future<Output = T>) -> T {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

/// `values` (f64) as tensor data of `dtype` (f32 for any float type but f64).
fn float_data(values: Vec<f64>, shape: Vec<usize>, dtype: DType) -> TensorData {
    if dtype == DType::F64 {
        TensorData::new(values, shape)
    } else {
        TensorData::new(values.into_iter().map(|v| v as f32).collect::<Vec<f32>>(), shape)
    }
}

/// The world coordinates of every pixel of `cutouts` (`[cutouts, 2, h, w]` planes, world-axis
/// order) by wcslib on the host, and their states.
pub(crate) fn planes_on_host(
    images: &[DeviceWcs],
    cutouts: &[Cutout],
    width: usize,
    height: usize,
) -> Result<(Vec<f64>, Vec<u32>)> {
    let per = width * height;
    let mut world = vec![0.0; 2 * per * cutouts.len()];
    let mut state = vec![VALID; per * cutouts.len()];
    for (c, cut) in cutouts.iter().enumerate() {
        let wcs = images.get(cut.image).ok_or_else(|| {
            Error::new(ErrorKind::Parameter, format!("cutout of image {}, which the batch lacks", cut.image))
        })?;
        let pix: Vec<f64> = (0..per).flat_map(|r| [cut.x0 + (r % width) as f64, cut.y0 + (r / width) as f64]).collect();
        let (w, s) = wcs.on_host(&pix)?;
        let (lng, lat) = world[2 * per * c..2 * per * (c + 1)].split_at_mut(per);
        for r in 0..per {
            lng[r] = w[2 * r];
            lat[r] = w[2 * r + 1];
        }
        state[per * c..per * (c + 1)].copy_from_slice(&s);
    }
    Ok((world, state))
}

impl WcsBackend for Flex {
    fn wcs_pixel_to_world(pixels: FloatTensor<Self>, wcs: &DeviceWcs, origin: [f64; 2]) -> WorldOutput<Self> {
        let device = pixels.device();
        let dtype = pixels.dtype();
        let n = pixels.shape().dims::<2>()[0];
        let run = || -> Result<WorldOutput<Self>> {
            let data = ready(Self::float_into_data(pixels))
                .map_err(|e| Error::new(ErrorKind::Io, format!("reading the pixels: {e:?}")))?;
            let wide = dtype == DType::F64;
            let mut world32: Vec<f32> = Vec::with_capacity(if wide { 0 } else { 2 * n });
            let mut world64: Vec<f64> = Vec::with_capacity(if wide { 2 * n } else { 0 });
            let mut state: Vec<i32> = Vec::with_capacity(n);
            // in parts of a million points: wcslib's f64 buffers stay small, and each part still
            // splits across every core
            let mut pix = Vec::with_capacity(2 * CPU_PART.min(n));
            for first in (0..n).step_by(CPU_PART) {
                let part = first..(first + CPU_PART).min(n);
                pix.clear();
                let values = 2 * part.start..2 * part.end;
                match (data.as_slice::<f32>(), data.as_slice::<f64>()) {
                    (Ok(v), _) => pix.extend(v.get(values).unwrap_or_default().iter().map(|&p| f64::from(p))),
                    (_, Ok(v)) => pix.extend_from_slice(v.get(values).unwrap_or_default()),
                    _ => pix.extend(data.iter::<f64>().skip(values.start).take(values.len())),
                }
                if pix.len() != 2 * part.len() {
                    return Err(Error::new(ErrorKind::Parameter, "the pixel tensor holds fewer values than its shape"));
                }
                if origin != [0.0, 0.0] {
                    pix.iter_mut().enumerate().for_each(|(i, p)| *p += origin[i % 2]);
                }
                let (w, s) = wcs.on_host(&pix)?;
                if wide {
                    world64.extend_from_slice(&w);
                } else {
                    world32.extend(w.iter().map(|&v| v as f32));
                }
                state.extend(s.iter().map(|&s| s as i32));
            }
            let world = if wide { TensorData::new(world64, [n, 2]) } else { TensorData::new(world32, [n, 2]) };
            Ok(WorldOutput {
                world: Self::float_from_data(world, &device),
                state: Self::int_from_data(TensorData::new(state, [n]), &device),
                host_points: n,
                host_list: Vec::new(),
                error: None,
            })
        };
        run().unwrap_or_else(|e| WorldOutput::failed(e, &device))
    }

    fn wcs_world_to_pixel(world: FloatTensor<Self>, wcs: &DeviceWcs) -> WorldOutput<Self> {
        let device = world.device();
        let dtype = world.dtype();
        let n = world.shape().dims::<2>()[0];
        let run = || -> Result<WorldOutput<Self>> {
            let data = ready(Self::float_into_data(world))
                .map_err(|e| Error::new(ErrorKind::Io, format!("reading the coordinates: {e:?}")))?;
            let values: Vec<f64> = match (data.as_slice::<f32>(), data.as_slice::<f64>()) {
                (Ok(v), _) => v.iter().map(|&p| f64::from(p)).collect(),
                (_, Ok(v)) => v.to_vec(),
                _ => data.iter::<f64>().collect(),
            };
            let (pixels, state) = wcs.to_pixels_on_host(&values)?;
            Ok(WorldOutput {
                world: Self::float_from_data(float_data(pixels, vec![n, 2], dtype), &device),
                state: Self::int_from_data(
                    TensorData::new(state.iter().map(|&s| s as i32).collect::<Vec<i32>>(), [n]),
                    &device,
                ),
                host_points: n,
                host_list: Vec::new(),
                error: None,
            })
        };
        run().unwrap_or_else(|e| WorldOutput::failed(e, &device))
    }

    fn wcs_coordinate_planes(
        anchor: FloatTensor<Self>,
        images: &[DeviceWcs],
        cutouts: &[Cutout],
        width: usize,
        height: usize,
    ) -> WorldOutput<Self> {
        let device = anchor.device();
        let dtype = anchor.dtype();
        let run = || -> Result<WorldOutput<Self>> {
            let (world, state) = planes_on_host(images, cutouts, width, height)?;
            let b = cutouts.len();
            Ok(WorldOutput {
                world: Self::float_from_data(float_data(world, vec![b, 2, height, width], dtype), &device),
                state: Self::int_from_data(
                    TensorData::new(state.iter().map(|&s| s as i32).collect::<Vec<i32>>(), [b, height, width]),
                    &device,
                ),
                host_points: b * width * height,
                host_list: Vec::new(),
                error: None,
            })
        };
        run().unwrap_or_else(|e| WorldOutput::failed(e, &device))
    }
}

/// `out` of the inner backend as the autodiff backend's: the coordinates as a constant (no
/// gradient flows through them).
fn lifted<B: WcsBackend, C: CheckpointStrategy>(out: WorldOutput<B>) -> WorldOutput<Autodiff<B, C>> {
    WorldOutput {
        world: <Autodiff<B, C> as AutodiffBackend>::from_inner(out.world),
        state: out.state,
        host_points: out.host_points,
        host_list: out.host_list,
        error: out.error,
    }
}

impl<B: WcsBackend, C: CheckpointStrategy> WcsBackend for Autodiff<B, C> {
    fn wcs_pixel_to_world(pixels: FloatTensor<Self>, wcs: &DeviceWcs, origin: [f64; 2]) -> WorldOutput<Self> {
        lifted(B::wcs_pixel_to_world(<Self as AutodiffBackend>::inner(pixels), wcs, origin))
    }

    fn wcs_world_to_pixel(world: FloatTensor<Self>, wcs: &DeviceWcs) -> WorldOutput<Self> {
        lifted(B::wcs_world_to_pixel(<Self as AutodiffBackend>::inner(world), wcs))
    }

    fn wcs_coordinate_planes(
        anchor: FloatTensor<Self>,
        images: &[DeviceWcs],
        cutouts: &[Cutout],
        width: usize,
        height: usize,
    ) -> WorldOutput<Self> {
        lifted(B::wcs_coordinate_planes(<Self as AutodiffBackend>::inner(anchor), images, cutouts, width, height))
    }
}
