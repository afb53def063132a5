//! Reading binary tables: blocks of raw rows, decoded column by column into typed buffers.

use std::ops::Range;
use std::sync::Arc;

use crate::io::file::FitsFile;
use crate::io::table::batch::{ColumnData, ColumnValues, TableBatch};
use crate::io::table::decode::{Cells, Out, decode_into, push_nulls, push_trimmed};
use crate::io::table::filter::Filter;
use crate::io::table::pool::ColumnPool;
use crate::io::table::tiles::{TableTiles, Unpacked};
use crate::source::ByteSource;
use torchfits_format::error::{Error, Result};
use torchfits_format::limits::Limits;
use torchfits_format::table_schema::{ColumnSchema, ColumnType, FitsType, TableSchema, VarArray};
use torchfits_format::threads::caught;

/// Rows per batch when [`TableReader::with_batch_rows`] is not called.
pub const DEFAULT_BATCH_ROWS: usize = 65_536;

/// Reads a binary table: a builder in the style of parquet's Arrow reader. The schema is read
/// first; the columns, rows and batch size are chosen; [`TableReader::build`] gives an iterator of
/// [`TableBatch`]es. Each batch reads its rows' bytes in one block (`pread` for a plain file) and
/// decodes only the selected columns, so memory is bounded by the batch, not the table.
///
/// ```
/// use torchfits_core::{ColumnValues, FitsFile};
/// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
/// let file = FitsFile::open(path)?;
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
pub struct TableReader {
    file: FitsFile,
    index: usize,
    schema: TableSchema,
    data_start: Option<u64>,
    selected: Vec<usize>,
    rows: Range<u64>,
    batch_rows: usize,
    filter: Option<Filter>,
    pool: ColumnPool,
    /// For a tile-compressed table: where its tiles are (the rows are decoded from them).
    tiles: Option<Arc<TableTiles>>,
}

impl TableReader {
    pub(crate) fn new(file: FitsFile, index: usize, schema: TableSchema, data_start: Option<u64>) -> Self {
        let selected = (0..schema.columns.len()).collect();
        let rows = 0..schema.nrows;
        let pool = ColumnPool::default();
        TableReader {
            file,
            index,
            schema,
            data_start,
            selected,
            rows,
            batch_rows: DEFAULT_BATCH_ROWS,
            filter: None,
            pool,
            tiles: None,
        }
    }

    /// This reader reads the rows of a tile-compressed table from its tiles.
    pub(crate) fn with_tiles(mut self, tiles: TableTiles) -> Self {
        self.tiles = Some(Arc::new(tiles));
        self
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

    /// Takes the batches' column buffers from `pool`, which holds the buffers of batches given
    /// back to it ([`ColumnPool::recycle`]); without it each batch's buffers are new. In a loop
    /// over many reads this saves the page faults of fresh buffers (see [`ColumnPool`]).
    pub fn with_pool(mut self, pool: &ColumnPool) -> Self {
        self.pool = pool.clone();
        self
    }

    /// Rows per batch (at least 1; default [`DEFAULT_BATCH_ROWS`]).
    pub fn with_batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }

    /// The batches. Checks that one batch's raw rows fit [`crate::Limits::max_alloc`].
    pub fn build(self) -> Result<TableBatches> {
        let len = self.rows.end - self.rows.start;
        let batch_rows = (self.batch_rows as u64).min(len.max(1)) as usize;
        let bytes = (batch_rows as u64).saturating_mul(self.schema.row_bytes as u64);
        self.file.limits().check_alloc(bytes, "a batch of table rows").map_err(|e| self.err(e))?;
        let next = self.rows.start;
        Ok(TableBatches { reader: self, next, batch_rows, block: Vec::new(), heap: None, arrays: Vec::new() })
    }
}

