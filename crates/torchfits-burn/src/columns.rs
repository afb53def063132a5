//! Catalog and table columns that ride along with the items as targets or features, exact:
//! integers as 64-bit integers, floats as 64-bit floats, strings as codes into a dictionary.

// Indexing: rows are the dataset's own (checked when the columns are read), offsets are the
// table reader's own string offsets.
#![allow(clippy::indexing_slicing)]

use std::collections::BTreeMap;
use std::sync::Arc;

use burn::tensor::{DType, Device, FloatDType, Int, Tensor, TensorData};
use torchfits_core::{ColumnData, ColumnValues, Error, ErrorKind, Result};

/// One column's values, one per row, as exact as the file holds them.
#[derive(Debug, Clone, PartialEq)]
pub enum SideValues {
    /// Integer and logical columns (logicals as 0 and 1), every width up to 64 bits.
    Int(Vec<i64>),
    /// Float columns (f32 widened to f64 exactly).
    Float(Vec<f64>),
    /// String columns: each row's code, the index of its string (trailing blanks removed) in
    /// `dictionary`, which lists the column's distinct strings in sorted order.
    Code {
        /// One code per row.
        codes: Vec<i64>,
        /// The distinct strings, sorted.
        dictionary: Arc<[String]>,
    },
}

impl SideValues {
    /// Number of rows.
    pub fn len(&self) -> usize {
        match self {
            SideValues::Int(v) => v.len(),
            SideValues::Float(v) => v.len(),
            SideValues::Code { codes, .. } => codes.len(),
        }
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The values of `column` (one element per row: an array column is refused), exact.
    pub fn from_column(column: &ColumnData) -> Result<SideValues> {
        let refuse = |what: &str| {
            Error::new(ErrorKind::Unsupported, format!("column {:?}: {what} cannot ride along with items", column.name))
        };
        if column.per_row != 1 || column.list_offsets.is_some() {
            return Err(refuse("an array column"));
        }
        let ints = |v: &mut dyn Iterator<Item = i64>| SideValues::Int(v.collect());
        Ok(match &column.values {
            ColumnValues::Bool(v) => ints(&mut v.iter().map(|&b| i64::from(b))),
            ColumnValues::U8(v) => ints(&mut v.iter().map(|&x| i64::from(x))),
            ColumnValues::I16(v) => ints(&mut v.iter().map(|&x| i64::from(x))),
            ColumnValues::U16(v) => ints(&mut v.iter().map(|&x| i64::from(x))),
            ColumnValues::I32(v) => ints(&mut v.iter().map(|&x| i64::from(x))),
            ColumnValues::U32(v) => ints(&mut v.iter().map(|&x| i64::from(x))),
            ColumnValues::I64(v) => SideValues::Int(v.clone()),
            ColumnValues::U64(v) => SideValues::Int(
                v.iter()
                    .map(|&x| i64::try_from(x).map_err(|_| refuse("an unsigned value beyond 2^63 - 1")))
                    .collect::<Result<_>>()?,
            ),
            ColumnValues::F32(v) => SideValues::Float(v.iter().map(|&x| f64::from(x)).collect()),
            ColumnValues::F64(v) => SideValues::Float(v.clone()),
            ColumnValues::Str { offsets, bytes } => {
                let strings: Vec<String> = offsets
                    .windows(2)
                    .map(|w| String::from_utf8_lossy(&bytes[w[0] as usize..w[1] as usize]).trim_end().to_string())
                    .collect();
                let mut dictionary: Vec<String> = strings.clone();
                dictionary.sort_unstable();
                dictionary.dedup();
                let code: BTreeMap<&str, i64> =
                    dictionary.iter().enumerate().map(|(i, s)| (s.as_str(), i as i64)).collect();
                let codes = strings.iter().map(|s| code.get(s.as_str()).copied().unwrap_or(0)).collect();
                SideValues::Code { codes, dictionary: dictionary.into() }
            }
            _ => return Err(refuse("a complex column")),
        })
    }

    /// The values as integer class labels: integers as they are, strings as their codes, floats
    /// only where every one is a whole number (a float column of 0.0 and 1.0), else an error
    /// naming `name` (a redshift is a target, not a class).
    pub fn as_labels(&self, name: &str) -> Result<Vec<i64>> {
        match self {
            SideValues::Int(v) => Ok(v.clone()),
            SideValues::Code { codes, .. } => Ok(codes.clone()),
            SideValues::Float(v) => v
                .iter()
                .map(|&x| {
                    // exactly representable whole numbers only: 0.73 is no class
                    let whole = x.fract() == 0.0 && x.abs() < 9.007_199_254_740_992e15;
                    whole.then_some(x as i64).ok_or_else(|| {
                        Error::new(
                            ErrorKind::Parameter,
                            format!("column {name:?} holds {x}, not a class label: use it as a target"),
                        )
                    })
                })
                .collect(),
        }
    }

    /// The strings the codes stand for, for a column of strings.
    pub fn dictionary(&self) -> Option<Arc<[String]>> {
        match self {
            SideValues::Code { dictionary, .. } => Some(dictionary.clone()),
            _ => None,
        }
    }

    /// Each row's value as a key to group rows by (for [`crate::split_by_group`]): integers and
    /// codes as they are, floats by their bits (equal values, one group).
    pub fn keys(&self) -> Vec<i64> {
        match self {
            SideValues::Int(v) => v.clone(),
            SideValues::Code { codes, .. } => codes.clone(),
            SideValues::Float(v) => v.iter().map(|x| x.to_bits() as i64).collect(),
        }
    }

    /// The rows `rows` (each below `len()`), in that order.
    pub fn select(&self, rows: &[usize]) -> SideValues {
        match self {
            SideValues::Int(v) => SideValues::Int(rows.iter().map(|&r| v[r]).collect()),
            SideValues::Float(v) => SideValues::Float(rows.iter().map(|&r| v[r]).collect()),
            SideValues::Code { codes, dictionary } => {
                SideValues::Code { codes: rows.iter().map(|&r| codes[r]).collect(), dictionary: dictionary.clone() }
            }
        }
    }

    /// Appends `other`'s rows (the same kind; strings recoded into one dictionary).
    pub(crate) fn append(&mut self, other: SideValues) -> Result<()> {
        match (self, other) {
            (SideValues::Int(a), SideValues::Int(b)) => a.extend(b),
            (SideValues::Float(a), SideValues::Float(b)) => a.extend(b),
            (SideValues::Code { codes, dictionary }, SideValues::Code { codes: more, dictionary: theirs })
                if Arc::ptr_eq(dictionary, &theirs) =>
            {
                // one dictionary for both (a dataset's): the codes already agree
                codes.extend(more);
            }
            (SideValues::Code { codes, dictionary }, SideValues::Code { codes: more, dictionary: theirs }) => {
                let mut merged: Vec<String> = dictionary.iter().chain(theirs.iter()).cloned().collect();
                merged.sort_unstable();
                merged.dedup();
                let code = |s: &String| merged.binary_search(s).map_or(0, |i| i as i64);
                let ours: Vec<i64> = dictionary.iter().map(code).collect();
                let mapped: Vec<i64> = theirs.iter().map(code).collect();
                for c in codes.iter_mut() {
                    *c = ours[*c as usize];
                }
                codes.extend(more.into_iter().map(|c| mapped[c as usize]));
                *dictionary = merged.into();
            }
            _ => {
                return Err(Error::new(
                    ErrorKind::Parameter,
                    "a column changes type from one part of the table to the next",
                ));
            }
        }
        Ok(())
    }
}

/// Named side columns, one row per item source (catalog row, file, spectrum).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SideColumns {
    columns: Vec<(String, SideValues)>,
}

