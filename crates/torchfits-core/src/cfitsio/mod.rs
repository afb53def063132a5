//! What torchfits hands to cfitsio, and the checks before it does: cfitsio decodes HCOMPRESS and
//! PLIO tiles and opens names in its extended syntax, and trusts the sizes a file gives. Every HDU
//! given to cfitsio is first checked here (axes, structural cards, tile descriptors, every tile).

mod pool;

pub(crate) use pool::HandlePool;

use crate::compression::{Codec, TileCompression, gzip, rice};
use crate::source::ByteSource;
use torchfits_format::error::{Error, ErrorKind, Result};
use torchfits_format::header::Header;
use torchfits_format::limits::Limits;
use torchfits_format::table_schema::{TableSchema, VarArray};

/// Most axes cfitsio reads without crashing: 4.6 segfaults on a header of more than ~101 (an
/// image of 110 axes, measured), though the standard allows 999.
pub(crate) const CFITSIO_MAX_NAXIS: i64 = 99;

/// Whether cfitsio can be handed the HDU of `header` (torchfits' own readers take any NAXIS up to
/// the standard's 999).
pub(crate) fn cfitsio_can_take(header: &Header) -> Result<()> {
    for key in ["NAXIS", "ZNAXIS"] {
        if let Some(n) = header.get_i64(key)
            && n > CFITSIO_MAX_NAXIS
        {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("{key} = {n}: this needs cfitsio, which cannot read more than {CFITSIO_MAX_NAXIS} axes"),
            ));
        }
    }
    structural_cards_readable(header)
}

