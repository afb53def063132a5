//! Binary tables: the schema ([`TableSchema`]) and a batched, columnar reader ([`TableReader`]).
//!
//! Not yet here (next steps of this module): ASCII tables, row filters and parallel decoding of
//! row blocks.

#[cfg(feature = "arrow")]
pub mod arrow;
mod reader;
mod schema;

pub use reader::{ColumnData, ColumnValues, DEFAULT_BATCH_ROWS, TableBatch, TableBatches, TableReader};
pub use schema::{ColumnSchema, ColumnType, FitsType, TableSchema, VarArray};
