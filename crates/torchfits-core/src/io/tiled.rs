//! Reading tile-compressed images without cfitsio, every codec of the convention (RICE_1,
//! GZIP_1/GZIP_2, HCOMPRESS_1, PLIO_1, NOCOMPRESS): integers, floats quantised to integers
//! (dithered or not, NaN) and gzipped floats stored as they are; and tiles the writer stored
//! beside the codec's column (GZIP_COMPRESSED_DATA, UNCOMPRESSED_DATA). The tiles a section
//! touches are read from the heap (`pread`) and decoded straight into the caller's buffer, bands
//! of tile rows on separate threads. What is not decoded here (64-bit integers, floats with
//! BSCALE, RICE_1 floats: no writer makes them) is an error on the default read path.

use std::ops::Range;
use std::sync::Arc;

use crate::compression::quantize::{N_RANDOM, ZERO_VALUE, random_sequence};
use crate::compression::{Codec, Dither, FloatStorage, TileCompression, gzip, hcompress, plio, rice};
use crate::io::tile_memo;
use crate::source::ByteSource;
use torchfits_format::error::{Error, ErrorKind, Result};
use torchfits_format::header::Header;
use torchfits_format::limits::{Limits, try_resize};
use torchfits_format::pixel::{Dtype, Pixel, Scaling, Section};
use torchfits_format::table_schema::{ColumnSchema, FitsType, TableSchema, VarArray};
use torchfits_format::threads::caught;

/// Where the tiles of a RICE_1 or GZIP image are and how they are coded, from its binary table's
/// header.
#[derive(Debug, Clone)]
pub(crate) struct NativeTiles {
    /// Offset of the table's rows in the file.
    data_start: u64,
    /// Bytes per row (NAXIS1).
    row_bytes: usize,
    ntiles: usize,
    /// Offset of the heap from the rows' start.
    heap_offset: u64,
    heap_len: u64,
    /// How tiles are coded: RICE_1 or GZIP_1/2.
    codec: Codec,
    /// Bytes per value as coded (Rice: BYTEPIX, 1, 2 or 4) or as stored before gzip (1, 2, 4 or 8).
    bytepix: usize,
    /// Bytes per value of the image's own type (ZBITPIX / 8); 4 for quantised floats.
    stored: usize,
    /// Gzipped floats stored as they are (lossless): the values are the stored ones.
    raw_floats: bool,
    /// Image and tile shapes, FITS order (x first).
    dims: Vec<usize>,
    tile: Vec<usize>,
    /// The COMPRESSED_DATA descriptor in each row.
    code: Descriptor,
    /// Where a tile whose COMPRESSED_DATA is empty is kept.
    fallback: Option<Fallback>,
    /// For a quantised floating-point image: how its integers become values.
    quantized: Option<Quantized>,
    /// For an integer image with a ZBLANK column: each tile's null, read as the image's BLANK.
    blank: Option<Param>,
    /// What the file's reads may allocate: the table of tiles and each tile's code are checked
    /// against them (and against the bytes the file has) before their buffers are.
    limits: Limits,
    /// The file's number and the HDU's index in the process's store of decoded tiles, where its
    /// file keeps them ([`crate::OpenOptions::tile_memo`]).
    memo: Option<tile_memo::Hdu>,
}

/// Why a compressed image is not decoded here: what a read of it fails with (Unsupported for what
/// the convention allows and torchfits does not decode, Decoding for a table that breaks it).
#[derive(Debug, Clone)]
pub(crate) struct Undecoded {
    kind: ErrorKind,
    why: String,
}

impl Undecoded {
    fn unsupported(why: impl Into<String>) -> Self {
        Undecoded { kind: ErrorKind::Unsupported, why: why.into() }
    }

    fn malformed(why: impl Into<String>) -> Self {
        Undecoded { kind: ErrorKind::Decoding, why: why.into() }
    }

    /// The error for a read of the image.
    pub(crate) fn error(&self) -> Error {
        Error::new(self.kind, self.why.clone())
    }
}

impl From<&Error> for Undecoded {
    fn from(e: &Error) -> Self {
        Undecoded { kind: e.kind(), why: e.message().to_string() }
    }
}

/// Where the writer put a tile it did not code with the image's codec (its COMPRESSED_DATA
/// empty): gzipped values (GZIP_COMPRESSED_DATA: floats that could not be quantised, cfitsio since
/// 2011 and astropy) or the values as they are (UNCOMPRESSED_DATA: such floats before 2011, and
/// fpack's NOCOMPRESS). Where a table has both columns astropy reads the gzipped one; so does this.
#[derive(Debug, Clone, Copy)]
enum Fallback {
    Gzip(Descriptor),
    Plain(Descriptor, FitsType),
}

/// Where a variable-length array descriptor sits in a row (`P`: two 32-bit words, `Q`: two 64-bit).
#[derive(Debug, Clone, Copy)]
struct Descriptor {
    offset: usize,
    wide: bool,
}

impl Descriptor {
    /// (element count, heap offset) from `row`.
    fn read(self, row: &[u8]) -> (u64, u64) {
        let word = |a: usize, n: usize| {
            row.get(a..a + n).map_or(0u64, |b| b.iter().fold(0, |acc, &x| acc << 8 | u64::from(x)))
        };
        let (o, n) = (self.offset, if self.wide { 8 } else { 4 });
        (word(o, n), word(o + n, n))
    }
}

/// A per-tile parameter: a column of the table (its offset in a row and type), or a keyword's
/// value for every tile.
#[derive(Debug, Clone, Copy)]
enum Param {
    Column { offset: usize, ty: FitsType },
    Constant(f64),
}

impl Param {
    fn read(self, row: &[u8]) -> Option<f64> {
        match self {
            Param::Constant(v) => Some(v),
            Param::Column { offset, ty } => {
                let bytes = |n: usize| row.get(offset..offset + n);
                match ty {
                    FitsType::Double => bytes(8).and_then(|b| b.try_into().ok()).map(f64::from_be_bytes),
                    FitsType::Float => {
                        bytes(4).and_then(|b| b.try_into().ok()).map(|b| f64::from(f32::from_be_bytes(b)))
                    }
                    FitsType::Int => bytes(4).and_then(|b| b.try_into().ok()).map(|b| f64::from(i32::from_be_bytes(b))),
                    FitsType::Short => {
                        bytes(2).and_then(|b| b.try_into().ok()).map(|b| f64::from(i16::from_be_bytes(b)))
                    }
                    _ => None,
                }
            }
        }
    }
}

/// How a quantised floating-point image's tiles become values (the tiled image convention's
/// quantisation, as cfitsio and astropy undo it).
#[derive(Debug, Clone)]
struct Quantized {
    dither: Dither,
    /// ZDITHER0: where tile 1 starts in the random sequence.
    seed: i64,
    scale: Param,
    zero: Param,
    /// The integer that marks an undefined pixel (ZBLANK), read as NaN.
    blank: Option<Param>,
}

/// One tile's row of the table: where its code is, where its fallback is, and its quantisation.
#[derive(Debug, Clone, Copy, Default)]
struct TileRow {
    /// (bytes, heap offset) of COMPRESSED_DATA.
    code: (u64, u64),
    /// (elements, heap offset) of the fallback column (0 elements when there is none).
    fallback: (u64, u64),
    scale: f64,
    zero: f64,
    blank: Option<i64>,
}

