//! Tile-compressed binary tables written by cfitsio's `fits_compress_table` (what fpack does to
//! a table): every column type, each algorithm cfitsio applies to it, tiles of several lengths;
//! read back through the table reader they equal the table compressed, whole, by row ranges and
//! by columns.

use std::ffi::CString;
use std::path::Path;

use torchfits::table::{ColumnData, ColumnValues, TableBatch};
use torchfits::write::{ColumnSpec, TableAlgorithm, TableCompression};
use torchfits::{FitsFile, Header, OpenOptions, WriteOptions};

use crate::common;

const ROWS: usize = 3000;

/// Rows `first..first + n` of a table with a column of every type (and variable-length arrays
/// of four element types).
fn batch(first: usize, n: usize) -> TableBatch {
    let rows = first..first + n;
    let ints = |k: i64| rows.clone().map(move |i| (i as i64 * 7919 + k) % 100_003 - 50_000);
    let list = |width: usize| {
        let mut offsets = vec![0i32];
        let mut count = 0;
        for i in rows.clone() {
            count += (i * width) % 5;
            offsets.push(count as i32);
        }
        (count, offsets)
    };
    let (n_i32, o_i32) = list(1);
    let (n_f64, o_f64) = list(3);
    let (n_i16, o_i16) = list(2);
    let (n_u8, o_u8) = list(4);
    let names: Vec<String> = rows.clone().map(|i| format!("star {}", i % 97)).collect();
    TableBatch::new(vec![
        ColumnData::new("flag", ColumnValues::Bool(rows.clone().map(|i| i % 3 == 0).collect())),
        ColumnData::new(
            "bits",
            ColumnValues::Bool(rows.clone().flat_map(|i| (0..11).map(move |k| (i + k) % 3 == 0)).collect()),
        )
        .with_per_row(11),
        ColumnData::new("u8", ColumnValues::U8(ints(3).map(|v| v.rem_euclid(256) as u8).collect())),
        ColumnData::new("i16", ColumnValues::I16(ints(-7).map(|v| (v / 3) as i16).collect())),
        ColumnData::new("u16", ColumnValues::U16(ints(611).map(|v| v.unsigned_abs() as u16).collect())),
        ColumnData::new("i32", ColumnValues::I32(ints(-100_003).map(|v| (v * 977) as i32).collect())),
        ColumnData::new("i64", ColumnValues::I64(ints(-(1 << 40)).map(|v| v << 20).collect())),
        ColumnData::new("f32", ColumnValues::F32(ints(5).map(|v| v as f32 * 0.25).collect())),
        ColumnData::new(
            "spec",
            ColumnValues::F64(rows.clone().flat_map(|i| (0..6).map(move |k| (i * 6 + k) as f64 / 3.0)).collect()),
        )
        .with_per_row(6),
        ColumnData::new("c32", ColumnValues::ComplexF32(rows.clone().map(|i| [i as f32, -(i as f32)]).collect())),
        ColumnData::new("c64", ColumnValues::ComplexF64(rows.clone().map(|i| [i as f64 / 7.0, 1.5]).collect())),
        ColumnData::strings("name", &names),
        ColumnData::list("hits", ColumnValues::I32((0..n_i32).map(|k| k as i32 * 31 - 4000).collect()), o_i32),
        ColumnData::list("flux", ColumnValues::F64((0..n_f64).map(|k| k as f64 / 9.0).collect()), o_f64),
        ColumnData::list("adu", ColumnValues::I16((0..n_i16).map(|k| (k % 3000) as i16 - 1500).collect()), o_i16),
        ColumnData::list("mask", ColumnValues::U8((0..n_u8).map(|k| (k % 251) as u8).collect()), o_u8),
    ])
    .expect("batch")
}

