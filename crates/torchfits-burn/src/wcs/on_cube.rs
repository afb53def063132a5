//! The WCS extension on CubeCL devices (wgpu; CUDA with the `cuda` feature): the kernels
//! launched on the tensor's own client and buffers, the points they leave to wcslib compacted on
//! the device, and the probe that says whether a device computes f64 as wcslib does.

// Indexing: points are chunks of two values; host lists index the points they were made from.
#![allow(clippy::indexing_slicing)]

use std::sync::Mutex;

use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Cube, DispatchDevice, TensorMetadata};
use burn::tensor::{DType, Device, FloatDType};
use burn_cubecl::CubeDevice;
use burn_cubecl::tensor::CubeTensor;
use cubecl::client::Client;
use cubecl::server::Handle;
use torchfits_format::{Error, ErrorKind, Result};
use torchfits_wcs::Wcs;

use super::extension::{Cutout, WcsBackend, WorldOutput, planes_on_host};
use super::{DeviceWcs, log_host_points, params};
use crate::kernels::{self, DeviceFloat, Kernel, Launched};

/// The CubeCL device of `device` (through autodiff), if it is one.
pub(crate) fn cube_device(device: &Device) -> Option<CubeDevice> {
    match device.as_dispatch().clone().inner() {
        DispatchDevice::Cube(d) => Some(d),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Whether `device` computes the kernel in f64 as wcslib does (found once per device).
pub(crate) fn computes_f64(device: &CubeDevice) -> bool {
    static KNOWN: Mutex<Vec<(String, bool)>> = Mutex::new(Vec::new());
    let key = format!("{device:?}");
    if let Some(ok) = KNOWN.lock().ok().and_then(|k| k.iter().find(|(d, _)| *d == key).map(|(_, ok)| *ok)) {
        return ok;
    }
    let ok = probe_f64(&device.client());
    if let Ok(mut k) = KNOWN.lock() {
        k.push((key.clone(), ok));
    }
    tracing::debug!(
        "{key} {} f64 as wcslib does: the kernel runs in {}",
        if ok { "computes" } else { "does not compute" },
        if ok { "f64" } else { "f32" }
    );
    ok
}

/// Runs the kernel in f64 on probe WCSs (oblique all-sky maps whose projections use every
/// function the kernel calls: AIT sines, cosines, square roots and arc tangents, MER exponentials,
/// COO powers, AIR logarithms) and compares with wcslib at 1e-9 degree.
fn probe_f64(client: &Client) -> bool {
    use cubecl::ir::{ElemType, FloatKind};
    if !client.properties().supports_type(ElemType::Float(FloatKind::F64)) {
        return false;
    }
    let pixels: Vec<f64> =
        (0..48).flat_map(|j| (0..64).flat_map(move |i| [i as f64 * 5.7 - 3.0, j as f64 * 3.9 - 2.0])).collect();
    for (code, pv) in [("AIT", None), ("MER", None), ("COO", Some((2, 45.0))), ("AIR", Some((1, 45.0)))] {
        let Some(wcs) = probe_wcs(code, pv) else { return false };
        let Some(kernel) = params::kernel_for(&wcs, true, false) else { return false };
        let mut want = vec![0.0; pixels.len()];
        let Ok(_) = wcs.pixel_to_world(&pixels, &mut want) else { return false };
        // a device without f64 may fail the launch itself
        let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| -> Result<(Vec<f64>, Vec<u32>)> {
            let pix = crate::transfers::upload(client, <f64 as cubecl::CubeElement>::as_bytes(&pixels));
            let l = kernels::points::<f64>(client, &kernel, &pix, pixels.len() / 2)?;
            Ok((kernels::read_floats::<f64>(client, &l.world)?, kernels::read_u32s(client, &l.state)?))
        }));
        let Ok(Ok((got, state))) = got else { return false };
        let agree = want.chunks(2).zip(got.chunks(2)).zip(&state).all(|((w, g), &s)| {
            if s == kernels::ON_HOST {
                return true;
            }
            if w[0].is_nan() || s == kernels::INVALID {
                return w[0].is_nan() && s == kernels::INVALID;
            }
            let dl = (w[0] - g[0]).abs();
            dl.min(360.0 - dl) * w[1].to_radians().cos() < 1e-9 && (w[1] - g[1]).abs() < 1e-9
        });
        if !agree {
            return false;
        }
    }
    true
}

