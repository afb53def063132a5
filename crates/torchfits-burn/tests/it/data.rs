//! The datasets, the batcher and the shards on the CPU backend.

use std::sync::Arc;

use crate::common::{N, survey, tmpdir, value};
use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::Dataset;
use burn::tensor::Device;
use torchfits_burn::ChannelRole;
use torchfits_burn::transforms::{Asinh, NanFill, Normalize, Symmetries};
use torchfits_burn::{CatalogCutoutDataset, StampBatcher, permutation, shard_indices, split};

#[test]
fn stamps_are_cut_around_the_positions_padded_and_masked() {
    let dir = tmpdir("stamps");
    let (catalog, images, truth) = survey(&dir);
    let ds = CatalogCutoutDataset::builder(&catalog, &images).label("LABEL").size(16).build().expect("dataset");
    assert_eq!(ds.len(), 8);
    assert_eq!(ds.unplaced(), &[8]);
    for i in 0..ds.len() {
        let s = ds.get(i).expect("stamp");
        let row = ds.row(i).expect("row");
        let (k, x, y) = truth[row].expect("placed");
        assert_eq!((s.channels, s.flag_channels, s.height, s.width, s.image), (1, 1, 16, 16, k));
        assert_eq!(s.label, Some((row % 2) as i64));
        // the position's pixel sits at (8, 8) of the stamp
        let (x0, y0) = ((x + 0.5).floor() as i64 - 8, (y + 0.5).floor() as i64 - 8);
        assert_eq!(s.origin, (x0 as f64, y0 as f64));
        for r in 0..16i64 {
            for c in 0..16i64 {
                let (ix, iy) = (x0 + c, y0 + r);
                let inside = ix >= 0 && iy >= 0 && ix < N as i64 && iy < N as i64;
                let at = (r * 16 + c) as usize;
                let (v, m) = (s.data()[at], s.flag(0).map_or(0.0, |f| f[at]));
                if inside {
                    assert_eq!(v, value(k, ix as usize, iy as usize), "item {i} at ({c}, {r})");
                    assert_eq!(m, 0.0);
                } else {
                    assert_eq!((v, m), (0.0, 1.0), "item {i} at ({c}, {r}): padding");
                }
            }
        }
    }
}

#[test]
fn a_corrupt_file_gives_an_error_naming_it_while_other_items_load() {
    let dir = tmpdir("corrupt");
    let (catalog, images, truth) = survey(&dir);
    let ds = CatalogCutoutDataset::builder(&catalog, &images).size(16).build().expect("dataset");
    // image 1 loses its data after the dataset was built
    let bytes = std::fs::read(&images[1]).expect("read");
    std::fs::write(&images[1], &bytes[..2880 + 1000]).expect("truncate");
    let mut failed = 0;
    for i in 0..ds.len() {
        let (k, _, _) = truth[ds.row(i).expect("row")].expect("placed");
        match ds.get(i) {
            Ok(s) => assert_eq!(k, 0, "item {i} of the truncated image loaded ({:?})", s.origin),
            Err(e) => {
                assert_eq!(k, 1, "item {i}: {e}");
                let msg = e.to_string();
                assert!(msg.contains("img1.fits"), "the error names the file: {msg}");
                assert!(msg.to_lowercase().contains("hdu"), "the error names the HDU: {msg}");
                failed += 1;
            }
        }
    }
    assert!(failed > 0, "the truncated image's items fail");
}

