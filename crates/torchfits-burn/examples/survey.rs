//! The demo: trains a small CNN with Burn on stamps cut from FITS images around catalog
//! positions, and shows how fast the data comes.
//!
//! ```sh
//! cargo run --release -p torchfits-burn --example survey                 # a synthetic survey, CPU
//! cargo run --release -p torchfits-burn --features wgpu --example survey -- --device wgpu
//! cargo run --release -p torchfits-burn --example survey -- --catalog cat.fits --images a.fits,b.fits \
//!     --ra RA --dec DEC --label CLASS                                    # real files
//! ```
//!
//! Unless given files, it writes a synthetic survey (8 images of 1024x1024 pixels with a TAN WCS,
//! sky noise, point sources and extended galaxies, and a FITS catalog of their positions and
//! classes) into `--out` (default `target/torchfits-demo`), trains for `--epochs` epochs
//! (default 4) on 80% of the stamps, validates on the rest, prints loss, validation accuracy
//! and data throughput, and writes `stamps.png` (a grid of validation stamps: the top bar is the
//! true class, the bottom bar the prediction; a red frame marks a mistake) and `curves.png`
//! (training loss in red, validation accuracy in blue, per epoch).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::data::dataloader::DataLoaderBuilder;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor};
use torchfits_burn::{CatalogCutoutDataset, StampBatcher, Subset, split};
use torchfits_core::table::{ColumnData, ColumnValues, TableBatch};
use torchfits_core::{Header, Value, WriteOptions};

/// The classifier: three 3x3 convolutions with max pooling, two linear layers.
#[derive(Module, Debug)]
struct Net {
    conv1: Conv2d,
    conv2: Conv2d,
    conv3: Conv2d,
    pool: MaxPool2d,
    fc1: Linear,
    fc2: Linear,
    act: Relu,
}

