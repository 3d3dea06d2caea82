//! Server users: tickets before and after registration, replays, group changes and
//! disabled accounts (live sessions and older tickets).

use super::*;

#[test]
fn server_users_follow_group_changes_and_disabling() {
    let v = PeerId::random();
    let entries = vec![
        AclEntry {
            principal: Principal::Group("Sales".into()),
            permissions: perms("view,control"),
            approval: Approval::Never,
            expires_at: None,
        },
        AclEntry {
            principal: Principal::Group("Viewers".into()),
            permissions: perms("view"),
            approval: Approval::Never,
            expires_at: None,
        },
    ];
    let mut h = Harness::new(HostSettings::default(), entries);
    // A ticket before registration cannot be checked: refused, never treated as no ticket.
    let t = h.user_ticket(v, "alice", &["Sales"]);
    assert_eq!(
        h.request(
            v,
            AccessKind::User,
            RequestedMode::Interactive,
            vec![t.clone()]
        )
        .unwrap_err()
        .code,
        "no_server"
    );
    h.register();
    let g = granted(h.request(
        v,
        AccessKind::User,
        RequestedMode::Interactive,
        vec![t.clone()],
    ));
    assert_eq!(g.permissions, Permissions::INTERACTIVE);
    // The same ticket again is a replay.
    assert_eq!(
        h.request(v, AccessKind::User, RequestedMode::Interactive, vec![t])
            .unwrap_err()
            .code,
        "bad_ticket"
    );
    let now = h.now();
    let change = |groups: &[&str], disabled| Change::User {
        user: "alice".into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        disabled,
        force_server_security: false,
        changed_at: 0,
    };
    h.table.server_change(now, &change(&["Viewers"], false));
    assert_eq!(
        h.effects(),
        vec![Effect::Permissions {
            session_id: g.session_id,
            permissions: Permissions::VIEW_ONLY
        }]
    );
    h.table.server_change(now, &change(&["Viewers"], true));
    let e = h.effects();
    assert!(
        matches!(&e[..], [Effect::End { reason: ByeReason::Revoked, message, .. }] if message.contains("disabled")),
        "{e:?}"
    );
    // A ticket the server issued before disabling the account, still within its lifetime,
    // is refused from then on; one issued after the account is enabled again is good.
    let early = h.user_ticket(v, "alice", &["Sales"]);
    h.advance(1);
    let now = h.now();
    h.table.server_change(now, &change(&["Sales"], true));
    let refused = h
        .request(v, AccessKind::User, RequestedMode::Interactive, vec![early])
        .unwrap_err();
    assert_eq!(refused.code, "bad_ticket");
    assert!(
        refused.message.contains("changed at the server"),
        "{}",
        refused.message
    );
    h.advance(1);
    let now = h.now();
    h.table.server_change(now, &change(&["Sales"], false));
    // Tickets are issued after the change (the server dates them so).
    h.advance(1);
    let fresh = h.user_ticket(v, "alice", &["Sales"]);
    granted(h.request(v, AccessKind::User, RequestedMode::Interactive, vec![fresh]));
}

fn alice(groups: &[&str], disabled: bool, force: bool, changed_at: u64) -> Change {
    Change::User {
        user: "alice".into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        disabled,
        force_server_security: force,
        changed_at,
    }
}

fn sales_acl(approval: Approval) -> Vec<AclEntry> {
    vec![AclEntry {
        principal: Principal::Group("Sales".into()),
        permissions: perms("view,control"),
        approval,
        expires_at: None,
    }]
}

/// The finding: a ticket fetched just before the user left the group still came in, and a
/// restart forgot both the change and the nonces.
#[test]
fn a_ticket_from_before_a_group_change_is_refused_even_after_a_restart() {
    let v = PeerId::random();
    let mut h = Harness::new(HostSettings::default(), sales_acl(Approval::Never));
    h.register();
    let stale = h.user_ticket(v, "alice", &["Sales"]);
    let used = h.user_ticket(v, "alice", &["Sales"]);
    granted(h.request(
        v,
        AccessKind::User,
        RequestedMode::Interactive,
        vec![used.clone()],
    ));
    // The server removes alice from Sales at its time UNIX + 2 (the host's clock is behind).
    let now = h.now();
    h.table
        .server_change(now, &alice(&[], false, false, UNIX + 2));
    let r = h
        .request(
            v,
            AccessKind::User,
            RequestedMode::Interactive,
            vec![stale.clone()],
        )
        .unwrap_err();
    assert!(r.message.contains("changed at the server"), "{}", r.message);

    // A restart: a new table with the memory of the old one refuses both again.
    let memory = h.table.memory(h.now());
    assert_eq!(memory.user_changes.get("alice"), Some(&(UNIX + 2)));
    let mut again = Harness::new(HostSettings::default(), sales_acl(Approval::Never));
    again.host = h.host;
    again.table = SessionTable::new(
        h.host,
        HostSettings::default(),
        sales_acl(Approval::Never),
        TIMEOUT,
    );
    again.server = h.server.clone();
    again.register();
    let now = again.now();
    again.table.restore_memory(now, memory);
    for (t, why) in [(stale, "changed at the server"), (used, "already used")] {
        let r = again
            .request(v, AccessKind::User, RequestedMode::Interactive, vec![t])
            .unwrap_err();
        assert!(r.message.contains(why), "{}", r.message);
    }
    // A ticket issued after the change (the server issues them after it) comes in.
    again.advance(3);
    let fresh = again.user_ticket(v, "alice", &[]);
    let r = again.request(v, AccessKind::User, RequestedMode::Interactive, vec![fresh]);
    assert_eq!(
        r.unwrap_err().code,
        "not_in_acl",
        "no longer in Sales: the ACL says no"
    );
    let readded = again.user_ticket(v, "alice", &["Sales"]);
    granted(again.request(
        v,
        AccessKind::User,
        RequestedMode::Interactive,
        vec![readded],
    ));
}

