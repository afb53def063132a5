//! The wavelength of each sample of a spectrum: from the spectral WCS keywords of its HDU, from
//! an HDU of wavelengths, or from an array column beside the flux.

use torchfits_core::{Error, ErrorKind, HduSelector, Header, Result};

/// Where a spectrum's wavelengths come from ([`crate::SpectraBuilder::wavelength`]). The dataset
/// gives them in vacuum Ångström whatever the file's unit and medium ([`WavelengthFrame`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Wavelength {
    /// The spectral WCS of the flux HDU's first axis (the samples of each row): linear
    /// (`CRVAL1`, `CDELT1` or `CD1_1`, `CRPIX1`; `CTYPE1` `WAVE`, `AWAV`, `LINEAR` or none),
    /// logarithmic as FITS WCS paper III writes it (`CTYPE1 = 'WAVE-LOG'`), log10-linear as IRAF
    /// and SDSS write it (`DC-FLAG = 1`, or `COEFF0`/`COEFF1`).
    Header,
    /// A one-dimensional image HDU of wavelengths, one per sample (DESI's `B_WAVELENGTH`).
    Hdu(HduSelector),
    /// An array column of the spectra's table, one grid per row (spectra in table columns only).
    Column(String),
}

/// The wavelengths of samples `0..n` from `header`'s spectral WCS on axis 1.
pub(crate) fn from_header(header: &Header, n: usize) -> Result<Vec<f64>> {
    let missing = |what: &str| Error::new(ErrorKind::Parameter, format!("no spectral WCS in the header: {what}"));
    let at = |f: &dyn Fn(f64) -> f64| -> Result<Vec<f64>> {
        let grid: Vec<f64> = (0..n).map(|i| f(i as f64)).collect();
        match grid.iter().find(|v| !v.is_finite() || **v <= 0.0) {
            Some(v) => Err(Error::new(ErrorKind::Parameter, format!("the spectral WCS gives a wavelength of {v}"))),
            None => Ok(grid),
        }
    };
    if let (Some(c0), Some(c1)) = (header.get_f64("COEFF0"), header.get_f64("COEFF1")) {
        return at(&|i| 10f64.powf(c0 + c1 * i));
    }
    let crval = header.get_f64("CRVAL1").ok_or_else(|| missing("CRVAL1 is absent"))?;
    let step = header
        .get_f64("CDELT1")
        .or_else(|| header.get_f64("CD1_1"))
        .ok_or_else(|| missing("CDELT1 and CD1_1 absent"))?;
    let crpix = header.get_f64("CRPIX1").unwrap_or(1.0);
    let ctype = header.get_str("CTYPE1").unwrap_or("").trim().to_ascii_uppercase();
    // the FITS pixel number of sample i is i + 1
    let offset = move |i: f64| i + 1.0 - crpix;
    if ctype.ends_with("-LOG") {
        if crval <= 0.0 {
            return Err(Error::new(ErrorKind::Parameter, format!("a {ctype} axis with CRVAL1 = {crval}")));
        }
        return at(&|i| crval * (step * offset(i) / crval).exp());
    }
    if !(ctype.is_empty() || ctype == "LINEAR" || ctype.starts_with("WAVE") || ctype.starts_with("AWAV")) {
        return Err(Error::new(ErrorKind::Parameter, format!("the first axis is {ctype:?}, not a wavelength")));
    }
    if header.get_i64("DC-FLAG") == Some(1) {
        return at(&|i| 10f64.powf(crval + step * offset(i)));
    }
    at(&|i| crval + step * offset(i))
}

/// The unit and medium of a file's wavelengths: what the dataset converts from, to vacuum
/// Ångström ([`crate::SpectraBuilder::wavelength_frame`] overrides what the file says).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WavelengthFrame {
    /// Ångström per unit of the file's values (1 for Å, 10 for nm, 1e4 for µm).
    pub angstrom_per_unit: f64,
    /// Whether they are wavelengths in air (converted to vacuum with the Ciddor (1996)
    /// refractive index, as SDSS's `airtovac` does, above 2000 Å; below, air and vacuum agree
    /// to the precision of the formula's fit and values are kept).
    pub air: bool,
}

impl Default for WavelengthFrame {
    /// Vacuum Ångström.
    fn default() -> Self {
        WavelengthFrame { angstrom_per_unit: 1.0, air: false }
    }
}

impl WavelengthFrame {
    /// A frame from a FITS unit string (`Angstrom`, `nm`, `um`, `m`, ...) and the medium.
    pub fn new(unit: &str, air: bool) -> Result<Self> {
        Ok(WavelengthFrame { angstrom_per_unit: angstrom_per(unit)?, air })
    }

    /// What `header` says of the wavelengths of its first axis (or its pixel values, for an HDU
    /// of wavelengths): `CUNIT1` or else `BUNIT` (Ångström where both are absent, by the usual
    /// convention), in air where `CTYPE1` is `AWAV` or `AIRORVAC` is `air` (SDSS).
    pub(crate) fn of_header(header: &Header) -> Result<Self> {
        let unit = header.get_str("CUNIT1").or_else(|| header.get_str("BUNIT")).unwrap_or("Angstrom");
        let ctype = header.get_str("CTYPE1").unwrap_or("").trim().to_ascii_uppercase();
        let medium = header.get_str("AIRORVAC").unwrap_or("").trim().to_ascii_lowercase();
        WavelengthFrame::new(unit, ctype.starts_with("AWAV") || medium == "air")
    }

