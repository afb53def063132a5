//! Checking the CHECKSUM and DATASUM keywords of every HDU of a file.

use std::path::Path;

use crate::cfitsio;
use crate::ffi::cfitsio::Handle;
use crate::io::index::Index;
use crate::source::{self, ByteSource};
use torchfits_format::error::{Error, Result};
use torchfits_format::limits::Limits;

/// The state of one checksum keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumStatus {
    /// Present and matching the bytes.
    Valid,
    /// Not in the header.
    Missing,
    /// Present and not matching: the HDU changed since it was written.
    Invalid,
}

impl ChecksumStatus {
    fn from_cfitsio(v: i32) -> Self {
        match v {
            1 => ChecksumStatus::Valid,
            0 => ChecksumStatus::Missing,
            _ => ChecksumStatus::Invalid,
        }
    }
}

/// The checksums of one HDU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HduChecksum {
    /// 0-based HDU index.
    pub index: usize,
    /// DATASUM against the data.
    pub data: ChecksumStatus,
    /// CHECKSUM against the whole HDU.
    pub hdu: ChecksumStatus,
}

/// Verifies DATASUM and CHECKSUM of every HDU of `path` (cfitsio's implementation of the FITS
/// checksum convention, independent of the one that writes them).
///
/// ```
/// use torchfits_core::{FitsWriter, WriteOptions};
/// use torchfits_core::write::{ChecksumStatus, verify};
/// # let dir = std::env::temp_dir().join(format!("torchfits-doc-verify-{}", std::process::id()));
/// # std::fs::create_dir_all(&dir)?;
/// let path = dir.join("sums.fits");
/// let mut writer = WriteOptions::new().checksum(true).create(&path)?;
/// writer.image(&[1.5f32, 2.5, 3.5], &[3]).write()?;
/// writer.finish()?;
/// let sums = verify(&path)?;
/// assert!(sums.iter().all(|s| s.hdu == ChecksumStatus::Valid && s.data == ChecksumStatus::Valid));
/// # std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn verify(path: impl AsRef<Path>) -> Result<Vec<HduChecksum>> {
    let path = path.as_ref();
    let in_file = |e: Error| e.in_file(path);
    // a gzip file is inflated here (bounded), never by cfitsio; `plain` keeps the copy open
    let plain = source::open_path(path, false, Limits::default().max_alloc).map_err(in_file)?;
    cfitsio_can_take_file(path, &plain)?;
    let data_path = plain.cfitsio_path().unwrap_or(path);
    let mut handle = Handle::open(data_path, false).map_err(in_file)?;
    let n = handle.num_hdus().map_err(in_file)?;
    let mut out = Vec::with_capacity(n);
    for index in 0..n {
        handle.move_to(index).map_err(|e| in_file(e.in_hdu(index)))?;
        let (data, hdu) = handle.verify_checksum().map_err(|e| in_file(e.in_hdu(index)))?;
        out.push(HduChecksum {
            index,
            data: ChecksumStatus::from_cfitsio(data),
            hdu: ChecksumStatus::from_cfitsio(hdu),
        });
    }
    Ok(out)
}

/// Checks every HDU of `file` (plain, or an inflated gzip file; named `path` in errors) with
/// [`cfitsio::cfitsio_can_take`].
fn cfitsio_can_take_file(path: &Path, file: &dyn ByteSource) -> Result<()> {
    let mut index = Index::default();
    let limits = Limits::default();
    let n = index.count(file, &limits).unwrap_or(0);
    for i in 0..n {
        if let Ok(Some(span)) = index.get(file, i, &limits) {
            cfitsio::cfitsio_can_take(&span.header).map_err(|e| e.in_hdu(i).in_file(path))?;
        }
    }
    Ok(())
}
