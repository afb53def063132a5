//! burn-train's Learner on FITS stamps: a class and a float target at once, metrics and
//! checkpoints, epochs that advance themselves, and a corrupt image that costs only its own
//! stamps.
//!
//! ```sh
//! cargo run --release -p torchfits-burn --example learner
//! cargo run --release -p torchfits-burn --example learner -- --epochs 3 --out target/torchfits-learner
//! ```
//!
//! It writes the synthetic survey of the demo (8 GZIP tile-compressed images of 1024x1024 pixels
//! with a TAN WCS, point sources of class 0 and galaxies of class 1, and a catalog with each
//! source's class and total flux) into `--out`, corrupts the middle third of one image's
//! compressed tiles, and trains a small CNN with two heads under burn-train's `Learner`: the class
//! (cross-entropy) and log10 of the flux (mean squared error), on 80% of the stamps. The stamps on
//! the corrupt tiles are replaced by others (`OnError::Substitute`), so every epoch runs to its
//! end; the loader starts a new epoch of symmetries and substitutions on each `iter()`
//! (`EpochLoader`). The Learner logs loss and accuracy per epoch and keeps checkpoints in `--out`;
//! the example then measures, on the validation stamps, the accuracy and the flux's mean absolute
//! error beside that of predicting the training mean, and prints as its last line:
//!
//! `learner: <E> epochs, accuracy <A>%, log10_flux MAE <M> (mean predictor <B>), <R> items replaced from <F> bad files`

mod progress_bars;
mod stamp_cnn;
mod synthetic;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::data::dataloader::DataLoaderBuilder;
use burn::module::Module;
use burn::nn::loss::{CrossEntropyLossConfig, MseLoss, Reduction};
use burn::nn::{Linear, LinearConfig};
use burn::optim::AdamConfig;
use burn::tensor::{Device, Int, Tensor};
use burn::train::metric::{AccuracyInput, AccuracyMetric, Adaptor, ItemLazy, LossInput, LossMetric};
use burn::train::{InferenceStep, Learner, SupervisedTraining, TrainOutput, TrainStep};
use progress_bars::ProgressBars;
use stamp_cnn::{FEATURES, Trunk};
use torchfits_burn::transforms::{Asinh, NanFill, Symmetries};
use torchfits_burn::{
    CatalogCutoutDataset, EpochLoader, GroupBy, OnError, SideTensor, SideValues, StampBatch, StampBatcher,
};

/// The flux target: log10 of the total flux, centred and scaled so that the loss sees values of
/// order 1.
const LOG_FLUX_CENTRE: f32 = 2.5;
const LOG_FLUX_SCALE: f32 = 0.2;

/// The examples' convolutional trunk, then two heads: the class and the flux.
#[derive(Module, Debug)]
struct Net {
    trunk: Trunk,
    class_head: Linear,
    flux_head: Linear,
}

impl Net {
    fn new(channels: usize, size: usize, device: &Device) -> Net {
        Net {
            trunk: Trunk::new(channels, size, device),
            class_head: LinearConfig::new(FEATURES, 2).init(device),
            flux_head: LinearConfig::new(FEATURES, 1).init(device),
        }
    }

    /// Class logits `[b, 2]` and the scaled log flux `[b]`.
    fn forward(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<1>) {
        let [b, ..] = x.dims();
        let features = self.trunk.forward(x);
        (self.class_head.forward(features.clone()), self.flux_head.forward(features).reshape([b]))
    }

    fn output(&self, batch: StampBatch) -> SurveyOutput {
        let device = batch.images.device();
        let classes = batch.labels.clone().unwrap_or_else(|| Tensor::zeros([0], &device));
        let flux = scaled_log_flux(&batch);
        let (logits, predicted) = self.forward(batch.images);
        let class_loss = CrossEntropyLossConfig::new().init(&device).forward(logits.clone(), classes.clone());
        let flux_loss = MseLoss::new().forward(predicted.clone(), flux.clone(), Reduction::Mean);
        SurveyOutput { loss: class_loss + flux_loss, logits, classes, predicted, flux }
    }
}

/// The batch's FLUX target, log10, centred and scaled (F32 on every device, as the model; the
/// exact values are in the batch's host values).
fn scaled_log_flux(batch: &StampBatch) -> Tensor<1> {
    let device = batch.images.device();
    match batch.target("FLUX").and_then(|t| t.tensor.clone()) {
        Some(SideTensor::Float(flux)) => {
            flux.log().div_scalar(std::f32::consts::LN_10).sub_scalar(LOG_FLUX_CENTRE).div_scalar(LOG_FLUX_SCALE)
        }
        _ => Tensor::zeros([batch.indices.len()], &device),
    }
}

