//! Wire tests: hex snapshots pin one value of every message; proptest round trips; bad input
//! is a typed error, never a panic.
//!
//! To accept an intended wire change: `UPDATE_SNAPSHOTS=1 cargo test -p portico-core wire`,
//! then review the diff of `src/wire/snapshots.txt` (and bump the protocol version if old
//! peers can no longer read the new bytes).

use std::collections::BTreeSet;

use libp2p_identity::Keypair;
use proptest::prelude::*;

use super::handshake::*;
use super::session::*;
use super::signal::*;
use super::*;
use crate::internet_id::InternetId;
use crate::policy::{AccessKind, Permissions, RequestedMode};
use crate::ticket::{SignedTicket, TicketKind};

fn peer(seed: u8) -> WirePeerId {
    #[allow(clippy::unwrap_used)]
    let kp = Keypair::ed25519_from_bytes([seed; 32]).unwrap();
    kp.public().to_peer_id().into()
}

fn id() -> InternetId {
    InternetId::from_payload(12_345_678).unwrap()
}

fn token() -> SessionToken {
    SessionToken(vec![0xAB; 8])
}

fn signed_ticket() -> SignedTicket {
    SignedTicket {
        body: vec![1, 2, 3],
        signature: vec![4; 4],
    }
}

fn signal_requests() -> Vec<SignalRequest> {
    vec![
        SignalRequest::Register(Register {
            node_path: Some("/Sales/pc-7".into()),
            addrs: vec!["/ip4/10.0.0.2/tcp/5650".into()],
            agent: "portico/0.1.0".into(),
            enroll: None,
        }),
        SignalRequest::Heartbeat(Heartbeat {
            addrs: vec!["/ip4/10.0.0.2/udp/5650/quic-v1".into()],
        }),
        SignalRequest::Lookup(Lookup {
            target: LookupTarget::Id(id()),
            session: None,
        }),
        SignalRequest::Login(Login {
            user: "alice".into(),
            password: "pw".into(),
        }),
        SignalRequest::Logout(Logout { session: token() }),
        SignalRequest::ListNodes(ListNodes {
            session: token(),
            path: "/".into(),
        }),
        SignalRequest::IssueTicket(IssueTicket {
            session: token(),
            host: peer(1),
            kind: TicketKind::Visitor,
        }),
        SignalRequest::WhoAmI(WhoAmI { session: token() }),
        SignalRequest::Event(ServerEvent {
            seq: 7,
            change: Change::User {
                user: "alice".into(),
                groups: vec!["Sales".into()],
                disabled: false,
                force_server_security: true,
                changed_at: 1_800_000_000,
            },
        }),
        SignalRequest::CheckPrincipals(CheckPrincipals {
            principals: vec!["group:Sales".into()],
        }),
        SignalRequest::Register(Register {
            node_path: None,
            addrs: vec![],
            agent: "portico/0.1.0".into(),
            enroll: Some("enroll-00ff".into()),
        }),
        SignalRequest::CheckUsers(CheckUsers {
            users: vec!["alice".into()],
        }),
    ]
}

fn signal_responses() -> Vec<SignalResponse> {
    vec![
        SignalResponse::Registered(Registered {
            internet_id: id(),
            node_path: "/Sales/pc-7".into(),
            allow_guests: false,
            allow_visitors: true,
            guest_sharing: true,
            visitor_sharing: false,
            server_name: "hq".into(),
            heartbeat_secs: 20,
            state_version: 41,
        }),
        SignalResponse::Ack(Ack::default()),
        SignalResponse::Found(Found {
            peer: peer(1),
            internet_id: id(),
            node_path: "/unassigned/x".into(),
            addrs: vec![],
            relay_addrs: vec!["/ip4/1.2.3.4/tcp/5655/p2p-circuit".into()],
            online: true,
        }),
        SignalResponse::LoggedIn(LoggedIn {
            session: token(),
            user: "alice".into(),
            groups: vec!["Sales".into()],
            force_server_security: true,
            expires_at: 1_800_000_000,
            server_name: "hq".into(),
        }),
        SignalResponse::Nodes(Nodes {
            entries: vec![NodeEntry {
                path: "/Sales".into(),
                is_host: false,
                internet_id: None,
                online: false,
                allow_guests: false,
                allow_visitors: false,
            }],
        }),
        SignalResponse::Ticket(signed_ticket()),
        SignalResponse::Error(SignalError {
            code: ErrorCode::RateLimited,
            message: "slow down".into(),
            retry_after_ms: Some(2000),
        }),
        SignalResponse::Principals(Principals {
            known: vec![true, false],
        }),
        SignalResponse::Users(Users {
            users: vec![Change::User {
                user: "alice".into(),
                groups: vec!["Sales".into()],
                disabled: true,
                force_server_security: false,
                changed_at: 1_800_000_000,
            }],
        }),
    ]
}

