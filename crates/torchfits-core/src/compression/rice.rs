//! RICE_1 compression of integer images, tiles compressed in parallel (FITS tiled image
//! convention; the coder is Rice's as cfitsio implements it, blocks of 32 pixels).

use torchfits_format::limits::try_resize;

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
#[expect(clippy::indexing_slicing, reason = "the difference buffer is sized to the tile it codes")]
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

/// MSB-first bit reading over a 64-bit window refilled a word at a time; past the end is an
/// error. `Copy`, and its cold paths take and give it by value, so that a decoding loop keeps it
/// in registers.
#[derive(Clone, Copy)]
struct BitReader<'a> {
    bytes: &'a [u8],
    /// The first byte not yet wholly in `acc`.
    at: usize,
    /// The next bits, MSB first: the top `n` are valid, and below them only the stream's own next
    /// bits or zeros, so that a refill may OR the same bits in again.
    acc: u64,
    n: u32,
}

impl BitReader<'_> {
    /// Tops the window up to 56 bits or more: one unaligned big-endian load while 8 bytes remain
    /// (it ORs in whole bytes past the window too, which are the stream's own next bits), byte by
    /// byte in the last 8.
    #[inline(always)]
    fn refill(&mut self) {
        if let Some(word) = self.bytes.get(self.at..self.at + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(word);
            self.acc |= u64::from_be_bytes(w) >> self.n;
            let took = (63 - self.n) >> 3;
            self.at += took as usize;
            self.n += took * 8;
        } else {
            *self = self.refill_tail();
        }
    }

    #[cold]
    fn refill_tail(mut self) -> Self {
        while self.n <= 56 {
            let Some(&b) = self.bytes.get(self.at) else { break };
            self.acc |= u64::from(b) << (56 - self.n);
            self.at += 1;
            self.n += 8;
        }
        self
    }

    /// The next `bits` bits (1 to 32).
    #[inline(always)]
    fn take(&mut self, bits: u32) -> std::result::Result<u32, &'static str> {
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

    /// One Rice code of split `fs` (below 32) from the window, without a refill: the zeros before
    /// a one bit, then `fs` bits, as `zeros << fs | bits`. The common case is one leading-zero
    /// count and two shifts: the one bit is read with the `fs` bits and taken off again
    /// (`- (1 << fs)`), which also serves `fs == 0` without a branch. A code the window does not
    /// hold whole goes the slow way.
    #[inline(always)]
    fn rice(&mut self, fs: u32) -> std::result::Result<u32, &'static str> {
        let lz = self.acc.leading_zeros();
        let len = lz + 1 + fs;
        if len > self.n {
            let (reader, d) = self.rice_long(fs)?;
            *self = reader;
            return Ok(d);
        }
        // lz + 1 + fs <= n <= 63: every shift below is in range
        let with_one = ((self.acc << lz) >> (63 - fs)) as u32;
        self.acc <<= len;
        self.n -= len;
        Ok((with_one - (1 << fs)).wrapping_add(lz << fs))
    }

    /// [`BitReader::rice`] for a code longer than the window holds (or one the data ends in).
    #[cold]
    fn rice_long(mut self, fs: u32) -> std::result::Result<(Self, u32), &'static str> {
        let mut zeros: u32 = 0;
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
                zeros += lz;
                break;
            }
            zeros += self.n;
            self.acc = 0;
            self.n = 0;
            if zeros > 1 << 20 {
                return Err("a run of zeros longer than any pixel");
            }
        }
        let low = if fs == 0 { 0 } else { self.take(fs)? };
        let d = zeros.checked_shl(fs).map(|top| top | low).ok_or("a difference too large")?;
        Ok((self, d))
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
        try_resize(out, count, 0)?;
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
    // the difference a zigzag code stands for, added to the last pixel in the pixels' width
    let next = |last: i32, d: u32| widen(last.wrapping_add(((d >> 1) as i32) ^ -((d & 1) as i32)) as u32);
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
        if fs == fsmax {
            // the differences stored as they are
            for o in chunk.iter_mut() {
                last = next(last, r.take(bbits)?);
                *o = last;
            }
            continue;
        }
        // a refill per group of codes, not per code: 56 bits hold four codes of up to 14 bits
        // (two of up to 28); a longer one goes the slow way
        let per_refill = if fs <= 10 { 4 } else { 2 };
        for group in chunk.chunks_mut(per_refill) {
            r.refill();
            for o in group.iter_mut() {
                last = next(last, r.rice(fs)?);
                *o = last;
            }
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

    /// Noise at several scales (every split the coder picks), with a spike in most blocks (codes
    /// longer than the reader's window), through each pixel width; and every prefix of a code
    /// decodes to an error or to pixels, never a panic.
    #[test]
    fn decodes_noise_of_every_scale_and_spikes_and_survives_every_cut() {
        let mut s = 7u64;
        let mut uniform = move || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        for (bytepix, scales) in
            [(1usize, &[0.5, 3.0, 20.0][..]), (2, &[0.5, 3.0, 40.0, 900.0]), (4, &[2.0, 500.0, 3e6])]
        {
            let (lo, hi) = match bytepix {
                1 => (-128.0, 127.0),
                2 => (-32768.0, 32767.0),
                _ => (i32::MIN as f64, i32::MAX as f64),
            };
            for &scale in scales {
                let pixels: Vec<i32> = (0..4099)
                    .map(|i| {
                        let noise = (uniform() + uniform() + uniform() - 1.5) * 2.0 * scale;
                        let spike = if i % 37 == 5 { (hi - lo) * 0.45 } else { 0.0 };
                        (noise + spike).clamp(lo, hi) as i32
                    })
                    .collect();
                let code = encode(&pixels, bytepix, Vec::new());
                let mut back = Vec::new();
                decode(&code, bytepix, 32, pixels.len(), &mut back).expect("decode");
                assert_eq!(back, pixels, "bytepix {bytepix}, scale {scale}");
                for cut in (0..code.len()).step_by(7) {
                    let _ = decode(&code[..cut], bytepix, 32, pixels.len(), &mut back);
                }
            }
        }
    }
}
