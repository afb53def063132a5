//! Reading a file every way the API offers, shared by the bad-input test (tests/it/bad.rs) and
//! the allocation test (tests/alloc.rs), which measures the peak of the same reads.

use std::path::{Path, PathBuf};

use torchfits::{HduKind, Limits, OpenOptions, Section};

/// The allocation limit the reads run under.
pub const MAX_ALLOC: u64 = 256 << 20;

/// tests/bad/.
pub fn bad_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad")
}

/// Opens `path` and reads every HDU every way: header, image (whole, and its last 2 x 2 corner),
/// table (every batch), WCS.
/// The first error, if any.
pub fn read_everything(path: &Path) -> Result<(), torchfits::Error> {
    let limits = Limits::default().with_max_alloc(MAX_ALLOC);
    let file = OpenOptions::new().limits(limits).open(path)?;
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
                keep(file.image(i).and_then(|img| img.read_data(None)).map(|_| ()));
                // and a small section, which a whole-image limit does not stop
                let shape = info.shape.clone().unwrap_or_default();
                let corner = Section::new(shape.iter().map(|&n| n.saturating_sub(2)..n).collect());
                keep(file.image(i).and_then(|img| img.read_data(Some(&corner))).map(|_| ()));
                // and converted into other types (a value that does not fit is an error)
                let _ = file.image(i).and_then(|img| img.read_section::<f32>(&corner));
                let _ = file.image(i).and_then(|img| img.read_section::<u8>(&corner));
                let _ = file.image(i).and_then(|img| img.read_section::<i32>(&corner));
                let _ = file.image(i).and_then(|img| img.read_section::<u64>(&corner));
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
