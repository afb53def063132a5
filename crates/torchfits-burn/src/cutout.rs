//! Stamps around catalog positions.

// Indexing: catalog rows and image indices are the dataset's own (placed at build);
// positions are pairs; stamp rows are cut from a section clipped to the image.
#![allow(clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use torchfits_core::{Error, ErrorKind, HduSelector, Result, Wcs};

use crate::catalog::Catalog;
use crate::columns::SideColumns;
use crate::fingerprint::Fnv;
use crate::groups::{GroupBy, cell_keys, keys_of_rows, read_column_keys};
use crate::planes::{PlaneSet, WindowOut};
use crate::reading::{DatasetBuilder, FitsDataset, Items, ItemsSpec, ReadOptions, Reader};
use crate::roles::{Channel, ChannelRole};
use crate::stamp::Stamp;
use crate::stream::{ShardIndex, StampLayout, StreamItems};

/// One image of a [`CatalogCutoutDataset`].
#[derive(Debug)]
struct Image {
    path: PathBuf,
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

impl Entry {
    /// The first pixel (x, y) of its stamp of side `s`: the position's pixel, less half the size.
    fn origin(&self, s: usize) -> [i64; 2] {
        [(self.x + 0.5).floor() as i64 - (s / 2) as i64, (self.y + 0.5).floor() as i64 - (s / 2) as i64]
    }
}

/// Stamps of `size` x `size` pixels centred on the sky positions of a catalog (a FITS table,
/// Parquet or Arrow file with RA/Dec columns, degrees, and optionally a label column), cut from a
/// set of images with WCS: each position is placed on the first image whose pixels it falls on
/// (through the image's WCS, once, when the dataset is built; items are numbered image by image,
/// in catalog order within an image: [`CatalogCutouts::row`] gives an item's catalog row), and
/// each item reads just its
/// stamp (a section read: for a tile-compressed image only the tiles it touches) of every plane
/// ([`DatasetBuilder::channel`]: the image's pixels by default, or science, mask and weight HDUs).
/// Stamps that cross the image's edge are padded with 0 and flagged in a flag plane (1.0
/// outside; [`Stamp::flags`]). Items are read through one cache of open files shared by every
/// loader thread (memory-mapped unless [`CutoutBuilder::mmap`] says otherwise) into buffers from
/// a pool: no per-item allocation in the steady state.
///
/// ```
/// use burn::data::dataset::Dataset;
/// use torchfits_burn::{CatalogCutoutDataset, ChannelRole, StampBatcher};
///
/// # fn main() -> Result<(), torchfits_core::Error> {
/// // the sample file holds an image with a WCS (SCI) and a catalog of two stars (CATALOG)
/// let sample = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
/// let ds = CatalogCutoutDataset::builder(sample, [sample])
///     .catalog_hdu("CATALOG")
///     .hdu("SCI")
///     .columns("RA", "DEC") // the default; `ra` and `dec` match in any case
///     .targets(&["flux"])
///     .size(16)
///     .build()?;
/// println!("{} stamps ({} positions on no image)", ds.len(), ds.unplaced().len());
/// let stamp = ds.get(0).expect("a readable file");
/// assert_eq!((stamp.channels, stamp.height, stamp.width), (1, 16, 16)); // SCI's pixels
/// assert_eq!(ds.channels()[1].role, ChannelRole::Flag); // and its edge flag, in every batch
/// let batch = StampBatcher::new().try_batch(vec![stamp], &burn::tensor::Device::flex())?;
/// assert_eq!(batch.images.dims(), [1, 2, 16, 16]);
/// # Ok(())
/// # }
/// ```
pub type CatalogCutoutDataset = FitsDataset<CatalogCutouts>;

/// The stamps of a [`CatalogCutoutDataset`]: the images, and each catalog row placed on one.
#[derive(Debug)]
pub struct CatalogCutouts {
    images: Vec<Image>,
    entries: Vec<Entry>,
    unplaced: Vec<usize>,
    size: usize,
    planes: PlaneSet,
    side: Option<Arc<SideColumns>>,
    label_names: Option<Arc<[String]>>,
    /// Where the catalog is, to read a column to group the items by.
    catalog: CatalogSource,
}

/// The catalog of a [`CatalogCutoutDataset`]: its file, table and position columns.
#[derive(Debug, Clone)]
struct CatalogSource {
    path: PathBuf,
    hdu: Option<String>,
    urls: bool,
    ra: String,
    dec: String,
}

impl CatalogSource {
    /// One group key per catalog row.
    fn keys(&self, by: &GroupBy) -> Result<Vec<i64>> {
        match by {
            GroupBy::Column(name) => read_column_keys(&self.path, self.hdu.as_deref(), self.urls, name),
            GroupBy::Cell { depth } => {
                let columns = [self.ra.as_str(), self.dec.as_str()];
                let catalog = Catalog::read_named(&self.path, &columns, self.hdu.as_deref(), self.urls)?;
                let (ra, dec) = (catalog.column(&self.ra), catalog.column(&self.dec));
                let (Some(ra), Some(dec)) = (ra, dec) else {
                    return Err(Error::new(ErrorKind::Parameter, "the position columns hold no numbers"));
                };
                cell_keys(*depth, ra, dec).map_err(|e| e.in_file(&self.path))
            }
        }
    }
}

/// Options of a [`CatalogCutoutDataset`] (from [`CatalogCutoutDataset::builder`]): those every
/// dataset has ([`DatasetBuilder`]) and these.
pub type CutoutBuilder = DatasetBuilder<CutoutSpec>;

/// What makes a [`CatalogCutoutDataset`] its own ([`CutoutBuilder`]).
#[derive(Debug, Clone)]
pub struct CutoutSpec {
    catalog: PathBuf,
    images: Vec<PathBuf>,
    ra: String,
    dec: String,
    catalog_hdu: Option<String>,
    size: usize,
}

impl CutoutBuilder {
    /// The RA and Dec columns (degrees; default `RA`, `DEC`, in any case: `ra` and `dec` do).
    pub fn columns(mut self, ra: &str, dec: &str) -> Self {
        self.spec.ra = ra.to_string();
        self.spec.dec = dec.to_string();
        self
    }

