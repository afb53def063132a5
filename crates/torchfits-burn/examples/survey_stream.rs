//! burn-train's Learner on a survey read as a stream: stamps of a `SurveyPlan` through a
//! `StampStream` (shards per image, a shuffle buffer, a decoded-stamp cache), from a bucket where
//! one is there, trained for some epochs, stopped, and resumed from the Learner's checkpoint.
//!
//! ```sh
//! python3 scripts/remote_servers.py -- cargo run --release -p torchfits-burn --example survey_stream
//! cargo run --release -p torchfits-burn --example survey_stream -- --epochs 3 --out target/torchfits-survey-stream
//! ```
//!
//! It writes the demo's synthetic survey (8 GZIP tile-compressed images of 1024x1024 with a TAN
//! WCS, point sources of class 0 and galaxies of class 1, and their catalog) into `--out` and,
//! where `scripts/remote_servers.py` runs the object servers, puts the images in their S3 bucket
//! (moto) and reads them from there. Fields 0-5 are planned for training, fields 6-7 for
//! validation (held-out fields of the sky). The Learner trains for all epochs but the last, and
//! stops; a second Learner resumes from its checkpoint and trains the last epoch, its stream
//! starting at that epoch (`EpochLoader::starting_at`), so it reads the batches an uninterrupted
//! run would have. The stream's first epoch fills a decoded-stamp cache in `--out`; the others
//! read it. The last line, in the format of the `learner` example:
//!
//! `survey_stream: <E> epochs (resumed at <K>), accuracy <A>%, <S> requests to S3, <R> items replaced from <F> bad files`

mod progress_bars;
mod stamp_cnn;
mod synthetic;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::data::dataloader::{DataLoader, DataLoaderBuilder};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::nn::{Linear, LinearConfig};
use burn::optim::AdamConfig;
use burn::tensor::{Device, Int, Tensor};
use burn::train::metric::{AccuracyInput, AccuracyMetric, Adaptor, ItemLazy, LossInput, LossMetric};
use burn::train::{InferenceStep, Learner, SupervisedTraining, TrainOutput, TrainStep};
use progress_bars::ProgressBars;
use stamp_cnn::{FEATURES, Trunk};
use torchfits_burn::stream::StampStream;
use torchfits_burn::transforms::{Asinh, NanFill, Symmetries};
use torchfits_burn::{EpochLoader, StampBatch, StampBatcher, SurveyCutoutDataset, SurveyPlanner};

const SIZE: usize = 32;

/// The examples' convolutional trunk and a class head.
#[derive(Module, Debug)]
struct Net {
    trunk: Trunk,
    head: Linear,
}

impl Net {
    fn new(channels: usize, device: &Device) -> Net {
        Net { trunk: Trunk::new(channels, SIZE, device), head: LinearConfig::new(FEATURES, 2).init(device) }
    }

    fn output(&self, batch: StampBatch) -> ClassOutput {
        let device = batch.images.device();
        let classes = batch.labels.clone().unwrap_or_else(|| Tensor::zeros([0], &device));
        let logits = self.head.forward(self.trunk.forward(batch.images));
        let loss = CrossEntropyLossConfig::new().init(&device).forward(logits.clone(), classes.clone());
        ClassOutput { loss, logits, classes }
    }
}

/// One step's output: the loss, and what the metrics read.
struct ClassOutput {
    loss: Tensor<1>,
    logits: Tensor<2>,
    classes: Tensor<1, Int>,
}

impl ItemLazy for ClassOutput {
    fn sync(self) -> Result<Self, burn::tensor::ExecutionError> {
        self.loss.device().flush()?;
        Ok(ClassOutput {
            loss: self.loss.without_autodiff(),
            logits: self.logits.without_autodiff(),
            classes: self.classes.without_autodiff(),
        })
    }
}

impl Adaptor<AccuracyInput> for ClassOutput {
    fn adapt(&self) -> AccuracyInput {
        AccuracyInput::new(self.logits.clone(), self.classes.clone())
    }
}

impl Adaptor<LossInput> for ClassOutput {
    fn adapt(&self) -> LossInput {
        LossInput::new(self.loss.clone())
    }
}

impl TrainStep for Net {
    type Input = StampBatch;
    type Output = ClassOutput;

    fn step(&self, batch: StampBatch) -> TrainOutput<ClassOutput> {
        let out = self.output(batch);
        TrainOutput::new(self, out.loss.backward(), out)
    }
}

impl InferenceStep for Net {
    type Input = StampBatch;
    type Output = ClassOutput;

    fn step(&self, batch: StampBatch) -> ClassOutput {
        self.output(batch)
    }
}

struct Args {
    out: PathBuf,
    epochs: usize,
    seed: u64,
}

fn args() -> Result<Args, String> {
    let mut a = Args { out: PathBuf::from("target/torchfits-survey-stream"), epochs: 3, seed: 7 };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--out" => a.out = PathBuf::from(value()?),
            "--epochs" => a.epochs = value()?.parse().map_err(|e| format!("--epochs: {e}"))?,
            "--seed" => a.seed = value()?.parse().map_err(|e| format!("--seed: {e}"))?,
            _ => {
                return Err(format!(
                    "unknown argument {flag:?}\nusage: survey_stream [--out DIR] [--epochs 3] [--seed 7]"
                ));
            }
        }
    }
    if a.epochs < 2 {
        return Err("--epochs: at least 2 (the run stops after all but the last, then resumes)".into());
    }
    Ok(a)
}

