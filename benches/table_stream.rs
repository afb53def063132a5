//! Streaming a large table: rows/s (criterion) and peak RSS, for a table of the standard catalog's
//! layout (8 columns: K, D, D, E, L, J, 8A, I; 43 bytes a row) written at start-up in chunks.
//!
//! `cargo bench --bench table_stream` streams 20 million rows (860 MB) in batches of 1 million
//! rows; as a test (`cargo test --benches`) it uses 200 000 rows. Before the criterion runs it
//! streams once and prints the peak RSS against the bound: three batches' worth + 100 MiB.

use std::io::Write;
use std::path::{Path, PathBuf};

use criterion::{Criterion, Throughput, criterion_group};
use torchfits::{FitsFile, OpenOptions};

const BATCH_ROWS: usize = 1_000_000;
const ROW_BYTES: usize = 43;

fn rows() -> usize {
    if std::env::args().any(|a| a == "--bench") { 20_000_000 } else { 200_000 }
}

fn card(text: &str) -> String {
    format!("{text:<80}")
}

/// Writes the table once (kept between runs when the size matches).
fn table(rows: usize) -> PathBuf {
    let path = std::env::temp_dir().join(format!("torchfits-stream-{rows}.fits"));
    let data = rows * ROW_BYTES;
    let size = 2880 * 2 + data.div_ceil(2880) * 2880;
    if std::fs::metadata(&path).is_ok_and(|m| m.len() == size as u64) {
        return path;
    }
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    let mut header: String =
        ["SIMPLE  =                    T", "BITPIX  =                    8", "NAXIS   =                    0", "END"]
            .iter()
            .map(|c| card(c))
            .collect();
    header.push_str(&" ".repeat(2880 - header.len()));
    let mut cards = vec![
        card("XTENSION= 'BINTABLE'"),
        card("BITPIX  =                    8"),
        card("NAXIS   =                    2"),
        card(&format!("NAXIS1  = {ROW_BYTES:>20}")),
        card(&format!("NAXIS2  = {rows:>20}")),
        card("PCOUNT  =                    0"),
        card("GCOUNT  =                    1"),
        card("TFIELDS =                    8"),
    ];
    for (k, (name, form)) in [
        ("id", "K"),
        ("ra", "D"),
        ("dec", "D"),
        ("flux", "E"),
        ("flag", "L"),
        ("nobs", "J"),
        ("band", "8A"),
        ("mag16", "I"),
    ]
    .iter()
    .enumerate()
    {
        cards.push(card(&format!("TTYPE{}  = '{name}'", k + 1)));
        cards.push(card(&format!("TFORM{}  = '{form}'", k + 1)));
    }
    cards.push(card("END"));
    let mut ext: String = cards.concat();
    ext.push_str(&" ".repeat(2880 - ext.len() % 2880));
    f.write_all(header.as_bytes()).and_then(|()| f.write_all(ext.as_bytes())).expect("header");
    let mut chunk = Vec::with_capacity(ROW_BYTES * 65_536);
    for r in 0..rows {
        chunk.extend_from_slice(&(r as i64).to_be_bytes());
        chunk.extend_from_slice(&((r % 360_000) as f64 / 1000.0).to_be_bytes());
        chunk.extend_from_slice(&((r % 180_000) as f64 / 1000.0 - 90.0).to_be_bytes());
        chunk.extend_from_slice(&((r % 977) as f32 * 1.5).to_be_bytes());
        chunk.push(if r % 10 == 0 { b'T' } else { b'F' });
        chunk.extend_from_slice(&((r % 100) as i32).to_be_bytes());
        chunk.extend_from_slice(&[b"g       ", b"r       ", b"i       ", b"z       ", b"y       "][r % 5][..]);
        chunk.extend_from_slice(&((r % 2000) as i16 - 1000).to_be_bytes());
        if chunk.len() >= ROW_BYTES * 65_536 {
            f.write_all(&chunk).expect("rows");
            chunk.clear();
        }
    }
    f.write_all(&chunk).expect("rows");
    f.write_all(&vec![0u8; data.div_ceil(2880) * 2880 - data]).expect("padding");
    f.flush().expect("flush");
    path
}

/// Streams every row in 1M-row batches; returns the rows read.
fn stream(path: &Path, options: &OpenOptions) -> u64 {
    let file = options.open(path).expect("open");
    let mut n = 0;
    for batch in file.table(1).expect("table").with_batch_rows(BATCH_ROWS).build().expect("build") {
        n += batch.expect("batch").num_rows as u64;
    }
    n
}

/// The process's peak resident set (VmHWM), in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn bench_stream(c: &mut Criterion) {
    let rows = rows();
    let path = table(rows);
    let mut g = c.benchmark_group("table_stream");
    g.sample_size(10);
    g.throughput(Throughput::Elements(rows as u64));
    for (name, options) in [("pread", OpenOptions::new()), ("mmap", OpenOptions::new().mmap(true))] {
        g.bench_function(format!("{rows}_rows_{name}"), |b| {
            b.iter(|| assert_eq!(stream(&path, &options), rows as u64))
        });
    }
    g.finish();
}

criterion_group!(benches, bench_stream);

fn main() {
    let rows = rows();
    let path = table(rows);
    let before = peak_rss();
    let read = stream(&path, &OpenOptions::new());
    let peak = peak_rss();
    let bound = 3 * BATCH_ROWS.min(rows) as u64 * ROW_BYTES as u64 * 2 + (100 << 20);
    println!(
        "table_stream: {read} rows in batches of {BATCH_ROWS}: peak RSS {:.1} MiB (before streaming {:.1} MiB); \
         bound (3 batches of raw rows and decoded columns + 100 MiB) {:.1} MiB",
        peak as f64 / 1048576.0,
        before as f64 / 1048576.0,
        bound as f64 / 1048576.0
    );
    assert!(peak <= bound, "peak RSS {peak} over the bound {bound}");
    benches();
    Criterion::default().configure_from_args().final_summary();
    let _ = FitsFile::open(&path);
}
