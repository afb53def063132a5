//! Tile-compressed binary tables (FITS 4.0 section 10.3, `ZTABLE = T`), as cfitsio's
//! `fits_compress_table` (and fpack) write them: the stored table has one row per tile of
//! `ZTILELEN` rows and one byte-array descriptor column per column of the table it holds; a
//! tile's cell holds that column's values for the tile's rows, in row order, compressed with the
//! column's `ZCTYPn` (RICE_1, GZIP_1, or GZIP_2: gzip after the values' bytes are shuffled, every
//! value's first byte first).
//!
//! A variable-length array column's cell holds, gzipped, the tile's own descriptors (`P` or `Q`,
//! as `ZFORMn` says) and then a 64-bit (length, offset) pair per row locating that row's array,
//! compressed alone with the column's algorithm, in the stored heap (stored as it is when
//! compressing did not make it smaller).
//!
//! Only the tiles a batch's rows touch are decoded, and only for the columns it reads, on every
//! thread: a fixed-width column's cells then decode as the reader decodes any column; the rows
//! of the variable-length columns are put together in the layout of the table held, their
//! descriptors pointing into the batch's decoded arrays.

use std::ops::Range;

use torchfits_format::limits::Limits;
use torchfits_format::table_schema::{ColumnSchema, FitsType, TableSchema, VarArray};

use crate::compression::{gzip, rice};
use crate::source::ByteSource;
use torchfits_format::error::{Error, Result};
use torchfits_format::threads::caught;

/// How a column's cells are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Algorithm {
    Rice,
    Gzip1,
    Gzip2,
}

/// The layout of a tile-compressed table in its file.
#[derive(Debug, Clone)]
pub(crate) struct TableTiles {
    /// The stored table: a row per tile, a descriptor column per column.
    stored: TableSchema,
    /// Where the stored rows begin in the file.
    data_start: u64,
    /// Rows per tile (the last tile may hold fewer).
    tile_rows: u64,
    /// Rows of the table held.
    rows: u64,
    algorithms: Vec<Algorithm>,
    limits: Limits,
}

/// A batch's rows as the table held lays them out, and the heap its variable-length arrays'
/// descriptors now point into.
pub(crate) struct Unpacked<'a> {
    pub(crate) rows: &'a mut [u8],
    pub(crate) heap: &'a mut Vec<u8>,
}

impl TableTiles {
    /// The tiles of the compressed table whose stored header is `stored_header` and whose data
    /// begins at `data_start`, holding the table `schema` describes.
    pub(crate) fn new(
        stored_header: &torchfits_format::Header,
        schema: &TableSchema,
        data_start: u64,
        limits: Limits,
    ) -> Result<TableTiles> {
        let stored = TableSchema::from_header(stored_header)?;
        let tile_rows = stored_header
            .get_i64("ZTILELEN")
            .and_then(|n| u64::try_from(n).ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| Error::decoding("a compressed table needs ZTILELEN, a positive integer"))?;
        let rows = schema.nrows;
        if stored.nrows != rows.div_ceil(tile_rows) {
            return Err(Error::decoding(format!(
                "a table of {rows} rows in tiles of {tile_rows} has {} tiles, not the {} rows stored",
                rows.div_ceil(tile_rows),
                stored.nrows
            )));
        }
        if stored.columns.len() != schema.columns.len() {
            return Err(Error::decoding(format!(
                "the stored table has {} columns for the {} of the table it holds",
                stored.columns.len(),
                schema.columns.len()
            )));
        }
        let mut algorithms = Vec::with_capacity(schema.columns.len());
        for (c, s) in schema.columns.iter().zip(&stored.columns) {
            if s.variable.is_none() || s.fits_type != FitsType::Byte {
                return Err(Error::decoding(format!(
                    "column {}: a compressed table stores each column as bytes in the heap (1PB or 1QB), not {}",
                    c.name, s.tform
                )));
            }
            let key = format!("ZCTYP{}", c.index + 1);
            let algorithm = match stored_header.get_str(&key).map(str::trim_end) {
                // cfitsio reads a column without ZCTYPn as GZIP_2
                None | Some("GZIP_2") => Algorithm::Gzip2,
                Some("GZIP_1") => Algorithm::Gzip1,
                Some("RICE_1") if rice_bytes(c.fits_type).is_some() => Algorithm::Rice,
                Some("RICE_1") => {
                    return Err(Error::decoding(format!(
                        "column {}: RICE_1 codes integers of 1, 2 or 4 bytes, not a {} column",
                        c.name, c.tform
                    )));
                }
                Some(other) => {
                    return Err(Error::unsupported(format!("column {}: {key} = {other:?}", c.name)));
                }
            };
            algorithms.push(algorithm);
        }
        Ok(TableTiles { stored, data_start, tile_rows, rows, algorithms, limits })
    }

