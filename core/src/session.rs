//! `/portico/session/1` after the Noise handshake, as two sans-IO state machines over
//! [`crate::noise::Transport`]: [`HostSession`] (the shared machine's side) and
//! [`ViewerSession`]. Bytes from the peer go in with `handle_bytes`; what to write comes out
//! of `poll_transmit`; what the shell must do (inject input, ask the owner, write a file
//! chunk, show a frame) comes out of `poll_event`. The tokio loops around them only move
//! bytes, channel messages and file I/O.
//!
//! ```text
//!  host:   Deciding ──waiting()──▶ Waiting ──accepted()──▶ Live ──end()/Bye/EOF──▶ Closed
//!             │                       │ └──refused()──────────────────────────────▶ Closed
//!             └──accepted()/refused()─┘      (EOF while Waiting: Withdrawn event)
//!  viewer: Connecting ──Waiting──▶ Connecting ──Accepted──▶ Live ──Bye/EOF──▶ Ended
//!                      └──Refused/Bye──────────────────────────────────────▶ Ended
//! ```
//!
//! In `Live`, the host machine gates every viewer message on the session's permissions as
//! they are at that moment: input without `control` is dropped (and counted), clipboard and
//! files need their permission, and guests/visitors need the owner's confirmation per use.

mod browse;
mod from_host;
mod host;
mod viewer;

use crate::wire;

pub use host::{Ask, HostEvent, HostSession};
pub use viewer::{ViewerEvent, ViewerSession};

/// Largest file accepted (16 GiB).
pub const MAX_FILE: u64 = 16 * 1024 * 1024 * 1024;
/// Largest clipboard text carried (1 MiB).
pub const MAX_TEXT: usize = 1024 * 1024;
/// File transfers a session may have open (offered or receiving) at once.
pub const MAX_TRANSFERS: usize = 4;

/// A safe file name from whatever the peer sent: the last path component, no control,
/// bidi or invisible characters (`invoice\u{202E}fdp.exe` would show as `invoiceexe.pdf`),
/// no leading dots (no hidden files, no `..`), at most 200 characters.
pub fn sanitize_name(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|&c| !crate::text::hidden(c) && c != ':')
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim();
    let cleaned: String = cleaned.chars().take(200).collect();
    if cleaned.is_empty() {
        "file".into()
    } else {
        cleaned
    }
}

/// The encrypted channel of either side and the bytes waiting to be written.
struct Channel {
    /// The Noise transport.
    transport: crate::noise::Transport,
    /// Sealed bytes, in order.
    transmit: std::collections::VecDeque<Vec<u8>>,
}

impl Channel {
    fn new(transport: crate::noise::Transport) -> Self {
        Self {
            transport,
            transmit: Default::default(),
        }
    }

    /// Encodes and seals a message for the wire.
    fn send(&mut self, msg: &wire::session::SessionMessage) -> Result<(), SessionError> {
        let bytes = self.transport.send(msg)?;
        self.transmit.push_back(bytes);
        Ok(())
    }

    /// Seals a message encoded once for every viewer.
    fn seal(&mut self, encoded: &[u8]) -> Result<(), SessionError> {
        let bytes = self.transport.seal(encoded)?;
        self.transmit.push_back(bytes);
        Ok(())
    }

    /// The next bytes to write.
    fn poll(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// Feeds received bytes; the messages they complete.
    fn receive(
        &mut self,
        bytes: &[u8],
    ) -> Result<Vec<wire::session::SessionMessage>, SessionError> {
        self.transport.push(bytes);
        let mut out = Vec::new();
        while let Some(m) = self.transport.recv()? {
            out.push(m);
        }
        Ok(out)
    }
}

/// Errors that end a session stream (only that stream).
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The peer's bytes did not decrypt, frame or decode.
    #[error(transparent)]
    Noise(#[from] crate::noise::NoiseError),
}

#[cfg(test)]
mod tests;
