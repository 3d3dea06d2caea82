//! What decoding a hostile message costs in memory: at most a small multiple of its size,
//! never the 32–64× a generic CBOR value tree would take for many small items.
//!
//! A counting global allocator (test-only; the one other `unsafe` in the workspace besides
//! the MIT-SHM mapping) records the peak of live heap bytes while one message decodes.
#![allow(unsafe_code, clippy::unwrap_used, missing_docs)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use portico_core::wire::session::{SessionMessage, MAX_SESSION_LEN};
use portico_core::wire::WireMessage;

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
/// The tests measure one at a time (the counters are process-wide).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
        PEAK.fetch_max(now, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Peak heap growth while `f` runs.
fn peak_during<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    (out, PEAK.load(Ordering::Relaxed).saturating_sub(base))
}

/// A `[1, tag, body]` envelope whose body is an array of `n` zeros (one byte each).
fn many_small_items(tag: u8, n: u32) -> Vec<u8> {
    let mut v = vec![0x83, 0x01, 0x18, tag, 0x9a];
    v.extend_from_slice(&n.to_be_bytes());
    v.resize(v.len() + n as usize, 0x00);
    v
}

#[test]
fn a_message_of_many_small_items_costs_about_its_size() {
    let _one = ONE_AT_A_TIME.lock().unwrap();
    // 4 MiB of one-byte items as the body of a copy update (which wants a map): a value
    // tree would take ~4M × 48 bytes ≈ 200 MB; the typed decode refuses it with a typed error.
    let n = (MAX_SESSION_LEN - 16) as u32;
    let hostile = many_small_items(21, n);
    assert!(hostile.len() <= MAX_SESSION_LEN);
    let (result, peak) = peak_during(|| SessionMessage::decode(&hostile));
    assert!(result.is_err());
    assert!(
        peak < 2 * MAX_SESSION_LEN,
        "decoding took {peak} bytes for a {} byte message",
        hostile.len()
    );
}

#[test]
fn a_large_valid_message_costs_about_its_size() {
    let _one = ONE_AT_A_TIME.lock().unwrap();
    let text = "x".repeat(1 << 20);
    let bytes = SessionMessage::Clipboard(portico_core::wire::session::Clipboard { text })
        .encode()
        .unwrap();
    let (decoded, peak) = peak_during(|| SessionMessage::decode(&bytes).unwrap());
    assert!(matches!(decoded, SessionMessage::Clipboard(_)));
    assert!(
        peak < 4 * bytes.len(),
        "decoding took {peak} bytes for a {} byte message",
        bytes.len()
    );
}
