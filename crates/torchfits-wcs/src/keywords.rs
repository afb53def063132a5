//! Which header cards wcslib sees: an allow-list of the keyword forms wcslib's header parsers
//! define (`wcspih` for image headers, `wcsbth` for binary-table image arrays and pixel lists),
//! for the alternate asked for, with every axis, column and parameter number bounded. A card of
//! any other form never reaches wcslib's parser (whose lexer sizes arrays by the numbers it
//! reads); the values of those that do were parsed by torchfits and are written back by it.

/// Highest axis number a keyword may name (`PC99_99A`: what the standard's keywords spell).
const MAX_AXIS: u32 = 99;
/// Highest parameter number of `PVi_m` / `PSi_m` (the standard's keywords spell 0..=99).
const MAX_PARAMETER: u32 = 99;
/// Highest table column a binary-table keyword may name (TFIELDS is at most 999).
const MAX_COLUMN: u32 = 999;

/// Keywords that carry no axis and no alternate.
const PLAIN: &[&str] = &[
    "NAXIS", "RESTFREQ", "EPOCH", "RADECSYS", "VELREF", "VSOURCE", "DATE-OBS", "DATE-BEG", "DATE-AVG", "DATE-END",
    "MJD-OBS", "MJD-BEG", "MJD-AVG", "MJD-END", "DATEREF", "MJDREF", "MJDREFI", "MJDREFF", "JDREF", "JDREFI", "JDREFF",
    "TIMESYS", "TREFPOS", "TREFDIR", "PLEPHEM", "TIMEUNIT", "TIMEOFFS", "TSTART", "TSTOP", "XPOSURE", "TELAPSE",
    "TIMSYER", "TIMRDER", "TIMEDEL", "TIMEPIXR", "OBSGEO-X", "OBSGEO-Y", "OBSGEO-Z", "OBSGEO-L", "OBSGEO-B",
    "OBSGEO-H", "OBSORBIT", "BEPOCH", "JEPOCH",
];

/// Keywords of one alternate that carry no axis (`WCSAXESa`, `LONPOLEa`, ...).
const PER_ALTERNATE: &[&str] = &[
    "WCSAXES", "WCSNAME", "LONPOLE", "LATPOLE", "RESTFRQ", "RESTWAV", "EQUINOX", "RADESYS", "SPECSYS", "SSYSOBS",
    "VELOSYS", "VSOURCE", "ZSOURCE", "SSYSSRC", "VELANGL", "DVERR",
];

/// Keywords of one axis and one alternate (`CTYPEia`, `CRPIXja`, ...), and of the distortion
/// convention (`CPDISja`, `DPja`, ...).
const PER_AXIS: &[&str] = &[
    "CRPIX", "CDELT", "CTYPE", "CUNIT", "CRVAL", "CNAME", "CRDER", "CSYER", "CZPHS", "CPERI", "CPDIS", "CQDIS",
    "CPERR", "CQERR", "DP", "DQ",
];

/// Keywords of two numbers and one alternate: `PCi_ja`, `CDi_ja` (two axes), `PVi_ma`, `PSi_ma`
/// (an axis and a parameter).
const PER_PAIR: &[&str] = &["PC", "CD", "PV", "PS"];

/// The stems of `wcsbth`'s binary-table forms: image arrays (`iCTYPn`, `ijPCn`, `iVn_m`, ...)
/// and pixel lists (`TCTYPn`, `TPn_k`, `TVn_m`, ...), each with a column number `n`.
const TABLE_STEMS: &[&str] = &[
    "CTYP", "CUNI", "CRVL", "CDLT", "CRPX", "CROT", "CNAM", "CRDE", "CSYE", "CZPH", "CPER", "CTY", "CUN", "CRV", "CDE",
    "CRP", "PC", "CD", "V", "S", "TCTYP", "TCUNI", "TCRVL", "TCDLT", "TCRPX", "TCROT", "TCTY", "TCUN", "TCRV", "TCDE",
    "TCRP", "TCNA", "TCRD", "TCSY", "TCZP", "TCPR", "TP", "TPC", "TC", "TCD", "TV", "TPV", "TS", "TPS", "WCSN", "TWCS",
    "WCAX", "LONP", "LATP", "EQUI", "MJDOB", "MJDA", "RADE", "RFRQ", "RWAV", "SPEC", "SOBS", "SSRC", "VSYS", "VANG",
    "ZSOU", "DOBS", "DAVG", "DBEG", "DEND", "MJDB", "MJDE", "OBSGX", "OBSGY", "OBSGZ", "OBSGL", "OBSGB", "OBSGH",
];

