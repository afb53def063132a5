//! Images (one channel per HDU) as items, whole or cropped.

// Indexing: item indices below the dataset's length (checked by `get`'s caller contract and
// burn's `SelectionDataset`), planes cut from a buffer of `channels * h * w`, label offsets from
// the table reader's own string offsets.
#![allow(clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use torchfits_core::{ColumnValues, Error, ErrorKind, Result};

use crate::columns::{SideColumns, SideValues};
use crate::groups::{GroupBy, keys_of_rows, read_column_keys};
use crate::planes::{PlaneSet, WindowOut};
use crate::reading::{DatasetBuilder, FitsDataset, Items, ItemsSpec, ReadOptions, Reader};
use crate::roles::Channel;
use crate::seeds::draw;
use crate::stamp::Stamp;

/// Which part of each image an item is: the pixels read from the file (what happens to them
/// afterwards, on the device, is the batcher's transforms').
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

/// One item per file: the images of its channel HDUs (science, mask, weight or inverse
/// variance, [`DatasetBuilder::channel`]) stacked as channels, whole or cropped, with an
/// optional label from a header keyword or from a side table keyed by file name
/// ([`ImagingBuilder::table`], then [`DatasetBuilder::label`] and [`DatasetBuilder::targets`] name
/// its columns).
///
/// ```
/// use burn::data::dataset::Dataset;
/// use torchfits_burn::{ChannelRole, Crop, ImagingDataset};
///
/// # fn main() -> Result<(), torchfits_core::Error> {
/// let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
/// let ds = ImagingDataset::builder([sample, sample])
///     .channel("SCI", ChannelRole::Science)
///     .channel("DQ", ChannelRole::Mask)
///     .crop(Crop::Random { height: 32, width: 32, seed: 7 })
///     .build()?;
/// let item = ds.get(1).expect("a readable file"); // SCI as pixels, DQ exact beside them
/// assert_eq!((item.channels, item.height, item.width), (1, 32, 32));
/// assert_eq!(item.masks.as_ref().map(|m| m.len()), Some(32 * 32));
/// # Ok(())
/// # }
/// ```
pub type ImagingDataset = FitsDataset<ImageFiles>;

/// The items of an [`ImagingDataset`]: its files, their shapes and labels, and what is read
/// of each.
#[derive(Debug)]
pub struct ImageFiles {
    files: Vec<PathBuf>,
    shapes: Vec<[usize; 2]>,
    labels: Vec<Option<i64>>,
    planes: PlaneSet,
    crop: Crop,
    side: Option<Arc<SideColumns>>,
    label_names: Option<Arc<[String]>>,
    /// The table of file names (its path, whether it may be a URL) and each item's row in it.
    table: Option<(PathBuf, bool, Vec<usize>)>,
}

/// Options of an [`ImagingDataset`]: those every dataset has ([`DatasetBuilder`]: the label
/// and targets are columns of the [`ImagingBuilder::table`]) and these.
pub type ImagingBuilder = DatasetBuilder<ImagingSpec>;

/// What makes an [`ImagingDataset`] its own ([`ImagingBuilder`]).
#[derive(Debug, Clone)]
pub struct ImagingSpec {
    files: Vec<PathBuf>,
    crop: Crop,
    keyword: Option<String>,
    table: Option<(PathBuf, String)>,
    ignore_index: Option<i64>,
}

impl ImagingDataset {
    /// A dataset of `files` (see [`ImagingBuilder`]).
    pub fn builder<P: AsRef<Path>>(files: impl IntoIterator<Item = P>) -> ImagingBuilder {
        DatasetBuilder::with_spec(ImagingSpec {
            files: files.into_iter().map(|p| p.as_ref().to_path_buf()).collect(),
            crop: Crop::Full,
            keyword: None,
            table: None,
            ignore_index: None,
        })
    }

