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
//! Only the tiles a batch's rows touch are decoded, and only for the columns it reads; the rows
//! are put together in the layout of the table held, so the reader decodes them as any other.

use std::ops::Range;

use torchfits_format::limits::Limits;
use torchfits_format::table_schema::{ColumnSchema, FitsType, TableSchema, VarArray};

use crate::compression::{gzip, rice};
use crate::source::ByteSource;
use torchfits_format::error::{Error, Result};

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

    /// Rows `first..first + n` of `columns` (indices into `schema`'s) into `out.rows`, laid out
    /// as `schema` says (other columns' bytes left as they are); their variable-length arrays
    /// appended to `out.heap`, their descriptors pointing there.
    pub(crate) fn unpack(
        &self,
        file: &dyn ByteSource,
        schema: &TableSchema,
        first: u64,
        n: usize,
        columns: &[usize],
        out: Unpacked<'_>,
    ) -> Result<()> {
        let end = first.saturating_add(n as u64).min(self.rows);
        if first >= end {
            return Ok(());
        }
        let mut cell = Vec::new();
        let mut values = Vec::new();
        for tile in first / self.tile_rows..=(end - 1) / self.tile_rows {
            let tile_first = tile * self.tile_rows;
            let tile_len = (self.rows - tile_first).min(self.tile_rows) as usize;
            let wanted = first.max(tile_first)..end.min(tile_first + tile_len as u64);
            for &k in columns {
                let (Some(c), Some(&algorithm)) = (schema.columns.get(k), self.algorithms.get(k)) else { continue };
                if c.width == 0 {
                    continue;
                }
                let in_tile = |e: Error| Error::decoding(format!("column {}, tile {tile}: {e}", c.name));
                self.cell(file, tile, k, &mut cell).map_err(in_tile)?;
                let place = Place { tile_first, wanted: wanted.clone(), first, row_bytes: schema.row_bytes };
                match c.variable {
                    None => {
                        self.column_values(c, algorithm, &cell, tile_len, &mut values).map_err(in_tile)?;
                        place.fixed(c, &values, out.rows);
                    }
                    Some(kind) => {
                        let want = self.tile_bytes(tile_len, c.width + 16).map_err(in_tile)?;
                        gzip::inflate_exact(&cell, want, false, 1, &mut values)
                            .map_err(|e| in_tile(Error::decoding(e)))?;
                        self.arrays(
                            file,
                            c,
                            kind,
                            algorithm,
                            &values,
                            &place,
                            tile_len,
                            Unpacked { rows: &mut *out.rows, heap: &mut *out.heap },
                        )
                        .map_err(in_tile)?;
                    }
                }
            }
        }
        Ok(())
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

    /// A fixed-width column's values for the tile's `rows` rows, in row order (big-endian, as in
    /// the table held), from its cell `code`.
    fn column_values(
        &self,
        c: &ColumnSchema,
        algorithm: Algorithm,
        code: &[u8],
        rows: usize,
        values: &mut Vec<u8>,
    ) -> Result<()> {
        let want = self.tile_bytes(rows, c.width)?;
        decode(c.fits_type, algorithm, code, want, values).map_err(Error::decoding)
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
        let (own, stored) = inflated.split_at(tile_len * c.width);
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

    /// The tile's `values` of fixed-width column `c` (row order) into the wanted rows.
    fn fixed(&self, c: &ColumnSchema, values: &[u8], rows: &mut [u8]) {
        for row in self.wanted.clone() {
            let r = (row - self.tile_first) as usize;
            let cell = self.cell(c, row, rows);
            if let Some(v) = values.get(r * c.width..(r + 1) * c.width).filter(|v| v.len() == cell.len()) {
                cell.copy_from_slice(v);
            }
        }
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

/// `want` bytes of values of `t` (big-endian, in order) from `code`.
fn decode(t: FitsType, algorithm: Algorithm, code: &[u8], want: usize, out: &mut Vec<u8>) -> Result<(), String> {
    match algorithm {
        Algorithm::Rice => {
            let bytes = rice_bytes(t).ok_or_else(|| format!("RICE_1 does not code {t:?} values"))?;
            let mut ints = Vec::new();
            rice::decode(code, bytes, 32, want / bytes, &mut ints)?;
            out.clear();
            out.reserve(want);
            for v in ints {
                out.extend_from_slice(v.to_be_bytes().get(4 - bytes..).unwrap_or_default());
            }
            Ok(())
        }
        Algorithm::Gzip2 => match shuffle_width(t) {
            Some(width) => gzip::inflate_exact(code, want, true, width, out),
            None => gzip::inflate_exact(code, want, false, 1, out),
        },
        Algorithm::Gzip1 => gzip::inflate_exact(code, want, false, 1, out),
    }
}

/// A variable-length array of `t` of `want` bytes from `code`: as [`decode`], except that
/// cfitsio shuffles any array of 2-, 4- or 8-byte elements for GZIP_2 (complex floats too).
fn decode_array(t: FitsType, algorithm: Algorithm, code: &[u8], want: usize, out: &mut Vec<u8>) -> Result<(), String> {
    let width = array_value_bytes(t);
    match algorithm {
        Algorithm::Gzip2 if matches!(width, 2 | 4 | 8) => gzip::inflate_exact(code, want, true, width, out),
        _ => decode(t, algorithm, code, want, out),
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
