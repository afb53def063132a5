//! Images (one channel per HDU) as items, whole or cropped.

// Indexing: item indices below the dataset's length (checked by `get`'s caller
// contract and `Subset`), planes cut from a buffer of `channels * h * w`, label offsets from the
// table reader's own string offsets.
#![allow(clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::data::dataset::{Dataset, DatasetError};
use torchfits_core::{
    BufferPool, ColumnValues, Error, ErrorKind, FileCache, HduSelector, OpenOptions, Result, Section,
};

use crate::columns::{SideColumns, SideValues};
use crate::epochs::Epoch;
use crate::failures::{Failures, OnError};
use crate::roles::ChannelRole;
use crate::seeds::draw;
use crate::stamp::Stamp;

/// Which part of each image an item is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Crop {
    /// The whole image (every file's images must then have one shape).
    Full,
    /// `height` x `width` pixels at the centre.
    Centre(usize, usize),
    /// `height` x `width` pixels at a place drawn from `seed`, the epoch ([`ImagingDataset::epoch`])
    /// and the item's index: the same on every run.
    Random {
        /// Rows.
        height: usize,
        /// Columns.
        width: usize,
        /// The seed.
        seed: u64,
    },
}

/// One item per file: the images of `channels` HDUs (science, mask, weight or inverse variance,
/// ...) stacked as channels, whole or cropped, with an optional label from a header keyword or
/// from a side table (file name -> label).
///
/// ```no_run
/// use burn::data::dataset::Dataset;
/// use torchfits_burn::{Crop, ImagingDataset};
///
/// # fn main() -> Result<(), torchfits_core::Error> {
/// let ds = ImagingDataset::glob("survey/*.fits")?
///     .channels(&["SCI", "MASK", "IVAR"])
///     .crop(Crop::Random { height: 64, width: 64, seed: 7 })
///     .label_keyword("CLASS")
///     .build()?;
/// let item = ds.get(0).expect("a readable file"); // [3, 64, 64]
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct ImagingDataset {
    cache: FileCache,
    files: Vec<PathBuf>,
    shapes: Vec<[usize; 2]>,
    labels: Vec<Option<i64>>,
    channels: Vec<HduSelector>,
    roles: Vec<ChannelRole>,
    crop: Crop,
    side: Option<Arc<SideColumns>>,
    pool: BufferPool,
    epoch: Epoch,
    on_error: OnError,
    failures: Failures,
}

/// Options of an [`ImagingDataset`].
#[derive(Debug, Clone)]
pub struct ImagingBuilder {
    files: Vec<PathBuf>,
    channels: Vec<HduSelector>,
    roles: Vec<ChannelRole>,
    crop: Crop,
    keyword: Option<String>,
    table: Option<(PathBuf, String, String)>,
    targets: Option<(PathBuf, String, Vec<String>)>,
    mmap: bool,
    open_files: usize,
    on_error: OnError,
    ignore_index: Option<i64>,
    urls: bool,
}

impl ImagingDataset {
    /// A dataset of `files` (see [`ImagingBuilder`]).
    pub fn builder<P: AsRef<Path>>(files: impl IntoIterator<Item = P>) -> ImagingBuilder {
        ImagingBuilder {
            files: files.into_iter().map(|p| p.as_ref().to_path_buf()).collect(),
            channels: vec![HduSelector::from(0usize)],
            roles: Vec::new(),
            crop: Crop::Full,
            keyword: None,
            table: None,
            targets: None,
            mmap: true,
            open_files: FileCache::DEFAULT_CAPACITY,
            on_error: OnError::Fail,
            ignore_index: None,
            urls: false,
        }
    }

    /// A dataset of the files matching `pattern` (`*` and `?` in the file name, not in the
    /// directories), in name order; an error if none matches. With the `remote` feature the
    /// pattern may be a URL (`s3://bucket/tiles/*.fits`): the prefix is listed once, the dataset
    /// opens the URLs listed ([`ImagingBuilder::urls`]), and every read fetches only its bytes
    /// (see `torchfits_core::remote`).
    pub fn glob(pattern: impl AsRef<Path>) -> Result<ImagingBuilder> {
        let pattern = pattern.as_ref().to_string_lossy();
        let listed_a_bucket = torchfits_core::is_url(&pattern);
        Ok(ImagingDataset::builder(torchfits_core::glob(&pattern)?).urls(listed_a_bucket))
    }