impl Net {
    fn new(channels: usize, size: usize, device: &Device) -> Net {
        let conv = |i, o| Conv2dConfig::new([i, o], [3, 3]).with_padding(PaddingConfig2d::Same).init(device);
        let side = size / 8;
        Net {
            conv1: conv(channels, 16),
            conv2: conv(16, 32),
            conv3: conv(32, 32),
            pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            fc1: LinearConfig::new(32 * side * side, 64).init(device),
            fc2: LinearConfig::new(64, 2).init(device),
            act: Relu::new(),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.pool.forward(self.act.forward(self.conv1.forward(x)));
        let x = self.pool.forward(self.act.forward(self.conv2.forward(x)));
        let x = self.pool.forward(self.act.forward(self.conv3.forward(x)));
        let [b, c, h, w] = x.dims();
        let x = x.reshape([b, c * h * w]);
        self.fc2.forward(self.act.forward(self.fc1.forward(x)))
    }
}

struct Args {
    out: PathBuf,
    catalog: Option<PathBuf>,
    images: Vec<PathBuf>,
    ra: String,
    dec: String,
    label: String,
    hdu: String,
    size: usize,
    epochs: usize,
    batch: usize,
    workers: usize,
    device: String,
    seed: u64,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        out: PathBuf::from("target/torchfits-demo"),
        catalog: None,
        images: Vec::new(),
        ra: "RA".into(),
        dec: "DEC".into(),
        label: "LABEL".into(),
        hdu: "0".into(),
        size: 32,
        epochs: 4,
        batch: 64,
        workers: 2,
        device: "cpu".into(),
        seed: 7,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => a.out = value()?.into(),
            "--catalog" => a.catalog = Some(value()?.into()),
            "--images" => a.images = value()?.split(',').map(PathBuf::from).collect(),
            "--ra" => a.ra = value()?,
            "--dec" => a.dec = value()?,
            "--label" => a.label = value()?,
            "--hdu" => a.hdu = value()?,
            "--size" => a.size = value()?.parse().map_err(|e| format!("--size: {e}"))?,
            "--epochs" => a.epochs = value()?.parse().map_err(|e| format!("--epochs: {e}"))?,
            "--batch" => a.batch = value()?.parse().map_err(|e| format!("--batch: {e}"))?,
            "--workers" => a.workers = value()?.parse().map_err(|e| format!("--workers: {e}"))?,
            "--device" => a.device = value()?,
            "--seed" => a.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            "-h" | "--help" => {
                println!(
                    "survey [--out DIR] [--catalog CAT --images A.fits,B.fits [--ra RA --dec DEC --label LABEL --hdu H]]\n       [--size 32] [--epochs 4] [--batch 64] [--workers 2] [--device cpu|wgpu] [--seed 7]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other:?} (--help)")),
        }
    }
    if a.size < 8 || !a.size.is_multiple_of(8) {
        return Err("--size must be a multiple of 8".into());
    }
    Ok(a)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("survey: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let a = args()?;
    std::fs::create_dir_all(&a.out)?;
    let (catalog, images) = match &a.catalog {
        Some(c) => (c.clone(), a.images.clone()),
        None => {
            let t0 = Instant::now();
            let made = synthetic_survey(&a.out, a.seed)?;
            println!(
                "synthetic survey: {} images and a catalog in {} ({:.1} s)",
                made.1.len(),
                a.out.display(),
                t0.elapsed().as_secs_f64()
            );
            made
        }
    };
    let device = match a.device.as_str() {
        "cpu" => Device::default(),
        #[cfg(feature = "wgpu")]
        "wgpu" => Device::wgpu(Default::default()),
        other => {
            return Err(format!(
                "unknown device {other:?} (cpu{})",
                if cfg!(feature = "wgpu") { ", wgpu" } else { "; wgpu needs --features wgpu" }
            )
            .into());
        }
    };
    let train_device = device.clone().autodiff();
    let hdu: torchfits_core::HduSelector = match a.hdu.parse::<usize>() {
        Ok(i) => i.into(),
        Err(_) => a.hdu.as_str().into(),
    };
    let dataset = CatalogCutoutDataset::builder(&catalog, &images)
        .columns(&a.ra, &a.dec)
        .label(&a.label)
        .hdu(hdu)
        .size(a.size)
        .build()?;
    let dataset = Arc::new(dataset);
    println!(
        "{} stamps of {}x{} pixels ({} catalog rows on no image)",
        dataset.len(),
        a.size,
        a.size,
        dataset.unplaced().len()
    );
    let (train_idx, val_idx) = split(dataset.len(), 0.8, a.seed);
    let (n_train, n_val) = (train_idx.len(), val_idx.len());
    let batcher = StampBatcher::new().nan_to(0.0).asinh(3.0).augment(a.seed);
    let epoch = batcher.epoch();
    let train = DataLoaderBuilder::new(batcher.clone())
        .batch_size(a.batch)
        .shuffle(a.seed)
        .num_workers(a.workers)
        .set_device(train_device.clone())
        .build(Subset::new(dataset.clone(), train_idx));
    let val = DataLoaderBuilder::new(StampBatcher::new().nan_to(0.0).asinh(3.0))
        .batch_size(a.batch)
        .num_workers(a.workers)
        .set_device(device.clone())
        .build(Subset::new(dataset.clone(), val_idx.clone()));

    // channels: image, edge mask, NaN mask
    let mut model = Net::new(3, a.size, &train_device);
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&train_device);
    let bytes_per_item = (2 * a.size * a.size * 4) as f64;
    let mut curves: Vec<(f64, f64)> = Vec::new();
    let t_all = Instant::now();
    for e in 0..a.epochs {
        epoch.set(e as u64);
        let t0 = Instant::now();
        let (mut loss_sum, mut seen, mut wait) = (0.0f64, 0usize, 0.0f64);
        let mut t_wait = Instant::now();
        for batch in train.iter() {
            let batch = batch?;
            wait += t_wait.elapsed().as_secs_f64();
            let Some(labels) = batch.labels else { return Err("the catalog has no labels".into()) };
            let n = batch.indices.len();
            let logits = model.forward(batch.images);
            let loss = loss_fn.forward(logits, labels);
            let value: f32 = loss.clone().into_scalar::<f32>();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(1e-3, model, grads);
            loss_sum += f64::from(value) * n as f64;
            seen += n;
            progress(&format!("epoch {}/{}", e + 1, a.epochs), seen, n_train, t0);
            t_wait = Instant::now();
        }
        let secs = t0.elapsed().as_secs_f64();
        // validation, without autodiff
        let valid = model.valid();
        let (mut right, mut total) = (0usize, 0usize);
        for batch in val.iter() {
            let batch = batch?;
            let Some(labels) = batch.labels else { continue };
            let pred = valid.forward(batch.images).argmax(1).flatten::<1>(0, 1);
            let hits: i64 = pred.equal(labels).int().sum().into_scalar::<i64>();
            right += hits as usize;
            total += batch.indices.len();
        }
        let acc = right as f64 / total.max(1) as f64;
        let loss = loss_sum / seen.max(1) as f64;
        curves.push((loss, acc));
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            eprintln!();
        }
        println!(
            "epoch {}: loss {loss:.4}, validation accuracy {:.1}% ({right}/{total}); {:.0} items/s, {:.1} MB/s ({:.1} s, {:.1} s of it waiting for data)",
            e + 1,
            100.0 * acc,
            seen as f64 / secs,
            seen as f64 * bytes_per_item / secs / 1e6,
            secs,
            wait
        );
    }
    println!(
        "trained {} epochs on {n_train} stamps ({n_val} for validation) in {:.1} s",
        a.epochs,
        t_all.elapsed().as_secs_f64()
    );

    // the pictures
    let valid = model.valid();
    let show: Vec<usize> = val_idx.iter().copied().take(64).collect();
    let mut stamps = Vec::new();
    let mut labels = Vec::new();
    let mut preds = Vec::new();
    for chunk in show.chunks(a.batch) {
        let items: Vec<_> = chunk.iter().map(|&i| dataset.stamp(i)).collect::<Result<_, _>>()?;
        for s in &items {
            stamps.push(s.data()[..a.size * a.size].to_vec());
            labels.push(s.label.unwrap_or(-1));
        }
        let batch = StampBatcher::new().nan_to(0.0).asinh(3.0).try_batch(items, &device)?;
        let p = valid.forward(batch.images).argmax(1).flatten::<1>(0, 1).into_data();
        preds.extend(p.iter::<i64>());
    }
    let grid = a.out.join("stamps.png");
    stamp_grid(&grid, &stamps, &labels, &preds, a.size)?;
    let plot = a.out.join("curves.png");
    curves_png(&plot, &curves)?;
    println!(
        "wrote {} (validation stamps: top bar true class, bottom bar prediction, red frame = mistake) and {} (loss red, validation accuracy blue)",
        grid.display(),
        plot.display()
    );
    let last = curves.last().map(|c| c.1).unwrap_or(0.0);
    println!("final validation accuracy {:.1}%", 100.0 * last);
    Ok(())
}

