use super::*;
use crate::policy::{AccessKind, RequestedMode};
use crate::wire::session::{Bye, ByeReason, Codec, FrameRole, VideoFrame};

fn request() -> AccessRequest {
    AccessRequest {
        kind: AccessKind::Guest,
        display_name: "Gus".into(),
        message: "help with the printer".into(),
        tickets: vec![],
        mode: RequestedMode::ViewOnly,
        agent: "test".into(),
    }
}

/// Splits framed bytes into frame bodies.
fn bodies(framed: &[u8]) -> Vec<Vec<u8>> {
    let mut d = FrameDecoder::new(MAX_NOISE_MSG);
    d.push(framed);
    let mut out = Vec::new();
    while let Some(f) = d.next_frame().unwrap() {
        out.push(f);
    }
    d.finish().unwrap();
    out
}

fn one(framed: &[u8]) -> Vec<u8> {
    let mut b = bodies(framed);
    assert_eq!(b.len(), 1);
    b.remove(0)
}

fn handshake(
    host: &Identity,
    viewer: &Identity,
) -> Result<(Transport, Transport, HostInfo, ViewerInfo), NoiseError> {
    let (ini, m1) = Initiator::start(viewer, host.peer_id(), request())?;
    let (resp, m2) = Responder::respond(host, "host-agent", &one(&m1))?;
    let (m3, vt, hinfo) = ini.finish(&one(&m2))?;
    let (ht, vinfo) = resp.finish(&one(&m3))?;
    Ok((vt, ht, hinfo, vinfo))
}

#[test]
fn handshake_proves_both_identities_and_carries_the_request() {
    let (host, viewer) = (Identity::generate(), Identity::generate());
    let (_, _, hinfo, vinfo) = handshake(&host, &viewer).unwrap();
    assert_eq!(hinfo.peer_id, host.peer_id());
    assert_eq!(hinfo.agent, "host-agent");
    assert_eq!(vinfo.peer_id, viewer.peer_id());
    assert_eq!(vinfo.request, request());
}

#[test]
fn messages_flow_both_ways_including_multi_chunk() {
    let (host, viewer) = (Identity::generate(), Identity::generate());
    let (mut vt, mut ht, _, _) = handshake(&host, &viewer).unwrap();
    let big: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let video = SessionMessage::Video(VideoFrame {
        seq: 1,
        capture_us: 2,
        keyframe: true,
        monitor: 0,
        width: 1920,
        height: 1080,
        codec: Codec::H264,
        role: FrameRole::Update,
        damage: vec![],
        data: big,
    });
    let wire = ht.send(&video).unwrap();
    assert!(
        bodies(&wire).len() > 4,
        "a 300 kB message is split into Noise-sized chunks"
    );
    // Deliver in awkward pieces.
    for piece in wire.chunks(1000) {
        vt.push(piece);
    }
    assert_eq!(vt.recv().unwrap(), Some(video));
    assert_eq!(vt.recv().unwrap(), None);
    let bye = SessionMessage::Bye(Bye {
        reason: ByeReason::Closed,
        message: "bye".into(),
    });
    ht.push(&vt.send(&bye).unwrap());
    assert_eq!(ht.recv().unwrap(), Some(bye));
    // The empty plaintext is one final chunk.
    let wire = vt.seal(&[]).unwrap();
    ht.push(&wire);
    assert_eq!(ht.open_next().unwrap(), Some(vec![]));
}

#[test]
fn ciphertext_is_not_plaintext() {
    let (host, viewer) = (Identity::generate(), Identity::generate());
    let (mut vt, _, _, _) = handshake(&host, &viewer).unwrap();
    let secret = b"the quick brown fox jumps over the lazy dog".repeat(10);
    let wire = vt.seal(&secret).unwrap();
    assert!(!wire.windows(16).any(|w| secret.windows(16).any(|s| s == w)));
}

#[test]
fn wrong_expected_peer_is_refused() {
    let (host, viewer) = (Identity::generate(), Identity::generate());
    let someone_else = Identity::generate().peer_id();
    let (ini, m1) = Initiator::start(&viewer, someone_else, request()).unwrap();
    let (_, m2) = Responder::respond(&host, "h", &one(&m1)).unwrap();
    match ini.finish(&one(&m2)) {
        Err(NoiseError::WrongPeer { expected, got }) => {
            assert_eq!(*expected, someone_else);
            assert_eq!(*got, host.peer_id());
        }
        other => panic!("expected WrongPeer, got {:?}", other.map(|_| ())),
    }
}

/// A host that signs its Noise static key wrongly (or claims another identity).
fn forged_respond(msg1: &[u8], proof: impl FnOnce(&snow::Keypair) -> IdentityProof) -> Vec<u8> {
    let keys = builder().unwrap().generate_keypair().unwrap();
    let mut state = builder()
        .unwrap()
        .local_private_key(&keys.private)
        .unwrap()
        .build_responder()
        .unwrap();
    read(&mut state, msg1).unwrap();
    let payload = HandshakePayload::HostHello(HostHello {
        proof: proof(&keys),
        agent: "evil".into(),
    })
    .encode()
    .unwrap();
    write(&mut state, &payload).unwrap()
}