    /// The items that could not be read, and their files (see [`ImagingBuilder::on_error`]).
    pub fn failures(&self) -> &Failures {
        &self.failures
    }

    /// The handle on the epoch random crops (and substitutions) are drawn for.
    pub fn epoch(&self) -> Epoch {
        self.epoch.clone()
    }

    /// Number of items (files).
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there is no file.
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }

    /// The file of item `index`.
    pub fn file(&self, index: usize) -> Option<&Path> {
        self.files.get(index).map(PathBuf::as_path)
    }

    /// The item `index`, or the error reading it (naming the file and the HDU).
    pub fn image(&self, index: usize) -> Result<Stamp> {
        let path = self.files.get(index).ok_or_else(|| {
            Error::new(ErrorKind::Parameter, format!("item {index} of {} does not exist", self.files.len()))
        })?;
        let [ny, nx] = self.shapes[index];
        let (h, w, y0, x0) = match self.crop {
            Crop::Full => (ny, nx, 0, 0),
            Crop::Centre(h, w) => (h, w, (ny - h) / 2, (nx - w) / 2),
            Crop::Random { height, width, seed } => {
                let r = draw(seed, self.epoch.get(), index);
                let y0 = (r % (ny - height + 1) as u64) as usize;
                let x0 = ((r >> 32) % (nx - width + 1) as u64) as usize;
                (height, width, y0, x0)
            }
        };
        let section = Section::new(vec![y0..y0 + h, x0..x0 + w]);
        let role = |k: usize| self.roles.get(k).copied().unwrap_or_default();
        let science: Vec<&HduSelector> = self
            .channels
            .iter()
            .enumerate()
            .filter(|&(k, _)| role(k) == ChannelRole::Science)
            .map(|(_, c)| c)
            .collect();
        let masks: Vec<&HduSelector> =
            self.channels.iter().enumerate().filter(|&(k, _)| role(k) == ChannelRole::Mask).map(|(_, c)| c).collect();
        let weights: Vec<&HduSelector> =
            self.channels.iter().enumerate().filter(|&(k, _)| role(k).is_weight()).map(|(_, c)| c).collect();
        let pixels = self.planes::<f32>(path, &section, &science, h * w)?;
        let masks = (!masks.is_empty()).then(|| self.planes::<i64>(path, &section, &masks, h * w)).transpose()?;
        let weights = (!weights.is_empty()).then(|| self.planes::<f32>(path, &section, &weights, h * w)).transpose()?;
        Ok(Stamp {
            pixels,
            channels: science.len(),
            masks,
            weights,
            weight_roles: self.roles.iter().copied().filter(|r| r.is_weight()).collect(),
            mask_channels: 0,
            height: h,
            width: w,
            label: self.labels[index],
            image: index,
            origin: (x0 as f64, y0 as f64),
            index,
            row: index,
            side: self.side.clone(),
        })
    }

    /// The planes of `hdus` in `section` (`plane` pixels each), one after the other, in a
    /// buffer from the pool.
    fn planes<T: torchfits_core::Pixel>(
        &self,
        path: &Path,
        section: &Section,
        hdus: &[&HduSelector],
        plane: usize,
    ) -> Result<Arc<torchfits_core::PooledBuffer<T>>> {
        let mut buf = self.pool.get::<T>(hdus.len() * plane).map_err(|e| e.in_file(path))?;
        for (k, hdu) in hdus.iter().enumerate() {
            let out = &mut buf[k * plane..(k + 1) * plane];
            self.cache.with(path, |f| f.image((*hdu).clone())?.read_section_into(section, out))?;
        }
        Ok(Arc::new(buf))
    }
}

impl ImagingBuilder {
    /// How many files the dataset keeps open at once (default [`FileCache::DEFAULT_CAPACITY`]):
    /// every loader thread reads through one shared cache of open files.
    pub fn open_files(mut self, n: usize) -> Self {
        self.open_files = n.max(1);
        self
    }

    /// The HDUs stacked as channels, in order (default: the primary HDU alone).
    pub fn channels<S: Into<HduSelector> + Clone>(mut self, hdus: &[S]) -> Self {
        self.channels = hdus.iter().cloned().map(Into::into).collect();
        self
    }