/// The probe's all-sky map in projection `code` (with PV2_m = v for `pv` = (m, v); COO also takes
/// PV2_2 = 10).
fn probe_wcs(code: &str, pv: Option<(u32, f64)>) -> Option<Wcs> {
    let mut h = torchfits_format::Header::new();
    let mut cards: Vec<(String, torchfits_format::Value)> = vec![
        ("CTYPE1".into(), format!("RA---{code}").into()),
        ("CTYPE2".into(), format!("DEC--{code}").into()),
        ("CRPIX1".into(), 180.5.into()),
        ("CRPIX2".into(), 90.5.into()),
        ("CDELT1".into(), (-1.0).into()),
        ("CDELT2".into(), 1.0.into()),
        ("CRVAL1".into(), 266.4.into()),
        ("CRVAL2".into(), (-28.9).into()),
    ];
    if let Some((m, v)) = pv {
        cards.push(("PV2_1".into(), v.into()));
        if m == 2 {
            cards.push(("PV2_2".into(), 10.0.into()));
        }
    }
    for (k, v) in cards {
        h.set(&k, v, None).ok()?;
    }
    Wcs::from_header(&h).ok()
}

/// `t` in `dtype`, contiguous.
fn as_contiguous(t: CubeTensor, dtype: FloatDType) -> CubeTensor {
    let t = if t.dtype == DType::from(dtype) { t } else { Cube::float_cast(t, dtype) };
    if t.is_contiguous() { t } else { burn_cubecl::kernel::into_contiguous(t) }
}

/// The launch's world buffer as a tensor of `shape` in `F`, cast to `dtype`; its states as a
/// u32 tensor of `state_shape`.
fn tensors<F: DeviceFloat>(
    client: &Client,
    device: &CubeDevice,
    l: Launched,
    shape: Vec<usize>,
    state_shape: Vec<usize>,
    dtype: DType,
) -> (CubeTensor, CubeTensor) {
    let own = if std::mem::size_of::<F>() == 8 { DType::F64 } else { DType::F32 };
    let world = CubeTensor::new_contiguous(client.clone(), device.clone(), shape.into(), l.world, own);
    let world = match dtype {
        DType::F64 if own != DType::F64 => Cube::float_cast(world, FloatDType::F64),
        DType::F32 if own != DType::F32 => Cube::float_cast(world, FloatDType::F32),
        DType::F16 => Cube::float_cast(world, FloatDType::F16),
        DType::BF16 => Cube::float_cast(world, FloatDType::BF16),
        _ => world,
    };
    let state = CubeTensor::new_contiguous(client.clone(), device.clone(), state_shape.into(), l.state, DType::U32);
    (world, state)
}

/// Which way a transform of points goes: pixel to world (the points given as offsets from the
/// 0-based pixel `origin`), or world to pixel.
#[derive(Debug, Clone, Copy)]
enum Direction {
    ToWorld { origin: [f64; 2] },
    ToPixels,
}

impl Direction {
    /// The kernel's launch over the `n` points of `points` (`F`, on the device).
    fn launch<F: DeviceFloat>(self, client: &Client, k: &Kernel, points: &Handle, n: usize) -> Result<Launched> {
        match self {
            Direction::ToWorld { origin } => kernels::points::<F>(client, &k.with_origin(origin), points, n),
            Direction::ToPixels => kernels::world_to_pixel::<F>(client, k, points, n),
        }
    }

    /// The points as wcslib takes them, from the values the tensor holds (pairs): pixels with the
    /// origin added back, or world coordinates as they are.
    fn for_wcslib(self, values: Vec<f64>) -> Vec<f64> {
        match self {
            Direction::ToWorld { origin } => values.iter().enumerate().map(|(i, p)| p + origin[i % 2]).collect(),
            Direction::ToPixels => values,
        }
    }

    /// wcslib on the host for `points` (from [`Direction::for_wcslib`]): results and states.
    fn on_host(self, wcs: &DeviceWcs, points: &[f64]) -> Result<(Vec<f64>, Vec<u32>)> {
        match self {
            Direction::ToWorld { .. } => wcs.on_host(points),
            Direction::ToPixels => wcs.to_pixels_on_host(points),
        }
    }
}

/// The points of `points` transformed `dir` by the kernel of `k` in `F`, the points it leaves to
/// the host computed by wcslib (from the values as given: f64 stays f64) and written back on the
/// device.
fn with_kernel<F: DeviceFloat>(
    wcs: &DeviceWcs,
    k: &Kernel,
    points: CubeTensor,
    dir: Direction,
) -> Result<WorldOutput<Cube>> {
    let (client, device, dtype) = (points.client.clone(), points.device.clone(), points.dtype);
    let n = points.shape().dims::<2>()[0];
    let own = if std::mem::size_of::<F>() == 8 { FloatDType::F64 } else { FloatDType::F32 };
    let given = as_contiguous(points, if dtype == DType::F64 { FloatDType::F64 } else { FloatDType::F32 });
    let values = as_contiguous(given.clone(), own);
    let l = dir.launch::<F>(&client, k, &values.handle, n)?;
    let host = kernels::host_list(&client, &l)?;
    if !host.is_empty() {
        let gathered = if given.dtype == DType::F64 {
            kernels::gather_pixels::<f64>(&client, &l, &given.handle, host.len())?
        } else {
            kernels::gather_pixels::<f32>(&client, &l, &given.handle, host.len())?
        };
        let points = dir.for_wcslib(gathered);
        log_host_points(&host, n, |j| (points[2 * j], points[2 * j + 1]));
        let (results, states) = dir.on_host(wcs, &points)?;
        kernels::scatter::<F>(&client, &l, &results, &states)?;
    }
    let (out, state) = tensors::<F>(&client, &device, l, vec![n, 2], vec![n], dtype);
    Ok(WorldOutput { world: out, state, host_points: host.len(), host_list: host, error: None })
}