#[test]
fn tampered_identity_signature_is_refused() {
    let (host, viewer) = (Identity::generate(), Identity::generate());
    // Signature bytes flipped.
    let (ini, m1) = Initiator::start(&viewer, host.peer_id(), request()).unwrap();
    let m2 = forged_respond(&one(&m1), |keys| {
        let mut sig = host.sign(&[STATIC_DOMAIN, &keys.public].concat());
        sig[0] ^= 1;
        IdentityProof {
            identity_key: host.public().encode_protobuf(),
            signature: sig,
        }
    });
    assert!(matches!(
        ini.finish(&one(&m2)),
        Err(NoiseError::BadIdentitySignature)
    ));
    // The host's real signature over a *different* static key (replayed proof).
    let (ini, m1) = Initiator::start(&viewer, host.peer_id(), request()).unwrap();
    let m2 = forged_respond(&one(&m1), |_| IdentityProof {
        identity_key: host.public().encode_protobuf(),
        signature: host.sign(&[STATIC_DOMAIN, &[7u8; 32][..]].concat()),
    });
    assert!(matches!(
        ini.finish(&one(&m2)),
        Err(NoiseError::BadIdentitySignature)
    ));
    // Garbage identity key.
    let (ini, m1) = Initiator::start(&viewer, host.peer_id(), request()).unwrap();
    let m2 = forged_respond(&one(&m1), |_| IdentityProof {
        identity_key: vec![1, 2, 3],
        signature: vec![],
    });
    assert!(matches!(
        ini.finish(&one(&m2)),
        Err(NoiseError::BadIdentityKey)
    ));
}

#[test]
fn flipped_handshake_byte_is_refused() {
    let (host, viewer) = (Identity::generate(), Identity::generate());
    let (ini, m1) = Initiator::start(&viewer, host.peer_id(), request()).unwrap();
    let (_, m2) = Responder::respond(&host, "h", &one(&m1)).unwrap();
    let mut m2 = one(&m2);
    let i = m2.len() - 20;
    m2[i] ^= 0x80;
    assert!(matches!(ini.finish(&m2), Err(NoiseError::Snow(_))));
}

#[test]
fn flipped_ciphertext_byte_is_refused() {
    let (host, viewer) = (Identity::generate(), Identity::generate());
    let (mut vt, mut ht, _, _) = handshake(&host, &viewer).unwrap();
    let mut wire = vt.seal(b"pointer to 10,10").unwrap();
    let i = wire.len() - 5;
    wire[i] ^= 1;
    ht.push(&wire);
    assert!(matches!(ht.open_next(), Err(NoiseError::Snow(_))));
}

#[test]
fn oversize_and_bad_chunks_are_refused() {
    let (host, viewer) = (Identity::generate(), Identity::generate());
    let (mut vt, mut ht, _, _) = handshake(&host, &viewer).unwrap();
    assert!(matches!(
        vt.seal(&vec![0; SessionMessage::MAX_LEN + 1]),
        Err(NoiseError::MessageTooLarge { .. })
    ));
    // A peer that keeps sending "more" chunks past the maximum is cut off.
    let mut sent = 0;
    let chunk = [&[MORE][..], &vec![0u8; CHUNK_DATA][..]].concat();
    let result = loop {
        let n = vt.state.write_message(&chunk, &mut vt.scratch).unwrap();
        ht.push(&frame(&vt.scratch[..n], MAX_NOISE_MSG).unwrap());
        sent += CHUNK_DATA;
        match ht.open_next() {
            Ok(None) => assert!(sent <= SessionMessage::MAX_LEN + CHUNK_DATA),
            other => break other,
        }
    };
    assert!(matches!(result, Err(NoiseError::MessageTooLarge { .. })));
    // An unknown flag byte.
    let (mut vt, mut ht, _, _) = handshake(&host, &viewer).unwrap();
    let n = vt.state.write_message(&[9, 1, 2], &mut vt.scratch).unwrap();
    ht.push(&frame(&vt.scratch[..n], MAX_NOISE_MSG).unwrap());
    assert!(matches!(ht.open_next(), Err(NoiseError::BadChunk)));
}

#[test]
fn viewer_payload_must_be_viewer_hello() {
    let (host, viewer) = (Identity::generate(), Identity::generate());
    let (mut ini, m1) = Initiator::start(&viewer, host.peer_id(), request()).unwrap();
    let (resp, m2) = Responder::respond(&host, "h", &one(&m1)).unwrap();
    read(&mut ini.state, &one(&m2)).unwrap();
    // Send a HostHello where a ViewerHello belongs.
    let wrong = HandshakePayload::HostHello(HostHello {
        proof: ini.proof.clone(),
        agent: "x".into(),
    })
    .encode()
    .unwrap();
    let m3 = write(&mut ini.state, &wrong).unwrap();
    assert!(matches!(
        resp.finish(&one(&m3)),
        Err(NoiseError::UnexpectedPayload { .. })
    ));
}
