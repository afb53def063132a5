//! Reading RICE_1 and GZIP_1/GZIP_2 tile-compressed images without cfitsio: integers, floats
//! quantised to integers (dithered or not, NaN, tiles stored as gzipped floats) and gzipped
//! floats stored as they are. The tiles a section touches are read from the heap (`pread`) and
//! decoded straight into the caller's buffer, bands of tile rows on separate threads. Anything
//! else compressed (HCOMPRESS, PLIO, 64-bit integers, integer images with nulls, other columns)
//! goes through cfitsio.

// Indexing reviewed (issue 8): `sec`, `tile`, `dims`, the strides and the odometers all have one entry per
// image axis (ZNAXIS, checked equal to the tile shape's and the section's length); tile
// descriptors are looked up with `get`, and tile contents only go through the bounds-checked bit
// reader of `decode_into`.
#![allow(clippy::indexing_slicing)]

use std::ops::Range;

use crate::direct::Direct;
use crate::error::{Error, Result};
use crate::header::Header;
use crate::image::{Dtype, Pixel, Section};
use crate::table::{FitsType, TableSchema, VarArray};

/// Where the tiles of a RICE_1 image are, from its binary table's header.
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
    /// How tiles are coded.
    codec: Codec,
    /// Bytes per stored value (Rice: 1, 2 or 4; gzip: 1, 2, 4 or 8).
    bytepix: usize,
    /// Gzipped floats stored as they are (lossless): the values are the stored ones.
    raw_floats: bool,
    /// Image and tile shapes, FITS order (x first).
    dims: Vec<usize>,
    tile: Vec<usize>,
    /// The COMPRESSED_DATA descriptor in each row.
    code: Descriptor,
    /// For a quantised floating-point image: how its integers become values.
    quantized: Option<Quantized>,
}

/// A tile codec torchfits decodes itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Codec {
    /// RICE_1, with its block size.
    Rice { block: usize },
    /// GZIP_1 (`shuffle` false) or GZIP_2 (bytes shuffled: every value's first byte, then every
    /// second byte, ...).
    Gzip { shuffle: bool },
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

/// The subtractive dithering of a quantised image (ZQUANTIZ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dither {
    /// `NO_DITHER`, or no ZQUANTIZ: value = integer x scale + zero.
    None,
    /// `SUBTRACTIVE_DITHER_1`: value = (integer - r + 0.5) x scale + zero, r from the standard's
    /// random sequence.
    One,
    /// `SUBTRACTIVE_DITHER_2`: as 1, and the reserved integer -2147483646 is an exact 0.0.
    Two,
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
                    FitsType::Float => bytes(4).and_then(|b| b.try_into().ok()).map(|b| f64::from(f32::from_be_bytes(b))),
                    FitsType::Int => bytes(4).and_then(|b| b.try_into().ok()).map(|b| f64::from(i32::from_be_bytes(b))),
                    FitsType::Short => bytes(2).and_then(|b| b.try_into().ok()).map(|b| f64::from(i16::from_be_bytes(b))),
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
    /// ZBITPIX = -64 (values are computed in f64 either way; -32 rounds them to f32).
    double: bool,
    dither: Dither,
    /// ZDITHER0: where tile 1 starts in the random sequence.
    seed: i64,
    scale: Param,
    zero: Param,
    /// The integer that marks an undefined pixel (ZBLANK), read as NaN.
    blank: Option<Param>,
    /// GZIP_COMPRESSED_DATA: tiles the writer could not quantise, stored as gzipped values.
    gzip: Option<Descriptor>,
}

/// Integer that SUBTRACTIVE_DITHER_2 stores for an exact zero.
const ZERO_VALUE: i32 = -2_147_483_646;
/// Length of the convention's random sequence.
const N_RANDOM: usize = 10_000;

/// The tiled image convention's 10000 dither values: the Park-Miller generator (a = 16807,
/// m = 2^31 - 1) from seed 1, each seed / m rounded to f32, computed in f64 as cfitsio does.
fn random_sequence() -> &'static [f32] {
    static SEQUENCE: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    SEQUENCE.get_or_init(|| park_miller_seeds().map(|seed| (seed / PARK_MILLER_M) as f32).collect())
}

