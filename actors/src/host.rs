//! The host: starts the actors (AccessControl, Capture, Encoder, Input, Network) inside the
//! current actix `System` and serves `/portico/session/1`.

mod accept;
mod ports;

use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use portico_core::identity::Identity;
use portico_core::policy::{AclEntry, HostSettings};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::access::AccessControl;
use crate::capture::{FrameSource, Pacing};
use crate::input::Input;
use crate::network::{
    build_swarm, HostStatus, Network, PeerOptions, ServerLink, DEFAULT_PORT, SESSION,
};
pub use crate::screens::CaptureMode;
use crate::screens::{ScreenError, Screens};
use crate::session::{self, SessionDeps};

/// The host's config file (`portico host --config FILE`, TOML). Every field is optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HostFile {
    /// Listen addresses (multiaddrs or `IP:PORT`); default TCP and QUIC on 0.0.0.0:5650.
    pub listen: Vec<String>,
    /// Server `HOST[:PORT]` to register with.
    pub server: Option<String>,
    /// Node path wanted at the server (`/Sales/pc-7`).
    pub name: Option<String>,
    /// What a viewer sees first: a monitor's number (0 = primary) or `"desktop"`.
    pub monitor: portico_core::area::Area,
    /// Target frames per second (default 30).
    pub fps: Option<u32>,
    /// Guest sharing on this host (off by default).
    pub allow_guests: bool,
    /// Visitor sharing on this host (off by default).
    pub allow_visitors: bool,
    /// Disable mDNS LAN discovery.
    pub no_mdns: bool,
    /// No desktop notifications for the owner's requests.
    pub no_notifications: bool,
    /// Folders viewers with `files` may browse and download from (default: the home
    /// folder; `[]` shares nothing).
    pub browse_roots: Option<Vec<std::path::PathBuf>>,
    /// Seconds the owner has to answer a request (default 60).
    pub owner_timeout: Option<u64>,
    /// Where received files land (default ~/Downloads/Portico).
    pub download_dir: Option<std::path::PathBuf>,
    /// Access-control list.
    pub acl: Vec<AclEntry>,
    /// Inbound connections one address may hold, pending or established (default 32):
    /// raise it when many viewers share one NAT address.
    pub connections_per_ip: Option<usize>,
}

