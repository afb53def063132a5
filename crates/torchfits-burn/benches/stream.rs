//! Streamed epochs over a survey: 200 RICE_1 images of 2048 x 2048 16-bit pixels (tiles of
//! 256 x 256) and 10^5 catalog positions, stamps of 64 x 64 through a `SurveyPlan` and a
//! `StampStream` (burn-flex, 2 workers, batches of 64, a buffer of 4096).
//!
//! cargo bench -p torchfits-burn --bench stream -- [--dir DIR] [--images 200] [--positions 100000]
//!
//! Timed: the bare reads of the same stamps (`read_section_into`, on as many threads as the
//! stream has workers, image by image) and epoch 1 from local files, three passes each taken in
//! turn (their medians); then one pass each of epoch 1 filling a decoded-stamp cache, epoch 2
//! from it and, where the object servers run (`python3 scripts/remote_servers.py -- cargo bench
//! ...`), epoch 1 from S3 (moto) and HTTP (nginx) with the requests and bytes it fetched. The survey is made once into DIR (default
//! target/tmp/stream-bench, ~0.7 GB). The last line:
//! `stream: epoch 1 <L> items/s local (<B>x bare), <R> items/s S3 (<Q> requests/image);
//! epoch 2 <C> items/s from cache; peak RSS <M> MiB` (torchfits-py's figure comes from
//! `benches/stream_peer.py`).

// A benchmark's set-up: its own files, indexed where it made them.
#![allow(clippy::indexing_slicing)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::data::dataloader::DataLoader;
use torchfits_burn::stream::StampStream;
use torchfits_burn::{StampBatcher, SurveyCutoutDataset, SurveyPlanner};
use torchfits_core::table::{ColumnData, ColumnValues, TableBatch};
use torchfits_core::write::{Algorithm, Compression};
use torchfits_core::{Header, Section, Value, WriteOptions};

/// Pixels on a side of an image.
const SIDE: usize = 2048;
/// Pixels on a side of a stamp.
const STAMP: usize = 64;
const WORKERS: usize = 2;
/// Passes of the bare reads and of epoch 1 from local files, taken in turn.
const ROUNDS: usize = 3;
/// Degrees per pixel (0.2 arcsec).
const SCALE: f64 = 0.2 / 3600.0;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("stream: a benchmark; run it with cargo bench -p torchfits-burn --bench stream");
        return Ok(());
    }
    let mut dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("stream-bench");
    let (mut images, mut positions) = (200usize, 100_000usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => dir = args.next().ok_or("--dir DIR")?.into(),
            "--images" => images = args.next().ok_or("--images N")?.parse()?,
            "--positions" => positions = args.next().ok_or("--positions N")?.parse()?,
            _ => {}
        }
    }
    let survey = dir.join(format!("survey-{images}-{positions}"));
    let (catalog, files) = make_survey(&survey, images, positions)?;
    let names: Vec<String> = files.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    // every pass finds the files in the page cache, not only those after the first
    for f in &files {
        std::hint::black_box(std::fs::read(f)?);
    }
    let local = dataset(&catalog, &names, false, &survey)?;
    // this machine's speed drifts between passes: the bare reads and the stream take turns,
    // and each rate is the median of its passes
    let (mut bares, mut epochs) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        bares.push(bare_rate(&local)?);
        epochs.push(epoch_rate(&stream(&local), "epoch 1, local files")?);
    }
    let (bare, epoch1) = (median(bares), median(epochs));
    println!(
        "bare reads: {bare:.0} items/s ({WORKERS} threads); epoch 1, local files: {epoch1:.0} items/s (medians of {ROUNDS})"
    );
    let cache = survey.join("stamp-cache");
    let _ = std::fs::remove_dir_all(&cache);
    let cached = stream(&local).cache(&cache, u64::MAX)?;
    epoch_rate(&cached, "epoch 1, filling the cache")?;
    let epoch2 = epoch_rate(&cached, "epoch 2, from the cache")?;
    let mut s3 = None;
    for (name, urls) in remote_copies(&files)? {
        let remote = dataset(&catalog, &urls, true, &survey)?;
        torchfits_core::remote::clear_cache();
        let before = torchfits_core::remote::stats();
        let rate = epoch_rate(&stream(&remote), &format!("epoch 1, {name}"))?;
        let after = torchfits_core::remote::stats();
        let requests = (after.requests - before.requests) as f64;
        let bytes = (after.bytes - before.bytes) as f64;
        println!(
            "  {name}: {:.2} requests/image, {:.1} requests and {:.1} MB per 1000 stamps",
            requests / files.len() as f64,
            requests * 1000.0 / remote.len() as f64,
            bytes / 1e6 * 1000.0 / remote.len() as f64
        );
        if name == "S3" {
            s3 = Some((rate, requests / files.len() as f64));
        }
    }
    let remote = match s3 {
        Some((rate, per_image)) => format!("{rate:.0} items/s S3 ({per_image:.2} requests/image)"),
        None => "S3 not run (no servers)".to_string(),
    };
    println!(
        "stream: epoch 1 {epoch1:.0} items/s local ({:.2}x bare), {remote}; epoch 2 {epoch2:.0} items/s from cache; peak RSS {:.0} MiB",
        epoch1 / bare,
        peak_rss_mib()
    );
    Ok(())
}

