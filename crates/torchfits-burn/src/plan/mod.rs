//! Survey-scale placement of catalog positions on images: footprints indexed with HEALPix, the
//! catalog streamed in batches, only each position's candidate images transformed, several
//! bands at once, and the plan written to (and memory-mapped from) an Arrow IPC file keyed by a
//! fingerprint of its inputs.

// Indexing: band and image positions come from the planner's own lists; batch offsets from
// `starts`, which has one entry per batch plus one.
#![allow(clippy::indexing_slicing)]

mod footprint;
mod group;
mod place;
mod store;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float32Type, Int32Type, UInt64Type};
use arrow_array::{
    ArrayRef, Float32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use torchfits_core::{ColumnValues, Error, ErrorKind, HduSelector, OpenOptions, Result, TableBatch};

use crate::failures::{Failures, OnError};
use crate::fingerprint::Fnv;
use footprint::CellIndex;
use group::GroupingWriter;
pub(crate) use group::{first_image, first_images};
use place::{Image, Placed};
use store::{PlanBytes, PlanFile};

/// The plan file format's version: a plan of another version is made again.
const FORMAT: &str = "2";

/// Which images a position that lies on several images of the first band is placed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overlap {
    /// The one where it lies farthest from an edge (ties: the image given first): one item per
    /// position.
    #[default]
    FarthestFromEdge,
    /// Every one: one item per image of the first band that contains the position (the other
    /// bands still take their image farthest from an edge).
    Every,
}

/// Plans a survey: which image of each band every catalog position lies on, and where.
///
/// ```no_run
/// use torchfits_burn::{Overlap, SurveyPlanner};
///
/// # fn main() -> Result<(), torchfits_core::Error> {
/// let g: Vec<String> = (0..10_000).map(|i| format!("g/{i:05}.fits")).collect();
/// let r: Vec<String> = (0..10_000).map(|i| format!("r/{i:05}.fits")).collect();
/// let plan = SurveyPlanner::new("catalog.parquet")
///     .columns("ra", "dec")
///     .band("g", &g)
///     .band("r", &r)
///     .targets(&["redshift", "objid"])
///     .overlap(Overlap::FarthestFromEdge)
///     .cache("target/plans")
///     .build()?; // the second run maps the cached plan
/// let item = plan.item(0).expect("a placed position");
/// println!("row {} on {:?}", item.row, item.placements);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct SurveyPlanner {
    catalog: PathBuf,
    catalog_hdu: Option<String>,
    ra: String,
    dec: String,
    targets: Vec<String>,
    bands: Vec<(String, Vec<PathBuf>)>,
    /// Per band, per image: the field key it shares with other bands' images.
    keys: Vec<Vec<Option<u32>>>,
    hdu: HduSelector,
    overlap: Overlap,
    cache: PathBuf,
    depth: Option<u8>,
    batch_rows: usize,
    threads: usize,
    progress: bool,
    on_error: OnError,
    urls: bool,
    plan_bytes: PlanBytes,
}

/// Where one band of a position lies.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// The image's position in its band's list.
    pub image: usize,
    /// The 0-based pixel (x, y), as the plan stores it: f32, which holds a pixel of a
    /// 4096-pixel image to 2.4e-4 pixel (of a 32768-pixel one to 2e-3).
    pub x: f64,
    /// See `x`.
    pub y: f64,
}

/// One item of a plan: a catalog row and where each band has it (None: the band lacks it).
#[derive(Debug, Clone, PartialEq)]
pub struct PlanItem {
    /// The catalog row.
    pub row: u64,
    /// Per band, in the order the bands were given.
    pub placements: Vec<Option<Placement>>,
}

/// A survey's plan, memory-mapped from its file ([`SurveyPlanner::build`]).
#[derive(Debug)]
pub struct SurveyPlan {
    file: PlanFile,
    bands: Vec<(String, Vec<PathBuf>)>,
    targets: Vec<String>,
    from_cache: bool,
    failures: Failures,
    urls: bool,
    hdu: HduSelector,
}