    /// The catalog's table HDU, in a FITS catalog (default: the first binary table).
    pub fn catalog_hdu(mut self, hdu: &str) -> Self {
        self.spec.catalog_hdu = Some(hdu.to_string());
        self
    }
}

/// What makes a dataset of square stamps (catalog cutouts, survey stamps): their side, the one
/// option the two share beyond those of every dataset ([`DatasetBuilder::size`]).
pub trait StampSpec {
    /// The stamps' side, pixels.
    fn size_mut(&mut self) -> &mut usize;
}

impl StampSpec for CutoutSpec {
    fn size_mut(&mut self) -> &mut usize {
        &mut self.size
    }
}

impl<S: StampSpec> DatasetBuilder<S> {
    /// The stamps' side, pixels (default 32).
    pub fn size(mut self, size: usize) -> Self {
        *self.spec.size_mut() = size;
        self
    }
}

/// An error for stamps of no pixel.
pub(crate) fn check_size(size: usize) -> Result<()> {
    match size {
        0 => Err(Error::new(ErrorKind::Parameter, "the stamp size must be at least 1")),
        _ => Ok(()),
    }
}

impl ItemsSpec for CutoutSpec {
    type Items = CatalogCutouts;

    /// Reads the catalog and every image's header and WCS, and places each position.
    fn build(self, options: &ReadOptions, reader: &Reader) -> Result<CatalogCutouts> {
        check_size(self.size)?;
        let planes = PlaneSet::new(options)?;
        let mut names = vec![self.ra.as_str(), self.dec.as_str()];
        names.extend(options.label.as_deref());
        names.extend(options.targets.iter().map(String::as_str));
        let catalog = Catalog::read_named(&self.catalog, &names, self.catalog_hdu.as_deref(), options.urls)?;
        let numeric = |name: &str| {
            catalog.column(name).ok_or_else(|| {
                Error::new(ErrorKind::Parameter, format!("column {name:?} holds no numbers: it cannot be a coordinate"))
                    .in_file(&self.catalog)
            })
        };
        let (ra, dec) = (numeric(&self.ra)?, numeric(&self.dec)?);
        let label_column = options.label.as_deref().and_then(|l| catalog.exact(l).map(|v| (l, v)));
        let labels = label_column.map(|(l, v)| v.as_labels(l)).transpose().map_err(|e| e.in_file(&self.catalog))?;
        let label_names = label_column.and_then(|(_, v)| v.dictionary());
        let side = match options.targets.is_empty() {
            true => None,
            false => Some(Arc::new(catalog.side_columns(&options.targets)?)),
        };
        let world: Vec<f64> = ra.iter().zip(dec).flat_map(|(&a, &d)| [a, d]).collect();
        let mut place: Vec<Option<(usize, f64, f64)>> = vec![None; catalog.len()];
        let mut images = Vec::with_capacity(self.images.len());
        for path in &self.images {
            let Some(([ny, nx], wcs, pix)) = reader.keep(path, self.place(reader, &planes, path, &world))? else {
                continue;
            };
            let k = images.len();
            for (i, p) in pix.chunks_exact(2).enumerate() {
                let inside = p[0] >= -0.5 && p[0] < nx as f64 - 0.5 && p[1] >= -0.5 && p[1] < ny as f64 - 0.5;
                if place[i].is_none() && inside {
                    place[i] = Some((k, p[0], p[1]));
                }
            }
            images.push(Image { path: path.clone(), wcs });
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
        // items image by image (catalog order within an image): a pass in index order reads
        // one image after the other, and a stream's shards are the images
        entries.sort_by_key(|e| e.image);
        let catalog =
            CatalogSource { path: self.catalog, hdu: self.catalog_hdu, urls: options.urls, ra: self.ra, dec: self.dec };
        Ok(CatalogCutouts { images, entries, unplaced, size: self.size, planes, side, label_names, catalog })
    }
}

impl CutoutSpec {
    /// One image's shape, WCS and the pixel positions of `world` on it, or why it cannot be used
    /// (naming the file).
    fn place(
        &self,
        reader: &Reader,
        planes: &PlaneSet,
        path: &Path,
        world: &[f64],
    ) -> Result<([usize; 2], Wcs, Vec<f64>)> {
        let hdu = reader.hdu();
        let (shape, planes_shape, wcs) = reader.cache().with(path, |f| {
            let shape = f.image(hdu.clone())?.shape().to_vec();
            Ok((shape, planes.shape(f)?, f.wcs(hdu.clone())?))
        })?;
        let [ny, nx] = shape[..] else {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("stamps need a 2-D image, this one has shape {shape:?}"),
            )
            .in_file(path));
        };
        if planes_shape != [ny, nx] {
            return Err(Error::new(
                ErrorKind::Parameter,
                format!("the channels have shape {planes_shape:?}, the image of the WCS ({hdu}) {shape:?}"),
            )
            .in_file(path));
        }
        let mut pix = vec![0.0; world.len()];
        wcs.world_to_pixel(world, &mut pix).map_err(|e| e.in_file(path))?;
        Ok(([ny, nx], wcs, pix))
    }
}

