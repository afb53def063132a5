//! The loader cases of `torchfits bench` (a build with the `gpu` feature, which brings
//! torchfits-burn): each dataset's items through burn's `DataLoader` (batches of 64 on Burn's CPU
//! backend, 1 and 2 workers), one pass over every item a run, beside the bare reads of the same
//! pixels (`read_section_into` into one reused buffer on one thread, through a cache of open
//! memory-mapped files, as the datasets read), timed as the case's baseline in the same case.
//!
//! - `loader_catalog_*`: 64x64 stamps of `img_f32_4096.fits` around catalog positions
//!   (`CatalogCutoutDataset`, with its edge-mask plane), the catalog written beside the image
//!   (and the stamps' first pixels, `loader_stamps.fits`, for `benches/loader_peer.py`);
//! - `loader_survey_*`: the same positions as one-band stamps of a survey plan
//!   (`SurveyCutoutDataset`, whole pixels, with its flag plane);
//! - `loader_imaging_*`: random 64x64 crops of the same image (`ImagingDataset`);
//! - `loader_spectra_*`: the rows of a 2000x4000 flux and inverse-variance pair
//!   (`SpectroscopicDataset`), a file the case writes beside the image.
//!
//! The gate compares each case with its own baseline, so a slow machine slows both alike.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use torchfits_burn::burn::data::dataloader::DataLoaderBuilder;
use torchfits_burn::burn::data::dataloader::batcher::Batcher;
use torchfits_burn::burn::data::dataset::Dataset;
use torchfits_burn::burn::tensor::Device;
use torchfits_burn::{
    CatalogCutoutDataset, ChannelRole, Crop, ImagingDataset, SpectroscopicDataset, SpectrumBatcher, StampBatcher,
    SurveyCutoutDataset, SurveyPlanner,
};
use torchfits_core::table::{ColumnData, ColumnValues, TableBatch};
use torchfits_core::{Error, ErrorKind, FileCache, FitsFile, Header, OpenOptions, Section, WriteOptions};

use super::{Case, Way};

/// Items a pass of the stamp cases reads.
const ITEMS: usize = 20_000;
/// Stamp side, pixels.
const SIDE: usize = 64;
/// The spectra file's rows and their length.
const SPECTRA: (usize, usize) = (2000, 4000);
/// The name of the baseline way of every loader case: reported as the case's `raw`.
pub const BARE: &str = "bare read_section_into";

/// The loader cases, when the standard image is in `dir`.
pub fn cases(dir: &Path) -> Vec<Case> {
    let image = dir.join("img_f32_4096.fits");
    if !image.exists() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (k, workers) in [1, 2].into_iter().enumerate() {
        for (what, ids) in CASES {
            let ways = match what {
                "spectra" => spectra_ways(dir.join("spectra_2000x4000.fits"), workers),
                _ => {
                    let (image, dir) = (image.clone(), dir.to_path_buf());
                    stamp_ways(move || stamp_setup(what, &image, &dir), workers)
                }
            };
            out.push(Case { id: ids[k], ways });
        }
    }
    out
}

/// Each dataset of the loader cases and its cases' ids, with 1 and 2 workers.
const CASES: [(&str, [&str; 2]); 4] = [
    ("catalog", ["loader_catalog_1w", "loader_catalog_2w"]),
    ("survey", ["loader_survey_1w", "loader_survey_2w"]),
    ("imaging", ["loader_imaging_1w", "loader_imaging_2w"]),
    ("spectra", ["loader_spectra_1w", "loader_spectra_2w"]),
];

/// A stamp dataset and the origins (x, y) of its items' pixels in the image.
struct StampSetup {
    image: PathBuf,
    dataset: Arc<dyn Dataset<torchfits_burn::Stamp>>,
    origins: Vec<(usize, usize)>,
}

