//! Reading binary tables: blocks of raw rows, decoded column by column into typed buffers.

use std::ops::Range;

use crate::direct::Direct;
use crate::error::{Error, Result};
use crate::file::FitsFile;
use crate::limits::Limits;
use crate::table::filter::Filter;
use crate::table::schema::{ColumnSchema, ColumnType, FitsType, TableSchema, VarArray};

/// Rows per batch when [`TableReader::with_batch_rows`] is not called.
pub const DEFAULT_BATCH_ROWS: usize = 65_536;

/// A column's values in one batch, row after row (each row holds
/// [`ColumnData::per_row`] elements).
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
#[non_exhaustive]
pub enum ColumnValues {
    Bool(Vec<bool>),
    U8(Vec<u8>),
    I16(Vec<i16>),
    U16(Vec<u16>),
    I32(Vec<i32>),
    U32(Vec<u32>),
    I64(Vec<i64>),
    U64(Vec<u64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    /// (re, im) pairs.
    ComplexF32(Vec<[f32; 2]>),
    /// (re, im) pairs.
    ComplexF64(Vec<[f64; 2]>),
    /// One byte string per row, cut at the first NUL, trailing blanks removed, laid out as Arrow
    /// lays strings out: row `i` is `bytes[offsets[i]..offsets[i + 1]]`. Not necessarily UTF-8:
    /// FITS strings are ASCII, but files in the wild hold other bytes, kept as they are.
    Str {
        /// `num_rows + 1` offsets into `bytes`, starting at 0.
        offsets: Vec<i32>,
        /// The strings' bytes, one after the other.
        bytes: Vec<u8>,
    },
}

impl ColumnValues {
    /// Number of elements (strings count one per row).
    pub fn len(&self) -> usize {
        match self {
            ColumnValues::Bool(v) => v.len(),
            ColumnValues::U8(v) => v.len(),
            ColumnValues::I16(v) => v.len(),
            ColumnValues::U16(v) => v.len(),
            ColumnValues::I32(v) => v.len(),
            ColumnValues::U32(v) => v.len(),
            ColumnValues::I64(v) => v.len(),
            ColumnValues::U64(v) => v.len(),
            ColumnValues::F32(v) => v.len(),
            ColumnValues::F64(v) => v.len(),
            ColumnValues::ComplexF32(v) => v.len(),
            ColumnValues::ComplexF64(v) => v.len(),
            ColumnValues::Str { offsets, .. } => offsets.len().saturating_sub(1),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// For a string column, the string of row `i` (bytes); `None` otherwise or out of range.
    pub fn str_at(&self, i: usize) -> Option<&[u8]> {
        match self {
            ColumnValues::Str { offsets, bytes } => {
                let (a, b) = (*offsets.get(i)?, *offsets.get(i + 1)?);
                bytes.get(a as usize..b as usize)
            }
            _ => None,
        }
    }
}

/// One column of a [`TableBatch`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ColumnData {
    /// The column's name (TTYPEn).
    pub name: String,
    /// Elements per row: the repeat count (bits for `X`); 1 for strings.
    pub per_row: usize,
    /// The values, `num_rows * per_row` of them.
    pub values: ColumnValues,
    /// Per element, whether it is undefined: a logical stored as 0, an integer equal to TNULL.
    /// `None` when the column has no undefined element in this batch. The values themselves are
    /// astropy's: an undefined logical is `false`, a TNULL integer keeps its stored value.
    pub nulls: Option<Vec<bool>>,
    /// For a variable-length array column: `num_rows + 1` offsets into the elements (row `i` is
    /// `offsets[i]..offsets[i + 1]`), and [`ColumnData::per_row`] is 0.
    pub list_offsets: Option<Vec<i32>>,
}

/// A block of consecutive rows, the selected columns decoded.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TableBatch {
    /// 0-based index in the table of the first row the batch was read from (with a filter, that
    /// row may not have passed it).
    pub first_row: u64,
    /// Number of rows.
    pub num_rows: usize,
    /// Rows of the block that a filter left out (0 without a filter).
    pub filtered_out: usize,
    /// The selected columns, in the order they were selected.
    pub columns: Vec<ColumnData>,
}

impl ColumnData {
    /// The rows where `mask` is true.
    fn select(&self, mask: &[bool]) -> ColumnData {
        // element ranges of each row
        let range = |r: usize| -> Range<usize> {
            match (&self.list_offsets, &self.values) {
                (Some(o), _) => o[r] as usize..o[r + 1] as usize,
                (None, ColumnValues::Str { .. }) => r..r + 1,
                (None, _) => r * self.per_row..(r + 1) * self.per_row,
            }
        };
        let keep: Vec<Range<usize>> = mask.iter().enumerate().filter(|(_, m)| **m).map(|(r, _)| range(r)).collect();
        fn pick<T: Clone>(v: &[T], keep: &[Range<usize>]) -> Vec<T> {
            keep.iter().flat_map(|r| v[r.clone()].iter().cloned()).collect()
        }
        let values = match &self.values {
            ColumnValues::Bool(v) => ColumnValues::Bool(pick(v, &keep)),
            ColumnValues::U8(v) => ColumnValues::U8(pick(v, &keep)),
            ColumnValues::I16(v) => ColumnValues::I16(pick(v, &keep)),
            ColumnValues::U16(v) => ColumnValues::U16(pick(v, &keep)),
            ColumnValues::I32(v) => ColumnValues::I32(pick(v, &keep)),
            ColumnValues::U32(v) => ColumnValues::U32(pick(v, &keep)),
            ColumnValues::I64(v) => ColumnValues::I64(pick(v, &keep)),
            ColumnValues::U64(v) => ColumnValues::U64(pick(v, &keep)),
            ColumnValues::F32(v) => ColumnValues::F32(pick(v, &keep)),
            ColumnValues::F64(v) => ColumnValues::F64(pick(v, &keep)),
            ColumnValues::ComplexF32(v) => ColumnValues::ComplexF32(pick(v, &keep)),
            ColumnValues::ComplexF64(v) => ColumnValues::ComplexF64(pick(v, &keep)),
            ColumnValues::Str { .. } => {
                let mut offsets = vec![0i32];
                let mut bytes = Vec::new();
                for r in &keep {
                    bytes.extend_from_slice(self.values.str_at(r.start).unwrap_or(&[]));
                    offsets.push(bytes.len() as i32);
                }
                ColumnValues::Str { offsets, bytes }
            }
        };
        let nulls = self.nulls.as_ref().map(|m| pick(m, &keep)).filter(|m| m.contains(&true));
        let list_offsets = self.list_offsets.as_ref().map(|_| {
            let mut o = vec![0i32];
            for r in &keep {
                let last = o.last().copied().unwrap_or(0);
                o.push(last + r.len() as i32);
            }
            o
        });
        ColumnData { name: self.name.clone(), per_row: self.per_row, values, nulls, list_offsets }
    }
}

impl TableBatch {
    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnData> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .or_else(|| self.columns.iter().find(|c| c.name.eq_ignore_ascii_case(name)))
    }
}