/// The batches of a [`TableReader`], in row order.
#[derive(Debug)]
pub struct TableBatches {
    reader: TableReader,
    next: u64,
    batch_rows: usize,
    /// Raw rows of the current batch, reused from batch to batch, back to the pool at the end.
    block: Vec<u8>,
    /// For a file read through cfitsio, the table's heap, read once when a batch first needs it.
    heap: Option<Vec<u8>>,
    /// For a tile-compressed table, the current batch's variable-length arrays, decoded.
    arrays: Vec<u8>,
}

impl Drop for TableBatches {
    fn drop(&mut self) {
        self.reader.pool.put(ColumnValues::U8(std::mem::take(&mut self.block)));
    }
}

impl Iterator for TableBatches {
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

impl TableBatches {
    /// A batch of no rows with the selected columns: for writing the schema of an empty selection.
    pub fn empty_batch(&mut self) -> Result<TableBatch> {
        let first = self.reader.rows.start;
        self.read_batch(first, 0)
    }

    #[expect(
        clippy::indexing_slicing,
        reason = "column indices come from the schema's list and the batch's own partition of it; the row block is `len` bytes, checked against the file above"
    )]
    fn read_batch(&mut self, first: u64, n: usize) -> Result<TableBatch> {
        let _span = tracing::trace_span!("read_rows", first, rows = n).entered();
        let r = &mut self.reader;
        let row_bytes = r.schema.row_bytes;
        let len = n.checked_mul(row_bytes).ok_or_else(|| Error::limits("a batch's rows do not fit in memory"))?;
        let at = r.data_start.map(|start| start.saturating_add(first.saturating_mul(row_bytes as u64)));
        // rows the file does not have are an error before anything is allocated for them
        if let (Some(source), Some(at)) = (r.file.source(), at) {
            let end = at.saturating_add(len as u64);
            if end > source.len() {
                return Err(Error::decoding(format!(
                    "the file is truncated: rows {first} to {} end at byte {end}, and the file ends at byte {}",
                    first + n as u64,
                    source.len()
                )));
            }
        }
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
        // fixed-width cells decode row-parallel; ASCII numbers and variable-length arrays column
        // by column from the whole block
        let (fixed, other): (Vec<usize>, Vec<usize>) = (0..columns.len()).partition(|&k| is_fixed(columns[k]));
        // the rows: decoded straight from the map in mmap mode; read chunk by chunk by the
        // decoding threads from a plain file; otherwise (cfitsio's path, or columns that need the
        // whole block) read into `block` first
        let source = r.file.source();
        let mapped = len > 0 && source.and_then(|s| s.slice(at, len)).is_some();
        if let (true, Some(source), Some(at)) = (mapped, source, at) {
            source.will_read(at, len as u64);
        }
        let streamed = !mapped && other.is_empty() && source.is_some() && at.is_some();
        // rows in object storage: fetched in a few large requests, not chunk by chunk
        if let (Some(source), Some(at)) = (source.filter(|s| s.remote()), at) {
            source
                .prefetch(std::slice::from_ref(&(at..at + len as u64)))
                .map_err(|e| Error::io(e, "cannot read the rows"))?;
        }
        // a compressed table's fixed-width columns decode straight from their tiles' cells: the
        // rows are put together only for the columns that need them
        let block_needed = r.tiles.is_none() || !other.is_empty();
        if !mapped && !streamed && len > 0 && block_needed {
            if self.block.capacity() == 0 {
                self.block = r.pool.bytes(len);
            }
            if self.block.len() < len {
                r.file.limits().resize_vec(&mut self.block, len, 0, "a batch's rows")?;
            }
            match (&r.tiles, source) {
                (Some(tiles), Some(source)) => {
                    self.arrays.clear();
                    let out = Unpacked { rows: &mut self.block[..len], heap: &mut self.arrays };
                    let assembled: Vec<usize> = other.iter().map(|&k| columns[k].index).collect();
                    tiles.unpack(source, &r.schema, (first, n), &assembled, out)?;
                }
                _ => r.file.read_table_rows(r.index, r.data_start, first, row_bytes, &mut self.block[..len])?,
            }
        }
        let needs_heap = other.iter().any(|&k| columns[k].variable.is_some());
        if needs_heap && r.tiles.is_none() && self.heap.is_none() && (source.is_none() || r.data_start.is_none()) {
            let bytes = r.schema.data_len.saturating_sub(r.schema.heap_offset);
            let mut heap =
                r.file.limits().zeroed_vec(usize::try_from(bytes).unwrap_or(usize::MAX), "the table's heap")?;
            r.file.read_data_bytes(r.index, r.schema.heap_offset, &mut heap)?;
            self.heap = Some(heap);
        }
        let file: &FitsFile = &r.file;
        let block: &[u8] = match source.and_then(|s| s.slice(at, len)) {
            Some(rows) if mapped => rows,
            _ if streamed || !block_needed => &[],
            _ => &self.block[..len],
        };
        let rows = match (source, at) {
            (Some(source), Some(start)) if streamed => Rows::File { file: source, start, stride: row_bytes },
            _ => Rows::Memory(Cells { rows: block, stride: row_bytes, offset: 0, width: 0 }),
        };
        let heap = HeapSource {
            plain: source,
            data_start: r.data_start,
            memory: if r.tiles.is_some() { Some(&self.arrays) } else { self.heap.as_deref() },
            len: match r.tiles {
                Some(_) => self.arrays.len() as u64,
                None => r.schema.data_len.saturating_sub(r.schema.heap_offset),
            },
            schema: &r.schema,
            limits: *file.limits(),
        };
        let parts = if n >= PARALLEL_MIN_ROWS { file.threads().max(1) } else { 1 };
        let fixed_columns: Vec<&ColumnSchema> = fixed.iter().map(|&k| columns[k]).collect();
        let mut decoded: Vec<Option<ColumnData>> = (0..columns.len()).map(|_| None).collect();
        match (&r.tiles, source) {
            (Some(tiles), Some(source)) => {
                let indices: Vec<usize> = fixed_columns.iter().map(|c| c.index).collect();
                let cells = tiles.column_cells(source, &r.schema, (first, n), &indices, file.threads().max(1))?;
                for ((k, c), bytes) in fixed.iter().zip(&fixed_columns).zip(cells) {
                    // the column alone, its cells one after the other
                    let mut alone = (*c).clone();
                    alone.offset = 0;
                    let rows = Rows::Memory(Cells { rows: &bytes, stride: c.width, offset: 0, width: 0 });
                    decoded[*k] = decode_fixed(&[&alone], rows, n, parts, &r.pool)?.pop();
                }
            }
            _ => {
                for (k, d) in fixed.iter().zip(decode_fixed(&fixed_columns, rows, n, parts, &r.pool)?) {
                    decoded[*k] = Some(d);
                }
            }
        }
        for k in other {
            decoded[k] = Some(decode_other(columns[k], block, row_bytes, n, &heap, &r.pool)?);
        }
        let decoded: Vec<ColumnData> = decoded.into_iter().flatten().collect();
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
    plain: Option<&'a dyn ByteSource>,
    data_start: Option<u64>,
    /// The whole heap, for a file read through cfitsio (which holds it in memory anyway), or a
    /// compressed table's batch's arrays, decoded.
    memory: Option<&'a [u8]>,
    /// Bytes of the heap: every array lies in them.
    len: u64,
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
        if offset.checked_add(bytes).is_none_or(|e| e > heap.len) {
            return Err(Error::decoding(format!(
                "column {}: an array descriptor ({bytes} bytes at heap offset {offset}) points outside the heap of {} bytes",
                c.name, heap.len
            )));
        }
        total += bytes;
        lo = lo.min(offset);
        hi = hi.max(offset + bytes);
    }
    let what = "a batch of variable-length arrays";
    heap.limits.check_alloc(total, what)?;
    if total == 0 {
        return Ok(Vec::new());
    }
    // the cells must lie in the bytes the file has, not only in the heap its header declares,
    // before their buffer is allocated
    if let (Some(file), Some(start)) = (heap.plain, heap.data_start) {
        let end = start.saturating_add(schema.heap_offset).saturating_add(hi);
        if end > file.len() {
            return Err(Error::decoding(format!(
                "the file is truncated: column {}'s variable-length arrays reach byte {end}, and the file ends at byte {}",
                c.name,
                file.len()
            )));
        }
    }
    let mut out = Vec::new();
    out.try_reserve_exact(total as usize)
        .map_err(|_| Error::limits(format!("{what} needs {total} bytes, more than the system can allocate")))?;
    if let Some(memory) = heap.memory {
        for &(offset, bytes) in spans.iter().filter(|s| s.1 > 0) {
            let cell = memory.get(offset as usize..(offset + bytes) as usize);
            out.extend_from_slice(cell.ok_or_else(|| Error::decoding("the heap is shorter than the header says"))?);
        }
        return Ok(out);
    }
    let (Some(file), Some(start)) = (heap.plain, heap.data_start) else {
        return Err(Error::decoding("the table's heap cannot be located"));
    };
    if hi - lo <= total.saturating_mul(2).max(1 << 20) {
        let mut span = Vec::new();
        file.read_vec_at(&mut span, start + schema.heap_offset + lo, hi - lo, &heap.limits, &what)?;
        for &(offset, bytes) in spans.iter().filter(|s| s.1 > 0) {
            let a = (offset - lo) as usize;
            out.extend_from_slice(span.get(a..a + bytes as usize).unwrap_or(&[]));
        }
    } else {
        for &(offset, bytes) in spans.iter().filter(|s| s.1 > 0) {
            let at = out.len();
            out.resize(at + bytes as usize, 0);
            file.read_bytes_at(out.get_mut(at..).unwrap_or(&mut []), start + schema.heap_offset + offset)?;
        }
    }
    Ok(out)
}

