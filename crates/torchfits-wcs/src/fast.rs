//! The gnomonic (TAN) projection outside wcslib, from the parameters wcslib resolved: the same
//! formulas as wcslib's `linp2x`, `tanx2s` and `sphx2s` (and its degree trigonometry), without
//! their generality, for the survey-image case that dominates batches. Every other WCS goes
//! through wcslib. (The GPU kernel of torchfits-burn takes the same parameters.)

const D2R: f64 = std::f64::consts::PI / 180.0;
const R2D: f64 = 180.0 / std::f64::consts::PI;

/// Whether `a` is an exact multiple of `m` (wcslib's `fmod(a, m) == 0`, without a division's
/// remainder: the quotient rounded back).
#[inline]
fn multiple_of(a: f64, m: f64) -> bool {
    (a / m).round() * m == a
}

/// wcslib's `sincosd`: exact at multiples of 90 degrees.
#[inline]
fn sincosd(a: f64) -> (f64, f64) {
    if multiple_of(a, 90.0) {
        let i = ((a / 90.0).abs() % 4.0) as i64;
        let (s, c) = match i {
            0 => (0.0, 1.0),
            1 => (1.0, 0.0),
            2 => (0.0, -1.0),
            _ => (-1.0, 0.0),
        };
        return (if a < 0.0 { -s } else { s }, c);
    }
    (a * D2R).sin_cos()
}

#[inline]
fn cosd(a: f64) -> f64 {
    sincosd(a).1
}

/// wcslib's `atan2d`.
#[inline]
fn atan2d(y: f64, x: f64) -> f64 {
    if y == 0.0 {
        if x >= 0.0 { 0.0 } else { 180.0 }
    } else if x == 0.0 {
        if y > 0.0 { 90.0 } else { -90.0 }
    } else {
        y.atan2(x) * R2D
    }
}

/// wcslib's `asind`.
#[inline]
fn asind(v: f64) -> f64 {
    if v <= -1.0 {
        -90.0
    } else if v == 0.0 {
        0.0
    } else if v >= 1.0 {
        90.0
    } else {
        v.asin() * R2D
    }
}

/// wcslib's `acosd`.
#[inline]
fn acosd(v: f64) -> f64 {
    if v >= 1.0 {
        0.0
    } else if v == 0.0 {
        90.0
    } else if v <= -1.0 {
        180.0
    } else {
        v.acos() * R2D
    }
}

/// The parameters wcslib resolved for a plain celestial WCS (2 axes, longitude and latitude, no
/// wcslib distortion; any projection), for transforms outside wcslib (the GPU kernel of
/// torchfits-burn): pixel (1-based) minus `crpix`, times `cd`, gives the projection-plane
/// coordinates (degrees) of the longitude and latitude axes; plus `offset`, they go through the
/// projection of radius `r0` and parameters `pv` to native spherical coordinates; `euler`
/// rotates the native sphere to the celestial one (wcslib's `cel.euler`: the pole's celestial
/// longitude, colatitude, native longitude, and the colatitude's cos and sin).
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ProjectionParameters {
    /// The projection's code (`*b"TAN"`, ...).
    pub projection: [u8; 3],
    /// World axis of the longitude (0 or 1).
    pub lng_axis: usize,
    /// World axis of the latitude.
    pub lat_axis: usize,
    /// CRPIX, pixel axes 1 and 2.
    pub crpix: [f64; 2],
    /// CDELT * PC, row-major (world axis by pixel axis), degrees per pixel.
    pub cd: [f64; 4],
    /// wcslib's fiducial offsets (x0, y0) of the projection plane (0 for the standard TAN).
    pub offset: [f64; 2],
    /// wcslib's Euler angles (degrees) and the cos and sin of the second.
    pub euler: [f64; 5],
    /// The radius of the generating sphere (wcslib's `r0`, 180/pi by default).
    pub r0: f64,
    /// The projection parameters PVi_0..29 of the latitude axis, with wcslib's defaults filled
    /// in (parameters the projection does not use are left as wcslib has them).
    pub pv: [f64; 30],
    /// ZPN: the polynomial's degree, and the zenith distance (radians) and radius of its first
    /// point of inflection (wcslib's `n`, `w[0]`, `w[1]`).
    pub zpn: (usize, [f64; 2]),
    /// wcslib's bounds-checking flags (7: all; astropy's default).
    pub bounds: i32,
}