/// Reads a binary table: a builder in the style of parquet's Arrow reader. The schema is read
/// first; the columns, rows and batch size are chosen; [`TableReader::build`] gives an iterator of
/// [`TableBatch`]es. Each batch reads its rows' bytes in one block (`pread` for a plain file) and
/// decodes only the selected columns, so memory is bounded by the batch, not the table.
///
/// ```
/// use torchfits_core::{ColumnValues, FitsFile};
/// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
/// let mut file = FitsFile::open(path)?;
/// let reader = file.table("CATALOG")?;
/// assert_eq!(reader.schema().nrows, 2);
/// let mut batches = reader.with_columns(&["ra", "flux"])?.with_rows(0..2)?.build()?;
/// let batch = batches.next().expect("one batch")?;
/// match &batch.column("flux").expect("flux").values {
///     ColumnValues::F32(flux) => assert_eq!(flux, &[500.0, 300.0]),
///     other => panic!("{other:?}"),
/// }
/// # Ok::<(), torchfits_core::Error>(())
/// ```
#[derive(Debug)]
pub struct TableReader<'f> {
    file: &'f mut FitsFile,
    index: usize,
    schema: TableSchema,
    data_start: Option<u64>,
    selected: Vec<usize>,
    rows: Range<u64>,
    batch_rows: usize,
    filter: Option<Filter>,
}

