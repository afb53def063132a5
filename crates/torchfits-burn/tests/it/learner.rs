//! Under burn-train's Learner: each epoch draws new augmentations without a call from the
//! training loop, the same ones on every run with the same seed, and a corrupt file costs its own
//! items and nothing else.

use std::sync::{Arc, Mutex};

use burn::data::dataloader::DataLoaderBuilder;
use burn::data::dataloader::batcher::Batcher;
use burn::module::{Module, Param};
use burn::optim::SgdConfig;
use burn::tensor::{Device, Tensor};
use burn::train::{InferenceStep, Learner, RegressionOutput, SupervisedTraining, TrainOutput, TrainStep};
use torchfits_burn::ChannelRole;
use torchfits_burn::transforms::Symmetries;
use torchfits_burn::{
    CatalogCutoutDataset, Epoch, EpochLoader, ImagingDataset, OnError, Stamp, StampBatch, StampBatcher,
};

use crate::common::{survey, tmpdir};

/// One parameter, fitted to the batch's mean: enough for the Learner to run its loop.
#[derive(Module, Debug)]
struct MeanModel {
    mean: Param<Tensor<1>>,
}

impl MeanModel {
    fn new(device: &Device) -> Self {
        MeanModel { mean: Param::from_tensor(Tensor::zeros([1], device)) }
    }

    fn output(&self, batch: &StampBatch) -> RegressionOutput {
        let [b, c, h, w] = batch.images.dims();
        let target = batch.images.clone().reshape([b, c * h * w]).mean_dim(1);
        let output = self.mean.val().reshape([1, 1]).expand([b, 1]);
        let loss = (output.clone() - target.clone()).powi_scalar(2).mean();
        RegressionOutput::new(loss, output, target)
    }
}

impl TrainStep for MeanModel {
    type Input = StampBatch;
    type Output = RegressionOutput;

    fn step(&self, batch: StampBatch) -> TrainOutput<RegressionOutput> {
        let out = self.output(&batch);
        TrainOutput::new(self, out.loss.backward(), out)
    }
}

impl InferenceStep for MeanModel {
    type Input = StampBatch;
    type Output = RegressionOutput;

    fn step(&self, batch: StampBatch) -> RegressionOutput {
        self.output(&batch)
    }
}

/// What the training loader gave, per batch: the epoch it was made for, then each item's index
/// and first pixel (a symmetry moves it).
type Seen = Arc<Mutex<Vec<(u64, Vec<(usize, f32)>)>>>;

/// A [`StampBatcher`] that records its batches.
#[derive(Clone)]
struct Recording {
    inner: StampBatcher,
    epoch: Epoch,
    seen: Seen,
}

impl Batcher<Stamp, StampBatch> for Recording {
    fn batch(&self, items: Vec<Stamp>, device: &Device) -> StampBatch {
        let batch = self.inner.batch(items, device);
        let [b, c, h, w] = batch.images.dims();
        let firsts = batch.images.clone().reshape([b, c * h * w]).narrow(1, 0, 1).into_data();
        let firsts = firsts.try_to_vec::<f32>().expect("f32");
        let record = batch.indices.iter().copied().zip(firsts).collect();
        self.seen.lock().expect("lock").push((self.epoch.get(), record));
        batch
    }
}

/// Trains `epochs` epochs on `train`, with the loader advancing the batcher's epoch; returns what
/// the training loader gave, epoch by epoch, and whether the Learner reported an error.
fn train<D: burn::data::dataset::Dataset<Stamp> + 'static>(
    train: D,
    valid: D,
    seed: u64,
    epochs: usize,
    workers: usize,
) -> (Vec<Vec<(usize, f32)>>, bool) {
    let device = Device::flex();
    let seen: Seen = Arc::default();
    let batcher = StampBatcher::new().transform(Symmetries(seed));
    let recording = Recording { epoch: batcher.epoch(), inner: batcher.clone(), seen: seen.clone() };
    let loader = DataLoaderBuilder::new(recording).batch_size(3).shuffle(seed).num_workers(workers).build(train);
    let loader = EpochLoader::new(loader, &[batcher.epoch()]);
    let valid = DataLoaderBuilder::new(StampBatcher::new()).batch_size(3).build(valid);
    let dir = tmpdir(&format!("learner-{seed}-{workers}"));
    let result = SupervisedTraining::new(&dir, loader, valid)
        .num_epochs(epochs)
        .with_application_logger(None)
        .launch(Learner::new(MeanModel::new(&device.clone().autodiff()), SgdConfig::new().init(), 1e-3));
    let mut by_epoch = vec![Vec::new(); epochs];
    for (epoch, mut items) in seen.lock().expect("lock").drain(..) {
        by_epoch[epoch as usize].append(&mut items);
    }
    (by_epoch, result.error.is_some())
}

fn cutouts(dir: &std::path::Path) -> CatalogCutoutDataset {
    let (catalog, images, _) = survey(dir);
    CatalogCutoutDataset::builder(&catalog, &images).size(8).build().expect("dataset")
}

#[test]
fn each_epoch_under_the_learner_is_new_and_reproduces_from_the_seed() {
    let dir = tmpdir("learner-epochs");
    let (first, failed) = train(cutouts(&dir), cutouts(&dir), 7, 3, 0);
    assert!(!failed);
    assert_eq!(first.iter().map(Vec::len).collect::<Vec<_>>(), vec![8, 8, 8], "every epoch, every item");
    // item by item, so that a new shuffle alone would not pass: the symmetries changed
    let by_item = |epoch: &Vec<(usize, f32)>| {
        let mut items = epoch.clone();
        items.sort_by_key(|&(index, _)| index);
        items
    };
    assert_ne!(by_item(&first[0]), by_item(&first[1]), "epoch 1 is not epoch 0 again");
    assert_ne!(by_item(&first[1]), by_item(&first[2]));
    let (again, _) = train(cutouts(&dir), cutouts(&dir), 7, 3, 0);
    assert_eq!(first, again, "the same seed, the same epochs");
    let (other, _) = train(cutouts(&dir), cutouts(&dir), 8, 3, 0);
    assert_ne!(first, other, "another seed, other epochs");
}

#[test]
fn a_corrupt_file_under_the_learner_costs_its_own_items() {
    let dir = tmpdir("learner-corrupt");
    let files = crate::failures::images(&dir, 7, 2);
    for workers in [0, 2] {
        let ds = || {
            ImagingDataset::builder(&files)
                .channel(1usize, ChannelRole::Science)
                .on_error(OnError::Skip)
                .build()
                .expect("dataset")
        };
        let train_set = ds();
        let failures = train_set.failures().clone();
        let (seen, failed) = train(train_set, ds(), 3, 2, workers);
        assert!(!failed, "{workers} workers: the Learner ran every epoch");
        for epoch in &seen {
            assert_eq!(epoch.len(), 7, "{workers} workers: each epoch keeps its length");
            assert!(epoch.iter().all(|&(_, v)| v != 2.0), "the corrupt file gives nothing");
        }
        let report = failures.report();
        assert_eq!(report.failed_items, 1);
        assert_eq!(report.files.len(), 1);
        assert_eq!(report.files[0].file, files[2]);
    }
}
