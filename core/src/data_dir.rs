//! Every file in a Portico data directory, named in one place. The host, the viewer, the CLI
//! and the server all find their files through these functions, so a name cannot drift
//! between the writer and a reader (the CLI reads what the running host writes).
//!
//! | file | written by | holds |
//! |---|---|---|
//! | `identity.key` | first use (host, viewer, server) | the machine's ed25519 key, 0600 |
//! | `acl.toml` | `portico acl`, `--provision` | the managed part of the host's ACL |
//! | `console.json` | the running host | the owner console's address and token, 0600 |
//! | `audit.jsonl` | the running host | the host's hash-chained audit log, 0600 |
//! | `tickets.json` | the running host | ticket nonces that counted, account changes, 0600 |
//! | `registration.toml` | the host | server, PeerId and Internet-ID of its registration |
//! | `known_hosts.toml` | the viewer | host keys pinned on first use |
//! | `servers.toml` | the viewer | server keys pinned at sign-in |
//! | `session.toml` | `portico login` | the viewer's sign-in, 0600 |
//! | `db/` | the server | the sled database |
//! | `admin.sock` | the running server | the admin socket, 0600 |

use std::path::PathBuf;

use crate::identity::IdentityError;

/// The machine's key.
pub const IDENTITY_KEY: &str = "identity.key";
/// The managed ACL.
pub const ACL: &str = "acl.toml";
/// The owner console's address and token.
pub const CONSOLE: &str = "console.json";
/// The host's audit log.
pub const AUDIT: &str = "audit.jsonl";
/// The host's ticket memory: nonces of tickets that counted, account changes.
pub const TICKETS: &str = "tickets.json";
/// The host's registration record.
pub const REGISTRATION: &str = "registration.toml";
/// Host keys the viewer pinned.
pub const KNOWN_HOSTS: &str = "known_hosts.toml";
/// Server keys the viewer pinned.
pub const SERVERS: &str = "servers.toml";
/// The viewer's sign-in.
pub const SESSION: &str = "session.toml";
/// The viewer's address book.
pub const BOOK: &str = "book.toml";
/// The server's database directory.
pub const SERVER_DB: &str = "db";
/// The running server's admin socket.
pub const ADMIN_SOCKET: &str = "admin.sock";

/// The data directory: `explicit` (from `--data` or its environment variable) when given,
/// else `<platform data dir>/<app>` (`~/.local/share/portico` on Linux).
pub fn resolve(explicit: Option<PathBuf>, app: &str) -> Result<PathBuf, IdentityError> {
    match explicit {
        Some(dir) => Ok(dir),
        None => dirs::data_dir()
            .map(|d| d.join(app))
            .ok_or_else(|| IdentityError::CreateDir {
                path: PathBuf::from(app),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "this platform has no user data directory (is HOME set?)",
                ),
            }),
    }
}

/// Where received files land unless configured: `~/Downloads/Portico` (or the platform's
/// download folder).
pub fn default_downloads() -> Option<PathBuf> {
    dirs::download_dir()
        .or_else(|| dirs::home_dir().map(|h| h.join("Downloads")))
        .map(|d| d.join("Portico"))
}
