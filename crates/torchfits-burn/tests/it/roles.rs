//! Channel roles: masks arrive as exact integers and weights as they are, untouched by the
//! stretch, the NaN fill and the normalisation; the symmetries move them with the pixels.

use burn::data::dataset::Dataset;
use burn::tensor::{DType, Device};
use torchfits_burn::transforms::{Asinh, NanFill, Normalize, Symmetries};
use torchfits_burn::{Channel, ChannelRole, ImagingDataset, StampBatcher};
use torchfits_core::{Header, WriteOptions};

use crate::common::tmpdir;

const SIDE: usize = 6;

fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    (0..3)
        .map(|k| {
            let path = dir.join(format!("obj{k}.fits"));
            let mut w = WriteOptions::new().overwrite(true).create(&path).expect("create");
            let sci: Vec<f32> = (0..SIDE * SIDE).map(|i| if i == 7 { f32::NAN } else { (10 * k + i) as f32 }).collect();
            // bit 30 and bit 0: no f32 holds 2^30 + 1
            let mask: Vec<i32> = (0..SIDE * SIDE).map(|i| if i % 5 == 0 { (1 << 30) + 1 } else { i as i32 }).collect();
            let ivar: Vec<f32> = (0..SIDE * SIDE).map(|i| 0.5 + i as f32).collect();
            for (name, data) in [("SCI", &sci), ("IVAR", &ivar)] {
                let mut h = Header::new();
                h.set("EXTNAME", name, None).expect("set");
                w.image(data, &[SIDE, SIDE]).header(&h).write().expect("image");
            }
            let mut h = Header::new();
            h.set("EXTNAME", "MASK", None).expect("set");
            w.image(&mask, &[SIDE, SIDE]).header(&h).write().expect("mask");
            w.finish().expect("finish");
            path
        })
        .collect()
}

#[test]
fn masks_and_weights_arrive_exact_and_untouched_by_the_transforms() {
    let dir = tmpdir("roles");
    let files = files(&dir);
    let ds = ImagingDataset::builder(&files)
        .channel("SCI", ChannelRole::Science)
        .channel("MASK", ChannelRole::Mask)
        .channel("IVAR", ChannelRole::InverseVariance)
        .build()
        .expect("dataset");
    let items: Vec<_> = (0..3).map(|i| ds.get(i).expect("item")).collect();
    let batcher = StampBatcher::new()
        .transform(NanFill(0.0))
        .transform(Asinh(2.0))
        .transform(Normalize { mean: vec![1.0], std: vec![3.0] });
    let batch = batcher.try_batch(items, &Device::flex()).expect("batch");
    assert_eq!(batch.images.dims(), [3, 2, SIDE, SIDE], "the science plane and the NaN mask");
    let input = batcher.channels(&ds.channels());
    assert_eq!(input, vec![Channel::new(ChannelRole::Science, "SCI"), Channel::new(ChannelRole::Flag, "SCI")]);
    assert_eq!(
        ds.channels()[1..],
        [Channel::new(ChannelRole::Mask, "MASK"), Channel::new(ChannelRole::InverseVariance, "IVAR")]
    );
    let masks = batch.masks.expect("masks");
    assert_eq!(masks.dtype(), DType::I64);
    assert_eq!(masks.dims(), [3, 1, SIDE, SIDE]);
    let flags = masks.into_data().try_to_vec::<i64>().expect("i64");
    for k in 0..3 {
        for i in 0..SIDE * SIDE {
            let want = if i % 5 == 0 { (1 << 30) + 1 } else { i as i64 };
            assert_eq!(flags[k * SIDE * SIDE + i], want, "item {k} pixel {i}: the flag exact");
        }
    }
    let weights = batch.weights.expect("weights").into_data().try_to_vec::<f32>().expect("f32");
    assert_eq!(&weights[..SIDE * SIDE], &(0..SIDE * SIDE).map(|i| 0.5 + i as f32).collect::<Vec<_>>()[..]);
    assert_eq!(batch.weight_roles, vec![ChannelRole::InverseVariance]);
    // the science plane was transformed: (asinh(x / 2) - 1) / 3
    let images = batch.images.into_data().try_to_vec::<f32>().expect("f32");
    let want = ((3.0f32 / 2.0).asinh() - 1.0) / 3.0;
    assert!((images[3] - want).abs() < 1e-6, "{} vs {want}", images[3]);
}