/// Builds the dataset of case `what` over `image` (writing its catalog into `dir`).
fn stamp_setup(what: &str, image: &Path, dir: &Path) -> Result<StampSetup, Error> {
    let dataset: Arc<dyn Dataset<torchfits_burn::Stamp>> = match what {
        "catalog" => Arc::new(CatalogCutoutDataset::builder(catalog(image, dir)?, [image]).size(SIDE).build()?),
        "survey" => {
            let plan = SurveyPlanner::new(catalog(image, dir)?)
                .band("image", [image])
                .cache(dir.join("plans"))
                .progress(false)
                .build()?;
            Arc::new(SurveyCutoutDataset::builder(plan).size(SIDE).subpixel(false).build()?)
        }
        _ => Arc::new(
            ImagingDataset::builder(vec![image; ITEMS])
                .crop(Crop::Random { height: SIDE, width: SIDE, seed: 1 })
                .build()?,
        ),
    };
    if dataset.len() != ITEMS {
        let n = dataset.len();
        return Err(Error::new(ErrorKind::Parameter, format!("{what}: {n} items of {ITEMS} are on the image")));
    }
    let origins = (0..ITEMS)
        .map(|i| {
            let s = dataset.get(i).map_err(|e| Error::new(ErrorKind::Parameter, format!("{what}: item {i}: {e}")))?;
            Ok((s.origin.0 as usize, s.origin.1 as usize))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    if what == "catalog" {
        write_origins(&origins, &dir.join("loader_stamps.fits"))?;
    }
    Ok(StampSetup { image: image.to_path_buf(), dataset, origins })
}

/// The catalog of the stamp cases, written into `dir`: `ITEMS` positions whose stamps lie wholly
/// inside `image`, spread over it (a fixed pseudo-random sequence).
fn catalog(image: &Path, dir: &Path) -> Result<PathBuf, Error> {
    let wcs = FitsFile::open(image)?.wcs(0)?;
    let mut state = 12345u64;
    let mut next = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (state >> 33) as f64 / (1u64 << 31) as f64
    };
    let pix: Vec<f64> = (0..ITEMS).flat_map(|_| [40.0 + next() * 4000.0, 40.0 + next() * 4000.0]).collect();
    let mut world = vec![0.0; pix.len()];
    wcs.pixel_to_world(&pix, &mut world)?;
    let path = dir.join("loader_catalog.fits");
    let t = TableBatch::new(vec![
        ColumnData::new("RA", ColumnValues::F64(world.iter().step_by(2).copied().collect())),
        ColumnData::new("DEC", ColumnValues::F64(world.iter().skip(1).step_by(2).copied().collect())),
    ])?;
    let mut w = WriteOptions::new().overwrite(true).create(&path)?;
    w.write_table(&t, "CATALOG", None)?;
    w.finish()?;
    Ok(path)
}

/// The catalog stamps' first pixels (0-based `X`, `Y`) as a table, for peers to read the same
/// stamps (`benches/loader_peer.py`).
fn write_origins(origins: &[(usize, usize)], path: &Path) -> Result<(), Error> {
    let column = |name: &str, f: fn(&(usize, usize)) -> usize| {
        ColumnData::new(name, ColumnValues::I64(origins.iter().map(|o| f(o) as i64).collect()))
    };
    let t = TableBatch::new(vec![column("X", |o| o.0), column("Y", |o| o.1)])?;
    let mut w = WriteOptions::new().overwrite(true).create(path)?;
    w.write_table(&t, "STAMPS", None)?;
    w.finish().map(drop)
}

/// The loader way and the bare way of a stamp case, sharing one setup made on the first run.
fn stamp_ways(setup: impl FnOnce() -> Result<StampSetup, Error> + 'static, workers: usize) -> Vec<Way> {
    let shared = Shared::new(setup);
    let bare = {
        let shared = shared.clone();
        let cache = FileCache::new(4, OpenOptions::new().mmap(true));
        let mut buf = vec![0f32; SIDE * SIDE];
        move || -> Result<(), Error> {
            shared.with(|s| {
                for &(x, y) in &s.origins {
                    let section = Section::new(vec![y..y + SIDE, x..x + SIDE]);
                    cache.open(&s.image)?.image(0)?.read_section_into(&section, &mut buf)?;
                }
                Ok(())
            })
        }
    };
    let device = Device::flex();
    let loader = move || shared.with(|s| pass(s.dataset.clone(), StampBatcher::new(), workers, &device));
    vec![(BARE, Box::new(bare)), (loader_way(workers), Box::new(loader))]
}

/// The loader way and the bare way of the spectra case: both read every row of `FLUX` and `IVAR`
/// of `path` (written on the first run when it is not there).
fn spectra_ways(path: PathBuf, workers: usize) -> Vec<Way> {
    let (rows, len) = SPECTRA;
    let file = path.clone();
    let shared = Shared::new(move || -> Result<Arc<SpectroscopicDataset>, Error> {
        if !file.exists() {
            write_spectra(&file)?;
        }
        Ok(Arc::new(
            SpectroscopicDataset::image_rows([&file])
                .channel("FLUX", ChannelRole::Science)
                .channel("IVAR", ChannelRole::InverseVariance)
                .build()?,
        ))
    });
    let bare = {
        let shared = shared.clone();
        let cache = FileCache::new(4, OpenOptions::new().mmap(true));
        let mut buf = vec![0f32; len];
        move || -> Result<(), Error> {
            shared.with(|_| {
                for row in 0..rows {
                    let section = Section::new(vec![row..row + 1, 0..len]);
                    for hdu in ["FLUX", "IVAR"] {
                        cache.open(&path)?.image(hdu)?.read_section_into(&section, &mut buf)?;
                    }
                }
                Ok(())
            })
        }
    };
    let device = Device::flex();
    let loader = move || shared.with(|ds| pass(ds.clone(), SpectrumBatcher::new(), workers, &device));
    vec![(BARE, Box::new(bare)), (loader_way(workers), Box::new(loader))]
}

/// Two image HDUs, `FLUX` and `IVAR`, of `SPECTRA` rows.
fn write_spectra(path: &Path) -> Result<(), Error> {
    let (rows, len) = SPECTRA;
    let flux: Vec<f32> = (0..rows * len).map(|i| (i % 977) as f32).collect();
    let mut w = WriteOptions::new().overwrite(true).create(path)?;
    for name in ["FLUX", "IVAR"] {
        let mut h = Header::new();
        h.set("EXTNAME", name, None)?;
        w.image(&flux, &[rows, len]).header(&h).write()?;
    }
    w.finish().map(drop)
}

fn loader_way(workers: usize) -> &'static str {
    if workers == 1 { "DataLoader 1 worker" } else { "DataLoader 2 workers" }
}