const PARK_MILLER_M: f64 = 2147483647.0;

/// The convention's first `N_RANDOM` Park-Miller seeds (as f64, as cfitsio computes them).
fn park_miller_seeds() -> impl Iterator<Item = f64> {
    let mut seed = 1.0f64;
    (0..N_RANDOM).map(move |_| {
        let temp = 16807.0 * seed;
        seed = temp - PARK_MILLER_M * (temp / PARK_MILLER_M).trunc();
        seed
    })
}

/// One tile's row of the table: its Rice code, gzipped values, and quantisation.
#[derive(Debug, Clone, Copy, Default)]
struct TileRow {
    /// (bytes, heap offset) of COMPRESSED_DATA.
    code: (u64, u64),
    /// (bytes, heap offset) of GZIP_COMPRESSED_DATA (0 bytes when none).
    gzip: (u64, u64),
    scale: f64,
    zero: f64,
    blank: Option<i64>,
}

impl NativeTiles {
    /// The table of a compressed HDU whose data starts at `data_start`, if torchfits decodes it
    /// itself: RICE_1 or GZIP_1/2 of 8-, 16- or 32-bit integers (one COMPRESSED_DATA column, no
    /// ZBLANK), of floats quantised to 32-bit integers (any ZQUANTIZ, ZSCALE/ZZERO/ZBLANK as
    /// columns or keywords, tiles stored in GZIP_COMPRESSED_DATA), or (gzip) of floats as they
    /// are. Anything else goes to cfitsio.
    pub(crate) fn from_header(table: &Header, data_start: u64) -> Option<NativeTiles> {
        let cmp = table.get_str("ZCMPTYPE")?.trim().to_ascii_uppercase();
        let gzip = match cmp.as_str() {
            "RICE_1" | "RICE_ONE" => None,
            "GZIP_1" => Some(false),
            "GZIP_2" => Some(true),
            _ => return None,
        };
        let zbitpix = table.get_i64("ZBITPIX")?;
        // BSCALE/BZERO on a float image scale its values once more: cfitsio's (on integers they
        // give the image's type, which `decodes` matches)
        let scaled = table.contains("BSCALE") || table.contains("BZERO");
        if !matches!(zbitpix, 8 | 16 | 32 | -32 | -64) || zbitpix < 0 && scaled {
            return None;
        }
        let schema = TableSchema::from_header(table).ok()?;
        let descriptor = |name: &str| -> Option<Option<Descriptor>> {
            let Some(col) = schema.columns.iter().find(|c| c.name.trim().eq_ignore_ascii_case(name)) else {
                return Some(None);
            };
            let wide = match col.variable? {
                VarArray::P => false,
                VarArray::Q => true,
            };
            (col.fits_type == FitsType::Byte && col.repeat <= 1).then_some(Some(Descriptor { offset: col.offset, wide }))
        };
        let code = descriptor("COMPRESSED_DATA")??;
        let (mut block, mut bytepix) = (32usize, if zbitpix > 0 { (zbitpix / 8) as usize } else { 4 });
        for k in 1..=9 {
            match table.get_str(&format!("ZNAME{k}")).map(|s| s.trim().to_ascii_uppercase()).as_deref() {
                Some("BLOCKSIZE") if gzip.is_none() => block = usize::try_from(table.get_i64(&format!("ZVAL{k}"))?).ok()?,
                Some("BYTEPIX") if gzip.is_none() => bytepix = usize::try_from(table.get_i64(&format!("ZVAL{k}"))?).ok()?,
                // the quantisation level the writer used: a note, not a decoding parameter
                Some("NOISEBIT") if zbitpix < 0 => {}
                Some(_) => return None,
                None => {}
            }
        }
        let raw_floats = zbitpix < 0 && stores_raw_floats(table);
        if raw_floats && gzip.is_none() {
            return None;
        }
        let stored = if zbitpix > 0 || raw_floats { zbitpix.unsigned_abs() as usize / 8 } else { 4 };
        if gzip.is_some() {
            bytepix = stored;
        }
        if bytepix != stored || block == 0 || block > 1 << 16 {
            return None;
        }
        let codec = match gzip {
            None => Codec::Rice { block },
            Some(shuffle) => Codec::Gzip { shuffle },
        };
        let quantized = if zbitpix > 0 || raw_floats {
            if schema.columns.len() != 1 || table.contains("ZBLANK") {
                return None;
            }
            None
        } else {
            let known = ["COMPRESSED_DATA", "GZIP_COMPRESSED_DATA", "ZSCALE", "ZZERO", "ZBLANK"];
            if schema.columns.iter().any(|c| !known.iter().any(|k| c.name.trim().eq_ignore_ascii_case(k))) {
                return None;
            }
            let param = |name: &str| -> Option<Option<Param>> {
                match schema.columns.iter().find(|c| c.name.trim().eq_ignore_ascii_case(name)) {
                    Some(c) if c.variable.is_none() && c.repeat == 1 && c.null.is_none() && c.scale == 1.0 && c.zero == 0.0 => {
                        matches!(c.fits_type, FitsType::Double | FitsType::Float | FitsType::Int | FitsType::Short)
                            .then_some(Some(Param::Column { offset: c.offset, ty: c.fits_type }))
                    }
                    Some(_) => None,
                    None => Some(table.get_f64(name).map(Param::Constant)),
                }
            };
            let dither = match table.get_str("ZQUANTIZ").map(|q| q.trim().to_ascii_uppercase()).as_deref() {
                None | Some("NO_DITHER") => Dither::None,
                Some("SUBTRACTIVE_DITHER_1") => Dither::One,
                Some("SUBTRACTIVE_DITHER_2") => Dither::Two,
                Some(_) => return None,
            };
            let seed = match dither {
                Dither::None => 0,
                _ => table.get_i64("ZDITHER0").filter(|s| (1..=N_RANDOM as i64).contains(s))?,
            };
            Some(Quantized {
                double: zbitpix == -64,
                dither,
                seed,
                scale: param("ZSCALE")??,
                zero: param("ZZERO")??,
                blank: param("ZBLANK")?,
                gzip: descriptor("GZIP_COMPRESSED_DATA")?,
            })
        };
        let ntiles = usize::try_from(schema.nrows).ok()?;
        let heap_len = schema.data_len.checked_sub(schema.heap_offset)?;
        let naxis = usize::try_from(table.get_i64("ZNAXIS")?).ok()?;
        let mut dims = Vec::with_capacity(naxis);
        let mut tile = Vec::with_capacity(naxis);
        for k in 1..=naxis {
            let d = usize::try_from(table.get_i64(&format!("ZNAXIS{k}"))?).ok()?;
            let default = if k == 1 { d as i64 } else { 1 };
            let t = usize::try_from(table.get_i64(&format!("ZTILE{k}")).unwrap_or(default)).ok()?;
            if t == 0 {
                return None;
            }
            dims.push(d);
            tile.push(t);
        }
        let expected = dims.iter().zip(&tile).try_fold(1usize, |acc, (d, t)| acc.checked_mul(d.div_ceil(*t)));
        if naxis == 0 || expected != Some(ntiles) {
            return None;
        }
        Some(NativeTiles {
            data_start,
            row_bytes: schema.row_bytes,
            ntiles,
            heap_offset: schema.heap_offset,
            heap_len,
            codec,
            bytepix,
            raw_floats,
            dims,
            tile,
            code,
            quantized,
        })
    }

