//! Stamps around catalog positions.

// Indexing: catalog rows and image indices are the dataset's own (placed at build);
// positions are pairs; stamp rows are cut from a section clipped to the image.
#![allow(clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use burn::data::dataset::{Dataset, DatasetError};
use torchfits_core::{BufferPool, Error, ErrorKind, FileCache, HduSelector, OpenOptions, Result, Section, Wcs};

use crate::catalog::Catalog;
use crate::columns::SideColumns;
use crate::epochs::Epoch;
use crate::failures::{Failures, OnError};
use crate::stamp::Stamp;

/// One image of a [`CatalogCutoutDataset`].
#[derive(Debug)]
struct Image {
    path: PathBuf,
    /// `[rows, columns]`.
    shape: [usize; 2],
    wcs: Wcs,
}

/// A catalog row found on an image.
#[derive(Debug, Clone, Copy)]
struct Entry {
    image: usize,
    /// 0-based pixel of the position.
    x: f64,
    y: f64,
    label: Option<i64>,
    row: usize,
}

/// Stamps of `size` x `size` pixels centred on the sky positions of a catalog (a FITS table,
/// Parquet or Arrow file with RA/Dec columns, degrees, and optionally a label column), cut from a
/// set of images with WCS: each position is placed on the first image whose pixels it falls on
/// (through the image's WCS, once, when the dataset is built), and each item reads just its
/// stamp (a section read: for a tile-compressed image only the tiles it touches). Stamps that
/// cross the image's edge are padded with 0 and flagged in a mask channel (1.0 outside). Items
/// are read through one cache of open files shared by every loader thread (memory-mapped unless
/// [`CutoutBuilder::mmap`] says otherwise) into buffers from a pool:
/// no per-item allocation in the steady state.
///
/// ```no_run
/// use burn::data::dataset::Dataset;
/// use torchfits_burn::CatalogCutoutDataset;
///
/// # fn main() -> Result<(), torchfits_core::Error> {
/// let ds = CatalogCutoutDataset::builder("catalog.fits", ["field1.fits", "field2.fits"])
///     .columns("RA", "DEC")
///     .label("CLASS")
///     .size(32)
///     .build()?;
/// println!("{} stamps ({} positions on no image)", ds.len(), ds.unplaced().len());
/// let stamp = ds.get(0).expect("a readable file");
/// assert_eq!((stamp.channels, stamp.height, stamp.width), (2, 32, 32)); // image + mask
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct CatalogCutoutDataset {
    cache: FileCache,
    images: Vec<Image>,
    entries: Vec<Entry>,
    unplaced: Vec<usize>,
    hdu: HduSelector,
    size: usize,
    pool: BufferPool,
    side: Option<Arc<SideColumns>>,
    epoch: Epoch,
    on_error: OnError,
    failures: Failures,
}

/// Options of a [`CatalogCutoutDataset`] (from [`CatalogCutoutDataset::builder`]).
#[derive(Debug, Clone)]
pub struct CutoutBuilder {
    catalog: PathBuf,
    images: Vec<PathBuf>,
    ra: String,
    dec: String,
    label: Option<String>,
    targets: Vec<String>,
    catalog_hdu: Option<String>,
    hdu: HduSelector,
    size: usize,
    pool: Option<BufferPool>,
    mmap: bool,
    open_files: usize,
    on_error: OnError,
    urls: bool,
}

impl CutoutBuilder {
    /// How many files the dataset keeps open at once (default [`FileCache::DEFAULT_CAPACITY`]):
    /// every loader thread reads through one shared cache of open files.
    pub fn open_files(mut self, n: usize) -> Self {
        self.open_files = n.max(1);
        self
    }

    /// Whether images are read through a memory map (default true: a stamp is many short rows)
    /// or with `pread`.
    pub fn mmap(mut self, yes: bool) -> Self {
        self.mmap = yes;
        self
    }

    /// Whether the catalog and the images may be URLs of object storage (`s3://`, `gs://`,
    /// `az://`, `http(s)://`), opened by range requests with the `remote` feature. Off by
    /// default: every name is a path ([`torchfits_core::OpenOptions::urls`]).
    pub fn urls(mut self, yes: bool) -> Self {
        self.urls = yes;
        self
    }

