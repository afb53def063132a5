//! Criterion benches of world coordinates on Burn tensors (the `DeviceWcs` backend extension):
//! pixel to world for 1M points already on the device (an `[N, 2]` f32 tensor) on the CPU backend
//! and, with the `wgpu` feature, on the default wgpu adapter (lavapipe on a machine without a GPU),
//! beside wcslib itself on one core over the same points; and the coordinate planes of 256 cutouts
//! of 64x64 pixels. The survey case: a 4096x4096 TAN-SIP image. The 16.8M-point figures are the
//! `device_wcs` example's and `torchfits bench`'s (`wcs_pix2world_16M_*`).
//!
//! `cargo bench -p torchfits-burn --features wgpu --bench wcs_tensor`

use std::hint::black_box;

use burn::tensor::{Device, Tensor, TensorData};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use torchfits_burn::wcs::DeviceWcs;
use torchfits_core::{Header, Value, Wcs};

const POINTS: usize = 1 << 20;

fn header() -> Header {
    let mut h = Header::new();
    let cards: [(&str, Value); 14] = [
        ("CTYPE1", "RA---TAN-SIP".into()),
        ("CTYPE2", "DEC--TAN-SIP".into()),
        ("CRPIX1", 2048.5.into()),
        ("CRPIX2", 2047.25.into()),
        ("CRVAL1", 150.116.into()),
        ("CRVAL2", 2.2.into()),
        ("CD1_1", (-5.43e-5).into()),
        ("CD1_2", 1.15e-6.into()),
        ("CD2_1", 1.16e-6.into()),
        ("CD2_2", 5.43e-5.into()),
        ("A_ORDER", 2.into()),
        ("B_ORDER", 2.into()),
        ("A_2_0", 2.1e-6.into()),
        ("B_0_2", 1.9e-6.into()),
    ];
    for (k, v) in cards {
        h.set(k, v, None).expect("a valid card");
    }
    h
}

/// Every pixel of the image's first 256 rows.
fn pixels() -> Vec<f32> {
    (0..POINTS).flat_map(|k| [(k % 4096) as f32, (k / 4096) as f32]).collect()
}

fn devices() -> Vec<(&'static str, Device)> {
    #[allow(unused_mut)]
    let mut out = vec![("cpu", Device::flex())];
    #[cfg(feature = "wgpu")]
    out.push(("wgpu", Device::wgpu(Default::default())));
    out
}

fn pixel_to_world(c: &mut Criterion) {
    let wcs = DeviceWcs::new(Wcs::from_header(&header()).expect("wcs"));
    let pix = pixels();
    let mut g = c.benchmark_group("wcs_tensor_pixel_to_world_1M");
    g.throughput(Throughput::Elements(POINTS as u64));
    g.sample_size(10);
    for (name, device) in devices() {
        let t = Tensor::<2>::from_data(TensorData::new(pix.clone(), [POINTS, 2]), &device);
        g.bench_function(name, |b| {
            b.iter(|| {
                let out = wcs.pixel_to_world(t.clone()).expect("transform");
                device.sync().expect("sync");
                black_box(out.host_points)
            })
        });
    }
    let mut one = Wcs::from_header(&header()).expect("wcs");
    one.set_wcslib_only();
    one.set_threads(1);
    let pix64: Vec<f64> = pix.iter().map(|&p| f64::from(p)).collect();
    let mut world = vec![0.0; pix64.len()];
    g.bench_function("wcslib, one core", |b| {
        b.iter(|| one.pixel_to_world(black_box(&pix64), &mut world).expect("wcslib"))
    });
    g.finish();
}

fn coordinate_planes(c: &mut Criterion) {
    let wcs = DeviceWcs::new(Wcs::from_header(&header()).expect("wcs"));
    let origins: Vec<(f64, f64)> = (0..256).map(|k| ((k % 16 * 256) as f64, (k / 16 * 256) as f64)).collect();
    let mut g = c.benchmark_group("wcs_tensor_planes_256x64x64");
    g.throughput(Throughput::Elements(256 * 64 * 64));
    g.sample_size(10);
    for (name, device) in devices() {
        g.bench_function(name, |b| {
            b.iter(|| {
                let planes = wcs.coordinate_planes(&origins, 64, 64, &device).expect("planes");
                device.sync().expect("sync");
                black_box(planes)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, pixel_to_world, coordinate_planes);
criterion_main!(benches);
