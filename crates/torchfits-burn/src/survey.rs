//! Multi-band stamps over a survey plan: one item per placed position, each band's stamp cut
//! from its own image at the position's pixel in that image's WCS, resampled so that the
//! position falls on the same stamp pixel in every band.

// Indexing: windows are cut from buffers sized to them, at offsets inside them.
#![allow(clippy::indexing_slicing)]

use std::sync::Arc;

use arrow_array::ArrayRef;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use torchfits_core::{BufferPool, Error, ErrorKind, PooledBuffer, Result};

use crate::columns::{SideColumns, SideValues};
use crate::cutout::{StampSpec, check_size};
use crate::fingerprint::Fnv;
use crate::groups::{GroupBy, cell_keys, column_keys};
use crate::plan::{Placement, SurveyPlan, first_image, first_images};
use crate::planes::{PlaneSet, WindowOut};
use crate::reading::{DatasetBuilder, FitsDataset, Items, ItemsSpec, ReadOptions, Reader};
use crate::roles::{Channel, ChannelRole};
use crate::stamp::Stamp;
use crate::stream::{ShardIndex, StampLayout, StreamItems};

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
/// let stamp = ds.get(0).expect("a stamp"); // r's 12 x 12 pixels; its flags where any is set
/// assert_eq!((ds.len(), stamp.channels, stamp.flag_channels), (2, 1, 1));
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
    planes: PlaneSet,
    /// Where each band's files start in the dataset's numbering of images ([`Stamp::image`]).
    first_image: Vec<usize>,
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
        DatasetBuilder::with_spec(SurveySpec { plan, size: 32, subpixel: true }).cutting_stamps().urls(urls).hdu(hdu)
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

    /// The planes of every stamp, as a batch holds them: each band's science planes in the
    /// plan's order ([`DatasetBuilder::channel`]; default the plan's HDU), then each band's flag
    /// (1.0 where the band has no pixel), then each band's masks, then its weights.
    pub fn channels(&self) -> Vec<Channel> {
        let (mut science, mut flags, mut masks, mut weights) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (band, _) in self.plan.bands() {
            let (s, m, w) = self.planes.channels(Some(band));
            flags.extend(s.first().map(|c| Channel::of(ChannelRole::Flag, band, &c.hdu)));
            science.extend(s);
            masks.extend(m);
            weights.extend(w);
        }
        science.into_iter().chain(flags).chain(masks).chain(weights).collect()
    }

    /// The image files, in the numbering of [`Stamp::image`]: the files of the plan's bands,
    /// band after band in the plan's order.
    pub fn image_paths(&self) -> impl Iterator<Item = &std::path::Path> {
        self.plan.bands().flat_map(|(_, files)| files.iter().map(|p| p.as_path()))
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
        let (science, masks, weights) = self.planes.counts();
        let plane = s * s;
        let pool = reader.pool();
        let mut pixels = pool.get::<f32>(bands * science * plane)?;
        let mut mask = (masks > 0).then(|| pool.get::<i64>(bands * masks * plane)).transpose()?;
        let mut weight = (weights > 0).then(|| pool.get::<f32>(bands * weights * plane)).transpose()?;
        let mut flags: Option<PooledBuffer<f32>> = None;
        let mut origin = (f64::NAN, f64::NAN);
        let mut image = 0;
        for (b, placement) in item.placements.iter().enumerate() {
            let out = WindowOut {
                science: &mut pixels[b * science * plane..(b + 1) * science * plane],
                masks: mask.as_deref_mut().map_or(&mut [], |m| &mut m[b * masks * plane..(b + 1) * masks * plane]),
                weights: weight
                    .as_deref_mut()
                    .map_or(&mut [], |w| &mut w[b * weights * plane..(b + 1) * weights * plane]),
            };
            match placement {
                Some(p) => {
                    let (flag, o) = self.band_stamp(reader, b, p, out)?;
                    if let Some(flag) = flag {
                        flag_plane(&mut flags, pool, b, plane, bands)?.copy_from_slice(&flag);
                    }
                    if origin.0.is_nan() {
                        (origin, image) = (o, self.first_image[b] + p.image);
                    }
                }
                None => {
                    // the band lacks the position: no pixel, all flagged
                    out.science.fill(0.0);
                    out.masks.fill(0);
                    out.weights.fill(0.0);
                    flag_plane(&mut flags, pool, b, plane, bands)?.fill(1.0);
                }
            }
        }
        let mut stamp = Stamp {
            pixels: Arc::new(pixels),
            channels: bands * science,
            flags: flags.map(Arc::new),
            flag_channels: bands,
            height: s,
            width: s,
            label: None,
            image,
            origin,
            index,
            masks: mask.map(Arc::new),
            weights: weight.map(Arc::new),
            weight_roles: Arc::from([]),
            row: 0,
            side: None,
        };
        self.annotate(&mut stamp)?;
        Ok(stamp)
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

    /// Band `b`'s planes of the stamp at placement `p` into `out`: its flag plane where any
    /// pixel is off the image, and the image position of the stamp's first pixel.
    fn band_stamp(&self, reader: &Reader, b: usize, p: &Placement, out: WindowOut<'_>) -> Result<BandStamp> {
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
            let flag = self.planes.cut_into(reader, path, [x0, y0], [s, s], out)?;
            return Ok((flag, (x0 as f64, y0 as f64)));
        }
        // the stamp's pixel (i, j) samples the image at (fx + i, fy + j): bilinear between the
        // window's pixels (x0 + i, x0 + i + 1) with weights (1 - tx, tx)
        let (x0, y0) = (fx.floor(), fy.floor());
        let w = s + 1;
        let (science, masks, weights) = self.planes.counts();
        let pool = reader.pool();
        let in_file = |e: Error| e.in_file(path);
        let mut around = pool.get::<f32>(science * w * w).map_err(in_file)?;
        let mut around_masks = pool.get::<i64>(masks * w * w).map_err(in_file)?;
        let mut around_weights = pool.get::<f32>(weights * w * w).map_err(in_file)?;
        let window = WindowOut { science: &mut around, masks: &mut around_masks, weights: &mut around_weights };
        let outside = self.planes.cut_into(reader, path, [x0 as i64, y0 as i64], [w, w], window)?;
        let bilinear = Bilinear::new(s, ((fx - x0) as f32, (fy - y0) as f32), outside.as_deref());
        for (from, to) in around.chunks_exact(w * w).zip(out.science.chunks_exact_mut(s * s)) {
            bilinear.values(from, to);
        }
        for (from, to) in around_masks.chunks_exact(w * w).zip(out.masks.chunks_exact_mut(s * s)) {
            bilinear.bits(from, to);
        }
        let roles = self.planes.weight_roles();
        for ((from, to), role) in
            around_weights.chunks_exact(w * w).zip(out.weights.chunks_exact_mut(s * s)).zip(roles.iter())
        {
            bilinear.weights(from, to, *role);
        }
        let flag = match outside {
            Some(_) => {
                let mut flag = pool.get::<f32>(s * s).map_err(in_file)?;
                bilinear.flags(&mut flag);
                Some(flag)
            }
            None => None,
        };
        Ok((flag, (fx, fy)))
    }
}

