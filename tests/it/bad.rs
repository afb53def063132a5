//! The bad-input corpus (`tests/bad/`, made by `tests/bad/make.py` from the FITS standard): every
//! file gives a clean error (naming the file), or where the standard allows, a correct read,
//! through every reader of the API; no panic, no hang, no allocation past the limits. The same
//! files go through every `torchfits` command in crates/torchfits-cli/tests/cli.rs.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use torchfits::{HduKind, Limits, OpenOptions};

/// What reading a file must give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// Some read fails, cleanly.
    Error,
    /// Every read succeeds.
    Ok,
}

/// Every file of tests/bad/ with its expected outcome (a file missing here fails the test).
const CORPUS: &[(&str, Expect)] = &[
    ("empty.fits", Expect::Error),
    ("random.fits", Expect::Error),
    ("not_fits.fits", Expect::Error),
    ("truncated_header.fits", Expect::Error),
    ("no_end.fits", Expect::Error),
    ("truncated_data.fits", Expect::Error),
    // the standard allows only ASCII 32-126; the bytes are kept, as astropy keeps them (with a warning)
    ("nonascii_header.fits", Expect::Ok),
    ("bitpix_12.fits", Expect::Error),
    ("naxis_negative.fits", Expect::Error),
    ("naxis_1000.fits", Expect::Error),
    ("naxis_missing_axis.fits", Expect::Error),
    ("zero_width.fits", Expect::Ok),
    ("axes_999.fits", Expect::Ok),
    ("product_overflows.fits", Expect::Error),
    ("huge_image.fits", Expect::Error),
    ("bscale_string.fits", Expect::Error),
    ("blank_float.fits", Expect::Error),
    ("blank_on_float_image.fits", Expect::Ok),
    ("table_naxis1_mismatch.fits", Expect::Error),
    ("table_bad_tform.fits", Expect::Error),
    ("table_tform_repeat_overflow.fits", Expect::Error),
    ("table_negative_pcount.fits", Expect::Error),
    ("table_truncated_rows.fits", Expect::Error),
    ("table_theap_outside.fits", Expect::Error),
    ("table_vla_outside_heap.fits", Expect::Error),
    ("table_vla_negative.fits", Expect::Error),
    ("table_tfields_missing.fits", Expect::Error),
    ("table_tnull_string.fits", Expect::Error),
    ("compressed_garbage_tiles.fits", Expect::Error),
    ("compressed_huge_tile.fits", Expect::Error),
    ("gzip_truncated.fits.gz", Expect::Error),
    ("a[1].fits", Expect::Ok),
    ("!bang.fits", Expect::Ok),
    ("pipe|name.fits", Expect::Ok),
    ("mem:__x.fits", Expect::Ok),
];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad")
}

/// Opens `path` and reads every HDU every way: header, image (whole), table (every batch), WCS.
/// The first error, if any.
fn read_everything(path: &Path) -> Result<(), torchfits::Error> {
    let limits = Limits::default().with_max_alloc(256 << 20);
    let mut file = OpenOptions::new().limits(limits).open(path)?;
    let hdus = file.hdus()?;
    let mut first: Option<torchfits::Error> = None;
    let mut keep = |r: Result<(), torchfits::Error>| {
        if let Err(e) = r
            && first.is_none()
        {
            first = Some(e);
        }
    };
    for info in &hdus {
        let i = info.index;
        keep(file.header(i).map(|_| ()));
        match info.kind {
            HduKind::Image if info.shape.as_ref().is_some_and(|s| !s.is_empty()) => {
                keep(file.image(i).and_then(|mut img| img.read_data(None)).map(|_| ()));
            }
            HduKind::BinTable | HduKind::AsciiTable => {
                keep(file.table(i).and_then(|t| t.build()).and_then(|b| b.collect::<Result<Vec<_>, _>>()).map(|_| ()));
            }
            _ => {}
        }
        let _ = file.wcs(i);
    }
    match first {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[test]
fn every_bad_file_fails_cleanly_or_reads_correctly() {
    let mut listed: Vec<&str> = CORPUS.iter().map(|(n, _)| *n).collect();
    listed.sort_unstable();
    let mut present: Vec<String> = std::fs::read_dir(dir())
        .expect("tests/bad")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "make.py")
        .collect();
    present.sort_unstable();
    assert_eq!(present, listed, "every file of tests/bad/ has an expected outcome here, and only those");
    let mut wrong = Vec::new();
    for &(name, expect) in CORPUS {
        let path = dir().join(name);
        // each file on its own thread: a panic or a hang is a failure, not the end of the test
        let (tx, rx) = mpsc::channel();
        let p = path.clone();
        std::thread::spawn(move || {
            let r = std::panic::catch_unwind(|| read_everything(&p));
            let _ = tx.send(r);
        });
        match rx.recv_timeout(Duration::from_secs(30)) {
            Err(_) => wrong.push(format!("{name}: no answer in 30 s")),
            Ok(Err(_)) => wrong.push(format!("{name}: panicked")),
            Ok(Ok(Ok(()))) if expect == Expect::Error => wrong.push(format!("{name}: read without an error")),
            Ok(Ok(Err(e))) if expect == Expect::Ok => wrong.push(format!("{name}: {e}")),
            Ok(Ok(Err(e))) => {
                let msg = e.to_string();
                if !msg.contains(name) {
                    wrong.push(format!("{name}: the error does not name the file: {msg}"));
                }
            }
            Ok(Ok(Ok(()))) => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A header of more cards than `Limits::max_header_cards` (100 000 by default: 8 MB of header,
/// made here rather than kept in the repository) is refused by the limit, naming it and the file.
#[test]
fn a_header_past_the_card_limit_is_refused() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bad-cards");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("cards_100k.fits");
    let card = |s: &str| format!("{s:<80}");
    let mut text = String::new();
    for c in ["SIMPLE  =                    T", "BITPIX  =                    8", "NAXIS   =                    0"] {
        text.push_str(&card(c));
    }
    for _ in 0..100_001 {
        text.push_str(&card("COMMENT"));
    }
    text.push_str(&card("END"));
    while !text.len().is_multiple_of(2880) {
        text.push(' ');
    }
    std::fs::write(&path, text).expect("write");
    let e = OpenOptions::new().open(&path).and_then(|mut f| f.header(0)).expect_err("past the limit");
    assert_eq!(e.kind(), torchfits::ErrorKind::Limits, "{e}");
    assert!(e.to_string().contains("cards_100k.fits"), "{e}");
    // the explicit opt-out reads it
    let mut f = OpenOptions::new().limits(Limits::unlimited()).open(&path).expect("open");
    assert!(f.header(0).expect("header").len() > 100_000);
}
