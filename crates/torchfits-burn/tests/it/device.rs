//! Batches on the wgpu backend (Mesa's lavapipe in CI) against the CPU backend, and coordinate
//! planes from the kernel against wcslib.

use std::sync::Arc;

use crate::common::{survey, tmpdir};
use burn::data::dataset::Dataset;
use burn::tensor::Device;
use torchfits_burn::transforms::{Asinh, NanFill, Normalize, Symmetries};
use torchfits_burn::{CatalogCutoutDataset, CutoutCoordinates, StampBatcher};

fn wgpu() -> Option<Device> {
    // the adapter is found when first used; a machine without Vulkan has none
    match std::panic::catch_unwind(|| {
        let d = Device::wgpu(Default::default());
        let _ = burn::tensor::Tensor::<1>::from_floats([1.0], &d).into_data();
        d
    }) {
        Ok(d) => Some(d),
        Err(_) if std::env::var_os("CI").is_none() => None,
        Err(_) => panic!("no wgpu adapter (scripts/setup.sh --test installs Mesa's lavapipe)"),
    }
}

#[test]
fn a_batch_on_wgpu_equals_the_cpu_batch() {
    let Some(gpu) = wgpu() else { return };
    let dir = tmpdir("device-batch");
    let (catalog, images, _) = survey(&dir);
    let ds = CatalogCutoutDataset::builder(&catalog, &images).label("LABEL").size(16).build().expect("ds");
    let items: Vec<_> = (0..ds.len()).map(|i| ds.get(i).expect("stamp")).collect();
    let cpu = Device::flex();
    // exact operations: stacking, NaN masking, the symmetries (a gather)
    let exact = StampBatcher::new().transform(NanFill(0.0)).transform(Symmetries(9));
    let a = exact.try_batch(items.clone(), &cpu).expect("cpu");
    let b = exact.try_batch(items.clone(), &gpu).expect("gpu");
    let (da, db) = (a.images.into_data(), b.images.into_data());
    assert_eq!(da.shape(), db.shape());
    assert!(da.iter::<f32>().zip(db.iter::<f32>()).all(|(x, y)| x.to_bits() == y.to_bits()), "bit for bit");
    let (la, lb) = (a.labels.expect("labels").into_data(), b.labels.expect("labels").into_data());
    assert!(la.iter::<i64>().eq(lb.iter::<i64>()));
    // arithmetic: the device's own rounding
    let stretch = StampBatcher::new().transform(Asinh(50.0)).transform(Normalize { mean: vec![1.0], std: vec![2.0] });
    let a = stretch.try_batch(items.clone(), &cpu).expect("cpu").images.into_data();
    let b = stretch.try_batch(items, &gpu).expect("gpu").images.into_data();
    let worst =
        a.iter::<f32>().zip(b.iter::<f32>()).map(|(x, y)| (x - y).abs() / x.abs().max(1.0)).fold(0f32, f32::max);
    assert!(worst < 1e-5, "asinh and normalisation on the device: {worst:e}");
}

#[test]
fn coordinate_planes_from_the_kernel_match_wcslib() {
    let Some(gpu) = wgpu() else { return };
    let dir = tmpdir("device-coords");
    let (catalog, images, _) = survey(&dir);
    let ds = Arc::new(CatalogCutoutDataset::builder(&catalog, &images).size(16).build().expect("ds"));
    let coordinates = Arc::new(CutoutCoordinates::new(&ds).expect("wcs"));
    let items: Vec<_> = (0..ds.len()).map(|i| ds.get(i).expect("stamp")).collect();
    let batcher = StampBatcher::new().coordinates(coordinates);
    let a = batcher.try_batch(items.clone(), &gpu).expect("gpu planes");
    let b = batcher.try_batch(items.clone(), &Device::flex()).expect("cpu planes");
    let (pa, pb) = (a.coordinates.expect("planes").into_data(), b.coordinates.expect("planes").into_data());
    assert_eq!(pa.shape().to_vec(), vec![items.len(), 2, 16, 16]);
    let (va, vb): (Vec<f32>, Vec<f32>) = (pa.iter::<f32>().collect(), pb.iter::<f32>().collect());
    let mut worst = 0f64;
    for k in 0..items.len() {
        for p in 0..256 {
            let (lng_a, lat_a) = (f64::from(va[k * 512 + p]), f64::from(va[k * 512 + 256 + p]));
            let (lng_b, lat_b) = (f64::from(vb[k * 512 + p]), f64::from(vb[k * 512 + 256 + p]));
            let dl = (lng_a - lng_b).abs();
            worst = worst.max(dl.min(360.0 - dl) * lat_b.to_radians().cos()).max((lat_a - lat_b).abs());
        }
    }
    // f32 planes: 150 degrees hold 1.5e-5 degree
    assert!(worst < 1e-4, "worst {worst:e} deg");
}

#[test]
fn a_batch_with_coordinate_planes_uploads_the_pixels_once_and_moves_no_coordinates() {
    let Some(gpu) = wgpu() else { return };
    let dir = tmpdir("device-transfers");
    let (catalog, images, _) = survey(&dir);
    let ds = Arc::new(CatalogCutoutDataset::builder(&catalog, &images).label("LABEL").size(32).build().expect("ds"));
    let batcher =
        StampBatcher::new().coordinates(Arc::new(CutoutCoordinates::new(&ds).expect("wcs"))).transform(Symmetries(3));
    let items: Vec<_> = (0..ds.len()).map(|i| ds.get(i).expect("stamp")).collect();
    // the science planes and the edge flags (zeros written by the batcher where a stamp has none)
    let (b, c) = (items.len() as u64, (items[0].channels + items[0].flag_channels) as u64);
    // the first batch finds out the device's f64 (the probe moves its own points): not counted
    batcher.try_batch(items.clone(), &gpu).expect("warm-up");
    let before = torchfits_burn::Transfers::now();
    let batch = batcher.try_batch(items, &gpu).expect("batch");
    let moved = torchfits_burn::Transfers::now().since(before);
    let pixels = b * c * 32 * 32 * 4;
    let planes = b * 2 * 32 * 32 * 4;
    // up: the pixels once, then per item a few numbers (origin, image, slot, symmetry, label) and
    // the images' WCS parameters
    assert!(
        moved.bytes_up >= pixels && moved.bytes_up < pixels + 64 * b + 2048,
        "{moved:?} for {pixels} bytes of pixels"
    );
    // down: the kernel's count of host points (none here): no coordinates
    assert!(moved.bytes_down <= 4, "{moved:?}");
    assert!(moved.bytes_up < pixels + planes / 4);
    assert_eq!(batch.coordinates.expect("planes").dims(), [b as usize, 2, 32, 32]);
}