#[test]
fn shards_are_disjoint_cover_everything_and_reshuffle_per_epoch() {
    for n in [0usize, 1, 7, 100, 1001] {
        for world in 1..5 {
            for epoch in 0..3 {
                let mut all: Vec<usize> = (0..world).flat_map(|r| shard_indices(n, r, world, 42, epoch)).collect();
                let lens: Vec<usize> = (0..world).map(|r| shard_indices(n, r, world, 42, epoch).len()).collect();
                assert!(lens.iter().max().unwrap_or(&0) - lens.iter().min().unwrap_or(&0) <= 1);
                all.sort_unstable();
                assert_eq!(all, (0..n).collect::<Vec<_>>(), "n {n} world {world} epoch {epoch}");
            }
        }
    }
    assert_eq!(shard_indices(100, 1, 4, 42, 3), shard_indices(100, 1, 4, 42, 3));
    assert_ne!(shard_indices(100, 1, 4, 42, 3), shard_indices(100, 1, 4, 42, 4));
    assert_ne!(shard_indices(100, 1, 4, 42, 3), shard_indices(100, 1, 4, 43, 3));
    assert!(shard_indices(10, 4, 4, 1, 0).is_empty());
    let (a, b) = split(10, 0.8, 5);
    assert_eq!((a.len(), b.len()), (8, 2));
    let mut p = permutation(50, 9);
    assert_eq!(p, permutation(50, 9));
    p.sort_unstable();
    assert_eq!(p, (0..50).collect::<Vec<_>>());
}

/// Two processes (this test binary, run again as each rank) take their shards of one dataset:
/// together they read every item exactly once.
#[test]
fn two_processes_cover_the_dataset_exactly() {
    if let Ok(rank) = std::env::var("TORCHFITS_SHARD_RANK") {
        // the child: print this rank's shard of epoch 2
        let rank: usize = rank.parse().expect("rank");
        let dir = tmpdir(&format!("shard-{rank}"));
        let (catalog, images, _) = survey(&dir);
        let ds = Arc::new(CatalogCutoutDataset::builder(&catalog, &images).size(8).build().expect("dataset"));
        let shard = torchfits_burn::ShardExt::shard(ds.clone(), rank, 2, 11, 2);
        let rows: Vec<String> = (0..shard.len())
            .map(|i| {
                let s = shard.get(i).expect("stamp");
                ds.row(s.index).expect("row").to_string()
            })
            .collect();
        println!("SHARD {}", rows.join(","));
        return;
    }
    let exe = std::env::current_exe().expect("exe");
    let mut seen = Vec::new();
    for rank in 0..2 {
        let out = std::process::Command::new(&exe)
            .args(["--exact", "data::two_processes_cover_the_dataset_exactly", "--nocapture", "--test-threads=1"])
            .env("TORCHFITS_SHARD_RANK", rank.to_string())
            .output()
            .expect("run a rank");
        assert!(out.status.success(), "rank {rank}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        let line = text
            .lines()
            .find_map(|l| l.split_once("SHARD ").map(|(_, rest)| rest.trim()))
            .unwrap_or_else(|| panic!("no shard from rank {rank}: {text}"));
        seen.extend(line.split(',').filter(|s| !s.is_empty()).map(|s| s.parse::<usize>().expect("row")));
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..8).collect::<Vec<_>>(), "each placed catalog row exactly once");
}

