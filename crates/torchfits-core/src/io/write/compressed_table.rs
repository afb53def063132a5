//! Writing tile-compressed binary tables (FITS 4.0 section 10.3), as cfitsio's
//! `fits_compress_table` does: the rows are cut into tiles of `ZTILELEN` rows; each column's
//! cells of a tile are compressed together (RICE_1, GZIP_1, or GZIP_2 on the values' shuffled
//! bytes) into one byte array of the stored table's row for that tile; a variable-length array
//! column's cell holds its descriptors and, per row, where that row's array (compressed alone,
//! or stored as it is when that is smaller) lies in the stored heap. Uncompressed, the table is
//! byte for byte the one [`super::TableWrite`] writes without compression.

use std::io::Write;
use std::path::Path;

use torchfits_format::error::{Error, Result};

use super::column::ColumnSpec;
use super::spool::Spool;
use crate::compression::rice;
use crate::io::table::ColumnType;

/// The algorithm a compressed table's columns are coded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TableAlgorithm {
    /// Rice coding of 8-, 16- and 32-bit integers.
    Rice1,
    /// gzip of the values' bytes.
    Gzip1,
    /// gzip of the values' bytes shuffled: every value's first byte, then every second byte...
    Gzip2,
}

impl TableAlgorithm {
    fn name(self) -> &'static str {
        match self {
            TableAlgorithm::Rice1 => "RICE_1",
            TableAlgorithm::Gzip1 => "GZIP_1",
            TableAlgorithm::Gzip2 => "GZIP_2",
        }
    }
}

/// How a binary table is compressed ([`crate::FitsWriter::compressed_table`]): by default as
/// fpack does, tiles of about 10 MB of rows, each column with the algorithm cfitsio picks for
/// its type (RICE_1 for 32-bit integers, GZIP_2 for 16- and 64-bit integers and real floats,
/// GZIP_1 for the rest: complex columns too, which cfitsio's reader does not unshuffle).
///
/// ```
/// use torchfits_core::write::{TableAlgorithm, TableCompression};
/// let c = TableCompression::new().tile_rows(10_000).algorithm(TableAlgorithm::Rice1);
/// # let _ = c;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableCompression {
    tile_rows: Option<usize>,
    algorithm: Option<TableAlgorithm>,
}

impl TableCompression {
    /// fpack's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rows per tile (at least 1).
    pub fn tile_rows(mut self, rows: usize) -> Self {
        self.tile_rows = Some(rows.max(1));
        self
    }

    /// The algorithm of every column whose type it codes (as cfitsio: RICE_1 only 8-, 16- and
    /// 32-bit integers, GZIP_2 only 16-, 32- and 64-bit integers and real floats); the other
    /// columns take their default.
    pub fn algorithm(mut self, algorithm: TableAlgorithm) -> Self {
        self.algorithm = Some(algorithm);
        self
    }

    /// The rows per tile of a table of rows of `row_bytes` bytes.
    pub(super) fn rows_per_tile(&self, row_bytes: usize) -> usize {
        self.tile_rows.unwrap_or(10_000_000 / row_bytes.max(1)).max(1)
    }

    /// The algorithm of column `c`: the one asked for where it codes the column's type,
    /// cfitsio's default else.
    pub(super) fn algorithm_of(&self, c: &ColumnSpec) -> TableAlgorithm {
        use TableAlgorithm::{Gzip1, Gzip2, Rice1};
        let asked = self.algorithm;
        match c.column_type {
            ColumnType::Bool | ColumnType::Bits | ColumnType::Str => Gzip1,
            ColumnType::U8 => match asked {
                Some(a @ (Gzip1 | Rice1)) => a,
                _ => Gzip1,
            },
            ColumnType::I16 | ColumnType::U16 => asked.unwrap_or(Gzip2),
            ColumnType::I32 | ColumnType::U32 => asked.unwrap_or(Rice1),
            // cfitsio's reader unshuffles GZIP_2 only for 2-, 4- and 8-byte integers and floats
            ColumnType::ComplexF32 | ColumnType::ComplexF64 => Gzip1,
            _ => match asked {
                Some(a @ (Gzip1 | Gzip2)) => a,
                _ => Gzip2,
            },
        }
    }
}

