//! Resuming a live session on a new stream (what moves a session off the relay), against a
//! real host: the session's own viewer with the session's token moves it and the pictures
//! go on over the new stream; a wrong token, a replayed one, and a good one from another
//! key are refused, audited (one line a minute however many), and leave the session as it
//! was.
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

#[path = "support/procs.rs"]
mod procs;
#[path = "support/raw.rs"]
mod raw;
#[path = "support/x11.rs"]
mod x11;

use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::PeerId;
use portico_core::identity::Identity;
use portico_core::policy::AccessKind;
use portico_core::session::{ViewerEvent, ViewerSession};
use portico_core::wire::session::resume_preface;
use procs::*;
use raw::{control, open, Read, Write};
use x11::Xvfb;

/// Reads from `r` into the machine until an event matches `want` (20 s at most).
async fn until(
    m: &mut ViewerSession,
    r: &mut Read,
    want: impl Fn(&ViewerEvent) -> bool,
) -> ViewerEvent {
    let mut buf = vec![0u8; 64 * 1024];
    tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            while let Some(ev) = m.poll_event() {
                if want(&ev) {
                    return ev;
                }
            }
            let n = r.read(&mut buf).await.unwrap();
            assert!(n > 0, "the stream ended");
            m.handle_bytes(&buf[..n]).unwrap();
        }
    })
    .await
    .expect("no such event in 20 s")
}

async fn send(m: &mut ViewerSession, w: &mut Write) {
    while let Some(b) = m.poll_transmit() {
        w.write_all(&b).await.unwrap();
    }
    w.flush().await.unwrap();
}

/// A stream that starts with `token`: whether the host closed it (refused) within 10 s
/// without sending anything.
async fn refused(control: &mut libp2p_stream::Control, peer: PeerId, token: &[u8]) -> bool {
    let (mut r, mut w) = open(control, peer).await;
    w.write_all(&resume_preface(token)).await.unwrap();
    w.flush().await.unwrap();
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), r.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[test]
fn only_the_sessions_own_viewer_with_a_fresh_token_moves_it() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(6));
    let dir = tempfile::tempdir().unwrap();
    let (vdir, xdir) = (dir.path().join("viewer"), dir.path().join("other"));
    let config = format!(
        "{}{}",
        acl(&peer_of(&vdir), "view"),
        acl(&peer_of(&xdir), "view")
    );
    let hdir = dir.path().join("host");
    let mut host = Host::start(&x, &hdir, &config, &[]);
    let addr = host.tcp_addr();
    let (viewer, other) = (
        Identity::load_or_create(&vdir).unwrap().0,
        Identity::load_or_create(&xdir).unwrap().0,
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (mut vc, peer) = control(&viewer, &addr).await;
        let (mut xc, _) = control(&other, &addr).await;
        // A live session; its first token came with Accepted.
        let mut s1 = open(&mut vc, peer).await;
        let transport = raw::handshake(
            &mut s1,
            &viewer,
            peer,
            raw::request(AccessKind::Peer, "mover"),
        )
        .await;
        let (mut r1, mut w1) = s1;
        let mut m = ViewerSession::new(transport);
        until(&mut m, &mut r1, |e| matches!(e, ViewerEvent::Accepted(_))).await;
        let first = m.take_resume().expect("no resume token");

        // A wrong token: refused; the session goes on.
        assert!(
            refused(&mut vc, peer, &[0x55; 32]).await,
            "a wrong token was taken"
        );
        m.request_keyframe().unwrap();
        send(&mut m, &mut w1).await;
        until(&mut m, &mut r1, |e| {
            matches!(e, ViewerEvent::Lossless(_) | ViewerEvent::Video(_))
        })
        .await;

        // The right token from the session's viewer: the host's last message on the old
        // stream is Moved, with the next token.
        let (mut r2, mut w2) = open(&mut vc, peer).await;
        w2.write_all(&resume_preface(&first)).await.unwrap();
        w2.flush().await.unwrap();
        until(&mut m, &mut r1, |e| matches!(e, ViewerEvent::Moved)).await;
        let next = m.take_resume().expect("no next token");
        assert_ne!(next, first);
        assert!(m.moved().unwrap());
        send(&mut m, &mut w1).await;
        // The same session goes on over the new stream.
        m.request_keyframe().unwrap();
        send(&mut m, &mut w2).await;
        until(&mut m, &mut r2, |e| {
            matches!(e, ViewerEvent::Lossless(_) | ViewerEvent::Video(_))
        })
        .await;

        // Replayed: refused. The next token from another key: refused, and burnt.
        assert!(
            refused(&mut vc, peer, &first).await,
            "a replayed token was taken"
        );
        assert!(
            refused(&mut xc, peer, &next).await,
            "another key moved the session"
        );
        assert!(
            refused(&mut vc, peer, &next).await,
            "a burnt token was taken"
        );
        // Made-up tokens, many: each refused, none costs an audit line of its own.
        for i in 0..40u8 {
            assert!(refused(&mut xc, peer, &[i; 32]).await);
        }
        // Still live on the new stream.
        m.request_keyframe().unwrap();
        send(&mut m, &mut w2).await;
        until(&mut m, &mut r2, |e| {
            matches!(e, ViewerEvent::Lossless(_) | ViewerEvent::Video(_))
        })
        .await;
    });
    let audit = std::fs::read_to_string(hdir.join("audit.jsonl")).unwrap();
    // 44 refusals within a minute: one line (the rest are summed up in the next minute's).
    assert_eq!(audit.matches("resume_refused").count(), 1, "{audit}");
}