impl SurveyPlanner {
    /// A planner for the catalog at `catalog` (FITS binary table, Parquet or Arrow IPC), with
    /// positions in its `RA` and `DEC` columns (degrees; names matched without regard to case, so
    /// `ra` and `dec` do) unless [`SurveyPlanner::columns`] says.
    pub fn new(catalog: impl AsRef<Path>) -> Self {
        Self {
            catalog: catalog.as_ref().to_path_buf(),
            catalog_hdu: None,
            ra: "RA".into(),
            dec: "DEC".into(),
            targets: Vec::new(),
            bands: Vec::new(),
            keys: Vec::new(),
            hdu: HduSelector::Index(0),
            overlap: Overlap::default(),
            cache: std::env::temp_dir().join("torchfits-plans"),
            depth: None,
            batch_rows: 1 << 20,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            progress: true,
            on_error: OnError::Fail,
            urls: false,
            plan_bytes: PlanBytes::default(),
        }
    }

    /// The position columns (degrees; default `RA`, `DEC`, in any case).
    pub fn columns(mut self, ra: &str, dec: &str) -> Self {
        (self.ra, self.dec) = (ra.into(), dec.into());
        self
    }

    /// The catalog's HDU, for a FITS catalog (default: its first binary table).
    pub fn catalog_hdu(mut self, hdu: &str) -> Self {
        self.catalog_hdu = Some(hdu.into());
        self
    }

    /// Catalog columns carried into the plan beside each item (integers as Int64, floats as
    /// Float64, strings as strings), so a dataset over the plan needs no catalog in memory.
    pub fn targets(mut self, columns: &[&str]) -> Self {
        self.targets = columns.iter().map(|c| c.to_string()).collect();
        self
    }

    /// The images of a survey of one band.
    pub fn images<P: AsRef<Path>>(self, files: impl IntoIterator<Item = P>) -> Self {
        self.band("", files)
    }

    /// A band and its images (the first band given is the reference of [`Overlap::Every`]).
    pub fn band<P: AsRef<Path>>(mut self, name: &str, files: impl IntoIterator<Item = P>) -> Self {
        let files: Vec<PathBuf> = files.into_iter().map(|p| p.as_ref().to_path_buf()).collect();
        self.keys.push(vec![None; files.len()]);
        self.bands.push((name.to_string(), files));
        self
    }

