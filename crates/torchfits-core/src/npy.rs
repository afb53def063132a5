//! Writing NumPy `.npy` files (format version 1.0, little-endian, C order).

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use crate::error::{Error, Result};
use crate::image::{Dtype, ImageData, Pixels, each_pixels};

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
    let shape_txt = match shape.len() {
        1 => format!("({},)", shape[0]),
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
    let pixels: &Pixels = &data.pixels;
    each_pixels!(pixels, v => {
        let mut buf = Vec::with_capacity(64 * 1024);
        for chunk in v.chunks(8192) {
            buf.clear();
            for x in chunk {
                buf.extend_from_slice(&x.to_le_bytes());
            }
            w.write_all(&buf)?;
        }
    });
    w.flush()
}

/// Writes `data` to a `.npy` file at `path` (created or truncated).
///
/// ```
/// use torchfits_core::{ImageData, Pixels, npy};
/// let data = ImageData { shape: vec![2, 3], pixels: Pixels::I16(vec![1, 2, 3, 4, 5, 6]) };
/// let path = std::env::temp_dir().join("torchfits-npy-doc.npy");
/// npy::write(&path, &data)?;
/// let bytes = std::fs::read(&path)?;
/// assert_eq!(&bytes[..6], b"\x93NUMPY");
/// let header_len = 10 + u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
/// assert_eq!(header_len % 64, 0);
/// assert_eq!(bytes.len(), header_len + 6 * 2); // header, then 6 little-endian int16 values
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write(path: &Path, data: &ImageData) -> Result<()> {
    let f = File::create(path).map_err(|e| Error::io(e, "cannot create the output").in_file(path))?;
    to_writer(BufWriter::new(f), data).map_err(|e| Error::io(e, "cannot write the output").in_file(path))
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
}
