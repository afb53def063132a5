//! Spectra as items: rows of `[nspec, nwave]` images (DESI-style) or array cells of a table.

// Indexing: file and row indices come from the dataset's layout, made at build;
// planes are cut from a buffer sized to the item.
#![allow(clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::data::dataloader::batcher::Batcher;
use burn::data::dataset::{Dataset, DatasetError};
use burn::tensor::{Device, Tensor, TensorData};
use torchfits_core::{
    BufferPool, ColumnValues, Error, ErrorKind, FileCache, HduSelector, OpenOptions, PooledBuffer, Result, Section,
};

use crate::columns::{SideBatch, SideColumns, SideValues};
use crate::epochs::Epoch;
use crate::failures::{Failures, OnError};

/// One spectrum: `channels` rows of `length` values (flux, then inverse variance and mask where
/// the dataset has them), in a pooled buffer, and its metadata row.
#[derive(Debug, Clone)]
pub struct Spectrum {
    /// `[channels, length]` values.
    pub values: Arc<PooledBuffer<f32>>,
    /// Rows: flux, then ivar and mask as configured.
    pub channels: usize,
    /// Wavelength samples.
    pub length: usize,
    /// The metadata columns' values for this spectrum (in the order given), as f64 (features;
    /// the exact values are in `side`).
    pub meta: Vec<f64>,
    /// The metadata columns, exact, one row per spectrum of the dataset (row `index`).
    pub side: Option<Arc<SideColumns>>,
    /// Index of the file in the dataset.
    pub file: usize,
    /// Row (spectrum) in its file.
    pub row: usize,
    /// The item's index in the dataset.
    pub index: usize,
}

/// Where the spectra are.
#[derive(Debug, Clone)]
enum Source {
    /// Rows of image HDUs: flux, then the optional ones.
    Rows(Vec<HduSelector>),
    /// Array columns of a binary table: the table's HDU and the columns.
    Columns(HduSelector, Vec<String>),
}

/// One item per spectrum of a set of files: rows of `[nspec, nwave]` images (flux, ivar, mask
/// HDUs, DESI-style) or fixed-size array columns of a binary table, plus numeric metadata
/// columns of a table with one row per spectrum (a fibermap).
///
/// ```no_run
/// use burn::data::dataset::Dataset;
/// use torchfits_burn::SpectroscopicDataset;
///
/// # fn main() -> Result<(), torchfits_core::Error> {
/// let ds = SpectroscopicDataset::image_rows(["coadd-1.fits", "coadd-2.fits"], &["FLUX", "IVAR", "MASK"])
///     .meta("FIBERMAP", &["TARGET_RA", "TARGET_DEC"])
///     .build()?;
/// let s = ds.get(0).expect("a readable file"); // [3, nwave] and 2 metadata values
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct SpectroscopicDataset {
    cache: FileCache,
    files: Vec<PathBuf>,
    source: Source,
    /// Per file: first item index, spectra, wavelength samples.
    layout: Vec<(usize, usize, usize)>,
    meta: Vec<Vec<f64>>,
    meta_width: usize,
    total: usize,
    pool: BufferPool,
    side: Option<Arc<SideColumns>>,
    epoch: Epoch,
    on_error: OnError,
    failures: Failures,
}

/// Options of a [`SpectroscopicDataset`].
#[derive(Debug, Clone)]
pub struct SpectraBuilder {
    files: Vec<PathBuf>,
    source: Source,
    meta: Option<(HduSelector, Vec<String>)>,
    open_files: usize,
    on_error: OnError,
}

impl SpectroscopicDataset {
    /// Spectra as the rows of the image HDUs `hdus` of each file (the first is the flux; all of
    /// one shape `[nspec, nwave]`).
    pub fn image_rows<P: AsRef<Path>, S: Into<HduSelector> + Clone>(
        files: impl IntoIterator<Item = P>,
        hdus: &[S],
    ) -> SpectraBuilder {
        SpectraBuilder {
            files: files.into_iter().map(|p| p.as_ref().to_path_buf()).collect(),
            source: Source::Rows(hdus.iter().cloned().map(Into::into).collect()),
            meta: None,
            open_files: FileCache::DEFAULT_CAPACITY,
            on_error: OnError::Fail,
        }
    }

    /// Spectra as the cells of the fixed-size array columns `columns` (flux first) of the binary
    /// table `hdu` of each file, one spectrum per row.
    pub fn table_columns<P: AsRef<Path>>(
        files: impl IntoIterator<Item = P>,
        hdu: impl Into<HduSelector>,
        columns: &[&str],
    ) -> SpectraBuilder {
        SpectraBuilder {
            files: files.into_iter().map(|p| p.as_ref().to_path_buf()).collect(),
            source: Source::Columns(hdu.into(), columns.iter().map(|c| c.to_string()).collect()),
            meta: None,
            open_files: FileCache::DEFAULT_CAPACITY,
            on_error: OnError::Fail,
        }
    }