/// The middle of `rates`.
fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// The survey stamps of a plan of `catalog` on `images` (paths or URLs), whole pixels (the bare
/// reads cut the same windows).
fn dataset(
    catalog: &Path,
    images: &[String],
    urls: bool,
    dir: &Path,
) -> Result<Arc<SurveyCutoutDataset>, Box<dyn std::error::Error>> {
    let plan = SurveyPlanner::new(catalog)
        .band("r", images)
        .hdu(1usize)
        .urls(urls)
        .cache(dir.join(if urls { "plans-remote" } else { "plans" }))
        .progress(false)
        .build()?;
    let ds = SurveyCutoutDataset::builder(plan).size(STAMP).subpixel(false).urls(urls).build()?;
    Ok(Arc::new(ds))
}

fn stream(ds: &Arc<SurveyCutoutDataset>) -> StampStream {
    StampStream::new(ds.clone(), StampBatcher::new()).batch_size(64).buffer(4096).workers(WORKERS).seed(1)
}

/// Empties the process's store of decoded tiles, so that a pass starts with none kept.
fn forget_tiles() {
    torchfits_core::set_tile_memo_bytes(0);
    torchfits_core::set_tile_memo_bytes(256 << 20);
}

/// One epoch of `stream`: items per second.
fn epoch_rate(stream: &StampStream, what: &str) -> Result<f64, Box<dyn std::error::Error>> {
    forget_tiles();
    let t = Instant::now();
    let mut items = 0;
    for batch in stream.iter() {
        items += batch?.indices.len();
    }
    let rate = items as f64 / t.elapsed().as_secs_f64();
    println!("{what}: {items} items, {rate:.0} items/s");
    Ok(rate)
}

