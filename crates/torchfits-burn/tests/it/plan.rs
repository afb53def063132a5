//! Survey plans: the HEALPix-indexed plan equals the brute-force placement (every row through
//! every image), overlaps follow the policy, bands are placed each through its own WCS, targets
//! ride along exact, and the cached plan is mapped again until an input changes.

use std::path::{Path, PathBuf};

use torchfits_burn::{Overlap, Placement, SurveyPlanner};
use torchfits_core::table::{ColumnData, ColumnValues, TableBatch};
use torchfits_core::{Header, Value, Wcs, WriteOptions};

use crate::common::tmpdir;

const SIDE: usize = 64;
const GRID: usize = 4;
/// Degrees per pixel (2 arcsec).
const SCALE: f64 = 2.0 / 3600.0;

/// A TAN-SIP header of image (i, j) of a band: a grid of images overlapping by a quarter, the
/// second band shifted by half a pixel and turned by 1 degree.
fn header(band: usize, i: usize, j: usize) -> Header {
    let step = 0.75 * SIDE as f64 * SCALE;
    let (ra, dec) = (10.0 + i as f64 * step / 30f64.to_radians().cos(), 30.0 + j as f64 * step);
    let (ra, dec) = (ra + band as f64 * 0.5 * SCALE, dec - band as f64 * 0.3 * SCALE);
    let turn = (band as f64).to_radians();
    let mut h = Header::new();
    for (k, v) in [
        ("CTYPE1", Value::Str("RA---TAN-SIP".into())),
        ("CTYPE2", Value::Str("DEC--TAN-SIP".into())),
        ("CRPIX1", Value::Float(32.5)),
        ("CRPIX2", Value::Float(32.5)),
        ("CRVAL1", Value::Float(ra)),
        ("CRVAL2", Value::Float(dec)),
        ("CD1_1", Value::Float(-SCALE * turn.cos())),
        ("CD1_2", Value::Float(SCALE * turn.sin())),
        ("CD2_1", Value::Float(SCALE * turn.sin())),
        ("CD2_2", Value::Float(SCALE * turn.cos())),
        ("A_ORDER", Value::Int(2)),
        ("B_ORDER", Value::Int(2)),
        ("A_2_0", Value::Float(3e-5)),
        ("B_0_2", Value::Float(-2e-5)),
        ("B_1_1", Value::Float(1e-5)),
    ] {
        h.set(k, v, None).expect("set");
    }
    h
}

/// The images of `bands` bands, and a catalog of positions over them (and some beyond) with
/// an ID past 2^53 and a redshift.
fn survey(dir: &Path, bands: usize, rows: usize) -> (PathBuf, Vec<Vec<PathBuf>>) {
    let mut files = vec![Vec::new(); bands];
    for (b, band) in files.iter_mut().enumerate() {
        for j in 0..GRID {
            for i in 0..GRID {
                let path = dir.join(format!("b{b}-{i}{j}.fits"));
                let mut w = WriteOptions::new().overwrite(true).create(&path).expect("create");
                w.image(&vec![0f32; SIDE * SIDE], &[SIDE, SIDE]).header(&header(b, i, j)).write().expect("image");
                w.finish().expect("finish");
                band.push(path);
            }
        }
    }
    let span = GRID as f64 * 0.75 * SIDE as f64 * SCALE;
    let mut state = 12345u64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut ra, mut dec) = (Vec::new(), Vec::new());
    for _ in 0..rows {
        ra.push(10.0 - 0.1 * span + 1.3 * span * next() / 30f64.to_radians().cos());
        dec.push(30.0 - 0.1 * span + 1.3 * span * next());
    }
    let ids: Vec<i64> = (0..rows as i64).map(|i| (1 << 62) + i).collect();
    let z: Vec<f64> = (0..rows).map(|i| 0.1 + i as f64 * 1e-3).collect();
    let t = TableBatch::new(vec![
        ColumnData::new("ra", ColumnValues::F64(ra)),
        ColumnData::new("dec", ColumnValues::F64(dec)),
        ColumnData::new("id", ColumnValues::I64(ids)),
        ColumnData::new("z", ColumnValues::F64(z)),
    ])
    .expect("table");
    let catalog = dir.join("catalog.fits");
    let mut w = WriteOptions::new().overwrite(true).create(&catalog).expect("create");
    w.write_table(&t, "CATALOG", None).expect("table");
    w.finish().expect("finish");
    (catalog, files)
}

