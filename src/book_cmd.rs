//! The viewer's address book (`portico book`, `DATA/book.toml`) and its servers
//! (`portico servers`, the pinned keys in `DATA/servers.toml`).
//!
//! Both files are written atomically (a temporary file, fsync, rename): a crash mid-write
//! leaves the old file. A book entry names a target (any form `portico connect` takes), and
//! optionally the server to look it up at and how to ask; `portico connect NAME` uses it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::Subcommand;
use portico_core::identity::Identity;
use serde::{Deserialize, Serialize};

use crate::signin::{self, read_toml, write_toml};

/// `portico book …`.
#[derive(Debug, Subcommand)]
pub(crate) enum BookCmd {
    /// Add an entry: NAME for TARGET (any form `portico connect` takes).
    Add {
        /// The entry's name (`portico connect NAME`).
        name: String,
        /// IP[:PORT], HOST:PORT, multiaddr, Internet-ID, node path or LAN name.
        target: String,
        /// The server to look TARGET up at (Internet-IDs and node paths).
        #[arg(long, value_name = "HOST[:PORT]")]
        server: Option<String>,
        /// How to ask (auto, peer, user, visitor, guest).
        #[arg(long = "as", value_name = "KIND")]
        as_: Option<String>,
    },
    /// List the entries.
    List,
    /// Remove an entry.
    Remove {
        /// The entry's name.
        name: String,
    },
}

/// `portico servers …`.
#[derive(Debug, Subcommand)]
pub(crate) enum ServersCmd {
    /// Contact a server and pin its key (shows the fingerprint to compare).
    Add {
        /// HOST[:PORT] (default port 5655) or a multiaddr.
        server: String,
    },
    /// The pinned servers: address, key fingerprint, default, who is signed in.
    List,
    /// Forget a server's pinned key (and its default mark).
    Remove {
        /// The address as listed.
        server: String,
    },
    /// Use this server for Internet-IDs and node paths when `--server` is not given and
    /// nobody is signed in.
    Default {
        /// The address as listed (it must be pinned: `portico servers add` first).
        server: String,
    },
}

/// The address book.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct Book {
    /// The entries, in the order added.
    #[serde(default, rename = "entry")]
    pub(crate) entries: Vec<Entry>,
}

/// One address-book entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    /// What the user calls it.
    pub(crate) name: String,
    /// What `portico connect` dials.
    pub(crate) target: String,
    /// Where to look the target up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) server: Option<String>,
    /// How to ask.
    #[serde(default, rename = "as", skip_serializing_if = "Option::is_none")]
    pub(crate) as_: Option<String>,
}

fn book_path(data: &Path) -> PathBuf {
    data.join(portico_core::data_dir::BOOK)
}

/// The book (empty when there is none yet).
pub(crate) fn load(data: &Path) -> anyhow::Result<Book> {
    read_toml(&book_path(data))
}

/// The entry called `name`, if any.
pub(crate) fn find(data: &Path, name: &str) -> anyhow::Result<Option<Entry>> {
    Ok(load(data)?.entries.into_iter().find(|e| e.name == name))
}

/// Runs `portico book …`.
pub(crate) fn book(data: &Path, cmd: BookCmd) -> anyhow::Result<()> {
    let mut book = load(data)?;
    match cmd {
        BookCmd::Add {
            name,
            target,
            server,
            as_,
        } => {
            check_name(&name)?;
            if book.entries.iter().any(|e| e.name == name) {
                bail!("the book already has {name:?}: `portico book remove {name}` first");
            }
            if let Some(kind) = &as_ {
                if !["auto", "peer", "user", "visitor", "guest"].contains(&kind.as_str()) {
                    bail!("--as {kind:?}: give auto, peer, user, visitor or guest");
                }
            }
            book.entries.push(Entry {
                name: name.clone(),
                target,
                server,
                as_,
            });
            std::fs::create_dir_all(data)
                .with_context(|| format!("creating {}", data.display()))?;
            write_toml(&book_path(data), &book)?;
            println!("added {name}: `portico connect {name}`");
        }
        BookCmd::List => {
            if book.entries.is_empty() {
                println!("the address book is empty (`portico book add NAME TARGET`)");
            }
            for e in &book.entries {
                let mut line = format!("{}\t{}", e.name, e.target);
                if let Some(s) = &e.server {
                    line.push_str(&format!("\tserver {s}"));
                }
                if let Some(a) = &e.as_ {
                    line.push_str(&format!("\tas {a}"));
                }
                println!("{line}");
            }
        }
        BookCmd::Remove { name } => {
            let before = book.entries.len();
            book.entries.retain(|e| e.name != name);
            if book.entries.len() == before {
                bail!("the book has no entry {name:?} (`portico book list`)");
            }
            write_toml(&book_path(data), &book)?;
            println!("removed {name}");
        }
    }
    Ok(())
}

/// Names that cannot be mistaken for another kind of target.
fn check_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && !name.starts_with('/')
        && !name
            .chars()
            .all(|c| c.is_ascii_digit() || c == ' ' || c == '-')
        && !name.contains(':')
        && name.chars().all(|c| !c.is_control());
    if !ok {
        bail!("{name:?} cannot be a book name: 1 to 64 characters, not starting with '/', without ':', not only digits (those mean node paths, addresses and Internet-IDs)");
    }
    Ok(())
}

/// Runs `portico servers …`.
pub(crate) async fn servers(
    data: &Path,
    identity: &Identity,
    cmd: ServersCmd,
) -> anyhow::Result<()> {
    match cmd {
        ServersCmd::Add { server } => {
            // Pins on first contact; a changed key is refused.
            let (_client, key) = signin::connect(data, identity, &server).await?;
            println!("{key} is pinned");
        }
        ServersCmd::List => {
            let pins = signin::pins(data)?;
            let sessions = signin::load_sessions(data)?;
            if pins.servers.is_empty() {
                println!("no server pinned (`portico servers add HOST` or `portico login`)");
            }
            for p in &pins.servers {
                let mut line = format!("{}\t{}", p.address, p.fingerprint);
                if pins.default.as_deref() == Some(p.address.as_str()) {
                    line.push_str("\tdefault");
                }
                if let Some(s) = sessions.iter().find(|s| s.server == p.address) {
                    line.push_str(&format!("\tsigned in as {}", s.user));
                }
                println!("{line}");
            }
        }
        ServersCmd::Remove { server } => {
            let key = signin::pin_key(&server)?;
            let mut pins = signin::pins(data)?;
            let before = pins.servers.len();
            pins.servers.retain(|p| p.address != key);
            if pins.servers.len() == before {
                bail!("{key} is not pinned (`portico servers list`)");
            }
            if pins.default.as_deref() == Some(key.as_str()) {
                pins.default = None;
            }
            signin::write_pins(data, &pins)?;
            println!("forgot {key}");
        }
        ServersCmd::Default { server } => {
            let key = signin::pin_key(&server)?;
            let mut pins = signin::pins(data)?;
            if !pins.servers.iter().any(|p| p.address == key) {
                bail!("{key} is not pinned: `portico servers add {server}` first");
            }
            pins.default = Some(key.clone());
            signin::write_pins(data, &pins)?;
            println!("{key} is the default server");
        }
    }
    Ok(())
}