/// The same windows as the stream's stamps, read with `read_section_into` image by image on
/// `WORKERS` threads (each a half of the plan's items, which come image by image), the files
/// opened as the datasets open them (keeping the tiles they decode): items/s.
fn bare_rate(ds: &SurveyCutoutDataset) -> Result<f64, Box<dyn std::error::Error>> {
    let plan = ds.items().plan();
    let files: Vec<PathBuf> = ds.items().image_paths().map(Path::to_path_buf).collect();
    let n = plan.len();
    let centre = (STAMP as f64 - 1.0) / 2.0;
    forget_tiles();
    let t = Instant::now();
    std::thread::scope(|s| -> Result<(), String> {
        let workers: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (plan, files) = (&plan, &files);
                s.spawn(move || -> Result<(), String> {
                    let mut out = vec![0f32; STAMP * STAMP];
                    let mut open: Option<(usize, torchfits_core::FitsFile)> = None;
                    for i in w * n / WORKERS..(w + 1) * n / WORKERS {
                        let p = plan.item(i).and_then(|it| it.placements[0]).ok_or("an unplaced item")?;
                        if open.as_ref().is_none_or(|(k, _)| *k != p.image) {
                            let options = torchfits_core::OpenOptions::new().tile_memo(true);
                            let f = options.open(&files[p.image]).map_err(|e| e.to_string())?;
                            open = Some((p.image, f));
                        }
                        let (_, f) = open.as_ref().ok_or("no file")?;
                        let image = f.image(1usize).map_err(|e| e.to_string())?;
                        let (x0, y0) = ((p.x - centre + 0.5).floor() as i64, (p.y - centre + 0.5).floor() as i64);
                        let clip = |a: i64| a.clamp(0, SIDE as i64) as usize;
                        let (xs, ys) = (clip(x0)..clip(x0 + STAMP as i64), clip(y0)..clip(y0 + STAMP as i64));
                        let len = xs.len() * ys.len();
                        image
                            .read_section_into(&Section::new(vec![ys, xs]), &mut out[..len])
                            .map_err(|e| e.to_string())?;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join().map_err(|_| "a bare reader panicked".to_string())??;
        }
        Ok(())
    })?;
    Ok(n as f64 / t.elapsed().as_secs_f64())
}

/// Each server's name and the images' URLs there.
type ServerUrls = Vec<(&'static str, Vec<String>)>;

/// The images uploaded to the S3 bucket and put in the HTTP server's folder, as URLs per
/// server; none where the servers are not running.
fn remote_copies(files: &[PathBuf]) -> Result<ServerUrls, Box<dyn std::error::Error>> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(root), Some(http), Some(bucket)) =
        (var("TORCHFITS_TEST_HTTP_ROOT"), var("TORCHFITS_TEST_HTTP_URL"), var("TORCHFITS_TEST_S3_BUCKET"))
    else {
        println!("remote epochs not run: start the servers (python3 scripts/remote_servers.py -- cargo bench ...)");
        return Ok(Vec::new());
    };
    let store = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(&bucket).build()?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (mut s3, mut web) = (Vec::new(), Vec::new());
    for (k, f) in files.iter().enumerate() {
        let name = format!("stream/{k:04}.fits");
        let bytes = std::fs::read(f)?;
        let key = object_store::path::Path::from(name.as_str());
        rt.block_on(object_store::ObjectStoreExt::put(&store, &key, bytes.into()))?;
        std::fs::create_dir_all(Path::new(&root).join("stream"))?;
        std::fs::copy(f, Path::new(&root).join(&name))?;
        s3.push(format!("s3://{bucket}/{name}"));
        web.push(format!("{http}/{name}"));
    }
    Ok(vec![("S3", s3), ("HTTP", web)])
}

/// The survey in `dir` (made once: a `done` file marks it complete): the catalog and the images.
fn make_survey(
    dir: &Path,
    images: usize,
    positions: usize,
) -> Result<(PathBuf, Vec<PathBuf>), Box<dyn std::error::Error>> {
    let files: Vec<PathBuf> = (0..images).map(|k| dir.join(format!("img/{k:04}.fits"))).collect();
    let catalog = dir.join("catalog.fits");
    if dir.join("done").exists() {
        return Ok((catalog, files));
    }
    eprintln!("stream: making the survey in {} (once)", dir.display());
    std::fs::create_dir_all(dir.join("img"))?;
    let grid = (images as f64).sqrt().ceil() as usize;
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut ra, mut dec) = (Vec::with_capacity(positions), Vec::with_capacity(positions));
    for (k, path) in files.iter().enumerate() {
        let header = image_header(k % grid, k / grid)?;
        // sky noise around 1000 and a few hundred point sources: RICE compresses it about 3x
        let mut pixels: Vec<i16> = (0..SIDE * SIDE).map(|_| 1000 + (next() % 41) as i16 - 20).collect();
        for _ in 0..300 {
            let (cx, cy) = ((next() % SIDE as u64) as usize, (next() % SIDE as u64) as usize);
            for y in cy.saturating_sub(3)..(cy + 4).min(SIDE) {
                for x in cx.saturating_sub(3)..(cx + 4).min(SIDE) {
                    pixels[y * SIDE + x] = pixels[y * SIDE + x].saturating_add(2000);
                }
            }
        }
        let mut w = WriteOptions::new().overwrite(true).create(path)?;
        let rice = Compression::new(Algorithm::Rice).tile(&[256, 256]);
        w.image(&pixels, &[SIDE, SIDE]).header(&header).compress(rice).write()?;
        w.finish()?;
        // this image's share of the positions, anywhere on it
        let wcs = torchfits_core::Wcs::from_header(&header)?;
        let share = (k + 1) * positions / images - k * positions / images;
        for _ in 0..share {
            let (x, y) = ((next() % SIDE as u64) as f64, (next() % SIDE as u64) as f64);
            let mut world = [0.0; 2];
            wcs.pixel_to_world(&[x, y], &mut world)?;
            ra.push(world[0]);
            dec.push(world[1]);
        }
    }
    let t = TableBatch::new(vec![
        ColumnData::new("RA", ColumnValues::F64(ra)),
        ColumnData::new("DEC", ColumnValues::F64(dec)),
    ])?;
    let mut w = WriteOptions::new().overwrite(true).create(&catalog)?;
    w.write_table(&t, "CATALOG", None)?;
    w.finish()?;
    std::fs::write(dir.join("done"), b"")?;
    Ok((catalog, files))
}

/// Image (i, j) of the grid: TAN, its centre one image side (and a little) from its neighbours,
/// so that the images do not overlap.
fn image_header(i: usize, j: usize) -> Result<Header, Box<dyn std::error::Error>> {
    let step = 1.05 * SIDE as f64 * SCALE;
    let dec = j as f64 * step;
    let ra = 30.0 + i as f64 * step / dec.to_radians().cos();
    let mut h = Header::new();
    for (key, v) in [
        ("CTYPE1", Value::Str("RA---TAN".into())),
        ("CTYPE2", Value::Str("DEC--TAN".into())),
        ("CRPIX1", Value::Float(SIDE as f64 / 2.0 + 0.5)),
        ("CRPIX2", Value::Float(SIDE as f64 / 2.0 + 0.5)),
        ("CRVAL1", Value::Float(ra)),
        ("CRVAL2", Value::Float(dec)),
        ("CDELT1", Value::Float(-SCALE)),
        ("CDELT2", Value::Float(SCALE)),
    ] {
        h.set(key, v, None)?;
    }
    Ok(h)
}

/// The process's peak resident set (VmHWM), MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}
