//! `torchfits write` and `torchfits verify`: .npy images and Parquet / Arrow IPC tables into FITS
//! through the core's `FitsWriter`, and the checksums of a file.

use crate::output::outln;
use std::fs::File;
use std::path::{Path, PathBuf};

use arrow_ipc::reader::FileReader;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use torchfits_core::table::TableBatch;
use torchfits_core::write::{
    ChecksumStatus, ColumnSpec, Compression, TableAlgorithm, TableCompression, WriteOptions, verify,
};
use torchfits_core::{Error, ErrorKind, Header, Limits, Pixels};

use crate::npy;

use crate::table::Progress;

/// What `torchfits write` was asked to do.
pub struct WriteArgs {
    pub input: PathBuf,
    pub output: PathBuf,
    pub compress: Option<String>,
    pub tile: Option<Vec<usize>>,
    pub quantize_level: Option<f32>,
    pub extname: Option<String>,
    pub overwrite: bool,
    pub append: bool,
    pub checksum: bool,
}

fn io(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Io, format!("{what}: {e}")).in_file(path)
}

/// Rows per batch read from Parquet / Arrow files.
const BATCH_ROWS: usize = 65_536;

pub fn write(args: WriteArgs) -> Result<(), Error> {
    let ext = args.input.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).unwrap_or_default();
    let mut header = Header::new();
    if let Some(name) = &args.extname {
        header.set("EXTNAME", name.as_str(), None)?;
    }
    let options = WriteOptions::new().overwrite(args.overwrite).append(args.append).checksum(args.checksum);
    match ext.as_str() {
        "npy" => image(&args, options, &header),
        "parquet" | "arrow" | "ipc" | "feather" => {
            if args.quantize_level.is_some() {
                return Err(Error::new(ErrorKind::Parameter, "--quantize-level is for images"));
            }
            table(&args, options, &header, ext == "parquet")
        }
        _ => Err(Error::new(
            ErrorKind::Parameter,
            format!("{}: the input must be .npy (an image), .parquet or .arrow (a table)", args.input.display()),
        )),
    }
}

fn image(args: &WriteArgs, options: WriteOptions, header: &Header) -> Result<(), Error> {
    let data = npy::read(&args.input, &Limits::default())?;
    let compression = match &args.compress {
        None => None,
        Some(name) => {
            let mut c = Compression::parse(name)?;
            if let Some(t) = &args.tile {
                c = c.tile(t);
            }
            if let Some(q) = args.quantize_level {
                c = c.quantize_level(q);
            }
            Some(c)
        }
    };
    if compression.is_none() && (args.tile.is_some() || args.quantize_level.is_some()) {
        return Err(Error::new(ErrorKind::Parameter, "--tile and --quantize-level need --compress"));
    }
    let mut writer = options.create(&args.output)?;
    macro_rules! put {
        ($v:expr) => {{
            let mut img = writer.image($v, &data.shape).header(header);
            if let Some(c) = &compression {
                img = img.compress(c.clone());
            }
            img.write()?
        }};
    }
    match &data.pixels {
        Pixels::U8(v) => put!(v),
        Pixels::I8(v) => put!(v),
        Pixels::I16(v) => put!(v),
        Pixels::U16(v) => put!(v),
        Pixels::I32(v) => put!(v),
        Pixels::U32(v) => put!(v),
        Pixels::I64(v) => put!(v),
        Pixels::U64(v) => put!(v),
        Pixels::F32(v) => put!(v),
        Pixels::F64(v) => put!(v),
    }
    writer.finish()?;
    Ok(())
}

/// Batches converted from a file, one after the other.
type Batches = Box<dyn Iterator<Item = Result<TableBatch, Error>>>;