/// The table written with `FZALGOR = algorithm`, `FZTILELN = tile_rows`, and its copy
/// compressed by cfitsio: (plain, compressed).
fn table_and_compressed(dir: &Path, algorithm: &str, tile_rows: usize) -> (std::path::PathBuf, std::path::PathBuf) {
    let plain = dir.join(format!("table-{algorithm}-{tile_rows}.fits"));
    let packed = dir.join(format!("table-{algorithm}-{tile_rows}.fits.fz"));
    let mut w = WriteOptions::new().create(&plain).expect("create");
    let mut header = Header::new();
    header.set("EXTNAME", "CATALOG", None).expect("set");
    header.set("FZALGOR", algorithm, None).expect("set");
    header.set("FZTILELN", tile_rows as i64, None).expect("set");
    let specs: Vec<ColumnSpec> = batch(0, ROWS).columns.iter().map(ColumnSpec::of).collect();
    let mut t = w.table(specs, Some(&header)).expect("table");
    t.write(&batch(0, ROWS)).expect("rows");
    t.finish().expect("finish table");
    w.finish().expect("finish");
    compress_table(&plain, &packed);
    (plain, packed)
}

/// cfitsio's `fits_compress_table` of HDU 1 of `input` into a new file `output`.
fn compress_table(input: &Path, output: &Path) {
    cfitsio_table_copy(input, output, fitsio::sys::fits_compress_table);
}

/// cfitsio's `fits_uncompress_table` of HDU 1 of `input` into a new file `output`.
fn uncompress_table(input: &Path, output: &Path) {
    cfitsio_table_copy(input, output, fitsio::sys::fits_uncompress_table);
}

/// The primary HDU of `input` copied into a new file `output`, then HDU 1 through cfitsio's
/// `op` (its compression or uncompression of a table); a failure names cfitsio's messages.
fn cfitsio_table_copy(
    input: &Path,
    output: &Path,
    op: unsafe extern "C" fn(*mut fitsio::sys::fitsfile, *mut fitsio::sys::fitsfile, *mut i32) -> i32,
) {
    use fitsio::sys;
    let cin = CString::new(input.to_str().expect("path")).expect("path");
    let cout = CString::new(format!("!{}", output.display())).expect("path");
    let mut status = 0;
    // SAFETY: cfitsio's documented calls on pointers it hands out, closed before returning;
    // status is checked after the sequence (cfitsio's calls do nothing once it is set)
    unsafe {
        let (mut fin, mut fout) = (std::ptr::null_mut(), std::ptr::null_mut());
        sys::ffopen(&mut fin, cin.as_ptr(), 0, &mut status);
        sys::ffinit(&mut fout, cout.as_ptr(), &mut status);
        sys::ffcopy(fin, fout, 0, &mut status);
        let mut kind = 0;
        sys::ffmahd(fin, 2, &mut kind, &mut status);
        op(fin, fout, &mut status);
        let mut close = 0;
        sys::ffclos(fout, &mut close);
        sys::ffclos(fin, &mut close);
    }
    let mut messages = String::new();
    let mut text = [0 as std::os::raw::c_char; 81];
    // SAFETY: ffgmsg writes at most 80 characters and a NUL into the buffer
    while unsafe { sys::ffgmsg(text.as_mut_ptr()) } != 0 {
        // SAFETY: the buffer holds the NUL-terminated message ffgmsg wrote
        let line = unsafe { std::ffi::CStr::from_ptr(text.as_ptr()) };
        messages.push_str(&line.to_string_lossy());
        messages.push('\n');
    }
    assert_eq!(status, 0, "cfitsio failed on {}:\n{messages}", input.display());
}

/// Every batch of the table `CATALOG` of `file`, read `batch_rows` at a time.
fn read_all(
    file: &FitsFile,
    columns: Option<&[&str]>,
    rows: Option<std::ops::Range<u64>>,
    batch_rows: usize,
) -> Vec<TableBatch> {
    let mut reader = file.table("CATALOG").expect("table").with_batch_rows(batch_rows);
    if let Some(c) = columns {
        reader = reader.with_columns(c).expect("columns");
    }
    if let Some(r) = rows {
        reader = reader.with_rows(r).expect("rows");
    }
    reader.build().expect("build").collect::<Result<_, _>>().expect("read")
}

