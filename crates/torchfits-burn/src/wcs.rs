//! Pixel to world on a GPU, for the celestial projections of wcslib's zenithal, cylindrical,
//! pseudo-cylindrical, conic and polyconic families (TAN, SIN, ARC, STG, ZEA, AZP, SZP, ZPN, AIR,
//! CYP, CEA, CAR, MER, SFL, PAR, MOL, AIT, COP, COE, COD, COO, BON, PCO) with SIP, from the
//! parameters wcslib resolved ([`torchfits_wcs::ProjectionParameters`]); every other WCS (more
//! than two axes, spectral or tabular axes, wcslib's own distortions, the quad-cube and HEALPix
//! projections) falls back to wcslib on the host, transparently (a `tracing` event at debug
//! level says so, as it says which points of a transform went to wcslib).
//!
//! Precision: where the device computes f64 correctly (found out once per device by running the
//! kernel on a probe WCS and comparing with wcslib: some devices lack f64, and Mesa's lavapipe
//! has it but returns 0 for its `sin`), the kernel runs in f64. Elsewhere it runs in f32,
//! arranged so that results stay within 1e-4 degree of wcslib: the sines and cosines of the
//! native latitude come from the projection plane without an angle near the pole, the longitude
//! comes back as an offset from the celestial pole's and the host adds that in f64, and the
//! plain zenithal case (TAN, the survey case) is computed in offsets from the reference point,
//! to a few 1e-7 degree. Points near a projection's limits, where f32 cannot tell valid from
//! invalid, or cannot hold 1e-4 degree, are computed by wcslib on the host.
//!
//! ```no_run
//! use torchfits_burn::wcs::{DeviceWcs, GpuDevice};
//!
//! # fn main() -> Result<(), torchfits_core::Error> {
//! let wcs = torchfits_core::FitsFile::open("image.fits")?.wcs(0)?;
//! let gpu = DeviceWcs::new(wcs, GpuDevice::Wgpu)?;
//! // RA/Dec planes of two 64x64 cutouts starting at pixels (100, 200) and (900, 40): [2, 2, 64, 64]
//! let planes = gpu.coordinate_grid(&[(100.0, 200.0), (900.0, 40.0)], 64, 64)?;
//! assert_eq!(planes.len(), 2 * 2 * 64 * 64);
//! // or any points (x first, 0-based), as Wcs::pixel_to_world
//! let mut world = vec![0.0; 4];
//! let status = gpu.pixel_to_world(&[10.0, 20.0, 4000.5, 17.25], &mut world)?;
//! println!("{} ({}): {world:?} {status:?}", gpu.wcs().projection(), gpu.precision());
//! # Ok(())
//! # }
//! ```

// Indexing: points are chunks of two values, parameter blocks have their fixed length,
// and the probe's and the host fallback's buffers are sized to the points they hold.
#![allow(clippy::indexing_slicing)]

use std::sync::Mutex;

use torchfits_format::{Error, ErrorKind, Result};
use torchfits_wcs::{ProjectionParameters, Wcs};

use crate::kernels::{HOST, INVALID};

/// Where the kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GpuDevice {
    /// The default wgpu adapter (feature `wgpu`).
    Wgpu,
    /// A CUDA device (feature `cuda`).
    Cuda(usize),
}

impl GpuDevice {
    /// `wgpu` or `cuda` (`cuda:N` for device N).
    pub fn parse(name: &str) -> Result<GpuDevice> {
        match name {
            "wgpu" => Ok(GpuDevice::Wgpu),
            "cuda" => Ok(GpuDevice::Cuda(0)),
            other => match other.strip_prefix("cuda:").and_then(|n| n.parse().ok()) {
                Some(n) => Ok(GpuDevice::Cuda(n)),
                None => Err(Error::new(ErrorKind::Parameter, format!("unknown device {other:?} (wgpu, cuda, cuda:N)"))),
            },
        }
    }

    fn client(self) -> Result<cubecl::client::Client> {
        match self {
            #[cfg(feature = "wgpu")]
            GpuDevice::Wgpu => Ok(cubecl::Device::Wgpu(Default::default()).client()),
            #[cfg(feature = "cuda")]
            GpuDevice::Cuda(n) => Ok(cubecl::Device::Cuda(cubecl::cuda::CudaDevice::new(n)).client()),
            #[allow(unreachable_patterns)]
            other => Err(Error::new(
                ErrorKind::Unsupported,
                format!("{other:?}: this build has no such runtime (features wgpu, cuda)"),
            )),
        }
    }
}