    /// The descriptors of rows `first..first + n` of the variable-length columns of `columns`
    /// (indices into `schema`'s) into `out.rows`, laid out as `schema` says (other bytes left as
    /// they are), pointing into `out.heap`, where their arrays are appended decoded. (Fixed-width
    /// columns come from [`TableTiles::column_cells`].)
    pub(crate) fn unpack(
        &self,
        file: &dyn ByteSource,
        schema: &TableSchema,
        (first, n): (u64, usize),
        columns: &[usize],
        out: Unpacked<'_>,
    ) -> Result<()> {
        let end = first.saturating_add(n as u64).min(self.rows);
        if first >= end {
            return Ok(());
        }
        let jobs: Vec<(u64, usize)> = (first / self.tile_rows..=(end - 1) / self.tile_rows)
            .flat_map(|tile| columns.iter().map(move |&k| (tile, k)))
            .filter(|&(_, k)| schema.columns.get(k).is_some_and(|c| c.variable.is_some()))
            .collect();
        let decoded = self.descriptor_cells(file, schema, &jobs)?;
        for (&(tile, k), values) in jobs.iter().zip(decoded) {
            let Some(c) = schema.columns.get(k) else { continue };
            let (tile_first, tile_len) = self.tile_extent(tile);
            let wanted = first.max(tile_first)..end.min(tile_first + tile_len as u64);
            let place = Place { tile_first, wanted, first, row_bytes: schema.row_bytes };
            let Some(kind) = c.variable else { continue };
            let algorithm = self.algorithms.get(k).copied().unwrap_or(Algorithm::Gzip1);
            let arrays = Unpacked { rows: &mut *out.rows, heap: &mut *out.heap };
            self.arrays(file, c, kind, algorithm, &values, &place, tile_len, arrays)
                .map_err(|e| Error::decoding(format!("column {}, tile {tile}: {e}", c.name)))?;
        }
        Ok(())
    }

    /// The cells of rows `first..first + n` of each fixed-width column of `columns` (indices into
    /// `schema`'s), one after the other as the table held stores them (big-endian): each
    /// (tile, column) decoded on one of `threads` threads straight into its place.
    pub(crate) fn column_cells(
        &self,
        file: &dyn ByteSource,
        schema: &TableSchema,
        (first, n): (u64, usize),
        columns: &[usize],
        threads: usize,
    ) -> Result<Vec<Vec<u8>>> {
        let end = first.saturating_add(n as u64).min(self.rows);
        let rows = end.saturating_sub(first) as usize;
        let mut out = Vec::with_capacity(columns.len());
        for &k in columns {
            let width = schema.columns.get(k).map_or(0, |c| c.width);
            out.push(self.limits.zeroed_vec::<u8>(self.tile_bytes(rows, width)?, "a batch of a compressed column")?);
        }
        let mut jobs = Vec::new();
        for (&k, column) in columns.iter().zip(out.iter_mut()) {
            let Some(c) = schema.columns.get(k).filter(|c| c.width > 0 && rows > 0) else { continue };
            let mut rest: &mut [u8] = column;
            for tile in first / self.tile_rows..=(end - 1) / self.tile_rows {
                let (tile_first, tile_len) = self.tile_extent(tile);
                let skip = (first.max(tile_first) - tile_first) as usize;
                let take = (end.min(tile_first + tile_len as u64) - first.max(tile_first)) as usize;
                let (here, after) = std::mem::take(&mut rest).split_at_mut(take * c.width);
                rest = after;
                jobs.push(CellJob { tile, column: c, skip, out: here });
            }
        }
        let threads = threads.min(jobs.len());
        let jobs = std::sync::Mutex::new(jobs);
        let work = || -> Result<()> {
            let (mut cell, mut tile_values, mut scratch) = (Vec::new(), Vec::new(), Scratch::default());
            loop {
                let job = jobs.lock().unwrap_or_else(std::sync::PoisonError::into_inner).pop();
                let Some(CellJob { tile, column: c, skip, out }) = job else { return Ok(()) };
                let in_tile = |e: Error| Error::decoding(format!("column {}, tile {tile}: {e}", c.name));
                self.cell(file, tile, c.index, &mut cell).map_err(in_tile)?;
                let algorithm = self.algorithms.get(c.index).copied().unwrap_or(Algorithm::Gzip1);
                let tile_bytes = self.tile_bytes(self.tile_extent(tile).1, c.width).map_err(in_tile)?;
                let decoded = if skip == 0 && out.len() == tile_bytes {
                    decode(c.fits_type, algorithm, &cell, out, &mut scratch)
                } else {
                    // a tile the batch holds part of: decoded whole, its rows of the batch kept
                    tile_values.resize(tile_bytes, 0);
                    let at = skip * c.width;
                    decode(c.fits_type, algorithm, &cell, &mut tile_values, &mut scratch).map(|()| {
                        if let Some(part) = tile_values.get(at..at + out.len()) {
                            out.copy_from_slice(part);
                        }
                    })
                };
                decoded.map_err(|e| in_tile(Error::decoding(e)))?;
            }
        };
        if threads <= 1 {
            work()?;
        } else {
            std::thread::scope(|s| {
                let workers: Vec<_> =
                    (0..threads).map(|_| s.spawn(|| caught("decoding a compressed table's tiles", work))).collect();
                workers
                    .into_iter()
                    .map(|w| w.join().unwrap_or_else(|_| Err(Error::decoding("a decoding thread panicked"))))
                    .collect::<Result<Vec<()>>>()
            })?;
        }
        Ok(out)
    }

