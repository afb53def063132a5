//! The bad-input corpus (`tests/bad/`, made by `tests/bad/make.py` from the FITS standard): every
//! file gives a clean error (naming the file), or where the standard allows, a correct read,
//! through every reader of the API; no panic, no hang, no allocation past the limits. The same
//! files go through every `torchfits` command in crates/torchfits-cli/tests/cli.rs.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use torchfits::{Limits, OpenOptions};

#[path = "../read_every_way.rs"]
mod read_every_way;
use read_every_way::read_everything;

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
    ("compressed_descriptor_past_heap.fits", Expect::Error),
    ("compressed_unreadable_cards.fits", Expect::Error),
    ("compressed_gzip_wrong_size.fits", Expect::Error),
    ("compressed_uncompressed_data_too_long.fits", Expect::Error),
    ("compressed_empty_tiles.fits", Expect::Error),
    // a fuzz finding (not made by make.py): compressed images after one whose ZTILE1 is 0, on
    // which cfitsio divided by zero (SIGFPE) when a handle was moved past it
    ("compressed_ztile_zero.fits", Expect::Error),
    // a fuzz finding: a compressed image whose table header is binary garbage, which torchfits
    // cannot decode and cfitsio parsed into a 15 PB allocation
    ("compressed_garbage_header_to_cfitsio.fits", Expect::Error),
    // a fuzz finding: `ZTILE2 = 0   16`, which astropy and torchfits read as 16 and cfitsio as 0
    // (it divided by it, SIGFPE, walking past this HDU to an image torchfits left to it)
    ("compressed_spaced_ztile.fits", Expect::Error),
    ("end_card_with_bytes_after.fits", Expect::Ok),
    ("compressed_hcompress_wrong_size.fits", Expect::Error),
    ("gzip_truncated.fits.gz", Expect::Error),
    ("pk_declares_4gb.fits", Expect::Error),
    ("ascii_table_nonascii_tform.fits", Expect::Error),
    ("compressed_float_garbage_tiles.fits", Expect::Error),
    ("zip_declares_4gb.fits.zip", Expect::Error),
    ("lzw_truncated.fits.Z", Expect::Error),
    ("pack_file.fits.z", Expect::Error),
    ("lzh_file.fits.z", Expect::Error),
    ("a[1].fits", Expect::Ok),
    ("!bang.fits", Expect::Ok),
    ("pipe|name.fits", Expect::Ok),
    ("mem:__x.fits", Expect::Ok),
    // headers and descriptors that claim more bytes than the file has (a few kB): an error before
    // the claim is allocated
    ("claim_gzip_1_tile_4gb.fits", Expect::Error),
    ("claim_gzip_1_tile_1tb.fits", Expect::Error),
    ("claim_gzip_2_tile_4gb.fits", Expect::Error),
    ("claim_rice_1_tile_4gb.fits", Expect::Error),
    ("claim_hcompress_1_tile_4gb.fits", Expect::Error),
    ("claim_hcompress_1_tile_1tb.fits", Expect::Error),
    ("claim_plio_1_tile_4gb.fits", Expect::Error),
    ("claim_nocompress_tile_4gb.fits", Expect::Error),
    ("claim_gzip_compressed_data_4gb.fits", Expect::Error),
    ("claim_uncompressed_data_4gb.fits", Expect::Error),
    ("claim_table_vla_4gb.fits", Expect::Error),
    ("claim_table_vla_1tb.fits", Expect::Error),
    ("claim_table_rows_2tb.fits", Expect::Error),
];

fn dir() -> PathBuf {
    read_every_way::bad_dir()
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
    let e = OpenOptions::new().open(&path).and_then(|f| f.header(0)).expect_err("past the limit");
    assert_eq!(e.kind(), torchfits::ErrorKind::Limits, "{e}");
    assert!(e.to_string().contains("cards_100k.fits"), "{e}");
    // the explicit opt-out reads it
    let f = OpenOptions::new().limits(Limits::unlimited()).open(&path).expect("open");
    assert!(f.header(0).expect("header").len() > 100_000);
}

/// An END card with bytes after END ends the header, as in cfitsio and astropy: torchfits once
/// read on to the next END, delimiting the HDUs differently from cfitsio, which then decoded
/// another HDU than the one torchfits had checked (a fuzz finding). Every read through cfitsio
/// now also checks that cfitsio finds the HDU's data where torchfits does.
#[test]
fn an_end_card_with_bytes_after_it_ends_the_header() {
    let f = OpenOptions::new().open(dir().join("end_card_with_bytes_after.fits")).expect("open");
    assert_eq!(f.hdu_count().expect("count"), 2);
    let px: Vec<i16> = f.image(1).expect("image").read().expect("read");
    assert_eq!(px, (0..9).collect::<Vec<i16>>());
    let first: Vec<i16> = f.image(0).expect("image").read().expect("read");
    assert_eq!(first, vec![1, 2, 3, 4]);
}