impl CatalogCutoutDataset {
    /// A dataset of the positions of `catalog` on `images` (see [`CutoutBuilder`]).
    pub fn builder<P: AsRef<Path>>(catalog: impl AsRef<Path>, images: impl IntoIterator<Item = P>) -> CutoutBuilder {
        DatasetBuilder::with_spec(CutoutSpec {
            catalog: catalog.as_ref().to_path_buf(),
            images: images.into_iter().map(|p| p.as_ref().to_path_buf()).collect(),
            ra: "RA".into(),
            dec: "DEC".into(),
            catalog_hdu: None,
            size: 32,
        })
        .cutting_stamps()
    }

    /// The images' HDU.
    pub fn hdu(&self) -> &HduSelector {
        self.reader().hdu()
    }
}

impl CatalogCutouts {
    /// The catalog columns asked for with [`CutoutBuilder::targets`], exact, one row per
    /// catalog row ([`CatalogCutouts::row`] gives an item's).
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

    /// The planes of every stamp, as a batch holds them: the science planes
    /// ([`DatasetBuilder::channel`]; default the image HDU), then the edge flag (1.0 where the
    /// stamp is off its image), then the masks and the weights.
    pub fn channels(&self) -> Vec<Channel> {
        let (science, masks, weights) = self.planes.channels(None);
        let edge = science.first().map(|c| Channel::of(ChannelRole::Flag, &c.band, &c.hdu));
        science.into_iter().chain(edge).chain(masks).chain(weights).collect()
    }

    /// The names of the label codes, for a label column of strings (code `k` is `names[k]`).
    pub fn label_names(&self) -> Option<&[String]> {
        self.label_names.as_deref()
    }
}

impl Items for CatalogCutouts {
    type Item = Stamp;

    fn count(&self) -> usize {
        self.entries.len()
    }