/// Every point to wcslib on the host (a WCS the kernel does not compute): read back, computed,
/// uploaded.
fn all_on_host(wcs: &DeviceWcs, points: CubeTensor, dir: Direction) -> Result<WorldOutput<Cube>> {
    let (client, device, dtype) = (points.client.clone(), points.device.clone(), points.dtype);
    let n = points.shape().dims::<2>()[0];
    tracing::debug!(points = n, "every point to wcslib on the host (no kernel for this WCS)");
    let values = as_contiguous(points, FloatDType::F64);
    let points = dir.for_wcslib(kernels::read_floats::<f64>(&client, &values.handle)?);
    let (results, states) = dir.on_host(wcs, &points)?;
    let l = Launched::uploaded::<f64>(&client, &results, &states, 0);
    let (out, state) = tensors::<f64>(&client, &device, l, vec![n, 2], vec![n], dtype);
    Ok(WorldOutput { world: out, state, host_points: n, host_list: Vec::new(), error: None })
}

/// The points of `points` transformed `dir`, on their device.
fn transform(points: CubeTensor, wcs: &DeviceWcs, dir: Direction) -> Result<WorldOutput<Cube>> {
    let wide = computes_f64(&points.device);
    match wcs.points_kernel(wide) {
        Some(k) if k.wide() => with_kernel::<f64>(wcs, k, points, dir),
        Some(k) => with_kernel::<f32>(wcs, k, points, dir),
        None => all_on_host(wcs, points, dir),
    }
}

/// The grid kernel's launches for `cutouts` into one set of buffers: the cutouts grouped by the
/// kernel they need (projection, SIP order, ZPN coefficients), each group one launch over the
/// parameter blocks of its images; cutouts of images the kernel does not compute by wcslib.
fn planes_with<F: DeviceFloat>(
    client: &Client,
    images: &[DeviceWcs],
    cutouts: &[Cutout],
    width: usize,
    height: usize,
    wide: bool,
) -> Result<(Launched, usize)> {
    let per = width * height;
    let out = Launched::new(client, per * cutouts.len(), per, std::mem::size_of::<F>());
    // (kernel variant) -> (blocks of its images, the image of each block, its cutouts' slots)
    let mut groups: Vec<Group<'_>> = Vec::new();
    let mut by_host: Vec<usize> = Vec::new();
    for (slot, cut) in cutouts.iter().enumerate() {
        let wcs = images.get(cut.image).ok_or_else(|| {
            Error::new(ErrorKind::Parameter, format!("cutout of image {}, which the batch lacks", cut.image))
        })?;
        let Some(k) = wcs.grid_kernel(wide) else {
            by_host.push(slot);
            continue;
        };
        let kernels::Path::Native { params, poly, proj, nz, .. } = &k.path else {
            by_host.push(slot);
            continue;
        };
        let at = match groups
            .iter()
            .position(|g| g.proj == *proj && g.n1 == k.n1 && g.nz == *nz && g.poly == poly.as_slice())
        {
            Some(at) => at,
            None => {
                groups.push(Group {
                    proj: *proj,
                    n1: k.n1,
                    nz: *nz,
                    poly,
                    block_len: params.len(),
                    ..Group::default()
                });
                groups.len() - 1
            }
        };
        let g = &mut groups[at];
        let block = match g.images.iter().position(|&i| i == cut.image) {
            Some(b) => b,
            None => {
                g.images.push(cut.image);
                g.params.extend_from_slice(params);
                g.images.len() - 1
            }
        };
        let crpix0 = [params[kernels::N_PIX0], params[kernels::N_PIX0 + 1]];
        g.origins.extend_from_slice(&[cut.x0 - crpix0[0], cut.y0 - crpix0[1]]);
        g.blocks.push(block as u32);
        g.slots.push(slot as u32);
    }
    for g in &groups {
        let grid = kernels::Grid {
            params: &g.params,
            block_len: g.block_len,
            poly: g.poly,
            n1: g.n1,
            proj: g.proj,
            nz: g.nz,
            origins: &g.origins,
            blocks: &g.blocks,
            slots: &g.slots,
            width,
            height,
        };
        kernels::grid::<F>(client, &grid, &out)?;
    }
    let host = kernels::host_list(client, &out)?;
    let mut host_points = host.len();
    if !host.is_empty() {
        let pixel = |i: u32| {
            let (slot, r) = (i as usize / per, i as usize % per);
            let c = cutouts[slot];
            (c.image, c.x0 + (r % width) as f64, c.y0 + (r / width) as f64)
        };
        log_host_points(&host, out.points, |j| {
            let (_, x, y) = pixel(host[j]);
            (x, y)
        });
        let mut values = vec![0.0; 2 * host.len()];
        let mut states = vec![0u32; host.len()];
        // by image: one wcslib call for each image's points
        let mut order: Vec<usize> = (0..host.len()).collect();
        order.sort_by_key(|&j| pixel(host[j]).0);
        for run in order.chunk_by(|&a, &b| pixel(host[a]).0 == pixel(host[b]).0) {
            let image = pixel(host[run[0]]).0;
            let px: Vec<f64> = run
                .iter()
                .flat_map(|&j| {
                    let (_, x, y) = pixel(host[j]);
                    [x, y]
                })
                .collect();
            let (v, s) = images[image].on_host(&px)?;
            for (m, &j) in run.iter().enumerate() {
                values[2 * j] = v[2 * m];
                values[2 * j + 1] = v[2 * m + 1];
                states[j] = s[m];
            }
        }
        kernels::scatter::<F>(client, &out, &values, &states)?;
    }
    if !by_host.is_empty() {
        // images the kernel does not compute: their planes by wcslib, uploaded
        let sub: Vec<Cutout> = by_host.iter().map(|&s| cutouts[s]).collect();
        let (planes, states) = planes_on_host(images, &sub, width, height)?;
        let slots: Vec<u32> = by_host.iter().map(|&s| s as u32).collect();
        kernels::write_planes::<F>(client, &out, &slots, &planes, &states)?;
        host_points += per * by_host.len();
    }
    Ok((out, host_points))
}