impl NativeTiles {
    /// The table of a compressed HDU whose data starts at `data_start`, if torchfits decodes it
    /// (every image of the convention but 64-bit integers, floats with BSCALE/BZERO, and RICE_1
    /// floats, which no writer makes), or why not. The convention's columns and parameters are
    /// read; other columns and ZNAMEn parameters are left alone, as cfitsio and astropy leave them.
    pub(crate) fn from_header(
        table: &Header,
        data_start: u64,
        limits: Limits,
    ) -> std::result::Result<NativeTiles, Undecoded> {
        let description = TileCompression::from_header(table).map_err(|e| Undecoded::from(&e))?;
        let zbitpix = description.zbitpix;
        if zbitpix == 64 {
            return Err(Undecoded::unsupported(
                "tile-compressed 64-bit integers are not decoded (nor written by cfitsio)",
            ));
        }
        // BSCALE/BZERO on a float image would scale its values once more
        if zbitpix < 0 && (table.contains("BSCALE") || table.contains("BZERO")) {
            return Err(Undecoded::unsupported(
                "a floating-point compressed image with BSCALE or BZERO is not decoded",
            ));
        }
        let raw_floats = description.floats == Some(FloatStorage::Raw);
        let stored = description.stored_width();
        let (codec, bytepix) = codec(&description, raw_floats, stored).map_err(Undecoded::unsupported)?;
        // PLIO's line lists are 16-bit words (1PI); every other codec's tiles are bytes
        let code_type = if codec == Codec::Plio { FitsType::Short } else { FitsType::Byte };
        let schema = TableSchema::from_header(table).map_err(|e| Undecoded::from(&e))?;
        let code = descriptor(&schema, "COMPRESSED_DATA", code_type)?
            .ok_or_else(|| Undecoded::malformed("the table has no COMPRESSED_DATA column"))?;
        let fallback = match descriptor(&schema, "GZIP_COMPRESSED_DATA", FitsType::Byte)? {
            Some(gzipped) => Some(Fallback::Gzip(gzipped)),
            None => plain_column(&schema)?.map(|(d, ty)| Fallback::Plain(d, ty)),
        };
        let quantized = match description.floats {
            Some(FloatStorage::Quantised { dither, seed }) => Some(Quantized {
                dither,
                seed,
                scale: param(table, &schema, "ZSCALE")?.ok_or_else(|| Undecoded::malformed("ZSCALE is missing"))?,
                zero: param(table, &schema, "ZZERO")?.ok_or_else(|| Undecoded::malformed("ZZERO is missing"))?,
                blank: param(table, &schema, "ZBLANK")?,
            }),
            _ => {
                if let Some(c) = ["ZSCALE", "ZZERO"].iter().find(|c| column(&schema, c).is_some()) {
                    return Err(Undecoded::unsupported(format!(
                        "a {c} column in an image that is not quantised is not decoded"
                    )));
                }
                None
            }
        };
        // an integer image's per-tile null (ZBLANK as a keyword is the image's BLANK already)
        let blank = match (&quantized, column(&schema, "ZBLANK")) {
            (None, Some(_)) => param(table, &schema, "ZBLANK")?,
            _ => None,
        };
        let ntiles = usize::try_from(schema.nrows).map_err(|_| Undecoded::malformed("the table has too many rows"))?;
        let heap_len = schema
            .data_len
            .checked_sub(schema.heap_offset)
            .ok_or_else(|| Undecoded::malformed("the heap starts past the data"))?;
        if description.dims.is_empty() {
            return Err(Undecoded::malformed("ZNAXIS = 0"));
        }
        if description.tile_count() != Some(ntiles) {
            return Err(Undecoded::malformed(format!(
                "the table has {ntiles} rows, the image's ZNAXISn and ZTILEn make {} tiles",
                description.tile_count().map_or("too many".into(), |n| n.to_string())
            )));
        }
        let TileCompression { dims, tile, .. } = description;
        Ok(NativeTiles {
            data_start,
            row_bytes: schema.row_bytes,
            ntiles,
            heap_offset: schema.heap_offset,
            heap_len,
            codec,
            bytepix,
            stored,
            raw_floats,
            dims,
            tile,
            code,
            fallback,
            quantized,
            blank,
            limits,
            memo: None,
        })
    }

    /// Whether [`NativeTiles::read`] reads an image of `dtype` (as the header gives it) into `T`:
    /// into f32 or f64, every image (integers scaled in double, BLANK as NaN, as cfitsio converts
    /// them); into an integer type, the image's own (the stored integers as they are, or offset
    /// for the unsigned types and i8). Other integer types take the values in double first.
    /// These tiles, kept decoded in the process's store for later reads as HDU `memo`'s, where
    /// its file keeps them.
    pub(crate) fn kept(mut self, memo: Option<tile_memo::Hdu>) -> Self {
        self.memo = memo;
        self
    }

    pub(crate) fn decodes<T: Pixel>(&self, dtype: Dtype) -> bool {
        if matches!(T::DTYPE, Dtype::F32 | Dtype::F64) {
            return true;
        }
        let own = match self.stored {
            _ if self.quantized.is_some() || self.raw_floats => false,
            1 => matches!(dtype, Dtype::U8 | Dtype::I8),
            2 => matches!(dtype, Dtype::I16 | Dtype::U16),
            _ => matches!(dtype, Dtype::I32 | Dtype::U32),
        };
        own && T::DTYPE == dtype
    }

    /// Each tile's row: where its code is, and its quantisation.
    fn descriptors(&self, file: &dyn ByteSource) -> Result<Vec<TileRow>> {
        let bytes = (self.ntiles as u64).saturating_mul(self.row_bytes as u64);
        let mut rows = Vec::new();
        file.read_vec_at(&mut rows, self.data_start, bytes, &self.limits, &"the table of tiles")?;
        rows.chunks_exact(self.row_bytes.max(1))
            .enumerate()
            .map(|(k, r)| {
                let mut row = TileRow { code: self.code.read(r), scale: 1.0, ..TileRow::default() };
                row.fallback = match self.fallback {
                    Some(Fallback::Gzip(d) | Fallback::Plain(d, _)) => d.read(r),
                    None => (0, 0),
                };
                let bad = |what: &str| Error::decoding(format!("tile {k}: its {what} cannot be read"));
                if let Some(q) = &self.quantized {
                    row.scale = q.scale.read(r).ok_or_else(|| bad("ZSCALE"))?;
                    row.zero = q.zero.read(r).ok_or_else(|| bad("ZZERO"))?;
                }
                if let Some(b) = self.quantized.as_ref().map_or(self.blank, |q| q.blank) {
                    row.blank = Some(b.read(r).ok_or_else(|| bad("ZBLANK"))? as i64);
                }
                Ok(row)
            })
            .collect()
    }

