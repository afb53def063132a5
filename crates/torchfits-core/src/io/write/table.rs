//! Writing binary tables: typed columns (the [`TableBatch`]es a read gives, or built by hand, or
//! converted from Arrow) streamed in batches; the row count, heap size and array lengths are
//! written into the header when the table is complete.

// Indexing: the writer indexes only the caller's batches (columns and offsets checked by
// `TableBatch::new`) and its own header records.
#![allow(clippy::indexing_slicing)]

use super::column::ColumnSpec;
use super::compressed_table::{Layout, Packer, TableCompression};
use super::spool::Spool;
use super::{FitsWriter, OpenHdu};
use crate::io::table::{ColumnData, ColumnType, ColumnValues, TableBatch};
use torchfits_format::cards::{Record, raw_card, structural};
use torchfits_format::error::{Error, Result};
use torchfits_format::header::{Header, Value};

/// A binary-table HDU being written: batches go in with [`TableWrite::write`], and
/// [`TableWrite::finish`] completes the HDU. Memory is bounded by one batch (the heap of
/// variable-length arrays waits in a scratch file beside the output).
///
/// Undefined values: floats are written as NaN, logicals as 0 (undefined), integers of a
/// [`ColumnSpec::nullable`] column as TNULLn (a defined value equal to it is an error),
/// strings as empty.
///
/// ```
/// use torchfits_core::table::{ColumnData, ColumnValues, TableBatch};
/// use torchfits_core::{FitsFile, FitsWriter};
/// # let dir = std::env::temp_dir().join(format!("torchfits-doc-table-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let path = dir.join("catalog.fits");
/// let batch = TableBatch::new(vec![
///     ColumnData::new("ra", ColumnValues::F64(vec![10.5, 11.25])),
///     ColumnData::new("mag", ColumnValues::F32(vec![21.5, f32::NAN])),
///     ColumnData::strings("name", &["a", "bcd"]),
/// ])?;
/// let mut writer = FitsWriter::create(&path)?;
/// writer.write_table(&batch, "CATALOG", None)?;
/// writer.finish()?;
/// let file = FitsFile::open(&path)?;
/// let back = file.table("CATALOG")?.build()?.next().expect("a batch")?;
/// assert_eq!(back.column("ra").expect("ra").values, ColumnValues::F64(vec![10.5, 11.25]));
/// assert_eq!(back.column("name").expect("name").values.str_at(1), Some(&b"bcd"[..]));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[must_use = "the table is incomplete until .finish()"]
pub struct TableWrite<'w> {
    writer: &'w mut FitsWriter,
    columns: Vec<ColumnSpec>,
    offsets: Vec<usize>,
    row_bytes: usize,
    hdu: Option<OpenHdu>,
    rows: u64,
    /// Per variable-length column, the longest array so far.
    max_len: Vec<u64>,
    heap_len: u64,
    /// The heap of the rows written, until the rows are all in.
    heap: Spool,
    /// Where NAXIS2, PCOUNT and each TFORMn are among the header's records.
    naxis2_at: usize,
    pcount_at: usize,
    tform_at: Vec<usize>,
    buf: Vec<u8>,
    /// For a compressed table: the tiles so far, and where ZNAXIS2, ZPCOUNT and each ZFORMn
    /// are among the header's records.
    packer: Option<Packer>,
    zcounts_at: (usize, usize),
    zform_at: Vec<usize>,
}