/// A Unix `compress` (LZW, ncompress's format without table clears) stream of `data`.
fn lzw_compress(data: &[u8]) -> Vec<u8> {
    const MAX_BITS: u32 = 16;
    let mut out = vec![0x1f, 0x9d, MAX_BITS as u8];
    let (mut acc, mut bits, mut since) = (0u64, 0u32, 0u64);
    let mut put = |code: u32, width: u32, out: &mut Vec<u8>, since: &mut u64| {
        acc |= u64::from(code) << bits;
        bits += width;
        *since += u64::from(width);
        while bits >= 8 {
            out.push(acc as u8);
            acc >>= 8;
            bits -= 8;
        }
    };
    let mut table = std::collections::HashMap::new();
    let (mut width, mut max_code, mut free) = (9u32, 511u32, 256u32);
    let Some((&first, rest)) = data.split_first() else { return out };
    let mut w = u32::from(first);
    for &c in rest {
        if let Some(&x) = table.get(&(w, c)) {
            w = x;
            continue;
        }
        put(w, width, &mut out, &mut since);
        // the reader widens its codes when its table outgrows them, after a group of eight
        if free > max_code && width < MAX_BITS {
            let group = u64::from(width) * 8;
            let pad = (group - since % group) % group;
            for _ in 0..pad {
                put(0, 1, &mut out, &mut since);
            }
            since = 0;
            width += 1;
            max_code = if width == MAX_BITS { 1 << MAX_BITS } else { (1 << width) - 1 };
        }
        if free < 1 << MAX_BITS {
            table.insert((w, c), free);
            free += 1;
        }
        w = u32::from(c);
    }
    put(w, width, &mut out, &mut since);
    put(0, 7, &mut out, &mut since); // flush the last bits
    out
}

/// A compress (.Z) bomb, made here, is refused by the limit while torchfits inflates it (cfitsio
/// would grow its buffer as far as the stream goes); within the limit it reads as the plain file.
#[test]
fn a_compress_file_inflating_past_the_limit_is_refused() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bad-lzw");
    std::fs::create_dir_all(&dir).expect("dir");
    let mut plain = Vec::new();
    for c in [
        "SIMPLE  =                    T",
        "BITPIX  =                    8",
        "NAXIS   =                    2",
        "NAXIS1  =                 4096",
        "NAXIS2  =                 4096",
        "END",
    ] {
        plain.extend_from_slice(format!("{c:<80}").as_bytes());
    }
    plain.resize(2880, b' ');
    plain.resize(2880 + (16 << 20), 7);
    let bomb = dir.join("bomb.fits.Z");
    std::fs::write(&bomb, lzw_compress(&plain)).expect("write");
    assert!(std::fs::metadata(&bomb).expect("stat").len() < 1 << 20);
    let e =
        OpenOptions::new().limits(Limits::default().with_max_alloc(8 << 20)).open(&bomb).expect_err("past the limit");
    assert_eq!(e.kind(), torchfits::ErrorKind::Limits, "{e}");
    assert!(e.to_string().contains("bomb.fits.Z") && e.to_string().contains("max_alloc"), "{e}");
    let f = OpenOptions::new().open(&bomb).expect("open");
    let px: Vec<u8> = f.image(0).expect("image").read().expect("read");
    assert_eq!(px.len(), 16 << 20);
    assert!(px.iter().all(|&v| v == 7));
}

/// A gzip bomb (a few kB that inflate past `Limits::max_alloc`, made here) is refused by the limit
/// while it inflates, naming it and the file; a gzip file within the limit reads as the plain file.
/// cfitsio never sees either: it would allocate what the gzip trailer claims.
#[test]
fn a_gzip_file_inflating_past_the_limit_is_refused() {
    use std::io::Write;
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bad-gzip");
    std::fs::create_dir_all(&dir).expect("dir");
    let card = |s: &str| format!("{s:<80}");
    let mut head = String::new();
    for c in [
        "SIMPLE  =                    T",
        "BITPIX  =                    8",
        "NAXIS   =                    2",
        "NAXIS1  =                 8192",
        "NAXIS2  =                 4096",
        "END",
    ] {
        head.push_str(&card(c));
    }
    while !head.len().is_multiple_of(2880) {
        head.push(' ');
    }
    let write = |name: &str| {
        let path = dir.join(name);
        let mut gz =
            flate2::write::GzEncoder::new(std::fs::File::create(&path).expect("create"), flate2::Compression::fast());
        gz.write_all(head.as_bytes()).expect("write");
        let zeros = vec![7u8; 1 << 20];
        for _ in 0..32 {
            gz.write_all(&zeros).expect("write");
        }
        gz.finish().expect("finish");
        path
    };
    let bomb = write("bomb.fits.gz");
    assert!(std::fs::metadata(&bomb).expect("stat").len() < 1 << 20);
    let e =
        OpenOptions::new().limits(Limits::default().with_max_alloc(16 << 20)).open(&bomb).expect_err("past the limit");
    assert_eq!(e.kind(), torchfits::ErrorKind::Limits, "{e}");
    assert!(e.to_string().contains("bomb.fits.gz") && e.to_string().contains("max_alloc"), "{e}");
    // within the limit: read through the inflated copy, compressed image paths included
    let f = OpenOptions::new().open(&bomb).expect("open");
    let img = f.image(0).expect("image");
    assert_eq!(img.shape(), &[4096, 8192]);
    let px: Vec<u8> = img.read_section(&torchfits::Section::new(vec![4000..4096, 100..200])).expect("read");
    assert!(px.iter().all(|&v| v == 7));
    let sums = torchfits::write::verify(&bomb).expect("verify");
    assert_eq!(sums.len(), 1);
}