    /// Decodes `section` (C order) into `out`, bands of tile rows on up to `threads` threads.
    #[expect(
        clippy::indexing_slicing,
        reason = "the section, tile shape, dims, strides and odometers have one entry per image axis: ZNAXIS >= 1, checked equal to the tile shape's length by TileCompression and to the section's in `read`"
    )]
    pub(crate) fn read<T: Pixel>(
        &self,
        file: &dyn ByteSource,
        section: &Section,
        out: &mut [T],
        scaling: Scaling,
        threads: usize,
    ) -> Result<()> {
        let _span = tracing::trace_span!("decode_tiles", codec = self.codec.name(), threads).entered();
        let descriptors = self.descriptors(file)?;
        let n = self.dims.len();
        // the section in FITS order
        let sec: Vec<Range<usize>> = section.ranges().iter().rev().cloned().collect();
        if sec.len() != n {
            return Err(Error::parameter("the section does not match the image"));
        }
        if file.remote() {
            self.prefetch_tiles(file, &descriptors, &sec)?;
        }
        // output strides (FITS order: x is 1)
        let mut ostride = vec![1usize; n];
        for a in 1..n {
            ostride[a] = ostride[a - 1] * sec[a - 1].len();
        }
        // bands along the slowest axis, in whole tiles
        let top = n - 1;
        let (t0, t1) = (sec[top].start / self.tile[top], sec[top].end.div_ceil(self.tile[top]));
        let per = (t1 - t0).div_ceil(threads.clamp(1, (t1 - t0).max(1)));
        let mut bands: Vec<(Range<usize>, &mut [T])> = Vec::new();
        let mut rest = out;
        let mut t = t0;
        while t < t1 {
            let a = (t * self.tile[top]).max(sec[top].start);
            let b = ((t + per) * self.tile[top]).min(sec[top].end);
            let (mine, tail) = std::mem::take(&mut rest).split_at_mut((b - a) * ostride[top]);
            bands.push((a..b, mine));
            rest = tail;
            t += per;
        }
        let decode_band = |rows: Range<usize>, out: &mut [T]| -> Result<()> {
            caught("a tile decoder", || {
                let mut band = sec.clone();
                band[top] = rows;
                self.decode_band(file, &descriptors, &band, &ostride, out, scaling)
            })
        };
        if bands.len() <= 1 {
            return bands.into_iter().try_for_each(|(rows, out)| decode_band(rows, out));
        }
        std::thread::scope(|scope| {
            let mut bands = bands.into_iter();
            let first = bands.next();
            let decode_band = &decode_band;
            let handles: Vec<_> = bands.map(|(rows, out)| scope.spawn(move || decode_band(rows, out))).collect();
            let mine = first.map_or(Ok(()), |(rows, out)| decode_band(rows, out));
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(Error::decoding("a decoding thread panicked"))))
                .fold(mine, |acc, r| acc.and(r))
        })
    }

    /// Announces the heap bytes of every tile `sec` (FITS order) touches to a remote source, so
    /// that they are fetched at once (neighbours in one request) rather than tile by tile.
    fn prefetch_tiles(&self, file: &dyn ByteSource, rows: &[TileRow], sec: &[Range<usize>]) -> Result<()> {
        file.prefetch(&self.heap_ranges(rows, sec)).map_err(|e| Error::io(e, "cannot read the tiles"))
    }

    /// The byte ranges of the tiles `section` (C order) touches: the table of tiles, then each
    /// tile's code.
    pub(crate) fn section_ranges(&self, file: &dyn ByteSource, section: &Section) -> Result<Vec<Range<u64>>> {
        let rows = self.descriptors(file)?;
        let sec: Vec<Range<usize>> = section.ranges().iter().rev().cloned().collect();
        if sec.len() != self.dims.len() {
            return Err(Error::parameter("the section does not match the image"));
        }
        Ok(self.heap_ranges(&rows, &sec))
    }

    /// The heap bytes of every tile `sec` (FITS order) touches.
    #[expect(
        clippy::indexing_slicing,
        reason = "the section, tile shape, dims, strides and odometers have one entry per image axis: ZNAXIS >= 1, checked equal to the tile shape's length by TileCompression and to the section's in `read`"
    )]
    fn heap_ranges(&self, rows: &[TileRow], sec: &[Range<usize>]) -> Vec<Range<u64>> {
        let first: Vec<usize> = sec.iter().zip(&self.tile).map(|(r, t)| r.start / t).collect();
        let last: Vec<usize> = sec.iter().zip(&self.tile).map(|(r, t)| r.end.div_ceil(*t)).collect();
        let counts: Vec<usize> = self.dims.iter().zip(&self.tile).map(|(d, t)| d.div_ceil(*t)).collect();
        let heap = self.data_start + self.heap_offset;
        let mut ranges = Vec::new();
        if first.iter().zip(&last).any(|(f, l)| f >= l) {
            return ranges;
        }
        let mut tc = first.clone();
        loop {
            let k = tc.iter().zip(&counts).rev().fold(0usize, |acc, (c, m)| acc * m + c);
            if let Some(row) = rows.get(k) {
                // the fallback column counts elements of up to 8 bytes: its bytes are at most 8 times that
                let (elements, at) = row.fallback;
                for (len, offset) in [row.code, (elements.saturating_mul(8), at)] {
                    let end = offset.saturating_add(len).min(self.heap_len);
                    if len > 0 && offset < end {
                        ranges.push(heap + offset..heap + end);
                    }
                }
            }
            // next tile, odometer-wise
            let mut a = 0;
            loop {
                if a == tc.len() {
                    return ranges;
                }
                tc[a] += 1;
                if tc[a] < last[a] {
                    break;
                }
                tc[a] = first[a];
                a += 1;
            }
        }
    }

    /// Decodes the tiles `band` (FITS order) touches into `out` (the band, C order).
    #[expect(
        clippy::indexing_slicing,
        reason = "the section, tile shape, dims, strides and odometers have one entry per image axis: ZNAXIS >= 1, checked equal to the tile shape's length by TileCompression and to the section's in `read`"
    )]
    fn decode_band<T: Pixel>(
        &self,
        file: &dyn ByteSource,
        rows: &[TileRow],
        band: &[Range<usize>],
        ostride: &[usize],
        out: &mut [T],
        scaling: Scaling,
    ) -> Result<()> {
        let n = self.dims.len();
        let ints_into = self.ints_into::<T>(scaling);
        let first: Vec<usize> = band.iter().zip(&self.tile).map(|(r, t)| r.start / t).collect();
        let last: Vec<usize> = band.iter().zip(&self.tile).map(|(r, t)| r.end.div_ceil(*t)).collect();
        let counts: Vec<usize> = self.dims.iter().zip(&self.tile).map(|(d, t)| d.div_ceil(*t)).collect();
        let mut code = Vec::new();
        let mut raw = Vec::new();
        let mut pixels: Vec<i32> = Vec::new();
        let mut values: Vec<T> = Vec::new();
        let mut tc = first.clone();
        loop {
            // this tile: its index, extent, and the part of the band it covers
            let k = tc.iter().zip(&counts).rev().fold(0usize, |acc, (c, m)| acc * m + c);
            let lo: Vec<usize> = tc.iter().zip(&self.tile).map(|(c, t)| c * t).collect();
            let hi: Vec<usize> = lo.iter().zip(&self.tile).zip(&self.dims).map(|((l, t), d)| (l + t).min(*d)).collect();
            let row = *rows.get(k).ok_or_else(|| Error::decoding("a tile has no descriptor"))?;
            let count: usize = lo.iter().zip(&hi).map(|(l, h)| h - l).product();
            let tile_err = |e: String| Error::decoding(format!("tile {k}: {e}"));
            let floats = self.quantized.is_some() || self.raw_floats;
            match (&self.quantized, self.fallback) {
                (_, None) if row.code.0 == 0 => {
                    return Err(tile_err(
                        "its COMPRESSED_DATA is empty and the table has no other column for it".into(),
                    ));
                }
                (_, Some(fallback)) if row.code.0 == 0 => {
                    let (width, stored_floats) =
                        self.fallback_tile(file, k, fallback, row.fallback, count, floats, &mut code, &mut raw)?;
                    if floats {
                        values_from_be(&raw, width, stored_floats, &mut values).map_err(tile_err)?;
                        self.copy(&values, &lo, &hi, band, ostride, out, <[T]>::copy_from_slice);
                    } else {
                        ints_from_be(&raw, width, &mut pixels).map_err(tile_err)?;
                        self.nulls_as_blank(&row, scaling, &mut pixels);
                        self.copy(&pixels, &lo, &hi, band, ostride, out, &ints_into);
                    }
                }
                (Some(q), _) => {
                    let kept = self.kept_tile_ints(file, k, row.code, count, &mut code, &mut raw, &mut pixels)?;
                    unquantize(q, k, &row, kept.as_deref().unwrap_or(&pixels), &mut values).map_err(tile_err)?;
                    self.copy(&values, &lo, &hi, band, ostride, out, <[T]>::copy_from_slice);
                }
                (None, _) if self.raw_floats => {
                    self.heap_bytes(file, k, row.code, &mut code)?;
                    self.tile_values(&code, count, &[count * self.bytepix], &mut raw).map_err(tile_err)?;
                    values_from_be(&raw, self.bytepix, true, &mut values).map_err(tile_err)?;
                    self.copy(&values, &lo, &hi, band, ostride, out, <[T]>::copy_from_slice);
                }
                (None, _) => {
                    let kept = self.kept_tile_ints(file, k, row.code, count, &mut code, &mut raw, &mut pixels)?;
                    let ints: &[i32] = match &kept {
                        // a kept tile is shared: read as it is unless this tile has nulls to mark
                        Some(kept) if !self.has_nulls(&row, scaling) => kept,
                        Some(kept) => {
                            pixels.clear();
                            pixels.extend_from_slice(kept);
                            self.nulls_as_blank(&row, scaling, &mut pixels);
                            &pixels
                        }
                        None => {
                            self.nulls_as_blank(&row, scaling, &mut pixels);
                            &pixels
                        }
                    };
                    self.copy(ints, &lo, &hi, band, ostride, out, &ints_into);
                }
            }
            // next tile, odometer-wise
            let mut a = 0;
            loop {
                if a == n {
                    return Ok(());
                }
                tc[a] += 1;
                if tc[a] < last[a] {
                    break;
                }
                tc[a] = first[a];
                a += 1;
            }
        }
    }

    /// Reads the `(bytes, heap offset)` of tile `k` from the heap into `code`, checked against the
    /// heap the header declares and then, before `code` grows, against the bytes the file has.
    fn heap_bytes(&self, file: &dyn ByteSource, k: usize, (len, offset): (u64, u64), code: &mut Vec<u8>) -> Result<()> {
        if offset.checked_add(len).is_none_or(|end| end > self.heap_len) {
            return Err(Error::decoding(format!("tile {k} points outside the heap")));
        }
        let at = self.data_start + self.heap_offset + offset;
        file.read_vec_at(code, at, len, &self.limits, &format_args!("tile {k}"))
    }

    /// [`Self::tile_ints`], from the store of decoded tiles where this HDU keeps them there:
    /// the kept tile (shared, not copied; one decoded now is moved there from `pixels`), or None
    /// with the tile decoded into `pixels` where the HDU keeps none.
    #[allow(clippy::too_many_arguments)]
    fn kept_tile_ints(
        &self,
        file: &dyn ByteSource,
        k: usize,
        at: (u64, u64),
        count: usize,
        code: &mut Vec<u8>,
        raw: &mut Vec<u8>,
        pixels: &mut Vec<i32>,
    ) -> Result<Option<Arc<Vec<i32>>>> {
        let Some(hdu) = self.memo else { return self.tile_ints(file, k, at, count, code, raw, pixels).map(|()| None) };
        if let Some(kept) = tile_memo::get(hdu, k).filter(|t| t.len() == count) {
            return Ok(Some(kept));
        }
        self.tile_ints(file, k, at, count, code, raw, pixels)?;
        Ok(Some(tile_memo::put(hdu, k, std::mem::take(pixels))))
    }

    /// Decodes the stored integers of tile `k` (`count` pixels, its code at `at` in the heap)
    /// into `pixels` (sign-extended), through `code` and `raw`.
    #[allow(clippy::too_many_arguments)]
    fn tile_ints(
        &self,
        file: &dyn ByteSource,
        k: usize,
        at: (u64, u64),
        count: usize,
        code: &mut Vec<u8>,
        raw: &mut Vec<u8>,
        pixels: &mut Vec<i32>,
    ) -> Result<()> {
        let tile_err = |e: String| Error::decoding(format!("tile {k}: {e}"));
        match self.codec {
            Codec::Rice { block, .. } => {
                // no tile needs more than its raw pixels plus the block headers
                let most = (count as u64).saturating_mul(self.bytepix as u64 + 1).saturating_add(64);
                if at.0 > most {
                    return Err(Error::decoding(format!(
                        "tile {k} claims {} bytes, more than {count} pixels can take",
                        at.0
                    )));
                }
                self.heap_bytes(file, k, at, code)?;
                rice::decode(code, self.bytepix, block, count, pixels).map_err(tile_err)
            }
            Codec::Gzip { .. } | Codec::None => {
                self.heap_bytes(file, k, at, code)?;
                let sizes = gzip::tile_sizes(count, self.bytepix);
                let width = self.tile_values(code, count, &sizes, raw).map_err(tile_err)?;
                ints_from_be(raw, width, pixels).map_err(tile_err)
            }
            Codec::Hcompress { smooth, .. } => {
                self.heap_bytes(file, k, at, code)?;
                let mut wide = Vec::new();
                hcompress::decode(code, smooth, &mut wide, count).map_err(tile_err)?;
                // the image's own integers (8, 16 or 32 bits, or quantised floats): they fit
                pixels.clear();
                pixels
                    .try_reserve_exact(wide.len())
                    .map_err(|_| tile_err(format!("its {} pixels cannot be allocated", wide.len())))?;
                pixels.extend(wide.iter().map(|&v| v as i32));
                Ok(())
            }
            Codec::Plio => {
                // the descriptor counts 16-bit words
                self.heap_bytes(file, k, (at.0.saturating_mul(2), at.1), code)?;
                let words: Vec<i16> = code.chunks_exact(2).map(|w| i16::from_be_bytes(be(w))).collect();
                pixels.clear();
                try_resize(pixels, count, 0).map_err(tile_err)?;
                plio::decode(&words, pixels).map_err(tile_err)
            }
        }
    }

    /// The big-endian values of a GZIP or NOCOMPRESS tile of `count` pixels from its `code`, into
    /// `raw`, which must come to one of `sizes` bytes: inflated (GZIP_2's bytes regrouped by value)
    /// or as they are. Returns the bytes per value.
    fn tile_values(
        &self,
        code: &[u8],
        count: usize,
        sizes: &[usize],
        raw: &mut Vec<u8>,
    ) -> std::result::Result<usize, String> {
        let n = if let Codec::Gzip { .. } = self.codec {
            gzip::inflate_to_one_of(code, sizes, raw)?
        } else {
            if !sizes.contains(&code.len()) {
                let want = sizes.iter().map(ToString::to_string).collect::<Vec<_>>().join(" or ");
                return Err(format!("it holds {} bytes, not the {want} of its pixels", code.len()));
            }
            raw.clear();
            raw.extend_from_slice(code);
            code.len()
        };
        let width = n / count.max(1);
        if self.codec == (Codec::Gzip { shuffle: true }) {
            gzip::unshuffle(raw, width);
        }
        Ok(width)
    }

    /// The big-endian values of tile `k` (`count` pixels) that the writer stored in `fallback`'s
    /// column (`at`: its element count and heap offset), into `raw`. Returns the bytes per value
    /// and whether the values are floats. Gzipped values are typed by their inflated size, as
    /// astropy types them: 4 or 8 bytes are floats in a floating-point image, 1, 2 or 4 bytes
    /// integers in an integer image; values as they are have their column's type.
    #[allow(clippy::too_many_arguments)]
    fn fallback_tile(
        &self,
        file: &dyn ByteSource,
        k: usize,
        fallback: Fallback,
        at: (u64, u64),
        count: usize,
        floats: bool,
        code: &mut Vec<u8>,
        raw: &mut Vec<u8>,
    ) -> Result<(usize, bool)> {
        let tile_err = |e: String| Error::decoding(format!("tile {k}: {e}"));
        match fallback {
            Fallback::Gzip(_) => {
                self.heap_bytes(file, k, at, code)?;
                let widths: &[usize] = if floats { &[4, 8] } else { &[1, 2, 4] };
                let sizes: Vec<usize> = widths.iter().map(|w| count.saturating_mul(*w)).collect();
                let n = gzip::inflate_to_one_of(code, &sizes, raw)
                    .map_err(|e| tile_err(format!("its GZIP_COMPRESSED_DATA: {e}")))?;
                Ok((n / count.max(1), floats))
            }
            Fallback::Plain(_, ty) => {
                if at.0 != count as u64 {
                    return Err(tile_err(format!(
                        "its UNCOMPRESSED_DATA holds {} values, not the {count} of its pixels",
                        at.0
                    )));
                }
                let width = ty.size();
                self.heap_bytes(file, k, (at.0.saturating_mul(width as u64), at.1), raw)?;
                Ok((width, matches!(ty, FitsType::Float | FitsType::Double)))
            }
        }
    }

    /// Whether tile `row` has a null value (its ZBLANK) that [`Self::nulls_as_blank`] marks.
    fn has_nulls(&self, row: &TileRow, scaling: Scaling) -> bool {
        row.blank.is_some() && self.blank.is_some() && scaling.blank.is_some()
    }

    /// An integer tile's nulls (its ZBLANK column's value) as the image's BLANK, which is what a
    /// read then honours (NaN in floats), as astropy maps them.
    fn nulls_as_blank(&self, row: &TileRow, scaling: Scaling, pixels: &mut [i32]) {
        let (Some(null), Some(blank)) = (row.blank.filter(|_| self.blank.is_some()), scaling.blank) else { return };
        let stored = self.stored;
        for p in pixels {
            if i64::from(stored_int(stored, *p)) == null {
                *p = blank as i32;
            }
        }
    }

    /// How a tile's stored integers (as the decoders give them: 8-bit values may come
    /// sign-extended) become values of `T`: into an integer type as they are (offset for the
    /// unsigned types and i8), into floats `value * BSCALE + BZERO` in double, BLANK as NaN.
    fn ints_into<T: Pixel>(&self, scaling: Scaling) -> impl Fn(&mut [T], &[i32]) {
        let stored = self.stored;
        move |dst: &mut [T], src: &[i32]| {
            let value = |v: i32| -> f64 {
                let v = stored_int(stored, v);
                if scaling.blank == Some(i64::from(v)) {
                    f64::NAN
                } else {
                    f64::from(v) * scaling.bscale + scaling.bzero
                }
            };
            match T::DTYPE {
                Dtype::F32 => {
                    let d: &mut [f32] = bytemuck::cast_slice_mut(dst);
                    d.iter_mut().zip(src).for_each(|(o, &v)| *o = value(v) as f32);
                }
                Dtype::F64 => {
                    let d: &mut [f64] = bytemuck::cast_slice_mut(dst);
                    d.iter_mut().zip(src).for_each(|(o, &v)| *o = value(v));
                }
                _ => store(dst, src),
            }
        }
    }

    /// Copies the part of a decoded tile (`lo..hi`) inside `band` into `out`, a run at a time.
    #[allow(clippy::too_many_arguments)]
    #[expect(
        clippy::indexing_slicing,
        reason = "the section, tile shape, dims, strides and odometers have one entry per image axis: ZNAXIS >= 1, checked equal to the tile shape's length by TileCompression and to the section's in `read`"
    )]
    fn copy<S, T>(
        &self,
        pixels: &[S],
        lo: &[usize],
        hi: &[usize],
        band: &[Range<usize>],
        ostride: &[usize],
        out: &mut [T],
        store: impl Fn(&mut [T], &[S]),
    ) {
        let n = lo.len();
        let a: Vec<usize> = lo.iter().zip(band).map(|(l, b)| (*l).max(b.start)).collect();
        let z: Vec<usize> = hi.iter().zip(band).map(|(h, b)| (*h).min(b.end)).collect();
        if a.iter().zip(&z).any(|(a, z)| a >= z) {
            return;
        }
        let mut tstride = vec![1usize; n];
        for i in 1..n {
            tstride[i] = tstride[i - 1] * (hi[i - 1] - lo[i - 1]);
        }
        let run = z[0] - a[0];
        let mut c: Vec<usize> = a.clone();
        loop {
            let src: usize = (0..n).map(|i| (c[i] - lo[i]) * tstride[i]).sum();
            let dst: usize = (0..n).map(|i| (c[i] - band[i].start) * ostride[i]).sum();
            if let (Some(s), Some(d)) = (pixels.get(src..src + run), out.get_mut(dst..dst + run)) {
                store(d, s);
            }
            let mut i = 1;
            loop {
                if i >= n {
                    return;
                }
                c[i] += 1;
                if c[i] < z[i] {
                    break;
                }
                c[i] = a[i];
                i += 1;
            }
        }
    }
}

