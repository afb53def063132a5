//! Spectra: wavelengths from the WCS keywords, an HDU or a column; several arms of their own
//! lengths; exact masks; and the spectrum transforms (masking by ivar, flux normalisation,
//! resampling onto one grid with the arms combined by inverse variance).

use burn::data::dataset::Dataset;
use burn::tensor::{DType, Device, Tensor};
use torchfits_burn::transforms::{MaskByIvar, NormalizeFlux, Resample};
use torchfits_burn::{Arm, ChannelRole, SpectroscopicDataset, SpectrumBatcher, Wavelength};
use torchfits_core::table::{ColumnData, ColumnValues, TableBatch};
use torchfits_core::{FitsWriter, Header, WriteOptions};

use crate::common::tmpdir;

use ChannelRole::{InverseVariance, Mask, Science};

const NSPEC: usize = 3;

fn named(name: &str) -> Header {
    let mut h = Header::new();
    h.set("EXTNAME", name, None).expect("set");
    h
}

/// One arm's flux, ivar and mask HDUs, `[NSPEC, n]` each: flux `level` (+ the row), ivar
/// `level`, the masks given per sample (+ bit 40 on row 2: no i32 or f32 holds it).
fn arm(w: &mut FitsWriter, name: &str, level: f32, masks: &[i64], flux_header: Header) {
    let n = masks.len();
    let flux: Vec<f32> = (0..NSPEC * n).map(|i| level + (i / n) as f32).collect();
    let ivar = vec![level; NSPEC * n];
    let mask: Vec<i64> = (0..NSPEC * n).map(|i| masks[i % n] | if i / n == 2 { 1 << 40 } else { 0 }).collect();
    w.image(&flux, &[NSPEC, n]).header(&flux_header).write().expect("flux");
    w.image(&ivar, &[NSPEC, n]).header(&named(&format!("{name}_IVAR"))).write().expect("ivar");
    w.image(&mask, &[NSPEC, n]).header(&named(&format!("{name}_MASK"))).write().expect("mask");
}

/// A two-arm coadd: B has 5 samples at 1000..=1004 (an HDU of wavelengths), flux 1, ivar 1;
/// R has 7 at 1003..=1009 (WCS keywords), flux 3, ivar 3. They overlap at 1003 and 1004.
fn coadd(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("coadd.fits");
    let mut w = WriteOptions::new().overwrite(true).create(&path).expect("create");
    w.image(&[0f32; 0], &[0]).write().expect("primary");
    arm(&mut w, "B", 1.0, &[0, 0, 0, 4, 1], named("B_FLUX"));
    let wave: Vec<f64> = (0..5).map(|i| 1000.0 + i as f64).collect();
    w.image(&wave, &[5]).header(&named("B_WAVELENGTH")).write().expect("wave");
    let mut r = named("R_FLUX");
    for (k, v) in [("CRVAL1", 1003.0), ("CDELT1", 1.0), ("CRPIX1", 1.0)] {
        r.set(k, v, None).expect("set");
    }
    r.set("CTYPE1", "WAVE", None).expect("set");
    arm(&mut w, "R", 3.0, &[6, 0, 0, 0, 0, 0, 0], r);
    w.finish().expect("finish");
    path
}

fn dataset(path: &std::path::Path) -> SpectroscopicDataset {
    SpectroscopicDataset::arms(
        [path],
        vec![
            Arm::new(&["B_FLUX", "B_IVAR", "B_MASK"]).wavelength(Wavelength::Hdu("B_WAVELENGTH".into())),
            Arm::new(&["R_FLUX", "R_IVAR", "R_MASK"]).wavelength(Wavelength::Header),
        ],
    )
    .roles(&[Science, InverseVariance, Mask])
    .build()
    .expect("dataset")
}

fn devices() -> Vec<Device> {
    #[allow(unused_mut)]
    let mut d = vec![Device::flex()];
    #[cfg(feature = "wgpu")]
    d.push(Device::wgpu(Default::default()));
    d
}

fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32")
}

#[test]
fn arms_concatenate_with_their_wavelengths_and_exact_masks() {
    let dir = tmpdir("spectra-arms");
    let ds = dataset(&coadd(&dir));
    assert_eq!((ds.len(), ds.arm_lengths()), (NSPEC, &[5usize, 7][..]));
    let s = ds.get(2).expect("spectrum");
    assert_eq!((s.channels, s.length, &s.roles[..]), (2, 12, &[Science, InverseVariance][..]));
    assert_eq!(&s.values[..12], &[[3.0f32; 5].as_slice(), [5.0f32; 7].as_slice()].concat()[..], "B then R, row 2");
    let wave = s.wavelength.clone().expect("wavelengths");
    let want: Vec<f64> = (0..5).map(|i| 1000.0 + i as f64).chain((0..7).map(|i| 1003.0 + i as f64)).collect();
    assert_eq!(&wave[..], &want[..]);
    let masks = s.masks.clone().expect("masks");
    assert_eq!(masks[3], 4 | 1 << 40, "an exact 64-bit flag");
    assert_eq!(masks[5], 6 | 1 << 40);
    let items = (0..NSPEC).map(|i| ds.get(i).expect("s")).collect::<Vec<_>>();
    let batch = SpectrumBatcher::new().try_batch(items, &Device::flex()).expect("batch");
    assert_eq!(batch.spectra.dims(), [NSPEC, 2, 12]);
    assert_eq!(batch.arms, vec![5, 7]);
    let arm = batch.arm.expect("arm index").into_data().convert::<i64>().try_to_vec::<i64>().expect("i64");
    assert_eq!(arm, [vec![0i64; 5], vec![1; 7]].concat());
    let masks = batch.masks.expect("masks");
    assert_eq!((masks.dtype(), masks.dims()), (DType::I64, [NSPEC, 1, 12]));
    assert_eq!(masks.into_data().try_to_vec::<i64>().expect("i64")[24 + 3], 4 | 1 << 40);
    assert_eq!(floats(batch.wavelength.expect("wavelength")).len(), NSPEC * 12);
    // a wavelength column needs spectra in a table
    let e = SpectroscopicDataset::image_rows([dir.join("coadd.fits")], &["B_FLUX"])
        .wavelength(Wavelength::Column("WAVE".into()))
        .build()
        .expect_err("no column of image rows");
    assert!(e.to_string().contains("column"), "{e}");
}

