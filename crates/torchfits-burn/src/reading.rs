//! What every dataset shares: the reading machinery (open files, buffers, the epoch, the error
//! policy and the failure report) in one [`Reader`], the options that make it
//! ([`DatasetBuilder`]'s setters, the same names and defaults for every dataset), and one
//! implementation of burn's [`Dataset`] ([`FitsDataset`]) over the part that differs from one
//! dataset to the next: what an item is ([`Items`]).

use std::fmt::Debug;
use std::path::Path;

use std::sync::Arc;

use burn::data::dataset::transform::SelectionDataset;
use burn::data::dataset::{Dataset, DatasetError};
use torchfits_core::{BufferPool, Error, ErrorKind, FileCache, HduSelector, OpenOptions, Result};

use crate::epochs::Epoch;
use crate::failures::{Failures, OnError};
use crate::groups::GroupBy;
use crate::roles::ChannelRole;
use crate::subset::split_dataset_by_group;

/// The reading machinery of one dataset, shared by every loader thread: a cache of open files,
/// a pool of item buffers, the epoch random choices are drawn for, the error policy and the
/// record of what failed.
#[derive(Debug)]
pub struct Reader {
    cache: FileCache,
    pool: BufferPool,
    epoch: Epoch,
    on_error: OnError,
    failures: Failures,
    hdu: HduSelector,
}

impl Reader {
    fn new(options: &ReadOptions) -> Reader {
        let open = OpenOptions::new().mmap(options.mmap).urls(options.urls).tile_memo(options.tile_memo);
        Reader {
            cache: FileCache::new(options.open_files, open),
            pool: options.pool.clone().unwrap_or_default(),
            epoch: Epoch::default(),
            on_error: options.on_error,
            failures: Failures::default(),
            hdu: options.hdu.clone(),
        }
    }

    /// The open files.
    pub fn cache(&self) -> &FileCache {
        &self.cache
    }

    /// The pool item buffers come from (they go back when the batcher has stacked them).
    pub fn pool(&self) -> &BufferPool {
        &self.pool
    }

    /// The epoch random choices (crops, substitutions) are drawn for.
    pub fn epoch(&self) -> &Epoch {
        &self.epoch
    }

    /// The image HDU of every file ([`DatasetBuilder::hdu`]).
    pub fn hdu(&self) -> &HduSelector {
        &self.hdu
    }

    /// What failed so far.
    pub fn failures(&self) -> &Failures {
        &self.failures
    }

    /// A file's description when the dataset is built: `Some` to keep the file; for one the
    /// dataset cannot use, the error (policy [`OnError::Fail`]) or `None` (recorded in the
    /// failures: the file is left out).
    pub fn keep<T>(&self, path: &Path, described: Result<T>) -> Result<Option<T>> {
        self.on_error.at_build(&self.failures, path, described)
    }
}

/// What a dataset's items are: how many there are and how one is read through the dataset's
/// [`Reader`]. [`FitsDataset`] does the rest (bounds, the error policy, the failure report).
pub trait Items: Send + Sync + Debug {
    /// One item.
    type Item;

    /// Number of items.
    fn count(&self) -> usize;

    /// Item `index` (below `count()`), or the error reading it, naming the file and the HDU.
    fn read(&self, reader: &Reader, index: usize) -> Result<Self::Item>;

    /// One group key per item, for [`FitsDataset::split_by`]; an error for items that have no
    /// catalog to group them by (the default).
    fn group_keys(&self, by: &GroupBy) -> Result<Vec<i64>> {
        Err(Error::new(ErrorKind::Unsupported, format!("this dataset's items have no catalog to group by ({by:?})")))
    }
}

/// A dataset: [`Items`] read through a [`Reader`], with burn's [`Dataset`] implemented once for
/// all of them. The items' own accessors (a cutout dataset's WCS, a spectra dataset's arms) are
/// reached through `Deref`.
#[derive(Debug)]
pub struct FitsDataset<I> {
    reader: Reader,
    items: I,
}

/// One side of a [`FitsDataset::split_by`]: burn's selection of a shared dataset's items.
pub type Selection<I> = SelectionDataset<FitsDataset<I>, <I as Items>::Item>;

