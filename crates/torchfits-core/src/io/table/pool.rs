//! Reusable column buffers for table reads.
//!
//! Decoding a batch writes every selected column into a fresh buffer; for a large batch that is
//! tens of megabytes whose pages the kernel must fault in and zero on first touch (a fifth of a
//! 1M-row read, profiled). A [`ColumnPool`] keeps the buffers of batches handed back to it with
//! [`ColumnPool::recycle`] and gives them to the next batches, already faulted in.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::io::pool::PoolStats;
use crate::io::table::batch::{ColumnData, ColumnValues, TableBatch};
use torchfits_format::table_schema::ColumnType;

#[derive(Debug, Default)]
struct Shared {
    idle: Vec<ColumnValues>,
    idle_bytes: usize,
    stats: PoolStats,
}

/// A pool of column buffers, bounded in the bytes it keeps idle. Cloning it is cheap and gives
/// another handle on the same pool; it can be shared between threads and readers.
///
/// A reader given a pool ([`crate::TableReader::with_pool`]) takes its column buffers from it;
/// batches given back with [`ColumnPool::recycle`] return theirs. Batches not given back (moved
/// into Arrow, kept) simply leave the pool.
///
/// ```
/// use torchfits_core::{ColumnPool, FitsFile};
/// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
/// let pool = ColumnPool::new(ColumnPool::DEFAULT_MAX_IDLE_BYTES);
/// let mut first_epoch = 0;
/// for epoch in 0..3 {
///     let file = FitsFile::open(path)?;
///     for batch in file.table("CATALOG")?.with_columns(&["ra", "flux"])?.with_pool(&pool).build()? {
///         let batch = batch?;
///         // ... use the columns ...
///         pool.recycle(batch); // its buffers serve the next batch
///     }
///     if epoch == 0 {
///         first_epoch = pool.stats().allocations;
///     }
/// }
/// assert_eq!(pool.stats().allocations, first_epoch); // later epochs only reuse
/// # Ok::<(), torchfits_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ColumnPool {
    shared: Arc<Mutex<Shared>>,
    max_idle_bytes: usize,
}

impl Default for ColumnPool {
    fn default() -> Self {
        ColumnPool::new(ColumnPool::DEFAULT_MAX_IDLE_BYTES)
    }
}

/// Bytes of memory a buffer holds (its capacity).
fn capacity_bytes(v: &ColumnValues) -> usize {
    fn b<T>(v: &Vec<T>) -> usize {
        v.capacity() * std::mem::size_of::<T>()
    }
    match v {
        ColumnValues::Bool(v) => b(v),
        ColumnValues::U8(v) => b(v),
        ColumnValues::I16(v) => b(v),
        ColumnValues::U16(v) => b(v),
        ColumnValues::I32(v) => b(v),
        ColumnValues::U32(v) => b(v),
        ColumnValues::I64(v) => b(v),
        ColumnValues::U64(v) => b(v),
        ColumnValues::F32(v) => b(v),
        ColumnValues::F64(v) => b(v),
        ColumnValues::ComplexF32(v) => b(v),
        ColumnValues::ComplexF64(v) => b(v),
        ColumnValues::Str { offsets, bytes } => b(offsets) + b(bytes),
    }
}

/// The buffer type that holds values of `ty` (strings are pooled as their two parts).
fn same_kind(v: &ColumnValues, ty: ColumnType) -> bool {
    matches!(
        (v, ty),
        (ColumnValues::Bool(_), ColumnType::Bool | ColumnType::Bits)
            | (ColumnValues::U8(_), ColumnType::U8)
            | (ColumnValues::I16(_), ColumnType::I16)
            | (ColumnValues::U16(_), ColumnType::U16)
            | (ColumnValues::I32(_), ColumnType::I32)
            | (ColumnValues::U32(_), ColumnType::U32)
            | (ColumnValues::I64(_), ColumnType::I64)
            | (ColumnValues::U64(_), ColumnType::U64)
            | (ColumnValues::F32(_), ColumnType::F32)
            | (ColumnValues::F64(_), ColumnType::F64)
            | (ColumnValues::ComplexF32(_), ColumnType::ComplexF32)
            | (ColumnValues::ComplexF64(_), ColumnType::ComplexF64)
    )
}

/// `v` with exactly `len` elements. A reused buffer keeps whatever its last user left in it (the
/// caller overwrites every element); a new one is zeroed by the allocator, pages untouched.
fn sized<T: Clone + Default>(mut v: Vec<T>, len: usize) -> Vec<T> {
    if v.capacity() == 0 {
        return vec![T::default(); len];
    }
    if v.len() >= len {
        v.truncate(len);
    } else {
        v.resize(len, T::default());
    }
    v
}

impl ColumnPool {
    /// Default bound on idle bytes: 1 GiB.
    pub const DEFAULT_MAX_IDLE_BYTES: usize = 1 << 30;

