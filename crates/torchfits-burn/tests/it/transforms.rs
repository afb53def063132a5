//! Image transforms: the astronomy statistics against host references (on the CPU backend,
//! where medians sort, and on wgpu, where they bisect on the device), the user's order, the
//! draws of the random ones per (seed, epoch, item), and planes of every role moved alike.

use burn::tensor::{Device, Int, Tensor, TensorData};
use torchfits_burn::StampBatcher;
use torchfits_burn::transforms::{
    Asinh, ImagePlanes, ImageTransform, NanFill, Normalize, RandomCrop, RobustScale, SigmaClip, SubtractBackground,
    TransformContext,
};

fn devices() -> Vec<Device> {
    #[allow(unused_mut)]
    let mut d = vec![Device::flex()];
    #[cfg(feature = "wgpu")]
    d.push(Device::wgpu(Default::default()));
    d
}

fn planes(values: Vec<f32>, shape: [usize; 4], device: &Device) -> ImagePlanes {
    ImagePlanes {
        science: Tensor::<4>::from_data(TensorData::new(values, shape), device),
        flags: None,
        masks: None,
        weights: None,
        weight_roles: Vec::new(),
        coordinates: None,
    }
}

fn host(t: Tensor<4>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().expect("f32")
}

fn apply(t: &dyn ImageTransform, p: ImagePlanes, device: &Device, epoch: u64, indices: &[usize]) -> ImagePlanes {
    t.apply(p, &TransformContext { device, epoch, indices }).expect("transform")
}

/// The lower median of the values that are not NaN.
fn median(v: &[f32]) -> f32 {
    let mut s: Vec<f32> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    s.sort_by(f32::total_cmp);
    s[(s.len() - 1) / 2]
}

fn std(v: &[f32]) -> f32 {
    let s: Vec<f64> = v.iter().filter(|x| !x.is_nan()).map(|&x| f64::from(x)).collect();
    let mean = s.iter().sum::<f64>() / s.len() as f64;
    (s.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / s.len() as f64).sqrt() as f32
}

/// astropy's `sigma_clip(cenfunc='median', stdfunc='std')` for a fixed number of rounds.
fn clipped(v: &[f32], sigma: f32, rounds: usize) -> (f32, f32) {
    let mut kept = v.to_vec();
    for _ in 0..rounds {
        let (c, s) = (median(&kept), std(&kept));
        kept.iter_mut().filter(|x| (**x - c).abs() > sigma * s).for_each(|x| *x = f32::NAN);
    }
    (median(&kept), std(&kept))
}

/// Two planes of 64 pixels: noise-like values, outliers, a NaN; the second with a step.
fn field() -> Vec<f32> {
    let mut v: Vec<f32> = (0..128).map(|i| ((i * 37 % 101) as f32) * 0.1 - 5.0).collect();
    v[3] = 400.0;
    v[17] = -250.0;
    v[40] = f32::NAN;
    for x in &mut v[64..] {
        *x += 20.0;
    }
    v[100] = 1e4;
    v
}

