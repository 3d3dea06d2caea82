//! The request handler without a network: a real sled store in a temporary directory,
//! requests from chosen peers and addresses, time given by the test.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use portico_core::clock::Clock;

use libp2p::PeerId;
use portico_core::identity::Identity;
use portico_core::wire::signal::*;

use super::State;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{NodePath, Store};

struct Fixture {
    _dir: tempfile::TempDir,
    state: State,
    now: Clock,
}

fn ip(last: u8) -> Option<IpAddr> {
    Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, last)))
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let state = State::new(
            Config::default(),
            Identity::generate(),
            store,
            Metrics::default(),
        )
        .unwrap();
        Self {
            _dir: dir,
            state,
            now: Clock {
                at: Instant::now(),
                unix: 1_800_000_000,
            },
        }
    }

    fn token(&self, folder: &str) -> String {
        let folder = NodePath::parse(folder).unwrap();
        let (token, _) = self
            .state
            .store
            .create_enrollment(&folder, 1, u64::MAX, 0)
            .unwrap();
        token
    }

    /// Moves both clocks on.
    fn advance(&mut self, secs: u64) {
        self.now.at += Duration::from_secs(secs);
        self.now.unix += secs;
    }

    fn send(&mut self, peer: PeerId, from: Option<IpAddr>, req: SignalRequest) -> SignalResponse {
        self.state.handle(peer, from, req, self.now)
    }

    fn register(
        &mut self,
        peer: PeerId,
        from: Option<IpAddr>,
        enroll: Option<String>,
    ) -> SignalResponse {
        let req = SignalRequest::Register(Register {
            node_path: Some("/Office/pc-1".into()),
            addrs: vec![format!("/ip4/{}/tcp/5650", from.unwrap())],
            agent: "test".into(),
            enroll,
        });
        self.send(peer, from, req)
    }

    fn audit_actions(&self) -> Vec<String> {
        let entries = self.state.store.audit().entries(None).unwrap();
        entries.into_iter().map(|e| e.action).collect()
    }
}

fn code(r: &SignalResponse) -> Option<ErrorCode> {
    match r {
        SignalResponse::Error(e) => Some(e.code),
        _ => None,
    }
}

#[test]
fn a_host_key_online_elsewhere_is_refused_and_reported() {
    let mut f = Fixture::new();
    let host = Identity::generate().peer_id();
    let token = f.token("/Office");
    let r = f.register(host, ip(10), Some(token));
    assert!(matches!(r, SignalResponse::Registered(_)), "{r:?}");

    // A copy of the key on another machine: refused, audited, the addresses kept.
    f.advance(1);
    let r = f.register(host, ip(66), None);
    assert_eq!(code(&r), Some(ErrorCode::Forbidden), "{r:?}");
    let SignalResponse::Error(e) = &r else {
        unreachable!()
    };
    assert!(e.message.contains("192.0.2.10"), "{}", e.message);
    let hb = SignalRequest::Heartbeat(Heartbeat {
        addrs: vec!["/ip4/192.0.2.66/tcp/5650".into()],
    });
    assert_eq!(code(&f.send(host, ip(66), hb)), Some(ErrorCode::Forbidden));
    let record = f.state.store.host(&host.to_string()).unwrap().unwrap();
    assert_eq!(
        record.addrs,
        ["/ip4/192.0.2.10/tcp/5650"],
        "the first host's addresses stay"
    );
    let audit = f.audit_actions();
    assert_eq!(
        audit.iter().filter(|a| *a == "host.duplicate_key").count(),
        2,
        "{audit:?}"
    );

    // The first host goes on; from its own address nothing is refused.
    let r = f.register(host, ip(10), None);
    assert!(matches!(r, SignalResponse::Registered(_)), "{r:?}");

    // Once the first went quiet (three heartbeats), a host that moved is answered.
    f.advance(u64::from(f.state.config.heartbeat_secs) * 3 + 1);
    let r = f.register(host, ip(66), None);
    assert!(matches!(r, SignalResponse::Registered(_)), "{r:?}");
}

fn pw() -> crate::store::accounts::PasswordHashed {
    crate::store::accounts::PasswordHashed::of("pw").unwrap()
}

/// A signed-in session of `user` for `peer`: the login's two halves with the password
/// check's answer given (argon2 is the loop's business, not the handler's).
fn sign_in(f: &mut Fixture, peer: PeerId, user: &str, ok: bool) -> SignalResponse {
    let login = Login {
        user: user.into(),
        password: "pw".into(),
    };
    match f.state.login_begin(peer, ip(7), login, f.now.at) {
        Ok(check) => f.state.login_end(check, ok, f.now),
        Err(refused) => refused,
    }
}