/// A table being compressed: the rows not yet in a tile, the stored table's rows so far, and its
/// heap, spooled to a scratch file.
#[derive(Debug)]
pub(super) struct Packer {
    tile_rows: usize,
    algorithms: Vec<TableAlgorithm>,
    /// Rows written and not yet packed.
    pending: Vec<u8>,
    /// The variable-length arrays of the pending rows: bytes from offset `heap_base` of the
    /// uncompressed table's heap.
    heap: Vec<u8>,
    heap_base: u64,
    /// The stored table's rows: one per tile, a 16-byte descriptor per column.
    pub(super) stored_rows: Vec<u8>,
    pub(super) tiles: u64,
    pub(super) stored_heap: Spool,
    /// Per column, the longest cell of the stored table.
    pub(super) longest: Vec<u64>,
}

/// What the packer needs of the table: its columns, their offsets in a row, and a row's size.
pub(super) struct Layout<'a> {
    pub(super) columns: &'a [ColumnSpec],
    pub(super) offsets: &'a [usize],
    pub(super) row_bytes: usize,
}

impl Packer {
    /// A packer of `columns` whose stored heap spools beside `near`.
    pub(super) fn new(compression: &TableCompression, columns: &[ColumnSpec], row_bytes: usize, near: &Path) -> Packer {
        Packer {
            tile_rows: compression.rows_per_tile(row_bytes),
            algorithms: columns.iter().map(|c| compression.algorithm_of(c)).collect(),
            pending: Vec::new(),
            heap: Vec::new(),
            heap_base: 0,
            stored_rows: Vec::new(),
            tiles: 0,
            stored_heap: Spool::new(near, "stored-heap"),
            longest: vec![0; columns.len()],
        }
    }

    /// The rows per tile.
    pub(super) fn tile_rows(&self) -> usize {
        self.tile_rows
    }