#[test]
fn seeded_shuffles_and_augmentations_are_reproducible() {
    let dir = tmpdir("seeded");
    let (catalog, images, _) = survey(&dir);
    let ds = Arc::new(CatalogCutoutDataset::builder(&catalog, &images).label("LABEL").size(16).build().expect("ds"));
    let device = Device::default();
    let run = |seed: u64, epoch: u64| -> (Vec<usize>, Vec<f32>) {
        let batcher = StampBatcher::new().transform(Asinh(10.0)).transform(Symmetries(seed));
        batcher.epoch().set(epoch);
        let loader = DataLoaderBuilder::new(batcher)
            .batch_size(3)
            .shuffle(seed)
            // burn's worker threads deliver batches in the order they finish: one thread here
            .num_workers(0)
            .build(ds.clone());
        let mut order = Vec::new();
        let mut data = Vec::new();
        for b in loader.iter() {
            let b = b.expect("batch");
            order.extend(b.indices.iter().copied());
            data.extend(b.images.into_data().iter::<f32>());
        }
        (order, data)
    };
    let a = run(3, 0);
    assert!(a == run(3, 0), "same seed and epoch: same order and pixels");
    let mut sorted = a.0.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..ds.len()).collect::<Vec<_>>());
    assert!(a.1 != run(3, 1).1, "another epoch: other symmetries");
    // the symmetries are the 8 of the square, and a batch without augmentation is the stamps
    let items: Vec<_> = (0..ds.len()).map(|i| ds.get(i).expect("stamp")).collect();
    let plain = StampBatcher::new().try_batch(items.clone(), &device).expect("batch").images.into_data();
    let plane = |s: &torchfits_burn::Stamp| s.flag(0).map_or_else(|| vec![0.0; 256], <[f32]>::to_vec);
    let direct: Vec<f32> = items.iter().flat_map(|s| [s.data().to_vec(), plane(s)].concat()).collect();
    assert!(plain.iter::<f32>().collect::<Vec<_>>() == direct, "a plain batch is the stamps and their edge flags");
    let b = StampBatcher::new().transform(Symmetries(5));
    let codes: std::collections::BTreeSet<u8> = (0..200).map(|i| b.symmetry(i, true)).collect();
    assert_eq!(codes.len(), 8);
    let turned = b.try_batch(items.clone(), &device).expect("batch").images.into_data();
    let turned: Vec<f32> = turned.iter::<f32>().collect();
    for (k, s) in items.iter().enumerate() {
        let code = b.symmetry(s.index, true);
        for y in 0..16 {
            for x in 0..16 {
                let (mut sx, mut sy) = if code & 4 != 0 { (y, x) } else { (x, y) };
                if code & 1 != 0 {
                    sx = 15 - sx;
                }
                if code & 2 != 0 {
                    sy = 15 - sy;
                }
                assert_eq!(turned[k * 512 + y * 16 + x], s.data()[sy * 16 + sx], "item {k} symmetry {code}");
            }
        }
    }
}

#[test]
fn batches_stack_labels_nan_masks_and_normalisation() {
    let dir = tmpdir("batches");
    let (catalog, images, _) = survey(&dir);
    let ds = CatalogCutoutDataset::builder(&catalog, &images).label("LABEL").size(8).build().expect("ds");
    let items: Vec<_> = (0..4).map(|i| ds.get(i).expect("stamp")).collect();
    let device = Device::default();
    let b = StampBatcher::new()
        .transform(NanFill(-1.0))
        .transform(Normalize { mean: vec![100.0], std: vec![4.0] })
        .try_batch(items.clone(), &device)
        .expect("batch");
    assert_eq!(b.images.dims(), [4, 3, 8, 8]);
    let labels: Vec<i64> = b.labels.expect("labels").into_data().iter::<i64>().collect();
    assert_eq!(labels, items.iter().map(|s| s.label.expect("label")).collect::<Vec<_>>());
    let data: Vec<f32> = b.images.into_data().iter::<f32>().collect();
    for (k, s) in items.iter().enumerate() {
        for p in 0..64 {
            assert_eq!(data[k * 192 + p], (s.data()[p] - 100.0) / 4.0);
            let edge = s.flag(0).map_or(0.0, |f| f[p]);
            assert_eq!(data[k * 192 + 64 + p], edge, "the edge mask is not normalised");
            assert_eq!(data[k * 192 + 128 + p], 0.0, "no NaN");
        }
    }
}

mod more {
    use super::*;
    use torchfits_burn::{Crop, ImagingDataset, Prefetch, SpectroscopicDataset, SpectrumBatcher};
    use torchfits_core::table::{ColumnData, ColumnValues, TableBatch};
    use torchfits_core::{Header, Value, WriteOptions};

