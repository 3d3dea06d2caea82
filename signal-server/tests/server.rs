//! The server in-process on port 0 with a real sled dir; clients over real libp2p on loopback;
//! admin commands through the real admin socket.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use libp2p::PeerId;
use portico_core::identity::Identity;
use portico_core::policy::{
    AccessKind, Decision, HostSettings, Request, RequestedMode, ServerFlags,
};
use portico_core::ticket::{self, ReplayCache, TicketKind};
use portico_core::wire::signal::*;
use portico_core::InternetId;
use portico_signal::admin::AdminCommand;
use portico_signal::store::accounts::PasswordHashed;
use portico_signal::{Config, Store};
use portico_signal_client::client::SignalClient;

#[path = "support/inproc.rs"]
mod inproc;
use inproc::{start_in, Server};

fn user_add(name: &str, force: bool) -> AdminCommand {
    AdminCommand::UserAdd {
        name: name.into(),
        password: PasswordHashed::of(&format!("{name}-pw")).unwrap(),
        force_server_security: force,
    }
}

/// Registers (or refreshes) a host with an enrollment token the admin makes for the
/// path's folder (`/unassigned` without a path).
async fn register(s: &Server, c: &SignalClient, path: Option<&str>) -> Registered {
    let folder = path
        .and_then(|p| p.rsplit_once('/'))
        .map(|(f, _)| if f.is_empty() { "/" } else { f })
        .unwrap_or("/unassigned");
    let token = s.enroll_token(folder).await;
    match c
        .request(SignalRequest::Register(Register {
            node_path: path.map(Into::into),
            addrs: vec!["/ip4/10.1.0.10/tcp/5650".into()],
            agent: "test".into(),
            enroll: Some(token),
        }))
        .await
        .unwrap()
    {
        SignalResponse::Registered(r) => r,
        other => panic!("register: {other:?}"),
    }
}

async fn login(c: &SignalClient, user: &str, pw: &str) -> SignalResponse {
    c.request(SignalRequest::Login(Login {
        user: user.into(),
        password: pw.into(),
    }))
    .await
    .unwrap()
}

fn token(r: &SignalResponse) -> SessionToken {
    match r {
        SignalResponse::LoggedIn(l) => l.session.clone(),
        other => panic!("expected LoggedIn, got {other:?}"),
    }
}