#[test]
fn the_replay_cache_remembers_only_tickets_that_count() {
    let (v, mallory) = (PeerId::random(), PeerId::random());
    let mut h = Harness::new(HostSettings::default(), sales_acl(Approval::Never));
    h.register();
    // An account with no entry here presents thousands of fresh tickets: each refused by
    // the ACL, none remembered.
    for _ in 0..5000 {
        let t = h.user_ticket(mallory, "mallory", &["Nobody"]);
        let r = h.request(
            mallory,
            AccessKind::User,
            RequestedMode::Interactive,
            vec![t],
        );
        assert_eq!(r.unwrap_err().code, "not_in_acl");
    }
    assert!(h.table.memory(h.now()).nonces.is_empty());
    let t = h.user_ticket(v, "alice", &["Sales"]);
    granted(h.request(v, AccessKind::User, RequestedMode::Interactive, vec![t]));
    assert_eq!(h.table.memory(h.now()).nonces.len(), 1);
}

#[test]
fn waiting_requests_and_live_sessions_take_the_servers_word() {
    let v = PeerId::random();
    let mut h = Harness::new(HostSettings::default(), sales_acl(Approval::Always));
    h.register();
    let t = h.user_ticket(v, "alice", &["Sales"]);
    let id = match h.request(v, AccessKind::User, RequestedMode::Interactive, vec![t]) {
        Ok(Outcome::Pending { request_id, .. }) => request_id,
        other => panic!("{other:?}"),
    };
    // Removed from the group while the owner thinks: refused at once.
    let now = h.now();
    h.table.server_change(now, &alice(&[], false, false, UNIX));
    let e = h.effects();
    assert!(
        matches!(&e[..], [Effect::Answered { request_id, result: Err(r) }] if *request_id == id && r.code == "not_in_acl"),
        "{e:?}"
    );

    // A visitor session of alice ends when the server forces server security on her.
    let mut h = Harness::new(
        HostSettings {
            allow_visitors: true,
            ..HostSettings::default()
        },
        vec![],
    );
    h.register();
    let ticket = h.visitor_ticket(v, "alice");
    let id = match h.request(
        v,
        AccessKind::Visitor,
        RequestedMode::Interactive,
        vec![ticket],
    ) {
        Ok(Outcome::Pending { request_id, .. }) => request_id,
        other => panic!("{other:?}"),
    };
    let now = h.now();
    h.table
        .answer(now, id, crate::policy::OwnerAnswer::Accept, None)
        .unwrap();
    let g = match &h.effects()[..] {
        [Effect::Answered { result: Ok(g), .. }] => g.clone(),
        other => panic!("{other:?}"),
    };
    h.advance(1);
    let now = h.now();
    h.table
        .server_change(now, &alice(&[], false, true, UNIX + 1));
    let e = h.effects();
    assert!(
        matches!(&e[..], [Effect::End { session_id, .. }] if *session_id == g.session_id),
        "{e:?}"
    );
}

#[test]
fn relayed_strangers_share_one_pool_and_ipv6_counts_by_64() {
    let mut h = Harness::new(
        HostSettings {
            allow_guests: true,
            ..HostSettings::default()
        },
        vec![],
    );
    let mut waiting = 0;
    for _ in 0..20 {
        let v = PeerId::random();
        let via = format!("/p2p-circuit/p2p/{v}");
        match h.request_via(
            &via,
            true,
            v,
            AccessKind::Guest,
            RequestedMode::Interactive,
            vec![],
        ) {
            Ok(Outcome::Pending { .. }) => waiting += 1,
            Err(r) => assert_eq!(r.code, "busy"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(waiting, crate::table::MAX_PENDING_RELAYED);
    // A direct guest still gets in line.
    assert!(matches!(h.guest(), Ok(Outcome::Pending { .. })));
    // One /64: the per-address limit, whatever the low bits.
    let mut waiting = 0;
    for i in 0..10 {
        let ip = format!("2001:db8:0:7::{i:x}");
        let v = PeerId::random();
        if let Ok(Outcome::Pending { .. }) = h.request_from(
            &ip,
            v,
            AccessKind::Guest,
            RequestedMode::Interactive,
            vec![],
        ) {
            waiting += 1;
        }
    }
    assert_eq!(waiting, crate::table::MAX_PENDING_PER_IP);
}
