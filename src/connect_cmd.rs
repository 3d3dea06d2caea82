//! `portico connect TARGET`: see and control another machine.
//!
//! TARGET is `IP[:PORT]`, `HOST:PORT` or a multiaddr (direct / LAN), an Internet-ID
//! (`123 456 789`, looked up at the server), or a node path (`/Sales/pc-7`) once signed in.
//! Host keys are pinned on first use (`DATA/known_hosts.toml`); a changed key is refused.

mod notices;
mod picker;

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, ValueEnum};
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use portico_core::identity::{self, Identity};
use portico_core::policy::{AccessKind, RequestedMode};
use portico_core::ticket::TicketKind;
use portico_core::wire::handshake::AccessRequest;
use portico_core::wire::signal::*;
use portico_core::InternetId;
use portico_viewer::{self as viewer, Dial, Headless};
use serde::{Deserialize, Serialize};

use crate::signin;

/// How to ask for access.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum As {
    /// Signed in: a server user if the host grants it (Custom Server Security); else as a
    /// trusted key.
    Auto,
    /// As a trusted viewer key listed in the host's ACL.
    Peer,
    /// As a server user (needs `portico login`).
    User,
    /// As a visitor (needs `portico login`; the owner must accept).
    Visitor,
    /// As a guest (no account; the owner must accept).
    Guest,
}

/// Arguments of `portico connect`.
#[derive(Debug, Args)]
pub(crate) struct ConnectArgs {
    /// IP[:PORT], HOST:PORT, multiaddr, Internet-ID, node path, address-book name or LAN
    /// name. Without it the window offers a list: the book, the LAN, the server's nodes.
    target: Option<String>,
    /// `portico files`: list or download instead of watching.
    #[arg(skip)]
    pub(crate) browse: Option<viewer::fetch::BrowseJob>,
    /// Server for Internet-ID lookups (default: the signed-in server).
    #[arg(long, value_name = "HOST[:PORT]")]
    server: Option<String>,
    /// How to ask for access.
    #[arg(long = "as", value_enum, default_value = "auto")]
    as_: As,
    /// Display name shown to the owner (guests).
    #[arg(long)]
    name: Option<String>,
    /// Message to the owner.
    #[arg(long, default_value = "")]
    message: String,
    /// Ask for view-only access.
    #[arg(long)]
    view_only: bool,
    /// No window: record frames, write a snapshot and stats (automation, tests).
    #[arg(long)]
    pub(crate) headless: bool,
    /// Stop after N video frames (headless).
    #[arg(long, value_name = "N")]
    frames: Option<u64>,
    /// Stop after SECS seconds (headless).
    #[arg(long, value_name = "SECS")]
    duration: Option<f64>,
    /// Write the last picture as PNG (headless), with the remote pointer drawn in.
    #[arg(long, value_name = "FILE")]
    snapshot: Option<PathBuf>,
    /// Leave the remote pointer out of the snapshot and the window.
    #[arg(long)]
    no_cursor: bool,
    /// Show the host's monitor N (0 = primary; the session lists them). The choice is this
    /// viewer's own: others watching the same host keep what they watch.
    #[arg(long, value_name = "N")]
    monitor: Option<u8>,
    /// Write per-frame stats and a summary as JSON (headless).
    #[arg(long, value_name = "FILE")]
    stats: Option<PathBuf>,
    /// Play input events from a JSON-lines file (see docs/user-guide.md).
    #[arg(long, value_name = "FILE")]
    input_script: Option<PathBuf>,
    /// Send scripted input even when granted view-only (to check the host drops it).
    #[arg(long)]
    force_input: bool,
    /// Target video bitrate in kbit/s (the host re-creates its encoder with a keyframe).
    #[arg(long, value_name = "KBPS")]
    bitrate: Option<u32>,
    /// Send this file to the host (needs the `files` permission; guests and visitors wait for
    /// the owner to allow it). Ends the session once the file landed unless --frames/--duration.
    #[arg(long, value_name = "FILE")]
    send: Option<PathBuf>,
    /// Put this text on the host's clipboard (needs `clipboard`; guests and visitors wait for
    /// the owner). Text the host copies arrives too, for sessions that may use the clipboard.
    #[arg(long, value_name = "TEXT")]
    clipboard: Option<String>,
    /// Dial only relayed addresses (Internet-ID targets): checks the relay path.
    #[arg(long)]
    relay_only: bool,
}

