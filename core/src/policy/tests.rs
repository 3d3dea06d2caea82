//! Table-driven tests: every row of the access-model table and every refusal reason.

use super::*;
use crate::ticket::{Subject, Ticket, TICKET_VERSION};

const NOW: u64 = 1_800_000_000;

fn ticket(kind: TicketKind, user: &str, groups: &[&str], forced: bool) -> Ticket {
    Ticket {
        version: TICKET_VERSION,
        kind,
        subject: Subject {
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
            force_server_security: forced,
        },
        audience: PeerId::random().into(),
        holder: PeerId::random().into(),
        server_name: "hq".into(),
        issued_at: NOW,
        expires_at: NOW + 300,
        nonce: vec![1; 16],
    }
}

fn entry(p: &str, perms: &str, approval: Approval) -> AclEntry {
    AclEntry {
        principal: p.parse().unwrap(),
        permissions: perms.parse().unwrap(),
        approval,
        expires_at: None,
    }
}

const ALL_ON: ServerFlags = ServerFlags {
    guest_sharing: true,
    visitor_sharing: true,
    node_allows_guests: true,
    node_allows_visitors: true,
};
const HOST_ON: HostSettings = HostSettings {
    allow_guests: true,
    allow_visitors: true,
};

struct Row {
    name: &'static str,
    kind: AccessKind,
    mode: RequestedMode,
    ticket: Option<Ticket>,
    host: HostSettings,
    server: Option<ServerFlags>,
    acl: Vec<AclEntry>,
    expect: Decision,
}

fn ask(p: Permissions) -> Decision {
    Decision::AskOwner { permissions: p }
}
fn allow(p: &str) -> Decision {
    Decision::Allow {
        permissions: p.parse().unwrap(),
    }
}
fn refuse(r: RefuseReason) -> Decision {
    Decision::Refuse(r)
}