fn progress(what: &str, done: usize, total: usize, t0: Instant) {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return;
    }
    let frac = done as f64 / total.max(1) as f64;
    let width = 30;
    let filled = ((frac * width as f64) as usize).min(width);
    let rate = done as f64 / t0.elapsed().as_secs_f64().max(1e-9);
    eprint!(
        "\r{what} [{}{}] {:>3.0}% {done}/{total} {rate:.0} items/s ",
        "#".repeat(filled),
        "-".repeat(width - filled),
        100.0 * frac
    );
    let _ = std::io::stderr().flush();
}

/// A deterministic generator (splitmix64) for the synthetic survey.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// Writes 8 images with a TAN WCS (sky noise, point sources of class 0 and extended galaxies of
/// class 1) and a FITS catalog of the sources (RA, DEC, LABEL), plus a few positions on no image.
fn synthetic_survey(dir: &Path, seed: u64) -> Result<(PathBuf, Vec<PathBuf>), Box<dyn std::error::Error>> {
    const N: usize = 1024;
    const SOURCES: usize = 750;
    const FIELDS: usize = 8;
    let scale = 0.25 / 3600.0; // degrees per pixel
    let mut rng = Rng(seed);
    let (mut ra, mut dec, mut label) = (Vec::new(), Vec::new(), Vec::new());
    let mut paths = Vec::new();
    for k in 0..FIELDS {
        let crval = [150.0 + (k % 4) as f64 * 0.08, 2.0 + (k / 4) as f64 * 0.08];
        let mut img = vec![0f32; N * N];
        for p in img.iter_mut() {
            *p = rng.normal() as f32;
        }
        for _ in 0..SOURCES {
            let (x, y) = (rng.uniform() * (N as f64 + 20.0) - 10.0, rng.uniform() * (N as f64 + 20.0) - 10.0);
            let class = (rng.next() % 2) as i64;
            let flux = 150.0 + rng.uniform() * 600.0;
            let (sa, sb, th) = if class == 0 {
                (1.3, 1.3, 0.0)
            } else {
                let a = 2.6 + rng.uniform() * 1.8;
                (a, a * (0.45 + 0.55 * rng.uniform()), rng.uniform() * std::f64::consts::PI)
            };
            let norm = flux / (2.0 * std::f64::consts::PI * sa * sb);
            let (c, s) = (th.cos(), th.sin());
            let r = (5.0 * sa) as i64;
            for yy in (y as i64 - r).max(0)..(y as i64 + r).min(N as i64) {
                for xx in (x as i64 - r).max(0)..(x as i64 + r).min(N as i64) {
                    let (dx, dy) = (xx as f64 - x, yy as f64 - y);
                    let (u, v) = (c * dx + s * dy, -s * dx + c * dy);
                    img[yy as usize * N + xx as usize] +=
                        (norm * (-0.5 * (u * u / (sa * sa) + v * v / (sb * sb))).exp()) as f32;
                }
            }
            // the position through the same TAN WCS as the header (x, y 0-based)
            let (xi, eta) = ((x + 1.0 - (N as f64 / 2.0 + 0.5)) * -scale, (y + 1.0 - (N as f64 / 2.0 + 0.5)) * scale);
            let (a, d) = tan_inverse(crval, xi, eta);
            ra.push(a);
            dec.push(d);
            label.push(class as i32);
        }
        let mut h = Header::new();
        for (key, v) in [
            ("CTYPE1", Value::Str("RA---TAN".into())),
            ("CTYPE2", Value::Str("DEC--TAN".into())),
            ("CRPIX1", Value::Float(N as f64 / 2.0 + 0.5)),
            ("CRPIX2", Value::Float(N as f64 / 2.0 + 0.5)),
            ("CRVAL1", Value::Float(crval[0])),
            ("CRVAL2", Value::Float(crval[1])),
            ("CDELT1", Value::Float(-scale)),
            ("CDELT2", Value::Float(scale)),
            ("BUNIT", Value::Str("adu".into())),
        ] {
            h.set(key, v, None)?;
        }
        let path = dir.join(format!("field{k}.fits"));
        let mut w = WriteOptions::new().overwrite(true).create(&path)?;
        w.image(&img, &[N, N]).header(&h).write()?;
        w.finish()?;
        paths.push(path);
    }
    // positions on no image (the dataset reports them)
    for i in 0..5 {
        ra.push(10.0 + i as f64);
        dec.push(-40.0);
        label.push(0);
    }
    let catalog = dir.join("catalog.fits");
    let table = TableBatch::new(vec![
        ColumnData::new("RA", ColumnValues::F64(ra)),
        ColumnData::new("DEC", ColumnValues::F64(dec)),
        ColumnData::new("LABEL", ColumnValues::I32(label)),
    ])?;
    let mut w = WriteOptions::new().overwrite(true).create(&catalog)?;
    w.write_table(&table, "CATALOG", None)?;
    w.finish()?;
    Ok((catalog, paths))
}

