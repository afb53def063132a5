//! WCS options: any bytes as a header, read for the alternate and the keyword forms (image
//! header or binary table) the first byte chooses, then points through it both ways. What reaches
//! wcslib is only what the allow-list passes (`torchfits-wcs/src/keywords.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use torchfits_core::{Header, Wcs, WcsOptions};

fuzz_target!(|data: &[u8]| {
    let Some((&choice, cards)) = data.split_first() else { return };
    let Ok(header) = Header::parse_limited(cards, 20_000) else { return };
    // the primary or one of the alternates A..Z, image-header or binary-table keywords
    let alt = match choice % 27 {
        0 => ' ',
        k => char::from(b'A' + k - 1),
    };
    let options = WcsOptions::new().alt(alt).table(choice & 0x80 != 0);
    let Ok(wcs) = Wcs::with_options(&header, options) else { return };
    let n = wcs.naxis();
    let pixels: Vec<f64> = (0..4 * n).map(|k| (k as f64) * 13.25 - 7.0).collect();
    let mut world = vec![0.0; pixels.len()];
    let _ = wcs.pixel_to_world(&pixels, &mut world);
    let mut back = vec![0.0; pixels.len()];
    let _ = wcs.world_to_pixel(&world, &mut back);
    let _ = (wcs.projection_parameters(), wcs.sip().is_some(), wcs.celestial_axes());
});
