//! The append-only, hash-chained audit log: logins, tickets, registrations, admin changes.
//!
//! Entry `n` stores `hash_n = SHA-256(CBOR(seq, at, actor, action, detail, hash_{n-1}))`, and
//! the meta tree keeps the head `(seq, hash)`, written in the same transaction. [`Audit::verify`]
//! recomputes the chain: an edited, removed, reordered or truncated entry is reported with
//! the first sequence number that does not check out.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;

use crate::store::{decode, encode, StoreError};

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

/// Why the chain does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit log tampered at entry {seq}: {reason}")]
pub struct Tampered {
    /// First entry that does not check out.
    pub seq: u64,
    /// What is wrong.
    pub reason: String,
}

/// The audit log.
#[derive(Debug, Clone)]
pub struct Audit {
    /// seq (u64 BE) → entry.
    tree: sled::Tree,
    /// Holds the head.
    meta: sled::Tree,
}

fn entry_hash(
    seq: u64,
    at: u64,
    actor: &str,
    action: &str,
    detail: &str,
    prev: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let bytes = encode(&(
        seq,
        at,
        actor,
        action,
        detail,
        serde_bytes::Bytes::new(prev),
    ))?;
    Ok(Sha256::digest(bytes).to_vec())
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
            let seq = head.seq + 1;
            let hash = entry_hash(seq, at, actor, action, detail, &head.hash)
                .map_err(ConflictableTransactionError::Abort)?;
            let entry = AuditEntry {
                seq,
                at,
                actor: actor.into(),
                action: action.into(),
                detail: detail.into(),
                prev: head.hash,
                hash: hash.clone(),
            };
            let value = encode(&entry).map_err(ConflictableTransactionError::Abort)?;
            tree.insert(&seq.to_be_bytes(), value)?;
            let head = encode(&Head { seq, hash }).map_err(ConflictableTransactionError::Abort)?;
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
        let mut prev = vec![0u8; 32];
        let mut expected_seq = 1u64;
        for item in self.tree.iter() {
            let (key, value) = item?;
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
            if entry.seq != expected_seq || key_seq != expected_seq {
                return Ok(Err(Tampered {
                    seq: expected_seq,
                    reason: format!("sequence {} where {expected_seq} was expected", entry.seq),
                }));
            }
            if entry.prev != prev {
                return Ok(Err(Tampered {
                    seq: entry.seq,
                    reason: "does not link to the previous entry".into(),
                }));
            }
            let hash = entry_hash(
                entry.seq,
                entry.at,
                &entry.actor,
                &entry.action,
                &entry.detail,
                &entry.prev,
            )?;
            if hash != entry.hash {
                return Ok(Err(Tampered {
                    seq: entry.seq,
                    reason: "content does not match its hash".into(),
                }));
            }
            prev = hash;
            expected_seq += 1;
        }
        let count = expected_seq - 1;
        if let Some(v) = self.meta.get(HEAD_KEY)? {
            let head: Head = decode("audit", &v)?;
            if head.seq != count || head.hash != prev {
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
