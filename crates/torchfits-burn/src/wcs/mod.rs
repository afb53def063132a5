//! World coordinates on Burn tensors, where they live: pixel to world for the celestial
//! projections of wcslib's zenithal, cylindrical, pseudo-cylindrical, conic and polyconic
//! families (TAN, SIN, ARC, STG, ZEA, AZP, SZP, ZPN, AIR, CYP, CEA, CAR, MER, SFL, PAR, MOL, AIT,
//! COP, COE, COD, COO, BON, PCO) with SIP, on the tensor's own device, through a Burn backend
//! extension: on a CubeCL device (wgpu; CUDA with the `cuda` feature) a CubeCL kernel launched on
//! the tensor's own buffers, on the CPU backend (Flex) wcslib and the native TAN, exactly as
//! [`Wcs::pixel_to_world`]. Every other WCS (more than two axes, spectral or tabular axes,
//! wcslib's own distortions, the quad-cube and HEALPix projections) is computed by wcslib on the
//! host, transparently (a `tracing` event at debug level says so).
//!
//! Precision: where the device computes f64 correctly (found out once per device by running the
//! kernel on probe WCSs and comparing with wcslib: some devices lack f64, and Mesa's lavapipe has
//! it but returns 0 for its `sin`), the kernel runs in f64. Elsewhere it runs in f32, arranged so
//! that results stay within 1e-4 degree of wcslib: the sines and cosines of the native latitude
//! come from the projection plane without an angle near the pole, the longitude is computed as an
//! offset from the celestial pole's, and the plain zenithal case (TAN, the survey case) in offsets
//! from the reference point, to a few 1e-7 degree. Points near a projection's limits, where f32
//! cannot tell valid from invalid or cannot hold 1e-4 degree, are compacted on the device and only
//! they cross to wcslib on the host and back; [`WorldPoints::host_points`] counts them (0 for an
//! image away from its projection's limits).
//!
//! ```
//! use burn::tensor::{Device, Tensor, TensorData};
//! use torchfits_burn::wcs::DeviceWcs;
//! use torchfits_core::{Header, Wcs};
//!
//! # fn main() -> Result<(), torchfits_core::Error> {
//! let mut h = Header::new();
//! for (k, v) in [("CTYPE1", "RA---TAN"), ("CTYPE2", "DEC--TAN")] {
//!     h.set(k, v, None)?;
//! }
//! for (k, v) in [("CRPIX1", 512.5), ("CRPIX2", 512.5), ("CRVAL1", 150.1), ("CRVAL2", 2.2), ("CDELT1", -5e-5), ("CDELT2", 5e-5)] {
//!     h.set(k, v, None)?;
//! }
//! let wcs = DeviceWcs::new(Wcs::from_header(&h)?);
//! // any Burn device: the CPU (Flex) computes with wcslib, a wgpu or CUDA device with the kernel
//! let device = Device::default();
//! let pixels = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 0.0, 511.5, 511.5, 1023.0, 7.25], [3, 2]), &device);
//! let out = wcs.pixel_to_world(pixels)?; // [3, 2] (RA, Dec) in degrees, on `device`
//! let radec: Vec<f32> = out.world.into_data().iter::<f32>().collect();
//! assert!((radec[2] - 150.1).abs() < 1e-4 && (radec[3] - 2.2).abs() < 1e-4);
//! assert!(out.valid.into_data().iter::<bool>().all(|ok| ok));
//! // on a GPU, 0 for an image away from its projection's limits; on the CPU, every point
//! println!("{} points computed by wcslib on the host", out.host_points);
//! # Ok(())
//! # }
//! ```

// Indexing: points are chunks of two values, and the host fallback's buffers are sized to the
// points they hold.
#![allow(clippy::indexing_slicing)]

mod extension;
#[cfg(any(feature = "wgpu", feature = "cuda"))]
mod on_cube;
mod params;

use burn::tensor::{Bool, DType, Device, Int, Tensor, TensorData};
use torchfits_format::{Error, ErrorKind, Result};
use torchfits_wcs::Wcs;

use crate::kernels::{INVALID, Kernel, VALID};
pub(crate) use extension::{Cutout, WcsBackend};

