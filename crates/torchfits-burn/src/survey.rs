//! Multi-band stamps over a survey plan: one item per placed position, each band's stamp cut
//! from its own image at the position's pixel in that image's WCS, resampled so that the
//! position falls on the same stamp pixel in every band.

// Indexing: windows are cut from buffers sized to them, at offsets inside them.
#![allow(clippy::indexing_slicing)]

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use torchfits_core::{Error, ErrorKind, Result, Section};

use crate::columns::{SideColumns, SideValues};
use crate::groups::{GroupBy, cell_keys, column_keys};
use crate::plan::{Placement, SurveyPlan};
use crate::reading::{DatasetBuilder, FitsDataset, Items, ItemsSpec, ReadOptions, Reader};
use crate::roles::{Channel, ChannelRole};
use crate::stamp::Stamp;

/// One item per position of a [`SurveyPlan`]: a stamp of `size` x `size` pixels per band,
/// stacked as channels (the bands in the plan's order), then one flag channel per band (1.0
/// where the band has no pixel: off its image, or the band lacks the position, whose science
/// channel is then 0). The stamps are resampled (bilinearly, by the position's sub-pixel
/// offset in each band) so that the position lies at the stamp's centre, `((size - 1) / 2,
/// (size - 1) / 2)`, in every band; [`SurveyCutoutBuilder::subpixel`]`(false)` cuts whole
/// pixels instead.
///
/// ```
/// use burn::data::dataset::Dataset;
/// use torchfits_burn::{SurveyCutoutDataset, SurveyPlanner};
///
/// # fn main() -> Result<(), torchfits_core::Error> {
/// // one band here, the sample file's image; a survey names a band's files per band
/// let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
/// let plans = std::env::temp_dir().join("torchfits-doc-plans");
/// let plan = SurveyPlanner::new(sample)
///     .catalog_hdu("CATALOG")
///     .band("r", [sample])
///     .hdu("SCI")
///     .targets(&["flux"])
///     .cache(&plans)
///     .progress(false)
///     .build()?;
/// let ds = SurveyCutoutDataset::builder(plan).size(12).targets(&["flux"]).build()?;
/// let stamp = ds.get(0).expect("a stamp"); // [r, r flags] x 12 x 12
/// assert_eq!((ds.len(), stamp.channels), (2, 2));
/// # Ok(())
/// # }
/// ```
pub type SurveyCutoutDataset = FitsDataset<SurveyCutouts>;

/// The stamps of a [`SurveyCutoutDataset`]: the plan, and how each item is cut from it.
#[derive(Debug)]
pub struct SurveyCutouts {
    plan: Arc<SurveyPlan>,
    size: usize,
    subpixel: bool,
    label: Option<PlanColumn>,
    targets: Vec<PlanColumn>,
}

/// A column of the plan read with each item: its place in the plan's schema and, for strings,
/// the dictionary of the whole plan, so that a string has one code in every batch.
#[derive(Debug)]
struct PlanColumn {
    name: String,
    index: usize,
    dictionary: Option<Arc<[String]>>,
}

/// Options of a [`SurveyCutoutDataset`]: those every dataset has ([`DatasetBuilder`]: the
/// label and targets are columns the plan carries, [`crate::SurveyPlanner::targets`]) and these.
pub type SurveyCutoutBuilder = DatasetBuilder<SurveySpec>;

/// What makes a [`SurveyCutoutDataset`] its own ([`SurveyCutoutBuilder`]).
#[derive(Debug)]
pub struct SurveySpec {
    plan: SurveyPlan,
    size: usize,
    subpixel: bool,
}

impl SurveyCutoutDataset {
    /// A dataset over `plan`, reading the HDU the plan placed its positions on
    /// ([`SurveyPlan::hdu`]) and opening URLs where the plan was made with
    /// [`crate::SurveyPlanner::urls`].
    pub fn builder(plan: SurveyPlan) -> SurveyCutoutBuilder {
        let (urls, hdu) = (plan.urls(), plan.hdu().clone());
        DatasetBuilder::with_spec(SurveySpec { plan, size: 32, subpixel: true }).urls(urls).hdu(hdu)
    }
}

