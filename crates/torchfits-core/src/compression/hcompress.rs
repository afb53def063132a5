//! HCOMPRESS_1 tiles: R. White's H-transform coder, decoded as astropy and cfitsio decode it
//! (`fits_hdecompress64`: 64-bit coefficients for every pixel type).
//!
//! A tile is a header (the magic bytes `DD 99`, the tile's rows and columns, the digitising
//! scale, the sum of all pixels, the bit-plane counts of the three coefficient quadrants), the
//! quadrants' bit planes (each written directly or quadtree-coded with a fixed Huffman code), an
//! end nybble, and one sign bit per non-zero coefficient. Decoding reverses it: bit planes to
//! coefficients, times the scale, then the inverse H-transform (optionally smoothed, SMOOTH = 1).
//!
//! Every read of the tile's bytes is checked: bytes past its end read as zeros, so a corrupt tile
//! decodes to garbage or an error, never to a read outside it.

use torchfits_format::limits::try_resize;

/// Decodes one tile of `out.len()` pixels (x fastest, as the tile is stored); `smooth` is the
/// header's SMOOTH. The tile's own dimensions must multiply to `out.len()`.
pub(crate) fn decode(code: &[u8], smooth: bool, out: &mut Vec<i64>, pixels: usize) -> Result<(), String> {
    if code.get(..2) != Some(&[0xdd, 0x99][..]) {
        return Err("it is not an HCOMPRESS stream (no DD 99 at its start)".into());
    }
    let int = |at: usize| -> i64 {
        let word: [u8; 4] = code.get(at..at + 4).and_then(|b| b.try_into().ok()).unwrap_or([0; 4]);
        i64::from(i32::from_be_bytes(word))
    };
    let (rows, cols, scale) = (int(2), int(6), int(10));
    let sum: [u8; 8] = code.get(14..22).and_then(|b| b.try_into().ok()).ok_or("its HCOMPRESS header is cut short")?;
    let planes: [u8; 3] =
        code.get(22..25).and_then(|b| b.try_into().ok()).ok_or("its HCOMPRESS header is cut short")?;
    let (Ok(nx), Ok(ny)) = (usize::try_from(rows), usize::try_from(cols)) else {
        return Err(format!("its HCOMPRESS header gives {rows} x {cols} pixels"));
    };
    if nx.checked_mul(ny) != Some(pixels) || nx.max(ny) < 2 {
        return Err(format!("its HCOMPRESS header gives {nx} x {ny} pixels, not the {pixels} of the tile"));
    }
    // every coefficient below 2^52 (an image of 32-bit pixels needs 2^51 for a tile of 2^20 of
    // them), so that a valid tile's transform stays far inside i64; a corrupt one may not, and the
    // transform's arithmetic wraps rather than trusting it
    let sum = i64::from_be_bytes(sum);
    let scale_bits = if scale > 1 { 64 - scale.leading_zeros() } else { 0 };
    let largest = planes.iter().map(|&p| u32::from(p)).max().unwrap_or(0) + scale_bits;
    if largest > MAX_BITS || sum.checked_mul(scale.max(1)).is_none_or(|s| s.unsigned_abs() >= 1 << MAX_BITS) {
        return Err("its HCOMPRESS coefficients are larger than any image's".into());
    }
    out.clear();
    try_resize(out, pixels, 0)?;
    let mut bits = Bits { bytes: code, next: 25, buffer: 0, left: 0 };
    decode_planes(&mut bits, out, nx, ny, planes)?;
    // the tile has at least 2 x 2 pixels (checked above)
    if let Some(first) = out.first_mut() {
        *first = sum;
    }
    if scale > 1 {
        out.iter_mut().for_each(|v| *v = v.wrapping_mul(scale));
    }
    inverse_h_transform(out, nx, ny, smooth, scale);
    Ok(())
}

/// Bits of a coefficient (its magnitude times the scale, and the sum of the tile), at most.
const MAX_BITS: u32 = 52;

/// The tile's bits, most significant first, as the coder wrote them.
struct Bits<'a> {
    bytes: &'a [u8],
    next: usize,
    buffer: u32,
    left: u32,
}

