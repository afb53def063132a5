//! The schema of a binary table: each column's FITS format (TFORM), its place in the row, and the
//! type a read returns.

use crate::error::{Error, Result};
use crate::header::Header;

/// The storage type of a column's elements (the letter of TFORM).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FitsType {
    /// `L`: logical, one byte `T`, `F` or 0 (undefined).
    Logical,
    /// `X`: bits, packed 8 to a byte.
    Bit,
    /// `B`: unsigned byte.
    Byte,
    /// `I`: 16-bit integer.
    Short,
    /// `J`: 32-bit integer.
    Int,
    /// `K`: 64-bit integer.
    Long,
    /// `A`: character.
    Char,
    /// `E`: 32-bit float.
    Float,
    /// `D`: 64-bit float.
    Double,
    /// `C`: complex of two 32-bit floats.
    Complex,
    /// `M`: complex of two 64-bit floats.
    DoubleComplex,
}

impl FitsType {
    fn from_code(c: u8) -> Option<FitsType> {
        Some(match c {
            b'L' => FitsType::Logical,
            b'X' => FitsType::Bit,
            b'B' => FitsType::Byte,
            b'I' => FitsType::Short,
            b'J' => FitsType::Int,
            b'K' => FitsType::Long,
            b'A' => FitsType::Char,
            b'E' => FitsType::Float,
            b'D' => FitsType::Double,
            b'C' => FitsType::Complex,
            b'M' => FitsType::DoubleComplex,
            _ => return None,
        })
    }

    /// Bytes per element (bits count as 1/8: see [`ColumnSchema::width`]).
    pub fn size(self) -> usize {
        match self {
            FitsType::Logical | FitsType::Bit | FitsType::Byte | FitsType::Char => 1,
            FitsType::Short => 2,
            FitsType::Int | FitsType::Float => 4,
            FitsType::Long | FitsType::Double | FitsType::Complex => 8,
            FitsType::DoubleComplex => 16,
        }
    }
}

/// The type of a column's values as a read returns them, by astropy's rules: TZERO = 2^15, 2^31,
/// 2^63 on `I`, `J`, `K` (with TSCAL = 1) give unsigned integers; any other TSCAL/TZERO on a
/// numeric column gives f64; logicals are bools; characters are byte strings.
///
/// Exhaustive: the FITS standard fixes the binary-table types, and code that maps each to a
/// buffer type should be told by the compiler when a variant is added.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// From `L`.
    Bool,
    /// From `X`: one bool per bit.
    Bits,
    /// From `B`.
    U8,
    /// From `I`.
    I16,
    /// From `I` with TZERO = 32768.
    U16,
    /// From `J`.
    I32,
    /// From `J` with TZERO = 2^31.
    U32,
    /// From `K`.
    I64,
    /// From `K` with TZERO = 2^63.
    U64,
    /// From `E`.
    F32,
    /// From `D`, or any scaled numeric column.
    F64,
    /// From `C`: (re, im) pairs of f32.
    ComplexF32,
    /// From `M`, or a scaled `C`: (re, im) pairs of f64.
    ComplexF64,
    /// From `A`: one string of `repeat` bytes per row, right-trimmed.
    Str,
}

impl ColumnType {
    /// Bytes per value in memory (a string's byte; a bit column's values are bools).
    pub fn value_size(self) -> usize {
        match self {
            ColumnType::Bool | ColumnType::Bits | ColumnType::U8 | ColumnType::Str => 1,
            ColumnType::I16 | ColumnType::U16 => 2,
            ColumnType::I32 | ColumnType::U32 | ColumnType::F32 => 4,
            ColumnType::I64 | ColumnType::U64 | ColumnType::F64 | ColumnType::ComplexF32 => 8,
            ColumnType::ComplexF64 => 16,
        }
    }
}

