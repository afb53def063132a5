//! Epochs over a survey read as a stream: items grouped into shards (the stamps of one image,
//! read with one prefetch), each epoch visiting the shards in a drawn order, each device taking
//! its share of that sequence, a bounded shuffle buffer mixing the shards it holds
//! ([`EpochOrder`]). The order is a function of (seed, epoch, share) alone, and the index of the
//! items is one number per shard ([`ShardIndex`]), so an epoch of 10^9 stamps needs no list of
//! them.
//!
//! ```
//! use torchfits_burn::stream::{EpochOrder, ShardIndex};
//!
//! // three images with 4, 2 and 3 stamps; two devices, as burn-train's DDP splits a loader
//! let index = ShardIndex::new([4, 2, 3]);
//! let mut seen: Vec<u64> = (0..2)
//!     .flat_map(|rank| {
//!         let share = EpochOrder::share_of(rank, 2, index.items());
//!         EpochOrder { seed: 7, epoch: 0, share, buffer: 4 }.items(&index).collect::<Vec<_>>()
//!     })
//!     .collect();
//! seen.sort_unstable();
//! assert_eq!(seen, (0..9).collect::<Vec<_>>()); // every stamp once in the epoch
//! ```

mod cache;
mod handoff;
mod loader;
mod order;
mod source;

pub use cache::StampCache;
pub use loader::StampStream;
pub use order::{EpochOrder, ShardIndex, Shuffled};
pub use source::{ShardedStamps, StampLayout, StreamItems};
