//! Reading every file of the bad-input corpus, of the fixtures and of ../shared/corpus every way
//! (tests/read_every_way.rs) opens no cfitsio handle: torchfits' own Rust code reads headers,
//! tables, images and every tile codec. Its own binary: the count of handles is per process.

use std::path::{Path, PathBuf};

#[path = "read_every_way.rs"]
mod read_every_way;
use read_every_way::{bad_dir, read_everything};

/// The FITS files of `dir` (not its scripts).
fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && !p.extension().is_some_and(|e| ["py", "npy", "md"].iter().any(|x| e == *x)))
        .collect();
    out.sort();
    out
}

#[test]
fn reading_every_file_every_way_opens_no_cfitsio_handle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = files(&bad_dir());
    for dir in ["tests/data", "examples/data", "../shared/corpus/images-tables", "../shared/corpus/wcs"] {
        all.extend(files(&root.join(dir)));
    }
    assert!(all.len() > 60, "{} files", all.len());
    let mut opened = Vec::new();
    for path in &all {
        let before = torchfits::cfitsio_handles_opened();
        let _ = read_everything(path);
        if torchfits::cfitsio_handles_opened() != before {
            opened.push(path.display().to_string());
        }
    }
    assert!(opened.is_empty(), "cfitsio opened:\n{}", opened.join("\n"));
}
