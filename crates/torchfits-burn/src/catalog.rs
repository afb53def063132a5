//! Catalogs (positions, labels, metadata) from a FITS binary table, a Parquet file or an Arrow
//! IPC file: each column exact ([`SideValues`]) and, for numeric ones, as f64.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use torchfits_core::{ColumnValues, Error, ErrorKind, FitsFile, HduSelector, OpenOptions, Result, TableBatch};

use crate::columns::{SideColumns, SideValues};

/// Columns of a catalog, by name (as the file has them): each exact, as [`SideValues`], and the
/// numeric ones also as f64 (positions).
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    path: PathBuf,
    rows: usize,
    columns: HashMap<String, Vec<f64>>,
    exact: SideColumns,
}

impl Catalog {
    /// Reads `columns` of the catalog at `path`: a FITS file (its first binary table, or `hdu`
    /// when given), a Parquet file (`.parquet`, `.pq`) or an Arrow IPC file (`.arrow`,
    /// `.feather`, `.ipc`).
    pub fn read(path: impl AsRef<Path>, columns: &[&str], hdu: Option<&str>) -> Result<Catalog> {
        Self::read_named(path.as_ref(), columns, hdu, false)
    }

    /// [`Catalog::read`] of the catalog a URL names (`s3://`, `gs://`, `az://`, `http(s)://`; the
    /// `remote` feature): Parquet is read by range requests, only the projected column chunks.
    pub fn read_url(url: &str, columns: &[&str], hdu: Option<&str>) -> Result<Catalog> {
        if !torchfits_core::is_url(url) {
            return Err(Error::new(ErrorKind::Parameter, "not a URL of object storage").in_file(Path::new(url)));
        }
        Self::read_named(Path::new(url), columns, hdu, true)
    }

    /// [`Catalog::read`]; with `urls`, `path` may be a URL.
    pub(crate) fn read_named(path: &Path, columns: &[&str], hdu: Option<&str>, urls: bool) -> Result<Catalog> {
        let batches = read_batches(path, columns, hdu, urls)?;
        let mut out = Catalog { path: path.to_path_buf(), ..Catalog::default() };
        for name in columns {
            if out.exact.get(name).is_some() {
                continue;
            }
            let mut exact: Option<SideValues> = None;
            for batch in &batches {
                let column = batch.column(name).ok_or_else(|| {
                    Error::new(ErrorKind::Parameter, format!("the catalog has no column {name:?}")).in_file(path)
                })?;
                let values = SideValues::from_column(column).map_err(|e| e.in_file(path))?;
                match &mut exact {
                    Some(all) => all.append(values).map_err(|e| e.in_file(path))?,
                    None => exact = Some(values),
                }
            }
            let exact = exact.unwrap_or(SideValues::Float(Vec::new()));
            out.rows = exact.len();
            let numbers = match &exact {
                SideValues::Int(v) => Some(v.iter().map(|&x| x as f64).collect()),
                SideValues::Float(v) => Some(v.clone()),
                SideValues::Code { .. } => None,
            };
            if let Some(numbers) = numbers {
                out.columns.insert((*name).to_string(), numbers);
            }
            out.exact.push(name, exact)?;
        }
        Ok(out)
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether the catalog has no rows.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// A numeric column read by [`Catalog::read`], as f64 (integers beyond 2^53 rounded: use
    /// [`Catalog::exact`] for IDs); None for a string column.
    pub fn column(&self, name: &str) -> Option<&[f64]> {
        self.columns.get(name).map(Vec::as_slice)
    }

    /// A column read by [`Catalog::read`], exact.
    pub fn exact(&self, name: &str) -> Option<&SideValues> {
        self.exact.get(name)
    }

    /// The columns `names` (each read by [`Catalog::read`]), exact.
    pub fn side_columns(&self, names: &[String]) -> Result<SideColumns> {
        let mut out = SideColumns::new();
        for name in names {
            let values = self.exact(name).ok_or_else(|| {
                Error::new(ErrorKind::Parameter, format!("the catalog has no column {name:?}")).in_file(&self.path)
            })?;
            out.push(name, values.clone())?;
        }
        Ok(out)
    }
}

/// `columns` of the table at `path` (FITS: `hdu` or the first binary table; Parquet; Arrow IPC).
/// With `urls`, `path` may be a URL of object storage; without, it is a path whatever it reads like.
pub(crate) fn read_batches(path: &Path, columns: &[&str], hdu: Option<&str>, urls: bool) -> Result<Vec<TableBatch>> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "parquet" | "pq" => read_parquet(path, columns, urls),
        "arrow" | "feather" | "ipc" => read_arrow(path, columns, urls),
        _ => {
            let file = OpenOptions::new().urls(urls).open(path)?;
            let selector: HduSelector = match hdu {
                Some(h) => h.into(),
                None => first_table(&file)?.into(),
            };
            let batches = file.table(selector)?.with_columns(columns)?.build()?;
            batches.collect::<Result<Vec<_>>>()
        }
    }
}

