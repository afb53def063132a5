//! RICE_1 compression of integer images, tiles compressed in parallel (FITS tiled image
//! convention; the coder is Rice's as cfitsio implements it, blocks of 32 pixels).

// Indexing: the difference buffer is sized to the tile it codes.
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

/// MSB-first bit reading; past the end is an error.
struct BitReader<'a> {
    bytes: &'a [u8],
    at: usize,
    acc: u64,
    n: u32,
}

impl BitReader<'_> {
    #[inline(always)]
    fn refill(&mut self) {
        while self.n <= 56 {
            let Some(&b) = self.bytes.get(self.at) else { return };
            self.acc |= u64::from(b) << (56 - self.n);
            self.at += 1;
            self.n += 8;
        }
    }

    /// The next `bits` bits (at most 32).
    #[inline(always)]
    fn take(&mut self, bits: u32) -> std::result::Result<u32, &'static str> {
        if bits == 0 {
            return Ok(0);
        }
        if self.n < bits {
            self.refill();
            if self.n < bits {
                return Err("the compressed tile ends early");
            }
        }
        let v = (self.acc >> (64 - bits)) as u32;
        self.acc <<= bits;
        self.n -= bits;
        Ok(v)
    }

    /// The number of zero bits before the next one bit (which is consumed).
    #[inline(always)]
    fn unary(&mut self) -> std::result::Result<u32, &'static str> {
        let mut zeros = 0;
        loop {
            if self.n == 0 {
                self.refill();
                if self.n == 0 {
                    return Err("the compressed tile ends early");
                }
            }
            let lz = self.acc.leading_zeros().min(self.n);
            if lz < self.n {
                self.acc = self.acc.checked_shl(lz + 1).unwrap_or(0);
                self.n -= lz + 1;
                return Ok(zeros + lz);
            }
            zeros += self.n;
            self.acc = 0;
            self.n = 0;
            if zeros > 1 << 20 {
                return Err("a run of zeros longer than any pixel");
            }
        }
    }
}

/// Rice-decodes `count` pixels of `bytepix` bytes from `code` into `out` (sign-extended).
pub(crate) fn decode(
    code: &[u8],
    bytepix: usize,
    block: usize,
    count: usize,
    out: &mut Vec<i32>,
) -> std::result::Result<(), String> {
    // every element is written below: a buffer of the right length is reused as it is (zeroing
    // it for each tile was a pass over every pixel)
    if out.len() != count {
        out.clear();
        out.resize(count, 0);
    }
    match bytepix {
        1 => decode_into::<1>(code, block, out),
        2 => decode_into::<2>(code, block, out),
        _ => decode_into::<4>(code, block, out),
    }
}

/// [`decode`] for pixels of `N` bytes, into every element of `out`.
fn decode_into<const N: usize>(code: &[u8], block: usize, out: &mut [i32]) -> std::result::Result<(), String> {
    let (fsbits, fsmax): (u32, u32) = match N {
        1 => (3, 6),
        2 => (4, 14),
        _ => (5, 25),
    };
    let bbits = 8 * N as u32;
    if out.is_empty() {
        return Ok(());
    }
    let mut r = BitReader { bytes: code, at: 0, acc: 0, n: 0 };
    let widen = |v: u32| -> i32 {
        match N {
            1 => i32::from(v as u8 as i8),
            2 => i32::from(v as u16 as i16),
            _ => v as i32,
        }
    };
    let mut last = widen(r.take(bbits)?);
    for chunk in out.chunks_mut(block) {
        let fs = r.take(fsbits)?;
        if fs == 0 {
            // all differences zero
            chunk.fill(last);
            continue;
        }
        let fs = fs - 1;
        if fs > fsmax {
            return Err(format!("a block coded with {fs} split bits"));
        }
        for o in chunk.iter_mut() {
            let d = if fs == fsmax {
                r.take(bbits)?
            } else {
                let top = r.unary()?;
                let low = r.take(fs)?;
                top.checked_shl(fs).ok_or("a difference too large")? | low
            };
            let diff = if d & 1 == 0 { (d >> 1) as i32 } else { !((d >> 1) as i32) };
            last = widen(last.wrapping_add(diff) as u32);
            *o = last;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_the_encoder_codes_and_rejects_short_input() {
        for bytepix in [1usize, 2, 4] {
            let (lo, hi): (i64, i64) = match bytepix {
                1 => (-128, 127),
                2 => (-32768, 32767),
                _ => (i32::MIN as i64, i32::MAX as i64),
            };
            let mut s = 1u64;
            let pixels: Vec<i32> = (0..1000)
                .map(|i| {
                    s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
                    match i % 100 {
                        0..30 => 5,
                        30..60 => (lo + (s >> 33) as i64 % (hi - lo)) as i32,
                        _ => (i as i64 % (hi.min(1000))) as i32,
                    }
                })
                .collect();
            let code = encode(&pixels, bytepix, Vec::new());
            let mut back = Vec::new();
            decode(&code, bytepix, 32, pixels.len(), &mut back).expect("decode");
            assert_eq!(back, pixels, "bytepix {bytepix}");
            assert!(decode(&code[..code.len() / 2], bytepix, 32, pixels.len(), &mut back).is_err());
        }
    }
}
