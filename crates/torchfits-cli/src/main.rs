//! The `torchfits` command: a thin shell over `torchfits-core`.
//!
//! Exit status: 0 on success, 1 for a bad file or input (one line on stderr naming the file, the
//! HDU and the cause), 2 for bad usage.
#![deny(unsafe_code)]
// no panic a file can trigger: each exception is a reviewed `allow` with its reason
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing, clippy::string_slice)
)]

mod bench;
mod npy;
mod output;
mod preview;
#[cfg(feature = "survey")]
mod stamps;
mod table;
mod write;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::output::outln;
use crate::preview::Stretch;
use clap::{Parser, Subcommand};
use serde_json::{Value as Json, json};
use torchfits_core::{
    Error, ErrorKind, FitsFile, HduInfo, HduKind, HduSelector, Header, ImageData, OpenOptions, Pixels, Section, Value,
    Wcs, WcsOptions,
};

#[derive(Parser)]
#[command(name = "torchfits", version, about = "Inspect and convert FITS files", long_about = None)]
struct Cli {
    /// Log what the library does on stderr: -v for its steps (files opened, inflated, fallbacks
    /// such as points sent to wcslib), -vv for every read. `RUST_LOG` (e.g.
    /// `RUST_LOG=torchfits=debug`) takes precedence.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

/// Sends the libraries' `tracing` events to stderr: by `RUST_LOG` when it is set, else by `-v`
/// (debug) and `-vv` (trace) for torchfits' own crates; quiet (warnings only) by default.
fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "warn,torchfits=debug",
        _ => "warn,torchfits=trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_timer(tracing_subscriber::fmt::time::Uptime::default())
        // a span's end, with its time: how long each open, read and decode took
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .try_init();
}