impl<'f> TableReader<'f> {
    pub(crate) fn new(file: &'f mut FitsFile, index: usize, schema: TableSchema, data_start: Option<u64>) -> Self {
        let selected = (0..schema.columns.len()).collect();
        let rows = 0..schema.nrows;
        TableReader { file, index, schema, data_start, selected, rows, batch_rows: DEFAULT_BATCH_ROWS, filter: None }
    }

    fn err(&self, e: Error) -> Error {
        e.in_hdu(self.index).in_file(self.file.path())
    }

    /// The table's schema.
    pub fn schema(&self) -> &TableSchema {
        &self.schema
    }

    /// Reads only these columns, in this order (names as in TTYPEn, case-insensitive).
    pub fn with_columns<S: AsRef<str>>(mut self, names: &[S]) -> Result<Self> {
        let mut selected = Vec::with_capacity(names.len());
        for name in names {
            match self.schema.column(name.as_ref()) {
                Some(c) => selected.push(c.index),
                None => {
                    let known: Vec<&str> = self.schema.columns.iter().map(|c| c.name.as_str()).collect();
                    return Err(self.err(Error::parameter(format!(
                        "no column named {:?} (the columns are {known:?})",
                        name.as_ref()
                    ))));
                }
            }
        }
        self.selected = selected;
        Ok(self)
    }

    /// Reads only the rows in `rows` (0-based, half-open).
    pub fn with_rows(mut self, rows: Range<u64>) -> Result<Self> {
        if rows.start > rows.end || rows.end > self.schema.nrows {
            return Err(self.err(Error::parameter(format!(
                "rows {}..{} are outside the table's 0..{}",
                rows.start, rows.end, self.schema.nrows
            ))));
        }
        self.rows = rows;
        Ok(self)
    }

    /// Keeps only the rows that pass `expression` (see [`Filter`]): it is evaluated on each
    /// decoded batch, reading the columns it names besides the selected ones. Batches then hold
    /// fewer rows than [`TableReader::with_batch_rows`] (possibly none).
    pub fn with_filter(mut self, expression: &str) -> Result<Self> {
        let filter = Filter::parse(expression).map_err(|e| self.err(e))?;
        for name in filter.columns() {
            if self.schema.column(name).is_none() {
                return Err(self.err(Error::parameter(format!("filter {expression:?}: no column named {name:?}"))));
            }
        }
        self.filter = Some(filter);
        Ok(self)
    }

    /// Number of rows the read covers (before any filter).
    pub fn selected_rows(&self) -> u64 {
        self.rows.end - self.rows.start
    }

    /// Rows per batch (at least 1; default [`DEFAULT_BATCH_ROWS`]).
    pub fn with_batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    /// The batches. Checks that one batch's raw rows fit [`crate::Limits::max_alloc`].
    pub fn build(self) -> Result<TableBatches<'f>> {
        let len = self.rows.end - self.rows.start;
        let batch_rows = (self.batch_rows as u64).min(len.max(1)) as usize;
        let bytes = (batch_rows as u64).saturating_mul(self.schema.row_bytes as u64);
        self.file.limits().check_alloc(bytes, "a batch of table rows").map_err(|e| self.err(e))?;
        let next = self.rows.start;
        Ok(TableBatches { reader: self, next, batch_rows, block: Vec::new() })
    }
}

/// The batches of a [`TableReader`], in row order.
#[derive(Debug)]
pub struct TableBatches<'f> {
    reader: TableReader<'f>,
    next: u64,
    batch_rows: usize,
    /// Raw rows of the current batch, reused from batch to batch.
    block: Vec<u8>,
}

impl Iterator for TableBatches<'_> {
    type Item = Result<TableBatch>;

    fn next(&mut self) -> Option<Result<TableBatch>> {
        let end = self.reader.rows.end;
        if self.next >= end {
            return None;
        }
        let first = self.next;
        let n = (self.batch_rows as u64).min(end - first) as usize;
        self.next += n as u64;
        Some(self.read_batch(first, n).map_err(|e| self.reader.err(e)))
    }
}