/// The gnomonic projection's inverse about `crval` (degrees), for offsets (xi, eta) in degrees.
fn tan_inverse(crval: [f64; 2], xi: f64, eta: f64) -> (f64, f64) {
    let (a0, d0) = (crval[0].to_radians(), crval[1].to_radians());
    let (x, y) = (xi.to_radians(), eta.to_radians());
    let den = d0.cos() - y * d0.sin();
    let a = a0 + x.atan2(den);
    let d = (d0.sin() + y * d0.cos()).atan2((x * x + den * den).sqrt());
    (a.to_degrees().rem_euclid(360.0), d.to_degrees())
}

fn write_png(path: &Path, w: usize, h: usize, rgb: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut enc = png::Encoder::new(file, w as u32, h as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()?.write_image_data(rgb)?;
    Ok(())
}

const CLASS: [[u8; 3]; 2] = [[255, 200, 0], [0, 180, 255]];

/// An 8-column grid of stamps (asinh-stretched grey), each with a bar of its true class above
/// and of the prediction below, framed in red when they differ.
fn stamp_grid(
    path: &Path,
    stamps: &[Vec<f32>],
    labels: &[i64],
    preds: &[i64],
    s: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let (zoom, cols) = (3usize, 8usize);
    let cell = s * zoom + 28;
    let rows = stamps.len().div_ceil(cols).max(1);
    let (w, h) = (cols * cell, rows * cell + 12);
    let mut rgb = vec![40u8; w * h * 3];
    text(&mut rgb, w, 4, 3, "TOP TRUE  BOTTOM PRED  YELLOW STAR  BLUE GAL", [255, 255, 255]);
    for (k, st) in stamps.iter().enumerate() {
        let (ox, oy) = ((k % cols) * cell + 14, (k / cols) * cell + 12 + 14);
        let lo = st.iter().fold(f32::INFINITY, |m, &v| m.min(v));
        let hi = st.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let f = |v: f32| ((v - lo) / 2.0).asinh() / ((hi - lo).max(1e-6) / 2.0).asinh();
        for y in 0..s * zoom {
            for x in 0..s * zoom {
                let v = (f(st[(s - 1 - y / zoom) * s + x / zoom]).clamp(0.0, 1.0) * 255.0) as u8;
                let at = ((oy + y) * w + ox + x) * 3;
                rgb[at..at + 3].copy_from_slice(&[v, v, v]);
            }
        }
        let bar = |rgb: &mut [u8], y0: usize, class: i64| {
            let c = CLASS.get(class as usize).copied().unwrap_or([128, 128, 128]);
            for y in y0..y0 + 4 {
                for x in ox..ox + s * zoom {
                    let at = (y * w + x) * 3;
                    rgb[at..at + 3].copy_from_slice(&c);
                }
            }
        };
        bar(&mut rgb, oy - 6, labels[k]);
        bar(&mut rgb, oy + s * zoom + 2, preds.get(k).copied().unwrap_or(-1));
        if preds.get(k) != Some(&labels[k]) {
            for i in 0..s * zoom + 4 {
                for (x, y) in [
                    (ox - 2 + i, oy - 8),
                    (ox - 2 + i, oy + s * zoom + 7),
                    (ox - 2, oy - 8 + i),
                    (ox + s * zoom + 1, oy - 8 + i),
                ] {
                    if x < w && y < h {
                        let at = (y * w + x) * 3;
                        rgb[at..at + 3].copy_from_slice(&[255, 0, 0]);
                    }
                }
            }
        }
    }
    write_png(path, w, h, &rgb)
}

/// Training loss (red, scaled to its first value) and validation accuracy (blue, 0 to 100%) per
/// epoch.
fn curves_png(path: &Path, curves: &[(f64, f64)]) -> Result<(), Box<dyn std::error::Error>> {
    let (w, h) = (640usize, 400usize);
    let (l, r, t, b) = (50usize, 20usize, 30usize, 40usize);
    let mut rgb = vec![255u8; w * h * 3];
    let put = |x: usize, y: usize, c: [u8; 3], rgb: &mut Vec<u8>| {
        if x < w && y < h {
            let at = (y * w + x) * 3;
            rgb[at..at + 3].copy_from_slice(&c);
        }
    };
    for x in l..w - r {
        put(x, h - b, [0, 0, 0], &mut rgb);
    }
    for y in t..=h - b {
        put(l, y, [0, 0, 0], &mut rgb);
    }
    let n = curves.len().max(2);
    let lmax = curves.iter().map(|c| c.0).fold(1e-9, f64::max);
    let px = |i: usize| l + (i * (w - l - r - 1)) / (n - 1);
    let py = |v: f64| (h - b) - ((v.clamp(0.0, 1.0)) * (h - b - t) as f64) as usize;
    for (series, color) in [(0usize, [220u8, 30, 30]), (1, [30, 60, 220])] {
        let val = |c: &(f64, f64)| if series == 0 { c.0 / lmax } else { c.1 };
        for i in 0..curves.len() {
            let (x0, y0) = (px(i), py(val(&curves[i])));
            for dy in 0..5 {
                for dx in 0..5 {
                    put(x0 + dx - 2, y0 + dy - 2, color, &mut rgb);
                }
            }
            if i + 1 < curves.len() {
                let (x1, y1) = (px(i + 1), py(val(&curves[i + 1])));
                let steps = (x1 - x0).max(y0.abs_diff(y1)).max(1);
                for k in 0..=steps {
                    let x = x0 + (x1 - x0) * k / steps;
                    let y = (y0 as i64 + (y1 as i64 - y0 as i64) * k as i64 / steps as i64) as usize;
                    put(x, y, color, &mut rgb);
                    put(x, y + 1, color, &mut rgb);
                }
            }
        }
    }
    text(&mut rgb, w, l, 8, "LOSS", [220, 30, 30]);
    text(&mut rgb, w, l + 60, 8, "VAL ACC 0-100%", [30, 60, 220]);
    text(&mut rgb, w, w / 2 - 20, h - 25, "EPOCH", [0, 0, 0]);
    for i in 0..curves.len() {
        text(&mut rgb, w, px(i) - 2, h - b + 6, &(i + 1).to_string(), [0, 0, 0]);
    }
    if let Some(&(_, acc)) = curves.last() {
        text(&mut rgb, w, w - r - 90, py(acc) + 8, &format!("{:.1}%", 100.0 * acc), [30, 60, 220]);
    }
    write_png(path, w, h, &rgb)
}

/// Draws `s` in a 3x5 pixel font, doubled, at (x, y).
fn text(rgb: &mut [u8], w: usize, x: usize, y: usize, s: &str, color: [u8; 3]) {
    let h = rgb.len() / 3 / w;
    for (k, ch) in s.chars().enumerate() {
        let rows = glyph(ch);
        for (r, bits) in rows.iter().enumerate() {
            for c in 0..3 {
                if bits & (4 >> c) != 0 {
                    for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                        let (px, py) = (x + k * 8 + c * 2 + dx, y + r * 2 + dy);
                        if px < w && py < h {
                            let at = (py * w + px) * 3;
                            rgb[at..at + 3].copy_from_slice(&color);
                        }
                    }
                }
            }
        }
    }
}