impl ConnectArgs {
    /// The target (empty until one is given or chosen in the window).
    fn target(&self) -> &str {
        self.target.as_deref().unwrap_or_default()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct KnownHosts {
    #[serde(default, rename = "host")]
    hosts: Vec<KnownHost>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct KnownHost {
    /// The target as typed (normalised).
    target: String,
    /// The host's PeerId.
    peer_id: String,
}

fn known_path(data: &Path) -> PathBuf {
    data.join(portico_core::data_dir::KNOWN_HOSTS)
}

fn pinned_host(data: &Path, key: &str) -> anyhow::Result<Option<PeerId>> {
    signin::read_toml::<KnownHosts>(&known_path(data))?
        .hosts
        .iter()
        .find(|h| h.target == key)
        .map(|h| h.peer_id.parse().context("bad PeerId in known_hosts.toml"))
        .transpose()
}

fn pin_host(data: &Path, key: &str, peer: &PeerId) -> anyhow::Result<()> {
    let mut k = signin::read_toml::<KnownHosts>(&known_path(data))?;
    k.hosts.push(KnownHost {
        target: key.to_string(),
        peer_id: peer.to_string(),
    });
    signin::write_toml(&known_path(data), &k)?;
    let fp = identity::peer_fingerprint(peer).unwrap_or_default();
    eprintln!("pinned the host's key on first use: fingerprint {fp}");
    Ok(())
}

fn direct_multiaddrs(target: &str) -> Option<Vec<Multiaddr>> {
    if target.starts_with('/') {
        return target.parse().ok().map(|a| vec![a]);
    }
    let default = portico_actors::network::DEFAULT_PORT;
    if let Ok(sa) = target.parse::<std::net::SocketAddr>() {
        let ip = Multiaddr::from(sa.ip());
        return Some(vec![
            ip.clone().with(Protocol::Tcp(sa.port())),
            ip.with(Protocol::Udp(sa.port())).with(Protocol::QuicV1),
        ]);
    }
    if let Ok(ip) = target.parse::<std::net::IpAddr>() {
        let ip = Multiaddr::from(ip);
        return Some(vec![
            ip.clone().with(Protocol::Tcp(default)),
            ip.with(Protocol::Udp(default)).with(Protocol::QuicV1),
        ]);
    }
    let (host, port) = target.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    Some(vec![Multiaddr::empty()
        .with(Protocol::Dns(host.to_string().into()))
        .with(Protocol::Tcp(port))])
}

fn peer_in(addrs: &[Multiaddr]) -> Option<PeerId> {
    addrs.iter().find_map(|a| {
        a.iter()
            .filter_map(|p| {
                if let Protocol::P2p(p) = p {
                    Some(p)
                } else {
                    None
                }
            })
            .last()
    })
}

struct Resolved {
    dial: Dial,
    pin_key: String,
}

async fn resolve(
    data: &Path,
    identity: &Identity,
    args: &ConnectArgs,
    session: Option<&signin::Session>,
) -> anyhow::Result<Resolved> {
    let target = args.target();
    let looks_like_id = target
        .chars()
        .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
        && target.chars().any(|c| c.is_ascii_digit());
    if looks_like_id {
        let id: InternetId = target.parse()?;
        let found = lookup(data, identity, args, session, LookupTarget::Id(id)).await?;
        return found_to_dial(found, format!("id:{}", id.as_u32()));
    }
    if let Some(addrs) = direct_multiaddrs(target) {
        let key = addrs.first().map(|a| a.to_string()).unwrap_or_default();
        return Ok(Resolved {
            dial: Dial {
                stay_relayed: false,
                peer: peer_in(&addrs),
                addrs,
            },
            pin_key: key,
        });
    }
    if target.starts_with('/') {
        let found = lookup(
            data,
            identity,
            args,
            session,
            LookupTarget::Path(target.to_string()),
        )
        .await?;
        return found_to_dial(found, format!("path:{target}"));
    }
    if is_lan_name(target) {
        return lan_host(identity, target).await;
    }
    bail!("cannot understand target {:?}: give IP[:PORT], HOST:PORT, a multiaddr, an Internet-ID (123 456 789), a node path (/Folder/host) or the name of a host on the LAN (portico discover)", target)
}

/// How long `connect NAME` listens for the LAN's answers.
const LAN_WAIT: Duration = Duration::from_secs(3);

/// A name a LAN host could have (letters, digits, `-`, `_`, `.`; not an address).
fn is_lan_name(target: &str) -> bool {
    !target.is_empty()
        && target.len() <= 64
        && target
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The host called `name` on the LAN; its key is pinned under `lan:NAME` like any other.
async fn lan_host(identity: &Identity, name: &str) -> anyhow::Result<Resolved> {
    let found = portico_viewer::discover::discover(identity, LAN_WAIT).await?;
    let mut named: Vec<_> = found
        .into_iter()
        .filter(|d| d.name.eq_ignore_ascii_case(name))
        .collect();
    match named.len() {
        0 => bail!("no host called {name:?} answered on this LAN within {} s: check the name with `portico discover`, or connect by address", LAN_WAIT.as_secs()),
        1 => {
            let d = named.remove(0);
            eprintln!("found {} on the LAN (key {})", d.name, d.fingerprint);
            Ok(Resolved {
                dial: Dial {
                    stay_relayed: false,
                    addrs: d.addrs,
                    peer: Some(d.peer),
                },
                pin_key: format!("lan:{}", name.to_lowercase()),
            })
        }
        _ => bail!(
            "several hosts on this LAN are called {name:?} (keys {}): connect by address instead",
            named
                .iter()
                .map(|d| d.fingerprint.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// `portico discover`: the LAN's hosts, one per line.
pub(crate) async fn discover(identity: &Identity, wait: f64) -> anyhow::Result<()> {
    if !(wait > 0.0 && wait <= 60.0) {
        bail!("--wait must be between 0 and 60 seconds");
    }
    let found = portico_viewer::discover::discover(identity, Duration::from_secs_f64(wait)).await?;
    if found.is_empty() {
        println!("no Portico host answered on this LAN within {wait} s");
    }
    for d in found {
        let addrs: Vec<String> = d.addrs.iter().map(|a| a.to_string()).collect();
        println!(
            "{}\t{}\t{}\t{}",
            d.name,
            d.fingerprint,
            d.peer,
            addrs.join(" ")
        );
    }
    Ok(())
}

fn found_to_dial(f: Found, key: String) -> anyhow::Result<Resolved> {
    let peer = PeerId::try_from(&f.peer).context("the server returned an invalid PeerId")?;
    if !f.online {
        eprintln!("note: the server has not heard from this host recently; trying anyway");
    }
    let mut addrs: Vec<Multiaddr> = f
        .addrs
        .iter()
        .chain(f.relay_addrs.iter())
        .filter_map(|a| a.parse().ok())
        .collect();
    addrs.dedup();
    Ok(Resolved {
        dial: Dial {
            stay_relayed: false,
            addrs,
            peer: Some(peer),
        },
        pin_key: key,
    })
}

async fn lookup(
    data: &Path,
    identity: &Identity,
    args: &ConnectArgs,
    session: Option<&signin::Session>,
    target: LookupTarget,
) -> anyhow::Result<Found> {
    let (client, token) = match (&args.server, session) {
        (Some(s), _) => (signin::connect(data, identity, s).await?.0, session.and_then(|s| hex::decode(&s.token).ok()).map(SessionToken)),
        (None, Some(s)) => {
            let (c, t) = signin::connect_session(identity, s).await?;
            (c, Some(t))
        }
        (None, None) => match signin::pins(data)?.default {
            Some(s) => (signin::connect(data, identity, &s).await?.0, None),
            None => bail!("to connect by Internet-ID or node path, give --server HOST, sign in with `portico login`, or set a default server (`portico servers default HOST`)"),
        },
    };
    match client
        .request(SignalRequest::Lookup(Lookup {
            target,
            session: token,
        }))
        .await?
    {
        SignalResponse::Found(f) => Ok(f),
        SignalResponse::Error(e) if e.code == ErrorCode::NotFound => {
            bail!("no host with that Internet-ID or path at this server")
        }
        SignalResponse::Error(e) => bail!("{}", e.message),
        other => bail!("unexpected answer from the server: {other:?}"),
    }
}

async fn ticket(
    identity: &Identity,
    session: &signin::Session,
    host: PeerId,
    kind: TicketKind,
) -> anyhow::Result<portico_core::ticket::SignedTicket> {
    let (client, token) = signin::connect_session(identity, session).await?;
    match client
        .request(SignalRequest::IssueTicket(IssueTicket {
            session: token,
            host: host.into(),
            kind,
        }))
        .await?
    {
        SignalResponse::Ticket(t) => Ok(t),
        SignalResponse::Error(e) => bail!("the server refused a ticket: {}", e.message),
        other => bail!("unexpected answer from the server: {other:?}"),
    }
}

/// An address-book entry named like the target stands for its target, server and way of
/// asking (what the command line gives explicitly wins).
fn from_book(data: &Path, args: &mut ConnectArgs) -> anyhow::Result<()> {
    let Some(entry) = crate::book_cmd::find(data, args.target())? else {
        return Ok(());
    };
    args.target = Some(entry.target);
    if args.server.is_none() {
        args.server = entry.server;
    }
    if let (As::Auto, Some(kind)) = (args.as_, entry.as_.as_deref()) {
        args.as_ = <As as clap::ValueEnum>::from_str(kind, true)
            .map_err(|e| anyhow::anyhow!("the book entry's `as = {kind:?}`: {e}"))?;
    }
    Ok(())
}

/// How to ask, from `--as` and whether someone is signed in.
fn access_kind(
    args: &ConnectArgs,
    session: &Option<signin::Session>,
) -> anyhow::Result<AccessKind> {
    let kind = match (args.as_, session) {
        (As::Auto, Some(_)) => AccessKind::User,
        (As::Auto, None) | (As::Peer, _) => AccessKind::Peer,
        (As::User, _) => AccessKind::User,
        (As::Visitor, _) => AccessKind::Visitor,
        (As::Guest, _) => AccessKind::Guest,
    };
    if let Some(s) = session {
        if s.force_server_security && kind != AccessKind::User {
            bail!("account {} may only connect as a server user (custom server security); drop --as {:?} or sign out first", s.user, args.as_);
        }
    }
    Ok(kind)
}

pub(crate) fn run(data: &Path, identity: Identity, mut args: ConnectArgs) -> anyhow::Result<()> {
    if args.target.is_some() {
        from_book(data, &mut args)?;
    } else if args.headless {
        bail!("give a TARGET (address, Internet-ID, node path, book or LAN name), or leave out --headless to choose one from a list");
    }
    let session = signin::pick_session(data, args.server.as_deref())?;
    if args.headless {
        let kind = access_kind(&args, &session)?;
        return crate::runtime()?.block_on(connect(
            data.to_path_buf(),
            identity,
            args,
            session,
            kind,
            None,
        ));
    }
    // The window owns the main thread; the session runs on another.
    let viewer::window::WindowParts {
        event_loop: el,
        link,
        input,
        shared,
        files,
    } = viewer::window::event_loop().map_err(|e| anyhow::anyhow!(e))?;
    let proxy = link.notify.clone();
    let (choose, chosen) = match args.target {
        Some(_) => (None, None),
        None => {
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            (Some(tx), Some(rx))
        }
    };
    let title = match &args.target {
        Some(t) => format!("Portico — connecting to {t}…"),
        None => "Portico — choose a host".to_string(),
    };
    let data = data.to_path_buf();
    let worker = std::thread::spawn(move || {
        let session_run = async move {
            let mut session = session;
            if let Some(mut chosen) = chosen {
                picker::offer(&data, &identity, &link.notify);
                // The window closed without a choice: nothing to do.
                let Some(target) = chosen.recv().await else {
                    return Ok(());
                };
                args.target = Some(target);
                from_book(&data, &mut args)?;
                session = signin::pick_session(&data, args.server.as_deref())?;
            }
            let kind = access_kind(&args, &session)?;
            connect(data, identity, args, session, kind, Some(link)).await
        };
        let result = crate::runtime().and_then(|rt| rt.block_on(session_run));
        let reason = match &result {
            Ok(()) => "the session ended".to_string(),
            Err(e) => format!("{e:#}"),
        };
        if proxy
            .send_event(viewer::window::UiEvent::Ended(reason))
            .is_err()
        {
            tracing::debug!("the window is already closed");
        }
        result
    });
    match viewer::window::run(el, input, files, shared, title, choose)
        .map_err(|e| anyhow::anyhow!(e))?
    {
        // The session ended: its result is the command's.
        Some(_) => worker
            .join()
            .map_err(|_| anyhow::anyhow!("the session thread panicked"))?,
        // The user closed the window: leaving ends the session (the host sees the stream close).
        None => Ok(()),
    }
}

async fn connect(
    data: PathBuf,
    identity: Identity,
    args: ConnectArgs,
    session: Option<signin::Session>,
    kind: AccessKind,
    ui: Option<viewer::window::UiLink>,
) -> anyhow::Result<()> {
    let data = data.as_path();
    {
        let mut resolved = resolve(data, &identity, &args, session.as_ref()).await?;
        if args.relay_only {
            resolved.dial.stay_relayed = true;
            resolved
                .dial
                .addrs
                .retain(|a| a.iter().any(|p| matches!(p, Protocol::P2pCircuit)));
            if resolved.dial.addrs.is_empty() {
                bail!("--relay-only: the server knows no relayed address for this host (is it registered with a relay reservation?)");
            }
        }
        let pinned = pinned_host(data, &resolved.pin_key)?;
        match (pinned, resolved.dial.peer) {
            (Some(p), Some(q)) if p != q => bail!("the host's key changed: {} was pinned for {}, but {} answers. Refusing to connect (remove it from known_hosts.toml only if you know why it changed)", p, resolved.pin_key, q),
            (Some(p), None) => resolved.dial.peer = Some(p),
            _ => {}
        }
        let request =
            access_request(&identity, &args, session.as_ref(), kind, resolved.dial.peer).await?;
        let opts = Headless {
            browse: args.browse.clone(),
            frames: args.frames,
            duration: args.duration.map(Duration::from_secs_f64),
            snapshot: args.snapshot.clone(),
            stats: args.stats.clone(),
            input_script: args.input_script.clone(),
            force_input: args.force_input,
            bitrate: args.bitrate.map(|k| k.saturating_mul(1000)),
            send_file: args.send.clone(),
            clipboard: args.clipboard.clone(),
            notify: Some(notices::printer()),
            no_cursor: args.no_cursor,
            monitor: args.monitor,
        };
        let was_pinned = pinned.is_some();
        let report = viewer::run(&identity, resolved.dial.clone(), request, opts, ui).await?;
        if !was_pinned {
            pin_host(data, &resolved.pin_key, &report.host.parse()?)?;
        }
        print_report(&report, &args);
        Ok(())
    }
}

/// The access request: kind, name, message, mode, and a fresh ticket for users and visitors.
async fn access_request(
    identity: &Identity,
    args: &ConnectArgs,
    session: Option<&signin::Session>,
    kind: AccessKind,
    host: Option<libp2p::PeerId>,
) -> anyhow::Result<AccessRequest> {
    let mut tickets = Vec::new();
    if matches!(kind, AccessKind::User | AccessKind::Visitor) {
        let s = session
            .context("sign in first with `portico login` to connect as a server user or visitor")?;
        let host =
            host.context("the host's key is unknown; connect once by Internet-ID or pin it first")?;
        let tk = if kind == AccessKind::User {
            TicketKind::User
        } else {
            TicketKind::Visitor
        };
        tickets.push(ticket(identity, s, host, tk).await?);
    }
    Ok(AccessRequest {
        kind,
        display_name: args
            .name
            .clone()
            .or_else(|| session.map(|s| s.user.clone()))
            .unwrap_or_default(),
        message: args.message.clone(),
        tickets,
        mode: if args.view_only {
            RequestedMode::ViewOnly
        } else {
            RequestedMode::Interactive
        },
        agent: format!("portico/{}", env!("CARGO_PKG_VERSION")),
    })
}

fn print_report(report: &viewer::Report, args: &ConnectArgs) {
    if args.browse.is_some() {
        // `portico files`: stdout is the listing (or nothing); the outcome went to stderr.
        return;
    }
    println!(
        "path {}  frames {}  fps {:.1}  kbit/s {:.0}  first frame {} ms  permissions {}",
        report.path,
        report.frames,
        report.fps,
        report.kbps,
        report
            .connect_to_first_frame_ms
            .map(|m| format!("{m:.0}"))
            .unwrap_or_else(|| "-".into()),
        report.permissions
    );
    if let Some(ms) = report.direct_upgrade_ms {
        println!("hole punching (DCUtR) reached the host directly after {ms:.0} ms");
    }
    if let Some(p) = &args.snapshot {
        println!("snapshot {}", p.display());
    }
}
