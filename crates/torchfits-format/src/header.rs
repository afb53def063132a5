//! FITS headers: ordered cards with typed values, parsed in Rust from the raw 80-byte cards cfitsio
//! hands over in one call.
//!
//! The parser follows the FITS standard and, where files bend it, astropy's reading of them:
//! `HIERARCH` keywords are named without the prefix, `CONTINUE` cards are joined into one long string
//! value, record-valued cards (`DP1 = 'AXIS.1: 1'`) are named `DP1.AXIS.1` with a numeric value, and
//! a card without a value indicator keeps its text as a string value.

use crate::error::{Error, Result};

/// Length of one header card in bytes.
pub const CARD_LEN: usize = 80;

/// A typed header value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `T` or `F`.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A real number (also integers too large for 64 bits).
    Float(f64),
    /// A complex number `(re, im)`.
    Complex(f64, f64),
    /// A string (trailing blanks removed, `''` unescaped); also the text of commentary cards and of
    /// cards that have no value indicator.
    Str(String),
    /// A keyword with no value.
    Undefined,
}

impl Value {
    /// The value as an integer, if it is one (or a float with an integral value).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int(i) => Some(i),
            Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.2e18 => Some(f as i64),
            _ => None,
        }
    }

    /// The value as a real number, if it is numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            Value::Int(i) => Some(i as f64),
            Value::Float(f) => Some(f),
            _ => None,
        }
    }

    /// The value as a string slice, if it is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The value as a bool, if it is one.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            _ => None,
        }
    }
}

/// One header card (or one logical card: a string joined from `CONTINUE` cards).
#[derive(Debug, Clone, PartialEq)]
pub struct Card {
    keyword: String,
    field: Option<String>,
    value: Value,
    comment: Option<String>,
    /// The value is a number written with blanks inside it, read as astropy reads it (blanks
    /// ignored: `0   16` is 16); cfitsio reads such a number otherwise.
    spaced_number: bool,
}

impl Card {
    /// A card from its parts (used by tests and by writers).
    pub fn new(keyword: impl Into<String>, value: Value, comment: Option<String>) -> Self {
        Card { keyword: keyword.into(), field: None, value, comment, spaced_number: false }
    }

    /// Whether the value is a number written with blanks inside it (`0   16`), which this crate
    /// reads as astropy does, ignoring the blanks, and cfitsio reads otherwise.
    pub fn is_spaced_number(&self) -> bool {
        self.spaced_number
    }

    /// The keyword: upper case, without a `HIERARCH ` prefix, and for a record-valued card the
    /// full name (`DP1.AXIS.1`).
    pub fn keyword(&self) -> String {
        match &self.field {
            Some(f) => format!("{}.{f}", self.keyword),
            None => self.keyword.clone(),
        }
    }

    /// The keyword as written in the keyword field (`DP1` for a record-valued card).
    pub fn base_keyword(&self) -> &str {
        &self.keyword
    }

    /// The field specifier of a record-valued card (`AXIS.1` in `DP1 = 'AXIS.1: 1'`).
    pub fn field_specifier(&self) -> Option<&str> {
        self.field.as_deref()
    }

    /// The typed value.
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The comment, if the card has one.
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    /// Whether this is a commentary card (`COMMENT`, `HISTORY` or a blank keyword).
    pub fn is_commentary(&self) -> bool {
        matches!(self.keyword.as_str(), "COMMENT" | "HISTORY" | "")
    }

    fn matches(&self, key: &str) -> bool {
        match &self.field {
            None => self.keyword.eq_ignore_ascii_case(key),
            Some(f) => {
                // bytes, not chars: `key` is the caller's and may hold any character
                let (key, kw) = (key.as_bytes(), self.keyword.as_bytes());
                key.len() == kw.len() + 1 + f.len()
                    && key.get(..kw.len()).is_some_and(|k| k.eq_ignore_ascii_case(kw))
                    && key.get(kw.len()) == Some(&b'.')
                    && key.get(kw.len() + 1..) == Some(f.as_bytes())
            }
        }
    }
}

/// An ordered list of header cards, without the END card.
///
/// Parsing costs one pass over the bytes and one allocation per card; lookups are linear (headers
/// hold at most a few thousand cards).
///
/// ```
/// use torchfits_format::{Header, Value};
/// let mut raw = String::new();
/// for card in ["SIMPLE  =                    T", "BITPIX  =                  -32 / float",
///              "OBJECT  = 'M31     '", "HIERARCH ESO DET CHIP = 3", "END"] {
///     raw.push_str(&format!("{card:<80}"));
/// }
/// let header = Header::parse(raw.as_bytes())?;
/// assert_eq!(header.len(), 4);
/// assert_eq!(header.get("bitpix"), Some(&Value::Int(-32)));
/// assert_eq!(header.get_str("OBJECT"), Some("M31"));
/// assert_eq!(header.get_i64("ESO DET CHIP"), Some(3));
/// # Ok::<(), torchfits_format::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Header {
    cards: Vec<Card>,
}

