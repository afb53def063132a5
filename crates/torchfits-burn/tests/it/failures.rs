//! A corrupt file among a dataset's files: with a replacement policy it costs its own items and
//! nothing else, under burn's loader with and without workers; with `Fail` its error names it.

use std::path::{Path, PathBuf};

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataset::Dataset;
use burn::tensor::Device;
use torchfits_burn::ChannelRole;
use torchfits_burn::{ImagingDataset, OnError, StampBatcher};
use torchfits_core::WriteOptions;
use torchfits_core::write::{Algorithm, Compression};

use crate::common::tmpdir;

const SIDE: usize = 8;

/// `files` GZIP-compressed images, image k's pixels all `k`; image `bad`'s tiles corrupted.
pub fn images(dir: &Path, files: usize, bad: usize) -> Vec<PathBuf> {
    (0..files)
        .map(|k| {
            let path = dir.join(format!("img{k:02}.fits"));
            let pixels = vec![k as i32; SIDE * SIDE];
            let mut w = WriteOptions::new().overwrite(true).create(&path).expect("create");
            w.image(&pixels, &[SIDE, SIDE]).compress(Compression::new(Algorithm::Gzip1)).write().expect("image");
            w.finish().expect("finish");
            if k == bad {
                corrupt_tiles(&path);
            }
            path
        })
        .collect()
}

/// Overwrites the heap of HDU 1 (the compressed image's table) with 0xFF bytes: the headers still
/// read, so the dataset builds, and every tile fails to decode when an item is read.
pub fn corrupt_tiles(path: &Path) {
    let mut bytes = std::fs::read(path).expect("read");
    let mut at = 0;
    let mut header_ends = Vec::new();
    let mut cards = std::collections::HashMap::new();
    while header_ends.len() < 2 {
        let card = String::from_utf8_lossy(&bytes[at..at + 80]).to_string();
        at += 80;
        if header_ends.len() == 1 && card.len() >= 30 && card.as_bytes()[8] == b'=' {
            cards.insert(card[..8].trim().to_string(), card[10..30].trim().to_string());
        }
        if card.starts_with("END ") {
            at = at.div_ceil(2880) * 2880;
            header_ends.push(at);
        }
    }
    let get = |k: &str| cards[k].parse::<usize>().expect(k);
    let heap = header_ends[1] + get("NAXIS1") * get("NAXIS2");
    bytes[heap..heap + get("PCOUNT")].fill(0xff);
    std::fs::write(path, bytes).expect("write");
}

fn dataset(files: &[PathBuf], policy: OnError) -> ImagingDataset {
    ImagingDataset::builder(files)
        .channel(1usize, ChannelRole::Science)
        .on_error(policy)
        .build()
        .expect("the headers read")
}

/// Every pixel value (the file index) of every item of one epoch, from burn's loader.
fn one_epoch(ds: ImagingDataset, workers: usize) -> Vec<usize> {
    let loader = DataLoaderBuilder::new(StampBatcher::new())
        .batch_size(3)
        .num_workers(workers)
        .set_device(Device::flex())
        .build(ds);
    let mut files = Vec::new();
    for batch in loader.iter() {
        let batch = batch.expect("no error reaches the loader");
        let [b, ..] = batch.images.dims();
        let values = batch.images.into_data().try_to_vec::<f32>().expect("f32");
        let per_item = values.len() / b;
        files.extend(values.chunks(per_item).map(|item| item[0] as usize));
    }
    files.sort_unstable();
    files
}

#[test]
fn a_corrupt_file_mid_epoch_costs_its_own_items_with_0_and_2_workers() {
    let dir = tmpdir("failures-loader");
    let files = images(&dir, 7, 3);
    for workers in [0, 2] {
        for policy in [OnError::Skip, OnError::Substitute { seed: 5 }] {
            let ds = dataset(&files, policy);
            let failures = ds.failures().clone();
            let seen = one_epoch(ds, workers);
            assert_eq!(seen.len(), 7, "{policy:?}, {workers} workers: the epoch keeps its length");
            assert!(!seen.contains(&3), "{policy:?}: the corrupt file gives nothing");
            for k in [0, 1, 2, 4, 5, 6] {
                assert!(seen.contains(&k), "{policy:?}, {workers} workers: file {k} is read: {seen:?}");
            }
            let report = failures.report();
            assert_eq!((report.failed_items, report.replacements), (1, 1), "{report:?}");
            assert_eq!(report.files.len(), 1);
            assert_eq!(report.files[0].file, files[3]);
            let cause = &report.files[0].first_error;
            assert!(cause.text.contains("img03.fits"), "{cause}");
            assert_eq!(cause.kind, torchfits_core::ErrorKind::Decoding, "{cause}");
        }
    }
}

#[test]
fn replacements_are_the_same_on_every_run() {
    let dir = tmpdir("failures-same");
    let files = images(&dir, 9, 4);
    for policy in [OnError::Skip, OnError::Substitute { seed: 9 }] {
        let a = dataset(&files, policy);
        let b = dataset(&files, policy);
        let read = |ds: &ImagingDataset| ds.get(4).expect("replaced").data()[0];
        assert_eq!(read(&a), read(&b), "{policy:?}");
        assert_ne!(read(&a), 4.0);
    }
    // Skip takes the next item that reads
    assert_eq!(dataset(&files, OnError::Skip).get(4).expect("replaced").data()[0], 5.0);
}