    /// The bands and their images from a table (FITS, Parquet or Arrow IPC) with a column of
    /// band names, one of files (relative paths from the table's folder) and one of keys (a
    /// field or tile: integers or strings) that the images of one field share across bands.
    /// Bands come in the order they first appear. A position on several images of a band takes
    /// the one with the key of the first band's image where it can, so that a stamp's bands
    /// come from one field.
    ///
    /// ```no_run
    /// use torchfits_burn::SurveyPlanner;
    ///
    /// # fn main() -> Result<(), torchfits_core::Error> {
    /// // survey.parquet: band ("g", "r", ...), file ("g/tile-0001.fits", ...), tile (1, 1, ...)
    /// let plan = SurveyPlanner::new("catalog.parquet").bands_table("survey.parquet", "tile", "band", "file")?.build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn bands_table(mut self, table: impl AsRef<Path>, key: &str, band: &str, file: &str) -> Result<Self> {
        let table = table.as_ref();
        let batches = crate::catalog::read_batches(table, &[key, band, file], None, self.urls)?;
        let folder = table.parent().unwrap_or(Path::new(""));
        let mut keys: Vec<String> = Vec::new();
        for b in &batches {
            let column = |name: &str| {
                b.column(name).ok_or_else(|| {
                    Error::new(ErrorKind::Parameter, format!("the bands table has no column {name:?}")).in_file(table)
                })
            };
            let (k, bd, f) = (column(key)?, column(band)?, column(file)?);
            let text = |c: &torchfits_core::ColumnData, i: usize| -> Result<String> {
                match &c.values {
                    ColumnValues::Str { .. } => {
                        Ok(String::from_utf8_lossy(c.values.str_at(i).unwrap_or_default()).trim().to_string())
                    }
                    other => crate::catalog::numbers(other)
                        .map(|v| v.get(i).map_or(String::new(), |x| x.to_string()))
                        .map_err(|e| e.in_file(table)),
                }
            };
            for i in 0..k.values.len() {
                let (kv, bv, fv) = (text(k, i)?, text(bd, i)?, text(f, i)?);
                let slot = match self.bands.iter().position(|(n, _)| *n == bv) {
                    Some(p) => p,
                    None => {
                        self.bands.push((bv, Vec::new()));
                        self.keys.push(Vec::new());
                        self.bands.len() - 1
                    }
                };
                let id = match keys.iter().position(|x| *x == kv) {
                    Some(p) => p,
                    None => {
                        keys.push(kv);
                        keys.len() - 1
                    }
                };
                self.bands[slot].1.push(folder.join(fv));
                self.keys[slot].push(Some(id as u32));
            }
        }
        Ok(self)
    }

    /// The image HDU of every file (default: the primary).
    pub fn hdu(mut self, hdu: impl Into<HduSelector>) -> Self {
        self.hdu = hdu.into();
        self
    }

    /// What a position on several images of the first band becomes.
    pub fn overlap(mut self, overlap: Overlap) -> Self {
        self.overlap = overlap;
        self
    }

    /// The folder of plan files (default: `torchfits-plans` in the system's temporary folder).
    pub fn cache(mut self, dir: impl AsRef<Path>) -> Self {
        self.cache = dir.as_ref().to_path_buf();
        self
    }

    /// The HEALPix depth of the index (default: cells about a quarter of an image across).
    pub fn depth(mut self, depth: u8) -> Self {
        self.depth = Some(depth.min(footprint::MAX_DEPTH));
        self
    }

    /// Catalog rows per batch (default 2^20): the planner's memory is a few of these.
    pub fn batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    /// Threads (default: every core).
    pub fn threads(mut self, n: usize) -> Self {
        self.threads = n.max(1);
        self
    }

    /// Whether a progress bar shows on a terminal while planning (default true).
    pub fn progress(mut self, yes: bool) -> Self {
        self.progress = yes;
        self
    }

    /// Whether the catalog, the bands table and the images may be URLs of object storage
    /// (`s3://`, `gs://`, `az://`, `http(s)://`), opened by range requests with the `remote`
    /// feature; the plan's datasets open them too. Off by default: every name is a path, so that
    /// a file name in a bands table never makes the planner send a request the caller did not
    /// ask for ([`torchfits_core::OpenOptions::urls`]).
    pub fn urls(mut self, yes: bool) -> Self {
        self.urls = yes;
        self
    }

    /// What an image that cannot be read does (default [`OnError::Fail`]); with a replacement
    /// policy it is left out (no position is placed on it) and counted.
    pub fn on_error(mut self, policy: OnError) -> Self {
        self.on_error = policy;
        self
    }

    /// The plan: mapped from the cache when a plan of the same inputs (the catalog's and every
    /// image's path, size and modification time, and these options) is there, made otherwise.
    pub fn build(self) -> Result<SurveyPlan> {
        if self.bands.is_empty() || self.bands.iter().any(|(_, files)| files.is_empty()) {
            return Err(Error::new(ErrorKind::Parameter, "a plan needs at least one band with images"));
        }
        let fingerprint = self.fingerprint()?;
        // the catalog's name and a hash of its path: the plans of one catalog, whatever its inputs
        let mut location = Fnv::default();
        location.text(&std::path::absolute(&self.catalog).unwrap_or_else(|_| self.catalog.clone()).to_string_lossy());
        let name = self.catalog.file_stem().and_then(|s| s.to_str()).unwrap_or("catalog");
        let stem = format!("{name}-{:08x}", location.0 as u32);
        let path = self.cache.join(format!("{stem}-{fingerprint:016x}.plan.arrow"));
        if path.exists()
            && let Ok(file) = PlanFile::open(&path, self.plan_bytes)
            && file.metadata.get("torchfits.fingerprint") == Some(&format!("{fingerprint:016x}"))
        {
            return Ok(self.into_plan(file, true, Failures::default()));
        }
        std::fs::create_dir_all(&self.cache).map_err(|e| {
            Error::new(ErrorKind::Io, format!("cannot create the plan folder: {e}")).in_file(&self.cache)
        })?;
        let failures = Failures::default();
        self.make(&path, fingerprint, &failures)?;
        self.remove_stale(&stem, &path);
        let file = PlanFile::open(&path, self.plan_bytes)?;
        Ok(self.into_plan(file, false, failures))
    }

    fn into_plan(self, file: PlanFile, from_cache: bool, failures: Failures) -> SurveyPlan {
        SurveyPlan {
            file,
            bands: self.bands,
            targets: self.targets,
            from_cache,
            failures,
            urls: self.urls,
            hdu: self.hdu,
        }
    }

    /// FNV-1a over the options and every input file's path, size and modification time.
    fn fingerprint(&self) -> Result<u64> {
        let mut h = Fnv::default();
        h.text(FORMAT);
        let options = (&self.catalog_hdu, &self.ra, &self.dec, &self.targets, &self.hdu, self.overlap, self.depth);
        h.text(&format!("{options:?}"));
        h.file(&self.catalog, self.urls)?;
        for ((name, files), keys) in self.bands.iter().zip(&self.keys) {
            h.text(name);
            h.text(&files.len().to_string());
            for f in files {
                h.file(f, self.urls)?;
            }
            h.text(&format!("{keys:?}"));
        }
        Ok(h.0)
    }

    /// Removes the other plans of this catalog (the same path) in the cache: their inputs have
    /// changed.
    fn remove_stale(&self, stem: &str, keep: &Path) {
        let Ok(entries) = std::fs::read_dir(&self.cache) else { return };
        for e in entries.flatten() {
            let p = e.path();
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            let ours = name
                .strip_prefix(stem)
                .and_then(|r| r.strip_prefix('-'))
                .is_some_and(|r| r.len() == 16 + ".plan.arrow".len() && r.ends_with(".plan.arrow"));
            if ours && p != keep {
                let _removed = std::fs::remove_file(&p);
                let _removed = std::fs::remove_file(coverage_path(&p));
            }
        }
    }

    /// Makes the plan into `path`: the items placed in catalog order, then grouped by image.
    fn make(&self, path: &Path, fingerprint: u64, failures: &Failures) -> Result<()> {
        let (images, outlines) = self.read_images(failures)?;
        let index = self.index(&outlines)?;
        drop(outlines);
        let sky = write_coverage(&index, &coverage_path(path))?;
        let bands = self.bands.len();
        let mut names = vec![self.ra.as_str(), self.dec.as_str()];
        names.extend(self.targets.iter().map(String::as_str));
        let total = crate::catalog::count_rows(&self.catalog, self.catalog_hdu.as_deref(), self.urls)?;
        let bar = self.bar(total);
        let batches = crate::catalog::stream_batches(
            &self.catalog,
            &names,
            self.catalog_hdu.as_deref(),
            self.batch_rows,
            self.urls,
        )?;
        // three stages at once: the catalog read ahead, placing, the plan written behind (split
        // by ranges of images, to be put in image order once every item is placed)
        let first = first_images(self.bands.iter().map(|(_, files)| files.len()));
        let files = self.bands.iter().map(|(_, files)| files.len()).sum();
        let mut writer = GroupingWriter::new(path, first, files, total.unwrap_or(0));
        let (mut rows, mut items, mut placed_rows) = (0u64, 0u64, 0u64);
        std::thread::scope(|s| -> Result<()> {
            let (batch_tx, batch_rx) = std::sync::mpsc::sync_channel::<Result<TableBatch>>(1);
            let (record_tx, record_rx) = std::sync::mpsc::sync_channel::<RecordBatch>(1);
            s.spawn(move || {
                for b in batches {
                    if batch_tx.send(b).is_err() {
                        break;
                    }
                }
            });
            let writer = &mut writer;
            let written = s.spawn(move || -> Result<()> {
                for record in record_rx {
                    writer.write(&record)?;
                }
                Ok(())
            });
            for batch in batch_rx {
                let batch = batch?;
                let (ra, dec) = (self.numbers(&batch, &self.ra)?, self.numbers(&batch, &self.dec)?);
                let placed = place::place(&images, bands, &index, self.overlap, &ra, &dec, self.threads)?;
                let record = self.record(&batch, &placed, rows)?;
                items += placed.rows.len() as u64;
                placed_rows += count_distinct(&placed.rows);
                rows += ra.len() as u64;
                bar.set_position(rows);
                if record_tx.send(record).is_err() {
                    // the writer stopped: its error is the one to report
                    break;
                }
            }
            drop(record_tx);
            written.join().unwrap_or_else(|_| Err(Error::new(ErrorKind::Io, "the plan writer panicked")))
        })?;
        bar.finish_and_clear();
        let metadata = [
            ("torchfits.fingerprint", format!("{fingerprint:016x}")),
            ("torchfits.format", FORMAT.to_string()),
            ("torchfits.rows", rows.to_string()),
            ("torchfits.items", items.to_string()),
            ("torchfits.placed_rows", placed_rows.to_string()),
            ("torchfits.sky_fraction", sky.to_string()),
        ];
        writer.finish(&metadata, self.schema(&[]))
    }

    fn bar(&self, total: Option<u64>) -> indicatif::ProgressBar {
        if !self.progress {
            return indicatif::ProgressBar::hidden();
        }
        let bar = match total {
            Some(n) => indicatif::ProgressBar::new(n),
            None => indicatif::ProgressBar::new_spinner(),
        };
        let style = indicatif::ProgressStyle::with_template(
            "planning {bar:30} {human_pos}/{human_len} rows ({per_sec}, {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style);
        bar
    }

    /// Every image's shape and WCS (its header only is read), on every core; an image that
    /// cannot be used goes through the error policy.
    #[allow(clippy::type_complexity)] // the images and their outlines, side by side
    fn read_images(&self, failures: &Failures) -> Result<(Vec<Option<Image>>, Vec<Option<footprint::Outline>>)> {
        let files: Vec<(usize, usize, &PathBuf)> = self
            .bands
            .iter()
            .enumerate()
            .flat_map(|(b, (_, files))| files.iter().enumerate().map(move |(k, f)| (b, k, f)))
            .collect();
        let per = files.len().div_ceil(self.threads).max(1);
        let read = |path: &Path| -> ImageRead {
            let f = OpenOptions::new().urls(self.urls).open(path)?;
            let shape = f.image(self.hdu.clone())?.shape().to_vec();
            let [ny, nx] = shape[..] else {
                return Err(
                    Error::new(ErrorKind::Unsupported, format!("a 2-D image is needed, not {shape:?}")).in_file(path)
                );
            };
            let wcs = f.wcs(self.hdu.clone())?.with_threads(1);
            let outline = footprint::outline(&wcs, [ny, nx]).map_err(|e| e.in_file(path))?;
            Ok(([ny, nx], wcs, outline))
        };
        let results: Vec<Vec<ImageRead>> = std::thread::scope(|s| -> Result<Vec<Vec<ImageRead>>> {
            let workers: Vec<_> = files
                .chunks(per)
                .map(|chunk| s.spawn(move || chunk.iter().map(|(_, _, p)| read(p)).collect::<Vec<_>>()))
                .collect();
            place::joined(workers)
        })?;
        let mut images = Vec::with_capacity(files.len());
        let mut outlines = Vec::with_capacity(files.len());
        for ((band, position, path), result) in files.iter().zip(results.into_iter().flatten()) {
            match self.on_error.at_build(failures, path, result)? {
                Some((shape, wcs, outline)) => {
                    let key = self.keys.get(*band).and_then(|k| k.get(*position)).copied().flatten();
                    images.push(Some(Image { band: *band, position: *position, key, shape, wcs }));
                    outlines.push(Some(outline));
                }
                None => {
                    images.push(None);
                    outlines.push(None);
                }
            }
        }
        Ok((images, outlines))
    }

    /// The HEALPix index of the images' footprints.
    fn index(&self, outlines: &[Option<footprint::Outline>]) -> Result<CellIndex> {
        let depth = match self.depth {
            Some(d) => d,
            None => {
                let mut sides: Vec<f64> = outlines.iter().flatten().map(|o| side(&o.vertices)).collect();
                sides.sort_by(f64::total_cmp);
                footprint::depth_for(sides.get(sides.len() / 2).copied().unwrap_or(1.0))
            }
        };
        let per = outlines.len().div_ceil(self.threads).max(1);
        let pairs: Vec<Vec<(u64, u32)>> = std::thread::scope(|s| -> Result<Vec<Vec<(u64, u32)>>> {
            let workers: Vec<_> = outlines
                .chunks(per)
                .enumerate()
                .map(|(k, chunk)| {
                    s.spawn(move || {
                        let mut out = Vec::new();
                        for (j, o) in chunk.iter().enumerate() {
                            if let Some(outline) = o {
                                let image = (k * per + j) as u32;
                                out.extend(footprint::cells(depth, outline).into_iter().map(|c| (c, image)));
                            }
                        }
                        out
                    })
                })
                .collect();
            place::joined(workers)
        })?;
        CellIndex::new(depth, pairs.into_iter().flatten().collect())
    }

    fn numbers(&self, batch: &TableBatch, name: &str) -> Result<Vec<f64>> {
        let c = batch.column(name).ok_or_else(|| {
            Error::new(ErrorKind::Parameter, format!("the catalog has no column {name:?}")).in_file(&self.catalog)
        })?;
        match &c.values {
            ColumnValues::F64(v) => Ok(v.clone()),
            other => crate::catalog::numbers(other).map_err(|e| e.in_file(&self.catalog)),
        }
    }

    /// The plan's schema: the row, each band's image and pixel, the targets as `types`.
    fn schema(&self, types: &[DataType]) -> SchemaRef {
        let mut fields = vec![Field::new("row", DataType::UInt64, false)];
        for (name, _) in &self.bands {
            let suffix = if name.is_empty() { String::new() } else { format!("_{name}") };
            fields.push(Field::new(format!("image{suffix}"), DataType::Int32, false));
            fields.push(Field::new(format!("x{suffix}"), DataType::Float32, false));
            fields.push(Field::new(format!("y{suffix}"), DataType::Float32, false));
        }
        for (name, t) in self.targets.iter().zip(types) {
            fields.push(Field::new(name, t.clone(), false));
        }
        Arc::new(Schema::new(fields))
    }

    /// One batch of the plan file.
    fn record(&self, batch: &TableBatch, placed: &Placed, first_row: u64) -> Result<RecordBatch> {
        let mut columns: Vec<ArrayRef> =
            vec![Arc::new(UInt64Array::from_iter_values(placed.rows.iter().map(|&r| first_row + u64::from(r))))];
        for b in 0..self.bands.len() {
            columns.push(Arc::new(Int32Array::from(placed.image[b].clone())));
            columns.push(Arc::new(Float32Array::from_iter_values(placed.x[b].iter().map(|&v| v as f32))));
            columns.push(Arc::new(Float32Array::from_iter_values(placed.y[b].iter().map(|&v| v as f32))));
        }
        let mut types = Vec::with_capacity(self.targets.len());
        for name in &self.targets {
            let c = batch.column(name).ok_or_else(|| {
                Error::new(ErrorKind::Parameter, format!("the catalog has no column {name:?}")).in_file(&self.catalog)
            })?;
            let array = take(&c.values, &placed.rows).map_err(|e| e.in_file(&self.catalog))?;
            types.push(array.data_type().clone());
            columns.push(array);
        }
        RecordBatch::try_new(self.schema(&types), columns)
            .map_err(|e| Error::new(ErrorKind::Parameter, format!("cannot make the plan's batch: {e}")))
    }
}

