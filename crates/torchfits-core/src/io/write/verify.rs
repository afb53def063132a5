//! Checking the CHECKSUM and DATASUM keywords of every HDU of a file.

use std::path::Path;

use crate::io::index::{Index, data_size};
use crate::source::{self, ByteSource};
use torchfits_format::checksum;
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
    /// The state of a keyword: missing when absent or blank, else whether `matches`.
    fn of(value: Option<&str>, matches: impl FnOnce(&str) -> bool) -> Self {
        match value.map(str::trim) {
            None | Some("") => ChecksumStatus::Missing,
            Some(v) if matches(v) => ChecksumStatus::Valid,
            Some(_) => ChecksumStatus::Invalid,
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

/// Verifies DATASUM and CHECKSUM of every HDU of `path`, as cfitsio's `ffvcks` verifies them: a
/// keyword absent or blank is missing; DATASUM must equal the sum of the data's blocks, and the
/// whole HDU (header and data blocks) must sum to -0 (or 0). Read in Rust, a MiB at a time; the
/// writer's sums are checked independently by astropy and fitsverify in the test suite.
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
    let limits = Limits::default();
    // a gzip, .Z or zip file is inflated (bounded) into `file`
    let file = source::open_path(path, false, limits.max_alloc).map_err(in_file)?;
    let mut index = Index::default();
    let n = index.count(&file, &limits).map_err(in_file)?;
    let mut out = Vec::with_capacity(n);
    let mut header_start = 0;
    for i in 0..n {
        let span = index
            .get(&file, i, &limits)
            .map_err(in_file)?
            .ok_or_else(|| in_file(Error::decoding("an HDU vanished")))?;
        // the last HDU's padding may be missing from the file: it sums as zeros
        let data_len = data_size(&span.header).map_err(|e| in_file(e.in_hdu(i)))?;
        if span.data_start.saturating_add(data_len) > file.len() {
            return Err(in_file(Error::decoding("the file is truncated: it ends inside the data").in_hdu(i)));
        }
        let data = sum_of(&file, span.data_start, span.data_end.min(file.len())).map_err(|e| in_file(e.in_hdu(i)))?;
        let header = sum_of(&file, header_start, span.data_start).map_err(|e| in_file(e.in_hdu(i)))?;
        let whole = checksum::add(header, data);
        // DATASUM is the data's sum in decimal; CHECKSUM makes the whole HDU sum to -0 (or 0)
        let datasum = |v: &str| v.parse::<f64>().unwrap_or(0.0) as u64 == u64::from(data);
        out.push(HduChecksum {
            index: i,
            data: ChecksumStatus::of(span.header.get_str("DATASUM"), datasum),
            hdu: ChecksumStatus::of(span.header.get_str("CHECKSUM"), |_| whole == 0 || whole == u32::MAX),
        });
        header_start = span.data_end;
    }
    Ok(out)
}

/// The ones' complement sum of bytes `start..end` of `file`, read a MiB at a time.
fn sum_of(file: &dyn ByteSource, start: u64, end: u64) -> Result<u32> {
    if end > file.len() {
        return Err(Error::decoding("the file is truncated: it ends inside this HDU"));
    }
    let mut sum = checksum::Summer::default();
    let mut buf = vec![0u8; (end - start).min(1 << 20) as usize];
    let mut at = start;
    while at < end {
        let n = buf.len().min((end - at) as usize);
        let chunk = buf.get_mut(..n).unwrap_or_default();
        file.read_bytes_at(chunk, at)?;
        sum.feed(chunk);
        at += n as u64;
    }
    Ok(sum.finish())
}