fn session_messages() -> Vec<SessionMessage> {
    vec![
        SessionMessage::Waiting(Waiting {
            request_id: 3,
            timeout_ms: 60_000,
        }),
        SessionMessage::Accepted(Accepted {
            session_id: 4,
            permissions: Permissions::INTERACTIVE,
            time_limit_ms: Some(900_000),
            monitors: vec![(1280, 720)],
            resume: Some(vec![7; 32]),
        }),
        SessionMessage::Refused(Refused {
            code: "owner_refused".into(),
            message: "The owner refused.".into(),
        }),
        SessionMessage::Video(VideoFrame {
            seq: 9,
            capture_us: 1,
            keyframe: true,
            monitor: 0,
            width: 16,
            height: 16,
            codec: Codec::H264,
            role: FrameRole::Refine,
            damage: vec![Rect {
                x: 0,
                y: 0,
                w: 16,
                h: 16,
            }],
            data: vec![0, 0, 0, 1, 0x67],
        }),
        SessionMessage::Input(InputEvent::PointerMove { x: 640, y: 360 }),
        SessionMessage::RequestKeyframe(RequestKeyframe {}),
        SessionMessage::SetBitrate(SetBitrate { bps: 2_000_000 }),
        SessionMessage::Stats(ReceiverStats {
            last_seq: 9,
            frames: 30,
            decode_us: 4000,
        }),
        SessionMessage::Bye(Bye {
            reason: ByeReason::Kicked,
            message: "disconnected by the owner".into(),
        }),
        SessionMessage::PermissionsChanged(PermissionsChanged {
            permissions: Permissions::VIEW_ONLY,
        }),
        SessionMessage::FileOffer(FileOffer {
            transfer_id: 1,
            name: "report.pdf".into(),
            size: 3,
            sha256: vec![0xEE; 32],
        }),
        SessionMessage::ServiceDecision(ServiceDecision {
            service: Service::File,
            id: 1,
            allowed: false,
            pending: true,
            message: "asking the owner".into(),
        }),
        SessionMessage::FileChunk(FileChunk {
            transfer_id: 1,
            offset: 0,
            data: vec![1, 2, 3],
        }),
        SessionMessage::FileEnd(FileEnd { transfer_id: 1 }),
        SessionMessage::FileResult(FileResult {
            transfer_id: 1,
            ok: true,
            message: "saved".into(),
        }),
        SessionMessage::Clipboard(Clipboard {
            text: "hello".into(),
        }),
        SessionMessage::Cursor(CursorImage {
            serial: 7,
            width: 2,
            height: 1,
            hot_x: 1,
            hot_y: 0,
            zrgba: vec![0x28, 0xb5, 0x2f, 0xfd],
        }),
        SessionMessage::CursorPosition(CursorPosition {
            x: 640,
            y: -3,
            visible: true,
            serial: 7,
        }),
        SessionMessage::SelectMonitor(SelectMonitor { index: Some(1) }),
        SessionMessage::Moved(Moved {
            next_resume: Some(vec![9; 32]),
        }),
        SessionMessage::Moved(Moved::default()),
        SessionMessage::Browse(Browse {
            req: 1,
            path: "/home/docs".into(),
            get: false,
        }),
        SessionMessage::Listing(Listing {
            req: 1,
            entries: vec![DirEntry {
                name: "a.txt".into(),
                dir: false,
                size: 5,
                modified: 1_764_000_000,
            }],
            truncated: false,
            error: None,
        }),
        SessionMessage::Download(Download {
            req: 2,
            offset: 0,
            total: 5,
            data: b"hello".to_vec(),
        }),
        SessionMessage::DownloadEnd(DownloadEnd {
            req: 2,
            sha256: Some(vec![0xab; 32]),
            error: None,
        }),
        SessionMessage::Copy(CopyUpdate {
            frame: 12,
            capture_us: 5,
            monitor: 0,
            width: 16,
            height: 16,
            copies: vec![CopyRect {
                src: Rect {
                    x: 0,
                    y: 8,
                    w: 16,
                    h: 8,
                },
                dst_x: 0,
                dst_y: 0,
            }],
        }),
        SessionMessage::Lossless(LosslessUpdate {
            frame: 12,
            capture_us: 5,
            monitor: 0,
            width: 16,
            height: 16,
            reset: true,
            rects: 1,
            data: vec![0x28, 0xb5, 0x2f, 0xfd],
        }),
    ]
}

