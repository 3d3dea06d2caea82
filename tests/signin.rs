//! End-to-end: the real `portico` binary signs in to a real `portico-signal` server (port 0,
//! real sled dir), pins its key, lists nodes, and refuses a server whose key changed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use portico_core::identity::Identity;
use portico_core::wire::signal::{Register, SignalRequest, SignalResponse};
use portico_signal_client::client::SignalClient;

#[path = "support/procs.rs"]
mod procs;
#[path = "support/x11.rs"]
mod x11;

use procs::{add_user, admin, enroll_token, Server};

fn portico(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_portico"))
        .arg("--data")
        .arg(data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    drop(child.stdin.take());
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_whoami_nodes_logout_and_key_change() {
    let sdir = tempfile::tempdir().unwrap();
    let server = Server::start_at(sdir.path(), "127.0.0.1:0");
    let port = server.port;
    let server_arg = server.addr();
    add_user(sdir.path(), "alice", false);
    admin(sdir.path(), &["group", "add", "Sales"], None);
    admin(
        sdir.path(),
        &["group", "add-member", "Sales", "alice"],
        None,
    );
    let tcp: libp2p::Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
    let server_peer: libp2p::PeerId = server.peer.parse().unwrap();
    let host = SignalClient::connect(&Identity::generate(), tcp.clone(), Some(server_peer))
        .await
        .unwrap();
    let token = enroll_token(sdir.path(), "/Sales");
    let registered = host
        .request(SignalRequest::Register(Register {
            node_path: Some("/Sales/pc-7".into()),
            addrs: vec![],
            agent: "t".into(),
            enroll: Some(token),
        }))
        .await
        .unwrap();
    assert!(
        matches!(registered, SignalResponse::Registered(_)),
        "{registered:?}"
    );

    let vdir = tempfile::tempdir().unwrap();
    let v = vdir.path().to_path_buf();
    let run = move |args: Vec<&'static str>, stdin: Option<&'static str>| {
        let v = v.clone();
        let server_arg = server_arg.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<String> = args
                .into_iter()
                .map(|a| {
                    if a == "SERVER" {
                        server_arg.clone()
                    } else {
                        a.to_string()
                    }
                })
                .collect();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            portico(&v, &args, stdin)
        })
    };

    let bad = run(
        vec![
            "login",
            "--server",
            "SERVER",
            "--user",
            "alice",
            "--password-stdin",
        ],
        Some("nope\n"),
    )
    .await
    .unwrap();
    assert!(!bad.status.success());
    assert!(
        text(&bad).contains("wrong user name or password"),
        "{}",
        text(&bad)
    );

    let ok = run(
        vec![
            "login",
            "--server",
            "SERVER",
            "--user",
            "alice",
            "--password-stdin",
        ],
        Some("alice-pw\n"),
    )
    .await
    .unwrap();
    assert!(ok.status.success(), "{}", text(&ok));
    assert!(
        text(&ok).contains("Signed in to hq as alice (groups: Sales)"),
        "{}",
        text(&ok)
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(vdir.path().join("session.toml"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }

    let who = run(vec!["whoami"], None).await.unwrap();
    assert!(
        who.status.success() && text(&who).contains("alice at hq"),
        "{}",
        text(&who)
    );
    let nodes = run(vec!["nodes"], None).await.unwrap();
    assert!(nodes.status.success(), "{}", text(&nodes));
    assert!(
        text(&nodes).contains("Sales/")
            && text(&nodes).contains("pc-7")
            && text(&nodes).contains("online"),
        "{}",
        text(&nodes)
    );

    let out = run(vec!["logout"], None).await.unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let who = run(vec!["whoami"], None).await.unwrap();
    assert!(
        !who.status.success() && text(&who).contains("not signed in"),
        "{}",
        text(&who)
    );

    // Another server (another key) at the same address is refused.
    drop(server);
    drop(host);
    let other_dir = tempfile::tempdir().unwrap();
    let impostor = Server::start_at(other_dir.path(), &format!("127.0.0.1:{port}"));
    add_user(other_dir.path(), "alice", false);
    let swapped = run(
        vec![
            "login",
            "--server",
            "SERVER",
            "--user",
            "alice",
            "--password-stdin",
        ],
        Some("alice-pw\n"),
    )
    .await
    .unwrap();
    assert!(!swapped.status.success());
    assert!(text(&swapped).contains("key changed"), "{}", text(&swapped));
    drop(impostor);
}
