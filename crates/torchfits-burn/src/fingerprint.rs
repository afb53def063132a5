//! Fingerprints of a dataset's inputs: what a cache (of plans, of decoded stamps) is keyed by,
//! so that an entry made from other inputs is never taken for this one.

use std::path::Path;
use std::time::UNIX_EPOCH;

use torchfits_core::{Error, ErrorKind, Result};

/// FNV-1a, 64-bit: a fingerprint stable across runs and Rust versions.
pub(crate) struct Fnv(pub(crate) u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 = (self.0 ^ u64::from(x)).wrapping_mul(0x100_0000_01b3);
        }
        // a separator, so that ("ab", "c") and ("a", "bc") differ
        self.0 = (self.0 ^ 0xff).wrapping_mul(0x100_0000_01b3);
    }

    pub(crate) fn text(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    /// A file's path, size and modification time (nanoseconds); for an object in storage (a
    /// URL) its URL and version (ETag), from one open.
    pub(crate) fn file(&mut self, path: &Path, urls: bool) -> Result<()> {
        if let Some(url) = path.to_str().filter(|p| urls && torchfits_core::is_url(p)) {
            let id = torchfits_core::FitsFile::open_url(url)?.source_id();
            let id = id.ok_or_else(|| Error::new(ErrorKind::Io, "no version for the object").in_file(path))?;
            self.text(&id.location);
            self.text(&id.version);
            return Ok(());
        }
        let meta = std::fs::metadata(path)
            .map_err(|e| Error::new(ErrorKind::Io, format!("cannot read its metadata: {e}")).in_file(path))?;
        let mtime = meta.modified().ok().and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_nanos());
        self.text(&path.to_string_lossy());
        self.bytes(&meta.len().to_le_bytes());
        self.bytes(&mtime.to_le_bytes());
        Ok(())
    }
}
