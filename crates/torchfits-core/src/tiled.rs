//! Reading RICE_1 tile-compressed integer images without cfitsio: the tiles a section touches are
//! read from the heap (`pread`) and Rice-decoded straight into the caller's buffer, bands of tile
//! rows on separate threads. Anything else compressed (other algorithms, quantised floats, null
//! or uncompressed-tile columns) goes through cfitsio.

// Indexing reviewed (issue 8): `sec`, `tile`, `dims`, the strides and the odometers all have one entry per
// image axis (ZNAXIS, checked equal to the tile shape's and the section's length); tile
// descriptors are looked up with `get`, and tile contents only go through the bounds-checked bit
// reader of `decode_into`.
#![allow(clippy::indexing_slicing)]

use std::ops::Range;

use crate::direct::Direct;
use crate::error::{Error, Result};
use crate::header::Header;
use crate::image::{Dtype, Pixel, Section};

/// Where the tiles of a RICE_1 image are, from its binary table's header.
#[derive(Debug, Clone)]
pub(crate) struct RiceTable {
    /// Offset of the table's rows in the file.
    data_start: u64,
    /// Bytes per row (the descriptor: 8 for P, 16 for Q).
    row_bytes: usize,
    wide: bool,
    ntiles: usize,
    /// Offset of the heap from the rows' start.
    heap_offset: u64,
    heap_len: u64,
    /// Bytes per stored pixel (1, 2, 4).
    bytepix: usize,
    block: usize,
    /// Image and tile shapes, FITS order (x first).
    dims: Vec<usize>,
    tile: Vec<usize>,
}

impl RiceTable {
    /// The table of a compressed HDU whose data starts at `data_start`, if torchfits decodes it
    /// itself: RICE_1 of 8-, 16- or 32-bit integers, one COMPRESSED_DATA column, no quantisation.
    pub(crate) fn from_header(table: &Header, data_start: u64) -> Option<RiceTable> {
        let cmp = table.get_str("ZCMPTYPE")?.trim().to_ascii_uppercase();
        if cmp != "RICE_1" && cmp != "RICE_ONE" {
            return None;
        }
        let zbitpix = table.get_i64("ZBITPIX")?;
        if !matches!(zbitpix, 8 | 16 | 32) || table.get_i64("TFIELDS")? != 1 || table.contains("ZBLANK") {
            return None;
        }
        if !table.get_str("TTYPE1")?.trim().eq_ignore_ascii_case("COMPRESSED_DATA") {
            return None;
        }
        let tform = table.get_str("TFORM1")?.trim().to_ascii_uppercase();
        let wide = match tform.trim_start_matches('1').get(..2)? {
            "PB" => false,
            "QB" => true,
            _ => return None,
        };
        let (mut block, mut bytepix) = (32usize, (zbitpix / 8) as usize);
        for k in 1..=9 {
            match table.get_str(&format!("ZNAME{k}")).map(|s| s.trim().to_ascii_uppercase()).as_deref() {
                Some("BLOCKSIZE") => block = usize::try_from(table.get_i64(&format!("ZVAL{k}"))?).ok()?,
                Some("BYTEPIX") => bytepix = usize::try_from(table.get_i64(&format!("ZVAL{k}"))?).ok()?,
                Some(_) => return None,
                None => {}
            }
        }
        if bytepix != (zbitpix / 8) as usize || block == 0 || block > 1 << 16 {
            return None;
        }
        let row_bytes = usize::try_from(table.get_i64("NAXIS1")?).ok()?;
        let ntiles = usize::try_from(table.get_i64("NAXIS2")?).ok()?;
        if row_bytes != if wide { 16 } else { 8 } {
            return None;
        }
        let rows = (row_bytes as u64).checked_mul(ntiles as u64)?;
        let pcount = u64::try_from(table.get_i64("PCOUNT").unwrap_or(0)).ok()?;
        let heap_offset = match table.get_i64("THEAP") {
            Some(t) => u64::try_from(t).ok()?,
            None => rows,
        };
        let heap_len = (rows + pcount).checked_sub(heap_offset)?;
        let naxis = usize::try_from(table.get_i64("ZNAXIS")?).ok()?;
        let mut dims = Vec::with_capacity(naxis);
        let mut tile = Vec::with_capacity(naxis);
        for k in 1..=naxis {
            let d = usize::try_from(table.get_i64(&format!("ZNAXIS{k}"))?).ok()?;
            let default = if k == 1 { d as i64 } else { 1 };
            let t = usize::try_from(table.get_i64(&format!("ZTILE{k}")).unwrap_or(default)).ok()?;
            if t == 0 {
                return None;
            }
            dims.push(d);
            tile.push(t);
        }
        let expected = dims.iter().zip(&tile).try_fold(1usize, |acc, (d, t)| acc.checked_mul(d.div_ceil(*t)));
        if naxis == 0 || expected != Some(ntiles) {
            return None;
        }
        Some(RiceTable { data_start, row_bytes, wide, ntiles, heap_offset, heap_len, bytepix, block, dims, tile })
    }

