//! The HDU index of a plain FITS file on disk, built in Rust as far as it is needed: where each
//! header and data unit starts, and each header parsed once.
//!
//! Reading headers ourselves costs one `pread` per 2880-byte block and our parser, against
//! cfitsio's open (which allocates its buffers and parses the primary header keyword by keyword):
//! measured on the standard 207-card header, about 60 us against 150 us. It is also as lenient as
//! astropy where cfitsio refuses (keywords out of the standard's order, trailing bytes after the
//! last HDU).

use std::sync::Arc;

use crate::source::ByteSource;
use torchfits_format::error::{Error, Result};
use torchfits_format::header::{CARD_LEN, Header};
use torchfits_format::limits::Limits;

/// FITS block size.
pub(crate) const BLOCK: u64 = 2880;

/// One HDU of a plain file.
#[derive(Debug, Clone)]
pub(crate) struct HduSpan {
    /// The header as written (for a compressed image, the binary table's).
    pub header: Arc<Header>,
    /// Byte offset of the data.
    pub data_start: u64,
    /// Byte offset of the end of the data's last block (where the next HDU starts).
    pub data_end: u64,
    /// Bytes of data the header declares (without the last block's padding).
    pub data_len: u64,
}

/// The HDUs found so far, and where the next one would start.
#[derive(Debug, Default)]
pub(crate) struct Index {
    hdus: Vec<HduSpan>,
    next: u64,
    complete: bool,
}

impl Index {
    /// The HDU at `index`, scanning forward as needed; `None` past the last HDU.
    pub(crate) fn get(&mut self, source: &dyn ByteSource, index: usize, limits: &Limits) -> Result<Option<&HduSpan>> {
        while self.hdus.len() <= index && !self.complete {
            self.scan_one(source, limits)?;
        }
        Ok(self.hdus.get(index))
    }

    /// The HDU at `index` if it has been scanned already (`None` otherwise: see [`Index::get`]).
    pub(crate) fn scanned(&self, index: usize) -> Option<&HduSpan> {
        self.hdus.get(index)
    }

    /// The number of HDUs, if the whole file has been scanned.
    pub(crate) fn known_count(&self) -> Option<usize> {
        self.complete.then_some(self.hdus.len())
    }

    /// Number of HDUs (scans the whole file).
    pub(crate) fn count(&mut self, source: &dyn ByteSource, limits: &Limits) -> Result<usize> {
        while !self.complete {
            self.scan_one(source, limits)?;
        }
        Ok(self.hdus.len())
    }

    fn scan_one(&mut self, source: &dyn ByteSource, limits: &Limits) -> Result<()> {
        let len = source.len();
        let index = self.hdus.len();
        // after the last HDU: the end of the file, or bytes that start no extension (astropy
        // ignores such trailing bytes, and so do we)
        if index > 0 {
            let mut magic = [0u8; 8];
            if self.next + BLOCK > len || source.read_exact_at(&mut magic, self.next).is_err() || &magic != b"XTENSION"
            {
                self.complete = true;
                return Ok(());
            }
        }
        if index >= limits.max_hdus {
            return Err(Error::limits(format!("more than {} HDUs (Limits::max_hdus)", limits.max_hdus)));
        }
        let (raw, header_blocks) = read_header(source, self.next, limits).map_err(|e| e.in_hdu(index))?;
        let header = Header::parse_limited(&raw, limits.max_header_cards).map_err(|e| e.in_hdu(index))?;
        let data_len = data_size(&header).map_err(|e| e.in_hdu(index))?;
        let data_start = self.next + header_blocks * BLOCK;
        self.next = data_len
            .div_ceil(BLOCK)
            .checked_mul(BLOCK)
            .and_then(|d| data_start.checked_add(d))
            .ok_or_else(|| Error::decoding("data size overflows").in_hdu(index))?;
        self.hdus.push(HduSpan { header: Arc::new(header), data_start, data_end: self.next, data_len });
        Ok(())
    }
}

/// Reads 2880-byte blocks from `at` until one holds the END card; returns the cards before END and
/// the number of blocks.
fn read_header(source: &dyn ByteSource, at: u64, limits: &Limits) -> Result<(Vec<u8>, u64)> {
    let mut out: Vec<u8> = Vec::new();
    let mut block = [0u8; BLOCK as usize];
    let mut blocks = 0u64;
    loop {
        if let Err(e) = source.read_exact_at(&mut block, at + blocks * BLOCK) {
            return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::decoding("the header is truncated (no END card)")
            } else {
                Error::io(e, "cannot read the header")
            });
        }
        blocks += 1;
        for card in block.chunks(CARD_LEN) {
            // the keyword field says END, as cfitsio and the header parser read it (whatever
            // follows: a reader that disagreed with cfitsio on where an HDU ends would hand it
            // the wrong HDU)
            if card.get(..8) == Some(b"END     ") {
                return Ok((out, blocks));
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
pub(crate) fn data_size(h: &Header) -> Result<u64> {
    let naxis = h.get_i64("NAXIS").ok_or_else(|| Error::decoding("NAXIS missing or not an integer"))?;
    if naxis <= 0 {
        return Ok(0);
    }
    if naxis > 999 {
        return Err(Error::decoding(format!("NAXIS = {naxis} is outside 0..=999")));
    }
    let bitpix = h.get_i64("BITPIX").ok_or_else(|| Error::decoding("BITPIX missing or not an integer"))?;
    let groups = h.get_bool("GROUPS") == Some(true) && h.get_i64("NAXIS1") == Some(0);
    let mut n: u64 = 1;
    for k in 1..=naxis {
        let v = h.get_i64(&format!("NAXIS{k}")).ok_or_else(|| Error::decoding(format!("NAXIS{k} missing")))?;
        let v = u64::try_from(v).map_err(|_| Error::decoding(format!("NAXIS{k} = {v} is negative")))?;
        if k == 1 && groups {
            continue;
        }
        n = n.checked_mul(v).ok_or_else(|| Error::decoding("data size overflows"))?;
    }
    let pcount = u64::try_from(h.get_i64("PCOUNT").unwrap_or(0)).map_err(|_| Error::decoding("PCOUNT is negative"))?;
    let gcount = u64::try_from(h.get_i64("GCOUNT").unwrap_or(1)).map_err(|_| Error::decoding("GCOUNT is negative"))?;
    n.checked_add(pcount)
        .and_then(|n| n.checked_mul(gcount))
        .and_then(|n| n.checked_mul(bitpix.unsigned_abs() / 8))
        .ok_or_else(|| Error::decoding("data size overflows"))
}
