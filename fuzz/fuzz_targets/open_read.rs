//! Open + read of every HDU: any bytes as a file, read every way (`torchfits_fuzz::read_everything`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = torchfits_fuzz::scratch_file("open", data);
    torchfits_fuzz::read_everything(&path);
});
