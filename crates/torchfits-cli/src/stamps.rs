//! `torchfits stamps`: a survey's stamps decoded ahead of training into a decoded-stamp cache,
//! through the library's own pieces (a `SurveyPlanner`, a `SurveyCutoutDataset` and one epoch of
//! a `StampStream` with its cache), so that a training run with the same options reads them and
//! decodes nothing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use torchfits_burn::burn::data::dataloader::DataLoader;
use torchfits_burn::stream::{ShardedStamps, StampStream};
use torchfits_burn::{StampBatcher, SurveyCutoutDataset, SurveyPlanner};
use torchfits_core::{Error, ErrorKind, HduSelector};

/// What `torchfits stamps` was asked for.
pub struct StampsJob {
    pub catalog: PathBuf,
    pub catalog_hdu: Option<String>,
    /// (band name, its image files).
    pub bands: Vec<(String, Vec<String>)>,
    pub hdu: HduSelector,
    pub size: usize,
    pub whole_pixels: bool,
    pub cache: PathBuf,
    pub max_bytes: u64,
    pub workers: usize,
    pub urls: bool,
}

/// Plans the survey, then reads one epoch through the cache (every stamp it does not hold is
/// decoded and written) with a progress bar; prints where the stamps are.
pub fn run(job: StampsJob) -> Result<(), Error> {
    let mut planner =
        SurveyPlanner::new(&job.catalog).hdu(job.hdu.clone()).urls(job.urls).cache(job.cache.join("plans"));
    if let Some(h) = &job.catalog_hdu {
        planner = planner.catalog_hdu(h);
    }
    for (name, files) in &job.bands {
        planner = planner.band(name, files);
    }
    let plan = planner.build()?;
    let ds = SurveyCutoutDataset::builder(plan).size(job.size).subpixel(!job.whole_pixels).build()?;
    let ds = Arc::new(ds);
    let stream = StampStream::new(ds.clone(), StampBatcher::new()).workers(job.workers).buffer(1);
    let stream = stream.cache(&job.cache, job.max_bytes)?;
    let bar = indicatif::ProgressBar::new(ds.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("stamps {bar:30} {human_pos}/{human_len} ({per_sec}, {eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let started = Instant::now();
    for batch in stream.iter() {
        let batch = batch.map_err(|e| Error::new(ErrorKind::Io, format!("a stamp could not be read: {e}")))?;
        bar.inc(batch.indices.len() as u64);
    }
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let Some(cache) = stream.stamp_cache() else { return Err(Error::new(ErrorKind::Io, "the stream has no cache")) };
    let shards = ShardedStamps::shards(&*ds).shards();
    println!(
        "{} stamps of {}x{} in {} ({} of {shards} shards cached; {seconds:.1} s, {:.0} stamps/s)",
        ds.len(),
        job.size,
        job.size,
        cache.dir().display(),
        cache.cached_shards(),
        ds.len() as f64 / seconds.max(1e-9)
    );
    Ok(())
}