    /// An empty pool that keeps at most `max_idle_bytes` in idle buffers.
    pub fn new(max_idle_bytes: usize) -> Self {
        ColumnPool { shared: Arc::default(), max_idle_bytes }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // a panic while holding the lock leaves the idle list consistent: keep using it
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counters: allocations, reuses, idle bytes, buffers dropped for the bound.
    pub fn stats(&self) -> PoolStats {
        let s = self.lock();
        PoolStats { idle_bytes: s.idle_bytes, ..s.stats }
    }

    /// Frees every idle buffer.
    pub fn clear(&self) {
        let mut s = self.lock();
        s.idle.clear();
        s.idle_bytes = 0;
    }

    /// Gives the buffers of `batch` back to the pool.
    pub fn recycle(&self, batch: TableBatch) {
        for column in batch.columns {
            self.recycle_column(column);
        }
    }

    /// Gives the buffers of one column back to the pool.
    pub fn recycle_column(&self, column: ColumnData) {
        match column.values {
            ColumnValues::Str { offsets, bytes } => {
                self.put(ColumnValues::I32(offsets));
                self.put(ColumnValues::U8(bytes));
            }
            values => self.put(values),
        }
        if let Some(nulls) = column.nulls {
            self.put(ColumnValues::Bool(nulls));
        }
        if let Some(offsets) = column.list_offsets {
            self.put(ColumnValues::I32(offsets));
        }
    }

    /// Keeps `v` for reuse, unless it is empty or would take the pool past its bound.
    pub(crate) fn put(&self, v: ColumnValues) {
        let bytes = capacity_bytes(&v);
        if bytes == 0 {
            return;
        }
        let mut s = self.lock();
        if s.idle_bytes + bytes > self.max_idle_bytes {
            s.stats.dropped += 1;
            return;
        }
        s.idle_bytes += bytes;
        s.idle.push(v);
    }

    /// The idle buffer of type `ty` that best fits `len` elements: the smallest that holds them,
    /// else the largest.
    fn take(&self, ty: ColumnType, len: usize) -> Option<ColumnValues> {
        let mut s = self.lock();
        let candidates = s.idle.iter().enumerate().filter(|(_, v)| same_kind(v, ty));
        let fits = |v: &ColumnValues| capacity_bytes(v) / ty.value_size() >= len;
        let best = candidates
            .min_by_key(|(_, v)| if fits(v) { (0, capacity_bytes(v)) } else { (1, usize::MAX - capacity_bytes(v)) })
            .map(|(i, _)| i);
        match best {
            Some(i) => {
                let v = s.idle.swap_remove(i);
                s.idle_bytes -= capacity_bytes(&v);
                s.stats.reuses += 1;
                Some(v)
            }
            None => {
                s.stats.allocations += 1;
                None
            }
        }
    }

    /// A buffer of `len` values of `ty` (strings: use [`ColumnPool::bytes`] and
    /// [`ColumnPool::offsets`]); its contents are unspecified: the caller overwrites them all.
    pub(crate) fn values(&self, ty: ColumnType, len: usize) -> ColumnValues {
        if ty == ColumnType::Str {
            return ColumnValues::Str { offsets: self.offsets(len + 1), bytes: self.bytes(0) };
        }
        let reused = self.take(ty, len);
        macro_rules! sized {
            ($variant:ident) => {
                match reused {
                    Some(ColumnValues::$variant(v)) => ColumnValues::$variant(sized(v, len)),
                    _ => ColumnValues::$variant(sized(Vec::new(), len)),
                }
            };
        }
        match ty {
            ColumnType::Bool | ColumnType::Bits => sized!(Bool),
            ColumnType::U8 => sized!(U8),
            ColumnType::I16 => sized!(I16),
            ColumnType::U16 => sized!(U16),
            ColumnType::I32 => sized!(I32),
            ColumnType::U32 => sized!(U32),
            ColumnType::I64 => sized!(I64),
            ColumnType::U64 => sized!(U64),
            ColumnType::F32 => sized!(F32),
            ColumnType::F64 => sized!(F64),
            ColumnType::ComplexF32 => sized!(ComplexF32),
            ColumnType::ComplexF64 => sized!(ComplexF64),
            ColumnType::Str => ColumnValues::Str { offsets: Vec::new(), bytes: Vec::new() },
        }
    }

    /// A byte buffer of `len` bytes, contents unspecified.
    pub(crate) fn bytes(&self, len: usize) -> Vec<u8> {
        match self.take(ColumnType::U8, len) {
            Some(ColumnValues::U8(v)) => sized(v, len),
            _ => sized(Vec::new(), len),
        }
    }

    /// An `i32` buffer of `len` values, contents unspecified.
    pub(crate) fn offsets(&self, len: usize) -> Vec<i32> {
        match self.take(ColumnType::I32, len) {
            Some(ColumnValues::I32(v)) => sized(v, len),
            _ => sized(Vec::new(), len),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_the_smallest_buffer_that_fits_and_keeps_its_bound() {
        let pool = ColumnPool::new(10_000);
        pool.put(ColumnValues::F64(vec![1.0; 100]));
        pool.put(ColumnValues::F64(vec![2.0; 500]));
        pool.put(ColumnValues::F32(vec![3.0; 50]));
        // 5 f64 fit the 100-element buffer: it is reused, trimmed, its stale values kept
        let ColumnValues::F64(v) = pool.values(ColumnType::F64, 5) else { panic!("f64") };
        assert_eq!(v, vec![1.0; 5]);
        assert!(v.capacity() >= 100 && v.capacity() < 500);
        // no idle i16 buffer: allocated, zeroed
        assert_eq!(pool.values(ColumnType::I16, 3), ColumnValues::I16(vec![0; 3]));
        // over the bound: 8000 bytes more than the 4200 held pass 10000
        pool.put(ColumnValues::F64(vec![0.0; 1000]));
        let stats = pool.stats();
        assert_eq!((stats.reuses, stats.allocations, stats.dropped), (1, 1, 1));
        assert_eq!(stats.idle_bytes, 500 * 8 + 50 * 4);
        // a buffer too small grows to the length asked for
        let ColumnValues::F32(v) = pool.values(ColumnType::F32, 80) else { panic!("f32") };
        assert_eq!((v.len(), &v[..50], &v[50..]), (80, &[3.0; 50][..], &[0.0; 30][..]));
        pool.clear();
        assert_eq!(pool.stats().idle_bytes, 0);
    }
}