    /// Whether an image of `dtype` (as the header gives it) is read here into `T`: in its own
    /// type, the stored integers as they are or offset (unsigned, i8), no BLANK.
    pub(crate) fn decodes<T: Pixel>(&self, dtype: Dtype, blank: bool) -> bool {
        let stored = match self.bytepix {
            1 => matches!(dtype, Dtype::U8 | Dtype::I8),
            2 => matches!(dtype, Dtype::I16 | Dtype::U16),
            _ => matches!(dtype, Dtype::I32 | Dtype::U32),
        };
        stored && !blank && T::DTYPE == dtype
    }

    /// The tile descriptors: (compressed length, heap offset) per tile.
    fn descriptors(&self, file: &Direct) -> Result<Vec<(u64, u64)>> {
        let bytes = (self.ntiles as u64).saturating_mul(self.row_bytes as u64);
        if self.data_start.saturating_add(bytes) > file.len() {
            return Err(Error::decoding("the file is truncated: it ends inside the table of tiles"));
        }
        let mut rows = vec![0u8; bytes as usize];
        file.read_bytes_at(&mut rows, self.data_start)?;
        Ok(rows
            .chunks_exact(self.row_bytes)
            .map(|r| {
                let word = |a: usize, n: usize| {
                    r.get(a..a + n).map_or(0u64, |b| b.iter().fold(0, |acc, &x| acc << 8 | u64::from(x)))
                };
                if self.wide { (word(0, 8), word(8, 8)) } else { (word(0, 4), word(4, 4)) }
            })
            .collect())
    }

