//! Grouped splits: each item keyed by a catalog column (a field, a tile, a survey region) or by
//! the HEALPix cell of its position, so that a split keeps every group on one side: sources of
//! one field, or neighbours on the sky, are never in both the training and the validation set.

use std::path::Path;

use cdshealpix::nested;
use torchfits_core::{Error, ErrorKind, Result};

use crate::catalog::Catalog;
use crate::columns::SideValues;

/// What groups a dataset's items for [`crate::FitsDataset::split_by`].
///
/// ```
/// use torchfits_burn::GroupBy;
///
/// assert_eq!(GroupBy::from("FIELD"), GroupBy::Column("FIELD".into()));
/// let cells = GroupBy::Cell { depth: 6 }; // HEALPix cells about 0.9 degree across
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    /// The values of a catalog column (integers, strings or floats; matched without regard to
    /// case): one group per distinct value.
    Column(String),
    /// The HEALPix cell (nested scheme) of each item's position at `depth` (0 to 29): one group
    /// per cell, so that neighbours on the sky stay together.
    Cell {
        /// The HEALPix depth (order): cells of about `58.6 / 2^depth` degrees.
        depth: u8,
    },
}

impl From<&str> for GroupBy {
    fn from(column: &str) -> Self {
        GroupBy::Column(column.to_string())
    }
}

impl From<String> for GroupBy {
    fn from(column: String) -> Self {
        GroupBy::Column(column)
    }
}

/// One key per value of a column: equal values, equal keys (a string is its code in the
/// column's dictionary, a float its bits).
pub(crate) fn column_keys(values: &SideValues) -> Vec<i64> {
    match values {
        SideValues::Int(v) => v.clone(),
        SideValues::Code { codes, .. } => codes.clone(),
        // -0.0 is 0.0: one group, as the values compare equal
        SideValues::Float(v) => v.iter().map(|&x| (x + 0.0).to_bits() as i64).collect(),
    }
}

/// The nested HEALPix cell at `depth` of each position (`ra`, `dec` in degrees).
pub(crate) fn cell_keys(depth: u8, ra: &[f64], dec: &[f64]) -> Result<Vec<i64>> {
    if depth > 29 {
        return Err(Error::new(ErrorKind::Parameter, format!("HEALPix depth {depth}: at most 29")));
    }
    ra.iter()
        .zip(dec)
        .map(|(&a, &d)| {
            if !(a.is_finite() && d.is_finite() && (-90.0..=90.0).contains(&d)) {
                return Err(Error::new(ErrorKind::Parameter, format!("position ({a}, {d}) is not on the sky")));
            }
            Ok(nested::hash(depth, a.to_radians(), d.to_radians()) as i64)
        })
        .collect()
}

/// The keys of column `name` (any case) of the catalog or table at `path` (its table `hdu`, a URL
/// where `urls`), one per row.
pub(crate) fn read_column_keys(path: &Path, hdu: Option<&str>, urls: bool, name: &str) -> Result<Vec<i64>> {
    let catalog = Catalog::read_named(path, &[name], hdu, urls)?;
    let values = catalog
        .exact(name)
        .ok_or_else(|| Error::new(ErrorKind::Parameter, format!("no column {name:?}")).in_file(path))?;
    Ok(column_keys(values))
}

/// The keys of `rows` (one per item) among `keys` (one per row of the table at `path`).
pub(crate) fn keys_of_rows(keys: &[i64], rows: impl Iterator<Item = usize>, path: &Path) -> Result<Vec<i64>> {
    rows.map(|r| {
        keys.get(r)
            .copied()
            .ok_or_else(|| Error::new(ErrorKind::Decoding, format!("the table has no row {r} any more")).in_file(path))
    })
    .collect()
}