/// A band's flag plane, where it has one, and the image position of its stamp's first pixel.
type BandStamp = (Option<PooledBuffer<f32>>, (f64, f64));

/// The error for an item the plan does not have.
fn missing_item(i: usize) -> Error {
    Error::new(ErrorKind::Parameter, format!("the plan has no item {i}"))
}

/// Flag plane `b` of an item's `bands` flag planes, made (all 0) on first use: most stamps lie
/// wholly on their images and carry none.
fn flag_plane<'a>(
    flags: &'a mut Option<PooledBuffer<f32>>,
    pool: &BufferPool,
    b: usize,
    plane: usize,
    bands: usize,
) -> Result<&'a mut [f32]> {
    if flags.is_none() {
        let mut all = pool.get::<f32>(bands * plane)?;
        all.fill(0.0);
        *flags = Some(all);
    }
    Ok(flags.as_deref_mut().and_then(|f| f.get_mut(b * plane..(b + 1) * plane)).unwrap_or_default())
}

/// Resampling an `(s + 1)`-pixel square window at a sub-pixel offset `(tx, ty)` into an
/// `s`-pixel stamp: each stamp pixel from the four window pixels around it, with the bilinear
/// weights; a stamp pixel is off the image where any window pixel with a weight is.
struct Bilinear<'a> {
    s: usize,
    weights: [f32; 4],
    outside: Option<&'a [f32]>,
}