impl Bits<'_> {
    fn byte(&mut self) -> u32 {
        let b = self.bytes.get(self.next).copied().unwrap_or(0);
        self.next += 1;
        u32::from(b)
    }

    /// Drops the bits left in the current byte: the sign bits start on a byte of their own.
    fn restart(&mut self) {
        self.left = 0;
    }

    fn bit(&mut self) -> u32 {
        if self.left == 0 {
            self.buffer = self.byte();
            self.left = 8;
        }
        self.left -= 1;
        (self.buffer >> self.left) & 1
    }

    /// The next `n` (at most 8) bits.
    fn bits(&mut self, n: u32) -> u32 {
        if self.left < n {
            self.buffer = (self.buffer << 8) | self.byte();
            self.left += 8;
        }
        self.left -= n;
        (self.buffer >> self.left) & ((1 << n) - 1)
    }

    /// One 4-bit quadtree code, from the coder's fixed Huffman code.
    fn huffman(&mut self) -> u8 {
        let c = self.bits(3);
        if c < 4 {
            return 1 << c;
        }
        let c = self.bit() | c << 1;
        match c {
            8 => return 3,
            9 => return 5,
            10 => return 10,
            11 => return 12,
            12 => return 15,
            _ => {}
        }
        let c = self.bit() | c << 1;
        match c {
            26 => return 6,
            27 => return 7,
            28 => return 9,
            29 => return 11,
            30 => return 13,
            _ => {}
        }
        if self.bit() | c << 1 == 62 { 0 } else { 14 }
    }
}

/// ceil(log2(n)), 0 for n <= 1.
fn ceil_log2(n: usize) -> u32 {
    if n <= 1 { 0 } else { usize::BITS - (n - 1).leading_zeros() }
}

/// The coefficients' magnitudes (bit planes of the four quadrants) and signs into `a` (nx rows of
/// ny, zeroed).
#[expect(
    clippy::indexing_slicing,
    reason = "the quadrants start inside the nx x ny coefficients `decode` checked against the tile's pixels"
)]
fn decode_planes(bits: &mut Bits<'_>, a: &mut [i64], nx: usize, ny: usize, planes: [u8; 3]) -> Result<(), String> {
    let (nx2, ny2) = (nx.div_ceil(2), ny.div_ceil(2));
    let mut scratch = Vec::new();
    try_resize(&mut scratch, nx2 * ny2, 0u8)?;
    let quadrants = [(0, nx2, ny2, planes[0]), (ny2, nx2, ny / 2, planes[1]), (ny * nx2, nx / 2, ny2, planes[1])];
    for (start, nqx, nqy, nplanes) in quadrants.into_iter().chain([(ny * nx2 + ny2, nx / 2, ny / 2, planes[2])]) {
        decode_quadrant(bits, &mut a[start..], ny, nqx, nqy, nplanes, &mut scratch)?;
    }
    if bits.bits(4) != 0 {
        return Err("its bit planes do not end where the HCOMPRESS stream says".into());
    }
    bits.restart();
    for v in a.iter_mut().filter(|v| **v != 0) {
        if bits.bit() == 1 {
            *v = -*v;
        }
    }
    Ok(())
}

/// The `nplanes` bit planes of one quadrant (nqx rows of nqy, rows `n` apart in `a`), each
/// written directly (4 pixels a nybble) or quadtree-coded.
#[expect(
    clippy::indexing_slicing,
    reason = "the quadrant's rows and columns lie inside the nx x ny coefficients, and the scratch is sized for the largest quadrant (decode_planes)"
)]
fn decode_quadrant(
    bits: &mut Bits<'_>,
    a: &mut [i64],
    n: usize,
    nqx: usize,
    nqy: usize,
    nplanes: u8,
    scratch: &mut [u8],
) -> Result<(), String> {
    let log2n = ceil_log2(nqx.max(nqy));
    let blocks = nqx.div_ceil(2) * nqy.div_ceil(2);
    for bit in (0..u32::from(nplanes)).rev() {
        match bits.bits(4) {
            0 => scratch[..blocks].iter_mut().for_each(|s| *s = bits.bits(4) as u8),
            0xf => {
                scratch[0] = bits.huffman();
                let (mut nx, mut ny, mut nfx, mut nfy) = (1usize, 1usize, nqx, nqy);
                let mut c = 1usize << log2n;
                for _ in 1..log2n {
                    // n[k-1] = (n[k] + 1) / 2, where n[log2n] is nqx or nqy
                    c >>= 1;
                    nx <<= 1;
                    ny <<= 1;
                    if nfx <= c {
                        nx -= 1
                    } else {
                        nfx -= c
                    }
                    if nfy <= c {
                        ny -= 1
                    } else {
                        nfy -= c
                    }
                    expand_quadtree(bits, scratch, nx, ny);
                }
            }
            _ => return Err("its bit planes carry a code HCOMPRESS does not have".into()),
        }
        insert_plane(a, n, nqx, nqy, &scratch[..blocks], 1i64 << bit);
    }
    Ok(())
}

