//! Survey-scale planning: a synthetic survey of 10 000 TAN-SIP images of 4096 x 4096 pixels
//! tiling about 2 000 square degrees with overlaps (sparse files: only their headers are
//! written, and only headers are read) and a catalog of 10^8 positions with a 64-bit ID,
//! planned with `SurveyPlanner`, then planned again from the cache.
//!
//! cargo bench -p torchfits-burn --bench plan -- [--dir DIR] [--images 10000] [--rows 100000000]
//!
//! The survey is made once into DIR (default target/tmp/plan-bench; about 2.4 GB of catalog and
//! 2.7 GB of plan on disk, the images sparse). The last line:
//! `plan: <rows> rows x <images> images in <T> s, peak RSS <M> MiB, <P> placed; from cache in <C> s`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use torchfits_burn::SurveyPlanner;

/// Pixels on a side.
const SIDE: usize = 4096;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it
    if !std::env::args().any(|a| a == "--bench") {
        eprintln!("plan: a benchmark; run it with cargo bench -p torchfits-burn --bench plan");
        return Ok(());
    }
    let mut dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("plan-bench");
    let (mut images, mut rows) = (10_000usize, 100_000_000usize);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--dir" => dir = args.next().ok_or("--dir DIR")?.into(),
            "--images" => images = args.next().ok_or("--images N")?.parse()?,
            "--rows" => rows = args.next().ok_or("--rows N")?.parse()?,
            _ => {}
        }
    }
    let grid = (images as f64).sqrt().ceil() as usize;
    let survey = dir.join(format!("survey-{images}-{rows}"));
    let (catalog, files) = make_survey(&survey, grid, images, rows)?;
    let cache = survey.join("plans");
    let _ = std::fs::remove_dir_all(&cache);
    // SAFETY: nothing but this benchmark writes its plan folder while the plans live (the
    // planner renames new files into place), so the maps stay whole; a plan of 10^8 items is
    // 2.7 GB, mapped as a survey-scale run maps it
    #[allow(unsafe_code, reason = "SurveyPlanner::map_plan's contract, kept by the benchmark")]
    let planner = || unsafe { SurveyPlanner::new(&catalog).images(&files).targets(&["id"]).cache(&cache).map_plan() };
    let t0 = Instant::now();
    let plan = planner().build()?;
    let planned = t0.elapsed().as_secs_f64();
    let peak = peak_rss_mib();
    let placed = plan.placed_rows();
    assert!(!plan.from_cache());
    drop(plan);
    let t1 = Instant::now();
    let again = planner().progress(false).build()?;
    let cached = t1.elapsed().as_secs_f64();
    assert!(again.from_cache(), "the second plan comes from the cache");
    println!(
        "plan: {} rows x {} images in {planned:.1} s, peak RSS {peak:.0} MiB, {placed} placed; from cache in {cached:.2} s",
        again.rows(),
        files.len()
    );
    Ok(())
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

/// One header card.
fn card(key: &str, value: &str) -> String {
    format!("{key:<8}= {value:>20}").chars().chain(std::iter::repeat(' ')).take(80).collect()
}

fn text(s: &str) -> String {
    format!("'{s:<8}'")
}

fn real(v: f64) -> String {
    format!("{v:.15E}")
}

/// A header's bytes: the cards, END, blanks to a whole 2880-byte block.
fn header_bytes(cards: &[String]) -> Vec<u8> {
    let mut h: String = cards.concat();
    h.push_str(&format!("{:<80}", "END"));
    let mut bytes = h.into_bytes();
    bytes.resize(bytes.len().div_ceil(2880) * 2880, b' ');
    bytes
}

