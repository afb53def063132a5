//! Binary tables: every fixed-width column type, scaling and nulls, batches, row ranges,
//! projection, the cfitsio path, and errors.

use torchfits::table::ColumnType;
use torchfits::{ColumnValues, ErrorKind, FitsFile, OpenOptions, TableBatch};

use crate::common::{self, bintable, image, write};

fn corpus(name: &str) -> std::path::PathBuf {
    common::repo().join("../shared/corpus/images-tables").join(name)
}

/// All batches of the whole table concatenated, one `ColumnValues` per selected column.
fn read_all(path: &std::path::Path, hdu: usize, batch_rows: usize) -> Vec<TableBatch> {
    let file = FitsFile::open(path).expect("open");
    let reader = file.table(hdu).expect("table").with_batch_rows(batch_rows);
    reader.build().expect("build").collect::<Result<Vec<_>, _>>().expect("batches")
}

fn strings(v: &ColumnValues) -> Vec<String> {
    let ColumnValues::Str { offsets, .. } = v else { panic!("not strings: {v:?}") };
    (0..offsets.len() - 1).map(|i| String::from_utf8_lossy(v.str_at(i).expect("row")).into_owned()).collect()
}

#[test]
fn corpus_tables_read_as_astropy_reads_them() {
    let path = corpus("astropy-btable.fits");
    if !path.exists() {
        return;
    }
    let batch = read_all(&path, 1, 1000).remove(0);
    assert_eq!(batch.num_rows, 3);
    let names: Vec<&str> = batch.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["order", "name", "mag", "Sp"]);
    assert_eq!(batch.columns[0].values, ColumnValues::I16(vec![1, 2, 3]));
    assert_eq!(&strings(&batch.columns[1].values)[..2], ["Sirius", "Canopus"]);
    let ColumnValues::F32(mag) = &batch.columns[2].values else { panic!("f32") };
    assert_eq!(&mag[..2], &[-1.45, -0.73]);

    // TNULL on J, TSCAL/TZERO on E (-> f64 in double), logicals
    let batch = read_all(&corpus("astropy-tb.fits"), 1, 1000).remove(0);
    assert_eq!(batch.columns[0].values, ColumnValues::I32(vec![1, 2]));
    assert_eq!(strings(&batch.columns[1].values), ["abc", "xy"]);
    assert_eq!(batch.columns[2].values, ColumnValues::F64(vec![3.7000000715255736, 6.699999713897705]));
    assert_eq!(batch.columns[3].values, ColumnValues::Bool(vec![false, true]));
}

/// A table with every fixed-width type; returns its path and the raw rows' source values.
fn all_types_table(dir: &std::path::Path) -> std::path::PathBuf {
    let s = |v: &str| v.to_string();
    let columns = vec![
        ("flag", "L", vec![]),
        ("bits", "11X", vec![]),
        ("byte", "B", vec![(s("TNULL"), s("255"))]),
        ("short", "I", vec![(s("TNULL"), s("-99"))]),
        ("ushort", "I", vec![(s("TZERO"), s("32768"))]),
        ("uint", "J", vec![(s("TZERO"), s("2147483648"))]),
        ("ulong", "K", vec![(s("TZERO"), s("9223372036854775808"))]),
        ("scaled", "J", vec![(s("TSCAL"), s("0.5")), (s("TZERO"), s("10")), (s("TNULL"), s("-1"))]),
        ("flux", "E", vec![(s("TUNIT"), s("'Jy'"))]),
        ("vec", "4D", vec![(s("TDIM"), s("'(2,2)'"))]),
        ("cplx", "C", vec![]),
        ("dcplx", "M", vec![]),
        ("text", "6A", vec![]),
    ];
    let mut rows = Vec::new();
    for r in 0..5u8 {
        let mut row = Vec::new();
        row.push([b'T', b'F', 0, b'T', b'F'][r as usize]);
        row.extend_from_slice(&[0b1010_0000 | r, 0b0100_0000]);
        row.push(if r == 2 { 255 } else { r * 10 });
        row.extend_from_slice(&(if r == 3 { -99i16 } else { r as i16 - 2 }).to_be_bytes());
        row.extend_from_slice(&((r as i32 * 1000 - 32768) as i16).to_be_bytes());
        row.extend_from_slice(&(i32::MIN + r as i32).to_be_bytes());
        row.extend_from_slice(&(i64::MAX - r as i64).to_be_bytes());
        row.extend_from_slice(&(if r == 1 { -1i32 } else { r as i32 * 3 }).to_be_bytes());
        row.extend_from_slice(&(r as f32 * 0.25).to_be_bytes());
        for k in 0..4 {
            row.extend_from_slice(&(r as f64 + k as f64 / 10.0).to_be_bytes());
        }
        row.extend_from_slice(&(r as f32).to_be_bytes());
        row.extend_from_slice(&(-(r as f32)).to_be_bytes());
        row.extend_from_slice(&(r as f64 / 3.0).to_be_bytes());
        row.extend_from_slice(&2.5f64.to_be_bytes());
        let text: [&[u8]; 5] = [b"abc   ", b"      ", b"x\0yzzz", b"\xffbin  ", b"full6!"];
        row.extend_from_slice(text[r as usize]);
        rows.push(row);
    }
    let path = dir.join("types.fits");
    write(&path, &[image(true, 8, &[], &[], vec![]), bintable(&columns, &rows)]);
    path
}