/// The coverage MOC of the plan file at `plan`.
fn coverage_path(plan: &Path) -> PathBuf {
    plan.with_extension("moc.fits")
}

/// Writes the images' coverage as a FITS MOC (IVOA MOC 2.0); the fraction of the sky it covers.
fn write_coverage(index: &CellIndex, path: &Path) -> Result<f64> {
    use moc::moc::RangeMOCIntoIterator;
    let moc = index.coverage();
    let fraction = moc.coverage_percentage();
    let io = |e: &dyn std::fmt::Display| {
        Error::new(ErrorKind::Io, format!("cannot write the coverage MOC: {e}")).in_file(path)
    };
    let file = std::fs::File::create(path).map_err(|e| io(&e))?;
    moc::deser::fits::ranges_to_fits_ivoa(moc.into_range_moc_iter(), None, None, std::io::BufWriter::new(file))
        .map_err(|e| io(&e))?;
    Ok(fraction)
}

/// An image's shape, WCS and outline on the sky, or why it cannot be used.
type ImageRead = Result<([usize; 2], torchfits_core::Wcs, footprint::Outline)>;

/// An image's side (radians): its outline's first edge, corner to corner.
fn side(outline: &[(f64, f64)]) -> f64 {
    let n = outline.len() / 4;
    let (a, b) = (outline[0], outline[n.min(outline.len() - 1)]);
    let c = a.1.sin() * b.1.sin() + a.1.cos() * b.1.cos() * (a.0 - b.0).cos();
    c.clamp(-1.0, 1.0).acos()
}