impl Header {
    /// Parses raw header bytes: a sequence of 80-byte cards, up to an `END` card or the end of the
    /// input. Bytes outside printable ASCII are replaced (U+FFFD); a trailing partial card is an
    /// error.
    pub fn parse(bytes: &[u8]) -> Result<Header> {
        Self::parse_limited(bytes, usize::MAX)
    }

    /// As [`Header::parse`], failing with a limits error past `max_cards` cards.
    // string slices: a CONTINUE card is sliced after its 8 ASCII bytes
    #[allow(clippy::string_slice)]
    pub fn parse_limited(bytes: &[u8], max_cards: usize) -> Result<Header> {
        let mut raw: Vec<&[u8]> = Vec::with_capacity((bytes.len() / CARD_LEN).min(max_cards.saturating_add(1)));
        for chunk in bytes.chunks(CARD_LEN) {
            if chunk.get(..8) == Some(b"END     ") || chunk == b"END" {
                break;
            }
            if chunk.len() != CARD_LEN {
                return Err(Error::decoding(format!("header ends in a partial card of {} bytes", chunk.len())));
            }
            if raw.len() >= max_cards {
                return Err(Error::limits(format!(
                    "header has more than {max_cards} cards (Limits::max_header_cards)"
                )));
            }
            raw.push(chunk);
        }
        let mut cards: Vec<Card> = Vec::with_capacity(raw.len());
        let mut i = 0;
        while let Some(&first_raw) = raw.get(i) {
            let image = card_text(first_raw);
            let mut card = parse_card(&image);
            i += 1;
            // astropy joins every CONTINUE card that follows a string-valued card into it
            if let Value::Str(first) = &card.value
                && card.field.is_none()
                && !card.is_commentary()
                && raw.get(i).is_some_and(|r| r.starts_with(b"CONTINUE"))
            {
                let mut value = strip_amp(first).to_string();
                let mut comments: Vec<String> = card.comment.take().into_iter().collect();
                while let Some(next) = raw.get(i).filter(|r| r.starts_with(b"CONTINUE")) {
                    let sub = String::from_utf8_lossy(next);
                    let (v, c) = match parse_value_field(&sub[8..]) {
                        (Value::Str(s), c) => (s, c),
                        _ => break,
                    };
                    value.push_str(strip_amp(&v));
                    comments.extend(c);
                    i += 1;
                }
                card.value = Value::Str(value);
                card.comment = if comments.is_empty() { None } else { Some(comments.join(" ")) };
            }
            cards.push(card);
        }
        Ok(Header { cards })
    }

    /// Number of cards (joined `CONTINUE` cards count once).
    pub fn len(&self) -> usize {
        self.cards.len()
    }

    /// Whether there are no cards.
    pub fn is_empty(&self) -> bool {
        self.cards.is_empty()
    }

    /// The cards in file order.
    pub fn iter(&self) -> std::slice::Iter<'_, Card> {
        self.cards.iter()
    }

    /// The first card named `key` (case-insensitive; `HIERARCH` keywords without the prefix,
    /// record-valued cards by their full name, e.g. `DP1.AXIS.1`).
    pub fn card(&self, key: &str) -> Option<&Card> {
        let key = key.strip_prefix("HIERARCH ").unwrap_or(key).trim_ascii();
        self.cards.iter().find(|c| c.matches(key))
    }

    /// The value of the first card named `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.card(key).map(Card::value)
    }

    /// The integer value of `key`, if present and integral.
    pub fn get_i64(&self, key: &str) -> Option<i64> {
        self.get(key).and_then(Value::as_i64)
    }

    /// A numeric keyword's value (`default` when absent); an error when the keyword is there but
    /// its value is not a finite number.
    pub fn number_or(&self, key: &str, default: f64) -> crate::error::Result<f64> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => v
                .as_f64()
                .filter(|f| f.is_finite())
                .ok_or_else(|| crate::error::Error::decoding(format!("{key} = {v:?} is not a finite number"))),
        }
    }

    /// The numeric value of `key`, if present and numeric.
    pub fn get_f64(&self, key: &str) -> Option<f64> {
        self.get(key).and_then(Value::as_f64)
    }

    /// The string value of `key`, if present and a string.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// The bool value of `key`, if present and logical.
    pub fn get_bool(&self, key: &str) -> Option<bool> {
        self.get(key).and_then(Value::as_bool)
    }

    /// Whether a card named `key` exists.
    pub fn contains(&self, key: &str) -> bool {
        self.card(key).is_some()
    }
}

