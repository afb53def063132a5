//! Targets and side columns arrive exact: 64-bit IDs and f64 redshifts whole, strings as codes;
//! labels in every batch or an error at build.

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::Dataset;
use burn::tensor::{DType, Device, FloatDType};
use torchfits_burn::{
    Catalog, CatalogCutoutDataset, ImagingDataset, SideTensor, SideValues, SpectroscopicDataset, SpectrumBatcher,
    StampBatcher,
};
use torchfits_core::table::{ColumnData, ColumnValues, TableBatch};
use torchfits_core::{Header, WriteOptions};

use crate::common::{survey, tmpdir};

const ID0: i64 = 4_611_686_018_427_387_905; // 2^62 + 1: no f64 holds it

fn strings(values: &[&str]) -> ColumnValues {
    let mut offsets = vec![0i32];
    let mut bytes = Vec::new();
    for v in values {
        bytes.extend_from_slice(v.as_bytes());
        offsets.push(bytes.len() as i32);
    }
    ColumnValues::Str { offsets, bytes }
}

/// The survey's catalog, with a string class, a redshift, a 64-bit ID and (`z_label`) a float
/// column of whole numbers.
fn catalog_with_targets(dir: &std::path::Path) -> (std::path::PathBuf, Vec<std::path::PathBuf>) {
    let (catalog, images, _) = survey(dir);
    let cat = Catalog::read(&catalog, &["RA", "DEC"], None).expect("catalog");
    let n = cat.len();
    let class: Vec<&str> = (0..n).map(|i| if i % 3 == 0 { "STAR" } else { "GALAXY" }).collect();
    let t = TableBatch::new(vec![
        ColumnData::new("RA", ColumnValues::F64(cat.column("RA").expect("ra").to_vec())),
        ColumnData::new("DEC", ColumnValues::F64(cat.column("DEC").expect("dec").to_vec())),
        ColumnData::new("CLASS", strings(&class)),
        ColumnData::new("Z", ColumnValues::F64((0..n).map(|i| 0.73 + i as f64 * 1e-9).collect())),
        ColumnData::new("TARGETID", ColumnValues::I64((0..n as i64).map(|i| ID0 + i).collect())),
        ColumnData::new("KIND", ColumnValues::F32((0..n).map(|i| (i % 2) as f32).collect())),
    ])
    .expect("table");
    let path = dir.join("targets.fits");
    let mut w = WriteOptions::new().overwrite(true).create(&path).expect("create");
    w.write_table(&t, "CATALOG", None).expect("table");
    w.finish().expect("finish");
    (path, images)
}

#[test]
fn ids_redshifts_and_string_classes_arrive_exact() {
    let dir = tmpdir("targets-cutouts");
    let (catalog, images) = catalog_with_targets(&dir);
    let ds = CatalogCutoutDataset::builder(&catalog, &images)
        .label("CLASS")
        .targets(&["Z", "TARGETID", "CLASS"])
        .size(8)
        .build()
        .expect("dataset");
    let items: Vec<_> = (0..ds.len()).map(|i| ds.get(i).expect("stamp")).collect();
    let rows: Vec<usize> = (0..ds.len()).map(|i| ds.row(i).expect("row")).collect();
    let batch = StampBatcher::new().batch(items, &Device::flex());
    // labels from the string column: codes into its sorted strings (GALAXY 0, STAR 1)
    let labels = batch.labels.clone().expect("labels").into_data().convert::<i64>().try_to_vec::<i64>().expect("i64");
    assert_eq!(labels, rows.iter().map(|r| i64::from(r % 3 == 0)).collect::<Vec<_>>());
    let z = batch.target("Z").expect("Z");
    assert_eq!(z.values, SideValues::Float(rows.iter().map(|&r| 0.73 + r as f64 * 1e-9).collect()));
    let Some(SideTensor::Float(zt)) = &z.tensor else { panic!("a float tensor") };
    assert_eq!(zt.dtype(), DType::F32, "float targets are F32 unless the batcher is told otherwise");
    assert_eq!(
        zt.clone().into_data().try_to_vec::<f32>().expect("f32"),
        rows.iter().map(|&r| (0.73 + r as f64 * 1e-9) as f32).collect::<Vec<_>>()
    );
    // asked for f64: exact on the device too
    let items: Vec<_> = (0..ds.len()).map(|i| ds.get(i).expect("stamp")).collect();
    let wide = StampBatcher::new().target_dtype(FloatDType::F64).batch(items, &Device::flex());
    let Some(SideTensor::Float(zt)) = &wide.target("Z").expect("Z").tensor else { panic!("a float tensor") };
    assert_eq!(zt.dtype(), DType::F64);
    assert_eq!(
        zt.clone().into_data().try_to_vec::<f64>().expect("f64"),
        rows.iter().map(|&r| 0.73 + r as f64 * 1e-9).collect::<Vec<_>>()
    );
    let ids = batch.target("TARGETID").expect("ids");
    let want: Vec<i64> = rows.iter().map(|&r| ID0 + r as i64).collect();
    assert_eq!(ids.values, SideValues::Int(want.clone()));
    let Some(SideTensor::Int(it)) = &ids.tensor else { panic!("an int tensor") };
    assert_eq!(it.dtype(), DType::I64);
    assert_eq!(it.clone().into_data().try_to_vec::<i64>().expect("i64"), want, "64-bit IDs whole on the device");
    let SideValues::Code { dictionary, .. } = &batch.target("CLASS").expect("class").values else { panic!("codes") };
    assert_eq!(&dictionary[..], &["GALAXY".to_string(), "STAR".to_string()]);
}