/// Why a host config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The config file.
    #[error("config file {path}: {reason}")]
    Config {
        /// The file.
        path: String,
        /// What was wrong.
        reason: String,
    },
    /// A listen address.
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The owner console did not start.
    #[error("owner console: {0}")]
    Console(#[from] crate::console::ConsoleError),
    /// The audit log cannot be used.
    #[error("host audit log: {0}")]
    AuditLog(#[from] crate::audit_log::AuditError),
    /// No screen to capture.
    #[error("cannot capture the screen: {0}")]
    Capture(#[from] ScreenError),
    /// A thread of the host did not start.
    #[error("cannot start the {what} thread: {source}")]
    Thread {
        /// Which.
        what: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Networking could not be set up.
    #[error("cannot set up networking: {0}")]
    Network(String),
}

impl HostFile {
    /// Reads a config file.
    pub fn read(path: &Path) -> Result<Self, HostError> {
        let err = |reason: String| HostError::Config {
            path: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        toml::from_str(&text).map_err(|e| err(e.to_string()))
    }
}

/// The managed ACL file (`DATA/acl.toml`), edited by `portico acl` and provisioning.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ManagedAcl {
    /// The entries.
    pub acl: Vec<AclEntry>,
}

impl ManagedAcl {
    /// Reads `DATA/acl.toml` (empty when absent).
    pub fn read(dir: &Path) -> Result<Self, HostError> {
        let path = dir.join(portico_core::data_dir::ACL);
        match std::fs::read_to_string(&path) {
            Ok(t) => toml::from_str(&t).map_err(|e| HostError::Config {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(HostError::Config {
                path: path.display().to_string(),
                reason: e.to_string(),
            }),
        }
    }

    /// Writes `DATA/acl.toml` (mode 0600, atomically).
    pub fn write(&self, dir: &Path) -> Result<(), HostError> {
        let path = dir.join(portico_core::data_dir::ACL);
        let text = toml::to_string(self).map_err(|e| HostError::Config {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        portico_core::identity::replace_private(&path, text.as_bytes()).map_err(|e| {
            HostError::Config {
                path: path.display().to_string(),
                reason: e.to_string(),
            }
        })
    }

    /// Adds or replaces the entry for its principal.
    pub fn upsert(&mut self, entry: AclEntry) {
        self.acl.retain(|e| e.principal != entry.principal);
        self.acl.push(entry);
    }
}

/// Parses `IP:PORT` (TCP and QUIC) or a multiaddr.
pub fn listen_addrs(s: &str) -> Result<Vec<Multiaddr>, HostError> {
    if s.starts_with('/') {
        return s
            .parse()
            .map(|a| vec![a])
            .map_err(|e: libp2p::multiaddr::Error| HostError::Listen {
                addr: s.into(),
                reason: e.to_string(),
            });
    }
    let sa: std::net::SocketAddr = s
        .parse()
        .or_else(|_| {
            s.parse::<std::net::IpAddr>()
                .map(|ip| std::net::SocketAddr::new(ip, DEFAULT_PORT))
        })
        .map_err(|_| HostError::Listen {
            addr: s.into(),
            reason: "use IP:PORT or a multiaddr".into(),
        })?;
    let ip = Multiaddr::from(sa.ip());
    Ok(vec![
        ip.clone().with(Protocol::Tcp(sa.port())),
        ip.with(Protocol::Udp(sa.port())).with(Protocol::QuicV1),
    ])
}

/// Everything `start` needs.
pub struct HostConfig {
    /// Listen addresses.
    pub listen: Vec<Multiaddr>,
    /// The server, with its pinned key.
    pub server: Option<ServerLink>,
    /// Host switches.
    pub settings: HostSettings,
    /// The ACL.
    pub acl: Vec<AclEntry>,
    /// What a viewer sees first (a monitor, or the whole desktop); each may switch.
    pub area: portico_core::area::Area,
    /// Capture pacing.
    pub pacing: Pacing,
    /// LAN discovery.
    pub mdns: bool,
    /// A frame source to use instead of the X display (benchmarks).
    pub source: Option<Box<dyn FrameSource>>,
    /// How the X display is captured.
    pub capture: CaptureMode,
    /// How long the owner has to answer a request.
    pub owner_timeout: Duration,
    /// The data directory (audit log, console token); none: no audit log, no console.
    pub data_dir: Option<std::path::PathBuf>,
    /// Where the owner console listens (loopback), when on.
    pub console: Option<std::net::SocketAddr>,
    /// Where received files land.
    pub download_dir: std::path::PathBuf,
    /// Inbound connections one address may hold (checked before the handshake).
    pub connections_per_ip: usize,
    /// The name viewers see on the LAN (`portico discover`, `portico connect NAME`).
    pub lan_name: String,
    /// Desktop notifications for the owner's requests (when the desktop has a
    /// notification daemon).
    pub notifications: bool,
    /// Folders viewers with `browse` may list and download from.
    pub browse_roots: Vec<std::path::PathBuf>,
    /// The host's own files besides the data dir (its config file): never served, even
    /// when inside a shared folder.
    pub private_files: Vec<std::path::PathBuf>,
}

/// A running host.
pub struct HostHandle {
    /// The host's PeerId.
    pub peer_id: PeerId,
    /// Status updates (addresses, registration, relay).
    pub status: watch::Receiver<HostStatus>,
    /// Access control.
    pub access: Addr<AccessControl>,
    /// Input events dropped from sessions without `control`.
    pub dropped_input: Arc<AtomicU64>,
    /// The owner console's URL (with its token), when on.
    pub console_url: Option<String>,
    /// What viewers watch (the configured area stays open while the host runs).
    pub screens: Screens,
}

/// Starts the host actors in the current actix system.
pub async fn start(identity: Identity, config: HostConfig) -> Result<HostHandle, HostError> {
    let screens = match config.source {
        Some(s) => Screens::fixed(s, config.pacing)?,
        None => Screens::open(config.capture, config.area, config.pacing)?,
    };
    let input = Input::open()
        .map_err(|source| HostError::Thread {
            what: "input",
            source,
        })?
        .start();
    let audit = match &config.data_dir {
        Some(d) => Some(
            crate::audit_log::AuditLog::open(&d.join(portico_core::data_dir::AUDIT))
                .and_then(|log| {
                    crate::audit_log::AuditWriter::spawn(log, crate::audit_log::WRITER_QUEUE)
                })
                .map_err(HostError::AuditLog)?,
        ),
        None => None,
    };
    let access = AccessControl::new(
        identity.peer_id(),
        config.settings,
        config.acl,
        config.owner_timeout,
        audit,
    );
    let access = match &config.data_dir {
        Some(d) => access.remembering(d.join(portico_core::data_dir::TICKETS))?,
        None => access,
    }
    .start();
    if let Some(d) = &config.data_dir {
        let managed = ManagedAcl::read(d)?;
        if !managed.acl.is_empty() {
            access.do_send(crate::access::SetManagedAcl(managed.acl));
        }
    }
    let peers: crate::network::PeerAddrs = Default::default();

    let mut swarm = build_swarm(
        &identity,
        PeerOptions {
            inbound_per_ip: config.connections_per_ip,
            name: config.mdns.then(|| config.lan_name.clone()),
            ..PeerOptions::host(config.mdns, config.server.as_ref().map(|s| s.peer))
        },
    )
    .map_err(HostError::Network)?;
    for addr in &ports::free_listen_addrs(&config.listen)? {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| HostError::Listen {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
    }
    let incoming = swarm
        .behaviour()
        .stream
        .new_control()
        .accept(SESSION)
        .map_err(|e| HostError::Network(e.to_string()))?;
    let dropped_input = Arc::new(AtomicU64::new(0));
    match crate::files::sweep_partials(&config.download_dir) {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            removed = n,
            dir = %config.download_dir.display(),
            "removed partial files of transfers a stopped host left unfinished"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot sweep partial files"),
    }
    let deps = SessionDeps {
        identity: identity.clone(),
        agent: format!("portico/{}", env!("CARGO_PKG_VERSION")),
        access: access.clone(),
        screens: screens.clone(),
        input,
        dropped_input: dropped_input.clone(),
        peers: peers.clone(),
        download_dir: config.download_dir.clone(),
        clipboard: crate::clipboard::Clipboard::new().start(),
        resumes: Default::default(),
        roots: Arc::new(crate::browse::Roots::new(
            &config.browse_roots,
            &config
                .data_dir
                .iter()
                .chain(&config.private_files)
                .cloned()
                .collect::<Vec<_>>(),
        )),
    };
    let mut incoming = accept::spawn(incoming).map_err(|e| HostError::Network(e.to_string()))?;
    actix::spawn(async move {
        while let Some((peer, stream)) = incoming.recv().await {
            actix::spawn(session::serve(stream, peer, deps.clone()));
        }
    });
    let (status_tx, mut status) = watch::channel(HostStatus::default());
    Network::new(swarm, config.server, access.clone(), status_tx, peers).start();
    let console = match (config.console, &config.data_dir) {
        (Some(addr), Some(dir)) => Some(crate::console::start(addr, dir, access.clone())?),
        _ => None,
    };
    // Wait for the listeners to come up (port 0 resolves here).
    let ready = tokio::time::timeout(
        Duration::from_secs(10),
        status.wait_for(|s| !s.listen.is_empty()),
    )
    .await
    .map(|r| r.is_ok());
    if ready != Ok(true) {
        return Err(HostError::Listen {
            addr: format!("{:?}", config.listen),
            reason: "no listen address came up".into(),
        });
    }
    if config.notifications {
        let link = console.as_ref().map(|c| c.link.clone());
        crate::notify::spawn(access.clone(), link);
    }
    Ok(HostHandle {
        peer_id: identity.peer_id(),
        status,
        access,
        dropped_input,
        console_url: console.map(|c| c.url),
        screens,
    })
}
