//! Signing in to a server: `portico login|logout|whoami|nodes`.
//!
//! The server's key is pinned on first sign-in (`DATA/servers.toml`, fingerprint shown) and a
//! changed key is refused. Sign-ins live in `DATA/session.toml` (mode 0600), one per server,
//! each bound at its server to this machine's PeerId. Without `--server`, commands use the
//! default server's sign-in (`portico servers default`), else the latest one.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use libp2p::PeerId;
use portico_core::identity::{self, Identity};
use portico_core::wire::signal::*;
use portico_signal_client::client::{server_multiaddr, SignalClient};
use serde::{Deserialize, Serialize};

/// Pinned server keys.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Pins {
    /// The server used when `--server` is not given and nobody is signed in (`portico
    /// servers default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) default: Option<String>,
    /// One per server address.
    #[serde(default, rename = "server")]
    pub(crate) servers: Vec<Pin>,
}

/// One pinned server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Pin {
    /// The address as dialled (multiaddr).
    pub(crate) address: String,
    /// The server's PeerId (its key).
    pub(crate) peer_id: String,
    /// Its fingerprint, for humans.
    pub(crate) fingerprint: String,
}

/// The pinned servers.
pub(crate) fn pins(data: &Path) -> anyhow::Result<Pins> {
    read_toml(&pins_path(data))
}

/// Replaces the pinned servers.
pub(crate) fn write_pins(data: &Path, pins: &Pins) -> anyhow::Result<()> {
    write_toml(&pins_path(data), pins)
}

/// The saved sign-in.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Session {
    /// Server address (multiaddr).
    pub(crate) server: String,
    /// Server PeerId (pinned).
    pub(crate) server_peer: String,
    /// Server display name.
    pub(crate) server_name: String,
    /// Account.
    pub(crate) user: String,
    /// Groups at sign-in.
    pub(crate) groups: Vec<String>,
    /// The account may only connect as a server user.
    pub(crate) force_server_security: bool,
    /// Session token (hex).
    pub(crate) token: String,
    /// Expiry (Unix seconds).
    pub(crate) expires_at: u64,
}

fn pins_path(data: &Path) -> PathBuf {
    data.join(portico_core::data_dir::SERVERS)
}

fn session_path(data: &Path) -> PathBuf {
    data.join(portico_core::data_dir::SESSION)
}

/// Reads a TOML file of ours; the default when it does not exist.
pub(crate) fn read_toml<T: for<'de> Deserialize<'de> + Default>(path: &Path) -> anyhow::Result<T> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text)
            .with_context(|| format!("{} is invalid; fix or remove it", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Replaces a TOML file of ours atomically, mode 0600.
pub(crate) fn write_toml<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let text = toml::to_string(value)?;
    identity::replace_private(path, text.as_bytes())?;
    Ok(())
}

/// The sign-ins, one per server (an older single-session file is read too).
#[derive(Debug, Default, Serialize, Deserialize)]
struct Sessions {
    /// In the order signed in.
    #[serde(default, rename = "session")]
    sessions: Vec<Session>,
}

/// Every saved sign-in.
pub(crate) fn load_sessions(data: &Path) -> anyhow::Result<Vec<Session>> {
    let path = session_path(data);
    if !path.exists() {
        return Ok(Vec::new());
    }
    identity::check_private(&path)?;
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let bad = || {
        format!(
            "{} is invalid; run `portico logout` and sign in again",
            path.display()
        )
    };
    let many: Sessions = toml::from_str(&text).with_context(bad)?;
    if !many.sessions.is_empty() {
        return Ok(many.sessions);
    }
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    Ok(vec![toml::from_str::<Session>(&text).with_context(bad)?])
}

fn save_sessions(data: &Path, sessions: Vec<Session>) -> anyhow::Result<()> {
    if sessions.is_empty() {
        return match std::fs::remove_file(session_path(data)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).context("removing session.toml")
            }
            _ => Ok(()),
        };
    }
    write_toml(&session_path(data), &Sessions { sessions })
}

/// The sign-in to use when no server is named: the default server's, else the latest.
pub(crate) fn load_session(data: &Path) -> anyhow::Result<Option<Session>> {
    let mut all = load_sessions(data)?;
    let default = pins(data)?.default;
    if let Some(d) = default {
        if let Some(i) = all.iter().position(|s| s.server == d) {
            return Ok(Some(all.swap_remove(i)));
        }
    }
    Ok(all.pop())
}

/// The sign-in at `server` (HOST[:PORT] or multiaddr), if any.
pub(crate) fn session_for(data: &Path, server: &str) -> anyhow::Result<Option<Session>> {
    let key = pin_key(server)?;
    Ok(load_sessions(data)?.into_iter().find(|s| s.server == key))
}

/// The sign-in `--server` names, or the one to use without it.
pub(crate) fn pick_session(data: &Path, server: Option<&str>) -> anyhow::Result<Option<Session>> {
    match server {
        Some(s) => session_for(data, s),
        None => load_session(data),
    }
}

