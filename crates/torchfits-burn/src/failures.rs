//! What a dataset does with an item it cannot read: return the error, or replace the item with
//! one that reads and say which file failed.
//!
//! burn's loaders cannot step over a failed item (with no worker the same failed batch comes back
//! on every call; with workers the failing worker's share of the epoch ends) and burn-train's
//! Learner stops on the first error: a policy that replaces the item inside `Dataset::get` is what
//! lets one corrupt file cost its own items and nothing else, under any loader.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use burn::data::dataset::DatasetError;
use torchfits_core::{Error, ErrorKind};

use crate::seeds::splitmix;

/// How many other items a replacement policy tries before it gives up and returns the error
/// (a dataset whose files are all gone fails instead of reading every item for every item).
pub const REPLACEMENT_TRIES: usize = 64;

/// What a dataset's `get` does with an item it cannot read (a corrupt tile, a truncated file, a
/// file that went away).
///
/// Every failure, replaced or not, is counted in the dataset's [`Failures`] and each bad file is
/// logged once (a `warn` event naming the file, the HDU and the cause).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// `get` returns the error: burn's loaders and the Learner stop on it.
    #[default]
    Fail,
    /// The item is replaced by the next item in index order that reads (wrapping around), or,
    /// past a block of bad items longer than half of [`REPLACEMENT_TRIES`], by an item drawn from
    /// its index: the epoch keeps its length, and the replacement is the same every epoch and
    /// every run.
    Skip,
    /// The item is replaced by an item drawn from `seed`, the epoch and the item's index (drawn
    /// again while a draw fails too): as [`OnError::Skip`], without giving a bad file's
    /// neighbours twice the weight, and a different replacement every epoch.
    Substitute {
        /// The seed of the draws.
        seed: u64,
    },
}

impl OnError {
    /// A file's description when the dataset is built: `Some` to keep the file; for one the
    /// dataset cannot use, the error (`Fail`) or `None` (recorded in `failures`: left out).
    pub(crate) fn at_build<T>(
        self,
        failures: &Failures,
        path: &Path,
        described: torchfits_core::Result<T>,
    ) -> torchfits_core::Result<Option<T>> {
        match described {
            Ok(t) => Ok(Some(t)),
            Err(e) if self == OnError::Fail => Err(e.in_file(path)),
            Err(e) => {
                failures.record_left_out(path, &e.in_file(path));
                Ok(None)
            }
        }
    }

    /// `read(index)` failed with `error`: the error (policy `Fail`), or another item that reads,
    /// recorded in `failures`. `len` is the dataset's length; `epoch` seeds `Substitute`.
    pub(crate) fn recover<I>(
        self,
        failures: &Failures,
        index: usize,
        len: usize,
        epoch: u64,
        error: Error,
        read: impl Fn(usize) -> torchfits_core::Result<I>,
    ) -> Result<I, DatasetError> {
        failures.record(index, &error);
        let candidates: Box<dyn Iterator<Item = usize>> = match self {
            OnError::Fail => return Err(crate::item::failed(index, error)),
            // the next items one by one, then (past a long block of bad items, a whole bad
            // file's) draws from the index alone: the same replacement every epoch
            OnError::Skip => Box::new(
                (1..len).take(REPLACEMENT_TRIES / 2).map(move |d| (index + d) % len).chain(draws(0, 0, index, len)),
            ),
            OnError::Substitute { seed } => Box::new(draws(seed, epoch, index, len)),
        };
        for candidate in candidates.filter(|&j| j != index).take(REPLACEMENT_TRIES.min(len.saturating_sub(1))) {
            match read(candidate) {
                Ok(item) => {
                    failures.replaced();
                    return Ok(item);
                }
                Err(e) => failures.record(candidate, &e),
            }
        }
        Err(crate::item::failed(index, error))
    }
}

/// Item indices below `len` drawn from `seed`, the epoch and the failed item's index.
fn draws(seed: u64, epoch: u64, index: usize, len: usize) -> impl Iterator<Item = usize> {
    (0u64..).map(move |draw| {
        let h = splitmix(seed ^ splitmix(epoch ^ splitmix((index as u64) ^ splitmix(draw))));
        (h % len.max(1) as u64) as usize
    })
}

