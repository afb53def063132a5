//! Whole-file inflation of gzip and compress (.Z) files into unlinked temporary files, within a
//! byte limit (cfitsio trusts the size a gzip trailer claims).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use super::LocalFile;
use crate::compression::unlzw;
use torchfits_format::error::{Error, Result};

/// Inflates the gzip stream (every member) of `file` into an unlinked temporary file, refusing
/// to write more than `max` bytes; the inflated bytes must be a FITS file.
pub(super) fn gunzip(file: File, mmap: bool, max: u64) -> Result<LocalFile> {
    inflate("gzip", mmap, max, |out| {
        let mut decoder = flate2::read::MultiGzDecoder::new(std::io::BufReader::with_capacity(1 << 16, file));
        let copied = std::io::copy(&mut (&mut decoder).take(max.saturating_add(1)), out).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof
                || e.kind() == std::io::ErrorKind::InvalidInput
                || e.kind() == std::io::ErrorKind::InvalidData
            {
                Error::decoding(format!("the gzip stream is corrupt or cut short: {e}"))
            } else {
                Error::io(e, "cannot inflate the gzip file")
            }
        })?;
        if copied > max {
            return Err(Error::limits(format!("the gzip file inflates to more than {max} bytes (Limits::max_alloc)")));
        }
        Ok(copied)
    })
}

/// As [`gunzip`], for a Unix `compress` (.Z) file.
pub(super) fn uncompress(file: File, mmap: bool, max: u64) -> Result<LocalFile> {
    inflate("compress (.Z)", mmap, max, |out| {
        unlzw::unlzw(std::io::BufReader::with_capacity(1 << 16, file), out, max).map_err(|e| match e {
            unlzw::UnlzwError::TooLarge => {
                Error::limits(format!("the compress (.Z) file inflates to more than {max} bytes (Limits::max_alloc)"))
            }
            unlzw::UnlzwError::Corrupt(why) => Error::decoding(format!("the compress (.Z) stream is corrupt: {why}")),
            unlzw::UnlzwError::Io(e) => Error::io(e, "cannot inflate the compress (.Z) file"),
        })
    })
}

/// Runs `decode` (which writes at most `max` bytes and says how many) into an unlinked
/// temporary file, which must then hold a FITS file: the [`LocalFile`] of the inflated bytes.
fn inflate(
    what: &str,
    mmap: bool,
    max: u64,
    decode: impl FnOnce(&mut std::io::BufWriter<&File>) -> Result<u64>,
) -> Result<LocalFile> {
    let scratch = unlinked_temp_file().map_err(|e| Error::io(e, "cannot make a temporary file to inflate into"))?;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, &scratch);
    let copied = decode(&mut out)?;
    if copied > max {
        return Err(Error::limits(format!("the {what} file inflates to more than {max} bytes (Limits::max_alloc)")));
    }
    out.flush().map_err(|e| Error::io(e, "cannot write the inflated file"))?;
    drop(out);
    let mut magic = [0u8; 9];
    if scratch.read_exact_at(&mut magic, 0).is_err() || &magic != b"SIMPLE  =" {
        return Err(Error::decoding(format!(
            "the {what} file does not hold a FITS file (no SIMPLE card at its start)"
        )));
    }
    let inflated = PathBuf::from(format!("/proc/self/fd/{}", scratch.as_raw_fd()));
    LocalFile::new(scratch, mmap, inflated)
}

/// A new file in the temporary directory, already unlinked: it lives as long as its handle.
fn unlinked_temp_file() -> std::io::Result<File> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = std::env::temp_dir();
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!(".torchfits-inflated-{}-{n}.fits", std::process::id()));
        match File::options().read(true).write(true).create_new(true).open(&path) {
            Ok(file) => {
                std::fs::remove_file(&path)?;
                return Ok(file);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}
