//! Decoding Unix `compress` (`.Z`, LZW) streams, bounded: cfitsio inflates them into a buffer it
//! grows without limit, so torchfits inflates them itself (as it does gzip) within
//! `Limits::max_alloc`.
//!
//! The format is ncompress's: a 3-byte header (`1f 9d`, then the flags: the largest code width
//! in the low 5 bits, block mode in the top bit), then codes of 9 bits up to that width, packed
//! least significant bit first. Codes are read in groups of eight; when the width grows or the
//! table is cleared (code 256 in block mode), the rest of the current group is skipped, as
//! ncompress's reader does.

use std::io::{Read, Write};

/// First bytes of a `.Z` file.
pub(crate) const MAGIC: [u8; 2] = [0x1f, 0x9d];
const CLEAR: u32 = 256;

/// Reads codes least significant bit first, counting the bits read since the current group
/// of codes began (to skip to the end of a group).
struct Codes<R> {
    input: R,
    acc: u64,
    bits: u32,
    /// Bits consumed since the width last changed (or the table was cleared).
    since: u64,
    end: bool,
}

impl<R: Read> Codes<R> {
    fn fill(&mut self, want: u32) -> std::io::Result<()> {
        while self.bits < want && !self.end {
            let mut byte = [0u8; 1];
            match self.input.read(&mut byte) {
                Ok(0) => self.end = true,
                Ok(_) => {
                    self.acc |= u64::from(byte[0]) << self.bits;
                    self.bits += 8;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The next code of `width` bits; `None` at the end of the stream (fewer bits left).
    fn next(&mut self, width: u32) -> std::io::Result<Option<u32>> {
        self.fill(width)?;
        if self.bits < width {
            return Ok(None);
        }
        let code = (self.acc & ((1u64 << width) - 1)) as u32;
        self.acc >>= width;
        self.bits -= width;
        self.since += u64::from(width);
        Ok(Some(code))
    }

    /// Skips to the end of the current group of eight `width`-bit codes.
    fn end_group(&mut self, width: u32) -> std::io::Result<()> {
        let group = u64::from(width) * 8;
        let mut skip = (group - self.since % group) % group;
        while skip > 0 {
            let n = skip.min(32) as u32;
            self.fill(n)?;
            let n = n.min(self.bits);
            if n == 0 {
                break;
            }
            self.acc = self.acc.checked_shr(n).unwrap_or(0);
            self.bits -= n;
            skip -= u64::from(n);
        }
        self.since = 0;
        Ok(())
    }
}

/// Why a `.Z` stream could not be inflated.
#[derive(Debug)]
pub(crate) enum UnlzwError {
    /// More than the limit would be written.
    TooLarge,
    /// Not a valid stream.
    Corrupt(String),
    Io(std::io::Error),
}

impl From<std::io::Error> for UnlzwError {
    fn from(e: std::io::Error) -> Self {
        UnlzwError::Io(e)
    }
}

/// Inflates the `.Z` stream `input` (header included) into `out`, writing at most `max` bytes;
/// returns the number written.
pub(crate) fn unlzw(input: impl Read, out: &mut impl Write, max: u64) -> Result<u64, UnlzwError> {
    let mut input = input;
    let mut header = [0u8; 3];
    input.read_exact(&mut header).map_err(|_| UnlzwError::Corrupt("the header is cut short".into()))?;
    let [m0, m1, flags] = header;
    if [m0, m1] != MAGIC {
        return Err(UnlzwError::Corrupt("not a compress (.Z) stream".into()));
    }
    let max_bits = u32::from(flags & 0x1f);
    let block = flags & 0x80 != 0;
    if !(9..=16).contains(&max_bits) || flags & 0x60 != 0 {
        return Err(UnlzwError::Corrupt(format!("unsupported flags {flags:#04x}")));
    }
    let table_len = 1usize << max_bits;
    let mut prefix = vec![0u16; table_len];
    let mut suffix = vec![0u8; table_len];
    for (i, s) in suffix.iter_mut().enumerate().take(256) {
        *s = i as u8;
    }
    let mut codes = Codes { input, acc: 0, bits: 0, since: 0, end: false };
    let mut width = 9u32;
    let limit_for = |w: u32| if w == max_bits { table_len as u32 } else { (1u32 << w) - 1 };
    let mut max_code = limit_for(width);
    let mut free = if block { 257u32 } else { 256 };
    let mut old: Option<u32> = None;
    let mut first_char = 0u8;
    let mut stack: Vec<u8> = Vec::with_capacity(table_len);
    let mut written = 0u64;
    loop {
        if free > max_code && width < max_bits {
            codes.end_group(width)?;
            width += 1;
            max_code = limit_for(width);
        }
        let Some(code) = codes.next(width)? else { break };
        let Some(prev) = old else {
            // the first code is a literal byte
            if code >= 256 {
                return Err(UnlzwError::Corrupt(format!("the first code is {code}, not a byte")));
            }
            first_char = code as u8;
            write(out, &[first_char], &mut written, max)?;
            old = Some(code);
            continue;
        };
        if code == CLEAR && block {
            free = 256;
            codes.end_group(width)?;
            width = 9;
            max_code = limit_for(width);
            continue;
        }
        stack.clear();
        let mut c = code;
        if c >= free {
            if c > free {
                return Err(UnlzwError::Corrupt(format!("code {c} is past the table's end ({free})")));
            }
            stack.push(first_char);
            c = prev;
        }
        while c >= 256 {
            let (Some(&s), Some(&p)) = (suffix.get(c as usize), prefix.get(c as usize)) else {
                return Err(UnlzwError::Corrupt(format!("code {c} is outside the table")));
            };
            stack.push(s);
            if stack.len() > table_len {
                return Err(UnlzwError::Corrupt("a string longer than the table".into()));
            }
            c = u32::from(p);
        }
        first_char = c as u8;
        stack.push(first_char);
        stack.reverse();
        write(out, &stack, &mut written, max)?;
        if (free as usize) < table_len {
            if let (Some(p), Some(s)) = (prefix.get_mut(free as usize), suffix.get_mut(free as usize)) {
                *p = prev as u16;
                *s = first_char;
            }
            free += 1;
        }
        old = Some(code);
    }
    Ok(written)
}

fn write(out: &mut impl Write, bytes: &[u8], written: &mut u64, max: u64) -> Result<(), UnlzwError> {
    *written += bytes.len() as u64;
    if *written > max {
        return Err(UnlzwError::TooLarge);
    }
    out.write_all(bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes `gzip -dc` (an independent decoder of .Z streams) gives.
    fn gzip_dc(path: &std::path::Path) -> Vec<u8> {
        let out = std::process::Command::new("gzip").arg("-dc").arg(path).output().expect("run gzip");
        assert!(out.status.success(), "gzip -dc {}", path.display());
        out.stdout
    }

    #[test]
    fn inflates_as_gzip_does_and_refuses_past_the_limit() {
        // made by ncompress 4.2.4 from a 23040-byte FITS file: 16-bit codes, and 10-bit codes (the
        // table fills and is cleared, so groups are skipped on both width changes and clears)
        let data = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/data");
        let mut clears = 0;
        let astropy = data.join("../../../shared/corpus/images-tables/astropy-lzw.fits.Z");
        for path in [data.join("lzw.fits.Z"), data.join("lzw_10bit.fits.Z"), astropy] {
            if !path.exists() {
                continue; // ../shared is where the tests run with it; the two above are in the repo
            }
            let name = path.display().to_string();
            let bytes = std::fs::read(&path).expect("read");
            clears += count_clears(&bytes);
            let mut out = Vec::new();
            let n = unlzw(&bytes[..], &mut out, u64::MAX).expect("inflate");
            assert_eq!(out, gzip_dc(&path), "{name}");
            assert_eq!(n as usize, out.len());
            assert!(out.starts_with(b"SIMPLE  ="));
            assert!(matches!(unlzw(&bytes[..], &mut Vec::new(), n - 1), Err(UnlzwError::TooLarge)));
            assert_eq!(unlzw(&bytes[..], &mut Vec::new(), n).expect("exactly the limit"), n);
            // cut short or corrupted: an error or fewer bytes, never a panic
            for cut in [0, 2, 3, 10, bytes.len() / 2] {
                if let Ok(m) = unlzw(&bytes[..cut], &mut Vec::new(), u64::MAX) {
                    assert!(m < n, "{name} cut at {cut}");
                }
            }
            let mut flipped = bytes.clone();
            for i in (3..flipped.len()).step_by(97) {
                flipped[i] ^= 0x5a;
            }
            let _ = unlzw(&flipped[..], &mut Vec::new(), 1 << 24);
        }
        assert!(clears > 0, "the fixtures exercise no table clear");
    }

    /// How many CLEAR codes a block-mode stream holds (decoding it with a counting copy of the
    /// reader's width rules).
    fn count_clears(bytes: &[u8]) -> usize {
        let max_bits = u32::from(bytes[2] & 0x1f);
        let mut codes = Codes { input: &bytes[3..], acc: 0, bits: 0, since: 0, end: false };
        let (mut width, mut free, mut first, mut clears) = (9u32, 257u32, true, 0);
        loop {
            let max_code = if width == max_bits { 1 << max_bits } else { (1u32 << width) - 1 };
            if free > max_code && width < max_bits {
                codes.end_group(width).expect("skip");
                width += 1;
                continue;
            }
            let Some(code) = codes.next(width).expect("read") else { return clears };
            if first {
                first = false;
            } else if code == CLEAR {
                clears += 1;
                free = 256;
                codes.end_group(width).expect("skip");
                width = 9;
            } else if free < 1 << max_bits {
                free += 1;
            }
        }
    }
}