    /// Files of two 40x50 planes (SCI = 100 k + y + x / 100, MASK = k) with CLASS = k % 3.
    fn imaging_files(dir: &std::path::Path, n: usize) -> Vec<std::path::PathBuf> {
        (0..n)
            .map(|k| {
                let path = dir.join(format!("obj{k:02}.fits"));
                let sci: Vec<f32> = (0..40 * 50).map(|i| (100 * k + i / 50) as f32 + (i % 50) as f32 / 100.0).collect();
                let mask = vec![k as i16; 40 * 50];
                let mut h = Header::new();
                h.set("EXTNAME", "SCI", None)
                    .expect("set")
                    .set("CLASS", Value::Int((k % 3) as i64), None)
                    .expect("set");
                let mut m = Header::new();
                m.set("EXTNAME", "MASK", None).expect("set");
                let mut w = WriteOptions::new().overwrite(true).create(&path).expect("create");
                w.image(&sci, &[40, 50]).header(&h).write().expect("sci");
                w.image(&mask, &[40, 50]).header(&m).write().expect("mask");
                w.finish().expect("finish");
                path
            })
            .collect()
    }

    #[test]
    fn imaging_items_stack_channels_crop_and_label() {
        let dir = tmpdir("imaging");
        let files = imaging_files(&dir, 6);
        let ds = ImagingDataset::glob(dir.join("obj*.fits"))
            .expect("glob")
            .channel("SCI", ChannelRole::Science)
            .channel("MASK", ChannelRole::Science)
            .crop(Crop::Centre(16, 20))
            .label_keyword("CLASS")
            .build()
            .expect("dataset");
        assert_eq!(ds.len(), 6);
        for k in 0..6 {
            let s = ds.get(k).expect("item");
            assert_eq!((s.channels, s.height, s.width, s.label), (2, 16, 20, Some((k % 3) as i64)));
            assert_eq!(s.origin, (15.0, 12.0));
            assert_eq!(s.data()[0], (100 * k + 12) as f32 + 0.15);
            assert!(s.data()[320..].iter().all(|&v| v == k as f32), "the mask plane");
        }
        // every plane of an imaging item is the file's: the stretch takes them all
        let items: Vec<_> = (0..3).map(|k| ds.get(k).expect("item")).collect();
        let b = StampBatcher::new().transform(Asinh(1.0)).try_batch(items, &Device::default()).expect("batch");
        let v: Vec<f32> = b.images.into_data().iter::<f32>().collect();
        for k in 0..3 {
            let (got, want) = (v[k * 640 + 320], (k as f32).asinh());
            assert!(
                (got - want).abs() <= 1e-6 * want.abs().max(1.0),
                "the mask plane of item {k} is stretched too: {got} vs {want}"
            );
        }
        // random crops: inside the image, repeatable, redrawn per epoch
        let random = ImagingDataset::builder(&files)
            .channel("SCI", ChannelRole::Science)
            .crop(Crop::Random { height: 8, width: 8, seed: 3 })
            .build()
            .expect("dataset");
        let first: Vec<(f64, f64)> = (0..6).map(|k| random.get(k).expect("item").origin).collect();
        assert_eq!(first, (0..6).map(|k| random.get(k).expect("item").origin).collect::<Vec<_>>());
        assert!(first.iter().all(|&(x, y)| x <= 42.0 && y <= 32.0));
        random.epoch().set(1);
        assert_ne!(first, (0..6).map(|k| random.get(k).expect("item").origin).collect::<Vec<_>>());
        // labels from a side table of file names
        let table = dir.join("labels.fits");
        let t = TableBatch::new(vec![
            ColumnData::strings("FILE", &["obj01.fits", "obj04.fits"]),
            ColumnData::new("LABEL", ColumnValues::I32(vec![7, 9])),
        ])
        .expect("table");
        let mut w = WriteOptions::new().overwrite(true).create(&table).expect("create");
        w.write_table(&t, "LABELS", None).expect("table");
        w.finish().expect("finish");
        let labelled = || {
            ImagingDataset::builder(&files).channel("SCI", ChannelRole::Science).table(&table, "FILE").label("LABEL")
        };
        let e = labelled().build().expect_err("obj00.fits has no label");
        assert!(e.to_string().contains("obj00.fits"), "{e}");
        let labelled = labelled().ignore_index(-1).build().expect("ds");
        let labels: Vec<Option<i64>> = (0..6).map(|k| labelled.get(k).expect("item").label).collect();
        assert_eq!(labels, vec![Some(-1), Some(7), Some(-1), Some(-1), Some(9), Some(-1)]);
        // whole images, and a file that went bad
        let full = ImagingDataset::builder(&files).channel("SCI", ChannelRole::Science).build().expect("ds");
        assert_eq!(full.get(2).expect("item").data().len(), 40 * 50);
        std::fs::write(&files[3], b"SIMPLE  =   not a FITS file").expect("corrupt");
        let e = full.get(3).expect_err("a corrupt file");
        assert!(e.to_string().contains("obj03.fits"), "{e}");
        assert!(full.get(4).is_ok());
        // a crop larger than the images is refused when the dataset is built
        assert!(ImagingDataset::builder(&files[..1]).crop(Crop::Centre(64, 64)).build().is_err());
    }

