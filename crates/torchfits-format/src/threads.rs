//! How many threads a large read or write may use.

/// The default thread count of large reads and writes: the available cores, asked once per
/// process (the standard library reads the cgroup files under /proc for it: 30 us an open).
pub fn default_threads() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}

/// Runs `work` (a share of a parallel read: a band of tiles, a share of rows) and gives a panic in
/// it as an error naming `what`, on whichever thread it runs, the caller's included: a decoder's
/// bug met by a file's bytes fails that read, never the process.
///
/// ```
/// use torchfits_format::{Error, threads::caught};
/// assert_eq!(caught("a band", || Ok::<_, Error>(3)).unwrap(), 3);
/// let e = caught("a band", || -> Result<(), Error> { panic!("a bug") }).unwrap_err();
/// assert!(e.to_string().contains("a band panicked"));
/// ```
pub fn caught<T>(what: &str, work: impl FnOnce() -> crate::Result<T>) -> crate::Result<T> {
    // the work's buffers are the caller's output, which an error leaves unspecified anyway
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
        .unwrap_or_else(|_| Err(crate::Error::decoding(format!("{what} panicked"))))
}