    /// Whether an image of `dtype` (as the header gives it) is read here into `T`: in its own
    /// type, the stored integers as they are or offset (unsigned, i8), no BLANK; a quantised
    /// image as f32 (ZBITPIX -32) or f64 (-64).
    pub(crate) fn decodes<T: Pixel>(&self, dtype: Dtype, blank: bool) -> bool {
        let stored = match (&self.quantized, self.bytepix) {
            (Some(q), _) => dtype == if q.double { Dtype::F64 } else { Dtype::F32 },
            (None, 4) if self.raw_floats => dtype == Dtype::F32,
            (None, 8) if self.raw_floats => dtype == Dtype::F64,
            (None, 8) => false,
            (None, 1) => matches!(dtype, Dtype::U8 | Dtype::I8),
            (None, 2) => matches!(dtype, Dtype::I16 | Dtype::U16),
            (None, _) => matches!(dtype, Dtype::I32 | Dtype::U32),
        };
        stored && !blank && T::DTYPE == dtype
    }

    /// Each tile's row: where its code is, and its quantisation.
    fn descriptors(&self, file: &Direct) -> Result<Vec<TileRow>> {
        let bytes = (self.ntiles as u64).saturating_mul(self.row_bytes as u64);
        if self.data_start.saturating_add(bytes) > file.len() {
            return Err(Error::decoding("the file is truncated: it ends inside the table of tiles"));
        }
        let mut rows = vec![0u8; bytes as usize];
        file.read_bytes_at(&mut rows, self.data_start)?;
        rows.chunks_exact(self.row_bytes.max(1))
            .enumerate()
            .map(|(k, r)| {
                let mut row = TileRow { code: self.code.read(r), scale: 1.0, ..TileRow::default() };
                if let Some(q) = &self.quantized {
                    let bad = |what: &str| Error::decoding(format!("tile {k}: its {what} cannot be read"));
                    row.gzip = q.gzip.map_or((0, 0), |d| d.read(r));
                    row.scale = q.scale.read(r).ok_or_else(|| bad("ZSCALE"))?;
                    row.zero = q.zero.read(r).ok_or_else(|| bad("ZZERO"))?;
                    row.blank = match q.blank {
                        Some(b) => Some(b.read(r).ok_or_else(|| bad("ZBLANK"))? as i64),
                        None => None,
                    };
                }
                Ok(row)
            })
            .collect()
    }