/// Image (i, j) of the grid: its centre steps 0.9 of an image side in declination, and in
/// right ascension by the side over cos(dec), so that neighbours overlap by about a tenth.
fn image_header(i: usize, j: usize, grid: usize) -> Vec<u8> {
    let scale = 0.43 / 3600.0; // degrees per pixel: a 0.49 degree image
    let step = 0.9 * SIDE as f64 * scale;
    let dec = (j as f64 - (grid as f64 - 1.0) / 2.0) * step;
    let ra = (i as f64 * step / dec.to_radians().cos()).rem_euclid(360.0);
    let turn = ((i * 7 + j * 3) % 11) as f64 * 0.1_f64.to_radians();
    let (c, s) = (turn.cos(), turn.sin());
    let mut cards = vec![
        card("SIMPLE", "T"),
        card("BITPIX", "-32"),
        card("NAXIS", "2"),
        card("NAXIS1", &SIDE.to_string()),
        card("NAXIS2", &SIDE.to_string()),
        card("CTYPE1", &text("RA---TAN-SIP")),
        card("CTYPE2", &text("DEC--TAN-SIP")),
        card("CRPIX1", &real(2048.5)),
        card("CRPIX2", &real(2048.5)),
        card("CRVAL1", &real(ra)),
        card("CRVAL2", &real(dec)),
        card("CD1_1", &real(-scale * c)),
        card("CD1_2", &real(scale * s)),
        card("CD2_1", &real(scale * s)),
        card("CD2_2", &real(scale * c)),
        card("A_ORDER", "2"),
        card("B_ORDER", "2"),
    ];
    for (k, v) in
        [("A_2_0", 2e-7), ("A_0_2", -1e-7), ("A_1_1", 5e-8), ("B_2_0", 1e-7), ("B_0_2", 3e-7), ("B_1_1", -4e-8)]
    {
        cards.push(card(k, &real(v)));
    }
    header_bytes(&cards)
}

/// The survey in `dir` (made once: a `done` file marks it complete).
fn make_survey(dir: &Path, grid: usize, images: usize, rows: usize) -> std::io::Result<(PathBuf, Vec<PathBuf>)> {
    let files: Vec<PathBuf> = (0..images).map(|k| dir.join(format!("img/{:03}/{k:06}.fits", k / 1000))).collect();
    let catalog = dir.join("catalog.fits");
    if dir.join("done").exists() {
        return Ok((catalog, files));
    }
    eprintln!("plan: making the survey in {} (once)", dir.display());
    let data = (SIDE * SIDE * 4).div_ceil(2880) * 2880;
    for (k, path) in files.iter().enumerate() {
        std::fs::create_dir_all(path.parent().unwrap_or(dir))?;
        let mut f = std::fs::File::create(path)?;
        let header = image_header(k % grid, k / grid, grid);
        f.write_all(&header)?;
        // the pixels: a hole in the file, never read
        f.set_len((header.len() + data) as u64)?;
    }
    write_catalog(&catalog, grid, rows)?;
    std::fs::write(dir.join("done"), b"")?;
    Ok((catalog, files))
}

/// A FITS binary table of `rows` positions (ra, dec, id), uniform over the grid's declination
/// band and right ascensions a little beyond it, written in blocks.
fn write_catalog(path: &Path, grid: usize, rows: usize) -> std::io::Result<()> {
    let scale = 0.43 / 3600.0;
    let step = 0.9 * SIDE as f64 * scale;
    let half = grid as f64 / 2.0 * step;
    let cards = vec![
        card("XTENSION", &text("BINTABLE")),
        card("BITPIX", "8"),
        card("NAXIS", "2"),
        card("NAXIS1", "24"),
        card("NAXIS2", &rows.to_string()),
        card("PCOUNT", "0"),
        card("GCOUNT", "1"),
        card("TFIELDS", "3"),
        card("TTYPE1", &text("ra")),
        card("TFORM1", &text("D")),
        card("TTYPE2", &text("dec")),
        card("TFORM2", &text("D")),
        card("TTYPE3", &text("id")),
        card("TFORM3", &text("K")),
        card("EXTNAME", &text("CATALOG")),
    ];
    let mut f = std::io::BufWriter::with_capacity(1 << 22, std::fs::File::create(path)?);
    f.write_all(&header_bytes(&[card("SIMPLE", "T"), card("BITPIX", "8"), card("NAXIS", "0"), card("EXTEND", "T")]))?;
    f.write_all(&header_bytes(&cards))?;
    let mut state = 0x853c_49e6_748f_ea9bu64;
    let mut next = || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let mut block = Vec::with_capacity(24 << 16);
    for r in 0..rows {
        // uniform on the sphere within the band: sin(dec) uniform
        let (s0, s1) = ((-half).to_radians().sin(), half.to_radians().sin());
        let dec = (s0 + (s1 - s0) * next()).asin().to_degrees();
        let ra = -0.05 * half + next() * (grid as f64 * step * 1.02);
        block.extend_from_slice(&ra.rem_euclid(360.0).to_be_bytes());
        block.extend_from_slice(&dec.to_be_bytes());
        block.extend_from_slice(&((1i64 << 62) + r as i64).to_be_bytes());
        if block.len() >= 24 << 16 {
            f.write_all(&block)?;
            block.clear();
        }
    }
    f.write_all(&block)?;
    let written = 24 * rows;
    f.write_all(&vec![0u8; written.div_ceil(2880) * 2880 - written])?;
    f.flush()
}
