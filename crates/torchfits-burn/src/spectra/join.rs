//! Labels and targets of spectra from another table (a redshift catalog, a class table), each
//! spectrum joined to the table's row with its ID.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use torchfits_core::{Error, ErrorKind, Result};

use super::FileLayout;
use crate::catalog::Catalog;
use crate::columns::{SideColumns, SideValues};
use crate::reading::ReadOptions;

/// What a join gives the dataset: a label per spectrum and the target columns, in dataset order.
pub(super) struct Joined {
    pub labels: Option<Vec<i64>>,
    pub label_names: Option<Arc<[String]>>,
    pub targets: Vec<(String, SideValues)>,
}

/// An ID: an integer, or a string.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Int(i64),
    Text(String),
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Int(v) => write!(f, "{v}"),
            Key::Text(s) => write!(f, "{s:?}"),
        }
    }
}

/// The IDs of a column, one per row (floats only where whole: an ID is not a measurement).
fn keys(values: &SideValues, name: &str) -> Result<Vec<Key>> {
    match values {
        SideValues::Int(v) => Ok(v.iter().map(|&x| Key::Int(x)).collect()),
        SideValues::Code { codes, dictionary } => Ok(codes
            .iter()
            .map(|&c| Key::Text(usize::try_from(c).ok().and_then(|c| dictionary.get(c)).cloned().unwrap_or_default()))
            .collect()),
        SideValues::Float(v) => v
            .iter()
            .map(|&x| match x.fract() == 0.0 && x.abs() < 2f64.powi(53) {
                true => Ok(Key::Int(x as i64)),
                false => Err(Error::new(ErrorKind::Parameter, format!("column {name:?} holds {x}: not an ID"))),
            })
            .collect(),
    }
}

impl Joined {
    /// Reads the label and target columns of `table` and each spectrum's row in it, by the
    /// metadata column `id` (`side` holds the metadata of every spectrum, in dataset order).
    pub(super) fn read(
        table: &Path,
        id: &str,
        side: &SideColumns,
        options: &ReadOptions,
        layout: &[FileLayout],
        files: &[PathBuf],
    ) -> Result<Joined> {
        let ids = side.get(id).ok_or_else(|| {
            Error::new(
                ErrorKind::Parameter,
                format!("joining by {id:?} needs it among the metadata columns (SpectraBuilder::meta)"),
            )
        })?;
        let mut names = vec![id];
        names.extend(options.label.as_deref());
        names.extend(options.targets.iter().map(String::as_str));
        let catalog = Catalog::read_named(table, &names, None, options.urls)?;
        let column = |name: &str| {
            catalog.exact(name).ok_or_else(|| {
                Error::new(ErrorKind::Parameter, format!("the joined table has no column {name:?}")).in_file(table)
            })
        };
        let mut row_of = HashMap::new();
        for (row, key) in keys(column(id)?, id).map_err(|e| e.in_file(table))?.into_iter().enumerate() {
            if let Some(first) = row_of.insert(key.clone(), row) {
                return Err(
                    Error::new(ErrorKind::Parameter, format!("{id} {key} is in rows {first} and {row}")).in_file(table)
                );
            }
        }
        let rows = keys(ids, id)?
            .into_iter()
            .enumerate()
            .map(|(k, key)| {
                row_of.get(&key).copied().ok_or_else(|| {
                    let file = layout.partition_point(|l| l.first <= k).saturating_sub(1);
                    let spectrum = files.get(file).map_or_else(String::new, |f| format!(" of {}", f.display()));
                    Error::new(
                        ErrorKind::Parameter,
                        format!("spectrum {k}{spectrum}: {id} {key} is in none of its rows"),
                    )
                    .in_file(table)
                })
            })
            .collect::<Result<Vec<usize>>>()?;
        let targets = options
            .targets
            .iter()
            .map(|name| Ok((name.clone(), column(name)?.select(&rows))))
            .collect::<Result<Vec<_>>>()?;
        let (labels, label_names) = match options.label.as_deref() {
            Some(name) => {
                let values = column(name)?;
                let labels = values.select(&rows).as_labels(name).map_err(|e| e.in_file(table))?;
                (Some(labels), values.dictionary())
            }
            None => (None, None),
        };
        Ok(Joined { labels, label_names, targets })
    }
}
