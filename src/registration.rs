//! `DATA/registration.toml`: what the host learned when it registered (for `portico id` and
//! for checking ACL names at the server).

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The host's registration.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Registration {
    /// The server as given (`HOST[:PORT]` or multiaddr).
    pub(crate) server: String,
    /// The server's PeerId (pinned).
    pub(crate) server_peer: String,
    /// The server's display name.
    pub(crate) server_name: String,
    /// Internet-ID as shown (`123 456 789`).
    pub(crate) internet_id: String,
    /// Node path.
    pub(crate) node_path: String,
}

const FILE: &str = portico_core::data_dir::REGISTRATION;

pub(crate) fn read(data: &Path) -> anyhow::Result<Option<Registration>> {
    match std::fs::read_to_string(data.join(FILE)) {
        Ok(t) => Ok(Some(toml::from_str(&t).context(
            "registration.toml is invalid; it is rewritten when the host registers again",
        )?)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

pub(crate) fn write(data: &Path, r: &Registration) -> anyhow::Result<()> {
    portico_core::identity::replace_private(&data.join(FILE), toml::to_string(r)?.as_bytes())?;
    Ok(())
}