fn handshake_payloads() -> Vec<HandshakePayload> {
    let proof = IdentityProof {
        identity_key: vec![8, 1],
        signature: vec![9; 4],
    };
    vec![
        HandshakePayload::HostHello(HostHello {
            proof: proof.clone(),
            agent: "portico/0.1.0".into(),
        }),
        HandshakePayload::ViewerHello(ViewerHello {
            proof,
            request: AccessRequest {
                kind: AccessKind::Visitor,
                display_name: "Vera".into(),
                message: "hi".into(),
                tickets: vec![signed_ticket()],
                mode: RequestedMode::Interactive,
                agent: "portico/0.1.0".into(),
            },
        }),
    ]
}

fn snapshot_lines<M: WireMessage>(prefix: &str, msgs: &[M]) -> Vec<String> {
    let tags: BTreeSet<u16> = msgs.iter().map(WireMessage::tag).collect();
    let declared: BTreeSet<u16> = M::TAGS.iter().copied().collect();
    assert_eq!(
        tags, declared,
        "{prefix}: the snapshot set must hold one value of every variant"
    );
    msgs.iter()
        .map(|m| {
            format!(
                "{prefix}.{} {}",
                m.variant_name(),
                hex::encode(m.encode().unwrap())
            )
        })
        .collect()
}

