//! GZIP_1 and GZIP_2 tiles: inflation to an exact size, and GZIP_2's byte shuffle undone.

use std::io::Read;

/// The sizes a gzipped tile of `pixels` values of `width` bytes may inflate to: `pixels x width`,
/// and for 8- and 16-bit values also `pixels x 4` (older cfitsio stored such tiles as 32-bit
/// integers, and cfitsio still reads them by their inflated size).
pub(crate) fn tile_sizes(pixels: usize, width: usize) -> Vec<usize> {
    let mut sizes = vec![pixels.saturating_mul(width)];
    if width < 4 {
        sizes.push(pixels.saturating_mul(4));
    }
    sizes
}

/// Inflates a gzipped tile into `raw`, which must come to one of `sizes` bytes (at most one byte
/// more than the largest is inflated); returns the size it came to.
pub(crate) fn inflate_to_one_of(code: &[u8], sizes: &[usize], raw: &mut Vec<u8>) -> Result<usize, String> {
    let most = sizes.iter().copied().max().unwrap_or(0);
    raw.clear();
    // room for the largest size and the one byte that shows a stream too long, reserved
    // fallibly: the sizes come from the header, bounded by the tile limit, not by memory
    raw.try_reserve_exact(most.saturating_add(1)).map_err(|_| format!("{most} bytes cannot be allocated"))?;
    flate2::read::GzDecoder::new(code)
        .take(most as u64 + 1)
        .read_to_end(raw)
        .map_err(|e| format!("its gzip stream cannot be inflated: {e}"))?;
    if !sizes.contains(&raw.len()) {
        let want = sizes.iter().map(ToString::to_string).collect::<Vec<_>>().join(" or ");
        return Err(format!("it inflates to {} bytes or more, not the {want} of its pixels", raw.len()));
    }
    Ok(raw.len())
}

/// Inflates a gzipped tile into `raw`, which must come to exactly `want` bytes (at most one more
/// is read); GZIP_2's shuffled bytes (`width`-byte values) are put back in order.
pub(crate) fn inflate_exact(
    code: &[u8],
    want: usize,
    shuffle: bool,
    width: usize,
    raw: &mut Vec<u8>,
) -> Result<(), String> {
    inflate_to_one_of(code, &[want], raw)?;
    if shuffle {
        unshuffle(raw, width);
    }
    Ok(())
}

/// Puts GZIP_2's shuffled bytes back in order: the stream holds every value's first byte, then
/// every value's second byte, and so on, for values of `width` bytes.
pub(crate) fn unshuffle(raw: &mut Vec<u8>, width: usize) {
    let want = raw.len();
    if width > 1 {
        let n = want / width;
        let shuffled = std::mem::take(raw);
        raw.resize(want, 0);
        for (j, plane) in shuffled.chunks_exact(n.max(1)).take(width).enumerate() {
            for (i, &b) in plane.iter().enumerate() {
                if let Some(o) = raw.get_mut(i * width + j) {
                    *o = b;
                }
            }
        }
    }
}