/// The general kernel's projection number and constants for `t` (wcslib's derived values,
/// from the parameters it resolved), or None when the kernel does not have the projection.
fn native_constants(t: &ProjectionParameters) -> Option<(u32, [f64; 8], Vec<f64>, usize)> {
    use crate::kernels::proj as p;
    let r0 = t.r0;
    let pv = &t.pv;
    let deg = std::f64::consts::PI / 180.0;
    let (sind, cosd, tand) = (|a: f64| (a * deg).sin(), |a: f64| (a * deg).cos(), |a: f64| (a * deg).tan());
    // degrees per projection-plane unit
    let w1 = 1.0 / (r0 * deg);
    let sign = |a: f64| if a < 0.0 { -1.0 } else { 1.0 };
    let mut k = [0.0; 8];
    let mut poly = vec![0.0];
    let mut nz = 0;
    let code = match &t.projection {
        b"TAN" => {
            k[0] = r0;
            p::TAN
        }
        b"SIN" => {
            k[..3].copy_from_slice(&[1.0 / r0, pv[1], pv[2]]);
            p::SIN
        }
        b"ARC" => {
            k[0] = w1;
            p::ARC
        }
        b"STG" => {
            k[0] = 1.0 / (2.0 * r0);
            p::STG
        }
        b"ZEA" => {
            k[0] = 1.0 / (2.0 * r0);
            p::ZEA
        }
        b"AZP" => {
            k[..4].copy_from_slice(&[r0 * (pv[1] + 1.0), pv[1], cosd(pv[2]), sind(pv[2])]);
            p::AZP
        }
        b"SZP" => {
            let (mu, phic, thetac) = (pv[1], pv[2], pv[3]);
            k[..4].copy_from_slice(&[
                1.0 / r0,
                -mu * cosd(thetac) * sind(phic),
                mu * cosd(thetac) * cosd(phic),
                mu * sind(thetac) + 1.0,
            ]);
            p::SZP
        }
        b"ZPN" => {
            let (n, [zd, r]) = t.zpn;
            if n == 0 || n >= 30 {
                return None;
            }
            k[0] = 1.0 / r0;
            k[2] = zd;
            k[3] = r;
            poly = pv[..=n].to_vec();
            nz = n;
            p::ZPN
        }
        b"AIR" => {
            let (a1, a2) = if pv[1] == 90.0 {
                (-0.5, 1.0)
            } else if pv[1] > -90.0 {
                let c = cosd((90.0 - pv[1]) / 2.0);
                let a1 = c.ln() * (c * c) / (1.0 - c * c);
                (a1, 0.5 - a1)
            } else {
                return None;
            };
            k[..4].copy_from_slice(&[2.0 * r0, a1, a2 * 1.0e-4, (180.0 / std::f64::consts::PI) / a2]);
            p::AIR
        }
        b"CYP" => {
            k[..3].copy_from_slice(&[w1 / pv[2], 1.0 / (r0 * (pv[1] + pv[2])), pv[1]]);
            p::CYP
        }
        b"CEA" => {
            k[..2].copy_from_slice(&[w1, pv[1] / r0]);
            p::CEA
        }
        b"CAR" => {
            k[0] = w1;
            p::CAR
        }
        b"MER" | b"SFL" => {
            k[..2].copy_from_slice(&[w1, 1.0 / r0]);
            if &t.projection == b"MER" { p::MER } else { p::SFL }
        }
        b"BON" if pv[1] == 0.0 => {
            // Bonne's with theta1 = 0 is Sanson-Flamsteed (as wcslib)
            k[..2].copy_from_slice(&[w1, 1.0 / r0]);
            p::SFL
        }
        b"PAR" => {
            k[..2].copy_from_slice(&[w1, 1.0 / (std::f64::consts::PI * r0)]);
            p::PAR
        }
        b"MOL" => {
            k[..3].copy_from_slice(&[90.0 / r0, 1.0 / r0, 1.0 / (std::f64::consts::SQRT_2 * r0)]);
            p::MOL
        }
        b"AIT" => {
            k[..4].copy_from_slice(&[1.0 / (4.0 * r0 * r0), 1.0 / (16.0 * r0 * r0), 1.0 / (2.0 * r0), 1.0 / r0]);
            p::AIT
        }
        b"COP" => {
            let (sigma, delta) = (pv[1], pv[2]);
            let c = sind(sigma);
            let w3 = r0 * cosd(delta);
            let w5 = 1.0 / tand(sigma);
            k = [w3 * w5, 1.0 / c, sigma, w5, 1.0 / w3, 0.0, 0.0, sign(sigma)];
            p::COP
        }
        b"COE" => {
            let (sigma, delta) = (pv[1], pv[2]);
            let (t1, t2) = (sigma - delta, sigma + delta);
            let c = (sind(t1) + sind(t2)) / 2.0;
            let w3 = r0 / c;
            let w4 = 1.0 + sind(t1) * sind(t2);
            let w5 = 2.0 * c;
            let y0 = w3 * (w4 - w5 * sind(sigma)).sqrt();
            k = [y0, 1.0 / c, w3 * (w4 + w5).sqrt(), w3 * w3 * w4, 1.0 / (2.0 * r0 * w3), 0.0, 0.0, sign(sigma)];
            p::COE
        }
        b"COD" => {
            let (sigma, delta) = (pv[1], pv[2]);
            let c = if delta == 0.0 { r0 * sind(sigma) * deg } else { r0 * sind(sigma) * sind(delta) / delta };
            let y0 = r0 * cosd(delta) * cosd(sigma) / c;
            k = [y0, 1.0 / c, y0 + sigma, 0.0, 0.0, 0.0, 0.0, sign(sigma)];
            p::COD
        }
        b"COO" => {
            let (sigma, delta) = (pv[1], pv[2]);
            let (t1, t2) = (sigma - delta, sigma + delta);
            let tan1 = tand((90.0 - t1) / 2.0);
            let cos1 = cosd(t1);
            let c = if t1 == t2 { sind(t1) } else { (cosd(t2) / cos1).ln() / (tand((90.0 - t2) / 2.0) / tan1).ln() };
            let psi = r0 * (cos1 / c) / tan1.powf(c);
            let y0 = psi * tand((90.0 - sigma) / 2.0).powf(c);
            k = [y0, 1.0 / c, 1.0 / psi, 0.0, 0.0, 0.0, 0.0, sign(sigma)];
            p::COO
        }
        b"BON" => {
            let t1 = pv[1];
            let a = r0 * deg;
            let y0 = r0 * (cosd(t1) / sind(t1) + t1 * deg);
            k = [y0, a, 1.0 / r0, 0.0, 0.0, 0.0, 0.0, sign(t1)];
            p::BON
        }
        b"PCO" => {
            k[..4].copy_from_slice(&[r0 * deg, w1, 2.0 * r0, r0]);
            p::PCO
        }
        _ => return None,
    };
    k.iter().all(|v| v.is_finite()).then_some((code, k, poly, nz))
}