#[test]
fn every_fixed_width_type_scaling_and_nulls() {
    let dir = common::tempdir("tables");
    let path = all_types_table(&dir);
    let file = FitsFile::open(&path).expect("open");
    let reader = file.table(1).expect("table");
    let types: Vec<ColumnType> = reader.schema().columns.iter().map(|c| c.column_type).collect();
    use ColumnType as T;
    assert_eq!(
        types,
        [
            T::Bool,
            T::Bits,
            T::U8,
            T::I16,
            T::U16,
            T::U32,
            T::U64,
            T::F64,
            T::F32,
            T::F64,
            T::ComplexF32,
            T::ComplexF64,
            T::Str
        ]
    );
    assert_eq!(reader.schema().columns[9].dims, Some(vec![2, 2]));
    assert_eq!(reader.schema().columns[8].unit.as_deref(), Some("Jy"));
    let b = reader.build().expect("build").next().expect("a batch").expect("read");
    let col = |name: &str| b.column(name).expect(name);
    assert_eq!(col("flag").values, ColumnValues::Bool(vec![true, false, false, true, false]));
    assert_eq!(col("flag").nulls, Some(vec![false, false, true, false, false]));
    let ColumnValues::Bool(bits) = &col("bits").values else { panic!("bits") };
    assert_eq!(col("bits").per_row, 11);
    assert_eq!(&bits[..11], &[true, false, true, false, false, false, false, false, false, true, false]);
    assert_eq!(&bits[11..22], &[true, false, true, false, false, false, false, true, false, true, false]);
    assert_eq!(col("byte").values, ColumnValues::U8(vec![0, 10, 255, 30, 40]));
    assert_eq!(col("byte").nulls, Some(vec![false, false, true, false, false]));
    assert_eq!(col("short").values, ColumnValues::I16(vec![-2, -1, 0, -99, 2]));
    assert_eq!(col("short").nulls, Some(vec![false, false, false, true, false]));
    assert_eq!(col("ushort").values, ColumnValues::U16(vec![0, 1000, 2000, 3000, 4000]));
    assert_eq!(col("uint").values, ColumnValues::U32(vec![0, 1, 2, 3, 4]));
    assert_eq!(col("ulong").values, ColumnValues::U64((0..5).map(|r| u64::MAX - r).collect()));
    assert_eq!(col("scaled").values, ColumnValues::F64(vec![10.0, 9.5, 13.0, 14.5, 16.0]));
    assert_eq!(col("scaled").nulls, Some(vec![false, true, false, false, false]));
    assert_eq!(col("flux").values, ColumnValues::F32(vec![0.0, 0.25, 0.5, 0.75, 1.0]));
    let ColumnValues::F64(vec4) = &col("vec").values else { panic!("f64") };
    assert_eq!((col("vec").per_row, &vec4[4..8]), (4, &[1.0, 1.1, 1.2, 1.3][..]));
    assert_eq!(col("cplx").values, ColumnValues::ComplexF32((0..5).map(|r| [r as f32, -(r as f32)]).collect()));
    assert_eq!(col("dcplx").values, ColumnValues::ComplexF64((0..5).map(|r| [r as f64 / 3.0, 2.5]).collect()));
    let text = &col("text").values;
    let want: [&[u8]; 5] = [b"abc", b"", b"x", b"\xffbin", b"full6!"];
    assert_eq!((0..5).map(|i| text.str_at(i).expect("row")).collect::<Vec<_>>(), want);
}

#[test]
fn batches_row_ranges_projection_and_the_cfitsio_path_agree() {
    let dir = common::tempdir("tables-batches");
    let path = all_types_table(&dir);
    // any batch size gives the same rows
    for batch_rows in [1, 2, 3, 4, 5, 7] {
        let batches = read_all(&path, 1, batch_rows);
        assert_eq!(batches.len(), 5usize.div_ceil(batch_rows));
        assert_eq!(batches.iter().map(|b| b.num_rows).sum::<usize>(), 5);
        let firsts: Vec<u64> = batches.iter().map(|b| b.first_row).collect();
        assert_eq!(firsts, (0..5).step_by(batch_rows).map(|r| r as u64).collect::<Vec<_>>());
        let shorts: Vec<i16> = batches
            .iter()
            .flat_map(|b| match &b.column("short").expect("short").values {
                ColumnValues::I16(v) => v.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(shorts, vec![-2, -1, 0, -99, 2]);
    }
    // a row range across batch boundaries, two columns in the caller's order
    let file = FitsFile::open(&path).expect("open");
    let batches: Vec<TableBatch> = file
        .table(1)
        .expect("table")
        .with_columns(&["TEXT", "uint"])
        .expect("columns")
        .with_rows(1..4)
        .expect("rows")
        .with_batch_rows(2)
        .build()
        .expect("build")
        .collect::<Result<_, _>>()
        .expect("batches");
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].columns.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["text", "uint"]);
    assert_eq!(batches[0].first_row, 1);
    assert_eq!(batches[1].columns[1].values, ColumnValues::U32(vec![3]));
    // an empty row range: no batch
    let file = FitsFile::open(&path).expect("open");
    let none = file.table(1).expect("table").with_rows(2..2).expect("rows").build().expect("build").count();
    assert_eq!(none, 0);

    // the same table gzip-compressed goes through cfitsio (fits_read_tblbytes): same values
    let gz = dir.join("types.fits.gz");
    let status = std::process::Command::new("gzip").arg("-kf").arg(&path).status();
    if status.is_ok_and(|s| s.success()) {
        let via_cfitsio = read_all(&gz, 1, 2);
        let rows: usize = via_cfitsio.iter().map(|b| b.num_rows).sum();
        assert_eq!(rows, 5);
        // (compared as text: the scaled column holds a NaN, which is not equal to itself)
        assert_eq!(format!("{:?}", via_cfitsio[0].columns), format!("{:?}", read_all(&path, 1, 2)[0].columns));
        assert_eq!(via_cfitsio[2].column("ulong").expect("ulong").values, ColumnValues::U64(vec![u64::MAX - 4]));
    }
}

