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
//! and data throughput (a progress bar per epoch on a terminal), and writes `stamps.png` (a grid of
//! validation stamps, each with its true and predicted class; a mistake in red) and `curves.png`
//! (training loss and validation accuracy per epoch, valued axes and a legend), drawn with
//! plotters. `-v` (or `RUST_LOG=torchfits=debug`) shows what torchfits does on stderr.

mod stamp_cnn;
mod synthetic;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::data::dataloader::DataLoaderBuilder;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use stamp_cnn::{FEATURES, Trunk};
use torchfits_burn::transforms::{Asinh, NanFill, Symmetries};
use torchfits_burn::{CatalogCutoutDataset, GroupBy, StampBatcher};

/// The classifier: the examples' convolutional trunk, then a linear layer to the 2 classes.
#[derive(Module, Debug)]
struct Net {
    trunk: Trunk,
    head: Linear,
}

impl Net {
    fn new(channels: usize, size: usize, device: &Device) -> Net {
        Net { trunk: Trunk::new(channels, size, device), head: LinearConfig::new(FEATURES, 2).init(device) }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.head.forward(self.trunk.forward(x))
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
    /// `-v`: torchfits' debug events on stderr (`RUST_LOG` takes precedence).
    verbose: bool,
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
        verbose: false,
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
            "-v" | "--verbose" => a.verbose = true,
            "-h" | "--help" => {
                println!(
                    "survey [--out DIR] [--catalog CAT --images A.fits,B.fits [--ra RA --dec DEC --label LABEL --hdu H]]\n       [--size 32] [--epochs 4] [--batch 64] [--workers 2] [--device cpu|wgpu] [--seed 7] [-v]"
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
    init_logging(a.verbose);
    std::fs::create_dir_all(&a.out)?;
    let (catalog, images) = match &a.catalog {
        Some(c) => (c.clone(), a.images.clone()),
        None => {
            let t0 = Instant::now();
            let made = synthetic::survey(&a.out, a.seed, false)?;
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
        "cpu" => Device::flex(),
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
    // placing every catalog row on an image (through each image's WCS) takes a while for a large
    // catalog: a spinner meanwhile
    let placing =
        indicatif::ProgressBar::new_spinner().with_message(format!("placing {} on the images", catalog.display()));
    placing.enable_steady_tick(std::time::Duration::from_millis(120));
    let dataset = CatalogCutoutDataset::builder(&catalog, &images)
        .columns(&a.ra, &a.dec)
        .label(&a.label)
        .hdu(hdu)
        .size(a.size)
        .build();
    placing.finish_and_clear();
    let dataset = dataset?;
    let dataset = Arc::new(dataset);
    println!(
        "{} stamps of {}x{} pixels ({} catalog rows on no image)",
        dataset.len(),
        a.size,
        a.size,
        dataset.unplaced().len()
    );
    // a grouped split: sources in one HEALPix cell (~1.7 arcmin at depth 11) all on one side, so
    // that neighbours on the sky never leak from training into validation
    let (train_set, val_set) = dataset.split_by(GroupBy::Cell { depth: 11 }, 0.8, a.seed)?;
    let val_idx = val_set.indices.clone();
    let (n_train, n_val) = (train_set.indices.len(), val_set.indices.len());
    let batcher = StampBatcher::new().transform(NanFill(0.0)).transform(Asinh(3.0)).transform(Symmetries(a.seed));
    let epoch = batcher.epoch();
    let train = DataLoaderBuilder::new(batcher.clone())
        .batch_size(a.batch)
        .shuffle(a.seed)
        .num_workers(a.workers)
        .set_device(train_device.clone())
        .build(train_set);
    let val = DataLoaderBuilder::new(StampBatcher::new().transform(NanFill(0.0)).transform(Asinh(3.0)))
        .batch_size(a.batch)
        .num_workers(a.workers)
        .set_device(device.clone())
        .build(val_set);

    // the model's input: the image, its edge flag and its NaN flag, as the dataset and the
    // batcher's transforms report them
    let input = batcher.channels(&dataset.channels());
    let mut model = Net::new(input.len(), a.size, &train_device);
    let mut optim = AdamConfig::new().init();
    let loss_fn = CrossEntropyLossConfig::new().init(&train_device);
    let bytes_per_item = (2 * a.size * a.size * 4) as f64;
    let mut curves: Vec<(f64, f64)> = Vec::new();
    let t_all = Instant::now();
    for e in 0..a.epochs {
        epoch.set(e as u64);
        let bar = progress_bar(&format!("epoch {}/{}", e + 1, a.epochs), n_train as u64);
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
            bar.set_position(seen as u64);
            bar.set_message(format!("loss {:.4}", loss_sum / seen.max(1) as f64));
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
        bar.finish_and_clear();
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
        let items: Vec<_> = chunk.iter().map(|&i| dataset.read(i)).collect::<Result<_, _>>()?;
        for s in &items {
            stamps.push(s.data()[..a.size * a.size].to_vec());
            labels.push(s.label.unwrap_or(-1));
        }
        let batch = StampBatcher::new().transform(NanFill(0.0)).transform(Asinh(3.0)).try_batch(items, &device)?;
        let p = valid.forward(batch.images).argmax(1).flatten::<1>(0, 1).into_data();
        preds.extend(p.iter::<i64>());
    }
    let grid = a.out.join("stamps.png");
    register_font()?;
    // the synthetic survey's classes have names; a real catalog's are numbers
    let names: &[&str] = if a.catalog.is_none() { &["star", "galaxy"] } else { &[] };
    stamp_grid(&grid, &stamps, &labels, &preds, a.size, names)?;
    let plot = a.out.join("curves.png");
    curves_png(&plot, &curves)?;
    println!(
        "wrote {} (validation stamps: true class above, prediction below, mistakes in red) and {} (loss and validation accuracy per epoch)",
        grid.display(),
        plot.display()
    );
    let last = curves.last().map(|c| c.1).unwrap_or(0.0);
    println!("final validation accuracy {:.1}%", 100.0 * last);
    Ok(())
}

/// A progress bar of stamps on stderr, drawn only when stderr is a terminal.
fn progress_bar(what: &str, total: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(total);
    // a fixed template: it parses, so the fallback is never taken
    let style = indicatif::ProgressStyle::with_template(
        "{prefix} [{bar:30}] {percent:>3}% {pos}/{len} stamps, {per_sec}, {msg}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(what.to_string());
    bar
}

/// torchfits' `tracing` events on stderr: by `RUST_LOG` when set, else debug events of torchfits'
/// crates with `-v`, and only warnings without.
fn init_logging(verbose: bool) {
    let default = if verbose { "warn,torchfits=debug" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// A deterministic generator (splitmix64) for the synthetic survey.
fn write_png(path: &Path, w: usize, h: usize, rgb: &[u8]) -> Result<(), Box<dyn std::error::Error>> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut enc = png::Encoder::new(file, w as u32, h as u32);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    enc.write_header()?.write_image_data(rgb)?;
    Ok(())
}

/// The charts' typeface (DejaVu Sans, compiled in: the demo needs no font on the machine).
fn register_font() -> Result<(), Box<dyn std::error::Error>> {
    plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
        .map_err(|_| "DejaVu Sans cannot be read as a font".into())
}

/// A class's name: the synthetic survey's, else its number.
fn class_name(names: &[&str], class: i64) -> String {
    usize::try_from(class).ok().and_then(|c| names.get(c)).map_or_else(|| format!("class {class}"), |n| n.to_string())
}

/// An 8-column grid of stamps (asinh-stretched grey), each with its true class above and the
/// prediction below; a mistake is framed and labelled in red.
fn stamp_grid(
    path: &Path,
    stamps: &[Vec<f32>],
    labels: &[i64],
    preds: &[i64],
    s: usize,
    names: &[&str],
) -> Result<(), Box<dyn std::error::Error>> {
    let (zoom, cols, title) = (3usize, 8usize, 34usize);
    let side = s * zoom;
    let (cell_w, cell_h) = (side + 20, side + 46);
    let rows = stamps.len().div_ceil(cols).max(1);
    let (w, h) = (cols * cell_w + 10, rows * cell_h + title);
    let mut rgb = vec![0u8; w * h * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w as u32, h as u32)).into_drawing_area();
        root.fill(&RGBColor(32, 32, 36))?;
        let white = ("sans-serif", 13).into_font().color(&WHITE);
        let red = ("sans-serif", 13).into_font().color(&RGBColor(255, 90, 90));
        root.draw(&Text::new(
            "validation stamps: true class above, prediction below (red: a mistake)",
            (12, 10),
            ("sans-serif", 16).into_font().color(&WHITE),
        ))?;
        for (k, st) in stamps.iter().enumerate() {
            let (x0, y0) = (((k % cols) * cell_w + 14) as i32, ((k / cols) * cell_h + title + 18) as i32);
            root.draw(
                &BitMapElement::with_owned_buffer((x0, y0), (side as u32, side as u32), grey(st, s, zoom))
                    .ok_or("a stamp's pixels do not fill it")?,
            )?;
            let (label, pred) = (labels.get(k).copied().unwrap_or(-1), preds.get(k).copied());
            let wrong = pred != Some(label);
            root.draw(&Text::new(format!("true {}", class_name(names, label)), (x0, y0 - 16), white.clone()))?;
            let predicted = pred.map_or_else(|| "none".to_string(), |p| class_name(names, p));
            let style = if wrong { red.clone() } else { white.clone() };
            root.draw(&Text::new(format!("pred {predicted}"), (x0, y0 + side as i32 + 4), style))?;
            if wrong {
                let frame = [(x0 - 3, y0 - 3), (x0 + side as i32 + 2, y0 + side as i32 + 2)];
                root.draw(&Rectangle::new(frame, RGBColor(255, 60, 60).stroke_width(2)))?;
            }
        }
        root.present()?;
    }
    write_png(path, w, h, &rgb)
}

/// A stamp of `s` x `s` as RGB grey, asinh-stretched between its extremes, each pixel `zoom`
/// pixels wide, north up.
fn grey(stamp: &[f32], s: usize, zoom: usize) -> Vec<u8> {
    let lo = stamp.iter().fold(f32::INFINITY, |m, &v| m.min(v));
    let hi = stamp.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    let f = |v: f32| ((v - lo) / 2.0).asinh() / ((hi - lo).max(1e-6) / 2.0).asinh();
    let side = s * zoom;
    let mut rgb = Vec::with_capacity(side * side * 3);
    for y in 0..side {
        for x in 0..side {
            let v = (f(stamp[(s - 1 - y / zoom) * s + x / zoom]).clamp(0.0, 1.0) * 255.0) as u8;
            rgb.extend_from_slice(&[v, v, v]);
        }
    }
    rgb
}

/// Training loss (left axis) and validation accuracy (right axis, percent) per epoch, with a
/// legend.
fn curves_png(path: &Path, curves: &[(f64, f64)]) -> Result<(), Box<dyn std::error::Error>> {
    let (w, h) = (800usize, 460usize);
    let epochs = curves.len().max(1) as i32;
    let top_loss = curves.iter().map(|c| c.0).fold(0.0, f64::max).max(1e-3) * 1.2;
    let (loss_color, acc_color) = (RGBColor(214, 39, 40), RGBColor(31, 119, 180));
    let mut rgb = vec![255u8; w * h * 3];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w as u32, h as u32)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption("training on FITS stamps", ("sans-serif", 22))
            .margin(14)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .right_y_label_area_size(64)
            .build_cartesian_2d(0..epochs + 1, 0.0..top_loss)?
            .set_secondary_coord(0..epochs + 1, 0.0..110.0);
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("training loss")
            .x_labels((epochs + 2) as usize)
            .x_label_formatter(&|e| if *e >= 1 && *e <= epochs { e.to_string() } else { String::new() })
            .y_label_formatter(&|v| format!("{v:.2}"))
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()?;
        chart
            .configure_secondary_axes()
            .y_desc("validation accuracy (%)")
            .y_label_formatter(&|v| if *v <= 100.0 { format!("{v:.0}") } else { String::new() })
            .label_style(("sans-serif", 14))
            .axis_desc_style(("sans-serif", 16))
            .draw()?;
        let loss: Vec<(i32, f64)> = (1..).zip(curves.iter().map(|c| c.0)).collect();
        let acc: Vec<(i32, f64)> = (1..).zip(curves.iter().map(|c| 100.0 * c.1)).collect();
        chart
            .draw_series(LineSeries::new(loss.clone(), loss_color.stroke_width(3)).point_size(4))?
            .label("training loss")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], loss_color.stroke_width(3)));
        chart
            .draw_secondary_series(LineSeries::new(acc.clone(), acc_color.stroke_width(3)).point_size(4))?
            .label("validation accuracy")
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], acc_color.stroke_width(3)));
        // each epoch's values beside its points
        let value = |v: String, at: (i32, f64), color: RGBColor| {
            Text::new(v, at, ("sans-serif", 13).into_font().color(&color).pos(Pos::new(HPos::Center, VPos::Bottom)))
        };
        chart.draw_series(loss.iter().map(|&(e, v)| value(format!("{v:.3}"), (e, v + top_loss * 0.02), loss_color)))?;
        chart.draw_secondary_series(acc.iter().map(|&(e, v)| value(format!("{v:.1}%"), (e, v + 2.0), acc_color)))?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::MiddleRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font(("sans-serif", 15))
            .draw()?;
        root.present()?;
    }
    write_png(path, w, h, &rgb)
}