fn error_code(r: &SignalResponse) -> ErrorCode {
    match r {
        SignalResponse::Error(e) => e.code,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn register_lookup_login_tickets() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_in(
        dir.path(),
        Config {
            server_name: "hq".into(),
            ..Config::default()
        },
    )
    .await;
    s.admin(user_add("alice", false)).await;
    s.admin(user_add("fred", true)).await;
    s.admin(AdminCommand::GroupAdd {
        name: "Sales".into(),
    })
    .await;
    s.admin(AdminCommand::GroupMember {
        group: "Sales".into(),
        user: "alice".into(),
        member: true,
    })
    .await;

    // A host registers under /Sales/pc-7; another without a name lands in /unassigned/.
    let host_id = Identity::generate();
    let host = s.client(&host_id).await;
    let reg = register(&s, &host, Some("/Sales/pc-7")).await;
    assert_eq!(reg.node_path, "/Sales/pc-7");
    assert_eq!(reg.server_name, "hq");
    assert!(
        !reg.allow_guests && !reg.allow_visitors && !reg.guest_sharing && !reg.visitor_sharing,
        "all sharing off by default"
    );
    let other = s.client(&Identity::generate()).await;
    let reg2 = register(&s, &other, None).await;
    assert!(
        reg2.node_path.starts_with("/unassigned/"),
        "{}",
        reg2.node_path
    );
    // Re-registering keeps the ID.
    assert_eq!(register(&s, &host, None).await.internet_id, reg.internet_id);

    // Lookup by Internet-ID works without signing in; by path needs a session.
    let viewer_id = Identity::generate();
    let viewer = s.client(&viewer_id).await;
    let found = match viewer
        .request(SignalRequest::Lookup(Lookup {
            target: LookupTarget::Id(reg.internet_id),
            session: None,
        }))
        .await
        .unwrap()
    {
        SignalResponse::Found(f) => f,
        other => panic!("{other:?}"),
    };
    assert_eq!(PeerId::try_from(&found.peer).unwrap(), host_id.peer_id());
    assert!(found.online);
    assert_eq!(found.addrs, vec!["/ip4/10.1.0.10/tcp/5650".to_string()]);
    // Without signing in, the host's place in the tree is not revealed.
    assert_eq!(found.node_path, "");
    let unknown = InternetId::from_payload(1).unwrap();
    let r = viewer
        .request(SignalRequest::Lookup(Lookup {
            target: LookupTarget::Id(unknown),
            session: None,
        }))
        .await
        .unwrap();
    assert_eq!(error_code(&r), ErrorCode::NotFound);
    let r = viewer
        .request(SignalRequest::Lookup(Lookup {
            target: LookupTarget::Path("/Sales/pc-7".into()),
            session: None,
        }))
        .await
        .unwrap();
    assert_eq!(error_code(&r), ErrorCode::Unauthorized);

    // Bad password and unknown user look the same.
    let bad = login(&viewer, "alice", "nope").await;
    let ghost = login(&viewer, "ghost", "nope").await;
    assert_eq!(bad, ghost);
    assert_eq!(error_code(&bad), ErrorCode::Unauthorized);
    let ok = login(&viewer, "alice", "alice-pw").await;
    let session = token(&ok);
    match &ok {
        SignalResponse::LoggedIn(l) => {
            assert_eq!(l.groups, vec!["Sales".to_string()]);
            assert_eq!(l.server_name, "hq");
        }
        _ => unreachable!(),
    }
    let found = viewer
        .request(SignalRequest::Lookup(Lookup {
            target: LookupTarget::Path("/Sales/pc-7".into()),
            session: Some(session.clone()),
        }))
        .await
        .unwrap();
    assert!(matches!(found, SignalResponse::Found(_)), "{found:?}");
    // The session is bound to the viewer's PeerId: another peer cannot use it.
    let thief = s.client(&Identity::generate()).await;
    let r = thief
        .request(SignalRequest::WhoAmI(WhoAmI {
            session: session.clone(),
        }))
        .await
        .unwrap();
    assert_eq!(error_code(&r), ErrorCode::Unauthorized);

    // Node listing.
    let nodes = match viewer
        .request(SignalRequest::ListNodes(ListNodes {
            session: session.clone(),
            path: "/".into(),
        }))
        .await
        .unwrap()
    {
        SignalResponse::Nodes(n) => n,
        other => panic!("{other:?}"),
    };
    let pc7 = nodes
        .entries
        .iter()
        .find(|e| e.path == "/Sales/pc-7")
        .unwrap();
    assert!(pc7.is_host && pc7.online && pc7.internet_id == Some(reg.internet_id));

    // A user ticket verifies with core's verify at the host; a second use is a replay.
    let ask = |kind| {
        SignalRequest::IssueTicket(IssueTicket {
            session: session.clone(),
            host: host_id.peer_id().into(),
            kind,
        })
    };
    let SignalResponse::Ticket(t) = viewer.request(ask(TicketKind::User)).await.unwrap() else {
        panic!("no user ticket")
    };
    let now = portico_signal_now();
    let mut cache = ReplayCache::new(16);
    let verified = ticket::verify(
        &t,
        &s.identity.public(),
        &host_id.peer_id(),
        &viewer_id.peer_id(),
        now,
        &cache,
    )
    .unwrap();
    // The host remembers a ticket once it lets it count; then it is a replay.
    cache.remember(&verified, now).unwrap();
    assert_eq!(verified.subject.user, "alice");
    assert_eq!(verified.subject.groups, vec!["Sales".to_string()]);
    assert_eq!(verified.server_name, "hq");
    assert!(verified.expires_at - verified.issued_at == 300);
    assert!(ticket::verify(
        &t,
        &s.identity.public(),
        &host_id.peer_id(),
        &viewer_id.peer_id(),
        now,
        &cache
    )
    .is_err());
    // Another host would refuse it.
    assert!(ticket::verify(
        &t,
        &s.identity.public(),
        &PeerId::random(),
        &viewer_id.peer_id(),
        now,
        &ReplayCache::new(4)
    )
    .is_err());

    // Visitor tickets: refused while the global switch or the node flag is off.
    assert_eq!(
        error_code(&viewer.request(ask(TicketKind::Visitor)).await.unwrap()),
        ErrorCode::Forbidden
    );
    s.admin(AdminCommand::SettingsSet {
        key: "visitor-sharing".into(),
        on: true,
    })
    .await;
    assert_eq!(
        error_code(&viewer.request(ask(TicketKind::Visitor)).await.unwrap()),
        ErrorCode::Forbidden
    );
    s.admin(AdminCommand::NodeSet {
        path: "/Sales".into(),
        allow_guests: None,
        allow_visitors: Some(true),
    })
    .await;
    let SignalResponse::Ticket(vt) = viewer.request(ask(TicketKind::Visitor)).await.unwrap() else {
        panic!("no visitor ticket")
    };
    let v = ticket::verify(
        &vt,
        &s.identity.public(),
        &host_id.peer_id(),
        &viewer_id.peer_id(),
        portico_signal_now(),
        &cache,
    )
    .unwrap();
    assert_eq!(v.kind, TicketKind::Visitor);
    // And the host's policy asks the owner, naming the account.
    let req = Request {
        kind: AccessKind::Visitor,
        viewer: viewer_id.peer_id(),
        mode: RequestedMode::Interactive,
        ticket: Some(&v),
    };
    let flags = ServerFlags {
        guest_sharing: false,
        visitor_sharing: true,
        node_allows_guests: false,
        node_allows_visitors: true,
    };
    assert!(matches!(
        portico_core::policy::decide(
            &req,
            &HostSettings {
                allow_guests: false,
                allow_visitors: true
            },
            &[],
            Some(&flags),
            0
        ),
        Decision::AskOwner { .. }
    ));

    // A forced user gets no visitor ticket, but a user ticket carrying the flag.
    let fv = s.client(&Identity::generate()).await;
    let fs = token(&login(&fv, "fred", "fred-pw").await);
    let r = fv
        .request(SignalRequest::IssueTicket(IssueTicket {
            session: fs.clone(),
            host: host_id.peer_id().into(),
            kind: TicketKind::Visitor,
        }))
        .await
        .unwrap();
    assert_eq!(error_code(&r), ErrorCode::Forbidden);
    let SignalResponse::Ticket(ft) = fv
        .request(SignalRequest::IssueTicket(IssueTicket {
            session: fs,
            host: host_id.peer_id().into(),
            kind: TicketKind::User,
        }))
        .await
        .unwrap()
    else {
        panic!()
    };
    assert!(
        ticket::open(&ft, &s.identity.public())
            .unwrap()
            .subject
            .force_server_security
    );

    // A disabled user gets nothing (the session dies with the account).
    s.admin(AdminCommand::UserSetDisabled {
        name: "alice".into(),
        disabled: true,
    })
    .await;
    let r = viewer.request(ask(TicketKind::User)).await.unwrap();
    assert!(matches!(
        error_code(&r),
        ErrorCode::Unauthorized | ErrorCode::Forbidden
    ));
    let r = login(&viewer, "alice", "alice-pw").await;
    assert_eq!(error_code(&r), ErrorCode::Forbidden);

    s.running.shutdown().await;
}

fn portico_signal_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

#[tokio::test]
async fn login_backoff_after_repeated_failures() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.login.free_failures = 2;
    config.login.base_ms = 60_000;
    let s = start_in(dir.path(), config).await;
    s.admin(user_add("bob", false)).await;
    let c = s.client(&Identity::generate()).await;
    for _ in 0..3 {
        assert_eq!(
            error_code(&login(&c, "bob", "wrong").await),
            ErrorCode::Unauthorized
        );
    }
    // Even the right password now waits.
    let r = login(&c, "bob", "bob-pw").await;
    match r {
        SignalResponse::Error(e) => {
            assert_eq!(e.code, ErrorCode::RateLimited);
            assert!(e.retry_after_ms.unwrap() > 50_000);
        }
        other => panic!("{other:?}"),
    }
    s.running.shutdown().await;
}

