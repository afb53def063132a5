//! Image reads: whole images and N-D sections, plain or tile-compressed, into caller-owned buffers.

use std::sync::Arc;

use crate::io::convert::{Conversion, Plan, doubles_into, read_section, section_ranges};
use crate::io::file::{FitsFile, Loaded};
use crate::io::tiled::{NativeTiles, Undecoded};
use crate::source::ByteSource;
use torchfits_format::error::{Error, Result};
use torchfits_format::hdu::{HduKind, HduSelector, ImageLayout, checked_len};
use torchfits_format::header::Header;
use torchfits_format::pixel::{Dtype, ImageData, Pixel, Pixels, Scaling, Section};
use torchfits_format::threads::caught;

/// Reads one image HDU of an open [`FitsFile`]. Made by [`FitsFile::image`], which reads the
/// header; reads then go straight from the file into the caller's buffer.
///
/// ```
/// use torchfits_core::{FitsFile, Section};
/// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
/// let file = FitsFile::open(path)?;
/// let image = file.image("SCI")?;
/// let shape = image.shape().to_vec();            // C order: [rows, cols]
/// let mut pixels = vec![0f32; image.len()];
/// image.read_into(&mut pixels)?;                 // no allocation by the reader
/// let section = Section::new(vec![10..20, 5..15]);
/// let cutout: Vec<f32> = image.read_section(&section)?;
/// assert_eq!(cutout[0], pixels[10 * shape[1] + 5]);
/// # Ok::<(), torchfits_core::Error>(())
/// ```
#[derive(Debug)]
pub struct ImageReader {
    file: FitsFile,
    index: usize,
    layout: ImageLayout,
    /// Shared with the file's HDU index (no copy per reader).
    header: Arc<Header>,
    /// For an uncompressed image: the direct-read plan (data offsets, conversion).
    plan: Option<Plan>,
    /// For a compressed image: the tile shape, C order.
    tiles: Option<Vec<usize>>,
    /// For a compressed image of a plain file: its tiles, decoded here rather than by cfitsio, or
    /// why they are not (reads then fail with that cause).
    native: Option<std::result::Result<NativeTiles, Undecoded>>,
    /// The whole image as a section.
    full: Section,
}

/// Compressed reads smaller than this (output bytes) are decoded on the calling thread.
const PARALLEL_DECODE_MIN_BYTES: usize = 1 << 20;

impl ImageReader {
    pub(crate) fn new(
        file: FitsFile,
        index: usize,
        layout: ImageLayout,
        header: Arc<Header>,
        data_start: Option<u64>,
        tiles: Option<Vec<usize>>,
        native: Option<std::result::Result<NativeTiles, Undecoded>>,
    ) -> Self {
        let plan = data_start.and_then(|start| {
            let bytes = (layout.bitpix.unsigned_abs() / 8) as u64;
            let len = if layout.shape.is_empty() { 0 } else { layout.pixel_count().ok()? as u64 };
            let end = start.checked_add(len.checked_mul(bytes)?)?;
            let s = layout.scaling;
            // astropy ignores BLANK = 0
            let blank = s.blank.filter(|&b| b != 0);
            Plan::new(layout.bitpix, layout.dtype, s.bscale, s.bzero, blank, (start, end))
        });
        let full = Section::full(&layout.shape);
        ImageReader { file, index, layout, header, plan, tiles, native, full }
    }

    /// 0-based index of the HDU.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Shape in C order (`[]` when the HDU has no data).
    pub fn shape(&self) -> &[usize] {
        &self.layout.shape
    }

    /// Number of pixels (0 when the HDU has no data).
    pub fn len(&self) -> usize {
        if self.layout.shape.is_empty() { 0 } else { self.layout.pixel_count().unwrap_or(0) }
    }

    /// Whether the image has no pixels.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The element type [`ImageReader::read_data`] returns.
    pub fn dtype(&self) -> Dtype {
        self.layout.dtype
    }

    /// BITPIX of the stored image (of the image a compressed HDU holds).
    pub fn bitpix(&self) -> i32 {
        self.layout.bitpix
    }