impl TableBatches<'_> {
    /// A batch of no rows with the selected columns: for writing the schema of an empty selection.
    pub fn empty_batch(&mut self) -> Result<TableBatch> {
        let first = self.reader.rows.start;
        self.read_batch(first, 0)
    }

    fn read_batch(&mut self, first: u64, n: usize) -> Result<TableBatch> {
        let r = &mut self.reader;
        let row_bytes = r.schema.row_bytes;
        let len = n * row_bytes;
        let at = r.data_start.map(|start| start + first * row_bytes as u64);
        // in mmap mode the rows are decoded straight from the map; otherwise read into `block`
        let mapped = len > 0 && r.file.mapped(at, len).is_some();
        if mapped {
            r.file.populate(at, len);
        }
        if !mapped && len > 0 {
            self.block.resize(len, 0);
            r.file.read_table_rows(r.index, r.data_start, first, row_bytes, &mut self.block)?;
        }
        let file: &FitsFile = r.file;
        let block: &[u8] = match file.mapped(at, len) {
            Some(rows) if mapped => rows,
            _ => &self.block[..len],
        };
        let heap =
            HeapSource { plain: file.plain(), data_start: r.data_start, schema: &r.schema, limits: *file.limits() };
        // the selected columns, then any other the filter names
        let mut wanted = r.selected.clone();
        if let Some(f) = &r.filter {
            for name in f.columns() {
                if let Some(c) = r.schema.column(name).filter(|c| !wanted.contains(&c.index)) {
                    wanted.push(c.index);
                }
            }
        }
        let columns: Vec<&ColumnSchema> = wanted.iter().map(|&c| &r.schema.columns[c]).collect();
        let threads = file.threads().min(columns.len());
        let decoded = if threads > 1 && n >= PARALLEL_MIN_ROWS {
            // columns on worker threads, dealt round-robin; results put back in order
            std::thread::scope(|scope| {
                let handles: Vec<_> = (0..threads)
                    .map(|t| {
                        let (columns, heap) = (&columns, &heap);
                        scope.spawn(move || {
                            (t..columns.len())
                                .step_by(threads)
                                .map(|k| decode(columns[k], block, row_bytes, n, heap).map(|d| (k, d)))
                                .collect::<Result<Vec<_>>>()
                        })
                    })
                    .collect();
                let mut all = Vec::with_capacity(columns.len());
                for h in handles {
                    all.extend(h.join().unwrap_or_else(|_| Err(Error::decoding("a decoding thread panicked")))?);
                }
                all.sort_by_key(|(k, _)| *k);
                Ok::<_, Error>(all.into_iter().map(|(_, d)| d).collect())
            })?
        } else {
            columns.iter().map(|c| decode(c, block, row_bytes, n, &heap)).collect::<Result<Vec<_>>>()?
        };
        let Some(filter) = &r.filter else {
            return Ok(TableBatch { first_row: first, num_rows: n, filtered_out: 0, columns: decoded });
        };
        let schema = &r.schema;
        let index_of = |name: &str| schema.column(name).and_then(|c| wanted.iter().position(|&w| w == c.index));
        let mask = filter.evaluate(n, &decoded, &index_of)?;
        let kept = mask.iter().filter(|&&m| m).count();
        let columns = decoded.iter().take(r.selected.len()).map(|c| c.select(&mask)).collect();
        Ok(TableBatch { first_row: first, num_rows: kept, filtered_out: n - kept, columns })
    }
}

/// Batches of at least this many rows decode their columns on several threads.
const PARALLEL_MIN_ROWS: usize = 16_384;

/// Where a batch's variable-length arrays come from: the plain file's heap (shared read-only by
/// decoding threads).
struct HeapSource<'a> {
    plain: Option<&'a Direct>,
    data_start: Option<u64>,
    schema: &'a TableSchema,
    limits: Limits,
}

