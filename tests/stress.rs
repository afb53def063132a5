//! Concurrency stress: 8 threads read random sections of the same and of different files (plain,
//! memory-mapped or not, gzip, RICE_1 decoded natively, GZIP_1 through cfitsio) through file
//! caches too small to hold them all (eviction on most opens), a fresh open per read and the
//! thread-local cache, while another thread keeps rewriting one of the files in place (replaced
//! by rename, as `FitsWriter` does). Every section must equal the same section of a
//! single-threaded whole read, and every section of the rewritten file must come from one
//! version of it.
//!
//! It runs for `TORCHFITS_STRESS_SECS` seconds (3 by default; the reliability check is
//! `TORCHFITS_STRESS_SECS=60 cargo test --release --test stress`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use torchfits::write::Algorithm;
use torchfits::{Compression, FileCache, FitsFile, OpenOptions, Section, WriteOptions, with_cached_file};

const H: usize = 300;
const W: usize = 420;

/// A small deterministic generator (xorshift64*), one per thread.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn value(k: usize, y: usize, x: usize) -> i32 {
    ((y * 131 + x * 7 + k * 1000) % 30_000) as i32 - 15_000
}

/// The files, written once: (path, single-threaded whole read as f64).
fn make_files(dir: &Path) -> Vec<(PathBuf, Vec<f64>)> {
    let mut paths = Vec::new();
    let ints = |k: usize| -> Vec<i32> { (0..H * W).map(|i| value(k, i / W, i % W)).collect() };
    let write = |name: &str, f: &dyn Fn(&mut torchfits::FitsWriter)| {
        let path = dir.join(name);
        let mut w = WriteOptions::new().overwrite(true).create(&path).expect("create");
        f(&mut w);
        w.finish().expect("finish");
        path
    };
    let f32s: Vec<f32> = ints(0).iter().map(|&v| v as f32 * 0.25).collect();
    let i16s: Vec<i16> = ints(1).iter().map(|&v| v as i16).collect();
    let i32s = ints(2);
    paths.push(write("plain_f32.fits", &|w| w.image(&f32s, &[H, W]).write().expect("image")));
    paths.push(write("plain_i16.fits", &|w| w.image(&i16s, &[H, W]).write().expect("image")));
    paths.push(write("rice_i16.fits", &|w| {
        w.image(&i16s, &[H, W]).compress(Compression::new(Algorithm::Rice)).write().expect("image")
    }));
    paths.push(write("rice_i32_tiles.fits", &|w| {
        w.image(&i32s, &[H, W]).compress(Compression::new(Algorithm::Rice).tile(&[32, 64])).write().expect("image")
    }));
    paths.push(write("gzip1_f32.fits", &|w| {
        w.image(&f32s, &[H, W]).compress(Compression::new(Algorithm::Gzip1).tile(&[50, W])).write().expect("image")
    }));
    // a gzip-compressed copy of the plain float file
    let gz = dir.join("plain_f32.fits.gz");
    {
        use std::io::Write;
        let raw = std::fs::read(&paths[0]).expect("read");
        let mut enc =
            flate2::write::GzEncoder::new(std::fs::File::create(&gz).expect("create"), flate2::Compression::fast());
        enc.write_all(&raw).expect("gzip");
        enc.finish().expect("gzip");
    }
    paths.push(gz);
    paths
        .into_iter()
        .map(|p| {
            let f = OpenOptions::new().threads(1).open(&p).expect("open");
            let n = f.hdu_count().expect("count");
            let whole = f.image(n - 1).expect("image").read_data(None).expect("read").pixels.to_f64();
            assert_eq!(whole.len(), H * W);
            (p, whole)
        })
        .collect()
}

/// Writes version `g` of the rewritten file: `value(7, y, x) + g`.
fn rewrite(path: &Path, g: i32) {
    let data: Vec<i32> = (0..H * W).map(|i| value(7, i / W, i % W) + g).collect();
    let mut w = WriteOptions::new().overwrite(true).create(path).expect("create");
    w.image(&data, &[H, W]).write().expect("image");
    w.finish().expect("finish");
}

fn random_section(rng: &mut Rng) -> Section {
    if rng.below(50) == 0 {
        return Section::new(vec![0..H, 0..W]);
    }
    let (h, w) = (1 + rng.below(64), 1 + rng.below(96));
    let (y, x) = (rng.below(H - h + 1), rng.below(W - w + 1));
    Section::new(vec![y..y + h, x..x + w])
}