    /// The role of each channel, in the order of [`ImagingBuilder::channels`] (default: every
    /// channel [`ChannelRole::Science`]): mask and weight channels go to the batch's own `masks`
    /// and `weights` tensors, exact and never transformed; at least one channel is science.
    pub fn roles(mut self, roles: &[ChannelRole]) -> Self {
        self.roles = roles.to_vec();
        self
    }

    /// The part of each image an item is (default: [`Crop::Full`]).
    pub fn crop(mut self, crop: Crop) -> Self {
        self.crop = crop;
        self
    }

    /// Labels from an integer header keyword of the first channel's HDU (absent: no label).
    pub fn label_keyword(mut self, keyword: &str) -> Self {
        self.keyword = Some(keyword.to_string());
        self
    }

    /// The label of a file that has none (with [`ImagingBuilder::label_keyword`] or
    /// [`ImagingBuilder::label_table`]): the value a loss ignores (burn's cross-entropy
    /// `ignore_index`). Without it, such a file fails the build (or, with a replacement policy,
    /// is left out): a dataset with labels gives a label with every item.
    pub fn ignore_index(mut self, label: i64) -> Self {
        self.ignore_index = Some(label);
        self
    }

    /// Labels from a table (FITS, Parquet or Arrow) with a string column of file names (the
    /// name, or the whole path as given) and a column of labels (integers, strings as their
    /// codes, or floats that are all whole numbers).
    pub fn label_table(mut self, table: impl AsRef<Path>, file_column: &str, label_column: &str) -> Self {
        self.table = Some((table.as_ref().to_path_buf(), file_column.to_string(), label_column.to_string()));
        self
    }

    /// Targets and features from a table (FITS, Parquet or Arrow) with a string column of file
    /// names (the name, or the whole path as given) and the `columns` (any number, exact:
    /// integers as Int, floats as Float, strings as dictionary codes): every batch has them, in
    /// [`crate::StampBatch::targets`]. A file the table does not name cannot be used (with
    /// [`ImagingBuilder::on_error`] replacing, it is left out and counted).
    ///
    /// ```no_run
    /// use torchfits_burn::ImagingDataset;
    ///
    /// # fn main() -> Result<(), torchfits_core::Error> {
    /// let ds = ImagingDataset::builder(["g1.fits", "g2.fits"])
    ///     .targets_table("galaxies.parquet", "file", &["redshift", "morphology", "objid"])
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn targets_table(mut self, table: impl AsRef<Path>, file_column: &str, columns: &[&str]) -> Self {
        self.targets = Some((
            table.as_ref().to_path_buf(),
            file_column.to_string(),
            columns.iter().map(|c| c.to_string()).collect(),
        ));
        self
    }

    /// What an unreadable file does (default [`OnError::Fail`]): with a replacement policy a
    /// file that cannot be opened or described is left out when the dataset is built, and an
    /// item that cannot be read is replaced by one that can; both are counted in
    /// [`ImagingDataset::failures`].
    pub fn on_error(mut self, policy: OnError) -> Self {
        self.on_error = policy;
        self
    }

    /// Whether the files (and the tables of [`ImagingBuilder::label_table`] and
    /// [`ImagingBuilder::targets_table`]) may be URLs of object storage (`s3://`, `gs://`,
    /// `az://`, `http(s)://`), opened by range requests with the `remote` feature. Off by
    /// default, so that a name never makes the dataset send a request the caller did not ask
    /// for: every name is a path ([`torchfits_core::OpenOptions::urls`]). A glob over a URL
    /// turns it on.
    pub fn urls(mut self, yes: bool) -> Self {
        self.urls = yes;
        self
    }

    /// Whether images are read through a memory map (default true) or with `pread`.
    pub fn mmap(mut self, yes: bool) -> Self {
        self.mmap = yes;
        self
    }

