//! A header-only reader in plain Rust, for files whose headers cfitsio refuses to open but the FITS
//! world still reads (astropy reads, for instance, a primary header with NAXIS before BITPIX). It
//! lists HDUs and their headers; data reads of such files report cfitsio's refusal.

use std::fs::File;
use std::io::{ErrorKind as IoKind, Read, Seek, SeekFrom};
use std::path::Path;

use crate::error::{Error, Result};
use crate::header::{CARD_LEN, Header};
use crate::limits::Limits;

/// FITS block size.
const BLOCK: usize = 2880;

/// Reads the raw header bytes (cards up to and excluding END) of every HDU in the file.
pub(crate) fn read_headers(path: &Path, limits: &Limits) -> Result<Vec<Vec<u8>>> {
    let mut f = File::open(path).map_err(|e| Error::io(e, "cannot open"))?;
    let file_len = f.metadata().map_err(|e| Error::io(e, "cannot open"))?.len();
    let mut headers = Vec::new();
    let mut pos: u64 = 0;
    while pos < file_len {
        if headers.len() >= limits.max_hdus {
            return Err(Error::limits(format!(
                "more than {} HDUs (Limits::max_hdus)",
                limits.max_hdus
            )));
        }
        let index = headers.len();
        let raw = read_header(&mut f, limits).map_err(|e| e.in_hdu(index))?;
        let header =
            Header::parse_limited(&raw, limits.max_header_cards).map_err(|e| e.in_hdu(index))?;
        let first = header
            .iter()
            .next()
            .map(|c| c.keyword())
            .unwrap_or_default();
        if (index == 0 && first != "SIMPLE") || (index > 0 && first != "XTENSION") {
            return Err(Error::decoding(format!(
                "header does not start with {}",
                if index == 0 { "SIMPLE" } else { "XTENSION" }
            ))
            .in_hdu(index));
        }
        let data = data_size(&header).map_err(|e| e.in_hdu(index))?;
        let header_len = (raw.len() / BLOCK + 1) as u64 * BLOCK as u64;
        pos = pos
            .checked_add(header_len)
            .and_then(|p| p.checked_add(data.div_ceil(BLOCK as u64) * BLOCK as u64))
            .ok_or_else(|| Error::decoding("data size overflows").in_hdu(index))?;
        headers.push(raw);
        f.seek(SeekFrom::Start(pos))
            .map_err(|e| Error::io(e, "cannot seek"))?;
    }
    if headers.is_empty() {
        return Err(Error::decoding("empty file"));
    }
    Ok(headers)
}

/// Reads 2880-byte blocks until one holds the END card; returns the cards before END.
fn read_header(f: &mut File, limits: &Limits) -> Result<Vec<u8>> {
    let mut out: Vec<u8> = Vec::new();
    let mut block = vec![0u8; BLOCK];
    loop {
        if let Err(e) = f.read_exact(&mut block) {
            return Err(if e.kind() == IoKind::UnexpectedEof {
                Error::decoding("the header is truncated (no END card)")
            } else {
                Error::io(e, "cannot read the header")
            });
        }
        for card in block.chunks(CARD_LEN) {
            if card.starts_with(b"END") && card[3..].iter().all(|&b| b == b' ') {
                return Ok(out);
            }
            if out.len() / CARD_LEN >= limits.max_header_cards {
                return Err(Error::limits(format!(
                    "header has more than {} cards (Limits::max_header_cards)",
                    limits.max_header_cards
                )));
            }
            out.extend_from_slice(card);
        }
    }
}

/// Bytes of data after a header: |BITPIX|/8 x GCOUNT x (PCOUNT + NAXIS1 x ... x NAXISn), with
/// NAXIS1 = 0 skipped for random groups.
fn data_size(h: &Header) -> Result<u64> {
    let naxis = h.get_i64("NAXIS").unwrap_or(0);
    if naxis <= 0 {
        return Ok(0);
    }
    let bitpix = h
        .get_i64("BITPIX")
        .ok_or_else(|| Error::decoding("BITPIX missing"))?;
    let groups = h.get_bool("GROUPS") == Some(true) && h.get_i64("NAXIS1") == Some(0);
    let mut n: u64 = 1;
    for k in 1..=naxis {
        let v = h
            .get_i64(&format!("NAXIS{k}"))
            .ok_or_else(|| Error::decoding(format!("NAXIS{k} missing")))?;
        let v =
            u64::try_from(v).map_err(|_| Error::decoding(format!("NAXIS{k} = {v} is negative")))?;
        if k == 1 && groups {
            continue;
        }
        n = n
            .checked_mul(v)
            .ok_or_else(|| Error::decoding("data size overflows"))?;
    }
    let pcount = u64::try_from(h.get_i64("PCOUNT").unwrap_or(0))
        .map_err(|_| Error::decoding("PCOUNT is negative"))?;
    let gcount = u64::try_from(h.get_i64("GCOUNT").unwrap_or(1))
        .map_err(|_| Error::decoding("GCOUNT is negative"))?;
    n.checked_add(pcount)
        .and_then(|n| n.checked_mul(gcount))
        .and_then(|n| n.checked_mul(bitpix.unsigned_abs() / 8))
        .ok_or_else(|| Error::decoding("data size overflows"))
}
