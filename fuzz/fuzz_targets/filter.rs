//! The filter language: any text parsed as a filter and, when it parses, run over a small table
//! with a column of every scalar kind (some of them with undefined values).
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use torchfits_core::table::Filter;
use torchfits_core::{ColumnData, ColumnValues, OpenOptions, TableBatch, WriteOptions};

/// The table, written once per process from constants: its `expect`s fail only if the harness
/// cannot write a scratch file (the messages say so), never on fuzz input.
fn table() -> &'static PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let path = torchfits_fuzz::scratch_file("filter", b"");
        let n = 40usize;
        let batch = TableBatch::new(vec![
            ColumnData::new("id", ColumnValues::I64((0..n as i64).collect())),
            ColumnData::new(
                "mag",
                ColumnValues::F64((0..n).map(|i| if i % 7 == 0 { f64::NAN } else { 15.0 + i as f64 * 0.25 }).collect()),
            ),
            ColumnData::new("flux", ColumnValues::F32((0..n).map(|i| i as f32 - 10.0).collect())),
            ColumnData::new("flag", ColumnValues::I16((0..n).map(|i| (i % 4) as i16).collect())),
            ColumnData::new("ok", ColumnValues::Bool((0..n).map(|i| i % 3 == 0).collect())),
            ColumnData::new("band", ColumnValues::U8((0..n).map(|i| i as u8).collect())),
            ColumnData::strings("name", &(0..n).map(|i| format!("obj{i}")).collect::<Vec<_>>()),
        ])
        .expect("the table's columns agree");
        let mut w = WriteOptions::new().overwrite(true).create(&path).expect("the table can be created");
        w.write_table(&batch, "T", None).expect("the table can be written");
        w.finish().expect("the table can be finished");
        path
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(filter) = Filter::parse(&text) else { return };
    let _ = filter.columns();
    let path = table();
    let Ok(file) = OpenOptions::new().limits(torchfits_fuzz::limits()).open(path) else { return };
    let rows = file
        .table(1)
        .and_then(|t| t.with_filter(&text))
        .and_then(|t| t.build())
        .and_then(|b| b.collect::<Result<Vec<_>, _>>());
    if let Err(e) = rows {
        assert!(!e.to_string().is_empty());
    }
});
