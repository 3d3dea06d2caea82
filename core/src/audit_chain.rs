//! The hash chain both audit logs use (the host's `audit.jsonl` and the server's sled log):
//! entry `n` carries `hash_n = SHA-256(len-prefixed(seq, at, actor, action, detail, hash_{n-1}))`,
//! starting from 32 zero bytes. An edited, removed, reordered or truncated entry breaks the
//! chain at the first entry that does not check out. Sans-IO: storage is the caller's.

use sha2::{Digest, Sha256};

/// The `prev` of the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// The fields an entry's hash covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fields<'a> {
    /// Position in the log, from 1.
    pub seq: u64,
    /// Unix seconds.
    pub at: u64,
    /// Who acted (`admin`, `user:…`; the host log uses `host`).
    pub actor: &'a str,
    /// What happened.
    pub action: &'a str,
    /// Details for humans.
    pub detail: &'a str,
}

/// The hash of an entry with these fields after `prev`. Every field is length-prefixed, so
/// moving bytes between fields changes the hash.
pub fn entry_hash(fields: &Fields<'_>, prev: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    let seq = fields.seq.to_be_bytes();
    let at = fields.at.to_be_bytes();
    for part in [
        &seq[..],
        &at[..],
        fields.actor.as_bytes(),
        fields.action.as_bytes(),
        fields.detail.as_bytes(),
        &prev[..],
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    h.finalize().into()
}

/// Why a chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit log tampered at entry {seq}: {reason}")]
pub struct Tampered {
    /// First entry that does not check out.
    pub seq: u64,
    /// What is wrong.
    pub reason: String,
}

/// The head of a chain: the last sequence number and hash. Appending and verifying both go
/// through it, so the two logs cannot disagree on the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chain {
    /// Last sequence number (0 when empty).
    pub seq: u64,
    /// Last hash ([`GENESIS`] when empty).
    pub head: [u8; 32],
}

impl Default for Chain {
    fn default() -> Self {
        Self {
            seq: 0,
            head: GENESIS,
        }
    }
}

impl Chain {
    /// A chain resumed at a known head.
    pub fn at(seq: u64, head: [u8; 32]) -> Self {
        Self { seq, head }
    }

    /// Appends an entry (its `seq` is taken from the chain): returns `(seq, prev, hash)` to
    /// store with it.
    pub fn append(
        &mut self,
        at: u64,
        actor: &str,
        action: &str,
        detail: &str,
    ) -> (u64, [u8; 32], [u8; 32]) {
        let seq = self.seq + 1;
        let prev = self.head;
        let hash = entry_hash(
            &Fields {
                seq,
                at,
                actor,
                action,
                detail,
            },
            &prev,
        );
        self.seq = seq;
        self.head = hash;
        (seq, prev, hash)
    }

    /// Checks the next stored entry against the chain and advances over it.
    pub fn check(&mut self, fields: &Fields<'_>, prev: &[u8], hash: &[u8]) -> Result<(), Tampered> {
        let expected = self.seq + 1;
        if fields.seq != expected {
            return Err(Tampered {
                seq: expected,
                reason: format!("sequence {} where {expected} was expected", fields.seq),
            });
        }
        if prev != self.head {
            return Err(Tampered {
                seq: expected,
                reason: "does not link to the previous entry".into(),
            });
        }
        let computed = entry_hash(fields, &self.head);
        if hash != computed {
            return Err(Tampered {
                seq: expected,
                reason: "content does not match its hash".into(),
            });
        }
        self.seq = expected;
        self.head = computed;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn f<'a>(seq: u64, detail: &'a str) -> Fields<'a> {
        Fields {
            seq,
            at: 7,
            actor: "admin",
            action: "user.add",
            detail,
        }
    }

    #[test]
    fn appended_entries_verify_and_any_edit_is_found() {
        let mut w = Chain::default();
        let entries: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|d| {
                let (seq, prev, hash) = w.append(7, "admin", "user.add", d);
                (seq, *d, prev, hash)
            })
            .collect();
        let mut r = Chain::default();
        for (seq, d, prev, hash) in &entries {
            r.check(&f(*seq, d), prev, hash).unwrap();
        }
        assert_eq!(r, w);
        // An edited detail, a dropped entry, a moved byte between fields: each is caught.
        let mut r = Chain::default();
        r.check(&f(1, "a"), &entries[0].2, &entries[0].3).unwrap();
        assert_eq!(
            r.clone()
                .check(&f(2, "B"), &entries[1].2, &entries[1].3)
                .unwrap_err()
                .seq,
            2
        );
        assert_eq!(
            r.clone()
                .check(&f(3, "c"), &entries[2].2, &entries[2].3)
                .unwrap_err()
                .seq,
            2
        );
        let moved = Fields {
            action: "user.ad",
            detail: "db",
            ..f(2, "b")
        };
        assert!(r.check(&moved, &entries[1].2, &entries[1].3).is_err());
    }

    #[test]
    fn hash_is_pinned() {
        // The format is on disk in both logs: changing it breaks every existing log.
        let h = entry_hash(&f(1, "x"), &GENESIS);
        assert_eq!(
            hex::encode(h),
            "92da0d5bc3bfe67ae08e9918dc748db602877bdf43d274f73fea7415cce7f28f"
        );
        assert_ne!(h, entry_hash(&f(1, "y"), &GENESIS));
    }
}
