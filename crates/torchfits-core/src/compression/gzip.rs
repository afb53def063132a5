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

/// Inflates a gzipped cell into exactly the bytes of `out`: an error if it holds fewer or more.
pub(crate) fn inflate_into(code: &[u8], out: &mut [u8]) -> Result<(), String> {
    let mut stream = flate2::read::GzDecoder::new(code);
    stream.read_exact(out).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => format!("it inflates to fewer than the {} bytes of its values", out.len()),
        _ => format!("its gzip stream cannot be inflated: {e}"),
    })?;
    let mut more = [0u8; 1];
    match stream.read(&mut more) {
        Ok(0) => Ok(()),
        Ok(_) => Err(format!("it inflates to more than the {} bytes of its values", out.len())),
        Err(e) => Err(format!("its gzip stream cannot be inflated: {e}")),
    }
}

/// GZIP_2's shuffled bytes of `W`-byte values (`shuffled`) put back in order into `out` (as
/// long as `shuffled`).
pub(crate) fn unshuffle_into(shuffled: &[u8], width: usize, out: &mut [u8]) {
    match width {
        2 => unshuffle_as_into::<2>(shuffled, out),
        4 => unshuffle_as_into::<4>(shuffled, out),
        8 => unshuffle_as_into::<8>(shuffled, out),
        _ => {
            if let Some(o) = out.get_mut(..shuffled.len()) {
                o.copy_from_slice(shuffled);
            }
        }
    }
}

fn unshuffle_as_into<const W: usize>(shuffled: &[u8], out: &mut [u8]) {
    let n = shuffled.len() / W;
    let planes: [&[u8]; W] = std::array::from_fn(|j| shuffled.get(j * n..(j + 1) * n).unwrap_or_default());
    for (i, value) in out.chunks_exact_mut(W).take(n).enumerate() {
        for (b, plane) in value.iter_mut().zip(planes) {
            if let Some(&byte) = plane.get(i) {
                *b = byte;
            }
        }
    }
}

/// Puts GZIP_2's shuffled bytes back in order: the stream holds every value's first byte, then
/// every value's second byte, and so on, for values of `width` bytes.
pub(crate) fn unshuffle(raw: &mut Vec<u8>, width: usize) {
    match width {
        2 => unshuffle_as::<2>(raw),
        4 => unshuffle_as::<4>(raw),
        8 => unshuffle_as::<8>(raw),
        _ => {}
    }
}

/// [`unshuffle`] for `W`-byte values (bytes past the last whole value, which no writer makes,
/// are kept as they are).
fn unshuffle_as<const W: usize>(raw: &mut Vec<u8>) {
    let shuffled = std::mem::take(raw);
    let mut out = shuffled.clone();
    unshuffle_as_into::<W>(&shuffled, &mut out);
    *raw = out;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzipped(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(bytes).expect("write");
        e.finish().expect("finish")
    }

    #[test]
    fn a_cell_inflates_to_exactly_its_bytes_or_is_an_error() {
        let code = gzipped(&[1, 2, 3, 4, 5, 6]);
        let mut out = [0u8; 6];
        inflate_into(&code, &mut out).expect("exact");
        assert_eq!(out, [1, 2, 3, 4, 5, 6]);
        assert!(inflate_into(&code, &mut [0u8; 7]).unwrap_err().contains("fewer"));
        assert!(inflate_into(&code, &mut [0u8; 5]).unwrap_err().contains("more"));
        assert!(inflate_into(&code[..code.len() / 2], &mut [0u8; 6]).is_err(), "a cut stream");
    }

    #[test]
    fn shuffled_values_come_back_in_order() {
        let mut out = [0u8; 8];
        unshuffle_into(&[1, 3, 5, 7, 2, 4, 6, 8], 2, &mut out);
        assert_eq!(out, [1, 2, 3, 4, 5, 6, 7, 8]);
        let mut raw = vec![1, 5, 2, 6, 3, 7, 4, 8];
        unshuffle(&mut raw, 4);
        assert_eq!(raw, vec![1, 2, 3, 4, 5, 6, 7, 8]);
    }
}
