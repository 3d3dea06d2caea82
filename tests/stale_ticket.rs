//! The finding: a user removed from a group still came in with a ticket fetched just
//! before (valid five minutes; the host checked the ticket's groups), and a host restart
//! forgot which tickets it had seen. And: an account with no rights on a host filled the
//! host's replay cache with fresh tickets and locked every other user out. Real server, real host, tickets fetched and presented
//! over real libp2p by a hand-driven viewer.
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

use std::time::{Duration, Instant};

use libp2p::PeerId;
use portico_core::identity::Identity;
use portico_core::policy::AccessKind;
use portico_core::ticket::{SignedTicket, TicketKind};
use portico_core::wire::session::SessionMessage;
use portico_core::wire::signal::*;
use portico_signal_client::client::{server_multiaddr, SignalClient};
use procs::*;
use x11::Xvfb;

/// Signs in as `user` and fetches `n` user tickets for `host` (fewer when the server says
/// no more).
async fn tickets(
    id: &Identity,
    server: &Server,
    user: &str,
    host: PeerId,
    n: usize,
) -> Vec<SignedTicket> {
    let addr = server_multiaddr(&server.addr()).unwrap();
    let c = SignalClient::connect(id, addr, Some(server.peer.parse().unwrap()))
        .await
        .unwrap();
    let login = Login {
        user: user.into(),
        password: format!("{user}-pw"),
    };
    let SignalResponse::LoggedIn(l) = c.request(SignalRequest::Login(login)).await.unwrap() else {
        panic!("login refused")
    };
    let mut out = Vec::new();
    for _ in 0..n {
        let ask = SignalRequest::IssueTicket(IssueTicket {
            session: l.session.clone(),
            host: host.into(),
            kind: TicketKind::User,
        });
        match c.request(ask).await.unwrap() {
            SignalResponse::Ticket(t) => out.push(t),
            SignalResponse::Error(e) if e.code == ErrorCode::RateLimited => break,
            other => panic!("no ticket: {other:?}"),
        }
    }
    out
}

/// Presents `ticket` to the host at `addr` as a server user: the host's first answer. On
/// a runtime of its own, dropped after: the viewer's connection closes with it.
fn present(id: &Identity, addr: &str, ticket: SignedTicket) -> SessionMessage {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let answer = rt.block_on(present_in(id, addr, ticket));
    rt.shutdown_background();
    answer
}

async fn present_in(id: &Identity, addr: &str, ticket: SignedTicket) -> SessionMessage {
    let (mut control, peer) = raw::control(id, addr).await;
    let mut s = raw::open(&mut control, peer).await;
    let mut req = raw::request(AccessKind::User, "alice");
    req.tickets = vec![ticket];
    let mut transport = raw::handshake(&mut s, id, peer, req).await;
    raw::answer(&mut s, &mut transport).await
}

fn refusal(m: &SessionMessage) -> String {
    match m {
        SessionMessage::Refused(r) => r.message.clone(),
        other => format!("not refused: {other:?}"),
    }
}

#[test]
fn tickets_from_before_a_group_change_stay_refused_across_a_host_restart() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(8));
    let dir = tempfile::tempdir().unwrap();
    let sdir = dir.path().join("server");
    let signal = start_server(&sdir);
    add_user(&sdir, "alice", false);
    admin(&sdir, &["group", "add", "Sales"], None);
    admin(&sdir, &["group", "add-member", "Sales", "alice"], None);
    let acl =
        "[[acl]]\nprincipal = \"group:Sales\"\npermissions = [\"view\"]\napproval = \"never\"\n";
    let token = enroll_token(&sdir, "/Sales");
    let hdir = dir.path().join("host");
    let server = signal.addr();
    let args = ["--server", &server, "--name", "/Sales/pc"];
    let mut host = Host::start(&x, &hdir, acl, &[&args[..], &["--enroll", &token]].concat());
    let addr = host.tcp_addr();
    host.wait_line("Internet-ID:");
    let host_peer: PeerId = host.wait_line("PeerId:").parse().unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    let viewer = Identity::generate();
    let mut stale = rt.block_on(tickets(&viewer, &signal, "alice", host_peer, 3));
    // Still in Sales: a ticket comes in.
    let first = present(&viewer, &addr, stale.pop().unwrap());
    assert!(matches!(first, SessionMessage::Accepted(_)), "{first:?}");

    admin(&sdir, &["group", "remove-member", "Sales", "alice"], None);
    // Once the host heard of it (its audit says so), the ticket fetched before is refused.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(hdir.join("audit.jsonl"))
        .unwrap()
        .contains("account_changed")
    {
        assert!(
            Instant::now() < deadline,
            "the host never heard of the change"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let why = refusal(&present(&viewer, &addr, stale.pop().unwrap()));
    assert!(
        why.contains("changed at the server"),
        "a stale ticket still counts: {why}"
    );

    // Restarted, the host still knows: the last stale ticket is refused too.
    drop(host);
    let mut host = Host::start(&x, &hdir, acl, &args);
    let addr = host.tcp_addr();
    let answer = present(&viewer, &addr, stale.pop().unwrap());
    assert!(
        refusal(&answer).contains("changed at the server"),
        "{answer:?}"
    );
    assert!(hdir.join("tickets.json").is_file());
}

#[test]
fn an_account_the_acl_refuses_cannot_fill_the_replay_cache() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(9));
    let dir = tempfile::tempdir().unwrap();
    let sdir = dir.path().join("server");
    let signal = start_server(&sdir);
    add_user(&sdir, "alice", false);
    add_user(&sdir, "mallory", false);
    admin(&sdir, &["group", "add", "Sales"], None);
    admin(&sdir, &["group", "add-member", "Sales", "alice"], None);
    let acl =
        "[[acl]]\nprincipal = \"group:Sales\"\npermissions = [\"view\"]\napproval = \"never\"\n";
    let token = enroll_token(&sdir, "/Sales");
    let server = signal.addr();
    let args = [
        "--server",
        &server,
        "--name",
        "/Sales/pc",
        "--enroll",
        &token,
    ];
    let mut host = Host::start(&x, &dir.path().join("host"), acl, &args);
    let addr = host.tcp_addr();
    host.wait_line("Internet-ID:");
    let host_peer: PeerId = host.wait_line("PeerId:").parse().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();

    // The server hands one account only a few tickets for one host at a time.
    let mallory = Identity::generate();
    let minted = rt.block_on(tickets(&mallory, &signal, "mallory", host_peer, 100));
    assert!((2..=20).contains(&minted.len()), "{} tickets", minted.len());
    // Each is refused by the ACL and none is remembered: the same one is refused for the
    // same reason again, never as "already used".
    for t in minted.iter().chain(minted.first()) {
        let why = refusal(&present(&mallory, &addr, t.clone()));
        assert!(why.contains("no access entry on this host"), "{why}");
    }
    let alice = Identity::generate();
    let t = rt
        .block_on(tickets(&alice, &signal, "alice", host_peer, 1))
        .remove(0);
    let answer = present(&alice, &addr, t);
    assert!(matches!(answer, SessionMessage::Accepted(_)), "{answer:?}");
}
