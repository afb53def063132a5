//! Tile compression (the FITS tiled image convention), without I/O: what a compressed image's
//! header says about its tiles ([`TileCompression`], read once and used by the native decoder, the
//! checks before cfitsio and the writer), and each codec's coding and decoding over byte slices.

pub(crate) mod gzip;
pub(crate) mod hcompress;
pub(crate) mod plio;
pub(crate) mod quantize;
pub(crate) mod rice;
pub(crate) mod unlzw;

use torchfits_format::cards::{Record, structural};
use torchfits_format::error::{Error, Result};
use torchfits_format::header::{Header, Value};

/// Most ZNAMEn/ZVALn pairs a header may give (the convention numbers them from 1).
const MAX_PARAMETERS: usize = 9;

/// How a compressed image's tiles are coded, with the parameters each codec takes (ZNAMEn /
/// ZVALn), defaulted as the convention defaults them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Codec {
    /// RICE_1 (or its old name RICE_ONE): pixels per coding block (BLOCKSIZE, default 32) and
    /// bytes per coded integer (BYTEPIX, default 4: older writers coded 8- and 16-bit images as
    /// 32-bit integers and did not say so).
    Rice { block: usize, bytepix: usize },
    /// GZIP_1, or GZIP_2 (`shuffle`: the bytes of the values regrouped by significance).
    Gzip { shuffle: bool },
    /// HCOMPRESS_1: SCALE and SMOOTH (both default 0).
    Hcompress { scale: f64, smooth: bool },
    /// PLIO_1 (IRAF's line lists, integers below 2^24).
    Plio,
    /// NOCOMPRESS: tiles stored as they are.
    None,
}

impl Codec {
    /// The ZCMPTYPE value that names this codec.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Codec::Rice { .. } => "RICE_1",
            Codec::Gzip { shuffle: false } => "GZIP_1",
            Codec::Gzip { shuffle: true } => "GZIP_2",
            Codec::Hcompress { .. } => "HCOMPRESS_1",
            Codec::Plio => "PLIO_1",
            Codec::None => "NOCOMPRESS",
        }
    }
}

/// Every ZCMPTYPE this crate knows.
pub(crate) const KNOWN_CODECS: [&str; 7] =
    ["RICE_1", "RICE_ONE", "GZIP_1", "GZIP_2", "PLIO_1", "HCOMPRESS_1", "NOCOMPRESS"];

/// The subtractive dithering of a quantised floating-point image (ZQUANTIZ).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dither {
    /// `NO_DITHER`, or no ZQUANTIZ (files from before dithering): value = integer x scale + zero.
    None,
    /// `SUBTRACTIVE_DITHER_1`: value = (integer - r + 0.5) x scale + zero, r from the convention's
    /// random sequence.
    One,
    /// `SUBTRACTIVE_DITHER_2`: as 1, and the reserved integer -2147483646 is an exact 0.0.
    Two,
}

/// How a floating-point image's tiles hold its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FloatStorage {
    /// Quantised to 32-bit integers (ZSCALE and ZZERO per tile), with this dithering, starting at
    /// ZDITHER0 in the random sequence (default 1).
    Quantised { dither: Dither, seed: i64 },
    /// The floats themselves (ZQUANTIZ = 'NONE', or no ZSCALE to unquantise with).
    Raw,
}

/// What a compressed image's header says about its tiles: read once per HDU, for the decoder,
/// the checks before cfitsio and the writer alike.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TileCompression {
    pub codec: Codec,
    /// The image's BITPIX (ZBITPIX).
    pub zbitpix: i64,
    /// The image's axes, FITS order (x first).
    pub dims: Vec<usize>,
    /// The tile's axes, FITS order: ZTILEn, by default whole rows (ZTILE1 = ZNAXIS1, others 1).
    pub tile: Vec<usize>,
    /// For a floating-point image, how its tiles hold the values; `None` for integers.
    pub floats: Option<FloatStorage>,
}