impl ProjectionParameters {
    /// wcslib's normalisation of a celestial longitude `lng` (degrees) given the celestial
    /// longitude of the native pole `pole_lng` (`euler[0]`): into [0, 360] when `pole_lng` is not
    /// negative, [-360, 0] otherwise; the convention kernels that compute `lng - pole_lng` follow.
    pub fn normalise_longitude(pole_lng: f64, lng: f64) -> f64 {
        normalise_lng(pole_lng, lng)
    }

    /// From the shim's parameter block (see `tfw_celestial_params`).
    pub(crate) fn from_params(p: &[f64; wcs_sys::NPARAMS], projection: [u8; 3]) -> Option<ProjectionParameters> {
        let (lng, lat) = (p[0] as usize, p[1] as usize);
        if lng > 1 || lat > 1 || lng == lat {
            return None;
        }
        let mut pv = [0.0; 30];
        pv.copy_from_slice(&p[16..46]);
        Some(ProjectionParameters {
            projection,
            lng_axis: lng,
            lat_axis: lat,
            crpix: [p[2], p[3]],
            cd: [p[4], p[5], p[6], p[7]],
            offset: [p[9], p[10]],
            euler: [p[11], p[12], p[13], p[14], p[15]],
            r0: p[8],
            pv,
            zpn: (p[46].max(0.0) as usize, [p[47], p[48]]),
            bounds: p[49] as i32,
        })
    }
}

/// wcslib's normalisation of a celestial longitude: into [0, 360] when the native pole's
/// longitude `eul0` is not negative, [-360, 0] otherwise.
#[inline]
fn normalise_lng(eul0: f64, mut lng: f64) -> f64 {
    if eul0 >= 0.0 {
        if lng < 0.0 {
            lng += 360.0;
        }
    } else if lng > 0.0 {
        lng -= 360.0;
    }
    if lng > 360.0 {
        lng -= 360.0;
    } else if lng < -360.0 {
        lng += 360.0;
    }
    lng
}

/// The inverse of a row-major 2x2 matrix (NaN for a singular one).
fn invert(m: [f64; 4]) -> [f64; 4] {
    let det = m[0] * m[3] - m[1] * m[2];
    if det == 0.0 {
        return [f64::NAN; 4];
    }
    [m[3] / det, -m[1] / det, -m[2] / det, m[0] / det]
}

/// A celestial TAN WCS of two axes, resolved by wcslib.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Tan {
    lng: usize,
    lat: usize,
    crpix: [f64; 2],
    /// CDELT * PC, row-major.
    m: [f64; 4],
    r0: f64,
    x0: f64,
    y0: f64,
    eul: [f64; 5],
    /// sin and cos of eul[2], the native longitude of the celestial pole.
    sc2: (f64, f64),
    /// The inverse of `m`, row-major.
    inv: [f64; 4],
    /// wcslib's bounds checking (bit 0: a point behind the tangent plane is invalid).
    bounds: i32,
}

impl Tan {
    /// A TAN WCS from its resolved parameters.
    pub(crate) fn new(p: ProjectionParameters) -> Tan {
        Tan {
            lng: p.lng_axis,
            lat: p.lat_axis,
            crpix: p.crpix,
            m: p.cd,
            r0: p.r0,
            x0: p.offset[0],
            y0: p.offset[1],
            eul: p.euler,
            sc2: sincosd(p.euler[2]),
            inv: invert(p.cd),
            bounds: p.bounds,
        }
    }