#[tokio::test]
async fn sign_ins_no_account_could_match_are_refused_before_they_cost_anything() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.login.free_failures = 2;
    let s = start_in(dir.path(), config).await;
    s.admin(user_add("bob", false)).await;
    let c = s.client(&Identity::generate()).await;
    let huge = "b".repeat(100_000);
    for (user, pw) in [
        (huge.as_str(), "x"),
        ("bob\u{202e}", "x"),
        ("", "x"),
        ("bob", huge.as_str()),
    ] {
        let r = login(&c, user, pw).await;
        assert_eq!(error_code(&r), ErrorCode::BadRequest, "{user:.20}: {r:?}");
    }
    // None of them counted as a failure against bob or this address.
    assert!(matches!(
        login(&c, "bob", "bob-pw").await,
        SignalResponse::LoggedIn(_)
    ));
    s.running.shutdown().await;
}

#[tokio::test]
async fn an_account_attacked_from_everywhere_still_admits_its_known_devices() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    // The tests all come from 127.0.0.1: the per-address backoffs stay out of the way, so
    // only the account's ceiling acts.
    config.login.free_failures = 1000;
    config.login.account_ceiling = 3;
    config.login.base_ms = 60_000;
    let s = start_in(dir.path(), config).await;
    s.admin(user_add("erin", false)).await;
    let laptop = s.client(&Identity::generate()).await;
    assert!(matches!(
        login(&laptop, "erin", "erin-pw").await,
        SignalResponse::LoggedIn(_)
    ));
    // Strangers with fresh keys fail past the ceiling...
    for _ in 0..4 {
        let c = s.client(&Identity::generate()).await;
        login(&c, "erin", "guess").await;
    }
    // ...so a device erin never used waits, even with the right password,
    let newcomer = s.client(&Identity::generate()).await;
    assert_eq!(
        error_code(&login(&newcomer, "erin", "erin-pw").await),
        ErrorCode::RateLimited
    );
    // while her own laptop still gets in.
    assert!(matches!(
        login(&laptop, "erin", "erin-pw").await,
        SignalResponse::LoggedIn(_)
    ));
    s.running.shutdown().await;
}