/// Whether wcslib's parser is handed a card of `keyword` (`table`: the binary-table forms too).
/// Every alternate's keywords pass (wcslib parses them all and the caller's alternate is picked
/// from them, as astropy does), so an alternate the header lacks is an error, not a default WCS.
pub(crate) fn for_wcslib(keyword: &str, table: bool) -> bool {
    let keyword = keyword.trim_end();
    let without_alternate = keyword.strip_suffix(|c: char| c.is_ascii_uppercase());
    // a binary table's WCS is read from its own forms only: wcsbth, handed an image header's
    // keywords beside them, reads through pointers it never set
    if table {
        return [Some(keyword), without_alternate].into_iter().flatten().any(table_form);
    }
    if PLAIN.contains(&keyword) {
        return true;
    }
    // the legacy AIPS forms: CROTAi, PC00i00j / CD00i00j, PROJPm
    if axis_number(keyword, "CROTA") || aips_matrix(keyword) || parameter_of(keyword, "PROJP") {
        return true;
    }
    // the keyword as it is (the primary's), or without an alternate letter A..Z at its end
    [Some(keyword), without_alternate].into_iter().flatten().any(of_one_wcs)
}

/// Whether `keyword` (without its alternate letter) is one of wcspih's forms.
fn of_one_wcs(keyword: &str) -> bool {
    PER_ALTERNATE.contains(&keyword)
        || PER_AXIS.iter().any(|stem| axis_number(keyword, stem))
        || PER_PAIR.iter().any(|stem| pair(keyword, stem))
}

/// A number of 1 to 3 digits without a leading zero, at most `most`.
fn number(text: &str, most: u32, zero: bool) -> bool {
    let ok = !text.is_empty() && text.len() <= 3 && text.bytes().all(|b| b.is_ascii_digit());
    ok && (text == "0" && zero || !text.starts_with('0')) && text.parse::<u32>().is_ok_and(|n| n <= most)
}

/// Whether `keyword` is `stem` and an axis number.
fn axis_number(keyword: &str, stem: &str) -> bool {
    keyword.strip_prefix(stem).is_some_and(|n| number(n, MAX_AXIS, false))
}

/// Whether `keyword` is `stem` and a parameter number (0 allowed).
fn parameter_of(keyword: &str, stem: &str) -> bool {
    keyword.strip_prefix(stem).is_some_and(|n| number(n, MAX_PARAMETER, true))
}

/// Whether `keyword` is `stem`, a number, `_` and a number: two axes for PC and CD, an axis and
/// a parameter for PV and PS.
fn pair(keyword: &str, stem: &str) -> bool {
    let Some((i, j)) = keyword.strip_prefix(stem).and_then(|r| r.split_once('_')) else { return false };
    let second_is_parameter = matches!(stem, "PV" | "PS");
    number(i, MAX_AXIS, false)
        && number(j, if second_is_parameter { MAX_PARAMETER } else { MAX_AXIS }, second_is_parameter)
}

/// The AIPS matrix forms `PC00i00j` and `CD00i00j` (axes of 1 to 99).
fn aips_matrix(keyword: &str) -> bool {
    let Some(digits) = keyword.strip_prefix("PC").or_else(|| keyword.strip_prefix("CD")) else { return false };
    let b = digits.as_bytes();
    let axis = |d: &[u8]| {
        d.len() == 3
            && d.iter().all(u8::is_ascii_digit)
            && std::str::from_utf8(d)
                .ok()
                .and_then(|t| t.parse::<u32>().ok())
                .is_some_and(|n| (1..=MAX_AXIS).contains(&n))
    };
    b.len() == 6 && axis(b.get(..3).unwrap_or_default()) && axis(b.get(3..).unwrap_or_default())
}

/// The families of WCS keyword forms a binary-table header may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TableForm {
    /// The image header's forms of an axis (`CTYPE1`, `CRPIX2A`, `PC1_2`, `CROTA2`).
    ImageHeader,
    /// Image arrays in cells: axis digits first (`1CTYP5`, `12PC5`, `1V5_2`).
    ImageArray,
    /// Pixel lists: a `T` stem and a column (`TCTYP5`, `TP5_7`, `TV5_1`).
    PixelList,
}

/// Which family of forms `keyword` belongs to; `None` for the keywords every family shares
/// (`WCSNAMEa`, `EQUINOXa`, `WCSNna`, `LONPna`, ...) and for what wcslib is not handed.
pub(crate) fn table_family(keyword: &str) -> Option<TableForm> {
    let keyword = keyword.trim_end();
    let bare = keyword.strip_suffix(|c: char| c.is_ascii_uppercase()).unwrap_or(keyword);
    let kind = |k: &str| match k.as_bytes().first() {
        Some(b) if b.is_ascii_digit() && table_form(k) => Some(TableForm::ImageArray),
        Some(b'T') if table_form(k) && !of_one_wcs(k) => Some(TableForm::PixelList),
        _ if PER_AXIS.iter().any(|stem| axis_number(k, stem))
            || PER_PAIR.iter().any(|stem| pair(k, stem))
            || axis_number(k, "CROTA")
            || aips_matrix(k) =>
        {
            Some(TableForm::ImageHeader)
        }
        _ => None,
    };
    kind(keyword).or_else(|| kind(bare))
}

