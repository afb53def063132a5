//! The kernels' parameters for a WCS: which kernel computes it, and the constants wcslib
//! derives for its projection, from the parameters wcslib resolved
//! ([`torchfits_wcs::ProjectionParameters`]).

// Indexing: parameter blocks have their fixed length.
#![allow(clippy::indexing_slicing)]

use torchfits_wcs::{ProjectionParameters, Wcs};

use crate::kernels::{Kernel, Path};

/// The kernel for `wcs` on a device that computes f64 (`wide`) or not (then the offsets
/// kernel for the plain zenithal projections, if `offsets`); None when the kernel does not have
/// its projection (or its frame).
pub(crate) fn kernel_for(wcs: &Wcs, wide: bool, offsets: bool) -> Option<Kernel> {
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
        let mut params = vec![t.crpix[0], t.crpix[1], t.cd[0], t.cd[1], t.cd[2], t.cd[3]];
        params.push(e[3]); // sin(lat0) = cos(colatitude)
        params.push(e[4]); // cos(lat0)
        params.extend_from_slice(&split(e[0])); // the reference point's longitude
        params.extend_from_slice(&split(90.0 - e[1])); // and latitude
        params.push(f64::NAN);
        params.extend_from_slice(&sip_coeffs);
        return Some(Kernel { path: Path::Offsets { params, proj }, n1 });
    }
    let (proj, k, poly, nz) = native_constants(&t)?;
    // the CD rows in (longitude, latitude) order
    let cd = if t.lng_axis == 0 { t.cd } else { [t.cd[2], t.cd[3], t.cd[0], t.cd[1]] };
    let mut params = cd.to_vec();
    params.extend_from_slice(&t.offset);
    params.extend_from_slice(&k);
    params.extend_from_slice(&[e[2], e[3], e[4]]);
    params.extend_from_slice(&[t.crpix[0] - 1.0, t.crpix[1] - 1.0]);
    params.extend_from_slice(&split(e[0]));
    params.push(if t.lng_axis == 0 { 0.0 } else { 1.0 });
    params.push(f64::NAN);
    params.extend_from_slice(&sip_coeffs);
    Some(Kernel { path: Path::Native { params, poly, proj, nz, wide }, n1 })
}

/// `v` as f32 and the rest: their sum is `v` to f64 precision, and an f32 kernel that adds a
/// small offset to the rest first, then the f32 part, rounds once.
fn split(v: f64) -> [f64; 2] {
    let high = f64::from(v as f32);
    [high, v - high]
}

/// The general kernel's projection number and constants for `t` (wcslib's derived values,
/// from the parameters it resolved), or None when the kernel does not have the projection.
pub(crate) fn native_constants(t: &ProjectionParameters) -> Option<(u32, [f64; 8], Vec<f64>, usize)> {
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
