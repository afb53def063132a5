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
            let want = if source.is_multiple_of(5) { (1 << 30) + 1 } else { source as i64 };
            assert_eq!(flags[k * SIDE * SIDE + p], want, "item {k} pixel {p}");
        }
    }
}

/// The common survey's images with two more planes beside their pixels: `IVAR` (1 + (x + 2y) % 7)
/// and `MASK` ((x + 3y) % 8 as bits, plus bit 30 where x is 5).
fn survey_with_planes(dir: &std::path::Path) -> (std::path::PathBuf, Vec<std::path::PathBuf>) {
    use crate::common::{N, header, survey, value};
    let (catalog, images, _) = survey(dir);
    for (k, path) in images.iter().enumerate() {
        let sci: Vec<f32> = (0..N * N).map(|i| value(k, i % N, i / N)).collect();
        let mut w = WriteOptions::new().overwrite(true).create(path).expect("create");
        w.image(&sci, &[N, N]).header(&header(k)).write().expect("sci");
        let named = |name: &str| {
            let mut h = Header::new();
            h.set("EXTNAME", name, None).expect("set");
            h
        };
        let ivar: Vec<f32> = (0..N * N).map(|i| ivar_at(i % N, i / N)).collect();
        let mask: Vec<i32> = (0..N * N).map(|i| mask_at(i % N, i / N) as i32).collect();
        w.image(&ivar, &[N, N]).header(&named("IVAR")).write().expect("ivar");
        w.image(&mask, &[N, N]).header(&named("MASK")).write().expect("mask");
        w.finish().expect("finish");
    }
    (catalog, images)
}

fn ivar_at(x: usize, y: usize) -> f32 {
    1.0 + ((x + 2 * y) % 7) as f32
}

fn mask_at(x: usize, y: usize) -> i64 {
    ((x + 3 * y) % 8) as i64 | if x == 5 { 1 << 30 } else { 0 }
}

/// Checks stamp `s`'s masks and weights (`bands` of each, the same files in every band) against
/// the planes at its origin: the image's values on it, 0 off it.
fn check_planes(s: &torchfits_burn::Stamp, bands: usize, size: usize) {
    use crate::common::N;
    let (masks, weights) = (s.masks.as_ref().expect("masks"), s.weights.as_ref().expect("weights"));
    assert_eq!((masks.len(), weights.len()), (bands * size * size, bands * size * size));
    for b in 0..bands {
        for j in 0..size {
            for i in 0..size {
                let (x, y) = (s.origin.0 as i64 + i as i64, s.origin.1 as i64 + j as i64);
                let on = x >= 0 && y >= 0 && x < N as i64 && y < N as i64;
                let at = b * size * size + j * size + i;
                let (m, w) =
                    if on { (mask_at(x as usize, y as usize), ivar_at(x as usize, y as usize)) } else { (0, 0.0) };
                assert_eq!((masks[at], weights[at]), (m, w), "item {} band {b} pixel ({i}, {j})", s.index);
                let flag = s.flag(b).map_or(0.0, |f| f[j * size + i]);
                assert_eq!(flag, if on { 0.0 } else { 1.0 });
            }
        }
    }
}