/// The values of a numeric column as f64.
pub(crate) fn numbers(values: &ColumnValues) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    append_f64(values, &mut out)?;
    Ok(out)
}

/// The index of the first binary-table HDU of `file`.
fn first_table(file: &FitsFile) -> Result<usize> {
    for i in 0..file.hdu_count()? {
        if file.table(i).is_ok() {
            return Ok(i);
        }
    }
    Err(Error::new(ErrorKind::Parameter, "no binary table in the file").in_file(file.path()))
}

fn append_f64(values: &ColumnValues, out: &mut Vec<f64>) -> Result<()> {
    match values {
        ColumnValues::Bool(v) => out.extend(v.iter().map(|&b| f64::from(u8::from(b)))),
        ColumnValues::U8(v) => out.extend(v.iter().map(|&x| f64::from(x))),
        ColumnValues::I16(v) => out.extend(v.iter().map(|&x| f64::from(x))),
        ColumnValues::U16(v) => out.extend(v.iter().map(|&x| f64::from(x))),
        ColumnValues::I32(v) => out.extend(v.iter().map(|&x| f64::from(x))),
        ColumnValues::U32(v) => out.extend(v.iter().map(|&x| f64::from(x))),
        ColumnValues::I64(v) => out.extend(v.iter().map(|&x| x as f64)),
        ColumnValues::U64(v) => out.extend(v.iter().map(|&x| x as f64)),
        ColumnValues::F32(v) => out.extend(v.iter().map(|&x| f64::from(x))),
        ColumnValues::F64(v) => out.extend_from_slice(v),
        _ => return Err(Error::new(ErrorKind::Unsupported, "not a numeric column")),
    }
    Ok(())
}

fn io(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Io, format!("{what}: {e}")).in_file(path)
}

/// A Parquet or Arrow IPC catalog's bytes: a local file, or (a URL, with the `remote` feature) an
/// object in storage read by range requests through the core's block cache, so that Parquet reads
/// fetch only the column chunks they project.
#[derive(Clone)]
enum TableBytes {
    Local {
        file: std::sync::Arc<std::fs::File>,
        len: u64,
    },
    #[cfg_attr(not(feature = "remote"), allow(dead_code, reason = "made only with the remote feature"))]
    Remote(std::sync::Arc<dyn torchfits_core::ByteSource>),
}

impl TableBytes {
    /// The bytes at `path`; with `urls`, of the object a URL names.
    fn open(path: &Path, urls: bool) -> Result<TableBytes> {
        if let Some(url) = path.to_str().filter(|p| urls && torchfits_core::is_url(p)) {
            #[cfg(feature = "remote")]
            return Ok(TableBytes::Remote(torchfits_core::remote::open_object(url)?));
            #[cfg(not(feature = "remote"))]
            return Err(Error::new(
                ErrorKind::Unsupported,
                "a URL: this build of torchfits-burn reads local files only (enable the `remote` feature)",
            )
            .in_file(Path::new(&torchfits_core::redact(url))));
        }
        let f = std::fs::File::open(path).map_err(|e| io(path, "cannot open", e))?;
        let len = f.metadata().map_err(|e| io(path, "cannot stat", e))?.len();
        Ok(TableBytes::Local { file: std::sync::Arc::new(f), len })
    }

