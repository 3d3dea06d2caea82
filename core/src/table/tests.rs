//! Every transition of the session table, driven with a fake clock: grants, the owner's
//! answers, timeouts, withdrawals, kicks, time limits, service requests, and re-checks after
//! every kind of change (which narrow live sessions, not only end them).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use crate::identity::Identity;
use crate::policy::{Approval, Principal};
use crate::ticket::{Subject, TicketKind, TICKET_VERSION};

mod server_users;

const UNIX: u64 = 1_800_000_000;
const TIMEOUT: Duration = Duration::from_secs(60);

struct Harness {
    table: SessionTable,
    t0: Instant,
    /// Seconds since t0.
    secs: u64,
    host: PeerId,
    server: Identity,
}

impl Harness {
    fn new(settings: HostSettings, acl: Vec<AclEntry>) -> Self {
        let host = PeerId::random();
        Self {
            table: SessionTable::new(host, settings, acl, TIMEOUT),
            t0: Instant::now(),
            secs: 0,
            host,
            server: Identity::generate(),
        }
    }

    fn now(&self) -> Clock {
        Clock {
            at: self.t0 + Duration::from_secs(self.secs),
            unix: UNIX + self.secs,
        }
    }

    fn advance(&mut self, secs: u64) {
        self.secs += secs;
        self.table.handle_timeout(self.now());
    }

    fn register(&mut self) {
        let trust = ServerTrust {
            key: self.server.keypair().public(),
            flags: ServerFlags {
                guest_sharing: true,
                visitor_sharing: true,
                node_allows_guests: true,
                node_allows_visitors: true,
            },
        };
        let now = self.now();
        self.table.set_server(now, Some(trust));
        self.effects();
    }

    fn request(
        &mut self,
        viewer: PeerId,
        kind: AccessKind,
        mode: RequestedMode,
        tickets: Vec<crate::ticket::SignedTicket>,
    ) -> Result<Outcome, Refusal> {
        self.request_from("10.0.0.9", viewer, kind, mode, tickets)
    }

    fn request_from(
        &mut self,
        ip: &str,
        viewer: PeerId,
        kind: AccessKind,
        mode: RequestedMode,
        tickets: Vec<crate::ticket::SignedTicket>,
    ) -> Result<Outcome, Refusal> {
        self.request_via(ip, false, viewer, kind, mode, tickets)
    }

    fn request_via(
        &mut self,
        ip: &str,
        relayed: bool,
        viewer: PeerId,
        kind: AccessKind,
        mode: RequestedMode,
        tickets: Vec<crate::ticket::SignedTicket>,
    ) -> Result<Outcome, Refusal> {
        let req = AccessRequest {
            kind,
            display_name: "Gus".into(),
            message: "hello".into(),
            tickets,
            mode,
            agent: "test".into(),
        };
        let now = self.now();
        self.table.decide(
            now,
            Incoming {
                viewer,
                ip,
                relayed,
                request: &req,
            },
        )
    }

    /// A guest asking for an interactive session.
    fn guest(&mut self) -> Result<Outcome, Refusal> {
        let v = PeerId::random();
        self.request(v, AccessKind::Guest, RequestedMode::Interactive, vec![])
    }

    /// A trusted key asking for an interactive session.
    fn peer(&mut self, v: PeerId) -> Result<Outcome, Refusal> {
        self.request(v, AccessKind::Peer, RequestedMode::Interactive, vec![])
    }