fn main() {
    if let Err(e) = run() {
        eprintln!("survey_stream: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let a = args()?;
    std::fs::create_dir_all(&a.out)?;
    let (catalog, images) = synthetic::survey(&a.out, a.seed, true)?;
    let (names, urls) = in_bucket(&images)?;
    let plan = |fields: &[String], name: &str| {
        SurveyPlanner::new(&catalog)
            .band("r", fields)
            .hdu(1usize)
            .targets(&["LABEL"])
            .urls(urls)
            .cache(a.out.join("plans").join(name))
            .progress(false)
            .build()
    };
    let dataset = |fields: &[String], name: &str| -> Result<Arc<SurveyCutoutDataset>, torchfits_core::Error> {
        let ds = SurveyCutoutDataset::builder(plan(fields, name)?).size(SIZE).label("LABEL").build()?;
        Ok(Arc::new(ds))
    };
    let (train_set, valid_set) = (dataset(&names[..6], "train")?, dataset(&names[6..], "valid")?);
    let prepare = || StampBatcher::new().transform(NanFill(0.0)).transform(Asinh(3.0));
    let batcher = prepare().transform(Symmetries(a.seed));
    let input = batcher.channels(&train_set.channels()).len();
    let device = Device::flex();
    let stream = StampStream::new(train_set.clone(), batcher.clone())
        .batch_size(64)
        .buffer(2048)
        .workers(2)
        .seed(a.seed)
        .device(device.clone().autodiff())
        .cache(a.out.join("stamps"), 1 << 30)?;
    let valid: Arc<dyn DataLoader<StampBatch>> =
        DataLoaderBuilder::new(prepare()).batch_size(256).num_workers(2).set_device(device.clone()).build(valid_set);
    let handles = [stream.epoch(), batcher.epoch(), train_set.epoch()];
    let artifacts = a.out.join("learner");
    let _ = std::fs::remove_dir_all(&artifacts);
    let requests = remote_requests();
    // all epochs but the last, then stop
    let stop = a.epochs - 1;
    let train = |start: usize| EpochLoader::starting_at(Arc::new(stream.clone()), &handles, start as u64);
    let mut training = SupervisedTraining::new(&artifacts, train(0), valid.clone());
    training = training.metrics((AccuracyMetric::new(), LossMetric::new())).with_default_checkpointers();
    let first = training.renderer(Box::new(ProgressBars::default())).num_epochs(stop).summary().launch(Learner::new(
        Net::new(input, &device.clone().autodiff()),
        AdamConfig::new().init(),
        1e-3,
    ));
    if let Some(e) = first.error {
        return Err(format!("training stopped: {e}").into());
    }
    // a new process would do the same: a Learner from the checkpoint of epoch `stop`, and the
    // stream's epoch (with the symmetries' and the substitutions') starting there
    let resumed = SupervisedTraining::new(&artifacts, train(stop), valid.clone())
        .metrics((AccuracyMetric::new(), LossMetric::new()))
        .with_default_checkpointers()
        .renderer(Box::new(ProgressBars::default()))
        .num_epochs(a.epochs)
        .checkpoint(stop)
        .summary()
        .launch(Learner::new(Net::new(input, &device.clone().autodiff()), AdamConfig::new().init(), 1e-3));
    if let Some(e) = resumed.error {
        return Err(format!("the resumed training stopped: {e}").into());
    }
    let accuracy = accuracy(&resumed.model, valid.iter().map(|b| b.map_err(|e| e.to_string())))?;
    let report = train_set.failures().report();
    println!(
        "survey_stream: {} epochs (resumed at {stop}), accuracy {:.1}%, {} requests to S3, {} items replaced from {} bad files",
        a.epochs,
        100.0 * accuracy,
        remote_requests() - requests,
        report.failed_items,
        report.files.len()
    );
    Ok(())
}

/// The validation accuracy.
fn accuracy(model: &Net, batches: impl Iterator<Item = Result<StampBatch, String>>) -> Result<f64, String> {
    let (mut right, mut n) = (0usize, 0usize);
    for batch in batches {
        let out = model.output(batch?);
        let classes = out.classes.into_data().convert::<i64>().try_into_vec::<i64>().map_err(|e| format!("{e:?}"))?;
        let guesses =
            out.logits.argmax(1).into_data().convert::<i64>().try_into_vec::<i64>().map_err(|e| format!("{e:?}"))?;
        right += classes.iter().zip(&guesses).filter(|(c, g)| c == g).count();
        n += classes.len();
    }
    Ok(right as f64 / n.max(1) as f64)
}

/// Range requests sent to object storage so far.
fn remote_requests() -> u64 {
    torchfits_core::remote::stats().requests
}

/// The images' names as the datasets open them: URLs in the S3 bucket of
/// `scripts/remote_servers.py` where it runs (the images uploaded there), the local paths
/// otherwise; and whether they are URLs.
fn in_bucket(images: &[PathBuf]) -> Result<(Vec<String>, bool), Box<dyn std::error::Error>> {
    let Some(bucket) = std::env::var("TORCHFITS_TEST_S3_BUCKET").ok().filter(|b| !b.is_empty()) else {
        println!("no S3 bucket (run under python3 scripts/remote_servers.py): reading the local files");
        return Ok((images.iter().map(|p| p.to_string_lossy().into_owned()).collect(), false));
    };
    let store = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(&bucket).build()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let mut urls = Vec::new();
    for path in images {
        let name = format!("survey-stream/{}", file_name(path));
        let key = object_store::path::Path::from(name.as_str());
        rt.block_on(object_store::ObjectStoreExt::put(&store, &key, std::fs::read(path)?.into()))?;
        urls.push(format!("s3://{bucket}/{name}"));
    }
    println!("reading the images from s3://{bucket}/survey-stream/");
    Ok((urls, true))
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| "image.fits".to_string(), |n| n.to_string_lossy().into_owned())
}