/// How the device computes a WCS.
#[derive(Debug, Clone)]
enum Path {
    /// The plain zenithal projections in f32 offsets from the reference point
    /// ([`crate::kernels::tan_offsets`]): `params` as that kernel takes them, `lat0` = CRVAL's latitude.
    Offsets { params: Vec<f32>, proj: u32, lat0: f64 },
    /// The general kernel ([`crate::kernels::native`]), in f64 when `wide`.
    Native { params: Vec<f64>, poly: Vec<f64>, proj: u32, nz: usize, wide: bool },
}

/// What the kernel needs of a WCS.
#[derive(Debug, Clone)]
struct Kernel {
    path: Path,
    /// SIP's order + 1 (0: none).
    n1: usize,
    /// CRPIX (pixel axes 1, 2).
    crpix: [f64; 2],
    /// The celestial longitude the kernel's offsets are from (the reference point's for
    /// `Offsets`, the native pole's for `Native`).
    lng0: f64,
    /// World axis of the longitude.
    lng_axis: usize,
}

impl Kernel {
    /// The kernel for `wcs` on a device that computes f64 (`wide`) or not (then the offsets
    /// kernel for the plain zenithal projections, if `offsets`); None when the kernel does not
    /// have its projection (or its frame).
    fn of(wcs: &Wcs, wide: bool, offsets: bool) -> Option<Kernel> {
        let t = wcs.projection_parameters()?;
        if t.bounds != 7 || !t.r0.is_finite() || t.r0 == 0.0 {
            return None;
        }
        let mut sip_coeffs: Vec<f64> = Vec::new();
        let mut n1 = 0;
        if let Some(sip) = wcs.sip() {
            if sip.crpix != t.crpix {
                return None;
            }
            n1 = sip.a.len().max(sip.b.len());
            for c in [sip.a, sip.b] {
                for p in 0..n1 {
                    for q in 0..n1 {
                        sip_coeffs.push(c.get(p).and_then(|r| r.get(q)).copied().unwrap_or(0.0));
                    }
                }
            }
        }
        let e = t.euler;
        let zenithal = match &t.projection {
            b"TAN" => Some(0),
            b"SIN" if t.pv[1] == 0.0 && t.pv[2] == 0.0 => Some(1),
            b"ARC" => Some(2),
            b"STG" => Some(3),
            b"ZEA" => Some(4),
            _ => None,
        };
        let standard = t.lng_axis == 0
            && t.offset == [0.0, 0.0]
            && e[2] == 180.0
            && e[1] > 0.0
            && e[1] < 180.0
            && (t.r0 - 180.0 / std::f64::consts::PI).abs() < 1e-12;
        if let (Some(proj), false, true, true) = (zenithal, wide, standard, offsets) {
            let mut params: Vec<f32> =
                [t.crpix[0], t.crpix[1], t.cd[0], t.cd[1], t.cd[2], t.cd[3]].iter().map(|&v| v as f32).collect();
            params.push(e[3] as f32); // sin(lat0) = cos(colatitude)
            params.push(e[4] as f32); // cos(lat0)
            params.extend(sip_coeffs.iter().map(|&v| v as f32));
            return Some(Kernel {
                path: Path::Offsets { params, proj, lat0: 90.0 - e[1] },
                n1,
                crpix: t.crpix,
                lng0: e[0],
                lng_axis: 0,
            });
        }
        let (proj, k, poly, nz) = native_constants(&t)?;
        // the CD rows in (longitude, latitude) order
        let cd = if t.lng_axis == 0 { t.cd } else { [t.cd[2], t.cd[3], t.cd[0], t.cd[1]] };
        let mut params = cd.to_vec();
        params.extend_from_slice(&t.offset);
        params.extend_from_slice(&k);
        params.extend_from_slice(&[e[2], e[3], e[4]]);
        params.extend_from_slice(&sip_coeffs);
        Some(Kernel {
            path: Path::Native { params, poly, proj, nz, wide },
            n1,
            crpix: t.crpix,
            lng0: e[0],
            lng_axis: t.lng_axis,
        })
    }
}

