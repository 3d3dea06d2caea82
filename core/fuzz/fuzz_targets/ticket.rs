//! Ticket verification: arbitrary bodies and signatures never verify and never panic;
//! arbitrary bodies signed by the pinned key decode or fail with a typed error.
#![no_main]
use libfuzzer_sys::fuzz_target;
use portico_core::identity::Identity;
use portico_core::ticket::{self, ReplayCache, SignedTicket};

fuzz_target!(|data: &[u8]| {
    let server = Identity::from_keypair(libp2p_identity::Keypair::ed25519_from_bytes([7u8; 32]).unwrap());
    let me = libp2p_identity::PeerId::random();
    let mut cache = ReplayCache::new(8);
    let (body, sig) = data.split_at(data.len() / 2);
    let forged = SignedTicket { body: body.to_vec(), signature: sig.to_vec() };
    assert!(ticket::verify(&forged, &server.public(), &me, &me, 1_800_000_000, &mut cache).is_err());
    // Correctly signed garbage must still be refused or decoded cleanly.
    let signed = SignedTicket {
        body: data.to_vec(),
        signature: server.sign(&[&b"portico-ticket-v1\0"[..], data].concat()),
    };
    let _ = ticket::verify(&signed, &server.public(), &me, &me, 1_800_000_000, &mut cache);
});