/// Refuses a header whose structural cards torchfits cannot read as cfitsio would need them: an
/// unreadable card is one torchfits sizes or checks differently from cfitsio (a `PCOUNT` it
/// could not parse and a `ZCMPTYPE` with a NUL in its value indicator let cfitsio ask for
/// 2e16 bytes past torchfits' tile checks). The sizes of every HDU cfitsio walks
/// must be integers; a compressed image's parameters must be what the convention says they are.
fn structural_cards_readable(header: &Header) -> Result<()> {
    let indexed = |key: &str, prefix: &str| {
        key.strip_prefix(prefix).is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let compressed = header.get_bool("ZIMAGE") == Some(true);
    // the standard allows only printable ASCII in a header; cfitsio parses anything else its own
    // way (a header of binary garbage made it allocate 15 PB)
    let printable = |s: &str| s.bytes().all(|b| (0x20..0x7f).contains(&b));
    for card in header.iter() {
        let key = card.base_keyword();
        if !printable(&card.keyword())
            || card.comment().is_some_and(|c| !printable(c))
            || card.value().as_str().is_some_and(|v| !printable(v))
        {
            return Err(Error::decoding(
                "the header holds bytes outside printable ASCII, which the FITS standard forbids; cfitsio is not given it",
            ));
        }
        let integer = matches!(key, "BITPIX" | "NAXIS" | "PCOUNT" | "GCOUNT" | "TFIELDS" | "THEAP")
            || indexed(key, "NAXIS")
            || compressed
                && (matches!(key, "ZBITPIX" | "ZNAXIS" | "ZPCOUNT" | "ZGCOUNT" | "ZBLANK" | "ZDITHER0")
                    || indexed(key, "ZNAXIS")
                    || indexed(key, "ZTILE"));
        let number = compressed && indexed(key, "ZVAL");
        let text = indexed(key, "TFORM")
            || compressed && (matches!(key, "ZCMPTYPE" | "ZQUANTIZ") || indexed(key, "ZNAME") || indexed(key, "TTYPE"));
        let value = card.value();
        let readable = card.field_specifier().is_none()
            && !((integer || number) && card.is_spaced_number())
            && if integer {
                value.as_i64().is_some()
            } else if number {
                value.as_f64().is_some()
            } else if text {
                value.as_str().is_some_and(|s| s.bytes().all(|b| (0x20..0x7f).contains(&b)))
            } else {
                true
            };
        if !readable {
            return Err(Error::decoding(format!(
                "the {key} card cannot be read (its value is not what the FITS standard requires); cfitsio would read this HDU differently"
            )));
        }
    }
    if compressed {
        TileCompression::from_header(header)?;
    }
    Ok(())
}

/// Checks that every variable-length descriptor of the compressed image whose binary table
/// `table` starts its data at `data_start` lies inside the table's heap and the file: cfitsio
/// allocates a tile's buffer from its descriptor before reading it (3.5 GB for one garbage
/// descriptor of a 16 x 16 image).
pub(crate) fn check_tile_descriptors(
    file: &dyn ByteSource,
    table: &Header,
    data_start: u64,
    limits: &Limits,
) -> Result<()> {
    let schema = TableSchema::from_header(table)?;
    let heap_len = schema.data_len.saturating_sub(schema.heap_offset);
    let heap_end = data_start.saturating_add(schema.data_len);
    if heap_end > file.len() {
        return Err(Error::decoding("the file is truncated: it ends inside the compressed image's heap"));
    }
    let rows_len = (schema.row_bytes as u64).saturating_mul(schema.nrows);
    let mut rows = Vec::new();
    file.read_vec_at(&mut rows, data_start, rows_len, limits, &"the table of tiles")?;
    let word = |b: &[u8]| b.iter().fold(0i64, |acc, &x| acc << 8 | i64::from(x));
    let description = TileCompression::from_header(table)?;
    if matches!(description.codec, Codec::Rice { bytepix: 8, .. }) {
        return Err(Error::unsupported("RICE_1 tiles of 8-byte integers (BYTEPIX = 8)"));
    }
    // a tile whose COMPRESSED_DATA is empty is read from one of these; without them cfitsio
    // returns the tile's buffer as it found it
    let has_fallback = schema
        .columns
        .iter()
        .any(|c| ["GZIP_COMPRESSED_DATA", "UNCOMPRESSED_DATA"].iter().any(|k| c.name.trim().eq_ignore_ascii_case(k)));
    let mut code = Vec::new();
    let mut pixels_out = Vec::new();
    let mut raw = Vec::new();
    for (tile, row) in rows.chunks_exact(schema.row_bytes.max(1)).enumerate() {
        for col in schema.columns.iter().filter(|c| c.variable.is_some()) {
            let half = if col.variable == Some(VarArray::Q) { 8 } else { 4 };
            let cell = row
                .get(col.offset..col.offset + 2 * half)
                .ok_or_else(|| Error::decoding("a tile descriptor lies outside its row"))?;
            let (count, offset) = cell.split_at(half);
            let (count, offset) = if half == 4 {
                (i64::from(word(count) as u32), i64::from(word(offset) as u32))
            } else {
                (word(count), word(offset))
            };
            let bytes = u64::try_from(count).ok().and_then(|n| n.checked_mul(col.fits_type.size() as u64));
            let end = bytes.zip(u64::try_from(offset).ok()).and_then(|(b, o)| b.checked_add(o));
            let Some(end) = end.filter(|&end| end <= heap_len) else {
                return Err(Error::decoding(format!(
                    "tile {tile}: its {} descriptor ({count} elements at heap byte {offset}) points outside the heap of {heap_len} bytes",
                    col.name
                )));
            };
            // cfitsio's Rice decoder reads past the end of a tile that ends early (a SEGV under
            // AddressSanitizer on a garbage tile): every Rice tile must decode
            // in full with torchfits' bounds-checked decoder first. cfitsio leaks its buffer when
            // a gzipped tile inflates to the wrong size: every gzipped tile must
            // inflate to exactly its pixels first.
            let compressed_column = col.name.trim().eq_ignore_ascii_case("COMPRESSED_DATA");
            if count == 0 {
                if compressed_column && !has_fallback {
                    return Err(Error::decoding(format!(
                        "tile {tile}: its COMPRESSED_DATA is empty and the table has no other column for it"
                    )));
                }
                continue;
            }
            // cfitsio reads an UNCOMPRESSED_DATA cell of any length into a buffer of the tile's
            // pixels
            if col.name.trim().eq_ignore_ascii_case("UNCOMPRESSED_DATA") {
                let pixels = description.tile_pixels(tile);
                if u64::try_from(count).ok() != Some(pixels as u64) {
                    return Err(Error::decoding(format!(
                        "tile {tile}: its UNCOMPRESSED_DATA holds {count} values, not the {pixels} of its pixels"
                    )));
                }
                continue;
            }
            let gzip_column = col.name.trim().eq_ignore_ascii_case("GZIP_COMPRESSED_DATA");
            if !gzip_column && !compressed_column {
                continue;
            }
            let offset = offset.unsigned_abs(); // >= 0: checked with `end` above
            let start = data_start.saturating_add(schema.heap_offset).saturating_add(offset);
            file.read_vec_at(&mut code, start, end - offset, limits, &format_args!("tile {tile}"))?;
            let bad = |e: String| Error::decoding(format!("tile {tile}: {e}"));
            let pixels = description.tile_pixels(tile);
            let raw_width = description.zbitpix.unsigned_abs() as usize / 8;
            match description.codec {
                _ if gzip_column => {
                    gzip::inflate_exact(&code, pixels.saturating_mul(raw_width), false, 1, &mut raw).map_err(bad)?
                }
                Codec::Rice { bytepix, block } => {
                    rice::decode(&code, bytepix, block, pixels, &mut pixels_out).map_err(bad)?
                }
                Codec::Gzip { .. } => {
                    let sizes = gzip::tile_sizes(pixels, description.stored_width());
                    gzip::inflate_to_one_of(&code, &sizes, &mut raw).map_err(bad)?;
                }
                Codec::Hcompress { .. } => hcompress_size_is(&code, pixels).map_err(bad)?,
                Codec::Plio | Codec::None => {}
            }
        }
    }
    Ok(())
}

/// Checks that an HCOMPRESS tile's header (magic `DD 99`, then nx and ny, big-endian) gives
/// `want` pixels: cfitsio leaks the tile's buffer when they differ.
fn hcompress_size_is(code: &[u8], want: usize) -> std::result::Result<(), String> {
    let word =
        |at: usize| code.get(at..at + 4).and_then(|b| b.try_into().ok()).map(|b| u64::from(u32::from_be_bytes(b)));
    if code.get(..2) != Some(&[0xdd, 0x99][..]) {
        return Err("it is not an HCOMPRESS stream (no DD 99 at its start)".into());
    }
    let (Some(nx), Some(ny)) = (word(2), word(6)) else { return Err("its HCOMPRESS header is cut short".into()) };
    if nx.checked_mul(ny) != Some(want as u64) {
        return Err(format!("its HCOMPRESS header gives {nx} x {ny} pixels, not the {want} of the tile"));
    }
    Ok(())
}