/// One column of a binary table.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ColumnSchema {
    /// 0-based position.
    pub index: usize,
    /// TTYPEn (trimmed); `colN` (1-based) when absent, as astropy names it.
    pub name: String,
    /// TFORMn as written.
    pub tform: String,
    /// The storage type.
    pub fits_type: FitsType,
    /// Elements per row (the repeat count; for `A`, bytes per string; for `X`, bits).
    pub repeat: usize,
    /// TDIMn as a shape in C order, when present.
    pub dims: Option<Vec<usize>>,
    /// TUNITn.
    pub unit: Option<String>,
    /// TSCALn (1 when absent).
    pub scale: f64,
    /// TZEROn (0 when absent).
    pub zero: f64,
    /// TNULLn, for integer columns.
    pub null: Option<i64>,
    /// The type a read returns.
    pub column_type: ColumnType,
    /// Byte offset of the column in a row.
    pub offset: usize,
    /// Bytes the column takes in a row.
    pub width: usize,
    /// For a variable-length array column, the descriptor's kind; its elements, in the heap, are
    /// of [`ColumnSchema::fits_type`].
    pub variable: Option<VarArray>,
    /// For a column of an ASCII table: its values are text to parse, and this is its TNULL string
    /// (trimmed; empty when absent). Blank fields and this string are undefined.
    pub ascii_null: Option<String>,
}

/// The descriptor of a variable-length array column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VarArray {
    /// `P`: 32-bit count and heap offset.
    P,
    /// `Q`: 64-bit count and heap offset.
    Q,
}

/// The columns of a binary table, and its geometry.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TableSchema {
    /// The columns in file order.
    pub columns: Vec<ColumnSchema>,
    /// Bytes per row (NAXIS1).
    pub row_bytes: usize,
    /// Number of rows (NAXIS2).
    pub nrows: u64,
    /// Byte offset of the heap from the start of the data (THEAP; by default right after the rows).
    pub heap_offset: u64,
    /// Bytes from the start of the data to the end of the heap (NAXIS1 x NAXIS2 + PCOUNT): every
    /// variable-length array must end within it.
    pub data_len: u64,
}

impl TableSchema {
    /// Reads the schema of a binary table from its header. Fails on a malformed TFORM, on columns
    /// that do not add up to NAXIS1, and on variable-length arrays (`P`, `Q`), which this version
    /// does not read yet.
    pub fn from_header(header: &Header) -> Result<TableSchema> {
        let get_count = |k: &str| -> Result<u64> {
            header
                .get_i64(k)
                .and_then(|v| u64::try_from(v).ok())
                .ok_or_else(|| Error::decoding(format!("{k} missing or negative")))
        };
        let row_bytes = usize::try_from(get_count("NAXIS1")?).map_err(|_| Error::decoding("NAXIS1 too large"))?;
        let nrows = get_count("NAXIS2")?;
        let tfields = get_count("TFIELDS")?;
        if tfields > 999 {
            return Err(Error::decoding(format!("TFIELDS = {tfields} is over 999")));
        }
        let mut columns = Vec::with_capacity(tfields as usize);
        if header.get_str("XTENSION").map(str::trim_end) == Some("TABLE") {
            for n in 1..=tfields as usize {
                columns.push(ColumnSchema::ascii_from_header(header, n, row_bytes)?);
            }
            return Ok(TableSchema { columns, row_bytes, nrows, heap_offset: 0, data_len: 0 });
        }
        let mut offset = 0usize;
        for n in 1..=tfields as usize {
            let column = ColumnSchema::from_header(header, n, offset)?;
            offset = offset.checked_add(column.width).ok_or_else(|| Error::decoding("column widths overflow"))?;
            columns.push(column);
        }
        if offset != row_bytes {
            return Err(Error::decoding(format!("the columns take {offset} bytes per row, NAXIS1 says {row_bytes}")));
        }
        let rows_len =
            (row_bytes as u64).checked_mul(nrows).ok_or_else(|| Error::decoding("NAXIS1 x NAXIS2 overflows"))?;
        let pcount = header.get_i64("PCOUNT").unwrap_or(0);
        let pcount = u64::try_from(pcount).map_err(|_| Error::decoding(format!("PCOUNT = {pcount} is negative")))?;
        let data_len = rows_len.checked_add(pcount).ok_or_else(|| Error::decoding("PCOUNT overflows"))?;
        let heap_offset = match header.get_i64("THEAP") {
            Some(t) => u64::try_from(t).ok().filter(|&t| t >= rows_len && t <= data_len).ok_or_else(|| {
                Error::decoding(format!(
                    "THEAP = {t} is outside the data (rows end at {rows_len}, the heap at {data_len})"
                ))
            })?,
            None => rows_len,
        };
        Ok(TableSchema { columns, row_bytes, nrows, heap_offset, data_len })
    }