#[tokio::test]
async fn hosts_hear_group_user_and_flag_changes() {
    let dir = tempfile::tempdir().unwrap();
    let s = start_in(dir.path(), Config::default()).await;
    s.admin(user_add("alice", false)).await;
    s.admin(AdminCommand::GroupAdd {
        name: "Sales".into(),
    })
    .await;
    s.admin(AdminCommand::GroupMember {
        group: "Sales".into(),
        user: "alice".into(),
        member: true,
    })
    .await;
    let mut host = s.client(&Identity::generate()).await;
    register(&s, &host, Some("/Sales/pc-1")).await;

    s.admin(AdminCommand::GroupMember {
        group: "Sales".into(),
        user: "alice".into(),
        member: false,
    })
    .await;
    let ev = tokio::time::timeout(Duration::from_secs(5), host.next_event())
        .await
        .unwrap()
        .unwrap();
    // Dated by the server, so hosts refuse alice's tickets from before it.
    let Change::User { changed_at, .. } = ev.change else {
        panic!("{:?}", ev.change)
    };
    assert!(changed_at > 1_700_000_000);
    assert_eq!(
        ev.change,
        Change::User {
            user: "alice".into(),
            groups: vec![],
            disabled: false,
            force_server_security: false,
            changed_at,
        }
    );

    s.admin(AdminCommand::NodeSet {
        path: "/Sales".into(),
        allow_guests: Some(true),
        allow_visitors: None,
    })
    .await;
    let ev = tokio::time::timeout(Duration::from_secs(5), host.next_event())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        ev.change,
        Change::Node {
            path: "/Sales/pc-1".into(),
            allow_guests: true,
            allow_visitors: false
        }
    );

    s.admin(AdminCommand::UserSetDisabled {
        name: "alice".into(),
        disabled: true,
    })
    .await;
    let ev = tokio::time::timeout(Duration::from_secs(5), host.next_event())
        .await
        .unwrap()
        .unwrap();
    assert!(matches!(ev.change, Change::User { disabled: true, .. }));
    s.running.shutdown().await;
}