#[derive(Subcommand)]
enum Command {
    /// List the HDUs of a file (like astropy's fitsinfo).
    Info {
        /// The FITS file (opened literally: no cfitsio filename syntax).
        file: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Show a tile-compressed table as the table it holds (by default it is shown as it is
        /// stored, one row of compressed cells per tile, as astropy shows it).
        #[arg(long)]
        decompress_tables: bool,
    },
    /// Print the header of one HDU.
    Header {
        /// The FITS file.
        file: PathBuf,
        /// HDU: 0-based index, EXTNAME, or EXTNAME,EXTVER.
        #[arg(long, default_value = "0", value_parser = parse_hdu)]
        hdu: HduSelector,
        /// Print JSON (typed values) instead of card text.
        #[arg(long)]
        json: bool,
        /// Show a tile-compressed table as the table it holds (by default it is shown as it is
        /// stored, one row of compressed cells per tile, as astropy shows it).
        #[arg(long)]
        decompress_tables: bool,
    },
    /// Read an image (or a section of one) into a NumPy .npy file, or a table into Parquet or
    /// Arrow IPC.
    Read {
        /// The FITS file.
        file: PathBuf,
        /// HDU: 0-based index, EXTNAME, or EXTNAME,EXTVER.
        #[arg(long, default_value = "0", value_parser = parse_hdu)]
        hdu: HduSelector,
        /// Image: NumPy-style section, C order, 0-based half-open: `y0:y1,x0:x1`.
        #[arg(long)]
        section: Option<String>,
        /// Table: the columns to read, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        columns: Option<Vec<String>>,
        /// Table: the rows to read, `a:b` (0-based, half-open; a bound may be omitted).
        #[arg(long)]
        rows: Option<String>,
        /// Table: keep only the rows that pass this filter, e.g. `mag < 22 && flag == 0`
        /// (comparisons, AND/OR/NOT, IN, BETWEEN, IS [NOT] NULL).
        #[arg(long = "where")]
        filter: Option<String>,
        /// Table: write undefined values (TNULL, logicals stored as 0) as Parquet/Arrow nulls
        /// rather than astropy's values (the stored value; false).
        #[arg(long)]
        nulls: bool,
        /// Show a tile-compressed table as the table it holds (by default it is shown as it is
        /// stored, one row of compressed cells per tile, as astropy shows it).
        #[arg(long)]
        decompress_tables: bool,
        /// Output file: .npy for an image, .parquet, .arrow or .csv for a table.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
    /// Write a .npy array as an image HDU, or a Parquet / Arrow IPC table as a binary-table HDU.
    Write {
        /// Input: .npy (an image), .parquet or .arrow (a table).
        input: PathBuf,
        /// Output FITS file (written to a temporary file, moved into place when complete).
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
        /// Tile-compress the image (rice, gzip, gzip2, hcompress or plio) or the table (rice,
        /// gzip or gzip2: the columns that algorithm codes; the others as fpack codes them).
        #[arg(long)]
        compress: Option<String>,
        /// Tile shape, C order, comma-separated (default: one image row per tile); for a table,
        /// rows per tile (default: about 10 MB of rows).
        #[arg(long, value_delimiter = ',')]
        tile: Option<Vec<usize>>,
        /// Quantisation level of compressed floats (default 4; 0: lossless, gzip only).
        #[arg(long)]
        quantize_level: Option<f32>,
        /// EXTNAME of the new HDU.
        #[arg(long)]
        extname: Option<String>,
        /// Replace OUT if it exists.
        #[arg(long)]
        overwrite: bool,
        /// Add the HDU at the end of OUT (which must exist).
        #[arg(long)]
        append: bool,
        /// Write CHECKSUM and DATASUM.
        #[arg(long)]
        checksum: bool,
    },
    /// World coordinates: pixel to world (`pix2world`) or back (`world2pix`) for the points of a
    /// float64 (N, NAXIS) .npy, as astropy's all_pix2world / all_world2pix (0-based pixels).
    Wcs {
        /// `pix2world` or `world2pix`.
        #[arg(value_parser = ["pix2world", "world2pix"])]
        direction: String,
        /// The FITS file whose HDU holds the WCS (or give --header-file).
        file: Option<PathBuf>,
        /// HDU: 0-based index, EXTNAME, or EXTNAME,EXTVER.
        #[arg(long, default_value = "0", value_parser = parse_hdu)]
        hdu: HduSelector,
        /// A raw header (80-byte cards, no data) instead of a FITS file.
        #[arg(long)]
        header_file: Option<PathBuf>,
        /// The WCS alternate: A to Z (default: the primary WCS).
        #[arg(long)]
        alt: Option<char>,
        /// Input points: float64 .npy of shape (N, NAXIS), x first.
        #[arg(long)]
        pixels: Option<PathBuf>,
        /// Input points for world2pix (same as --pixels).
        #[arg(long)]
        world: Option<PathBuf>,
        /// Where to compute pix2world: cpu, wgpu (a build with the `gpu` feature), or cuda (the
        /// `cuda` feature); WCS the GPU kernel does not compute, and world2pix, run on the CPU.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// Output .npy (float64, same shape; NaN for invalid points).
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
    /// Decode a survey's stamps ahead of training into a decoded-stamp cache (a build with the
    /// `survey` feature): plans the catalog on the images, reads every stamp once and writes it
    /// where a `StampStream` with `cache(DIR, ..)` and the same options reads it.
    Stamps(StampsArgs),
    /// Check the CHECKSUM and DATASUM of every HDU (exit status 1 if one is wrong).
    Verify {
        /// The FITS file.
        file: PathBuf,
    },
    /// Time the standard benchmark cases (../shared/peers/README.md) on the files in DIR.
    Bench {
        /// Folder with the standard files (made by `peer_bench.py make`).
        #[arg(long)]
        dir: PathBuf,
        /// Timed runs per case (after one warm-up); the median is reported.
        #[arg(long, default_value_t = 7)]
        runs: usize,
        /// Write `{"cases": {id: {"torchfits": median_ms}}}` here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Only the cases whose id contains one of these (comma-separated), e.g. `table,cutout`.
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Instead of timing: the peak resident memory one call of case ID adds (its `--way`),
        /// printed in MiB, as `peer_bench.py memory` measures the peers (run one process per case
        /// and way; Linux only).
        #[arg(long, value_name = "ID")]
        memory: Option<String>,
        /// With `--memory`: which of the case's ways (0, 1, ...); a way that does not exist exits
        /// with status 3.
        #[arg(long, default_value_t = 0)]
        way: usize,
    },
    /// Render a quick-look PNG of a 2-D image (the first plane of a cube).
    Preview {
        /// The FITS file.
        file: PathBuf,
        /// HDU: 0-based index, EXTNAME, or EXTNAME,EXTVER.
        #[arg(long, default_value = "0", value_parser = parse_hdu)]
        hdu: HduSelector,
        /// NumPy-style section of the image to render.
        #[arg(long)]
        section: Option<String>,
        /// zscale (default), asinh or linear.
        #[arg(long, default_value = "zscale")]
        stretch: Stretch,
        /// Output file (.png).
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
}

fn parse_hdu(s: &str) -> Result<HduSelector, Error> {
    s.parse()
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let result = match cli.command {
        Command::Info { file, json, decompress_tables } => info(&file, json, decompress_tables),
        Command::Header { file, hdu, json, decompress_tables } => header(&file, hdu, json, decompress_tables),
        Command::Read { file, hdu, section, columns, rows, filter, nulls, decompress_tables, output } => {
            let table = TableOptions { columns, rows: rows.as_deref(), filter: filter.as_deref(), nulls };
            read(&file, hdu, section.as_deref(), table, decompress_tables, &output)
        }
        Command::Write { input, output, compress, tile, quantize_level, extname, overwrite, append, checksum } => {
            write::write(write::WriteArgs {
                input,
                output,
                compress,
                tile,
                quantize_level,
                extname,
                overwrite,
                append,
                checksum,
            })
        }
        Command::Verify { file } => write::check(&file),
        Command::Stamps(args) => stamps_command(args),
        Command::Wcs { direction, file, hdu, header_file, alt, pixels, world, device, output } => {
            let input = pixels.or(world);
            wcs_command(
                &direction,
                file.as_deref(),
                hdu,
                header_file.as_deref(),
                alt,
                input.as_deref(),
                &device,
                &output,
            )
        }
        Command::Bench { dir, memory: Some(case), way, .. } => match bench::memory(&dir, &case, way) {
            Ok(false) => return ExitCode::from(3),
            other => other.map(|_| ()),
        },
        Command::Bench { dir, runs, json, only, .. } => bench::run(&dir, runs, json.as_deref(), &only),
        Command::Preview { file, hdu, section, stretch, output } => {
            preview(&file, hdu, section.as_deref(), stretch, &output)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if output::is_closed_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("torchfits: {e}");
            ExitCode::from(1)
        }
    }
}

/// A raw header file: 80-byte cards (padded to a whole card, as astropy's Header.fromstring does).
fn read_header_file(path: &Path) -> Result<Header, Error> {
    let mut raw =
        std::fs::read(path).map_err(|e| Error::new(ErrorKind::Io, format!("cannot read: {e}")).in_file(path))?;
    raw.resize(raw.len().div_ceil(80) * 80, b' ');
    Header::parse(&raw).map_err(|e| e.in_file(path))
}

#[allow(clippy::too_many_arguments)]
fn wcs_command(
    direction: &str,
    file: Option<&Path>,
    hdu: HduSelector,
    header_file: Option<&Path>,
    alt: Option<char>,
    input: Option<&Path>,
    device: &str,
    output: &Path,
) -> Result<(), Error> {
    let gpu = gpu_device(device)?;
    let input = input.ok_or_else(|| Error::new(ErrorKind::Parameter, "give the points with --pixels (or --world)"))?;
    let options = WcsOptions::new().alt(alt.unwrap_or(' '));
    let wcs = match (file, header_file) {
        (_, Some(h)) => Wcs::with_options(&read_header_file(h)?, options).map_err(|e| e.in_file(h))?,
        (Some(f), None) => open_named(f)?.wcs_with(hdu, options)?,
        (None, None) => return Err(Error::new(ErrorKind::Parameter, "give a FITS file or --header-file")),
    };
    let data = npy::read(input, &torchfits_core::Limits::default())?;
    let points = match (&data.pixels, data.shape.as_slice()) {
        (Pixels::F64(v), [_, n]) if *n == wcs.naxis() => v,
        (Pixels::F64(_), shape) => {
            return Err(Error::new(
                ErrorKind::Parameter,
                format!("points of shape {shape:?}: the WCS has {} axes, so (N, {})", wcs.naxis(), wcs.naxis()),
            )
            .in_file(input));
        }
        (other, _) => {
            return Err(Error::new(ErrorKind::Parameter, format!("points must be float64, not {:?}", other.dtype()))
                .in_file(input));
        }
    };
    let mut out = vec![0.0; points.len()];
    if direction == "pix2world" {
        pixel_to_world(gpu, wcs, points, &mut out)?;
    } else {
        wcs.world_to_pixel(points, &mut out)?;
    }
    npy::write(output, &ImageData { shape: data.shape.clone(), pixels: Pixels::F64(out) })
}

/// The arguments of `torchfits stamps`.
#[derive(clap::Args)]
struct StampsArgs {
    /// The catalog: FITS binary table, Parquet or Arrow IPC, with RA and DEC columns.
    catalog: PathBuf,
    /// The catalog's HDU in a FITS file (default: the first table).
    #[arg(long)]
    catalog_hdu: Option<String>,
    /// The images of a survey of one band.
    #[arg(long, num_args = 1..)]
    images: Vec<String>,
    /// A band and its images, NAME=FILE,FILE,... (repeat for each band, in order).
    #[arg(long)]
    band: Vec<String>,
    /// The image HDU: 0-based index, EXTNAME, or EXTNAME,EXTVER.
    #[arg(long, default_value = "0", value_parser = parse_hdu)]
    hdu: HduSelector,
    /// Stamp side, pixels.
    #[arg(long, default_value_t = 32)]
    size: usize,
    /// Cut whole pixels rather than resample each band to the position (`subpixel(false)`).
    #[arg(long)]
    whole_pixels: bool,
    /// The cache folder (the plan is kept under DIR/plans).
    #[arg(long)]
    cache: PathBuf,
    /// The most bytes the cache may hold (whole images, in the plan's order; default: no bound).
    #[arg(long)]
    max_bytes: Option<u64>,
    /// Reader threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// The image names are URLs of object storage (s3://, gs://, az://, http(s)://).
    #[arg(long)]
    urls: bool,
}

/// The bands of `--images` (one, unnamed) and `--band NAME=FILE,...`.
fn stamp_bands(images: Vec<String>, band: &[String]) -> Result<Vec<(String, Vec<String>)>, Error> {
    let mut bands = Vec::new();
    if !images.is_empty() {
        bands.push((String::new(), images));
    }
    for b in band {
        let (name, files) = b
            .split_once('=')
            .ok_or_else(|| Error::new(ErrorKind::Parameter, format!("--band {b:?}: NAME=FILE,FILE,... expected")))?;
        bands.push((name.to_string(), files.split(',').filter(|f| !f.is_empty()).map(str::to_string).collect()));
    }
    if bands.is_empty() {
        return Err(Error::new(ErrorKind::Parameter, "no images: give --images or --band"));
    }
    Ok(bands)
}

#[cfg(feature = "survey")]
fn stamps_command(a: StampsArgs) -> Result<(), Error> {
    stamps::run(stamps::StampsJob {
        bands: stamp_bands(a.images, &a.band)?,
        catalog: a.catalog,
        catalog_hdu: a.catalog_hdu,
        hdu: a.hdu,
        size: a.size,
        whole_pixels: a.whole_pixels,
        cache: a.cache,
        max_bytes: a.max_bytes.unwrap_or(u64::MAX),
        workers: a.workers,
        urls: a.urls,
    })
}

/// Without the `survey` feature there are no datasets to read stamps with.
#[cfg(not(feature = "survey"))]
fn stamps_command(a: StampsArgs) -> Result<(), Error> {
    stamp_bands(a.images, &a.band)?;
    Err(Error::new(
        ErrorKind::Unsupported,
        "torchfits stamps: this torchfits was built without the `survey` feature (cargo install torchfits-cli --features survey)",
    ))
}

/// The device `--device` names: `None` for the CPU.
#[cfg(feature = "gpu")]
fn gpu_device(device: &str) -> Result<Option<torchfits_burn::burn::tensor::Device>, Error> {
    match device.parse()? {
        torchfits_burn::wcs::DeviceKind::Cpu => Ok(None),
        kind => torchfits_burn::wcs::device(kind).map(Some),
    }
}

/// Without the `gpu` feature only the CPU is there.
#[cfg(not(feature = "gpu"))]
fn gpu_device(device: &str) -> Result<Option<std::convert::Infallible>, Error> {
    match device {
        "cpu" => Ok(None),
        "wgpu" | "cuda" => Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "--device {device}: this torchfits was built without the `gpu` feature (cargo install torchfits-cli --features gpu)"
            ),
        )),
        other => Err(Error::new(ErrorKind::Parameter, format!("unknown device {other:?} (cpu, wgpu or cuda)"))),
    }
}

/// pix2world of `points`: with the GPU kernel on `device` where it applies (2 axes), with
/// wcslib on the host otherwise.
#[cfg(feature = "gpu")]
fn pixel_to_world(
    device: Option<torchfits_burn::burn::tensor::Device>,
    wcs: Wcs,
    points: &[f64],
    out: &mut [f64],
) -> Result<(), Error> {
    match device {
        Some(device) if wcs.naxis() == 2 => {
            torchfits_burn::wcs::DeviceWcs::new(wcs).pixel_to_world_on(&device, points, out).map(drop)
        }
        _ => wcs.pixel_to_world(points, out).map(drop),
    }
}

/// pix2world of `points` with wcslib (a build without the `gpu` feature has no other device).
#[cfg(not(feature = "gpu"))]
fn pixel_to_world(
    device: Option<std::convert::Infallible>,
    wcs: Wcs,
    points: &[f64],
    out: &mut [f64],
) -> Result<(), Error> {
    match device {
        Some(never) => match never {},
        None => wcs.pixel_to_world(points, out).map(drop),
    }
}

/// The file the user named on the command line: a path, or a URL of object storage (the user
/// typed it, so it may be one).
fn open_named(name: &Path) -> Result<FitsFile, Error> {
    OpenOptions::new().urls(true).open(name)
}

/// [`open_named`], its tile-compressed tables shown as stored (as astropy shows them) unless
/// `decompress_tables`.
fn open_shown(name: &Path, decompress_tables: bool) -> Result<FitsFile, Error> {
    OpenOptions::new().urls(true).stored_tables(!decompress_tables).open(name)
}

fn print_json(value: &Json) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::new(ErrorKind::Io, format!("cannot format JSON: {e}")))?;
    outln!("{text}")?;
    Ok(())
}