    /// Each column's `ZCTYPn`.
    pub(super) fn algorithm_names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.algorithms.iter().map(|a| a.name())
    }

    /// Takes rows `rows` (and their arrays, `heap`, the next bytes of the uncompressed heap) and
    /// packs every whole tile they complete.
    pub(super) fn push(&mut self, layout: &Layout<'_>, rows: &[u8], heap: &[u8]) -> Result<()> {
        self.pending.extend_from_slice(rows);
        self.heap.extend_from_slice(heap);
        let tile = self.tile_rows * layout.row_bytes;
        while tile > 0 && self.pending.len() >= tile {
            self.pack(layout, tile)?;
        }
        Ok(())
    }

    /// Packs the rows left as the last, shorter tile.
    pub(super) fn flush(&mut self, layout: &Layout<'_>) -> Result<()> {
        if !self.pending.is_empty() {
            self.pack(layout, self.pending.len())?;
        }
        Ok(())
    }

    /// Packs the first `bytes` bytes of the pending rows as one tile.
    fn pack(&mut self, layout: &Layout<'_>, bytes: usize) -> Result<()> {
        let rows: Vec<u8> = self.pending.drain(..bytes).collect();
        let n = bytes / layout.row_bytes.max(1);
        let mut descriptors = Vec::with_capacity(16 * layout.columns.len());
        for (k, c) in layout.columns.iter().enumerate() {
            let (offset, width) = (layout.offsets.get(k).copied().unwrap_or(0), c.width());
            let cells: Vec<u8> = (0..n)
                .flat_map(|r| rows.get(r * layout.row_bytes + offset..r * layout.row_bytes + offset + width))
                .flatten()
                .copied()
                .collect();
            let algorithm = self.algorithms.get(k).copied().unwrap_or(TableAlgorithm::Gzip1);
            let code = if c.variable {
                let pointers = self.arrays(c, algorithm, &cells)?;
                gzip(&[&cells, &pointers])?
            } else if width == 0 {
                Vec::new()
            } else {
                compress(c.column_type, algorithm, &cells)?
            };
            let at = self.stored_heap.append(&code)?;
            if let Some(longest) = self.longest.get_mut(k) {
                *longest = (*longest).max(code.len() as u64);
            }
            descriptors.extend_from_slice(&(code.len() as u64).to_be_bytes());
            descriptors.extend_from_slice(&at.to_be_bytes());
        }
        self.stored_rows.extend_from_slice(&descriptors);
        self.tiles += 1;
        self.forget_arrays_before(layout);
        Ok(())
    }

    /// Each row's array of a variable-length column (its `P` descriptors `cells`), compressed
    /// alone into the stored heap: the 16-byte (length, offset) of each, in row order.
    fn arrays(&mut self, c: &ColumnSpec, algorithm: TableAlgorithm, cells: &[u8]) -> Result<Vec<u8>> {
        let size = c.size();
        let mut pointers = Vec::with_capacity(cells.len() * 2);
        for d in cells.chunks_exact(8) {
            let (count, at) = (be_u32(d.get(..4)), be_u32(d.get(4..)));
            let from = at.checked_sub(self.heap_base).map(|a| a as usize);
            let raw = from.and_then(|a| self.heap.get(a..a + count as usize * size));
            let raw = raw.ok_or_else(|| Error::parameter(format!("column {}: an array outside the heap", c.name)))?;
            let (len, at) = if raw.is_empty() {
                (0, 0)
            } else {
                let code = compress_array(c.column_type, algorithm, raw)?;
                let kept = if code.len() < raw.len() { code } else { raw.to_vec() };
                let at = self.stored_heap.append(&kept)?;
                (kept.len() as u64, at)
            };
            pointers.extend_from_slice(&len.to_be_bytes());
            pointers.extend_from_slice(&at.to_be_bytes());
        }
        Ok(pointers)
    }

    /// Drops the arrays no pending row refers to any more.
    fn forget_arrays_before(&mut self, layout: &Layout<'_>) {
        let mut first = self.heap_base + self.heap.len() as u64;
        for row in self.pending.chunks_exact(layout.row_bytes.max(1)) {
            for (c, &offset) in layout.columns.iter().zip(layout.offsets) {
                let d = row.get(offset..offset + 8).filter(|_| c.variable);
                if be_u32(d.and_then(|d| d.get(..4))) > 0 {
                    first = first.min(be_u32(d.and_then(|d| d.get(4..))));
                }
            }
        }
        let drop = (first - self.heap_base) as usize;
        self.heap.drain(..drop.min(self.heap.len()));
        self.heap_base = first;
    }
}

/// A big-endian u32 (0 for a short slice) as u64.
fn be_u32(b: Option<&[u8]>) -> u64 {
    b.and_then(|b| b.try_into().ok()).map_or(0, |b: [u8; 4]| u64::from(u32::from_be_bytes(b)))
}

/// gzip of `parts`, one after the other.
fn gzip(parts: &[&[u8]]) -> Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    for p in parts {
        e.write_all(p).map_err(|e| Error::io(e, "cannot compress a tile"))?;
    }
    e.finish().map_err(|e| Error::io(e, "cannot compress a tile"))
}

/// GZIP_2's shuffle of values of `width` bytes: every value's first byte, then every second...
fn shuffle(bytes: &[u8], width: usize) -> Vec<u8> {
    let n = bytes.len() / width.max(1);
    let mut out = vec![0u8; bytes.len()];
    for (i, value) in bytes.chunks_exact(width.max(1)).enumerate() {
        for (j, &b) in value.iter().enumerate() {
            if let Some(o) = out.get_mut(j * n + i) {
                *o = b;
            }
        }
    }
    out
}

/// Bytes per value RICE_1 codes a column of `t` in, where it may.
fn rice_bytes(t: ColumnType) -> Option<usize> {
    match t {
        ColumnType::U8 => Some(1),
        ColumnType::I16 | ColumnType::U16 => Some(2),
        ColumnType::I32 | ColumnType::U32 => Some(4),
        _ => None,
    }
}