/// Every row's pixel on every image of a band: `[image][2 * row..]`.
fn pixels(wcs: &[Wcs], world: &[f64]) -> Vec<Vec<f64>> {
    wcs.iter()
        .map(|w| {
            let mut p = vec![0.0; world.len()];
            w.world_to_pixel(world, &mut p).expect("w2p");
            p
        })
        .collect()
}

/// Every image of a band containing row `r`: (image, x, y, pixels to the nearest edge).
fn hits(pixels: &[Vec<f64>], r: usize) -> Vec<(usize, f64, f64, f64)> {
    let mut out = Vec::new();
    for (k, p) in pixels.iter().enumerate() {
        let (x, y, e) = (p[2 * r], p[2 * r + 1], SIDE as f64 - 0.5);
        if x >= -0.5 && x < e && y >= -0.5 && y < e {
            out.push((k, x, y, (x + 0.5).min(e - x).min(y + 0.5).min(e - y)));
        }
    }
    out
}

fn deepest(h: &[(usize, f64, f64, f64)]) -> Option<Placement> {
    let mut best: Option<(usize, f64, f64, f64)> = None;
    for &c in h {
        if best.is_none_or(|b| c.3 > b.3) {
            best = Some(c);
        }
    }
    best.map(|(image, x, y, _)| Placement { image, x, y })
}

/// The brute-force items: every row through every image of every band.
fn brute_force(catalog: &Path, files: &[Vec<PathBuf>], overlap: Overlap) -> Vec<(u64, Vec<Option<Placement>>)> {
    let cat = torchfits_burn::Catalog::read(catalog, &["ra", "dec"], None).expect("catalog");
    let (ra, dec) = (cat.column("ra").expect("ra"), cat.column("dec").expect("dec"));
    let world: Vec<f64> = ra.iter().zip(dec).flat_map(|(&a, &d)| [a, d]).collect();
    let bands: Vec<Vec<Vec<f64>>> = files
        .iter()
        .map(|band| {
            let wcs: Vec<Wcs> =
                band.iter().map(|f| torchfits_core::FitsFile::open(f).expect("open").wcs(0).expect("wcs")).collect();
            pixels(&wcs, &world)
        })
        .collect();
    let mut items = Vec::new();
    for r in 0..ra.len() {
        let per_band: Vec<Vec<(usize, f64, f64, f64)>> = bands.iter().map(|p| hits(p, r)).collect();
        let others: Vec<Option<Placement>> = per_band[1..].iter().map(|h| deepest(h)).collect();
        let firsts: Vec<Option<Placement>> = match overlap {
            Overlap::FarthestFromEdge => vec![deepest(&per_band[0])],
            Overlap::Every => per_band[0].iter().map(|&(image, x, y, _)| Some(Placement { image, x, y })).collect(),
        };
        let firsts = if firsts.iter().all(Option::is_none) { vec![None] } else { firsts };
        for first in firsts {
            let all: Vec<Option<Placement>> = std::iter::once(first).chain(others.iter().copied()).collect();
            if all.iter().any(Option::is_some) {
                items.push((r as u64, all));
            }
        }
    }
    // the plan numbers its items image by image (the first band that has the position, its
    // files numbered band after band), in catalog order within an image
    let first_file = |b: usize| files[..b].iter().map(Vec::len).sum::<usize>();
    items.sort_by_key(|(_, all)| all.iter().enumerate().find_map(|(b, p)| p.map(|p| first_file(b) + p.image)));
    items
}

fn plan_items(plan: &torchfits_burn::SurveyPlan) -> Vec<(u64, Vec<Option<Placement>>)> {
    (0..plan.len()).map(|i| plan.item(i).expect("item")).map(|it| (it.row, it.placements)).collect()
}