#[test]
fn with_fail_the_error_names_the_file_and_nothing_is_replaced() {
    let dir = tmpdir("failures-fail");
    let files = images(&dir, 3, 1);
    let ds = dataset(&files, OnError::Fail);
    let err = ds.get(1).expect_err("the corrupt file");
    assert!(err.to_string().contains("img01.fits"), "{err}");
    assert!(ds.get(0).is_ok() && ds.get(2).is_ok());
    let report = ds.failures().report();
    assert_eq!((report.failed_items, report.replacements), (1, 0));
}

#[test]
fn files_that_cannot_be_opened_are_left_out_at_build_and_reported() {
    let dir = tmpdir("failures-build");
    let mut files = images(&dir, 3, usize::MAX);
    let missing = dir.join("gone.fits");
    files.insert(1, missing.clone());
    assert!(
        ImagingDataset::builder(&files).channel(1usize, ChannelRole::Science).build().is_err(),
        "Fail: the build fails"
    );
    let ds = dataset(&files, OnError::Skip);
    assert_eq!(ds.len(), 3);
    let report = ds.failures().report();
    assert_eq!(report.files.len(), 1);
    assert_eq!((report.files[0].file.clone(), report.files[0].items), (missing, 0));
}

#[test]
fn stamps_on_a_corrupt_image_are_replaced_by_stamps_that_read() {
    use torchfits_burn::CatalogCutoutDataset;
    let dir = tmpdir("failures-cutouts");
    let (catalog, images, truth) = crate::common::survey(&dir);
    // the same images, tile-compressed (HDU 1), the second one's tiles corrupted
    for (k, path) in images.iter().enumerate() {
        let n = crate::common::N;
        let pixels: Vec<i32> = (0..n * n).map(|i| (1000 * k + i / n) as i32).collect();
        let mut w = WriteOptions::new().overwrite(true).create(path).expect("create");
        w.image(&pixels, &[n, n])
            .header(&crate::common::header(k))
            .compress(Compression::new(Algorithm::Gzip1))
            .write()
            .expect("image");
        w.finish().expect("finish");
    }
    corrupt_tiles(&images[1]);
    let on_second = truth.iter().filter(|t| matches!(t, Some((1, _, _)))).count();
    for policy in [OnError::Skip, OnError::Substitute { seed: 1 }] {
        let ds =
            CatalogCutoutDataset::builder(&catalog, &images).hdu(1usize).size(8).on_error(policy).build().expect("ds");
        for i in 0..ds.len() {
            let stamp = ds.get(i).expect("every item reads");
            assert_eq!(stamp.image, 0, "{policy:?}: item {i} comes from the readable image");
        }
        let report = ds.failures().report();
        assert_eq!(report.failed_items, on_second, "{policy:?}: {report:?}");
        assert_eq!(report.files.iter().map(|f| f.file.clone()).collect::<Vec<_>>(), vec![images[1].clone()]);
    }
}

#[test]
fn spectra_of_a_corrupt_file_are_replaced_by_spectra_that_read() {
    use torchfits_burn::SpectroscopicDataset;
    use torchfits_core::Header;
    let dir = tmpdir("failures-spectra");
    let (nspec, nwave) = (4usize, 16usize);
    let files: Vec<PathBuf> = (0..3)
        .map(|k| {
            let path = dir.join(format!("coadd{k}.fits"));
            let flux = vec![k; nspec * nwave];
            let mut h = Header::new();
            h.set("EXTNAME", "FLUX", None).expect("set");
            let mut w = WriteOptions::new().overwrite(true).create(&path).expect("create");
            w.image(&flux, &[nspec, nwave])
                .header(&h)
                .compress(Compression::new(Algorithm::Gzip1))
                .write()
                .expect("flux");
            w.finish().expect("finish");
            if k == 1 {
                corrupt_tiles(&path);
            }
            path
        })
        .collect();
    let ds = SpectroscopicDataset::image_rows(&files).hdu("FLUX").on_error(OnError::Skip).build().expect("ds");
    assert_eq!(ds.len(), 3 * nspec);
    for i in 0..ds.len() {
        let s = ds.get(i).expect("every item reads");
        assert_ne!(s.file, 1, "item {i} comes from a readable file");
        assert!(s.values.iter().all(|&v| v == s.file as f32));
    }
    let report = ds.failures().report();
    assert_eq!(report.failed_items, nspec, "{report:?}");
    assert_eq!(report.files.len(), 1);
    assert_eq!(report.files[0].file, files[1]);
}

#[test]
fn skip_crosses_a_long_block_of_bad_items() {
    let dir = tmpdir("failures-block");
    // 160 files, 100 consecutive ones corrupt: more than the tries one by one would cover
    let files: Vec<PathBuf> = (0..160)
        .map(|k| {
            let path = dir.join(format!("f{k:03}.fits"));
            let pixels = vec![k; SIDE * SIDE];
            let mut w = WriteOptions::new().overwrite(true).create(&path).expect("create");
            w.image(&pixels, &[SIDE, SIDE]).compress(Compression::new(Algorithm::Gzip1)).write().expect("image");
            w.finish().expect("finish");
            if (30..130).contains(&k) {
                corrupt_tiles(&path);
            }
            path
        })
        .collect();
    let ds = dataset(&files, OnError::Skip);
    for i in 0..ds.len() {
        let value = ds.get(i).expect("a replacement within the tries").data()[0] as usize;
        assert!(!(30..130).contains(&value), "item {i} got a corrupt file's pixels");
    }
    assert_eq!(ds.failures().report().files.len(), 100);
}