    /// The first row and the rows of tile `tile`.
    fn tile_extent(&self, tile: u64) -> (u64, usize) {
        let first = tile * self.tile_rows;
        (first, (self.rows - first).min(self.tile_rows) as usize)
    }

    /// The inflated cell of each (tile, variable-length column) of `jobs`, in order: the tile's
    /// own descriptors, then each row's (length, offset) in the stored heap.
    fn descriptor_cells(
        &self,
        file: &dyn ByteSource,
        schema: &TableSchema,
        jobs: &[(u64, usize)],
    ) -> Result<Vec<Vec<u8>>> {
        let mut cell = Vec::new();
        let mut out = Vec::with_capacity(jobs.len());
        for &(tile, k) in jobs {
            let c = schema.columns.get(k).ok_or_else(|| Error::decoding("no such column"))?;
            let in_tile = |e: Error| Error::decoding(format!("column {}, tile {tile}: {e}", c.name));
            self.cell(file, tile, k, &mut cell).map_err(in_tile)?;
            let want = self.tile_bytes(self.tile_extent(tile).1, c.width + 16).map_err(in_tile)?;
            let mut values = Vec::new();
            gzip::inflate_exact(&cell, want, false, 1, &mut values).map_err(|e| in_tile(Error::decoding(e)))?;
            out.push(values);
        }
        Ok(out)
    }

    /// The compressed bytes of column `k`'s cell in tile `tile`, into `cell`.
    fn cell(&self, file: &dyn ByteSource, tile: u64, k: usize, cell: &mut Vec<u8>) -> Result<()> {
        let s = self.stored.columns.get(k).ok_or_else(|| Error::decoding("no stored column"))?;
        let at = self.data_start + tile * self.stored.row_bytes as u64 + s.offset as u64;
        let (len, offset) = self.descriptor(file, at, s.variable)?;
        self.heap_bytes(file, len, offset, cell)
    }

    /// The (length, offset) of the descriptor at byte `at` of the file.
    fn descriptor(&self, file: &dyn ByteSource, at: u64, kind: Option<VarArray>) -> Result<(u64, u64)> {
        let mut raw = [0u8; 16];
        let width = if kind == Some(VarArray::P) { 8 } else { 16 };
        let raw = raw.get_mut(..width).unwrap_or_default();
        file.read_bytes_at(raw, at)?;
        Ok(read_descriptor(raw))
    }

    /// `len` bytes at `offset` in the stored heap, checked to lie in it, into `out`.
    fn heap_bytes(&self, file: &dyn ByteSource, len: u64, offset: u64, out: &mut Vec<u8>) -> Result<()> {
        let heap_len = self.stored.data_len.saturating_sub(self.stored.heap_offset);
        if offset.checked_add(len).is_none_or(|e| e > heap_len) {
            return Err(Error::decoding(format!(
                "{len} bytes at offset {offset} lie outside the stored heap of {heap_len} bytes"
            )));
        }
        let at = self.data_start + self.stored.heap_offset + offset;
        file.read_vec_at(out, at, len, &self.limits, &"a compressed cell")
    }