fn assert_same(got: &[(u64, Vec<Option<Placement>>)], want: &[(u64, Vec<Option<Placement>>)]) {
    assert_eq!(got.len(), want.len(), "items");
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.0, w.0, "rows");
        for (a, b) in g.1.iter().zip(&w.1) {
            match (a, b) {
                (Some(a), Some(b)) => {
                    assert_eq!(a.image, b.image, "row {}: image", g.0);
                    assert!((a.x - b.x).abs() < 1e-4 && (a.y - b.y).abs() < 1e-4, "row {}: {a:?} vs {b:?}", g.0);
                }
                (None, None) => {}
                _ => panic!("row {}: {a:?} vs {b:?}", g.0),
            }
        }
    }
}

#[test]
fn the_plan_equals_the_brute_force_placement_in_every_policy() {
    let dir = tmpdir("plan-brute");
    let (catalog, files) = survey(&dir, 2, 100_000);
    for overlap in [Overlap::FarthestFromEdge, Overlap::Every] {
        let plan = SurveyPlanner::new(&catalog)
            .band("g", &files[0])
            .band("r", &files[1])
            .targets(&["id", "z"])
            .overlap(overlap)
            .cache(dir.join(format!("cache-{overlap:?}")))
            .batch_rows(30_000)
            .progress(false)
            .build()
            .expect("plan");
        assert!(!plan.from_cache());
        let want = brute_force(&catalog, &files, overlap);
        assert_same(&plan_items(&plan), &want);
        assert_eq!(plan.rows(), 100_000);
        assert!(plan.placed_rows() > 50_000 && plan.placed_rows() < 100_000, "{}", plan.placed_rows());
        if overlap == Overlap::Every {
            assert!(plan.len() as u64 > plan.placed_rows(), "positions on several images give several items");
        }
        // the targets ride along, exact
        let (batch, i) = plan.locate(5).expect("item 5");
        let row = plan.item(5).expect("item").row as i64;
        let ids = batch.column_by_name("id").expect("id");
        let ids = ids.as_any().downcast_ref::<arrow_array::Int64Array>().expect("i64");
        assert_eq!(ids.value(i), (1 << 62) + row);
    }
}

#[test]
fn a_cached_plan_is_reused_until_an_input_changes() {
    let dir = tmpdir("plan-cache");
    let (catalog, files) = survey(&dir, 1, 500);
    let planner = || SurveyPlanner::new(&catalog).images(&files[0]).cache(dir.join("cache")).progress(false);
    let first = planner().build().expect("plan");
    let second = planner().build().expect("plan");
    assert!(!first.from_cache() && second.from_cache());
    // the survey's coverage, a FITS MOC beside the plan: about the 4 x 4 images' 0.013 square
    // degrees (whole cells at the edges), a few 1e-7 of the sky
    let f = first.sky_fraction();
    assert!(f > 3e-7 && f < 3e-6, "{f}");
    let moc = torchfits_core::FitsFile::open(first.coverage()).expect("a FITS MOC");
    let moc_header = moc.header(1).expect("the MOC table");
    assert_eq!(moc_header.get_str("MOCDIM").map(str::trim), Some("SPACE"), "{:?}", moc_header.get_str("MOCDIM"));
    assert_eq!(plan_items(&first), plan_items(&second));
    assert_eq!(first.path(), second.path());
    // an image rewritten: a new plan, and the stale one gone
    std::thread::sleep(std::time::Duration::from_millis(20));
    let mut w = WriteOptions::new().overwrite(true).create(&files[0][3]).expect("create");
    w.image(&vec![1f32; SIDE * SIDE], &[SIDE, SIDE]).header(&header(0, 3, 0)).write().expect("image");
    w.finish().expect("finish");
    let third = planner().build().expect("plan");
    assert!(!third.from_cache());
    assert_ne!(third.path(), first.path());
    assert!(!first.path().exists() && !first.coverage().exists(), "the stale plan is removed");
    assert_eq!(plan_items(&third), plan_items(&second), "the same placements: only the pixels changed");
}