#[test]
fn wrong_passwords_back_off_on_the_given_clock_and_sessions_expire_by_it() {
    let mut f = Fixture::new();
    f.state.store.add_user("ann", &pw(), false).unwrap();
    let viewer = Identity::generate().peer_id();
    // Five free failures, then each one waits (1 s, doubling); time moves only when told.
    for _ in 0..5 {
        let r = sign_in(&mut f, viewer, "ann", false);
        assert_eq!(code(&r), Some(ErrorCode::Unauthorized), "{r:?}");
    }
    let r = sign_in(&mut f, viewer, "ann", false);
    assert_eq!(code(&r), Some(ErrorCode::Unauthorized));
    let r = sign_in(&mut f, viewer, "ann", true);
    assert_eq!(code(&r), Some(ErrorCode::RateLimited), "waits: {r:?}");
    f.advance(2);
    let SignalResponse::LoggedIn(li) = sign_in(&mut f, viewer, "ann", true) else {
        panic!("the right password after the wait signs in")
    };
    assert_eq!(
        li.expires_at,
        f.now.unix + 12 * 3600,
        "session_hours on the unix clock"
    );
    let who = || {
        SignalRequest::WhoAmI(WhoAmI {
            session: li.session.clone(),
        })
    };
    assert!(matches!(
        f.send(viewer, ip(7), who()),
        SignalResponse::LoggedIn(_)
    ));
    // Another key cannot use the token.
    let thief = Identity::generate().peer_id();
    assert_eq!(
        code(&f.send(thief, ip(8), who())),
        Some(ErrorCode::Unauthorized)
    );
    f.advance(12 * 3600 + 1);
    assert_eq!(
        code(&f.send(viewer, ip(7), who())),
        Some(ErrorCode::Unauthorized),
        "expired by the given clock"
    );
    let audit = f.audit_actions();
    assert_eq!(audit.iter().filter(|a| *a == "login.failed").count(), 6);
    assert_eq!(audit.iter().filter(|a| *a == "login.ok").count(), 1);
}

#[test]
fn tickets_are_dated_after_the_last_change_and_limited_per_account_and_host() {
    let mut f = Fixture::new();
    let host = Identity::generate().peer_id();
    let token = f.token("/Office");
    assert!(matches!(
        f.register(host, ip(10), Some(token)),
        SignalResponse::Registered(_)
    ));
    f.state.store.add_user("bob", &pw(), false).unwrap();
    // An admin changed bob's account "in the future" of this clock (clocks differ).
    let changed = f.now.unix + 50;
    f.state
        .store
        .update_user("bob", |u| {
            u.changed_at = changed;
            Ok(())
        })
        .unwrap();
    let viewer = Identity::generate().peer_id();
    let SignalResponse::LoggedIn(li) = sign_in(&mut f, viewer, "bob", true) else {
        panic!("signs in")
    };
    let ask = || {
        SignalRequest::IssueTicket(IssueTicket {
            session: li.session.clone(),
            host: portico_core::wire::WirePeerId::from(host),
            kind: portico_core::ticket::TicketKind::User,
        })
    };
    let SignalResponse::Ticket(t) = f.send(viewer, ip(7), ask()) else {
        panic!("a ticket")
    };
    let ticket = portico_core::ticket::open(&t, &f.state.identity.public()).unwrap();
    assert_eq!(
        ticket.issued_at, changed,
        "not before the account's last change"
    );
    assert_eq!(ticket.expires_at, changed + 300);
    // Twelve at once (one taken above), then one per 3 s of the given clock.
    for i in 1..12 {
        let r = f.send(viewer, ip(7), ask());
        assert!(matches!(r, SignalResponse::Ticket(_)), "ticket {i}: {r:?}");
    }
    assert_eq!(
        code(&f.send(viewer, ip(7), ask())),
        Some(ErrorCode::RateLimited)
    );
    f.advance(3);
    assert!(matches!(
        f.send(viewer, ip(7), ask()),
        SignalResponse::Ticket(_)
    ));
}

#[test]
fn a_host_without_a_token_waits_for_approval_once_on_the_list() {
    let mut f = Fixture::new();
    let host = Identity::generate().peer_id();
    for _ in 0..3 {
        let r = f.register(host, ip(20), None);
        assert_eq!(code(&r), Some(ErrorCode::PendingApproval), "{r:?}");
        f.advance(5);
    }
    let pending = f.state.store.pending().unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(
        pending[0].first_seen, 1_800_000_000,
        "dated by the given clock"
    );
    let audit = f.audit_actions();
    assert_eq!(audit.iter().filter(|a| *a == "host.pending").count(), 1);
}