fn pinned(data: &Path, address: &str) -> anyhow::Result<Option<PeerId>> {
    let pins: Pins = read_toml(&pins_path(data))?;
    pins.servers
        .iter()
        .find(|p| p.address == address)
        .map(|p| {
            p.peer_id
                .parse()
                .with_context(|| format!("bad pinned PeerId in {}", pins_path(data).display()))
        })
        .transpose()
}

fn server_fingerprint(peer: &PeerId) -> String {
    identity::peer_fingerprint(peer).unwrap_or_else(|| "(not an ed25519 key)".into())
}

/// The address a server is pinned under: its dialable multiaddr without `/p2p/`.
pub(crate) fn pin_key(server: &str) -> anyhow::Result<String> {
    let ma = server_multiaddr(server)?;
    Ok(ma
        .into_iter()
        .filter(|p| !matches!(p, libp2p::multiaddr::Protocol::P2p(_)))
        .collect::<libp2p::Multiaddr>()
        .to_string())
}

/// Connects to a server, refusing a key other than the pinned one; pins on first contact.
pub(crate) async fn connect(
    data: &Path,
    identity: &Identity,
    server: &str,
) -> anyhow::Result<(SignalClient, String)> {
    let key = pin_key(server)?;
    let addr: libp2p::Multiaddr = key.parse()?;
    let expected = pinned(data, &key)?;
    let client = SignalClient::connect(identity, addr, expected).await?;
    if expected.is_none() {
        let peer = client.server_peer();
        pin_server(data, &key, &peer)?;
        println!(
            "Pinned the server's key on first contact: fingerprint {}",
            server_fingerprint(&peer)
        );
        println!("(compare it with `portico-signal id` on the server)");
    }
    Ok((client, key))
}

/// Pins `peer` as the key of the server at `server` (as given: HOST[:PORT] or multiaddr);
/// refuses to replace a different pin.
pub(crate) fn pin_server(data: &Path, server: &str, peer: &PeerId) -> anyhow::Result<()> {
    let key = pin_key(server)?;
    let mut pins: Pins = read_toml(&pins_path(data))?;
    if let Some(p) = pins.servers.iter().find(|p| p.address == key) {
        if p.peer_id != peer.to_string() {
            bail!("{key} is pinned to another server key ({}); refusing to replace it. Remove it with `portico logout --forget-server` if the server really changed", p.fingerprint);
        }
        return Ok(());
    }
    pins.servers.push(Pin {
        address: key,
        peer_id: peer.to_string(),
        fingerprint: server_fingerprint(peer),
    });
    write_toml(&pins_path(data), &pins)
}

fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    Ok(portico_signal_client::password::read(from_stdin, false)?)
}

fn server_error(e: &SignalError) -> anyhow::Error {
    match e.code {
        ErrorCode::RateLimited => anyhow::anyhow!(
            "{} (the server is slowing down repeated attempts)",
            e.message
        ),
        _ => anyhow::anyhow!("{}", e.message),
    }
}

/// `portico login`.
pub(crate) async fn login(
    data: &Path,
    identity: &Identity,
    server: &str,
    user: &str,
    password_stdin: bool,
) -> anyhow::Result<()> {
    let password = read_password(password_stdin)?;
    let (client, address) = connect(data, identity, server).await?;
    let reply = client
        .request(SignalRequest::Login(Login {
            user: user.to_string(),
            password,
        }))
        .await?;
    let l = match reply {
        SignalResponse::LoggedIn(l) => l,
        SignalResponse::Error(e) => return Err(server_error(&e)),
        other => bail!("unexpected answer from the server: {other:?}"),
    };
    let session = Session {
        server: address,
        server_peer: client.server_peer().to_string(),
        server_name: l.server_name.clone(),
        user: l.user.clone(),
        groups: l.groups.clone(),
        force_server_security: l.force_server_security,
        token: hex::encode(&l.session.0),
        expires_at: l.expires_at,
    };
    let mut all = load_sessions(data)?;
    all.retain(|s| s.server != session.server);
    all.push(session);
    save_sessions(data, all)?;
    println!(
        "Signed in to {} as {}{}",
        l.server_name,
        l.user,
        groups_text(&l.groups)
    );
    if l.force_server_security {
        println!("This account connects only as a server user (custom server security).");
    }
    Ok(())
}

fn groups_text(groups: &[String]) -> String {
    if groups.is_empty() {
        String::new()
    } else {
        format!(" (groups: {})", groups.join(", "))
    }
}

/// The sign-in `server` names (or the one to use without it), or a clear error.
pub(crate) fn require_session(data: &Path, server: Option<&str>) -> anyhow::Result<Session> {
    pick_session(data, server)?.context(match server {
        Some(_) => {
            "not signed in at that server; run `portico login --server HOST --user NAME` first"
        }
        None => "not signed in; run `portico login --server HOST --user NAME` first",
    })
}