    fn user_ticket(
        &self,
        viewer: PeerId,
        user: &str,
        groups: &[&str],
    ) -> crate::ticket::SignedTicket {
        let t = Ticket {
            version: TICKET_VERSION,
            kind: TicketKind::User,
            subject: Subject {
                user: user.into(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
                force_server_security: false,
            },
            audience: self.host.into(),
            holder: viewer.into(),
            server_name: "hq".into(),
            issued_at: UNIX + self.secs,
            expires_at: UNIX + self.secs + 300,
            nonce: crate::ticket::new_nonce(),
        };
        crate::ticket::sign(&t, &self.server).unwrap()
    }

    fn visitor_ticket(&self, viewer: PeerId, user: &str) -> crate::ticket::SignedTicket {
        let mut t =
            crate::ticket::open(&self.user_ticket(viewer, user, &[]), &self.server.public())
                .unwrap();
        t.kind = TicketKind::Visitor;
        crate::ticket::sign(&t, &self.server).unwrap()
    }

    /// Effects so far, without audit lines.
    fn effects(&mut self) -> Vec<Effect> {
        let mut out = Vec::new();
        while let Some(e) = self.table.poll_effect() {
            if !matches!(e, Effect::Audit { .. } | Effect::Remember) {
                out.push(e);
            }
        }
        out
    }

    /// Audit actions so far (and drops the other effects).
    fn audit(&mut self) -> Vec<&'static str> {
        let mut out = Vec::new();
        while let Some(e) = self.table.poll_effect() {
            if let Effect::Audit { action, .. } = e {
                out.push(action);
            }
        }
        out
    }
}

fn peer_entry(p: PeerId, perms: &str) -> AclEntry {
    AclEntry {
        principal: Principal::Peer(p),
        permissions: perms.parse().unwrap(),
        approval: Approval::Never,
        expires_at: None,
    }
}

fn granted(o: Result<Outcome, Refusal>) -> Grant {
    match o {
        Ok(Outcome::Granted(g)) => g,
        other => panic!("expected a grant, got {other:?}"),
    }
}

fn pending(o: Result<Outcome, Refusal>) -> u64 {
    match o {
        Ok(Outcome::Pending { request_id, .. }) => request_id,
        other => panic!("expected a pending request, got {other:?}"),
    }
}

fn perms(s: &str) -> Permissions {
    s.parse().unwrap()
}

const GUESTS_ON: HostSettings = HostSettings {
    allow_guests: true,
    allow_visitors: false,
};

#[test]
fn narrowing_a_trusted_keys_entry_narrows_the_live_session() {
    let v = PeerId::random();
    let mut h = Harness::new(HostSettings::default(), vec![]);
    let now = h.now();
    h.table
        .set_managed_acl(now, vec![peer_entry(v, "view,control,files")]);
    let g = granted(h.peer(v));
    assert_eq!(g.permissions, perms("view,control,files"));
    h.effects();

    // Control → view: the live session is narrowed at once, not left able to inject input.
    h.table.set_managed_acl(now, vec![peer_entry(v, "view")]);
    assert_eq!(
        h.effects(),
        vec![Effect::Permissions {
            session_id: g.session_id,
            permissions: Permissions::VIEW_ONLY
        }]
    );
    assert_eq!(
        h.table.permissions(g.session_id),
        Some(Permissions::VIEW_ONLY)
    );
    // Widening back restores it; removing the entry ends it.
    h.table
        .set_managed_acl(now, vec![peer_entry(v, "view,control")]);
    assert_eq!(
        h.effects(),
        vec![Effect::Permissions {
            session_id: g.session_id,
            permissions: Permissions::INTERACTIVE
        }]
    );
    assert!(h.audit().is_empty());
    h.table.set_managed_acl(now, vec![]);
    let e = h.effects();
    assert!(
        matches!(&e[..], [Effect::End { session_id, reason: ByeReason::Revoked, .. }] if *session_id == g.session_id),
        "{e:?}"
    );
    assert_eq!(h.table.permissions(g.session_id), None);
}

#[test]
fn changes_that_do_not_affect_a_session_emit_nothing_for_it() {
    let v = PeerId::random();
    let mut h = Harness::new(HostSettings::default(), vec![peer_entry(v, "view,control")]);
    granted(h.peer(v));
    h.effects();
    let now = h.now();
    h.table.set_sharing(now, Some(true), Some(true));
    h.table
        .set_managed_acl(now, vec![peer_entry(PeerId::random(), "view")]);
    assert_eq!(h.effects(), vec![]);
}

