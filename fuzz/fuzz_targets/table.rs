//! Table decoding: a binary table whose header is well formed around fuzzed column descriptions
//! (TFORM, and optionally TSCAL, TZERO, TNULL, TDIM) and whose rows and heap are fuzzed bytes.
//!
//! Input: one byte of flags, then up to 8 column descriptions separated by `;` and ended by a NUL
//! byte, then the data (rows, then the heap).
#![no_main]

use libfuzzer_sys::fuzz_target;

/// Bytes a TFORM takes in a row, as the standard computes it; `None` when it does not parse.
fn width(tform: &str) -> Option<usize> {
    let t = tform.trim();
    let digits = t.chars().take_while(|c| c.is_ascii_digit()).count();
    let repeat: usize = if digits == 0 { 1 } else { t.get(..digits)?.parse().ok()? };
    let code = t.get(digits..)?.chars().next()?;
    let size = match code.to_ascii_uppercase() {
        'L' | 'B' | 'A' => 1,
        'X' => return Some(repeat.div_ceil(8)),
        'I' => 2,
        'J' | 'E' => 4,
        'K' | 'D' | 'C' | 'P' => 8,
        'M' | 'Q' => 16,
        _ => return None,
    };
    repeat.checked_mul(size)
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
    let (descr, payload) = rest.split_at(end);
    let payload = payload.get(1..).unwrap_or_default();
    let descr = String::from_utf8_lossy(descr);
    let cols: Vec<&str> = descr.split(';').filter(|s| !s.is_empty()).take(8).collect();
    if cols.is_empty() {
        return;
    }
    // each description: TFORM[,TSCAL[,TZERO[,TNULL[,TDIM]]]]
    let mut cards = vec![
        "XTENSION= 'BINTABLE'".to_string(),
        "BITPIX  =                    8".to_string(),
        "NAXIS   =                    2".to_string(),
    ];
    let mut row = 0usize;
    let mut extra = Vec::new();
    for (i, col) in cols.iter().enumerate() {
        let n = i + 1;
        let mut parts = col.split(',');
        let tform = parts.next().unwrap_or_default();
        row = row.saturating_add(width(tform).unwrap_or(flags as usize % 9));
        extra.push(format!("TTYPE{n} = 'c{n}'"));
        extra.push(format!("TFORM{n} = '{tform}'"));
        for (key, value) in ["TSCAL", "TZERO", "TNULL"].iter().zip(parts.by_ref()) {
            extra.push(format!("{key}{n:<3}= {value}"));
        }
        if let Some(tdim) = parts.next() {
            extra.push(format!("TDIM{n}  = '{tdim}'"));
        }
    }
    let row = if flags & 0x80 != 0 { row.saturating_add((flags & 7) as usize) } else { row };
    let nrows = if row == 0 { (flags & 0x0f) as usize } else { (payload.len() / row).min(100_000) };
    let pcount = payload.len().saturating_sub(row.saturating_mul(nrows));
    cards.push(format!("NAXIS1  = {row:>20}"));
    cards.push(format!("NAXIS2  = {nrows:>20}"));
    cards.push(format!("PCOUNT  = {pcount:>20}"));
    cards.push("GCOUNT  =                    1".to_string());
    cards.push(format!("TFIELDS = {:>20}", cols.len()));
    if flags & 0x40 != 0 {
        cards.push(format!("THEAP   = {:>20}", (flags & 0x3f) as usize * 8));
    }
    cards.extend(extra);
    let primary = torchfits_fuzz::header_block(&[
        "SIMPLE  =                    T".to_string(),
        "BITPIX  =                    8".to_string(),
        "NAXIS   =                    0".to_string(),
        "EXTEND  =                    T".to_string(),
    ]);
    let mut file = primary;
    file.extend(torchfits_fuzz::header_block(&cards));
    file.extend_from_slice(payload);
    let padded = file.len().div_ceil(2880) * 2880;
    file.resize(padded, 0);
    let path = torchfits_fuzz::scratch_file("table", &file);
    torchfits_fuzz::read_everything(&path);
});
