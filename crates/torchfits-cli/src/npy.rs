//! NumPy `.npy` files: writing (format version 1.0, little-endian, C order) and reading (versions
//! 1 to 3, either byte order, C order).

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::Path;

use torchfits_core::{Dtype, Error, ImageData, Limits, Pixels, Result};

/// NumPy's type string for a dtype, little-endian.
pub fn descr(dtype: Dtype) -> &'static str {
    match dtype {
        Dtype::U8 => "|u1",
        Dtype::I8 => "|i1",
        Dtype::I16 => "<i2",
        Dtype::U16 => "<u2",
        Dtype::I32 => "<i4",
        Dtype::U32 => "<u4",
        Dtype::I64 => "<i8",
        Dtype::U64 => "<u8",
        Dtype::F32 => "<f4",
        Dtype::F64 => "<f8",
    }
}

/// The `.npy` header (magic, version, length, dict, padding) for an array of `dtype` and `shape`.
pub fn header(dtype: Dtype, shape: &[usize]) -> Vec<u8> {
    let shape_txt = match shape {
        [n] => format!("({n},)"),
        _ => format!("({})", shape.iter().map(|n| n.to_string()).collect::<Vec<_>>().join(", ")),
    };
    let mut dict = format!("{{'descr': '{}', 'fortran_order': False, 'shape': {shape_txt}, }}", descr(dtype));
    // magic(6) + version(2) + len(2) + dict + '\n' is a multiple of 64
    let total = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat((64 - total % 64) % 64));
    dict.push('\n');
    let mut out = Vec::with_capacity(10 + dict.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

/// Writes `data` as a `.npy` stream (streams the pixels in chunks; allocates only a small buffer).
pub fn to_writer<W: Write>(mut w: W, data: &ImageData) -> std::io::Result<()> {
    w.write_all(&header(data.pixels.dtype(), &data.shape))?;
    let bytes = data.pixels.as_bytes();
    if cfg!(target_endian = "little") {
        w.write_all(bytes)?;
    } else {
        let size = data.pixels.dtype().size();
        let mut buf = Vec::with_capacity(64 * 1024);
        for chunk in bytes.chunks(64 * 1024) {
            buf.clear();
            chunk.chunks_exact(size).for_each(|value| buf.extend(value.iter().rev()));
            w.write_all(&buf)?;
        }
    }
    w.flush()
}

/// Writes `data` to a `.npy` file at `path` (created or truncated).
pub fn write(path: &Path, data: &ImageData) -> Result<()> {
    let f = File::create(path).map_err(|e| Error::io(e, "cannot create the output").in_file(path))?;
    to_writer(BufWriter::new(f), data).map_err(|e| Error::io(e, "cannot write the output").in_file(path))
}

/// Reads a `.npy` file: its shape (C order) and values. Every NumPy integer, float and bool
/// (as u8) type of 1 to 8 bytes, in either byte order; C order only (a Fortran-order array is an
/// error that says how to fix it). The size the header claims is checked against `limits` and
/// against the file's length before anything is allocated.
// string slices: the dictionary is sliced at positions `find` returned
#[allow(clippy::string_slice)]
pub fn read(path: &Path, limits: &Limits) -> Result<ImageData> {
    let in_file = |e: Error| e.in_file(path);
    let mut f = File::open(path).map_err(|e| in_file(Error::io(e, "cannot open")))?;
    let len = f.metadata().map_err(|e| in_file(Error::io(e, "cannot stat")))?.len();
    let mut head = [0u8; 12];
    f.read_exact(&mut head[..10]).map_err(|_| in_file(Error::decoding("not a .npy file (too short)")))?;
    if &head[..6] != b"\x93NUMPY" {
        return Err(in_file(Error::decoding("not a .npy file (no \\x93NUMPY magic)")));
    }
    let (header_len, prefix) = match head[6] {
        1 => (u16::from_le_bytes([head[8], head[9]]) as u64, 10u64),
        2 | 3 => {
            f.read_exact(&mut head[10..12]).map_err(|_| in_file(Error::decoding("truncated .npy header")))?;
            (u32::from_le_bytes([head[8], head[9], head[10], head[11]]) as u64, 12)
        }
        v => return Err(in_file(Error::unsupported(format!(".npy format version {v}")))),
    };
    if header_len > 1 << 20 || prefix + header_len > len {
        return Err(in_file(Error::decoding(format!("a .npy header of {header_len} bytes does not fit the file"))));
    }
    let mut dict = vec![0u8; header_len as usize];
    f.read_exact(&mut dict).map_err(|e| in_file(Error::io(e, "cannot read")))?;
    let dict = String::from_utf8_lossy(&dict).into_owned();
    let field = |key: &str| -> Option<String> {
        let at = dict.find(&format!("'{key}'"))? + key.len() + 2;
        let rest = dict[at..].trim_start().strip_prefix(':')?.trim_start();
        Some(rest.to_string())
    };
    let bad = |what: &str| in_file(Error::decoding(format!("the .npy header has no readable {what}: {dict:?}")));
    let descr =
        field("descr").and_then(|d| d.strip_prefix('\'').and_then(|d| d.split('\'').next().map(str::to_string)));
    let descr = descr.ok_or_else(|| bad("descr"))?;
    let fortran = field("fortran_order").ok_or_else(|| bad("fortran_order"))?;
    if fortran.starts_with("True") {
        return Err(in_file(Error::unsupported(
            "a Fortran-order array: save it with numpy.ascontiguousarray(a) first",
        )));
    }
    let shape_text = field("shape").ok_or_else(|| bad("shape"))?;
    let inner = shape_text.strip_prefix('(').and_then(|s| s.split(')').next()).ok_or_else(|| bad("shape"))?;
    let shape: Vec<usize> = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>())
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| bad("shape"))?;
    let (order, code) = descr.split_at(1.min(descr.len()));
    let big = match order {
        ">" => true,
        "<" | "|" | "=" => false,
        _ => return Err(in_file(Error::unsupported(format!("the .npy dtype {descr:?}")))),
    };
    let dtype = match code {
        "u1" | "b1" => Dtype::U8,
        "i1" => Dtype::I8,
        "i2" => Dtype::I16,
        "u2" => Dtype::U16,
        "i4" => Dtype::I32,
        "u4" => Dtype::U32,
        "i8" => Dtype::I64,
        "u8" => Dtype::U64,
        "f4" => Dtype::F32,
        "f8" => Dtype::F64,
        _ => return Err(in_file(Error::unsupported(format!("the .npy dtype {descr:?} (numbers and bools only)")))),
    };
    let count = shape.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64));
    let bytes = count.and_then(|c| c.checked_mul(dtype.size() as u64)).ok_or_else(|| bad("shape"))?;
    limits.check_alloc(bytes, "the .npy array").map_err(in_file)?;
    if prefix + header_len + bytes > len {
        return Err(in_file(Error::decoding(format!(
            "the .npy file holds {} bytes of data, its header says {bytes}",
            len - prefix - header_len
        ))));
    }
    let mut raw = vec![0u8; bytes as usize];
    f.read_exact(&mut raw).map_err(|e| in_file(Error::io(e, "cannot read")))?;
    macro_rules! decode {
        ($t:ty, $variant:ident) => {{
            const N: usize = std::mem::size_of::<$t>();
            Pixels::$variant(
                raw.chunks_exact(N)
                    .map(|c| {
                        let mut a = [0u8; N];
                        a.copy_from_slice(c);
                        if big { <$t>::from_be_bytes(a) } else { <$t>::from_le_bytes(a) }
                    })
                    .collect(),
            )
        }};
    }
    let pixels = match dtype {
        Dtype::U8 => Pixels::U8(raw),
        Dtype::I8 => Pixels::I8(raw.iter().map(|&b| b as i8).collect()),
        Dtype::I16 => decode!(i16, I16),
        Dtype::U16 => decode!(u16, U16),
        Dtype::I32 => decode!(i32, I32),
        Dtype::U32 => decode!(u32, U32),
        Dtype::I64 => decode!(i64, I64),
        Dtype::U64 => decode!(u64, U64),
        Dtype::F32 => decode!(f32, F32),
        Dtype::F64 => decode!(f64, F64),
    };
    Ok(ImageData { shape, pixels })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_aligned_and_describes_the_array() {
        for shape in [vec![], vec![7], vec![3, 4], vec![2, 3, 4, 5]] {
            let h = header(Dtype::F32, &shape);
            assert_eq!(h.len() % 64, 0);
            let text = String::from_utf8_lossy(&h[10..]).to_string();
            assert!(text.contains("'descr': '<f4'"));
            assert!(text.ends_with('\n'));
        }
        let h = String::from_utf8_lossy(&header(Dtype::U16, &[7])).to_string();
        assert!(h.contains("'shape': (7,)"));
    }

    #[test]
    fn reads_both_byte_orders_and_refuses_what_it_cannot_hold() {
        let dir = std::env::temp_dir().join(format!("torchfits-npy-unit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let put = |name: &str, dict: &str, data: &[u8]| {
            let mut dict = dict.to_string();
            let total = 10 + dict.len() + 1;
            dict.push_str(&" ".repeat((64 - total % 64) % 64));
            dict.push('\n');
            let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
            bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
            bytes.extend_from_slice(dict.as_bytes());
            bytes.extend_from_slice(data);
            let path = dir.join(name);
            std::fs::write(&path, bytes).expect("write");
            path
        };
        let big = put("big.npy", "{'descr': '>i2', 'fortran_order': False, 'shape': (3,), }", &[0, 1, 1, 0, 255, 255]);
        let got = read(&big, &Limits::default()).expect("read");
        assert_eq!((got.shape, got.pixels), (vec![3], Pixels::I16(vec![1, 256, -1])));
        let fortran = put("f.npy", "{'descr': '<i2', 'fortran_order': True, 'shape': (1, 1), }", &[0, 0]);
        assert!(read(&fortran, &Limits::default()).unwrap_err().to_string().contains("ascontiguousarray"));
        let short = put("s.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (4,), }", &[0; 16]);
        assert!(read(&short, &Limits::default()).is_err());
        let huge = put("h.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000, 100000), }", &[]);
        assert!(read(&huge, &Limits::default()).is_err());
        let text = put("t.npy", "{'descr': '<U3', 'fortran_order': False, 'shape': (1,), }", &[0; 12]);
        assert!(read(&text, &Limits::default()).is_err());
        std::fs::remove_dir_all(&dir).expect("clean");
    }

    #[test]
    fn a_written_file_reads_back_with_an_aligned_header() {
        let dir = std::env::temp_dir().join(format!("torchfits-npy-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("i16.npy");
        let data = ImageData { shape: vec![2, 3], pixels: Pixels::I16(vec![1, 2, 3, 4, 5, -6]) };
        write(&path, &data).expect("write");
        let bytes = std::fs::read(&path).expect("bytes");
        let header_len = 10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((&bytes[..6], header_len % 64), (&b"\x93NUMPY"[..], 0));
        assert_eq!(bytes.len(), header_len + 6 * 2);
        assert_eq!(read(&path, &Limits::default()).expect("read"), data);
        std::fs::remove_dir_all(&dir).ok();
    }
}