/// A WCS ready to transform points held in Burn tensors, on any device: the kernels it needs are
/// chosen once, here; the device (and with it f64 or f32) comes from each tensor.
#[derive(Debug)]
#[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
pub struct DeviceWcs {
    wcs: Wcs,
    /// The kernel on a device that computes f64 as wcslib does.
    wide: Option<Kernel>,
    /// The kernel elsewhere (in f32).
    narrow: Option<Kernel>,
    /// The general kernel in f32 (coordinate planes take it for every projection).
    grid_narrow: Option<Kernel>,
}

/// What [`DeviceWcs::pixel_to_world`] gives: tensors on the pixels' device.
#[derive(Debug, Clone)]
pub struct WorldPoints {
    /// `[N, 2]` world coordinates in world-axis order (longitude first for the usual RA/Dec
    /// axes), degrees, in the pixels' float type; NaN where the WCS is invalid.
    pub world: Tensor<2>,
    /// `[N]`: whether each point is valid (wcslib's status 0).
    pub valid: Tensor<1, Bool>,
    /// How many points the kernel left to wcslib on the host (compacted, the only points that
    /// crossed); on the CPU backend, or for a WCS the kernel does not compute, every point.
    pub host_points: usize,
}

/// What [`DeviceWcs::world_to_pixel`] gives: tensors on the coordinates' device.
#[derive(Debug, Clone)]
pub struct PixelPoints {
    /// `[N, 2]` 0-based pixels (x first), in the coordinates' float type; NaN where invalid.
    pub pixels: Tensor<2>,
    /// `[N]`: whether each point is valid (wcslib's status 0).
    pub valid: Tensor<1, Bool>,
    /// How many points wcslib computed on the host (compacted: the only points that crossed); on
    /// the CPU backend, or for a WCS the kernel does not compute, every point.
    pub host_points: usize,
}

impl DeviceWcs {
    /// `wcs`, with its kernels (none when the kernel does not have its projection: wcslib then
    /// computes it, on the host).
    pub fn new(wcs: Wcs) -> DeviceWcs {
        let wide = params::kernel_for(&wcs, true, false);
        let narrow = params::kernel_for(&wcs, false, true);
        let grid_narrow = params::kernel_for(&wcs, false, false);
        if narrow.is_none() {
            tracing::debug!(
                "the device kernel does not compute this WCS (projection {:?}, {} axes): wcslib on the host",
                wcs.projection(),
                wcs.naxis()
            );
        }
        DeviceWcs { wcs, wide, narrow, grid_narrow }
    }

    /// Whether the kernel computes this WCS on a CubeCL device (rather than wcslib on the host).
    pub fn on_device(&self) -> bool {
        self.narrow.is_some()
    }

    /// What computes this WCS on `device`: the kernel in f64 or f32 (on a CubeCL device), or
    /// wcslib (the CPU backend, or a WCS the kernel does not compute).
    pub fn precision(&self, device: &Device) -> Precision {
        #[cfg(any(feature = "wgpu", feature = "cuda"))]
        if let Some(cube) = on_cube::cube_device(device)
            && self.narrow.is_some()
        {
            return if on_cube::computes_f64(&cube) { Precision::F64 } else { Precision::F32 };
        }
        let _ = device;
        Precision::Wcslib
    }

    /// The WCS.
    pub fn wcs(&self) -> &Wcs {
        &self.wcs
    }

    /// The kernel for points on a device that computes f64 (`wide`) or not.
    #[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
    pub(crate) fn points_kernel(&self, wide: bool) -> Option<&Kernel> {
        if wide { self.wide.as_ref() } else { self.narrow.as_ref() }
    }

    /// The general kernel (coordinate planes) on a device that computes f64 (`wide`) or not.
    #[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
    pub(crate) fn grid_kernel(&self, wide: bool) -> Option<&Kernel> {
        if wide { self.wide.as_ref() } else { self.grid_narrow.as_ref() }
    }

    /// Pixel to world for the `[N, 2]` 0-based pixels (x first) of `pixels`, on their device:
    /// `[N, 2]` world coordinates (degrees, world-axis order, NaN where invalid), the validity of
    /// each point, and how many points went to wcslib on the host. An error for a tensor that is
    /// not `[N, 2]`, or a device that fails.
    pub fn pixel_to_world(&self, pixels: Tensor<2>) -> Result<WorldPoints> {
        let [n, two] = pixels.dims();
        if two != 2 {
            return Err(Error::new(ErrorKind::Parameter, format!("pixels of shape [{n}, {two}]: want [N, 2]")));
        }
        self.points_from(pixels, [0.0, 0.0]).map(|(points, _)| points)
    }

