//! torchfits' side of `benches/remote.py`: the remote cases read from a server by URL, each run a
//! fresh open with the block cache emptied first (as a new process would start), the median of N
//! runs after a warm-up, with the requests and bytes torchfits fetched per run:
//!
//! ```text
//! cargo bench --bench remote_cases -- --base http://127.0.0.1:PORT/bench --case header --runs 5
//! ```
//!
//! prints one JSON object: `{"case", "ms", "requests", "bytes"}`.

use std::time::Instant;

use torchfits::{ColumnPool, Result, Section};
use torchfits_core::remote;

/// The cutout of the standard cases: rows 1500:1756, columns 2100:2356.
fn cut() -> Section {
    Section::new(vec![1500..1756, 2100..2356])
}

/// The 100 cutouts of 64 x 64 of `cutouts_f32_64x100`.
fn small_cutouts() -> Vec<Section> {
    (0..100)
        .map(|k| {
            let (y, x) = ((k * 977) % 4032, (k * 1543) % 4032);
            Section::new(vec![y..y + 64, x..x + 64])
        })
        .collect()
}

/// One run of case `case` against files under `base`.
fn run(base: &str, case: &str) -> Result<()> {
    let url = |name: &str| format!("{base}/{name}");
    match case {
        "header" => {
            let file = torchfits::FitsFile::open_url(&url("img_f32_4096.fits"))?;
            std::hint::black_box(file.header(0)?);
        }
        "cutout_f32_256" => {
            let file = torchfits::FitsFile::open_url(&url("img_f32_4096.fits"))?;
            std::hint::black_box(file.image(0)?.read_section::<f32>(&cut())?);
        }
        "cutout_rice_i16_t256_256" => {
            let file = torchfits::FitsFile::open_url(&url("rice_i16_4096_t256.fits"))?;
            std::hint::black_box(file.image(1)?.read_section::<i16>(&cut())?);
        }
        "cutouts_f32_64x100" => {
            let file = torchfits::FitsFile::open_url(&url("img_f32_4096.fits"))?;
            let image = file.image(0)?;
            let sections = small_cutouts();
            image.prefetch(&sections)?;
            for s in &sections {
                std::hint::black_box(image.read_section::<f32>(s)?);
            }
        }
        "table_1M_2cols" => {
            let file = torchfits::FitsFile::open_url(&url("table_1M.fits"))?;
            let pool = ColumnPool::default();
            let reader = file.table(1)?.with_batch_rows(1 << 20).with_pool(&pool).with_columns(&["ra", "flux"])?;
            for batch in reader.build()? {
                std::hint::black_box(batch?);
            }
        }
        other => return Err(torchfits::Error::parameter(format!("no remote case {other}"))),
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|k| args.get(k + 1)).cloned();
    // `cargo bench` without arguments (as in a plain `cargo bench`) has nothing to run
    let (Some(base), Some(case)) = (arg("--base"), arg("--case")) else {
        eprintln!("remote_cases: --base URL --case ID [--runs N] (run by benches/remote.py)");
        return;
    };
    let runs: usize = arg("--runs").and_then(|r| r.parse().ok()).unwrap_or(5).max(1);
    let mut ms = Vec::new();
    let mut fetched = (0u64, 0u64);
    for k in 0..=runs {
        remote::clear_cache();
        let before = remote::stats();
        let t0 = Instant::now();
        if let Err(e) = run(&base, &case) {
            eprintln!("remote_cases: {case}: {e}");
            std::process::exit(1);
        }
        let elapsed = t0.elapsed().as_secs_f64() * 1e3;
        let after = remote::stats();
        if k > 0 {
            ms.push(elapsed);
            fetched.0 += after.requests - before.requests;
            fetched.1 += after.bytes - before.bytes;
        }
    }
    ms.sort_by(f64::total_cmp);
    let median = ms[ms.len() / 2];
    println!(
        "{{\"case\": \"{case}\", \"ms\": {median:.3}, \"requests\": {}, \"bytes\": {}}}",
        fetched.0 as f64 / runs as f64,
        fetched.1 as f64 / runs as f64
    );
}