#[test]
fn resampling_interpolates_propagates_ivar_and_combines_the_arms() {
    let dir = tmpdir("spectra-resample");
    let ds = dataset(&coadd(&dir));
    let grid = vec![1000.0, 1001.5, 1003.5, 1006.0, 1012.0];
    for device in devices() {
        let items = vec![ds.get(0).expect("s")];
        let batch =
            SpectrumBatcher::new().transform(Resample::new(grid.clone())).try_batch(items, &device).expect("batch");
        assert_eq!((batch.spectra.dims(), batch.arms.clone()), ([1, 2, 5], vec![5]));
        let v = floats(batch.spectra);
        let (flux, ivar) = (&v[..5], &v[5..]);
        // B alone, B alone halfway (variance halved), both arms by ivar, R alone, outside both
        let want_flux = [1.0, 1.0, (1.0 * 2.0 + 3.0 * 6.0) / 8.0, 3.0, 0.0];
        let want_ivar = [1.0, 2.0, 8.0, 3.0, 0.0];
        for p in 0..5 {
            assert!(
                (flux[p] - want_flux[p]).abs() < 1e-5,
                "{device:?} point {p}: flux {} vs {}",
                flux[p],
                want_flux[p]
            );
            assert!(
                (ivar[p] - want_ivar[p]).abs() < 1e-4,
                "{device:?} point {p}: ivar {} vs {}",
                ivar[p],
                want_ivar[p]
            );
        }
        let masks = batch.masks.expect("masks").into_data().convert::<i64>().try_to_vec::<i64>().expect("masks");
        // at 1003.5: B's samples give 4 | 1, R's 6 | 0; a bit counts where every arm has it
        assert_eq!(masks, vec![0, 0, 4, 0, 0], "{device:?}");
        assert_eq!(floats(batch.wavelength.expect("grid")), grid.iter().map(|&x| x as f32).collect::<Vec<_>>());
    }
}

#[test]
fn masking_by_ivar_and_normalising_the_flux() {
    let dir = tmpdir("spectra-normalise");
    let path = dir.join("table.fits");
    let n = 6;
    let flux: Vec<f32> = vec![2.0, 4.0, 100.0, 6.0, f32::NAN, 8.0];
    let ivar: Vec<f32> = vec![1.0, 1.0, 0.0, 1.0, 1.0, 0.5];
    let wave: Vec<f64> = (0..n).map(|i| 5000.0 + 2.0 * i as f64).collect();
    let t = TableBatch::new(vec![
        ColumnData::new("FLUX", ColumnValues::F32(flux)).with_per_row(n),
        ColumnData::new("IVAR", ColumnValues::F32(ivar)).with_per_row(n),
        ColumnData::new("WAVE", ColumnValues::F64(wave.clone())).with_per_row(n),
    ])
    .expect("table");
    let mut w = WriteOptions::new().overwrite(true).create(&path).expect("create");
    w.write_table(&t, "SPECTRA", None).expect("table");
    w.finish().expect("finish");
    let ds = SpectroscopicDataset::table_columns([&path], "SPECTRA", &["FLUX", "IVAR"])
        .roles(&[Science, InverseVariance])
        .wavelength(Wavelength::Column("WAVE".into()))
        .build()
        .expect("dataset");
    assert_eq!(&ds.get(0).expect("s").wavelength.expect("wave")[..], &wave[..]);
    for device in devices() {
        let batch = SpectrumBatcher::new()
            .transform(MaskByIvar::default())
            .transform(NormalizeFlux::median())
            .try_batch(vec![ds.get(0).expect("s")], &device)
            .expect("batch");
        let v = floats(batch.spectra);
        // the sample with ivar 0 is masked (0, no weight); the median of the good ones
        // (2, 4, 6, 8: the NaN has no value) is 4
        let (flux, ivar) = (&v[..n], &v[n..]);
        assert_eq!(flux[2], 0.0, "{device:?}");
        assert_eq!(ivar[2], 0.0, "{device:?}");
        assert!((flux[0] - 0.5).abs() < 1e-6 && (flux[5] - 2.0).abs() < 1e-6, "{device:?}: {flux:?}");
        assert!((ivar[0] - 16.0).abs() < 1e-4 && (ivar[5] - 8.0).abs() < 1e-4, "{device:?}: {ivar:?}");
    }
}