/// Table keywords indexed by column (astropy's `KEYWORD_NAMES`).
const TABLE_INDEXED: [&str; 15] = [
    "TTYPE", "TFORM", "TUNIT", "TNULL", "TSCAL", "TZERO", "TDISP", "TBCOL", "TDIM", "TCTYP", "TCUNI", "TCRPX", "TCRVL",
    "TCDLT", "TRPOS",
];
/// Tile-compression keywords that never reach the image header.
const COMPRESSION_KEYWORDS: [&str; 18] = [
    "ZSIMPLE", "ZTENSION", "ZBITPIX", "ZNAXIS", "ZEXTEND", "ZBLOCKED", "ZPCOUNT", "ZGCOUNT", "ZHECKSUM", "ZDATASUM",
    "ZIMAGE", "ZCMPTYPE", "ZMASKCMP", "ZQUANTIZ", "ZDITHER0", "ZBLANK", "ZSCALE", "ZZERO",
];
const COMPRESSION_INDEXED: [&str; 4] = ["ZNAXIS", "ZTILE", "ZNAME", "ZVAL"];

/// `LABEL` + a number from 1, as in `TTYPE12`: returns the label.
fn indexed_label(keyword: &str) -> Option<&str> {
    let digits = keyword.bytes().rev().take_while(u8::is_ascii_digit).count();
    let (label, num) = keyword.split_at(keyword.len() - digits);
    (digits > 0 && !num.starts_with('0')).then_some(label)
}

impl Header {
    fn push(&mut self, keyword: &str, value: Value, comment: Option<&str>) {
        self.cards.push(Card::new(keyword, value, comment.map(str::to_string)));
    }

    /// The header of the image a tile-compressed HDU holds, from the binary table's header, by
    /// the tiled-image convention as astropy applies it: `ZBITPIX`, `ZNAXISn`, ... become
    /// `BITPIX`, `NAXISn`, ...; table and compression keywords are dropped; the default EXTNAME
    /// `COMPRESSED_IMAGE` is dropped; `ZBLANK` becomes `BLANK`.
    pub fn compressed_image_header(&self) -> Result<Header> {
        let get = |k: &str| self.card(k);
        let zbitpix = get("ZBITPIX").ok_or_else(|| Error::decoding("compressed image without ZBITPIX"))?;
        let znaxis = get("ZNAXIS").ok_or_else(|| Error::decoding("compressed image without ZNAXIS"))?;
        let naxis = znaxis
            .value
            .as_i64()
            .filter(|n| (0..=999).contains(n))
            .ok_or_else(|| Error::decoding("ZNAXIS is not an integer in 0..=999"))?;
        let mut out = Header::default();
        let is_primary = match get("ZSIMPLE") {
            Some(c) => {
                out.push("SIMPLE", c.value.clone(), c.comment());
                true
            }
            None => {
                out.push("XTENSION", Value::Str("IMAGE".into()), get("ZTENSION").and_then(Card::comment));
                false
            }
        };
        out.push("BITPIX", zbitpix.value.clone(), zbitpix.comment());
        out.push("NAXIS", Value::Int(naxis), znaxis.comment());
        for k in 1..=naxis {
            let c = get(&format!("ZNAXIS{k}"))
                .ok_or_else(|| Error::decoding(format!("compressed image without ZNAXIS{k}")))?;
            out.push(&format!("NAXIS{k}"), c.value.clone(), c.comment());
        }
        if !is_primary {
            match get("ZPCOUNT") {
                Some(c) => out.push("PCOUNT", c.value.clone(), c.comment()),
                None => out.push("PCOUNT", Value::Int(0), None),
            }
            match get("ZGCOUNT") {
                Some(c) => out.push("GCOUNT", c.value.clone(), c.comment()),
                None => out.push("GCOUNT", Value::Int(1), None),
            }
        }
        let tfields = self.get_i64("TFIELDS").unwrap_or(0);
        let structural = [
            "SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "EXTEND", "PCOUNT", "GCOUNT", "GROUPS",
            "TFIELDS", "THEAP", "CHECKSUM", "DATASUM",
        ];
        for c in &self.cards {
            let k = c.keyword.as_str();
            let reserved = c.field.is_none()
                && (structural.contains(&k)
                    || COMPRESSION_KEYWORDS.contains(&k)
                    || indexed_label(k)
                        .is_some_and(|l| TABLE_INDEXED.contains(&l) || COMPRESSION_INDEXED.contains(&l))
                    || (k == "EXTNAME" && c.value.as_str().map(str::trim_end) == Some("COMPRESSED_IMAGE")));
            if !reserved {
                out.cards.push(c.clone());
            }
        }
        for (z, k) in
            [("ZEXTEND", "EXTEND"), ("ZBLOCKED", "BLOCKED"), ("ZHECKSUM", "CHECKSUM"), ("ZDATASUM", "DATASUM")]
        {
            if let Some(c) = get(z) {
                out.push(k, c.value.clone(), c.comment());
            }
        }
        if zbitpix.value.as_i64().is_some_and(|b| b > 0) && !out.contains("BLANK") {
            if let Some(c) = get("ZBLANK") {
                out.push("BLANK", c.value.clone(), c.comment());
            } else if (1..=tfields).any(|i| self.get_str(&format!("TTYPE{i}")).map(str::trim_end) == Some("ZBLANK")) {
                let bits = zbitpix.value.as_i64().unwrap_or(8).clamp(8, 64);
                out.push("BLANK", Value::Int(if bits == 64 { i64::MIN } else { -(1i64 << (bits - 1)) }), None);
            }
        }
        Ok(out)
    }

