//! Payloads inside the Noise handshake.
#![no_main]
use libfuzzer_sys::fuzz_target;
use portico_core::wire::handshake::HandshakePayload;
use portico_core::wire::WireMessage;

fuzz_target!(|data: &[u8]| {
    let _ = HandshakePayload::decode(data);
});
