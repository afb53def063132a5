//! Opens a FITS file, lists its HDUs and prints statistics of every image in it (compressed ones
//! included). `RUST_LOG=torchfits=debug` shows what torchfits did (spans with their times).
//!
//! ```text
//! cargo run --release --example inspect -- [FILE]     # default: examples/data/sample.fits
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use torchfits::{FitsFile, HduKind};

/// Statistics of the finite values of an image.
struct Stats {
    finite: usize,
    nan: usize,
    min: f64,
    max: f64,
    mean: f64,
    std: f64,
}

fn stats(values: &[f64]) -> Stats {
    let (mut n, mut nan, mut min, mut max, mut mean, mut m2) =
        (0usize, 0usize, f64::INFINITY, f64::NEG_INFINITY, 0.0, 0.0);
    for &v in values {
        if !v.is_finite() {
            nan += 1;
            continue;
        }
        // Welford's running mean and variance
        n += 1;
        let d = v - mean;
        mean += d / n as f64;
        m2 += d * (v - mean);
        min = min.min(v);
        max = max.max(v);
    }
    let std = if n > 1 { (m2 / (n - 1) as f64).sqrt() } else { 0.0 };
    Stats { finite: n, nan, min, max, mean, std }
}

fn run(path: PathBuf) -> Result<(), torchfits::Error> {
    let file = FitsFile::open(&path)?;
    let hdus = file.hdus()?;
    println!("{}: {} HDUs", path.display(), hdus.len());
    // one buffer, reused for every image (grown when a larger one comes)
    let mut buf: Vec<f64> = Vec::new();
    for hdu in &hdus {
        let name = hdu.extname.as_deref().unwrap_or(if hdu.index == 0 { "PRIMARY" } else { "" });
        let kind = if hdu.compressed { "compressed image".to_string() } else { hdu.kind.to_string() };
        match (hdu.kind, &hdu.shape) {
            (HduKind::Image, Some(shape)) if !shape.is_empty() => {
                let image = file.image(hdu.index)?;
                buf.resize(image.len(), 0.0);
                image.read_into(&mut buf)?;
                let s = stats(&buf);
                if s.finite == 0 {
                    println!(
                        "  [{}] {name:<12} {kind:<17} shape {shape:?} {}: all {} values NaN",
                        hdu.index,
                        image.dtype(),
                        s.nan
                    );
                    continue;
                }
                println!(
                    "  [{}] {name:<12} {kind:<17} shape {shape:?} {}: min {:.6} max {:.6} mean {:.6} std {:.6} ({} finite, {} NaN)",
                    hdu.index,
                    image.dtype(),
                    s.min,
                    s.max,
                    s.mean,
                    s.std,
                    s.finite,
                    s.nan
                );
            }
            (HduKind::BinTable | HduKind::AsciiTable, _) => println!(
                "  [{}] {name:<12} {kind:<17} {} rows x {} columns",
                hdu.index,
                hdu.nrows.unwrap_or(0),
                hdu.ncols.unwrap_or(0)
            ),
            _ => println!("  [{}] {name:<12} {kind:<17} no data", hdu.index),
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    // torchfits' tracing spans and events, by RUST_LOG (errors only when it is not set)
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_span_events(tracing_subscriber::fmt::format::FmtSpan::CLOSE)
        .try_init();
    let path = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("examples/data/sample.fits"));
    match run(path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("inspect: {e}");
            ExitCode::from(1)
        }
    }
}