    /// `buf.len()` bytes at `at`.
    fn read_at(&self, buf: &mut [u8], at: u64) -> std::io::Result<()> {
        match self {
            TableBytes::Local { file, .. } => std::os::unix::fs::FileExt::read_exact_at(&**file, buf, at),
            TableBytes::Remote(s) => s.read_exact_at(buf, at),
        }
    }

    fn size(&self) -> u64 {
        match self {
            TableBytes::Local { len, .. } => *len,
            TableBytes::Remote(s) => s.len(),
        }
    }

    /// A buffered reader from byte `at`.
    fn reader_at(&self, at: u64) -> std::io::BufReader<TableCursor> {
        std::io::BufReader::with_capacity(1 << 16, TableCursor { bytes: self.clone(), at })
    }

    /// A reader at the start, for the Arrow IPC reader (which reads and seeks).
    fn cursor(self) -> std::io::BufReader<TableCursor> {
        self.reader_at(0)
    }
}

impl parquet::file::reader::Length for TableBytes {
    fn len(&self) -> u64 {
        self.size()
    }
}

impl parquet::file::reader::ChunkReader for TableBytes {
    type T = std::io::BufReader<TableCursor>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(self.reader_at(start))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<bytes::Bytes> {
        let mut buf = vec![0u8; length];
        self.read_at(&mut buf, start).map_err(|e| parquet::errors::ParquetError::External(Box::new(e)))?;
        Ok(buf.into())
    }
}

/// Positional reads of [`TableBytes`] as a `Read + Seek` stream.
struct TableCursor {
    bytes: TableBytes,
    at: u64,
}

impl std::io::Read for TableCursor {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (self.bytes.size().saturating_sub(self.at)).min(buf.len() as u64) as usize;
        let Some(head) = buf.get_mut(..n) else { return Ok(0) };
        self.bytes.read_at(head, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

impl std::io::Seek for TableCursor {
    fn seek(&mut self, to: std::io::SeekFrom) -> std::io::Result<u64> {
        let at = match to {
            std::io::SeekFrom::Start(at) => Some(at),
            std::io::SeekFrom::End(d) => self.bytes.size().checked_add_signed(d),
            std::io::SeekFrom::Current(d) => self.at.checked_add_signed(d),
        };
        self.at = at.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a seek before the start"))?;
        Ok(self.at)
    }
}

/// The file's spelling of each of `names` among `known`: the same name, else the one that
/// differs only in case (FITS column names are case-insensitive, and a catalog's `ra` column is
/// the `RA` a dataset asks for by default); a name the file lacks is kept, to be reported missing.
fn as_spelled<'a>(names: &[&str], known: impl Iterator<Item = &'a str> + Clone) -> Vec<String> {
    names
        .iter()
        .map(|&n| {
            let mut known = known.clone();
            let exact = known.clone().find(|k| *k == n);
            exact.or_else(|| known.find(|k| k.eq_ignore_ascii_case(n))).unwrap_or(n).to_string()
        })
        .collect()
}

/// The indices of the columns `names` in `batch`, matched as [`as_spelled`] does.
fn column_indices<'a>(batch: &arrow_array::RecordBatch, names: impl Iterator<Item = &'a str>) -> Vec<usize> {
    let schema = batch.schema();
    let known: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let names: Vec<&str> = names.collect();
    as_spelled(&names, known.iter().copied()).iter().filter_map(|n| schema.index_of(n).ok()).collect()
}

fn read_parquet(path: &Path, columns: &[&str], urls: bool) -> Result<Vec<TableBatch>> {
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let f = TableBytes::open(path, urls)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| io(path, "not a Parquet file", e))?;
    let columns = as_spelled(columns, builder.parquet_schema().columns().iter().map(|c| c.name()));
    let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().map(String::as_str));
    let reader = builder.with_projection(mask).build().map_err(|e| io(path, "cannot read", e))?;
    reader
        .map(|b| {
            let b = b.map_err(|e| io(path, "cannot read", e))?;
            TableBatch::from_record_batch(&b).map_err(|e| e.in_file(path))
        })
        .collect()
}