    /// Whether this is a tile-compressed binary table (`ZTABLE = T`, FITS 4.0 section 10.3).
    pub fn is_compressed_table(&self) -> bool {
        self.get_bool("ZTABLE") == Some(true)
    }

    /// The header of the table a tile-compressed binary table holds, as cfitsio's
    /// `fits_uncompress_table` writes it: `ZNAXIS1`, `ZNAXIS2`, `ZPCOUNT` and `ZFORMn` become
    /// `NAXIS1`, `NAXIS2`, `PCOUNT` and `TFORMn` in place; `ZTHEAP`, `ZHECKSUM` and `ZDATASUM`
    /// become `THEAP`, `CHECKSUM` and `DATASUM`; the compression's own keywords (`ZTABLE`,
    /// `ZTILELEN`, `ZCTYPn`, `ZHEAPPTR`) and the stored table's `THEAP`, `CHECKSUM` and `DATASUM`
    /// are dropped.
    pub fn compressed_table_header(&self) -> Result<Header> {
        let tfields = self.get_i64("TFIELDS").filter(|n| (0..=999).contains(n)).unwrap_or(0);
        let mut out = Header::default();
        for c in &self.cards {
            if c.field.is_some() {
                out.cards.push(c.clone());
                continue;
            }
            let k = c.keyword.as_str();
            let renamed = match k {
                "NAXIS1" | "NAXIS2" | "PCOUNT" => Some(format!("Z{k}")),
                // TFORMn from ZFORMn
                _ => indexed_label(k).filter(|&l| l == "TFORM").and_then(|_| k.get(1..)).map(|n| format!("Z{n}")),
            };
            if let Some(z) = renamed {
                let from = self.card(&z).ok_or_else(|| Error::decoding(format!("compressed table without {z}")))?;
                out.cards.push(Card::new(k, from.value.clone(), from.comment().map(str::to_string)));
                continue;
            }
            let dropped = matches!(
                k,
                "ZTABLE"
                    | "ZTILELEN"
                    | "ZNAXIS1"
                    | "ZNAXIS2"
                    | "ZPCOUNT"
                    | "ZHEAPPTR"
                    | "ZTHEAP"
                    | "THEAP"
                    | "CHECKSUM"
                    | "DATASUM"
                    | "ZHECKSUM"
                    | "ZDATASUM"
            ) || indexed_label(k).is_some_and(|l| l == "ZFORM" || l == "ZCTYP");
            if !dropped {
                out.cards.push(c.clone());
            }
        }
        for i in 1..=tfields {
            if self.card(&format!("TFORM{i}")).is_none() {
                return Err(Error::decoding(format!("compressed table without TFORM{i}")));
            }
        }
        for (z, k) in [("ZTHEAP", "THEAP"), ("ZHECKSUM", "CHECKSUM"), ("ZDATASUM", "DATASUM")] {
            if let Some(c) = self.card(z) {
                out.push(k, c.value.clone(), c.comment());
            }
        }
        Ok(out)
    }

    /// astropy's normalisation of a random-groups primary header: such an HDU always has at
    /// least one axis, so `NAXIS = 0` reads as `NAXIS = 1`, `NAXIS1 = 0`.
    pub fn normalise_random_groups(&mut self) {
        if self.get_i64("NAXIS") == Some(0)
            && let Some(pos) = self.cards.iter().position(|c| c.keyword == "NAXIS" && c.field.is_none())
            && let Some(card) = self.cards.get_mut(pos)
        {
            card.value = Value::Int(1);
            self.cards.insert(pos + 1, Card::new("NAXIS1", Value::Int(0), None));
        }
    }
}

/// Editing a header for writing: keywords set, updated, removed; comments and history added.
/// The keywords that describe the data (BITPIX, NAXISn, TFORMn, BZERO, CHECKSUM, ...) belong to
/// the writer: setting one is an error, and a writer skips any such card a header read from a
/// file still holds.
///
/// ```
/// use torchfits_format::{Header, Value};
/// let mut header = Header::new();
/// header.set("OBJECT", "M31", Some("target"))?.set("EXPTIME", 300.0, None)?;
/// header.set("OBJECT", "M33", None)?;                      // updated in place, comment kept
/// header.add_history("flat-fielded");
/// assert_eq!(header.get_str("OBJECT"), Some("M33"));
/// assert_eq!(header.card("OBJECT").and_then(|c| c.comment()), Some("target"));
/// assert!(header.set("NAXIS1", 10, None).is_err());       // the writer's
/// assert_eq!(header.remove("EXPTIME"), 1);
/// # Ok::<(), torchfits_format::Error>(())
/// ```
impl Header {
    /// Keeps only the cards for which `keep` is true.
    pub fn retain(&mut self, keep: impl FnMut(&Card) -> bool) {
        self.cards.retain(keep);
    }