    /// BSCALE, BZERO and BLANK.
    pub fn scaling(&self) -> Scaling {
        self.layout.scaling
    }

    /// The image's header (for a compressed HDU, the header of the image it holds).
    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Whether this image's tiles are decoded by torchfits rather than by cfitsio.
    #[cfg(test)]
    pub(crate) fn decoded_natively(&self) -> bool {
        matches!(self.native, Some(Ok(_)))
    }

    fn err(&self, e: Error) -> Error {
        e.in_hdu(self.index).in_file(self.file.path())
    }

    fn no_data(&self) -> Error {
        self.err(Error::parameter("the HDU has no image data (NAXIS = 0)"))
    }

    /// Reads the whole image into `out`, which must hold exactly [`ImageReader::len`] elements.
    /// Allocates nothing; blocks on the file read. Into another type than [`ImageReader::dtype`]
    /// the values are converted as [`Pixel`] says; one that does not fit is an error.
    ///
    /// ```
    /// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
    /// let file = torchfits_core::FitsFile::open(path)?;
    /// let dq = file.image("DQ")?;                          // int16
    /// let mut wide = vec![0i64; dq.len()];
    /// dq.read_into(&mut wide)?;                            // exact
    /// let sci = file.image("SCI")?;                        // float32, 99.5 to 601.3
    /// let mut bytes = vec![0u8; sci.len()];
    /// let err = sci.read_into(&mut bytes).unwrap_err();    // 601.3 does not fit in a u8
    /// assert_eq!(err.kind(), torchfits_core::ErrorKind::Parameter);
    /// # Ok::<(), torchfits_core::Error>(())
    /// ```
    pub fn read_into<T: Pixel>(&self, out: &mut [T]) -> Result<()> {
        if self.layout.shape.is_empty() {
            return Err(self.no_data());
        }
        // the whole-image section is kept by the reader, so that this allocates nothing
        self.read_section_into(&self.full, out)
    }

    /// Reads `section` into `out`, which must hold exactly the section's element count. For a
    /// tile-compressed image only the tiles the section touches are decoded. Allocates nothing.
    pub fn read_section_into<T: Pixel>(&self, section: &Section, out: &mut [T]) -> Result<()> {
        if self.layout.shape.is_empty() {
            return Err(self.no_data());
        }
        section.check(&self.layout.shape).map_err(|e| self.err(e))?;
        let n = section.len();
        if out.len() != n {
            return Err(
                self.err(Error::parameter(format!("output buffer holds {} elements, the read needs {n}", out.len())))
            );
        }
        if n == 0 {
            return Ok(());
        }
        let _span = tracing::trace_span!("read_image", hdu = self.index, pixels = n, into = %T::DTYPE).entered();
        // the fast path: an uncompressed image read in its own type, or converted
        if let Some(plan) = self.plan_for::<T>()
            && let Some(source) = self.file.direct_source()
        {
            let threads = self.file.threads();
            return read_section(source, &plan, &self.layout.shape, section, out, threads).map_err(|e| self.err(e));
        }
        // tile-compressed images: decoded here
        match (&self.native, self.file.source()) {
            (Some(Ok(native)), Some(source)) => {
                return self.read_tiles(native, source, section, out).map_err(|e| self.err(e));
            }
            (Some(Err(undecoded)), Some(_)) => return Err(self.err(undecoded.error())),
            _ => {}
        }
        // cfitsio, where asked for (extended filename syntax, `direct_reads(false)`); errors name
        // the file and HDU already
        tracing::debug!(hdu = self.index, "cfitsio reads the image (direct reads off, or extended filename syntax)");
        let nan_nulls = self.layout.scaling.nulls_to_nan();
        let bands = self.tile_bands(section, std::mem::size_of::<T>());
        if bands.len() > 1 {
            return self.read_bands(&bands, out, nan_nulls);
        }
        self.file.with_cfitsio(self.index, |handle| handle.read_section(section, out, nan_nulls))
    }