/// The owner's answers, as a table: (answer, expected permissions or refusal code).
#[test]
fn owner_answers() {
    let rows: [(OwnerAnswer, RequestedMode, Result<&str, &str>); 5] = [
        (
            OwnerAnswer::Accept,
            RequestedMode::Interactive,
            Ok("view,control,files,clipboard,browse"),
        ),
        (
            OwnerAnswer::AcceptViewOnly,
            RequestedMode::Interactive,
            Ok("view"),
        ),
        (OwnerAnswer::Accept, RequestedMode::ViewOnly, Ok("view")),
        (
            OwnerAnswer::Refuse,
            RequestedMode::Interactive,
            Err("owner_refused"),
        ),
        (
            OwnerAnswer::Refuse,
            RequestedMode::ViewOnly,
            Err("owner_refused"),
        ),
    ];
    for (answer, mode, expect) in rows {
        let mut h = Harness::new(GUESTS_ON, vec![]);
        let id = pending(h.request(PeerId::random(), AccessKind::Guest, mode, vec![]));
        assert_eq!(h.table.view(h.now()).pending.len(), 1);
        let now = h.now();
        h.table.answer(now, id, answer, None).unwrap();
        let e = h.effects();
        let [Effect::Answered { request_id, result }] = &e[..] else {
            panic!("{e:?}")
        };
        assert_eq!(*request_id, id);
        match (result, expect) {
            (Ok(g), Ok(p)) => {
                assert_eq!(g.permissions, perms(p), "{answer:?} {mode:?}");
                assert!(g.confirm_services);
            }
            (Err(r), Err(code)) => assert_eq!(r.code, code),
            (got, want) => panic!("{answer:?}: got {got:?}, want {want:?}"),
        }
        assert!(h.table.view(h.now()).pending.is_empty());
        // A second answer finds nothing.
        assert!(h.table.answer(now, id, OwnerAnswer::Accept, None).is_err());
    }
}

#[test]
fn view_only_switch_restores_an_interactive_acceptance() {
    let mut h = Harness::new(GUESTS_ON, vec![]);
    let id = pending(h.guest());
    let now = h.now();
    h.table
        .answer(now, id, OwnerAnswer::AcceptViewOnly, None)
        .unwrap();
    let Some(Effect::Answered { result: Ok(g), .. }) = h.effects().pop() else {
        panic!()
    };
    assert_eq!(g.permissions, Permissions::VIEW_ONLY);
    h.table.set_view_only(now, g.session_id, false).unwrap();
    assert_eq!(
        h.effects(),
        vec![Effect::Permissions {
            session_id: g.session_id,
            permissions: Permissions::ALL
        }]
    );
    h.table.set_view_only(now, g.session_id, true).unwrap();
    assert_eq!(
        h.effects(),
        vec![Effect::Permissions {
            session_id: g.session_id,
            permissions: Permissions::VIEW_ONLY
        }]
    );
    assert_eq!(h.table.view(now).sessions[0].mode, "view-only");
    assert!(h.table.set_view_only(now, 999, true).is_err());
}

#[test]
fn unanswered_requests_time_out_as_refused() {
    let mut h = Harness::new(GUESTS_ON, vec![]);
    let id = pending(h.guest());
    assert_eq!(h.table.next_deadline(h.now()), Some(h.t0 + TIMEOUT));
    h.advance(59);
    assert_eq!(h.effects(), vec![]);
    h.advance(1);
    let e = h.effects();
    assert!(
        matches!(&e[..], [Effect::Answered { request_id, result: Err(r) }] if *request_id == id && r.code == "owner_timeout"),
        "{e:?}"
    );
    assert_eq!(h.table.next_deadline(h.now()), None);
}

#[test]
fn an_accept_after_the_viewer_left_creates_nothing() {
    let mut h = Harness::new(GUESTS_ON, vec![]);
    let id = pending(h.guest());
    h.table.withdraw(id);
    let now = h.now();
    assert!(h.table.answer(now, id, OwnerAnswer::Accept, None).is_err());
    assert_eq!(h.effects(), vec![]);
    assert!(h.table.view(now).sessions.is_empty());
}