    /// Sets `key` to `value` with no check of the keyword, structural ones included: for a copy of
    /// a header that is read, never written (the WCS rewrites its own copy so). [`Header::set`] is
    /// the writer-safe form.
    pub fn set_any(&mut self, key: &str, value: Value) {
        match self.cards.iter_mut().find(|c| c.keyword().eq_ignore_ascii_case(key)) {
            Some(c) => *c = Card::new(c.keyword(), value, c.comment().map(str::to_string)),
            None => self.cards.push(Card::new(key, value, None)),
        }
    }

    /// An empty header.
    pub fn new() -> Header {
        Header::default()
    }

    /// Sets `key` to `value`: the first card with that keyword is updated (its comment kept unless
    /// `comment` is given), else a card is appended. Keywords longer than 8 characters or with
    /// characters outside `A-Z 0-9 - _` are written as HIERARCH cards.
    pub fn set(&mut self, key: &str, value: impl Into<Value>, comment: Option<&str>) -> Result<&mut Header> {
        let key = key.trim();
        if key.is_empty() || matches!(key.to_ascii_uppercase().as_str(), "COMMENT" | "HISTORY") {
            return Err(Error::parameter(format!("{key:?}: use add_comment / add_history for commentary cards")));
        }
        if is_reserved(key) {
            return Err(Error::parameter(format!("{key} describes the data and is written by the writer")));
        }
        let keyword = if key.len() <= 8 { key.to_ascii_uppercase() } else { key.to_string() };
        let value = value.into();
        match self.cards.iter_mut().find(|c| c.field.is_none() && c.matches(&keyword)) {
            Some(card) => {
                card.value = value;
                if let Some(c) = comment {
                    card.comment = Some(c.to_string());
                }
            }
            None => self.cards.push(Card::new(keyword, value, comment.map(str::to_string))),
        }
        Ok(self)
    }

    /// Removes every card with keyword `key`; returns how many there were.
    pub fn remove(&mut self, key: &str) -> usize {
        let before = self.cards.len();
        self.cards.retain(|c| !c.matches(key.trim()));
        before - self.cards.len()
    }

    /// Appends a COMMENT card (several if `text` is longer than a card holds).
    pub fn add_comment(&mut self, text: &str) -> &mut Header {
        self.cards.push(Card::new("COMMENT", Value::Str(text.to_string()), None));
        self
    }