impl FitsWriter {
    /// Starts a binary-table HDU of `columns`, with `header`'s cards besides the structural ones
    /// (EXTNAME among them).
    pub fn table(&mut self, columns: Vec<ColumnSpec>, header: Option<&Header>) -> Result<TableWrite<'_>> {
        let result = TableWrite::begin_packed(self, columns, header, None);
        match result {
            Ok(t) => Ok(t),
            Err((w, e)) => Err(w.err(e)),
        }
    }

    /// Starts a tile-compressed binary-table HDU of `columns` (FITS 4.0 section 10.3, as fpack
    /// writes one): written as [`FitsWriter::table`] writes, read back as the table it holds.
    ///
    /// ```
    /// use torchfits_core::table::{ColumnData, ColumnValues, TableBatch};
    /// use torchfits_core::write::{ColumnSpec, TableCompression};
    /// use torchfits_core::{FitsFile, FitsWriter};
    /// # let dir = std::env::temp_dir().join(format!("tf-doc-ztable-{}", std::process::id()));
    /// # std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("catalog.fits.fz");
    /// let batch = TableBatch::new(vec![ColumnData::new("id", ColumnValues::I32((0..5000).collect()))])?;
    /// let mut writer = FitsWriter::create(&path)?;
    /// let columns = batch.columns.iter().map(ColumnSpec::of).collect();
    /// let mut table = writer.compressed_table(columns, None, &TableCompression::new().tile_rows(1000))?;
    /// table.write(&batch)?;
    /// table.finish()?;
    /// writer.finish()?;
    /// let back = FitsFile::open(&path)?.table(1)?.build()?.next().expect("a batch")?;
    /// assert_eq!(back.columns[0].values, batch.columns[0].values);
    /// # std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn compressed_table(
        &mut self,
        columns: Vec<ColumnSpec>,
        header: Option<&Header>,
        compression: &TableCompression,
    ) -> Result<TableWrite<'_>> {
        match TableWrite::begin_packed(self, columns, header, Some(compression)) {
            Ok(t) => Ok(t),
            Err((w, e)) => Err(w.err(e)),
        }
    }

    /// Writes `batch` as a whole binary-table HDU named `extname` (columns as
    /// [`ColumnSpec::of`] gives them).
    pub fn write_table(&mut self, batch: &TableBatch, extname: &str, header: Option<&Header>) -> Result<()> {
        let columns = batch.columns.iter().map(ColumnSpec::of).collect();
        let mut h = header.cloned().unwrap_or_default();
        if !extname.is_empty() {
            h.set("EXTNAME", extname, None).map_err(|e| self.err(e))?;
        }
        let mut t = self.table(columns, Some(&h))?;
        t.write(batch)?;
        t.finish()
    }
}