fn hdu_json(h: &HduInfo) -> Json {
    json!({
        "index": h.index,
        "kind": h.kind.as_str(),
        "extname": h.extname,
        "extver": h.extver,
        "compressed": h.compressed,
        "shape": h.shape,
        "bitpix": h.bitpix,
        "dtype": h.dtype.map(|d| d.numpy_name()),
        "nrows": h.nrows,
        "ncols": h.ncols,
    })
}

/// A warning on stderr for each HDU whose data the file does not hold in full, as astropy warns
/// when it opens such a file (the listing still comes: the headers are whole).
fn warn_truncated(file: &FitsFile, hdus: usize) -> Result<(), Error> {
    for index in 0..hdus {
        let missing = file.missing_bytes(index)?;
        if missing > 0 {
            eprintln!(
                "torchfits: {}: HDU {index}: warning: the file is truncated: its data needs {missing} bytes past the end of the file",
                file.path().display()
            );
        }
    }
    Ok(())
}

fn info(path: &Path, as_json: bool, decompress_tables: bool) -> Result<(), Error> {
    let file = open_shown(path, decompress_tables)?;
    let hdus = file.hdus()?;
    warn_truncated(&file, hdus.len())?;
    if as_json {
        let list: Vec<Json> = hdus.iter().map(hdu_json).collect();
        return print_json(&json!({ "path": path.display().to_string(), "hdus": list }));
    }
    outln!("Filename: {}", path.display())?;
    outln!("{:<4} {:<16} {:>4}  {:<13} {:>6}  {:<24} Dtype", "No.", "Name", "Ver", "Type", "Cards", "Shape (C order)")?;
    for h in &hdus {
        let name = h.extname.clone().unwrap_or_else(|| if h.index == 0 { "PRIMARY".into() } else { String::new() });
        let kind = match (h.kind, h.compressed) {
            (HduKind::Image, true) => "CompImage".to_string(),
            (k, _) => k.as_str().to_string(),
        };
        let shape = match (&h.shape, h.nrows, h.ncols) {
            (Some(s), _, _) => format!("{s:?}"),
            (None, Some(r), Some(c)) => format!("{r} rows x {c} cols"),
            _ => String::new(),
        };
        let dtype = h.dtype.map(|d| d.numpy_name()).unwrap_or("");
        outln!(
            "{:<4} {:<16} {:>4}  {:<13} {:>6}  {:<24} {}",
            h.index,
            name,
            h.extver.unwrap_or(1),
            kind,
            h.ncards,
            shape,
            dtype
        )?;
    }
    Ok(())
}

