//! How reader threads hand a stream's chunks to its batching thread: each reader takes the next
//! chunk not yet taken (so a long chunk holds up one reader, not every reader waiting its turn),
//! at most `ahead` chunks past the first the batching thread still waits for (which bounds the
//! stamps held), and the batching thread puts the chunks back in sequence order.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Condvar, Mutex, PoisonError};

/// What the readers share: the next chunk to take and the window they may read in.
pub(super) struct Handoff {
    chunks: usize,
    ahead: usize,
    next: AtomicUsize,
    window: Mutex<Window>,
    moved: Condvar,
}

struct Window {
    /// Chunks the batching thread has taken, in order.
    taken: usize,
    /// Set when the batching thread is gone or a reader panicked: waiting readers stop.
    stopped: bool,
}

impl Handoff {
    /// A hand-off of `chunks` chunks, readers at most `ahead` (at least 1) chunks ahead; the
    /// channel the readers send on and the batching thread's end of it.
    pub(super) fn new<T>(chunks: usize, ahead: usize) -> (Arc<Handoff>, SyncSender<Numbered<T>>, InOrder<T>) {
        let ahead = ahead.max(1);
        let handoff = Arc::new(Handoff {
            chunks,
            ahead,
            next: AtomicUsize::new(0),
            window: Mutex::new(Window { taken: 0, stopped: false }),
            moved: Condvar::new(),
        });
        // a reader never sends a chunk outside the window: the channel never holds more
        let (to, from) = sync_channel(ahead);
        let in_order = InOrder { handoff: handoff.clone(), from, held: BTreeMap::new(), at: 0 };
        (handoff, to, in_order)
    }

    /// The next chunk for a reader, once it lies in the window; None when every chunk is taken
    /// or the stream stopped.
    pub(super) fn take(&self) -> Option<usize> {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        if k >= self.chunks {
            return None;
        }
        let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        while !w.stopped && k >= w.taken + self.ahead {
            w = self.moved.wait(w).unwrap_or_else(PoisonError::into_inner);
        }
        (!w.stopped).then_some(k)
    }

    fn advance(&self, taken: usize) {
        self.window.lock().unwrap_or_else(PoisonError::into_inner).taken = taken;
        self.moved.notify_all();
    }

    /// Stops every waiting reader.
    pub(super) fn stop(&self) {
        self.window.lock().unwrap_or_else(PoisonError::into_inner).stopped = true;
        self.moved.notify_all();
    }
}

/// A reader's guard: a reader that panics stops the others, whose chunks the batching thread
/// would otherwise wait on for ever.
pub(super) struct ReaderGuard(pub(super) Arc<Handoff>);

impl Drop for ReaderGuard {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.stop();
        }
    }
}

/// A chunk and its number.
pub(super) type Numbered<T> = (usize, T);

/// The batching thread's end: the chunks in sequence order, then None; an error item where a
/// chunk never comes (every reader gone before sending it). Dropping it stops the readers.
pub(super) struct InOrder<T> {
    handoff: Arc<Handoff>,
    from: Receiver<Numbered<T>>,
    held: BTreeMap<usize, T>,
    at: usize,
}

impl<T> Iterator for InOrder<T> {
    /// Chunk `k` in turn, or None for one no reader will send.
    type Item = Option<T>;

    fn next(&mut self) -> Option<Option<T>> {
        if self.at >= self.handoff.chunks {
            return None;
        }
        let chunk = loop {
            if let Some(chunk) = self.held.remove(&self.at) {
                break Some(chunk);
            }
            match self.from.recv() {
                Ok((k, chunk)) => {
                    self.held.insert(k, chunk);
                }
                Err(_) => break None,
            }
        };
        self.at += 1;
        self.handoff.advance(self.at);
        Some(chunk)
    }
}

impl<T> Drop for InOrder<T> {
    fn drop(&mut self) {
        self.handoff.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_come_back_in_order_whatever_reader_sends_them() {
        let (handoff, to, in_order) = Handoff::new(50, 3);
        let readers: Vec<_> = (0..4)
            .map(|r| {
                let (handoff, to) = (handoff.clone(), to.clone());
                std::thread::spawn(move || {
                    let _guard = ReaderGuard(handoff.clone());
                    while let Some(k) = handoff.take() {
                        // chunks of uneven lengths: later ones often finish first
                        std::thread::sleep(std::time::Duration::from_micros(((k * 7 + r) % 5) as u64 * 200));
                        to.send((k, k * 10)).unwrap();
                    }
                })
            })
            .collect();
        drop(to);
        let got: Vec<Option<usize>> = in_order.collect();
        assert_eq!(got, (0..50).map(|k| Some(k * 10)).collect::<Vec<_>>());
        for r in readers {
            r.join().unwrap();
        }
    }

    #[test]
    fn a_panicking_reader_ends_the_sequence_instead_of_hanging_it() {
        let (handoff, to, in_order) = Handoff::new(20, 2);
        let readers: Vec<_> = (0..2)
            .map(|_| {
                let (handoff, to) = (handoff.clone(), to.clone());
                std::thread::spawn(move || {
                    let _guard = ReaderGuard(handoff.clone());
                    while let Some(k) = handoff.take() {
                        assert_ne!(k, 5, "a reader fails on chunk 5");
                        let _ = to.send((k, k));
                    }
                })
            })
            .collect();
        drop(to);
        let got: Vec<Option<usize>> = in_order.collect();
        assert_eq!(&got[..5], &[Some(0), Some(1), Some(2), Some(3), Some(4)]);
        assert_eq!(got[5], None, "chunk 5 never comes");
        for r in readers {
            let _ = r.join();
        }
    }

    #[test]
    fn dropping_the_batching_end_stops_waiting_readers() {
        let (handoff, to, in_order) = Handoff::new(100, 1);
        let reader = {
            let handoff = handoff.clone();
            std::thread::spawn(move || {
                let mut sent = 0;
                while let Some(k) = handoff.take() {
                    if to.send((k, ())).is_err() {
                        break;
                    }
                    sent += 1;
                }
                sent
            })
        };
        drop(in_order);
        assert!(reader.join().unwrap() <= 2, "the reader stops within its window");
    }
}
