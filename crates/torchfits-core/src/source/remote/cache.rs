//! The block cache every remote file shares: fixed-size blocks of objects' bytes, keyed by the
//! object's version, bounded in bytes, least recently used evicted first.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};

use bytes::Bytes;

/// The default bound of the shared cache: 256 MiB.
const DEFAULT_CACHE_BYTES: u64 = 256 << 20;

/// One cached block: its bytes and when it was last used.
struct Entry {
    bytes: Bytes,
    used: u64,
}

/// The cache's state behind its lock.
#[derive(Default)]
struct State {
    blocks: HashMap<(u64, u64), Entry>,
    bytes: u64,
    clock: u64,
}

/// Blocks of remote objects in memory, shared by every remote file of the process. A block is
/// keyed by its object's version (a hash of its URL and ETag) and its index, so two versions of
/// one object never share a block.
pub(super) struct BlockCache {
    budget: std::sync::atomic::AtomicU64,
    state: Mutex<State>,
}

/// The process's block cache.
pub(super) fn shared() -> &'static BlockCache {
    static CACHE: OnceLock<BlockCache> = OnceLock::new();
    CACHE.get_or_init(|| {
        let budget = std::env::var("TORCHFITS_REMOTE_CACHE_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(DEFAULT_CACHE_BYTES);
        BlockCache { budget: budget.into(), state: Mutex::default() }
    })
}

impl BlockCache {
    /// Sets the bound in bytes (0 keeps nothing), evicting at once down to it.
    pub(super) fn set_budget(&self, bytes: u64) {
        self.budget.store(bytes, std::sync::atomic::Ordering::Relaxed);
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        self.evict(&mut state);
    }

    /// Block `block` of object `object`, if cached.
    pub(super) fn get(&self, object: u64, block: u64) -> Option<Bytes> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.clock += 1;
        let now = state.clock;
        state.blocks.get_mut(&(object, block)).map(|e| {
            e.used = now;
            e.bytes.clone()
        })
    }

    /// Whether block `block` of object `object` is cached (without counting it as used).
    pub(super) fn contains(&self, object: u64, block: u64) -> bool {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).blocks.contains_key(&(object, block))
    }

    /// Caches `blocks` (index, bytes) of object `object`, then evicts down to the bound.
    pub(super) fn insert(&self, object: u64, blocks: impl IntoIterator<Item = (u64, Bytes)>) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for (block, bytes) in blocks {
            state.clock += 1;
            let entry = Entry { used: state.clock, bytes };
            let added = entry.bytes.len() as u64;
            if let Some(old) = state.blocks.insert((object, block), entry) {
                state.bytes -= old.bytes.len() as u64;
            }
            state.bytes += added;
        }
        self.evict(&mut state);
    }

    /// Drops the least recently used blocks until the cache is within its bound: an eighth of the
    /// blocks at a time below the bound, so that eviction costs one sort per many insertions.
    fn evict(&self, state: &mut State) {
        let budget = self.budget.load(std::sync::atomic::Ordering::Relaxed);
        if state.bytes <= budget {
            return;
        }
        let mut ages: Vec<((u64, u64), u64, u64)> =
            state.blocks.iter().map(|(k, e)| (*k, e.used, e.bytes.len() as u64)).collect();
        ages.sort_unstable_by_key(|&(_, used, _)| used);
        let target = budget - budget / 8;
        for (key, _, len) in ages {
            if state.bytes <= target {
                break;
            }
            state.blocks.remove(&key);
            state.bytes -= len;
        }
    }

    /// The bound in bytes.
    pub(super) fn budget(&self) -> u64 {
        self.budget.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Drops every block.
    pub(super) fn clear(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.blocks.clear();
        state.bytes = 0;
    }

    /// Bytes held now.
    pub(super) fn bytes(&self) -> u64 {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).bytes
    }
}