impl SurveyCutouts {
    /// The plan.
    pub fn plan(&self) -> &SurveyPlan {
        &self.plan
    }

    /// The names of the label codes, for a label column of strings (code `k` is `names[k]`).
    pub fn label_names(&self) -> Option<&[String]> {
        self.label.as_ref().and_then(|l| l.dictionary.as_deref())
    }

    /// The planes of every stamp, as a batch holds them: each band's pixels in the plan's
    /// order, then each band's flag (1.0 where the band has no pixel).
    pub fn channels(&self) -> Vec<Channel> {
        let bands = || self.plan.bands().map(|(band, _)| band);
        let science = bands().map(|b| Channel::new(ChannelRole::Science, b));
        science.chain(bands().map(|b| Channel::new(ChannelRole::Flag, b))).collect()
    }
}

impl Items for SurveyCutouts {
    type Item = Stamp;

    /// From the columns the plan carries ([`crate::SurveyPlanner::targets`]); a HEALPix cell
    /// from its `RA` and `DEC` columns (any case), which the planner must then carry too.
    fn group_keys(&self, by: &GroupBy) -> Result<Vec<i64>> {
        match by {
            GroupBy::Column(name) => self.plan_column_keys(name),
            GroupBy::Cell { depth } => {
                let position = |name: &str| -> Result<Vec<f64>> {
                    let schema = self.plan.schema();
                    let spelled = schema.fields().iter().find(|f| f.name().eq_ignore_ascii_case(name));
                    let spelled = spelled.map(|f| f.name().clone()).ok_or_else(|| {
                        Error::new(
                            ErrorKind::Parameter,
                            format!("the plan carries no {name} column for HEALPix cells (SurveyPlanner::targets)"),
                        )
                    })?;
                    self.plan_column_values(&spelled)
                };
                cell_keys(*depth, &position("RA")?, &position("DEC")?)
            }
        }
    }

    fn count(&self) -> usize {
        self.plan.len()
    }

    /// The stamp of item `index`, or the error reading it (naming the file and the HDU).
    fn read(&self, reader: &Reader, index: usize) -> Result<Stamp> {
        let item = self.plan.item(index).ok_or_else(|| {
            Error::new(ErrorKind::Parameter, format!("item {index} of {} does not exist", self.plan.len()))
        })?;
        let (s, bands) = (self.size, item.placements.len());
        let mut buf = reader.pool().get::<f32>(2 * bands * s * s)?;
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
            let o = self.band_stamp(reader, b, p, plane, flag)?;
            if origin.0.is_nan() {
                (origin, image) = (o, p.image);
            }
        }
        let located = self.plan.locate(index);
        let label = match (&self.label, located) {
            (Some(c), Some((batch, i))) => Some(c.label(batch.column(c.index), i)?),
            _ => None,
        };
        let side = match located {
            Some((batch, i)) if !self.targets.is_empty() => Some(Arc::new(self.side(batch, i)?)),
            _ => None,
        };
        Ok(Stamp {
            pixels: Arc::new(buf),
            channels: 2 * bands,
            mask_channels: bands,
            height: s,
            width: s,
            label,
            image,
            origin,
            index,
            masks: None,
            weights: None,
            weight_roles: Arc::new([]),
            row: 0,
            side,
        })
    }
}

impl SurveyCutouts {
    /// One key per item of the plan's column `name`.
    fn plan_column_keys(&self, name: &str) -> Result<Vec<i64>> {
        let column = PlanColumn::find(&self.plan, name)?;
        (0..self.plan.len())
            .map(|i| {
                let (batch, row) = self.plan.locate(i).ok_or_else(|| missing_item(i))?;
                Ok(column_keys(&column.value(batch.column(column.index), row)?).first().copied().unwrap_or(0))
            })
            .collect()
    }

