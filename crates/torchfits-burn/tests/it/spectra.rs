//! Spectra: wavelengths from the WCS keywords, an HDU or a column; several arms of their own
//! lengths; exact masks; and the spectrum transforms (masking by ivar, flux normalisation,
//! resampling onto one grid with the arms combined by inverse variance).

use burn::data::dataset::Dataset;
use burn::tensor::{DType, Device, Tensor};
use torchfits_burn::transforms::{MaskByIvar, NormalizeFlux};
use torchfits_burn::{
    Arm, ChannelRole, Rebin, Resample, SpectraBuilder, SpectroscopicDataset, SpectrumBatcher, Wavelength,
    WavelengthFrame,
};
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

/// Arm `b`'s flux, ivar and mask HDUs.
fn arm_of(b: &str) -> Arm {
    let hdu = |h: &str| format!("{b}_{h}");
    Arm::new()
        .channel(hdu("FLUX").as_str(), Science)
        .channel(hdu("IVAR").as_str(), InverseVariance)
        .channel(hdu("MASK").as_str(), Mask)
}

fn dataset(path: &std::path::Path) -> SpectroscopicDataset {
    dataset_with(path, |b| b)
}

/// The coadd's dataset, with more options.
fn dataset_with(path: &std::path::Path, more: impl FnOnce(SpectraBuilder) -> SpectraBuilder) -> SpectroscopicDataset {
    let builder = SpectroscopicDataset::arms(
        [path],
        vec![
            arm_of("B").wavelength(Wavelength::Hdu("B_WAVELENGTH".into())),
            arm_of("R").wavelength(Wavelength::Header),
        ],
    );
    more(builder).build().expect("dataset")
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
    let e = SpectroscopicDataset::image_rows([dir.join("coadd.fits")])
        .hdu("B_FLUX")
        .wavelength(Wavelength::Column("WAVE".into()))
        .build()
        .expect_err("no column of image rows");
    assert!(e.to_string().contains("column"), "{e}");
}

#[test]
fn resampling_interpolates_propagates_ivar_and_combines_the_arms() {
    let dir = tmpdir("spectra-resample");
    let grid = vec![1000.0, 1001.5, 1003.5, 1006.0, 1012.0];
    let ds = dataset_with(&coadd(&dir), |b| b.resample(Resample::new(grid.clone()).method(Rebin::Linear)));
    let s = ds.get(0).expect("s");
    assert_eq!((s.length, &s.arms[..]), (5, &[5][..]));
    let (flux, ivar) = (&s.values[..5], &s.values[5..]);
    // B alone, B alone halfway (variance halved), both arms by ivar, R alone, outside both
    let want_flux = [1.0, 1.0, (1.0 * 2.0 + 3.0 * 6.0) / 8.0, 3.0, 0.0];
    let want_ivar = [1.0, 2.0, 8.0, 3.0, 0.0];
    for p in 0..5 {
        assert!((flux[p] - want_flux[p]).abs() < 1e-5, "point {p}: flux {} vs {}", flux[p], want_flux[p]);
        assert!((ivar[p] - want_ivar[p]).abs() < 1e-4, "point {p}: ivar {} vs {}", ivar[p], want_ivar[p]);
    }
    // at 1003.5: B's samples give 4 | 1, R's 6 | 0; a bit counts where every arm has it
    assert_eq!(&s.masks.as_deref().expect("masks")[..5], &[0, 0, 4, 0, 0]);
    assert_eq!(s.wavelength.as_deref(), Some(&grid[..]));
    for device in devices() {
        let batch = SpectrumBatcher::new().try_batch(vec![s.clone()], &device).expect("batch");
        assert_eq!((batch.spectra.dims(), batch.arms.clone()), ([1, 2, 5], vec![5]));
    }
}