    /// Bytes of `rows` cells of `width` bytes, within the limits.
    fn tile_bytes(&self, rows: usize, width: usize) -> Result<usize> {
        let bytes = rows.checked_mul(width).ok_or_else(|| Error::limits("a tile's cells do not fit in memory"))?;
        self.limits.check_alloc(bytes as u64, "a tile of a compressed table")?;
        Ok(bytes)
    }

    /// A variable-length array column's rows of a tile: `inflated` is the tile's descriptors and
    /// then the stored arrays' (length, offset) pairs; each wanted row's array is decoded into
    /// `out.heap` and its descriptor in `out.rows` set to point there.
    #[allow(clippy::too_many_arguments)]
    fn arrays(
        &self,
        file: &dyn ByteSource,
        c: &ColumnSchema,
        kind: VarArray,
        algorithm: Algorithm,
        inflated: &[u8],
        place: &Place,
        tile_len: usize,
        out: Unpacked<'_>,
    ) -> Result<()> {
        let (own, stored) = inflated
            .split_at_checked(tile_len * c.width)
            .ok_or_else(|| Error::decoding("the cell holds fewer descriptors than the tile has rows"))?;
        let mut code = Vec::new();
        let mut array = Vec::new();
        for row in place.wanted.clone() {
            let r = (row - place.tile_first) as usize;
            let (len, _) = read_descriptor(own.get(r * c.width..(r + 1) * c.width).unwrap_or_default());
            let (code_len, code_at) = read_descriptor(stored.get(r * 16..(r + 1) * 16).unwrap_or_default());
            let bytes = len.saturating_mul(array_value_bytes(c.fits_type) as u64);
            let at = out.heap.len() as u64;
            if len > 0 && code_len > 0 {
                self.limits.check_alloc(bytes, "a variable-length array")?;
                self.heap_bytes(file, code_len, code_at, &mut code)?;
                if code_len == bytes {
                    // stored as it is: compressing did not make it smaller
                    array.clear();
                    array.extend_from_slice(&code);
                } else {
                    decode_array(c.fits_type, algorithm, &code, bytes as usize, &mut array).map_err(Error::decoding)?;
                }
                self.limits.check_alloc(at + bytes, "a batch's variable-length arrays")?;
                out.heap.extend_from_slice(&array);
            }
            let cell = place.cell(c, row, out.rows);
            write_descriptor(kind, if len > 0 && code_len > 0 { len } else { 0 }, at, cell)?;
        }
        Ok(())
    }
}

/// Where a tile's rows go in a batch's rows.
struct Place {
    tile_first: u64,
    /// The rows of the tile the batch holds.
    wanted: Range<u64>,
    /// The batch's first row.
    first: u64,
    row_bytes: usize,
}

impl Place {
    /// Column `c`'s bytes of row `row` in `rows`.
    fn cell<'a>(&self, c: &ColumnSchema, row: u64, rows: &'a mut [u8]) -> &'a mut [u8] {
        let at = (row - self.first) as usize * self.row_bytes + c.offset;
        rows.get_mut(at..at + c.width).unwrap_or_default()
    }
}

/// Bytes per value RICE_1 codes a column of `t` in, where it may.
fn rice_bytes(t: FitsType) -> Option<usize> {
    match t {
        FitsType::Byte => Some(1),
        FitsType::Short => Some(2),
        FitsType::Int => Some(4),
        _ => None,
    }
}

/// The width GZIP_2 shuffles a fixed-width column's values at: cfitsio's writer shuffles 2-, 4-
/// and 8-byte integers and floats, and gzips the other types' bytes as they are.
fn shuffle_width(t: FitsType) -> Option<usize> {
    match t {
        FitsType::Short => Some(2),
        FitsType::Int | FitsType::Float => Some(4),
        FitsType::Long | FitsType::Double => Some(8),
        _ => None,
    }
}

/// Bytes per element of a variable-length array of `t` in the heap (a bit array's bits are
/// packed: counted as bytes here, as cfitsio does not write such arrays compressed).
fn array_value_bytes(t: FitsType) -> usize {
    t.size().max(1)
}

/// What a decoding thread reuses from cell to cell.
#[derive(Default)]
struct Scratch {
    ints: Vec<i32>,
    bytes: Vec<u8>,
}

