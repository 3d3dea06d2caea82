//! `portico host`: share this display.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use portico_actors::capture::Pacing;
use portico_actors::host::{self, CaptureMode, HostConfig, HostFile};
use portico_actors::network::ServerLink;
use portico_core::identity::Identity;
use portico_core::policy::HostSettings;

/// Arguments of `portico host`.
#[derive(Debug, Args)]
pub(crate) struct HostArgs {
    /// Register with this server (HOST[:PORT]) for an Internet-ID, relaying and access control.
    #[arg(long, value_name = "HOST[:PORT]")]
    server: Option<String>,
    /// Node path wanted at the server on first registration (e.g. /Sales/pc-7; with an
    /// enrollment token only its last part counts: the token names the folder).
    #[arg(long, value_name = "PATH")]
    name: Option<String>,
    /// Enrollment token from the server's admin (`portico-signal node enroll FOLDER`),
    /// needed once, for the first registration: the token itself, `@FILE` to read it from a
    /// file, or `-` to read it from stdin (both keep it out of `ps`). Without one the host
    /// waits for the admin's approval (`portico-signal host approve PEERID`).
    #[arg(
        long,
        env = "PORTICO_ENROLL",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    enroll: Option<String>,
    /// Listen address, IP:PORT (TCP and QUIC) or a multiaddr; repeatable. Default 0.0.0.0:5650.
    #[arg(long, value_name = "ADDR")]
    listen: Vec<String>,
    /// What a viewer sees first: monitor N (0 = primary) or `desktop` (every monitor);
    /// each viewer may switch to another on its own.
    #[arg(long, value_name = "N|desktop")]
    monitor: Option<portico_core::area::Area>,
    /// How to capture the display: `auto` (X11 damage events when the X server has DAMAGE
    /// and XFIXES, else full grabs), `x11` (damage only) or `xcap` (full grabs).
    #[arg(long, value_enum, default_value = "auto")]
    capture: CaptureArg,
    /// Target frames per second.
    #[arg(long)]
    fps: Option<u32>,
    /// Config file (TOML): listen, server, name, monitor, fps, allow_guests, allow_visitors,
    /// no_mdns and [[acl]] entries.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Turn off mDNS LAN discovery.
    #[arg(long)]
    no_mdns: bool,
    /// No desktop notifications for requests (they still show in the console).
    #[arg(long)]
    no_notifications: bool,
    /// Allow guests (no account; the owner accepts each one). Off by default.
    #[arg(long)]
    allow_guests: bool,
    /// Allow visitors (signed in at the server; the owner accepts each one). Off by default.
    #[arg(long)]
    allow_visitors: bool,
    /// Apply a provisioning bundle from `portico-signal bundle`: pins its server key, adds its
    /// grants to the ACL, enrolls at its server under its node path. Needs --trust-server.
    #[arg(long, value_name = "FILE", requires = "trust_server")]
    provision: Option<PathBuf>,
    /// The server key fingerprint (or PeerId) a bundle must be signed with, as your server's
    /// admin reads it from `portico-signal id`: a bundle proves its origin only against it.
    #[arg(long, value_name = "FINGERPRINT")]
    trust_server: Option<String>,
    /// Where received files land (default ~/Downloads/Portico).
    #[arg(long, value_name = "DIR")]
    download_dir: Option<PathBuf>,
    /// Owner console address (loopback only); `off` disables it.
    #[arg(long, value_name = "IP:PORT|off", default_value = "127.0.0.1:5651")]
    console: String,
    /// Seconds the owner has to answer a request before it counts as refused.
    #[arg(long, value_name = "SECS")]
    owner_timeout: Option<u64>,
}

/// Writes to stdout; a closed stdout must not stop the host.
pub(crate) fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{line}").and_then(|()| out.flush()) {
        tracing::debug!(error = %e, "stdout closed");
    }
}