fn value_json(v: &Value) -> Json {
    match v {
        Value::Bool(b) => Json::from(*b),
        Value::Int(i) => Json::from(*i),
        Value::Float(f) => Json::from(*f),
        Value::Complex(re, im) => json!([re, im]),
        Value::Str(s) => Json::from(s.as_str()),
        Value::Undefined => Json::Null,
    }
}

fn value_text(v: &Value) -> String {
    match v {
        Value::Bool(b) => format!("{:>20}", if *b { "T" } else { "F" }),
        Value::Int(i) => format!("{i:>20}"),
        Value::Float(f) => format!("{:>20}", format!("{f:E}")),
        Value::Complex(re, im) => format!("({re:E}, {im:E})"),
        Value::Str(s) => format!("'{:<8}'", s.replace('\'', "''")),
        Value::Undefined => String::new(),
    }
}

fn header(path: &Path, hdu: HduSelector, as_json: bool, decompress_tables: bool) -> Result<(), Error> {
    let header: Header = open_shown(path, decompress_tables)?.header(hdu)?;
    if as_json {
        let cards: Vec<Json> = header
            .iter()
            .map(|c| json!({ "keyword": c.keyword(), "value": value_json(c.value()), "comment": c.comment() }))
            .collect();
        return print_json(&json!({ "cards": cards }));
    }
    for c in &header {
        if c.is_commentary() {
            outln!("{:<8}{}", c.keyword(), c.value().as_str().unwrap_or(""))?;
            continue;
        }
        let value = value_text(c.value());
        match c.comment() {
            Some(comment) => outln!("{:<8}= {value} / {comment}", c.keyword())?,
            None => outln!("{:<8}= {value}", c.keyword())?,
        }
    }
    outln!("END")?;
    Ok(())
}