    /// The 1-based pixel of world coordinates (lng, lat) in world-axis order (wcslib's
    /// `sphs2x`, `tans2x` and `linx2p`, with the native angles' sines and cosines taken straight
    /// from the rotated unit vector, as `p2s` does the other way), or None for a point the
    /// projection does not reach (on or behind the tangent plane's horizon) or a singular matrix.
    #[inline]
    #[expect(
        clippy::indexing_slicing,
        reason = "`lng` and `lat` are 0 and 1 in some order (`ProjectionParameters::from_params` refuses anything else)"
    )]
    pub(crate) fn s2p(&self, world: [f64; 2]) -> Option<[f64; 2]> {
        let (lng, lat) = (world[self.lng], world[self.lat]);
        let eul = &self.eul;
        let (sinlat, coslat) = sincosd(lat);
        let (sinlng, coslng) = sincosd(lng - eul[0]);
        // the point in the native frame: x, y along the native meridian plane, z toward the pole
        let mut x = sinlat * eul[4] - coslat * eul[3] * coslng;
        if x.abs() < 1.0e-5 {
            x = -cosd(lat + eul[1]) + coslat * eul[3] * (1.0 - coslng);
        }
        let y = -coslat * sinlng;
        let z = sinlat * eul[3] + coslat * eul[4] * coslng;
        if z == 0.0 || (z < 0.0 && self.bounds & 1 != 0) || !self.inv[0].is_finite() {
            return None;
        }
        // phi = eul[2] + atan2(y, x); the projection plane: r0 cot(theta) (sin phi, -cos phi)
        let (s2, c2) = self.sc2;
        let xj = self.r0 * (y * c2 + x * s2) / z - self.x0;
        let yj = -self.r0 * (x * c2 - y * s2) / z - self.y0;
        let mut img = [0.0; 2];
        img[self.lng] = xj;
        img[self.lat] = yj;
        let i = &self.inv;
        Some([i[0] * img[0] + i[1] * img[1] + self.crpix[0], i[2] * img[0] + i[3] * img[1] + self.crpix[1]])
    }

    /// World coordinates of 1-based pixel (px, py): (lng, lat) in world-axis order.
    #[inline]
    #[expect(
        clippy::indexing_slicing,
        reason = "`lng` and `lat` are 0 and 1 in some order (`ProjectionParameters::from_params` refuses anything else)"
    )]
    pub(crate) fn p2s(&self, px: f64, py: f64) -> [f64; 2] {
        // linp2x
        let (dx, dy) = (px - self.crpix[0], py - self.crpix[1]);
        let img = [self.m[0] * dx + self.m[1] * dy, self.m[2] * dx + self.m[3] * dy];
        // tanx2s
        let xj = img[self.lng] + self.x0;
        let yj = img[self.lat] + self.y0;
        let r2 = xj * xj + yj * yj;
        let (lng, lat) = if r2 == 0.0 || xj == 0.0 || self.eul[4] == 0.0 {
            // the exact special cases, as wcslib computes them
            let r = r2.sqrt();
            let phi = if r == 0.0 { 0.0 } else { atan2d(xj, -yj) };
            self.sphx2s(phi, atan2d(self.r0, r))
        } else {
            self.sphx2s_direct(xj, yj, r2)
        };
        let mut world = [0.0; 2];
        world[self.lng] = lng;
        world[self.lat] = lat;
        world
    }

    /// `sphx2s` for the common case, with the native angles' sines and cosines taken straight
    /// from the projection plane (phi = atan2(x, -y), theta = atan2(r0, r)) instead of through
    /// the angles: two fewer atan2 and sincos per point, the same values to a few ulp.
    #[inline]
    fn sphx2s_direct(&self, xj: f64, yj: f64, r2: f64) -> (f64, f64) {
        let eul = &self.eul;
        let r = r2.sqrt();
        let rho = (self.r0 * self.r0 + r2).sqrt();
        let (sinthe, costhe) = (self.r0 / rho, r / rho);
        let (s0, c0) = (xj / r, -yj / r);
        let (s2, c2) = self.sc2;
        // dphi = phi - eul[2]
        let sinphi = s0 * c2 - c0 * s2;
        let cosphi = c0 * c2 + s0 * s2;
        let mut x = sinthe * eul[4] - costhe * eul[3] * cosphi;
        if x.abs() < 1.0e-5 {
            let theta = atan2d(self.r0, r);
            x = -cosd(theta + eul[1]) + costhe * eul[3] * (1.0 - cosphi);
        }
        let y = -costhe * sinphi;
        let dlng = if x != 0.0 || y != 0.0 {
            atan2d(y, x)
        } else {
            let dphi = atan2d(xj, -yj) - eul[2];
            if eul[1] < 90.0 { dphi + 180.0 } else { -dphi }
        };
        let lng = normalise_lng(eul[0], eul[0] + dlng);
        let z = sinthe * eul[3] + costhe * eul[4] * cosphi;
        let lat = if z.abs() > 0.99 { acosd((x * x + y * y).sqrt()).copysign(z) } else { asind(z) };
        (lng, lat)
    }

    /// wcslib's `sphx2s` for one point.
    #[inline]
    fn sphx2s(&self, phi: f64, theta: f64) -> (f64, f64) {
        let eul = &self.eul;
        let normalise = |lng: f64| normalise_lng(eul[0], lng);
        if eul[4] == 0.0 {
            if eul[1] == 0.0 {
                let dlng = (eul[0] + 180.0 - eul[2]) % 360.0;
                return (normalise(phi + dlng), theta);
            }
            let dlng = (eul[0] + eul[2]) % 360.0;
            return (normalise(dlng - phi), -theta);
        }
        let (sinthe, costhe) = sincosd(theta);
        let (costhe3, costhe4) = (costhe * eul[3], costhe * eul[4]);
        let (sinthe3, sinthe4) = (sinthe * eul[3], sinthe * eul[4]);
        let dphi = phi - eul[2];
        let (sinphi, cosphi) = sincosd(dphi);
        let mut x = sinthe4 - costhe3 * cosphi;
        if x.abs() < 1.0e-5 {
            x = -cosd(theta + eul[1]) + costhe3 * (1.0 - cosphi);
        }
        let y = -costhe * sinphi;
        let dlng = if x != 0.0 || y != 0.0 {
            atan2d(y, x)
        } else if eul[1] < 90.0 {
            dphi + 180.0
        } else {
            -dphi
        };
        let lng = normalise(eul[0] + dlng);
        let lat = if multiple_of(dphi, 180.0) {
            let mut lat = theta + cosphi * eul[1];
            if lat > 90.0 {
                lat = 180.0 - lat;
            }
            if lat < -90.0 {
                lat = -180.0 - lat;
            }
            lat
        } else {
            let z = sinthe3 + costhe4 * cosphi;
            if z.abs() > 0.99 { acosd((x * x + y * y).sqrt()).copysign(z) } else { asind(z) }
        };
        (lng, lat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_direct_formulas_agree_with_the_angle_ones() {
        // a rotated TAN (eul[1] = 90 - dec0, eul[2] = 180) over a wide field
        let dec0: f64 = 33.0;
        let eul1 = 90.0 - dec0;
        let (s1, c1) = sincosd(eul1);
        let mut block = [0.0; wcs_sys::NPARAMS];
        block[..16].copy_from_slice(&[
            0.0, 1.0, 0.0, 0.0, -0.01, 0.002, 0.001, 0.01, R2D, 0.0, 0.0, 150.0, eul1, 180.0, c1, s1,
        ]);
        block[49] = 7.0;
        let t = Tan::new(ProjectionParameters::from_params(&block, *b"TAN").expect("a TAN"));
        let mut worst: f64 = 0.0;
        for i in -50..50 {
            for j in -50..50 {
                let (x, y) = (i as f64 * 37.3 + 0.25, j as f64 * 41.1 - 0.5);
                let img = [t.m[0] * x + t.m[1] * y, t.m[2] * x + t.m[3] * y];
                let r2 = img[0] * img[0] + img[1] * img[1];
                let a = t.sphx2s(atan2d(img[0], -img[1]), atan2d(t.r0, r2.sqrt()));
                let b = t.sphx2s_direct(img[0], img[1], r2);
                let d = (a.0 - b.0).abs().min(360.0 - (a.0 - b.0).abs()) + (a.1 - b.1).abs();
                worst = worst.max(d);
            }
        }
        assert!(worst < 1e-11, "worst difference {worst} deg");
    }
}