/// The values of quantised tile `k` (0-based, FITS order) from its integers, as cfitsio's
/// `unquantize_i4r4` / `_i4r8` compute them: in f64, each value rounded once to `T`; ZBLANK
/// pixels are NaN; the dither index advances over every pixel, null or not.
fn unquantize<T: Pixel>(
    q: &Quantized,
    k: usize,
    row: &TileRow,
    ints: &[i32],
    out: &mut Vec<T>,
) -> std::result::Result<(), String> {
    // every element is written below: a buffer of the right length is reused without zeroing
    if out.len() != ints.len() {
        out.clear();
        try_resize(out, ints.len(), T::default())?;
    }
    match T::DTYPE {
        Dtype::F32 => unquantize_as(q, k, row, ints, bytemuck::cast_slice_mut::<T, f32>(out), |x| x as f32),
        Dtype::F64 => unquantize_as(q, k, row, ints, bytemuck::cast_slice_mut::<T, f64>(out), |x| x),
        // quantised tiles are read into floats only (`decodes`): nothing else reaches here
        _ => out.fill(T::default()),
    }
    Ok(())
}

/// [`unquantize`] into `out`, each f64 value rounded by `round`: in runs that end where the
/// dither index wraps, so the inner loop has no bookkeeping.
fn unquantize_as<F: Copy>(
    q: &Quantized,
    k: usize,
    row: &TileRow,
    ints: &[i32],
    out: &mut [F],
    round: impl Fn(f64) -> F,
) {
    let (scale, zero) = (row.scale, row.zero);
    let blank = row.blank.and_then(|b| i32::try_from(b).ok());
    let value = |v: i32, r: f32| -> F {
        round(if Some(v) == blank {
            f64::NAN
        } else {
            match q.dither {
                Dither::None => f64::from(v) * scale + zero,
                Dither::Two if v == ZERO_VALUE => 0.0,
                _ => (f64::from(v) - f64::from(r) + 0.5) * scale + zero,
            }
        })
    };
    if q.dither == Dither::None {
        out.iter_mut().zip(ints).for_each(|(o, &v)| *o = value(v, 0.0));
        return;
    }
    let random = random_sequence();
    // tile k + 1 starts at ZDITHER0 + k - 1 in the sequence (mod its length)
    let mut iseed = ((k as u64).saturating_add(q.seed.max(1) as u64) - 1) as usize % N_RANDOM;
    let start = |i: usize| random.get(i).map_or(0, |&r| (r * 500.0) as usize);
    let mut next = start(iseed);
    let (mut out, mut ints) = (out, ints);
    while !ints.is_empty() && !out.is_empty() {
        let r = random.get(next..).unwrap_or_default();
        let n = r.len().min(ints.len()).min(out.len()).max(1);
        let (o, o_rest) = std::mem::take(&mut out).split_at_mut(n);
        let (i, i_rest) = ints.split_at(n);
        o.iter_mut().zip(i).zip(r).for_each(|((o, &v), &r)| *o = value(v, r));
        (out, ints) = (o_rest, i_rest);
        // the index moves on over every pixel, null or not; at the end of the sequence the
        // next seed gives the new start
        next += n;
        if next >= N_RANDOM {
            iseed = (iseed + 1) % N_RANDOM;
            next = start(iseed);
        }
    }
}