impl<'w> TableWrite<'w> {
    /// Starts the table, compressed where `compression` is given.
    #[allow(clippy::result_large_err)]
    fn begin_packed(
        writer: &'w mut FitsWriter,
        columns: Vec<ColumnSpec>,
        header: Option<&Header>,
        compression: Option<&TableCompression>,
    ) -> std::result::Result<Self, (&'w mut FitsWriter, Error)> {
        let plan = (|| {
            if columns.len() > 999 {
                return Err(Error::parameter("more than 999 columns"));
            }
            let mut records: Vec<Record> = Vec::new();
            let mut offsets = Vec::with_capacity(columns.len());
            let mut row_bytes = 0usize;
            for c in &columns {
                if c.name.is_empty() {
                    return Err(Error::parameter("a column has no name"));
                }
                if c.variable && matches!(c.column_type, ColumnType::Bits | ColumnType::Str) {
                    return Err(Error::unsupported(format!(
                        "column {}: variable-length {:?} arrays are not written (use a fixed width)",
                        c.name, c.column_type
                    )));
                }
                if let Some(d) = &c.dims
                    && (c.variable || d.iter().product::<usize>() != c.repeat)
                {
                    return Err(Error::parameter(format!(
                        "column {}: TDIM {d:?} does not hold {} elements",
                        c.name, c.repeat
                    )));
                }
                offsets.push(row_bytes);
                row_bytes = row_bytes.checked_add(c.width()).ok_or_else(|| Error::parameter("the row is too wide"))?;
            }
            records.push(structural("XTENSION", Value::Str("BINTABLE".into()), "binary table extension"));
            records.push(structural("BITPIX", Value::Int(8), "8-bit bytes"));
            records.push(structural("NAXIS", Value::Int(2), "2-dimensional binary table"));
            let stored_row = 16 * columns.len() as i64;
            let naxis1 = if compression.is_some() { stored_row } else { row_bytes as i64 };
            records.push(structural("NAXIS1", Value::Int(naxis1), "width of table in bytes"));
            let naxis2_at = records.len();
            records.push(structural("NAXIS2", Value::Int(0), "number of rows in table"));
            let pcount_at = records.len();
            records.push(structural("PCOUNT", Value::Int(0), "size of special data area"));
            records.push(structural("GCOUNT", Value::Int(1), "one data group (required keyword)"));
            records.push(structural("TFIELDS", Value::Int(columns.len() as i64), "number of fields in each row"));
            let mut tform_at = Vec::with_capacity(columns.len());
            for (i, c) in columns.iter().enumerate() {
                let n = i + 1;
                records.extend(torchfits_format::cards::format_card(&torchfits_format::header::Card::new(
                    format!("TTYPE{n}"),
                    Value::Str(c.name.clone()),
                    Some(format!("label for field {n}")),
                ))?);
                tform_at.push(records.len());
                let form = if compression.is_some() { "1QB".to_string() } else { tform(c, 0) };
                records.push(structural(&format!("TFORM{n}"), Value::Str(form), "data format of field"));
                if let Some(u) = &c.unit {
                    records.extend(torchfits_format::cards::format_card(&torchfits_format::header::Card::new(
                        format!("TUNIT{n}"),
                        Value::Str(u.clone()),
                        Some(format!("physical unit of field {n}")),
                    ))?);
                }
                if let Some(d) = &c.dims {
                    let text: Vec<String> = d.iter().rev().map(|x| x.to_string()).collect();
                    records.push(structural(&format!("TDIM{n}"), Value::Str(format!("({})", text.join(","))), ""));
                }
                if let Some(t) = c.tnull() {
                    records.push(structural(&format!("TNULL{n}"), Value::Int(t), "undefined value"));
                }
                if let Some(z) = c.tzero() {
                    records.push(structural(&format!("TSCAL{n}"), Value::Int(1), ""));
                    records.push(raw_card(&format!("TZERO{n}"), z, "offset for unsigned integers"));
                }
            }
            let mut packed = None;
            if let Some(compression) = compression {
                let packer = Packer::new(compression, &columns, row_bytes, &writer.tmp);
                records.push(structural("ZTABLE", Value::Bool(true), "this is a compressed table"));
                records.push(structural(
                    "ZTILELEN",
                    Value::Int(packer.tile_rows() as i64),
                    "number of rows in each tile",
                ));
                records.push(structural(
                    "ZNAXIS1",
                    Value::Int(row_bytes as i64),
                    "length of uncompressed row in bytes",
                ));
                let znaxis2_at = records.len();
                records.push(structural("ZNAXIS2", Value::Int(0), "number of rows in uncompressed table"));
                records.push(structural("ZPCOUNT", Value::Int(0), "size of heap in uncompressed table"));
                let mut zform_at = Vec::with_capacity(columns.len());
                for (i, (c, algorithm)) in columns.iter().zip(packer.algorithm_names()).enumerate() {
                    zform_at.push(records.len());
                    records.push(structural(
                        &format!("ZFORM{}", i + 1),
                        Value::Str(tform(c, 0)),
                        "format of uncompressed column",
                    ));
                    records.push(structural(
                        &format!("ZCTYP{}", i + 1),
                        Value::Str(algorithm.into()),
                        "compression algorithm for column",
                    ));
                }
                packed = Some((packer, (znaxis2_at, znaxis2_at + 1), zform_at));
            }
            records.extend(FitsWriter::user_records(header)?);
            Ok((records, offsets, row_bytes, naxis2_at, pcount_at, tform_at, packed))
        })();
        let (records, offsets, row_bytes, naxis2_at, pcount_at, tform_at, packed) = match plan {
            Ok(p) => p,
            Err(e) => return Err((writer, e)),
        };
        if writer.hdus == 0
            && let Err(e) = writer.empty_primary()
        {
            return Err((writer, e));
        }
        let hdu = match writer.begin_hdu(records) {
            Ok(h) => h,
            Err(e) => return Err((writer, e)),
        };
        let max_len = vec![0; columns.len()];
        let (packer, zcounts_at, zform_at) = match packed {
            Some((packer, counts, forms)) => (Some(packer), counts, forms),
            None => (None, (0, 0), Vec::new()),
        };
        let heap = Spool::new(&writer.tmp, "heap");
        Ok(TableWrite {
            writer,
            columns,
            offsets,
            row_bytes,
            hdu: Some(hdu),
            rows: 0,
            max_len,
            heap_len: 0,
            heap,
            naxis2_at,
            pcount_at,
            tform_at,
            buf: Vec::new(),
            packer,
            zcounts_at,
            zform_at,
        })
    }

