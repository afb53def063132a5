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

/// A progress bar of rows for long conversions ([`Progress::MIN_ROWS`] rows or more), drawn on
/// stderr when it is a terminal and hidden otherwise (indicatif's own check).
pub struct Progress {
    bar: indicatif::ProgressBar,
}

impl Progress {
    const MIN_ROWS: u64 = 1_000_000;

    pub fn new(total: u64, output: &Path) -> Self {
        let bar =
            if total >= Self::MIN_ROWS { indicatif::ProgressBar::new(total) } else { indicatif::ProgressBar::hidden() };
        // a fixed template: it parses, so the fallback is never taken
        let style = indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {percent:>3}% {human_pos}/{human_len} rows, {per_sec}, {eta} left",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(format!("writing {}", output.display()));
        Progress { bar }
    }

    pub fn advance(&mut self, rows: u64) {
        self.bar.inc(rows);
    }

    pub fn finish(&mut self) {
        self.bar.finish_and_clear();
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