/// Values of a floating-point image from big-endian values of `width` bytes: floats (4 or 8
/// bytes) or integers (1 byte unsigned, 2 or 4 signed), each rounded once to `T`.
fn values_from_be<T: Pixel>(
    raw: &[u8],
    width: usize,
    floats: bool,
    out: &mut Vec<T>,
) -> std::result::Result<(), String> {
    out.clear();
    try_resize(out, raw.len() / width.max(1), T::default())?;
    let value = |b: &[u8]| -> f64 {
        match (floats, b.len()) {
            (true, 4) => f64::from(f32::from_be_bytes(be(b))),
            (true, _) => f64::from_be_bytes(be(b)),
            (false, 1) => f64::from(u8::from_be_bytes(be(b))),
            (false, 2) => f64::from(i16::from_be_bytes(be(b))),
            (false, _) => f64::from(i32::from_be_bytes(be(b))),
        }
    };
    if !matches!((floats, width), (true, 4 | 8) | (false, 1 | 2 | 4)) {
        return Err(format!("its values of {width} bytes are not decoded here"));
    }
    match T::DTYPE {
        Dtype::F32 => {
            let o: &mut [f32] = bytemuck::cast_slice_mut(out);
            o.iter_mut().zip(raw.chunks_exact(width)).for_each(|(o, b)| *o = value(b) as f32);
        }
        Dtype::F64 => {
            let o: &mut [f64] = bytemuck::cast_slice_mut(out);
            o.iter_mut().zip(raw.chunks_exact(width)).for_each(|(o, b)| *o = value(b));
        }
        _ => return Err("its values are not of the image's type".into()),
    }
    Ok(())
}