/// One pass over every item of `dataset` through burn's `DataLoader`, batches of 64.
fn pass<I, O, D, B>(dataset: D, batcher: B, workers: usize, device: &Device) -> Result<(), Error>
where
    I: Send + Sync + Clone + std::fmt::Debug + 'static,
    O: Send + Clone + std::fmt::Debug + 'static,
    D: Dataset<I> + 'static,
    B: Batcher<I, O> + Clone + 'static,
{
    let items = dataset.len();
    let loader =
        DataLoaderBuilder::new(batcher).batch_size(64).num_workers(workers).set_device(device.clone()).build(dataset);
    let mut batches = 0;
    for batch in loader.iter() {
        let batch = batch.map_err(|e| Error::new(ErrorKind::Io, format!("the loader's batch {batches}: {e}")))?;
        std::hint::black_box(batch);
        batches += 1;
    }
    if batches != items.div_ceil(64) {
        return Err(Error::new(ErrorKind::Io, format!("the loader gave {batches} batches of {items} items")));
    }
    Ok(())
}

/// How a case's shared value is made.
type SetUp<T> = Box<dyn FnOnce() -> Result<T, Error>>;

/// A value both ways of a case use, made by the first run of either (outside the timed runs:
/// `time` runs each way once first).
struct Shared<T> {
    make: std::rc::Rc<std::cell::RefCell<Option<SetUp<T>>>>,
    value: std::rc::Rc<std::cell::OnceCell<T>>,
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        Shared { make: self.make.clone(), value: self.value.clone() }
    }
}

impl<T> Shared<T> {
    fn new(make: impl FnOnce() -> Result<T, Error> + 'static) -> Self {
        Shared { make: std::rc::Rc::new(std::cell::RefCell::new(Some(Box::new(make)))), value: Default::default() }
    }

    fn with<R>(&self, f: impl FnOnce(&T) -> Result<R, Error>) -> Result<R, Error> {
        if self.value.get().is_none() {
            let make = self.make.borrow_mut().take().ok_or_else(|| {
                Error::new(ErrorKind::Io, "the loader case's set-up failed on an earlier run".to_string())
            })?;
            let _ = self.value.set(make()?);
        }
        let value = self.value.get().ok_or_else(|| Error::new(ErrorKind::Io, "no set-up".to_string()))?;
        f(value)
    }
}