    /// [`DeviceWcs::pixel_to_world`] of points given as offsets from the 0-based pixel `origin`,
    /// and the indices of the points the kernel left to wcslib.
    fn points_from(&self, pixels: Tensor<2>, origin: [f64; 2]) -> Result<(WorldPoints, Vec<u32>)> {
        let n = pixels.dims()[0];
        let _span = tracing::debug_span!("device_pixel_to_world", points = n).entered();
        let out = <burn::backend::Dispatch as WcsBackend>::wcs_pixel_to_world(pixels.into_dispatch(), self, origin);
        if let Some(e) = out.error {
            return Err(e);
        }
        // the world coordinates of invalid points are NaN already (the kernels write them, and
        // wcslib's are)
        let world = Tensor::<2>::from_dispatch(out.world);
        let valid = Tensor::<1, Int>::from_dispatch(out.state).equal_elem(VALID as i64);
        debug_assert_eq!(world.dims(), [n, 2]);
        let points = WorldPoints { world, valid, host_points: out.host_points };
        Ok((points, out.host_list))
    }

    /// The world coordinates of every pixel of `origins.len()` cutouts of `width` x `height`
    /// pixels, made on `device` (on a CubeCL device by the kernel, in one launch, from nothing but
    /// the origins; on the CPU backend by wcslib): cutout `c` starts at the 0-based pixel
    /// `origins[c]` (x, y). Returns `[cutouts, 2, height, width]` planes, the longitude plane
    /// then the latitude plane of each cutout (world-axis order), degrees, NaN where the WCS is
    /// invalid.
    pub fn coordinate_planes(
        &self,
        origins: &[(f64, f64)],
        width: usize,
        height: usize,
        device: &Device,
    ) -> Result<Tensor<4>> {
        let cutouts: Vec<Cutout> = origins.iter().map(|&(x0, y0)| Cutout { image: 0, x0, y0 }).collect();
        planes(std::slice::from_ref(self), &cutouts, width, height, device)
    }

    /// Pixel to world for `pixels.len() / 2` points (x first, 0-based) held on the host, as
    /// [`Wcs::pixel_to_world`], computed on `device`: uploaded (as offsets from CRPIX), transformed,
    /// read back (within 1e-4 degree of wcslib where the kernel runs in f32); the points the kernel
    /// leaves to wcslib are computed from the f64 pixels. Returns the per-point status (0 valid,
    /// 3 invalid, as wcslib's celestial status).
    pub fn pixel_to_world_on(&self, device: &Device, pixels: &[f64], world: &mut [f64]) -> Result<Vec<i32>> {
        if !pixels.len().is_multiple_of(2) || world.len() != pixels.len() {
            return Err(Error::new(ErrorKind::Parameter, "pixels and world must hold the same (x, y) pairs"));
        }
        let n = pixels.len() / 2;
        if n == 0 {
            return Ok(Vec::new());
        }
        if !self.on_device() {
            // nothing for the device to do: wcslib, without the round trip
            tracing::debug!(points = n, "every point to wcslib on the host (no kernel for this WCS)");
            return self.wcs.pixel_to_world(pixels, world);
        }
        // the points as offsets from CRPIX, which f32 holds finely; the points the kernel leaves
        // to wcslib are computed again from the pixels as given
        let origin = self.wcs.projection_parameters().map_or([0.0, 0.0], |t| [t.crpix[0] - 1.0, t.crpix[1] - 1.0]);
        let (data, dtype) = if self.precision(device) == Precision::F64 {
            let v: Vec<f64> = pixels.iter().enumerate().map(|(i, &p)| p - origin[i % 2]).collect();
            (TensorData::new(v, [n, 2]), DType::F64)
        } else {
            let v: Vec<f32> = pixels.iter().enumerate().map(|(i, &p)| (p - origin[i % 2]) as f32).collect();
            (TensorData::new(v, [n, 2]), DType::F32)
        };
        crate::transfers::up(data.bytes().len());
        let (out, host) = self.points_from(Tensor::<2>::from_data(data, (device, dtype)), origin)?;
        let w = out.world.into_data();
        let v = out.valid.into_data();
        crate::transfers::down(w.bytes().len() + v.bytes().len());
        for (o, x) in world.iter_mut().zip(w.iter::<f64>()) {
            *o = x;
        }
        let mut status: Vec<i32> = v.iter::<bool>().map(|ok| if ok { 0 } else { 3 }).collect();
        if !host.is_empty() {
            let some: Vec<f64> =
                host.iter().flat_map(|&i| [pixels[2 * i as usize], pixels[2 * i as usize + 1]]).collect();
            let mut back = vec![0.0; some.len()];
            let st = self.wcs.pixel_to_world(&some, &mut back)?;
            for (j, &i) in host.iter().enumerate() {
                let i = i as usize;
                world[2 * i] = back[2 * j];
                world[2 * i + 1] = back[2 * j + 1];
                status[i] = st[j];
            }
        }
        Ok(status)
    }

