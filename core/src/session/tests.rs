//! A host and a viewer machine wired back to back in memory (quinn-style): every byte one
//! transmits is handed to the other, so each test drives the whole protocol after the Noise
//! handshake without sockets or tasks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::identity::Identity;
use crate::noise::{Initiator, Responder, MAX_NOISE_MSG};
use crate::policy::{AccessKind, Permissions, RequestedMode};
use crate::wire::codec::FrameDecoder;
use crate::wire::handshake::AccessRequest;
use crate::wire::session::{
    Accepted, ByeReason, Codec, FileChunk, FileOffer, FrameRole, InputEvent, Service,
    SessionMessage, VideoFrame,
};
use crate::wire::WireMessage;

struct Pair {
    host: HostSession,
    viewer: ViewerSession,
}

fn one(framed: &[u8]) -> Vec<u8> {
    let mut d = FrameDecoder::new(MAX_NOISE_MSG);
    d.push(framed);
    d.next_frame().unwrap().unwrap()
}

impl Pair {
    fn new() -> Self {
        let (h, v) = (Identity::generate(), Identity::generate());
        let req = AccessRequest {
            kind: AccessKind::Guest,
            display_name: "Gus".into(),
            message: "hi".into(),
            tickets: vec![],
            mode: RequestedMode::Interactive,
            agent: "t".into(),
        };
        let (ini, m1) = Initiator::start(&v, h.peer_id(), req).unwrap();
        let (resp, m2) = Responder::respond(&h, "host", &one(&m1)).unwrap();
        let (m3, vt, _) = ini.finish(&one(&m2)).unwrap();
        let (ht, _) = resp.finish(&one(&m3)).unwrap();
        Pair {
            host: HostSession::new(ht),
            viewer: ViewerSession::new(vt),
        }
    }

    /// Moves every pending byte both ways until both are quiet.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            while let Some(b) = self.host.poll_transmit() {
                self.viewer.handle_bytes(&b).unwrap();
                moved = true;
            }
            while let Some(b) = self.viewer.poll_transmit() {
                self.host.handle_bytes(&b).unwrap();
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }

    fn host_events(&mut self) -> Vec<HostEvent> {
        std::iter::from_fn(|| self.host.poll_event()).collect()
    }

    fn viewer_events(&mut self) -> Vec<ViewerEvent> {
        std::iter::from_fn(|| self.viewer.poll_event()).collect()
    }

    fn live(permissions: Permissions, confirm: bool) -> Self {
        let mut p = Pair::new();
        p.host.accepted(accepted(permissions), confirm).unwrap();
        p.pump();
        p.viewer_events();
        p
    }
}

fn accepted(permissions: Permissions) -> Accepted {
    Accepted {
        session_id: 7,
        permissions,
        time_limit_ms: None,
        monitors: vec![(1280, 720)],
        resume: Some(vec![1; 32]),
    }
}

fn click() -> InputEvent {
    InputEvent::PointerMove { x: 3, y: 4 }
}

fn video(seq: u64, keyframe: bool) -> Vec<u8> {
    SessionMessage::Video(VideoFrame {
        seq,
        capture_us: 0,
        keyframe,
        monitor: 0,
        width: 16,
        height: 16,
        codec: Codec::H264,
        role: FrameRole::Update,
        damage: vec![],
        data: vec![seq as u8; 10],
    })
    .encode()
    .unwrap()
}

fn offer(id: u64) -> FileOffer {
    FileOffer {
        transfer_id: id,
        name: "../../etc/report.pdf".into(),
        size: 3,
        sha256: vec![0; 32],
    }
}

#[test]
fn waiting_then_accepted_then_bye() {
    let mut p = Pair::new();
    p.host.waiting(12, 30_000).unwrap();
    p.pump();
    assert_eq!(
        p.viewer_events(),
        vec![ViewerEvent::Waiting {
            request_id: 12,
            timeout_ms: 30_000
        }]
    );
    // Nothing live flows before the accept: video and input are held back on both sides.
    p.host.media(&video(1, true), true).unwrap();
    assert!(!p.viewer.input(click(), false).unwrap());
    p.pump();
    assert!(p.viewer_events().is_empty());
    p.host
        .accepted(accepted(Permissions::INTERACTIVE), false)
        .unwrap();
    p.pump();
    assert!(matches!(&p.viewer_events()[..], [ViewerEvent::Accepted(a)] if a.session_id == 7));
    assert!(p.viewer.is_live() && p.host.is_live());
    p.host
        .end(ByeReason::Kicked, "disconnected by the owner".into())
        .unwrap();
    p.pump();
    assert_eq!(
        p.viewer_events(),
        vec![ViewerEvent::Ended {
            reason: ByeReason::Kicked,
            message: "disconnected by the owner".into()
        }]
    );
    assert!(p.host.is_closed() && p.viewer.is_ended());
}