#[test]
fn cutouts_of_a_catalog_and_of_a_survey_carry_each_bands_mask_and_weight_planes() {
    use torchfits_burn::{CatalogCutoutDataset, SurveyCutoutDataset, SurveyPlanner};
    let dir = tmpdir("roles-cutouts");
    let (catalog, images) = survey_with_planes(&dir);
    let (science, flag, mask, ivar) =
        (ChannelRole::Science, ChannelRole::Flag, ChannelRole::Mask, ChannelRole::InverseVariance);
    let cutouts = CatalogCutoutDataset::builder(&catalog, &images)
        .channel(0, science)
        .channel("IVAR", ivar)
        .channel("MASK", mask)
        .size(12)
        .build()
        .expect("cutouts");
    let want = [(science, "0"), (flag, "0"), (mask, "MASK"), (ivar, "IVAR")];
    let want: Vec<Channel> = want.into_iter().map(|(role, hdu)| Channel::new(role, hdu)).collect();
    assert_eq!(cutouts.channels(), want);
    let items: Vec<_> = (0..cutouts.len()).map(|i| cutouts.get(i).expect("stamp")).collect();
    assert!(items.iter().any(|s| s.flags.is_some()), "some stamps cross an edge");
    for s in &items {
        check_planes(s, 1, 12);
    }
    let batch = StampBatcher::new().try_batch(items, &Device::flex()).expect("batch");
    assert_eq!(batch.images.dims()[1], 2);
    assert_eq!((batch.masks.expect("masks").dims()[1], batch.weights.expect("weights").dims()[1]), (1, 1));
    assert_eq!(batch.weight_roles, vec![ivar]);

    // a survey of two bands on the same files: every band's planes, band after band
    let plan = || {
        SurveyPlanner::new(&catalog)
            .band("g", &images)
            .band("r", &images)
            .cache(dir.join("cache"))
            .progress(false)
            .build()
            .expect("plan")
    };
    let survey = SurveyCutoutDataset::builder(plan())
        .channel(0, science)
        .channel("MASK", mask)
        .channel("IVAR", ivar)
        .size(10)
        .subpixel(false)
        .build()
        .expect("survey");
    let roles: Vec<(ChannelRole, String, String)> =
        survey.channels().into_iter().map(|c| (c.role, c.band, c.hdu)).collect();
    let named = |role, band: &str, hdu: &str| (role, band.to_string(), hdu.to_string());
    let want = vec![
        named(science, "g", "0"),
        named(science, "r", "0"),
        named(flag, "g", "0"),
        named(flag, "r", "0"),
        named(mask, "g", "MASK"),
        named(mask, "r", "MASK"),
        named(ivar, "g", "IVAR"),
        named(ivar, "r", "IVAR"),
    ];
    assert_eq!(roles, want);
    for i in 0..survey.len() {
        check_planes(&survey.get(i).expect("stamp"), 2, 10);
    }

    // resampled at a sub-pixel offset: a mask pixel has the bits of the four pixels it is made
    // of, an inverse variance is that of the weighted sum
    let resampled = SurveyCutoutDataset::builder(plan())
        .channel(0, science)
        .channel("MASK", mask)
        .channel("IVAR", ivar)
        .size(10)
        .build()
        .expect("survey");
    let mut checked = 0;
    for i in 0..resampled.len() {
        let s = resampled.get(i).expect("stamp");
        let (x0, y0) = s.origin;
        let (fx, fy) = (x0 - x0.floor(), y0 - y0.floor());
        let (masks, weights) = (s.masks.as_ref().expect("masks"), s.weights.as_ref().expect("weights"));
        let (ix, iy) = (x0.floor() as i64 + 4, y0.floor() as i64 + 4);
        if ix < 0 || iy < 0 || ix + 1 >= crate::common::N as i64 || iy + 1 >= crate::common::N as i64 {
            continue;
        }
        let (ix, iy) = (ix as usize, iy as usize);
        let corners = [
            (ix, iy, (1.0 - fx) * (1.0 - fy)),
            (ix + 1, iy, fx * (1.0 - fy)),
            (ix, iy + 1, (1.0 - fx) * fy),
            (ix + 1, iy + 1, fx * fy),
        ];
        let bits = corners.iter().filter(|c| c.2 > 0.0).fold(0, |b, &(x, y, _)| b | mask_at(x, y));
        let variance: f64 = corners.iter().map(|&(x, y, w)| w * w / f64::from(ivar_at(x, y))).sum();
        assert_eq!(masks[4 * 10 + 4], bits, "item {i}");
        let got = f64::from(weights[4 * 10 + 4]);
        assert!((got - 1.0 / variance).abs() < 1e-4 * got, "item {i}: ivar {got} vs {}", 1.0 / variance);
        checked += 1;
    }
    assert!(checked >= 4, "{checked} stamps checked");
}