fn expected(whole: &[f64], s: &Section) -> Vec<f64> {
    let r = s.ranges();
    r[0].clone().flat_map(|y| r[1].clone().map(move |x| whole[y * W + x])).collect()
}

/// One read of `s` from the last HDU of `file`.
fn read(file: &FitsFile, s: &Section) -> torchfits::Result<Vec<f64>> {
    let n = file.hdu_count()?;
    Ok(file.image(n - 1)?.read_data(Some(s))?.pixels.to_f64())
}

#[test]
fn eight_threads_read_what_one_thread_reads() {
    let secs: u64 = std::env::var("TORCHFITS_STRESS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("stress-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let files = Arc::new(make_files(&dir));
    let moving = dir.join("rewritten.fits");
    rewrite(&moving, 0);
    let generation = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let deadline = Instant::now() + Duration::from_secs(secs);

    let writer = {
        let (moving, generation, stop) = (moving.clone(), generation.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut g = 0;
            while !stop.load(Ordering::Relaxed) {
                g += 1;
                rewrite(&moving, g);
                generation.store(g as u64, Ordering::Release);
                std::thread::sleep(Duration::from_millis(20));
            }
            g
        })
    };

    // threads 0-3 share one cache of 2 open files (mmap, reads on 2 threads), 4-5 have a cache of
    // 3 each (pread), 6 opens the file for each read, 7 uses the process-wide cache
    let shared = Arc::new(FileCache::new(2, OpenOptions::new().mmap(true).threads(2)));
    let readers: Vec<_> = (0..8u64)
        .map(|t| {
            let (files, moving, generation) = (files.clone(), moving.clone(), generation.clone());
            let shared = shared.clone();
            std::thread::spawn(move || {
                let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ (t + 1).wrapping_mul(0x1000_0001));
                let options = OpenOptions::new().threads(1 + (t as usize % 3));
                let cache = if t < 4 { shared } else { Arc::new(FileCache::new(3, options.clone())) };
                let (mut reads, mut rewritten_reads) = (0u64, 0u64);
                let mut failures = Vec::new();
                while Instant::now() < deadline && failures.len() < 5 {
                    let s = random_section(&mut rng);
                    let k = rng.below(files.len() + 1);
                    let path = if k == files.len() { &moving } else { &files[k].0 };
                    let got = match t {
                        0..=5 => cache.open(path).and_then(|f| read(&f, &s)),
                        6 => options.open(path).and_then(|f| read(&f, &s)),
                        _ => with_cached_file(path, |f| read(f, &s)),
                    };
                    let got = match got {
                        Ok(v) => v,
                        Err(e) => {
                            failures.push(format!("thread {t}: {e}"));
                            continue;
                        }
                    };
                    reads += 1;
                    if k < files.len() {
                        if got != expected(&files[k].1, &s) {
                            failures.push(format!("thread {t}: {} {:?} differs", path.display(), s.ranges()));
                        }
                    } else {
                        // one version, no older than the one before the read began
                        let r = s.ranges();
                        let (y, x) = (r[0].start, r[1].start);
                        let g = got[0] - f64::from(value(7, y, x));
                        let base: Vec<f64> = r[0]
                            .clone()
                            .flat_map(|y| r[1].clone().map(move |x| f64::from(value(7, y, x)) + g))
                            .collect();
                        if got != base || g < 0.0 || g > generation.load(Ordering::Acquire) as f64 + 1.0 {
                            failures.push(format!("thread {t}: the rewritten file's section mixes versions"));
                        }
                        rewritten_reads += 1;
                    }
                }
                // the shared cache's counters once, from thread 0
                let stats = if t == 0 || t >= 4 { cache.stats() } else { Default::default() };
                (reads, rewritten_reads, stats, failures)
            })
        })
        .collect();

    let mut total = 0;
    let mut failures = Vec::new();
    let (mut evicted, mut reopened, mut rewritten_reads) = (0, 0, 0);
    for r in readers {
        let (reads, rw, stats, f) = r.join().expect("a reader panicked");
        total += reads;
        rewritten_reads += rw;
        evicted += stats.evicted;
        reopened += stats.reopened;
        failures.extend(f);
    }
    stop.store(true, Ordering::Relaxed);
    let versions = writer.join().expect("the writer panicked");
    eprintln!(
        "stress: {secs} s, {total} sections read by 8 threads ({rewritten_reads} of the rewritten file, {versions} versions written); caches: {evicted} evictions, {reopened} reopened after a rewrite"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(total > 100 && rewritten_reads > 0 && evicted > 0 && reopened > 0, "the stress did not stress");
    std::fs::remove_dir_all(&dir).ok();
}
