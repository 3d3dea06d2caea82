//! Host enrollment against the real server: only hosts with a token or an admin's approval
//! register; a token cannot be reused past its uses; a node path stays bound to its key; a
//! stranger cannot fill the waiting list; events reach enrolled hosts only.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use portico_core::identity::Identity;
use portico_core::wire::signal::*;
use portico_signal::admin::AdminCommand;
use portico_signal::Config;
use portico_signal_client::client::SignalClient;

#[path = "support/inproc.rs"]
mod inproc;
use inproc::start_in;

async fn ask(c: &SignalClient, path: Option<&str>, token: Option<&str>) -> SignalResponse {
    c.request(SignalRequest::Register(Register {
        node_path: path.map(Into::into),
        addrs: vec![],
        agent: "portico/test\u{202E}\x1b[31m".into(),
        enroll: token.map(Into::into),
    }))
    .await
    .unwrap()
}

fn code(r: &SignalResponse) -> ErrorCode {
    match r {
        SignalResponse::Error(e) => e.code,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn hosts_register_only_with_a_token_or_an_admins_approval() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.enrollment.max_pending_per_ip = 3;
    let s = start_in(dir.path(), config).await;

    // No token: the host waits, is listed for the admin (agent cleaned), and stays
    // unregistered while it waits (no Internet-ID, no heartbeat).
    let waiting_id = Identity::generate();
    let waiting = s.client(&waiting_id).await;
    let r = ask(&waiting, Some("/Branch/pc-1"), None).await;
    assert_eq!(code(&r), ErrorCode::PendingApproval);
    let SignalResponse::Error(e) = &r else {
        unreachable!()
    };
    assert!(
        e.message.contains("portico-signal host approve"),
        "{}",
        e.message
    );
    let listed = s.admin(AdminCommand::HostPending).await;
    let peer = waiting_id.peer_id().to_string();
    assert!(
        listed.contains(&peer) && listed.contains("/Branch/pc-1"),
        "{listed}"
    );
    assert!(
        !listed.contains('\u{202E}') && !listed.contains('\x1b'),
        "{listed:?}"
    );
    let hb = waiting
        .request(SignalRequest::Heartbeat(Heartbeat { addrs: vec![] }))
        .await
        .unwrap();
    assert_eq!(code(&hb), ErrorCode::NotRegistered);

    // The admin approves: its next attempt registers where it asked (folders made by the
    // admin's act), and the waiting list is empty.
    let approved = s
        .admin(AdminCommand::HostApprove {
            peer: peer.clone(),
            path: None,
        })
        .await;
    assert!(approved.contains("/Branch/pc-1"), "{approved}");
    let SignalResponse::Registered(reg) = ask(&waiting, None, None).await else {
        panic!("approved host not registered")
    };
    assert_eq!(reg.node_path, "/Branch/pc-1");
    assert_eq!(
        s.admin(AdminCommand::HostPending).await,
        "no hosts wait for approval"
    );

    // A token admits one host into its folder under the name it asks for.
    let token = s.enroll_token("/Lab").await;
    let a = s.client(&Identity::generate()).await;
    let SignalResponse::Registered(ra) = ask(&a, Some("/Anywhere/else/desk"), Some(&token)).await
    else {
        panic!("enrolled host not registered")
    };
    assert_eq!(
        ra.node_path, "/Lab/desk",
        "the token's folder, not the host's"
    );
    // Used up: a second host with it is refused and lands nowhere.
    let b_id = Identity::generate();
    let b = s.client(&b_id).await;
    assert_eq!(
        code(&ask(&b, Some("/Lab/b"), Some(&token)).await),
        ErrorCode::Forbidden
    );
    assert_eq!(
        code(&ask(&b, Some("/Lab/b"), Some("enroll-forged")).await),
        ErrorCode::Forbidden
    );
    // Another key cannot take a path that is bound to a host, even with a fresh token.
    let fresh = s.enroll_token("/Lab").await;
    assert_eq!(
        code(&ask(&b, Some("/x/desk"), Some(&fresh)).await),
        ErrorCode::BadRequest
    );
    // ...and the token it tried is still good for a free name.
    let SignalResponse::Registered(rb) = ask(&b, Some("/x/desk-2"), Some(&fresh)).await else {
        panic!("a taken name used up the token")
    };
    assert_eq!(rb.node_path, "/Lab/desk-2");

    // Rejected hosts are refused from then on.
    let r_id = Identity::generate();
    let rejected = s.client(&r_id).await;
    assert_eq!(
        code(&ask(&rejected, None, None).await),
        ErrorCode::PendingApproval
    );
    s.admin(AdminCommand::HostReject {
        peer: r_id.peer_id().to_string(),
    })
    .await;
    assert_eq!(
        code(&ask(&rejected, None, None).await),
        ErrorCode::Forbidden
    );

    // PeerIds are free, addresses are not: one address cannot fill the waiting list.
    let mut codes = Vec::new();
    for _ in 0..5 {
        let c = s.client(&Identity::generate()).await;
        codes.push(code(&ask(&c, None, None).await));
    }
    assert_eq!(
        codes,
        [
            ErrorCode::PendingApproval,
            ErrorCode::PendingApproval,
            ErrorCode::PendingApproval,
            ErrorCode::RateLimited,
            ErrorCode::RateLimited
        ]
    );

    // Tokens can be listed and revoked; a revoked token admits nobody.
    let spare = s.enroll_token("/Lab").await;
    let list = s.admin(AdminCommand::EnrollList).await;
    let id = list
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .to_string();
    s.admin(AdminCommand::EnrollRevoke { id }).await;
    let c = s.client(&Identity::generate()).await;
    assert_eq!(
        code(&ask(&c, None, Some(&spare)).await),
        ErrorCode::Forbidden
    );

    // The audit log has every step.
    let audit = s
        .admin(AdminCommand::Audit {
            tail: None,
            verify: true,
        })
        .await;
    for action in [
        "host.pending",
        "host.approve",
        "node.enroll",
        "host.enroll",
        "host.reject",
        "node.revoke_enrollment",
    ] {
        assert!(audit.contains(action), "{action} missing:\n{audit}");
    }
    s.running.shutdown().await;
}

#[tokio::test]
async fn with_approval_off_a_host_without_a_token_is_refused_and_the_admin_socket_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.enrollment.approval = false;
    let s = start_in(dir.path(), config).await;
    // The admin socket lives in a directory only its owner can enter.
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(dir.path()), 0o700);
    assert_eq!(mode(&dir.path().join("admin.sock")), 0o600);
    let c = s.client(&Identity::generate()).await;
    let r = ask(&c, Some("/pc"), None).await;
    assert_eq!(code(&r), ErrorCode::Forbidden);
    let SignalResponse::Error(e) = r else {
        unreachable!()
    };
    assert!(e.message.contains("--enroll"), "{}", e.message);
    assert_eq!(
        s.admin(AdminCommand::HostPending).await,
        "no hosts wait for approval"
    );
    s.running.shutdown().await;
}
