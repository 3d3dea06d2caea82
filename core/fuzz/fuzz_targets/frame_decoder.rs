//! Length-prefixed framing: arbitrary bytes pushed in arbitrary pieces.
#![no_main]
use libfuzzer_sys::fuzz_target;
use portico_core::wire::FrameDecoder;

fuzz_target!(|data: &[u8]| {
    let mut d = FrameDecoder::new(4096);
    let split = data.first().copied().unwrap_or(1).max(1) as usize;
    for piece in data.chunks(split) {
        d.push(piece);
        while let Ok(Some(frame)) = d.next_frame() {
            assert!(frame.len() <= 4096);
        }
    }
    let _ = d.finish();
});
