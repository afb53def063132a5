//! Spectra as items: rows of `[nspec, nwave]` images (DESI-style, one set of HDUs per arm of the
//! spectrograph) or array cells of a table, with the wavelength of each sample.

// Indexing: file and row indices come from the dataset's layout, made at build;
// planes are cut from buffers sized to the item.
#![allow(clippy::indexing_slicing)]

mod batch;
mod join;
mod resample;
mod wavelength;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use torchfits_core::{ColumnValues, Error, ErrorKind, FitsFile, HduSelector, PooledBuffer, Result, Section};

pub use batch::{SpectrumBatch, SpectrumBatcher};
pub use resample::{Rebin, Resample};
pub use wavelength::{Wavelength, WavelengthFrame};

use crate::columns::{SideColumns, SideValues};
use crate::groups::{GroupBy, column_keys};
use crate::reading::{DatasetBuilder, FitsDataset, Items, ItemsSpec, ReadOptions, Reader};
use crate::roles::ChannelRole;

/// One spectrum: `channels` rows of `length` values (the flux, then the other channels that
/// are not masks: inverse variance, variance, ...; `roles` says which), its integer mask rows,
/// the wavelength of each sample and its metadata row. A multi-arm spectrum has its arms one
/// after the other in every row (`arms` gives their lengths).
#[derive(Debug, Clone)]
pub struct Spectrum {
    /// `[channels, length]` values.
    pub values: Arc<PooledBuffer<f32>>,
    /// Rows of `values`.
    pub channels: usize,
    /// Samples (of all arms).
    pub length: usize,
    /// The role of each row of `values`.
    pub roles: Arc<[ChannelRole]>,
    /// `[mask rows, length]` integer flags, exact ([`ChannelRole::Mask`] channels), where the
    /// dataset has some.
    pub masks: Option<Arc<PooledBuffer<i64>>>,
    /// The wavelength of each sample ([`SpectraBuilder::wavelength`]), vacuum Ångström, where
    /// the dataset has them.
    pub wavelength: Option<Arc<[f64]>>,
    /// The samples of each arm, in order (one entry for a single arm).
    pub arms: Arc<[usize]>,
    /// The metadata columns' values for this spectrum (in the order given), as f64 (features;
    /// the exact values are in `side`).
    pub meta: Vec<f64>,
    /// The metadata columns and the targets joined to them ([`SpectraBuilder::join`]), exact,
    /// one row per spectrum of the dataset (row `index`).
    pub side: Option<Arc<SideColumns>>,
    /// The label ([`SpectraBuilder::join`] then [`DatasetBuilder::label`]), where the dataset
    /// has one.
    pub label: Option<i64>,
    /// Index of the file in the dataset.
    pub file: usize,
    /// Row (spectrum) in its file.
    pub row: usize,
    /// The item's index in the dataset.
    pub index: usize,
}

/// One arm of a spectrograph: its HDUs, each with its role (the flux first, then inverse
/// variance, mask, ...: every arm has the same roles in the same order) and where its
/// wavelengths are.
#[derive(Debug, Clone, Default)]
pub struct Arm {
    hdus: Vec<HduSelector>,
    roles: Vec<ChannelRole>,
    wavelength: Option<Wavelength>,
}

impl Arm {
    /// An arm of no HDU yet ([`Arm::channel`] adds them).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds the `[nspec, nwave]` image HDU `hdu` as a row of `role`, after those added before.
    pub fn channel(mut self, hdu: impl Into<HduSelector>, role: ChannelRole) -> Self {
        self.hdus.push(hdu.into());
        self.roles.push(role);
        self
    }

    /// Where the arm's wavelengths are (default: as [`SpectraBuilder::wavelength`] says).
    pub fn wavelength(mut self, source: Wavelength) -> Self {
        self.wavelength = Some(source);
        self
    }
}

/// Where the spectra are.
#[derive(Debug, Clone)]
enum Source {
    /// Rows of image HDUs, arm by arm.
    Rows(Vec<Arm>),
    /// Array columns of a binary table: the table's HDU, the columns and their roles.
    Columns(HduSelector, Vec<(String, ChannelRole)>),
}

/// Where the builder was told the spectra are: a [`Source`], or image rows of the shared
/// options' channels (made one arm at build).
#[derive(Debug, Clone)]
enum Given {
    ImageRows,
    Source(Source),
}