    fn err(&self, e: Error) -> Error {
        e.in_hdu(self.writer.hdus).in_file(&self.writer.target)
    }

    /// Appends the rows of `batch`, whose columns are the table's, in order.
    pub fn write(&mut self, batch: &TableBatch) -> Result<()> {
        self.write_rows(batch).map_err(|e| self.err(e))
    }

    fn write_rows(&mut self, batch: &TableBatch) -> Result<()> {
        if batch.columns.len() != self.columns.len() {
            return Err(Error::parameter(format!(
                "a batch of {} columns for a table of {}",
                batch.columns.len(),
                self.columns.len()
            )));
        }
        let n = batch.num_rows;
        let len = n.checked_mul(self.row_bytes).ok_or_else(|| Error::parameter("the batch is too large"))?;
        self.buf.clear();
        self.buf.resize(len, 0);
        let mut heap: Vec<u8> = Vec::new();
        for k in 0..self.columns.len() {
            let (spec, column, offset) = (&self.columns[k], &batch.columns[k], self.offsets[k]);
            let fits = spec.column_type == column.values.column_type()
                || (spec.column_type == ColumnType::Bits && column.values.column_type() == ColumnType::Bool);
            if spec.name != column.name || !fits {
                return Err(Error::parameter(format!(
                    "batch column {} ({:?}) is not table column {} ({:?})",
                    column.name,
                    column.values.column_type(),
                    spec.name,
                    spec.column_type
                )));
            }
            let bad = |what: String| Error::parameter(format!("column {}: {what}", spec.name));
            if spec.variable {
                let offsets = column.list_offsets.as_ref().ok_or_else(|| bad("not a list column".into()))?;
                if offsets.len() != n + 1 {
                    return Err(bad(format!("{} list offsets for {n} rows", offsets.len())));
                }
                let start = heap.len();
                let mut elements = Vec::new();
                encode(spec, column, 0, usize::MAX, &mut elements)?;
                let size = spec.size();
                for r in 0..n {
                    let (a, b) = (offsets[r] as usize, offsets[r + 1] as usize);
                    let count = b.checked_sub(a).ok_or_else(|| bad("list offsets go backwards".into()))?;
                    let at = self.heap_len + (start + a * size) as u64;
                    if at + (count * size) as u64 > i32::MAX as u64 {
                        return Err(bad("the heap passes 2 GiB, more than P descriptors address".into()));
                    }
                    self.max_len[k] = self.max_len[k].max(count as u64);
                    let cell = r * self.row_bytes + offset;
                    self.buf[cell..cell + 4].copy_from_slice(&(count as u32).to_be_bytes());
                    self.buf[cell + 4..cell + 8].copy_from_slice(&(at as u32).to_be_bytes());
                }
                heap.extend_from_slice(&elements);
                continue;
            }
            let rows = column_rows(column, spec, n);
            if rows != Some(n) {
                return Err(bad(format!("{rows:?} rows in a batch of {n}")));
            }
            let mut cells = Vec::with_capacity(n * spec.width());
            encode(spec, column, n, spec.width(), &mut cells)?;
            let w = spec.width();
            for (r, cell) in cells.chunks_exact(w.max(1)).take(if w == 0 { 0 } else { n }).enumerate() {
                let at = r * self.row_bytes + offset;
                self.buf[at..at + w].copy_from_slice(cell);
            }
        }
        if let Some(packer) = &mut self.packer {
            let layout = Layout { columns: &self.columns, offsets: &self.offsets, row_bytes: self.row_bytes };
            packer.push(&layout, &self.buf, &heap)?;
            self.heap_len += heap.len() as u64;
            self.rows += n as u64;
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let put = self.writer.put(&buf);
        self.buf = buf;
        put?;
        self.heap.append(&heap)?;
        self.heap_len += heap.len() as u64;
        self.rows += n as u64;
        Ok(())
    }

    /// Completes the HDU: the heap after the rows, then NAXIS2, PCOUNT and the array lengths in
    /// the header.
    pub fn finish(mut self) -> Result<()> {
        self.complete().map_err(|e| self.err(e))
    }

    fn complete(&mut self) -> Result<()> {
        if self.packer.is_some() {
            return self.complete_packed();
        }
        let (heap, writer) = (&mut self.heap, &mut *self.writer);
        heap.drain_into(&mut |bytes| writer.put(bytes))?;
        let Some(mut hdu) = self.hdu.take() else {
            return Err(Error::parameter("the table is already complete"));
        };
        hdu.records[self.naxis2_at] = structural("NAXIS2", Value::Int(self.rows as i64), "number of rows in table");
        hdu.records[self.pcount_at] =
            structural("PCOUNT", Value::Int(self.heap_len as i64), "size of special data area");
        for (k, c) in self.columns.iter().enumerate().filter(|(_, c)| c.variable) {
            hdu.records[self.tform_at[k]] =
                structural(&format!("TFORM{}", k + 1), Value::Str(tform(c, self.max_len[k])), "data format of field");
        }
        self.writer.end_hdu(hdu, true)
    }
}

impl TableWrite<'_> {
    /// Completes a compressed table: the last tile, the stored rows and heap, then the stored
    /// and the held table's counts and array lengths in the header.
    fn complete_packed(&mut self) -> Result<()> {
        let Some(mut packer) = self.packer.take() else { return Ok(()) };
        let layout = Layout { columns: &self.columns, offsets: &self.offsets, row_bytes: self.row_bytes };
        packer.flush(&layout)?;
        self.writer.put(&packer.stored_rows)?;
        let writer = &mut *self.writer;
        packer.stored_heap.drain_into(&mut |bytes| writer.put(bytes))?;
        let Some(mut hdu) = self.hdu.take() else {
            return Err(Error::parameter("the table is already complete"));
        };
        let int = |k: &str, v: u64, note: &str| structural(k, Value::Int(v as i64), note);
        hdu.records[self.naxis2_at] = int("NAXIS2", packer.tiles, "number of rows in table");
        hdu.records[self.pcount_at] = int("PCOUNT", packer.stored_heap.len(), "size of special data area");
        let (znaxis2, zpcount) = self.zcounts_at;
        hdu.records[znaxis2] = int("ZNAXIS2", self.rows, "number of rows in uncompressed table");
        hdu.records[zpcount] = int("ZPCOUNT", self.heap_len, "size of heap in uncompressed table");
        for (k, c) in self.columns.iter().enumerate() {
            let longest = packer.longest.get(k).copied().unwrap_or(0);
            hdu.records[self.tform_at[k]] =
                structural(&format!("TFORM{}", k + 1), Value::Str(format!("1QB({longest})")), "data format of field");
            if c.variable {
                hdu.records[self.zform_at[k]] = structural(
                    &format!("ZFORM{}", k + 1),
                    Value::Str(tform(c, self.max_len[k])),
                    "format of uncompressed column",
                );
            }
        }
        self.writer.end_hdu(hdu, true)
    }
}

