//! Lossless updates: arbitrary bytes (fresh context, then continuing it) decoded into a small
//! canvas; errors are fine, panics and writes outside the canvas are not.
#![no_main]
use libfuzzer_sys::fuzz_target;
use portico_core::tiles::lossless::{Canvas, LosslessDecoder};

fuzz_target!(|input: (u8, u8, u16, Vec<u8>, Vec<u8>)| {
    let (w, h, count, first, second) = input;
    let (w, h) = (u32::from(w) + 1, u32::from(h) + 1);
    let mut rgba = vec![0u8; (w * h * 4) as usize];
    let mut d = LosslessDecoder::new();
    for (reset, data) in [(true, &first), (false, &second)] {
        let canvas = Canvas { rgba: &mut rgba, width: w, height: h };
        let _ = d.decode(reset, u32::from(count), data, canvas);
    }
    assert_eq!(rgba.len(), (w * h * 4) as usize);
});