/// Connects with the saved session's pinned server.
pub(crate) async fn connect_session(
    identity: &Identity,
    s: &Session,
) -> anyhow::Result<(SignalClient, SessionToken)> {
    let peer: PeerId = s
        .server_peer
        .parse()
        .context("bad server PeerId in session.toml")?;
    let client = SignalClient::connect(
        identity,
        s.server
            .parse()
            .context("bad server address in session.toml")?,
        Some(peer),
    )
    .await?;
    let token = SessionToken(hex::decode(&s.token).context("bad token in session.toml")?);
    Ok((client, token))
}

/// `portico whoami`: every sign-in, as each server sees it.
pub(crate) async fn whoami(data: &Path, identity: &Identity) -> anyhow::Result<()> {
    let all = load_sessions(data)?;
    if all.is_empty() {
        bail!("not signed in; run `portico login --server HOST --user NAME` first");
    }
    for s in all {
        let (client, token) = connect_session(identity, &s).await?;
        match client
            .request(SignalRequest::WhoAmI(WhoAmI { session: token }))
            .await?
        {
            SignalResponse::LoggedIn(l) => {
                println!("{} at {}{}", l.user, l.server_name, groups_text(&l.groups));
                println!(
                    "server: {} ({})",
                    s.server,
                    server_fingerprint(&client.server_peer())
                );
            }
            SignalResponse::Error(e) => {
                println!("{} at {}: {}", s.user, s.server, server_error(&e))
            }
            other => bail!("unexpected answer from the server: {other:?}"),
        }
    }
    Ok(())
}

/// `portico logout`.
pub(crate) async fn logout(
    data: &Path,
    identity: &Identity,
    server: Option<&str>,
    forget_server: bool,
) -> anyhow::Result<()> {
    let all = load_sessions(data)?;
    let s = match server {
        Some(srv) => {
            let key = pin_key(srv)?;
            match all.iter().find(|s| s.server == key) {
                Some(s) => s.clone(),
                None => bail!("not signed in at {key} (`portico whoami` lists the sign-ins)"),
            }
        }
        None => match all.as_slice() {
            [] => {
                println!("not signed in");
                return Ok(());
            }
            [one] => one.clone(),
            several => bail!(
                "signed in at several servers ({}): give --server",
                several
                    .iter()
                    .map(|s| s.server.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        },
    };
    match connect_session(identity, &s).await {
        Ok((client, token)) => match client
            .request(SignalRequest::Logout(Logout { session: token }))
            .await?
        {
            SignalResponse::Ack(_) => println!("Signed out of {}", s.server_name),
            SignalResponse::Error(e) => println!(
                "The server says: {} (removing the local sign-in anyway)",
                e.message
            ),
            other => bail!("unexpected answer from the server: {other:?}"),
        },
        Err(e) => println!("Could not reach the server ({e:#}); removed the local sign-in only"),
    }
    save_sessions(
        data,
        all.into_iter().filter(|x| x.server != s.server).collect(),
    )?;
    if forget_server {
        let mut pins: Pins = read_toml(&pins_path(data))?;
        pins.servers.retain(|p| p.address != s.server);
        write_toml(&pins_path(data), &pins)?;
        println!("Forgot the pinned key of {}", s.server);
    }
    Ok(())
}

/// `portico nodes`.
/// The node tree under `path` at the signed-in server.
pub(crate) async fn list_nodes(
    identity: &Identity,
    s: &Session,
    path: &str,
) -> anyhow::Result<Vec<NodeEntry>> {
    let (client, token) = connect_session(identity, s).await?;
    match client
        .request(SignalRequest::ListNodes(ListNodes {
            session: token,
            path: path.to_string(),
        }))
        .await?
    {
        SignalResponse::Nodes(n) => Ok(n.entries),
        SignalResponse::Error(e) => Err(server_error(&e)),
        other => bail!("unexpected answer from the server: {other:?}"),
    }
}

pub(crate) async fn nodes(
    data: &Path,
    identity: &Identity,
    server: Option<&str>,
    path: &str,
) -> anyhow::Result<()> {
    let s = require_session(data, server)?;
    {
        {
            for e in list_nodes(identity, &s, path).await? {
                let depth = e.path.matches('/').count().saturating_sub(1);
                let name = e.path.rsplit('/').next().unwrap_or(&e.path);
                let indent = "  ".repeat(depth);
                if e.is_host {
                    let id = e.internet_id.map(|i| i.to_string()).unwrap_or_default();
                    let state = if e.online { "online" } else { "offline" };
                    let mut flags = Vec::new();
                    if e.allow_guests {
                        flags.push("guests");
                    }
                    if e.allow_visitors {
                        flags.push("visitors");
                    }
                    println!(
                        "{indent}{name}  [{id}]  {state}{}",
                        if flags.is_empty() {
                            String::new()
                        } else {
                            format!("  allows {}", flags.join(", "))
                        }
                    );
                } else {
                    println!("{indent}{name}/");
                }
            }
            Ok(())
        }
    }
}