    /// Reads every file's header (shapes, labels) once.
    pub fn build(self) -> Result<ImagingDataset> {
        if self.channels.is_empty() {
            return Err(Error::new(ErrorKind::Parameter, "no channel HDU given"));
        }
        if !self.roles.is_empty() && self.roles.len() != self.channels.len() {
            return Err(Error::new(
                ErrorKind::Parameter,
                format!("{} roles for {} channels", self.roles.len(), self.channels.len()),
            ));
        }
        if !self.roles.is_empty() && !self.roles.contains(&ChannelRole::Science) {
            return Err(Error::new(ErrorKind::Parameter, "no science channel among the roles"));
        }
        let cache = FileCache::new(self.open_files, OpenOptions::new().mmap(self.mmap).urls(self.urls));
        let by_name = match &self.table {
            Some((table, file_col, label_col)) => Some(label_table(table, file_col, label_col, self.urls)?),
            None => None,
        };
        let targets = match &self.targets {
            Some((table, file_col, columns)) => Some(TargetTable::read(table, file_col, columns, self.urls)?),
            None => None,
        };
        let failures = Failures::default();
        let mut files = Vec::with_capacity(self.files.len());
        let mut shapes: Vec<[usize; 2]> = Vec::with_capacity(self.files.len());
        let mut labels = Vec::with_capacity(self.files.len());
        let mut target_rows = Vec::with_capacity(self.files.len());
        for path in &self.files {
            let described = self.describe(&cache, path, by_name.as_ref(), shapes.first()).and_then(|d| {
                let row = targets.as_ref().map(|t| t.row_of(path)).transpose()?;
                Ok((d, row))
            });
            if let Some(((shape, label), row)) = self.on_error.at_build(&failures, path, described)? {
                files.push(path.clone());
                shapes.push(shape);
                labels.push(label);
                target_rows.extend(row);
            }
        }
        let side = targets.map(|t| t.select(&target_rows).map(Arc::new)).transpose()?;
        Ok(ImagingDataset {
            cache,
            files,
            shapes,
            labels,
            channels: self.channels,
            roles: self.roles,
            crop: self.crop,
            side,
            pool: BufferPool::default(),
            epoch: Epoch::default(),
            on_error: self.on_error,
            failures,
        })
    }

    /// One file's shape and label, or why the dataset cannot use it (naming the file).
    fn describe(
        &self,
        cache: &FileCache,
        path: &Path,
        by_name: Option<&std::collections::HashMap<String, i64>>,
        first: Option<&[usize; 2]>,
    ) -> Result<([usize; 2], Option<i64>)> {
        let (shape, label) = cache.with(path, |f| {
            let mut shape: Option<Vec<usize>> = None;
            let mut label = None;
            for (k, hdu) in self.channels.iter().enumerate() {
                let img = f.image(hdu.clone())?;
                let s = img.shape().to_vec();
                if s.len() != 2 {
                    return Err(Error::new(ErrorKind::Unsupported, format!("a 2-D image is needed, not shape {s:?}"))
                        .in_hdu(img.index()));
                }
                if let Some(first) = &shape
                    && first != &s
                {
                    return Err(Error::new(
                        ErrorKind::Parameter,
                        format!("channel {k} has shape {s:?}, channel 0 {first:?}"),
                    )
                    .in_hdu(img.index()));
                }
                if k == 0
                    && let Some(key) = &self.keyword
                {
                    label = img.header().get_i64(key);
                }
                shape = Some(s);
            }
            Ok((shape.unwrap_or_default(), label))
        })?;
        let (ny, nx) = match shape[..] {
            [ny, nx] => (ny, nx),
            _ => (0, 0),
        };
        let fits = match self.crop {
            Crop::Full => true,
            Crop::Centre(h, w) | Crop::Random { height: h, width: w, .. } => h >= 1 && w >= 1 && h <= ny && w <= nx,
        };
        if !fits {
            return Err(Error::new(
                ErrorKind::Parameter,
                format!("the crop {:?} does not fit the image of shape {shape:?}", self.crop),
            )
            .in_file(path));
        }
        if self.crop == Crop::Full
            && let Some(first) = first
            && first != &[ny, nx]
        {
            return Err(Error::new(
                ErrorKind::Parameter,
                format!(
                    "shape {:?} differs from the first file's {first:?}: whole images must share a shape (crop them)",
                    [ny, nx]
                ),
            )
            .in_file(path));
        }
        let label = match by_name {
            Some(map) => {
                let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
                map.get(name).or_else(|| map.get(path.to_string_lossy().as_ref())).copied().or(label)
            }
            None => label,
        };
        let labelled = self.keyword.is_some() || self.table.is_some();
        let label = match (label.or(self.ignore_index), labelled) {
            (None, true) => {
                return Err(Error::new(
                    ErrorKind::Parameter,
                    "the file has no label (set ignore_index to keep files without one)",
                )
                .in_file(path));
            }
            (label, _) => label,
        };
        Ok(([ny, nx], label))
    }
}

