//! The writer: fuzzed header cards and pixel values written as an image (plain or
//! tile-compressed, of the type the first byte chooses), then read back. A write may refuse what
//! it is given (a reserved keyword, a value it cannot format), with an error; what it writes must
//! read back with the same shape and, losslessly coded, the same values.
#![no_main]

use libfuzzer_sys::fuzz_target;
use torchfits_core::write::{Algorithm, Compression};
use torchfits_core::{FitsFile, Header, OpenOptions, Pixel, WriteOptions};

/// Writes `values` as a `rows` x `cols` image with `header` and `compression`, and reads it back.
fn round_trip<T: Pixel>(
    values: Vec<T>,
    rows: usize,
    header: &Header,
    compression: Option<Compression>,
    lossless: bool,
) {
    let path = torchfits_fuzz::scratch_file("write", &[]);
    let _ = std::fs::remove_file(&path);
    let cols = values.len() / rows.max(1);
    let hdu = usize::from(compression.is_some());
    let values = &values[..rows * cols];
    let written = (|| {
        let mut w = WriteOptions::new().sync(false).create(&path)?;
        let mut image = w.image(values, &[rows, cols]).header(header);
        if let Some(c) = compression {
            image = image.compress(c);
        }
        image.write()?;
        w.finish()
    })();
    if written.is_ok() {
        let file = OpenOptions::new().limits(torchfits_fuzz::limits()).open(&path).expect("a written file opens");
        let image = file.image(hdu).expect("the written image");
        assert_eq!(image.shape(), &[rows, cols]);
        let back: Vec<T> = image.read().expect("a written image reads back");
        if lossless {
            // bit for bit (a NaN is its own bits)
            assert!(bytemuck::cast_slice::<T, u8>(&back) == bytemuck::cast_slice::<T, u8>(values), "the values read back differ");
        }
        let _ = FitsFile::open(&path).and_then(|f| f.header(hdu));
    }
    let _ = std::fs::remove_file(&path);
}

fuzz_target!(|data: &[u8]| {
    let [choice, rows, split, rest @ ..] = data else { return };
    let split = (usize::from(*split) * 80).min(rest.len());
    let (cards, bytes) = rest.split_at(split);
    let Ok(header) = Header::parse_limited(cards, 1000) else { return };
    let rows = usize::from(*rows % 16) + 1;
    let compression = match choice >> 4 {
        1 => Some(Compression::new(Algorithm::Rice)),
        2 => Some(Compression::new(Algorithm::Gzip1)),
        3 => Some(Compression::new(Algorithm::Gzip2)),
        4 => Some(Compression::new(Algorithm::Hcompress)),
        5 => Some(Compression::new(Algorithm::Plio)),
        _ => None,
    };
    let plain = compression.is_none();
    match choice % 4 {
        0 => round_trip(bytes.iter().map(|&b| b as i16 - 128).collect(), rows, &header, compression, true),
        1 => round_trip(bytes.chunks_exact(4).map(|c| i32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect(), rows, &header, compression, true),
        2 => round_trip(bytes.to_vec(), rows, &header, compression, true),
        // floats: tile compression quantises them (lossy); plain they read back exactly
        _ => round_trip(
            bytes.chunks_exact(4).map(|c| f32::from_be_bytes([c[0], c[1], c[2], c[3]])).collect::<Vec<f32>>(),
            rows,
            &header,
            compression,
            plain,
        ),
    }
});
