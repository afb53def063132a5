//! What every dataset shares: one dictionary per dataset for string labels and targets, column
//! names matched without regard to case, the same options on every builder, and batches of
//! stamps with flag planes stacked as the stamps hold them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use burn::data::dataset::Dataset;
use burn::tensor::Device;
use torchfits_burn::transforms::{Asinh, NanFill};
use torchfits_burn::{
    CatalogCutoutDataset, Channel, ChannelRole, GroupBy, OnError, SideValues, StampBatcher, SurveyCutoutDataset,
    SurveyPlanner, permutation,
};
use torchfits_core::Wcs;
use torchfits_core::table::{ColumnData, ColumnValues, TableBatch};

use crate::common::{N, header, survey, tmpdir};

const CLASSES: [&str; 3] = ["star", "galaxy", "qso"];

/// A Parquet catalog of `rows` positions on image 0 of the common survey, in lower-case `ra`
/// and `dec` columns, with a string `class` column; the class of each row.
fn class_catalog(dir: &Path, rows: usize) -> (PathBuf, Vec<PathBuf>, Vec<&'static str>) {
    let (_, images, _) = survey(dir);
    let wcs = Wcs::from_header(&header(0)).expect("wcs");
    let mut state = 99u64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    let pixels: Vec<f64> = (0..rows).flat_map(|_| [10.0 + next() * (N as f64 - 20.0), 10.0 + next() * 100.0]).collect();
    let mut world = vec![0.0; pixels.len()];
    wcs.pixel_to_world(&pixels, &mut world).expect("p2w");
    let classes: Vec<&str> = (0..rows).map(|i| CLASSES[(i * 7 + i / 3) % 3]).collect();
    let mut offsets = vec![0i32];
    let mut bytes = Vec::new();
    for c in &classes {
        bytes.extend_from_slice(c.as_bytes());
        offsets.push(bytes.len() as i32);
    }
    let batch = TableBatch::new(vec![
        ColumnData::new("ra", ColumnValues::F64(world.iter().step_by(2).copied().collect())),
        ColumnData::new("dec", ColumnValues::F64(world.iter().skip(1).step_by(2).copied().collect())),
        ColumnData::new("class", ColumnValues::Str { offsets, bytes }),
    ])
    .expect("table")
    .into_record_batch()
    .expect("record batch");
    let path = dir.join("classes.parquet");
    let file = std::fs::File::create(&path).expect("create");
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).expect("parquet");
    w.write(&batch).expect("write");
    w.close().expect("close");
    (path, images, classes)
}

/// A survey plan of `catalog`'s positions on `image`, carrying its `class` column.
fn class_plan(catalog: &Path, image: &Path, dir: &Path) -> torchfits_burn::SurveyPlan {
    SurveyPlanner::new(catalog)
        .images([image])
        .targets(&["class"])
        .cache(dir.join("cache"))
        .progress(false)
        .build()
        .expect("plan")
}

#[test]
fn a_string_target_has_one_code_in_every_batch_of_a_survey_dataset() {
    let dir = tmpdir("datasets-survey-codes");
    let (catalog, images, classes) = class_catalog(&dir, 400);
    // the planner's default position columns are RA and DEC: the catalog's ra and dec are they
    let plan = class_plan(&catalog, &images[0], &dir);
    let ds = SurveyCutoutDataset::builder(plan).size(8).label("class").targets(&["class"]).build().expect("dataset");
    assert_eq!(ds.len(), 400);
    let sorted = ["galaxy", "qso", "star"];
    assert_eq!(ds.label_names().expect("names"), sorted);
    let order = permutation(ds.len(), 5);
    let batcher = StampBatcher::new();
    let device = Device::flex();
    for chunk in order.chunks(4) {
        let items: Vec<_> = chunk.iter().map(|&k| ds.get(k).expect("stamp")).collect();
        let batch = batcher.try_batch(items, &device).expect("batch");
        let SideValues::Code { codes, dictionary } = &batch.target("class").expect("class").values else {
            panic!("class is a string column");
        };
        assert_eq!(&dictionary[..], sorted);
        let labels: Vec<i64> =
            batch.labels.clone().expect("labels").into_data().convert::<i64>().try_to_vec().expect("i64");
        assert_eq!(&labels, codes, "a label is its string's code");
        for (&k, &code) in batch.indices.iter().zip(codes) {
            let row = ds.plan().item(k).expect("item").row as usize;
            assert_eq!(sorted[code as usize], classes[row], "item {k}: code {code}");
        }
    }
}

