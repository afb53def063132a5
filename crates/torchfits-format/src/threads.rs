//! How many threads a large read or write may use.

/// The default thread count of large reads and writes: the available cores, asked once per
/// process (the standard library reads the cgroup files under /proc for it: 30 us an open).
pub fn default_threads() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1))
}