/// wcslib's normalisation of a celestial longitude `eul0 + dlng`.
fn normalise_lng(eul0: f64, dlng: f64) -> f64 {
    ProjectionParameters::normalise_longitude(eul0, eul0 + dlng)
}

/// Says (at debug level) how many of `total` points the kernel left to wcslib on the host, and
/// the first few of them (0-based pixel x, y).
fn log_host_points(host: &[usize], total: usize, pixel: impl Fn(usize) -> (f64, f64)) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    let first: Vec<String> = host
        .iter()
        .take(5)
        .map(|&i| {
            let (x, y) = pixel(i);
            format!("#{i} ({x}, {y})")
        })
        .collect();
    tracing::debug!(
        "{} of {total} points to wcslib on the host (beyond the kernel's reach, or f32 short of 1e-4 degree): {}{}",
        host.len(),
        first.join(", "),
        if host.len() > first.len() { ", ..." } else { "" }
    );
}

/// Whether `device` computes the kernel in f64 as wcslib does (found once per device).
fn computes_f64(device: GpuDevice, client: &cubecl::client::Client) -> bool {
    static KNOWN: Mutex<Vec<(GpuDevice, bool)>> = Mutex::new(Vec::new());
    if let Some((_, ok)) = KNOWN.lock().map(|k| k.iter().find(|(d, _)| *d == device).copied()).ok().flatten() {
        return ok;
    }
    let ok = probe_f64(client);
    if let Ok(mut k) = KNOWN.lock() {
        k.push((device, ok));
    }
    tracing::debug!(
        "{device:?} {} f64 as wcslib does: the kernel runs in {}",
        if ok { "computes" } else { "does not compute" },
        if ok { "f64" } else { "f32" }
    );
    ok
}

