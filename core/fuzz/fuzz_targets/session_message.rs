//! `/portico/session/1` messages: decode, and re-encode what decodes.
#![no_main]
use libfuzzer_sys::fuzz_target;
use portico_core::wire::session::SessionMessage;
use portico_core::wire::WireMessage;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = SessionMessage::decode(data) {
        let again = SessionMessage::decode(&m.encode().unwrap()).unwrap();
        assert_eq!(again, m);
    }
});