/// Writes instrument A: two-row spectra in image rows (`B_FLUX` 2 + row, `B_IVAR` 4, 40 samples
/// from 5000 Å by 0.5 Å in vacuum, `B_WAVELENGTH`), with a `FIBERMAP` of TARGETIDs 11 and 12;
/// and instrument B: three spectra in table cells (`FLUX` 5 + row, `IVAR` 1, 30 samples from
/// 499 nm by 0.1 nm in air), TARGETIDs 13, 11, 14; and the redshift catalog of both.
fn two_instruments(dir: &std::path::Path) -> [std::path::PathBuf; 3] {
    let a = dir.join("instrument-a.fits");
    let mut w = WriteOptions::new().overwrite(true).create(&a).expect("create");
    w.image(&[0f32; 0], &[0]).write().expect("primary");
    let flux: Vec<f32> = (0..80).map(|i| 2.0 + (i / 40) as f32).collect();
    w.image(&flux, &[2, 40]).header(&named("B_FLUX")).write().expect("flux");
    w.image(&[4f32; 80], &[2, 40]).header(&named("B_IVAR")).write().expect("ivar");
    let wave: Vec<f64> = (0..40).map(|i| 5000.0 + 0.5 * i as f64).collect();
    w.image(&wave, &[40]).header(&named("B_WAVELENGTH")).write().expect("wave");
    let ids = TableBatch::new(vec![ColumnData::new("TARGETID", ColumnValues::I64(vec![11, 12]))]).expect("ids");
    w.write_table(&ids, "FIBERMAP", None).expect("fibermap");
    w.finish().expect("finish");
    let b = dir.join("instrument-b.fits");
    let n = 30;
    let t = TableBatch::new(vec![
        ColumnData::new("TARGETID", ColumnValues::I64(vec![13, 11, 14])),
        ColumnData::new("FLUX", ColumnValues::F32((0..3 * n).map(|i| 5.0 + (i / n) as f32).collect())).with_per_row(n),
        ColumnData::new("IVAR", ColumnValues::F32(vec![1.0; 3 * n])).with_per_row(n),
        ColumnData::new("WAVE", ColumnValues::F64((0..3 * n).map(|i| 499.0 + 0.1 * (i % n) as f64).collect()))
            .with_per_row(n),
    ])
    .expect("table");
    let mut w = WriteOptions::new().overwrite(true).create(&b).expect("create");
    w.write_table(&t, "SPECTRA", None).expect("spectra");
    w.finish().expect("finish");
    let z = dir.join("zcat.fits");
    let types = ["GALAXY", "QSO", "STAR", "GALAXY", "QSO"];
    let mut offsets = vec![0i32];
    let mut bytes = Vec::new();
    for t in types {
        bytes.extend_from_slice(t.as_bytes());
        offsets.push(bytes.len() as i32);
    }
    let t = TableBatch::new(vec![
        ColumnData::new("TARGETID", ColumnValues::I64(vec![14, 12, 11, 13, 99])),
        ColumnData::new("Z", ColumnValues::F64(vec![0.4, 2.1, 0.0001, 0.7, 1.5])),
        ColumnData::new("SPECTYPE", ColumnValues::Str { offsets, bytes }),
    ])
    .expect("zcat");
    let mut w = WriteOptions::new().overwrite(true).create(&z).expect("create");
    w.write_table(&t, "ZCATALOG", None).expect("zcat");
    w.finish().expect("finish");
    [a, b, z]
}