    /// The column named `name` (case-insensitive, as astropy matches names).
    pub fn column(&self, name: &str) -> Option<&ColumnSchema> {
        let name = name.trim();
        self.columns
            .iter()
            .find(|c| c.name == name)
            .or_else(|| self.columns.iter().find(|c| c.name.eq_ignore_ascii_case(name)))
    }
}

/// `rT...`: the repeat count (default 1) and the rest; None for a repeat count too large for
/// this machine.
// string slices: split after leading ASCII digits
#[allow(clippy::string_slice)]
fn split_tform(tform: &str) -> Option<(Option<usize>, &str)> {
    let digits = tform.bytes().take_while(u8::is_ascii_digit).count();
    let repeat = if digits == 0 { None } else { Some(tform[..digits].parse().ok()?) };
    Some((repeat, &tform[digits..]))
}

/// `(a,b,c)` in FITS order as a C-order shape.
fn parse_tdim(text: &str) -> Option<Vec<usize>> {
    let inner = text.trim().strip_prefix('(')?.strip_suffix(')')?;
    let mut dims: Vec<usize> = inner.split(',').map(|d| d.trim().parse().ok()).collect::<Option<_>>()?;
    dims.reverse();
    Some(dims)
}

/// TFORMn as written and upper-cased, trimmed.
fn tform_of(header: &Header, n: usize) -> Result<(&str, String)> {
    let raw = header
        .get_str(&format!("TFORM{n}"))
        .ok_or_else(|| Error::decoding(format!("TFORM{n} missing or not a string")))?;
    Ok((raw, raw.trim().to_ascii_uppercase()))
}