/// One step's output: the summed loss, and what the metrics read.
struct SurveyOutput {
    loss: Tensor<1>,
    logits: Tensor<2>,
    classes: Tensor<1, Int>,
    predicted: Tensor<1>,
    flux: Tensor<1>,
}

impl ItemLazy for SurveyOutput {
    fn sync(self) -> Result<Self, burn::tensor::ExecutionError> {
        // the metrics compute on the device; off the autodiff graph, so that the metric thread
        // keeps no tape alive
        self.loss.device().flush()?;
        Ok(SurveyOutput {
            loss: self.loss.without_autodiff(),
            logits: self.logits.without_autodiff(),
            classes: self.classes.without_autodiff(),
            predicted: self.predicted.without_autodiff(),
            flux: self.flux.without_autodiff(),
        })
    }
}

impl Adaptor<AccuracyInput> for SurveyOutput {
    fn adapt(&self) -> AccuracyInput {
        AccuracyInput::new(self.logits.clone(), self.classes.clone())
    }
}

impl Adaptor<LossInput> for SurveyOutput {
    fn adapt(&self) -> LossInput {
        LossInput::new(self.loss.clone())
    }
}

impl TrainStep for Net {
    type Input = StampBatch;
    type Output = SurveyOutput;

    fn step(&self, batch: StampBatch) -> TrainOutput<SurveyOutput> {
        let out = self.output(batch);
        TrainOutput::new(self, out.loss.backward(), out)
    }
}

impl InferenceStep for Net {
    type Input = StampBatch;
    type Output = SurveyOutput;

    fn step(&self, batch: StampBatch) -> SurveyOutput {
        self.output(batch)
    }
}

struct Args {
    out: PathBuf,
    epochs: usize,
    seed: u64,
}

fn args() -> Result<Args, String> {
    let mut a = Args { out: PathBuf::from("target/torchfits-learner"), epochs: 3, seed: 7 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => a.out = PathBuf::from(value()?),
            "--epochs" => a.epochs = value()?.parse().map_err(|e| format!("--epochs: {e}"))?,
            "--seed" => a.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            _ => return Err(format!("unknown argument {flag:?}\nusage: learner [--out DIR] [--epochs 3] [--seed 7]")),
        }
    }
    Ok(a)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("learner: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let a = args()?;
    std::fs::create_dir_all(&a.out)?;
    let (catalog, images) = synthetic::survey(&a.out, a.seed, true)?;
    corrupt_middle_tiles(&images[3])?;
    let ds = CatalogCutoutDataset::builder(&catalog, &images)
        .hdu(1usize)
        .label("LABEL")
        .targets(&["FLUX"])
        .size(32)
        .on_error(OnError::Substitute { seed: a.seed })
        .build()?;
    let ds = Arc::new(ds);
    // a grouped split: sources in one HEALPix cell (~1.7 arcmin at depth 11) all on one side, so
    // that neighbours on the sky never leak from training into validation
    let (train_set, valid_set) = ds.split_by(GroupBy::Cell { depth: 11 }, 0.8, a.seed)?;
    let (train, valid) = (train_set.indices.clone(), valid_set.indices.clone());
    let device = Device::flex();

    // on the loader's device, in this order: NaN pixels to 0 (with a flag channel), an arcsinh
    // stretch; random symmetries for training only
    let prepare = || StampBatcher::new().transform(NanFill(0.0)).transform(Asinh(3.0));
    let batcher = prepare().transform(Symmetries(a.seed));
    // the model's input, as the dataset and the transforms report it: the image, its edge flag,
    // its NaN flag
    let input = batcher.channels(&ds.channels()).len();
    let epochs = [batcher.epoch(), ds.epoch()];
    let train_loader = DataLoaderBuilder::new(batcher)
        .batch_size(64)
        .shuffle(a.seed)
        .num_workers(2)
        .set_device(device.clone().autodiff())
        .build(train_set);
    let train_loader = EpochLoader::new(train_loader, &epochs);
    let valid_loader =
        DataLoaderBuilder::new(prepare()).batch_size(256).num_workers(2).set_device(device.clone()).build(valid_set);

    let artifacts = a.out.join("learner");
    let result = SupervisedTraining::new(&artifacts, train_loader, valid_loader.clone())
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .with_default_checkpointers()
        .renderer(Box::new(ProgressBars::default()))
        .num_epochs(a.epochs)
        .summary()
        .launch(Learner::new(Net::new(input, 32, &device.clone().autodiff()), AdamConfig::new().init(), 1e-3));
    if let Some(e) = result.error {
        return Err(format!("training stopped: {e}").into());
    }

    let (accuracy, mae) = evaluate(&result.model, valid_loader.iter().map(|b| b.map_err(|e| e.to_string())))?;
    let mean_mae = mean_predictor_mae(&ds, &train, &valid)?;
    let report = ds.failures().report();
    for f in &report.files {
        println!("bad file: {} ({} items; {})", f.file.display(), f.items, f.first_error);
    }
    println!(
        "learner: {} epochs, accuracy {:.1}%, log10_flux MAE {mae:.4} (mean predictor {mean_mae:.4}), {} items replaced from {} bad files",
        a.epochs,
        100.0 * accuracy,
        report.failed_items,
        report.files.len()
    );
    Ok(())
}