/// The heap bytes of `spans` (offset from the heap start, length), checked against the heap's end,
/// concatenated in order: one read of the smallest range covering them when that range is not much
/// larger than the spans, one read per span otherwise.
fn read_heap(heap: &HeapSource<'_>, c: &ColumnSchema, spans: &[(u64, u64)]) -> Result<Vec<u8>> {
    let schema = heap.schema;
    let mut total = 0u64;
    let (mut lo, mut hi) = (u64::MAX, 0u64);
    for &(offset, bytes) in spans.iter().filter(|s| s.1 > 0) {
        let end = schema.heap_offset.checked_add(offset).and_then(|o| o.checked_add(bytes));
        if end.is_none_or(|e| e > schema.data_len) {
            return Err(Error::decoding(format!(
                "column {}: an array descriptor ({bytes} bytes at heap offset {offset}) points outside the heap of {} bytes",
                c.name,
                schema.data_len - schema.heap_offset
            )));
        }
        total += bytes;
        lo = lo.min(offset);
        hi = hi.max(offset + bytes);
    }
    heap.limits.check_alloc(total, "a batch of variable-length arrays")?;
    let mut out = Vec::with_capacity(total as usize);
    if total == 0 {
        return Ok(out);
    }
    let (Some(file), Some(start)) = (heap.plain, heap.data_start) else {
        return Err(Error::unsupported(
            "variable-length arrays of a file read through cfitsio (gzip) are not read yet",
        ));
    };
    if hi - lo <= total.saturating_mul(2).max(1 << 20) {
        let mut span = vec![0u8; (hi - lo) as usize];
        file.read_bytes_at(&mut span, start + schema.heap_offset + lo)?;
        for &(offset, bytes) in spans {
            let a = (offset.saturating_sub(lo)) as usize;
            out.extend_from_slice(&span[a..a + bytes as usize]);
        }
    } else {
        for &(offset, bytes) in spans.iter().filter(|s| s.1 > 0) {
            let at = out.len();
            out.resize(at + bytes as usize, 0);
            file.read_bytes_at(&mut out[at..], start + schema.heap_offset + offset)?;
        }
    }
    Ok(out)
}

/// The cells a column decodes from: one byte slice per row (or per heap array).
trait CellSource {
    /// Number of cells.
    fn count(&self) -> usize;
    /// Calls `f` on each cell in order.
    fn each(&self, f: impl FnMut(&[u8]));
}

/// Column `offset..offset + width` of each of `n` rows of `stride` bytes: no per-row allocation.
struct Strided<'a> {
    block: &'a [u8],
    stride: usize,
    offset: usize,
    width: usize,
    n: usize,
}

impl CellSource for Strided<'_> {
    fn count(&self) -> usize {
        self.n
    }
    fn each(&self, mut f: impl FnMut(&[u8])) {
        for r in 0..self.n {
            let at = r * self.stride + self.offset;
            f(&self.block[at..at + self.width]);
        }
    }
}

impl CellSource for [&[u8]] {
    fn count(&self) -> usize {
        self.len()
    }
    fn each(&self, mut f: impl FnMut(&[u8])) {
        for cell in self {
            f(cell);
        }
    }
}

/// Big-endian values of type `T` from every cell, one after the other.
fn be_values<T: Copy, const N: usize, C: CellSource + ?Sized>(
    cells: &C,
    per_cell: usize,
    from_be: fn([u8; N]) -> T,
) -> Vec<T> {
    let mut out = Vec::with_capacity(cells.count() * per_cell);
    let word = |b: &[u8]| {
        let mut a = [0u8; N];
        a.copy_from_slice(&b[..N]);
        from_be(a)
    };
    cells.each(|cell| {
        if cell.len() == N {
            // the common scalar cell: one value, pushed without per-row iterator setup
            out.push(word(cell));
        } else {
            out.extend(cell.chunks_exact(N).map(word));
        }
    });
    out
}

/// Whether each raw integer equals TNULL; `None` when none does.
fn nulls_of<T: Copy + Into<i128>>(raw: &[T], null: Option<i64>) -> Option<Vec<bool>> {
    let null = i128::from(null?);
    let mask: Vec<bool> = raw.iter().map(|&v| v.into() == null).collect();
    mask.iter().any(|&m| m).then_some(mask)
}