#[test]
fn an_accept_is_checked_against_switches_changed_while_waiting() {
    let mut h = Harness::new(GUESTS_ON, vec![]);
    let id = pending(h.guest());
    let now = h.now();
    // The switch refuses the waiting request at once; the owner's late accept finds none.
    h.table.set_sharing(now, Some(false), None);
    let e = h.effects();
    assert!(
        matches!(&e[..], [Effect::Answered { result: Err(r), .. }] if r.code == "guest_sharing_off"),
        "{e:?}"
    );
    assert!(h.table.answer(now, id, OwnerAnswer::Accept, None).is_err());
    assert!(h.table.view(now).sessions.is_empty());
}

#[test]
fn guest_sharing_off_refuses_and_ends_live_guests() {
    let mut h = Harness::new(HostSettings::default(), vec![]);
    let r = h.guest();
    assert_eq!(r.unwrap_err().code, "guest_sharing_off");
    let now = h.now();
    h.table.set_sharing(now, Some(true), None);
    let id = pending(h.guest());
    h.table.answer(now, id, OwnerAnswer::Accept, None).unwrap();
    h.effects();
    h.table.set_sharing(now, Some(false), None);
    let e = h.effects();
    assert!(
        matches!(
            &e[..],
            [Effect::End {
                reason: ByeReason::Revoked,
                ..
            }]
        ),
        "{e:?}"
    );
}

#[test]
fn kick_ends_once() {
    let v = PeerId::random();
    let mut h = Harness::new(HostSettings::default(), vec![peer_entry(v, "view")]);
    let g = granted(h.peer(v));
    h.table.kick(g.session_id).unwrap();
    let e = h.effects();
    assert!(
        matches!(
            &e[..],
            [Effect::End {
                reason: ByeReason::Kicked,
                ..
            }]
        ),
        "{e:?}"
    );
    assert!(h.table.kick(g.session_id).is_err());
    // The session ending on its own afterwards changes nothing.
    let now = h.now();
    h.table.session_ended(now, g.session_id);
    assert_eq!(h.effects(), vec![]);
}

#[test]
fn the_owner_sees_what_each_session_watches() {
    let (a, b) = (PeerId::random(), PeerId::random());
    let acl = vec![peer_entry(a, "view"), peer_entry(b, "view")];
    let mut h = Harness::new(HostSettings::default(), acl);
    let (ga, gb) = (granted(h.peer(a)), granted(h.peer(b)));
    let watching = |h: &Harness| -> Vec<String> {
        let v = h.table.view(h.now());
        v.sessions.iter().map(|s| s.watching.clone()).collect()
    };
    assert_eq!(watching(&h), vec!["", ""]);
    let v0 = h.table.version();
    h.table
        .watching(ga.session_id, crate::area::Area::Monitor(1));
    h.table.watching(gb.session_id, crate::area::Area::Desktop);
    assert_eq!(watching(&h), vec!["monitor 1", "whole desktop"]);
    assert_eq!(
        h.table.version(),
        v0 + 2,
        "each switch refreshes the console"
    );
    // The same again changes nothing; an unknown session is ignored; nothing is audited.
    h.table
        .watching(ga.session_id, crate::area::Area::Monitor(1));
    h.table.watching(999, crate::area::Area::Monitor(0));
    assert_eq!(h.table.version(), v0 + 2);
    assert_eq!(h.effects(), vec![]);
}