impl TileCompression {
    /// Reads the description from a compressed image's binary-table header. Every parameter the
    /// header leaves out takes the convention's default; a value that is there but cannot be read
    /// (not an integer, out of range, an unknown ZCMPTYPE) is a decoding or unsupported error.
    pub(crate) fn from_header(table: &Header) -> Result<TileCompression> {
        let name = table.get_str("ZCMPTYPE").map(|c| c.trim().to_ascii_uppercase());
        let unreadable = |what: &str| {
            Error::decoding(format!("the {} image's {what} cannot be read", name.as_deref().unwrap_or("compressed")))
        };
        let int = |key: &str| table.get_i64(key).ok_or_else(|| unreadable(key));
        let size = |key: &str| int(key).and_then(|v| usize::try_from(v).map_err(|_| unreadable(key)));
        let zbitpix = int("ZBITPIX")?;
        if !matches!(zbitpix, 8 | 16 | 32 | 64 | -32 | -64) {
            return Err(unreadable("ZBITPIX"));
        }
        let parameters = parameters(table).map_err(|key| unreadable(&key))?;
        let parameter = |wanted: &str| parameters.iter().find(|(n, _)| n == wanted).map(|(_, v)| *v);
        let count = |wanted: &str, default: usize| match parameter(wanted) {
            None => Ok(default),
            Some(v) if v.fract() == 0.0 && v >= 0.0 && v <= f64::from(u32::MAX) => Ok(v as usize),
            Some(_) => Err(unreadable(wanted)),
        };
        let codec = match name.as_deref() {
            Some("RICE_1" | "RICE_ONE") => {
                let (block, bytepix) = (count("BLOCKSIZE", 32)?, count("BYTEPIX", 4)?);
                if !matches!(bytepix, 1 | 2 | 4 | 8) || block == 0 || block > 1 << 16 {
                    return Err(unreadable("BYTEPIX or BLOCKSIZE"));
                }
                Codec::Rice { block, bytepix }
            }
            Some("GZIP_1") => Codec::Gzip { shuffle: false },
            Some("GZIP_2") => Codec::Gzip { shuffle: true },
            Some("HCOMPRESS_1") => Codec::Hcompress {
                scale: parameter("SCALE").unwrap_or(0.0),
                smooth: parameter("SMOOTH").is_some_and(|s| s != 0.0),
            },
            Some("PLIO_1") => Codec::Plio,
            Some("NOCOMPRESS") => Codec::None,
            _ => {
                return Err(Error::unsupported(format!(
                    "ZCMPTYPE = {:?}: not a tile compression this reader knows ({})",
                    table.get_str("ZCMPTYPE").unwrap_or("(missing)"),
                    KNOWN_CODECS.join(", ")
                )));
            }
        };
        let naxis = size("ZNAXIS")?;
        if naxis > 999 {
            return Err(unreadable("ZNAXIS"));
        }
        let dims = (1..=naxis).map(|k| size(&format!("ZNAXIS{k}"))).collect::<Result<Vec<_>>>()?;
        let mut tile = Vec::with_capacity(naxis);
        for (k, &d) in (1..).zip(&dims) {
            let key = format!("ZTILE{k}");
            let t = if table.contains(&key) {
                size(&key)?
            } else if k == 1 {
                d
            } else {
                1
            };
            if t == 0 && d > 0 {
                return Err(unreadable(&key));
            }
            tile.push(t.max(1));
        }
        let floats = (zbitpix < 0).then(|| float_storage(table)).transpose().map_err(|key| unreadable(&key))?;
        // other ZNAMEn (NOISEBIT of older writers, anything else) are left alone, as cfitsio
        // and astropy leave them
        Ok(TileCompression { codec, zbitpix, dims, tile, floats })
    }

    /// The tile shape in C order (slowest axis first).
    pub(crate) fn tile_shape(&self) -> Vec<usize> {
        self.tile.iter().rev().copied().collect()
    }

    /// Number of tiles (of the table's rows), `None` on overflow.
    pub(crate) fn tile_count(&self) -> Option<usize> {
        self.dims.iter().zip(&self.tile).try_fold(1usize, |acc, (&d, &t)| acc.checked_mul(d.div_ceil(t)))
    }

