//! The FITS checksum convention (FITS standard 4.0, appendix J): the 32-bit ones' complement sum
//! of an HDU's big-endian words, DATASUM for the data alone, CHECKSUM encoded in 16 ASCII
//! characters so that the whole HDU sums to -0.

// Indexing: fixed-size words and carries of the checksum arithmetic.
#![allow(clippy::indexing_slicing)]

/// The ones' complement sum of `bytes` (as big-endian 32-bit words; a trailing partial word is
/// zero-padded) added to `sum`.
pub fn add_bytes(sum: u32, bytes: &[u8]) -> u32 {
    let (mut hi, mut lo) = (u64::from(sum >> 16), u64::from(sum & 0xffff));
    let mut words = bytes.chunks_exact(4);
    for w in &mut words {
        hi += u64::from(u16::from_be_bytes([w[0], w[1]]));
        lo += u64::from(u16::from_be_bytes([w[2], w[3]]));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 4];
        w[..rest.len()].copy_from_slice(rest);
        hi += u64::from(u16::from_be_bytes([w[0], w[1]]));
        lo += u64::from(u16::from_be_bytes([w[2], w[3]]));
    }
    // fold the carries of each half into the other (end-around carry)
    loop {
        let (hc, lc) = (hi >> 16, lo >> 16);
        if hc == 0 && lc == 0 {
            break;
        }
        hi = (hi & 0xffff) + lc;
        lo = (lo & 0xffff) + hc;
    }
    ((hi << 16) | lo) as u32
}

/// A running sum over bytes that arrive in pieces of any length (the words span the pieces).
#[derive(Debug, Default)]
pub struct Summer {
    sum: u32,
    carry: [u8; 4],
    n: usize,
}

impl Summer {
    /// Adds `bytes` to the sum, after any carried from the last call.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        if self.n > 0 {
            let take = (4 - self.n).min(bytes.len());
            self.carry[self.n..self.n + take].copy_from_slice(&bytes[..take]);
            self.n += take;
            bytes = &bytes[take..];
            if self.n < 4 {
                return;
            }
            self.sum = add_bytes(self.sum, &self.carry);
            self.n = 0;
        }
        let whole = bytes.len() / 4 * 4;
        self.sum = add_bytes(self.sum, &bytes[..whole]);
        let rest = &bytes[whole..];
        self.carry[..rest.len()].copy_from_slice(rest);
        self.n = rest.len();
    }

    /// The sum, a trailing partial word zero-padded.
    pub fn finish(self) -> u32 {
        if self.n == 0 { self.sum } else { add_bytes(self.sum, &self.carry[..self.n]) }
    }
}

/// Ones' complement addition of two sums.
pub fn add(a: u32, b: u32) -> u32 {
    let s = u64::from(a) + u64::from(b);
    ((s & 0xffff_ffff) + (s >> 32)) as u32
}

/// The 16-character encoding of the complement of `sum` (the value of CHECKSUM).
pub fn encode(sum: u32) -> String {
    const EXCLUDE: [u8; 13] = [0x3a, 0x3b, 0x3c, 0x3d, 0x3e, 0x3f, 0x40, 0x5b, 0x5c, 0x5d, 0x5e, 0x5f, 0x60];
    let value = !sum;
    let mut asc = [0u8; 16];
    for i in 0..4 {
        let byte = (value >> (24 - 8 * i)) & 0xff;
        let quotient = (byte / 4 + 0x30) as i32;
        let remainder = (byte % 4) as i32;
        let mut ch = [quotient; 4];
        ch[0] += remainder;
        loop {
            let mut changed = false;
            for k in EXCLUDE {
                for j in [0, 2] {
                    if ch[j] as u8 == k || ch[j + 1] as u8 == k {
                        ch[j] += 1;
                        ch[j + 1] -= 1;
                        changed = true;
                    }
                }
            }
            if !changed {
                break;
            }
        }
        for (j, c) in ch.iter().enumerate() {
            asc[4 * j + i] = *c as u8;
        }
    }
    // rotated right by one character
    (0..16).map(|i| asc[(i + 15) % 16] as char).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_and_encodings() {
        // the standard's example: the encoding of a zero sum's complement
        assert_eq!(encode(0xffff_ffff), "0000000000000000");
        assert_eq!(add(0xffff_ffff, 1), 1);
        assert_eq!(add_bytes(0, &[0, 0, 0, 1, 0, 0, 0, 2]), 3);
        // carries wrap around
        assert_eq!(add_bytes(0, &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1]), 1);
        // a partial word counts as zero-padded
        assert_eq!(add_bytes(0, &[0, 0, 1]), 0x100);
        // pieces of any length sum as the whole
        let bytes: Vec<u8> = (0..1001u32).map(|i| (i * 7919 % 251) as u8).collect();
        for cut in [0, 1, 2, 3, 5, 500, 999] {
            let mut s = Summer::default();
            s.feed(&bytes[..cut]);
            s.feed(&bytes[cut..cut + 1.min(bytes.len() - cut)]);
            s.feed(&bytes[(cut + 1).min(bytes.len())..]);
            assert_eq!(s.finish(), add_bytes(0, &bytes), "cut {cut}");
        }
    }
}
