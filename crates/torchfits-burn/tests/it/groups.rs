//! Splits by group share no group, repeat from the seed, and are burn's `SelectionDataset`s.

use std::sync::Arc;

use burn::data::dataset::Dataset;
use torchfits_burn::{CatalogCutoutDataset, split_by_group, split_dataset_by_group};

use crate::common::{survey, tmpdir};

#[test]
fn a_split_by_image_keeps_each_images_stamps_on_one_side() {
    let dir = tmpdir("groups-images");
    let (catalog, images, _) = survey(&dir);
    let ds = Arc::new(CatalogCutoutDataset::builder(&catalog, &images).size(8).build().expect("dataset"));
    let by_image = ds.item_images();
    let (train, valid) = split_dataset_by_group(ds.clone(), &by_image, 0.5, 3).expect("split");
    assert_eq!(train.len() + valid.len(), ds.len());
    let images_of = |side: &dyn Dataset<torchfits_burn::Stamp>| {
        let mut v: Vec<usize> = (0..side.len()).map(|i| side.get(i).expect("stamp").image).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let (a, b) = (images_of(&train), images_of(&valid));
    assert!(a.iter().all(|k| !b.contains(k)), "no image on both sides: {a:?} {b:?}");
    assert_eq!(split_by_group(&by_image, 0.5, 3), split_by_group(&by_image, 0.5, 3), "the same seed, the same split");
    // burn's contract: past the end panics
    let past = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| train.get(train.len())));
    assert!(past.is_err());
    // one key per item, or an error
    assert!(split_dataset_by_group(ds, &by_image[1..], 0.5, 3).is_err());
}

#[test]
fn a_split_by_any_key_shares_no_key_and_is_near_the_fraction() {
    let keys: Vec<u32> = (0..1000).map(|i| i / 10).collect(); // 100 groups of 10
    for seed in 0..5 {
        let (a, b) = split_by_group(&keys, 0.8, seed);
        assert_eq!(a.len(), 800, "whole groups of 10 reach 800 exactly");
        assert_eq!(a.len() + b.len(), 1000);
        let ka: std::collections::BTreeSet<u32> = a.iter().map(|&i| keys[i]).collect();
        assert!(b.iter().all(|&i| !ka.contains(&keys[i])));
    }
    assert_ne!(split_by_group(&keys, 0.8, 1), split_by_group(&keys, 0.8, 2), "the seed draws the groups");
}
