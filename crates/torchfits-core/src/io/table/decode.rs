//! Decoding fixed-width binary-table cells (and the elements of variable-length arrays) into
//! typed column buffers: byte-swap, unsigned offsets and TSCAL/TZERO in one pass per cell, the
//! search for undefined values (logical 0, TNULL) fused into the same pass.
//!
//! A batch's rows are cut into parts, one per thread, and each part into chunks of a few thousand
//! rows; every selected column of a chunk is decoded while the chunk's rows are in cache, so the
//! raw rows cross the memory bus once, whatever the number of columns.

use torchfits_format::table_schema::{ColumnSchema, FitsType};

/// Where cells come from: row `r`'s cell is `rows[r * stride + offset..][..width]`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cells<'a> {
    pub rows: &'a [u8],
    pub stride: usize,
    pub offset: usize,
    pub width: usize,
}

impl<'a> Cells<'a> {
    /// Number of cells.
    pub fn count(&self) -> usize {
        self.rows.len().checked_div(self.stride).unwrap_or(0)
    }

    /// The cells, in order (empty slices if a cell does not fit its row, which a validated
    /// schema rules out).
    pub fn iter(self) -> impl Iterator<Item = &'a [u8]> {
        let Cells { rows, stride, offset, width } = self;
        rows.chunks_exact(stride.max(1))
            .take(self.count())
            .map(move |row| row.get(offset..offset + width).unwrap_or(&[]))
    }

    /// Cells `first..first + n`.
    pub fn slice(self, first: usize, n: usize) -> Cells<'a> {
        let (a, b) = (first * self.stride, (first + n) * self.stride);
        Cells { rows: self.rows.get(a..b).unwrap_or(&[]), ..self }
    }
}