    /// Appends a HISTORY card (several if `text` is longer than a card holds).
    pub fn add_history(&mut self, text: &str) -> &mut Header {
        self.cards.push(Card::new("HISTORY", Value::Str(text.to_string()), None));
        self
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<i32> for Value {
    fn from(v: i32) -> Value {
        Value::Int(v.into())
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Str(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Str(v)
    }
}

impl<'a> IntoIterator for &'a Header {
    type Item = &'a Card;
    type IntoIter = std::slice::Iter<'a, Card>;
    fn into_iter(self) -> Self::IntoIter {
        self.cards.iter()
    }
}

/// A card's bytes as text: borrowed when valid UTF-8 (the usual ASCII), else with U+FFFD.
fn card_text(raw: &[u8]) -> std::borrow::Cow<'_, str> {
    match std::str::from_utf8(raw) {
        Ok(s) => s.into(),
        Err(_) => String::from_utf8_lossy(raw),
    }
}

fn strip_amp(s: &str) -> &str {
    let s = s.trim_ascii_end();
    s.strip_suffix('&').unwrap_or(s)
}

/// Parses one 80-character card image.
// string slices: slices at found "= " and after the 9 ASCII bytes "HIERARCH "
#[allow(clippy::string_slice)]
fn parse_card(image: &str) -> Card {
    // columns 1-8 (by characters: a card with non-ASCII bytes has replacement characters)
    let split = image.char_indices().nth(8).map_or(image.len(), |(i, _)| i);
    let (kw_field, after_kw) = image.split_at(split);
    let kw_upper = kw_field.trim_ascii().to_ascii_uppercase();
    let text_after_kw = || after_kw.trim_ascii_end().to_string();
    match kw_upper.as_str() {
        // commentary cards, and a CONTINUE card that follows no string (kept as text)
        "COMMENT" | "HISTORY" | "" | "CONTINUE" => {
            return Card::new(kw_upper, Value::Str(text_after_kw()), None);
        }
        "HIERARCH" if image.as_bytes().get(8) == Some(&b' ') && image.contains('=') => {
            let (name, rest) = image[9..].split_once('=').unwrap_or(("", ""));
            let (value, comment) = parse_value_field(rest);
            let spaced_number = is_spaced_number(rest, &value);
            return Card {
                keyword: name.trim_ascii().to_ascii_uppercase(),
                field: None,
                value,
                comment,
                spaced_number,
            };
        }
        _ => {}
    }
    // standard keyword: value indicator "= " expected in columns 9-10 (tolerated from column 1)
    let (keyword, rest) = match image.find("= ") {
        Some(idx) if idx <= 8 => (image[..idx].trim_ascii().to_ascii_uppercase(), &image[idx + 2..]),
        // no value indicator: the text is the value (astropy's "invalid card")
        _ => return Card::new(kw_upper, Value::Str(text_after_kw()), None),
    };
    if let Some((field, value, comment)) = parse_rvkc(rest) {
        return Card { keyword, field: Some(field), value, comment, spaced_number: false };
    }
    let (value, comment) = parse_value_field(rest);
    let spaced_number = is_spaced_number(rest, &value);
    Card { keyword, field: None, value, comment, spaced_number }
}

/// Whether the value field `rest` (which parsed to `value`) is a number with blanks inside it.
fn is_spaced_number(rest: &str, value: &Value) -> bool {
    let field = rest.split('/').next().unwrap_or("").trim_ascii();
    matches!(value, Value::Int(_) | Value::Float(_)) && field.contains(' ')
}

/// A record-valued card's `'field.spec: number' / comment`, as astropy recognises it.
// string slices: slices at the positions of found ASCII quotes
#[allow(clippy::string_slice)]
fn parse_rvkc(rest: &str) -> Option<(String, Value, Option<String>)> {
    let r = rest.trim_ascii_start();
    let inner = r.strip_prefix('\'')?;
    let close = inner.find('\'')?;
    let (body, after) = (&inner[..close], inner[close + 1..].trim_ascii_start());
    let comment = if after.is_empty() {
        None
    } else {
        Some(after.strip_prefix('/')?.trim_ascii().to_string()).filter(|c| !c.is_empty())
    };
    let (spec, num) = body.split_once(':')?;
    if !num.starts_with(' ') || !is_field_specifier(spec) {
        return None;
    }
    let num = num.trim_ascii_start();
    if num.is_empty() || num.contains(' ') || !is_fsc_number(num) {
        return None;
    }
    Some((spec.to_string(), parse_number(num)?, comment))
}

/// `[a-zA-Z_]\w*(\.\d+)?` joined by dots.
fn is_field_specifier(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    let mut i = 0;
    let ident = |p: &str| {
        let mut c = p.chars();
        matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_')
            && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
    };
    let digits = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    if parts.is_empty() {
        return false;
    }
    while let Some(part) = parts.get(i) {
        if !ident(part) {
            return false;
        }
        i += 1;
        if parts.get(i).is_some_and(|p| digits(p)) {
            i += 1;
        }
    }
    true
}

/// A FITS-standard number: `[+-]?(\.\d+|\d+(\.\d*)?)([DE][+-]?\d+)?`.
fn is_fsc_number(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    if matches!(at(i), b'+' | b'-') {
        i += 1;
    }
    let start = i;
    while at(i).is_ascii_digit() {
        i += 1;
    }
    let int_digits = i - start;
    if at(i) == b'.' {
        i += 1;
        let f = i;
        while at(i).is_ascii_digit() {
            i += 1;
        }
        if int_digits == 0 && i == f {
            return false;
        }
    } else if int_digits == 0 {
        return false;
    }
    if matches!(at(i), b'E' | b'D') {
        i += 1;
        if matches!(at(i), b'+' | b'-') {
            i += 1;
        }
        let e = i;
        while at(i).is_ascii_digit() {
            i += 1;
        }
        if i == e {
            return false;
        }
    }
    i == b.len()
}

/// An integer if the text is one (and fits), otherwise a real number; `D` exponents accepted,
/// blanks inside the number ignored (astropy's lenient reading).
fn parse_number(s: &str) -> Option<Value> {
    // blanks inside a number are tolerated; copy only when there are some
    let t: std::borrow::Cow<'_, str> =
        if s.contains(' ') { s.chars().filter(|c| *c != ' ').collect::<String>().into() } else { s.into() };
    let b = t.as_bytes();
    let digits = match b.first()? {
        b'+' | b'-' => b.get(1..).unwrap_or_default(),
        _ => b,
    };
    if !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) {
        if let Ok(i) = t.parse::<i64>() {
            return Some(Value::Int(i));
        }
        return t.parse::<f64>().ok().map(Value::Float);
    }
    // Rust accepts "inf"/"nan" spellings that FITS does not: digits, signs, point, exponent only
    if !b.iter().all(|&c| c.is_ascii_digit() || matches!(c, b'+' | b'-' | b'.' | b'E' | b'e' | b'D' | b'd')) {
        return None;
    }
    if b.iter().any(|&c| c == b'D' || c == b'd') {
        return t.replace(['D', 'd'], "E").parse::<f64>().ok().map(Value::Float);
    }
    t.parse::<f64>().ok().map(Value::Float)
}

/// Parses the value field and comment of a card (the text after the value indicator).
// string slices: slices at the positions of ASCII quote and slash bytes
#[allow(clippy::string_slice)]
fn parse_value_field(rest: &str) -> (Value, Option<String>) {
    let s = rest.trim_ascii_start();
    let comment_of = |after: &str| -> Option<String> {
        let after = after.trim_ascii_start();
        after.strip_prefix('/').map(|c| c.trim_ascii().to_string()).filter(|c| !c.is_empty())
    };
    if let Some(body) = s.strip_prefix('\'') {
        // a string: '' is an escaped quote; the closing quote ends it
        let bytes = body.as_bytes();
        let mut out = String::new();
        let mut i = 0;
        let mut start = 0;
        while let Some(&byte) = bytes.get(i) {
            if byte == b'\'' {
                if bytes.get(i + 1) == Some(&b'\'') {
                    out.push_str(&body[start..=i]);
                    i += 2;
                    start = i;
                    continue;
                }
                out.push_str(&body[start..i]);
                let value = Value::Str(out.trim_ascii_end().to_string());
                return (value, comment_of(&body[i + 1..]));
            }
            i += 1;
        }
        // no closing quote: keep the text as it stands
        return (Value::Str(s.trim_ascii_end().to_string()), None);
    }
    let (field, comment) = match s.find('/') {
        Some(idx) => (s[..idx].trim_ascii(), comment_of(&s[idx..])),
        None => (s.trim_ascii(), None),
    };
    if field.is_empty() {
        return (Value::Undefined, comment);
    }
    if field == "T" || field == "F" {
        return (Value::Bool(field == "T"), comment);
    }
    if let Some(inner) = field.strip_prefix('(').and_then(|f| f.strip_suffix(')'))
        && let Some((re, im)) = inner.split_once(',')
        && let (Some(re), Some(im)) = (parse_number(re.trim_ascii()), parse_number(im.trim_ascii()))
        && let (Some(re), Some(im)) = (re.as_f64(), im.as_f64())
    {
        return (Value::Complex(re, im), comment);
    }
    if let Some(v) = parse_number(field) {
        return (v, comment);
    }
    // unparsable: keep the raw text (astropy refuses such a card until it is fixed)
    (Value::Str(field.to_string()), comment)
}

/// Keywords that describe the data's structure: the writer writes them, a user header never does.
/// (`n` stands for a trailing index.)
const RESERVED: &[&str] = &[
    "SIMPLE", "XTENSION", "BITPIX", "NAXIS", "NAXISn", "EXTEND", "PCOUNT", "GCOUNT", "GROUPS", "TFIELDS", "TFORMn",
    "TBCOLn", "TTYPEn", "TUNITn", "TNULLn", "TSCALn", "TZEROn", "TDIMn", "THEAP", "BSCALE", "BZERO", "BLANK", "END",
    "CHECKSUM", "DATASUM", "ZIMAGE", "ZSIMPLE", "ZTENSION", "ZEXTEND", "ZBITPIX", "ZNAXIS", "ZNAXISn", "ZTILEn",
    "ZCMPTYPE", "ZNAMEn", "ZVALn", "ZQUANTIZ", "ZDITHER0", "ZPCOUNT", "ZGCOUNT", "ZHECKSUM", "ZDATASUM", "ZBLANK",
    "ZSCALE", "ZZERO", "ZMASKCMP", "ZTHEAP", "ZFORMn", "ZCTYPn",
];

/// Whether `keyword` is one the writer owns (the list above).
pub fn is_reserved(keyword: &str) -> bool {
    let k = keyword.trim().to_ascii_uppercase();
    let stem = k.trim_end_matches(|c: char| c.is_ascii_digit());
    RESERVED.iter().any(|r| match r.strip_suffix('n') {
        Some(base) => stem == base && stem.len() < k.len(),
        None => *r == k,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_with_blanks_inside_read_as_astropy_reads_them_and_say_so() {
        let mut raw = String::new();
        for card in ["ZTILE2  =               0   16 / spaced", "ZTILE1  =                   16", "END"] {
            raw.push_str(&format!("{card:<80}"));
        }
        let header = Header::parse(raw.as_bytes()).expect("parse");
        let spaced = header.card("ZTILE2").expect("ZTILE2");
        assert_eq!(spaced.value(), &Value::Int(16));
        assert!(spaced.is_spaced_number());
        assert!(!header.card("ZTILE1").expect("ZTILE1").is_spaced_number());
    }

    #[test]
    fn reserved_keywords() {
        for k in ["NAXIS", "NAXIS2", "BITPIX", "TFORM12", "ZTILE1", "CHECKSUM", "bzero", "END"] {
            assert!(is_reserved(k), "{k}");
        }
        for k in ["EXPTIME", "NAXISFOO", "OBJECT", "TFORMAT", "EXTNAME", "TDISP1"] {
            assert!(!is_reserved(k), "{k}");
        }
    }

    fn header(cards: &[&str]) -> Header {
        let raw: String = cards.iter().map(|c| format!("{c:<80}")).collect();
        Header::parse(raw.as_bytes()).expect("parses")
    }

    /// Fuzz finding (header target): looking up a record-valued card by a key whose bytes split a
    /// character where the keyword ends panicked (the key was sliced as a `str`).
    #[test]
    fn record_valued_lookups_take_any_key() {
        let h = header(&["SIMPLE  =                    T", "DP1     = 'AXIS.1: 1'", "END"]);
        assert_eq!(h.get_f64("DP1.AXIS.1"), Some(1.0));
        assert_eq!(h.get_f64("dp1.AXIS.1"), Some(1.0));
        // 10 bytes, as "DP1.AXIS.1", with byte 3 inside the dash
        for key in ["D\u{2013}AXIS.1", "DP1\u{2013}XIS", "\u{2013}\u{2013}\u{2013}.1", "DP1.AXIS.\u{e9}"] {
            assert_eq!(h.get(key), None, "{key}");
        }
    }

    #[test]
    fn typed_values_and_comments() {
        let h = header(&[
            "SIMPLE  =                    T / conforms",
            "NAXIS   =                    2",
            "EXPTIME =               1.5D+2 / seconds",
            "ZVAL    = (1.0, -2.5)",
            "OBJECT  = 'O''Neil  '           / name",
            "UNDEF   =                      / nothing",
            "LEADING = '  x'",
            "BIG     = 123456789012345678901234",
            "END",
        ]);
        assert_eq!(h.get("SIMPLE"), Some(&Value::Bool(true)));
        assert_eq!(h.card("SIMPLE").and_then(Card::comment), Some("conforms"));
        assert_eq!(h.get("NAXIS"), Some(&Value::Int(2)));
        assert_eq!(h.get("EXPTIME"), Some(&Value::Float(150.0)));
        assert_eq!(h.get("ZVAL"), Some(&Value::Complex(1.0, -2.5)));
        assert_eq!(h.get_str("OBJECT"), Some("O'Neil"));
        assert_eq!(h.get("UNDEF"), Some(&Value::Undefined));
        assert_eq!(h.get_str("LEADING"), Some("  x"));
        assert_eq!(h.get_f64("BIG"), Some(1.2345678901234568e23));
        assert_eq!(h.len(), 8);
    }

    #[test]
    fn continue_hierarch_commentary_rvkc() {
        let h = header(&[
            "LONG    = 'abc&'               / first",
            "CONTINUE  'def&'               / second",
            "CONTINUE  'ghi'",
            "HIERARCH ESO DET CHIP NAME = 'ccd1' / chip",
            "COMMENT this is a comment",
            "HISTORY  step one",
            "DP1     = 'AXIS.1: 1'",
            "DP1     = 'NAXES: 2.5'",
            "NOVALUE  free text here",
        ]);
        assert_eq!(h.get_str("LONG"), Some("abcdefghi"));
        assert_eq!(h.card("LONG").and_then(Card::comment), Some("first second"));
        assert_eq!(h.get_str("ESO DET CHIP NAME"), Some("ccd1"));
        assert_eq!(h.get_str("HIERARCH ESO DET CHIP NAME"), Some("ccd1"));
        let c = h.card("COMMENT").expect("comment card");
        assert!(c.is_commentary());
        assert_eq!(c.value().as_str(), Some("this is a comment"));
        assert_eq!(h.get_str("HISTORY"), Some(" step one"));
        assert_eq!(h.get("DP1.AXIS.1"), Some(&Value::Int(1)));
        assert_eq!(h.get("DP1.NAXES"), Some(&Value::Float(2.5)));
        assert_eq!(h.card("DP1.NAXES").map(Card::keyword).as_deref(), Some("DP1.NAXES"));
        assert_eq!(h.get_str("NOVALUE"), Some(" free text here")); // columns 9-80, as astropy keeps them
        assert_eq!(h.len(), 7);
    }

    #[test]
    fn partial_card_and_card_limit() {
        assert!(Header::parse(&[b' '; 100]).is_err());
        let raw = format!("{:<80}{:<80}{:<80}", "A       = 1", "B       = 2", "END");
        assert_eq!(Header::parse(raw.as_bytes()).map(|h| h.len()).ok(), Some(2));
        let err = Header::parse_limited(raw.as_bytes(), 1).expect_err("over the limit");
        assert_eq!(err.kind(), crate::ErrorKind::Limits);
    }
}