    /// What an unreadable image does (default [`OnError::Fail`]): with a replacement policy an
    /// image that cannot be opened (or has no usable WCS) is left out when the dataset is built
    /// (its positions go to the other images, or are unplaced), and a stamp that cannot be read
    /// is replaced by one that can; both are counted in [`CatalogCutoutDataset::failures`].
    pub fn on_error(mut self, policy: OnError) -> Self {
        self.on_error = policy;
        self
    }

    /// The RA and Dec columns (degrees; default `RA`, `DEC`).
    pub fn columns(mut self, ra: &str, dec: &str) -> Self {
        self.ra = ra.to_string();
        self.dec = dec.to_string();
        self
    }

    /// The label column: integer classes, or strings (their codes: the index of each string
    /// in the column's sorted distinct strings, [`crate::SideValues::Code`]); a float column
    /// only if every value is a whole number (else the build fails: a redshift is a target).
    pub fn label(mut self, column: &str) -> Self {
        self.label = Some(column.to_string());
        self
    }

    /// Catalog columns that ride along with each stamp as targets or features, exact, several at
    /// once: each batch has them in [`crate::StampBatch::targets`] (integers as Int, floats as
    /// Float, strings as dictionary codes; see [`crate::SideBatch`]).
    pub fn targets(mut self, columns: &[&str]) -> Self {
        self.targets = columns.iter().map(|c| c.to_string()).collect();
        self
    }

    /// The catalog's table HDU, in a FITS catalog (default: the first binary table).
    pub fn catalog_hdu(mut self, hdu: &str) -> Self {
        self.catalog_hdu = Some(hdu.to_string());
        self
    }

    /// The images' HDU (default: the primary HDU, 0).
    pub fn hdu(mut self, hdu: impl Into<HduSelector>) -> Self {
        self.hdu = hdu.into();
        self
    }

    /// The stamps' side, pixels (default 32).
    pub fn size(mut self, size: usize) -> Self {
        self.size = size;
        self
    }

    /// The pool the stamps' buffers come from (default: a pool of its own).
    pub fn pool(mut self, pool: BufferPool) -> Self {
        self.pool = Some(pool);
        self
    }

    /// Reads the catalog and every image's header and WCS, and places each position.
    pub fn build(self) -> Result<CatalogCutoutDataset> {
        if self.size == 0 {
            return Err(Error::new(ErrorKind::Parameter, "the stamp size must be at least 1"));
        }
        let mut names = vec![self.ra.as_str(), self.dec.as_str()];
        names.extend(self.label.as_deref());
        names.extend(self.targets.iter().map(String::as_str));
        let catalog = Catalog::read_named(&self.catalog, &names, self.catalog_hdu.as_deref(), self.urls)?;
        let numeric = |name: &str| {
            catalog.column(name).ok_or_else(|| {
                Error::new(ErrorKind::Parameter, format!("column {name:?} holds no numbers: it cannot be a coordinate"))
                    .in_file(&self.catalog)
            })
        };
        let (ra, dec) = (numeric(&self.ra)?, numeric(&self.dec)?);
        let labels = match &self.label {
            Some(l) => Some(
                catalog
                    .exact(l)
                    .map(|v| v.as_labels(l))
                    .transpose()
                    .map_err(|e| e.in_file(&self.catalog))?
                    .unwrap_or_default(),
            ),
            None => None,
        };
        let side = match self.targets.is_empty() {
            true => None,
            false => Some(Arc::new(catalog.side_columns(&self.targets)?)),
        };
        let world: Vec<f64> = ra.iter().zip(dec).flat_map(|(&a, &d)| [a, d]).collect();
        let cache = FileCache::new(self.open_files, OpenOptions::new().mmap(self.mmap).urls(self.urls));
        let mut place: Vec<Option<(usize, f64, f64)>> = vec![None; catalog.len()];
        let mut images = Vec::with_capacity(self.images.len());
        let failures = Failures::default();
        for path in &self.images {
            let Some(([ny, nx], wcs, pix)) =
                self.on_error.at_build(&failures, path, self.place(&cache, path, &world))?
            else {
                continue;
            };
            let k = images.len();
            for (i, p) in pix.chunks_exact(2).enumerate() {
                let inside = p[0] >= -0.5 && p[0] < nx as f64 - 0.5 && p[1] >= -0.5 && p[1] < ny as f64 - 0.5;
                if place[i].is_none() && inside {
                    place[i] = Some((k, p[0], p[1]));
                }
            }
            images.push(Image { path: path.clone(), shape: [ny, nx], wcs });
        }
        let mut entries = Vec::with_capacity(place.len());
        let mut unplaced = Vec::new();
        for (row, p) in place.into_iter().enumerate() {
            match p {
                Some((image, x, y)) => {
                    let label = labels.as_ref().map(|l| l[row]);
                    entries.push(Entry { image, x, y, label, row });
                }
                None => unplaced.push(row),
            }
        }
        Ok(CatalogCutoutDataset {
            cache,
            images,
            entries,
            unplaced,
            hdu: self.hdu,
            size: self.size,
            pool: self.pool.unwrap_or_default(),
            side,
            epoch: Epoch::default(),
            on_error: self.on_error,
            failures,
        })
    }