    /// Number of spectra.
    pub fn len(&self) -> usize {
        self.total
    }

    /// Whether there is no spectrum.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The spectra that could not be read, and their files (see [`SpectraBuilder::on_error`]).
    pub fn failures(&self) -> &Failures {
        &self.failures
    }

    /// The handle on the epoch substitutions are drawn for ([`OnError::Substitute`]).
    pub fn epoch(&self) -> Epoch {
        self.epoch.clone()
    }

    /// The spectrum `index`, or the error reading it (naming the file and the HDU).
    pub fn spectrum(&self, index: usize) -> Result<Spectrum> {
        if index >= self.total {
            return Err(Error::new(ErrorKind::Parameter, format!("item {index} of {} does not exist", self.total)));
        }
        let file = self.layout.partition_point(|&(first, _, _)| first <= index) - 1;
        let (first, _, nwave) = self.layout[file];
        let row = index - first;
        let path = &self.files[file];
        let (channels, values) = match &self.source {
            Source::Rows(hdus) => {
                let mut buf = self.pool.get::<f32>(hdus.len() * nwave).map_err(|e| e.in_file(path))?;
                let section = Section::new(vec![row..row + 1, 0..nwave]);
                for (k, hdu) in hdus.iter().enumerate() {
                    let plane = &mut buf[k * nwave..(k + 1) * nwave];
                    self.cache.with(path, |f| f.image(hdu.clone())?.read_section_into(&section, plane))?;
                }
                (hdus.len(), buf)
            }
            Source::Columns(hdu, columns) => {
                let mut buf = self.pool.get::<f32>(columns.len() * nwave).map_err(|e| e.in_file(path))?;
                let names: Vec<&str> = columns.iter().map(String::as_str).collect();
                let batch = self.cache.with(path, |f| {
                    let mut batches =
                        f.table(hdu.clone())?.with_columns(&names)?.with_rows(row as u64..row as u64 + 1)?.build()?;
                    batches.next().transpose()?.ok_or_else(|| Error::new(ErrorKind::Decoding, "no row"))
                })?;
                for (k, name) in names.iter().enumerate() {
                    let col = batch
                        .column(name)
                        .ok_or_else(|| Error::new(ErrorKind::Parameter, format!("no column {name:?}")).in_file(path))?;
                    let plane = &mut buf[k * nwave..(k + 1) * nwave];
                    copy_f32(&col.values, plane).map_err(|e| e.in_file(path))?;
                }
                (columns.len(), buf)
            }
        };
        let meta = self.meta.get(file).map(|m| m[row * self.meta_width..(row + 1) * self.meta_width].to_vec());
        Ok(Spectrum {
            values: Arc::new(values),
            channels,
            length: nwave,
            meta: meta.unwrap_or_default(),
            side: self.side.clone(),
            file,
            row,
            index,
        })
    }
}

fn copy_f32(values: &ColumnValues, out: &mut [f32]) -> Result<()> {
    let n = out.len();
    let short = || Error::new(ErrorKind::Decoding, format!("a cell holds fewer than {n} values"));
    match values {
        ColumnValues::F32(v) => out.copy_from_slice(v.get(..n).ok_or_else(short)?),
        ColumnValues::F64(v) => out.iter_mut().zip(v.get(..n).ok_or_else(short)?).for_each(|(o, &x)| *o = x as f32),
        other => {
            let v = crate::catalog::numbers(other)?;
            out.iter_mut().zip(v.get(..n).ok_or_else(short)?).for_each(|(o, &x)| *o = x as f32);
        }
    }
    Ok(())
}

impl SpectraBuilder {
    /// How many files the dataset keeps open at once (default [`FileCache::DEFAULT_CAPACITY`]):
    /// every loader thread reads through one shared cache of open files.
    pub fn open_files(mut self, n: usize) -> Self {
        self.open_files = n.max(1);
        self
    }

    /// What an unreadable file does (default [`OnError::Fail`]): with a replacement policy a
    /// file that cannot be opened or described is left out when the dataset is built, and a
    /// spectrum that cannot be read is replaced by one that can; both are counted in
    /// [`SpectroscopicDataset::failures`].
    pub fn on_error(mut self, policy: OnError) -> Self {
        self.on_error = policy;
        self
    }

