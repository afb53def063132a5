//! Streamed epochs: the batches a `StampStream` gives are a function of the seed, the epoch and
//! the share alone (not of its workers), the shares burn-train's multi-device training slices
//! cover each epoch once, and a run resumed at an epoch sees that epoch's batches.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use burn::data::dataloader::DataLoader;
use burn::data::dataloader::split::split_dataloader;
use burn::tensor::Device;
use torchfits_burn::stream::StampStream;
use torchfits_burn::{CatalogCutoutDataset, EpochLoader, StampBatcher};
use torchfits_core::table::{ColumnData, ColumnValues, TableBatch};
use torchfits_core::{Wcs, WriteOptions};

use crate::common::{N, header, survey, tmpdir};

/// A dataset of `rows` 8x8 stamps spread over both images of the common survey.
fn dataset(name: &str, rows: usize) -> Arc<CatalogCutoutDataset> {
    let (catalog, images) = positions(name, rows);
    Arc::new(CatalogCutoutDataset::builder(&catalog, &images).size(8).build().expect("dataset"))
}

/// A catalog of `rows` positions spread over both images of the common survey, and the images.
fn positions(name: &str, rows: usize) -> (PathBuf, Vec<PathBuf>) {
    let dir = tmpdir(name);
    let (_, images, _) = survey(&dir);
    let (mut ra, mut dec) = (Vec::new(), Vec::new());
    for i in 0..rows {
        let wcs = Wcs::from_header(&header(i % 2)).expect("wcs");
        let (x, y) = ((i * 37 % (N - 16)) as f64 + 8.0, (i * 53 % (N - 16)) as f64 + 8.0);
        let mut w = [0.0; 2];
        wcs.pixel_to_world(&[x, y], &mut w).expect("p2w");
        ra.push(w[0]);
        dec.push(w[1]);
    }
    let t = TableBatch::new(vec![
        ColumnData::new("RA", ColumnValues::F64(ra)),
        ColumnData::new("DEC", ColumnValues::F64(dec)),
    ])
    .expect("table");
    let catalog = dir.join("stream-catalog.fits");
    let mut w = WriteOptions::new().overwrite(true).create(&catalog).expect("create");
    w.write_table(&t, "CATALOG", None).expect("table");
    w.finish().expect("finish");
    (catalog, images)
}

/// A survey dataset over a plan of the `rows` positions of [`dataset`]'s catalog on its two
/// images, as one band.
fn survey_dataset(name: &str, rows: usize) -> Arc<torchfits_burn::SurveyCutoutDataset> {
    let (catalog, images) = positions(name, rows);
    let plan = torchfits_burn::SurveyPlanner::new(&catalog)
        .catalog_hdu("CATALOG")
        .band("r", &images)
        .cache(catalog.with_file_name("plans"))
        .progress(false)
        .build()
        .expect("plan");
    Arc::new(torchfits_burn::SurveyCutoutDataset::builder(plan).size(8).build().expect("dataset"))
}

/// The item indices of one epoch of `loader`, batch after batch.
fn epoch(loader: &dyn DataLoader<torchfits_burn::StampBatch>) -> Vec<usize> {
    loader.iter().flat_map(|b| b.expect("batch").indices).collect()
}

#[test]
fn the_batches_are_the_same_for_any_number_of_workers_and_cover_the_epoch() {
    let ds = dataset("stream-workers", 1500);
    // a buffer larger than an image's 750 stamps: it holds both shards at once
    let stream =
        |workers| StampStream::new(ds.clone(), StampBatcher::new()).batch_size(50).buffer(800).seed(3).workers(workers);
    let one = epoch(&stream(1));
    assert_eq!(one, epoch(&stream(2)));
    assert_eq!(one, epoch(&stream(5)));
    let mut sorted = one.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (0..ds.len()).collect::<Vec<_>>(), "every item once");
    // mixed: both images in the first batch (items are numbered image by image, and read so)
    let images: BTreeSet<usize> = one[..50].iter().map(|&i| ds.read(i).expect("stamp").image).collect();
    assert_eq!(images.len(), 2);
}

