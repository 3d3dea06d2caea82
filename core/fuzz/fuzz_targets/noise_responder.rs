//! The host side of the session handshake fed arbitrary first and third messages.
#![no_main]
use libfuzzer_sys::fuzz_target;
use portico_core::identity::Identity;
use portico_core::noise::Responder;

fuzz_target!(|data: &[u8]| {
    let host = Identity::from_keypair(libp2p_identity::Keypair::ed25519_from_bytes([9u8; 32]).unwrap());
    let (m1, m3) = data.split_at(data.len().min(32));
    if let Ok((resp, _m2)) = Responder::respond(&host, "fuzz", m1) {
        let _ = resp.finish(m3);
    }
});