#[tokio::test]
async fn restart_keeps_everything_and_pinning_refuses_another_key() {
    let dir = tempfile::tempdir().unwrap();
    let host_id = Identity::generate();
    let (id1, pinned) = {
        let s = start_in(dir.path(), Config::default()).await;
        s.admin(user_add("carol", false)).await;
        s.admin(AdminCommand::GroupAdd { name: "Ops".into() }).await;
        let host = s.client(&host_id).await;
        let r = register(&s, &host, Some("/Ops/srv")).await;
        let pinned = s.running.peer_id;
        s.running.shutdown().await;
        (r.internet_id, pinned)
    };
    // While the server is down, an admin disables a user (straight in the store): the
    // change is numbered all the same, so the host can tell it missed something.
    let dir_arg = dir.path().to_path_buf();
    let offline = tokio::task::spawn_blocking(move || {
        let store = Store::open(&dir_arg).unwrap();
        let identity = Identity::load_or_create(&dir_arg).unwrap().0;
        let ctx = portico_signal::admin::AdminContext {
            store: &store,
            identity: &identity,
            server_name: "hq",
            server_addrs: vec![],
            online: &|_| false,
            now: 1,
        };
        let (reply, events) = portico_signal::admin::execute(&ctx, user_add("dave", false));
        assert!(reply.ok && events.is_empty());
        let (reply, events) = portico_signal::admin::execute(
            &ctx,
            AdminCommand::UserSetDisabled {
                name: "dave".into(),
                disabled: true,
            },
        );
        assert!(reply.ok);
        events[0].seq
    })
    .await
    .unwrap();
    let s = start_in(dir.path(), Config::default()).await;
    assert_eq!(
        s.running.peer_id, pinned,
        "the server key survives restarts"
    );
    let host = s.client(&host_id).await;
    let r = register(&s, &host, None).await;
    assert_eq!(r.internet_id, id1);
    assert_eq!(r.node_path, "/Ops/srv");
    // register() had the admin make a token (no event); the offline change is the latest.
    assert_eq!(r.state_version, offline);
    let users = host
        .request(SignalRequest::CheckUsers(CheckUsers {
            users: vec!["dave".into(), "carol".into(), "nobody".into()],
        }))
        .await
        .unwrap();
    let SignalResponse::Users(Users { users }) = users else {
        panic!("{users:?}")
    };
    let disabled: Vec<bool> = users
        .iter()
        .map(|c| matches!(c, Change::User { disabled: true, .. }))
        .collect();
    assert_eq!(disabled, [true, false, true]);
    // Each heartbeat's answer carries the number too (a host that lost an event while
    // connected catches up within a heartbeat).
    let hb = host
        .request(SignalRequest::Heartbeat(Heartbeat { addrs: vec![] }))
        .await
        .unwrap();
    assert_eq!(
        hb,
        SignalResponse::Ack(Ack {
            state_version: Some(offline)
        })
    );
    let viewer = s.client(&Identity::generate()).await;
    assert!(matches!(
        login(&viewer, "carol", "carol-pw").await,
        SignalResponse::LoggedIn(_)
    ));
    assert!(s.admin(AdminCommand::GroupList).await.contains("Ops"));
    assert!(s
        .admin(AdminCommand::Audit {
            tail: None,
            verify: true
        })
        .await
        .contains("audit chain OK"));

    // A client that pinned another key refuses this server.
    let err = SignalClient::connect(
        &Identity::generate(),
        s.tcp_addr()
            .with_p2p(s.running.peer_id)
            .unwrap()
            .iter()
            .take(2)
            .collect(),
        Some(PeerId::random()),
    )
    .await;
    assert!(
        matches!(
            err,
            Err(portico_signal_client::client::ClientError::KeyChanged { .. })
        ),
        "{:?}",
        err.err()
    );
    s.running.shutdown().await;
}