/// A (tile, column) to decode and where its rows of the batch go.
struct CellJob<'a> {
    tile: u64,
    column: &'a ColumnSchema,
    /// Rows of the tile before the batch's first.
    skip: usize,
    out: &'a mut [u8],
}

/// The values of `t` coded in `code`, big-endian and in order, into exactly `out`.
fn decode(t: FitsType, algorithm: Algorithm, code: &[u8], out: &mut [u8], scratch: &mut Scratch) -> Result<(), String> {
    match algorithm {
        Algorithm::Rice => {
            let bytes = rice_bytes(t).ok_or_else(|| format!("RICE_1 does not code {t:?} values"))?;
            rice::decode(code, bytes, 32, out.len() / bytes, &mut scratch.ints)?;
            for (o, v) in out.chunks_exact_mut(bytes).zip(&scratch.ints) {
                o.copy_from_slice(v.to_be_bytes().get(4 - bytes..).unwrap_or_default());
            }
            Ok(())
        }
        Algorithm::Gzip2 if shuffle_width(t).is_some() => {
            scratch.bytes.resize(out.len(), 0);
            gzip::inflate_into(code, &mut scratch.bytes)?;
            gzip::unshuffle_into(&scratch.bytes, shuffle_width(t).unwrap_or(1), out);
            Ok(())
        }
        Algorithm::Gzip1 | Algorithm::Gzip2 => gzip::inflate_into(code, out),
    }
}

/// A variable-length array of `t` of `want` bytes from `code`: as [`decode`], except that
/// cfitsio shuffles any array of 2-, 4- or 8-byte elements for GZIP_2 (complex floats too).
fn decode_array(t: FitsType, algorithm: Algorithm, code: &[u8], want: usize, out: &mut Vec<u8>) -> Result<(), String> {
    let width = array_value_bytes(t);
    out.clear();
    out.resize(want, 0);
    let mut scratch = Scratch::default();
    match algorithm {
        Algorithm::Gzip2 if matches!(width, 2 | 4 | 8) => {
            scratch.bytes.resize(want, 0);
            gzip::inflate_into(code, &mut scratch.bytes)?;
            gzip::unshuffle_into(&scratch.bytes, width, out);
            Ok(())
        }
        _ => decode(t, algorithm, code, out, &mut scratch),
    }
}

/// The (length, offset) of a `P` (8 bytes) or `Q` (16 bytes) descriptor, big-endian.
fn read_descriptor(raw: &[u8]) -> (u64, u64) {
    let half = raw.len() / 2;
    let (a, b) = raw.split_at(half);
    let num = |x: &[u8]| x.iter().fold(0u64, |acc, &byte| (acc << 8) | u64::from(byte));
    (num(a), num(b))
}

/// Writes a descriptor of `len` elements at heap offset `at` into `cell` (`P`: 32-bit values).
fn write_descriptor(kind: VarArray, len: u64, at: u64, cell: &mut [u8]) -> Result<()> {
    let width = if kind == VarArray::P { 8 } else { 16 };
    if cell.len() != width {
        return Err(Error::decoding(format!("a descriptor cell of {} bytes, not {width}", cell.len())));
    }
    let (len_bytes, at_bytes) = cell.split_at_mut(width / 2);
    match kind {
        VarArray::P => {
            let (Ok(len), Ok(at)) = (u32::try_from(len), u32::try_from(at)) else {
                return Err(Error::limits("a batch's variable-length arrays pass 4 GiB: read fewer rows at a time"));
            };
            len_bytes.copy_from_slice(&len.to_be_bytes());
            at_bytes.copy_from_slice(&at.to_be_bytes());
        }
        VarArray::Q => {
            len_bytes.copy_from_slice(&len.to_be_bytes());
            at_bytes.copy_from_slice(&at.to_be_bytes());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptors_read_and_write_both_widths() {
        let mut p = [0u8; 8];
        write_descriptor(VarArray::P, 5, 1000, &mut p).unwrap();
        assert_eq!(read_descriptor(&p), (5, 1000));
        let mut q = [0u8; 16];
        write_descriptor(VarArray::Q, 7, 1 << 40, &mut q).unwrap();
        assert_eq!(read_descriptor(&q), (7, 1 << 40));
        assert!(write_descriptor(VarArray::P, 1, 1 << 33, &mut p).is_err(), "a P offset past 4 GiB");
    }
}
