//! burn-train's Learner progress as one bar per epoch and split, shared by the examples that
//! train under it.

use burn::train::logger::{EvaluationProgressLogger, TrainingProgressLogger};
use burn::train::metric::MetricDefinition;
use burn::train::renderer::{
    EvaluationName, MetricState, MetricsRenderer, MetricsRendererEvaluation, MetricsRendererTraining,
};

/// The Learner's progress as one bar per epoch and split (on a terminal; nothing otherwise), and
/// its summary table at the end: burn-train's plain renderer prints a line per batch.
#[derive(Default)]
pub struct ProgressBars {
    epoch: usize,
    epochs: usize,
    bar: Option<indicatif::ProgressBar>,
}

impl TrainingProgressLogger for ProgressBars {
    fn start(&mut self, total_epochs: usize, starting_epoch: usize, _: Option<usize>, _: Option<&str>) {
        (self.epochs, self.epoch) = (total_epochs, starting_epoch);
    }

    fn update_epoch(&mut self, epoch: usize) {
        self.epoch = epoch;
    }

    fn start_split(&mut self, split: &str, total_items: usize) {
        let bar = indicatif::ProgressBar::new(total_items as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{msg} {bar:40} {pos}/{len} stamps [{elapsed}]")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar.set_message(format!("epoch {}/{} {split}", self.epoch.max(1), self.epochs));
        self.bar = Some(bar);
    }

    fn update_split(&mut self, items_processed: usize) {
        if let Some(bar) = &self.bar {
            bar.set_position(items_processed as u64);
        }
    }

    fn end_split(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }

    fn end(&mut self) {}

    fn log_event_training(&mut self, _: String) {}
}

impl EvaluationProgressLogger for ProgressBars {
    fn start_global_progress(&mut self, _: usize) {}
    fn start_test(&mut self, _: &str, _: usize) {}
    fn update_test_progress(&mut self, _: usize) {}
    fn end_test(&mut self) {}
    fn end_global_progress(&mut self) {}
    fn log_event_evaluation(&mut self, _: String) {}
}

impl MetricsRendererTraining for ProgressBars {
    fn update_train(&mut self, _: MetricState) {}
    fn update_valid(&mut self, _: MetricState) {}
}

impl MetricsRendererEvaluation for ProgressBars {
    fn update_test(&mut self, _: EvaluationName, _: MetricState) {}
}

impl MetricsRenderer for ProgressBars {
    fn manual_close(&mut self) {}
    fn register_metric(&mut self, _: MetricDefinition) {}
}