#[test]
fn access_model_table() {
    let viewer = PeerId::random();
    let visitor = || Some(ticket(TicketKind::Visitor, "vera", &[], false));
    let user = |groups: &[&str]| Some(ticket(TicketKind::User, "alice", groups, false));
    let off = |f: fn(&mut ServerFlags)| {
        let mut s = ALL_ON;
        f(&mut s);
        Some(s)
    };
    use AccessKind::*;
    use RequestedMode::*;
    let rows = vec![
        // Guests.
        Row {
            name: "guest, unregistered host with guests on",
            kind: Guest,
            mode: Interactive,
            ticket: None,
            host: HOST_ON,
            server: None,
            acl: vec![],
            expect: ask(OWNER_ACCEPTED),
        },
        Row {
            name: "guest asks view-only",
            kind: Guest,
            mode: ViewOnly,
            ticket: None,
            host: HOST_ON,
            server: Some(ALL_ON),
            acl: vec![],
            expect: ask(Permissions::VIEW_ONLY),
        },
        Row {
            name: "guest, host off (default)",
            kind: Guest,
            mode: Interactive,
            ticket: None,
            host: HostSettings::default(),
            server: Some(ALL_ON),
            acl: vec![],
            expect: refuse(RefuseReason::GuestSharingOff(Scope::Host)),
        },
        Row {
            name: "guest, server global off",
            kind: Guest,
            mode: Interactive,
            ticket: None,
            host: HOST_ON,
            server: off(|s| s.guest_sharing = false),
            acl: vec![],
            expect: refuse(RefuseReason::GuestSharingOff(Scope::Server)),
        },
        Row {
            name: "guest, node off",
            kind: Guest,
            mode: Interactive,
            ticket: None,
            host: HOST_ON,
            server: off(|s| s.node_allows_guests = false),
            acl: vec![],
            expect: refuse(RefuseReason::GuestSharingOff(Scope::Node)),
        },
        Row {
            name: "guest carrying a forced user's ticket",
            kind: Guest,
            mode: Interactive,
            ticket: Some(ticket(TicketKind::User, "fred", &[], true)),
            host: HOST_ON,
            server: Some(ALL_ON),
            acl: vec![],
            expect: refuse(RefuseReason::ForcedServerSecurity("fred".into())),
        },
        // Visitors.
        Row {
            name: "visitor, all on",
            kind: Visitor,
            mode: Interactive,
            ticket: visitor(),
            host: HOST_ON,
            server: Some(ALL_ON),
            acl: vec![],
            expect: ask(OWNER_ACCEPTED),
        },
        Row {
            name: "visitor without ticket",
            kind: Visitor,
            mode: Interactive,
            ticket: None,
            host: HOST_ON,
            server: Some(ALL_ON),
            acl: vec![],
            expect: refuse(RefuseReason::MissingTicket(Visitor)),
        },
        Row {
            name: "visitor with a user ticket",
            kind: Visitor,
            mode: Interactive,
            ticket: user(&[]),
            host: HOST_ON,
            server: Some(ALL_ON),
            acl: vec![],
            expect: refuse(RefuseReason::WrongTicketKind {
                kind: Visitor,
                got: TicketKind::User,
            }),
        },
        Row {
            name: "visitor, host off",
            kind: Visitor,
            mode: Interactive,
            ticket: visitor(),
            host: HostSettings {
                allow_guests: true,
                allow_visitors: false,
            },
            server: Some(ALL_ON),
            acl: vec![],
            expect: refuse(RefuseReason::VisitorSharingOff(Scope::Host)),
        },
        Row {
            name: "visitor, server off",
            kind: Visitor,
            mode: Interactive,
            ticket: visitor(),
            host: HOST_ON,
            server: off(|s| s.visitor_sharing = false),
            acl: vec![],
            expect: refuse(RefuseReason::VisitorSharingOff(Scope::Server)),
        },
        Row {
            name: "visitor, node off",
            kind: Visitor,
            mode: Interactive,
            ticket: visitor(),
            host: HOST_ON,
            server: off(|s| s.node_allows_visitors = false),
            acl: vec![],
            expect: refuse(RefuseReason::VisitorSharingOff(Scope::Node)),
        },
        Row {
            name: "visitor, unregistered host",
            kind: Visitor,
            mode: Interactive,
            ticket: visitor(),
            host: HOST_ON,
            server: None,
            acl: vec![],
            expect: refuse(RefuseReason::NoServer),
        },
        Row {
            name: "forced user as visitor",
            kind: Visitor,
            mode: Interactive,
            ticket: Some(ticket(TicketKind::Visitor, "fred", &[], true)),
            host: HOST_ON,
            server: Some(ALL_ON),
            acl: vec![],
            expect: refuse(RefuseReason::ForcedServerSecurity("fred".into())),
        },
        // Server users.
        Row {
            name: "user by group, approval never",
            kind: User,
            mode: Interactive,
            ticket: user(&["Sales"]),
            host: HostSettings::default(),
            server: Some(ALL_ON),
            acl: vec![entry("group:Sales", "view,control", Approval::Never)],
            expect: allow("view,control"),
        },
        Row {
            name: "user by name, approval always",
            kind: User,
            mode: Interactive,
            ticket: user(&[]),
            host: HostSettings::default(),
            server: Some(ALL_ON),
            acl: vec![entry("user:alice", "view,files", Approval::Always)],
            expect: ask("view,files".parse().unwrap()),
        },
        Row {
            name: "user asks view-only",
            kind: User,
            mode: ViewOnly,
            ticket: user(&["Sales"]),
            host: HostSettings::default(),
            server: None,
            acl: vec![entry("group:Sales", "view,control,files", Approval::Never)],
            expect: allow("view"),
        },
        Row {
            name: "forced user in a group",
            kind: User,
            mode: Interactive,
            ticket: Some(ticket(TicketKind::User, "alice", &["Sales"], true)),
            host: HostSettings::default(),
            server: Some(ALL_ON),
            acl: vec![entry("group:Sales", "view", Approval::Never)],
            expect: allow("view"),
        },
        Row {
            name: "user entries merge: direct part allows",
            kind: User,
            mode: Interactive,
            ticket: user(&["A", "B"]),
            host: HostSettings::default(),
            server: None,
            acl: vec![
                entry("group:A", "view", Approval::Never),
                entry("group:B", "view,control", Approval::Always),
                entry("group:C", "view,control,files", Approval::Never),
            ],
            expect: allow("view"),
        },
        Row {
            name: "user in no matching group",
            kind: User,
            mode: Interactive,
            ticket: user(&["Ops"]),
            host: HostSettings::default(),
            server: None,
            acl: vec![
                entry("group:Sales", "view", Approval::Never),
                entry("user:bob", "view", Approval::Never),
            ],
            expect: refuse(RefuseReason::NotInAcl),
        },
        Row {
            name: "user entry without view",
            kind: User,
            mode: Interactive,
            ticket: user(&[]),
            host: HostSettings::default(),
            server: None,
            acl: vec![entry("user:alice", "files", Approval::Never)],
            expect: refuse(RefuseReason::NoViewPermission),
        },
        Row {
            name: "user without ticket",
            kind: User,
            mode: Interactive,
            ticket: None,
            host: HostSettings::default(),
            server: None,
            acl: vec![entry("user:alice", "view", Approval::Never)],
            expect: refuse(RefuseReason::MissingTicket(User)),
        },
        Row {
            name: "user with a visitor ticket",
            kind: User,
            mode: Interactive,
            ticket: visitor(),
            host: HostSettings::default(),
            server: None,
            acl: vec![entry("user:vera", "view", Approval::Never)],
            expect: refuse(RefuseReason::WrongTicketKind {
                kind: User,
                got: TicketKind::Visitor,
            }),
        },
        Row {
            name: "expired entry does not count",
            kind: User,
            mode: Interactive,
            ticket: user(&[]),
            host: HostSettings::default(),
            server: None,
            acl: vec![AclEntry {
                expires_at: Some(NOW),
                ..entry("user:alice", "view", Approval::Never)
            }],
            expect: refuse(RefuseReason::NotInAcl),
        },
        // Trusted viewer keys.
        Row {
            name: "trusted key",
            kind: Peer,
            mode: Interactive,
            ticket: None,
            host: HostSettings::default(),
            server: None,
            acl: vec![entry(
                &format!("peer:{viewer}"),
                "view,control",
                Approval::Never,
            )],
            expect: allow("view,control"),
        },
        Row {
            name: "trusted key, view-only entry",
            kind: Peer,
            mode: Interactive,
            ticket: None,
            host: HostSettings::default(),
            server: None,
            acl: vec![entry(&format!("peer:{viewer}"), "view", Approval::Never)],
            expect: allow("view"),
        },
        Row {
            name: "unknown key",
            kind: Peer,
            mode: Interactive,
            ticket: None,
            host: HostSettings::default(),
            server: None,
            acl: vec![entry(
                &format!("peer:{}", PeerId::random()),
                "view",
                Approval::Never,
            )],
            expect: refuse(RefuseReason::NotInAcl),
        },
        Row {
            name: "user entry does not match a key request",
            kind: Peer,
            mode: Interactive,
            ticket: None,
            host: HostSettings::default(),
            server: None,
            acl: vec![entry("user:alice", "view", Approval::Never)],
            expect: refuse(RefuseReason::NotInAcl),
        },
    ];
    let mut seen_reasons = std::collections::HashSet::new();
    for row in &rows {
        let req = Request {
            kind: row.kind,
            viewer,
            mode: row.mode,
            ticket: row.ticket.as_ref(),
        };
        let got = decide(&req, &row.host, &row.acl, row.server.as_ref(), NOW);
        assert_eq!(got, row.expect, "row: {}", row.name);
        if let Decision::Refuse(r) = got {
            seen_reasons.insert(r.code());
        }
    }
    // Every refusal reason is exercised by some row.
    for code in [
        "guest_sharing_off",
        "visitor_sharing_off",
        "no_server",
        "missing_ticket",
        "wrong_ticket_kind",
        "forced_server_security",
        "not_in_acl",
        "no_view_permission",
    ] {
        assert!(seen_reasons.contains(code), "no row refuses with {code}");
    }
}