#[test]
fn robust_scale_is_median_and_mad_per_plane() {
    let v = field();
    for device in devices() {
        let out = host(apply(&RobustScale, planes(v.clone(), [1, 2, 8, 8], &device), &device, 0, &[0]).science);
        for p in 0..2 {
            let plane = &v[p * 64..(p + 1) * 64];
            let m = median(plane);
            let dev: Vec<f32> = plane.iter().map(|x| (x - m).abs()).collect();
            let mad = median(&dev) * 1.482_602_2;
            for i in 0..64 {
                let (got, want) = (out[p * 64 + i], (plane[i] - m) / mad);
                if want.is_nan() {
                    assert!(got.is_nan(), "{device:?}: NaN stays NaN");
                } else {
                    assert!(
                        (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                        "{device:?} plane {p} pixel {i}: {got} vs {want}"
                    );
                }
            }
        }
    }
}

#[test]
fn sigma_clip_clamps_to_astropys_clipped_bounds() {
    let v = field();
    let clip = SigmaClip { sigma: 2.5, iterations: 4 };
    for device in devices() {
        let out = host(apply(&clip, planes(v.clone(), [2, 1, 8, 8], &device), &device, 0, &[0, 1]).science);
        for p in 0..2 {
            let plane = &v[p * 64..(p + 1) * 64];
            let (c, s) = clipped(plane, 2.5, 4);
            for i in 0..64 {
                let want = if plane[i].is_nan() { f32::NAN } else { plane[i].clamp(c - 2.5 * s, c + 2.5 * s) };
                let got = out[p * 64 + i];
                assert!(
                    (got.is_nan() && want.is_nan()) || (got - want).abs() <= 1e-3,
                    "{device:?} item {p} pixel {i}: {got} vs {want}"
                );
            }
        }
        assert!(out[3] < 400.0 && out[17] > -250.0, "the outliers are clamped");
    }
}

#[test]
fn background_subtraction_global_and_mesh() {
    let v = field();
    for device in devices() {
        let out = host(
            apply(&SubtractBackground::default(), planes(v.clone(), [1, 2, 8, 8], &device), &device, 0, &[0]).science,
        );
        for p in 0..2 {
            let plane = &v[p * 64..(p + 1) * 64];
            let (c, _) = clipped(plane, 3.0, 5);
            assert!((out[p * 64] - (plane[0] - c)).abs() < 1e-4, "{device:?}: the clipped median is subtracted");
        }
        // a sloped sky, 16 x 16, in 4 x 4 boxes: the mesh follows the slope, a single level cannot
        let sky: Vec<f32> = (0..256).map(|i| 100.0 + (i % 16) as f32 * 2.0).collect();
        let mesh = SubtractBackground { cell: Some(4), ..Default::default() };
        let flat = host(apply(&mesh, planes(sky.clone(), [1, 1, 16, 16], &device), &device, 0, &[0]).science);
        let global = host(
            apply(&SubtractBackground::default(), planes(sky.clone(), [1, 1, 16, 16], &device), &device, 0, &[0])
                .science,
        );
        let worst =
            |v: &[f32]| (0..16).flat_map(|y| (2..14).map(move |x| y * 16 + x)).map(|i| v[i].abs()).fold(0.0, f32::max);
        assert!(worst(&flat) < 1.5, "{device:?}: the mesh leaves {} inside", worst(&flat));
        assert!(worst(&global) > 10.0, "{device:?}: one level leaves the slope");
        let e = SubtractBackground { cell: Some(5), ..Default::default() }
            .apply(planes(sky, [1, 1, 16, 16], &device), &TransformContext { device: &device, epoch: 0, indices: &[0] })
            .expect_err("5-pixel boxes do not tile 16 pixels");
        assert!(e.to_string().contains("tile"), "{e}");
    }
}

#[test]
fn transforms_apply_in_the_users_order() {
    let values: Vec<f32> = (0..16).map(|i| i as f32).collect();
    let device = Device::flex();
    let run = |ts: Vec<Box<dyn ImageTransform>>| {
        let p = ts
            .iter()
            .fold(planes(values.clone(), [1, 1, 4, 4], &device), |p, t| apply(t.as_ref(), p, &device, 0, &[0]));
        host(p.science)
    };
    let norm = || Box::new(Normalize { mean: vec![2.0], std: vec![4.0] }) as Box<dyn ImageTransform>;
    let stretch_first = run(vec![Box::new(Asinh(3.0)), norm()]);
    let normalise_first = run(vec![norm(), Box::new(Asinh(3.0))]);
    for (i, x) in values.iter().enumerate() {
        assert!((stretch_first[i] - ((x / 3.0).asinh() - 2.0) / 4.0).abs() < 1e-5);
        assert!((normalise_first[i] - (((x - 2.0) / 4.0) / 3.0).asinh()).abs() < 1e-5);
    }
}

/// A transform of the user's: adds the epoch to the science pixels.
struct AddEpoch;

impl ImageTransform for AddEpoch {
    fn apply(&self, mut planes: ImagePlanes, context: &TransformContext) -> torchfits_core::Result<ImagePlanes> {
        planes.science = planes.science.add_scalar(context.epoch as f32);
        Ok(planes)
    }
}

#[test]
fn random_crops_draw_per_epoch_and_item_and_cut_every_plane_alike() {
    // pixel values are their own index, so a window's first pixel gives its offset
    let (b, side) = (6usize, 10usize);
    let values: Vec<f32> = (0..b * side * side).map(|i| (i % (side * side)) as f32).collect();
    let device = Device::flex();
    let with_planes = || {
        let mut p = planes(values.clone(), [b, 1, side, side], &device);
        let flags: Vec<i64> = values.iter().map(|&v| v as i64 * 1000).collect();
        p.masks = Some(Tensor::<4, Int>::from_data(TensorData::new(flags, [b, 1, side, side]), &device));
        p.weights = Some(p.science.clone().mul_scalar(2.0));
        p
    };
    let crop = RandomCrop { height: 4, width: 5, seed: 11 };
    let indices: Vec<usize> = (100..100 + b).collect();
    let offsets = |epoch: u64| {
        let p = apply(&crop, with_planes(), &device, epoch, &indices);
        assert_eq!(p.dims(), [b, 1, 4, 5]);
        let sci = host(p.science.clone());
        let masks = p.masks.expect("masks").into_data().convert::<i64>().try_to_vec::<i64>().expect("i64");
        let weights = host(p.weights.expect("weights"));
        for k in 0..b * 20 {
            assert_eq!(masks[k], sci[k] as i64 * 1000, "the mask is cut where the pixels are");
            assert_eq!(weights[k], sci[k] * 2.0, "the weight is cut where the pixels are");
        }
        for item in 0..b {
            let first = sci[item * 20] as usize;
            for r in 0..4 {
                for c in 0..5 {
                    assert_eq!(sci[item * 20 + r * 5 + c] as usize, first + r * side + c, "a window of the stamp");
                }
            }
        }
        (0..b).map(|item| sci[item * 20] as usize).collect::<Vec<_>>()
    };
    assert_eq!(offsets(1), offsets(1), "the same epoch, the same crops");
    assert_ne!(offsets(1), offsets(2), "another epoch, other crops");
}

#[test]
fn a_batcher_runs_the_users_transforms_in_order_at_its_epoch() {
    use burn::data::dataset::Dataset;
    use torchfits_burn::ImagingDataset;
    use torchfits_core::WriteOptions;

    let dir = crate::common::tmpdir("transforms-batcher");
    let files: Vec<_> = (0..2)
        .map(|k| {
            let path = dir.join(format!("img{k}.fits"));
            let mut w = WriteOptions::new().overwrite(true).create(&path).expect("create");
            let pixels: Vec<f32> = (0..36).map(|i| (k * 100 + i) as f32).collect();
            w.image(&pixels, &[6, 6]).write().expect("image");
            w.finish().expect("finish");
            path
        })
        .collect();
    let ds = ImagingDataset::builder(&files).build().expect("dataset");
    let batcher = StampBatcher::new().transform(AddEpoch).transform(Asinh(10.0));
    batcher.epoch().set(3);
    assert!(format!("{batcher:?}").contains("AddEpoch"), "{batcher:?}");
    let items = (0..2).map(|i| ds.get(i).expect("item")).collect();
    let images = host(batcher.try_batch(items, &Device::flex()).expect("batch").images);
    for k in 0..2 {
        for i in 0..36 {
            let want = (((k * 100 + i) as f32 + 3.0) / 10.0).asinh();
            assert!((images[k * 36 + i] - want).abs() < 1e-6, "epoch added, then the stretch");
        }
    }
}

#[test]
fn nan_fill_flags_the_nans_of_every_science_channel_in_its_own_flag_channel() {
    for device in devices() {
        // 1 item, 3 channels of 2x2: a NaN in channel 0 at pixel 1, in channel 2 at pixels 0 and 3
        let nan = f32::NAN;
        let values = vec![1.0, nan, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, nan, 8.0, 9.0, nan];
        let out = apply(&NanFill(-1.0), planes(values, [1, 3, 2, 2], &device), &device, 0, &[0]);
        assert_eq!(host(out.science), vec![1.0, -1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, -1.0, 8.0, 9.0, -1.0]);
        let flags = out.flags.expect("the NaN flags");
        assert_eq!(flags.dims(), [1, 3, 2, 2], "one flag channel per science channel");
        assert_eq!(host(flags), vec![0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0]);
    }
}

#[test]
fn the_batchers_symmetry_is_the_symmetries_transforms() {
    use torchfits_burn::transforms::Symmetries;
    let batcher = StampBatcher::new().transform(Asinh(1.0)).transform(Symmetries(11));
    let codes: Vec<u8> = (0..64).map(|i| batcher.symmetry(i, true)).collect();
    assert!(codes.iter().any(|&c| c != 0), "some item moves: {codes:?}");
    for (i, &c) in codes.iter().enumerate() {
        assert_eq!(c, Symmetries(11).code(0, i, true), "item {i}");
    }
    assert!((0..64).all(|i| StampBatcher::new().transform(Asinh(1.0)).symmetry(i, true) == 0), "none without it");
}
