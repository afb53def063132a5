//! Multi-band stamps over a survey plan: one item per placed position, each band's stamp cut
//! from its own image at the position's pixel in that image's WCS, resampled so that the
//! position falls on the same stamp pixel in every band.

// Indexing: windows are cut from buffers sized to them, at offsets inside them.
#![allow(clippy::indexing_slicing)]

use std::sync::Arc;

use arrow_array::Array;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use burn::data::dataset::{Dataset, DatasetError};
use torchfits_core::{BufferPool, Error, ErrorKind, FileCache, HduSelector, OpenOptions, Result, Section};

use crate::columns::{SideColumns, SideValues};
use crate::epochs::Epoch;
use crate::failures::{Failures, OnError};
use crate::plan::{Placement, SurveyPlan};
use crate::stamp::Stamp;

/// One item per position of a [`SurveyPlan`]: a stamp of `size` x `size` pixels per band,
/// stacked as channels (the bands in the plan's order), then one flag channel per band (1.0
/// where the band has no pixel: off its image, or the band lacks the position, whose science
/// channel is then 0). The stamps are resampled (bilinearly, by the position's sub-pixel
/// offset in each band) so that the position lies at the stamp's centre, `((size - 1) / 2,
/// (size - 1) / 2)`, in every band; [`SurveyCutoutBuilder::subpixel`]`(false)` cuts whole
/// pixels instead.
///
/// ```no_run
/// use burn::data::dataset::Dataset;
/// use torchfits_burn::{SurveyCutoutDataset, SurveyPlanner};
///
/// # fn main() -> Result<(), torchfits_core::Error> {
/// let plan = SurveyPlanner::new("catalog.parquet")
///     .band("g", ["g1.fits", "g2.fits"])
///     .band("r", ["r1.fits", "r2.fits"])
///     .targets(&["class"])
///     .build()?;
/// let ds = SurveyCutoutDataset::builder(plan).size(48).label("class").targets(&["class"]).build()?;
/// let stamp = ds.get(0).expect("a stamp"); // [g, r, g flags, r flags] x 48 x 48
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct SurveyCutoutDataset {
    plan: Arc<SurveyPlan>,
    cache: FileCache,
    size: usize,
    hdu: HduSelector,
    subpixel: bool,
    label: Option<usize>,
    targets: Vec<(String, usize)>,
    pool: BufferPool,
    epoch: Epoch,
    on_error: OnError,
    failures: Failures,
}

/// Options of a [`SurveyCutoutDataset`].
#[derive(Debug)]
pub struct SurveyCutoutBuilder {
    plan: SurveyPlan,
    size: usize,
    hdu: HduSelector,
    subpixel: bool,
    label: Option<String>,
    targets: Vec<String>,
    open_files: usize,
    on_error: OnError,
}

impl SurveyCutoutDataset {
    /// A dataset over `plan`.
    pub fn builder(plan: SurveyPlan) -> SurveyCutoutBuilder {
        SurveyCutoutBuilder {
            plan,
            size: 32,
            hdu: HduSelector::Index(0),
            subpixel: true,
            label: None,
            targets: Vec::new(),
            open_files: FileCache::DEFAULT_CAPACITY,
            on_error: OnError::Fail,
        }
    }

    /// The plan.
    pub fn plan(&self) -> &SurveyPlan {
        &self.plan
    }

    /// The stamps that could not be read, and their files.
    pub fn failures(&self) -> &Failures {
        &self.failures
    }

    /// The handle on the epoch substitutions are drawn for ([`OnError::Substitute`]).
    pub fn epoch(&self) -> Epoch {
        self.epoch.clone()
    }

    /// The stamp of item `index`, or the error reading it (naming the file and the HDU).
    pub fn stamp(&self, index: usize) -> Result<Stamp> {
        let item = self.plan.item(index).ok_or_else(|| {
            Error::new(ErrorKind::Parameter, format!("item {index} of {} does not exist", self.plan.len()))
        })?;
        let (s, bands) = (self.size, item.placements.len());
        let mut buf = self.pool.get::<f32>(2 * bands * s * s)?;
        let (science, flags) = buf.split_at_mut(bands * s * s);
        let mut origin = (f64::NAN, f64::NAN);
        let mut image = 0;
        for (b, ((placement, plane), flag)) in
            item.placements.iter().zip(science.chunks_exact_mut(s * s)).zip(flags.chunks_exact_mut(s * s)).enumerate()
        {
            let Some(p) = placement else {
                plane.fill(0.0);
                flag.fill(1.0);
                continue;
            };
            let o = self.band_stamp(b, p, plane, flag)?;
            if origin.0.is_nan() {
                (origin, image) = (o, p.image);
            }
        }
        Ok(Stamp {
            pixels: Arc::new(buf),
            channels: 2 * bands,
            mask_channels: bands,
            height: s,
            width: s,
            label: self.label(index)?,
            image,
            origin,
            index,
            masks: None,
            weights: None,
            weight_roles: Arc::new([]),
            row: 0,
            side: self.side(index)?.map(Arc::new),
        })
    }