    /// World to pixel for the `[N, 2]` world coordinates of `world` (world-axis order, degrees),
    /// on their device: `[N, 2]` 0-based pixels (x first; NaN where invalid), the validity of each
    /// point, and how many points went to wcslib on the host. On a CubeCL device the kernel finds
    /// each pixel by Newton's method on its own pixel-to-world functions (every projection it has,
    /// SIP included), in offsets from the reference point for the plain zenithal projections; a
    /// point outside the projection's domain, or that does not converge, goes to wcslib (with
    /// the points near the limits). On the CPU backend, wcslib ([`Wcs::world_to_pixel`]).
    pub fn world_to_pixel(&self, world: Tensor<2>) -> Result<PixelPoints> {
        let [n, two] = world.dims();
        if two != 2 {
            return Err(Error::new(
                ErrorKind::Parameter,
                format!("world coordinates of shape [{n}, {two}]: want [N, 2]"),
            ));
        }
        let _span = tracing::debug_span!("device_world_to_pixel", points = n).entered();
        let out = <burn::backend::Dispatch as WcsBackend>::wcs_world_to_pixel(world.into_dispatch(), self);
        if let Some(e) = out.error {
            return Err(e);
        }
        let pixels = Tensor::<2>::from_dispatch(out.world);
        let valid = Tensor::<1, Int>::from_dispatch(out.state).equal_elem(VALID as i64);
        Ok(PixelPoints { pixels, valid, host_points: out.host_points })
    }

    /// wcslib's world to pixel on the host for `world` (pairs): pixels and the kernels' states.
    pub(crate) fn to_pixels_on_host(&self, world: &[f64]) -> Result<(Vec<f64>, Vec<u32>)> {
        let mut pixels = vec![0.0; world.len()];
        let status = self.wcs.world_to_pixel(world, &mut pixels)?;
        Ok((pixels, status.iter().map(|&s| if s == 0 { VALID } else { INVALID }).collect()))
    }

    /// wcslib on the host for `pixels` (x, y pairs): world coordinates and the kernels' states
    /// (valid or invalid).
    pub(crate) fn on_host(&self, pixels: &[f64]) -> Result<(Vec<f64>, Vec<u32>)> {
        let mut world = vec![0.0; pixels.len()];
        let status = self.wcs.pixel_to_world(pixels, &mut world)?;
        Ok((world, status.iter().map(|&s| if s == 0 { VALID } else { INVALID }).collect()))
    }
}

/// The `[cutouts, 2, height, width]` planes of `cutouts` (each of its image in `images`) on
/// `device`, NaN where invalid.
pub(crate) fn planes(
    images: &[DeviceWcs],
    cutouts: &[Cutout],
    width: usize,
    height: usize,
    device: &Device,
) -> Result<Tensor<4>> {
    let b = cutouts.len();
    width.checked_mul(height).and_then(|p| p.checked_mul(2 * b)).filter(|&n| n <= u32::MAX as usize).ok_or_else(
        || Error::new(ErrorKind::Parameter, format!("{b} planes of {width} x {height} pixels: too many points")),
    )?;
    let _span = tracing::debug_span!("coordinate_planes", cutouts = b, width, height).entered();
    // a tensor that only says where: the planes are made on its device
    let anchor = Tensor::<1>::empty([1], device);
    let out = <burn::backend::Dispatch as WcsBackend>::wcs_coordinate_planes(
        anchor.into_dispatch(),
        images,
        cutouts,
        width,
        height,
    );
    if let Some(e) = out.error {
        return Err(e);
    }
    // NaN where invalid already: the kernels write it, and wcslib's values are
    Ok(Tensor::<4>::from_dispatch(out.world))
}

