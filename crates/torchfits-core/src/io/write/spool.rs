//! Bytes a writer must put after others it does not have yet (a table's heap after its rows):
//! appended to a scratch file beside the output, read back once in order, and the file removed
//! then or when the spool is dropped (a write left incomplete).

use std::fs::File;
use std::io::{BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use torchfits_format::error::{Error, Result};

use super::TMP_COUNTER;

/// A scratch file made on the first bytes appended.
#[derive(Debug)]
pub(super) struct Spool {
    /// The scratch file's name: this path, a number, and `what`.
    near: PathBuf,
    what: &'static str,
    file: Option<(BufWriter<File>, PathBuf)>,
    len: u64,
}

impl Spool {
    /// An empty spool whose file, when there is one, goes beside `near`, named for `what`.
    pub(super) fn new(near: &Path, what: &'static str) -> Spool {
        Spool { near: near.to_path_buf(), what, file: None, len: 0 }
    }

    /// Bytes appended so far.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Appends `bytes`; the offset they start at.
    pub(super) fn append(&mut self, bytes: &[u8]) -> Result<u64> {
        let at = self.len;
        if bytes.is_empty() {
            return Ok(at);
        }
        let file = match &mut self.file {
            Some((f, _)) => f,
            None => {
                let n = TMP_COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let path = PathBuf::from(format!("{}.{n}.{}", self.near.display(), self.what));
                let f = File::options()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&path)
                    .map_err(|e| Error::io(e, &format!("cannot create the {} scratch file", self.what)))?;
                &mut self.file.insert((BufWriter::new(f), path)).0
            }
        };
        file.write_all(bytes).map_err(|e| Error::io(e, &format!("cannot write the {} scratch file", self.what)))?;
        self.len += bytes.len() as u64;
        Ok(at)
    }

    /// Hands every byte appended to `out`, in order, a megabyte at a time, and removes the file.
    pub(super) fn drain_into(&mut self, out: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<()> {
        let Some((spool, path)) = self.file.take() else { return Ok(()) };
        let _cleanup = super::Cleanup(&path);
        let what = self.what;
        let back = |e| Error::io(e, &format!("cannot read the {what} scratch file back"));
        let mut f = spool.into_inner().map_err(|e| back(e.into_error()))?;
        f.rewind().map_err(back)?;
        let mut chunk = vec![0u8; 1 << 20];
        loop {
            let k = f.read(&mut chunk).map_err(back)?;
            if k == 0 {
                return Ok(());
            }
            out(chunk.get(..k).unwrap_or_default())?;
        }
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if let Some((_, path)) = self.file.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}