    /// `values` in vacuum Ångström.
    pub(crate) fn to_vacuum_angstrom(self, values: &mut [f64]) {
        for v in values {
            *v *= self.angstrom_per_unit;
            if self.air {
                *v = air_to_vacuum(*v);
            }
        }
    }
}

/// Ångström per unit of a FITS unit string.
fn angstrom_per(unit: &str) -> Result<f64> {
    let scale = match unit.trim() {
        "Angstrom" | "angstrom" | "ANGSTROM" | "Angstroms" | "AA" | "A" | "0.1nm" | "" => 1.0,
        "nm" | "NM" | "nanometer" | "nanometre" => 10.0,
        "um" | "UM" | "micron" | "microns" | "micrometer" | "micrometre" => 1e4,
        "mm" => 1e7,
        "cm" => 1e8,
        "m" | "M" | "meter" | "metre" => 1e10,
        other => {
            return Err(Error::new(ErrorKind::Parameter, format!("{other:?} is not a unit of wavelength")));
        }
    };
    Ok(scale)
}

/// A wavelength in air (Ångström) in vacuum: the Ciddor (1996) refractive index as SDSS's
/// `airtovac` writes it; unchanged below 2000 Å.
pub(crate) fn air_to_vacuum(air: f64) -> f64 {
    if air < 2000.0 {
        return air;
    }
    let sigma2 = (1e4 / air).powi(2);
    air * (1.0 + 5.792105e-2 / (238.0185 - sigma2) + 1.67917e-3 / (57.362 - sigma2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(cards: &[(&str, f64)], ctype: Option<&str>) -> Header {
        let mut h = Header::new();
        for (k, v) in cards {
            h.set(k, *v, None).expect("set");
        }
        if let Some(t) = ctype {
            h.set("CTYPE1", t, None).expect("set");
        }
        h
    }

    #[test]
    fn linear_log_and_log10_axes() {
        let linear =
            from_header(&header(&[("CRVAL1", 3600.0), ("CDELT1", 0.8), ("CRPIX1", 1.0)], None), 3).expect("linear");
        assert_eq!(linear, vec![3600.0, 3600.8, 3601.6]);
        let shifted =
            from_header(&header(&[("CRVAL1", 3600.0), ("CD1_1", 1.0), ("CRPIX1", 2.0)], Some("WAVE")), 2).expect("cd");
        assert_eq!(shifted, vec![3599.0, 3600.0]);
        let log = from_header(&header(&[("CRVAL1", 4000.0), ("CDELT1", 4.0), ("CRPIX1", 1.0)], Some("WAVE-LOG")), 2)
            .expect("log");
        assert_eq!(log[0], 4000.0);
        assert!((log[1] - 4000.0 * (4.0f64 / 4000.0).exp()).abs() < 1e-9);
        let sdss = from_header(&header(&[("COEFF0", 3.5791), ("COEFF1", 1e-4)], None), 2).expect("sdss");
        assert!((sdss[1] / sdss[0] - 10f64.powf(1e-4)).abs() < 1e-12);
        let mut iraf = header(&[("CRVAL1", 3.6), ("CDELT1", 1e-4), ("CRPIX1", 1.0)], Some("LINEAR"));
        iraf.set("DC-FLAG", 1i64, None).expect("set");
        assert!((from_header(&iraf, 1).expect("iraf")[0] - 10f64.powf(3.6)).abs() < 1e-9);
    }

    #[test]
    fn units_and_air_wavelengths_become_vacuum_angstrom() {
        // H-alpha: 6562.80 Å in air is 6564.61 Å in vacuum
        assert!((air_to_vacuum(6562.80) - 6564.61).abs() < 0.01);
        let mut nm = [656.280];
        WavelengthFrame::new("nm", true).expect("nm").to_vacuum_angstrom(&mut nm);
        assert!((nm[0] - 6564.61).abs() < 0.01);
        let mut h = header(&[("CRVAL1", 1.0)], Some("AWAV"));
        h.set("CUNIT1", "um", None).expect("set");
        assert_eq!(
            WavelengthFrame::of_header(&h).expect("frame"),
            WavelengthFrame { angstrom_per_unit: 1e4, air: true }
        );
        assert!(WavelengthFrame::new("Hz", false).is_err());
    }

    #[test]
    fn axes_that_are_not_wavelengths_are_refused() {
        let e = from_header(&header(&[("CRVAL1", 1e9), ("CDELT1", 1e6)], Some("FREQ")), 2).expect_err("freq");
        assert!(e.to_string().contains("FREQ"), "{e}");
        let e = from_header(&header(&[("CDELT1", 1.0)], None), 2).expect_err("no crval");
        assert!(e.to_string().contains("CRVAL1"), "{e}");
        let e = from_header(&header(&[("CRVAL1", 10.0), ("CDELT1", -1.0)], None), 20).expect_err("negative");
        assert!(e.to_string().contains("wavelength"), "{e}");
    }
}