    /// Decodes `section` (C order) into `out`, bands of tile rows on up to `threads` threads.
    pub(crate) fn read<T: Pixel>(&self, file: &Direct, section: &Section, out: &mut [T], threads: usize) -> Result<()> {
        let descriptors = self.descriptors(file)?;
        let n = self.dims.len();
        // the section in FITS order
        let sec: Vec<Range<usize>> = section.ranges().iter().rev().cloned().collect();
        if sec.len() != n {
            return Err(Error::parameter("the section does not match the image"));
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
            let mut band = sec.clone();
            band[top] = rows;
            self.decode_band(file, &descriptors, &band, &ostride, out)
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

    /// Decodes the tiles `band` (FITS order) touches into `out` (the band, C order).
    fn decode_band<T: Pixel>(
        &self,
        file: &Direct,
        rows: &[TileRow],
        band: &[Range<usize>],
        ostride: &[usize],
        out: &mut [T],
    ) -> Result<()> {
        let n = self.dims.len();
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
            match &self.quantized {
                Some(q) if row.code.0 == 0 && row.gzip.0 > 0 => {
                    // a tile the writer stored losslessly: gzipped big-endian values
                    self.heap_bytes(file, k, row.gzip, &mut code)?;
                    let width = if q.double { 8 } else { 4 };
                    inflate_exact(&code, count * width, false, width, &mut raw).map_err(tile_err)?;
                    floats_from_be(&raw, &mut values).map_err(tile_err)?;
                    self.copy(&values, &lo, &hi, band, ostride, out, <[T]>::copy_from_slice);
                }
                Some(q) => {
                    self.tile_ints(file, k, row.code, count, &mut code, &mut raw, &mut pixels)?;
                    unquantize(q, k, &row, &pixels, &mut values);
                    self.copy(&values, &lo, &hi, band, ostride, out, <[T]>::copy_from_slice);
                }
                None if self.raw_floats => {
                    self.heap_bytes(file, k, row.code, &mut code)?;
                    let shuffle = self.codec == Codec::Gzip { shuffle: true };
                    inflate_exact(&code, count * self.bytepix, shuffle, self.bytepix, &mut raw).map_err(tile_err)?;
                    floats_from_be(&raw, &mut values).map_err(tile_err)?;
                    self.copy(&values, &lo, &hi, band, ostride, out, <[T]>::copy_from_slice);
                }
                None => {
                    self.tile_ints(file, k, row.code, count, &mut code, &mut raw, &mut pixels)?;
                    self.copy(&pixels, &lo, &hi, band, ostride, out, store);
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
    /// heap.
    fn heap_bytes(&self, file: &Direct, k: usize, (len, offset): (u64, u64), code: &mut Vec<u8>) -> Result<()> {
        if offset.checked_add(len).is_none_or(|end| end > self.heap_len) {
            return Err(Error::decoding(format!("tile {k} points outside the heap")));
        }
        code.resize(len as usize, 0);
        file.read_bytes_at(code, self.data_start + self.heap_offset + offset)
    }

    /// Decodes the stored integers of tile `k` (`count` pixels, its code at `at` in the heap)
    /// into `pixels` (sign-extended), through `code` and `raw`.
    #[allow(clippy::too_many_arguments)]
    fn tile_ints(
        &self,
        file: &Direct,
        k: usize,
        at: (u64, u64),
        count: usize,
        code: &mut Vec<u8>,
        raw: &mut Vec<u8>,
        pixels: &mut Vec<i32>,
    ) -> Result<()> {
        let tile_err = |e: String| Error::decoding(format!("tile {k}: {e}"));
        match self.codec {
            Codec::Rice { block } => {
                // no tile needs more than its raw pixels plus the block headers
                let most = (count as u64).saturating_mul(self.bytepix as u64 + 1).saturating_add(64);
                if at.0 > most {
                    return Err(Error::decoding(format!("tile {k} claims {} bytes, more than {count} pixels can take", at.0)));
                }
                self.heap_bytes(file, k, at, code)?;
                decode(code, self.bytepix, block, count, pixels).map_err(tile_err)
            }
            Codec::Gzip { shuffle } => {
                self.heap_bytes(file, k, at, code)?;
                let w = self.bytepix;
                inflate_exact(code, count * w, shuffle, w, raw).map_err(tile_err)?;
                pixels.clear();
                match w {
                    1 => pixels.extend(raw.iter().map(|&b| i32::from(b as i8))),
                    2 => pixels.extend(raw.chunks_exact(2).map(|b| i32::from(i16::from_be_bytes([b[0], b[1]])))),
                    4 => pixels.extend(raw.chunks_exact(4).map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))),
                    _ => return Err(tile_err(format!("{w}-byte integers are not decoded here"))),
                }
                Ok(())
            }
        }
    }

    /// Copies the part of a decoded tile (`lo..hi`) inside `band` into `out`, a run at a time.
    #[allow(clippy::too_many_arguments)]
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
fn unquantize<T: Pixel>(q: &Quantized, k: usize, row: &TileRow, ints: &[i32], out: &mut Vec<T>) {
    out.clear();
    out.resize(ints.len(), T::default());
    match T::DTYPE {
        Dtype::F32 => unquantize_as(q, k, row, ints, bytemuck::cast_slice_mut::<T, f32>(out), |x| x as f32),
        Dtype::F64 => unquantize_as(q, k, row, ints, bytemuck::cast_slice_mut::<T, f64>(out), |x| x),
        _ => {}
    }
}

/// [`unquantize`] into `out`, each f64 value rounded by `round`: in runs that end where the
/// dither index wraps, so the inner loop has no bookkeeping.
fn unquantize_as<F: Copy>(q: &Quantized, k: usize, row: &TileRow, ints: &[i32], out: &mut [F], round: impl Fn(f64) -> F) {
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

/// Whether a float image's tiles hold the floats as they are, rather than quantised to 32-bit
/// integers: ZQUANTIZ = 'NONE', or no ZSCALE (keyword or column) to unquantise with; as cfitsio
/// reads them.
pub(crate) fn stores_raw_floats(table: &Header) -> bool {
    let column = |name: &str| {
        let n = table.get_i64("TFIELDS").unwrap_or(0).clamp(0, 999);
        (1..=n).any(|k| table.get_str(&format!("TTYPE{k}")).is_some_and(|t| t.trim().eq_ignore_ascii_case(name)))
    };
    table.get_str("ZQUANTIZ").is_some_and(|q| q.trim().eq_ignore_ascii_case("NONE"))
        || !table.contains("ZSCALE") && !column("ZSCALE")
}

/// Inflates a gzipped tile into `raw`, which must come to exactly `want` bytes (at most one more
/// is read); GZIP_2's shuffled bytes (`width`-byte values) are put back in order.
pub(crate) fn inflate_exact(code: &[u8], want: usize, shuffle: bool, width: usize, raw: &mut Vec<u8>) -> std::result::Result<(), String> {
    use std::io::Read;
    raw.clear();
    flate2::read::GzDecoder::new(code)
        .take(want as u64 + 1)
        .read_to_end(raw)
        .map_err(|e| format!("its gzip stream cannot be inflated: {e}"))?;
    if raw.len() != want {
        return Err(format!("it inflates to {} bytes or more, not the {want} of its pixels", raw.len()));
    }
    if shuffle && width > 1 {
        let n = want / width;
        let shuffled = std::mem::take(raw);
        raw.resize(want, 0);
        for (j, plane) in shuffled.chunks_exact(n.max(1)).take(width).enumerate() {
            for (i, &b) in plane.iter().enumerate() {
                if let Some(o) = raw.get_mut(i * width + j) {
                    *o = b;
                }
            }
        }
    }
    Ok(())
}

/// Big-endian floats (f32 or f64, as `T`) from `raw` into `out`.
fn floats_from_be<T: Pixel>(raw: &[u8], out: &mut Vec<T>) -> std::result::Result<(), String> {
    let width = std::mem::size_of::<T>();
    out.clear();
    out.resize(raw.len() / width, T::default());
    match T::DTYPE {
        Dtype::F32 => {
            let o: &mut [f32] = bytemuck::cast_slice_mut(out);
            o.iter_mut().zip(raw.chunks_exact(4)).for_each(|(o, b)| *o = f32::from_be_bytes([b[0], b[1], b[2], b[3]]));
        }
        Dtype::F64 => {
            let o: &mut [f64] = bytemuck::cast_slice_mut(out);
            o.iter_mut().zip(raw.chunks_exact(8)).for_each(|(o, b)| {
                *o = f64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            });
        }
        _ => return Err("its values are not of the image's type".into()),
    }
    Ok(())
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

/// MSB-first bit reading; past the end is an error.
struct BitReader<'a> {
    bytes: &'a [u8],
    at: usize,
    acc: u64,
    n: u32,
}

impl BitReader<'_> {
    #[inline(always)]
    fn refill(&mut self) {
        while self.n <= 56 {
            let Some(&b) = self.bytes.get(self.at) else { return };
            self.acc |= u64::from(b) << (56 - self.n);
            self.at += 1;
            self.n += 8;
        }
    }

    /// The next `bits` bits (at most 32).
    #[inline(always)]
    fn take(&mut self, bits: u32) -> std::result::Result<u32, &'static str> {
        if bits == 0 {
            return Ok(0);
        }
        if self.n < bits {
            self.refill();
            if self.n < bits {
                return Err("the compressed tile ends early");
            }
        }
        let v = (self.acc >> (64 - bits)) as u32;
        self.acc <<= bits;
        self.n -= bits;
        Ok(v)
    }

    /// The number of zero bits before the next one bit (which is consumed).
    #[inline(always)]
    fn unary(&mut self) -> std::result::Result<u32, &'static str> {
        let mut zeros = 0;
        loop {
            if self.n == 0 {
                self.refill();
                if self.n == 0 {
                    return Err("the compressed tile ends early");
                }
            }
            let lz = self.acc.leading_zeros().min(self.n);
            if lz < self.n {
                self.acc = self.acc.checked_shl(lz + 1).unwrap_or(0);
                self.n -= lz + 1;
                return Ok(zeros + lz);
            }
            zeros += self.n;
            self.acc = 0;
            self.n = 0;
            if zeros > 1 << 20 {
                return Err("a run of zeros longer than any pixel");
            }
        }
    }
}

/// Rice-decodes `count` pixels of `bytepix` bytes from `code` into `out` (sign-extended).
pub(crate) fn decode(
    code: &[u8],
    bytepix: usize,
    block: usize,
    count: usize,
    out: &mut Vec<i32>,
) -> std::result::Result<(), String> {
    out.clear();
    out.resize(count, 0);
    match bytepix {
        1 => decode_into::<1>(code, block, out),
        2 => decode_into::<2>(code, block, out),
        _ => decode_into::<4>(code, block, out),
    }
}

/// [`decode`] for pixels of `N` bytes, into every element of `out`.
fn decode_into<const N: usize>(code: &[u8], block: usize, out: &mut [i32]) -> std::result::Result<(), String> {
    let (fsbits, fsmax): (u32, u32) = match N {
        1 => (3, 6),
        2 => (4, 14),
        _ => (5, 25),
    };
    let bbits = 8 * N as u32;
    if out.is_empty() {
        return Ok(());
    }
    let mut r = BitReader { bytes: code, at: 0, acc: 0, n: 0 };
    let widen = |v: u32| -> i32 {
        match N {
            1 => i32::from(v as u8 as i8),
            2 => i32::from(v as u16 as i16),
            _ => v as i32,
        }
    };
    let mut last = widen(r.take(bbits)?);
    for chunk in out.chunks_mut(block) {
        let fs = r.take(fsbits)?;
        if fs == 0 {
            // all differences zero
            chunk.fill(last);
            continue;
        }
        let fs = fs - 1;
        if fs > fsmax {
            return Err(format!("a block coded with {fs} split bits"));
        }
        for o in chunk.iter_mut() {
            let d = if fs == fsmax {
                r.take(bbits)?
            } else {
                let top = r.unary()?;
                let low = r.take(fs)?;
                top.checked_shl(fs).ok_or("a difference too large")? | low
            };
            let diff = if d & 1 == 0 { (d >> 1) as i32 } else { !((d >> 1) as i32) };
            last = widen(last.wrapping_add(diff) as u32);
            *o = last;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dither_sequence_is_the_conventions() {
        // the convention's check: the 10000th seed is 1043618065
        assert_eq!(park_miller_seeds().last(), Some(1043618065.0));
        let r = random_sequence();
        assert_eq!(r.len(), N_RANDOM);
        assert!(r.iter().all(|&v| v > 0.0 && v < 1.0));
        assert_eq!(r[0], (16807.0 / PARK_MILLER_M) as f32);
    }

    #[test]
    fn decodes_what_the_encoder_codes_and_rejects_short_input() {
        for bytepix in [1usize, 2, 4] {
            let (lo, hi): (i64, i64) = match bytepix {
                1 => (-128, 127),
                2 => (-32768, 32767),
                _ => (i32::MIN as i64, i32::MAX as i64),
            };
            let mut s = 1u64;
            let pixels: Vec<i32> = (0..1000)
                .map(|i| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                    match i % 100 {
                        0..30 => 5,
                        30..60 => (lo + (s >> 33) as i64 % (hi - lo)) as i32,
                        _ => (i as i64 % (hi.min(1000))) as i32,
                    }
                })
                .collect();
            let code = crate::write::rice_encode(&pixels, bytepix);
            let mut back = Vec::new();
            decode(&code, bytepix, 32, pixels.len(), &mut back).expect("decode");
            assert_eq!(back, pixels, "bytepix {bytepix}");
            assert!(decode(&code[..code.len() / 2], bytepix, 32, pixels.len(), &mut back).is_err());
        }
    }
}
