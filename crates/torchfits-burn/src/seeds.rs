//! Reproducible draws: every random choice (a crop, a symmetry, a shuffle, a substitute item)
//! is a hash of its seed, the epoch and the item's index, so it is the same on every run,
//! device, worker count and batch size.

/// The draw of item `index` in `epoch` for `seed`.
pub(crate) fn draw(seed: u64, epoch: u64, index: usize) -> u64 {
    splitmix(seed ^ splitmix(epoch ^ splitmix(index as u64)))
}

/// A 64-bit mix (splitmix64's finaliser).
pub(crate) fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