fn extension(path: &Path) -> String {
    path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase()
}

/// What `read` does with a table.
struct TableOptions<'a> {
    columns: Option<Vec<String>>,
    rows: Option<&'a str>,
    filter: Option<&'a str>,
    nulls: bool,
}

fn read(
    path: &Path,
    hdu: HduSelector,
    section: Option<&str>,
    table: TableOptions<'_>,
    decompress_tables: bool,
    output: &Path,
) -> Result<(), Error> {
    let file = open_shown(path, decompress_tables)?;
    let info = file.hdu(hdu.clone())?;
    let in_hdu = |e: Error| e.in_hdu(info.index).in_file(path);
    let ext = extension(output);
    match (ext.as_str(), info.kind) {
        ("npy", HduKind::Image) => {}
        ("parquet" | "arrow" | "csv", HduKind::BinTable | HduKind::AsciiTable) => {
            let rows = match table.rows {
                Some(spec) => Some(parse_rows(spec, info.nrows.unwrap_or(0)).map_err(in_hdu)?),
                None => None,
            };
            let format = match ext.as_str() {
                "parquet" => table::Format::Parquet,
                "csv" => table::Format::Csv,
                _ => table::Format::Ipc,
            };
            let selection = table::Selection { columns: table.columns, rows, filter: table.filter };
            return table::write(&file, info.index, selection, output, format, table.nulls);
        }
        ("npy", kind) => {
            return Err(in_hdu(Error::new(
                ErrorKind::Parameter,
                format!("the HDU is a {kind}; .npy output is for images (tables go to .parquet, .arrow or .csv)"),
            )));
        }
        ("parquet" | "arrow" | "csv", kind) => {
            return Err(in_hdu(Error::new(
                ErrorKind::Parameter,
                format!("the HDU is a {kind}; .{ext} output is for tables (images go to .npy)"),
            )));
        }
        (ext, _) => {
            return Err(in_hdu(Error::new(
                ErrorKind::Parameter,
                format!("cannot write .{ext} output: use .npy for images, .parquet, .arrow or .csv for tables"),
            )));
        }
    }
    let image = file.image(info.index)?;
    let section = match section {
        Some(spec) => Some(Section::parse(spec, image.shape()).map_err(in_hdu)?),
        None => None,
    };
    let data = image.read_data(section.as_ref())?;
    npy::write(output, &data)
}

