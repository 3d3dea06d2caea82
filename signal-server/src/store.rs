//! The server's state in sled: one data directory, typed trees, a schema-version key.
//!
//! Values are CBOR. Admin writes call [`Store::flush`] before returning, so a `kill -9`
//! right after an admin command loses nothing; protocol writes (heartbeats, sessions) are
//! flushed by sled's background flusher.

pub mod audit;

pub mod accounts;
pub mod enroll;
pub mod nodes;

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Serialize;

pub use accounts::{Group, LoginSession, User};
pub use enroll::{Enrollment, PendingHost, PendingLimits};
pub use nodes::{HostRecord, Node, NodePath, Placement};

/// Settings key of [`Store::state_version`].
const STATE_VERSION: &[u8] = b"state_version";

/// The schema this build reads and writes.
pub const SCHEMA_VERSION: u32 = 1;

/// Store errors. Variants name what was wrong and, where it helps, what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database is held by a running server (or another admin command).
    #[error("the database in {path} is in use by another process; if a server runs there, its admin socket did not answer: check it is healthy")]
    Locked {
        /// Data directory.
        path: PathBuf,
    },
    /// sled failed.
    #[error("database error: {0}")]
    Db(#[from] sled::Error),
    /// A record does not decode.
    #[error("corrupt record in {tree}: {reason}")]
    Corrupt {
        /// Tree name.
        tree: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The database was written by another schema.
    #[error("database schema {found} is not supported (this build reads {SCHEMA_VERSION})")]
    Schema {
        /// The schema found.
        found: u32,
    },
    /// A user with that name exists.
    #[error("user {0:?} already exists")]
    UserExists(String),
    /// No such user.
    #[error("unknown user {0:?}; `portico-signal user list` shows the users")]
    NoSuchUser(String),
    /// A group with that name exists.
    #[error("group {0:?} already exists")]
    GroupExists(String),
    /// No such group.
    #[error("unknown group {0:?}; `portico-signal group list` shows the groups")]
    NoSuchGroup(String),
    /// The user is (not) in the group.
    #[error("user {user:?} is {} group {group:?}", if *.member { "already in" } else { "not in" })]
    Membership {
        /// User.
        user: String,
        /// Group.
        group: String,
        /// Whether the user is a member.
        member: bool,
    },
    /// A name that cannot be used.
    #[error("invalid name {name:?}: {reason}")]
    BadName {
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A path that cannot be used.
    #[error("invalid node path {path:?}: {reason}")]
    BadPath {
        /// The path.
        path: String,
        /// Why.
        reason: &'static str,
    },
    /// No node at that path.
    #[error("node path not found: {0}; `portico-signal node list` shows the tree")]
    PathNotFound(String),
    /// A node exists at that path.
    #[error("node path already exists: {0}")]
    PathExists(String),
    /// Something under a host node.
    #[error("{0} is a host, not a folder")]
    NotAFolder(String),
    /// Password hashing failed.
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// No Internet-ID left (100 million hosts registered).
    #[error("no free Internet-ID left")]
    IdsExhausted,
    /// An enrollment token that cannot be used.
    #[error("{reason}")]
    Token {
        /// Why.
        reason: &'static str,
    },
    /// The waiting list (or one address's share of it) is full.
    #[error("{} hosts already wait for approval{}; ask the admin to approve or reject them (portico-signal host pending)", .limit, .ip.as_ref().map(|ip| format!(" from {ip}")).unwrap_or_default())]
    PendingFull {
        /// The limit reached.
        limit: usize,
        /// The address, when its share is full.
        ip: Option<String>,
    },
    /// No host with that PeerId waits for approval.
    #[error("no host {0} waits for approval; `portico-signal host pending` lists them")]
    NotPending(String),
}

/// The opened store.
#[derive(Clone)]
pub struct Store {
    /// The sled database (kept for flush and transactions).
    db: sled::Db,
    /// name → [`User`].
    users: sled::Tree,
    /// name → [`Group`].
    groups: sled::Tree,
    /// path → [`Node`] (folders and hosts).
    nodes: sled::Tree,
    /// PeerId (string) → [`HostRecord`].
    hosts: sled::Tree,
    /// Internet-ID (u32 BE) → PeerId (string).
    ids: sled::Tree,
    /// sha256(token) → [`LoginSession`].
    sessions: sled::Tree,
    /// key → CBOR value: global switches.
    settings: sled::Tree,
    /// sha256(token) → [`Enrollment`].
    enrollments: sled::Tree,
    /// PeerId (string) → [`PendingHost`]: hosts waiting for approval.
    pending: sled::Tree,
    /// PeerId (string) → Unix seconds: hosts an admin rejected.
    rejected: sled::Tree,
    /// `user\0PeerId` → Unix seconds: devices that signed in as the user (they still may
    /// when strangers have pushed the account over its failure ceiling).
    devices: sled::Tree,
    /// The audit log.
    audit: audit::Audit,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the store in `dir/db`.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(portico_core::data_dir::SERVER_DB);
        let db = sled::Config::new()
            .path(&path)
            .flush_every_ms(Some(200))
            .open()
            .map_err(|e| match e {
                sled::Error::Io(ref io)
                    if io.kind() == std::io::ErrorKind::WouldBlock
                        || io.to_string().contains("lock") =>
                {
                    StoreError::Locked {
                        path: dir.to_path_buf(),
                    }
                }
                other => StoreError::Db(other),
            })?;
        let meta = db.open_tree("meta")?;
        match meta.get("schema_version")? {
            None => {
                meta.insert("schema_version", &SCHEMA_VERSION.to_be_bytes())?;
            }
            Some(v) => {
                let found = <[u8; 4]>::try_from(v.as_ref())
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt {
                        tree: "meta",
                        reason: "schema_version".into(),
                    })?;
                if found != SCHEMA_VERSION {
                    return Err(StoreError::Schema { found });
                }
            }
        }
        let audit = audit::Audit::new(db.open_tree("audit")?, meta);
        Ok(Self {
            users: db.open_tree("users")?,
            groups: db.open_tree("groups")?,
            nodes: db.open_tree("nodes")?,
            hosts: db.open_tree("hosts")?,
            ids: db.open_tree("ids")?,
            sessions: db.open_tree("sessions")?,
            settings: db.open_tree("settings")?,
            enrollments: db.open_tree("enrollments")?,
            pending: db.open_tree("pending")?,
            rejected: db.open_tree("rejected")?,
            devices: db.open_tree("devices")?,
            audit,
            db,
        })
    }

    /// Makes every write so far durable.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    /// The audit log.
    pub fn audit(&self) -> &audit::Audit {
        &self.audit
    }

    /// A global switch (`guest_sharing`, `visitor_sharing`); off when never set.
    pub fn setting(&self, key: &str) -> Result<bool, StoreError> {
        Ok(get::<bool>(&self.settings, "settings", key.as_bytes())?.unwrap_or(false))
    }

    /// Sets a global switch.
    pub fn set_setting(&self, key: &str, on: bool) -> Result<(), StoreError> {
        put(&self.settings, key.as_bytes(), &on)
    }

    /// The number of the latest server event (0 before the first); it survives restarts,
    /// so a host can tell whether it missed any.
    pub fn state_version(&self) -> Result<u64, StoreError> {
        Ok(get::<u64>(&self.settings, "settings", STATE_VERSION)?.unwrap_or(0))
    }

    /// Numbers the next server event.
    pub fn next_state_version(&self) -> Result<u64, StoreError> {
        let v = self.state_version()? + 1;
        put(&self.settings, STATE_VERSION, &v)?;
        Ok(v)
    }
}