#[tokio::test]
async fn metrics_count_hosts_logins_and_tickets() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let s = start_in(
        dir.path(),
        Config {
            metrics: Some("127.0.0.1:0".parse().unwrap()),
            ..Config::default()
        },
    )
    .await;
    s.admin(user_add("dora", false)).await;
    let host_id = Identity::generate();
    let host = s.client(&host_id).await;
    register(&s, &host, Some("/m/h")).await;
    let viewer = s.client(&Identity::generate()).await;
    login(&viewer, "dora", "bad").await;
    let session = token(&login(&viewer, "dora", "dora-pw").await);
    let r = viewer
        .request(SignalRequest::IssueTicket(IssueTicket {
            session,
            host: host_id.peer_id().into(),
            kind: TicketKind::User,
        }))
        .await
        .unwrap();
    assert!(matches!(r, SignalResponse::Ticket(_)));

    let mut conn = tokio::net::TcpStream::connect(s.running.metrics_addr.unwrap())
        .await
        .unwrap();
    conn.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut body = String::new();
    conn.read_to_string(&mut body).await.unwrap();
    assert!(body.starts_with("HTTP/1.1 200 OK"), "{body}");
    for needle in [
        "portico_registered_hosts 1",
        "portico_online_hosts 1",
        "portico_logins_total{result=\"ok\"} 1",
        "portico_logins_total{result=\"failed\"} 1",
        "portico_tickets_total{kind=\"user\"} 1",
        "portico_relay_circuits_open 0",
        "libp2p_bandwidth",
    ] {
        assert!(body.contains(needle), "missing {needle:?} in:\n{body}");
    }
    s.running.shutdown().await;
}

#[tokio::test]
async fn quic_and_tcp_both_serve_and_two_servers_share_a_process() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_in(d1.path(), Config::default()).await;
    let b = start_in(d2.path(), Config::default()).await;
    assert_ne!(a.running.peer_id, b.running.peer_id);
    for s in [&a, &b] {
        let quic = s
            .running
            .listen_addrs
            .iter()
            .find(|x| x.to_string().contains("/quic-v1"))
            .unwrap()
            .clone();
        let c = SignalClient::connect(&Identity::generate(), quic, Some(s.running.peer_id))
            .await
            .unwrap();
        assert!(
            matches!(register(s, &c, None).await.node_path.as_str(), p if p.starts_with("/unassigned/"))
        );
        let c = s.client(&Identity::generate()).await;
        register(s, &c, None).await;
    }
    a.running.shutdown().await;
    b.running.shutdown().await;
}

#[tokio::test]
async fn lookups_are_limited_per_ip_whatever_the_peer_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    // PeerIds are free: each client below is a new one, so only the per-IP bucket can stop
    // them.
    config.rate.per_ip_burst = 4;
    config.rate.per_ip_per_sec = 0.001;
    let s = start_in(dir.path(), config).await;
    let unknown = InternetId::from_payload(1).unwrap();
    let mut codes = Vec::new();
    for _ in 0..6 {
        let c = s.client(&Identity::generate()).await;
        let r = c
            .request(SignalRequest::Lookup(Lookup {
                target: LookupTarget::Id(unknown),
                session: None,
            }))
            .await
            .unwrap();
        codes.push(match r {
            SignalResponse::Error(e) => e.code,
            other => panic!("{other:?}"),
        });
    }
    // Four answered (not found), then refused for the address, not the key.
    assert_eq!(&codes[..4], &[ErrorCode::NotFound; 4]);
    assert_eq!(&codes[4..], &[ErrorCode::RateLimited; 2]);
    s.running.shutdown().await;
}