    /// A dataset of the files matching `pattern` (`*` and `?` in the file name, not in the
    /// directories), in name order; an error if none matches. With the `remote` feature the
    /// pattern may be a URL (`s3://bucket/tiles/*.fits`): the prefix is listed once, the dataset
    /// opens the URLs listed ([`DatasetBuilder::urls`]), and every read fetches only its bytes
    /// (see `torchfits_core::remote`).
    pub fn glob(pattern: impl AsRef<Path>) -> Result<ImagingBuilder> {
        let pattern = pattern.as_ref().to_string_lossy();
        let listed_a_bucket = torchfits_core::is_url(&pattern);
        Ok(ImagingDataset::builder(torchfits_core::glob(&pattern)?).urls(listed_a_bucket))
    }
}

impl ImageFiles {
    /// The file of item `index`.
    pub fn file(&self, index: usize) -> Option<&Path> {
        self.files.get(index).map(PathBuf::as_path)
    }

    /// The planes of every item, as a batch holds them: the science channels (`images`), then
    /// the masks, then the weights, each in the order they were added.
    pub fn channels(&self) -> Vec<Channel> {
        let (science, masks, weights) = self.planes.channels(None);
        science.into_iter().chain(masks).chain(weights).collect()
    }

    /// The names of the label codes, for a label column of strings (code `k` is `names[k]`).
    pub fn label_names(&self) -> Option<&[String]> {
        self.label_names.as_deref()
    }
}

impl Items for ImageFiles {
    type Item = Stamp;

    fn count(&self) -> usize {
        self.files.len()
    }

    /// From a column of the table of file names ([`ImagingBuilder::table`]); files have no
    /// position, so no HEALPix cell.
    fn group_keys(&self, by: &GroupBy) -> Result<Vec<i64>> {
        let (GroupBy::Column(name), Some((path, urls, rows))) = (by, &self.table) else {
            return Err(Error::new(
                ErrorKind::Parameter,
                format!(
                    "{by:?}: an imaging dataset groups by a column of its table of file names (ImagingBuilder::table)"
                ),
            ));
        };
        let keys = read_column_keys(path, None, *urls, name)?;
        keys_of_rows(&keys, rows.iter().copied(), path)
    }