#[test]
fn catalog_columns_match_without_regard_to_case_and_string_labels_have_names() {
    let dir = tmpdir("datasets-case");
    let (catalog, images, classes) = class_catalog(&dir, 50);
    let ds = CatalogCutoutDataset::builder(&catalog, &images).size(8).label("CLASS").build().expect("dataset");
    assert_eq!(ds.len(), 50);
    let names = ds.label_names().expect("names").to_vec();
    assert_eq!(names, ["galaxy", "qso", "star"]);
    for k in 0..ds.len() {
        let stamp = ds.get(k).expect("stamp");
        let row = ds.row(k).expect("row");
        assert_eq!(names[stamp.label.expect("label") as usize], classes[row]);
    }
}

#[test]
fn every_builder_takes_the_shared_options() {
    let dir = tmpdir("datasets-options");
    let (catalog, images, _) = survey(&dir);
    let pool = torchfits_core::BufferPool::default();
    let cutouts = CatalogCutoutDataset::builder(&catalog, &images)
        .size(16)
        .hdu(0)
        .mmap(false)
        .open_files(1)
        .pool(pool.clone())
        .on_error(OnError::Skip)
        .urls(false)
        .label("LABEL")
        .targets(&["LABEL"])
        .build()
        .expect("cutouts");
    let imaging = torchfits_burn::ImagingDataset::builder(&images)
        .hdu(0)
        .mmap(false)
        .open_files(1)
        .pool(pool.clone())
        .on_error(OnError::Skip)
        .urls(false)
        .build()
        .expect("imaging");
    // items of both come from the one pool given
    drop((cutouts.get(0).expect("stamp"), imaging.get(0).expect("image")));
    assert!(pool.stats().allocations >= 2, "{:?}", pool.stats());
    // a label column with no table to find it in is an error, not ignored
    let err = torchfits_burn::ImagingDataset::builder(&images).label("LABEL").build().expect_err("no table");
    assert!(err.to_string().contains("table"), "{err}");
}

#[test]
fn stamps_with_an_edge_mask_stack_alike_with_and_without_transforms() {
    let dir = tmpdir("datasets-edge-mask");
    let (catalog, images, _) = survey(&dir);
    let ds = CatalogCutoutDataset::builder(&catalog, &images).size(16).build().expect("dataset");
    let device = Device::flex();
    let items: Vec<_> = (0..ds.len()).map(|k| ds.get(k).expect("stamp")).collect();
    // each stamp's pixels, then its edge flag (a stamp wholly on its image carries none: zeros)
    let edge = |s: &torchfits_burn::Stamp| s.flag(0).map_or_else(|| vec![0.0; 256], <[f32]>::to_vec);
    let host: Vec<f32> = items.iter().flat_map(|s| [s.data().to_vec(), edge(s)].concat()).collect();
    assert!(items.iter().any(|s| s.flags.is_some()) && items.iter().any(|s| s.flags.is_none()), "both kinds");
    let plain = StampBatcher::new().try_batch(items.clone(), &device).expect("batch");
    assert_eq!(plain.images.dims(), [ds.len(), 2, 16, 16]);
    assert_eq!(plain.images.clone().into_data().try_to_vec::<f32>().expect("f32"), host);
    let stretched = StampBatcher::new().transform(Asinh(1.0)).try_batch(items, &device).expect("batch");
    let flags = |t: &burn::tensor::Tensor<4>| t.clone().narrow(1, 1, 1).into_data().try_to_vec::<f32>().expect("f32");
    assert_eq!(flags(&stretched.images), flags(&plain.images), "the edge mask is not stretched");
    let science = stretched.images.narrow(1, 0, 1).into_data().try_to_vec::<f32>().expect("f32");
    let want: Vec<f32> = plain.images.narrow(1, 0, 1).into_data().try_to_vec::<f32>().expect("f32");
    for (got, x) in science.iter().zip(want) {
        assert!((got - x.asinh()).abs() <= 1e-5 * x.asinh().abs().max(1.0), "{got} vs asinh({x})");
    }
}

/// `batcher.channels(&dataset.channels())` against the batch the model gets: as many planes as
/// the batch's `images` has, each in its place.
fn assert_layout(batcher: &StampBatcher, dataset: &[Channel], items: Vec<torchfits_burn::Stamp>) -> Vec<Channel> {
    let input = batcher.channels(dataset);
    let batch = batcher.try_batch(items, &Device::flex()).expect("batch");
    assert_eq!(input.len(), batch.images.dims()[1], "the report is the model's input: {input:?}");
    let masks = dataset.iter().filter(|c| c.role == ChannelRole::Mask).count();
    assert_eq!(masks, batch.masks.as_ref().map_or(0, |m| m.dims()[1]), "{dataset:?}");
    let weights = dataset.iter().filter(|c| c.role.is_weight()).count();
    assert_eq!(weights, batch.weights.as_ref().map_or(0, |w| w.dims()[1]), "{dataset:?}");
    input
}