/// Encodes a value as CBOR.
pub(crate) fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    ciborium::ser::into_writer(v, &mut out).map_err(|e| StoreError::Corrupt {
        tree: "encode",
        reason: e.to_string(),
    })?;
    Ok(out)
}

/// Decodes a CBOR value read from `tree`.
pub(crate) fn decode<T: DeserializeOwned>(
    tree: &'static str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    ciborium::de::from_reader(bytes).map_err(|e| StoreError::Corrupt {
        tree,
        reason: e.to_string(),
    })
}

pub(crate) fn get<T: DeserializeOwned>(
    t: &sled::Tree,
    name: &'static str,
    key: &[u8],
) -> Result<Option<T>, StoreError> {
    t.get(key)?.map(|v| decode(name, &v)).transpose()
}

pub(crate) fn put<T: Serialize>(t: &sled::Tree, key: &[u8], v: &T) -> Result<(), StoreError> {
    t.insert(key, encode(v)?)?;
    Ok(())
}

pub(crate) fn all<T: DeserializeOwned>(
    t: &sled::Tree,
    name: &'static str,
) -> Result<Vec<T>, StoreError> {
    t.iter().values().map(|v| decode(name, &v?)).collect()
}

/// Checks a user or group name: 1–64 characters, letters, digits, `._-@ `, no leading space.
pub(crate) fn check_name(name: &str) -> Result<(), StoreError> {
    let bad = |reason| {
        Err(StoreError::BadName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.chars().count() > 64 {
        return bad("must be 1 to 64 characters");
    }
    if name.starts_with(' ') || name.ends_with(' ') {
        return bad("must not start or end with a space");
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || "._-@ ".contains(c))
    {
        return bad("use letters, digits, space and . _ - @");
    }
    Ok(())
}