    /// Fetches the bytes that reading `sections` needs, all at once, where the file is in object
    /// storage (see [`crate::remote`] with the `remote` feature): the sections' rows or tiles in
    /// as few range requests as is worth it, several in flight, rather than a request or more per
    /// section. The reads that follow then come from memory. Does nothing for a local file.
    ///
    /// ```
    /// use torchfits_core::{FitsFile, Section};
    /// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
    /// let image = FitsFile::open(path)?.image("SCI")?;
    /// let stamps: Vec<Section> = (0..4).map(|k| Section::new(vec![8 * k..8 * k + 8, 0..8])).collect();
    /// image.prefetch(&stamps)?;
    /// let pixels = stamps.iter().map(|s| image.read_section::<f32>(s)).collect::<Result<Vec<_>, _>>()?;
    /// assert_eq!(pixels.len(), 4);
    /// # Ok::<(), torchfits_core::Error>(())
    /// ```
    pub fn prefetch(&self, sections: &[Section]) -> Result<()> {
        let Some(source) = self.file.source().filter(|s| s.remote()) else {
            return Ok(());
        };
        let mut ranges = Vec::new();
        for section in sections {
            section.check(&self.layout.shape).map_err(|e| self.err(e))?;
            match (&self.plan, &self.native) {
                (Some(plan), _) => ranges.extend(section_ranges(plan, &self.layout.shape, section)),
                (None, Some(Ok(native))) => {
                    ranges.extend(native.section_ranges(source, section).map_err(|e| self.err(e))?)
                }
                _ => return Ok(()),
            }
        }
        source.prefetch(&ranges).map_err(|e| self.err(Error::io(e, "cannot fetch the sections")))
    }

    /// How the fast path reads this uncompressed image into `T`: its plan for its own type; into
    /// f32 or f64, the same data scaled in double (BSCALE, BZERO, BLANK as NaN on integers) and
    /// rounded once; into another integer type, scaled and checked against the type's range; both
    /// as cfitsio converts.
    fn plan_for<T: Pixel>(&self) -> Option<Plan> {
        let plan = self.plan?;
        if T::DTYPE == self.layout.dtype {
            return Some(plan);
        }
        let Scaling { bscale, bzero, blank } = self.layout.scaling;
        let conversion = match T::DTYPE {
            Dtype::F32 | Dtype::F64 => Conversion::Scale { bscale, bzero, blank },
            _ => Conversion::Cast { bscale, bzero },
        };
        Some(Plan { conversion, ..plan })
    }

    /// Decodes `section` of a tile-compressed image into `out`. Into an integer type other than
    /// the image's own, the values are taken in double first (BLANK as a value like any other)
    /// and converted as cfitsio converts them.
    fn read_tiles<T: Pixel>(
        &self,
        native: &NativeTiles,
        source: &dyn ByteSource,
        section: &Section,
        out: &mut [T],
    ) -> Result<()> {
        let threads = self.file.threads();
        let scaling = self.layout.scaling;
        if native.decodes::<T>(self.layout.dtype) {
            return native.read(source, section, out, scaling, threads);
        }
        let mut values = self.alloc::<f64>(section)?;
        native.read(source, section, &mut values, Scaling { blank: None, ..scaling }, threads)?;
        doubles_into(out, values.into_iter())
    }

    /// For a tile-compressed plain file whose read decodes enough tiles to be worth it: the section
    /// split along its first axis into one band of whole tile rows per thread. Otherwise the
    /// section as one band. The work is the tiles the section touches, not its own size: a small
    /// cutout of an image compressed in whole rows decodes every row it crosses in full.
    fn tile_bands(&self, section: &Section, elem_bytes: usize) -> Vec<Section> {
        let threads = self.file.threads();
        let one = vec![section.clone()];
        let Some(tiles) = self.tiles.as_ref().filter(|t| t.len() == section.ranges().len()) else {
            return one;
        };
        let Some(&tile_rows) = tiles.first() else { return one };
        let decoded =
            section.ranges().iter().zip(tiles).zip(&self.layout.shape).fold(elem_bytes, |acc, ((r, &t), &n)| {
                let span = (r.end.div_ceil(t) * t).min(n).saturating_sub(r.start / t * t);
                acc.saturating_mul(span)
            });
        if threads < 2 || decoded < PARALLEL_DECODE_MIN_BYTES || self.file.source().is_none() {
            return one;
        }
        let Some(rows) = section.ranges().first().cloned() else { return one };
        let first_tile = rows.start / tile_rows;
        let tile_count = rows.end.div_ceil(tile_rows) - first_tile;
        if tile_count < 2 {
            return one;
        }
        let per = tile_count.div_ceil(threads.min(tile_count));
        let mut bands = Vec::new();
        let mut t = first_tile;
        while t * tile_rows < rows.end {
            let a = (t * tile_rows).max(rows.start);
            let b = ((t + per) * tile_rows).min(rows.end);
            let mut ranges = section.ranges().to_vec();
            if let Some(first) = ranges.first_mut() {
                *first = a..b;
            }
            bands.push(Section::new(ranges));
            t += per;
        }
        bands
    }