#[test]
fn every_stamp_dataset_reports_the_planes_its_batches_hold() {
    let dir = tmpdir("datasets-channels");
    let (catalog, images, _) = class_catalog(&dir, 8);
    let (science, flag) = (ChannelRole::Science, ChannelRole::Flag);
    // catalog cutouts: the HDU's pixels and the edge flag; NanFill adds a NaN flag
    let cutouts = CatalogCutoutDataset::builder(&catalog, &images[..1]).size(8).build().expect("cutouts");
    assert_eq!(cutouts.channels(), vec![Channel::new(science, "0"), Channel::new(flag, "0")]);
    let batcher = StampBatcher::new().transform(NanFill(0.0)).transform(Asinh(1.0));
    let items = (0..4).map(|i| cutouts.get(i).expect("stamp")).collect();
    let input = assert_layout(&batcher, &cutouts.channels(), items);
    assert_eq!(input.iter().map(|c| c.role).collect::<Vec<_>>(), vec![science, flag, flag]);
    // survey stamps of two bands: each band's pixels, then each band's flag
    let plan = SurveyPlanner::new(&catalog)
        .band("g", &images[..1])
        .band("r", &images[..1])
        .cache(dir.join("cache"))
        .progress(false)
        .build()
        .expect("plan");
    let survey = SurveyCutoutDataset::builder(plan).size(8).build().expect("survey");
    let want: Vec<Channel> = [(science, "g"), (science, "r"), (flag, "g"), (flag, "r")]
        .into_iter()
        .map(|(role, band)| Channel::of(role, band, "0"))
        .collect();
    assert_eq!(survey.channels(), want);
    for batcher in [StampBatcher::new(), StampBatcher::new().transform(NanFill(0.0))] {
        let items = (0..4).map(|i| survey.get(i).expect("stamp")).collect();
        assert_layout(&batcher, &survey.channels(), items);
    }
}

/// The items of `selection` (indices into the shared dataset).
fn picked<D: Dataset<torchfits_burn::Stamp>>(selection: &D) -> Vec<usize> {
    (0..selection.len()).map(|k| selection.get(k).expect("item").index).collect()
}

#[test]
fn split_by_keeps_each_group_on_one_side_for_every_dataset_with_a_catalog() {
    let dir = tmpdir("datasets-split-by");
    let (catalog, images, classes) = class_catalog(&dir, 60);
    let cutouts =
        std::sync::Arc::new(CatalogCutoutDataset::builder(&catalog, &images[..1]).size(8).build().expect("cutouts"));
    // by a string column (any case): no class on both sides, every item on one
    let (train, valid) = cutouts.split_by("CLASS", 0.6, 3).expect("split");
    let (a, b) = (picked(&train), picked(&valid));
    assert_eq!(a.len() + b.len(), cutouts.len());
    let class_of = |i: usize| classes[cutouts.row(i).expect("row")];
    let (ca, cb): (BTreeSet<_>, BTreeSet<_>) =
        (a.iter().map(|&i| class_of(i)).collect(), b.iter().map(|&i| class_of(i)).collect());
    assert!(ca.is_disjoint(&cb), "{ca:?} / {cb:?}");
    assert!(!a.is_empty() && !b.is_empty());
    // by HEALPix cell: the cell of each side's positions, from the catalog, never on both
    let depth = 12;
    let (train, valid) = cutouts.split_by(GroupBy::Cell { depth }, 0.5, 3).expect("split by cell");
    let wcs = Wcs::from_header(&header(0)).expect("wcs");
    let cell = |i: usize| {
        let s = cutouts.read(i).expect("stamp");
        let centre = [s.origin.0 + 3.5, s.origin.1 + 3.5];
        let mut world = [0.0; 2];
        wcs.pixel_to_world(&centre, &mut world).expect("p2w");
        cdshealpix::nested::hash(depth, world[0].to_radians(), world[1].to_radians())
    };
    let (a, b) = (picked(&train), picked(&valid));
    assert_eq!(a.len() + b.len(), cutouts.len());
    let (ca, cb): (BTreeSet<_>, BTreeSet<_>) =
        (a.iter().map(|&i| cell(i)).collect(), b.iter().map(|&i| cell(i)).collect());
    assert!(ca.len() > 1 && ca.is_disjoint(&cb), "{ca:?} / {cb:?}");
    // a column the catalog lacks: an error naming it
    let Err(err) = cutouts.split_by("FIELD", 0.5, 3) else { panic!("no such column") };
    assert!(err.to_string().contains("FIELD"), "{err}");
    // survey stamps: by a column the plan carries
    let plan = class_plan(&catalog, &images[0], &dir);
    let survey =
        std::sync::Arc::new(SurveyCutoutDataset::builder(plan).size(8).targets(&["class"]).build().expect("survey"));
    let (train, valid) = survey.split_by("class", 0.6, 3).expect("survey split");
    assert_eq!(train.len() + valid.len(), survey.len());
    let classes_of = |selection: &dyn Dataset<torchfits_burn::Stamp>| -> BTreeSet<i64> {
        (0..selection.len())
            .map(|k| {
                let stamp = selection.get(k).expect("stamp");
                let side = stamp.side.expect("the plan's class");
                let Some(SideValues::Code { codes, .. }) = side.get("class") else { panic!("codes") };
                codes[stamp.row]
            })
            .collect()
    };
    let (ca, cb) = (classes_of(&train), classes_of(&valid));
    assert!(!ca.is_empty() && !cb.is_empty() && ca.is_disjoint(&cb), "{ca:?} / {cb:?}");
    let Err(err) = survey.split_by(GroupBy::Cell { depth: 6 }, 0.5, 3) else { panic!("the plan has no RA") };
    assert!(err.to_string().contains("RA"), "{err}");
}