impl<I: Items> FitsDataset<I>
where
    I::Item: Clone + Send + Sync,
{
    /// Two selections of a shared dataset, with about `fraction` of its items in the first and
    /// every group of [`GroupBy`] wholly on one side (the groups drawn from `seed`): a grouped
    /// split, so that sources of one field or one patch of sky are never in both. Each is one of
    /// burn's `SelectionDataset`s; an error where the items cannot be grouped (a column the
    /// catalog lacks, a dataset without a catalog).
    ///
    /// ```
    /// use std::sync::Arc;
    /// use torchfits_burn::{CatalogCutoutDataset, GroupBy};
    ///
    /// # fn main() -> Result<(), torchfits_core::Error> {
    /// let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
    /// let ds = CatalogCutoutDataset::builder(sample, [sample]).catalog_hdu("CATALOG").hdu("SCI").build()?;
    /// let ds = Arc::new(ds);
    /// // by a column ("FIELD", "TILE": here the stars' flux, one group each), or by sky cell
    /// let (train, valid) = ds.split_by("flux", 0.5, 7)?;
    /// assert_eq!((train.indices.len(), valid.indices.len()), (1, 1));
    /// let (train, valid) = ds.split_by(GroupBy::Cell { depth: 8 }, 0.8, 7)?; // both in one cell
    /// assert_eq!(train.indices.len() + valid.indices.len(), 2);
    /// # Ok(())
    /// # }
    /// ```
    pub fn split_by(
        self: &Arc<Self>,
        by: impl Into<GroupBy>,
        fraction: f64,
        seed: u64,
    ) -> Result<(Selection<I>, Selection<I>)> {
        let keys = self.items.group_keys(&by.into())?;
        split_dataset_by_group(self.clone(), &keys, fraction, seed)
    }
}

impl<I: Items> FitsDataset<I> {
    /// Number of items.
    pub fn len(&self) -> usize {
        self.items.count()
    }

    /// Whether there is no item.
    pub fn is_empty(&self) -> bool {
        self.items.count() == 0
    }

    /// Item `index`, or the error reading it (naming the file and the HDU), whatever the error
    /// policy: `Dataset::get` is the call that replaces failed items.
    pub fn read(&self, index: usize) -> Result<I::Item> {
        if index >= self.items.count() {
            return Err(Error::new(
                ErrorKind::Parameter,
                format!("item {index} of {} does not exist", self.items.count()),
            ));
        }
        self.items.read(&self.reader, index)
    }

    /// The items that could not be read, and their files ([`DatasetBuilder::on_error`]).
    pub fn failures(&self) -> &Failures {
        self.reader.failures()
    }

    /// The handle on the epoch random choices are drawn for (an [`crate::EpochLoader`]
    /// advances it).
    pub fn epoch(&self) -> Epoch {
        self.reader.epoch().clone()
    }

    /// The reading machinery.
    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    /// What the items are.
    pub fn items(&self) -> &I {
        &self.items
    }
}

impl<I> std::ops::Deref for FitsDataset<I> {
    type Target = I;

    fn deref(&self) -> &I {
        &self.items
    }
}

impl<I> Dataset<I::Item> for FitsDataset<I>
where
    I: Items,
    I::Item: Send + Sync,
{
    /// Item `index`; panics for `index >= len()`, as burn's datasets do. An item that cannot
    /// be read is the error, or (with a replacement policy) another item that reads.
    fn get(&self, index: usize) -> std::result::Result<I::Item, DatasetError> {
        let n = self.items.count();
        assert!(index < n, "Index out of bounds for dataset: {index} >= {n}");
        let r = &self.reader;
        self.items
            .read(r, index)
            .or_else(|e| r.on_error.recover(&r.failures, index, n, r.epoch.get(), e, |j| self.items.read(r, j)))
    }

    fn len(&self) -> usize {
        self.items.count()
    }
}

/// The options every dataset has, with the same defaults everywhere.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    pub(crate) hdu: HduSelector,
    pub(crate) mmap: bool,
    pub(crate) open_files: usize,
    pub(crate) pool: Option<BufferPool>,
    pub(crate) on_error: OnError,
    pub(crate) urls: bool,
    pub(crate) label: Option<String>,
    pub(crate) targets: Vec<String>,
    pub(crate) channels: Vec<(HduSelector, ChannelRole)>,
    /// Whether the files keep the tiles they decode ([`OpenOptions::tile_memo`]): on for the
    /// cutout datasets, whose stamps of one image share its tiles.
    pub(crate) tile_memo: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            hdu: HduSelector::Index(0),
            mmap: true,
            open_files: FileCache::DEFAULT_CAPACITY,
            pool: None,
            on_error: OnError::Fail,
            urls: false,
            label: None,
            targets: Vec::new(),
            channels: Vec::new(),
            tile_memo: false,
        }
    }
}

/// How a dataset's items are made from the shared options: the part of a builder that differs
/// from one dataset to the next ([`crate::CutoutSpec`], [`crate::SurveySpec`],
/// [`crate::ImagingSpec`], [`crate::SpectraSpec`]).
pub trait ItemsSpec {
    /// What the dataset's items are.
    type Items: Items;

    /// The items, from the shared options, with the dataset's reader (its files open through
    /// its cache, files it cannot use kept or left out by [`Reader::keep`]).
    fn build(self, options: &ReadOptions, reader: &Reader) -> Result<Self::Items>;
}

/// Options of a dataset: the ones every dataset has (this type's own setters, the same names
/// and defaults everywhere), then those of its kind (on `DatasetBuilder<ItsSpec>`).
#[derive(Debug, Clone)]
pub struct DatasetBuilder<S> {
    pub(crate) options: ReadOptions,
    pub(crate) spec: S,
}