#[test]
fn table_errors_are_clear() {
    let dir = common::tempdir("tables-errors");
    let path = all_types_table(&dir);
    let file = FitsFile::open(&path).expect("open");
    let err = file.table(1).expect("table").with_columns(&["nope"]).expect_err("unknown column");
    assert_eq!(err.kind(), ErrorKind::Parameter);
    assert!(err.to_string().contains("nope") && err.to_string().contains("HDU 1"), "{err}");
    let err = file.table(1).expect("table").with_rows(3..9).expect_err("past the end");
    assert_eq!(err.kind(), ErrorKind::Parameter);
    assert_eq!(file.table(0).expect_err("an image").kind(), ErrorKind::Parameter);
    // a limit on one batch's bytes
    let small = OpenOptions::new().limits(torchfits::Limits::default().with_max_alloc(100)).open(&path).expect("open");
    let err = small.table(1).expect("table").build().expect_err("batch over max_alloc");
    assert_eq!(err.kind(), ErrorKind::Limits);
    // truncated rows
    let bytes = std::fs::read(&path).expect("read");
    let cut = dir.join("cut.fits");
    std::fs::write(&cut, &bytes[..bytes.len() - 2880 + 100]).expect("write");
    let file = FitsFile::open(&cut).expect("open");
    let err = file.table(1).expect("table").build().expect("build").next().expect("batch").expect_err("truncated");
    assert_eq!(err.kind(), ErrorKind::Decoding);
    assert!(err.to_string().contains("truncated"), "{err}");
}

/// A table of variable-length arrays: `1PJ` (i32), `1PA` (string), `1QD` (f64), `1PL`.
fn vla_table(dir: &std::path::Path, name: &str, bad_offset: bool) -> std::path::PathBuf {
    let mut heap = Vec::new();
    let mut rows = Vec::new();
    for r in 0..4u32 {
        let mut row = Vec::new();
        // r int32 values r*10 .. r*10+r-1
        let at = heap.len() as u32;
        for k in 0..r {
            heap.extend_from_slice(&((r * 10 + k) as i32).to_be_bytes());
        }
        row.extend_from_slice(&r.to_be_bytes());
        // row 0's empty array points far past the heap: harmless, it reads nothing
        let at = if r == 0 {
            5_000_000
        } else if bad_offset && r == 3 {
            1_000_000
        } else {
            at
        };
        row.extend_from_slice(&at.to_be_bytes());
        // a string of r+1 letters
        let text: Vec<u8> = (0..=r).map(|k| b'a' + k as u8).collect();
        row.extend_from_slice(&(text.len() as u32).to_be_bytes());
        row.extend_from_slice(&(heap.len() as u32).to_be_bytes());
        heap.extend_from_slice(&text);
        // 2 doubles through a 64-bit descriptor
        row.extend_from_slice(&2u64.to_be_bytes());
        row.extend_from_slice(&(heap.len() as u64).to_be_bytes());
        heap.extend_from_slice(&(r as f64).to_be_bytes());
        heap.extend_from_slice(&(-(r as f64)).to_be_bytes());
        // logicals: T, F, undefined in turn
        row.extend_from_slice(&3u32.to_be_bytes());
        row.extend_from_slice(&(heap.len() as u32).to_be_bytes());
        heap.extend_from_slice(b"TF\0");
        rows.push(row);
    }
    let columns = vec![
        ("ints", "1PJ(3)", vec![]),
        ("text", "1PA(4)", vec![]),
        ("pair", "1QD(2)", vec![]),
        ("flags", "1PL(3)", vec![]),
    ];
    let path = dir.join(name);
    write(&path, &[image(true, 8, &[], &[], vec![]), common::bintable_with_heap(&columns, &rows, &heap)]);
    path
}