#[test]
fn the_devices_of_a_multi_device_run_share_each_epoch_once() {
    let ds = dataset("stream-devices", 700);
    for devices in 1..=8 {
        let stream = StampStream::new(ds.clone(), StampBatcher::new()).batch_size(32).buffer(100).seed(9);
        let epochs = [stream.epoch()];
        let loader = EpochLoader::new(Arc::new(stream), &epochs);
        let split = split_dataloader(loader, &vec![Device::flex(); devices]);
        for e in 0..2 {
            let mut seen: Vec<usize> = split.iter().flat_map(|l| epoch(&**l)).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..ds.len()).collect::<Vec<_>>(), "{devices} devices, epoch {e}");
        }
    }
}

#[test]
fn a_resumed_run_sees_the_epochs_an_uninterrupted_one_would() {
    let ds = dataset("stream-resume", 400);
    let run = |start| {
        let stream = StampStream::new(ds.clone(), StampBatcher::new()).batch_size(40).buffer(64).seed(5);
        EpochLoader::starting_at(Arc::new(stream.clone()), &[stream.epoch()], start)
    };
    let uninterrupted = run(0);
    let epochs: Vec<Vec<usize>> = (0..3).map(|_| epoch(&*uninterrupted)).collect();
    assert_ne!(epochs[0], epochs[1], "a new order each epoch");
    let resumed = run(2);
    assert_eq!(epoch(&*resumed), epochs[2], "resumed at epoch 2");
}

#[test]
fn an_epoch_resumed_after_some_batches_gives_the_rest_of_them() {
    let ds = dataset("stream-mid-epoch", 500);
    let stream = || StampStream::new(ds.clone(), StampBatcher::new()).batch_size(30).buffer(200).seed(11).workers(2);
    let whole = stream();
    whole.epoch().set(4);
    let batches: Vec<Vec<usize>> = whole.iter().map(|b| b.expect("batch").indices).collect();
    // a loop that saved (epoch 4, 7 batches done) and starts again
    let resumed = stream().skip_batches(7);
    resumed.epoch().set(4);
    let rest: Vec<Vec<usize>> = resumed.iter().map(|b| b.expect("batch").indices).collect();
    assert_eq!(rest, batches[7..].to_vec());
    assert_eq!(resumed.iter().count(), batches.len(), "the skip is for one epoch");
}

#[test]
fn an_unreadable_image_fails_the_epoch_or_its_stamps_are_replaced() {
    use torchfits_burn::OnError;
    use torchfits_core::write::{Algorithm, Compression};
    let dir = tmpdir("stream-errors");
    let (catalog, _, _) = survey(&dir);
    let images: Vec<_> = (0..2)
        .map(|k| {
            let path = dir.join(format!("tiled{k}.fits"));
            let pixels: Vec<f32> = (0..N * N).map(|i| crate::common::value(k, i % N, i / N)).collect();
            let mut w = WriteOptions::new().overwrite(true).create(&path).expect("create");
            let image = w.image(&pixels, &[N, N]).header(&header(k)).compress(Compression::new(Algorithm::Gzip1));
            image.write().expect("image");
            w.finish().expect("finish");
            path
        })
        .collect();
    crate::failures::corrupt_tiles(&images[1]);
    let build = |policy| {
        let ds = CatalogCutoutDataset::builder(&catalog, &images).hdu(1usize).size(8).on_error(policy).build();
        Arc::new(ds.expect("the headers read"))
    };
    let failing = StampStream::new(build(OnError::Fail), StampBatcher::new()).batch_size(2).seed(1);
    let e = failing.iter().find_map(Result::err).expect("an error");
    assert!(e.to_string().contains("tiled1.fits"), "{e}");
    let ds = build(OnError::Substitute { seed: 2 });
    let replacing = StampStream::new(ds.clone(), StampBatcher::new()).batch_size(2).seed(1);
    assert_eq!(epoch(&replacing).len(), ds.len(), "every item, some replaced");
    assert!(ds.failures().report().replacements > 0);
}