    /// Decodes `section` (C order) into `out`, bands of tile rows on up to `threads` threads.
    pub(crate) fn read<T: Pixel>(&self, file: &Direct, section: &Section, out: &mut [T], threads: usize) -> Result<()> {
        let descriptors = self.descriptors(file)?;
        let n = self.dims.len();
        // the section in FITS order
        let sec: Vec<Range<usize>> = section.ranges().iter().rev().cloned().collect();
        if sec.len() != n {
            return Err(Error::parameter("the section does not match the image"));
        }
        // output strides (FITS order: x is 1)
        let mut ostride = vec![1usize; n];
        for a in 1..n {
            ostride[a] = ostride[a - 1] * sec[a - 1].len();
        }
        // bands along the slowest axis, in whole tiles
        let top = n - 1;
        let (t0, t1) = (sec[top].start / self.tile[top], sec[top].end.div_ceil(self.tile[top]));
        let per = (t1 - t0).div_ceil(threads.clamp(1, (t1 - t0).max(1)));
        let mut bands: Vec<(Range<usize>, &mut [T])> = Vec::new();
        let mut rest = out;
        let mut t = t0;
        while t < t1 {
            let a = (t * self.tile[top]).max(sec[top].start);
            let b = ((t + per) * self.tile[top]).min(sec[top].end);
            let (mine, tail) = std::mem::take(&mut rest).split_at_mut((b - a) * ostride[top]);
            bands.push((a..b, mine));
            rest = tail;
            t += per;
        }
        let decode_band = |rows: Range<usize>, out: &mut [T]| -> Result<()> {
            let mut band = sec.clone();
            band[top] = rows;
            self.decode_band(file, &descriptors, &band, &ostride, out)
        };
        if bands.len() <= 1 {
            return bands.into_iter().try_for_each(|(rows, out)| decode_band(rows, out));
        }
        std::thread::scope(|scope| {
            let mut bands = bands.into_iter();
            let first = bands.next();
            let decode_band = &decode_band;
            let handles: Vec<_> = bands.map(|(rows, out)| scope.spawn(move || decode_band(rows, out))).collect();
            let mine = first.map_or(Ok(()), |(rows, out)| decode_band(rows, out));
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|_| Err(Error::decoding("a decoding thread panicked"))))
                .fold(mine, |acc, r| acc.and(r))
        })
    }

    /// Decodes the tiles `band` (FITS order) touches into `out` (the band, C order).
    fn decode_band<T: Pixel>(
        &self,
        file: &Direct,
        descriptors: &[(u64, u64)],
        band: &[Range<usize>],
        ostride: &[usize],
        out: &mut [T],
    ) -> Result<()> {
        let n = self.dims.len();
        let first: Vec<usize> = band.iter().zip(&self.tile).map(|(r, t)| r.start / t).collect();
        let last: Vec<usize> = band.iter().zip(&self.tile).map(|(r, t)| r.end.div_ceil(*t)).collect();
        let counts: Vec<usize> = self.dims.iter().zip(&self.tile).map(|(d, t)| d.div_ceil(*t)).collect();
        let mut code = Vec::new();
        let mut pixels: Vec<i32> = Vec::new();
        let mut tc = first.clone();
        loop {
            // this tile: its index, extent, and the part of the band it covers
            let k = tc.iter().zip(&counts).rev().fold(0usize, |acc, (c, m)| acc * m + c);
            let lo: Vec<usize> = tc.iter().zip(&self.tile).map(|(c, t)| c * t).collect();
            let hi: Vec<usize> = lo.iter().zip(&self.tile).zip(&self.dims).map(|((l, t), d)| (l + t).min(*d)).collect();
            let &(len, offset) = descriptors.get(k).ok_or_else(|| Error::decoding("a tile has no descriptor"))?;
            if offset.checked_add(len).is_none_or(|end| end > self.heap_len) {
                return Err(Error::decoding(format!("tile {k} points outside the heap")));
            }
            let count: usize = lo.iter().zip(&hi).map(|(l, h)| h - l).product();
            // no tile needs more than its raw pixels plus the block headers
            let most = (count as u64).saturating_mul(self.bytepix as u64 + 1).saturating_add(64);
            if len > most {
                return Err(Error::decoding(format!("tile {k} claims {len} bytes, more than {count} pixels can take")));
            }
            code.resize(len as usize, 0);
            file.read_bytes_at(&mut code, self.data_start + self.heap_offset + offset)?;
            decode(&code, self.bytepix, self.block, count, &mut pixels)
                .map_err(|e| Error::decoding(format!("tile {k}: {e}")))?;
            self.copy(&pixels, &lo, &hi, band, ostride, out);
            // next tile, odometer-wise
            let mut a = 0;
            loop {
                if a == n {
                    return Ok(());
                }
                tc[a] += 1;
                if tc[a] < last[a] {
                    break;
                }
                tc[a] = first[a];
                a += 1;
            }
        }
    }

    /// Copies the part of a decoded tile (`lo..hi`) inside `band` into `out`.
    fn copy<T: Pixel>(
        &self,
        pixels: &[i32],
        lo: &[usize],
        hi: &[usize],
        band: &[Range<usize>],
        ostride: &[usize],
        out: &mut [T],
    ) {
        let n = lo.len();
        let a: Vec<usize> = lo.iter().zip(band).map(|(l, b)| (*l).max(b.start)).collect();
        let z: Vec<usize> = hi.iter().zip(band).map(|(h, b)| (*h).min(b.end)).collect();
        if a.iter().zip(&z).any(|(a, z)| a >= z) {
            return;
        }
        let mut tstride = vec![1usize; n];
        for i in 1..n {
            tstride[i] = tstride[i - 1] * (hi[i - 1] - lo[i - 1]);
        }
        let run = z[0] - a[0];
        let mut c: Vec<usize> = a.clone();
        loop {
            let src: usize = (0..n).map(|i| (c[i] - lo[i]) * tstride[i]).sum();
            let dst: usize = (0..n).map(|i| (c[i] - band[i].start) * ostride[i]).sum();
            if let (Some(s), Some(d)) = (pixels.get(src..src + run), out.get_mut(dst..dst + run)) {
                store(s, d);
            }
            let mut i = 1;
            loop {
                if i >= n {
                    return;
                }
                c[i] += 1;
                if c[i] < z[i] {
                    break;
                }
                c[i] = a[i];
                i += 1;
            }
        }
    }
}

/// Stored integers (sign-extended) as values of `T`: the unsigned types and i8 undo their
/// offset (a flipped top bit).
fn store<T: Pixel>(src: &[i32], dst: &mut [T]) {
    macro_rules! each {
        ($t:ty, $f:expr) => {{
            let d: &mut [$t] = bytemuck::cast_slice_mut(dst);
            for (o, &v) in d.iter_mut().zip(src) {
                *o = $f(v);
            }
        }};
    }
    match T::DTYPE {
        Dtype::U8 => each!(u8, |v: i32| v as u8),
        Dtype::I8 => each!(i8, |v: i32| (v as u8 ^ 0x80) as i8),
        Dtype::I16 => each!(i16, |v: i32| v as i16),
        Dtype::U16 => each!(u16, |v: i32| (v as u16) ^ 0x8000),
        Dtype::I32 => each!(i32, |v: i32| v),
        Dtype::U32 => each!(u32, |v: i32| (v as u32) ^ 0x8000_0000),
        _ => {}
    }
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
    out.clear();
    out.resize(count, 0);
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
            let code = crate::write::rice_encode(&pixels, bytepix);
            let mut back = Vec::new();
            decode(&code, bytepix, 32, pixels.len(), &mut back).expect("decode");
            assert_eq!(back, pixels, "bytepix {bytepix}");
            assert!(decode(&code[..code.len() / 2], bytepix, 32, pixels.len(), &mut back).is_err());
        }
    }
}