#[test]
fn a_float_label_column_must_hold_whole_numbers() {
    let dir = tmpdir("targets-labels");
    let (catalog, images) = catalog_with_targets(&dir);
    let err = CatalogCutoutDataset::builder(&catalog, &images).label("Z").build().expect_err("a redshift");
    assert!(err.to_string().contains("not a class label"), "{err}");
    let ds = CatalogCutoutDataset::builder(&catalog, &images).label("KIND").build().expect("whole floats");
    assert_eq!(ds.get(1).expect("stamp").label, Some(1));
}

#[test]
fn an_image_without_a_label_fails_the_build_unless_ignore_index_is_set() {
    let dir = tmpdir("targets-imaging");
    let files: Vec<_> = (0..3)
        .map(|k| {
            let path = dir.join(format!("img{k}.fits"));
            let mut h = Header::new();
            if k != 1 {
                h.set("CLASS", k as i64, None).expect("set");
            }
            let mut w = WriteOptions::new().overwrite(true).create(&path).expect("create");
            w.image(&[0f32; 16], &[4, 4]).header(&h).write().expect("image");
            w.finish().expect("finish");
            path
        })
        .collect();
    let err = ImagingDataset::builder(&files).label_keyword("CLASS").build().expect_err("img1 has no label");
    assert!(err.to_string().contains("img1.fits"), "{err}");
    let ds = ImagingDataset::builder(&files).label_keyword("CLASS").ignore_index(-100).build().expect("ds");
    let labels: Vec<_> = (0..3).map(|i| ds.get(i).expect("item").label).collect();
    assert_eq!(labels, vec![Some(0), Some(-100), Some(2)]);
}

