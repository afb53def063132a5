//! Reusable, pre-touched, aligned pixel buffers.
//!
//! A fresh allocation of a large buffer costs a page fault per 4 KiB page on first touch (measured
//! here: reading 64 MiB into a fresh `Vec` 47 ms, into a reused one 17 ms). A data-loading loop
//! that takes its buffers from a [`BufferPool`] pays that once: buffers return to the pool when
//! their guard drops and are handed out again, already faulted in.

// Indexing: a buffer's length never exceeds its storage's (the constructor's invariant).
#![allow(clippy::indexing_slicing)]

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::ffi::Line;
use torchfits_format::error::{Error, Result};
use torchfits_format::pixel::Pixel;

/// Counters of a [`BufferPool`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PoolStats {
    /// Buffers allocated (a request no idle buffer could serve).
    pub allocations: u64,
    /// Requests served by an idle buffer.
    pub reuses: u64,
    /// Bytes held by idle buffers now.
    pub idle_bytes: usize,
    /// Buffers freed on return because keeping them would exceed the pool's bound.
    pub dropped: u64,
}

#[derive(Debug, Default)]
struct Shared {
    idle: Vec<Vec<Line>>,
    stats: PoolStats,
}

/// A pool of reusable buffers, bounded in the bytes it keeps idle. Cloning it is cheap and gives
/// another handle on the same pool; it can be shared between threads.
///
/// ```
/// use torchfits_core::{BufferPool, FitsFile};
/// # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
/// let pool = BufferPool::new(BufferPool::DEFAULT_MAX_IDLE_BYTES);
/// for _epoch in 0..3 {
///     let file = FitsFile::open(path)?;
///     let image = file.image("SCI")?;
///     let mut buf = pool.get::<f32>(image.len())?;   // reused after the first epoch
///     image.read_into(&mut buf)?;
/// }                                                  // `buf` goes back to the pool here
/// let stats = pool.stats();
/// assert_eq!((stats.allocations, stats.reuses), (1, 2));
/// # Ok::<(), torchfits_core::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct BufferPool {
    shared: Arc<Mutex<Shared>>,
    max_idle_bytes: usize,
}

impl BufferPool {
    /// Default bound on idle bytes: 1 GiB.
    pub const DEFAULT_MAX_IDLE_BYTES: usize = 1 << 30;

    /// An empty pool that keeps at most `max_idle_bytes` in idle buffers.
    pub fn new(max_idle_bytes: usize) -> Self {
        BufferPool { shared: Arc::default(), max_idle_bytes }
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        // a panic while holding the lock leaves the idle list consistent: keep using it
        self.shared.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A buffer of `len` elements of `T`, 64-byte aligned. Reuses the smallest idle buffer that
    /// holds it (and is at most twice its size); otherwise allocates one and touches every page.
    /// Its contents are unspecified (whatever the last user left): read into it.
    pub fn get<T: Pixel>(&self, len: usize) -> Result<PooledBuffer<T>> {
        let bytes = len
            .checked_mul(std::mem::size_of::<T>())
            .ok_or_else(|| Error::parameter(format!("a buffer of {len} elements overflows")))?;
        let lines = bytes.div_ceil(64);
        let reused = {
            let mut shared = self.lock();
            // of the smallest that fit, the one given back last: its lines are the likeliest
            // to be in a cache still (an exact fit ends the search: none is smaller)
            let idle = shared.idle.iter().enumerate().rev();
            let best = idle
                .clone()
                .find(|(_, b)| b.len() == lines)
                .or_else(|| {
                    idle.filter(|(_, b)| b.len() >= lines && b.len() <= lines.saturating_mul(2).max(1))
                        .min_by_key(|(_, b)| b.len())
                })
                .map(|(i, _)| i);
            match best {
                Some(i) => {
                    // removed in place: the others keep the order they were given back in
                    let buf = shared.idle.remove(i);
                    shared.stats.reuses += 1;
                    shared.stats.idle_bytes -= buf.len() * 64;
                    Some(buf)
                }
                None => {
                    shared.stats.allocations += 1;
                    None
                }
            }
        };
        let storage = match reused {
            Some(buf) => buf,
            None => {
                let mut buf = Vec::with_capacity(lines);
                // a non-zero fill writes every page now (a zero fill may become calloc's lazily
                // mapped zero pages, which fault on first use instead)
                buf.resize(lines, Line([0xA5; 64]));
                buf
            }
        };
        Ok(PooledBuffer { storage, len, pool: self.clone(), _pixel: PhantomData })
    }

    /// The pool's counters.
    pub fn stats(&self) -> PoolStats {
        self.lock().stats
    }

    fn give_back(&self, storage: Vec<Line>) {
        let bytes = storage.len() * 64;
        let mut shared = self.lock();
        if shared.stats.idle_bytes + bytes <= self.max_idle_bytes {
            shared.stats.idle_bytes += bytes;
            shared.idle.push(storage);
        } else {
            shared.stats.dropped += 1;
        }
    }
}

impl Default for BufferPool {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_IDLE_BYTES)
    }
}

