//! Moving a live session to another stream: the host's side of the resume tokens.
//!
//! A session that started on the relay moves onto a direct connection as soon as there is
//! one, without a new handshake or access decision: its Noise transport is end to end, so
//! the same transport simply goes on over the new stream. The viewer proves the new stream
//! belongs to the session with a token the host sent inside the encrypted session; the host
//! also requires the stream to come from the session's own viewer key (checked by libp2p's
//! handshake on the connection), and takes every token once. Whatever fails a check is
//! refused and changes nothing for the live session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use libp2p::{PeerId, Stream};
use portico_core::wire::session::RESUME_TOKEN_LEN;
use rand::RngCore;
use tokio::sync::mpsc;

/// A resume token.
pub type Token = [u8; RESUME_TOKEN_LEN];

/// A resuming stream's two halves, handed to the live session.
pub type Halves = (
    futures::io::ReadHalf<Stream>,
    futures::io::WriteHalf<Stream>,
);

/// Why a resuming stream was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResumeRefused {
    /// No live session has this token (wrong, already used, or the session ended).
    #[error("unknown resume token (wrong, already used, or the session ended)")]
    UnknownToken,
    /// The token belongs to a session of another viewer key (it was leaked or guessed; it
    /// is burnt).
    #[error("the resume token belongs to another viewer's session")]
    OtherKey,
}

/// A live session that can be resumed.
struct Entry {
    /// Its viewer: only this key may resume it.
    viewer: PeerId,
    /// Where the new stream goes.
    tx: mpsc::Sender<Halves>,
}

/// The host's outstanding tokens, one per live session (shared by the session tasks).
#[derive(Clone, Default)]
pub struct Resumes(Arc<Mutex<HashMap<Token, Entry>>>);

impl Resumes {
    /// A fresh token for `viewer`'s session, whose new streams go to `tx`.
    pub fn issue(&self, viewer: PeerId, tx: mpsc::Sender<Halves>) -> Token {
        let mut token = [0u8; RESUME_TOKEN_LEN];
        rand::thread_rng().fill_bytes(&mut token);
        if let Ok(mut map) = self.0.lock() {
            map.insert(token, Entry { viewer, tx });
        }
        token
    }

    /// Takes `token` for a stream from `peer`: where the stream goes, or why not. The token
    /// is gone either way.
    pub fn claim(
        &self,
        token: &Token,
        peer: PeerId,
    ) -> Result<mpsc::Sender<Halves>, ResumeRefused> {
        let entry = self
            .0
            .lock()
            .ok()
            .and_then(|mut map| map.remove(token))
            .ok_or(ResumeRefused::UnknownToken)?;
        if entry.viewer != peer {
            return Err(ResumeRefused::OtherKey);
        }
        Ok(entry.tx)
    }

    /// Withdraws `token` (its session ended, or moved and got a new one).
    pub fn forget(&self, token: &Token) {
        if let Ok(mut map) = self.0.lock() {
            map.remove(token);
        }
    }
}

/// The token a live session holds now; withdrawn when the session ends.
pub struct Held {
    /// The shared tokens.
    resumes: Resumes,
    /// This session's current token.
    token: Token,
    /// The session's viewer (each new token is bound to it).
    viewer: PeerId,
    /// Where the session's resuming streams go.
    tx: mpsc::Sender<Halves>,
}

impl Held {
    /// Issues the first token of `viewer`'s session, whose new streams go to `tx`.
    pub fn issue(resumes: &Resumes, viewer: PeerId, tx: mpsc::Sender<Halves>) -> Self {
        let token = resumes.issue(viewer, tx.clone());
        Self {
            resumes: resumes.clone(),
            token,
            viewer,
            tx,
        }
    }

    /// The current token.
    pub fn token(&self) -> Token {
        self.token
    }

    /// Replaces the token (after a move: the old one was taken).
    pub fn renew(&mut self) -> Token {
        self.resumes.forget(&self.token);
        self.token = self.resumes.issue(self.viewer, self.tx.clone());
        self.token
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.resumes.forget(&self.token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_works_once_for_its_own_viewer_only() {
        let resumes = Resumes::default();
        let (viewer, stranger) = (PeerId::random(), PeerId::random());
        let (tx, _rx) = mpsc::channel(1);
        let held = Held::issue(&resumes, viewer, tx);
        let token = held.token();
        assert_eq!(
            resumes.claim(&[0; RESUME_TOKEN_LEN], viewer).err(),
            Some(ResumeRefused::UnknownToken)
        );
        assert!(resumes.claim(&token, viewer).is_ok());
        // Replayed: refused.
        assert_eq!(
            resumes.claim(&token, viewer).err(),
            Some(ResumeRefused::UnknownToken)
        );
        // Another key with a good token: refused, and the token is burnt.
        let mut held = held;
        let next = held.renew();
        assert_eq!(
            resumes.claim(&next, stranger).err(),
            Some(ResumeRefused::OtherKey)
        );
        assert_eq!(
            resumes.claim(&next, viewer).err(),
            Some(ResumeRefused::UnknownToken)
        );
        // A session that ends withdraws its token.
        let (tx, _rx2) = mpsc::channel(1);
        let held = Held::issue(&resumes, viewer, tx);
        let token = held.token();
        drop(held);
        assert_eq!(
            resumes.claim(&token, viewer).err(),
            Some(ResumeRefused::UnknownToken)
        );
    }
}