impl ColumnSchema {
    /// A column of an ASCII table: TFORMn `Aw`, `Iw`, `Fw.d`, `Ew.d` or `Dw.d` at TBCOLn.
    fn ascii_from_header(header: &Header, n: usize, row_bytes: usize) -> Result<ColumnSchema> {
        let key = |k: &str| format!("{k}{n}");
        let (tform_raw, tform) = tform_of(header, n)?;
        let bad = || Error::decoding(format!("TFORM{n} = {tform_raw:?} is not an ASCII table format"));
        let code = *tform.as_bytes().first().ok_or_else(bad)?;
        let width: usize = tform
            .get(1..)
            .and_then(|t| t.split('.').next())
            .and_then(|w| w.parse().ok())
            .filter(|&w| w > 0)
            .ok_or_else(bad)?;
        let tbcol = header
            .get_i64(&key("TBCOL"))
            .and_then(|t| usize::try_from(t).ok())
            .filter(|&t| t >= 1)
            .ok_or_else(|| Error::decoding(format!("TBCOL{n} missing or not a column number")))?;
        let offset = tbcol - 1;
        if offset + width > row_bytes {
            return Err(Error::decoding(format!(
                "column {n} (TBCOL{n} = {tbcol}, width {width}) runs past the row's {row_bytes} characters"
            )));
        }
        let scale = header.number_or(&key("TSCAL"), 1.0)?;
        let zero = header.number_or(&key("TZERO"), 0.0)?;
        let scaled = scale != 1.0 || zero != 0.0;
        let (fits_type, column_type) = match code {
            b'A' => (FitsType::Char, ColumnType::Str),
            b'I' if scaled => (FitsType::Long, ColumnType::F64),
            b'I' if width <= 4 => (FitsType::Short, ColumnType::I16),
            b'I' if width <= 9 => (FitsType::Int, ColumnType::I32),
            b'I' => (FitsType::Long, ColumnType::I64),
            b'F' | b'E' | b'D' => (FitsType::Double, ColumnType::F64),
            _ => return Err(bad()),
        };
        // TNULLn of an ASCII table is a string (written as a number by some writers)
        let null = header
            .card(&key("TNULL"))
            .map(|c| match c.value() {
                crate::header::Value::Str(s) => s.trim().to_string(),
                crate::header::Value::Int(i) => i.to_string(),
                crate::header::Value::Float(f) => f.to_string(),
                _ => String::new(),
            })
            .unwrap_or_default();
        Ok(ColumnSchema {
            index: n - 1,
            name: header
                .get_str(&key("TTYPE"))
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| format!("col{n}")),
            tform: tform_raw.trim().to_string(),
            fits_type,
            repeat: 1,
            dims: None,
            unit: header.get_str(&key("TUNIT")).map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
            scale,
            zero,
            null: None,
            column_type,
            offset,
            width,
            variable: None,
            ascii_null: Some(null),
        })
    }

    // string slices: sliced after ASCII type codes (a non-ASCII code is refused first)
    #[allow(clippy::string_slice)]
    fn from_header(header: &Header, n: usize, offset: usize) -> Result<ColumnSchema> {
        let key = |k: &str| format!("{k}{n}");
        let (tform_raw, tform) = tform_of(header, n)?;
        let bad = || Error::decoding(format!("TFORM{n} = {tform_raw:?} is not a binary table format"));
        let (repeat, rest) = split_tform(&tform).ok_or_else(bad)?;
        let code = *rest.as_bytes().first().ok_or_else(bad)?;
        // `rPt(max)` / `rQt(max)`: a descriptor (count, heap offset) of 32- or 64-bit integers
        let variable = match code {
            b'P' => Some(VarArray::P),
            b'Q' => Some(VarArray::Q),
            _ => None,
        };
        let (fits_type, rest) = match variable {
            Some(_) => (FitsType::from_code(*rest.as_bytes().get(1).ok_or_else(bad)?).ok_or_else(bad)?, &rest[2..]),
            None => (FitsType::from_code(code).ok_or_else(bad)?, &rest[1..]),
        };
        // `rA` may carry a substring width after it (`20A5`), a descriptor its maximum length
        // (`PE(100)`); any other format must end here
        let tail_ok = rest.is_empty()
            || fits_type == FitsType::Char
            || (variable.is_some() && rest.starts_with('(') && rest.ends_with(')'));
        if !tail_ok {
            return Err(bad());
        }
        let repeat = repeat.unwrap_or(1);
        if variable.is_some() && repeat > 1 {
            return Err(Error::decoding(format!(
                "TFORM{n} = {tform_raw:?}: a descriptor's repeat count must be 0 or 1"
            )));
        }
        let width = match (variable, fits_type) {
            (Some(VarArray::P), _) => repeat * 8,
            (Some(VarArray::Q), _) => repeat * 16,
            (None, FitsType::Bit) => repeat.div_ceil(8),
            (None, t) => repeat.checked_mul(t.size()).ok_or_else(bad)?,
        };
        let name = header
            .get_str(&key("TTYPE"))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| format!("col{n}"));
        let scale = header.number_or(&key("TSCAL"), 1.0)?;
        let zero = header.number_or(&key("TZERO"), 0.0)?;
        let integer = matches!(fits_type, FitsType::Byte | FitsType::Short | FitsType::Int | FitsType::Long);
        let null = match header.get(&key("TNULL")) {
            Some(v) if integer => {
                Some(v.as_i64().ok_or_else(|| Error::decoding(format!("TNULL{n} = {v:?} is not an integer")))?)
            }
            _ => None,
        };
        let scaled = scale != 1.0 || zero != 0.0;
        let column_type = match fits_type {
            FitsType::Logical => ColumnType::Bool,
            FitsType::Bit => ColumnType::Bits,
            FitsType::Char => ColumnType::Str,
            FitsType::Short if scale == 1.0 && zero == 32768.0 => ColumnType::U16,
            FitsType::Int if scale == 1.0 && zero == 2147483648.0 => ColumnType::U32,
            FitsType::Long if scale == 1.0 && zero == 9223372036854775808.0 => ColumnType::U64,
            FitsType::Complex | FitsType::DoubleComplex if scaled => ColumnType::ComplexF64,
            _ if scaled => ColumnType::F64,
            FitsType::Byte => ColumnType::U8,
            FitsType::Short => ColumnType::I16,
            FitsType::Int => ColumnType::I32,
            FitsType::Long => ColumnType::I64,
            FitsType::Float => ColumnType::F32,
            FitsType::Double => ColumnType::F64,
            FitsType::Complex => ColumnType::ComplexF32,
            FitsType::DoubleComplex => ColumnType::ComplexF64,
        };
        // TDIM applies when it describes exactly the repeat count (astropy ignores it otherwise)
        let dims = header
            .get_str(&key("TDIM"))
            .and_then(parse_tdim)
            .filter(|d| d.iter().product::<usize>() == repeat && fits_type != FitsType::Char && variable.is_none());
        Ok(ColumnSchema {
            index: n - 1,
            name,
            tform: tform_raw.trim().to_string(),
            fits_type,
            repeat,
            dims,
            unit: header.get_str(&key("TUNIT")).map(|s| s.trim().to_string()).filter(|s| !s.is_empty()),
            scale,
            zero,
            null,
            column_type,
            offset,
            width,
            variable,
            ascii_null: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(cards: &[&str]) -> Header {
        let raw: String = cards.iter().map(|c| format!("{c:<80}")).collect();
        Header::parse(raw.as_bytes()).expect("parses")
    }

    #[test]
    fn formats_widths_offsets_and_types() {
        let h = header(&[
            "XTENSION= 'BINTABLE'",
            "NAXIS1  =                   53",
            "NAXIS2  =                   10",
            "TFIELDS =                    8",
            "TTYPE1  = 'id      '",
            "TFORM1  = 'K       '",
            "TFORM2  = '3E      '",
            "TTYPE2  = 'flux'",
            "TDIM2   = '(3)     '",
            "TFORM3  = '11X     '",
            "TFORM4  = '8A      '",
            "TFORM5  = 'I       '",
            "TZERO5  =                32768",
            "TFORM6  = 'J       '",
            "TSCAL6  =                  0.5",
            "TNULL6  =                   -1",
            "TFORM7  = '2C      '",
            "TFORM8  = 'L       '",
        ]);
        let s = TableSchema::from_header(&h).expect("schema");
        let summary: Vec<_> =
            s.columns.iter().map(|c| (c.name.as_str(), c.repeat, c.offset, c.width, c.column_type)).collect();
        assert_eq!(
            summary,
            vec![
                ("id", 1, 0, 8, ColumnType::I64),
                ("flux", 3, 8, 12, ColumnType::F32),
                ("col3", 11, 20, 2, ColumnType::Bits),
                ("col4", 8, 22, 8, ColumnType::Str),
                ("col5", 1, 30, 2, ColumnType::U16),
                ("col6", 1, 32, 4, ColumnType::F64),
                ("col7", 2, 36, 16, ColumnType::ComplexF32),
                ("col8", 1, 52, 1, ColumnType::Bool),
            ]
        );
        assert_eq!(s.columns[1].dims, Some(vec![3]));
        assert_eq!(s.columns[5].null, Some(-1));
        assert_eq!(s.column("ID").map(|c| c.index), Some(0));
    }

    #[test]
    fn malformed_tables_are_errors() {
        let base = [
            "XTENSION= 'BINTABLE'",
            "NAXIS1  =                    4",
            "NAXIS2  =                    1",
            "TFIELDS =                    1",
        ];
        for (tform, what) in [
            ("'4Z'", "not a binary table format"),
            ("'2E'", "NAXIS1 says 4"),
            ("'2PE(5)'", "0 or 1"),
            ("'1PZ'", "not a binary"),
        ] {
            let mut cards: Vec<String> = base.iter().map(|s| s.to_string()).collect();
            cards.push(format!("TFORM1  = {tform}"));
            let refs: Vec<&str> = cards.iter().map(String::as_str).collect();
            let err = TableSchema::from_header(&header(&refs)).expect_err(tform);
            assert!(err.to_string().contains(what), "{tform}: {err}");
        }
    }
}