/// A buffer from a [`BufferPool`]: derefs to `[T]` of the requested length; returns to the pool
/// when dropped.
#[derive(Debug)]
pub struct PooledBuffer<T: Pixel> {
    storage: Vec<Line>,
    len: usize,
    pool: BufferPool,
    _pixel: PhantomData<T>,
}

impl<T: Pixel> Deref for PooledBuffer<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &bytemuck::cast_slice::<Line, T>(&self.storage)[..self.len]
    }
}

impl<T: Pixel> DerefMut for PooledBuffer<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        &mut bytemuck::cast_slice_mut::<Line, T>(&mut self.storage)[..self.len]
    }
}

impl<T: Pixel> Drop for PooledBuffer<T> {
    fn drop(&mut self) {
        self.pool.give_back(std::mem::take(&mut self.storage));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_aligned_reused_and_bounded() {
        let pool = BufferPool::new(1000);
        {
            let mut a = pool.get::<f64>(100).expect("get");
            assert_eq!(a.len(), 100);
            assert_eq!(a.as_ptr() as usize % 64, 0);
            a.fill(1.5);
        }
        assert_eq!(pool.stats().idle_bytes, 832);
        let b = pool.get::<u8>(700).expect("reuse for another type");
        assert_eq!(b.len(), 700);
        assert_eq!(pool.stats().reuses, 1);
        drop(b);
        // too small a request for the idle 832-byte buffer (more than twice the size): allocate
        let c = pool.get::<u16>(10).expect("small");
        assert_eq!(pool.stats().allocations, 2);
        drop(c);
        // the pool keeps at most 1000 idle bytes: 832 + 64 fit, another 832 does not
        let d = pool.get::<u8>(800).expect("d");
        let e = pool.get::<u8>(800).expect("e");
        drop(d);
        drop(e);
        let s = pool.stats();
        assert_eq!(s.dropped, 1);
        assert!(s.idle_bytes <= 1000);
        assert!(pool.get::<u64>(usize::MAX / 4).is_err());
    }

    #[test]
    fn the_buffer_given_back_last_is_handed_out_first() {
        let pool = BufferPool::new(1 << 20);
        let (a, b) = (pool.get::<f32>(256).expect("a"), pool.get::<f32>(256).expect("b"));
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        drop(a);
        drop(b);
        assert_eq!(pool.get::<f32>(256).expect("again").as_ptr(), pb, "b went back last");
        let big = pool.get::<f32>(1024).expect("big");
        drop(big);
        // an exact fit (b, back again) is preferred to the larger buffer given back after it
        assert_eq!(pool.get::<f32>(256).expect("fit").as_ptr(), pb);
        assert_ne!(pa, pb);
    }
}