/// Whether `keyword` is one of `wcsbth`'s own forms (an image array's or a pixel list's).
pub(crate) fn is_binary_table_form(keyword: &str) -> bool {
    matches!(table_family(keyword), Some(TableForm::ImageArray | TableForm::PixelList))
}

/// A binary-table form of `wcsbth`: optional axis digits, a stem, a column number, and an
/// optional `_` and a second number (every number bounded).
fn table_form(keyword: &str) -> bool {
    let lead = keyword.bytes().take_while(u8::is_ascii_digit).count();
    let (axes, rest) = keyword.split_at(lead);
    // image arrays put one or two axis digits first (`1CTYP5`, `12PC5`)
    if !axes.is_empty() && (axes.len() > 2 || axes.bytes().any(|b| b == b'0')) {
        return false;
    }
    let stem_len = rest.bytes().take_while(|b| b.is_ascii_uppercase()).count();
    let (stem, numbers) = rest.split_at(stem_len);
    if !TABLE_STEMS.contains(&stem) {
        return false;
    }
    let (column, second) = match numbers.split_once('_') {
        Some((c, s)) => (c, Some(s)),
        None => (numbers, None),
    };
    number(column, MAX_COLUMN, false) && second.is_none_or(|s| number(s, MAX_PARAMETER.max(MAX_AXIS), true))
}

#[cfg(test)]
mod tests {
    use super::for_wcslib;

    #[test]
    fn the_forms_wcslib_defines_pass_with_any_alternate() {
        for k in [
            "CTYPE1", "CRPIX2", "PC1_2", "CD2_1", "PV2_1", "PV1_0", "CDELT99", "WCSAXES", "LONPOLE", "RADESYS",
            "EQUINOX", "CROTA2", "PC001002", "PROJP1", "MJD-OBS", "DATE-OBS", "RESTFREQ", "CPDIS1", "DP1", "NAXIS",
            "CTYPE1A", "PC1_2B", "WCSAXESA", "LONPOLEZ", "EQUINOXA", "CDELT99Z",
        ] {
            assert!(for_wcslib(k, false), "{k}");
        }
    }

    #[test]
    fn numbers_are_bounded_and_other_keywords_are_left_out() {
        for k in [
            "CTYPE100",
            "PC1_100",
            "PC100_1",
            "PV1_100",
            "CTYPE0",
            "CTYPE01",
            "PC0_1",
            "PC1_2_3",
            "CRPIX",
            "CRPIXA",
            "OBJECT",
            "HISTORY",
            "COMMENT",
            "BITPIX",
            "A_0_2",
            "XTENSION",
            "CTYPE1AB",
            "PC0010020",
        ] {
            assert!(!for_wcslib(k, false), "{k}");
        }
    }

    #[test]
    fn binary_table_forms_pass_only_when_asked_for() {
        for k in
            ["TCTYP5", "TCRVL12", "1CTYP5", "2CRPX5", "12PC5", "TP5_7", "1V5_2", "TV5_1", "WCSN5", "TWCS5", "1CTY5A"]
        {
            assert!(for_wcslib(k, true), "{k}");
            assert!(!for_wcslib(k, false), "{k} without table");
        }
        for k in ["TCTYP1000", "123CTYP5", "0CTYP5", "TFORM5", "TTYPE5", "TXYZ5", "CTYPE1", "CRPIX2", "EQUINOX"] {
            assert!(!for_wcslib(k, true), "{k}");
        }
    }

    #[test]
    fn binary_table_forms_are_told_apart() {
        use super::{TableForm, table_family};
        for k in ["1CTYP5", "12PC5", "1V5_2", "2CRPX5A"] {
            assert_eq!(table_family(k), Some(TableForm::ImageArray), "{k}");
        }
        for k in ["TCTYP5", "TP5_7", "TV5_1", "TCRVL12", "TCTY5A"] {
            assert_eq!(table_family(k), Some(TableForm::PixelList), "{k}");
        }
        for k in ["CTYPE1", "CRPIX2A", "PC1_2", "CROTA2"] {
            assert_eq!(table_family(k), Some(TableForm::ImageHeader), "{k}");
        }
        for k in ["WCSN5", "EQUINOX", "LONP5", "WCSAXES", "OBJECT"] {
            assert_eq!(table_family(k), None, "{k}");
        }
    }
}
