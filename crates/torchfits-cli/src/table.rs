//! `torchfits read` for tables: batches from the core's `TableReader`, written as Parquet, Arrow
//! IPC or CSV as they come (memory bounded by one batch).

use std::fs::File;
use std::path::Path;

use arrow_ipc::writer::FileWriter;
use parquet::arrow::ArrowWriter;
use torchfits_core::table::arrow::conform_strings;
use torchfits_core::{Error, ErrorKind, FitsFile};

enum Writer {
    Parquet(ArrowWriter<File>),
    Ipc(FileWriter<File>),
    Csv(arrow_csv::Writer<File>),
}

fn io(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Io, format!("{what}: {e}")).in_file(path)
}

/// The output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Parquet,
    Ipc,
    /// Comma-separated values with a header line (scalar columns only: CSV has no arrays).
    Csv,
}

/// Rows read so far, on stderr, for long conversions to a terminal (at least
/// [`Progress::MIN_ROWS`] rows): `writing OUT: 12.0% (1200000 of 10000000 rows)`.
pub struct Progress {
    total: u64,
    done: u64,
    shown: Option<u64>,
    label: String,
}

impl Progress {
    const MIN_ROWS: u64 = 1_000_000;

    pub fn new(total: u64, output: &Path) -> Self {
        use std::io::IsTerminal;
        let on = total >= Self::MIN_ROWS && std::io::stderr().is_terminal();
        Progress { total, done: 0, shown: on.then_some(u64::MAX), label: output.display().to_string() }
    }

    pub fn advance(&mut self, rows: u64) {
        self.done = (self.done + rows).min(self.total);
        if let Some(last) = self.shown {
            let permille = self.done * 1000 / self.total.max(1);
            if last != permille {
                eprint!(
                    "\rwriting {}: {:5.1}% ({} of {} rows)",
                    self.label,
                    permille as f64 / 10.0,
                    self.done,
                    self.total
                );
                self.shown = Some(permille);
            }
        }
    }

    pub fn finish(&mut self) {
        if self.shown.is_some() {
            eprintln!();
        }
    }
}

/// What to read of a table.
pub struct Selection<'a> {
    pub columns: Option<Vec<String>>,
    pub rows: Option<std::ops::Range<u64>>,
    pub filter: Option<&'a str>,
}

/// Reads the `selection` of the table at HDU `index` into `output`; undefined values as Arrow
/// nulls when `nulls`, as astropy's values otherwise.
pub fn write(
    file: &FitsFile,
    index: usize,
    selection: Selection<'_>,
    output: &Path,
    format: Format,
    nulls: bool,
) -> Result<(), Error> {
    let mut reader = file.table(index)?;
    if let Some(columns) = &selection.columns {
        reader = reader.with_columns(columns)?;
    }
    if let Some(rows) = selection.rows {
        reader = reader.with_rows(rows)?;
    }
    if let Some(filter) = selection.filter {
        reader = reader.with_filter(filter)?;
    }
    let total = reader.selected_rows();
    let mut batches = reader.build()?;
    let mut progress = Progress::new(total, output);
    let first = match batches.next() {
        Some(batch) => batch?,
        None => batches.empty_batch()?,
    };
    progress.advance(first.num_rows as u64 + first.filtered_out as u64);
    let arrow =
        |b: torchfits_core::TableBatch| if nulls { b.into_record_batch_with_nulls() } else { b.into_record_batch() };
    let first = arrow(first)?;
    let schema = first.schema();
    let out = File::create(output).map_err(|e| io(output, "cannot create the output", e))?;
    let mut writer = match format {
        Format::Parquet => Writer::Parquet(
            ArrowWriter::try_new(out, schema.clone(), None).map_err(|e| io(output, "cannot write Parquet", e))?,
        ),
        Format::Ipc => {
            Writer::Ipc(FileWriter::try_new(out, &schema).map_err(|e| io(output, "cannot write Arrow IPC", e))?)
        }
        Format::Csv => Writer::Csv(arrow_csv::WriterBuilder::new().with_header(true).build(out)),
    };
    let mut replaced = 0;
    let put = |writer: &mut Writer, batch| -> Result<(), Error> {
        match writer {
            Writer::Parquet(w) => w.write(&batch).map_err(|e| io(output, "cannot write Parquet", e)),
            Writer::Ipc(w) => w.write(&batch).map_err(|e| io(output, "cannot write Arrow IPC", e)),
            Writer::Csv(w) => w.write(&batch).map_err(|e| io(output, "cannot write CSV", e)),
        }
    };
    put(&mut writer, first)?;
    for batch in batches {
        let batch = batch?;
        progress.advance(batch.num_rows as u64 + batch.filtered_out as u64);
        let (batch, n) = conform_strings(arrow(batch)?, &schema)?;
        replaced += n;
        put(&mut writer, batch)?;
    }
    progress.finish();
    match writer {
        Writer::Parquet(w) => w.close().map(|_| ()).map_err(|e| io(output, "cannot finish Parquet", e))?,
        Writer::Ipc(mut w) => w.finish().map_err(|e| io(output, "cannot finish Arrow IPC", e))?,
        Writer::Csv(w) => {
            w.into_inner().sync_all().map_err(|e| io(output, "cannot finish CSV", e))?;
        }
    }
    if replaced > 0 {
        eprintln!(
            "torchfits: {}: {replaced} strings held bytes that are not UTF-8; written with U+FFFD",
            output.display()
        );
    }
    Ok(())
}