    /// The item `index`, or the error reading it (naming the file and the HDU).
    fn read(&self, reader: &Reader, index: usize) -> Result<Stamp> {
        let path = self.files.get(index).ok_or_else(|| {
            Error::new(ErrorKind::Parameter, format!("item {index} of {} does not exist", self.files.len()))
        })?;
        let [ny, nx] = self.shapes[index];
        let (h, w, y0, x0) = match self.crop {
            Crop::Full => (ny, nx, 0, 0),
            Crop::Centre(h, w) => (h, w, (ny - h) / 2, (nx - w) / 2),
            Crop::Random { height, width, seed } => {
                let r = draw(seed, reader.epoch().get(), index);
                let y0 = (r % (ny - height + 1) as u64) as usize;
                let x0 = ((r >> 32) % (nx - width + 1) as u64) as usize;
                (height, width, y0, x0)
            }
        };
        let (science, masks, weights) = self.planes.counts();
        let plane = h * w;
        let mut pixels = reader.pool().get::<f32>(science * plane).map_err(|e| e.in_file(path))?;
        let mut mask = (masks > 0).then(|| reader.pool().get::<i64>(masks * plane)).transpose()?;
        let mut weight = (weights > 0).then(|| reader.pool().get::<f32>(weights * plane)).transpose()?;
        let out = WindowOut {
            science: &mut pixels,
            masks: mask.as_deref_mut().unwrap_or_default(),
            weights: weight.as_deref_mut().unwrap_or_default(),
        };
        // a crop lies on its image: no flag plane
        self.planes.cut_into(reader, path, [x0 as i64, y0 as i64], [w, h], out)?;
        Ok(Stamp {
            pixels: Arc::new(pixels),
            channels: science,
            flags: None,
            flag_channels: 0,
            masks: mask.map(Arc::new),
            weights: weight.map(Arc::new),
            weight_roles: self.planes.weight_roles(),
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
}

impl ImagingBuilder {
    /// The part of each image an item is (default: [`Crop::Full`]).
    pub fn crop(mut self, crop: Crop) -> Self {
        self.spec.crop = crop;
        self
    }

    /// Labels from an integer header keyword of the first channel's HDU (absent: no label).
    pub fn label_keyword(mut self, keyword: &str) -> Self {
        self.spec.keyword = Some(keyword.to_string());
        self
    }

    /// The table (FITS, Parquet or Arrow) the label and targets come from
    /// ([`DatasetBuilder::label`], [`DatasetBuilder::targets`]): one row per file, found by
    /// the string column `file_column` (the file's name, or its whole path as given). A file
    /// the table does not name cannot be used (with [`DatasetBuilder::on_error`] replacing, it
    /// is left out and counted; for a label alone, [`ImagingBuilder::ignore_index`] keeps it).
    ///
    /// ```no_run
    /// use torchfits_burn::ImagingDataset;
    ///
    /// # fn main() -> Result<(), torchfits_core::Error> {
    /// let ds = ImagingDataset::builder(["g1.fits", "g2.fits"])
    ///     .table("galaxies.parquet", "file")
    ///     .label("morphology")
    ///     .targets(&["redshift", "objid"])
    ///     .build()?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn table(mut self, table: impl AsRef<Path>, file_column: &str) -> Self {
        self.spec.table = Some((table.as_ref().to_path_buf(), file_column.to_string()));
        self
    }

    /// The label of a file that has none (with [`ImagingBuilder::label_keyword`], or a label
    /// column and a table that lacks the file): the value a loss ignores (burn's cross-entropy
    /// `ignore_index`). Without it, such a file fails the build (or, with a replacement policy,
    /// is left out): a dataset with labels gives a label with every item.
    pub fn ignore_index(mut self, label: i64) -> Self {
        self.spec.ignore_index = Some(label);
        self
    }
}

impl ItemsSpec for ImagingSpec {
    type Items = ImageFiles;

    /// Reads every file's header (shapes, labels) once.
    fn build(self, options: &ReadOptions, reader: &Reader) -> Result<ImageFiles> {
        let planes = PlaneSet::new(options)?;
        let table = match &self.table {
            Some((path, file_column)) => Some(FileTable::read(path, file_column, options)?),
            None if options.label.is_some() || !options.targets.is_empty() => {
                return Err(Error::new(
                    ErrorKind::Parameter,
                    "a label or target column needs the table it is in (ImagingBuilder::table)",
                ));
            }
            None => None,
        };
        let mut files = Vec::with_capacity(self.files.len());
        let mut shapes: Vec<[usize; 2]> = Vec::with_capacity(self.files.len());
        let mut labels = Vec::with_capacity(self.files.len());
        let mut rows = Vec::with_capacity(self.files.len());
        for path in &self.files {
            let described = self.describe(reader, &planes, path, table.as_ref(), options, shapes.first());
            if let Some((shape, label, row)) = reader.keep(path, described)? {
                files.push(path.clone());
                shapes.push(shape);
                labels.push(label);
                rows.extend(row);
            }
        }
        let side = match &table {
            Some(t) if !options.targets.is_empty() => Some(Arc::new(t.select(&options.targets, &rows)?)),
            _ => None,
        };
        let label_names = table.as_ref().and_then(|t| t.label_names(options));
        let table = table.map(|t| (t.path, options.urls, rows));
        Ok(ImageFiles { files, shapes, labels, planes, crop: self.crop, side, label_names, table })
    }
}

impl ImagingSpec {
    /// One file's shape, label and row of the table, or why the dataset cannot use it (naming
    /// the file).
    fn describe(
        &self,
        reader: &Reader,
        planes: &PlaneSet,
        path: &Path,
        table: Option<&FileTable>,
        options: &ReadOptions,
        first: Option<&[usize; 2]>,
    ) -> Result<([usize; 2], Option<i64>, Option<usize>)> {
        let ([ny, nx], label) = reader.cache().with(path, |f| {
            let shape = planes.shape(f)?;
            let label = match &self.keyword {
                Some(key) => f.image(planes.first().clone())?.header().get_i64(key),
                None => None,
            };
            Ok((shape, label))
        })?;
        let shape = [ny, nx];
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
        let row = table.and_then(|t| t.row_of(path));
        if row.is_none() && !options.targets.is_empty() {
            return Err(Error::new(ErrorKind::Parameter, "the table has no row for the file").in_file(path));
        }
        let from_table = match (table, row, &options.label) {
            (Some(t), Some(r), Some(column)) => Some(t.label(column, r)?),
            _ => None,
        };
        let labelled = self.keyword.is_some() || options.label.is_some();
        let label = match (from_table.or(label).or(self.ignore_index), labelled) {
            (None, true) => {
                return Err(Error::new(
                    ErrorKind::Parameter,
                    "the file has no label (set ignore_index to keep files without one)",
                )
                .in_file(path));
            }
            (label, _) => label,
        };
        Ok(([ny, nx], label, row))
    }
}

/// A table with one row per image file, found by the file's name: the source of an imaging
/// dataset's label and targets.
struct FileTable {
    path: PathBuf,
    rows: std::collections::HashMap<String, usize>,
    columns: SideColumns,
}

impl FileTable {
    /// The string column `file_column` and the label and target columns of `options`.
    fn read(path: &Path, file_column: &str, options: &ReadOptions) -> Result<Self> {
        let mut names: Vec<&str> = vec![file_column];
        names.extend(options.label.as_deref());
        names.extend(options.targets.iter().map(String::as_str));
        let batches = crate::catalog::read_batches(path, &names, None, options.urls)?;
        let mut files = Vec::new();
        let mut columns = SideColumns::new();
        for b in &batches {
            let Some(ColumnValues::Str { offsets, bytes }) = b.column(file_column).map(|c| &c.values) else {
                return Err(Error::new(
                    ErrorKind::Parameter,
                    format!("no string column {file_column:?} of file names"),
                )
                .in_file(path));
            };
            files.extend(
                offsets
                    .windows(2)
                    .map(|w| String::from_utf8_lossy(&bytes[w[0] as usize..w[1] as usize]).trim().to_string()),
            );
            for name in &names[1..] {
                let c = b
                    .column(name)
                    .ok_or_else(|| Error::new(ErrorKind::Parameter, format!("no column {name:?}")).in_file(path))?;
                columns
                    .push(name, SideValues::from_column(c).map_err(|e| e.in_file(path))?)
                    .map_err(|e| e.in_file(path))?;
            }
        }
        let rows = files.into_iter().enumerate().map(|(i, f)| (f, i)).collect();
        Ok(Self { path: path.to_path_buf(), rows, columns })
    }

    /// The table's row for the image file `path` (by its name, or its whole path as given).
    fn row_of(&self, path: &Path) -> Option<usize> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        self.rows.get(name).or_else(|| self.rows.get(path.to_string_lossy().as_ref())).copied()
    }

    /// Row `row` of the label column `name` as a class label.
    fn label(&self, name: &str, row: usize) -> Result<i64> {
        let column = self
            .columns
            .get(name)
            .ok_or_else(|| Error::new(ErrorKind::Parameter, format!("no column {name:?}")).in_file(&self.path))?;
        let labels = column.select(&[row]).as_labels(name).map_err(|e| e.in_file(&self.path))?;
        labels.first().copied().ok_or_else(|| Error::new(ErrorKind::Decoding, "no label").in_file(&self.path))
    }

    /// The label column's strings, for a column of strings.
    fn label_names(&self, options: &ReadOptions) -> Option<Arc<[String]>> {
        options.label.as_deref().and_then(|l| self.columns.get(l)).and_then(SideValues::dictionary)
    }

    /// The columns `names` of `rows`, one row per dataset item.
    fn select(&self, names: &[String], rows: &[usize]) -> Result<SideColumns> {
        let mut side = SideColumns::new();
        for name in names {
            let values = self
                .columns
                .get(name)
                .ok_or_else(|| Error::new(ErrorKind::Parameter, format!("no column {name:?}")).in_file(&self.path))?;
            side.push(name, values.select(rows))?;
        }
        Ok(side)
    }
}
