//! The append-only, hash-chained audit log: logins, tickets, registrations, admin changes.
//!
//! The chain is `portico_core::audit_chain` (the host's log uses the same one); the meta tree
//! keeps the head `(seq, hash)`, written in the same transaction as the entry.
//! [`Audit::verify`] recomputes the chain: an edited, removed, reordered or truncated entry is
//! reported with the first sequence number that does not check out.

use portico_core::audit_chain::{Chain, Fields};
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

pub use portico_core::audit_chain::Tampered;

use super::{decode, encode, StoreError};

const HEAD_KEY: &str = "audit_head";

/// One audit entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the log, from 1.
    pub seq: u64,
    /// Unix seconds.
    pub at: u64,
    /// Who: `admin`, `peer:…`, `user:…`.
    pub actor: String,
    /// What: `login.ok`, `login.failed`, `ticket.issued`, `user.add`, ….
    pub action: String,
    /// Details for humans.
    pub detail: String,
    /// Hash of the previous entry (zeros for the first).
    #[serde(with = "serde_bytes")]
    pub prev: Vec<u8>,
    /// This entry's hash.
    #[serde(with = "serde_bytes")]
    pub hash: Vec<u8>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Head {
    seq: u64,
    #[serde(with = "serde_bytes")]
    hash: Vec<u8>,
}

/// The audit log.
#[derive(Debug, Clone)]
pub struct Audit {
    /// seq (u64 BE) → entry.
    tree: sled::Tree,
    /// Holds the head.
    meta: sled::Tree,
}

fn chain_of(head: &Head) -> Chain {
    Chain::at(
        head.seq,
        head.hash.as_slice().try_into().unwrap_or_default(),
    )
}

impl Audit {
    pub(crate) fn new(tree: sled::Tree, meta: sled::Tree) -> Self {
        Self { tree, meta }
    }

    /// Appends an entry.
    pub fn append(
        &self,
        actor: &str,
        action: &str,
        detail: &str,
        at: u64,
    ) -> Result<AuditEntry, StoreError> {
        let result = (&self.tree, &self.meta).transaction(|(tree, meta)| {
            let head = match meta.get(HEAD_KEY)? {
                Some(v) => {
                    decode::<Head>("audit", &v).map_err(ConflictableTransactionError::Abort)?
                }
                None => Head {
                    seq: 0,
                    hash: vec![0; 32],
                },
            };
            let mut chain = chain_of(&head);
            let (seq, prev, hash) = chain.append(at, actor, action, detail);
            let entry = AuditEntry {
                seq,
                at,
                actor: actor.into(),
                action: action.into(),
                detail: detail.into(),
                prev: prev.to_vec(),
                hash: hash.to_vec(),
            };
            let value = encode(&entry).map_err(ConflictableTransactionError::Abort)?;
            tree.insert(&seq.to_be_bytes(), value)?;
            let head = encode(&Head {
                seq,
                hash: hash.to_vec(),
            })
            .map_err(ConflictableTransactionError::Abort)?;
            meta.insert(HEAD_KEY, head)?;
            Ok(entry)
        });
        result.map_err(|e| match e {
            TransactionError::Abort(e) => e,
            TransactionError::Storage(e) => StoreError::Db(e),
        })
    }

    /// All entries in order (optionally only the last `tail`).
    pub fn entries(&self, tail: Option<usize>) -> Result<Vec<AuditEntry>, StoreError> {
        let mut out: Vec<AuditEntry> = match tail {
            Some(n) => self
                .tree
                .iter()
                .rev()
                .take(n)
                .map(|kv| decode("audit", &kv?.1))
                .collect::<Result<_, _>>()?,
            None => self
                .tree
                .iter()
                .values()
                .map(|v| decode("audit", &v?))
                .collect::<Result<_, _>>()?,
        };
        if tail.is_some() {
            out.reverse();
        }
        Ok(out)
    }

    /// Recomputes the chain; returns the number of entries.
    pub fn verify(&self) -> Result<Result<u64, Tampered>, StoreError> {
        let mut chain = Chain::default();
        for item in self.tree.iter() {
            let (key, value) = item?;
            let expected_seq = chain.seq + 1;
            let entry: AuditEntry = match decode("audit", &value) {
                Ok(e) => e,
                Err(e) => {
                    return Ok(Err(Tampered {
                        seq: expected_seq,
                        reason: format!("undecodable: {e}"),
                    }))
                }
            };
            let key_seq = <[u8; 8]>::try_from(key.as_ref())
                .map(u64::from_be_bytes)
                .unwrap_or(0);
            if key_seq != expected_seq {
                return Ok(Err(Tampered {
                    seq: expected_seq,
                    reason: format!("stored under {key_seq} where {expected_seq} was expected"),
                }));
            }
            let fields = Fields {
                seq: entry.seq,
                at: entry.at,
                actor: &entry.actor,
                action: &entry.action,
                detail: &entry.detail,
            };
            if let Err(t) = chain.check(&fields, &entry.prev, &entry.hash) {
                return Ok(Err(t));
            }
        }
        let (count, prev) = (chain.seq, chain.head);
        if let Some(v) = self.meta.get(HEAD_KEY)? {
            let head: Head = decode("audit", &v)?;
            if head.seq != count || head.hash != prev.as_slice() {
                return Ok(Err(Tampered {
                    seq: count + 1,
                    reason: format!("log ends at {count} but the head says {}", head.seq),
                }));
            }
        } else if count > 0 {
            return Ok(Err(Tampered {
                seq: 1,
                reason: "head missing".into(),
            }));
        }
        Ok(Ok(count))
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;

    #[test]
    fn chain_verifies_and_edits_are_detected() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        let a = s.audit();
        for i in 0..5 {
            a.append("admin", "user.add", &format!("user{i}"), 100 + i)
                .unwrap();
        }
        assert_eq!(a.verify().unwrap(), Ok(5));
        assert_eq!(
            a.entries(Some(2))
                .unwrap()
                .iter()
                .map(|e| e.seq)
                .collect::<Vec<_>>(),
            vec![4, 5]
        );

        // Hand-edit entry 3's detail, keeping its stored hash.
        let mut e = a.entries(None).unwrap().remove(2);
        e.detail = "mallory".into();
        a.tree
            .insert(3u64.to_be_bytes(), crate::store::encode(&e).unwrap())
            .unwrap();
        let err = a.verify().unwrap().unwrap_err();
        assert_eq!(err.seq, 3);

        // Truncation is detected through the head.
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        for i in 0..3 {
            s.audit().append("admin", "x", "y", i).unwrap();
        }
        s.audit().tree.remove(3u64.to_be_bytes()).unwrap();
        assert!(s.audit().verify().unwrap().is_err());
    }
}