/// Sets bit `plane` of the pixels of an nqx x nqy quadrant (rows `n` apart in `a`) that the
/// 4-bit codes say are set, one code per 2x2 block (row-major over the blocks): bit 8 the block's
/// first pixel, 4 the next in its row, 2 and 1 the two below, where they are inside the quadrant.
#[expect(
    clippy::indexing_slicing,
    reason = "indices stay inside the quadrant (its nqx x nqy bound the loops) and the scratch sized for it"
)]
fn insert_plane(a: &mut [i64], n: usize, nqx: usize, nqy: usize, codes: &[u8], plane: i64) {
    // without branches on the codes' bits: in the low planes they are noise
    let bit = |code: u8, b: u8| i64::from((code >> b) & 1) * plane;
    let per_row = nqy.div_ceil(2);
    let whole = nqy / 2; // blocks with both columns inside the quadrant
    for (bi, row_codes) in codes.chunks(per_row.max(1)).take(nqx.div_ceil(2)).enumerate() {
        let i = 2 * bi;
        let top = n * i;
        if i + 1 < nqx {
            let (upper, lower) = a[top..].split_at_mut(n);
            for (bj, &code) in row_codes.iter().enumerate().take(whole) {
                let j = 2 * bj;
                upper[j] |= bit(code, 3);
                upper[j + 1] |= bit(code, 2);
                lower[j] |= bit(code, 1);
                lower[j + 1] |= bit(code, 0);
            }
            if whole < per_row {
                let (code, j) = (row_codes[whole], 2 * whole);
                upper[j] |= bit(code, 3);
                lower[j] |= bit(code, 1);
            }
        } else {
            for (bj, &code) in row_codes.iter().enumerate() {
                let j = top + 2 * bj;
                a[j] |= bit(code, 3);
                if 2 * bj + 1 < nqy {
                    a[j + 1] |= bit(code, 2);
                }
            }
        }
    }
}

/// One quadtree level: each 4-bit code of the level above (((nx+1)/2) x ((ny+1)/2), in place at
/// the front of `scratch`) becomes its 2x2 block of bits in nx x ny, and each non-zero bit is
/// replaced by the next code of the stream.
#[expect(
    clippy::indexing_slicing,
    reason = "the quadtree's cells halve the quadrant's extent, within the scratch sized for it, as the loops' bounds show"
)]
fn expand_quadtree(bits: &mut Bits<'_>, scratch: &mut [u8], nx: usize, ny: usize) {
    let (nx2, ny2) = (nx.div_ceil(2), ny.div_ceil(2));
    // spread the codes to the even positions, from the end: the array is shared
    for i in (0..nx2).rev() {
        for j in (0..ny2).rev() {
            scratch[2 * (ny * i + j)] = scratch[ny2 * i + j];
        }
    }
    for i in (0..nx).step_by(2) {
        for j in (0..ny).step_by(2) {
            let s00 = ny * i + j;
            let code = scratch[s00];
            scratch[s00] = code >> 3 & 1;
            if j + 1 < ny {
                scratch[s00 + 1] = code >> 2 & 1;
            }
            if i + 1 < nx {
                scratch[s00 + ny] = code >> 1 & 1;
                if j + 1 < ny {
                    scratch[s00 + ny + 1] = code & 1;
                }
            }
        }
    }
    for v in scratch[..nx * ny].iter_mut().rev() {
        if *v != 0 {
            *v = bits.huffman();
        }
    }
}