impl<'a> Bilinear<'a> {
    fn new(s: usize, (tx, ty): (f32, f32), outside: Option<&'a [f32]>) -> Self {
        let weights = [(1.0 - tx) * (1.0 - ty), tx * (1.0 - ty), (1.0 - tx) * ty, tx * ty];
        Bilinear { s, weights, outside }
    }

    /// The window offsets of the four pixels around stamp pixel (i, j) that have a weight, with
    /// the weight; and whether any of them is off the image.
    fn corners(&self, i: usize, j: usize) -> ([(usize, f32); 4], usize, bool) {
        let w = self.s + 1;
        let offsets = [j * w + i, j * w + i + 1, (j + 1) * w + i, (j + 1) * w + i + 1];
        let mut out = [(0, 0.0); 4];
        let mut n = 0;
        let mut off = false;
        for (&at, &weight) in offsets.iter().zip(&self.weights) {
            if weight > 0.0 {
                out[n] = (at, weight);
                n += 1;
                off |= self.outside.is_some_and(|o| o[at] != 0.0);
            }
        }
        (out, n, off)
    }

    /// Each stamp pixel of `to` from `from`, by `pixel` of its weighted corners (0 off the image).
    fn each<T: Copy + Default>(&self, to: &mut [T], pixel: impl Fn(&[(usize, f32)]) -> T) {
        let s = self.s;
        for j in 0..s {
            for i in 0..s {
                let (corners, n, off) = self.corners(i, j);
                to[j * s + i] = if off { T::default() } else { pixel(&corners[..n]) };
            }
        }
    }

    /// Science pixels: the weighted sum.
    fn values(&self, from: &[f32], to: &mut [f32]) {
        self.each(to, |c| c.iter().map(|&(at, w)| w * from[at]).sum());
    }

    /// Integer flags: every bit of any corner with a weight (a flagged pixel taints what it
    /// contributes to).
    fn bits(&self, from: &[i64], to: &mut [i64]) {
        self.each(to, |c| c.iter().fold(0, |bits, &(at, _)| bits | from[at]));
    }

    /// Weights of the weighted sum: a variance is `sum w^2 var`, an inverse variance its
    /// inverse (0, no information, where a corner has none).
    fn weights(&self, from: &[f32], to: &mut [f32], role: ChannelRole) {
        match role {
            ChannelRole::Variance => self.each(to, |c| c.iter().map(|&(at, w)| w * w * from[at]).sum()),
            _ => self.each(to, |c| {
                if c.iter().any(|&(at, _)| from[at] <= 0.0) {
                    return 0.0;
                }
                1.0 / c.iter().map(|&(at, w)| w * w / from[at]).sum::<f32>()
            }),
        }
    }

    /// The stamp's flag plane: 1.0 where a corner with a weight is off the image.
    fn flags(&self, to: &mut [f32]) {
        let s = self.s;
        for j in 0..s {
            for i in 0..s {
                to[j * s + i] = if self.corners(i, j).2 { 1.0 } else { 0.0 };
            }
        }
    }
}

impl StampSpec for SurveySpec {
    fn size_mut(&mut self) -> &mut usize {
        &mut self.size
    }
}

