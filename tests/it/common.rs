//! Test fixtures: a minimal FITS writer (uncompressed images, any header cards) and paths.

use std::path::{Path, PathBuf};

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `tests/data/compressed.fits` (written by astropy, see make_fixtures.py).
pub fn compressed_fixture() -> PathBuf {
    repo().join("tests/data/compressed.fits")
}

/// `examples/data/sample.fits`.
pub fn sample() -> PathBuf {
    repo().join("examples/data/sample.fits")
}

/// A fresh, empty directory for one test, under the target directory: a rerun replaces it, so
/// test runs never pile files up in the system's temporary directory.
pub fn tempdir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("it").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// One 80-character card from a keyword and the raw value text (already FITS-formatted).
pub fn card(keyword: &str, value: &str) -> String {
    let text = if value.starts_with('\'') || value.len() > 20 {
        format!("{keyword:<8}= {value}")
    } else {
        format!("{keyword:<8}= {value:>20}")
    };
    assert!(text.len() <= 80, "card too long: {text}");
    format!("{text:<80}")
}

/// One image HDU: header cards (mandatory ones first, then `extra`) and big-endian data bytes.
pub struct Hdu {
    pub cards: Vec<String>,
    pub data: Vec<u8>,
}

/// An image HDU of `bitpix` with `shape` in C order; `data` is the big-endian pixel bytes.
pub fn image(primary: bool, bitpix: i32, shape: &[usize], extra: &[(&str, &str)], data: Vec<u8>) -> Hdu {
    let mut cards = Vec::new();
    if primary {
        cards.push(card("SIMPLE", "T"));
    } else {
        cards.push(card("XTENSION", "'IMAGE   '"));
    }
    cards.push(card("BITPIX", &bitpix.to_string()));
    cards.push(card("NAXIS", &shape.len().to_string()));
    for (k, n) in shape.iter().rev().enumerate() {
        cards.push(card(&format!("NAXIS{}", k + 1), &n.to_string()));
    }
    if !primary {
        cards.push(card("PCOUNT", "0"));
        cards.push(card("GCOUNT", "1"));
    } else {
        cards.push(card("EXTEND", "T"));
    }
    for (k, v) in extra {
        cards.push(card(k, v));
    }
    let expected = shape.iter().product::<usize>() * (bitpix.unsigned_abs() as usize / 8);
    assert_eq!(data.len(), if shape.is_empty() { 0 } else { expected }, "data size");
    Hdu { cards, data }
}

/// Writes HDUs to `path` with FITS padding (blanks after headers, zeros after data).
pub fn write(path: &Path, hdus: &[Hdu]) {
    std::fs::write(path, fits_bytes(hdus)).expect("write fixture");
}

/// The bytes of a FITS file of `hdus`, padded.
pub fn fits_bytes(hdus: &[Hdu]) -> Vec<u8> {
    let mut out = Vec::new();
    for h in hdus {
        for c in &h.cards {
            out.extend_from_slice(c.as_bytes());
        }
        out.extend_from_slice(format!("{:<80}", "END").as_bytes());
        while out.len() % 2880 != 0 {
            out.push(b' ');
        }
        out.extend_from_slice(&h.data);
        while out.len() % 2880 != 0 {
            out.push(0);
        }
    }
    out
}

/// Big-endian bytes of a slice of numbers.
pub fn be<T: Copy, const N: usize>(values: &[T], to_be: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| to_be(v)).collect()
}

/// The integer pattern of make_fixtures.py for `shape`, C order, in `lo..hi`.
pub fn pattern(shape: &[usize], lo: i64, hi: i64) -> Vec<i64> {
    let weights = [7i64, 13, 31, 61];
    let n: usize = shape.iter().product();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; shape.len()];
    for _ in 0..n {
        let s: i64 = idx.iter().zip(weights).map(|(&i, w)| i as i64 * w).sum();
        out.push((s * 2654435761).rem_euclid(hi - lo) + lo);
        for k in (0..shape.len()).rev() {
            idx[k] += 1;
            if idx[k] < shape[k] {
                break;
            }
            idx[k] = 0;
        }
    }
    out
}

/// The elements of a C-order array of `shape` inside `ranges`, in C order.
pub fn slice<T: Copy>(data: &[T], shape: &[usize], ranges: &[std::ops::Range<usize>]) -> Vec<T> {
    let mut out = Vec::new();
    let n: usize = ranges.iter().map(|r| r.len()).product();
    if n == 0 {
        return out;
    }
    let mut idx: Vec<usize> = ranges.iter().map(|r| r.start).collect();
    for _ in 0..n {
        let mut flat = 0;
        for (k, &i) in idx.iter().enumerate() {
            flat = flat * shape[k] + i;
        }
        out.push(data[flat]);
        for k in (0..idx.len()).rev() {
            idx[k] += 1;
            if idx[k] < ranges[k].end {
                break;
            }
            idx[k] = ranges[k].start;
        }
    }
    out
}

/// A column of [`bintable`]: TTYPE, TFORM and extra cards (keyword without the number, value).
pub type TestColumn<'a> = (&'a str, &'a str, Vec<(String, String)>);

/// A binary-table HDU: `columns` described as [`TestColumn`]s, `rows` the raw bytes of each row.
pub fn bintable(columns: &[TestColumn<'_>], rows: &[Vec<u8>]) -> Hdu {
    bintable_with_heap(columns, rows, &[])
}

/// A binary-table HDU with a heap (variable-length arrays) after its rows.
pub fn bintable_with_heap(columns: &[TestColumn<'_>], rows: &[Vec<u8>], heap: &[u8]) -> Hdu {
    let row_bytes = rows.first().map_or(0, Vec::len);
    let mut cards = vec![
        card("XTENSION", "'BINTABLE'"),
        card("BITPIX", "8"),
        card("NAXIS", "2"),
        card("NAXIS1", &row_bytes.to_string()),
        card("NAXIS2", &rows.len().to_string()),
        card("PCOUNT", &heap.len().to_string()),
        card("GCOUNT", "1"),
        card("TFIELDS", &columns.len().to_string()),
    ];
    for (k, (name, tform, extra)) in columns.iter().enumerate() {
        cards.push(card(&format!("TTYPE{}", k + 1), &format!("'{name}'")));
        cards.push(card(&format!("TFORM{}", k + 1), &format!("'{tform}'")));
        for (key, value) in extra {
            cards.push(card(&format!("{key}{}", k + 1), value));
        }
    }
    let mut data = rows.concat();
    data.extend_from_slice(heap);
    Hdu { cards, data }
}