    /// Item `index`'s target columns, one row read from the plan (exact: integers as Int,
    /// floats as Float, strings as codes).
    fn side(&self, index: usize) -> Result<Option<SideColumns>> {
        if self.targets.is_empty() {
            return Ok(None);
        }
        let Some((batch, i)) = self.plan.locate(index) else { return Ok(None) };
        let mut side = SideColumns::new();
        for (name, k) in &self.targets {
            let c = batch.column(*k);
            let values = if let Some(v) = c.as_primitive_opt::<Int64Type>() {
                SideValues::Int(vec![v.value(i)])
            } else if let Some(v) = c.as_primitive_opt::<Float64Type>() {
                SideValues::Float(vec![v.value(i)])
            } else if let Some(v) = c.as_string_opt::<i32>() {
                SideValues::Code { codes: vec![0], dictionary: vec![v.value(i).to_string()].into() }
            } else {
                return Err(Error::new(ErrorKind::Parameter, format!("the plan's column {name:?} is not a target")));
            };
            side.push(name, values)?;
        }
        Ok(Some(side))
    }

    /// The label of item `index` from the plan's label column (integers, or floats that are
    /// whole numbers).
    fn label(&self, index: usize) -> Result<Option<i64>> {
        let Some(column) = self.label else { return Ok(None) };
        let Some((batch, i)) = self.plan.locate(index) else { return Ok(None) };
        let c = batch.column(column);
        if let Some(v) = c.as_primitive_opt::<Int64Type>() {
            return Ok(Some(v.value(i)));
        }
        let x = c.as_primitive_opt::<Float64Type>().map(|v| v.value(i)).unwrap_or(f64::NAN);
        if x.fract() != 0.0 || !x.is_finite() {
            return Err(Error::new(ErrorKind::Parameter, format!("the label column holds {x}, not a class label")));
        }
        Ok(Some(x as i64))
    }

    /// Band `b`'s stamp into `plane` and `flag`; its first pixel's position in the image.
    fn band_stamp(&self, b: usize, p: &Placement, plane: &mut [f32], flag: &mut [f32]) -> Result<(f64, f64)> {
        let s = self.size;
        let path = self
            .plan
            .bands()
            .nth(b)
            .and_then(|(_, files)| files.get(p.image))
            .ok_or_else(|| Error::new(ErrorKind::Parameter, format!("band {b} has no image {}", p.image)))?;
        let centre = (s as f64 - 1.0) / 2.0;
        let (fx, fy) = (p.x - centre, p.y - centre);
        if !self.subpixel {
            let (x0, y0) = ((fx + 0.5).floor() as i64, (fy + 0.5).floor() as i64);
            self.window(path, x0, y0, s, s, plane, flag)?;
            return Ok((x0 as f64, y0 as f64));
        }
        // the stamp's pixel (i, j) samples the image at (fx + i, fy + j): bilinear between the
        // window's pixels (x0 + i, x0 + i + 1) with weights (1 - tx, tx)
        let (x0, y0) = (fx.floor(), fy.floor());
        let (tx, ty) = ((fx - x0) as f32, (fy - y0) as f32);
        let w = s + 1;
        let mut window = self.pool.get::<f32>(2 * w * w).map_err(|e| e.in_file(path))?;
        let (values, outside) = window.split_at_mut(w * w);
        self.window(path, x0 as i64, y0 as i64, w, w, values, outside)?;
        for j in 0..s {
            for i in 0..s {
                let at = |di: usize, dj: usize| (j + dj) * w + i + di;
                let weights = [(1.0 - tx) * (1.0 - ty), tx * (1.0 - ty), (1.0 - tx) * ty, tx * ty];
                let corners = [at(0, 0), at(1, 0), at(0, 1), at(1, 1)];
                let mut v = 0.0;
                let mut off = false;
                for (k, &c) in corners.iter().enumerate() {
                    if weights[k] > 0.0 {
                        v += weights[k] * values[c];
                        off |= outside[c] != 0.0;
                    }
                }
                plane[j * s + i] = if off { 0.0 } else { v };
                flag[j * s + i] = if off { 1.0 } else { 0.0 };
            }
        }
        Ok((fx, fy))
    }

