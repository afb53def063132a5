//! The header parser: any bytes as a header, then everything that reads a parsed header (typed
//! values, the image a compressed HDU holds, a table's schema, wcslib's parse and a transform).
#![no_main]

use libfuzzer_sys::fuzz_target;
use torchfits_core::table::TableSchema;
use torchfits_core::{Header, Wcs};

fuzz_target!(|data: &[u8]| {
    let Ok(header) = Header::parse_limited(data, 20_000) else { return };
    for card in header.iter() {
        let _ = (card.keyword(), card.base_keyword(), card.field_specifier(), card.comment());
        let v = card.value();
        let _ = (v.as_i64(), v.as_f64(), v.as_str(), v.as_bool());
        let key = card.keyword();
        let _ = (header.get_i64(&key), header.get_f64(&key), header.get_str(&key), header.get_bool(&key));
    }
    let _ = header.compressed_image_header();
    let _ = TableSchema::from_header(&header);
    if let Ok(wcs) = Wcs::from_header(&header) {
        let n = wcs.naxis();
        let pixels: Vec<f64> = (0..2 * n).map(|k| k as f64 * 10.0).collect();
        let mut world = vec![0.0; pixels.len()];
        let _ = wcs.pixel_to_world(&pixels, &mut world);
    }
});