#[test]
fn imaging_targets_come_exact_from_a_table_of_file_names() {
    let dir = tmpdir("targets-imaging-table");
    let files: Vec<_> = (0..4)
        .map(|k| {
            let path = dir.join(format!("gal{k}.fits"));
            let mut w = WriteOptions::new().overwrite(true).create(&path).expect("create");
            w.image(&[k as f32; 16], &[4, 4]).write().expect("image");
            w.finish().expect("finish");
            path
        })
        .collect();
    // the table names gal2, gal0 and gal1, in that order, and not gal3
    let table = dir.join("galaxies.fits");
    let t = TableBatch::new(vec![
        ColumnData::new("FILE", strings(&["gal2.fits", "gal0.fits", "gal1.fits"])),
        ColumnData::new("Z", ColumnValues::F64(vec![0.73, 0.1 + 0.2, 1.5])),
        ColumnData::new("OBJID", ColumnValues::I64(vec![ID0 + 2, ID0, ID0 + 1])),
        ColumnData::new("MORPH", strings(&["spiral", "elliptical", "spiral"])),
    ])
    .expect("table");
    let mut w = WriteOptions::new().overwrite(true).create(&table).expect("create");
    w.write_table(&t, "GALAXIES", None).expect("table");
    w.finish().expect("finish");
    let err = ImagingDataset::builder(&files)
        .table(&table, "FILE")
        .targets(&["Z", "OBJID", "MORPH"])
        .build()
        .expect_err("gal3 has no row");
    assert!(err.to_string().contains("gal3.fits"), "{err}");
    let ds = ImagingDataset::builder(&files[..3])
        .table(&table, "FILE")
        .targets(&["Z", "OBJID", "MORPH"])
        .build()
        .expect("dataset");
    let items = (0..3).map(|i| ds.get(i).expect("item")).collect();
    let batch = StampBatcher::new().try_batch(items, &Device::flex()).expect("batch");
    assert_eq!(batch.target("Z").expect("z").values, SideValues::Float(vec![0.1 + 0.2, 1.5, 0.73]));
    assert_eq!(batch.target("OBJID").expect("id").values, SideValues::Int(vec![ID0, ID0 + 1, ID0 + 2]));
    match &batch.target("MORPH").expect("morph").values {
        SideValues::Code { codes, dictionary } => {
            let names: Vec<&str> = codes.iter().map(|&c| dictionary[c as usize].as_str()).collect();
            assert_eq!(names, vec!["elliptical", "spiral", "spiral"]);
        }
        other => panic!("strings as codes, not {other:?}"),
    }
}

#[test]
fn spectra_metadata_keeps_64_bit_ids() {
    let dir = tmpdir("targets-spectra");
    let (nspec, nwave) = (3usize, 8usize);
    let path = dir.join("coadd.fits");
    let mut w = WriteOptions::new().overwrite(true).create(&path).expect("create");
    let mut h = Header::new();
    h.set("EXTNAME", "FLUX", None).expect("set");
    w.image(&vec![1f32; nspec * nwave], &[nspec, nwave]).header(&h).write().expect("flux");
    let fibermap = TableBatch::new(vec![ColumnData::new(
        "TARGETID",
        ColumnValues::I64((0..nspec as i64).map(|i| ID0 + i).collect()),
    )])
    .expect("t");
    w.write_table(&fibermap, "FIBERMAP", None).expect("fibermap");
    w.finish().expect("finish");
    let ds = SpectroscopicDataset::image_rows([&path]).hdu("FLUX").meta("FIBERMAP", &["TARGETID"]).build().expect("ds");
    let items: Vec<_> = (0..nspec).map(|i| ds.get(i).expect("spectrum")).collect();
    let batch = SpectrumBatcher::new().try_batch(items, &Device::flex()).expect("batch");
    let (name, ids) = &batch.columns[0];
    assert_eq!(name, "TARGETID");
    assert_eq!(ids.values, SideValues::Int((0..nspec as i64).map(|i| ID0 + i).collect()));
}

#[test]
fn float_targets_have_one_dtype_on_every_device() {
    let dir = tmpdir("targets-dtype");
    let (catalog, images) = catalog_with_targets(&dir);
    let ds = CatalogCutoutDataset::builder(&catalog, &images).targets(&["Z"]).size(8).build().expect("dataset");
    #[allow(unused_mut)]
    let mut devices = vec![Device::flex()];
    #[cfg(feature = "wgpu")]
    devices.push(Device::wgpu(Default::default()));
    let mut seen = Vec::new();
    for device in devices {
        let items: Vec<_> = (0..ds.len()).map(|i| ds.get(i).expect("stamp")).collect();
        let batch = StampBatcher::new().batch(items, &device);
        let Some(SideTensor::Float(z)) = &batch.target("Z").expect("Z").tensor else { panic!("a float tensor") };
        assert_eq!(z.dtype(), DType::F32, "{device:?}");
        seen.push(z.clone().into_data().try_to_vec::<f32>().expect("f32"));
    }
    assert!(seen.windows(2).all(|w| w[0] == w[1]), "the same values on every device");
}
