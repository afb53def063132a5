//! The description of a table's column to write, shared by the plain and the compressed table
//! writers: its type, its size in a row, its keywords.

use crate::io::table::{ColumnData, ColumnType, ColumnValues};

/// One column of a table to write.
///
/// ```
/// use torchfits_core::table::ColumnType;
/// use torchfits_core::write::ColumnSpec;
/// let flux = ColumnSpec::new("flux", ColumnType::F32, 1).unit("Jy");
/// let spectrum = ColumnSpec::new("spec", ColumnType::F64, 6).dims(&[2, 3]);  // TDIM
/// let name = ColumnSpec::new("name", ColumnType::Str, 16);                  // 16A
/// let hits = ColumnSpec::new("hits", ColumnType::I32, 0).variable();        // 1PJ
/// # let _ = (flux, spectrum, name, hits);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ColumnSpec {
    /// TTYPEn.
    pub name: String,
    /// The values' type (unsigned types are stored with TZERO, as FITS and astropy do).
    pub column_type: ColumnType,
    /// Elements per row (bits for [`ColumnType::Bits`], bytes per string for
    /// [`ColumnType::Str`]); unused for a variable-length column.
    pub repeat: usize,
    /// The shape of a row's elements, C order (TDIMn).
    pub dims: Option<Vec<usize>>,
    /// TUNITn.
    pub unit: Option<String>,
    /// A variable-length array per row (TFORM `P`): the elements go to the heap.
    pub variable: bool,
    /// Integer columns: write TNULLn so undefined values can be stored (see [`super::TableWrite`]).
    pub nullable: bool,
}

impl ColumnSpec {
    /// A column of `repeat` elements of `column_type` per row.
    pub fn new(name: impl Into<String>, column_type: ColumnType, repeat: usize) -> Self {
        ColumnSpec { name: name.into(), column_type, repeat, dims: None, unit: None, variable: false, nullable: false }
    }

    /// TUNITn.
    pub fn unit(mut self, unit: impl Into<String>) -> Self {
        self.unit = Some(unit.into());
        self
    }

    /// TDIMn (C order); their product must be the repeat count.
    pub fn dims(mut self, dims: &[usize]) -> Self {
        self.dims = Some(dims.to_vec());
        self
    }

    /// A variable-length array column.
    pub fn variable(mut self) -> Self {
        self.variable = true;
        self
    }

    /// Allows undefined integers (TNULLn).
    pub fn nullable(mut self, yes: bool) -> Self {
        self.nullable = yes;
        self
    }

    /// The spec that holds `column` (of one batch): strings as wide as its longest (at least
    /// 1), nullable if it has undefined values. Widen it with [`ColumnSpec::merge`] for later
    /// batches.
    pub fn of(column: &ColumnData) -> Self {
        let column_type = column.values.column_type();
        let variable = column.list_offsets.is_some();
        let repeat = match &column.values {
            ColumnValues::Str { offsets, .. } => {
                offsets.windows(2).map(|w| (w[1] - w[0]) as usize).max().unwrap_or(0).max(1)
            }
            _ if variable => 0,
            _ => column.per_row,
        };
        let nullable = column.nulls.as_ref().is_some_and(|n| n.contains(&true));
        ColumnSpec { nullable, variable, ..ColumnSpec::new(column.name.clone(), column_type, repeat) }
    }

    /// Widens `self` to hold what `other` holds too (longer strings, undefined values).
    pub fn merge(&mut self, other: &ColumnSpec) {
        if self.column_type == ColumnType::Str && !self.variable {
            self.repeat = self.repeat.max(other.repeat);
        }
        self.nullable |= other.nullable;
    }

    pub(super) fn code(&self) -> char {
        match self.column_type {
            ColumnType::Bool => 'L',
            ColumnType::Bits => 'X',
            ColumnType::U8 => 'B',
            ColumnType::I16 | ColumnType::U16 => 'I',
            ColumnType::I32 | ColumnType::U32 => 'J',
            ColumnType::I64 | ColumnType::U64 => 'K',
            ColumnType::F32 => 'E',
            ColumnType::F64 => 'D',
            ColumnType::ComplexF32 => 'C',
            ColumnType::ComplexF64 => 'M',
            ColumnType::Str => 'A',
        }
    }

    /// Bytes of one element (a string's byte; bits count whole bytes separately).
    pub(super) fn size(&self) -> usize {
        self.column_type.value_size()
    }

    /// Bytes of the column in a row.
    pub(super) fn width(&self) -> usize {
        match (self.variable, self.column_type) {
            (true, _) => 8,
            (false, ColumnType::Bits) => self.repeat.div_ceil(8),
            (false, _) => self.repeat * self.size(),
        }
    }

    /// TZEROn of the unsigned types (as text: 2^63 does not fit an i64).
    pub(super) fn tzero(&self) -> Option<&'static str> {
        match self.column_type {
            ColumnType::U16 => Some("32768"),
            ColumnType::U32 => Some("2147483648"),
            ColumnType::U64 => Some("9223372036854775808"),
            _ => None,
        }
    }

    /// TNULLn (the stored value) of a nullable integer column: the smallest stored value for
    /// signed types, the largest for unsigned ones (so 0 stays a value).
    pub(super) fn tnull(&self) -> Option<i64> {
        if !self.nullable {
            return None;
        }
        match self.column_type {
            ColumnType::U8 => Some(255),
            ColumnType::I16 => Some(i16::MIN.into()),
            ColumnType::U16 => Some(i16::MAX.into()),
            ColumnType::I32 => Some(i32::MIN.into()),
            ColumnType::U32 => Some(i32::MAX.into()),
            ColumnType::I64 => Some(i64::MIN),
            ColumnType::U64 => Some(i64::MAX),
            _ => None,
        }
    }
}

impl ColumnValues {
    /// The [`ColumnType`] these values are.
    pub fn column_type(&self) -> ColumnType {
        match self {
            ColumnValues::Bool(_) => ColumnType::Bool,
            ColumnValues::U8(_) => ColumnType::U8,
            ColumnValues::I16(_) => ColumnType::I16,
            ColumnValues::U16(_) => ColumnType::U16,
            ColumnValues::I32(_) => ColumnType::I32,
            ColumnValues::U32(_) => ColumnType::U32,
            ColumnValues::I64(_) => ColumnType::I64,
            ColumnValues::U64(_) => ColumnType::U64,
            ColumnValues::F32(_) => ColumnType::F32,
            ColumnValues::F64(_) => ColumnType::F64,
            ColumnValues::ComplexF32(_) => ColumnType::ComplexF32,
            ColumnValues::ComplexF64(_) => ColumnType::ComplexF64,
            ColumnValues::Str { .. } => ColumnType::Str,
        }
    }
}
