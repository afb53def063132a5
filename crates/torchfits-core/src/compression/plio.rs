//! PLIO_1 tiles: IRAF's pixel-list line lists, as the tiled-image convention stores them (one
//! list of big-endian 16-bit words per tile), decoded as cfitsio's `pl_l2pi` decodes them.
//!
//! A list starts with a header: in the old form 3 words whose third is the list's length (its
//! instructions start at word 3); in the new form, where that word is not positive, the length is
//! words 3 and 4 (`w4 << 15 + w3`) and the instructions start at word `w1`. Each instruction is
//! a 4-bit opcode and 12 bits of data: runs of zeros or of the current value, changes of the
//! current value, and single pixels.

/// Decodes the line list `words` into `out` (`out.len()` pixels). Pixels past the list's end are 0.
/// A list whose header or whose instructions point past its words is an error; so is a list that
/// writes no pixel, as cfitsio would hand back its buffer unwritten.
#[expect(
    clippy::indexing_slicing,
    reason = "`ip < len <= words.len()` is checked before the loop; `op` equals the list's position `x1`, kept below `out.len()` before each instruction, and a run writes up to `out.len()` only"
)]
pub(crate) fn decode(words: &[i16], out: &mut [i32]) -> Result<(), String> {
    let word = |k: usize| words.get(k).copied().ok_or_else(|| "its line list is cut short".to_string());
    let (len, first) = if word(2)? > 0 {
        (i64::from(word(2)?), 3usize)
    } else {
        let len = (i64::from(word(4)?) << 15) + i64::from(word(3)?);
        let first = usize::try_from(word(1)?).map_err(|_| "its line list's header is negative".to_string())?;
        (len, first)
    };
    let len = usize::try_from(len).ok().filter(|&n| n > 0).ok_or("its line list is empty")?;
    if len > words.len() {
        return Err(format!("its line list claims {len} words, but the tile holds {}", words.len()));
    }
    let npix = out.len();
    let mut op = 0usize; // next output pixel
    let mut x1 = 0usize; // the list's next pixel (0-based)
    let mut pv: i32 = 1; // the current value
    let mut ip = first;
    while ip < len && x1 < npix {
        let w = i32::from(words[ip]);
        // C's division of a negative word gives a negative opcode, which is no instruction
        let (opcode, data) = (w / 4096, w & 4095);
        let run = data as usize;
        match opcode {
            // a run of zeros (0), of the current value (4), or of zeros ending in it (5)
            0 | 4 | 5 => {
                let end = (x1 + run).min(npix);
                if end > x1 {
                    let fill = if opcode == 4 { pv } else { 0 };
                    out[op..op + end - x1].fill(fill);
                    op += end - x1;
                    if opcode == 5 && end == x1 + run {
                        out[op - 1] = pv;
                    }
                }
                x1 += run;
            }
            // a new current value from this word and the next
            1 => {
                pv = (word(ip + 1)? as i32).wrapping_shl(12).wrapping_add(data);
                ip += 1;
            }
            2 => pv = pv.wrapping_add(data),
            3 => pv = pv.wrapping_sub(data),
            // change the value and write one pixel of it
            6 | 7 => {
                pv = if opcode == 6 { pv.wrapping_add(data) } else { pv.wrapping_sub(data) };
                out[op] = pv;
                op += 1;
                x1 += 1;
            }
            _ => {}
        }
        ip += 1;
    }
    out[op..].fill(0);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_values_and_single_pixels() {
        // old-form header (length in word 2), then: 3 zeros, value 5 (set: 1 << 12 | 5, 0),
        // 4 pixels of it, +2 and one pixel (7), 2 zeros ending in the value (0, 7)
        let words: Vec<i16> = vec![0, 0, 9, 3, 4096 + 5, 0, 4 * 4096 + 4, 6 * 4096 + 2, 5 * 4096 + 2];
        let mut out = vec![-1; 14];
        decode(&words, &mut out).expect("decode");
        assert_eq!(out, vec![0, 0, 0, 5, 5, 5, 5, 7, 0, 7, 0, 0, 0, 0]);
    }

    #[test]
    fn a_list_past_its_words_is_an_error_not_a_read_past_the_tile() {
        let mut out = vec![0; 8];
        assert!(decode(&[0, 0, 50, 3], &mut out).is_err());
        assert!(decode(&[0, 0], &mut out).is_err());
        // a value change whose second word is missing
        assert!(decode(&[0, 0, 4, 4096], &mut out).is_err());
        assert!(decode(&[0, 0, 0, 0, 0], &mut out).is_err());
    }
}