/// The rest of a column's output, filled from the front as cells are decoded. String bytes are
/// appended to an owned buffer; `ends[i]` gets the end of string `i` in it.
#[derive(Debug)]
#[allow(missing_docs)]
pub(super) enum Out<'a> {
    Bool(&'a mut [bool]),
    U8(&'a mut [u8]),
    I16(&'a mut [i16]),
    U16(&'a mut [u16]),
    I32(&'a mut [i32]),
    U32(&'a mut [u32]),
    I64(&'a mut [i64]),
    U64(&'a mut [u64]),
    F32(&'a mut [f32]),
    F64(&'a mut [f64]),
    C32(&'a mut [[f32; 2]]),
    C64(&'a mut [[f64; 2]]),
    Str { ends: &'a mut [i32], bytes: Vec<u8> },
}

impl<'a> Out<'a> {
    /// Splits the first `m` elements (rows, for strings) off `self`, which keeps the rest.
    pub fn split_front(&mut self, m: usize) -> Out<'a> {
        fn take<'a, T>(s: &mut &'a mut [T], m: usize) -> &'a mut [T] {
            let m = m.min(s.len());
            let (head, tail) = std::mem::take(s).split_at_mut(m);
            *s = tail;
            head
        }
        match self {
            Out::Bool(s) => Out::Bool(take(s, m)),
            Out::U8(s) => Out::U8(take(s, m)),
            Out::I16(s) => Out::I16(take(s, m)),
            Out::U16(s) => Out::U16(take(s, m)),
            Out::I32(s) => Out::I32(take(s, m)),
            Out::U32(s) => Out::U32(take(s, m)),
            Out::I64(s) => Out::I64(take(s, m)),
            Out::U64(s) => Out::U64(take(s, m)),
            Out::F32(s) => Out::F32(take(s, m)),
            Out::F64(s) => Out::F64(take(s, m)),
            Out::C32(s) => Out::C32(take(s, m)),
            Out::C64(s) => Out::C64(take(s, m)),
            Out::Str { ends, .. } => Out::Str { ends: take(ends, m), bytes: Vec::new() },
        }
    }
}

/// Decodes `cells` (each holding `per` elements of `c`'s type; for strings one string, for bits
/// `per` bits) into the front of `out`, advancing it. Returns whether an undefined value (a
/// logical 0, an integer equal to TNULL) was seen: the caller builds the mask with [`push_nulls`].
pub(super) fn decode_into(c: &ColumnSchema, cells: Cells<'_>, per: usize, out: &mut Out<'_>) -> bool {
    let n = cells.count();
    if let Out::Str { ends, bytes } = out {
        let n = n.min(ends.len());
        let (head, tail) = std::mem::take(ends).split_at_mut(n);
        *ends = tail;
        strings(cells, head, bytes);
        return false;
    }
    let (s, z, tnull) = (c.scale, c.zero, c.null);
    let scaled = s != 1.0 || z != 0.0;
    macro_rules! fill {
        ($o:expr, $n:literal, $conv:expr) => {
            fill::<_, $n>(cells, per, $o, $conv, |_| false)
        };
        // an integer type: TNULL compares with the stored value
        ($o:expr, $n:literal, $conv:expr, $raw:expr) => {
            match tnull {
                None => fill::<_, $n>(cells, per, $o, $conv, |_| false),
                Some(t) => fill::<_, $n>(cells, per, $o, $conv, move |b| $raw(b) == t),
            }
        };
    }
    let i8_ = |b: [u8; 1]| b[0] as i64;
    let i16_ = |b: [u8; 2]| i16::from_be_bytes(b) as i64;
    let i32_ = |b: [u8; 4]| i32::from_be_bytes(b) as i64;
    let i64_ = i64::from_be_bytes;
    let m = n * per;
    match (out.split_front(m), c.fits_type) {
        (Out::Bool(o), FitsType::Bit) => {
            bits(cells, per, o);
            false
        }
        (Out::Bool(o), _) => fill::<_, 1>(cells, per, o, |b| b[0] == b'T', |b| b[0] == 0),
        (Out::U8(o), _) => fill!(o, 1, |b: [u8; 1]| b[0], i8_),
        (Out::I16(o), _) => fill!(o, 2, i16::from_be_bytes, i16_),
        (Out::U16(o), _) => fill!(o, 2, |b| u16::from_be_bytes(b) ^ 0x8000, i16_),
        (Out::I32(o), _) => fill!(o, 4, i32::from_be_bytes, i32_),
        (Out::U32(o), _) => fill!(o, 4, |b| u32::from_be_bytes(b) ^ 0x8000_0000, i32_),
        (Out::I64(o), _) => fill!(o, 8, i64::from_be_bytes, i64_),
        (Out::U64(o), _) => fill!(o, 8, |b| u64::from_be_bytes(b) ^ (1 << 63), i64_),
        (Out::F32(o), _) => fill!(o, 4, f32::from_be_bytes),
        (Out::F64(o), FitsType::Byte) => fill!(o, 1, |b: [u8; 1]| b[0] as f64 * s + z, i8_),
        (Out::F64(o), FitsType::Short) => fill!(o, 2, |b| i16::from_be_bytes(b) as f64 * s + z, i16_),
        (Out::F64(o), FitsType::Int) => fill!(o, 4, |b| i32::from_be_bytes(b) as f64 * s + z, i32_),
        (Out::F64(o), FitsType::Long) => fill!(o, 8, |b| i64::from_be_bytes(b) as f64 * s + z, i64_),
        (Out::F64(o), FitsType::Float) => fill!(o, 4, |b| f32::from_be_bytes(b) as f64 * s + z),
        (Out::F64(o), _) if scaled => fill!(o, 8, |b| f64::from_be_bytes(b) * s + z),
        (Out::F64(o), _) => fill!(o, 8, f64::from_be_bytes),
        (Out::C32(o), _) => fill!(o, 8, |b: [u8; 8]| {
            let (re, im) = halves4(b);
            [f32::from_be_bytes(re), f32::from_be_bytes(im)]
        }),
        (Out::C64(o), FitsType::Complex) => fill!(o, 8, |b: [u8; 8]| {
            let (re, im) = halves4(b);
            [f32::from_be_bytes(re) as f64 * s + z, f32::from_be_bytes(im) as f64 * s]
        }),
        (Out::C64(o), _) => fill!(o, 16, |b: [u8; 16]| {
            let (re, im) = halves8(b);
            [f64::from_be_bytes(re) * s + z, f64::from_be_bytes(im) * s]
        }),
        (Out::Str { .. }, _) => false,
    }
}

/// The real and imaginary parts of a `C` value.
fn halves4(b: [u8; 8]) -> ([u8; 4], [u8; 4]) {
    ([b[0], b[1], b[2], b[3]], [b[4], b[5], b[6], b[7]])
}

/// The real and imaginary parts of an `M` value.
fn halves8(b: [u8; 16]) -> ([u8; 8], [u8; 8]) {
    let mut re = [0u8; 8];
    let mut im = [0u8; 8];
    re.copy_from_slice(&b[..8]);
    im.copy_from_slice(&b[8..]);
    (re, im)
}

/// Decodes `per` elements of `N` bytes from each cell into `out` with `conv`; returns whether
/// `null` held for any element.
#[inline(always)]
fn fill<T, const N: usize>(
    cells: Cells<'_>,
    per: usize,
    out: &mut [T],
    conv: impl Fn([u8; N]) -> T,
    null: impl Fn([u8; N]) -> bool,
) -> bool {
    let mut seen = false;
    if per == 0 {
        return false;
    }
    if per == 1 {
        for (o, cell) in out.iter_mut().zip(cells.iter()) {
            if let Some(&b) = cell.first_chunk::<N>() {
                *o = conv(b);
                seen |= null(b);
            }
        }
    } else {
        for (o, cell) in out.chunks_exact_mut(per).zip(cells.iter()) {
            for (o, b) in o.iter_mut().zip(cell.chunks_exact(N)) {
                if let Some(&b) = b.first_chunk::<N>() {
                    *o = conv(b);
                    seen |= null(b);
                }
            }
        }
    }
    seen
}

/// `per` bits of each cell, most significant first.
fn bits(cells: Cells<'_>, per: usize, out: &mut [bool]) {
    if per == 0 {
        return;
    }
    for (o, cell) in out.chunks_exact_mut(per).zip(cells.iter()) {
        for (k, o) in o.iter_mut().enumerate() {
            *o = cell.get(k / 8).is_some_and(|b| b >> (7 - k % 8) & 1 == 1);
        }
    }
}

/// One string per cell, cut at the first NUL, trailing blanks removed, appended to `bytes`;
/// `ends[i]` gets the end of string `i`. The caller keeps `bytes` under 2 GiB.
fn strings(cells: Cells<'_>, ends: &mut [i32], bytes: &mut Vec<u8>) {
    bytes.reserve(ends.len() * cells.width);
    let end_of = |bytes: &Vec<u8>| i32::try_from(bytes.len()).unwrap_or(i32::MAX);
    if cells.width == 0 {
        ends.fill(end_of(bytes));
        return;
    }
    for (e, cell) in ends.iter_mut().zip(cells.iter()) {
        push_trimmed(bytes, cell);
        *e = end_of(bytes);
    }
}

/// Appends `cell` cut at its first NUL, trailing blanks removed.
pub(super) fn push_trimmed(bytes: &mut Vec<u8>, cell: &[u8]) {
    let cell = cell.split(|&b| b == 0).next().unwrap_or(&[]);
    let end = cell.iter().rposition(|&b| b != b' ').map_or(0, |i| i + 1);
    let cell = cell.get(..end).unwrap_or(&[]);
    if end <= 16 {
        // short strings, the usual catalog case: byte pushes beat a memmove call
        for &b in cell {
            bytes.push(b);
        }
    } else {
        bytes.extend_from_slice(cell);
    }
}

/// Appends to `mask`, per element of `cells` (`per` elements each), whether it is undefined: a
/// logical stored as 0, an integer equal to TNULL.
pub(super) fn push_nulls(c: &ColumnSchema, cells: Cells<'_>, per: usize, mask: &mut Vec<bool>) {
    let size = c.fits_type.size();
    let t = c.null;
    let undefined = |e: &[u8]| -> bool {
        let raw = match (c.fits_type, e) {
            (FitsType::Logical, [b, ..]) => return *b == 0,
            (FitsType::Byte, [b, ..]) => i64::from(*b),
            (FitsType::Short, [a, b, ..]) => i64::from(i16::from_be_bytes([*a, *b])),
            (FitsType::Int, [a, b, c, d, ..]) => i64::from(i32::from_be_bytes([*a, *b, *c, *d])),
            (FitsType::Long, _) => match e.first_chunk::<8>() {
                Some(&b) => i64::from_be_bytes(b),
                None => return false,
            },
            _ => return false,
        };
        Some(raw) == t
    };
    for cell in cells.iter() {
        mask.extend(cell.chunks_exact(size).take(per).map(undefined));
    }
}