/// The number of distinct values of a sorted list.
fn count_distinct(rows: &[u32]) -> u64 {
    rows.windows(2).filter(|w| w[0] != w[1]).count() as u64 + u64::from(!rows.is_empty())
}

/// The values of a catalog column at `rows`, as an Arrow array.
fn take(values: &ColumnValues, rows: &[u32]) -> Result<ArrayRef> {
    let n = values.len();
    if rows.iter().any(|&r| r as usize >= n) {
        return Err(Error::new(ErrorKind::Parameter, "a target column shorter than the positions"));
    }
    let ints = |f: &dyn Fn(usize) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|&r| f(r as usize))))
    };
    let floats = |f: &dyn Fn(usize) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|&r| f(r as usize))))
    };
    Ok(match values {
        ColumnValues::Bool(v) => ints(&|r| i64::from(v[r])),
        ColumnValues::U8(v) => ints(&|r| i64::from(v[r])),
        ColumnValues::I16(v) => ints(&|r| i64::from(v[r])),
        ColumnValues::U16(v) => ints(&|r| i64::from(v[r])),
        ColumnValues::I32(v) => ints(&|r| i64::from(v[r])),
        ColumnValues::U32(v) => ints(&|r| i64::from(v[r])),
        ColumnValues::I64(v) => ints(&|r| v[r]),
        // 64-bit unsigned IDs keep their bits
        ColumnValues::U64(v) => ints(&|r| v[r] as i64),
        ColumnValues::F32(v) => floats(&|r| f64::from(v[r])),
        ColumnValues::F64(v) => floats(&|r| v[r]),
        ColumnValues::Str { .. } => Arc::new(StringArray::from_iter_values(
            rows.iter().map(|&r| String::from_utf8_lossy(values.str_at(r as usize).unwrap_or_default()).into_owned()),
        )),
        _ => return Err(Error::new(ErrorKind::Unsupported, "a complex or array column cannot be a plan target")),
    })
}