/// The validation accuracy and the flux's mean absolute error in dex (log10 flux).
fn evaluate(model: &Net, batches: impl Iterator<Item = Result<StampBatch, String>>) -> Result<(f64, f64), String> {
    let (mut right, mut abs_error, mut n) = (0usize, 0f64, 0usize);
    for batch in batches {
        let batch = batch?;
        let out = model.output(batch);
        let classes = out.classes.into_data().convert::<i64>().try_into_vec::<i64>().map_err(|e| format!("{e:?}"))?;
        let guesses =
            out.logits.argmax(1).into_data().convert::<i64>().try_into_vec::<i64>().map_err(|e| format!("{e:?}"))?;
        let predicted =
            out.predicted.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| format!("{e:?}"))?;
        let truth = out.flux.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| format!("{e:?}"))?;
        right += classes.iter().zip(&guesses).filter(|(c, g)| c == g).count();
        abs_error += predicted.iter().zip(&truth).map(|(p, t)| f64::from((p - t).abs() * LOG_FLUX_SCALE)).sum::<f64>();
        n += classes.len();
    }
    let n = n.max(1) as f64;
    Ok((right as f64 / n, abs_error / n))
}

/// The validation MAE (dex) of predicting the training stamps' mean log10 flux for every stamp.
fn mean_predictor_mae(ds: &CatalogCutoutDataset, train: &[usize], valid: &[usize]) -> Result<f64, String> {
    let rows = |items: &[usize]| -> Vec<usize> { items.iter().filter_map(|&i| ds.row(i)).collect() };
    let side = ds.side_columns().ok_or("no side columns")?;
    let SideValues::Float(flux) = side.get("FLUX").ok_or("no FLUX column")? else {
        return Err("FLUX is not a float column".into());
    };
    let log_flux = |rows: Vec<usize>| -> Vec<f64> { rows.into_iter().map(|r| flux[r].log10()).collect() };
    let train = log_flux(rows(train));
    let mean = train.iter().sum::<f64>() / train.len().max(1) as f64;
    let valid = log_flux(rows(valid));
    Ok(valid.iter().map(|v| (v - mean).abs()).sum::<f64>() / valid.len().max(1) as f64)
}

/// Overwrites the middle third of the compressed tiles of HDU 1 with 0xFF bytes: the headers
/// still read (the dataset builds), the stamps on those tiles fail to decode when read.
fn corrupt_middle_tiles(path: &Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut bytes = std::fs::read(path)?;
    let mut at = 0;
    let mut header_ends = Vec::new();
    let mut cards = std::collections::HashMap::new();
    while header_ends.len() < 2 {
        let card = bytes.get(at..at + 80).ok_or("no second header")?;
        let card = String::from_utf8_lossy(card).to_string();
        at += 80;
        if header_ends.len() == 1 && card.as_bytes().get(8) == Some(&b'=') {
            cards.insert(card[..8].trim().to_string(), card[10..30].trim().to_string());
        }
        if card.starts_with("END ") {
            at = at.div_ceil(2880) * 2880;
            header_ends.push(at);
        }
    }
    let get = |k: &str| -> Result<usize, String> {
        cards.get(k).and_then(|v| v.parse().ok()).ok_or(format!("no {k} in the compressed image's header"))
    };
    let heap = header_ends[1] + get("NAXIS1")? * get("NAXIS2")?;
    let length = get("PCOUNT")?;
    bytes[heap + length / 3..heap + 2 * length / 3].fill(0xff);
    std::fs::write(path, bytes)?;
    Ok(())
}
