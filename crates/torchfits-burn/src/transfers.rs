//! Counts of the bytes torchfits-burn moves between the host and a device: every upload and
//! every read-back of this crate goes through here (the batchers' pixels, the kernels'
//! parameters, the points a kernel leaves to wcslib), so that a test or a benchmark can say what
//! a batch costs in transfers. Counted per thread: a batch is made on the thread that asks for
//! it, so a thread's counts are that thread's batches, whatever other threads do.

use std::cell::Cell;

/// What this thread has moved between the host and devices since it started (or since
/// [`Transfers::reset`]). On the CPU backend (Flex) the "device" is host memory: its copies are
/// counted all the same.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Transfers {
    /// Bytes copied from the host to a device.
    pub bytes_up: u64,
    /// Copies from the host to a device.
    pub uploads: u64,
    /// Bytes read back from a device to the host.
    pub bytes_down: u64,
    /// Reads from a device to the host.
    pub downloads: u64,
}

thread_local! {
    static COUNTS: Cell<Transfers> = const { Cell::new(Transfers { bytes_up: 0, uploads: 0, bytes_down: 0, downloads: 0 }) };
}

impl Transfers {
    /// This thread's counts so far.
    pub fn now() -> Transfers {
        COUNTS.with(Cell::get)
    }

    /// Sets this thread's counts to zero.
    pub fn reset() {
        COUNTS.with(|c| c.set(Transfers::default()));
    }

    /// What moved between `earlier` and `self` (two readings of [`Transfers::now`]).
    pub fn since(self, earlier: Transfers) -> Transfers {
        Transfers {
            bytes_up: self.bytes_up.saturating_sub(earlier.bytes_up),
            uploads: self.uploads.saturating_sub(earlier.uploads),
            bytes_down: self.bytes_down.saturating_sub(earlier.bytes_down),
            downloads: self.downloads.saturating_sub(earlier.downloads),
        }
    }
}

/// Counts one upload of `bytes`.
pub(crate) fn up(bytes: usize) {
    COUNTS.with(|c| {
        let mut t = c.get();
        t.bytes_up += bytes as u64;
        t.uploads += 1;
        c.set(t);
    });
}

/// Counts one read-back of `bytes`.
pub(crate) fn down(bytes: usize) {
    COUNTS.with(|c| {
        let mut t = c.get();
        t.bytes_down += bytes as u64;
        t.downloads += 1;
        c.set(t);
    });
}

/// Uploads `bytes` to `client`, counted.
#[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
pub(crate) fn upload(client: &cubecl::client::Client, bytes: &[u8]) -> cubecl::server::Handle {
    up(bytes.len());
    client.create_from_slice(bytes)
}

/// Reads `handle` back from `client`, counted.
#[cfg_attr(not(any(feature = "wgpu", feature = "cuda")), allow(dead_code))]
pub(crate) fn download(
    client: &cubecl::client::Client,
    handle: cubecl::server::Handle,
) -> torchfits_format::Result<Vec<u8>> {
    let bytes = client.read_one(handle).map_err(|e| {
        torchfits_format::Error::new(torchfits_format::ErrorKind::Io, format!("reading back from the device: {e}"))
    })?;
    down(bytes.len());
    Ok(bytes.to_vec())
}