#[test]
fn tables_cfitsio_compressed_read_as_the_tables_they_hold() {
    let dir = common::tempdir("compressed-tables");
    for algorithm in ["GZIP_1", "GZIP_2", "RICE_1"] {
        for tile_rows in [1000, 77] {
            let (plain, packed) = table_and_compressed(&dir, algorithm, tile_rows);
            let (p, z) = (FitsFile::open(&plain).expect("open"), FitsFile::open(&packed).expect("open"));
            let stored = OpenOptions::new().stored_tables(true).open(&packed).expect("open stored");
            let stored_rows = stored.hdu(1).expect("hdu").nrows;
            assert_eq!(stored_rows, Some(ROWS.div_ceil(tile_rows) as u64), "{algorithm}: a stored row per tile");
            let info = z.hdu(1).expect("hdu");
            assert!(info.compressed, "{algorithm}: the table is compressed");
            assert_eq!(info.nrows, Some(ROWS as u64));
            let header = z.header(1).expect("header");
            assert_eq!(header.get_i64("NAXIS2"), Some(ROWS as i64));
            assert!(header.get("ZTABLE").is_none() && header.get("ZFORM1").is_none());
            let what = format!("{algorithm}, tiles of {tile_rows}");
            assert_eq!(read_all(&z, None, None, 100_000), read_all(&p, None, None, 100_000), "{what}: whole");
            // batches that cut tiles, a row range inside one tile and across several, a projection
            assert_eq!(read_all(&z, None, None, 500), read_all(&p, None, None, 500), "{what}: batches of 500");
            for rows in [5..23, 70..1900, 2999..3000] {
                let cols = Some(&["hits", "i16", "name"][..]);
                assert_eq!(
                    read_all(&z, cols, Some(rows.clone()), 333),
                    read_all(&p, cols, Some(rows.clone()), 333),
                    "{what}: rows {rows:?}"
                );
            }
        }
    }
}

#[test]
fn a_filter_on_a_compressed_table_keeps_the_rows_it_keeps_on_the_table() {
    let dir = common::tempdir("compressed-tables-filter");
    let (plain, packed) = table_and_compressed(&dir, "RICE_1", 250);
    let read = |path: &Path| {
        let file = FitsFile::open(path).expect("open");
        let reader = file.table("CATALOG").expect("table").with_columns(&["i32", "f32"]).expect("columns");
        let batches = reader.with_filter("i32 > 1000 && f32 < 100").expect("filter").build().expect("build");
        batches.map(|b| b.expect("read").num_rows).sum::<usize>()
    };
    let kept = read(&plain);
    assert!(kept > 0 && kept < ROWS, "the filter keeps some rows: {kept}");
    assert_eq!(read(&packed), kept);
}

#[test]
fn a_corrupt_tile_is_an_error_naming_the_column_and_tile() {
    let dir = common::tempdir("compressed-tables-corrupt");
    let (_, packed) = table_and_compressed(&dir, "GZIP_2", 500);
    let mut bytes = std::fs::read(&packed).expect("read");
    // the stored heap is the last part of the data: garble the middle of it
    let at = bytes.len() - 2880 - 4000;
    for b in &mut bytes[at..at + 64] {
        *b ^= 0x5A;
    }
    let bad = dir.join("corrupt.fits.fz");
    std::fs::write(&bad, &bytes).expect("write");
    let file = FitsFile::open(&bad).expect("open");
    let err = file
        .table(1)
        .expect("table")
        .build()
        .expect("build")
        .collect::<Result<Vec<_>, _>>()
        .expect_err("a garbled tile does not read");
    let text = err.to_string();
    assert!(text.contains("corrupt.fits.fz") && text.contains("tile"), "{text}");
}