fn read_arrow(path: &Path, columns: &[&str], urls: bool) -> Result<Vec<TableBatch>> {
    let f = TableBytes::open(path, urls)?.cursor();
    let reader = arrow_ipc::reader::FileReader::try_new(f, None).map_err(|e| io(path, "not an Arrow IPC file", e))?;
    reader
        .map(|b| {
            let b = b.map_err(|e| io(path, "cannot read", e))?;
            let keep = column_indices(&b, columns.iter().copied());
            let b = b.project(&keep).map_err(|e| io(path, "cannot read", e))?;
            TableBatch::from_record_batch(&b).map_err(|e| e.in_file(path))
        })
        .collect()
}

/// Batches of about `rows` rows of `columns` of the table at `path` (as [`read_batches`]), read
/// one after the other: a catalog that does not fit in memory streams through.
pub(crate) fn stream_batches(
    path: &Path,
    columns: &[&str],
    hdu: Option<&str>,
    rows: usize,
    urls: bool,
) -> Result<Box<dyn Iterator<Item = Result<TableBatch>> + Send>> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let owned = path.to_path_buf();
    match ext.as_str() {
        "parquet" | "pq" => {
            use parquet::arrow::ProjectionMask;
            use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
            let f = TableBytes::open(path, urls)?;
            let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| io(path, "not a Parquet file", e))?;
            let columns = as_spelled(columns, builder.parquet_schema().columns().iter().map(|c| c.name()));
            let mask = ProjectionMask::columns(builder.parquet_schema(), columns.iter().map(String::as_str));
            let reader = builder
                .with_projection(mask)
                .with_batch_size(rows.max(1))
                .build()
                .map_err(|e| io(path, "cannot read", e))?;
            Ok(Box::new(reader.map(move |b| {
                let b = b.map_err(|e| io(&owned, "cannot read", e))?;
                TableBatch::from_record_batch(&b).map_err(|e| e.in_file(&owned))
            })))
        }
        "arrow" | "feather" | "ipc" => {
            let f = TableBytes::open(path, urls)?.cursor();
            let reader =
                arrow_ipc::reader::FileReader::try_new(f, None).map_err(|e| io(path, "not an Arrow IPC file", e))?;
            let names: Vec<String> = columns.iter().map(|c| c.to_string()).collect();
            Ok(Box::new(reader.map(move |b| {
                let b = b.map_err(|e| io(&owned, "cannot read", e))?;
                let keep = column_indices(&b, names.iter().map(String::as_str));
                let b = b.project(&keep).map_err(|e| io(&owned, "cannot read", e))?;
                TableBatch::from_record_batch(&b).map_err(|e| e.in_file(&owned))
            })))
        }
        _ => {
            let file = OpenOptions::new().urls(urls).open(path)?;
            let selector: HduSelector = match hdu {
                Some(h) => h.into(),
                None => first_table(&file)?.into(),
            };
            let batches = file.table(selector)?.with_columns(columns)?.with_batch_rows(rows.max(1)).build()?;
            Ok(Box::new(batches))
        }
    }
}

/// The number of rows of the table at `path` (as [`read_batches`] finds it), from its
/// metadata (no row is read); None for an Arrow IPC file, whose footer does not say.
pub(crate) fn count_rows(path: &Path, hdu: Option<&str>, urls: bool) -> Result<Option<u64>> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "parquet" | "pq" => {
            use parquet::file::reader::{FileReader, SerializedFileReader};
            let f = TableBytes::open(path, urls)?;
            let reader = SerializedFileReader::new(f).map_err(|e| io(path, "not a Parquet file", e))?;
            Ok(Some(reader.metadata().file_metadata().num_rows().max(0) as u64))
        }
        "arrow" | "feather" | "ipc" => Ok(None),
        _ => {
            let file = OpenOptions::new().urls(urls).open(path)?;
            let selector: HduSelector = match hdu {
                Some(h) => h.into(),
                None => first_table(&file)?.into(),
            };
            Ok(Some(file.table(selector)?.selected_rows()))
        }
    }
}