/// The `N` bytes of `b` as an array: `b` is an exact chunk of `N` bytes wherever this is called
/// (zeros otherwise, never a panic).
fn be<const N: usize>(b: &[u8]) -> [u8; N] {
    b.try_into().unwrap_or([0; N])
}

/// The stored integers of an integer image from big-endian values of `width` bytes (1 byte
/// unsigned, 2 or 4 signed), into `pixels`.
fn ints_from_be(raw: &[u8], width: usize, pixels: &mut Vec<i32>) -> std::result::Result<(), String> {
    pixels.clear();
    match width {
        1 => pixels.extend(raw.iter().map(|&b| i32::from(b))),
        2 => pixels.extend(raw.chunks_exact(2).map(|b| i32::from(i16::from_be_bytes(be(b))))),
        4 => pixels.extend(raw.chunks_exact(4).map(|b| i32::from_be_bytes(be(b)))),
        _ => return Err(format!("its {width}-byte values are not integers of this image")),
    }
    Ok(())
}

/// The codec as decoded here, and the bytes per value as coded: integers coded at least as wide
/// as they are stored (older writers coded 8- and 16-bit images as 32-bit integers), quantised
/// floats as 32-bit integers; floats stored as they are only by GZIP and NOCOMPRESS.
fn codec(
    description: &TileCompression,
    raw_floats: bool,
    stored: usize,
) -> std::result::Result<(Codec, usize), String> {
    match description.codec {
        Codec::Gzip { .. } | Codec::None => Ok((description.codec, stored)),
        codec if raw_floats => Err(format!(
            "{} tiles of floating-point values that are not quantised (ZQUANTIZ = 'NONE', or no ZSCALE) are not \
             decoded: the convention codes only integers with it",
            codec.name()
        )),
        Codec::Rice { bytepix, .. } if bytepix > 4 || bytepix < stored => {
            Err(format!("RICE_1 tiles coded with BYTEPIX = {bytepix} for values of {stored} bytes are not decoded"))
        }
        Codec::Rice { bytepix, .. } => Ok((description.codec, bytepix)),
        Codec::Hcompress { .. } | Codec::Plio => Ok((description.codec, stored)),
    }
}

/// The column `name` of the table (names compare as the convention's, case and trailing blanks
/// aside).
fn column<'a>(schema: &'a TableSchema, name: &str) -> Option<&'a ColumnSchema> {
    schema.columns.iter().find(|c| c.name.trim().eq_ignore_ascii_case(name))
}

/// Where the descriptor of tile column `name` sits in a row: `None` when the table has no such
/// column, an error when it has one of another type than `ty`.
fn descriptor(schema: &TableSchema, name: &str, ty: FitsType) -> std::result::Result<Option<Descriptor>, Undecoded> {
    let Some(col) = column(schema, name) else { return Ok(None) };
    let wide = match col.variable {
        Some(VarArray::P) => false,
        Some(VarArray::Q) => true,
        None => {
            return Err(Undecoded::malformed(format!(
                "its {name} column (TFORM = '{}') is not a variable-length array",
                col.tform
            )));
        }
    };
    if col.fits_type != ty || col.repeat > 1 {
        return Err(Undecoded::malformed(format!(
            "its {name} column (TFORM = '{}') does not hold the convention's type",
            col.tform
        )));
    }
    Ok(Some(Descriptor { offset: col.offset, wide }))
}