/// The plan is read into memory by default: another process truncating its file in the cache
/// changes nothing (a mapped plan would raise SIGBUS on the lost pages); mapping is the caller's
/// opt-in, under its contract.
#[test]
fn a_plan_truncated_on_disk_reads_as_it_was_unless_mapped() {
    let dir = tmpdir("plan-truncated");
    let (catalog, files) = survey(&dir, 1, 2000);
    let planner = || SurveyPlanner::new(&catalog).images(&files[0]).cache(dir.join("cache")).progress(false);
    let plan = planner().build().expect("plan");
    let before = plan_items(&plan);
    assert!(!before.is_empty());
    std::fs::OpenOptions::new().write(true).open(plan.path()).expect("the plan file").set_len(0).expect("truncate");
    assert_eq!(plan_items(&plan), before, "the plan in memory is whole");
    // mapped (the next build makes the plan again: the truncated file is no plan)
    // SAFETY: nothing truncates or writes this plan's file while it lives.
    let mapped = unsafe { planner().map_plan() }.build().expect("plan");
    assert!(!mapped.from_cache());
    assert_eq!(plan_items(&mapped), before);
}

/// Images whose primary HDU holds each pixel's east offset and whose first extension its
/// north offset from (10, 30) degrees, in pixels, through the image's own WCS.
fn sky_encoding_images(dir: &Path, bands: usize) -> Vec<Vec<PathBuf>> {
    let mut files = vec![Vec::new(); bands];
    for (b, band) in files.iter_mut().enumerate() {
        for j in 0..GRID {
            for i in 0..GRID {
                let h = header(b, i, j);
                let wcs = Wcs::from_header(&h).expect("wcs");
                let pixels: Vec<f64> = (0..SIDE * SIDE).flat_map(|k| [(k % SIDE) as f64, (k / SIDE) as f64]).collect();
                let mut world = vec![0.0; pixels.len()];
                wcs.pixel_to_world(&pixels, &mut world).expect("p2w");
                let east: Vec<f32> =
                    world.chunks(2).map(|w| ((w[0] - 10.0) * 30f64.to_radians().cos() / SCALE) as f32).collect();
                let north: Vec<f32> = world.chunks(2).map(|w| ((w[1] - 30.0) / SCALE) as f32).collect();
                let path = dir.join(format!("sky{b}-{i}{j}.fits"));
                let mut w = WriteOptions::new().overwrite(true).create(&path).expect("create");
                w.image(&east, &[SIDE, SIDE]).header(&h).write().expect("east");
                w.image(&north, &[SIDE, SIDE]).header(&h).write().expect("north");
                w.finish().expect("finish");
                band.push(path);
            }
        }
    }
    files
}