impl SurveyCutoutBuilder {
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
        check_size(self.size)?;
        let label = options.label.as_deref().map(|name| PlanColumn::find(&self.plan, name)).transpose()?;
        let targets = options.targets.iter().map(|name| PlanColumn::find(&self.plan, name)).collect::<Result<_>>()?;
        let planes = PlaneSet::new(options)?;
        let first_image = first_images(self.plan.bands().map(|(_, files)| files.len()));
        let (plan, size, subpixel) = (Arc::new(self.plan), self.size, self.subpixel);
        Ok(SurveyCutouts { plan, size, subpixel, planes, first_image, label, targets })
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

/// A stream's source ([`crate::stream::StampStream`]): one shard per image.
impl StreamItems for SurveyCutouts {
    /// The items grouped by image, as a stream reads them ([`crate::stream`]): a shard is a run
    /// of items whose stamps start from one image (their first band that has the position; the
    /// plan numbers its items image by image, so one shard per image).
    fn shards(&self) -> ShardIndex {
        let mut sizes = Vec::new();
        let mut last = None;
        for (batch, rows) in self.plan.batches().iter().map(|b| (b, b.num_rows())) {
            for r in 0..rows {
                let key = first_image(batch, r, &self.first_image);
                match sizes.last_mut() {
                    Some(n) if key == last => *n += 1,
                    _ => sizes.push(1u64),
                }
                last = key;
            }
        }
        ShardIndex::new(sizes)
    }

    /// Fetches ahead, in a few requests per image, what reading items `items` needs, where the
    /// images are in object storage (nothing for local files): a stream does this once per shard.
    fn prefetch(&self, reader: &Reader, items: std::ops::Range<usize>) -> Result<()> {
        let s = self.size;
        let (centre, w) = ((s as f64 - 1.0) / 2.0, if self.subpixel { s + 1 } else { s });
        // the windows `band_stamp` cuts, per (band, image)
        let mut windows: std::collections::BTreeMap<(usize, usize), Vec<[i64; 2]>> = Default::default();
        for index in items {
            let Some(item) = self.plan.item(index) else { break };
            for (b, p) in item.placements.iter().enumerate() {
                let Some(p) = p else { continue };
                let (fx, fy) = (p.x - centre, p.y - centre);
                let origin = match self.subpixel {
                    true => [fx.floor() as i64, fy.floor() as i64],
                    false => [(fx + 0.5).floor() as i64, (fy + 0.5).floor() as i64],
                };
                windows.entry((b, p.image)).or_default().push(origin);
            }
        }
        for ((b, image), origins) in windows {
            let path = self.plan.bands().nth(b).and_then(|(_, files)| files.get(image));
            if let Some(path) = path {
                self.planes.prefetch(reader, path, &origins, [w, w])?;
            }
        }
        Ok(())
    }

    /// What the stamps' planes depend on: the plan (the fingerprint of its inputs), the stamp
    /// size, the resampling and the planes read.
    fn fingerprint(&self) -> Result<u64> {
        let mut h = Fnv::default();
        h.text("survey stamps");
        h.text(self.plan.fingerprint());
        h.text(&format!("{} {} {:?}", self.size, self.subpixel, self.planes));
        Ok(h.0)
    }

    /// The planes of every stamp.
    fn layout(&self) -> StampLayout {
        let (science, masks, weights) = self.planes.counts();
        let bands = self.plan.bands().count();
        let (height, width) = (self.size, self.size);
        StampLayout {
            channels: bands * science,
            flag_channels: bands,
            masks: bands * masks,
            weights: bands * weights,
            height,
            width,
        }
    }

    /// Adds to a stamp of item `stamp.index` read back from a cache what it carries besides its
    /// planes: the label, the side columns, the weight roles.
    fn annotate(&self, stamp: &mut Stamp) -> Result<()> {
        let located = self.plan.locate(stamp.index);
        stamp.label = match (&self.label, located) {
            (Some(c), Some((batch, i))) => Some(c.label(batch.column(c.index), i)?),
            _ => None,
        };
        stamp.side = match located {
            Some((batch, i)) if !self.targets.is_empty() => Some(Arc::new(self.side(batch, i)?)),
            _ => None,
        };
        let bands = self.plan.bands().count();
        stamp.weight_roles = (0..bands).flat_map(|_| self.planes.weight_roles().to_vec()).collect();
        Ok(())
    }
}