/// The UNCOMPRESSED_DATA column of a compressed image's table: `None` when there is none, an
/// error when its type is other than `B`, `I`, `J`, `E`, `D`, or it has scaling or a null value
/// (which no writer gives it).
fn plain_column(schema: &TableSchema) -> std::result::Result<Option<(Descriptor, FitsType)>, Undecoded> {
    let Some(col) = column(schema, "UNCOMPRESSED_DATA") else { return Ok(None) };
    let typed =
        matches!(col.fits_type, FitsType::Byte | FitsType::Short | FitsType::Int | FitsType::Float | FitsType::Double);
    let plain = col.repeat <= 1 && col.null.is_none() && col.scale == 1.0 && col.zero == 0.0;
    if !(typed && plain) {
        return Err(Undecoded::malformed(format!(
            "its UNCOMPRESSED_DATA column (TFORM = '{}') is not one the convention writes",
            col.tform
        )));
    }
    Ok(descriptor(schema, "UNCOMPRESSED_DATA", col.fits_type)?.map(|d| (d, col.fits_type)))
}

/// A per-tile parameter (ZSCALE, ZZERO, ZBLANK): its column, which must hold one plain number
/// per row, or else its keyword; `None` when there is neither.
fn param(table: &Header, schema: &TableSchema, name: &str) -> std::result::Result<Option<Param>, Undecoded> {
    let Some(c) = column(schema, name) else { return Ok(table.get_f64(name).map(Param::Constant)) };
    let plain = c.variable.is_none() && c.repeat == 1 && c.null.is_none() && c.scale == 1.0 && c.zero == 0.0;
    let numeric = matches!(c.fits_type, FitsType::Double | FitsType::Float | FitsType::Int | FitsType::Short);
    if !(plain && numeric) {
        return Err(Undecoded::malformed(format!(
            "its {name} column (TFORM = '{}') does not hold one number per tile",
            c.tform
        )));
    }
    Ok(Some(Param::Column { offset: c.offset, ty: c.fits_type }))
}

/// A decoded integer as the image stores it: 8-bit values unsigned, 16-bit ones signed (a
/// decoder may give either extended to 32 bits).
fn stored_int(stored: usize, v: i32) -> i32 {
    match stored {
        1 => i32::from(v as u8),
        2 => i32::from(v as i16),
        _ => v,
    }
}

/// Stored integers (sign-extended) as values of `T`: the unsigned types and i8 undo their
/// offset (a flipped top bit).
fn store<T: Pixel>(dst: &mut [T], src: &[i32]) {
    macro_rules! each {
        ($t:ty, $f:expr) => {{
            let d: &mut [$t] = bytemuck::cast_slice_mut(dst);
            for (o, &v) in d.iter_mut().zip(src) {
                *o = $f(v);
            }
        }};
    }
    match T::DTYPE {
        Dtype::U8 => each!(u8, |v: i32| v as u8),
        Dtype::I8 => each!(i8, |v: i32| (v as u8 ^ 0x80) as i8),
        Dtype::I16 => each!(i16, |v: i32| v as i16),
        Dtype::U16 => each!(u16, |v: i32| (v as u16) ^ 0x8000),
        Dtype::I32 => each!(i32, |v: i32| v),
        Dtype::U32 => each!(u32, |v: i32| (v as u32) ^ 0x8000_0000),
        _ => {}
    }
}

#[cfg(test)]
mod older_layouts {
    //! Layouts older writers produced, decoded here and by cfitsio alike: RICE_1 tiles of a 16-bit
    //! image coded as 32-bit integers with no BYTEPIX card (the convention's default is 4), and
    //! GZIP tiles of 16- and 8-bit images that inflate to 32-bit integers. Their values against
    //! astropy's, and the other layouts (tiles beside COMPRESSED_DATA, NOCOMPRESS), are checked by
    //! the integration tests on tests/data/older_layouts.fits.

    use std::io::Write;

    use crate::compression::rice;
    use crate::{FitsFile, OpenOptions};
    use torchfits_format::cards::{Record, end, structural};
    use torchfits_format::header::Value;

    const W: usize = 50;
    const H: usize = 6;

    fn header(records: Vec<Record>) -> Vec<u8> {
        let mut bytes: Vec<u8> = records.concat();
        bytes.extend_from_slice(&end());
        bytes.resize(bytes.len().div_ceil(2880) * 2880, b' ');
        bytes
    }

    /// A FITS file: an empty primary HDU, then a compressed image of H rows of W pixels, one tile
    /// per row, whose tiles are `tiles`, its header ending in `extra` cards.
    fn file(zbitpix: i64, zcmptype: &str, extra: Vec<Record>, tiles: &[Vec<u8>]) -> Vec<u8> {
        file_with(zbitpix, zcmptype, extra, tiles, None)
    }

    /// [`file`], with a second column (TTYPE2, one 32-bit integer per tile) when `column` is
    /// given.
    fn file_with(
        zbitpix: i64,
        zcmptype: &str,
        extra: Vec<Record>,
        tiles: &[Vec<u8>],
        column: Option<(&str, &[i32])>,
    ) -> Vec<u8> {
        let s = |k: &str, v: Value| structural(k, v, "");
        let mut bytes =
            header(vec![s("SIMPLE", Value::Bool(true)), s("BITPIX", Value::Int(8)), s("NAXIS", Value::Int(0))]);
        let heap: Vec<u8> = tiles.concat();
        let max = tiles.iter().map(Vec::len).max().unwrap_or(0);
        let mut table = vec![
            s("XTENSION", Value::Str("BINTABLE".into())),
            s("BITPIX", Value::Int(8)),
            s("NAXIS", Value::Int(2)),
            s("NAXIS1", Value::Int(if column.is_some() { 12 } else { 8 })),
            s("NAXIS2", Value::Int(H as i64)),
            s("PCOUNT", Value::Int(heap.len() as i64)),
            s("GCOUNT", Value::Int(1)),
            s("TFIELDS", Value::Int(if column.is_some() { 2 } else { 1 })),
            s("TTYPE1", Value::Str("COMPRESSED_DATA".into())),
            s("TFORM1", Value::Str(format!("1PB({max})"))),
            s("ZIMAGE", Value::Bool(true)),
            s("ZBITPIX", Value::Int(zbitpix)),
            s("ZNAXIS", Value::Int(2)),
            s("ZNAXIS1", Value::Int(W as i64)),
            s("ZNAXIS2", Value::Int(H as i64)),
            s("ZTILE1", Value::Int(W as i64)),
            s("ZTILE2", Value::Int(1)),
            s("ZCMPTYPE", Value::Str(zcmptype.into())),
        ];
        if let Some((name, _)) = column {
            table.push(s("TTYPE2", Value::Str(name.into())));
            table.push(s("TFORM2", Value::Str("1J".into())));
        }
        table.extend(extra);
        bytes.extend(header(table));
        let start = bytes.len();
        let mut offset = 0u32;
        for (k, t) in tiles.iter().enumerate() {
            bytes.extend_from_slice(&(t.len() as u32).to_be_bytes());
            bytes.extend_from_slice(&offset.to_be_bytes());
            if let Some((_, values)) = column {
                bytes.extend_from_slice(&values[k].to_be_bytes());
            }
            offset += t.len() as u32;
        }
        bytes.extend_from_slice(&heap);
        let data = bytes.len() - start;
        bytes.resize(start + data.div_ceil(2880) * 2880, 0);
        bytes
    }

    fn gzip(raw: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(raw).expect("deflate");
        e.finish().expect("deflate")
    }

    fn values(lo: i32, hi: i32) -> Vec<i32> {
        (0..W * H).map(|i| lo + (i as i32 * 7919) % (hi - lo)).collect()
    }

