//! Binary tables: the schema ([`TableSchema`]) and a batched, columnar reader ([`TableReader`]).
//!
//! Binary and ASCII tables, every column type, row ranges, column projection and row filters.
//!
//! ## Columns for tensors
//! A numeric column of a batch is one contiguous, native-endian `Vec<T>` in row order
//! ([`ColumnValues`]): `num_rows * per_row` values, a row's `repeat` elements (its TDIM shape,
//! [`ColumnSchema::dims`]) one after the other. A tensor library takes it over without a copy:
//! Burn's `TensorData::new(values, [num_rows, per_row])`, ndarray's
//! `Array2::from_shape_vec((num_rows, per_row), values)`. [`TableBatch::into_record_batch`]
//! moves the same buffers into Arrow.
//!
//! ```
//! use torchfits_core::{ColumnValues, FitsFile};
//! # let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/data/sample.fits");
//! let file = FitsFile::open(path)?;
//! let mut batches = file.table("CATALOG")?.with_columns(&["ra", "dec"])?.with_filter("dec > 2.2")?.build()?;
//! let batch = batches.next().expect("a batch")?;
//! let ColumnValues::F64(ra) = &batch.columns[0].values else { unreachable!("D is f64") };
//! assert_eq!((batch.num_rows, ra.as_slice()), (1, &[150.1][..]));
//! # Ok::<(), torchfits_core::Error>(())
//! ```

#[cfg(feature = "arrow")]
pub mod arrow;
mod batch;
mod decode;
mod filter;
mod pool;
mod reader;
pub(crate) mod tiles;

pub use batch::{ColumnData, ColumnValues, TableBatch};
pub use filter::Filter;
pub use pool::ColumnPool;
pub use reader::{DEFAULT_BATCH_ROWS, TableBatches, TableReader};
pub use torchfits_format::table_schema::{ColumnSchema, ColumnType, FitsType, TableSchema, VarArray};
