//! The link machine against a fake clock: start, outage and redial, flapping, missed events,
//! enrollment waiting then approved or refused, events, heartbeats.

use super::*;
use crate::internet_id::InternetId;

struct Harness {
    link: Link,
    t0: Instant,
    now: Instant,
}

impl Harness {
    fn new() -> Self {
        let t0 = Instant::now();
        Self {
            link: Link::new(42),
            t0,
            now: t0,
        }
    }

    fn actions(&mut self) -> Vec<Action> {
        std::iter::from_fn(|| self.link.poll_action()).collect()
    }

    /// Moves the clock to `at_ms` after the start, firing every timer due on the way.
    fn run_to(&mut self, at_ms: u64) -> Vec<Action> {
        let end = self.t0 + Duration::from_millis(at_ms);
        let mut out = Vec::new();
        while let Some(t) = self.link.poll_timeout().filter(|t| *t <= end) {
            self.now = self.now.max(t);
            self.link.handle_timeout(self.now);
            out.extend(self.actions());
        }
        self.now = end;
        out
    }

    fn ms(&self) -> u64 {
        self.now.duration_since(self.t0).as_millis() as u64
    }

    /// Connected and registered at `version`, actions drained.
    fn up(&mut self, version: u64) {
        self.link.connected(self.now);
        self.link.registered(self.now, registered(version));
        self.actions();
    }
}

fn registered(version: u64) -> Registered {
    Registered {
        internet_id: InternetId::from_payload(12_345_678).unwrap(),
        node_path: "/Sales/pc-7".into(),
        allow_guests: true,
        allow_visitors: false,
        guest_sharing: true,
        visitor_sharing: true,
        server_name: "hq".into(),
        heartbeat_secs: 20,
        state_version: version,
    }
}

fn user(name: &str) -> Change {
    Change::User {
        user: name.into(),
        groups: vec![],
        disabled: true,
        force_server_security: false,
        changed_at: 9,
    }
}

#[test]
fn starts_closed_and_registers_on_connect() {
    let mut h = Harness::new();
    assert_eq!(
        h.actions(),
        vec![Action::Trust(ServerFlags::default()), Action::Dial],
        "every switch off until the server has answered"
    );
    assert_eq!(h.link.poll_timeout(), None);
    h.link.connected(h.now);
    assert_eq!(h.actions(), vec![Action::Register]);
    h.link.registered(h.now, registered(3));
    let trust = ServerFlags {
        guest_sharing: true,
        visitor_sharing: true,
        node_allows_guests: true,
        node_allows_visitors: false,
    };
    assert_eq!(
        h.actions(),
        vec![Action::Trust(trust), Action::ListenRelay, Action::Status]
    );
    assert_eq!(h.link.status().registered, Some(registered(3)));
    h.link.relay_accepted();
    assert_eq!(h.actions(), vec![Action::Status]);
    assert!(h.link.status().relayed);
}

#[test]
fn an_outage_redials_with_backoff_and_jitter_then_resets() {
    let mut h = Harness::new();
    h.actions();
    h.up(0);
    h.link.relay_accepted();
    h.actions();
    h.link.disconnected(h.now);
    assert_eq!(h.actions(), vec![Action::DropRelay, Action::Status]);
    assert!(!h.link.status().relayed);
    // Each failed attempt waits twice as long, up to 8 s, plus < 250 ms of jitter.
    let mut at = Vec::new();
    for _ in 0..6 {
        let next = h.link.poll_timeout().unwrap();
        let wait = next.duration_since(h.now);
        let fired = h.run_to(next.duration_since(h.t0).as_millis() as u64 + 1);
        assert_eq!(fired, vec![Action::Dial]);
        at.push(wait.as_millis() as u64);
        h.link.dial_failed(h.now);
        // The TCP and the QUIC dial fail separately: one attempt is scheduled, not two.
        h.link.dial_failed(h.now);
    }
    let base = [1000, 2000, 4000, 8000, 8000, 8000];
    for (w, b) in at.iter().zip(base) {
        assert!(
            (b..b + REDIAL_JITTER_MS).contains(w),
            "waits {at:?} vs {base:?}"
        );
    }
    assert!(at.iter().any(|w| w % 1000 != 0), "no jitter in {at:?}");
    // Back: registered again (the relay asked anew), and the next outage starts at 1 s.
    h.link.connected(h.now);
    h.link.registered(h.now, registered(0));
    let a = h.actions();
    assert!(a.contains(&Action::ListenRelay), "{a:?}");
    assert!(
        !a.contains(&Action::ResyncUsers),
        "nothing was missed: {a:?}"
    );
    h.link.disconnected(h.now);
    let wait = h.link.poll_timeout().unwrap().duration_since(h.now);
    assert!(wait < FIRST_REDIAL + Duration::from_millis(REDIAL_JITTER_MS));
}

#[test]
fn a_flapping_link_keeps_one_redial_and_one_heartbeat_timer() {
    let mut h = Harness::new();
    h.actions();
    for round in 0..5 {
        h.up(round);
        h.link.disconnected(h.now);
        let a = h.actions();
        assert_eq!(a, vec![Action::DropRelay], "round {round}: {a:?}");
        h.link.connected(h.now);
        assert_eq!(h.actions(), vec![Action::Register]);
        assert_eq!(h.link.poll_timeout(), None, "connected: no redial pending");
        h.link.disconnected(h.now);
        h.actions();
        h.run_to(h.ms() + 300);
    }
    // Connected and registered: heartbeats every 20 s, none while the link is down.
    let mut h = Harness::new();
    h.actions();
    h.up(0);
    let beats = h.run_to(60_500);
    assert_eq!(beats, vec![Action::Heartbeat; 3]);
    h.link.disconnected(h.now);
    h.actions();
    let fired = h.run_to(120_000);
    assert!(fired.iter().all(|a| *a == Action::Dial), "{fired:?}");
}