    /// What torchfits decodes natively and what cfitsio decodes (direct reads off), as i32.
    fn both(bytes: &[u8], name: &str) -> (Vec<i32>, Vec<i32>) {
        let native = FitsFile::from_bytes(bytes.to_vec()).expect("open");
        let image = native.image(1).expect("image");
        assert!(image.decoded_natively(), "{name}: decoded here");
        let ours: Vec<i32> =
            image.read_data(None).expect("native read").pixels.to_f64().iter().map(|&v| v as i32).collect();
        let dir = std::env::temp_dir().join(format!("torchfits-older-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("tiles.fits");
        std::fs::write(&path, bytes).expect("write");
        let cfitsio = OpenOptions::new().direct_reads(false).open(&path).expect("open");
        let image = cfitsio.image(1).expect("image");
        assert!(!image.decoded_natively(), "{name}: decoded by cfitsio");
        let theirs: Vec<i32> =
            image.read_data(None).expect("cfitsio read").pixels.to_f64().iter().map(|&v| v as i32).collect();
        std::fs::remove_dir_all(&dir).ok();
        (ours, theirs)
    }

    #[test]
    fn every_image_of_the_astropy_referenced_fixtures_is_decoded_here() {
        // compressed HDUs, each followed by astropy's reading of it
        for (name, count) in [("older_layouts.fits", 19), ("hcompress_plio.fits", 23)] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data").join(name);
            let file = FitsFile::open(&path).expect("open");
            assert_eq!(file.hdu_count().expect("count"), count, "{name}");
            for hdu in (1..count).step_by(2) {
                let image = file.image(hdu).expect("image");
                assert!(image.decoded_natively(), "{name} HDU {hdu}");
            }
        }
    }

    #[test]
    fn rice_tiles_of_16_bit_pixels_coded_as_32_bit_integers_without_bytepix() {
        let pixels = values(-30000, 30000);
        let tiles: Vec<Vec<u8>> = pixels.chunks(W).map(|row| rice::encode(row, 4, Vec::new())).collect();
        // BLOCKSIZE given (cfitsio requires it), BYTEPIX left to its default
        let block =
            vec![structural("ZNAME1", Value::Str("BLOCKSIZE".into()), ""), structural("ZVAL1", Value::Int(32), "")];
        let (ours, theirs) = both(&file(16, "RICE_1", block, &tiles), "rice");
        assert_eq!(ours, pixels);
        assert_eq!(theirs, pixels);
    }

    #[test]
    fn gzip_tiles_of_8_and_16_bit_pixels_inflating_to_32_bit_integers() {
        for (zbitpix, lo, hi) in [(16, -30000, 30000), (8, 0, 255)] {
            let pixels = values(lo, hi);
            for zcmptype in ["GZIP_1", "GZIP_2"] {
                let tiles: Vec<Vec<u8>> = pixels
                    .chunks(W)
                    .map(|row| {
                        let raw: Vec<u8> = row.iter().flat_map(|v| v.to_be_bytes()).collect();
                        if zcmptype == "GZIP_1" {
                            return gzip(&raw);
                        }
                        // GZIP_2: every value's first byte, then every second byte, ...
                        let shuffled: Vec<u8> = (0..4).flat_map(|b| raw.iter().skip(b).step_by(4).copied()).collect();
                        gzip(&shuffled)
                    })
                    .collect();
                let name = format!("{zcmptype}-{zbitpix}");
                let (ours, theirs) = both(&file(zbitpix, zcmptype, Vec::new(), &tiles), &name);
                assert_eq!(ours, pixels, "{name}");
                assert_eq!(theirs, pixels, "{name}: cfitsio");
            }
        }
    }

    /// GZIP_1 tiles of 16-bit integers, one per row.
    fn gzip_rows(pixels: &[i32]) -> Vec<Vec<u8>> {
        pixels
            .chunks(W)
            .map(|row| gzip(&row.iter().flat_map(|&v| (v as i16).to_be_bytes()).collect::<Vec<_>>()))
            .collect()
    }

    #[test]
    fn each_tiles_null_of_an_integer_image_is_undefined_as_cfitsio_reads_it() {
        // a ZBLANK column: each tile its own null value, which is NaN in floats
        let nulls: Vec<i32> = (0..H as i32).map(|k| -1000 - k).collect();
        let mut pixels = values(-900, 900);
        for (k, row) in pixels.chunks_mut(W).enumerate() {
            row[k] = nulls[k];
            row[W - 1] = nulls[(k + 1) % H];
        }
        let bytes = file_with(16, "GZIP_1", Vec::new(), &gzip_rows(&pixels), Some(("ZBLANK", &nulls)));
        let ours = FitsFile::from_bytes(bytes.clone()).expect("open");
        let image = ours.image(1).expect("image");
        assert!(image.decoded_natively());
        let got: Vec<f32> = image.read().expect("read");
        for (i, (&g, &p)) in got.iter().zip(&pixels).enumerate() {
            let null = nulls[i / W];
            assert_eq!(g.is_nan(), p == null, "pixel {i}");
            if p != null {
                assert_eq!(g, p as f32, "pixel {i}");
            }
        }
        let dir = std::env::temp_dir().join(format!("torchfits-zblank-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(dir.join("zblank.fits"), &bytes).expect("write");
        let cfitsio = OpenOptions::new().direct_reads(false).open(dir.join("zblank.fits")).expect("open");
        let theirs: Vec<f32> = cfitsio.image(1).expect("image").read().expect("cfitsio read");
        std::fs::remove_dir_all(&dir).ok();
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(&got), bits(&theirs));
    }

    #[test]
    fn other_columns_and_parameters_are_left_alone() {
        // a column and a ZNAMEn the convention does not define, as cfitsio and astropy ignore them
        let pixels = values(-900, 900);
        let extra =
            vec![structural("ZNAME1", Value::Str("NOISEBIT".into()), ""), structural("ZVAL1", Value::Int(4), "")];
        let bytes = file_with(16, "GZIP_1", extra, &gzip_rows(&pixels), Some(("EXPOSURE", &[7; H])));
        let image = FitsFile::from_bytes(bytes).expect("open").image(1).expect("image");
        assert!(image.decoded_natively());
        let got: Vec<i16> = image.read().expect("read");
        assert!(got.iter().zip(&pixels).all(|(&g, &p)| i32::from(g) == p));
    }

    #[test]
    fn an_image_not_decoded_here_is_an_error_naming_the_cause_not_a_read_by_cfitsio() {
        let cases = [
            (64, "GZIP_1", vec![], "64-bit integers"),
            (-32, "GZIP_1", vec![structural("BSCALE", Value::Float(2.0), "")], "BSCALE"),
            (-32, "RICE_1", vec![structural("ZQUANTIZ", Value::Str("NONE".into()), "")], "not quantised"),
        ];
        let before = crate::cfitsio_handles_opened();
        for (zbitpix, zcmptype, extra, cause) in cases {
            let tiles = gzip_rows(&values(-900, 900));
            let file = FitsFile::from_bytes(file(zbitpix, zcmptype, extra, &tiles)).expect("open");
            let err = file.image(1).and_then(|image| image.read::<f64>()).expect_err(cause);
            assert_eq!(err.kind(), crate::ErrorKind::Unsupported, "{err}");
            assert!(err.to_string().contains(cause) && err.to_string().contains("HDU 1"), "{err}");
        }
        assert_eq!(crate::cfitsio_handles_opened(), before);
    }
}