/// Whether `c`'s cells decode in place from the rows: neither a variable-length array nor a
/// number of an ASCII table.
fn is_fixed(c: &ColumnSchema) -> bool {
    c.variable.is_none() && (c.ascii_null.is_none() || c.fits_type == FitsType::Char)
}

/// Elements per row of a fixed-width column (one string per row for characters).
fn per_row(c: &ColumnSchema) -> usize {
    if c.fits_type == FitsType::Char { 1 } else { c.repeat }
}

/// Bytes of rows per chunk: a chunk's rows stay in cache while each of its columns is decoded.
const CHUNK_BYTES: usize = 192 << 10;

/// Where the rows of a batch are.
#[derive(Clone, Copy)]
enum Rows<'a> {
    /// In memory (the map of the file, or a block read beforehand); offset and width unused.
    Memory(Cells<'a>),
    /// In a plain file, from byte `start`: each thread reads its chunks itself.
    File { file: &'a dyn ByteSource, start: u64, stride: usize },
}

/// The whole of `v` as an output to fill (strings: their ends, the bytes moved out of `v`).
fn out_of(v: &mut ColumnValues) -> Out<'_> {
    match v {
        ColumnValues::Bool(v) => Out::Bool(v),
        ColumnValues::U8(v) => Out::U8(v),
        ColumnValues::I16(v) => Out::I16(v),
        ColumnValues::U16(v) => Out::U16(v),
        ColumnValues::I32(v) => Out::I32(v),
        ColumnValues::U32(v) => Out::U32(v),
        ColumnValues::I64(v) => Out::I64(v),
        ColumnValues::U64(v) => Out::U64(v),
        ColumnValues::F32(v) => Out::F32(v),
        ColumnValues::F64(v) => Out::F64(v),
        ColumnValues::ComplexF32(v) => Out::C32(v),
        ColumnValues::ComplexF64(v) => Out::C64(v),
        ColumnValues::Str { offsets, bytes } => {
            let ends = match offsets.split_first_mut() {
                Some((first, ends)) => {
                    *first = 0;
                    ends
                }
                None => &mut [],
            };
            bytes.clear();
            Out::Str { ends, bytes: std::mem::take(bytes) }
        }
    }
}