/// A group of cutouts that one grid launch computes.
#[derive(Default)]
struct Group<'a> {
    proj: u32,
    n1: usize,
    nz: usize,
    poly: &'a [f64],
    block_len: usize,
    images: Vec<usize>,
    params: Vec<f64>,
    origins: Vec<f64>,
    blocks: Vec<u32>,
    slots: Vec<u32>,
}

fn coordinate_planes(
    anchor: CubeTensor,
    images: &[DeviceWcs],
    cutouts: &[Cutout],
    width: usize,
    height: usize,
) -> Result<WorldOutput<Cube>> {
    let (client, device, dtype) = (anchor.client.clone(), anchor.device.clone(), anchor.dtype);
    let b = cutouts.len();
    let wide = computes_f64(&device);
    let shape = vec![b, 2, height, width];
    let state_shape = vec![b, height, width];
    let (world, state, host_points) = if wide {
        let (l, h) = planes_with::<f64>(&client, images, cutouts, width, height, true)?;
        let (w, s) = tensors::<f64>(&client, &device, l, shape, state_shape, dtype);
        (w, s, h)
    } else {
        let (l, h) = planes_with::<f32>(&client, images, cutouts, width, height, false)?;
        let (w, s) = tensors::<f32>(&client, &device, l, shape, state_shape, dtype);
        (w, s, h)
    };
    Ok(WorldOutput { world, state, host_points, host_list: Vec::new(), error: None })
}

impl WcsBackend for Cube {
    fn wcs_world_to_pixel(world: FloatTensor<Self>, wcs: &DeviceWcs) -> WorldOutput<Self> {
        let device = world.device.clone();
        transform(world, wcs, Direction::ToPixels).unwrap_or_else(|e| WorldOutput::failed(e, &device))
    }

    fn wcs_pixel_to_world(pixels: FloatTensor<Self>, wcs: &DeviceWcs, origin: [f64; 2]) -> WorldOutput<Self> {
        let device = pixels.device.clone();
        transform(pixels, wcs, Direction::ToWorld { origin }).unwrap_or_else(|e| WorldOutput::failed(e, &device))
    }

    fn wcs_coordinate_planes(
        anchor: FloatTensor<Self>,
        images: &[DeviceWcs],
        cutouts: &[Cutout],
        width: usize,
        height: usize,
    ) -> WorldOutput<Self> {
        let device = anchor.device.clone();
        coordinate_planes(anchor, images, cutouts, width, height).unwrap_or_else(|e| WorldOutput::failed(e, &device))
    }
}