/// What computes a [`DeviceWcs`] on a device ([`DeviceWcs::precision`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Precision {
    /// The kernel, in double precision (a device whose f64 arithmetic is exact enough).
    F64,
    /// The kernel, in single precision with the projection's large terms split off (within
    /// 1e-4 degree of wcslib).
    F32,
    /// wcslib on the CPU (Burn's CPU backend, or a WCS the kernel does not compute).
    Wcslib,
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::F64 => "f64",
            Precision::F32 => "f32",
            Precision::Wcslib => "wcslib",
        })
    }
}

/// A Burn device by kind, for [`device`]; parsed from `cpu`, `wgpu`, `cuda` or `cuda:N`.
///
/// ```
/// use torchfits_burn::wcs::DeviceKind;
///
/// assert_eq!("cuda:1".parse::<DeviceKind>()?, DeviceKind::Cuda(1));
/// assert_eq!("cpu".parse::<DeviceKind>()?, DeviceKind::Cpu);
/// assert!("tpu".parse::<DeviceKind>().is_err());
/// # Ok::<(), torchfits_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeviceKind {
    /// Burn's CPU backend (Flex).
    Cpu,
    /// The default wgpu adapter (feature `wgpu`).
    Wgpu,
    /// CUDA device `N` (feature `cuda`).
    Cuda(usize),
}

impl std::str::FromStr for DeviceKind {
    type Err = Error;

    fn from_str(name: &str) -> Result<Self> {
        match name {
            "cpu" => Ok(DeviceKind::Cpu),
            "wgpu" => Ok(DeviceKind::Wgpu),
            "cuda" => Ok(DeviceKind::Cuda(0)),
            other => other.strip_prefix("cuda:").and_then(|n| n.parse().ok()).map(DeviceKind::Cuda).ok_or_else(|| {
                Error::new(ErrorKind::Parameter, format!("unknown device {other:?} (cpu, wgpu, cuda, cuda:N)"))
            }),
        }
    }
}

impl std::fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceKind::Cpu => f.write_str("cpu"),
            DeviceKind::Wgpu => f.write_str("wgpu"),
            DeviceKind::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// The Burn device of `kind`; an error naming the feature for a runtime this build lacks.
pub fn device(kind: DeviceKind) -> Result<Device> {
    #[cfg_attr(all(feature = "wgpu", feature = "cuda"), allow(unused_variables))]
    let missing = |feature: &str| {
        Error::new(
            ErrorKind::Unsupported,
            format!("device {kind}: this build has no {feature} runtime (feature {feature})"),
        )
    };
    match kind {
        DeviceKind::Cpu => Ok(Device::flex()),
        #[cfg(feature = "wgpu")]
        DeviceKind::Wgpu => Ok(Device::wgpu(Default::default())),
        #[cfg(not(feature = "wgpu"))]
        DeviceKind::Wgpu => Err(missing("wgpu")),
        #[cfg(feature = "cuda")]
        DeviceKind::Cuda(n) => Ok(Device::from(cubecl::cuda::CudaDevice::new(n))),
        #[cfg(not(feature = "cuda"))]
        DeviceKind::Cuda(_) => Err(missing("cuda")),
    }
}

#[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
/// Says (at debug level) how many of `total` points the kernel left to wcslib on the host, and
/// the first few of them (0-based pixel x, y).
pub(crate) fn log_host_points(host: &[u32], total: usize, pixel: impl Fn(usize) -> (f64, f64)) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let first: Vec<String> = host
        .iter()
        .take(5)
        .enumerate()
        .map(|(j, &i)| {
            let (x, y) = pixel(j);
            format!("#{i} ({x:.3}, {y:.3})")
        })
        .collect();
    tracing::debug!(
        "{} of {total} points to wcslib on the host (beyond the kernel's reach, or f32 short of 1e-4 degree): {}{}",
        host.len(),
        first.join(", "),
        if host.len() > first.len() { ", ..." } else { "" }
    );
}