    /// One image's shape, WCS and the pixel positions of `world` on it, or why it cannot be used
    /// (naming the file).
    fn place(&self, cache: &FileCache, path: &Path, world: &[f64]) -> Result<([usize; 2], Wcs, Vec<f64>)> {
        let (shape, wcs) = cache.with(path, |f| {
            let shape = f.image(self.hdu.clone())?.shape().to_vec();
            Ok((shape, f.wcs(self.hdu.clone())?))
        })?;
        let [ny, nx] = shape[..] else {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("stamps need a 2-D image, this one has shape {shape:?}"),
            )
            .in_file(path));
        };
        let mut pix = vec![0.0; world.len()];
        wcs.world_to_pixel(world, &mut pix).map_err(|e| e.in_file(path))?;
        Ok(([ny, nx], wcs, pix))
    }
}

impl CatalogCutoutDataset {
    /// A dataset of the positions of `catalog` on `images` (see [`CutoutBuilder`]).
    pub fn builder<P: AsRef<Path>>(catalog: impl AsRef<Path>, images: impl IntoIterator<Item = P>) -> CutoutBuilder {
        CutoutBuilder {
            catalog: catalog.as_ref().to_path_buf(),
            images: images.into_iter().map(|p| p.as_ref().to_path_buf()).collect(),
            ra: "RA".into(),
            dec: "DEC".into(),
            label: None,
            targets: Vec::new(),
            catalog_hdu: None,
            hdu: HduSelector::from(0usize),
            size: 32,
            pool: None,
            mmap: true,
            open_files: FileCache::DEFAULT_CAPACITY,
            on_error: OnError::Fail,
            urls: false,
        }
    }

    /// Number of stamps (catalog rows placed on an image).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no catalog row falls on an image.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The stamps that could not be read, and their files (see [`CutoutBuilder::on_error`]).
    pub fn failures(&self) -> &Failures {
        &self.failures
    }

    /// The handle on the epoch substitutions are drawn for ([`OnError::Substitute`]).
    pub fn epoch(&self) -> Epoch {
        self.epoch.clone()
    }

    /// The catalog columns asked for with [`CutoutBuilder::targets`], exact, one row per
    /// catalog row ([`CatalogCutoutDataset::row`] gives an item's).
    pub fn side_columns(&self) -> Option<&SideColumns> {
        self.side.as_deref()
    }

    /// The catalog rows that fall on no image (they are not items).
    pub fn unplaced(&self) -> &[usize] {
        &self.unplaced
    }

    /// The catalog row of item `index`.
    pub fn row(&self, index: usize) -> Option<usize> {
        self.entries.get(index).map(|e| e.row)
    }

    /// The images' HDU.
    pub fn hdu(&self) -> &HduSelector {
        &self.hdu
    }