/// Decodes column `c` of `n` rows of `block`; for a variable-length array column, reads its
/// elements from the heap through `heap`.
fn decode(c: &ColumnSchema, block: &[u8], row_bytes: usize, n: usize, heap: &HeapSource<'_>) -> Result<ColumnData> {
    let row_cells = Strided { block, stride: row_bytes, offset: c.offset, width: c.width, n };
    if let Some(null) = &c.ascii_null {
        let (values, nulls) = decode_ascii(c, &row_cells, null)?;
        return Ok(ColumnData { name: c.name.clone(), per_row: 1, values, nulls, list_offsets: None });
    }
    let Some(kind) = c.variable else {
        let (values, nulls) = decode_values(c, &row_cells, c.repeat);
        let per_row = if c.fits_type == FitsType::Char { 1 } else { c.repeat };
        return Ok(ColumnData { name: c.name.clone(), per_row, values, nulls, list_offsets: None });
    };
    // descriptors: (element count, heap offset) per row
    let mut descriptors: Vec<(u64, u64)> = Vec::with_capacity(n);
    row_cells.each(|cell| {
        descriptors.push(match (kind, cell.len()) {
            (VarArray::P, 8) => {
                let v = be_values::<i32, 4, _>(&[cell][..], 2, i32::from_be_bytes);
                (v[0] as u32 as u64, v[1] as u32 as u64)
            }
            (VarArray::Q, 16) => {
                let v = be_values::<i64, 8, _>(&[cell][..], 2, i64::from_be_bytes);
                (v[0] as u64, v[1] as u64)
            }
            // a zero-width descriptor column (0P): no arrays
            _ => (0, 0),
        })
    });
    let size = c.fits_type.size() as u64;
    let spans: Vec<(u64, u64)> = descriptors
        .iter()
        .map(|&(count, offset)| {
            let bytes = if c.fits_type == FitsType::Bit { count.div_ceil(8) } else { count.saturating_mul(size) };
            (offset, bytes)
        })
        .collect();
    let heap_bytes = read_heap(heap, c, &spans)?;
    // the heap bytes come back concatenated in row order
    let mut row_slices = Vec::with_capacity(n);
    let mut at = 0usize;
    for &(_, bytes) in &spans {
        let end = at + bytes as usize;
        row_slices.push(&heap_bytes[at..end]);
        at = end;
    }
    if c.fits_type == FitsType::Char {
        // a variable-length string: one string per row
        let (values, nulls) = decode_values(c, &row_slices[..], 0);
        return Ok(ColumnData { name: c.name.clone(), per_row: 1, values, nulls, list_offsets: None });
    }
    let mut offsets = Vec::with_capacity(n + 1);
    offsets.push(0i32);
    let mut total = 0u64;
    for &(count, _) in &descriptors {
        total += count;
        offsets.push(i32::try_from(total).map_err(|_| Error::unsupported("over 2^31 array elements in one batch"))?);
    }
    // astropy <= 7.2 wrote logical arrays in the heap as 0x00/0x01 bytes, not 'F'/'T': a heap of
    // only those bytes, with at least one 0x01, is read the way astropy reads it (1 is true)
    let legacy = c.fits_type == FitsType::Logical && heap_bytes.contains(&1) && heap_bytes.iter().all(|&b| b <= 1);
    let (values, nulls) = if legacy {
        (ColumnValues::Bool(heap_bytes.iter().map(|&b| b == 1).collect()), None)
    } else {
        decode_values(c, &row_slices[..], 0)
    };
    Ok(ColumnData { name: c.name.clone(), per_row: 0, values, nulls, list_offsets: Some(offsets) })
}

