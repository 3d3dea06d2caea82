//! `DATA/tickets.json`: the session table's ticket memory across restarts (mode 0600,
//! replaced atomically). A file that does not parse stops the host with a clear error
//! rather than starting with an empty memory, which would reopen replays and revoked
//! tickets.

use std::path::Path;

use portico_core::table::TicketMemory;

use crate::host::HostError;

/// The memory in `file`, empty when there is none yet.
pub(crate) fn load(file: &Path) -> Result<TicketMemory, HostError> {
    let bad = |reason: String| HostError::Config {
        path: file.display().to_string(),
        reason: format!(
            "{reason}; the host will not start without its ticket memory (remove the file to \
             start with an empty one: tickets of the last hour could then be presented again)"
        ),
    };
    match std::fs::read(file) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(TicketMemory::default()),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// Writes `memory` to `file`.
pub(crate) fn save(file: &Path, memory: &TicketMemory) -> Result<(), HostError> {
    let bad = |reason: String| HostError::Config {
        path: file.display().to_string(),
        reason,
    };
    let bytes = serde_json::to_vec(memory).map_err(|e| bad(e.to_string()))?;
    portico_core::identity::replace_private(file, &bytes).map_err(|e| bad(e.to_string()))
}