#[test]
fn variable_length_arrays_and_descriptors_outside_the_heap() {
    let dir = common::tempdir("tables-vla");
    let path = vla_table(&dir, "vla.fits", false);
    for batch_rows in [1, 3, 100] {
        let batches = read_all(&path, 1, batch_rows);
        let ints: Vec<i32> = batches
            .iter()
            .flat_map(|b| match &b.column("ints").expect("ints").values {
                ColumnValues::I32(v) => v.clone(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(ints, vec![10, 20, 21, 30, 31, 32], "batch rows {batch_rows}");
    }
    let b = read_all(&path, 1, 100).remove(0);
    assert_eq!(b.column("ints").expect("ints").list_offsets, Some(vec![0, 0, 1, 3, 6]));
    assert_eq!(strings(&b.column("text").expect("text").values), ["a", "ab", "abc", "abcd"]);
    assert_eq!(
        b.column("pair").expect("pair").values,
        ColumnValues::F64(vec![0.0, -0.0, 1.0, -1.0, 2.0, -2.0, 3.0, -3.0])
    );
    let flags = b.column("flags").expect("flags");
    assert_eq!(flags.values, ColumnValues::Bool([true, false, false].repeat(4)));
    assert_eq!(flags.nulls, Some([false, false, true].repeat(4)));

    // gzip-compressed, read through cfitsio (the heap read once per reader): the same batches
    let gzipped = |path: &std::path::Path| {
        let status = std::process::Command::new("gzip").arg("-kf").arg(path).status();
        status.is_ok_and(|s| s.success()).then(|| path.with_extension("fits.gz"))
    };
    if let Some(gz) = gzipped(&path) {
        for batch_rows in [1, 3, 100] {
            assert_eq!(read_all(&gz, 1, batch_rows), read_all(&path, 1, batch_rows), "batch rows {batch_rows}");
        }
    }

    // a descriptor pointing past the heap: a clear error naming the column, from any batch
    let bad = vla_table(&dir, "bad.fits", true);
    let file = FitsFile::open(&bad).expect("open");
    let results: Vec<_> = file.table(1).expect("table").with_batch_rows(2).build().expect("build").collect();
    assert!(results[0].is_ok(), "rows 0..2 are fine");
    let err = results[1].as_ref().expect_err("row 3 points outside");
    assert_eq!(err.kind(), ErrorKind::Decoding);
    assert!(err.to_string().contains("ints") && err.to_string().contains("outside the heap"), "{err}");
    if let Some(gz) = gzipped(&bad) {
        let file = FitsFile::open(&gz).expect("open");
        let results: Vec<_> = file.table(1).expect("table").with_batch_rows(2).build().expect("build").collect();
        assert!(results[0].is_ok(), "rows 0..2 are fine");
        let err = results[1].as_ref().expect_err("row 3 points outside");
        assert!(err.to_string().contains("bad.fits.gz") && err.to_string().contains("outside the heap"), "{err}");
    }
}

#[test]
fn ascii_tables_parse_as_astropy_does() {
    let dir = common::tempdir("tables-ascii");
    let card = common::card;
    let mut cards = vec![
        card("XTENSION", "'TABLE   '"),
        card("BITPIX", "8"),
        card("NAXIS", "2"),
        card("NAXIS1", "40"),
        card("NAXIS2", "4"),
        card("PCOUNT", "0"),
        card("GCOUNT", "1"),
        card("TFIELDS", "5"),
    ];
    for (n, (name, tform, tbcol)) in
        [("i4", "I4", 1), ("i10", "I10", 5), ("f", "F8.3", 15), ("d", "D10.2", 23), ("s", "A7", 34)].iter().enumerate()
    {
        cards.push(card(&format!("TTYPE{}", n + 1), &format!("'{name}'")));
        cards.push(card(&format!("TFORM{}", n + 1), &format!("'{tform}'")));
        cards.push(card(&format!("TBCOL{}", n + 1), &tbcol.to_string()));
    }
    cards.push(card("TNULL2", "'*'"));
    // columns 1-4, 5-14, 15-22, 23-32, 34-40
    let rows: Vec<String> = [
        ("12", "1234567890", "1.500", "1.25D+02", "abc"),
        ("-123", "*", "-2.000", "-3.5D-01", "x y"),
        ("0", "9999999999", "", "1.00E+00", ""),
        ("999", "42", "0.125", "0.", "seven"),
    ]
    .iter()
    .map(|(a, b, c, d, e)| format!("{a:>4}{b:>10}{c:>8}{d:>10} {e:<7}"))
    .collect();
    let data: Vec<u8> = rows.iter().flat_map(|r| r.as_bytes().to_vec()).collect();
    let path = dir.join("ascii.fits");
    write(&path, &[image(true, 8, &[], &[], vec![]), common::Hdu { cards, data }]);
    let batch = read_all(&path, 1, 3).into_iter().reduce(|mut a, b| {
        for (x, y) in a.columns.iter_mut().zip(b.columns) {
            match (&mut x.values, y.values) {
                (ColumnValues::I16(p), ColumnValues::I16(q)) => p.extend(q),
                (ColumnValues::I64(p), ColumnValues::I64(q)) => p.extend(q),
                (ColumnValues::F64(p), ColumnValues::F64(q)) => p.extend(q),
                _ => {}
            }
        }
        a
    });
    let b = batch.expect("batches");
    assert_eq!(b.column("i4").expect("i4").values, ColumnValues::I16(vec![12, -123, 0, 999]));
    assert_eq!(b.column("i10").expect("i10").values, ColumnValues::I64(vec![1234567890, 0, 9999999999, 42]));
    let ColumnValues::F64(f) = &b.column("f").expect("f").values else { panic!("f64") };
    assert_eq!((f[0], f[1], f[3]), (1.5, -2.0, 0.125));
    assert!(f[2].is_nan(), "a blank real is NaN");
    let ColumnValues::F64(d) = &b.column("d").expect("d").values else { panic!("f64") };
    assert_eq!(&d[..], &[125.0, -0.35, 1.0, 0.0]);
    let batch0 = read_all(&path, 1, 10).remove(0);
    assert_eq!(batch0.column("i10").expect("i10").nulls, Some(vec![false, true, false, false]));
    assert_eq!(strings(&batch0.column("s").expect("s").values), ["abc", "x y", "", "seven"]);

    // a field that is not a number: an error naming the column and row
    let bad = dir.join("bad.fits");
    let mut bytes = std::fs::read(&path).expect("read");
    let at = bytes.len() - 2880 + 40 + 16; // row 1, inside the F8.3 field
    bytes[at] = b'x';
    std::fs::write(&bad, bytes).expect("write");
    let file = FitsFile::open(&bad).expect("open");
    let err = file.table(1).expect("table").build().expect("build").next().expect("batch").expect_err("bad number");
    assert!(err.to_string().contains("column f") && err.to_string().contains("row 1"), "{err}");
}

#[test]
fn large_batches_decode_on_one_or_two_threads_identically() {
    // 30 000 rows of 22 bytes: over the threshold for decoding columns on worker threads
    let dir = common::tempdir("tables-large");
    let n = 30_000u32;
    let mut rows = Vec::with_capacity(n as usize);
    let mut heap = Vec::new();
    for r in 0..n {
        let mut row = Vec::with_capacity(22);
        row.extend_from_slice(&(r as i64).to_be_bytes());
        row.extend_from_slice(format!("{:<5}", r % 1000).as_bytes());
        row.push([b'T', b'F', 0][(r % 3) as usize]);
        row.extend_from_slice(&(if r % 7 == 0 { -1 } else { r as i32 }).to_be_bytes());
        // a variable-length array of r % 4 int16 values r, r + 1, ...
        let count = r % 4;
        row.extend_from_slice(&count.to_be_bytes());
        row.extend_from_slice(&(heap.len() as u32).to_be_bytes());
        for k in 0..count {
            heap.extend_from_slice(&((r + k) as i16).to_be_bytes());
        }
        rows.push(row);
    }
    let s = |v: &str| v.to_string();
    let columns = vec![
        ("id", "K", vec![]),
        ("s", "5A", vec![]),
        ("l", "L", vec![]),
        ("j", "J", vec![(s("TNULL"), s("-1"))]),
        ("v", "1PI(3)", vec![]),
    ];
    let path = dir.join("large.fits");
    write(&path, &[image(true, 8, &[], &[], vec![]), common::bintable_with_heap(&columns, &rows, &heap)]);
    for (threads, mmap) in [(1, false), (2, false), (2, true)] {
        let file = OpenOptions::new().threads(threads).mmap(mmap).open(&path).expect("open");
        let batch = file.table(1).expect("table").build().expect("build").next().expect("batch").expect("read");
        assert_eq!(batch.num_rows, n as usize);
        assert_eq!(batch.column("id").expect("id").values, ColumnValues::I64((0..n as i64).collect()));
        let text = &batch.column("s").expect("s").values;
        for r in [0usize, 1, 999, 1000, 12345, 29_999] {
            assert_eq!(text.str_at(r), Some(format!("{}", r % 1000).as_bytes()), "row {r}");
        }
        let l = batch.column("l").expect("l");
        assert_eq!(l.values, ColumnValues::Bool((0..n).map(|r| r % 3 == 0).collect()));
        assert_eq!(l.nulls, Some((0..n).map(|r| r % 3 == 2).collect()));
        let j = batch.column("j").expect("j");
        assert_eq!(j.nulls, Some((0..n).map(|r| r % 7 == 0).collect()));
        let v = batch.column("v").expect("v");
        let offsets = v.list_offsets.as_ref().expect("list");
        assert_eq!(offsets.len(), n as usize + 1);
        let ColumnValues::I16(elems) = &v.values else { panic!("i16") };
        for r in [0usize, 3, 7, 12_345, 29_999] {
            let (a, b) = (offsets[r] as usize, offsets[r + 1] as usize);
            let want: Vec<i16> = (0..(r as u32 % 4)).map(|k| (r as u32 + k) as i16).collect();
            assert_eq!(&elems[a..b], &want[..], "threads {threads} mmap {mmap} row {r}");
        }
    }
}

/// The values of column `name` over all batches of a filtered read of `columns`.
fn filtered(path: &std::path::Path, columns: &[&str], filter: &str) -> Vec<ColumnValues> {
    let file = FitsFile::open(path).expect("open");
    let batches: Vec<TableBatch> = file
        .table(1)
        .expect("table")
        .with_columns(columns)
        .expect("columns")
        .with_filter(filter)
        .expect("filter")
        .with_batch_rows(2)
        .build()
        .expect("build")
        .collect::<Result<_, _>>()
        .expect("batches");
    (0..columns.len())
        .map(|k| {
            let mut all: Option<ColumnValues> = None;
            for b in &batches {
                let v = b.columns[k].values.clone();
                all = Some(match (all, v) {
                    (None, v) => v,
                    (Some(ColumnValues::U16(mut a)), ColumnValues::U16(b)) => {
                        a.extend(b);
                        ColumnValues::U16(a)
                    }
                    (Some(ColumnValues::I16(mut a)), ColumnValues::I16(b)) => {
                        a.extend(b);
                        ColumnValues::I16(a)
                    }
                    (Some(a), b) => panic!("unexpected {a:?} + {b:?}"),
                });
            }
            all.expect("at least one batch")
        })
        .collect()
}

#[test]
fn filters_select_rows_with_sql_null_semantics() {
    let dir = common::tempdir("tables-filter");
    let path = all_types_table(&dir);
    // ushort is 0, 1000, 2000, 3000, 4000 by row: it shows which rows passed
    let rows = |filter: &str| filtered(&path, &["ushort"], filter).remove(0);
    let u = |r: &[u16]| ColumnValues::U16(r.iter().map(|r| r * 1000).collect());
    assert_eq!(rows("byte IS NULL"), u(&[2]));
    assert_eq!(rows("short IN (-2, 2)"), u(&[0, 4]));
    assert_eq!(rows("short > -3"), u(&[0, 1, 2, 4]), "a TNULL value compares false");
    assert_eq!(rows("NOT short > -3"), u(&[3]));
    assert_eq!(rows("flux BETWEEN 0.25 AND 0.75 AND NOT text == 'x'"), u(&[1, 3]));
    assert_eq!(rows("uint >= 2 && flag IS NOT NULL"), u(&[3, 4]));
    assert_eq!(rows("flag == true || scaled < 11"), u(&[0, 3]), "row 1 of scaled is TNULL: false");
    assert_eq!(rows("text = 'abc' or text = \"full6!\""), u(&[0, 4]));
    assert_eq!(rows("ushort > 10000"), ColumnValues::U16(vec![]));
    // the filter's columns are read but only the selected ones come back
    let both = filtered(&path, &["ushort", "short"], "short != 0");
    assert_eq!(both[1], ColumnValues::I16(vec![-2, -1, 2]), "row 3 is TNULL: != is false too");

    let file = FitsFile::open(&path).expect("open");
    for (bad, what) in [("short >", "expected"), ("nope == 1", "no column named"), ("text < 3", "cannot be compared")] {
        let err = match file.table(1).expect("table").with_filter(bad) {
            Err(e) => e,
            Ok(reader) => reader.build().expect("build").next().expect("batch").expect_err(bad),
        };
        assert_eq!(err.kind(), ErrorKind::Parameter, "{bad}");
        assert!(err.to_string().contains(what), "{bad}: {err}");
    }
    let err = file
        .table(1)
        .expect("table")
        .with_filter("vec > 1")
        .expect("parses")
        .build()
        .expect("build")
        .next()
        .expect("batch");
    assert!(err.expect_err("an array column").to_string().contains("not a scalar column"));
}

#[test]
fn zero_row_tables_and_zero_width_columns() {
    let dir = common::tempdir("tables-empty");
    let s = |v: &str| v.to_string();
    // no rows: a schema, no batch, and an empty batch on request
    let columns = vec![("a", "J", vec![]), ("b", "3A", vec![(s("TUNIT"), s("'m'"))])];
    let empty = dir.join("empty.fits");
    let mut table = bintable(&columns, &[]);
    table.cards[3] = common::card("NAXIS1", "7"); // the helper takes the width from a first row
    write(&empty, &[image(true, 8, &[], &[], vec![]), table]);
    let file = FitsFile::open(&empty).expect("open");
    let reader = file.table(1).expect("table");
    assert_eq!((reader.schema().nrows, reader.schema().row_bytes), (0, 7));
    let mut batches = reader.build().expect("build");
    assert!(batches.next().is_none());
    let b = batches.empty_batch().expect("empty batch");
    assert_eq!((b.num_rows, b.columns.len()), (0, 2));
    assert_eq!(b.columns[0].values, ColumnValues::I32(vec![]));
    assert_eq!(b.into_record_batch().expect("arrow").num_rows(), 0);

    // zero-width columns (0J, 0A, 0PE) take no bytes: empty values, empty strings, empty lists
    let columns = vec![("none", "0J", vec![]), ("x", "E", vec![]), ("blank", "0A", vec![]), ("novla", "0PE", vec![])];
    let rows: Vec<Vec<u8>> = (0..3).map(|r: i32| (r as f32).to_be_bytes().to_vec()).collect();
    let zero = dir.join("zero.fits");
    write(&zero, &[image(true, 8, &[], &[], vec![]), bintable(&columns, &rows)]);
    let b = read_all(&zero, 1, 10).remove(0);
    assert_eq!(b.column("x").expect("x").values, ColumnValues::F32(vec![0.0, 1.0, 2.0]));
    assert_eq!(b.column("none").expect("none").values, ColumnValues::I32(vec![]));
    assert_eq!(strings(&b.column("blank").expect("blank").values), ["", "", ""]);
    assert_eq!(b.column("novla").expect("novla").list_offsets, Some(vec![0, 0, 0, 0]));
    assert_eq!(b.into_record_batch().expect("arrow").num_rows(), 3);
}

/// A 30 000-row table of fixed-width columns whose undefined values appear late: a logical 0
/// only in row 29 000 and a TNULL only in row 20 000 (so that a null mask starts mid-read, in
/// one thread's part and not the other's), strings of varying length, a scaled column.
fn late_nulls_table(dir: &std::path::Path) -> std::path::PathBuf {
    let n = 30_000u32;
    let rows: Vec<Vec<u8>> = (0..n)
        .map(|r| {
            let mut row = Vec::with_capacity(27);
            row.extend_from_slice(&(r as f64 * 0.5).to_be_bytes());
            let text = "x".repeat((r % 11) as usize);
            row.extend_from_slice(format!("{text:<10}").as_bytes());
            row.push(if r == 29_000 {
                0
            } else if r % 2 == 0 {
                b'T'
            } else {
                b'F'
            });
            row.extend_from_slice(&(if r == 20_000 { -7i32 } else { r as i32 }).to_be_bytes());
            row.extend_from_slice(&((r % 1000) as i16).to_be_bytes());
            row.extend_from_slice(&[(r % 256) as u8, (r % 251) as u8]);
            row
        })
        .collect();
    let s = |v: &str| v.to_string();
    let columns = vec![
        ("d", "D", vec![]),
        ("s", "10A", vec![]),
        ("l", "L", vec![]),
        ("j", "J", vec![(s("TNULL"), s("-7"))]),
        ("scaled", "I", vec![(s("TSCAL"), s("0.25")), (s("TZERO"), s("10"))]),
        ("pair", "2B", vec![]),
    ];
    let path = dir.join("late-nulls.fits");
    write(&path, &[image(true, 8, &[], &[], vec![]), bintable(&columns, &rows)]);
    path
}

#[test]
fn chunked_threaded_pooled_and_mapped_reads_agree() {
    let dir = common::tempdir("tables-chunks");
    let path = late_nulls_table(&dir);
    let n = 30_000usize;
    let check = |batches: &[TableBatch], label: &str| {
        let column = |name: &str| -> Vec<ColumnValues> {
            batches.iter().map(|b| b.column(name).expect("column").values.clone()).collect()
        };
        let nulls = |name: &str| -> Vec<bool> {
            batches
                .iter()
                .flat_map(|b| {
                    let c = b.column(name).expect("column");
                    c.nulls.clone().unwrap_or_else(|| vec![false; b.num_rows * c.per_row])
                })
                .collect()
        };
        let f64s = |name: &str| -> Vec<f64> {
            column(name)
                .into_iter()
                .flat_map(|v| if let ColumnValues::F64(v) = v { v } else { panic!("{v:?}") })
                .collect()
        };
        assert_eq!(f64s("d"), (0..n).map(|r| r as f64 * 0.5).collect::<Vec<_>>(), "{label}");
        let text: Vec<String> = column("s").iter().flat_map(strings).collect();
        assert_eq!(text, (0..n).map(|r| "x".repeat(r % 11)).collect::<Vec<_>>(), "{label}");
        let l: Vec<bool> =
            column("l").into_iter().flat_map(|v| if let ColumnValues::Bool(v) = v { v } else { panic!() }).collect();
        assert_eq!(l, (0..n).map(|r| r % 2 == 0 && r != 29_000).collect::<Vec<_>>(), "{label}");
        assert_eq!(nulls("l"), (0..n).map(|r| r == 29_000).collect::<Vec<_>>(), "{label}");
        let j: Vec<i32> =
            column("j").into_iter().flat_map(|v| if let ColumnValues::I32(v) = v { v } else { panic!() }).collect();
        assert_eq!(j, (0..n).map(|r| if r == 20_000 { -7 } else { r as i32 }).collect::<Vec<_>>(), "{label}");
        assert_eq!(nulls("j"), (0..n).map(|r| r == 20_000).collect::<Vec<_>>(), "{label}");
        assert_eq!(f64s("scaled"), (0..n).map(|r| (r % 1000) as f64 * 0.25 + 10.0).collect::<Vec<_>>(), "{label}");
        let pair: Vec<u8> =
            column("pair").into_iter().flat_map(|v| if let ColumnValues::U8(v) = v { v } else { panic!() }).collect();
        assert_eq!(pair, (0..n).flat_map(|r| [(r % 256) as u8, (r % 251) as u8]).collect::<Vec<_>>(), "{label}");
    };
    let pool = torchfits::ColumnPool::default();
    // batch sizes below and above the threshold for threads, one batch of it all; 1 or 2
    // threads; pread (chunks read by each thread) or mmap; twice through one pool
    for batch_rows in [7_777, 20_000, n] {
        for (threads, mmap) in [(1, false), (2, false), (2, true)] {
            for round in 0..2 {
                let allocations = pool.stats().allocations;
                let file = OpenOptions::new().threads(threads).mmap(mmap).open(&path).expect("open");
                let reader = file.table(1).expect("table").with_batch_rows(batch_rows).with_pool(&pool);
                let batches: Vec<TableBatch> = reader.build().expect("build").collect::<Result<_, _>>().expect("read");
                check(&batches, &format!("batch {batch_rows} threads {threads} mmap {mmap} round {round}"));
                for b in batches {
                    pool.recycle(b);
                }
                if round == 1 {
                    // the second round takes every buffer from the pool
                    assert_eq!(
                        pool.stats().allocations,
                        allocations,
                        "batch {batch_rows} threads {threads} mmap {mmap}"
                    );
                }
            }
        }
    }
    // a row range that starts and ends inside chunks, two columns: the same values
    let file = OpenOptions::new().threads(2).open(&path).expect("open");
    let batches: Vec<TableBatch> = file
        .table(1)
        .expect("table")
        .with_columns(&["j", "s"])
        .expect("columns")
        .with_rows(12_345..29_999)
        .expect("rows")
        .with_batch_rows(17_000)
        .build()
        .expect("build")
        .collect::<Result<_, _>>()
        .expect("read");
    let j: Vec<i32> = batches
        .iter()
        .flat_map(|b| if let ColumnValues::I32(v) = &b.columns[0].values { v.clone() } else { panic!() })
        .collect();
    assert_eq!(j, (12_345..29_999).map(|r| if r == 20_000 { -7 } else { r }).collect::<Vec<_>>());
    let text: Vec<String> = batches.iter().flat_map(|b| strings(&b.columns[1].values)).collect();
    assert_eq!(text, (12_345..29_999usize).map(|r| "x".repeat(r % 11)).collect::<Vec<_>>());

    // truncated inside the rows: a clear error naming the file and the HDU, on every path
    let bytes = std::fs::read(&path).expect("read");
    let cut = dir.join("late-nulls-cut.fits");
    std::fs::write(&cut, &bytes[..bytes.len() - 2880 * 40]).expect("write");
    for (threads, mmap) in [(1, false), (2, false), (2, true)] {
        let file = OpenOptions::new().threads(threads).mmap(mmap).open(&cut).expect("header is intact");
        let err = match file.table(1).and_then(|t| t.with_batch_rows(n).build()) {
            Ok(mut batches) => batches.next().expect("a batch").expect_err("truncated rows"),
            Err(e) => e,
        };
        let text = err.to_string();
        assert!(text.contains("late-nulls-cut.fits") && text.contains("HDU 1") && text.contains("truncated"), "{text}");
    }
}

#[test]
fn a_tdim_of_one_element_is_an_array_per_row_as_astropy_reads_it() {
    let s = |v: &str| v.to_string();
    let columns = vec![
        ("one_by_one", "E", vec![(s("TDIM"), s("'(1,1)'"))]),
        ("one", "1J", vec![(s("TDIM"), s("'(1)'"))]),
        ("scalar", "E", vec![]),
    ];
    let rows: Vec<Vec<u8>> = (0..3u8)
        .map(|r| {
            let mut row = (f32::from(r) + 0.5).to_be_bytes().to_vec();
            row.extend_from_slice(&(i32::from(r) * 7).to_be_bytes());
            row.extend_from_slice(&(f32::from(r) * 1.5).to_be_bytes());
            row
        })
        .collect();
    let dir = common::tempdir("tdim-one");
    let path = dir.join("tdim.fits");
    write(&path, &[image(true, 8, &[], &[], vec![]), bintable(&columns, &rows)]);
    let batch = read_all(&path, 1, 1000).remove(0);
    let shapes: Vec<Option<Vec<usize>>> = batch.columns.iter().map(|c| c.shape.clone()).collect();
    assert_eq!(shapes, [Some(vec![1, 1]), Some(vec![1]), None]);
    assert_eq!(batch.columns[0].values, ColumnValues::F32(vec![0.5, 1.5, 2.5]));
    let arrow = batch.into_record_batch().expect("arrow");
    use arrow_schema::DataType;
    let types: Vec<DataType> = arrow.schema().fields().iter().map(|f| f.data_type().clone()).collect();
    assert!(
        matches!(&types[0], DataType::FixedSizeList(item, 1) if item.data_type() == &DataType::Float32),
        "{types:?}"
    );
    assert!(matches!(&types[1], DataType::FixedSizeList(item, 1) if item.data_type() == &DataType::Int32), "{types:?}");
    assert_eq!(types[2], DataType::Float32);
    std::fs::remove_dir_all(&dir).ok();
}