/// Decodes the text fields of an ASCII-table column. A blank field, or one equal to TNULL, is
/// undefined: astropy's value for it is 0 (integers) or NaN (reals), and the null mask marks it.
fn decode_ascii<C: CellSource + ?Sized>(
    c: &ColumnSchema,
    cells: &C,
    null: &str,
) -> Result<(ColumnValues, Option<Vec<bool>>)> {
    if c.fits_type == FitsType::Char {
        return Ok(decode_values(c, cells, 0));
    }
    let mut nulls = vec![false; cells.count()];
    let mut ints: Vec<i64> = Vec::new();
    let mut reals: Vec<f64> = Vec::new();
    // `Iw` (scaled or not) against `Fw.d`, `Ew.d`, `Dw.d`
    let integer = c.tform.to_ascii_uppercase().starts_with('I');
    let mut row = 0usize;
    let mut failure: Option<Error> = None;
    cells.each(|cell| {
        if failure.is_some() {
            return;
        }
        let text = std::str::from_utf8(cell).map(str::trim).unwrap_or("\u{fffd}");
        let undefined = text.is_empty() || (!null.is_empty() && text == null);
        nulls[row] = undefined;
        let bad = || Error::decoding(format!("column {}: row {row}: {text:?} is not a number", c.name));
        if integer {
            match if undefined { Ok(0) } else { text.trim_start_matches('+').parse::<i64>() } {
                Ok(v) => ints.push(v),
                Err(_) => failure = Some(bad()),
            }
        } else if undefined {
            reals.push(f64::NAN);
        } else {
            let t = text.replace(['D', 'd'], "E");
            let ok = t.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'E' | b'e'));
            match t.parse::<f64>() {
                Ok(v) if ok => reals.push(v),
                _ => failure = Some(bad()),
            }
        }
        row += 1;
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let nulls = nulls.contains(&true).then_some(nulls);
    let out_of_range = |name: &str| Error::decoding(format!("column {}: a value does not fit {name}", c.name));
    let values = match c.column_type {
        ColumnType::I16 => ColumnValues::I16(
            ints.iter()
                .map(|&v| i16::try_from(v))
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| out_of_range("int16"))?,
        ),
        ColumnType::I32 => ColumnValues::I32(
            ints.iter()
                .map(|&v| i32::try_from(v))
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| out_of_range("int32"))?,
        ),
        ColumnType::I64 => ColumnValues::I64(ints),
        // a scaled integer column: scaled in double; undefined stays NaN
        _ if integer => ColumnValues::F64(
            ints.iter()
                .zip(nulls.iter().flatten().chain(std::iter::repeat(&false)))
                .map(|(&v, &u)| if u { f64::NAN } else { v as f64 * c.scale + c.zero })
                .collect(),
        ),
        _ => ColumnValues::F64(reals.iter().map(|&v| v * c.scale + c.zero).collect()),
    };
    Ok((values, nulls))
}