#[test]
fn refused_ends_the_viewer() {
    let mut p = Pair::new();
    p.host
        .refused(
            "owner_refused".into(),
            "the owner refused the request".into(),
        )
        .unwrap();
    p.pump();
    assert_eq!(
        p.viewer_events(),
        vec![ViewerEvent::Refused {
            code: "owner_refused".into(),
            message: "the owner refused the request".into()
        }]
    );
    assert!(p.host.is_closed() && p.viewer.is_ended());
}

#[test]
fn a_viewer_that_leaves_while_waiting_withdraws() {
    let mut p = Pair::new();
    p.host.waiting(3, 1000).unwrap();
    p.pump();
    p.host.handle_bytes(b"").unwrap();
    assert_eq!(p.host_events(), vec![HostEvent::Withdrawn]);
    assert!(p.host.is_closed());
}

#[test]
fn video_waits_for_a_keyframe_and_again_after_lagging() {
    let mut p = Pair::live(Permissions::VIEW_ONLY, true);
    p.host.media(&video(1, false), false).unwrap();
    p.host.media(&video(2, true), true).unwrap();
    p.host.media(&video(3, false), false).unwrap();
    p.host.lagged();
    p.host.media(&video(4, false), false).unwrap();
    p.host.media(&video(5, true), true).unwrap();
    p.pump();
    let seqs: Vec<u64> = p
        .viewer_events()
        .into_iter()
        .map(|e| match e {
            ViewerEvent::Video(v) => v.seq,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(seqs, vec![2, 3, 5]);
    assert_eq!(p.host_events(), vec![HostEvent::Keyframe]);
    // A viewer's keyframe requests: one at a time. Until its start point goes out, more
    // requests are dropped; then it may ask again.
    for _ in 0..5 {
        p.viewer.request_keyframe().unwrap();
    }
    p.pump();
    assert_eq!(p.host_events(), vec![HostEvent::Keyframe]);
    p.host.media(&video(6, false), false).unwrap();
    p.host.media(&video(7, true), true).unwrap();
    p.viewer.request_keyframe().unwrap();
    p.pump();
    assert_eq!(p.host_events(), vec![HostEvent::Keyframe]);
    // A view-only viewer cannot retune the shared encoder; it may pick what it watches
    // (its own choice), and after the switch it waits for the new stream's start point.
    p.viewer.set_bitrate(500_000).unwrap();
    p.viewer.select_monitor(Some(1)).unwrap();
    p.pump();
    assert_eq!(
        p.host_events(),
        vec![HostEvent::InputDropped, HostEvent::SelectMonitor(Some(1))]
    );
    p.host.switched();
    p.host.media(&video(8, false), false).unwrap();
    p.host.media(&video(9, true), true).unwrap();
    p.pump();
    let seqs: Vec<u64> = p
        .viewer_events()
        .into_iter()
        .filter_map(|e| match e {
            ViewerEvent::Video(v) => Some(v.seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, vec![7, 9], "the old stream's tail is not mixed in");
    assert_eq!(p.host_events(), vec![], "the switch asks for nothing more");
    // An interactive one can.
    let mut q = Pair::live(Permissions::INTERACTIVE, false);
    q.viewer.set_bitrate(500_000).unwrap();
    q.pump();
    assert_eq!(q.host_events(), vec![HostEvent::Bitrate(500_000)]);
}

#[test]
fn input_follows_permissions_at_the_moment_it_arrives() {
    let mut p = Pair::live(Permissions::INTERACTIVE, false);
    assert!(p.viewer.input(click(), false).unwrap());
    p.pump();
    assert_eq!(p.host_events(), vec![HostEvent::Inject(click())]);
    // Narrowed to view: the viewer is told and stops sending; forced input is dropped.
    p.viewer.input(click(), true).unwrap();
    p.host.set_permissions(Permissions::VIEW_ONLY).unwrap();
    p.pump();
    // Held keys are released at once; the event sent before the narrowing arrived after it:
    // dropped, not injected.
    assert_eq!(
        p.host_events(),
        vec![HostEvent::ReleaseInput, HostEvent::InputDropped]
    );
    assert_eq!(
        p.viewer_events(),
        vec![ViewerEvent::Permissions(Permissions::VIEW_ONLY)]
    );
    assert!(!p.viewer.input(click(), false).unwrap());
    assert!(p.viewer.input(click(), true).unwrap());
    p.pump();
    assert_eq!(p.host_events(), vec![HostEvent::InputDropped]);
    // Restored: injected again.
    p.host.set_permissions(Permissions::INTERACTIVE).unwrap();
    p.pump();
    p.viewer.input(click(), false).unwrap();
    p.pump();
    assert_eq!(p.host_events(), vec![HostEvent::Inject(click())]);
}

#[test]
fn clipboard_is_gated_by_permission_and_owner() {
    // No permission: denied at once.
    let mut p = Pair::live(Permissions::INTERACTIVE, false);
    p.viewer.clipboard("x".into()).unwrap();
    p.pump();
    assert!(
        matches!(&p.viewer_events()[..], [ViewerEvent::Decision(d)] if !d.allowed && !d.pending)
    );
    assert!(p.host_events().is_empty());
    // Permission, no confirmation (server users): set at once; host changes flow back.
    let mut p = Pair::live(Permissions::ALL, false);
    p.viewer.clipboard("hello".into()).unwrap();
    p.host.host_clipboard("from host".into()).unwrap();
    p.pump();
    assert_eq!(
        p.host_events(),
        vec![HostEvent::SetClipboard("hello".into())]
    );
    let ev = p.viewer_events();
    assert!(
        ev.contains(&ViewerEvent::Clipboard("from host".into())),
        "{ev:?}"
    );
    // Guests: the owner confirms; the host's own clipboard is not pushed to them.
    let mut p = Pair::live(Permissions::ALL, true);
    p.viewer.clipboard("secret".into()).unwrap();
    p.host.host_clipboard("from host".into()).unwrap();
    p.pump();
    let [HostEvent::AskOwner {
        ask: Ask::Clipboard,
        service: Service::Clipboard,
        detail,
    }] = &p.host_events()[..]
    else {
        panic!()
    };
    assert!(detail.contains("6 characters"));
    assert!(matches!(&p.viewer_events()[..], [ViewerEvent::Decision(d)] if d.pending));
    p.host.owner_answered(Ask::Clipboard, true).unwrap();
    p.pump();
    assert_eq!(
        p.host_events(),
        vec![HostEvent::SetClipboard("secret".into())]
    );
    assert!(matches!(&p.viewer_events()[..], [ViewerEvent::Decision(d)] if d.allowed));
}

#[test]
fn files_by_permission_open_write_and_finish() {
    let mut p = Pair::live(Permissions::ALL, false);
    p.viewer.offer_file(offer(1)).unwrap();
    p.pump();
    let ev = p.host_events();
    assert!(
        matches!(&ev[..], [HostEvent::Audit("file_allowed", d), HostEvent::OpenFile(o)] if d.starts_with("report.pdf") && o.transfer_id == 1),
        "{ev:?}"
    );
    // A chunk before the destination is open is refused.
    p.host.file_opened(1, Ok(())).unwrap();
    p.pump();
    assert!(matches!(&p.viewer_events()[..], [ViewerEvent::Decision(d)] if d.allowed && d.id == 1));
    p.viewer
        .file_chunk(FileChunk {
            transfer_id: 1,
            offset: 0,
            data: b"abc".to_vec(),
        })
        .unwrap();
    p.viewer.file_end(1).unwrap();
    p.pump();
    assert_eq!(
        p.host_events(),
        vec![
            HostEvent::WriteChunk {
                transfer_id: 1,
                offset: 0,
                data: b"abc".to_vec()
            },
            HostEvent::FinishFile(1)
        ]
    );
    p.host
        .file_finished(1, Ok("saved as report.pdf".into()))
        .unwrap();
    p.pump();
    assert!(matches!(&p.viewer_events()[..], [ViewerEvent::FileResult(r)] if r.ok));
}

#[test]
fn files_refused_without_permission_over_limits_or_by_the_owner() {
    let mut p = Pair::live(Permissions::INTERACTIVE, false);
    p.viewer.offer_file(offer(1)).unwrap();
    p.viewer
        .file_chunk(FileChunk {
            transfer_id: 1,
            offset: 0,
            data: vec![1],
        })
        .unwrap();
    let mut big = offer(2);
    big.size = MAX_FILE + 1;
    p.pump();
    let ev = p.viewer_events();
    assert!(
        matches!(&ev[..], [ViewerEvent::Decision(d), ViewerEvent::FileResult(r)] if !d.allowed && !r.ok),
        "{ev:?}"
    );
    assert!(p.host_events().is_empty());

    let mut p = Pair::live(Permissions::ALL, true);
    p.viewer.offer_file(big).unwrap();
    for id in 10..10 + MAX_TRANSFERS as u64 + 1 {
        p.viewer.offer_file(offer(id)).unwrap();
    }
    p.pump();
    let decisions: Vec<(u64, bool)> = p
        .viewer_events()
        .into_iter()
        .map(|e| match e {
            ViewerEvent::Decision(d) => (d.id, d.pending),
            other => panic!("{other:?}"),
        })
        .collect();
    // Too big: refused; four wait for the owner; the fifth is one too many.
    assert_eq!(
        decisions,
        vec![
            (2, false),
            (10, true),
            (11, true),
            (12, true),
            (13, true),
            (14, false)
        ]
    );
    p.host_events();
    p.host.owner_answered(Ask::File(10), false).unwrap();
    p.host.owner_answered(Ask::File(11), true).unwrap();
    // Files taken away while the owner decides: the rest are refused.
    p.host.set_permissions(Permissions::INTERACTIVE).unwrap();
    p.host.owner_answered(Ask::File(12), true).unwrap();
    p.pump();
    assert_eq!(
        p.host_events(),
        vec![HostEvent::OpenFile(offer(11)), HostEvent::AbortFile(11)]
    );
    let ev = p.viewer_events();
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(e, ViewerEvent::Decision(d) if !d.allowed))
            .count(),
        3,
        "{ev:?}"
    );
}

#[test]
fn garbage_from_the_peer_is_an_error_not_a_panic() {
    let mut p = Pair::live(Permissions::ALL, false);
    let err = p.host.handle_bytes(&[0, 5, 1, 2, 3, 4, 5]);
    assert!(err.is_err());
    let mut p = Pair::live(Permissions::ALL, false);
    assert!(p.viewer.handle_bytes(&[0xff; 40]).is_err());
}

#[test]
fn the_host_closing_mid_session_ends_the_viewer() {
    let mut p = Pair::live(Permissions::ALL, false);
    p.viewer.handle_bytes(b"").unwrap();
    assert_eq!(
        p.viewer_events(),
        vec![ViewerEvent::Ended {
            reason: ByeReason::Closed,
            message: "the host closed the session".into()
        }]
    );
    // The viewer closing: the host ends too, and aborts an open transfer.
    let mut p = Pair::live(Permissions::ALL, false);
    p.viewer.offer_file(offer(1)).unwrap();
    p.pump();
    p.host_events();
    p.host.file_opened(1, Ok(())).unwrap();
    p.viewer.bye("viewer closed").unwrap();
    p.pump();
    assert_eq!(
        p.host_events(),
        vec![HostEvent::AbortFile(1), HostEvent::ReleaseInput]
    );
    assert!(p.host.is_closed());
}

#[test]
fn cursor_updates_pass_the_keyframe_gate_and_bad_shapes_are_reported() {
    use crate::wire::session::{CursorPosition, CursorShape};
    let mut p = Pair::live(Permissions::VIEW_ONLY, true);
    let shape = CursorShape {
        serial: 3,
        width: 1,
        height: 1,
        hot_x: 0,
        hot_y: 0,
        rgba: vec![1, 2, 3, 255],
    };
    let mut bad = shape.compress().unwrap();
    bad.width = 2; // the image holds one pixel, not two
    let pos = CursorPosition {
        x: 10,
        y: 20,
        visible: true,
        serial: 3,
    };
    for m in [
        SessionMessage::Cursor(shape.compress().unwrap()),
        SessionMessage::Cursor(bad),
        SessionMessage::CursorPosition(pos),
    ] {
        // No keyframe was sent yet: video would be held back, the cursor is not.
        p.host.cursor(&m.encode().unwrap()).unwrap();
    }
    p.pump();
    assert_eq!(
        p.viewer_events(),
        vec![
            ViewerEvent::CursorShape(shape),
            ViewerEvent::BadCursor("cursor image does not decompress to 8 bytes: 4 bytes".into()),
            ViewerEvent::CursorPosition(pos)
        ]
    );
}

#[test]
fn a_move_hands_over_tokens_and_marks_the_last_message_of_each_side() {
    let mut p = Pair::live(Permissions::VIEW_ONLY, false);
    // The first token came with Accepted; it is taken once.
    assert_eq!(p.viewer.take_resume(), Some(vec![1; 32]));
    assert_eq!(p.viewer.take_resume(), None);
    // The host took a resuming stream: its Moved ends the old stream and carries the next
    // token; video queued before it goes first.
    p.host.media(&video(1, true), true).unwrap();
    p.host.moved(vec![2; 32]).unwrap();
    p.pump();
    let events = p.viewer_events();
    assert!(
        matches!(events.first(), Some(ViewerEvent::Video(_))),
        "{events:?}"
    );
    assert_eq!(events.last(), Some(&ViewerEvent::Moved));
    assert_eq!(p.viewer.take_resume(), Some(vec![2; 32]));
    // The viewer answers; the host learns its next message comes on the new stream.
    assert!(p.viewer.moved().unwrap());
    p.pump();
    assert_eq!(p.host_events(), vec![HostEvent::PeerMoved]);
    // The same transport goes on: messages after the move still decrypt in order.
    p.viewer.request_keyframe().unwrap();
    p.pump();
    assert_eq!(p.host_events(), vec![HostEvent::Keyframe]);
}

#[test]
fn browsing_needs_browse_and_for_guests_the_owners_yes_once_per_session() {
    use crate::policy::Permission;
    use crate::wire::session::Service;
    // Without `browse` (even with `files`, which is for sending): refused at once, nothing
    // reaches the shell.
    let files_only = Permissions::VIEW_ONLY.with(Permission::Files);
    let mut p = Pair::live(files_only, false);
    p.viewer.browse(1, "/home", false).unwrap();
    p.pump();
    assert!(p.host_events().is_empty());
    match p.viewer_events().as_slice() {
        [ViewerEvent::Listing(l)] => {
            assert_eq!(l.req, 1);
            assert!(l.error.as_deref().unwrap().contains("browse permission"));
        }
        other => panic!("{other:?}"),
    }
    // A guest: the owner is asked once; requests wait, then go ahead together.
    let mut p = Pair::live(Permissions::ALL, true);
    p.viewer.browse(1, "/home", false).unwrap();
    p.viewer.browse(2, "/home/a.txt", true).unwrap();
    p.pump();
    let asked = p.host_events();
    assert!(
        matches!(asked.as_slice(), [HostEvent::AskOwner { ask: Ask::Browse, service: Service::Browse, detail }] if detail.contains("/home")),
        "{asked:?}"
    );
    p.host.owner_answered(Ask::Browse, true).unwrap();
    let go = p.host_events();
    assert!(
        matches!(go.as_slice(), [HostEvent::Browse(a), HostEvent::Browse(b)] if a.req == 1 && b.req == 2 && b.get)
    );
    p.viewer.browse(3, "/home/b", false).unwrap();
    p.pump();
    assert!(matches!(p.host_events().as_slice(), [HostEvent::Browse(b)] if b.req == 3));
    // Refused: the waiting requests and later ones are told so.
    let mut p = Pair::live(Permissions::ALL, true);
    p.viewer.browse(1, "/home", true).unwrap();
    p.pump();
    p.host_events();
    p.host.owner_answered(Ask::Browse, false).unwrap();
    p.viewer.browse(2, "/home", false).unwrap();
    p.pump();
    assert!(p.host_events().is_empty());
    let told = p.viewer_events();
    assert!(
        matches!(told.as_slice(), [ViewerEvent::DownloadEnd(e), ViewerEvent::Listing(l)] if e.error.is_some() && l.error.as_deref() == Some("the owner refused browsing")),
        "{told:?}"
    );
    // A download stops when the session loses `browse`.
    let mut p = Pair::live(Permissions::ALL, false);
    p.host
        .set_permissions(Permissions::ALL.without(Permission::Browse))
        .unwrap();
    let chunk = crate::wire::session::Download {
        req: 9,
        offset: 0,
        total: 3,
        data: vec![1, 2, 3],
    };
    assert!(!p.host.download(chunk).unwrap());
}