/// What the dataset knows of one file.
#[derive(Debug)]
struct FileLayout {
    /// The dataset index of its first spectrum.
    first: usize,
    /// The samples of each arm of its spectra.
    arms: Arc<[usize]>,
    /// Its wavelength grid, where one grid serves all its spectra.
    grid: Option<Arc<[f64]>>,
}

/// One item per spectrum of a set of files: rows of `[nspec, nwave]` images (flux, ivar, mask
/// HDUs, DESI-style, with several arms of their own lengths) or fixed-size array columns of a
/// binary table; the wavelength of each sample; mask channels as exact integers; numeric
/// metadata columns of a table with one row per spectrum (a fibermap).
///
/// ```no_run
/// use burn::data::dataset::Dataset;
/// use torchfits_burn::{Arm, ChannelRole, SpectroscopicDataset, Wavelength};
///
/// # fn main() -> Result<(), torchfits_core::Error> {
/// use ChannelRole::{InverseVariance, Mask, Science};
/// let arm = |b: &str| {
///     let [flux, ivar, mask, wave] = ["FLUX", "IVAR", "MASK", "WAVELENGTH"].map(|h| format!("{b}_{h}"));
///     Arm::new()
///         .channel(flux.as_str(), Science)
///         .channel(ivar.as_str(), InverseVariance)
///         .channel(mask.as_str(), Mask)
///         .wavelength(Wavelength::Hdu(wave.as_str().into()))
/// };
/// let ds = SpectroscopicDataset::arms(["coadd-1.fits", "coadd-2.fits"], vec![arm("B"), arm("R"), arm("Z")])
///     .meta("FIBERMAP", &["TARGETID", "TARGET_RA", "TARGET_DEC"])
///     .build()?;
/// let s = ds.get(0).expect("a readable file"); // flux and ivar rows, B then R then Z
/// assert_eq!(s.arms.len(), 3);
/// # Ok(())
/// # }
/// ```
///
/// Any `[nspec, nwave]` image is a set of spectra: the rows of the sample file's 48x64 image,
/// batched.
///
/// ```
/// use burn::data::dataset::Dataset;
/// use torchfits_burn::{SpectroscopicDataset, SpectrumBatcher};
///
/// # fn main() -> Result<(), torchfits_core::Error> {
/// let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
/// let ds = SpectroscopicDataset::image_rows([sample]).hdu("SCI").build()?;
/// assert_eq!(ds.len(), 48);
/// let rows = (0..4).map(|i| ds.get(i).expect("a row")).collect();
/// let batch = SpectrumBatcher::new().try_batch(rows, &burn::tensor::Device::flex())?;
/// assert_eq!(batch.spectra.dims(), [4, 1, 64]);
/// # Ok(())
/// # }
/// ```
pub type SpectroscopicDataset = FitsDataset<Spectra>;

/// The items of a [`SpectroscopicDataset`]: its files, where each spectrum is, its wavelengths
/// and metadata.
#[derive(Debug)]
pub struct Spectra {
    files: Vec<PathBuf>,
    source: Source,
    layout: Vec<FileLayout>,
    arms: Arc<[usize]>,
    roles: Arc<[ChannelRole]>,
    wave_column: Option<String>,
    meta: Vec<Vec<f64>>,
    meta_width: usize,
    total: usize,
    side: Option<Arc<SideColumns>>,
    labels: Option<Vec<i64>>,
    label_names: Option<Arc<[String]>>,
    resample: Option<Resample>,
    /// The arms of a resampled spectrum: one, the grid.
    grid_arms: Arc<[usize]>,
    frame: Option<WavelengthFrame>,
}

/// Options of a [`SpectroscopicDataset`]: those every dataset has ([`DatasetBuilder`]) and these.
pub type SpectraBuilder = DatasetBuilder<SpectraSpec>;

/// What makes a [`SpectroscopicDataset`] its own ([`SpectraBuilder`]).
#[derive(Debug, Clone)]
pub struct SpectraSpec {
    files: Vec<PathBuf>,
    source: Given,
    wavelength: Option<Wavelength>,
    meta: Option<(HduSelector, Vec<String>)>,
    resample: Option<Resample>,
    frame: Option<WavelengthFrame>,
    join: Option<(PathBuf, String)>,
}

impl SpectroscopicDataset {
    /// Spectra as the rows of `[nspec, nwave]` image HDUs of each file: those of
    /// [`DatasetBuilder::channel`] (the flux first, all of one shape), or
    /// [`DatasetBuilder::hdu`] as the flux alone where none is added.
    pub fn image_rows<P: AsRef<Path>>(files: impl IntoIterator<Item = P>) -> SpectraBuilder {
        SpectraSpec::builder(files, Given::ImageRows)
    }