#[test]
fn multi_band_stamps_line_up_on_the_sky() {
    use burn::data::dataset::Dataset;
    use torchfits_burn::SurveyCutoutDataset;

    let dir = tmpdir("plan-bands");
    let (catalog, _) = survey(&dir, 0, 400);
    let files = sky_encoding_images(&dir, 3);
    let cat = torchfits_burn::Catalog::read(&catalog, &["ra", "dec"], None).expect("catalog");
    let (ra, dec) = (cat.column("ra").expect("ra"), cat.column("dec").expect("dec"));
    let plan = || {
        SurveyPlanner::new(&catalog)
            .band("g", &files[0])
            .band("r", &files[1])
            .band("i", &files[2])
            .targets(&["id"])
            .cache(dir.join("cache"))
            .progress(false)
            .build()
            .expect("plan")
    };
    const S: usize = 9;
    let centre = (S / 2) * S + S / 2;
    let mut checked = 0;
    for (hdu, truth) in [(0usize, 0usize), (1, 1)] {
        let ds = SurveyCutoutDataset::builder(plan()).size(S).hdu(hdu).targets(&["id"]).build().expect("dataset");
        // the targets ride with each stamp into the batch, exact
        let items: Vec<_> = (0..8).map(|k| ds.get(k).expect("stamp")).collect();
        let batch = torchfits_burn::StampBatcher::new().try_batch(items, &burn::tensor::Device::flex()).expect("batch");
        let want: Vec<i64> = (0..8).map(|k| (1 << 62) + ds.plan().item(k).expect("item").row as i64).collect();
        assert_eq!(batch.target("id").expect("id").values, torchfits_burn::SideValues::Int(want));
        for k in 0..ds.len() {
            let stamp = ds.get(k).expect("stamp");
            assert_eq!((stamp.channels, stamp.flag_channels), (3, 3));
            let row = ds.plan().item(k).expect("item").row as usize;
            let want = if truth == 0 {
                (ra[row] - 10.0) * 30f64.to_radians().cos() / SCALE
            } else {
                (dec[row] - 30.0) / SCALE
            };
            let px = stamp.data();
            for b in 0..3 {
                if stamp.flag(b).is_some_and(|f| f[centre] != 0.0) {
                    continue; // the band lacks the position, or its centre is off the image
                }
                let got = f64::from(px[b * S * S + centre]);
                assert!(
                    (got - want).abs() < 0.01,
                    "item {k} band {b}: the centre is {} px from the position",
                    got - want
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 1000, "{checked} band stamps checked");
}

#[test]
fn an_unreadable_image_fails_the_plan_or_is_left_out_and_counted() {
    let dir = tmpdir("plan-failures");
    let (catalog, files) = survey(&dir, 1, 2000);
    std::fs::write(&files[0][5], b"SIMPLE  =                    T / not a whole header").expect("corrupt");
    let planner = || SurveyPlanner::new(&catalog).images(&files[0]).cache(dir.join("cache")).progress(false);
    let e = planner().build().expect_err("a corrupt image");
    assert!(e.to_string().contains("b0-11.fits"), "{e}");
    let plan = planner().on_error(torchfits_burn::OnError::Skip).build().expect("plan");
    let report = plan.failures().report();
    assert_eq!(report.files.len(), 1);
    assert!(report.files[0].file.ends_with("b0-11.fits"), "{:?}", report.files[0].file);
    assert!((0..plan.len()).all(|i| plan.item(i).expect("item").placements[0].expect("placed").image != 5));
    assert!(plan.len() > 500);
}

#[test]
fn bands_from_a_table_keep_a_position_on_one_field_across_bands() {
    let dir = tmpdir("plan-bands-table");
    let (catalog, files) = survey(&dir, 2, 4000);
    // keys: band 0's image (i, j) has key "i-j"; band 1's image (i, j) the key of band 0's
    // (i + 1, j), so that the key sends band 1 to its neighbour where the position is on both
    let key = |b: usize, k: usize| {
        let (i, j) = (k % GRID, k / GRID);
        format!("{}-{j}", if b == 0 { i } else { i + 1 })
    };
    let mut keys = Vec::new();
    let (mut bands, mut paths) = (Vec::new(), Vec::new());
    for (b, band) in files.iter().enumerate() {
        for (k, f) in band.iter().enumerate() {
            keys.push(key(b, k));
            bands.push(["g", "r"][b].to_string());
            paths.push(f.file_name().expect("name").to_string_lossy().into_owned());
        }
    }
    let strings = |v: &[String]| {
        let mut offsets = vec![0i32];
        let mut bytes = Vec::new();
        for s in v {
            bytes.extend_from_slice(s.as_bytes());
            offsets.push(bytes.len() as i32);
        }
        ColumnValues::Str { offsets, bytes }
    };
    let table = dir.join("bands.fits");
    let t = TableBatch::new(vec![
        ColumnData::new("tile", strings(&keys)),
        ColumnData::new("band", strings(&bands)),
        ColumnData::new("file", strings(&paths)),
    ])
    .expect("table");
    let mut w = WriteOptions::new().overwrite(true).create(&table).expect("create");
    w.write_table(&t, "BANDS", None).expect("table");
    w.finish().expect("finish");
    let plan = SurveyPlanner::new(&catalog)
        .bands_table(&table, "tile", "band", "file")
        .expect("bands")
        .cache(dir.join("cache"))
        .progress(false)
        .build()
        .expect("plan");
    assert_eq!(
        plan.bands().map(|(n, f)| (n.to_string(), f.len())).collect::<Vec<_>>(),
        [("g".into(), 16), ("r".into(), 16)]
    );
    // the brute force: band 1 takes the image of band 0's key where it contains the position
    let cat = torchfits_burn::Catalog::read(&catalog, &["ra", "dec"], None).expect("catalog");
    let world: Vec<f64> =
        cat.column("ra").expect("ra").iter().zip(cat.column("dec").expect("dec")).flat_map(|(&a, &d)| [a, d]).collect();
    let wcs: Vec<Wcs> =
        files[1].iter().map(|f| torchfits_core::FitsFile::open(f).expect("open").wcs(0).expect("wcs")).collect();
    let r_pixels = pixels(&wcs, &world);
    let (mut by_key, mut by_depth) = (0, 0);
    for i in 0..plan.len() {
        let item = plan.item(i).expect("item");
        let (Some(g), Some(r)) = (item.placements[0], item.placements[1]) else { continue };
        let candidates = hits(&r_pixels, item.row as usize);
        let keyed = candidates.iter().find(|c| key(1, c.0) == key(0, g.image));
        let want = match keyed {
            Some(c) => {
                by_key += 1;
                c.0
            }
            None => {
                by_depth += 1;
                deepest(&candidates).expect("a candidate").image
            }
        };
        assert_eq!(r.image, want, "item {i}");
    }
    assert!(by_key > 100 && by_depth > 100, "both rules exercised: {by_key} by key, {by_depth} by depth");
}

#[test]
fn parquet_and_arrow_catalogs_stream_to_the_same_plan() {
    let dir = tmpdir("plan-formats");
    let (catalog, files) = survey(&dir, 1, 5000);
    let cat = torchfits_burn::Catalog::read(&catalog, &["ra", "dec", "id"], None).expect("catalog");
    let part = |lo: usize, hi: usize| {
        let ra = cat.column("ra").expect("ra")[lo..hi].to_vec();
        let dec = cat.column("dec").expect("dec")[lo..hi].to_vec();
        let ids = match cat.exact("id").expect("id") {
            torchfits_burn::SideValues::Int(v) => v[lo..hi].to_vec(),
            other => panic!("{other:?}"),
        };
        TableBatch::new(vec![
            ColumnData::new("ra", ColumnValues::F64(ra)),
            ColumnData::new("dec", ColumnValues::F64(dec)),
            ColumnData::new("id", ColumnValues::I64(ids)),
        ])
        .expect("batch")
        .into_record_batch()
        .expect("record")
    };
    let parts = [part(0, 1700), part(1700, 3100), part(3100, 5000)];
    let parquet = dir.join("catalog.parquet");
    let mut w =
        parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&parquet).expect("create"), parts[0].schema(), None)
            .expect("parquet");
    for p in &parts {
        w.write(p).expect("write");
        w.flush().expect("row group");
    }
    w.close().expect("close");
    let arrow = dir.join("catalog.arrow");
    let mut w =
        arrow_ipc::writer::FileWriter::try_new(std::fs::File::create(&arrow).expect("create"), &parts[0].schema())
            .expect("arrow");
    for p in &parts {
        w.write(p).expect("write");
    }
    w.finish().expect("finish");
    let plan = |path: &Path| {
        let p = SurveyPlanner::new(path)
            .images(&files[0])
            .targets(&["id"])
            .batch_rows(1000)
            .cache(dir.join("cache"))
            .progress(false)
            .build()
            .expect("plan");
        assert_eq!(p.rows(), 5000);
        plan_items(&p)
    };
    let want = plan(&catalog);
    assert!(want.len() > 2500);
    assert_eq!(plan(&parquet), want);
    assert_eq!(plan(&arrow), want);
}