#[test]
fn owner_answers() {
    let offered: Permissions = "view,control,files".parse().unwrap();
    assert_eq!(
        apply_owner_answer(offered, OwnerAnswer::Accept),
        Some(offered)
    );
    assert_eq!(
        apply_owner_answer(offered, OwnerAnswer::AcceptViewOnly),
        Some(Permissions::VIEW_ONLY)
    );
    assert_eq!(apply_owner_answer(offered, OwnerAnswer::Refuse), None);
    assert!(services_need_confirmation(AccessKind::Guest));
    assert!(services_need_confirmation(AccessKind::Visitor));
    assert!(!services_need_confirmation(AccessKind::User));
}

#[test]
fn permissions_parse_and_print() {
    let p: Permissions = "view, control,clipboard".parse().unwrap();
    assert_eq!(p.to_string(), "view,control,clipboard");
    assert!("view,fly".parse::<Permissions>().is_err());
    assert!(Permissions::VIEW_ONLY.is_view_only());
    assert_eq!(
        Permissions::ALL.for_mode(RequestedMode::ViewOnly),
        Permissions::VIEW_ONLY
    );
}

#[test]
fn principals_parse_and_print() {
    let peer = PeerId::random();
    for s in ["user:alice", "group:Sales Team", &format!("peer:{peer}")] {
        assert_eq!(s.parse::<Principal>().unwrap().to_string(), s);
    }
    for bad in ["alice", "user:", "host:x", "peer:notapeer", "user:a:b"] {
        assert!(bad.parse::<Principal>().is_err(), "{bad}");
    }
}