    /// The `w` x `h` pixels from (x0, y0) into `out`, 0 and flagged 1.0 in `outside` where they
    /// lie off the image.
    #[allow(clippy::too_many_arguments)] // the window and its two outputs
    fn window(
        &self,
        path: &std::path::Path,
        x0: i64,
        y0: i64,
        w: usize,
        h: usize,
        out: &mut [f32],
        outside: &mut [f32],
    ) -> Result<()> {
        let shape = self.cache.with(path, |f| Ok(f.image(self.hdu.clone())?.shape().to_vec()))?;
        let [ny, nx] = shape[..] else {
            return Err(
                Error::new(ErrorKind::Unsupported, format!("a 2-D image is needed, not {shape:?}")).in_file(path)
            );
        };
        let clip = |a: i64, n: usize| a.clamp(0, n as i64) as usize;
        let (xa, xb) = (clip(x0, nx), clip(x0 + w as i64, nx));
        let (ya, yb) = (clip(y0, ny), clip(y0 + h as i64, ny));
        out.fill(0.0);
        outside.fill(1.0);
        if xb <= xa || yb <= ya {
            return Ok(());
        }
        let cw = xb - xa;
        let mut part = self.pool.get::<f32>((yb - ya) * cw).map_err(|e| e.in_file(path))?;
        let section = Section::new(vec![ya..yb, xa..xb]);
        self.cache.with(path, |f| f.image(self.hdu.clone())?.read_section_into(&section, &mut part))?;
        for (r, row) in part.chunks_exact(cw).enumerate() {
            let at = ((ya + r) as i64 - y0) as usize * w + (xa as i64 - x0) as usize;
            out[at..at + cw].copy_from_slice(row);
            outside[at..at + cw].fill(0.0);
        }
        Ok(())
    }
}

impl SurveyCutoutBuilder {
    /// Stamp side in pixels (default 32).
    pub fn size(mut self, size: usize) -> Self {
        self.size = size;
        self
    }

    /// The image HDU of every file (default: the primary).
    pub fn hdu(mut self, hdu: impl Into<HduSelector>) -> Self {
        self.hdu = hdu.into();
        self
    }

    /// Whether stamps are resampled so the position lies at their centre in every band
    /// (default true), or cut at whole pixels (the position within half a pixel of the centre).
    pub fn subpixel(mut self, yes: bool) -> Self {
        self.subpixel = yes;
        self
    }

    /// A target column of the plan ([`crate::SurveyPlanner::targets`]) as the stamps' label.
    pub fn label(mut self, column: &str) -> Self {
        self.label = Some(column.to_string());
        self
    }

    /// Target columns of the plan ([`crate::SurveyPlanner::targets`]) in every batch
    /// ([`crate::StampBatch::targets`]), read with each stamp: nothing of the plan is held in
    /// memory.
    pub fn targets(mut self, columns: &[&str]) -> Self {
        self.targets = columns.iter().map(|c| c.to_string()).collect();
        self
    }

    /// How many image files stay open at once.
    pub fn open_files(mut self, n: usize) -> Self {
        self.open_files = n.max(1);
        self
    }

    /// What a stamp that cannot be read does (default [`OnError::Fail`]).
    pub fn on_error(mut self, policy: OnError) -> Self {
        self.on_error = policy;
        self
    }

    /// The dataset.
    pub fn build(self) -> Result<SurveyCutoutDataset> {
        if self.size == 0 {
            return Err(Error::new(ErrorKind::Parameter, "the stamp size must be at least 1"));
        }
        let label = match &self.label {
            Some(name) => Some(self.plan.schema().index_of(name).map_err(|_| {
                Error::new(
                    ErrorKind::Parameter,
                    format!("the plan carries no column {name:?} (SurveyPlanner::targets)"),
                )
            })?),
            None => None,
        };
        let schema = self.plan.schema();
        let mut targets = Vec::with_capacity(self.targets.len());
        for name in &self.targets {
            let k = schema.index_of(name).map_err(|_| {
                Error::new(
                    ErrorKind::Parameter,
                    format!("the plan carries no column {name:?} (SurveyPlanner::targets)"),
                )
            })?;
            targets.push((name.clone(), k));
        }
        if let Some(k) = label
            && let Some(b) = self.plan.batches().first()
            && !matches!(b.column(k).data_type(), arrow_schema::DataType::Int64 | arrow_schema::DataType::Float64)
        {
            return Err(Error::new(ErrorKind::Parameter, "a label column must hold numbers"));
        }
        let options = OpenOptions::new().urls(self.plan.urls());
        Ok(SurveyCutoutDataset {
            plan: Arc::new(self.plan),
            cache: FileCache::new(self.open_files, options),
            size: self.size,
            hdu: self.hdu,
            subpixel: self.subpixel,
            label,
            targets,
            pool: BufferPool::default(),
            epoch: Epoch::default(),
            on_error: self.on_error,
            failures: Failures::default(),
        })
    }
}

impl Dataset<Stamp> for SurveyCutoutDataset {
    fn get(&self, index: usize) -> std::result::Result<Stamp, DatasetError> {
        let n = self.plan.len();
        assert!(index < n, "Index out of bounds for dataset: {index} >= {n}");
        self.stamp(index)
            .or_else(|e| self.on_error.recover(&self.failures, index, n, self.epoch.get(), e, |j| self.stamp(j)))
    }

    fn len(&self) -> usize {
        self.plan.len()
    }
}