    #[test]
    fn spectra_come_from_image_rows_or_table_cells_with_their_metadata() {
        let dir = tmpdir("spectra");
        let (nspec, nwave) = (5usize, 30usize);
        let mut rows_files = Vec::new();
        let mut table_files = Vec::new();
        for k in 0..2 {
            let flux: Vec<f32> = (0..nspec * nwave).map(|i| (1000 * k + i) as f32).collect();
            let ivar: Vec<f32> = flux.iter().map(|v| 1.0 / (1.0 + v)).collect();
            let mask: Vec<i32> = (0..nspec * nwave).map(|i| (i % 2) as i32).collect();
            let ra: Vec<f64> = (0..nspec).map(|r| 10.0 * k as f64 + r as f64).collect();
            let path = dir.join(format!("coadd{k}.fits"));
            let mut w = WriteOptions::new().overwrite(true).create(&path).expect("create");
            for (name, data) in [("FLUX", &flux), ("IVAR", &ivar)] {
                let mut h = Header::new();
                h.set("EXTNAME", name, None).expect("set");
                w.image(data, &[nspec, nwave]).header(&h).write().expect("image");
            }
            let mut h = Header::new();
            h.set("EXTNAME", "MASK", None).expect("set");
            w.image(&mask, &[nspec, nwave]).header(&h).write().expect("mask");
            let fibermap =
                TableBatch::new(vec![ColumnData::new("TARGET_RA", ColumnValues::F64(ra.clone()))]).expect("t");
            w.write_table(&fibermap, "FIBERMAP", None).expect("fibermap");
            w.finish().expect("finish");
            rows_files.push(path);
            let path = dir.join(format!("table{k}.fits"));
            let t = TableBatch::new(vec![
                ColumnData::new("FLUX", ColumnValues::F32(flux.clone())).with_per_row(nwave),
                ColumnData::new("IVAR", ColumnValues::F32(ivar.clone())).with_per_row(nwave),
                ColumnData::new("TARGET_RA", ColumnValues::F64(ra)),
            ])
            .expect("table");
            let mut w = WriteOptions::new().overwrite(true).create(&path).expect("create");
            w.write_table(&t, "SPECTRA", None).expect("table");
            w.finish().expect("finish");
            table_files.push(path);
        }
        let rows = SpectroscopicDataset::image_rows(&rows_files)
            .channel("FLUX", ChannelRole::Science)
            .channel("IVAR", ChannelRole::InverseVariance)
            .channel("MASK", ChannelRole::Science)
            .meta("FIBERMAP", &["TARGET_RA"])
            .build()
            .expect("rows");
        let cells = SpectroscopicDataset::table_columns(&table_files, "SPECTRA")
            .column("FLUX", ChannelRole::Science)
            .column("IVAR", ChannelRole::InverseVariance)
            .meta("SPECTRA", &["TARGET_RA"])
            .build()
            .expect("cells");
        assert_eq!((rows.len(), cells.len()), (10, 10));
        for i in 0..10 {
            let (k, r) = (i / nspec, i % nspec);
            let a = rows.get(i).expect("row");
            let b = cells.get(i).expect("cell");
            assert_eq!((a.channels, a.length, a.file, a.row), (3, nwave, k, r));
            assert_eq!(a.values[0], (1000 * k + r * nwave) as f32);
            assert_eq!(&a.values[..2 * nwave], &b.values[..2 * nwave], "rows and cells agree");
            assert_eq!(a.values[2 * nwave + 1], ((r * nwave + 1) % 2) as f32);
            assert_eq!(
                (a.meta.clone(), b.meta.clone()),
                (vec![10.0 * k as f64 + r as f64], vec![10.0 * k as f64 + r as f64])
            );
        }
        // a file whose spectra have another length is refused when the dataset is built
        let other = dir.join("other.fits");
        let mut h = Header::new();
        h.set("EXTNAME", "FLUX", None).expect("set");
        let mut w = WriteOptions::new().overwrite(true).create(&other).expect("create");
        w.image(&vec![0f32; 2 * (nwave + 1)], &[2, nwave + 1]).header(&h).write().expect("image");
        w.finish().expect("finish");
        let e =
            SpectroscopicDataset::image_rows([&rows_files[0], &other]).hdu("FLUX").build().expect_err("lengths differ");
        assert!(e.to_string().contains("other.fits"), "{e}");
        let batch = SpectrumBatcher::new()
            .try_batch((0..4).map(|i| rows.get(i).expect("s")).collect(), &Device::default())
            .expect("batch");
        assert_eq!(batch.spectra.dims(), [4, 3, nwave]);
        assert_eq!(batch.meta.expect("meta").dims(), [4, 1]);
    }

