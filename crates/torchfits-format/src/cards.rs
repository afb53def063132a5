//! Formatting header cards: fixed-format values, long strings (CONTINUE), HIERARCH keywords,
//! commentary cards.

// Indexing: `take` is below the text's length by the loop's condition.
#![allow(clippy::indexing_slicing)]

use crate::error::{Error, Result};
use crate::header::{CARD_LEN, Card, Value};

/// One 80-byte card image.
pub type Record = [u8; CARD_LEN];

/// Whether `keyword` can be written as a standard 8-character keyword.
fn is_standard(keyword: &str) -> bool {
    !keyword.is_empty()
        && keyword.len() <= 8
        && keyword.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

fn record(text: &str) -> Record {
    let mut r = [b' '; CARD_LEN];
    for (d, s) in r.iter_mut().zip(text.bytes()) {
        *d = s;
    }
    r
}

/// A real number as FITS writes it: the shortest text that reads back as the same `f64`, with a
/// decimal point or an `E` exponent.
pub fn format_real(v: f64) -> Result<String> {
    if !v.is_finite() {
        return Err(Error::parameter(format!("{v} cannot be written in a FITS header")));
    }
    let s = format!("{v:?}").to_ascii_uppercase();
    Ok(if s.contains('.') || s.contains('E') { s } else { format!("{s}.0") })
}

fn quote(s: &str) -> String {
    let escaped = s.replace('\'', "''");
    // fixed format: at least 8 characters between the quotes
    format!("'{escaped:<8}'")
}

/// The cards of one header card (several for a long string or long commentary text).
pub fn format_card(card: &Card) -> Result<Vec<Record>> {
    let keyword = card.keyword();
    let value = card.value();
    let comment = card.comment().unwrap_or("");
    for text in [keyword.as_str(), comment] {
        if let Some(c) = text.chars().find(|c| !(' '..='~').contains(c)) {
            return Err(Error::parameter(format!("{keyword}: {c:?} is not printable ASCII, which a header must be")));
        }
    }
    if let Value::Str(s) = value
        && let Some(c) = s.chars().find(|c| !(' '..='~').contains(c))
    {
        return Err(Error::parameter(format!("{keyword}: {c:?} is not printable ASCII, which a header must be")));
    }
    if card.is_commentary() {
        // COMMENT, HISTORY, blank: the text in columns 9-80, split over as many cards as it needs
        let text = value.as_str().unwrap_or("");
        let chars: Vec<char> = text.chars().collect();
        let mut out = Vec::new();
        for piece in chars.chunks(72) {
            out.push(record(&format!("{keyword:<8}{}", piece.iter().collect::<String>())));
        }
        if out.is_empty() {
            out.push(record(&format!("{keyword:<8}")));
        }
        return Ok(out);
    }
    if let Some(field) = card.field_specifier() {
        // a record-valued card (DP1 = 'AXIS.1: 1'): the base keyword, the field in the string
        let v = match value {
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format_real(*f)?,
            other => return Err(Error::parameter(format!("{keyword}: a record-valued card holds {other:?}"))),
        };
        let text = format!("{:<8}= '{field}: {v}'", card.base_keyword());
        return Ok(vec![record(&text)]);
    }
    let hierarch = !is_standard(&keyword);
    let lead = if hierarch { format!("HIERARCH {keyword} = ") } else { format!("{keyword:<8}= ") };
    if lead.len() > 70 {
        return Err(Error::parameter(format!("the keyword {keyword:?} is too long for a card")));
    }
    let fixed = |v: String| if hierarch { v } else { format!("{v:>20}") };
    let text = match value {
        Value::Bool(b) => fixed(if *b { "T" } else { "F" }.to_string()),
        Value::Int(i) => fixed(i.to_string()),
        Value::Float(f) => fixed(format_real(*f)?),
        Value::Complex(re, im) => fixed(format!("({}, {})", format_real(*re)?, format_real(*im)?)),
        Value::Undefined => String::new(),
        Value::Str(s) => {
            let whole = quote(s);
            if lead.len() + whole.len() <= CARD_LEN {
                // comments of short strings line up with those of numbers, as astropy and
                // cfitsio write them (astropy verifies checksums on its own card images)
                if hierarch { whole } else { format!("{whole:<20}") }
            } else {
                return long_string(&lead, s, comment);
            }
        }
    };
    let mut line = format!("{lead}{text}");
    if !comment.is_empty() && line.len() + 3 < CARD_LEN {
        line.push_str(" / ");
        line.push_str(comment);
    }
    if line.len() > CARD_LEN {
        // a comment is cut to the card, as astropy does; the value always fits
        line.truncate(CARD_LEN);
    }
    Ok(vec![record(&line)])
}

/// A string too long for one card: the CONTINUE convention (each piece but the last ends in `&`).
fn long_string(lead: &str, s: &str, comment: &str) -> Result<Vec<Record>> {
    // pieces must not split a doubled quote: cut the unescaped text, escaping each piece
    let mut out = Vec::new();
    let mut rest: Vec<char> = s.chars().collect();
    let mut first = true;
    while !rest.is_empty() || first {
        let prefix = if first { lead.to_string() } else { "CONTINUE  ".to_string() };
        // room for the quotes and the '&'
        let room = CARD_LEN - prefix.len() - 3;
        let mut take = 0usize;
        let mut used = 0usize;
        while take < rest.len() {
            let w = if rest[take] == '\'' { 2 } else { 1 };
            if used + w > room {
                break;
            }
            used += w;
            take += 1;
        }
        let piece: String = rest.drain(..take).collect();
        let last = rest.is_empty();
        let body = piece.replace('\'', "''");
        let line = if last {
            let mut line = format!("{prefix}'{body}'");
            if !comment.is_empty() && line.len() + 3 < CARD_LEN {
                line.push_str(" / ");
                line.push_str(comment);
                line.truncate(CARD_LEN);
            }
            line
        } else {
            format!("{prefix}'{body}&'")
        };
        out.push(record(&line));
        first = false;
        if last {
            break;
        }
    }
    Ok(out)
}

/// A card the writer writes itself (structural keywords), in fixed format.
pub fn structural(keyword: &str, value: Value, comment: &str) -> Record {
    let card = Card::new(keyword, value, (!comment.is_empty()).then(|| comment.to_string()));
    // structural values are integers, booleans and short strings: always one valid card
    format_card(&card).ok().and_then(|mut v| v.pop()).unwrap_or_else(|| record(keyword))
}

/// A fixed-format card whose value is `text` as it is (a number that no [`Value`] holds).
pub fn raw_card(keyword: &str, text: &str, comment: &str) -> Record {
    let mut line = format!("{keyword:<8}= {text:>20}");
    if !comment.is_empty() {
        line.push_str(" / ");
        line.push_str(comment);
    }
    record(&line)
}

/// The END card.
pub fn end() -> Record {
    record("END")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::header::Header;

    fn text(records: &[Record]) -> String {
        records.iter().map(|r| String::from_utf8_lossy(r).into_owned()).collect()
    }

    #[test]
    fn cards_read_back_as_written() {
        let long = "a long string with 'quotes' that goes on and on, well past the seventy characters one card holds, twice over".to_string();
        let cards = vec![
            Card::new("EXPTIME", Value::Float(1.5e-7), Some("seconds".into())),
            Card::new("NCOMBINE", Value::Int(-42), None),
            Card::new("FLAG", Value::Bool(true), None),
            Card::new("OBJECT", Value::Str("M31 'core'".into()), Some("target".into())),
            Card::new("LONGSTR", Value::Str(long.clone()), Some("a comment".into())),
            Card::new("ESO DET CHIP NAME", Value::Str("CCD-1".into()), None),
            Card::new("lower", Value::Int(1), None),
            Card::new("CPLX", Value::Complex(1.0, -2.5), None),
            Card::new("UNDEF", Value::Undefined, None),
            Card::new("HISTORY", Value::Str("x".repeat(100)), None),
        ];
        let mut records = Vec::new();
        for c in &cards {
            records.extend(format_card(c).expect("formats"));
        }
        records.push(end());
        let header = Header::parse(text(&records).as_bytes()).expect("parses");
        assert_eq!(header.get_f64("EXPTIME"), Some(1.5e-7));
        assert_eq!(header.card("EXPTIME").and_then(|c| c.comment()), Some("seconds"));
        assert_eq!(header.get_i64("NCOMBINE"), Some(-42));
        assert_eq!(header.get_bool("FLAG"), Some(true));
        assert_eq!(header.get_str("OBJECT"), Some("M31 'core'"));
        assert_eq!(header.get_str("LONGSTR"), Some(long.as_str()));
        assert_eq!(header.get_str("ESO DET CHIP NAME"), Some("CCD-1"));
        assert_eq!(header.get_i64("lower"), Some(1));
        assert_eq!(header.get("CPLX"), Some(&Value::Complex(1.0, -2.5)));
        assert_eq!(header.get("UNDEF"), Some(&Value::Undefined));
        let history: String =
            header.iter().filter(|c| c.keyword() == "HISTORY").filter_map(|c| c.value().as_str()).collect();
        assert_eq!(history, "x".repeat(100));
        // fixed format: values end in column 30
        assert_eq!(&records[1][..30], b"NCOMBINE=                  -42");
    }

    #[test]
    fn bad_values_are_errors() {
        assert!(format_card(&Card::new("X", Value::Float(f64::NAN), None)).is_err());
        assert!(format_card(&Card::new("X", Value::Str("é".into()), None)).is_err());
        assert!(format_card(&Card::new("K".repeat(80), Value::Int(1), None)).is_err());
    }
}
