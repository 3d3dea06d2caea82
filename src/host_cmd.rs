//! `portico host`: share this display.

mod resolve;

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use portico_actors::host::{self, HostConfig, HostFile};
use portico_actors::network::ServerLink;
use portico_core::identity::Identity;
use resolve::{Bundle, Defaults, EnrollFrom};

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
    /// Config file (TOML), every key optional: listen, server, name, monitor, fps,
    /// allow_guests, allow_visitors, no_mdns, no_notifications, browse_roots, owner_timeout,
    /// download_dir, connections_per_ip and [[acl]] entries (docs/user-guide.md). A flag
    /// beats the file; switches take `=false` to turn off what the file turns on.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Turn off mDNS LAN discovery.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    no_mdns: Option<bool>,
    /// No desktop notifications for requests (they still show in the console).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    no_notifications: Option<bool>,
    /// Allow guests (no account; the owner accepts each one). Off by default.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    allow_guests: Option<bool>,
    /// Allow visitors (signed in at the server; the owner accepts each one). Off by default.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    allow_visitors: Option<bool>,
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
    let bundle = match (&args.provision, &args.trust_server) {
        (Some(p), Some(trusted)) => Some(provision(data, p, trusted, &identity)?),
        _ => None,
    };
    let r = resolve::resolve(&args, &file, bundle.as_ref(), &Defaults::of_this_machine())?;
    let server = server_link(data, &identity, &r)?;
    let acl_hint = file.acl.is_empty() && !(r.settings.allow_guests || r.settings.allow_visitors);
    let shown = Shown {
        data: data.to_path_buf(),
        server: (server.as_ref()).map(|l| (r.server.clone().unwrap_or_default(), l.peer)),
        path: None,
        relay: false,
        refusal: None,
    };
    let config = HostConfig {
        listen: r.listen,
        server,
        settings: r.settings,
        acl: r.acl,
        area: r.area,
        pacing: r.pacing,
        mdns: r.mdns,
        source: None,
        capture: r.capture,
        owner_timeout: r.owner_timeout,
        data_dir: Some(data.to_path_buf()),
        notifications: r.notifications,
        browse_roots: r.browse_roots,
        private_files: args.config.iter().cloned().collect(),
        lan_name: r.lan_name,
        connections_per_ip: r.connections_per_ip,
        download_dir: r.download_dir,
        console: r.console,
    };
    actix::System::new().block_on(serve(identity, config, acl_hint, shown))
}

/// Contacts the server once (pinning its key on first contact, refusing a changed one) and
/// reads the enrollment token: the host's link to it.
fn server_link(
    data: &Path,
    identity: &Identity,
    r: &resolve::Resolved,
) -> anyhow::Result<Option<ServerLink>> {
    let Some(s) = &r.server else { return Ok(None) };
    let rt = crate::runtime()?;
    let (client, _) = rt.block_on(crate::signin::connect(data, identity, s))?;
    Ok(Some(ServerLink {
        addr: portico_signal_client::client::server_multiaddr(s)?,
        peer: client.server_peer(),
        name: r.name.clone(),
        enroll: match &r.enroll {
            Some(EnrollFrom::Flag(given)) => Some(read_enroll(given)?),
            Some(EnrollFrom::Bundle(t)) => Some(t.clone()),
            None => None,
        },
    }))
}

/// Runs the host until Ctrl-C or SIGTERM, printing what the owner needs to know.
async fn serve(
    identity: Identity,
    config: HostConfig,
    acl_hint: bool,
    mut shown: Shown,
) -> anyhow::Result<()> {
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
    if acl_hint {
        say("ACL:         empty (no viewer key or server user is allowed yet; see `portico host --help`)");
    }
    let mut status = handle.status.clone();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("watching SIGTERM")?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            changed = status.changed() => {
                if changed.is_err() {
                    break;
                }
                let now = status.borrow().clone();
                shown.show(&now);
            }
        }
    }
    say("stopping");
    Ok(())
}

/// What the host has printed about its server so far (each change is printed once).
struct Shown {
    /// The data dir (the registration is recorded there).
    data: PathBuf,
    /// The server's address and PeerId, when there is one.
    server: Option<(String, libp2p::PeerId)>,
    /// The node path printed.
    path: Option<String>,
    /// The relay line printed.
    relay: bool,
    /// The refusal printed.
    refusal: Option<String>,
}

impl Shown {
    fn show(&mut self, s: &portico_actors::network::HostStatus) {
        if let Some(r) = &s.registered {
            if self.path.as_deref() != Some(r.node_path.as_str()) {
                if let Some(link) = &self.server {
                    record_registration(&self.data, link, r);
                }
                if self.path.is_none() {
                    say(&format!(
                        "Internet-ID: {} ({} at {})",
                        r.internet_id, r.node_path, r.server_name
                    ));
                } else {
                    say(&format!(
                        "Node:        now at {} (moved by the server's admin)",
                        r.node_path
                    ));
                }
                self.path = Some(r.node_path.clone());
            }
        }
        if s.registered.is_none() && s.refused.is_some() && s.refused != self.refusal {
            self.refusal.clone_from(&s.refused);
            say(&format!(
                "Server:      not registered yet: {}",
                s.refused.as_deref().unwrap_or_default()
            ));
        }
        if s.relayed && !self.relay {
            self.relay = true;
            say("Relay:       reservation held at the server (reachable from outside the LAN)");
        }
    }
}

/// Applies a bundle signed by the `trusted` server key: pins that key, merges its grants
/// into `DATA/acl.toml`; returns the server address, the node path and the enrollment token
/// it names.
fn provision(
    data: &Path,
    path: &Path,
    trusted: &str,
    identity: &Identity,
) -> anyhow::Result<Bundle> {
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
    Ok(Bundle {
        server,
        name,
        enroll: bundle.enroll,
    })
}

/// `--capture`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum CaptureArg {
    Auto,
    X11,
    Xcap,
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