/// Runs the kernel in f64 on probe WCSs (oblique all-sky maps whose projections use every
/// function the kernel calls: AIT sines, cosines, square roots and arc tangents, MER exponentials,
/// COO powers, AIR logarithms) and compares with wcslib at 1e-9 degree.
fn probe_f64(client: &cubecl::client::Client) -> bool {
    use cubecl::ir::{ElemType, FloatKind};
    if !client.properties().supports_type(ElemType::Float(FloatKind::F64)) {
        return false;
    }
    let pixels: Vec<f64> =
        (0..48).flat_map(|j| (0..64).flat_map(move |i| [i as f64 * 5.7 - 3.0, j as f64 * 3.9 - 2.0])).collect();
    for (code, pv) in [("AIT", None), ("MER", None), ("COO", Some((2, 45.0))), ("AIR", Some((1, 45.0)))] {
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
            // COO: PV2_1 (sigma) and PV2_2 (delta); AIR: PV2_1 (theta_b)
            cards.push(("PV2_1".into(), v.into()));
            if m == 2 {
                cards.push(("PV2_2".into(), 10.0.into()));
            }
        }
        for (k, v) in cards {
            if h.set(&k, v, None).is_err() {
                return false;
            }
        }
        let Ok(wcs) = Wcs::from_header(&h) else { return false };
        let Some(kernel) = Kernel::of(&wcs, true, false) else { return false };
        let mut want = vec![0.0; pixels.len()];
        let Ok(_) = wcs.pixel_to_world(&pixels, &mut want) else { return false };
        // a device without f64 may fail the launch itself
        let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut got = vec![0.0; pixels.len()];
            run_native(&kernel, client, &pixels, &mut got).map(|state| (got, state))
        }));
        let Ok(Ok((got, state))) = got else { return false };
        let agree = want.chunks(2).zip(got.chunks(2)).zip(&state).all(|((w, g), &s)| {
            if s == 2 {
                return true;
            }
            if w[0].is_nan() || s == 1 {
                return w[0].is_nan() && s == 1;
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

/// Runs the general kernel of `k` over the points of `pixels` (0-based, x first): world
/// coordinates in `world` ([`HOST`] where the host must compute: both of the pair), and per
/// point 0 valid, 1 invalid (world NaN), 2 for the host.
fn run_native(k: &Kernel, client: &cubecl::client::Client, pixels: &[f64], world: &mut [f64]) -> Result<Vec<u8>> {
    let Path::Native { params, poly, proj, nz, wide } = &k.path else {
        return Err(Error::new(ErrorKind::Parameter, "not the general kernel"));
    };
    let uv: Vec<f64> =
        pixels.chunks_exact(2).flat_map(|p| [p[0] + 1.0 - k.crpix[0], p[1] + 1.0 - k.crpix[1]]).collect();
    let launch = crate::kernels::NativeLaunch { pix: &uv, params, poly, n1: k.n1, proj: *proj, nz: *nz, grid: (0, 0) };
    let out = if *wide {
        crate::kernels::native::<f64>(client, &launch)?
    } else {
        crate::kernels::native::<f32>(client, &launch)?
    };
    Ok(k.place(&out, world))
}

impl Kernel {
    /// The general kernel's (longitude offset, latitude) pairs `out` into `world` (world-axis
    /// order, the pole's longitude added); per point 0 valid, 1 invalid, 2 for the host.
    fn place(&self, out: &[f64], world: &mut [f64]) -> Vec<u8> {
        let (a, b) = if self.lng_axis == 0 { (0, 1) } else { (1, 0) };
        out.chunks_exact(2)
            .zip(world.chunks_exact_mut(2))
            .map(|(o, w)| {
                if o[0] >= f64::from(HOST) {
                    2
                } else if o[0] <= f64::from(INVALID) {
                    w.fill(f64::NAN);
                    1
                } else {
                    w[a] = normalise_lng(self.lng0, o[0]);
                    w[b] = o[1];
                    0
                }
            })
            .collect()
    }
}

/// A WCS ready to transform on a GPU (falling back to the CPU where the kernel does not apply).
pub struct DeviceWcs {
    wcs: Wcs,
    kernel: Option<Kernel>,
    client: Option<cubecl::client::Client>,
    /// wcslib's status of an invalid celestial point (both axes flagged).
    invalid_status: i32,
}

impl std::fmt::Debug for DeviceWcs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceWcs")
            .field("wcs", &self.wcs)
            .field("on_device", &self.kernel.is_some())
            .field("precision", &self.precision())
            .finish()
    }
}

impl DeviceWcs {
    /// `wcs` on `device`. A WCS the kernel does not compute is transformed on the CPU by wcslib.
    pub fn new(wcs: Wcs, device: GpuDevice) -> Result<DeviceWcs> {
        let mut kernel = None;
        let mut client = None;
        if wcs.projection_parameters().is_some() {
            let c = device.client()?;
            let wide = computes_f64(device, &c);
            kernel = Kernel::of(&wcs, wide, true);
            if kernel.is_some() {
                client = Some(c);
            }
        }
        if kernel.is_none() {
            tracing::debug!(
                "the GPU kernel does not compute this WCS (projection {:?}, {} axes): wcslib on the host",
                wcs.projection(),
                wcs.naxis()
            );
        }
        Ok(DeviceWcs { wcs, kernel, client, invalid_status: 3 })
    }

    /// Whether the kernel computes this WCS (rather than wcslib on the host).
    pub fn on_device(&self) -> bool {
        self.kernel.is_some()
    }

    /// The kernel's float type: `"f64"`, `"f32"`, or `"host"` (wcslib on the CPU).
    pub fn precision(&self) -> &'static str {
        match &self.kernel {
            Some(Kernel { path: Path::Native { wide: true, .. }, .. }) => "f64",
            Some(_) => "f32",
            None => "host",
        }
    }

    /// The WCS.
    pub fn wcs(&self) -> &Wcs {
        &self.wcs
    }

    /// Pixel to world for `pixels.len() / 2` points (x first, 0-based), as
    /// [`Wcs::pixel_to_world`]: uploaded, transformed on the device, read back. Returns the
    /// per-point status (0: valid).
    pub fn pixel_to_world(&self, pixels: &[f64], world: &mut [f64]) -> Result<Vec<i32>> {
        let _span = tracing::debug_span!("device_pixel_to_world", points = pixels.len() / 2).entered();
        let (Some(k), Some(client)) = (&self.kernel, &self.client) else {
            tracing::debug!(points = pixels.len() / 2, "every point to wcslib on the host (no kernel for this WCS)");
            return self.wcs.pixel_to_world(pixels, world);
        };
        if !pixels.len().is_multiple_of(2) || world.len() != pixels.len() {
            return Err(Error::new(ErrorKind::Parameter, "pixels and world must hold the same (x, y) pairs"));
        }
        let n = pixels.len() / 2;
        if n == 0 {
            return Ok(Vec::new());
        }
        let state: Vec<u8> = match &k.path {
            Path::Offsets { params, proj, lat0 } => {
                let pix: Vec<f32> = pixels.iter().map(|&p| p as f32).collect();
                let offsets = crate::kernels::tan_offsets(client, &pix, params, k.n1, *proj)?;
                world
                    .chunks_exact_mut(2)
                    .zip(offsets.chunks_exact(2))
                    .map(|(w, o)| {
                        if o[0] >= HOST {
                            // beyond the hemisphere the kernel's formulas reach: wcslib on the host
                            return 2;
                        }
                        w[0] = normalise_lng(k.lng0, f64::from(o[0]));
                        w[1] = lat0 + f64::from(o[1]);
                        0
                    })
                    .collect()
            }
            Path::Native { .. } => run_native(k, client, pixels, world)?,
        };
        let mut status = vec![0; n];
        let mut host: Vec<usize> = Vec::new();
        for (i, (&s, p)) in state.iter().zip(pixels.chunks_exact(2)).enumerate() {
            if !(p[0].is_finite() && p[1].is_finite()) {
                // as wcslib: NaN in, NaN out
                world[2 * i] = f64::NAN;
                world[2 * i + 1] = f64::NAN;
            } else if s == 2 {
                host.push(i);
            } else if s == 1 {
                status[i] = self.invalid_status;
            }
        }
        self.on_host(&host, pixels, world, &mut status)?;
        Ok(status)
    }

    /// wcslib on the host for the points `host` of `pixels`.
    fn on_host(&self, host: &[usize], pixels: &[f64], world: &mut [f64], status: &mut [i32]) -> Result<()> {
        if host.is_empty() {
            return Ok(());
        }
        log_host_points(host, pixels.len() / 2, |i| (pixels[2 * i], pixels[2 * i + 1]));
        let some: Vec<f64> = host.iter().flat_map(|&i| [pixels[2 * i], pixels[2 * i + 1]]).collect();
        let mut back = vec![0.0; some.len()];
        let st = self.wcs.pixel_to_world(&some, &mut back)?;
        for (j, &i) in host.iter().enumerate() {
            world[2 * i] = back[2 * j];
            world[2 * i + 1] = back[2 * j + 1];
            status[i] = st[j];
        }
        Ok(())
    }

    /// The world coordinates of every pixel of `origins.len()` cutouts of `width` x `height`
    /// pixels, in one launch: cutout `c` starts at the 0-based pixel `origins[c]` (x, y). Returns
    /// `[cutouts, 2, height, width]` planes in C order, the longitude plane then the latitude
    /// plane of each cutout (world-axis order), degrees, NaN where the WCS is invalid. The pixel
    /// coordinates are made on the device (nothing but the origins is uploaded).
    pub fn coordinate_grid(&self, origins: &[(f64, f64)], width: usize, height: usize) -> Result<Vec<f32>> {
        let plane = width.checked_mul(height).ok_or_else(|| Error::new(ErrorKind::Parameter, "grid too large"))?;
        let total = plane
            .checked_mul(2)
            .and_then(|p| p.checked_mul(origins.len()))
            .ok_or_else(|| Error::new(ErrorKind::Parameter, "grid too large"))?;
        let mut planes = vec![0f32; total];
        if total == 0 {
            return Ok(planes);
        }
        let native = match (&self.kernel, &self.client) {
            (Some(k), Some(c)) => match &k.path {
                Path::Native { .. } => Some((k.clone(), c)),
                // the grid runs the general kernel (in f32 on this device) for every projection
                Path::Offsets { .. } => Kernel::of(&self.wcs, false, false).map(|k| (k, c)),
            },
            _ => None,
        };
        let mut world = vec![0.0; 2 * plane * origins.len()];
        let mut state = vec![2u8; plane * origins.len()];
        if let Some((k, client)) = native {
            let Path::Native { params, poly, proj, nz, wide } = &k.path else {
                return Err(Error::new(ErrorKind::Parameter, "not the general kernel"));
            };
            let uv: Vec<f64> =
                origins.iter().flat_map(|&(x, y)| [x + 1.0 - k.crpix[0], y + 1.0 - k.crpix[1]]).collect();
            let launch = crate::kernels::NativeLaunch {
                pix: &uv,
                params,
                poly,
                n1: k.n1,
                proj: *proj,
                nz: *nz,
                grid: (width, height),
            };
            let out = if *wide {
                crate::kernels::native::<f64>(client, &launch)?
            } else {
                crate::kernels::native::<f32>(client, &launch)?
            };
            state = k.place(&out, &mut world);
        }
        let host: Vec<usize> = (0..state.len()).filter(|&i| state[i] == 2).collect();
        if !host.is_empty() {
            log_host_points(&host, state.len(), |i| {
                let (c, r) = (i / plane, i % plane);
                (origins[c].0 + (r % width) as f64, origins[c].1 + (r / width) as f64)
            });
            let pixels: Vec<f64> = host
                .iter()
                .flat_map(|&i| {
                    let (c, r) = (i / plane, i % plane);
                    let (x0, y0) = origins[c];
                    [x0 + (r % width) as f64, y0 + (r / width) as f64]
                })
                .collect();
            let mut back = vec![0.0; pixels.len()];
            self.wcs.pixel_to_world(&pixels, &mut back)?;
            for (j, &i) in host.iter().enumerate() {
                world[2 * i] = back[2 * j];
                world[2 * i + 1] = back[2 * j + 1];
            }
        }
        for (c, out) in planes.chunks_exact_mut(2 * plane).enumerate() {
            let (lng, lat) = out.split_at_mut(plane);
            for r in 0..plane {
                lng[r] = world[2 * (c * plane + r)] as f32;
                lat[r] = world[2 * (c * plane + r) + 1] as f32;
            }
        }
        Ok(planes)
    }
}
