//! Whole-file inflation of gzip, compress (.Z) and zip files into unlinked temporary files, within
//! a byte limit (cfitsio trusts the size a gzip trailer or a zip header claims).

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

/// As [`gunzip`], for the first member of a zip file (stored or deflated), as cfitsio and astropy
/// read a zipped FITS file. The member's declared sizes are not trusted: inflation stops at `max`.
pub(super) fn unzip(file: File, mmap: bool, max: u64) -> Result<LocalFile> {
    let mut head = [0u8; 30];
    file.read_exact_at(&mut head, 0).map_err(|_| Error::decoding("the zip file is cut short in its first header"))?;
    let word = |at: usize| head.get(at..at + 2).and_then(|b| b.try_into().ok()).map_or(0, u16::from_le_bytes);
    if head[..4] != *b"PK\x03\x04" {
        return Err(Error::decoding("the zip file does not start with a member (no local file header)"));
    }
    let method = word(8);
    let start = 30 + u64::from(word(26)) + u64::from(word(28));
    let stored = u64::from(head.get(18..22).and_then(|b| b.try_into().ok()).map_or(0, u32::from_le_bytes));
    let member = std::io::BufReader::with_capacity(1 << 16, AtOffset { file, at: start });
    inflate("zip", mmap, max, |out| {
        let copied = match method {
            0 => std::io::copy(&mut member.take(stored.min(max.saturating_add(1))), out),
            8 => std::io::copy(&mut flate2::read::DeflateDecoder::new(member).take(max.saturating_add(1)), out),
            other => {
                return Err(Error::unsupported(format!(
                    "a zip member compressed by method {other} (only stored and deflated members are read)"
                )));
            }
        };
        let copied = copied.map_err(|e| Error::decoding(format!("the zip member is corrupt or cut short: {e}")))?;
        if copied > max {
            return Err(Error::limits(format!("the zip file inflates to more than {max} bytes (Limits::max_alloc)")));
        }
        Ok(copied)
    })
}

/// A reader of `file` from byte `at` on (positional reads: the file's own offset is not used).
struct AtOffset {
    file: File,
    at: u64,
}

impl Read for AtOffset {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
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
pub(super) fn unlinked_temp_file() -> std::io::Result<File> {
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