#[test]
fn tables_torchfits_compresses_read_back_in_torchfits_and_in_cfitsio() {
    let dir = common::tempdir("compressed-tables-written");
    let every = |b: TableBatch| b;
    // cfitsio 4.2 cannot uncompress variable-length or complex columns, even those it
    // compressed itself ("Could not allocate buffer for compressed VLA"; "unexpected attempt to
    // use GZIP_2"): its check takes the other columns
    let fixed = |b: TableBatch| {
        TableBatch::new(
            b.columns.into_iter().filter(|c| c.list_offsets.is_none() && !c.name.starts_with("c")).collect(),
        )
    };
    let want = read_all_of(&write(&dir.join("plain.fits"), None, &every));
    let want_fixed = read_all_of(&write(&dir.join("plain-fixed.fits"), None, &|b| fixed(b).expect("batch")));
    for algorithm in [None, Some(TableAlgorithm::Rice1), Some(TableAlgorithm::Gzip1), Some(TableAlgorithm::Gzip2)] {
        for tile_rows in [1000, 77] {
            let what = format!("{algorithm:?}, tiles of {tile_rows}");
            // no parentheses: cfitsio reads them in a file name as its extended syntax
            let tag = format!("{}-{tile_rows}", algorithm.map_or("default".to_string(), |a| format!("{a:?}")));
            let mut compression = TableCompression::new().tile_rows(tile_rows);
            if let Some(a) = algorithm {
                compression = compression.algorithm(a);
            }
            let packed = write(&dir.join(format!("{tag}.fits.fz")), Some(&compression), &every);
            crate::write::fitsverify(&packed);
            same(&read_all_of(&packed), &want, &format!("{what}: torchfits reads it back"));
            let name = format!("{tag}-fixed.fits.fz");
            let packed = write(&dir.join(name), Some(&compression), &|b| fixed(b).expect("batch"));
            let unpacked = dir.join(format!("unpacked-{tag}.fits"));
            uncompress_table(&packed, &unpacked);
            same(&read_all_of(&unpacked), &want_fixed, &format!("{what}: cfitsio uncompresses it to the table"));
        }
    }
}

/// The table of `ROWS` rows (each batch of `SPLIT` through `pick`) written at `path`,
/// compressed where `compression` is given.
fn write(
    path: &Path,
    compression: Option<&TableCompression>,
    pick: &dyn Fn(TableBatch) -> TableBatch,
) -> std::path::PathBuf {
    let specs: Vec<ColumnSpec> = pick(batch(0, ROWS)).columns.iter().map(ColumnSpec::of).collect();
    let mut w = WriteOptions::new().checksum(true).create(path).expect("create");
    let mut header = Header::new();
    header.set("EXTNAME", "CATALOG", None).expect("set");
    let mut t = match compression {
        Some(c) => w.compressed_table(specs, Some(&header), c),
        None => w.table(specs, Some(&header)),
    }
    .expect("table");
    for (first, n) in SPLIT {
        t.write(&pick(batch(first, n))).expect("rows");
    }
    t.finish().expect("finish table");
    w.finish().expect("finish");
    path.to_path_buf()
}

/// The batches the written tables are written in: ends that are not on tiles, an empty one.
const SPLIT: [(usize, usize); 3] = [(0, 1234), (1234, 0), (1234, 1766)];

fn read_all_of(path: &Path) -> Vec<TableBatch> {
    read_all(&FitsFile::open(path).expect("open"), None, None, 100_000)
}

/// Asserts `got` equals `want`, naming the first column that differs (not printing whole
/// batches).
fn same(got: &[TableBatch], want: &[TableBatch], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: batches");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((g.first_row, g.num_rows), (w.first_row, w.num_rows), "{what}: rows");
        for (a, b) in g.columns.iter().zip(&w.columns) {
            assert!(a == b, "{what}: column {} differs: {:.300}", a.name, format!("{:?} vs {:?}", a, b));
        }
    }
}