/// The items a dataset could not read and the files they come from, shared by the dataset, its
/// clones' handles and every loader thread. [`Failures::report`] takes a snapshot.
#[derive(Debug, Clone, Default)]
pub struct Failures(Arc<Mutex<Recorded>>);

#[derive(Debug, Default)]
struct Recorded {
    reads: u64,
    replacements: u64,
    items: BTreeSet<usize>,
    /// by file (the error's file, or "" for an error that names none): its failed items and its
    /// first error
    files: BTreeMap<PathBuf, (BTreeSet<usize>, FailureCause)>,
}

/// The failures of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileFailures {
    /// The file (empty where the error named none).
    pub file: PathBuf,
    /// The distinct items of this file that failed (0 for a file left out when the dataset was
    /// built: it could not be opened, so it has no items).
    pub items: usize,
    /// The first error's cause.
    pub first_error: FailureCause,
}

/// Why a read failed: the error's kind, HDU and message (the file is the report's), typed so that
/// a report can be sorted or filtered by cause; displayed as the error was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureCause {
    /// Who is at fault: the file (`Decoding`, `Unsupported`, `Limits`), the system (`Io`), the
    /// dataset's options (`Parameter`).
    pub kind: ErrorKind,
    /// The HDU, where the error named one.
    pub hdu: Option<usize>,
    /// The cause, without the file and the HDU.
    pub message: String,
    /// The error as displayed (it names the file, the HDU and the cause).
    pub text: String,
}

impl FailureCause {
    fn of(error: &Error) -> Self {
        FailureCause {
            kind: error.kind(),
            hdu: error.hdu(),
            message: error.message().to_string(),
            text: error.to_string(),
        }
    }
}

impl std::fmt::Display for FailureCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

/// A snapshot of a dataset's [`Failures`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FailureReport {
    /// Reads that failed (an item that fails every epoch counts every epoch).
    pub failed_reads: u64,
    /// Items replaced by another (per read, as `failed_reads`).
    pub replacements: u64,
    /// The distinct items that failed at least once.
    pub failed_items: usize,
    /// The files they come from, by path.
    pub files: Vec<FileFailures>,
}

impl Failures {
    fn recorded(&self) -> std::sync::MutexGuard<'_, Recorded> {
        // a panic elsewhere cannot leave the counters half-updated: keep counting
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Records item `index`'s failure; logs the file's first.
    pub(crate) fn record(&self, index: usize, error: &Error) {
        let file = error.file().map(PathBuf::from).unwrap_or_default();
        let mut r = self.recorded();
        r.reads += 1;
        r.items.insert(index);
        file_entry(&mut r, file, error).insert(index);
    }

    /// Records `file`, left out of the dataset when it was built (it has no items); logs it.
    pub(crate) fn record_left_out(&self, file: &Path, error: &Error) {
        file_entry(&mut self.recorded(), file.to_path_buf(), error);
    }

    fn replaced(&self) {
        self.recorded().replacements += 1;
    }

    /// What failed so far.
    pub fn report(&self) -> FailureReport {
        let r = self.recorded();
        FailureReport {
            failed_reads: r.reads,
            replacements: r.replacements,
            failed_items: r.items.len(),
            files: r
                .files
                .iter()
                .map(|(file, (items, first))| FileFailures {
                    file: file.clone(),
                    items: items.len(),
                    first_error: first.clone(),
                })
                .collect(),
        }
    }
}

/// `file`'s failed items; a new file's entry is logged once.
fn file_entry<'r>(r: &'r mut Recorded, file: PathBuf, error: &Error) -> &'r mut BTreeSet<usize> {
    let (items, _) = r.files.entry(file).or_insert_with_key(|file| {
        tracing::warn!(file = %file.display(), error = %error, "a dataset file could not be read");
        (BTreeSet::new(), FailureCause::of(error))
    });
    items
}
