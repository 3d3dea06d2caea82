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
    assert!(refused.message.contains("disabled"), "{}", refused.message);
    h.advance(1);
    let now = h.now();
    h.table.server_change(now, &change(&["Sales"], false));
    let fresh = h.user_ticket(v, "alice", &["Sales"]);
    granted(h.request(v, AccessKind::User, RequestedMode::Interactive, vec![fresh]));
}