/// The inverse H-transform of `a` (nx rows of ny) in place, log2(max(nx, ny)) levels, each
/// interleaving the coefficients and combining every 2x2 block with the coder's rounding.
#[expect(
    clippy::indexing_slicing,
    reason = "every index is a position inside the nx x ny coefficients (checked in `decode`) or inside `tmp`, sized for the longer side, as the loops' bounds show"
)]
fn inverse_h_transform(a: &mut [i64], nx: usize, ny: usize, smooth: bool, scale: i64) {
    let log2n = ceil_log2(nx.max(ny));
    let mut tmp = vec![0i64; nx.max(ny).div_ceil(2)];
    let mut shift = 1;
    let mut bit0: i64 = 1 << (log2n - 1);
    let mut bit1 = bit0 << 1;
    let bit2 = bit0 << 2;
    let (mut mask0, mut mask1) = (-bit0, -bit0 << 1);
    let mask2 = -bit0 << 2;
    let (mut prnd0, mut prnd1) = (bit0 >> 1, bit1 >> 1);
    let prnd2 = bit2 >> 1;
    let (mut nrnd0, mut nrnd1) = (prnd0 - 1, prnd1 - 1);
    let nrnd2 = prnd2 - 1;
    let round = |v: i64, p: i64, n: i64, m: i64| v.wrapping_add(if v >= 0 { p } else { n }) & m;
    a[0] = round(a[0], prnd2, nrnd2, mask2);
    let (mut nxtop, mut nytop, mut nxf, mut nyf) = (1usize, 1usize, nx, ny);
    let mut c = 1usize << log2n;
    for k in (0..log2n).rev() {
        c >>= 1;
        nxtop <<= 1;
        nytop <<= 1;
        if nxf <= c {
            nxtop -= 1
        } else {
            nxf -= c
        }
        if nyf <= c {
            nytop -= 1
        } else {
            nyf -= c
        }
        if k == 0 {
            // the last level divides by 4, and rounds nothing below bit 0
            nrnd0 = 0;
            shift = 2;
        }
        for i in 0..nxtop {
            unshuffle(&mut a[ny * i..], nytop, 1, &mut tmp);
        }
        for j in 0..nytop {
            unshuffle(&mut a[j..], nxtop, ny, &mut tmp);
        }
        if smooth {
            smooth_coefficients(a, nxtop, nytop, ny, scale);
        }
        let (oddx, oddy) = (nxtop % 2, nytop % 2);
        let mut i = 0;
        while i < nxtop - oddx {
            let (mut s00, mut s10) = (ny * i, ny * (i + 1));
            let mut j = 0;
            while j < nytop - oddy {
                let h0 = a[s00];
                let mut hx = round(a[s10], prnd1, nrnd1, mask1);
                let mut hy = round(a[s00 + 1], prnd1, nrnd1, mask1);
                let hc = round(a[s10 + 1], prnd0, nrnd0, mask0);
                // bit 0 of hc goes to hx and hy, bits 0 and 1 of hc, hx, hy to h0
                let lowbit0 = hc & bit0;
                hx = if hx >= 0 { hx.wrapping_sub(lowbit0) } else { hx.wrapping_add(lowbit0) };
                hy = if hy >= 0 { hy.wrapping_sub(lowbit0) } else { hy.wrapping_add(lowbit0) };
                let lowbit1 = (hc ^ hx ^ hy) & bit1;
                let h0 = if h0 >= 0 {
                    h0.wrapping_add(lowbit0 - lowbit1)
                } else {
                    h0.wrapping_add(if lowbit0 == 0 { lowbit1 } else { lowbit0 - lowbit1 })
                };
                a[s10 + 1] = h0.wrapping_add(hx).wrapping_add(hy).wrapping_add(hc) >> shift;
                a[s10] = h0.wrapping_add(hx).wrapping_sub(hy).wrapping_sub(hc) >> shift;
                a[s00 + 1] = h0.wrapping_sub(hx).wrapping_add(hy).wrapping_sub(hc) >> shift;
                a[s00] = h0.wrapping_sub(hx).wrapping_sub(hy).wrapping_add(hc) >> shift;
                s00 += 2;
                s10 += 2;
                j += 2;
            }
            if oddy == 1 {
                // the last element of an odd row: s00 + 1 and s10 + 1 are off the edge
                let hx = round(a[s10], prnd1, nrnd1, mask1);
                let lowbit1 = hx & bit1;
                let h0 = if a[s00] >= 0 { a[s00].wrapping_sub(lowbit1) } else { a[s00].wrapping_add(lowbit1) };
                a[s10] = h0.wrapping_add(hx) >> shift;
                a[s00] = h0.wrapping_sub(hx) >> shift;
            }
            i += 2;
        }
        if oddx == 1 {
            // the last row of an odd column: s10 and s10 + 1 are off the edge
            let mut s00 = ny * i;
            let mut j = 0;
            while j < nytop - oddy {
                let hy = round(a[s00 + 1], prnd1, nrnd1, mask1);
                let lowbit1 = hy & bit1;
                let h0 = if a[s00] >= 0 { a[s00].wrapping_sub(lowbit1) } else { a[s00].wrapping_add(lowbit1) };
                a[s00 + 1] = h0.wrapping_add(hy) >> shift;
                a[s00] = h0.wrapping_sub(hy) >> shift;
                s00 += 2;
                j += 2;
            }
            if oddy == 1 {
                a[s00] >>= shift;
            }
        }
        bit1 = bit0;
        bit0 >>= 1;
        mask1 = mask0;
        mask0 >>= 1;
        prnd1 = prnd0;
        prnd0 >>= 1;
        nrnd1 = nrnd0;
        nrnd0 = prnd0 - 1;
    }
}