/// Decodes the elements in `cells` (each a whole number of elements; for strings, one string per
/// cell; for bits, `bits` bits per cell, or every bit of the cell when `bits` is 0).
fn decode_values<C: CellSource + ?Sized>(
    c: &ColumnSchema,
    cells: &C,
    bits: usize,
) -> (ColumnValues, Option<Vec<bool>>) {
    let bytes_of = |cells: &C| {
        let mut raw: Vec<u8> = Vec::with_capacity(cells.count() * c.repeat.max(1));
        cells.each(|cell| raw.extend_from_slice(cell));
        raw
    };
    match c.fits_type {
        FitsType::Logical => {
            let raw = bytes_of(cells);
            let nulls = raw.contains(&0).then(|| raw.iter().map(|&b| b == 0).collect());
            (ColumnValues::Bool(raw.iter().map(|&b| b == b'T').collect()), nulls)
        }
        FitsType::Bit => {
            let mut out = Vec::new();
            cells.each(|cell| {
                let nbits = if bits == 0 { cell.len() * 8 } else { bits };
                out.extend((0..nbits).map(|k| cell[k / 8] >> (7 - k % 8) & 1 == 1));
            });
            (ColumnValues::Bool(out), None)
        }
        FitsType::Char => {
            let mut offsets = Vec::with_capacity(cells.count() + 1);
            let mut bytes = Vec::with_capacity(cells.count() * c.width.max(1));
            offsets.push(0i32);
            cells.each(|cell| {
                let cell = cell.split(|&b| b == 0).next().unwrap_or(&[]);
                let end = cell.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
                if end <= 16 {
                    // short strings, the usual catalog case: byte pushes beat a memmove call
                    for &b in &cell[..end] {
                        bytes.push(b);
                    }
                } else {
                    bytes.extend_from_slice(&cell[..end]);
                }
                // a batch's strings stay far below 2 GiB: a batch's bytes fit Limits::max_alloc
                offsets.push(i32::try_from(bytes.len()).unwrap_or(i32::MAX));
            });
            (ColumnValues::Str { offsets, bytes }, None)
        }
        FitsType::Byte => {
            let raw = bytes_of(cells);
            let nulls = nulls_of(&raw, c.null);
            (integer(c, raw, |v| v as f64, ColumnValues::U8), nulls)
        }
        FitsType::Short => {
            let raw = be_values::<i16, 2, C>(cells, c.repeat, i16::from_be_bytes);
            let nulls = nulls_of(&raw, c.null);
            let values = if c.column_type == ColumnType::U16 {
                ColumnValues::U16(raw.iter().map(|&v| (v as u16) ^ 0x8000).collect())
            } else {
                integer(c, raw, |v| v as f64, ColumnValues::I16)
            };
            (values, nulls)
        }
        FitsType::Int => {
            let raw = be_values::<i32, 4, C>(cells, c.repeat, i32::from_be_bytes);
            let nulls = nulls_of(&raw, c.null);
            let values = if c.column_type == ColumnType::U32 {
                ColumnValues::U32(raw.iter().map(|&v| (v as u32) ^ 0x8000_0000).collect())
            } else {
                integer(c, raw, |v| v as f64, ColumnValues::I32)
            };
            (values, nulls)
        }
        FitsType::Long => {
            let raw = be_values::<i64, 8, C>(cells, c.repeat, i64::from_be_bytes);
            let nulls = nulls_of(&raw, c.null);
            let values = if c.column_type == ColumnType::U64 {
                ColumnValues::U64(raw.iter().map(|&v| (v as u64) ^ (1 << 63)).collect())
            } else {
                integer(c, raw, |v| v as f64, ColumnValues::I64)
            };
            (values, nulls)
        }
        FitsType::Float => {
            let raw = be_values::<f32, 4, C>(cells, c.repeat, f32::from_be_bytes);
            let values = match c.column_type {
                ColumnType::F64 => ColumnValues::F64(raw.iter().map(|&v| v as f64 * c.scale + c.zero).collect()),
                _ => ColumnValues::F32(raw),
            };
            (values, None)
        }
        FitsType::Double => {
            let raw = be_values::<f64, 8, C>(cells, c.repeat, f64::from_be_bytes);
            let scaled = c.scale != 1.0 || c.zero != 0.0;
            let values = if scaled { raw.iter().map(|&v| v * c.scale + c.zero).collect() } else { raw };
            (ColumnValues::F64(values), None)
        }
        FitsType::Complex => {
            let raw = be_values::<f32, 4, C>(cells, c.repeat, f32::from_be_bytes);
            let values = match c.column_type {
                ColumnType::ComplexF64 => ColumnValues::ComplexF64(
                    raw.chunks_exact(2).map(|p| [p[0] as f64 * c.scale + c.zero, p[1] as f64 * c.scale]).collect(),
                ),
                _ => ColumnValues::ComplexF32(raw.chunks_exact(2).map(|p| [p[0], p[1]]).collect()),
            };
            (values, None)
        }
        FitsType::DoubleComplex => {
            let raw = be_values::<f64, 8, C>(cells, c.repeat, f64::from_be_bytes);
            let (s, z) = (c.scale, c.zero);
            (ColumnValues::ComplexF64(raw.chunks_exact(2).map(|p| [p[0] * s + z, p[1] * s]).collect()), None)
        }
    }
}

/// An integer column: as stored, or scaled to f64 when TSCAL/TZERO apply. Like astropy, a TNULL
/// element keeps its stored (or scaled) value; [`ColumnData::nulls`] marks it.
fn integer<T: Copy>(
    c: &ColumnSchema,
    raw: Vec<T>,
    to_f64: impl Fn(T) -> f64,
    wrap: impl FnOnce(Vec<T>) -> ColumnValues,
) -> ColumnValues {
    if c.column_type != ColumnType::F64 {
        return wrap(raw);
    }
    ColumnValues::F64(raw.iter().map(|&v| to_f64(v) * c.scale + c.zero).collect())
}
