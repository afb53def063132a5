//! What a table read gives: a batch of rows ([`TableBatch`]), its columns ([`ColumnData`]) and
//! their values ([`ColumnValues`]), shared by the reader, its filters, its pool and Arrow.

use std::ops::Range;

use torchfits_format::error::{Error, Result};

/// A column's values in one batch, row after row (each row holds
/// [`ColumnData::per_row`] elements).
#[derive(Debug, Clone, PartialEq)]
#[allow(missing_docs)]
#[non_exhaustive]
pub enum ColumnValues {
    Bool(Vec<bool>),
    U8(Vec<u8>),
    I16(Vec<i16>),
    U16(Vec<u16>),
    I32(Vec<i32>),
    U32(Vec<u32>),
    I64(Vec<i64>),
    U64(Vec<u64>),
    F32(Vec<f32>),
    F64(Vec<f64>),
    /// (re, im) pairs.
    ComplexF32(Vec<[f32; 2]>),
    /// (re, im) pairs.
    ComplexF64(Vec<[f64; 2]>),
    /// One byte string per row, cut at the first NUL, trailing blanks removed, laid out as Arrow
    /// lays strings out: row `i` is `bytes[offsets[i]..offsets[i + 1]]`. Not necessarily UTF-8:
    /// FITS strings are ASCII, but files in the wild hold other bytes, kept as they are.
    Str {
        /// `num_rows + 1` offsets into `bytes`, starting at 0.
        offsets: Vec<i32>,
        /// The strings' bytes, one after the other.
        bytes: Vec<u8>,
    },
}

impl ColumnValues {
    /// Number of elements (strings count one per row).
    pub fn len(&self) -> usize {
        match self {
            ColumnValues::Bool(v) => v.len(),
            ColumnValues::U8(v) => v.len(),
            ColumnValues::I16(v) => v.len(),
            ColumnValues::U16(v) => v.len(),
            ColumnValues::I32(v) => v.len(),
            ColumnValues::U32(v) => v.len(),
            ColumnValues::I64(v) => v.len(),
            ColumnValues::U64(v) => v.len(),
            ColumnValues::F32(v) => v.len(),
            ColumnValues::F64(v) => v.len(),
            ColumnValues::ComplexF32(v) => v.len(),
            ColumnValues::ComplexF64(v) => v.len(),
            ColumnValues::Str { offsets, .. } => offsets.len().saturating_sub(1),
        }
    }

    /// Whether there are no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// For a string column, the string of row `i` (bytes); `None` otherwise or out of range.
    pub fn str_at(&self, i: usize) -> Option<&[u8]> {
        match self {
            ColumnValues::Str { offsets, bytes } => {
                let (a, b) = (*offsets.get(i)?, *offsets.get(i + 1)?);
                bytes.get(a as usize..b as usize)
            }
            _ => None,
        }
    }
}

/// One column of a [`TableBatch`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ColumnData {
    /// The column's name (TTYPEn).
    pub name: String,
    /// Elements per row: the repeat count (bits for `X`); 1 for strings.
    pub per_row: usize,
    /// The values, `num_rows * per_row` of them.
    pub values: ColumnValues,
    /// Per element, whether it is undefined: a logical stored as 0, an integer equal to TNULL.
    /// `None` when the column has no undefined element in this batch. The values themselves are
    /// astropy's: an undefined logical is `false`, a TNULL integer keeps its stored value.
    pub nulls: Option<Vec<bool>>,
    /// For a variable-length array column: `num_rows + 1` offsets into the elements (row `i` is
    /// `offsets[i]..offsets[i + 1]`), and [`ColumnData::per_row`] is 0.
    pub list_offsets: Option<Vec<i32>>,
    /// The shape of each row's array (TDIMn, C order) when the column gives one: the row is then
    /// an array even of one element (TDIM `(1,1)`), as astropy reads it.
    pub shape: Option<Vec<usize>>,
}

/// A block of consecutive rows, the selected columns decoded.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TableBatch {
    /// 0-based index in the table of the first row the batch was read from (with a filter, that
    /// row may not have passed it).
    pub first_row: u64,
    /// Number of rows.
    pub num_rows: usize,
    /// Rows of the block that a filter left out (0 without a filter).
    pub filtered_out: usize,
    /// The selected columns, in the order they were selected.
    pub columns: Vec<ColumnData>,
}