pub(crate) fn run(data: &Path, identity: Identity, args: HostArgs) -> anyhow::Result<()> {
    let file = match &args.config {
        Some(p) => HostFile::read(p)?,
        None => HostFile::default(),
    };
    let listen_specs = if !args.listen.is_empty() {
        args.listen.clone()
    } else if !file.listen.is_empty() {
        file.listen.clone()
    } else {
        vec![format!("0.0.0.0:{}", portico_actors::network::DEFAULT_PORT)]
    };
    let mut listen = Vec::new();
    for spec in &listen_specs {
        listen.extend(host::listen_addrs(spec)?);
    }
    let provisioned = match (&args.provision, &args.trust_server) {
        (Some(p), Some(trusted)) => Some(provision(data, p, trusted, &identity)?),
        _ => None,
    };
    let server_spec = args
        .server
        .clone()
        .or(file.server.clone())
        .or_else(|| provisioned.as_ref().map(|b| b.0.clone()));
    let name = args
        .name
        .clone()
        .or(file.name.clone())
        .or_else(|| provisioned.as_ref().map(|b| b.1.clone()));
    let rt = crate::runtime()?;
    let server_spec_for_record = server_spec.clone();
    let server = match server_spec {
        Some(s) => {
            // Pins the server key on first contact (and refuses a changed one).
            let (client, _) = rt.block_on(crate::signin::connect(data, &identity, &s))?;
            let link = ServerLink {
                addr: portico_signal_client::client::server_multiaddr(&s)?,
                peer: client.server_peer(),
                name,
                enroll: match args.enroll.as_deref() {
                    Some(given) => Some(read_enroll(given)?),
                    None => provisioned.as_ref().and_then(|b| b.2.clone()),
                },
            };
            drop(client);
            Some(link)
        }
        None => None,
    };
    drop(rt);
    let pacing = Pacing {
        fps: args.fps.or(file.fps).unwrap_or(30).clamp(1, 120),
        ..Pacing::default()
    };
    let config = HostConfig {
        listen,
        server,
        settings: HostSettings {
            allow_guests: args.allow_guests || file.allow_guests,
            allow_visitors: args.allow_visitors || file.allow_visitors,
        },
        acl: file.acl.clone(),
        area: args.monitor.unwrap_or(file.monitor),
        pacing,
        mdns: !(args.no_mdns || file.no_mdns),
        source: None,
        capture: match args.capture {
            CaptureArg::Auto => CaptureMode::Auto,
            CaptureArg::X11 => CaptureMode::X11,
            CaptureArg::Xcap => CaptureMode::Xcap,
        },
        owner_timeout: std::time::Duration::from_secs(
            args.owner_timeout
                .or(file.owner_timeout)
                .unwrap_or(60)
                .clamp(1, 3600),
        ),
        data_dir: Some(data.to_path_buf()),
        notifications: !(args.no_notifications || file.no_notifications),
        browse_roots: file
            .browse_roots
            .clone()
            .unwrap_or_else(default_browse_roots),
        private_files: args.config.iter().cloned().collect(),
        lan_name: lan_name(args.name.as_deref().or(file.name.as_deref())),
        connections_per_ip: file
            .connections_per_ip
            .unwrap_or(portico_signal_client::ip_limits::MAX_INBOUND_PER_IP)
            .max(1),
        download_dir: args
            .download_dir
            .clone()
            .or(file.download_dir.clone())
            .or_else(portico_core::data_dir::default_downloads)
            .context("no download folder: give --download-dir DIR")?,
        console: match args.console.as_str() {
            "off" => None,
            a => Some(
                a.parse()
                    .with_context(|| format!("--console {a:?}: use IP:PORT on loopback, or off"))?,
            ),
        },
    };
    let server_record = config
        .server
        .as_ref()
        .map(|l| (server_spec_for_record.clone().unwrap_or_default(), l.peer));
    let data = data.to_path_buf();
    let system = actix::System::new();
    system.block_on(async move {
        let handle = host::start(identity.clone(), config).await?;
        say(&format!("Portico host {}", env!("CARGO_PKG_VERSION")));
        say(&format!("PeerId:      {}", identity.peer_id()));
        say(&format!("Fingerprint: {}", identity.fingerprint()));
        for a in &handle.status.borrow().listen {
            say(&format!("Listening:   {a}"));
        }
        if let Some(url) = &handle.console_url {
            say(&format!("Console:     {url}"));
        }
        if file.acl.is_empty() && !(args.allow_guests || file.allow_guests || args.allow_visitors || file.allow_visitors) {
            say("ACL:         empty (no viewer key or server user is allowed yet; see `portico host --help`)");
        }
        let mut status = handle.status.clone();
        let mut shown_path: Option<String> = None;
        let mut shown_relay = false;
        let mut shown_refusal = None;
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).context("watching SIGTERM")?;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                changed = status.changed() => {
                    if changed.is_err() {
                        break;
                    }
                    let s = status.borrow().clone();
                    if let Some(r) = &s.registered {
                        if shown_path.as_deref() != Some(r.node_path.as_str()) {
                            if let Some(link) = &server_record {
                                record_registration(&data, link, r);
                            }
                            if shown_path.is_none() {
                                say(&format!("Internet-ID: {} ({} at {})", r.internet_id, r.node_path, r.server_name));
                            } else {
                                say(&format!("Node:        now at {} (moved by the server's admin)", r.node_path));
                            }
                            shown_path = Some(r.node_path.clone());
                        }
                    }
                    if s.registered.is_none() && s.refused.is_some() && s.refused != shown_refusal {
                        shown_refusal = s.refused.clone();
                        say(&format!("Server:      not registered yet: {}", s.refused.as_deref().unwrap_or_default()));
                    }
                    if s.relayed && !shown_relay {
                        shown_relay = true;
                        say("Relay:       reservation held at the server (reachable from outside the LAN)");
                    }
                }
            }
        }
        say("stopping");
        anyhow::Ok(())
    })
}