fn glyph(c: char) -> [u8; 5] {
    match c.to_ascii_uppercase() {
        '0' | 'O' => [7, 5, 5, 5, 7],
        '1' => [2, 6, 2, 2, 7],
        '2' => [7, 1, 7, 4, 7],
        '3' => [7, 1, 7, 1, 7],
        '4' => [5, 5, 7, 1, 1],
        '5' | 'S' => [7, 4, 7, 1, 7],
        '6' => [7, 4, 7, 5, 7],
        '7' => [7, 1, 1, 1, 1],
        '8' => [7, 5, 7, 5, 7],
        '9' => [7, 5, 7, 1, 7],
        'A' => [2, 5, 7, 5, 5],
        'B' => [6, 5, 6, 5, 6],
        'C' => [7, 4, 4, 4, 7],
        'D' => [6, 5, 5, 5, 6],
        'E' => [7, 4, 6, 4, 7],
        'G' => [7, 4, 5, 5, 7],
        'H' => [5, 5, 7, 5, 5],
        'I' => [7, 2, 2, 2, 7],
        'L' => [4, 4, 4, 4, 7],
        'M' => [5, 7, 7, 5, 5],
        'N' => [5, 7, 7, 7, 5],
        'P' => [7, 5, 7, 4, 4],
        'R' => [6, 5, 6, 5, 5],
        'T' => [7, 2, 2, 2, 2],
        'U' => [5, 5, 5, 5, 7],
        'V' => [5, 5, 5, 5, 2],
        'W' => [5, 5, 7, 7, 5],
        'Y' => [5, 5, 2, 2, 2],
        '%' => [5, 1, 2, 4, 5],
        '.' => [0, 0, 0, 0, 2],
        '-' => [0, 0, 7, 0, 0],
        ':' => [0, 2, 0, 2, 0],
        _ => [0; 5],
    }
}