    /// Numeric metadata columns from the table `hdu` of each file, one row per spectrum.
    pub fn meta(mut self, hdu: impl Into<HduSelector>, columns: &[&str]) -> Self {
        self.meta = Some((hdu.into(), columns.iter().map(|c| c.to_string()).collect()));
        self
    }

    /// Reads each file's layout (and metadata) once.
    pub fn build(self) -> Result<SpectroscopicDataset> {
        let cache = FileCache::new(self.open_files, OpenOptions::new().mmap(true));
        let mut layout = Vec::with_capacity(self.files.len());
        let mut meta = Vec::new();
        let mut total = 0usize;
        let width = self.meta.as_ref().map_or(0, |(_, c)| c.len());
        let failures = Failures::default();
        let mut side = SideColumns::new();
        let mut files = Vec::with_capacity(self.files.len());
        for path in &self.files {
            let first = layout.first().map(|&(_, _, nwave)| nwave);
            let described = self.describe(&cache, path, first);
            if let Some((nspec, nwave, rows, exact)) = self.on_error.at_build(&failures, path, described)? {
                for (name, values) in exact.iter() {
                    side.push(name, values.clone()).map_err(|e| e.in_file(path))?;
                }
                files.push(path.clone());
                meta.extend(rows);
                layout.push((total, nspec, nwave));
                total += nspec;
            }
        }
        Ok(SpectroscopicDataset {
            cache,
            files,
            source: self.source,
            layout,
            meta,
            meta_width: width,
            total,
            pool: BufferPool::default(),
            side: (!side.is_empty()).then(|| Arc::new(side)),
            epoch: Epoch::default(),
            on_error: self.on_error,
            failures,
        })
    }

    /// One file's spectra, wavelength samples and metadata rows (when the dataset has metadata),
    /// or why the dataset cannot use it; `first`: the first kept file's wavelength samples.
    fn describe(
        &self,
        cache: &FileCache,
        path: &Path,
        first: Option<usize>,
    ) -> Result<(usize, usize, Option<Vec<f64>>, SideColumns)> {
        let width = self.meta.as_ref().map_or(0, |(_, c)| c.len());
        let (nspec, nwave) = cache.with(path, |f| match &self.source {
            Source::Rows(hdus) => {
                let mut shape: Option<Vec<usize>> = None;
                for hdu in hdus {
                    let img = f.image(hdu.clone())?;
                    let s = img.shape().to_vec();
                    if s.len() != 2 || shape.as_ref().is_some_and(|f| f != &s) {
                        return Err(Error::new(
                            ErrorKind::Parameter,
                            format!("spectra need [nspec, nwave] images of one shape, not {s:?}"),
                        )
                        .in_hdu(img.index()));
                    }
                    shape = Some(s);
                }
                let s = shape.ok_or_else(|| Error::new(ErrorKind::Parameter, "no HDU given"))?;
                match s[..] {
                    [nspec, nwave] => Ok((nspec, nwave)),
                    _ => {
                        Err(Error::new(ErrorKind::Parameter, format!("spectra need [nspec, nwave] images, not {s:?}")))
                    }
                }
            }
            Source::Columns(hdu, columns) => {
                let t = f.table(hdu.clone())?;
                let rows = t.selected_rows() as usize;
                let schema = t.schema();
                let mut width = None;
                for name in columns {
                    let c = schema
                        .column(name)
                        .ok_or_else(|| Error::new(ErrorKind::Parameter, format!("the table has no column {name:?}")))?;
                    if width.is_some_and(|w| w != c.repeat) {
                        return Err(Error::new(ErrorKind::Parameter, "the spectrum columns differ in length"));
                    }
                    width = Some(c.repeat);
                }
                Ok((rows, width.unwrap_or(0)))
            }
        })?;
        let mut meta_rows = None;
        let mut exact = SideColumns::new();
        if let Some((hdu, columns)) = &self.meta {
            let names: Vec<&str> = columns.iter().map(String::as_str).collect();
            let batches = cache
                .with(path, |f| f.table(hdu.clone())?.with_columns(&names)?.build()?.collect::<Result<Vec<_>>>())?;
            let mut cols: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
            for b in &batches {
                for (k, name) in names.iter().enumerate() {
                    let c = b.column(name).ok_or_else(|| {
                        Error::new(ErrorKind::Parameter, format!("no metadata column {name:?}")).in_file(path)
                    })?;
                    cols[k].extend(crate::catalog::numbers(&c.values).map_err(|e| e.in_file(path))?);
                    exact
                        .push(name, SideValues::from_column(c).map_err(|e| e.in_file(path))?)
                        .map_err(|e| e.in_file(path))?;
                }
            }
            if cols.iter().any(|c| c.len() != nspec) {
                return Err(Error::new(
                    ErrorKind::Parameter,
                    format!("the metadata table has not one row per spectrum ({nspec})"),
                )
                .in_file(path));
            }
            let mut rows = Vec::with_capacity(nspec * width);
            for r in 0..nspec {
                rows.extend(cols.iter().map(|c| c[r]));
            }
            meta_rows = Some(rows);
        }
        // one length for every file: a batch stacks spectra of one shape (burn's `Batcher`
        // cannot fail, so a file that differs is refused here)
        if let Some(first) = first
            && first != nwave
        {
            return Err(Error::new(
                ErrorKind::Parameter,
                format!("{nwave} wavelength samples, the first file's spectra have {first}"),
            )
            .in_file(path));
        }
        Ok((nspec, nwave, meta_rows, exact))
    }
}

