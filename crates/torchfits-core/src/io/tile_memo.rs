//! Decoded tiles kept for reads that come back to them: a stream cuts hundreds of stamps from
//! one compressed image, and each stamp touches one to four of its tiles, so without this every
//! tile is decoded again for every stamp that shares it. Files opened with
//! [`crate::OpenOptions::tile_memo`] keep the integers of each tile they decode here, in one
//! store for the whole process, bounded in bytes ([`set_tile_memo_bytes`]; 256 MiB by
//! default), the tiles used longest ago dropped first.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// The default bound of the store, bytes.
const DEFAULT_BYTES: usize = 256 << 20;

/// An HDU whose tiles are kept: its open file's number ([`new_file`]) and its index.
pub(crate) type Hdu = (u64, usize);

/// A tile: its HDU and its index there.
type Key = (Hdu, usize);

struct Store {
    tiles: HashMap<Key, (Arc<Vec<i32>>, u64)>,
    bytes: usize,
    budget: usize,
    /// The use count of the last lookup or insertion, for the least recently used.
    clock: u64,
}

fn store() -> &'static Mutex<Store> {
    static STORE: OnceLock<Mutex<Store>> = OnceLock::new();
    STORE.get_or_init(|| Mutex::new(Store { tiles: HashMap::new(), bytes: 0, budget: DEFAULT_BYTES, clock: 0 }))
}

/// A number for an open file whose decoded tiles are kept: never given twice in a process.
pub(crate) fn new_file() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// Bounds the decoded tiles every file opened with [`crate::OpenOptions::tile_memo`] keeps,
/// in bytes (0 keeps none); tiles beyond the bound are dropped, least recently used first.
///
/// ```
/// torchfits_core::set_tile_memo_bytes(64 << 20);
/// ```
pub fn set_tile_memo_bytes(bytes: usize) {
    let mut s = store().lock().unwrap_or_else(PoisonError::into_inner);
    s.budget = bytes;
    s.shrink();
}

/// Tile `tile` of HDU `hdu`, where it is kept.
pub(crate) fn get(hdu: Hdu, tile: usize) -> Option<Arc<Vec<i32>>> {
    let mut s = store().lock().unwrap_or_else(PoisonError::into_inner);
    s.clock += 1;
    let now = s.clock;
    let (ints, used) = s.tiles.get_mut(&(hdu, tile))?;
    *used = now;
    Some(ints.clone())
}

/// Keeps tile `tile` of HDU `hdu` (its integers moved in, not copied), within the bound; the
/// tile, shared.
pub(crate) fn put(hdu: Hdu, tile: usize, ints: Vec<i32>) -> Arc<Vec<i32>> {
    let size = std::mem::size_of_val(&ints[..]);
    let ints = Arc::new(ints);
    let mut s = store().lock().unwrap_or_else(PoisonError::into_inner);
    if size > s.budget {
        return ints;
    }
    s.clock += 1;
    let now = s.clock;
    if let Some((old, _)) = s.tiles.insert((hdu, tile), (ints.clone(), now)) {
        s.bytes -= std::mem::size_of_val(&old[..]);
    }
    s.bytes += size;
    s.shrink();
    ints
}

impl Store {
    /// Drops the least recently used tiles until the store is within its bound.
    fn shrink(&mut self) {
        while self.bytes > self.budget {
            let Some(oldest) = self.tiles.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| *k) else { break };
            if let Some((ints, _)) = self.tiles.remove(&oldest) {
                self.bytes -= std::mem::size_of_val(&ints[..]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_come_back_and_the_least_recently_used_go_first() {
        let hdu = (new_file(), 1);
        put(hdu, 0, vec![1, 2, 3]);
        put(hdu, 1, vec![4, 5, 6]);
        assert_eq!(get(hdu, 0).as_deref().map(Vec::as_slice), Some(&[1, 2, 3][..]));
        assert!(get((new_file(), 1), 0).is_none(), "another file's tile 0 is not this one");
        assert!(get((hdu.0, 2), 0).is_none(), "another HDU's tile 0 is not this one");
        let mut s = Store { tiles: HashMap::new(), bytes: 0, budget: 24, clock: 0 };
        for (k, used) in [(0usize, 3u64), (1, 1), (2, 2)] {
            s.tiles.insert(((9, 1), k), (Arc::new(vec![0i32, 0]), used));
            s.bytes += 8;
        }
        s.budget = 16;
        s.shrink();
        let mut kept: Vec<usize> = s.tiles.keys().map(|k| k.1).collect();
        kept.sort_unstable();
        assert_eq!(kept, vec![0, 2], "tile 1 was used longest ago");
    }
}
