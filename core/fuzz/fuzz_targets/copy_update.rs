//! Copies from a peer: any rectangle is either refused by the check or applied inside the
//! picture.
#![no_main]
use libfuzzer_sys::fuzz_target;
use portico_core::tiles::scroll;
use portico_core::wire::session::{CopyRect, Rect};

fuzz_target!(|input: (u8, u8, [u32; 6])| {
    let (w, h, v) = input;
    let (w, h) = (u32::from(w) + 1, u32::from(h) + 1);
    let mut rgba = vec![7u8; (w * h * 4) as usize];
    let c = CopyRect {
        src: Rect { x: v[0], y: v[1], w: v[2], h: v[3] },
        dst_x: v[4],
        dst_y: v[5],
    };
    let _ = scroll::apply(&mut rgba, w, h, &c);
});