/// Decodes the fixed-width `columns` of the `n` rows of `rows`: the rows cut into `parts` runs
/// decoded on as many threads, each run chunk by chunk (read by the thread itself from a file).
#[expect(
    clippy::indexing_slicing,
    reason = "`bounds` has `parts + 1` entries (the batch's partition of its rows) and the shares one per part; cell bytes go through `Cells`, which checks each range"
)]
fn decode_fixed(
    columns: &[&ColumnSchema],
    rows: Rows<'_>,
    n: usize,
    parts: usize,
    pool: &ColumnPool,
) -> Result<Vec<ColumnData>> {
    for c in columns.iter().filter(|c| c.fits_type == FitsType::Char) {
        if (n as u64).saturating_mul(c.width as u64) > i32::MAX as u64 {
            return Err(Error::limits(format!(
                "column {}: {n} rows of {} characters pass the 2 GiB of strings a batch can hold; read smaller batches",
                c.name, c.width
            )));
        }
    }
    let stride = match rows {
        Rows::Memory(cells) => cells.stride,
        Rows::File { stride, .. } => stride,
    };
    let chunk_rows = (CHUNK_BYTES / stride.max(1)).max(1);
    let parts = parts.clamp(1, n.max(1));
    let bounds: Vec<usize> = (0..=parts).map(|p| n * p / parts).collect();
    let mut values: Vec<ColumnValues> = columns.iter().map(|c| pool.values(c.column_type, n * per_row(c))).collect();
    // each part's share of every column's output; string bytes: part 0 appends to the column's
    // buffer, the others to buffers of their own, joined after
    let mut shares: Vec<Vec<Out<'_>>> = (0..parts).map(|_| Vec::with_capacity(columns.len())).collect();
    for (c, v) in columns.iter().zip(values.iter_mut()) {
        let mut rest = out_of(v);
        for (p, share) in shares.iter_mut().enumerate() {
            let mut part = rest.split_front((bounds[p + 1] - bounds[p]) * per_row(c));
            if let (Out::Str { bytes, .. }, Out::Str { bytes: column_bytes, .. }) = (&mut part, &mut rest) {
                *bytes = if p == 0 { std::mem::take(column_bytes) } else { pool.bytes(0) };
            }
            share.push(part);
        }
    }
    // per column of a part: its null mask (from the first chunk with an undefined value on, the
    // elements before it all defined) and its string bytes
    type Decoded = Vec<(Option<Vec<bool>>, Vec<u8>)>;
    let run = |mut share: Vec<Out<'_>>, first: usize, count: usize| -> Result<Decoded> {
        let mut masks: Vec<Option<Vec<bool>>> = vec![None; columns.len()];
        let mut buf = match rows {
            Rows::File { .. } => pool.bytes(chunk_rows.min(count) * stride),
            Rows::Memory(_) => Vec::new(),
        };
        let mut at = first;
        while at < first + count {
            let k = chunk_rows.min(first + count - at);
            let chunk = match rows {
                Rows::Memory(cells) => cells.slice(at, k),
                Rows::File { file, start, stride } => {
                    let bytes = buf.get_mut(..k * stride).unwrap_or(&mut []);
                    file.read_bytes_at(bytes, start + (at * stride) as u64)?;
                    Cells { rows: bytes, stride, offset: 0, width: 0 }
                }
            };
            for ((c, out), mask) in columns.iter().zip(share.iter_mut()).zip(masks.iter_mut()) {
                let (cells, per) = (Cells { offset: c.offset, width: c.width, ..chunk }, per_row(c));
                if decode_into(c, cells, per, out) && mask.is_none() {
                    *mask = Some(vec![false; (at - first) * per]);
                }
                if let Some(mask) = mask {
                    push_nulls(c, cells, per, mask);
                }
            }
            at += k;
        }
        pool.put(ColumnValues::U8(buf));
        let bytes = share.into_iter().map(|out| match out {
            Out::Str { bytes, .. } => bytes,
            _ => Vec::new(),
        });
        Ok(masks.into_iter().zip(bytes).collect())
    };
    let mut results: Vec<Decoded> = if parts == 1 {
        shares.into_iter().map(|share| run(share, 0, n)).collect::<Result<_>>()?
    } else {
        std::thread::scope(|scope| {
            let mut shares = shares.into_iter();
            let first = shares.next().unwrap_or_default();
            let (run, bounds) = (&run, &bounds);
            let handles: Vec<_> = shares
                .enumerate()
                .map(|(i, share)| scope.spawn(move || run(share, bounds[i + 1], bounds[i + 2] - bounds[i + 1])))
                .collect();
            let mut all = vec![caught("a decoding thread", || run(first, 0, bounds[1]))?];
            for h in handles {
                all.push(h.join().map_err(|_| Error::decoding("a decoding thread panicked"))??);
            }
            Ok::<_, Error>(all)
        })?
    };
    let mut out = Vec::with_capacity(columns.len());
    for (k, (c, mut v)) in columns.iter().zip(values).enumerate() {
        let per = per_row(c);
        let any_null = results.iter().any(|r| r.get(k).is_some_and(|s| s.0.is_some()));
        let mut nulls = any_null.then(|| Vec::with_capacity(n * per));
        for (p, r) in results.iter_mut().enumerate() {
            let Some((mask, part)) = r.get_mut(k) else { continue };
            if let Some(nulls) = &mut nulls {
                match mask.take() {
                    Some(mask) => nulls.extend(mask),
                    None => nulls.resize(nulls.len() + (bounds[p + 1] - bounds[p]) * per, false),
                }
            }
            let ColumnValues::Str { offsets, bytes } = &mut v else { continue };
            let part = std::mem::take(part);
            if p == 0 {
                *bytes = part;
                continue;
            }
            // checked above: a batch's strings stay under 2 GiB
            let base = i32::try_from(bytes.len()).unwrap_or(i32::MAX);
            for o in offsets.get_mut(bounds[p] + 1..=bounds[p + 1]).unwrap_or(&mut []) {
                *o += base;
            }
            bytes.extend_from_slice(&part);
            pool.put(ColumnValues::U8(part));
        }
        out.push(ColumnData {
            name: c.name.clone(),
            per_row: per,
            values: v,
            nulls,
            list_offsets: None,
            shape: c.dims.clone(),
        });
    }
    Ok(out)
}