    /// Spectra of a multi-arm spectrograph: the rows of each arm's image HDUs, the arms one
    /// after the other in each item (every arm has HDUs of the same roles in the same order,
    /// and its own number of samples).
    pub fn arms<P: AsRef<Path>>(files: impl IntoIterator<Item = P>, arms: Vec<Arm>) -> SpectraBuilder {
        SpectraSpec::builder(files, Given::Source(Source::Rows(arms)))
    }

    /// Spectra as the cells of fixed-size array columns of the binary table `hdu` of each file,
    /// one spectrum per row: the columns of [`SpectraBuilder::column`], the flux first.
    pub fn table_columns<P: AsRef<Path>>(
        files: impl IntoIterator<Item = P>,
        hdu: impl Into<HduSelector>,
    ) -> SpectraBuilder {
        SpectraSpec::builder(files, Given::Source(Source::Columns(hdu.into(), Vec::new())))
    }
}

impl Spectra {
    /// The samples of each arm (one entry for spectra of a single arm).
    /// (Of the first file; with [`SpectraBuilder::resample`], items have one arm, the grid.)
    pub fn arm_lengths(&self) -> &[usize] {
        &self.arms
    }

    /// The names of the label codes, for a label column of strings (code `k` is `names[k]`).
    pub fn label_names(&self) -> Option<&[String]> {
        self.label_names.as_deref()
    }
}

impl Items for Spectra {
    type Item = Spectrum;

    /// From a metadata column ([`SpectraBuilder::meta`]); spectra have no position of their own,
    /// so no HEALPix cell.
    fn group_keys(&self, by: &GroupBy) -> Result<Vec<i64>> {
        let values = match (by, &self.side) {
            (GroupBy::Column(name), Some(side)) => side.get(name),
            _ => None,
        };
        let values = values.ok_or_else(|| {
            Error::new(
                ErrorKind::Parameter,
                format!("{by:?}: a spectra dataset groups by one of its metadata columns (SpectraBuilder::meta)"),
            )
        })?;
        Ok(column_keys(values))
    }

    fn count(&self) -> usize {
        self.total
    }

    /// The spectrum `index`, or the error reading it (naming the file and the HDU).
    fn read(&self, reader: &Reader, index: usize) -> Result<Spectrum> {
        if index >= self.total {
            return Err(Error::new(ErrorKind::Parameter, format!("item {index} of {} does not exist", self.total)));
        }
        let file = self.layout.partition_point(|l| l.first <= index) - 1;
        let row = index - self.layout[file].first;
        let path = &self.files[file];
        let arms = &self.layout[file].arms;
        let length: usize = arms.iter().sum();
        let value_rows = self.roles.iter().filter(|r| **r != ChannelRole::Mask).count();
        let mask_rows = self.roles.len() - value_rows;
        let mut values = reader.pool().get::<f32>(value_rows * length).map_err(|e| e.in_file(path))?;
        let mut masks = match mask_rows {
            0 => None,
            n => Some(reader.pool().get::<i64>(n * length).map_err(|e| e.in_file(path))?),
        };
        let grid = match &self.source {
            Source::Rows(hdus) => {
                reader
                    .cache()
                    .with(path, |f| read_rows(hdus, arms, &self.roles, f, row, &mut values, masks.as_deref_mut()))?;
                self.layout[file].grid.clone()
            }
            Source::Columns(hdu, columns) => {
                let cell = (reader, path.as_path(), row, length);
                self.read_cells(cell, hdu, columns, &mut values, masks.as_deref_mut())?
                    .or_else(|| self.layout[file].grid.clone())
            }
        };
        let roles: Arc<[ChannelRole]> = self.roles.iter().copied().filter(|r| *r != ChannelRole::Mask).collect();
        let (values, masks, grid, arms, length) = match &self.resample {
            None => (values, masks, grid, arms.clone(), length),
            Some(resample) => {
                let grid = grid.ok_or_else(|| {
                    Error::new(
                        ErrorKind::Parameter,
                        "resampling needs the spectra's wavelengths (SpectraBuilder::wavelength)",
                    )
                    .in_file(path)
                })?;
                let from = resample::Samples {
                    values: &values,
                    roles: &roles,
                    masks: masks.as_deref(),
                    wavelength: &grid,
                    arms,
                };
                let m = resample.grid().len();
                let mut onto = reader.pool().get::<f32>(value_rows * m).map_err(|e| e.in_file(path))?;
                let mut onto_masks = masks.as_ref().map(|_| reader.pool().get::<i64>(mask_rows * m)).transpose()?;
                resample.apply(&from, &mut onto, onto_masks.as_deref_mut()).map_err(|e| e.in_file(path))?;
                (onto, onto_masks, Some(resample.grid().clone()), self.grid_arms.clone(), m)
            }
        };
        let meta = self.meta.get(file).map(|m| m[row * self.meta_width..(row + 1) * self.meta_width].to_vec());
        Ok(Spectrum {
            values: Arc::new(values),
            channels: value_rows,
            length,
            roles,
            masks: masks.map(Arc::new),
            wavelength: grid,
            arms,
            meta: meta.unwrap_or_default(),
            side: self.side.clone(),
            label: self.labels.as_ref().map(|l| l[index]),
            file,
            row,
            index,
        })
    }
}