    /// Pixels of tile `k` (0-based, FITS order of tiles; edge tiles are cut by the image).
    pub(crate) fn tile_pixels(&self, k: usize) -> usize {
        let mut rest = k;
        let mut n = 1usize;
        for (&d, &t) in self.dims.iter().zip(&self.tile) {
            let count = d.div_ceil(t).max(1);
            let c = rest % count;
            rest /= count;
            n = n.saturating_mul(t.min(d.saturating_sub(c * t)));
        }
        n
    }

    /// Bytes of one value as a tile stores it before coding: the image's own width for integers
    /// and raw floats, 4 for floats quantised to 32-bit integers.
    pub(crate) fn stored_width(&self) -> usize {
        match self.floats {
            Some(FloatStorage::Quantised { .. }) => 4,
            _ => self.zbitpix.unsigned_abs() as usize / 8,
        }
    }

    /// The header records that describe the compression, in the order the writer puts them:
    /// ZIMAGE, ZBITPIX, ZNAXIS, ZNAXISn, ZTILEn, ZCMPTYPE, ZNAMEn / ZVALn.
    pub(crate) fn records(&self) -> Vec<Record> {
        let mut records = vec![
            structural("ZIMAGE", Value::Bool(true), "extension contains compressed image"),
            structural("ZBITPIX", Value::Int(self.zbitpix), "data type of original image"),
            structural("ZNAXIS", Value::Int(self.dims.len() as i64), "dimension of original image"),
        ];
        for (k, d) in (1..).zip(&self.dims) {
            records.push(structural(&format!("ZNAXIS{k}"), Value::Int(*d as i64), "length of original image axis"));
        }
        for (k, t) in (1..).zip(&self.tile) {
            records.push(structural(&format!("ZTILE{k}"), Value::Int(*t as i64), "size of tiles to be compressed"));
        }
        records.push(structural("ZCMPTYPE", Value::Str(self.codec.name().into()), "compression algorithm"));
        let mut parameter = |k: usize, name: &str, value: Value, comment: &str| {
            records.push(structural(&format!("ZNAME{k}"), Value::Str(name.into()), comment));
            records.push(structural(&format!("ZVAL{k}"), value, comment));
        };
        match self.codec {
            Codec::Rice { block, bytepix } => {
                parameter(1, "BLOCKSIZE", Value::Int(block as i64), "compression block size");
                parameter(2, "BYTEPIX", Value::Int(bytepix as i64), "bytes per pixel (1, 2, 4, or 8)");
            }
            Codec::Hcompress { scale, smooth } => {
                parameter(1, "SCALE", Value::Int(scale.round() as i64), "HCOMPRESS scale factor");
                parameter(2, "SMOOTH", Value::Int(i64::from(smooth)), "HCOMPRESS smooth option");
            }
            Codec::Gzip { .. } | Codec::Plio | Codec::None => {}
        }
        records
    }
}

/// The ZNAMEn / ZVALn pairs, names upper-cased; a ZVALn that is not a number is reported by its
/// keyword.
fn parameters(table: &Header) -> std::result::Result<Vec<(String, f64)>, String> {
    let mut out = Vec::new();
    for k in 1..=MAX_PARAMETERS {
        let Some(name) = table.get_str(&format!("ZNAME{k}")) else { continue };
        let key = format!("ZVAL{k}");
        let value = table.get_f64(&key).ok_or(key)?;
        out.push((name.trim().to_ascii_uppercase(), value));
    }
    Ok(out)
}

/// How a floating-point image's tiles hold its values (see [`FloatStorage`]); an unknown ZQUANTIZ
/// or a ZDITHER0 outside the random sequence is reported by its keyword.
fn float_storage(table: &Header) -> std::result::Result<FloatStorage, String> {
    if stores_raw_floats(table) {
        return Ok(FloatStorage::Raw);
    }
    let dither = match table.get_str("ZQUANTIZ").map(|q| q.trim().to_ascii_uppercase()).as_deref() {
        None | Some("NO_DITHER") => Dither::None,
        Some("SUBTRACTIVE_DITHER_1") => Dither::One,
        Some("SUBTRACTIVE_DITHER_2") => Dither::Two,
        Some(_) => return Err("ZQUANTIZ".into()),
    };
    let seed = match (dither, table.get("ZDITHER0")) {
        (Dither::None, _) => 0,
        // files written before ZDITHER0 existed start the sequence at 1, as cfitsio reads them
        (_, None) => 1,
        (_, Some(v)) => v.as_i64().filter(|s| (1..=quantize::N_RANDOM as i64).contains(s)).ok_or("ZDITHER0")?,
    };
    Ok(FloatStorage::Quantised { dither, seed })
}