/// The record batches of a Parquet or Arrow IPC file, converted (after an empty one that carries
/// the schema), and the row count when the file says.
fn batches(path: &Path, parquet: bool) -> Result<(u64, Batches), Error> {
    let f = File::open(path).map_err(|e| io(path, "cannot open", e))?;
    let p = path.to_path_buf();
    let convert = move |b: Result<arrow_array::RecordBatch, arrow_schema::ArrowError>| {
        let b = b.map_err(|e| io(&p, "cannot read", e))?;
        TableBatch::from_record_batch(&b).map_err(|e| e.in_file(&p))
    };
    if parquet {
        let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| io(path, "not a Parquet file", e))?;
        let rows = builder.metadata().file_metadata().num_rows().max(0) as u64;
        let schema = builder.schema().clone();
        let reader = builder.with_batch_size(BATCH_ROWS).build().map_err(|e| io(path, "cannot read", e))?;
        let empty = arrow_array::RecordBatch::new_empty(schema);
        let empty = std::iter::once(Ok(empty));
        Ok((rows, Box::new(empty.chain(reader).map(convert))))
    } else {
        let reader = FileReader::try_new(f, None).map_err(|e| io(path, "not an Arrow IPC file", e))?;
        let empty = std::iter::once(Ok(arrow_array::RecordBatch::new_empty(reader.schema())));
        Ok((0, Box::new(empty.chain(reader).map(convert))))
    }
}

fn table(args: &WriteArgs, options: WriteOptions, header: &Header, parquet: bool) -> Result<(), Error> {
    // first pass: the columns (string widths and undefined values over the whole file)
    let (rows, all) = batches(&args.input, parquet)?;
    let mut specs: Option<Vec<ColumnSpec>> = None;
    for batch in all {
        let batch = batch?;
        let these: Vec<ColumnSpec> = batch.columns.iter().map(ColumnSpec::of).collect();
        match &mut specs {
            None => specs = Some(these),
            Some(s) => s.iter_mut().zip(&these).for_each(|(a, b)| a.merge(b)),
        }
    }
    let specs = specs.unwrap_or_default();
    // second pass: the rows
    let compression = table_compression(args)?;
    let mut writer = options.create(&args.output)?;
    let mut table = match &compression {
        Some(c) => writer.compressed_table(specs, Some(header), c)?,
        None => writer.table(specs, Some(header))?,
    };
    let mut progress = Progress::new(rows, &args.output);
    let (_, all) = batches(&args.input, parquet)?;
    for batch in all {
        let batch = batch?;
        progress.advance(batch.num_rows as u64);
        table.write(&batch)?;
    }
    progress.finish();
    table.finish()?;
    writer.finish()?;
    Ok(())
}

/// The table compression `--compress` and `--tile` ask for, if any.
fn table_compression(args: &WriteArgs) -> Result<Option<TableCompression>, Error> {
    let algorithm = match args.compress.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None if args.tile.is_some() => return Err(Error::new(ErrorKind::Parameter, "--tile needs --compress")),
        None => return Ok(None),
        Some("rice") => TableAlgorithm::Rice1,
        Some("gzip") => TableAlgorithm::Gzip1,
        Some("gzip2") => TableAlgorithm::Gzip2,
        Some(other) => {
            return Err(Error::new(
                ErrorKind::Parameter,
                format!("--compress {other}: a table is compressed with rice, gzip or gzip2"),
            ));
        }
    };
    let mut c = TableCompression::new().algorithm(algorithm);
    match args.tile.as_deref() {
        None => {}
        Some(&[rows]) if rows > 0 => c = c.tile_rows(rows),
        Some(_) => return Err(Error::new(ErrorKind::Parameter, "--tile for a table is one number: rows per tile")),
    }
    Ok(Some(c))
}

/// Prints each HDU's checksums; an error when any is wrong.
pub fn check(path: &Path) -> Result<(), Error> {
    let sums = verify(path)?;
    let word = |s: ChecksumStatus| match s {
        ChecksumStatus::Valid => "valid",
        ChecksumStatus::Missing => "missing",
        ChecksumStatus::Invalid => "WRONG",
    };
    for s in &sums {
        outln!("HDU {}: CHECKSUM {}, DATASUM {}", s.index, word(s.hdu), word(s.data))?;
    }
    let wrong: Vec<String> = sums
        .iter()
        .filter(|s| s.hdu == ChecksumStatus::Invalid || s.data == ChecksumStatus::Invalid)
        .map(|s| s.index.to_string())
        .collect();
    if !wrong.is_empty() {
        return Err(Error::new(
            ErrorKind::Decoding,
            format!("the checksums of HDU {} do not match: the file changed since they were written", wrong.join(", ")),
        )
        .in_file(path));
    }
    if sums.iter().all(|s| s.hdu == ChecksumStatus::Missing && s.data == ChecksumStatus::Missing) {
        eprintln!("torchfits: {}: no HDU has checksums (nothing to verify)", path.display());
    }
    Ok(())
}