#[test]
fn a_survey_plan_streams_image_by_image_and_its_devices_share_each_epoch_once() {
    let ds = survey_dataset("stream-survey", 600);
    let index = torchfits_burn::stream::ShardedStamps::shards(&*ds);
    assert_eq!(index.shards(), 2, "one shard per image");
    for s in 0..2 {
        let images: BTreeSet<usize> = index.range(s).map(|i| ds.read(i as usize).expect("stamp").image).collect();
        assert_eq!(images.len(), 1, "shard {s} holds one image's stamps");
    }
    for devices in [1, 3, 8] {
        let stream = StampStream::new(ds.clone(), StampBatcher::new()).batch_size(16).buffer(64).seed(4).workers(2);
        let epochs = [stream.epoch()];
        let split = split_dataloader(EpochLoader::new(Arc::new(stream), &epochs), &vec![Device::flex(); devices]);
        for e in 0..2 {
            let mut seen: Vec<usize> = split.iter().flat_map(|l| epoch(&**l)).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..ds.len()).collect::<Vec<_>>(), "{devices} devices, epoch {e}");
        }
    }
}

/// The indices and the pixels of each batch of one epoch.
fn batches(loader: &dyn DataLoader<torchfits_burn::StampBatch>) -> Vec<(Vec<usize>, Vec<f32>)> {
    let pixels = |b: torchfits_burn::StampBatch| (b.indices, b.images.into_data().try_to_vec::<f32>().expect("f32"));
    loader.iter().map(|b| pixels(b.expect("batch"))).collect()
}

#[test]
fn cached_epochs_equal_decoded_ones_and_a_bad_record_is_read_again() {
    let ds = survey_dataset("stream-cache", 500);
    let dir = tmpdir("stream-cache-store");
    let stream = || StampStream::new(ds.clone(), StampBatcher::new()).batch_size(40).buffer(128).seed(2).workers(2);
    let uncached = batches(&stream());
    let cached = stream().cache(&dir, u64::MAX).expect("cache");
    let store = cached.stamp_cache().expect("a cache").dir().to_path_buf();
    assert_eq!(batches(&cached), uncached, "the epoch that fills the cache");
    assert_eq!(batches(&cached), uncached, "an epoch from the cache");
    let cache = cached.stamp_cache().expect("a cache");
    assert!((0..ds.len() as u64).all(|i| cache.get(i).is_some()), "every stamp cached");
    // a record flipped on disk: not trusted, read from the image again and written again
    let shard = store.join("shard-000000.stamps");
    let mut bytes = std::fs::read(&shard).expect("shard file");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&shard, &bytes).expect("write");
    let again = stream().cache(&dir, u64::MAX).expect("cache");
    assert_eq!(batches(&again), uncached, "after a corrupt record");
    let cache = again.stamp_cache().expect("a cache");
    assert!((0..ds.len() as u64).all(|i| cache.get(i).is_some()), "the bad record written again");
    // bounded: a bound under two shards' size holds one
    let small = stream().cache(tmpdir("stream-cache-small"), std::fs::metadata(&shard).expect("len").len());
    assert_eq!(small.expect("cache").stamp_cache().expect("a cache").cached_shards(), 1);
}

#[test]
fn two_streams_filling_one_cache_at_once_leave_every_record_whole() {
    let ds = survey_dataset("stream-cache-shared", 400);
    let dir = tmpdir("stream-cache-shared-store");
    let stream = || StampStream::new(ds.clone(), StampBatcher::new()).batch_size(25).buffer(64).seed(8).workers(2);
    let want = batches(&stream());
    // two caches over one folder (each its own open files, as two processes of a node have),
    // filled at once by two threads
    let (a, b) = (stream().cache(&dir, u64::MAX).expect("cache"), stream().cache(&dir, u64::MAX).expect("cache"));
    let (got_a, got_b) = std::thread::scope(|s| {
        let (a, b) = (s.spawn(|| batches(&a)), s.spawn(|| batches(&b)));
        (a.join().expect("a"), b.join().expect("b"))
    });
    assert_eq!((got_a, got_b), (want.clone(), want.clone()));
    let fresh = stream().cache(&dir, u64::MAX).expect("cache");
    let cache = fresh.stamp_cache().expect("a cache");
    assert!((0..ds.len() as u64).all(|i| cache.get(i).is_some()), "every record whole");
    assert_eq!(batches(&fresh), want, "read back from the shared cache");
}