impl ColumnData {
    /// The rows where `mask` is true.
    #[expect(
        clippy::indexing_slicing,
        reason = "`mask` has one entry per row of this column (the filter's, over the same batch), and `list_offsets` rows + 1, made by this module's decoding"
    )]
    pub(crate) fn select(&self, mask: &[bool]) -> ColumnData {
        // element ranges of each row
        let range = |r: usize| -> Range<usize> {
            match (&self.list_offsets, &self.values) {
                (Some(o), _) => o[r] as usize..o[r + 1] as usize,
                (None, ColumnValues::Str { .. }) => r..r + 1,
                (None, _) => r * self.per_row..(r + 1) * self.per_row,
            }
        };
        let keep: Vec<Range<usize>> = mask.iter().enumerate().filter(|(_, m)| **m).map(|(r, _)| range(r)).collect();
        #[expect(clippy::indexing_slicing, reason = "`keep` holds `select`'s row ranges, inside the column's values")]
        fn pick<T: Clone>(v: &[T], keep: &[Range<usize>]) -> Vec<T> {
            keep.iter().flat_map(|r| v[r.clone()].iter().cloned()).collect()
        }
        let values = match &self.values {
            ColumnValues::Bool(v) => ColumnValues::Bool(pick(v, &keep)),
            ColumnValues::U8(v) => ColumnValues::U8(pick(v, &keep)),
            ColumnValues::I16(v) => ColumnValues::I16(pick(v, &keep)),
            ColumnValues::U16(v) => ColumnValues::U16(pick(v, &keep)),
            ColumnValues::I32(v) => ColumnValues::I32(pick(v, &keep)),
            ColumnValues::U32(v) => ColumnValues::U32(pick(v, &keep)),
            ColumnValues::I64(v) => ColumnValues::I64(pick(v, &keep)),
            ColumnValues::U64(v) => ColumnValues::U64(pick(v, &keep)),
            ColumnValues::F32(v) => ColumnValues::F32(pick(v, &keep)),
            ColumnValues::F64(v) => ColumnValues::F64(pick(v, &keep)),
            ColumnValues::ComplexF32(v) => ColumnValues::ComplexF32(pick(v, &keep)),
            ColumnValues::ComplexF64(v) => ColumnValues::ComplexF64(pick(v, &keep)),
            ColumnValues::Str { .. } => {
                let mut offsets = vec![0i32];
                let mut bytes = Vec::new();
                for r in &keep {
                    bytes.extend_from_slice(self.values.str_at(r.start).unwrap_or(&[]));
                    offsets.push(bytes.len() as i32);
                }
                ColumnValues::Str { offsets, bytes }
            }
        };
        let nulls = self.nulls.as_ref().map(|m| pick(m, &keep)).filter(|m| m.contains(&true));
        let list_offsets = self.list_offsets.as_ref().map(|_| {
            let mut o = vec![0i32];
            for r in &keep {
                let last = o.last().copied().unwrap_or(0);
                o.push(last + r.len() as i32);
            }
            o
        });
        ColumnData {
            name: self.name.clone(),
            per_row: self.per_row,
            values,
            nulls,
            list_offsets,
            shape: self.shape.clone(),
        }
    }
}

impl ColumnData {
    /// A column of one value per row (one string per row for [`ColumnValues::Str`]).
    pub fn new(name: impl Into<String>, values: ColumnValues) -> Self {
        ColumnData { name: name.into(), per_row: 1, values, nulls: None, list_offsets: None, shape: None }
    }

    /// A column of strings.
    pub fn strings<S: AsRef<[u8]>>(name: impl Into<String>, strings: &[S]) -> Self {
        let mut offsets = Vec::with_capacity(strings.len() + 1);
        let mut bytes = Vec::new();
        offsets.push(0i32);
        for s in strings {
            bytes.extend_from_slice(s.as_ref());
            offsets.push(i32::try_from(bytes.len()).unwrap_or(i32::MAX));
        }
        ColumnData::new(name, ColumnValues::Str { offsets, bytes })
    }

    /// A variable-length array column: row `i` holds `values[offsets[i]..offsets[i + 1]]`.
    pub fn list(name: impl Into<String>, values: ColumnValues, offsets: Vec<i32>) -> Self {
        ColumnData { name: name.into(), per_row: 0, values, nulls: None, list_offsets: Some(offsets), shape: None }
    }

    /// Rows of `per_row` values each (a fixed-size array per row).
    pub fn with_per_row(mut self, per_row: usize) -> Self {
        self.per_row = per_row;
        self
    }

    /// Marks undefined values (one flag per value).
    pub fn with_nulls(mut self, nulls: Vec<bool>) -> Self {
        self.nulls = Some(nulls);
        self
    }

    /// Number of rows, when the column says (a zero-width column does not).
    pub fn num_rows(&self) -> Option<usize> {
        match (&self.list_offsets, &self.values) {
            (Some(o), _) => Some(o.len().saturating_sub(1)),
            (None, ColumnValues::Str { offsets, .. }) => Some(offsets.len().saturating_sub(1)),
            (None, v) if self.per_row > 0 => Some(v.len() / self.per_row),
            _ => None,
        }
    }
}

impl TableBatch {
    /// A batch of `columns`, which must have the same number of rows.
    pub fn new(columns: Vec<ColumnData>) -> Result<TableBatch> {
        let mut num_rows = None;
        for c in &columns {
            match (num_rows, c.num_rows()) {
                (None, n) => num_rows = n,
                (Some(a), Some(b)) if a != b => {
                    return Err(Error::parameter(format!("column {} has {b} rows, the others {a}", c.name)));
                }
                _ => {}
            }
        }
        Ok(TableBatch { first_row: 0, num_rows: num_rows.unwrap_or(0), filtered_out: 0, columns })
    }
}

impl TableBatch {
    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&ColumnData> {
        self.columns
            .iter()
            .find(|c| c.name == name)
            .or_else(|| self.columns.iter().find(|c| c.name.eq_ignore_ascii_case(name)))
    }
}
