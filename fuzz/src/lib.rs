//! What the fuzz targets share: reading a file every way, and writing fuzz input to a file.
//!
//! A target fails only on a crash (a panic, a signal, a sanitizer report, a timeout or an
//! allocation past libFuzzer's `-rss_limit_mb`); an `Err` from torchfits is the right answer to a
//! bad file, but it must name the file.

use std::io::Write;
use std::path::{Path, PathBuf};

use torchfits_core::table::TableSchema;
use torchfits_core::{Error, FitsFile, HduKind, Limits, OpenOptions, Section};

/// The limits every target reads under: small enough that libFuzzer's 2 GB RSS limit catches any
/// allocation torchfits makes past them.
pub fn limits() -> Limits {
    Limits::default().with_max_alloc(64 << 20).with_max_header_cards(20_000).with_max_hdus(1000)
}

/// A file of this process's own in /dev/shm (or the temporary directory), holding `bytes`. It
/// panics only if the machine cannot write a scratch file, which is the harness's failure, not a
/// finding (the message says so).
pub fn scratch_file(name: &str, bytes: &[u8]) -> PathBuf {
    let dir = if Path::new("/dev/shm").is_dir() { PathBuf::from("/dev/shm") } else { std::env::temp_dir() };
    let path = dir.join(format!("torchfits-fuzz-{}-{name}.fits", std::process::id()));
    let mut f = std::fs::File::create(&path).expect("the scratch file can be created");
    f.write_all(bytes).expect("the scratch file can be written");
    path
}

/// An error must say which file (`name`) it is about.
fn check(name: &str, r: Result<(), Error>) {
    if let Err(e) = r {
        let text = e.to_string();
        assert!(text.contains(name), "the error does not name the file: {text}");
    }
}

/// Opens `path` and reads every HDU every way: header, WCS (and a few points through it), the
/// whole image and a corner section of it (also into f32, u8 and i64), every table batch whole,
/// projected to its last column, sliced to its last row and through a filter.
pub fn read_everything(path: &Path) {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    match OpenOptions::new().limits(limits()).open(path) {
        Ok(file) => read_file_everything(&file, name),
        Err(e) => check(name, Err(e)),
    }
}

/// Reads every HDU of an open `file` every way, as [`read_everything`] does; every error must
/// name `name`.
pub fn read_file_everything(file: &FitsFile, name: &str) {
    let hdus = match file.hdus() {
        Ok(h) => h,
        Err(e) => return check(name, Err(e)),
    };
    for info in &hdus {
        let i = info.index;
        check(name, file.header(i).map(|_| ()));
        if let Ok(wcs) = file.wcs(i) {
            let n = wcs.naxis();
            let pixels: Vec<f64> = (0..3 * n).map(|k| (k as f64) * 7.5 - 3.0).collect();
            let mut world = vec![0.0; pixels.len()];
            let _ = wcs.pixel_to_world(&pixels, &mut world);
            let mut back = vec![0.0; pixels.len()];
            let _ = wcs.world_to_pixel(&world, &mut back);
        }
        match info.kind {
            HduKind::Image if info.shape.as_ref().is_some_and(|s| !s.is_empty()) => {
                let shape = info.shape.clone().unwrap_or_default();
                check(name, file.image(i).and_then(|img| img.read_data(None)).map(|_| ()));
                let corner = Section::new(shape.iter().map(|&n| n.saturating_sub(2)..n).collect());
                check(name, file.image(i).and_then(|img| img.read_data(Some(&corner))).map(|_| ()));
                // converted into other types: a value that does not fit is an error
                check(name, file.image(i).and_then(|img| img.read_section::<f32>(&corner)).map(|_| ()));
                check(name, file.image(i).and_then(|img| img.read_section::<u8>(&corner)).map(|_| ()));
                check(name, file.image(i).and_then(|img| img.read_section::<i64>(&corner)).map(|_| ()));
            }
            HduKind::BinTable | HduKind::AsciiTable => {
                check(
                    name,
                    file.table(i).and_then(|t| t.build()).and_then(|b| b.collect::<Result<Vec<_>, _>>()).map(|_| ()),
                );
                let last = file.table(i).ok().and_then(|t| t.schema().columns.last().map(|c| c.name.clone()));
                if let Some(last) = last {
                    check(
                        name,
                        file.table(i)
                            .and_then(|t| t.with_columns(&[last.as_str()]))
                            .and_then(|t| {
                                let n = t.schema().nrows;
                                t.with_rows(n.saturating_sub(1)..n)
                            })
                            .and_then(|t| t.with_batch_rows(3).build())
                            .and_then(|b| b.collect::<Result<Vec<_>, _>>())
                            .map(|_| ()),
                    );
                }
                let numeric = file.table(i).ok().and_then(|t| first_numeric(t.schema()));
                if let Some(col) = numeric {
                    let expr = format!("{col} > 0 || {col} == 0");
                    check(
                        name,
                        file.table(i)
                            .and_then(|t| t.with_filter(&expr))
                            .and_then(|t| t.build())
                            .and_then(|b| b.collect::<Result<Vec<_>, _>>())
                            .map(|_| ()),
                    );
                }
            }
            _ => {}
        }
    }
}

/// A scalar numeric column whose name the filter language can spell.
fn first_numeric(schema: &TableSchema) -> Option<String> {
    schema
        .columns
        .iter()
        .find(|c| {
            c.repeat == 1
                && c.variable.is_none()
                && !c.tform.to_ascii_uppercase().contains('A')
                && !c.name.is_empty()
                && c.name.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
                && c.name.chars().next().is_some_and(|ch| ch.is_ascii_alphabetic())
        })
        .map(|c| c.name.clone())
}

/// A FITS header of 80-character cards from `cards`, ended and padded to 2880 bytes.
pub fn header_block(cards: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in cards {
        let mut card: Vec<u8> = c.bytes().take(80).collect();
        card.resize(80, b' ');
        out.extend_from_slice(&card);
    }
    let mut end = b"END".to_vec();
    end.resize(80, b' ');
    out.extend_from_slice(&end);
    let pad = out.len().div_ceil(2880) * 2880;
    out.resize(pad, b' ');
    out
}