    /// The float values of the plan's column `name`, one per item.
    fn plan_column_values(&self, name: &str) -> Result<Vec<f64>> {
        let column = PlanColumn::find(&self.plan, name)?;
        (0..self.plan.len())
            .map(|i| {
                let (batch, row) = self.plan.locate(i).ok_or_else(|| missing_item(i))?;
                match column.value(batch.column(column.index), row)? {
                    SideValues::Float(v) => v.first().copied().ok_or_else(|| missing_item(i)),
                    SideValues::Int(v) => v.first().map(|&x| x as f64).ok_or_else(|| missing_item(i)),
                    SideValues::Code { .. } => {
                        Err(Error::new(ErrorKind::Parameter, format!("the plan's column {name:?} holds strings")))
                    }
                }
            })
            .collect()
    }

    /// Row `i` of `batch`'s target columns (exact: integers as Int, floats as Float, strings
    /// as codes of the plan's dictionary).
    fn side(&self, batch: &arrow_array::RecordBatch, i: usize) -> Result<SideColumns> {
        let mut side = SideColumns::new();
        for c in &self.targets {
            side.push(&c.name, c.value(batch.column(c.index), i)?)?;
        }
        Ok(side)
    }

    /// Band `b`'s stamp into `plane` and `flag`; its first pixel's position in the image.
    fn band_stamp(
        &self,
        reader: &Reader,
        b: usize,
        p: &Placement,
        plane: &mut [f32],
        flag: &mut [f32],
    ) -> Result<(f64, f64)> {
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
            window(reader, path, [x0, y0], [s, s], plane, flag)?;
            return Ok((x0 as f64, y0 as f64));
        }
        // the stamp's pixel (i, j) samples the image at (fx + i, fy + j): bilinear between the
        // window's pixels (x0 + i, x0 + i + 1) with weights (1 - tx, tx)
        let (x0, y0) = (fx.floor(), fy.floor());
        let (tx, ty) = ((fx - x0) as f32, (fy - y0) as f32);
        let w = s + 1;
        let mut around = reader.pool().get::<f32>(2 * w * w).map_err(|e| e.in_file(path))?;
        let (values, outside) = around.split_at_mut(w * w);
        window(reader, path, [x0 as i64, y0 as i64], [w, w], values, outside)?;
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
}

/// The error for an item the plan does not have.
fn missing_item(i: usize) -> Error {
    Error::new(ErrorKind::Parameter, format!("the plan has no item {i}"))
}

/// The `w` x `h` pixels from (x0, y0) of the image at `path` into `out`, 0 and flagged 1.0 in
/// `outside` where they lie off the image.
fn window(
    reader: &Reader,
    path: &std::path::Path,
    [x0, y0]: [i64; 2],
    [w, h]: [usize; 2],
    out: &mut [f32],
    outside: &mut [f32],
) -> Result<()> {
    // one look-up of the file for the shape and the pixels: each is a stat of the path
    let read = reader.cache().with(path, |f| {
        let image = f.image(reader.hdu().clone())?;
        let &[ny, nx] = image.shape() else {
            return Err(Error::new(ErrorKind::Unsupported, format!("a 2-D image is needed, not {:?}", image.shape())));
        };
        let clip = |a: i64, n: usize| a.clamp(0, n as i64) as usize;
        let (xa, xb) = (clip(x0, nx), clip(x0 + w as i64, nx));
        let (ya, yb) = (clip(y0, ny), clip(y0 + h as i64, ny));
        if (xa as i64, ya as i64, xb - xa, yb - ya) == (x0, y0, w, h) {
            // wholly inside (the usual case): straight into the stamp
            image.read_section_into(&Section::new(vec![ya..yb, xa..xb]), out)?;
            outside.fill(0.0);
            return Ok(None);
        }
        out.fill(0.0);
        outside.fill(1.0);
        if xb <= xa || yb <= ya {
            return Ok(None);
        }
        let mut part = reader.pool().get::<f32>((yb - ya) * (xb - xa))?;
        image.read_section_into(&Section::new(vec![ya..yb, xa..xb]), &mut part)?;
        Ok(Some((part, xa, xb - xa, ya)))
    });
    let Some((part, xa, cw, ya)) = read.map_err(|e| e.in_file(path))? else { return Ok(()) };
    for (r, row) in part.chunks_exact(cw).enumerate() {
        let at = ((ya + r) as i64 - y0) as usize * w + (xa as i64 - x0) as usize;
        out[at..at + cw].copy_from_slice(row);
        outside[at..at + cw].fill(0.0);
    }
    Ok(())
}