/// Rice code of big-endian values of `bytes` bytes (bytes as signed, as cfitsio reads them).
fn rice(values: &[u8], bytes: usize) -> Vec<u8> {
    let ints: Vec<i32> = values
        .chunks_exact(bytes)
        .map(|v| match *v {
            [a] => i32::from(a as i8),
            [a, b] => i32::from(i16::from_be_bytes([a, b])),
            [a, b, c, d] => i32::from_be_bytes([a, b, c, d]),
            _ => 0,
        })
        .collect();
    rice::encode(&ints, bytes, Vec::new())
}

/// A fixed-width column's cells of a tile (big-endian values, row order), compressed.
fn compress(t: ColumnType, algorithm: TableAlgorithm, cells: &[u8]) -> Result<Vec<u8>> {
    match (algorithm, rice_bytes(t)) {
        (TableAlgorithm::Rice1, Some(bytes)) => Ok(rice(cells, bytes)),
        (TableAlgorithm::Gzip2, _) => match shuffle_width(t) {
            Some(width) => gzip(&[&shuffle(cells, width)]),
            None => gzip(&[cells]),
        },
        _ => gzip(&[cells]),
    }
}

/// A variable-length array, compressed: as [`compress`], except that GZIP_2 shuffles arrays of
/// any 2-, 4- or 8-byte elements (as cfitsio does).
fn compress_array(t: ColumnType, algorithm: TableAlgorithm, raw: &[u8]) -> Result<Vec<u8>> {
    let width = array_element_bytes(t);
    match algorithm {
        TableAlgorithm::Gzip2 if matches!(width, 2 | 4 | 8) => gzip(&[&shuffle(raw, width)]),
        _ => compress(t, algorithm, raw),
    }
}

/// The width GZIP_2 shuffles a fixed-width column's values at (cfitsio's writer: 2-, 4- and
/// 8-byte integers and floats).
fn shuffle_width(t: ColumnType) -> Option<usize> {
    match t {
        ColumnType::I16 | ColumnType::U16 => Some(2),
        ColumnType::I32 | ColumnType::U32 | ColumnType::F32 => Some(4),
        ColumnType::I64 | ColumnType::U64 | ColumnType::F64 => Some(8),
        _ => None,
    }
}

/// Bytes per element of an array of `t`.
fn array_element_bytes(t: ColumnType) -> usize {
    match t {
        ColumnType::I16 | ColumnType::U16 => 2,
        ColumnType::I32 | ColumnType::U32 | ColumnType::F32 => 4,
        ColumnType::I64 | ColumnType::U64 | ColumnType::F64 | ColumnType::ComplexF32 => 8,
        ColumnType::ComplexF64 => 16,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shuffle_is_gzip_2s() {
        assert_eq!(shuffle(&[1, 2, 3, 4, 5, 6], 2), vec![1, 3, 5, 2, 4, 6]);
        let mut back = shuffle(&[1, 2, 3, 4, 5, 6, 7, 8], 4);
        crate::compression::gzip::unshuffle(&mut back, 4);
        assert_eq!(back, vec![1, 2, 3, 4, 5, 6, 7, 8]);
    }

    #[test]
    fn each_type_takes_cfitsios_algorithm() {
        let spec = |t| ColumnSpec::new("c", t, 1);
        let default = TableCompression::new();
        assert_eq!(default.algorithm_of(&spec(ColumnType::I32)), TableAlgorithm::Rice1);
        assert_eq!(default.algorithm_of(&spec(ColumnType::F64)), TableAlgorithm::Gzip2);
        assert_eq!(default.algorithm_of(&spec(ColumnType::Str)), TableAlgorithm::Gzip1);
        let rice = TableCompression::new().algorithm(TableAlgorithm::Rice1);
        assert_eq!(rice.algorithm_of(&spec(ColumnType::I16)), TableAlgorithm::Rice1);
        assert_eq!(rice.algorithm_of(&spec(ColumnType::F32)), TableAlgorithm::Gzip2, "RICE_1 codes no floats");
        assert_eq!(rice.algorithm_of(&spec(ColumnType::Bool)), TableAlgorithm::Gzip1);
    }
}
