//! The real `portico-signal` process killed with SIGKILL under load (hosts enrolling
//! concurrently, an admin writing) loses no registration it acknowledged and no admin write
//! that reported success: after the kill, the store (read by the admin CLI) has all of them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libp2p::{Multiaddr, PeerId};
use portico_core::identity::Identity;
use portico_core::wire::signal::{Register, SignalRequest, SignalResponse};
use portico_signal_client::SignalClient;

fn signal(dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_portico-signal"));
    c.arg("--data")
        .arg(dir)
        .env_remove("PORTICO_SIGNAL_DATA")
        .env("RUST_LOG", "warn");
    c
}

fn stdout(c: &mut Command) -> String {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Hosts registering at once, each on its own connection like real hosts.
const ENROLLERS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_keeps_every_acknowledged_registration_and_admin_write() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_path_buf();
    // Every simulated host connects from 127.0.0.1: lift the per-address limits.
    let config = data.join("signal.toml");
    std::fs::write(
        &config,
        "[rate]\nper_ip_burst = 1000000\nper_ip_per_sec = 1000000.0\n",
    )
    .unwrap();
    let token = stdout(signal(&data).args(["node", "enroll", "/load", "--uses", "100000"]))
        .lines()
        .find(|l| l.starts_with("enroll-"))
        .unwrap()
        .to_string();
    let mut server = signal(&data)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let addr: Multiaddr = lines
        .by_ref()
        .map_while(Result::ok)
        .find_map(|l| {
            l.strip_prefix("Listening:")
                .map(str::trim)
                .filter(|a| a.contains("/tcp/"))
                .map(|a| a.parse().unwrap())
        })
        .expect("the server printed no TCP address");
    let peer: PeerId = addr
        .iter()
        .find_map(|p| match p {
            libp2p::multiaddr::Protocol::P2p(p) => Some(p),
            _ => None,
        })
        .unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Vec::<(String, String)>::new()));
    let mut enrollers = Vec::new();
    for e in 0..ENROLLERS {
        let (stop, acked, addr, token) = (stop.clone(), acked.clone(), addr.clone(), token.clone());
        enrollers.push(tokio::spawn(async move {
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let id = Identity::generate();
                let Ok(client) = SignalClient::connect(&id, addr.clone(), Some(peer)).await else {
                    break;
                };
                let path = format!("/load/h-{e}-{n}");
                let register = Register {
                    node_path: Some(path.clone()),
                    addrs: vec![],
                    agent: "crash test".into(),
                    enroll: Some(token.clone()),
                };
                match client.request(SignalRequest::Register(register)).await {
                    Ok(SignalResponse::Registered(r)) => {
                        assert_eq!(r.node_path, path);
                        acked
                            .lock()
                            .unwrap()
                            .push((path, r.internet_id.to_string()));
                    }
                    Ok(other) => panic!("registration refused: {other:?}"),
                    Err(_) => break,
                }
            }
        }));
    }
    // The admin writes while the hosts enrol (through the running server's admin socket).
    // Each admin write flushes the whole store, so they are spaced out: registrations
    // acknowledged between two of them are on disk only if their own answers waited.
    let admin_writes = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let admin = {
        let (stop, data, count) = (stop.clone(), data.clone(), admin_writes.clone());
        std::thread::spawn(move || {
            let mut written = Vec::new();
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let name = format!("team-{n}");
                let out = signal(&data)
                    .args(["group", "add", &name])
                    .output()
                    .unwrap();
                if !out.status.success() {
                    break;
                }
                written.push(name);
                count.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(150));
            }
            written
        })
    };

    let started = Instant::now();
    while acked.lock().unwrap().len() < 40 || admin_writes.load(Ordering::Relaxed) < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the load never got going"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // Mid-load, no warning: no destructor, no final flush.
    server.kill().unwrap();
    server.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    for e in enrollers {
        e.await.unwrap();
    }
    let groups = admin.join().unwrap();
    let acked = acked.lock().unwrap().clone();

    // The store as the restarted server would open it.
    let tree = stdout(signal(&data).args(["node", "list", "/load"]));
    let lost: Vec<_> = acked
        .iter()
        .filter(|(path, id)| {
            let name = path.rsplit('/').next().unwrap();
            !tree
                .lines()
                .any(|l| l.contains(name) && l.contains(id.as_str()))
        })
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged registrations lost: {lost:?}\n{tree}",
        lost.len(),
        acked.len()
    );
    let listed = stdout(signal(&data).args(["group", "list"]));
    let missing: Vec<_> = groups
        .iter()
        .filter(|g| {
            !listed
                .lines()
                .any(|l| l.split_whitespace().next() == Some(g.as_str()))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "admin writes lost: {missing:?}\n{listed}"
    );
    assert!(!groups.is_empty(), "no admin write got through");
    eprintln!(
        "kept {} registrations and {} admin writes across the kill",
        acked.len(),
        groups.len()
    );
}