#[test]
fn missed_events_are_noticed_at_registration_and_by_heartbeat() {
    let mut h = Harness::new();
    h.actions();
    h.up(5);
    // An event applied: the heartbeat's answer at the same number asks nothing.
    h.link.event(6, user("ann"));
    assert_eq!(h.actions(), vec![Action::User(user("ann"))]);
    h.link.heartbeat_answered(6);
    assert_eq!(h.actions(), vec![]);
    // Event 7 was lost on the way: the next heartbeat's answer says 7.
    h.link.heartbeat_answered(7);
    assert_eq!(h.actions(), vec![Action::Register, Action::ResyncUsers]);
    h.link.heartbeat_answered(7);
    assert_eq!(h.actions(), vec![], "asked once");
    // Away while events 8 and 9 happened: the registration after the outage says 9.
    h.link.disconnected(h.now);
    h.actions();
    h.link.connected(h.now);
    h.link.registered(h.now, registered(9));
    let a = h.actions();
    assert!(a.contains(&Action::ResyncUsers), "{a:?}");
    // The server's answer: its users' state goes to access control, nothing else.
    h.link.users(vec![
        user("ann"),
        Change::Global {
            guest_sharing: false,
            visitor_sharing: false,
        },
    ]);
    assert_eq!(h.actions(), vec![Action::User(user("ann"))]);
}

#[test]
fn enrollment_waits_for_approval_then_registers() {
    let mut h = Harness::new();
    h.actions();
    h.link.connected(h.now);
    h.actions();
    let pending = "waiting for the administrator's approval".to_string();
    h.link
        .refused(h.now, ErrorCode::PendingApproval, pending.clone());
    assert_eq!(h.actions(), vec![Action::Status]);
    assert_eq!(h.link.status().refused, Some(pending.clone()));
    // Asked again every 5 s while waiting.
    assert_eq!(h.run_to(4_900), vec![]);
    assert_eq!(h.run_to(5_000), vec![Action::Register]);
    h.link
        .refused(h.now, ErrorCode::PendingApproval, pending.clone());
    h.actions();
    assert_eq!(h.run_to(10_000), vec![Action::Register]);
    // Approved: registered, the reason gone, no more retries.
    h.link.registered(h.now, registered(1));
    h.actions();
    assert_eq!(h.link.status().refused, None);
    assert!(h.run_to(19_000).is_empty());
    // Once registered, a refusal of another request changes nothing.
    h.link.refused(h.now, ErrorCode::Forbidden, "no".into());
    assert_eq!(h.actions(), vec![]);
}

#[test]
fn a_refused_token_stops_asking_and_not_registered_registers() {
    let mut h = Harness::new();
    h.actions();
    h.link.connected(h.now);
    h.actions();
    h.link
        .refused(h.now, ErrorCode::Forbidden, "the token was revoked".into());
    assert_eq!(h.actions(), vec![Action::Status]);
    assert_eq!(h.link.poll_timeout(), None, "a refused host stops asking");
    h.link
        .refused(h.now, ErrorCode::NotRegistered, "register first".into());
    assert_eq!(h.actions(), vec![Action::Register]);
}

#[test]
fn events_update_flags_path_and_trust() {
    let mut h = Harness::new();
    h.actions();
    // Before registration: a user's change still reaches access control; flags wait.
    h.link.event(1, user("bob"));
    h.link.event(
        2,
        Change::Global {
            guest_sharing: false,
            visitor_sharing: false,
        },
    );
    assert_eq!(h.actions(), vec![Action::User(user("bob"))]);
    h.up(2);
    h.link.event(
        3,
        Change::Node {
            path: "/Support/pc-7".into(),
            allow_guests: false,
            allow_visitors: true,
        },
    );
    let flags = ServerFlags {
        guest_sharing: true,
        visitor_sharing: true,
        node_allows_guests: false,
        node_allows_visitors: true,
    };
    assert_eq!(h.actions(), vec![Action::Trust(flags), Action::Status]);
    let r = h.link.status().registered.clone().unwrap();
    assert_eq!(
        r.node_path, "/Support/pc-7",
        "a moved node takes its new path"
    );
    h.link.event(
        4,
        Change::Global {
            guest_sharing: false,
            visitor_sharing: true,
        },
    );
    let flags = ServerFlags {
        guest_sharing: false,
        ..flags
    };
    assert_eq!(h.actions(), vec![Action::Trust(flags), Action::Status]);
    // The relay's listener closing is shown; the next registration asks again.
    h.link.relay_accepted();
    h.link.relay_closed();
    assert_eq!(h.actions(), vec![Action::Status, Action::Status]);
    h.link.registered(h.now, registered(4));
    assert!(h.actions().contains(&Action::ListenRelay));
    // A reservation that cannot even be asked for is asked again next time.
    h.link.relay_failed();
    h.link.registered(h.now, registered(4));
    assert!(h.actions().contains(&Action::ListenRelay));
}