#[test]
fn time_limits_end_sessions_on_time() {
    let mut h = Harness::new(GUESTS_ON, vec![]);
    let id = pending(h.guest());
    h.advance(5);
    let now = h.now();
    h.table
        .answer(now, id, OwnerAnswer::Accept, Some(Duration::from_secs(30)))
        .unwrap();
    let Some(Effect::Answered { result: Ok(g), .. }) = h.effects().pop() else {
        panic!()
    };
    assert_eq!(g.time_limit, Some(Duration::from_secs(30)));
    assert_eq!(
        h.table.next_deadline(h.now()),
        Some(h.t0 + Duration::from_secs(35))
    );
    assert_eq!(h.table.view(h.now()).sessions[0].seconds_left, Some(30));
    h.advance(29);
    assert_eq!(h.effects(), vec![]);
    h.advance(1);
    let e = h.effects();
    assert!(
        matches!(
            &e[..],
            [Effect::End {
                reason: ByeReason::TimeLimit,
                ..
            }]
        ),
        "{e:?}"
    );
}

#[test]
fn service_requests_are_answered_timed_out_or_lost_with_their_permission() {
    let v = PeerId::random();
    let mut h = Harness::new(HostSettings::default(), vec![]);
    let now = h.now();
    h.table
        .set_managed_acl(now, vec![peer_entry(v, "view,files,clipboard")]);
    let g = granted(h.peer(v));
    let ask = |h: &mut Harness, service, what: &str| {
        h.table
            .ask_service(now, g.session_id, service, what.into())
            .unwrap()
    };
    let a = ask(&mut h, Service::File, "a.txt");
    let f = ask(&mut h, Service::File, "f.txt");
    let k = ask(&mut h, Service::Clipboard, "paste");
    assert_eq!(h.table.view(now).services.len(), 3);
    h.effects();
    h.table.answer_service(a, true).unwrap();
    assert_eq!(
        h.effects(),
        vec![Effect::Service {
            id: a,
            allowed: true
        }]
    );
    assert!(h.table.answer_service(a, true).is_err());
    // Files removed from the entry: the waiting file request is denied, the clipboard one stays.
    h.table
        .set_managed_acl(now, vec![peer_entry(v, "view,clipboard")]);
    let e = h.effects();
    assert!(
        e.contains(&Effect::Service {
            id: f,
            allowed: false
        }),
        "{e:?}"
    );
    assert!(
        !e.iter()
            .any(|x| matches!(x, Effect::Service { id, .. } if *id == k)),
        "{e:?}"
    );
    // Unanswered: denied at the timeout.
    h.advance(60);
    assert!(h.effects().contains(&Effect::Service {
        id: k,
        allowed: false
    }));
}

#[test]
fn a_session_that_ends_drops_its_service_requests() {
    let v = PeerId::random();
    let mut h = Harness::new(HostSettings::default(), vec![peer_entry(v, "view,files")]);
    let g = granted(h.peer(v));
    let now = h.now();
    let s = h
        .table
        .ask_service(now, g.session_id, Service::File, "x".into())
        .unwrap();
    h.effects();
    h.table.session_ended(now, g.session_id);
    assert_eq!(
        h.effects(),
        vec![Effect::Service {
            id: s,
            allowed: false
        }]
    );
    assert!(h
        .table
        .ask_service(now, g.session_id, Service::File, "y".into())
        .is_err());
}

#[test]
fn acl_expiry_ends_the_session_when_it_comes() {
    let v = PeerId::random();
    let mut entry = peer_entry(v, "view,control");
    entry.expires_at = Some(UNIX + 100);
    let mut h = Harness::new(HostSettings::default(), vec![entry]);
    let g = granted(h.peer(v));
    assert_eq!(
        h.table.next_deadline(h.now()),
        Some(h.t0 + Duration::from_secs(100))
    );
    h.advance(99);
    assert_eq!(h.effects(), vec![]);
    h.advance(1);
    let e = h.effects();
    assert!(
        matches!(&e[..], [Effect::End { session_id, reason: ByeReason::Revoked, .. }] if *session_id == g.session_id),
        "{e:?}"
    );
}