#[test]
fn spectra_of_two_instruments_share_one_loader_and_their_targets_by_id() {
    use burn::data::dataset::transform::ComposedDataset;
    let dir = tmpdir("spectra-instruments");
    let [a, b, zcat] = two_instruments(&dir);
    let grid = Resample::linear(5003.0, 5015.0, 13);
    let desi = SpectroscopicDataset::image_rows([&a])
        .channel("B_FLUX", Science)
        .channel("B_IVAR", InverseVariance)
        .wavelength(Wavelength::Hdu("B_WAVELENGTH".into()))
        .meta("FIBERMAP", &["TARGETID"])
        .join(&zcat, "TARGETID")
        .label("SPECTYPE")
        .targets(&["Z"])
        .resample(grid.clone())
        .build()
        .expect("instrument a");
    let sdss = || {
        SpectroscopicDataset::table_columns([&b], "SPECTRA")
            .column("FLUX", Science)
            .column("IVAR", InverseVariance)
            .wavelength(Wavelength::Column("WAVE".into()))
            .wavelength_frame(WavelengthFrame::new("nm", true).expect("nm"))
            .meta("SPECTRA", &["TARGETID"])
            .join(&zcat, "TARGETID")
            .label("SPECTYPE")
            .targets(&["Z"])
    };
    // in vacuum Ångström: 499 nm in air is 4991.39 Å in vacuum
    let raw = sdss().build().expect("unresampled").get(0).expect("spectrum");
    let first = raw.wavelength.as_deref().expect("wavelengths")[0];
    assert!((first - 4991.39).abs() < 0.01, "{first}");
    let sdss = sdss().resample(grid.clone()).build().expect("instrument b");
    assert_eq!(desi.label_names(), Some(&["GALAXY".to_string(), "QSO".into(), "STAR".into()][..]));
    let both = ComposedDataset::new(vec![desi, sdss]);
    let items: Vec<_> = (0..both.len()).map(|i| both.get(i).expect("spectrum")).collect();
    let batch = SpectrumBatcher::new().try_batch(items, &Device::flex()).expect("one batch of both");
    assert_eq!(batch.spectra.dims(), [5, 2, 13]);
    let v = floats(batch.spectra);
    // a constant flux stays that constant, flux-conserving, whatever the sampling
    for (k, level) in [2.0, 3.0, 5.0, 6.0, 7.0].into_iter().enumerate() {
        assert!(v[k * 26..k * 26 + 13].iter().all(|&f| (f - level).abs() < 1e-5), "item {k}: {:?}", &v[k * 26..][..13]);
        // averaging samples adds information: every bin knows at least as much as one sample
        let one_sample = if k < 2 { 4.0 } else { 1.0 };
        assert!(v[k * 26 + 13..k * 26 + 26].iter().all(|&w| w >= one_sample), "item {k} ivar");
    }
    // TARGETIDs 11, 12 | 13, 11, 14: their redshifts and types from the catalog, exact
    let z = batch.columns.iter().find(|(n, _)| n == "Z").expect("Z");
    assert_eq!(z.1.values, torchfits_burn::SideValues::Float(vec![0.0001, 2.1, 0.7, 0.0001, 0.4]));
    let labels = batch.labels.expect("labels").into_data().convert::<i64>().try_to_vec::<i64>().expect("i64");
    assert_eq!(labels, vec![2, 1, 0, 2, 0], "STAR QSO GALAXY STAR GALAXY");
    // an ID the catalog lacks fails the build, naming it
    let lacking = dir.join("lacking.fits");
    let t = TableBatch::new(vec![
        ColumnData::new("TARGETID", ColumnValues::I64(vec![11, 12])),
        ColumnData::new("Z", ColumnValues::F64(vec![0.1, 0.2])),
        ColumnData::new("SPECTYPE", ColumnValues::Str { offsets: vec![0, 1, 2], bytes: b"ab".to_vec() }),
    ])
    .expect("table");
    let mut w = WriteOptions::new().overwrite(true).create(&lacking).expect("create");
    w.write_table(&t, "Z", None).expect("z");
    w.finish().expect("finish");
    let e = SpectroscopicDataset::table_columns([&b], "SPECTRA")
        .column("FLUX", Science)
        .meta("SPECTRA", &["TARGETID"])
        .join(&lacking, "TARGETID")
        .targets(&["Z"])
        .build()
        .expect_err("13 is not in the table");
    assert!(e.to_string().contains("TARGETID 13"), "{e}");
    // resampling needs wavelengths
    let e = SpectroscopicDataset::image_rows([&a]).hdu("B_FLUX").resample(grid).build().expect("built");
    let e = e.get(0).expect_err("no wavelengths");
    assert!(e.to_string().contains("wavelength"), "{e}");
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
    let ds = SpectroscopicDataset::table_columns([&path], "SPECTRA")
        .column("FLUX", Science)
        .column("IVAR", InverseVariance)
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

#[test]
fn each_row_names_its_role_once_and_arms_agree() {
    let dir = tmpdir("spectra-roles");
    let path = coadd(&dir);
    // arms whose HDUs have other roles cannot share an item's rows
    let b = arm_of("B").wavelength(Wavelength::Hdu("B_WAVELENGTH".into()));
    let r = Arm::new().channel("R_FLUX", Science).channel("R_MASK", Mask).channel("R_IVAR", InverseVariance);
    let e = SpectroscopicDataset::arms([&path], vec![b.clone(), r]).build().expect_err("roles differ");
    assert!(e.to_string().contains("same roles"), "{e}");
    // the shared channels are image rows' HDUs; arms name their own
    let e = SpectroscopicDataset::arms([&path], vec![b]).channel("B_FLUX", Science).build().expect_err("both");
    assert!(e.to_string().contains("Arm::channel"), "{e}");
    // image rows of the shared channels: flux and ivar rows, the mask exact beside them
    let ds = SpectroscopicDataset::image_rows([&path])
        .channel("B_FLUX", Science)
        .channel("B_MASK", Mask)
        .channel("B_IVAR", InverseVariance)
        .build()
        .expect("image rows");
    let s = ds.get(0).expect("spectrum");
    assert_eq!((s.channels, &s.roles[..]), (2, &[Science, InverseVariance][..]));
    assert_eq!(s.masks.as_deref().map(|m| m[3]), Some(4));
}