    /// The image files.
    pub fn image_paths(&self) -> impl Iterator<Item = &Path> {
        self.images.iter().map(|i| i.path.as_path())
    }

    /// The WCS of image `image` (for coordinate planes).
    pub fn wcs(&self, image: usize) -> Option<&Wcs> {
        self.images.get(image).map(|i| &i.wcs)
    }

    /// The image each item comes from (its index among [`Self::image_paths`]): the groups of a
    /// split that keeps one image's stamps on one side ([`crate::split_by_group`]).
    pub fn item_images(&self) -> Vec<usize> {
        self.entries.iter().map(|e| e.image).collect()
    }

    /// The labels of every item (None where the dataset has no label column).
    pub fn labels(&self) -> Vec<Option<i64>> {
        self.entries.iter().map(|e| e.label).collect()
    }

    /// The stamp of item `index`, or the error reading it (naming the file and the HDU).
    pub fn stamp(&self, index: usize) -> Result<Stamp> {
        let e = *self.entries.get(index).ok_or_else(|| {
            Error::new(ErrorKind::Parameter, format!("item {index} of {} does not exist", self.entries.len()))
        })?;
        let image = &self.images[e.image];
        let s = self.size;
        let [ny, nx] = image.shape;
        // the stamp's first pixel: the position's pixel, less half the size
        let x0 = (e.x + 0.5).floor() as i64 - (s / 2) as i64;
        let y0 = (e.y + 0.5).floor() as i64 - (s / 2) as i64;
        let mut buf = self.pool.get::<f32>(2 * s * s).map_err(|err| err.in_file(&image.path))?;
        let (data, mask) = buf.split_at_mut(s * s);
        let clip = |a: i64, n: usize| a.clamp(0, n as i64) as usize;
        let (xa, xb) = (clip(x0, nx), clip(x0 + s as i64, nx));
        let (ya, yb) = (clip(y0, ny), clip(y0 + s as i64, ny));
        if xa == x0 as usize && xb - xa == s && ya == y0 as usize && yb - ya == s && x0 >= 0 && y0 >= 0 {
            // inside the image: straight into the stamp
            let section = Section::new(vec![ya..yb, xa..xb]);
            self.cache.with(&image.path, |f| f.image(self.hdu.clone())?.read_section_into(&section, data))?;
            mask.fill(0.0);
        } else {
            data.fill(0.0);
            mask.fill(1.0);
            if xb > xa && yb > ya {
                let w = xb - xa;
                let mut part = self.pool.get::<f32>((yb - ya) * w).map_err(|err| err.in_file(&image.path))?;
                let section = Section::new(vec![ya..yb, xa..xb]);
                self.cache.with(&image.path, |f| f.image(self.hdu.clone())?.read_section_into(&section, &mut part))?;
                for (r, row) in part.chunks_exact(w).enumerate() {
                    let sy = (ya + r) as i64 - y0;
                    let sx = xa as i64 - x0;
                    let at = sy as usize * s + sx as usize;
                    data[at..at + w].copy_from_slice(row);
                    mask[at..at + w].fill(0.0);
                }
            }
        }
        Ok(Stamp {
            pixels: Arc::new(buf),
            channels: 2,
            mask_channels: 1,
            height: s,
            width: s,
            label: e.label,
            image: e.image,
            origin: (x0 as f64, y0 as f64),
            index,
            masks: None,
            weights: None,
            weight_roles: Arc::new([]),
            row: e.row,
            side: self.side.clone(),
        })
    }
}

impl Dataset<Stamp> for CatalogCutoutDataset {
    fn get(&self, index: usize) -> std::result::Result<Stamp, DatasetError> {
        assert!(index < self.entries.len(), "Index out of bounds for dataset: {index} >= {}", self.entries.len());
        self.stamp(index).or_else(|e| {
            self.on_error.recover(&self.failures, index, self.entries.len(), self.epoch.get(), e, |j| self.stamp(j))
        })
    }

    fn len(&self) -> usize {
        self.entries.len()
    }
}