impl SurveyPlan {
    /// Whether the plan's names may be URLs ([`SurveyPlanner::urls`]): its datasets open them so.
    pub fn urls(&self) -> bool {
        self.urls
    }

    /// The image HDU the positions were placed on ([`SurveyPlanner::hdu`]): its datasets cut
    /// their stamps from it.
    pub fn hdu(&self) -> &HduSelector {
        &self.hdu
    }

    /// Items (placed positions; several per position with [`Overlap::Every`]).
    pub fn len(&self) -> usize {
        self.file.starts.last().copied().unwrap_or(0)
    }

    /// Whether no position was placed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Catalog rows read.
    pub fn rows(&self) -> u64 {
        self.meta("torchfits.rows")
    }

    /// Catalog rows placed on at least one image.
    pub fn placed_rows(&self) -> u64 {
        self.meta("torchfits.placed_rows")
    }

    /// The fingerprint of the plan's inputs (its catalog's and images' paths, sizes and times,
    /// and the planner's options), as its file records it.
    pub(crate) fn fingerprint(&self) -> &str {
        self.file.metadata.get("torchfits.fingerprint").map_or("", String::as_str)
    }

    fn meta(&self, key: &str) -> u64 {
        self.file.metadata.get(key).and_then(|v| v.parse().ok()).unwrap_or(0)
    }