impl Dataset<Stamp> for ImagingDataset {
    fn get(&self, index: usize) -> std::result::Result<Stamp, DatasetError> {
        assert!(index < self.files.len(), "Index out of bounds for dataset: {index} >= {}", self.files.len());
        self.image(index).or_else(|e| {
            self.on_error.recover(&self.failures, index, self.files.len(), self.epoch.get(), e, |j| self.image(j))
        })
    }

    fn len(&self) -> usize {
        self.files.len()
    }
}

/// file name -> label, from a table.
fn label_table(
    path: &Path,
    file_col: &str,
    label_col: &str,
    urls: bool,
) -> Result<std::collections::HashMap<String, i64>> {
    let batches = crate::catalog::read_batches(path, &[file_col, label_col], None, urls)?;
    let mut names = Vec::new();
    let mut labels: Option<SideValues> = None;
    for b in &batches {
        let (Some(file_names), Some(batch_labels)) = (b.column(file_col), b.column(label_col)) else {
            return Err(Error::new(
                ErrorKind::Parameter,
                format!("the table has no columns {file_col:?} and {label_col:?}"),
            )
            .in_file(path));
        };
        let ColumnValues::Str { offsets, bytes } = &file_names.values else {
            return Err(
                Error::new(ErrorKind::Parameter, format!("column {file_col:?} is not a string column")).in_file(path)
            );
        };
        names.extend(
            offsets
                .windows(2)
                .map(|w| String::from_utf8_lossy(&bytes[w[0] as usize..w[1] as usize]).trim().to_string()),
        );
        let values = SideValues::from_column(batch_labels).map_err(|e| e.in_file(path))?;
        match &mut labels {
            Some(all) => all.append(values).map_err(|e| e.in_file(path))?,
            None => labels = Some(values),
        }
    }
    let labels = match labels {
        Some(l) => l.as_labels(label_col).map_err(|e| e.in_file(path))?,
        None => Vec::new(),
    };
    Ok(names.into_iter().zip(labels).collect())
}

/// A table of targets keyed by file name.
struct TargetTable {
    rows: std::collections::HashMap<String, usize>,
    columns: Vec<(String, SideValues)>,
}

impl TargetTable {
    fn read(path: &Path, file_col: &str, columns: &[String], urls: bool) -> Result<Self> {
        let mut names: Vec<&str> = vec![file_col];
        names.extend(columns.iter().map(String::as_str));
        let batches = crate::catalog::read_batches(path, &names, None, urls)?;
        let mut files = Vec::new();
        let mut side = SideColumns::new();
        for b in &batches {
            let Some(ColumnValues::Str { offsets, bytes }) = b.column(file_col).map(|c| &c.values) else {
                return Err(Error::new(ErrorKind::Parameter, format!("no string column {file_col:?} of file names"))
                    .in_file(path));
            };
            files.extend(
                offsets
                    .windows(2)
                    .map(|w| String::from_utf8_lossy(&bytes[w[0] as usize..w[1] as usize]).trim().to_string()),
            );
            for name in columns {
                let c = b
                    .column(name)
                    .ok_or_else(|| Error::new(ErrorKind::Parameter, format!("no column {name:?}")).in_file(path))?;
                side.push(name, SideValues::from_column(c).map_err(|e| e.in_file(path))?)
                    .map_err(|e| e.in_file(path))?;
            }
        }
        let rows = files.into_iter().enumerate().map(|(i, f)| (f, i)).collect();
        let columns = columns.iter().filter_map(|n| side.get(n).map(|v| (n.clone(), v.clone()))).collect();
        Ok(Self { rows, columns })
    }

    /// The table's row for the image file `path` (by its name, or its whole path as given).
    fn row_of(&self, path: &Path) -> Result<usize> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        self.rows
            .get(name)
            .or_else(|| self.rows.get(path.to_string_lossy().as_ref()))
            .copied()
            .ok_or_else(|| Error::new(ErrorKind::Parameter, "the targets table has no row for the file").in_file(path))
    }

    /// The columns of `rows`, one row per dataset item.
    fn select(&self, rows: &[usize]) -> Result<SideColumns> {
        let mut side = SideColumns::new();
        for (name, values) in &self.columns {
            side.push(name, values.select(rows))?;
        }
        Ok(side)
    }
}
