//! The Rust baseline for the standard benchmark: the `fitsio` crate's own API on the case ids of
//! `../shared/peers/README.md`, with the same semantics as `torchfits bench` and the peers (open +
//! read + close, median of N runs after a warm-up). Run by `benches/compare.py`:
//!
//! ```text
//! cargo bench --bench fitsio_rs -- --dir bench-data --runs 7 --json fitsio_rs.json
//! ```
//!
//! The crate reads every image into a fresh `Vec` (it has no read into a caller's buffer) and
//! opens files through cfitsio's extended filename syntax; it has no whole-header read, so
//! `header_f32` is not timed for it.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Instant;

use fitsio::FitsFile;

type Run = Box<dyn FnMut() -> Result<(), fitsio::errors::Error>>;

const N: usize = 4096;
const SMALL: usize = 64;

fn full<T: fitsio::images::ReadImage + 'static>(path: PathBuf, hdu: usize) -> Run {
    Box::new(move || {
        let mut f = FitsFile::open(&path)?;
        let h = f.hdu(hdu)?;
        let v: T = h.read_image(&mut f)?;
        std::hint::black_box(v);
        Ok(())
    })
}

fn cutout<T: fitsio::images::ReadImage + 'static>(path: PathBuf, hdu: usize) -> Run {
    Box::new(move || {
        let mut f = FitsFile::open(&path)?;
        let h = f.hdu(hdu)?;
        let (y, x): (Range<usize>, Range<usize>) = (1500..1756, 2100..2356);
        let v: T = h.read_region(&mut f, &[&y, &x])?;
        std::hint::black_box(v);
        Ok(())
    })
}

fn cases(dir: &Path) -> Vec<(&'static str, Run)> {
    let p = |n: &str| dir.join(n);
    let img = p("img_f32_4096.fits");
    let many = img.clone();
    let open = img.clone();
    vec![
        ("img_f32_4096_full", full::<Vec<f32>>(p("img_f32_4096.fits"), 0)),
        ("img_i16_2048_full", full::<Vec<i16>>(p("img_i16_2048.fits"), 0)),
        ("img_u16_2048_full", full::<Vec<u16>>(p("img_u16_2048.fits"), 0)),
        ("img_scaled_i16_2048_full", full::<Vec<f32>>(p("img_scaled_i16_2048.fits"), 0)),
        ("rice_i16_4096_full", full::<Vec<i16>>(p("rice_i16_4096.fits"), 1)),
        ("rice_i16_4096_t256_full", full::<Vec<i16>>(p("rice_i16_4096_t256.fits"), 1)),
        ("rice_f32_4096_full", full::<Vec<f32>>(p("rice_f32_4096.fits"), 1)),
        ("cutout_f32_256", cutout::<Vec<f32>>(img, 0)),
        ("cutout_rice_i16_256", cutout::<Vec<i16>>(p("rice_i16_4096.fits"), 1)),
        ("cutout_rice_i16_t256_256", cutout::<Vec<i16>>(p("rice_i16_4096_t256.fits"), 1)),
        (
            "cutouts_f32_64x100",
            Box::new(move || {
                let mut f = FitsFile::open(&many)?;
                let h = f.hdu(0)?;
                for k in 0..100 {
                    let (y, x) = ((k * 977) % (N - SMALL), (k * 1543) % (N - SMALL));
                    let v: Vec<f32> = h.read_region(&mut f, &[&(y..y + SMALL), &(x..x + SMALL)])?;
                    std::hint::black_box(v);
                }
                Ok(())
            }),
        ),
        (
            "open_close",
            Box::new(move || {
                let f = FitsFile::open(&open)?;
                std::hint::black_box(f);
                Ok(())
            }),
        ),
    ]
}

fn median_ms(run: &mut Run, runs: usize) -> Result<f64, fitsio::errors::Error> {
    run()?;
    let mut ms: Vec<f64> = (0..runs)
        .map(|_| {
            let t0 = Instant::now();
            run().map(|()| t0.elapsed().as_secs_f64() * 1e3)
        })
        .collect::<Result<_, _>>()?;
    ms.sort_by(|a, b| a.total_cmp(b));
    let m = ms.len();
    Ok(if m % 2 == 1 { ms[m / 2] } else { 0.5 * (ms[m / 2 - 1] + ms[m / 2]) })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).cloned();
    // `cargo bench` passes --bench; without --dir there is nothing to time
    let Some(dir) = arg("--dir") else {
        eprintln!("fitsio_rs: pass --dir DIR (the standard files) [--runs N] [--json OUT]");
        return;
    };
    let runs: usize = arg("--runs").and_then(|r| r.parse().ok()).unwrap_or(7).max(1);
    let mut results = BTreeMap::new();
    for (id, mut run) in cases(Path::new(&dir)) {
        match median_ms(&mut run, runs) {
            Ok(ms) => {
                println!("{id:28} fitsio-rs {ms:9.3} ms");
                results.insert(id, serde_json::json!({ "fitsio-rs": (ms * 1e4).round() / 1e4 }));
            }
            Err(e) => eprintln!("{id:28} fitsio-rs: {e}"),
        }
    }
    if let Some(out) = arg("--json") {
        let doc = serde_json::json!({ "runs": runs, "cases": results });
        if let Err(e) = std::fs::write(&out, serde_json::to_string_pretty(&doc).unwrap_or_default()) {
            eprintln!("fitsio_rs: {out}: {e}");
            std::process::exit(1);
        }
    }
}