impl SideColumns {
    /// No column.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or extends, for a name already there) a column.
    pub(crate) fn push(&mut self, name: &str, values: SideValues) -> Result<()> {
        match self.columns.iter_mut().find(|(n, _)| n == name) {
            Some((_, existing)) => existing.append(values),
            None => {
                self.columns.push((name.to_string(), values));
                Ok(())
            }
        }
    }

    /// The columns, in the order they were asked for.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &SideValues)> {
        self.columns.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// The column `name`.
    pub fn get(&self, name: &str) -> Option<&SideValues> {
        self.columns.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Whether there is no column.
    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// The rows of items that each carry their own side columns (`(columns, row)` per item,
    /// all with the same names), as tensors on `device` beside the exact host values; float
    /// columns as `float` tensors.
    pub fn batch_each(
        items: &[(&SideColumns, usize)],
        device: &Device,
        float: FloatDType,
    ) -> Result<Vec<(String, SideBatch)>> {
        let Some((first, _)) = items.first() else { return Ok(Vec::new()) };
        let mut out = Vec::with_capacity(first.columns.len());
        for (name, _) in &first.columns {
            let mut values: Option<SideValues> = None;
            for (side, row) in items {
                let v = side
                    .get(name)
                    .ok_or_else(|| Error::new(ErrorKind::Parameter, format!("an item without the column {name:?}")))?
                    .select(&[*row]);
                match &mut values {
                    Some(all) => all.append(v)?,
                    None => values = Some(v),
                }
            }
            if let Some(v) = values {
                out.push((name.clone(), SideBatch::new(v, device, float)?));
            }
        }
        Ok(out)
    }

    /// The columns of `rows`, as tensors on `device` beside the exact host values; float columns
    /// as `float` tensors (an error where the device has no such floats).
    pub fn batch(&self, rows: &[usize], device: &Device, float: FloatDType) -> Result<Vec<(String, SideBatch)>> {
        self.columns
            .iter()
            .map(|(name, values)| Ok((name.clone(), SideBatch::new(values.select(rows), device, float)?)))
            .collect()
    }
}

/// One side column of a batch: the exact values on the host, and a tensor on the batch's device.
///
/// Integers (and string codes) are I64 tensors where the device has 64-bit integers, I32 where it
/// has not (wgpu: WGSL has no 64-bit integer) when every value fits, and no tensor at all when
/// one does not (a 64-bit ID on such a device: the host values stay exact, a truncated tensor
/// would not). Floats are tensors of the dtype the batcher was given (`target_dtype`, F32 unless
/// said otherwise: the same on every device), the exact f64 values beside them.
#[derive(Debug, Clone)]
pub struct SideBatch {
    /// The exact values, in batch order.
    pub values: SideValues,
    /// `[batch]` on the device (see above for the dtype); for integers, None where the device's
    /// integers cannot hold a value.
    pub tensor: Option<SideTensor>,
}

/// A side column's tensor.
#[derive(Debug, Clone)]
pub enum SideTensor {
    /// Integers and string codes.
    Int(Tensor<1, Int>),
    /// Floats.
    Float(Tensor<1>),
}

impl SideBatch {
    fn new(values: SideValues, device: &Device, float: FloatDType) -> Result<SideBatch> {
        let n = values.len();
        let ints = |v: &[i64]| -> Option<SideTensor> {
            let (data, dtype) = if device.supports_dtype(DType::I64) {
                (TensorData::new(v.to_vec(), [n]), DType::I64)
            } else {
                let narrow: Option<Vec<i32>> = v.iter().map(|&x| i32::try_from(x).ok()).collect();
                (TensorData::new(narrow?, [n]), DType::I32)
            };
            crate::transfers::up(data.bytes().len());
            Some(SideTensor::Int(Tensor::<1, Int>::from_data(data, (device, dtype))))
        };
        let tensor = match &values {
            SideValues::Int(v) => ints(v),
            SideValues::Code { codes, .. } => ints(codes),
            SideValues::Float(v) => {
                let dtype = DType::from(float);
                if !device.supports_dtype(dtype) {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        format!("the device has no {dtype:?} for float targets: give the batcher another target_dtype"),
                    ));
                }
                // rounded once, from the exact values, to the dtype asked for
                let data = TensorData::new(v.clone(), [n]).convert_dtype(dtype);
                crate::transfers::up(data.bytes().len());
                Some(SideTensor::Float(Tensor::<1>::from_data(data, (device, dtype))))
            }
        };
        Ok(SideBatch { values, tensor })
    }
}

/// The side columns of a batch's items, each given as its table and its row there: one
/// [`SideColumns::batch`] where they share one table (items of one dataset), else
/// [`SideColumns::batch_each`] (items of several datasets in one loader, whose tables must hold
/// the same columns); none where no item has any.
pub(crate) fn batch_rows(
    items: &[(Option<&Arc<SideColumns>>, usize)],
    device: &Device,
    float: FloatDType,
) -> Result<Vec<(String, SideBatch)>> {
    let Some(first) = items.first().and_then(|(side, _)| *side) else { return Ok(Vec::new()) };
    if items.iter().all(|(side, _)| side.is_some_and(|s| Arc::ptr_eq(s, first))) {
        return first.batch(&items.iter().map(|(_, row)| *row).collect::<Vec<_>>(), device, float);
    }
    let each: Option<Vec<(&SideColumns, usize)>> = items.iter().map(|(side, row)| side.map(|s| (&**s, *row))).collect();
    let each =
        each.ok_or_else(|| Error::new(ErrorKind::Parameter, "items with and without side columns in one batch"))?;
    SideColumns::batch_each(&each, device, float)
}
