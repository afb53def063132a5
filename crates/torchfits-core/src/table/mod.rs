//! Binary tables: the schema ([`TableSchema`]) and a batched, columnar reader ([`TableReader`]).
//!
//! Binary and ASCII tables, every column type, row ranges, column projection and row filters.

#[cfg(feature = "arrow")]
pub mod arrow;
mod filter;
mod reader;
mod schema;

pub use filter::Filter;
pub use reader::{ColumnData, ColumnValues, DEFAULT_BATCH_ROWS, TableBatch, TableBatches, TableReader};
pub use schema::{ColumnSchema, ColumnType, FitsType, TableSchema, VarArray};