/// Interleaves the `n` values of `a` that are `n2` apart: the first half goes to the even
/// positions, the second half to the odd ones.
#[expect(
    clippy::indexing_slicing,
    reason = "`tmp` holds half the longer side; the loop bounds keep every index inside `a` and `tmp`"
)]
fn unshuffle(a: &mut [i64], n: usize, n2: usize, tmp: &mut [i64]) {
    let half = n.div_ceil(2);
    for (t, i) in tmp.iter_mut().zip(half..n) {
        *t = a[n2 * i];
    }
    for i in (0..half).rev() {
        a[2 * n2 * i] = a[n2 * i];
    }
    for (t, i) in tmp.iter().zip((1..n).step_by(2)) {
        a[n2 * i] = *t;
    }
}

/// SMOOTH = 1: the coefficients of this level (nxtop x nytop, rows `ny` apart) nudged towards
/// the slopes and curvature their neighbours imply, by at most half the digitising scale, as the
/// coder rounded them.
#[expect(
    clippy::indexing_slicing,
    reason = "the smoothing reads the four neighbours of cells inside the nx x ny coefficients, as the loops' bounds show"
)]
fn smooth_coefficients(a: &mut [i64], nxtop: usize, nytop: usize, ny: usize, scale: i64) {
    let smax = scale >> 1;
    if smax <= 0 {
        return;
    }
    let ny2 = ny << 1;
    let sub = i64::wrapping_sub;
    let add = i64::wrapping_add;
    // a change of `diff` (eight or 64 times the coefficient) towards `target`, limited to +/- smax
    let nudge = |coef: i64, diff: i64, shift: u32| {
        let s = sub(diff, coef.wrapping_shl(shift));
        let s = if s >= 0 { s >> shift } else { add(s, (1 << shift) - 1) >> shift };
        add(coef, s.clamp(-smax, smax))
    };
    // the x differences hx
    for i in (2..nxtop.saturating_sub(2)).step_by(2) {
        for j in (0..nytop).step_by(2) {
            let (s00, s10) = (ny * i + j, ny * (i + 1) + j);
            let (hm, h0, hp) = (a[s00 - ny2], a[s00], a[s00 + ny2]);
            let dmax = sub(hp, h0).min(sub(h0, hm)).max(0) << 2;
            let dmin = sub(hp, h0).max(sub(h0, hm)).min(0) << 2;
            if dmin < dmax {
                a[s10] = nudge(a[s10], sub(hp, hm).clamp(dmin, dmax), 3);
            }
        }
    }
    // the y differences hy
    for i in (0..nxtop).step_by(2) {
        for j in (2..nytop.saturating_sub(2)).step_by(2) {
            let s00 = ny * i + j;
            let (hm, h0, hp) = (a[s00 - 2], a[s00], a[s00 + 2]);
            let dmax = sub(hp, h0).min(sub(h0, hm)).max(0) << 2;
            let dmin = sub(hp, h0).max(sub(h0, hm)).min(0) << 2;
            if dmin < dmax {
                a[s00 + 1] = nudge(a[s00 + 1], sub(hp, hm).clamp(dmin, dmax), 3);
            }
        }
    }
    // the curvatures hc
    for i in (2..nxtop.saturating_sub(2)).step_by(2) {
        for j in (2..nytop.saturating_sub(2)).step_by(2) {
            let (s00, s10) = (ny * i + j, ny * (i + 1) + j);
            let (hmm, hpm, hmp, hpp, h0) =
                (a[s00 - ny2 - 2], a[s00 + ny2 - 2], a[s00 - ny2 + 2], a[s00 + ny2 + 2], a[s00]);
            let diff = sub(sub(add(hpp, hmm), hmp), hpm);
            let (hx2, hy2) = (a[s10] << 1, a[s00 + 1] << 1);
            let m1 = sub(sub(sub(hpp, h0).max(0), hx2), hy2).min(sub(add(sub(h0, hpm).max(0), hx2), hy2));
            let m2 = add(sub(sub(h0, hmp).max(0), hx2), hy2).min(add(add(sub(hmm, h0).max(0), hx2), hy2));
            let dmax = m1.min(m2) << 4;
            let m1 = sub(sub(sub(hpp, h0).min(0), hx2), hy2).max(sub(add(sub(h0, hpm).min(0), hx2), hy2));
            let m2 = add(sub(sub(h0, hmp).min(0), hx2), hy2).max(add(add(sub(hmm, h0).min(0), hx2), hy2));
            let dmin = m1.max(m2) << 4;
            if dmin < dmax {
                a[s10 + 1] = nudge(a[s10 + 1], diff.clamp(dmin, dmax), 6);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_tiles_decode_to_errors_or_garbage_never_a_panic() {
        // random bit planes under every header a tile may carry: overflow checks are on in tests
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let (mut out, mut decoded) = (Vec::new(), 0);
        for round in 0..400 {
            let (nx, ny) = (2 + (next() % 40) as i32, 2 + (next() % 40) as i32);
            let mut code = vec![0xdd, 0x99];
            code.extend_from_slice(&nx.to_be_bytes());
            code.extend_from_slice(&ny.to_be_bytes());
            code.extend_from_slice(&((next() % 1000) as i32).to_be_bytes());
            code.extend_from_slice(&((next() as i64) >> (12 + next() % 50)).to_be_bytes());
            if round % 3 == 0 {
                // no bit planes, the end code, then random signs: the transform runs on the sum
                code.extend([0, 0, 0, 0]);
            } else {
                code.extend((0..3).map(|_| (next() % 53) as u8));
            }
            code.extend((0..next() % 3000).map(|_| next() as u8));
            let pixels = (nx * ny) as usize;
            if decode(&code, round % 2 == 0, &mut out, pixels).is_ok() {
                decoded += 1;
            }
        }
        assert!(decoded >= 100, "{decoded} decoded");
    }

    #[test]
    fn a_header_that_does_not_fit_the_tile_is_an_error() {
        let mut code = vec![0xdd, 0x99, 0, 0, 0, 4, 0, 0, 0, 4, 0, 0, 0, 0];
        code.extend_from_slice(&[0; 11]);
        let mut out = Vec::new();
        assert!(decode(&code, false, &mut out, 15).is_err());
        assert!(decode(&code[..20], false, &mut out, 16).is_err());
        assert!(decode(b"SIMPLE", false, &mut out, 16).is_err());
        code[22] = 60; // more bit planes than any image has
        assert!(decode(&code, false, &mut out, 16).is_err());
    }
}
