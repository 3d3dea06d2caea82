//! Load on the signalling server: N simulated hosts register and heartbeat against a real
//! `portico-signal serve` process over loopback, while viewers look hosts up at M per second.
//! Prints registrations/s, lookup latency p50/p99 and the server's RSS per registered host.
//!
//! `cargo run --release -p portico-simulations --bin signal_load -- --hosts 1000 --lookups 500`

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use futures::stream::{self, StreamExt};
use libp2p::{Multiaddr, PeerId};
use portico_core::identity::Identity;
use portico_core::wire::signal::*;
use portico_core::InternetId;
use portico_signal_client::client::SignalClient;
use portico_simulations::{percentile, rss_kib};
use rand::seq::SliceRandom;

/// Load simulation for portico-signal.
#[derive(Debug, Parser)]
struct Args {
    /// Simulated hosts.
    #[arg(long, default_value_t = 500)]
    hosts: usize,
    /// Lookups per second (spread over viewers doing at most 5/s each, like real viewers).
    #[arg(long, default_value_t = 200)]
    lookups: u32,
    /// Seconds of lookups and heartbeats after registration.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Seconds between heartbeats of each host.
    #[arg(long, default_value_t = 5)]
    heartbeat: u64,
    /// Concurrent registrations.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// The server binary (default: portico-signal next to this binary).
    #[arg(long)]
    server_bin: Option<PathBuf>,
}

struct Server {
    /// Enrollment tokens, one per rack folder (`/sim/rack-N`), each for all its hosts.
    tokens: Vec<String>,
    child: Child,
    addr: Multiaddr,
    peer: PeerId,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Err(e) = self.child.kill() {
            eprintln!("could not stop the server: {e}");
        }
        // Reap it; its exit status tells nothing here.
        let _status = self.child.wait();
    }
}

/// Racks (folders) the simulated hosts are spread over.
const RACKS: usize = 32;