impl SurveyCutoutBuilder {
    /// Stamp side in pixels (default 32).
    pub fn size(mut self, size: usize) -> Self {
        self.spec.size = size;
        self
    }

    /// Whether stamps are resampled so the position lies at their centre in every band
    /// (default true), or cut at whole pixels (the position within half a pixel of the centre).
    pub fn subpixel(mut self, yes: bool) -> Self {
        self.spec.subpixel = yes;
        self
    }
}

impl ItemsSpec for SurveySpec {
    type Items = SurveyCutouts;

    /// Finds the label and target columns in the plan (and the dictionary of each string
    /// column, over the whole plan).
    fn build(self, options: &ReadOptions, _: &Reader) -> Result<SurveyCutouts> {
        if self.size == 0 {
            return Err(Error::new(ErrorKind::Parameter, "the stamp size must be at least 1"));
        }
        let label = options.label.as_deref().map(|name| PlanColumn::find(&self.plan, name)).transpose()?;
        let targets = options.targets.iter().map(|name| PlanColumn::find(&self.plan, name)).collect::<Result<_>>()?;
        Ok(SurveyCutouts { plan: Arc::new(self.plan), size: self.size, subpixel: self.subpixel, label, targets })
    }
}

impl PlanColumn {
    /// The plan's column `name` (one [`crate::SurveyPlanner::targets`] carried): integers,
    /// floats or strings (their dictionary read from every batch of the plan, sorted).
    fn find(plan: &SurveyPlan, name: &str) -> Result<PlanColumn> {
        let schema = plan.schema();
        let index = schema.index_of(name).map_err(|_| {
            Error::new(ErrorKind::Parameter, format!("the plan carries no column {name:?} (SurveyPlanner::targets)"))
        })?;
        let dictionary = match schema.field(index).data_type() {
            arrow_schema::DataType::Int64 | arrow_schema::DataType::Float64 => None,
            arrow_schema::DataType::Utf8 => {
                let mut distinct = std::collections::BTreeSet::new();
                for batch in plan.batches() {
                    if let Some(v) = batch.column(index).as_string_opt::<i32>() {
                        distinct.extend(v.iter().map(|s| s.unwrap_or("").trim_end().to_string()));
                    }
                }
                Some(distinct.into_iter().collect::<Vec<_>>().into())
            }
            other => {
                return Err(Error::new(
                    ErrorKind::Parameter,
                    format!("the plan's column {name:?} holds {other}: a label or target is a number or a string"),
                ));
            }
        };
        Ok(PlanColumn { name: name.to_string(), index, dictionary })
    }

    /// Row `i` of `column` (this column of one of the plan's batches), exact.
    fn value(&self, column: &ArrayRef, i: usize) -> Result<SideValues> {
        if let Some(v) = column.as_primitive_opt::<Int64Type>() {
            return Ok(SideValues::Int(vec![v.value(i)]));
        }
        if let Some(v) = column.as_primitive_opt::<Float64Type>() {
            return Ok(SideValues::Float(vec![v.value(i)]));
        }
        match (column.as_string_opt::<i32>(), &self.dictionary) {
            (Some(v), Some(dictionary)) => {
                let s = v.value(i).trim_end();
                let code = dictionary.binary_search_by(|d| d.as_str().cmp(s)).map_err(|_| {
                    Error::new(
                        ErrorKind::Decoding,
                        format!("the plan's column {:?} changed under the dataset", self.name),
                    )
                })?;
                Ok(SideValues::Code { codes: vec![code as i64], dictionary: dictionary.clone() })
            }
            _ => Err(Error::new(ErrorKind::Parameter, format!("the plan's column {:?} is not a target", self.name))),
        }
    }

    /// Row `i` of `column` as a class label: an integer, a float that is a whole number, or a
    /// string's code.
    fn label(&self, column: &ArrayRef, i: usize) -> Result<i64> {
        let labels = self.value(column, i)?.as_labels(&self.name)?;
        labels.first().copied().ok_or_else(|| Error::new(ErrorKind::Decoding, "no label"))
    }
}