#[test]
fn survey_stamps_are_cut_from_the_hdu_the_plan_placed_them_on() {
    let dir = tmpdir("datasets-survey-hdu");
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/data/sample.fits");
    let plan = SurveyPlanner::new(&sample)
        .catalog_hdu("CATALOG")
        .band("r", [&sample])
        .hdu("SCI")
        .cache(dir.join("cache"))
        .progress(false)
        .build()
        .expect("plan");
    assert_eq!(plan.hdu().to_string(), "SCI");
    let ds = SurveyCutoutDataset::builder(plan).size(8).subpixel(false).build().expect("dataset");
    let stamp = ds.get(0).expect("a stamp of SCI (the primary HDU has no image)");
    let (x, y) = (stamp.origin.0 as usize, stamp.origin.1 as usize);
    let file = torchfits_core::FitsFile::open(&sample).expect("open");
    let section = torchfits_core::Section::new(vec![y..y + 8, x..x + 8]);
    let want: Vec<f32> = file.image("SCI").expect("SCI").read_section(&section).expect("read");
    assert_eq!(&stamp.data()[..64], &want[..], "the stamp is SCI's pixels");
}

#[test]
fn survey_stamps_have_coordinate_planes_centred_on_their_positions() {
    let dir = tmpdir("datasets-survey-coordinates");
    let (catalog, images, _) = survey(&dir);
    let plan = SurveyPlanner::new(&catalog)
        .band("g", &images)
        .band("r", &images[..1])
        .cache(dir.join("cache"))
        .progress(false)
        .build()
        .expect("plan");
    let ds = SurveyCutoutDataset::builder(plan).size(9).build().expect("survey");
    let coordinates = std::sync::Arc::new(torchfits_burn::CutoutCoordinates::new(&ds).expect("coordinates"));
    let items: Vec<_> = (0..ds.len()).map(|k| ds.get(k).expect("stamp")).collect();
    let indices: Vec<usize> = items.iter().map(|s| s.index).collect();
    let batch = StampBatcher::new().coordinates(coordinates).try_batch(items, &Device::flex()).expect("batch");
    let planes = batch.coordinates.expect("coordinate planes");
    assert_eq!(planes.dims(), [ds.len(), 2, 9, 9]);
    let values: Vec<f32> = planes.into_data().iter::<f32>().collect();
    let read = torchfits_burn::Catalog::read(&catalog, &["RA", "DEC"], None).expect("catalog");
    let (ra, dec) = (read.column("RA").expect("RA"), read.column("DEC").expect("DEC"));
    for (k, &index) in indices.iter().enumerate() {
        // the position lies at the centre pixel (4, 4) of every band
        let row = ds.plan().item(index).expect("item").row as usize;
        let at = |plane: usize| f64::from(values[(k * 2 + plane) * 81 + 4 * 9 + 4]);
        assert!((at(0) - ra[row]).abs() < 1e-4 && (at(1) - dec[row]).abs() < 1e-4, "item {index}: {} {}", at(0), at(1));
    }
}
