//! World coordinates on Burn tensors, measured: every pixel of a 4096x4096 TAN-SIP survey image
//! (16.8M points) as an `[N, 2]` tensor on the device, through `DeviceWcs::pixel_to_world` (the
//! backend extension), timed, and checked point by point against wcslib on the CPU; then a batch of
//! 256 stamps of 64x64 pixels with their coordinate planes, and the bytes it moved between host and
//! device. Beside it, wcslib on one core over the same points (the ratio the GPU goal is set in).
//!
//! ```sh
//! cargo run --release -p torchfits-burn --features wgpu --example device_wcs             # wgpu
//! cargo run --release -p torchfits-burn --example device_wcs -- --device cpu             # Flex
//! cargo run --release -p torchfits-burn --features cuda --example device_wcs -- --device cuda
//! ```
//!
//! The last line: `device_wcs: <N> points on <device>, <R> Mpoints/s, max error <E> deg vs
//! wcslib, <K> points on the host`.

use std::sync::Arc;
use std::time::Instant;

use burn::data::dataset::Dataset;
use burn::tensor::{Tensor, TensorData};
use torchfits_burn::transforms::Symmetries;
use torchfits_burn::wcs::{DeviceWcs, Precision, device};
use torchfits_burn::{CatalogCutoutDataset, CutoutCoordinates, StampBatcher, Transfers};
use torchfits_core::table::{ColumnData, ColumnValues, TableBatch};
use torchfits_core::{Header, Value, Wcs, WriteOptions};

const N: usize = 4096;

/// A survey image's WCS: TAN with third-order SIP, 0.2 arcsec pixels.
fn survey_header() -> Header {
    let mut h = Header::new();
    let cards: [(&str, Value); 17] = [
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
        ("A_ORDER", 3.into()),
        ("B_ORDER", 3.into()),
        ("A_2_0", 2.1e-6.into()),
        ("A_1_1", (-1.3e-6).into()),
        ("B_0_2", 1.9e-6.into()),
        ("A_3_0", (-2.0e-10).into()),
        ("B_0_3", (-1.5e-10).into()),
    ];
    for (k, v) in cards {
        h.set(k, v, None).expect("a valid card");
    }
    h
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let name = args.iter().position(|a| a == "--device").and_then(|i| args.get(i + 1)).map_or("wgpu", String::as_str);
    let device = device(name.parse()?)?;
    let header = survey_header();
    let wcs = DeviceWcs::new(Wcs::from_header(&header)?);
    match wcs.precision(&device) {
        Precision::Wcslib => println!("device {name}: wcslib computes every point (the CPU backend)"),
        p => println!("device {name}: the kernel runs in {p}"),
    }

    // every pixel, x first, as f32 on the device
    let pixels: Vec<f32> = (0..N * N).flat_map(|k| [(k % N) as f32, (k / N) as f32]).collect();
    let tensor = Tensor::<2>::from_data(TensorData::new(pixels.clone(), [N * N, 2]), &device);
    let run = |t: &Tensor<2>| -> Result<(f64, torchfits_burn::wcs::WorldPoints), Box<dyn std::error::Error>> {
        let start = Instant::now();
        let out = wcs.pixel_to_world(t.clone())?;
        device.sync().map_err(|e| format!("{e:?}"))?;
        Ok((start.elapsed().as_secs_f64(), out))
    };
    run(&tensor)?; // warm-up: kernels compiled, f64 probed
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let (t, out) = run(&tensor)?;
        times.push(t);
        last = Some(out);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let out = last.ok_or("no run")?;
    let host_points = out.host_points;

    // wcslib at the very f32 pixels the tensor holds, on every core
    let cpu = Wcs::from_header(&header)?;
    let pix64: Vec<f64> = pixels.iter().map(|&p| f64::from(p)).collect();
    let mut want = vec![0.0; pix64.len()];
    cpu.pixel_to_world(&pix64, &mut want)?;
    let got: Vec<f64> = out.world.into_data().iter::<f64>().collect();
    let worst = got.chunks_exact(2).zip(want.chunks_exact(2)).fold(0f64, |m, (g, w)| {
        let dl = (g[0] - w[0]).abs();
        m.max(dl.min(360.0 - dl) * w[1].to_radians().cos()).max((g[1] - w[1]).abs())
    });

    // the baseline: wcslib itself on one core, the same points
    let mut one = Wcs::from_header(&header)?;
    one.set_wcslib_only();
    one.set_threads(1);
    let start = Instant::now();
    one.pixel_to_world(&pix64, &mut want)?;
    let baseline = start.elapsed().as_secs_f64();
    println!(
        "wcslib on one core: {:.1} Mpoints/s; the extension on {name}: {:.1}x that",
        (N * N) as f64 / baseline / 1e6,
        baseline / median
    );

    world_to_pixel(&wcs, &device, &cpu, &want)?;
    batch_transfers(&device, &header)?;
    println!(
        "device_wcs: {} points on {name}, {:.1} Mpoints/s, max error {worst:.2e} deg vs wcslib, {host_points} points on the host",
        N * N,
        (N * N) as f64 / median / 1e6
    );
    Ok(())
}

