//! cfitsio handles on one file, opened as threads need them and kept for reuse. A cfitsio handle
//! has a current HDU and buffers of its own, so it is used by one thread at a time and never
//! shared; the pool hands each caller a handle for the length of one call.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use crate::ffi::cfitsio::Handle;
use torchfits_format::error::Result;
use torchfits_format::threads::default_threads;

/// Idle handles on one file (at most one per core are kept).
#[derive(Debug)]
pub(crate) struct HandlePool {
    path: PathBuf,
    extended_syntax: bool,
    idle: Mutex<Vec<Handle>>,
}

impl HandlePool {
    /// A pool of handles on `path` (taken literally unless `extended_syntax`); opens nothing.
    pub(crate) fn new(path: &Path, extended_syntax: bool) -> HandlePool {
        HandlePool { path: path.to_path_buf(), extended_syntax, idle: Mutex::new(Vec::new()) }
    }

    /// A pool holding `handle`, already open on `path`.
    pub(crate) fn with_open(path: &Path, extended_syntax: bool, handle: Handle) -> HandlePool {
        HandlePool { path: path.to_path_buf(), extended_syntax, idle: Mutex::new(vec![handle]) }
    }

    /// Runs `f` on a handle of this pool's own (an idle one, or one opened now), at whatever HDU
    /// it was left: `f` moves it where it needs it. The handle goes back to the pool afterwards.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Handle) -> Result<R>) -> Result<R> {
        // a panic elsewhere while the lock was held leaves only a list of closed-over handles,
        // each whole: the list is still good
        let idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner).pop();
        let mut handle = match idle {
            Some(handle) => handle,
            None => Handle::open(&self.path, self.extended_syntax)?,
        };
        let result = f(&mut handle);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < default_threads() {
            idle.push(handle);
        }
        result
    }
}