impl Dataset<Spectrum> for SpectroscopicDataset {
    fn get(&self, index: usize) -> std::result::Result<Spectrum, DatasetError> {
        assert!(index < self.total, "Index out of bounds for dataset: {index} >= {}", self.total);
        self.spectrum(index).or_else(|e| {
            self.on_error.recover(&self.failures, index, self.total, self.epoch.get(), e, |j| self.spectrum(j))
        })
    }

    fn len(&self) -> usize {
        self.total
    }
}

/// A batch of spectra on a device.
#[derive(Debug, Clone)]
pub struct SpectrumBatch {
    /// `[batch, channels, length]`.
    pub spectra: Tensor<3>,
    /// `[batch, columns]` metadata as f32 features, when the dataset has some.
    pub meta: Option<Tensor<2>>,
    /// The metadata columns, exact (integers as Int, a 64-bit TARGETID whole; see
    /// [`crate::SideBatch`]), in the order given.
    pub columns: Vec<(String, SideBatch)>,
    /// The items' dataset indices.
    pub indices: Vec<usize>,
}

/// Stacks [`Spectrum`]s into a [`SpectrumBatch`] (one upload), NaN replaced by a value if set.
#[derive(Debug, Clone, Default)]
pub struct SpectrumBatcher {
    nan: Option<f32>,
}

impl SpectrumBatcher {
    /// A batcher that stacks the spectra as they are.
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces NaN values by `value` (on the device).
    pub fn nan_to(mut self, value: f32) -> Self {
        self.nan = Some(value);
        self
    }

    /// Stacks `items`; an error for spectra of differing shapes.
    pub fn try_batch(&self, items: Vec<Spectrum>, device: &Device) -> Result<SpectrumBatch> {
        let _span = tracing::trace_span!("batch", items = items.len()).entered();
        let b = items.len();
        let (c, l, m) = items.first().map(|s| (s.channels, s.length, s.meta.len())).unwrap_or((1, 1, 0));
        let mut data = Vec::with_capacity(b * c * l);
        let mut meta = Vec::with_capacity(b * m);
        for s in &items {
            if (s.channels, s.length, s.meta.len()) != (c, l, m) {
                return Err(Error::new(
                    ErrorKind::Parameter,
                    "spectra of different shapes in one batch (pad or crop them)",
                ));
            }
            data.extend_from_slice(&s.values);
            meta.extend(s.meta.iter().map(|&v| v as f32));
        }
        let indices: Vec<usize> = items.iter().map(|s| s.index).collect();
        let columns = match items.first().and_then(|s| s.side.clone()) {
            Some(side) => side.batch(&indices, device),
            None => Vec::new(),
        };
        drop(items);
        let mut spectra = Tensor::<3>::from_data(TensorData::new(data, [b, c, l]), device);
        if let Some(v) = self.nan {
            spectra = spectra.clone().mask_fill(spectra.is_nan(), v);
        }
        let meta = (m > 0).then(|| Tensor::<2>::from_data(TensorData::new(meta, [b, m]), device));
        Ok(SpectrumBatch { spectra, meta, columns, indices })
    }
}

impl Batcher<Spectrum, SpectrumBatch> for SpectrumBatcher {
    /// As [`SpectrumBatcher::try_batch`]; panics on its error (burn's `Batcher` cannot fail).
    fn batch(&self, items: Vec<Spectrum>, device: &Device) -> SpectrumBatch {
        match self.try_batch(items, device) {
            Ok(b) => b,
            // burn's `Batcher::batch` returns no error, and the datasets never
            // give items this rejects (documented on the method); `try_batch` is the fallible way
            #[allow(clippy::panic)]
            Err(e) => panic!("torchfits: cannot batch the spectra: {e}"),
        }
    }
}