    /// Whether the plan was mapped from the cache (not made by this build).
    pub fn from_cache(&self) -> bool {
        self.from_cache
    }

    /// The plan file.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// The bands: their names and images, in order.
    pub fn bands(&self) -> impl Iterator<Item = (&str, &[PathBuf])> {
        self.bands.iter().map(|(n, f)| (n.as_str(), f.as_slice()))
    }

    /// The target columns carried in the plan.
    pub fn targets(&self) -> &[String] {
        &self.targets
    }

    /// The images left out (with a replacement policy) when the plan was made.
    pub fn failures(&self) -> &Failures {
        &self.failures
    }

    /// The survey's coverage (every HEALPix cell of the index some image touches, the images'
    /// outlines a few pixels wide) as a FITS MOC file (IVOA MOC 2.0, readable by mocpy and
    /// Aladin), written beside the plan.
    pub fn coverage(&self) -> PathBuf {
        coverage_path(&self.file.path)
    }

    /// The fraction of the sky the coverage holds.
    pub fn sky_fraction(&self) -> f64 {
        self.file.metadata.get("torchfits.sky_fraction").and_then(|v| v.parse().ok()).unwrap_or(0.0)
    }

    /// The plan's Arrow batches, mapped (the targets are their last columns).
    pub fn batches(&self) -> &[RecordBatch] {
        &self.file.batches
    }

    /// The plan's schema.
    pub fn schema(&self) -> SchemaRef {
        self.file.schema.clone()
    }

    /// The batch and the row in it of item `index`.
    pub fn locate(&self, index: usize) -> Option<(&RecordBatch, usize)> {
        if index >= self.len() {
            return None;
        }
        let b = self.file.starts.partition_point(|&s| s <= index) - 1;
        Some((&self.file.batches[b], index - self.file.starts[b]))
    }

    /// Item `index`.
    pub fn item(&self, index: usize) -> Option<PlanItem> {
        let (batch, i) = self.locate(index)?;
        let row = batch.column(0).as_primitive_opt::<UInt64Type>()?.value(i);
        let mut placements = Vec::with_capacity(self.bands.len());
        for b in 0..self.bands.len() {
            let image = batch.column(1 + 3 * b).as_primitive_opt::<Int32Type>()?.value(i);
            let x = f64::from(batch.column(2 + 3 * b).as_primitive_opt::<Float32Type>()?.value(i));
            let y = f64::from(batch.column(3 + 3 * b).as_primitive_opt::<Float32Type>()?.value(i));
            placements.push((image >= 0).then_some(Placement { image: image as usize, x, y }));
        }
        Some(PlanItem { row, placements })
    }
}