/// `a:b`, `a:`, `:b` or `:` for a table of `n` rows.
fn parse_rows(spec: &str, n: u64) -> Result<std::ops::Range<u64>, Error> {
    let bad = || Error::new(ErrorKind::Parameter, format!("--rows {spec:?} is not a range like a:b"));
    let (a, b) = spec.split_once(':').ok_or_else(bad)?;
    let bound = |t: &str, default: u64| -> Result<u64, Error> {
        if t.trim().is_empty() { Ok(default) } else { t.trim().parse().map_err(|_| bad()) }
    };
    Ok(bound(a, 0)?..bound(b, n)?)
}

fn preview(path: &Path, hdu: HduSelector, section: Option<&str>, stretch: Stretch, output: &Path) -> Result<(), Error> {
    let file = open_named(path)?;
    let image = file.image(hdu)?;
    let index = image.index();
    let in_hdu = |e: Error| e.in_hdu(index).in_file(path);
    let shape = image.shape().to_vec();
    if shape.len() < 2 {
        return Err(in_hdu(Error::new(ErrorKind::Parameter, format!("preview needs a 2-D image; shape is {shape:?}"))));
    }
    let section = match section {
        Some(spec) => Section::parse(spec, &shape).map_err(in_hdu)?,
        // the first plane of a cube: index 0 on every axis but the last two
        None => Section::new(
            shape.iter().enumerate().map(|(k, &n)| if k + 2 < shape.len() { 0..n.min(1) } else { 0..n }).collect(),
        ),
    };
    let sshape = section.shape();
    // the last two axes (the image has at least two: checked above)
    let (h, w) = match sshape[..] {
        [.., h, w] => (h, w),
        _ => (0, 0),
    };
    let values: Vec<f64> = image.read_section(&section)?;
    // a section of a cube keeps its first plane
    let plane = values.get(..(h * w).min(values.len())).unwrap_or_default();
    let gray = preview::render(plane, h, w, stretch).map_err(in_hdu)?;
    preview::write_png(output, &gray, h, w)
}