    /// The key of each item's catalog row.
    fn group_keys(&self, by: &GroupBy) -> Result<Vec<i64>> {
        let keys = self.catalog.keys(by)?;
        keys_of_rows(&keys, self.entries.iter().map(|e| e.row), &self.catalog.path)
    }

    /// The stamp of item `index`, or the error reading it (naming the file and the HDU).
    fn read(&self, reader: &Reader, index: usize) -> Result<Stamp> {
        let e = *self.entries.get(index).ok_or_else(|| {
            Error::new(ErrorKind::Parameter, format!("item {index} of {} does not exist", self.entries.len()))
        })?;
        let image = &self.images[e.image];
        let s = self.size;
        let [x0, y0] = e.origin(s);
        let (science, masks, weights) = self.planes.counts();
        let pool = reader.pool();
        let in_file = |err: Error| err.in_file(&image.path);
        let mut pixels = pool.get::<f32>(science * s * s).map_err(in_file)?;
        let mut mask = (masks > 0).then(|| pool.get::<i64>(masks * s * s)).transpose().map_err(in_file)?;
        let mut weight = (weights > 0).then(|| pool.get::<f32>(weights * s * s)).transpose().map_err(in_file)?;
        let out = WindowOut {
            science: &mut pixels,
            masks: mask.as_deref_mut().unwrap_or_default(),
            weights: weight.as_deref_mut().unwrap_or_default(),
        };
        let flags = self.planes.cut_into(reader, &image.path, [x0, y0], [s, s], out)?;
        Ok(Stamp {
            pixels: Arc::new(pixels),
            channels: science,
            flags: flags.map(Arc::new),
            flag_channels: 1,
            height: s,
            width: s,
            label: e.label,
            image: e.image,
            origin: (x0 as f64, y0 as f64),
            index,
            masks: mask.map(Arc::new),
            weights: weight.map(Arc::new),
            weight_roles: self.planes.weight_roles(),
            row: e.row,
            side: self.side.clone(),
        })
    }
}

/// A stream's source ([`crate::stream::StampStream`]): one shard per image.
impl StreamItems for CatalogCutouts {
    /// The items grouped by image, as a stream reads them ([`crate::stream`]): shard `k` is the
    /// stamps of image `k` (items are numbered image by image).
    fn shards(&self) -> ShardIndex {
        let mut sizes = vec![0u64; self.images.len()];
        for e in &self.entries {
            sizes[e.image] += 1;
        }
        ShardIndex::new(sizes)
    }

    /// Fetches ahead, in a few requests, what reading items `items` needs, where their images are
    /// in object storage (nothing for local files): a stream does this once per shard.
    fn prefetch(&self, reader: &Reader, items: std::ops::Range<usize>) -> Result<()> {
        let entries = self.entries.get(items).unwrap_or_default();
        let s = self.size;
        let mut at = 0;
        // items come image by image: one prefetch per image's run of items
        while let Some(first) = entries.get(at) {
            let run = entries[at..].iter().take_while(|e| e.image == first.image).count();
            let windows: Vec<[i64; 2]> = entries[at..at + run].iter().map(|e| e.origin(s)).collect();
            let path = &self.images[first.image].path;
            self.planes.prefetch(reader, path, &windows, [s, s])?;
            at += run;
        }
        Ok(())
    }

    /// What the stamps' planes depend on: the catalog and every image (path, size, modification
    /// time; an object's version), the stamp size and the planes read.
    fn fingerprint(&self) -> Result<u64> {
        let mut h = Fnv::default();
        h.text("catalog cutouts");
        h.file(&self.catalog.path, self.catalog.urls)?;
        for image in &self.images {
            h.file(&image.path, self.catalog.urls)?;
        }
        h.text(&format!("{:?} {} {:?}", self.catalog, self.size, self.planes));
        Ok(h.0)
    }

    /// The planes of every stamp.
    fn layout(&self) -> StampLayout {
        let (channels, masks, weights) = self.planes.counts();
        StampLayout { channels, flag_channels: 1, masks, weights, height: self.size, width: self.size }
    }

    /// Adds to a stamp of item `stamp.index` read back from a cache what it carries besides its
    /// planes: the label, the catalog row and side columns, the weight roles.
    fn annotate(&self, stamp: &mut Stamp) -> Result<()> {
        if let Some(e) = self.entries.get(stamp.index) {
            (stamp.label, stamp.row) = (e.label, e.row);
        }
        stamp.side = self.side.clone();
        stamp.weight_roles = self.planes.weight_roles();
        Ok(())
    }
}