#[test]
fn pending_requests_are_bounded_in_all_and_per_address() {
    let mut h = Harness::new(GUESTS_ON, vec![]);
    let guest_from = |h: &mut Harness, ip: &str| {
        let v = PeerId::random();
        h.request_from(ip, v, AccessKind::Guest, RequestedMode::Interactive, vec![])
    };
    // One address: a few requests wait, the next is refused whatever its PeerId.
    for _ in 0..MAX_PENDING_PER_IP {
        pending(guest_from(&mut h, "203.0.113.7"));
    }
    let r = guest_from(&mut h, "203.0.113.7").unwrap_err();
    assert_eq!(r.code, "busy");
    assert!(r.message.contains("your address"), "{}", r.message);
    // Others still get through, up to the overall bound.
    for i in MAX_PENDING_PER_IP..MAX_PENDING {
        pending(guest_from(&mut h, &format!("10.9.{}.{}", i / 4, i % 4)));
    }
    assert_eq!(guest_from(&mut h, "10.10.0.1").unwrap_err().code, "busy");
}

#[test]
fn every_decision_is_audited() {
    let v = PeerId::random();
    let mut h = Harness::new(GUESTS_ON, vec![peer_entry(v, "view")]);
    let g = granted(h.peer(v));
    let id = pending(h.guest());
    let refused = h.request(
        PeerId::random(),
        AccessKind::Peer,
        RequestedMode::Interactive,
        vec![],
    );
    assert!(refused.is_err());
    let now = h.now();
    h.table.answer(now, id, OwnerAnswer::Refuse, None).unwrap();
    h.table.kick(g.session_id).unwrap();
    assert_eq!(
        h.audit(),
        vec![
            "allowed",
            "asked_owner",
            "refused",
            "owner_refused",
            "kicked"
        ]
    );
}

#[test]
fn the_console_view_shows_what_the_owner_needs() {
    let mut h = Harness::new(GUESTS_ON, vec![]);
    let long = "x".repeat(2000);
    let req = AccessRequest {
        kind: AccessKind::Guest,
        display_name: "Gus".into(),
        message: long,
        tickets: vec![],
        mode: RequestedMode::ViewOnly,
        agent: "t".into(),
    };
    let now = h.now();
    let v = Identity::generate().peer_id();
    h.table
        .decide(
            now,
            Incoming {
                viewer: v,
                ip: "10.1.2.3",
                relayed: true,
                request: &req,
            },
        )
        .unwrap();
    h.advance(10);
    let view = h.table.view(h.now());
    let p = &view.pending[0];
    assert_eq!(
        (p.name.as_str(), p.ip.as_str(), p.relayed),
        ("Gus", "10.1.2.3", true)
    );
    assert_eq!(p.message.chars().count(), MAX_MESSAGE_CHARS);
    assert!(p.view_only_asked);
    assert_eq!(p.seconds_left, 50);
    assert_eq!(
        p.fingerprint,
        crate::identity::peer_fingerprint(&v).unwrap()
    );
    assert!(view.allow_guests && !view.allow_visitors && view.server.is_none());
}

#[test]
fn refused_resumes_cost_one_audit_line_a_minute_and_a_sum_after() {
    let mut h = Harness::new(HostSettings::default(), vec![]);
    let now = h.now();
    let written: Vec<bool> = (0..3)
        .map(|i| {
            h.table
                .resume_refused(now, format!("from x: bad token {i}"))
        })
        .collect();
    assert_eq!(written, [true, false, false]);
    let audit = |h: &mut Harness| {
        let mut lines = Vec::new();
        while let Some(e) = h.table.poll_effect() {
            if let Effect::Audit { action, detail } = e {
                lines.push(format!("{action}: {detail}"));
            }
        }
        lines
    };
    assert_eq!(audit(&mut h), ["resume_refused: from x: bad token 0"]);
    // The flood stopped: when its minute is over, the rest is summed up.
    assert_eq!(
        h.table.next_deadline(h.now()),
        Some(h.now().at + Duration::from_secs(60))
    );
    h.advance(60);
    assert_eq!(
        audit(&mut h),
        ["resume_refused: 2 more refused in the last minute"]
    );
    assert_eq!(h.table.next_deadline(h.now()), None);
}