/// World to pixel on the device for the world coordinates of every pixel (as f32): timed, and
/// checked against wcslib at those very f32 values.
fn world_to_pixel(
    wcs: &DeviceWcs,
    device: &burn::tensor::Device,
    cpu: &Wcs,
    world: &[f64],
) -> Result<(), Box<dyn std::error::Error>> {
    let world32: Vec<f32> = world.iter().map(|&w| w as f32).collect();
    let exact: Vec<f64> = world32.iter().map(|&w| f64::from(w)).collect();
    let mut want = vec![0.0; exact.len()];
    cpu.world_to_pixel(&exact, &mut want)?;
    let t = Tensor::<2>::from_data(TensorData::new(world32, [N * N, 2]), device);
    wcs.world_to_pixel(t.clone())?; // warm-up
    device.sync().map_err(|e| format!("{e:?}"))?;
    let start = Instant::now();
    let out = wcs.world_to_pixel(t)?;
    device.sync().map_err(|e| format!("{e:?}"))?;
    let seconds = start.elapsed().as_secs_f64();
    let got: Vec<f64> = out.pixels.into_data().iter::<f64>().collect();
    let worst = got.iter().zip(&want).fold(0f64, |m, (g, w)| m.max((g - w).abs()));
    println!(
        "world to pixel: {:.1} Mpoints/s, max error {worst:.2e} px vs wcslib (f32 pixels), {} points on the host",
        (N * N) as f64 / seconds / 1e6,
        out.host_points
    );
    Ok(())
}

/// A batch of 256 stamps of 64x64 pixels from a 1024x1024 image with the survey's WCS, with
/// coordinate planes: what it moves between host and device.
fn batch_transfers(device: &burn::tensor::Device, header: &Header) -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::temp_dir().join("torchfits-device-wcs");
    std::fs::create_dir_all(&dir)?;
    let (image, catalog) = (dir.join("image.fits"), dir.join("catalog.fits"));
    let side = 1024;
    let pixels: Vec<f32> = (0..side * side).map(|i| (i % 97) as f32).collect();
    let mut w = WriteOptions::new().overwrite(true).create(&image)?;
    w.image(&pixels, &[side, side]).header(header).write()?;
    w.finish()?;
    // 256 positions on a 16x16 grid over the image
    let wcs = Wcs::from_header(header)?;
    let pix: Vec<f64> = (0..256).flat_map(|k| [40.0 + (k % 16) as f64 * 60.0, 40.0 + (k / 16) as f64 * 60.0]).collect();
    let mut world = vec![0.0; pix.len()];
    wcs.pixel_to_world(&pix, &mut world)?;
    let t = TableBatch::new(vec![
        ColumnData::new("RA", ColumnValues::F64(world.iter().step_by(2).copied().collect())),
        ColumnData::new("DEC", ColumnValues::F64(world.iter().skip(1).step_by(2).copied().collect())),
    ])?;
    let mut w = WriteOptions::new().overwrite(true).create(&catalog)?;
    w.write_table(&t, "CATALOG", None)?;
    w.finish()?;
    let ds = Arc::new(CatalogCutoutDataset::builder(&catalog, [&image]).size(64).build()?);
    let batcher = StampBatcher::new().coordinates(Arc::new(CutoutCoordinates::new(&ds)?)).transform(Symmetries(1));
    let items = (0..ds.len()).map(|i| ds.get(i).map_err(|e| format!("{e:?}"))).collect::<Result<Vec<_>, _>>()?;
    batcher.try_batch(items.clone(), device)?; // warm-up
    let before = Transfers::now();
    let batch = batcher.try_batch(items.clone(), device)?;
    let moved = Transfers::now().since(before);
    let channels = items.first().map_or(0, |s| s.channels);
    let pixel_bytes = items.len() * channels * 64 * 64 * 4;
    let plane_bytes = items.len() * 2 * 64 * 64 * 4;
    println!(
        "a batch of {} stamps of 64x64 with coordinate planes ({:?}): {} bytes up in {} copies (the pixels: {pixel_bytes}), {} bytes down in {} reads (the planes would be {plane_bytes})",
        items.len(),
        batch.coordinates.map(|c| c.dims()),
        moved.bytes_up,
        moved.uploads,
        moved.bytes_down,
        moved.downloads
    );
    Ok(())
}