    /// Decodes each band on its own thread (the first on this one), each with a cfitsio handle of
    /// its own, into disjoint parts of `out`.
    fn read_bands<T: Pixel>(&self, bands: &[Section], out: &mut [T], nan_nulls: bool) -> Result<()> {
        let mut chunks: Vec<(&Section, &mut [T])> = Vec::with_capacity(bands.len());
        let mut rest = out;
        for band in bands {
            let n: usize = band.shape().iter().product();
            let (mine, tail) = rest.split_at_mut(n);
            chunks.push((band, mine));
            rest = tail;
        }
        let mut chunks = chunks.into_iter();
        let Some((first_band, first_out)) = chunks.next() else {
            return Ok(());
        };
        let read = |band: &Section, out: &mut [T]| {
            self.file.with_cfitsio(self.index, |handle| handle.read_section(band, out, nan_nulls))
        };
        let workers: Vec<_> = chunks.collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> =
                workers.into_iter().map(|(band, chunk)| scope.spawn(move || read(band, chunk))).collect();
            let mine = caught("a decoding thread", || read(first_band, first_out));
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(Error::decoding("a decoding thread panicked"))))
                .fold(mine, |acc, r| acc.and(r))
        })
    }

    /// Reads the whole image into a new `Vec<T>` (allocates, within [`crate::Limits::max_alloc`]).
    pub fn read<T: Pixel>(&self) -> Result<Vec<T>> {
        if self.layout.shape.is_empty() {
            return Err(self.no_data());
        }
        let section = Section::full(&self.layout.shape);
        self.read_section(&section)
    }

    /// Reads `section` into a new `Vec<T>` (allocates, within [`crate::Limits::max_alloc`]).
    pub fn read_section<T: Pixel>(&self, section: &Section) -> Result<Vec<T>> {
        let mut out = self.alloc::<T>(section)?;
        self.read_section_into(section, &mut out)?;
        Ok(out)
    }

    /// Reads the image, or `section` of it, in its own [`Dtype`] (allocates, within
    /// [`crate::Limits::max_alloc`]).
    ///
    /// ```
    /// use torchfits_core::{FitsFile, Pixels};
    /// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
    /// let file = FitsFile::open(path)?;
    /// let data = file.image("DQ")?.read_data(None)?;
    /// assert_eq!(data.shape, vec![48, 64]);
    /// assert!(matches!(data.pixels, Pixels::I16(_)));
    /// # Ok::<(), torchfits_core::Error>(())
    /// ```
    pub fn read_data(&self, section: Option<&Section>) -> Result<ImageData> {
        if self.layout.shape.is_empty() {
            return Err(self.no_data());
        }
        let full;
        let section = match section {
            Some(s) => s,
            None => {
                full = Section::full(&self.layout.shape);
                &full
            }
        };
        let pixels = match self.layout.dtype {
            Dtype::U8 => Pixels::U8(self.read_section(section)?),
            Dtype::I8 => Pixels::I8(self.read_section(section)?),
            Dtype::I16 => Pixels::I16(self.read_section(section)?),
            Dtype::U16 => Pixels::U16(self.read_section(section)?),
            Dtype::I32 => Pixels::I32(self.read_section(section)?),
            Dtype::U32 => Pixels::U32(self.read_section(section)?),
            Dtype::I64 => Pixels::I64(self.read_section(section)?),
            Dtype::U64 => Pixels::U64(self.read_section(section)?),
            Dtype::F32 => Pixels::F32(self.read_section(section)?),
            Dtype::F64 => Pixels::F64(self.read_section(section)?),
        };
        Ok(ImageData { shape: section.shape(), pixels })
    }

    fn alloc<T: Pixel>(&self, section: &Section) -> Result<Vec<T>> {
        section.check(&self.layout.shape).map_err(|e| self.err(e))?;
        let n = checked_len(&section.shape()).map_err(|e| self.err(e))?;
        self.file.limits().zeroed_vec(n, "the image read").map_err(|e| self.err(e))
    }
}

