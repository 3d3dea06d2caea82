//! The request handler without a network: a real sled store in a temporary directory,
//! requests from chosen peers and addresses, time given by the test.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

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
    now: Instant,
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
            now: Instant::now(),
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
    f.now += Duration::from_secs(1);
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
    f.now += Duration::from_secs(u64::from(f.state.config.heartbeat_secs) * 3 + 1);
    let r = f.register(host, ip(66), None);
    assert!(matches!(r, SignalResponse::Registered(_)), "{r:?}");
}