/// Applies a bundle signed by the `trusted` server key: pins that key, merges its grants
/// into `DATA/acl.toml`; returns the server address, the node path and the enrollment token
/// it names.
fn provision(
    data: &Path,
    path: &Path,
    trusted: &str,
    identity: &Identity,
) -> anyhow::Result<(String, String, Option<String>)> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (bundle, key) = portico_core::bundle::read_trusted(&bytes, trusted)
        .with_context(|| format!("{} is not a usable bundle", path.display()))?;
    let server = bundle
        .server_addrs
        .first()
        .cloned()
        .context("the bundle names no server address")?;
    crate::signin::pin_server(data, &server, &key.to_peer_id())?;
    let mut acl = portico_actors::host::ManagedAcl::read(data)?;
    for e in &bundle.acl {
        acl.upsert(e.clone());
    }
    acl.write(data)?;
    say(&format!(
        "Provisioned from {} ({}): node {}, {} grant(s): {}",
        bundle.server_name,
        portico_core::identity::fingerprint(&key),
        bundle.node_path,
        bundle.acl.len(),
        bundle
            .acl
            .iter()
            .map(|e| format!("{}={}", e.principal, e.permissions))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    // Every host from one bundle lands in its folder under a name of its own.
    let hostname = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let hostname: String = hostname
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '-')
        .take(40)
        .collect();
    let name = format!(
        "{}/{}-{}",
        bundle.node_path.trim_end_matches('/'),
        if hostname.is_empty() {
            "host"
        } else {
            &hostname
        },
        &identity.fingerprint()[..4]
    );
    Ok((server, name, bundle.enroll))
}

/// `--capture`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CaptureArg {
    Auto,
    X11,
    Xcap,
}

/// The name a host shows on the LAN: the last part of its node path, else the machine's
/// host name.
fn lan_name(node_path: Option<&str>) -> String {
    let from_path = node_path
        .and_then(|p| p.rsplit('/').find(|s| !s.is_empty()))
        .map(str::to_string);
    let machine = || {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
    };
    let name = from_path
        .or_else(machine)
        .unwrap_or_else(|| "portico-host".into());
    portico_core::text::clean(&name, 64)
}

/// With no `browse_roots` in the config: `~/Public`, created empty when missing — never the
/// whole home folder. Nothing is shared when there is no home or it cannot be made.
fn default_browse_roots() -> Vec<PathBuf> {
    let Some(public) = std::env::var_os("HOME").map(|h| PathBuf::from(h).join("Public")) else {
        return Vec::new();
    };
    match std::fs::create_dir_all(&public) {
        Ok(()) => vec![public],
        Err(e) => {
            tracing::warn!(path = %public.display(), "no folder is shared for browsing: {e}");
            Vec::new()
        }
    }
}

/// Writes down where this host is registered (`portico id` and the owner's tools read it).
fn record_registration(
    data: &Path,
    link: &(String, libp2p::PeerId),
    r: &portico_core::wire::signal::Registered,
) {
    let rec = crate::registration::Registration {
        server: link.0.clone(),
        server_peer: link.1.to_string(),
        server_name: r.server_name.clone(),
        internet_id: r.internet_id.to_string(),
        node_path: r.node_path.clone(),
    };
    if let Err(e) = crate::registration::write(data, &rec) {
        tracing::warn!(error = %e, "cannot record the registration");
    }
}

/// The enrollment token `--enroll` names: itself, `@FILE`'s first line, or stdin's (`-`).
fn read_enroll(given: &str) -> anyhow::Result<String> {
    let text = if given == "-" {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("reading the enrollment token from stdin")?;
        line
    } else if let Some(file) = given.strip_prefix('@') {
        std::fs::read_to_string(file).with_context(|| {
            format!("reading the enrollment token from {file}; give --enroll TOKEN, @FILE or -")
        })?
    } else {
        return Ok(given.to_string());
    };
    let token = text.lines().next().unwrap_or_default().trim().to_string();
    anyhow::ensure!(
        !token.is_empty(),
        "no enrollment token in {}; ask the server's admin for one (portico-signal node enroll FOLDER)",
        if given == "-" { "stdin" } else { given }
    );
    Ok(token)
}
