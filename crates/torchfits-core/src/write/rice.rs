//! RICE_1 compression of integer images, tiles compressed in parallel (FITS tiled image
//! convention; the coder is Rice's as cfitsio implements it, blocks of 32 pixels).

// Indexing reviewed (issue 8): the difference buffer is sized to the tile it codes.
#![allow(clippy::indexing_slicing)]

/// MSB-first bit packing.
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    /// Appends the low `bits` bits of `value` (at most 56).
    #[inline(always)]
    fn put(&mut self, value: u64, bits: u32) {
        if bits == 0 {
            return;
        }
        self.acc = (self.acc << bits) | (value & ((1u64 << bits) - 1));
        self.n += bits;
        while self.n >= 8 {
            self.n -= 8;
            self.out.push((self.acc >> self.n) as u8);
        }
        self.acc &= (1u64 << self.n) - 1;
    }

    fn zeros(&mut self, mut count: u32) {
        while count > 32 {
            self.put(0, 32);
            count -= 32;
        }
        self.put(0, count);
    }

    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push((self.acc << (8 - self.n)) as u8);
        }
        self.out
    }
}

/// Pixels per coding block (ZVAL1 of BLOCKSIZE).
pub(crate) const BLOCK: usize = 32;

/// Rice-codes `pixels` (stored values of `bytepix` bytes, sign-extended to i32) and appends the
/// code to `out`.
pub(crate) fn encode(pixels: &[i32], bytepix: usize, out: Vec<u8>) -> Vec<u8> {
    let (fsbits, fsmax): (u32, u32) = match bytepix {
        1 => (3, 6),
        2 => (4, 14),
        _ => (5, 25),
    };
    let bbits = 8 * bytepix as u32;
    let mut bits = Bits { out, acc: 0, n: 0 };
    let Some(&first) = pixels.first() else {
        return bits.finish();
    };
    bits.put(u64::from(first as u32), bbits);
    let mut last = first;
    let mut diff = [0u32; BLOCK];
    for block in pixels.chunks(BLOCK) {
        let mut sum = 0f64;
        for (d, &next) in diff.iter_mut().zip(block) {
            let p = match bytepix {
                1 => i32::from(next.wrapping_sub(last) as i8),
                2 => i32::from(next.wrapping_sub(last) as i16),
                _ => next.wrapping_sub(last),
            };
            *d = (if p < 0 { !(p << 1) } else { p << 1 }) as u32;
            sum += f64::from(*d);
            last = next;
        }
        let n = block.len();
        let mean = ((sum - (n / 2) as f64 - 1.0) / n as f64).max(0.0);
        let mut psum = (mean as u64 as u32) >> 1;
        let mut fs = 0u32;
        while psum > 0 {
            psum >>= 1;
            fs += 1;
        }
        let diff = &diff[..n];
        if fs >= fsmax {
            // high entropy: the differences as they are
            bits.put(u64::from(fsmax + 1), fsbits);
            for &d in diff {
                bits.put(u64::from(d), bbits);
            }
        } else if fs == 0 && sum == 0.0 {
            // all differences zero
            bits.put(0, fsbits);
        } else {
            bits.put(u64::from(fs + 1), fsbits);
            for &d in diff {
                // the top bits in unary (zeros, then a one), the low `fs` bits as they are: one
                // put (the zeros are the value's leading bits) unless the run is long
                let top = d >> fs;
                let low = u64::from(d) & ((1u64 << fs) - 1);
                if top + 1 + fs <= 56 {
                    bits.put((1u64 << fs) | low, top + 1 + fs);
                } else {
                    bits.zeros(top);
                    bits.put((1u64 << fs) | low, 1 + fs);
                }
            }
        }
    }
    bits.finish()
}