/// Row `row` of every arm's HDUs of the file `f` into the value and mask rows, each arm at its
/// offset (`arms`: the samples of each).
fn read_rows(
    hdus: &[Arm],
    arms: &[usize],
    roles: &[ChannelRole],
    f: &FitsFile,
    row: usize,
    values: &mut [f32],
    mut masks: Option<&mut [i64]>,
) -> Result<()> {
    let length: usize = arms.iter().sum();
    let mut offset = 0;
    for (arm, &n) in hdus.iter().zip(arms.iter()) {
        let section = Section::new(vec![row..row + 1, 0..n]);
        let (mut v, mut m) = (0, 0);
        for (hdu, role) in arm.hdus.iter().zip(roles.iter()) {
            if *role == ChannelRole::Mask {
                if let Some(masks) = masks.as_deref_mut() {
                    let out = &mut masks[m * length + offset..m * length + offset + n];
                    f.image(hdu.clone())?.read_section_into(&section, out)?;
                }
                m += 1;
            } else {
                let out = &mut values[v * length + offset..v * length + offset + n];
                f.image(hdu.clone())?.read_section_into(&section, out)?;
                v += 1;
            }
        }
        offset += n;
    }
    Ok(())
}

impl Spectra {
    /// Row `row`'s cells of the spectrum columns into the value and mask rows; its wavelength
    /// cell where they are in a column.
    fn read_cells(
        &self,
        (reader, path, row, length): (&Reader, &Path, usize, usize),
        hdu: &HduSelector,
        columns: &[(String, ChannelRole)],
        values: &mut [f32],
        mut masks: Option<&mut [i64]>,
    ) -> Result<Option<Arc<[f64]>>> {
        let mut names: Vec<&str> = columns.iter().map(|(name, _)| name.as_str()).collect();
        names.extend(self.wave_column.as_deref());
        let batch = reader.cache().with(path, |f| {
            let mut batches =
                f.table(hdu.clone())?.with_columns(&names)?.with_rows(row as u64..row as u64 + 1)?.build()?;
            batches.next().transpose()?.ok_or_else(|| Error::new(ErrorKind::Decoding, "no row"))
        })?;
        let column = |name: &str| {
            batch
                .column(name)
                .ok_or_else(|| Error::new(ErrorKind::Parameter, format!("no column {name:?}")).in_file(path))
        };
        let (mut v, mut m) = (0, 0);
        for (name, role) in columns {
            let col = column(name)?;
            if *role == ChannelRole::Mask {
                if let Some(masks) = masks.as_deref_mut() {
                    copy_i64(&col.values, &mut masks[m * length..(m + 1) * length]).map_err(|e| e.in_file(path))?;
                }
                m += 1;
            } else {
                copy_f32(&col.values, &mut values[v * length..(v + 1) * length]).map_err(|e| e.in_file(path))?;
                v += 1;
            }
        }
        match &self.wave_column {
            Some(name) => {
                let mut grid = vec![0f64; length];
                let cell = crate::catalog::numbers(&column(name)?.values).map_err(|e| e.in_file(path))?;
                let short = || Error::new(ErrorKind::Decoding, format!("{name}: fewer than {length} wavelengths"));
                grid.copy_from_slice(cell.get(..length).ok_or_else(short).map_err(|e| e.in_file(path))?);
                self.frame.unwrap_or_default().to_vacuum_angstrom(&mut grid);
                Ok(Some(grid.into()))
            }
            None => Ok(None),
        }
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

/// A mask cell, exact: integer columns only.
fn copy_i64(values: &ColumnValues, out: &mut [i64]) -> Result<()> {
    let n = out.len();
    let short = || Error::new(ErrorKind::Decoding, format!("a mask cell holds fewer than {n} values"));
    macro_rules! widen {
        ($v:expr) => {
            out.iter_mut().zip($v.get(..n).ok_or_else(short)?).for_each(|(o, &x)| *o = i64::from(x))
        };
    }
    match values {
        ColumnValues::U8(v) => widen!(v),
        ColumnValues::I16(v) => widen!(v),
        ColumnValues::U16(v) => widen!(v),
        ColumnValues::I32(v) => widen!(v),
        ColumnValues::U32(v) => widen!(v),
        ColumnValues::I64(v) => out.copy_from_slice(v.get(..n).ok_or_else(short)?),
        // 64-bit flags keep their bits
        ColumnValues::U64(v) => out.iter_mut().zip(v.get(..n).ok_or_else(short)?).for_each(|(o, &x)| *o = x as i64),
        _ => return Err(Error::new(ErrorKind::Parameter, "a mask column must hold integers")),
    }
    Ok(())
}

impl SpectraSpec {
    fn builder<P: AsRef<Path>>(files: impl IntoIterator<Item = P>, source: Given) -> SpectraBuilder {
        DatasetBuilder::with_spec(SpectraSpec {
            files: files.into_iter().map(|p| p.as_ref().to_path_buf()).collect(),
            source,
            wavelength: None,
            meta: None,
            resample: None,
            frame: None,
            join: None,
        })
    }
}

impl SpectraBuilder {
    /// Adds the array column `name` of spectra in table columns
    /// ([`SpectroscopicDataset::table_columns`]) as a row of `role`, after those added before
    /// (the flux first): [`ChannelRole::Mask`] columns are read as exact integers into
    /// [`Spectrum::masks`], the others into [`Spectrum::values`], where the spectrum transforms
    /// find the flux and its weights by role.
    pub fn column(mut self, name: &str, role: ChannelRole) -> Self {
        if let Given::Source(Source::Columns(_, columns)) = &mut self.spec.source {
            columns.push((name.to_string(), role));
        }
        self
    }

    /// Where the wavelengths are, for the arms that do not say ([`Arm::wavelength`]) and for
    /// spectra in table columns.
    pub fn wavelength(mut self, source: Wavelength) -> Self {
        self.spec.wavelength = Some(source);
        self
    }

    /// Numeric metadata columns from the table `hdu` of each file, one row per spectrum.
    pub fn meta(mut self, hdu: impl Into<HduSelector>, columns: &[&str]) -> Self {
        self.spec.meta = Some((hdu.into(), columns.iter().map(|c| c.to_string()).collect()));
        self
    }

    /// Resamples every spectrum onto one grid as it is read (see [`Resample`]): spectra of
    /// files with other lengths, arms or steps (one instrument's and another's, in two datasets
    /// with the same grid composed into one loader) stack into one batch. Needs the spectra's
    /// wavelengths ([`SpectraBuilder::wavelength`]).
    pub fn resample(mut self, resample: Resample) -> Self {
        self.spec.resample = Some(resample);
        self
    }

    /// The unit and medium of the files' wavelengths, where the files do not say it or say it
    /// wrong (default: what each header says, [`WavelengthFrame`]; vacuum Ångström for a
    /// wavelength column).
    pub fn wavelength_frame(mut self, frame: WavelengthFrame) -> Self {
        self.spec.frame = Some(frame);
        self
    }

    /// Joins each spectrum to the row of `table` (FITS, Parquet or Arrow) whose column `id` holds
    /// its `id` (a metadata column, [`SpectraBuilder::meta`]): [`DatasetBuilder::label`] and
    /// [`DatasetBuilder::targets`] then name columns of `table` (a redshift catalog, a class
    /// table), which ride along in every batch. A spectrum whose ID the table lacks, or has twice,
    /// fails the build, naming the ID.
    ///
    /// ```no_run
    /// use torchfits_burn::{Arm, ChannelRole, SpectroscopicDataset, Wavelength};
    ///
    /// # fn main() -> Result<(), torchfits_core::Error> {
    /// // DESI coadds, each spectrum's redshift and spectral type from a redshift catalog
    /// let ds = SpectroscopicDataset::image_rows(["coadd-1.fits"])
    ///     .channel("B_FLUX", ChannelRole::Science)
    ///     .channel("B_IVAR", ChannelRole::InverseVariance)
    ///     .wavelength(Wavelength::Hdu("B_WAVELENGTH".into()))
    ///     .meta("FIBERMAP", &["TARGETID"])
    ///     .join("zall.parquet", "TARGETID")
    ///     .label("SPECTYPE")
    ///     .targets(&["Z"])
    ///     .build()?;
    /// println!("classes {:?}", ds.label_names());
    /// # Ok(())
    /// # }
    /// ```
    pub fn join(mut self, table: impl AsRef<Path>, id: &str) -> Self {
        self.spec.join = Some((table.as_ref().to_path_buf(), id.to_string()));
        self
    }
}

impl SpectraSpec {
    /// The source, with image rows as the one arm of the shared channels; an error for
    /// channels given where the source names its own.
    fn resolve(&self, options: &ReadOptions) -> Result<Source> {
        let elsewhere = || {
            Error::new(
                ErrorKind::Parameter,
                "channel() names the HDUs of image_rows; arms name theirs (Arm::channel), table columns theirs (column)",
            )
        };
        match &self.source {
            Given::ImageRows if options.channels.is_empty() => {
                Ok(Source::Rows(vec![Arm::new().channel(options.hdu.clone(), ChannelRole::Science)]))
            }
            Given::ImageRows => {
                let arm = options.channels.iter().fold(Arm::new(), |arm, (hdu, role)| arm.channel(hdu.clone(), *role));
                Ok(Source::Rows(vec![arm]))
            }
            Given::Source(_) if !options.channels.is_empty() => Err(elsewhere()),
            Given::Source(source) => Ok(source.clone()),
        }
    }
}

/// The rows' roles, one per HDU of an arm or per column: the same for every arm, the first the
/// flux, none a flag.
fn channel_roles(source: &Source) -> Result<Vec<ChannelRole>> {
    let roles = match source {
        Source::Rows(arms) => {
            let first = arms.first().map(|a| a.roles.clone()).unwrap_or_default();
            if arms.iter().any(|a| a.roles != first) {
                return Err(Error::new(ErrorKind::Parameter, "every arm needs HDUs of the same roles, in one order"));
            }
            first
        }
        Source::Columns(_, columns) => columns.iter().map(|(_, role)| *role).collect(),
    };
    if roles.first() != Some(&ChannelRole::Science) || roles.contains(&ChannelRole::Flag) {
        return Err(Error::new(
            ErrorKind::Parameter,
            format!("spectra of rows {roles:?}: the first is the flux (Science), and none is a Flag"),
        ));
    }
    Ok(roles)
}

impl ItemsSpec for SpectraSpec {
    type Items = Spectra;

    /// Reads each file's layout, wavelengths and metadata once.
    fn build(self, options: &ReadOptions, reader: &Reader) -> Result<Spectra> {
        if self.join.is_none() && (options.label.is_some() || !options.targets.is_empty()) {
            return Err(Error::new(
                ErrorKind::Parameter,
                "a label or target of spectra is a column of a table joined to them (SpectraBuilder::join)",
            ));
        }
        if let Some(r) = &self.resample {
            r.check()?;
        }
        let source = self.resolve(options)?;
        let roles = channel_roles(&source)?;
        let wave_column = match (&source, &self.wavelength) {
            (Source::Columns(..), Some(Wavelength::Column(name))) => Some(name.clone()),
            (_, Some(Wavelength::Column(_))) => {
                return Err(Error::new(ErrorKind::Parameter, "wavelengths in a column need spectra in table columns"));
            }
            _ => None,
        };
        let mut layout = Vec::with_capacity(self.files.len());
        let mut meta = Vec::new();
        let mut total = 0usize;
        let width = self.meta.as_ref().map_or(0, |(_, c)| c.len());
        let mut side = SideColumns::new();
        let mut files = Vec::with_capacity(self.files.len());
        let mut arms: Option<Vec<usize>> = None;
        for path in &self.files {
            // resampled spectra share the grid's length whatever the file's
            let first = if self.resample.is_some() { None } else { arms.as_deref() };
            let described = self.describe(&source, reader, path, first);
            if let Some(d) = reader.keep(path, described)? {
                for (name, values) in d.exact.iter() {
                    side.push(name, values.clone()).map_err(|e| e.in_file(path))?;
                }
                arms.get_or_insert(d.arms.clone());
                files.push(path.clone());
                meta.extend(d.meta_rows);
                layout.push(FileLayout { first: total, arms: d.arms.into(), grid: d.grid });
                total += d.nspec;
            }
        }
        let joined = match &self.join {
            Some((table, id)) => Some(join::Joined::read(table, id, &side, options, &layout, &files)?),
            None => None,
        };
        let (labels, label_names) = match &joined {
            Some(j) => (j.labels.clone(), j.label_names.clone()),
            None => (None, None),
        };
        for (name, values) in joined.into_iter().flat_map(|j| j.targets) {
            side.push(&name, values)?;
        }
        let grid_arms = self.resample.as_ref().map(|r| vec![r.grid().len()]).unwrap_or_default().into();
        Ok(Spectra {
            files,
            source,
            layout,
            arms: arms.unwrap_or_default().into(),
            roles: roles.into(),
            wave_column,
            meta,
            meta_width: width,
            total,
            side: (!side.is_empty()).then(|| Arc::new(side)),
            labels,
            label_names,
            resample: self.resample,
            grid_arms,
            frame: self.frame,
        })
    }
}

impl SpectraSpec {
    /// One file's spectra, arms, wavelengths and metadata rows, or why the dataset cannot use
    /// it; `first`: the first kept file's arm lengths, which every file must have (a batch
    /// stacks spectra of one shape, and burn's `Batcher` cannot fail).
    fn describe(&self, source: &Source, reader: &Reader, path: &Path, first: Option<&[usize]>) -> Result<Described> {
        let (nspec, arms, grid) = reader.cache().with(path, |f| match source {
            Source::Rows(arms) => self.describe_rows(f, arms),
            Source::Columns(hdu, columns) => self.describe_columns(f, hdu, columns),
        })?;
        if let Some(first) = first
            && first != arms.as_slice()
        {
            return Err(Error::new(
                ErrorKind::Parameter,
                format!("arms of {arms:?} wavelength samples, the first file's spectra have {first:?}"),
            )
            .in_file(path));
        }
        let (meta_rows, exact) = match &self.meta {
            Some((hdu, columns)) => self.read_meta(reader, path, hdu, columns, nspec)?,
            None => (None, SideColumns::new()),
        };
        Ok(Described { nspec, arms, grid, meta_rows, exact })
    }

    /// Spectra, arm lengths and the wavelength grid of a file of image rows.
    fn describe_rows(&self, f: &FitsFile, arms: &[Arm]) -> Result<Shape> {
        let mut nspec = None;
        let mut lengths = Vec::with_capacity(arms.len());
        let mut grid: Option<Vec<f64>> = Some(Vec::new());
        for arm in arms {
            let mut shape: Option<Vec<usize>> = None;
            for hdu in &arm.hdus {
                let img = f.image(hdu.clone())?;
                let s = img.shape().to_vec();
                let other_rows = nspec.is_some_and(|n| s.first() != Some(&n));
                if s.len() != 2 || shape.as_ref().is_some_and(|f| f != &s) || other_rows {
                    return Err(Error::new(
                        ErrorKind::Parameter,
                        format!(
                            "spectra need [nspec, nwave] images of one shape (and one nspec for all arms), not {s:?}"
                        ),
                    )
                    .in_hdu(img.index()));
                }
                shape = Some(s);
            }
            let [n, nwave] = shape.as_deref().and_then(|s| <[usize; 2]>::try_from(s).ok()).unwrap_or_default();
            nspec = Some(n);
            lengths.push(nwave);
            match (arm.wavelength.as_ref().or(self.wavelength.as_ref()), grid.as_mut()) {
                (Some(source), Some(g)) => g.extend(arm_grid(f, source, arm, nwave, self.frame)?),
                _ => grid = None,
            }
        }
        Ok((nspec.unwrap_or(0), lengths, grid.filter(|g| !g.is_empty()).map(Into::into)))
    }

    /// Spectra, length and the wavelength grid (a shared one) of a file of table cells.
    fn describe_columns(&self, f: &FitsFile, hdu: &HduSelector, columns: &[(String, ChannelRole)]) -> Result<Shape> {
        let t = f.table(hdu.clone())?;
        let rows = t.selected_rows() as usize;
        let schema = t.schema();
        let mut width = None;
        let wave = match &self.wavelength {
            Some(Wavelength::Column(name)) => Some(name),
            _ => None,
        };
        for name in columns.iter().map(|(name, _)| name).chain(wave) {
            let c = schema
                .column(name)
                .ok_or_else(|| Error::new(ErrorKind::Parameter, format!("the table has no column {name:?}")))?;
            if width.is_some_and(|w| w != c.repeat) {
                return Err(Error::new(
                    ErrorKind::Parameter,
                    format!("column {name:?} differs in length from the flux"),
                ));
            }
            width = Some(c.repeat);
        }
        let nwave = width.unwrap_or(0);
        let grid = match &self.wavelength {
            Some(Wavelength::Hdu(h)) => Some(hdu_grid(f, h, nwave, self.frame)?.into()),
            Some(Wavelength::Header) => {
                let header = f.header(hdu.clone())?;
                let mut grid = wavelength::from_header(&header, nwave)?;
                self.frame.map_or_else(|| WavelengthFrame::of_header(&header), Ok)?.to_vacuum_angstrom(&mut grid);
                Some(grid.into())
            }
            _ => None,
        };
        Ok((rows, vec![nwave], grid))
    }

    /// The metadata rows (f64 features) and exact columns of one file.
    fn read_meta(
        &self,
        reader: &Reader,
        path: &Path,
        hdu: &HduSelector,
        columns: &[String],
        nspec: usize,
    ) -> Result<(Option<Vec<f64>>, SideColumns)> {
        let names: Vec<&str> = columns.iter().map(String::as_str).collect();
        let batches = reader
            .cache()
            .with(path, |f| f.table(hdu.clone())?.with_columns(&names)?.build()?.collect::<Result<Vec<_>>>())?;
        let mut cols: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
        let mut exact = SideColumns::new();
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
        let mut rows = Vec::with_capacity(nspec * names.len());
        for r in 0..nspec {
            rows.extend(cols.iter().map(|c| c[r]));
        }
        Ok((Some(rows), exact))
    }
}

/// A file's spectra, the samples of each arm and the wavelength grid its spectra share.
type Shape = (usize, Vec<usize>, Option<Arc<[f64]>>);

/// What [`SpectraBuilder::describe`] learns of a file.
struct Described {
    nspec: usize,
    arms: Vec<usize>,
    grid: Option<Arc<[f64]>>,
    meta_rows: Option<Vec<f64>>,
    exact: SideColumns,
}

/// An arm's wavelengths, vacuum Ångström: from its flux HDU's header or from an HDU of
/// wavelengths, in the unit and medium `frame` says or else the header.
fn arm_grid(
    f: &FitsFile,
    source: &Wavelength,
    arm: &Arm,
    nwave: usize,
    frame: Option<WavelengthFrame>,
) -> Result<Vec<f64>> {
    match source {
        Wavelength::Header => {
            let flux = arm.hdus.first().cloned().unwrap_or(HduSelector::Index(0));
            let img = f.image(flux)?;
            let mut grid = wavelength::from_header(img.header(), nwave).map_err(|e| e.in_hdu(img.index()))?;
            let frame = frame.map_or_else(|| WavelengthFrame::of_header(img.header()), Ok);
            frame.map_err(|e| e.in_hdu(img.index()))?.to_vacuum_angstrom(&mut grid);
            Ok(grid)
        }
        Wavelength::Hdu(h) => hdu_grid(f, h, nwave, frame),
        Wavelength::Column(_) => Err(Error::new(ErrorKind::Parameter, "wavelengths in a column need table spectra")),
    }
}

/// The wavelengths of a one-dimensional image HDU of `nwave` values, vacuum Ångström (its
/// header's unit and medium, unless `frame` says).
fn hdu_grid(f: &FitsFile, hdu: &HduSelector, nwave: usize, frame: Option<WavelengthFrame>) -> Result<Vec<f64>> {
    let img = f.image(hdu.clone())?;
    if img.shape().iter().product::<usize>() != nwave {
        return Err(Error::new(
            ErrorKind::Parameter,
            format!("a wavelength HDU of shape {:?} for spectra of {nwave} samples", img.shape()),
        )
        .in_hdu(img.index()));
    }
    let mut grid = img.read::<f64>().map_err(|e| e.in_hdu(img.index()))?;
    let frame =
        frame.map_or_else(|| WavelengthFrame::of_header(img.header()), Ok).map_err(|e| e.in_hdu(img.index()))?;
    frame.to_vacuum_angstrom(&mut grid);
    Ok(grid)
}
