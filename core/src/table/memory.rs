//! What the host must not forget across a restart about tickets: the nonces of tickets it
//! let count (so a restart does not reopen a replay), and when the server last changed each
//! account (so a ticket issued before a group removal, a disable or "force server security"
//! is refused, even one fetched just before the change and presented after a restart).
//!
//! Both are bounded and forget only what can no longer matter: a nonce after its ticket
//! expired, an account change once every ticket issued before it has expired.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Clock, Effect, SessionTable};
use crate::ticket::{RememberedNonce, Ticket, CLOCK_SKEW_SECS, MAX_LIFETIME_SECS};

/// Account changes remembered at most (the oldest go first, and only once no ticket from
/// before them can still be valid would that matter: see [`SessionTable::note_user_change`]).
pub const MAX_USER_CHANGES: usize = 4096;

/// The part of the table kept in the host's data dir.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TicketMemory {
    /// Account → the server's time of its last change (Unix seconds).
    pub user_changes: BTreeMap<String, u64>,
    /// Nonces of tickets that counted.
    pub nonces: Vec<RememberedNonce>,
}

impl SessionTable {
    /// Takes back what a previous run of the host remembered.
    pub fn restore_memory(&mut self, now: Clock, memory: TicketMemory) {
        self.replay.restore(memory.nonces, now.unix);
        for (user, at) in memory.user_changes {
            if self.user_changes.len() < MAX_USER_CHANGES && !expired_change(at, now.unix) {
                self.user_changes.insert(user, at);
            }
        }
    }

    /// What to keep now.
    pub fn memory(&self, now: Clock) -> TicketMemory {
        TicketMemory {
            user_changes: self.user_changes.clone(),
            nonces: self.replay.entries(now.unix),
        }
    }

    /// The memory changed: the shell writes it down.
    pub(super) fn remembered(&mut self) {
        if !self.effects.iter().any(|e| matches!(e, Effect::Remember)) {
            self.effects.push_back(Effect::Remember);
        }
    }

    /// The server changed `user`, dated `at` (its clock): tickets issued before it are
    /// refused from now on. Changes past every ticket's lifetime are forgotten first; when
    /// still full, the oldest goes (a ticket from before it would have to be an hour old,
    /// the longest lifetime, to profit).
    pub(super) fn note_user_change(&mut self, user: &str, at: u64, now: u64) {
        self.user_changes.retain(|_, t| !expired_change(*t, now));
        if self.user_changes.len() >= MAX_USER_CHANGES && !self.user_changes.contains_key(user) {
            if let Some(oldest) = self
                .user_changes
                .iter()
                .min_by_key(|(_, t)| **t)
                .map(|(u, _)| u.clone())
            {
                self.user_changes.remove(&oldest);
            }
        }
        let entry = self.user_changes.entry(user.to_string()).or_insert(at);
        *entry = (*entry).max(at);
        self.remembered();
    }

    /// Whether the ticket was issued before the server's last change to its account (the
    /// server dates a change later than every ticket it issued before it).
    pub(super) fn issued_before_change(&self, t: &Ticket) -> bool {
        self.user_changes
            .get(&t.subject.user)
            .is_some_and(|&at| t.issued_at < at)
    }
}

/// Every ticket issued before `at` has expired by `now`.
fn expired_change(at: u64, now: u64) -> bool {
    at + MAX_LIFETIME_SECS + CLOCK_SKEW_SECS < now
}