/// TFORMn of `c` (`max`: the longest variable-length array).
fn tform(c: &ColumnSpec, max: u64) -> String {
    if c.variable { format!("1P{}({max})", c.code()) } else { format!("{}{}", c.repeat, c.code()) }
}

/// Rows of a fixed-width column.
fn column_rows(column: &ColumnData, spec: &ColumnSpec, n: usize) -> Option<usize> {
    match &column.values {
        ColumnValues::Str { offsets, .. } => Some(offsets.len().saturating_sub(1)),
        v if spec.repeat == 0 => v.is_empty().then_some(n),
        v => (v.len() % spec.repeat == 0).then(|| v.len() / spec.repeat),
    }
}

/// Appends `column`'s stored bytes to `out`: `n` cells of `width` bytes for a fixed-width column
/// (`width` usize::MAX: the elements of a variable-length column, one after the other).
fn encode(spec: &ColumnSpec, column: &ColumnData, n: usize, width: usize, out: &mut Vec<u8>) -> Result<()> {
    let nulls = column.nulls.as_deref();
    let is_null = |i: usize| nulls.is_some_and(|m| m.get(i).copied().unwrap_or(false));
    let bad = |what: String| Error::parameter(format!("column {}: {what}", spec.name));
    let tnull = spec.tnull();
    if nulls.is_some_and(|m| m.contains(&true))
        && tnull.is_none()
        && matches!(
            spec.column_type,
            ColumnType::U8
                | ColumnType::I16
                | ColumnType::U16
                | ColumnType::I32
                | ColumnType::U32
                | ColumnType::I64
                | ColumnType::U64
        )
    {
        return Err(bad("undefined values in a column declared without TNULL (ColumnSpec::nullable)".into()));
    }
    macro_rules! ints {
        ($v:expr, $stored:expr, $raw:expr) => {{
            for (i, &x) in $v.iter().enumerate() {
                let s = $stored(x);
                if is_null(i) {
                    out.extend_from_slice(&$raw(tnull.unwrap_or(0)));
                } else {
                    if tnull.is_some_and(|t| t == i64::from(s)) {
                        return Err(bad(format!("the value {x} is the column's TNULL; it would read as undefined")));
                    }
                    out.extend_from_slice(&s.to_be_bytes());
                }
            }
        }};
    }
    match &column.values {
        ColumnValues::Bool(v) if spec.column_type == ColumnType::Bits => {
            let per = spec.repeat.max(1);
            for row in v.chunks(per) {
                let mut bytes = vec![0u8; per.div_ceil(8)];
                for (k, &b) in row.iter().enumerate() {
                    if b {
                        bytes[k / 8] |= 0x80 >> (k % 8);
                    }
                }
                out.extend_from_slice(&bytes);
            }
        }
        ColumnValues::Bool(v) => {
            out.extend(v.iter().enumerate().map(|(i, &b)| {
                if is_null(i) {
                    0
                } else if b {
                    b'T'
                } else {
                    b'F'
                }
            }));
        }
        ColumnValues::U8(v) => ints!(v, |x: u8| x, |t: i64| [t as u8]),
        ColumnValues::I16(v) => ints!(v, |x: i16| x, |t: i64| (t as i16).to_be_bytes()),
        ColumnValues::U16(v) => ints!(v, |x: u16| (x ^ 0x8000) as i16, |t: i64| (t as i16).to_be_bytes()),
        ColumnValues::I32(v) => ints!(v, |x: i32| x, |t: i64| (t as i32).to_be_bytes()),
        ColumnValues::U32(v) => ints!(v, |x: u32| (x ^ 0x8000_0000) as i32, |t: i64| (t as i32).to_be_bytes()),
        ColumnValues::I64(v) => ints!(v, |x: i64| x, |t: i64| t.to_be_bytes()),
        ColumnValues::U64(v) => ints!(v, |x: u64| (x ^ (1 << 63)) as i64, |t: i64| t.to_be_bytes()),
        ColumnValues::F32(v) => {
            out.extend(v.iter().enumerate().flat_map(|(i, &x)| if is_null(i) { f32::NAN } else { x }.to_be_bytes()))
        }
        ColumnValues::F64(v) => {
            out.extend(v.iter().enumerate().flat_map(|(i, &x)| if is_null(i) { f64::NAN } else { x }.to_be_bytes()))
        }
        ColumnValues::ComplexF32(v) => {
            for (i, [re, im]) in v.iter().enumerate() {
                let (re, im) = if is_null(i) { (f32::NAN, f32::NAN) } else { (*re, *im) };
                out.extend_from_slice(&re.to_be_bytes());
                out.extend_from_slice(&im.to_be_bytes());
            }
        }
        ColumnValues::ComplexF64(v) => {
            for (i, [re, im]) in v.iter().enumerate() {
                let (re, im) = if is_null(i) { (f64::NAN, f64::NAN) } else { (*re, *im) };
                out.extend_from_slice(&re.to_be_bytes());
                out.extend_from_slice(&im.to_be_bytes());
            }
        }
        ColumnValues::Str { .. } => {
            let values = &column.values;
            if width == usize::MAX {
                return Err(bad("variable-length strings are not written yet; use a fixed width".into()));
            }
            for r in 0..n {
                let s = if is_null(r) { &[][..] } else { values.str_at(r).unwrap_or(&[]) };
                if s.len() > width {
                    return Err(bad(format!("row {r}: a string of {} bytes in a column of {width}", s.len())));
                }
                if let Some(c) = s.iter().find(|&&b| !(b == 0 || (b' '..=b'~').contains(&b))) {
                    return Err(bad(format!("row {r}: byte {c:#04x} is not ASCII text, which an A column holds")));
                }
                out.extend_from_slice(s);
                out.resize(out.len() + width - s.len(), b' ');
            }
        }
    }
    Ok(())
}
