//! Cursor images from a host: arbitrary sizes, hotspots and compressed bytes. Refused with a
//! typed error, or a shape exactly as large as its size says; never a panic or an
//! allocation past the edge limit.
#![no_main]
use libfuzzer_sys::fuzz_target;
use portico_core::wire::session::{CursorImage, CursorShape};

fuzz_target!(|input: (u32, u16, u16, u16, u16, Vec<u8>)| {
    let (serial, width, height, hot_x, hot_y, zrgba) = input;
    let image = CursorImage { serial, width, height, hot_x, hot_y, zrgba };
    if let Ok(shape) = CursorShape::try_from(image) {
        assert!(shape.is_valid());
        assert_eq!(
            shape.rgba.len(),
            usize::from(width) * usize::from(height) * 4
        );
    }
});
