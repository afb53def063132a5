//! The tiled image convention's quantisation of floating-point images: the dither sequence.

/// Integer that SUBTRACTIVE_DITHER_2 stores for an exact zero.
pub(crate) const ZERO_VALUE: i32 = -2_147_483_646;
/// Length of the convention's random sequence.
pub(crate) const N_RANDOM: usize = 10_000;

/// The tiled image convention's 10000 dither values: the Park-Miller generator (a = 16807,
/// m = 2^31 - 1) from seed 1, each seed / m rounded to f32, computed in f64 as cfitsio does.
pub(crate) fn random_sequence() -> &'static [f32] {
    static SEQUENCE: std::sync::OnceLock<Vec<f32>> = std::sync::OnceLock::new();
    SEQUENCE.get_or_init(|| park_miller_seeds().map(|seed| (seed / PARK_MILLER_M) as f32).collect())
}

const PARK_MILLER_M: f64 = 2147483647.0;

/// The convention's first `N_RANDOM` Park-Miller seeds (as f64, as cfitsio computes them).
fn park_miller_seeds() -> impl Iterator<Item = f64> {
    let mut seed = 1.0f64;
    (0..N_RANDOM).map(move |_| {
        let temp = 16807.0 * seed;
        seed = temp - PARK_MILLER_M * (temp / PARK_MILLER_M).trunc();
        seed
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dither_sequence_is_the_conventions() {
        // the convention's check: the 10000th seed is 1043618065
        assert_eq!(park_miller_seeds().last(), Some(1043618065.0));
        let r = random_sequence();
        assert_eq!(r.len(), N_RANDOM);
        assert!(r.iter().all(|&v| v > 0.0 && v < 1.0));
        assert_eq!(r[0], (16807.0 / PARK_MILLER_M) as f32);
    }
}