/// Whether a float image's tiles hold the floats as they are, rather than quantised to 32-bit
/// integers: ZQUANTIZ = 'NONE', or no ZSCALE (keyword or column) to unquantise with; as cfitsio
/// reads them.
fn stores_raw_floats(table: &Header) -> bool {
    let column = |name: &str| {
        let n = table.get_i64("TFIELDS").unwrap_or(0).clamp(0, 999);
        (1..=n).any(|k| table.get_str(&format!("TTYPE{k}")).is_some_and(|t| t.trim().eq_ignore_ascii_case(name)))
    };
    table.get_str("ZQUANTIZ").is_some_and(|q| q.trim().eq_ignore_ascii_case("NONE"))
        || !table.contains("ZSCALE") && !column("ZSCALE")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(cards: &[(&str, Value)]) -> Header {
        let records: Vec<u8> = cards.iter().flat_map(|(k, v)| structural(k, v.clone(), "")).collect();
        Header::parse(&records).expect("header")
    }

    #[test]
    fn parameters_left_out_take_the_conventions_defaults() {
        let h = table(&[
            ("ZCMPTYPE", Value::Str("RICE_1".into())),
            ("ZBITPIX", Value::Int(16)),
            ("ZNAXIS", Value::Int(2)),
            ("ZNAXIS1", Value::Int(100)),
            ("ZNAXIS2", Value::Int(7)),
        ]);
        let d = TileCompression::from_header(&h).expect("description");
        assert_eq!(d.codec, Codec::Rice { block: 32, bytepix: 4 });
        assert_eq!((d.tile.clone(), d.tile_count(), d.tile_pixels(6)), (vec![100, 1], Some(7), 100));
        assert_eq!(d.floats, None);
        let h = table(&[
            ("ZCMPTYPE", Value::Str("HCOMPRESS_1".into())),
            ("ZBITPIX", Value::Int(-32)),
            ("ZNAXIS", Value::Int(1)),
            ("ZNAXIS1", Value::Int(10)),
            ("ZSCALE", Value::Float(0.5)),
            ("ZQUANTIZ", Value::Str("SUBTRACTIVE_DITHER_1".into())),
        ]);
        let d = TileCompression::from_header(&h).expect("description");
        assert_eq!(d.codec, Codec::Hcompress { scale: 0.0, smooth: false });
        assert_eq!(d.floats, Some(FloatStorage::Quantised { dither: Dither::One, seed: 1 }));
    }

    #[test]
    fn unreadable_parameters_are_errors_and_the_writers_records_read_back() {
        let base = [
            ("ZCMPTYPE", Value::Str("RICE_1".into())),
            ("ZBITPIX", Value::Int(32)),
            ("ZNAXIS", Value::Int(1)),
            ("ZNAXIS1", Value::Int(10)),
        ];
        for extra in
            [("ZNAME1", Value::Str("BYTEPIX".into())), ("ZTILE1", Value::Int(0)), ("ZTILE1", Value::Str("x".into()))]
        {
            let mut cards = base.to_vec();
            cards.push(extra.clone());
            if extra.0 == "ZNAME1" {
                cards.push(("ZVAL1", Value::Int(3)));
            }
            assert!(TileCompression::from_header(&table(&cards)).is_err(), "{extra:?}");
        }
        let mut cards = base.to_vec();
        cards[0].1 = Value::Str("LZMA".into());
        let err = TileCompression::from_header(&table(&cards)).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Unsupported);

        let written = TileCompression {
            codec: Codec::Rice { block: 32, bytepix: 2 },
            zbitpix: 16,
            dims: vec![5, 3],
            tile: vec![5, 2],
            floats: None,
        };
        let bytes: Vec<u8> = written.records().concat();
        let back = Header::parse(&bytes).expect("parse");
        assert_eq!(TileCompression::from_header(&back).expect("description"), written);
    }
}