fn start_server(bin: &PathBuf, hosts: usize) -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    // Every simulated host connects from 127.0.0.1: the per-IP limits (meant for strangers
    // sharing nothing but an address) would throttle the whole fleet.
    let config = dir.path().join("signal.toml");
    std::fs::write(
        &config,
        "[rate]\nper_ip_burst = 1000000\nper_ip_per_sec = 1000000.0\n",
    )?;
    // An admin enrolls the fleet: one token per rack folder (the server is not running yet,
    // so the command goes to the store).
    let mut tokens = Vec::with_capacity(RACKS);
    for rack in 0..RACKS {
        let out = Command::new(bin)
            .arg("--data")
            .arg(dir.path())
            .args(["node", "enroll", &format!("/sim/rack-{rack}"), "--uses"])
            .arg(hosts.div_ceil(RACKS).max(1).to_string())
            .env("RUST_LOG", "warn")
            .output()
            .with_context(|| format!("running {} node enroll", bin.display()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let token = text
            .lines()
            .find(|l| l.starts_with("enroll-"))
            .with_context(|| format!("node enroll printed no token: {text}"))?;
        tokens.push(token.to_string());
    }
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .arg("--data")
        .arg(dir.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| {
            format!(
                "starting {} (build it with `cargo build -p portico-signal`)",
                bin.display()
            )
        })?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut addr = None;
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line?;
        if let Some(a) = line.strip_prefix("Listening:") {
            let a = a.trim();
            if a.contains("/tcp/") {
                addr = Some(a.parse::<Multiaddr>()?);
                break;
            }
        }
    }
    let Some(addr) = addr else {
        bail!("the server printed no TCP address")
    };
    let peer = addr
        .iter()
        .find_map(|p| {
            if let libp2p::multiaddr::Protocol::P2p(p) = p {
                Some(p)
            } else {
                None
            }
        })
        .context("no /p2p in address")?;
    Ok(Server {
        tokens,
        child,
        addr,
        peer,
        _dir: dir,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = match &args.server_bin {
        Some(b) => b.clone(),
        None => std::env::current_exe()?.with_file_name("portico-signal"),
    };
    let server = start_server(&bin, args.hosts)?;
    let pid = server.child.id();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rss_idle = rss_kib(pid).context("cannot read the server's RSS")?;

    // Registration.
    let start = Instant::now();
    let results: Vec<anyhow::Result<(SignalClient, InternetId)>> = stream::iter(0..args.hosts)
        .map(|i| {
            let (addr, peer) = (server.addr.clone(), server.peer);
            let token = server.tokens[i % RACKS].clone();
            async move {
                let id = Identity::generate();
                let c = SignalClient::connect(&id, addr, Some(peer)).await?;
                let r = c
                    .request(SignalRequest::Register(Register {
                        node_path: Some(format!("/sim/rack-{}/host-{i}", i % RACKS)),
                        addrs: vec![format!(
                            "/ip4/10.{}.{}.{}/tcp/5650",
                            i / 65536 % 256,
                            i / 256 % 256,
                            i % 256
                        )],
                        agent: "signal_load".into(),
                        enroll: Some(token),
                    }))
                    .await?;
                match r {
                    SignalResponse::Registered(r) => Ok((c, r.internet_id)),
                    other => bail!("registration refused: {other:?}"),
                }
            }
        })
        .buffer_unordered(args.concurrency)
        .collect()
        .await;
    let reg_secs = start.elapsed().as_secs_f64();
    let mut hosts = Vec::new();
    let mut failed = 0;
    for r in results {
        match r {
            Ok(h) => hosts.push(h),
            Err(e) => {
                failed += 1;
                if failed <= 3 {
                    eprintln!("registration failed: {e:#}");
                }
            }
        }
    }
    if hosts.is_empty() {
        bail!("no host registered");
    }
    let ids: Arc<Vec<InternetId>> = Arc::new(hosts.iter().map(|(_, id)| *id).collect());

    // Heartbeats for the rest of the run.
    let stop_at = Instant::now() + Duration::from_secs(args.duration);
    let heartbeat = Duration::from_secs(args.heartbeat);
    let mut beats = Vec::new();
    for (i, (client, _)) in hosts.into_iter().enumerate() {
        let offset = heartbeat.mul_f64(i as f64 / args.hosts as f64);
        beats.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            let mut n = 0u64;
            while Instant::now() < stop_at {
                if matches!(
                    client
                        .request(SignalRequest::Heartbeat(Heartbeat { addrs: vec![] }))
                        .await,
                    Ok(SignalResponse::Ack(_))
                ) {
                    n += 1;
                }
                tokio::time::sleep(heartbeat).await;
            }
            (client, n)
        }));
    }

    // Lookups from viewers, each at most 5/s.
    let viewers = (args.lookups as usize).div_ceil(5).max(1);
    let per_viewer = Duration::from_secs_f64(viewers as f64 / f64::from(args.lookups.max(1)));
    let mut lookers = Vec::new();
    for _ in 0..viewers {
        let (addr, peer, ids) = (server.addr.clone(), server.peer, ids.clone());
        lookers.push(tokio::spawn(async move {
            let c = SignalClient::connect(&Identity::generate(), addr, Some(peer)).await?;
            let mut lat = Vec::new();
            let mut errors = 0u64;
            let mut tick = tokio::time::interval(per_viewer);
            while Instant::now() < stop_at {
                tick.tick().await;
                let id = *ids.choose(&mut rand::thread_rng()).context("no ids")?;
                let t = Instant::now();
                match c
                    .request(SignalRequest::Lookup(Lookup {
                        target: LookupTarget::Id(id),
                        session: None,
                    }))
                    .await
                {
                    Ok(SignalResponse::Found(f)) if f.online => {
                        lat.push(t.elapsed().as_secs_f64() * 1e3)
                    }
                    _ => errors += 1,
                }
            }
            anyhow::Ok((lat, errors))
        }));
    }
    let mut lat = Vec::new();
    let mut errors = 0;
    for l in lookers {
        let (l, e) = l.await??;
        lat.extend(l);
        errors += e;
    }
    let rss_loaded = rss_kib(pid).context("cannot read the server's RSS")?;
    let mut heartbeats = 0;
    let mut clients = Vec::new();
    for b in beats {
        let (c, n) = b.await?;
        heartbeats += n;
        clients.push(c);
    }
    lat.sort_by(f64::total_cmp);

    let n = clients.len();
    println!("portico-signal load simulation (server pid {pid}, loopback)");
    println!(
        "registrations: {n} hosts in {reg_secs:.2} s = {:.0}/s ({failed} failed, concurrency {})",
        n as f64 / reg_secs,
        args.concurrency
    );
    println!(
        "heartbeats:    {heartbeats} acknowledged (every {} s per host, {} s run)",
        args.heartbeat, args.duration
    );
    println!(
        "lookups:       {} at {}/s target from {viewers} viewers: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, {errors} errors",
        lat.len(),
        args.lookups,
        percentile(&lat, 50.0).unwrap_or(f64::NAN),
        percentile(&lat, 99.0).unwrap_or(f64::NAN),
        lat.last().copied().unwrap_or(f64::NAN),
    );
    println!(
        "server RSS:    {:.1} MiB idle, {:.1} MiB with {n} hosts connected = {:.1} KiB per registered host",
        rss_idle as f64 / 1024.0,
        rss_loaded as f64 / 1024.0,
        rss_loaded.saturating_sub(rss_idle) as f64 / n as f64
    );
    Ok(())
}
