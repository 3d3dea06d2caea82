//! `/portico/signal/1` requests and responses.
#![no_main]
use libfuzzer_sys::fuzz_target;
use portico_core::wire::signal::{SignalRequest, SignalResponse};
use portico_core::wire::WireMessage;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = SignalRequest::decode(data) {
        assert_eq!(SignalRequest::decode(&m.encode().unwrap()).unwrap(), m);
    }
    if let Ok(m) = SignalResponse::decode(data) {
        assert_eq!(SignalResponse::decode(&m.encode().unwrap()).unwrap(), m);
    }
});