    #[test]
    fn prefetch_keeps_the_order_whatever_the_threads() {
        let dir = tmpdir("prefetch");
        let (catalog, images, _) = survey(&dir);
        let ds = Arc::new(CatalogCutoutDataset::builder(&catalog, &images).size(16).build().expect("ds"));
        let order = permutation(ds.len(), 4);
        for threads in [1, 2, 3, 8] {
            let got: Vec<(usize, f32)> = Prefetch::new(ds.clone(), order.clone(), threads, 2)
                .map(|(i, s)| (i, s.expect("stamp").data()[0]))
                .collect();
            let want: Vec<(usize, f32)> = order.iter().map(|&i| (i, ds.get(i).expect("stamp").data()[0])).collect();
            assert_eq!(got, want, "{threads} threads");
        }
        // dropped early: the threads stop
        let mut p = Prefetch::new(ds.clone(), order.clone(), 2, 1);
        assert!(p.next().is_some());
        drop(p);
        // an index beyond the dataset is an error item, not a panic on a thread
        let (_, bad) = Prefetch::new(ds.clone(), vec![0, 99], 2, 1).nth(1).expect("item");
        assert!(bad.is_err());
    }
}

#[test]
fn shards_drawn_each_epoch_are_disjoint_and_new_every_epoch() {
    use torchfits_burn::{Epoch, ShardExt};
    let dir = tmpdir("epoch-shards");
    let (catalog, images, _) = survey(&dir);
    let ds = Arc::new(CatalogCutoutDataset::builder(&catalog, &images).size(8).build().expect("dataset"));
    let epoch = Epoch::default();
    let ranks: Vec<_> = (0..3).map(|r| ds.clone().shard_each_epoch(r, 3, 4, epoch.clone())).collect();
    let rows = |epoch_no: u64| {
        epoch.set(epoch_no);
        ranks
            .iter()
            .map(|shard| (0..shard.len()).map(|i| shard.get(i).expect("stamp").index).collect::<Vec<_>>())
            .collect::<Vec<_>>()
    };
    let first = rows(0);
    let mut all: Vec<usize> = first.concat();
    all.sort_unstable();
    assert_eq!(all, (0..ds.len()).collect::<Vec<_>>(), "every item once, in one rank");
    assert_eq!(first.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3, 2]);
    let second = rows(1);
    assert_ne!(first, second, "a new share each epoch");
    assert_eq!(second.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 3, 2], "the same lengths");
    assert_eq!(rows(0), first, "epoch 0 again: the same shares");
}