/// Opening an image HDU: here, beside the reader it makes, so that the open file does not
/// depend on its readers.
impl FitsFile {
    /// A reader for the image in HDU `selector` (reads its header). Fails with a
    /// [`Parameter`](crate::ErrorKind::Parameter) error for a table, an
    /// [`Unsupported`](crate::ErrorKind::Unsupported) one for random groups. The reader holds a clone
    /// of this open file, and reads take `&self`: share one reader between threads.
    pub fn image(&self, selector: impl Into<HduSelector>) -> Result<ImageReader> {
        let (i, Loaded { kind, header, tiles, native, data_start, .. }) = self.find(selector.into())?;
        let wrap = |e: Error| self.in_file(e.in_hdu(i));
        match kind {
            HduKind::Image => {}
            HduKind::RandomGroups => {
                return Err(wrap(Error::unsupported("random-groups arrays are not read as images")));
            }
            other => {
                return Err(wrap(Error::parameter(format!("the HDU is a {other}, not an image"))));
            }
        }
        let layout = ImageLayout::from_header(&header, self.limits()).map_err(wrap)?;
        if let Some(tiles) = &tiles {
            // a decoder holds one whole tile (ZTILEn, cut to the image) per thread
            let bytepix = u64::from(layout.bitpix.unsigned_abs() / 8);
            let bytes = tiles
                .iter()
                .zip(layout.shape.iter().chain(std::iter::repeat(&usize::MAX)))
                .try_fold(bytepix, |acc, (&t, &n)| acc.checked_mul(t.min(n) as u64))
                .unwrap_or(u64::MAX);
            self.limits().check_tile(bytes).map_err(wrap)?;
        }
        let direct = self.direct_reads();
        let data_start = if direct { data_start } else { None };
        let native = if direct { native } else { None };
        Ok(ImageReader::new(self.clone(), i, layout, header, data_start, tiles, native))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compressed_images_are_decoded_here_not_by_cfitsio() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/quantized.fits");
        let file = crate::FitsFile::open(&path).expect("open");
        for hdu in 1..file.hdu_count().expect("count") {
            let img = file.image(hdu).expect("image");
            let native = match &img.native {
                Some(Ok(native)) => native,
                other => panic!("HDU {hdu}: not decoded here: {other:?}"),
            };
            let native = match img.layout.dtype {
                Dtype::F32 => native.decodes::<f32>(Dtype::F32),
                dtype => native.decodes::<f64>(dtype),
            };
            assert!(native, "HDU {hdu}: {:?}", img.layout.dtype);
        }
        // and every image of the fixture: RICE_1, GZIP_1/2, HCOMPRESS_1 and PLIO_1
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/compressed.fits");
        let file = crate::FitsFile::open(&path).expect("open");
        for hdu in 1..file.hdu_count().expect("count") {
            let name = file.hdu(hdu).expect("info").extname.clone().unwrap_or_default();
            let img = file.image(hdu).expect("image");
            let here = matches!(&img.native, Some(Ok(n)) if match img.layout.dtype {
                Dtype::I16 => n.decodes::<i16>(Dtype::I16),
                Dtype::U16 => n.decodes::<u16>(Dtype::U16),
                Dtype::I32 => n.decodes::<i32>(Dtype::I32),
                Dtype::F32 => n.decodes::<f32>(Dtype::F32),
                Dtype::F64 => n.decodes::<f64>(Dtype::F64),
                _ => false,
            });
            assert!(here, "{name}");
        }
    }
}