#[test]
fn symmetries_move_masks_and_weights_with_the_pixels() {
    let dir = tmpdir("roles-symmetries");
    let files = files(&dir);
    let ds = ImagingDataset::builder(&files)
        .channel("SCI", ChannelRole::Science)
        .channel("MASK", ChannelRole::Mask)
        .channel("IVAR", ChannelRole::Variance)
        .build()
        .expect("dataset");
    let batcher = StampBatcher::new().transform(Symmetries(11));
    assert!((0..3).any(|i| batcher.symmetry(i, true) != 0), "some item moves");
    let items: Vec<_> = (0..3).map(|i| ds.get(i).expect("item")).collect();
    let batch = batcher.try_batch(items, &Device::flex()).expect("batch");
    let images = batch.images.into_data().try_to_vec::<f32>().expect("f32");
    let weights = batch.weights.expect("weights").into_data().try_to_vec::<f32>().expect("f32");
    // pixel i of item k holds 10 k + i (science) and 0.5 + i (weight): one symmetry for both
    for k in 0..3 {
        for p in 0..SIDE * SIDE {
            let science = images[k * SIDE * SIDE + p];
            if science.is_nan() {
                continue;
            }
            let source = science as usize - 10 * k;
            assert_eq!(weights[k * SIDE * SIDE + p], 0.5 + source as f32, "item {k} pixel {p}");
        }
    }
}

#[test]
fn channels_name_a_science_one_and_no_flag() {
    let dir = tmpdir("roles-errors");
    let files = files(&dir);
    let builder = || ImagingDataset::builder(&files);
    let err = builder().channel("MASK", ChannelRole::Mask).channel("SCI", ChannelRole::Variance).build();
    assert!(err.expect_err("no science channel").to_string().contains("no science channel"));
    let err = builder().channel("SCI", ChannelRole::Science).channel("MASK", ChannelRole::Flag).build();
    assert!(err.expect_err("a flag HDU").to_string().contains("not an HDU's role"));
    let ds = builder().channel("SCI", ChannelRole::Science).channel("MASK", ChannelRole::Mask).build().expect("ds");
    assert_eq!(ds.channels(), vec![Channel::new(ChannelRole::Science, "SCI"), Channel::new(ChannelRole::Mask, "MASK")]);
}

/// On wgpu masks arrive as I64 where the adapter has 64-bit integers (lavapipe has), else as
/// I32 with their bits whole; the stretch leaves them alone and the symmetries move them.
#[cfg(feature = "wgpu")]
#[test]
fn masks_keep_their_bits_on_wgpu() {
    let dir = tmpdir("roles-wgpu");
    let files = files(&dir);
    let ds = ImagingDataset::builder(&files)
        .channel("SCI", ChannelRole::Science)
        .channel("MASK", ChannelRole::Mask)
        .build()
        .expect("dataset");
    let items: Vec<_> = (0..3).map(|i| ds.get(i).expect("item")).collect();
    let device = Device::wgpu(Default::default());
    let batch =
        StampBatcher::new().transform(Asinh(2.0)).transform(Symmetries(3)).try_batch(items, &device).expect("batch");
    let masks = batch.masks.expect("masks");
    let want_dtype = if device.supports_dtype(DType::I64) { DType::I64 } else { DType::I32 };
    assert_eq!(masks.dtype(), want_dtype);
    let flags = masks.into_data().convert::<i64>().try_to_vec::<i64>().expect("i64");
    let images = batch.images.into_data().try_to_vec::<f32>().expect("f32");
    for k in 0..3 {
        for p in 0..SIDE * SIDE {
            let science = images[k * SIDE * SIDE + p];
            if science.is_nan() {
                continue;
            }
            // undo the stretch to find the source pixel the symmetry moved here
            let source = ((science.sinh() * 2.0).round() as usize) - 10 * k;
            let want = if source % 5 == 0 { (1 << 30) + 1 } else { source as i64 };
            assert_eq!(flags[k * SIDE * SIDE + p], want, "item {k} pixel {p}");
        }
    }
}