/// Decodes column `c` of `n` rows of `block` when it is not fixed-width: a number of an ASCII
/// table, or a variable-length array (its elements read from the heap through `heap`).
fn decode_other(
    c: &ColumnSchema,
    block: &[u8],
    row_bytes: usize,
    n: usize,
    heap: &HeapSource<'_>,
    pool: &ColumnPool,
) -> Result<ColumnData> {
    let row_cells =
        Cells { rows: block.get(..n * row_bytes).unwrap_or(&[]), stride: row_bytes, offset: c.offset, width: c.width };
    let name = c.name.clone();
    if let Some(null) = &c.ascii_null {
        let (values, nulls) = decode_ascii(c, row_cells, null)?;
        return Ok(ColumnData { name, per_row: 1, values, nulls, list_offsets: None, shape: None });
    }
    let kind = c.variable.unwrap_or(VarArray::P);
    // descriptors: (element count, heap offset) per row
    let descriptors: Vec<(u64, u64)> = row_cells
        .iter()
        .map(|cell| match (kind, cell) {
            (VarArray::P, [a, b, c, d, e, f, g, h]) => {
                (u32::from_be_bytes([*a, *b, *c, *d]) as u64, u32::from_be_bytes([*e, *f, *g, *h]) as u64)
            }
            (VarArray::Q, _) => match (cell.first_chunk::<8>(), cell.get(8..).and_then(<[u8]>::first_chunk::<8>)) {
                (Some(&count), Some(&offset)) => (u64::from_be_bytes(count), u64::from_be_bytes(offset)),
                _ => (0, 0),
            },
            // a zero-width descriptor column (0P): no arrays
            _ => (0, 0),
        })
        .collect();
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
    let mut row_slices: Vec<&[u8]> = Vec::with_capacity(n);
    let mut at = 0usize;
    for &(_, bytes) in &spans {
        let end = at + bytes as usize;
        row_slices.push(heap_bytes.get(at..end).unwrap_or(&[]));
        at = end;
    }
    if c.fits_type == FitsType::Char {
        // a variable-length string: one string per row
        let mut offsets = pool.offsets(0);
        let mut bytes = pool.bytes(0);
        bytes.reserve(heap_bytes.len());
        offsets.push(0);
        for cell in &row_slices {
            push_trimmed(&mut bytes, cell);
            offsets.push(
                i32::try_from(bytes.len()).map_err(|_| Error::unsupported("over 2 GiB of strings in one batch"))?,
            );
        }
        let values = ColumnValues::Str { offsets, bytes };
        return Ok(ColumnData { name, per_row: 1, values, nulls: None, list_offsets: None, shape: None });
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
    if legacy {
        let values = ColumnValues::Bool(heap_bytes.iter().map(|&b| b == 1).collect());
        return Ok(ColumnData { name, per_row: 0, values, nulls: None, list_offsets: Some(offsets), shape: None });
    }
    let mut values = pool.values(c.column_type, total as usize);
    let mut out = out_of(&mut values);
    let nulls = if c.fits_type == FitsType::Bit {
        // each row its own number of bits
        for (cell, &(count, _)) in row_slices.iter().zip(&descriptors) {
            let cells = Cells { rows: cell, stride: cell.len(), offset: 0, width: cell.len() };
            decode_into(c, cells, count as usize, &mut out);
        }
        None
    } else {
        let size = size as usize;
        let cells = Cells { rows: &heap_bytes, stride: size, offset: 0, width: size };
        decode_into(c, cells, 1, &mut out).then(|| {
            let mut mask = Vec::with_capacity(total as usize);
            push_nulls(c, cells, 1, &mut mask);
            mask
        })
    };
    Ok(ColumnData { name, per_row: 0, values, nulls, list_offsets: Some(offsets), shape: None })
}

/// Decodes the text fields of an ASCII-table column. A blank field, or one equal to TNULL, is
/// undefined: astropy's value for it is 0 (integers) or NaN (reals), and the null mask marks it.
fn decode_ascii(c: &ColumnSchema, cells: Cells<'_>, null: &str) -> Result<(ColumnValues, Option<Vec<bool>>)> {
    let mut nulls = vec![false; cells.count()];
    let mut ints: Vec<i64> = Vec::new();
    let mut reals: Vec<f64> = Vec::new();
    // `Iw` (scaled or not) against `Fw.d`, `Ew.d`, `Dw.d`
    let integer = c.tform.to_ascii_uppercase().starts_with('I');
    for (row, cell) in cells.iter().enumerate() {
        let text = std::str::from_utf8(cell).map(str::trim).unwrap_or("\u{fffd}");
        let undefined = text.is_empty() || (!null.is_empty() && text == null);
        if let Some(n) = nulls.get_mut(row) {
            *n = undefined;
        }
        let bad = || Error::decoding(format!("column {}: row {row}: {text:?} is not a number", c.name));
        if integer {
            match if undefined { Ok(0) } else { text.trim_start_matches('+').parse::<i64>() } {
                Ok(v) => ints.push(v),
                Err(_) => return Err(bad()),
            }
        } else if undefined {
            reals.push(f64::NAN);
        } else {
            let t = text.replace(['D', 'd'], "E");
            let ok = t.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'E' | b'e'));
            match t.parse::<f64>() {
                Ok(v) if ok => reals.push(v),
                _ => return Err(bad()),
            }
        }
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