impl<S> DatasetBuilder<S> {
    pub(crate) fn with_spec(spec: S) -> Self {
        DatasetBuilder { options: ReadOptions::default(), spec }
    }

    /// A builder of a dataset of stamps: its files keep the tiles they decode, which the
    /// stamps of one compressed image share.
    pub(crate) fn cutting_stamps(mut self) -> Self {
        self.options.tile_memo = true;
        self
    }

    /// The image HDU of every file (default: the primary HDU, 0): the image the stamps of the
    /// cutout datasets are cut from, and an imaging dataset's channel where
    /// [`DatasetBuilder::channel`] adds none. Spectra name their HDUs per arm or table
    /// instead, and leave this alone.
    pub fn hdu(mut self, hdu: impl Into<HduSelector>) -> Self {
        self.options.hdu = hdu.into();
        self
    }

    /// Whether files are read through a memory map (default true: an item is many short rows)
    /// or with `pread`.
    pub fn mmap(mut self, yes: bool) -> Self {
        self.options.mmap = yes;
        self
    }

    /// How many files the dataset keeps open at once (default [`FileCache::DEFAULT_CAPACITY`]):
    /// every loader thread reads through one shared cache of open files.
    pub fn open_files(mut self, n: usize) -> Self {
        self.options.open_files = n.max(1);
        self
    }

    /// The pool the items' buffers come from (default: a pool of the dataset's own).
    pub fn pool(mut self, pool: BufferPool) -> Self {
        self.options.pool = Some(pool);
        self
    }

    /// What an unreadable file does (default [`OnError::Fail`]): with a replacement policy a
    /// file that cannot be opened or described is left out when the dataset is built, and an
    /// item that cannot be read is replaced by one that can; both are counted in the dataset's
    /// [`FitsDataset::failures`].
    pub fn on_error(mut self, policy: OnError) -> Self {
        self.options.on_error = policy;
        self
    }

    /// Whether names may be URLs of object storage (`s3://`, `gs://`, `az://`, `http(s)://`),
    /// opened by range requests with the `remote` feature. Off by default, so that a name never
    /// makes the dataset send a request the caller did not ask for: every name is a path
    /// ([`torchfits_core::OpenOptions::urls`]).
    pub fn urls(mut self, yes: bool) -> Self {
        self.options.urls = yes;
        self
    }

    /// Adds HDU `hdu` of every image file as a plane of `role`, after those added before
    /// (default, with none added: [`DatasetBuilder::hdu`] as the one science plane). Science
    /// planes are the batch's `images`, in the order added; mask and weight planes go to its own
    /// `masks` and `weights` tensors, exact and never transformed. Every plane of a file has
    /// one shape, and at least one is science. The cutout datasets cut every plane at the
    /// stamp's pixels (a survey: of each band's files), placed by the WCS of
    /// [`DatasetBuilder::hdu`]; spectra name their HDUs per arm instead.
    ///
    /// ```
    /// use torchfits_burn::{CatalogCutoutDataset, ChannelRole};
    ///
    /// # fn main() -> Result<(), torchfits_core::Error> {
    /// let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
    /// let ds = CatalogCutoutDataset::builder(sample, [sample])
    ///     .catalog_hdu("CATALOG")
    ///     .hdu("SCI") // the WCS the stamps are placed by
    ///     .channel("SCI", ChannelRole::Science)
    ///     .channel("DQ", ChannelRole::Mask)
    ///     .size(16)
    ///     .build()?;
    /// let roles: Vec<ChannelRole> = ds.channels().iter().map(|c| c.role).collect();
    /// assert_eq!(roles, [ChannelRole::Science, ChannelRole::Flag, ChannelRole::Mask]);
    /// # Ok(())
    /// # }
    /// ```
    pub fn channel(mut self, hdu: impl Into<HduSelector>, role: ChannelRole) -> Self {
        self.options.channels.push((hdu.into(), role));
        self
    }

    /// The label column of the dataset's table (its catalog, plan or side table): integer
    /// classes, or strings as their codes (the index of each string in the column's sorted
    /// distinct strings, one dictionary for the whole dataset); a float column only if every
    /// value is a whole number (a redshift is a target, not a class).
    pub fn label(mut self, column: &str) -> Self {
        self.options.label = Some(column.to_string());
        self
    }

    /// Columns of the dataset's table that ride along with each item as targets or features,
    /// exact, in every batch's `targets` (integers as Int, floats as Float, strings as codes of
    /// one dictionary for the whole dataset; see [`crate::SideBatch`]).
    pub fn targets(mut self, columns: &[&str]) -> Self {
        self.options.targets = columns.iter().map(|c| c.to_string()).collect();
        self
    }
}

impl<S: ItemsSpec> DatasetBuilder<S> {
    /// Reads what the dataset needs to know of its files (headers, WCS, catalogs) once.
    pub fn build(self) -> Result<FitsDataset<S::Items>> {
        let reader = Reader::new(&self.options);
        let items = self.spec.build(&self.options, &reader)?;
        Ok(FitsDataset { reader, items })
    }
}