#[test]
fn hex_snapshots_pin_wire_bytes() {
    let mut lines = Vec::new();
    lines.extend(snapshot_lines("signal_request", &signal_requests()));
    lines.extend(snapshot_lines("signal_response", &signal_responses()));
    lines.extend(snapshot_lines("session", &session_messages()));
    lines.extend(snapshot_lines("handshake", &handshake_payloads()));
    let actual = lines.join("\n") + "\n";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/wire/snapshots.txt");
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::write(path, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(path).unwrap();
    for (a, e) in actual.lines().zip(expected.lines()) {
        assert_eq!(
            a, e,
            "wire bytes changed; see the module docs to accept an intended change"
        );
    }
    assert_eq!(actual.lines().count(), expected.lines().count());
}

#[test]
fn every_sample_round_trips() {
    fn rt<M: WireMessage + PartialEq + std::fmt::Debug>(msgs: Vec<M>) {
        for m in msgs {
            assert_eq!(M::decode(&m.encode().unwrap()).unwrap(), m);
        }
    }
    rt(signal_requests());
    rt(signal_responses());
    rt(session_messages());
    rt(handshake_payloads());
}

fn envelope(version: u8, tag: u16, body: ciborium::Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(&(version, tag, body), &mut out).unwrap();
    out
}

#[test]
fn wrong_version_unknown_variant_and_bad_body_are_typed() {
    let ok = SessionMessage::SetBitrate(SetBitrate { bps: 1 });
    let body = ciborium::Value::serialized(&SetBitrate { bps: 1 }).unwrap();
    assert!(matches!(
        SessionMessage::decode(&envelope(2, 7, body.clone())),
        Err(DecodeError::UnsupportedVersion {
            got: 2,
            supported: 1,
            ..
        })
    ));
    assert!(matches!(
        SessionMessage::decode(&envelope(1, 999, body.clone())),
        Err(DecodeError::UnknownVariant { tag: 999, .. })
    ));
    // A SetBitrate body under the Video tag.
    assert!(matches!(
        SessionMessage::decode(&envelope(1, 4, body)),
        Err(DecodeError::BadBody {
            variant: "Video",
            ..
        })
    ));
    // Trailing bytes.
    let mut bytes = ok.encode().unwrap();
    bytes.push(0);
    assert!(matches!(
        SessionMessage::decode(&bytes),
        Err(DecodeError::TrailingBytes { extra: 1, .. })
    ));
}

#[test]
fn truncated_garbage_nested_and_oversize_inputs_are_typed() {
    let full = session_messages()[3].encode().unwrap();
    for cut in 0..full.len() {
        assert!(
            SessionMessage::decode(&full[..cut]).is_err(),
            "truncated at {cut}"
        );
    }
    assert!(matches!(
        SignalRequest::decode(b"\xff\x00garbage"),
        Err(DecodeError::Malformed { .. })
    ));
    // 10,000 nested arrays: refused by the depth limit, not by a stack overflow.
    let mut nested = vec![0x83, 0x01, 0x01];
    nested.extend(std::iter::repeat_n(0x81, 10_000));
    nested.push(0x00);
    assert!(matches!(
        SessionMessage::decode(&nested),
        Err(DecodeError::Malformed { .. })
    ));
    // A byte string claiming 4 GiB inside a small message: an error, no huge allocation.
    let claim = [0x83, 0x01, 0x04, 0x5a, 0xff, 0xff, 0xff, 0xff, 0x00];
    assert!(SessionMessage::decode(&claim).is_err());
    // A map claiming 2^64 entries.
    let claim = [
        0x83, 0x01, 0x04, 0xbb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    ];
    assert!(SessionMessage::decode(&claim).is_err());
    let big = vec![0u8; MAX_SIGNAL_LEN + 1];
    assert!(matches!(
        SignalRequest::decode(&big),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn invalid_internet_id_in_a_message_is_refused() {
    // 123456780 fails the check digit (the valid one ends differently).
    let bad = envelope(
        1,
        3,
        ciborium::Value::Map(vec![(
            ciborium::Value::Text("target".into()),
            ciborium::Value::Map(vec![(
                ciborium::Value::Text("id".into()),
                ciborium::Value::Integer(123_456_780.into()),
            )]),
        )]),
    );
    let good_id = id().as_u32();
    assert_ne!(good_id, 123_456_780);
    assert!(matches!(
        SignalRequest::decode(&bad),
        Err(DecodeError::BadBody { .. })
    ));
}

fn input_event() -> impl Strategy<Value = InputEvent> {
    prop_oneof![
        (any::<i32>(), any::<i32>()).prop_map(|(x, y)| InputEvent::PointerMove { x, y }),
        (
            prop_oneof![
                Just(MouseButton::Left),
                Just(MouseButton::Middle),
                Just(MouseButton::Right)
            ],
            any::<bool>()
        )
            .prop_map(|(button, down)| InputEvent::Button { button, down }),
        (any::<i32>(), any::<i32>()).prop_map(|(dx, dy)| InputEvent::Wheel { dx, dy }),
        ("[A-Za-z_]{1,16}", any::<bool>())
            .prop_map(|(keysym, down)| InputEvent::Key { keysym, down }),
        ".{0,64}".prop_map(|text| InputEvent::Text { text }),
    ]
}

proptest! {
    #[test]
    fn input_round_trips(ev in input_event()) {
        let m = SessionMessage::Input(ev);
        prop_assert_eq!(SessionMessage::decode(&m.encode().unwrap()).unwrap(), m);
    }

    #[test]
    fn video_round_trips(seq in any::<u64>(), key in any::<bool>(), w in 1u32..8192, h in 1u32..8192, data in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let m = SessionMessage::Video(VideoFrame { seq, capture_us: seq / 2, keyframe: key, monitor: 0, width: w, height: h, codec: Codec::H264, role: FrameRole::Update, damage: vec![], data });
        prop_assert_eq!(SessionMessage::decode(&m.encode().unwrap()).unwrap(), m);
    }

    #[test]
    fn register_and_login_round_trip(path in proptest::option::of("/[a-z]{1,8}(/[a-z0-9-]{1,8}){0,3}"), user in ".{0,32}", password in ".{0,32}") {
        let m = SignalRequest::Register(Register { node_path: path, addrs: vec![], agent: "a".into(), enroll: None });
        prop_assert_eq!(SignalRequest::decode(&m.encode().unwrap()).unwrap(), m);
        let m = SignalRequest::Login(Login { user, password });
        prop_assert_eq!(SignalRequest::decode(&m.encode().unwrap()).unwrap(), m);
    }

    #[test]
    fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = SessionMessage::decode(&bytes);
        let _ = SignalRequest::decode(&bytes);
        let _ = SignalResponse::decode(&bytes);
        let _ = HandshakePayload::decode(&bytes);
        let mut d = FrameDecoder::new(256);
        d.push(&bytes);
        while let Ok(Some(_)) = d.next_frame() {}
    }

    #[test]
    fn mutated_messages_never_panic(idx in 0usize..16, flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
        let msgs = session_messages();
        let mut bytes = msgs[idx % msgs.len()].encode().unwrap();
        for (i, b) in flips {
            let at = i.index(bytes.len());
            bytes[at] = b;
        }
        let _ = SessionMessage::decode(&bytes);
    }
}

#[test]
fn a_resume_preface_is_told_from_a_handshake_and_carries_its_token() {
    use crate::wire::session::{parse_resume, resume_preface, RESUME_TOKEN_LEN};
    let token = [5u8; RESUME_TOKEN_LEN];
    let framed = resume_preface(&token);
    let mut d = FrameDecoder::new(64 * 1024);
    d.push(&framed);
    let frame = d.next_frame().unwrap().unwrap();
    assert_eq!(parse_resume(&frame), Some(token));
    // Short or long tokens, another magic, a handshake message: not a resume.
    assert_eq!(parse_resume(&frame[..frame.len() - 1]), None);
    assert_eq!(parse_resume(&[frame.clone(), vec![0]].concat()), None);
    assert_eq!(parse_resume(&[0u8; 48]), None);
}
