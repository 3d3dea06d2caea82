//! Host enrollment: tokens an admin hands out (`portico-signal node enroll FOLDER`), hosts
//! waiting for approval (`portico-signal host pending|approve|reject`) and rejected hosts.
//!
//! A host the server does not know registers only with a token that is known, unexpired and
//! not used up (each registration takes one use), or once an admin approves it. Tokens are
//! stored as their SHA-256: the database holds no usable token. Hosts never create folders:
//! a token names a folder the admin made, and an approval is the admin's own act.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::nodes::Placement;
use super::{all, get, put, HostRecord, NodePath, Store, StoreError};

/// Every token starts with this (recognisable in a paste or a log line).
pub const TOKEN_PREFIX: &str = "enroll-";
/// Longest token accepted from a host (a real one is 47 characters).
pub const MAX_TOKEN_LEN: usize = 128;

/// An enrollment token, as stored (keyed by the token's SHA-256).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enrollment {
    /// The folder hosts that use it go into.
    pub folder: NodePath,
    /// Registrations it still allows.
    pub uses_left: u32,
    /// Unix seconds after which it is refused.
    pub expires_at: u64,
    /// When the admin made it (Unix seconds).
    pub created_at: u64,
}

/// A host that asked to register without a token and waits for an admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingHost {
    /// Its PeerId (string form).
    pub peer: String,
    /// The node path it asked for (the admin may place it elsewhere).
    pub wanted: Option<NodePath>,
    /// The address it asked from (what the admin checks against).
    pub ip: String,
    /// Its agent string, cleaned of control characters.
    pub agent: String,
    /// First request, Unix seconds.
    pub first_seen: u64,
    /// Latest request, Unix seconds.
    pub last_seen: u64,
}

/// Limits on the waiting list, from the server config.
#[derive(Debug, Clone, Copy)]
pub struct PendingLimits {
    /// Most hosts waiting at once.
    pub total: usize,
    /// Most hosts waiting from one IP address.
    pub per_ip: usize,
}

fn token_key(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The short id an admin uses to list or revoke a token (the first 8 hex digits of its
/// SHA-256; the token itself is never shown again).
fn token_id(key: &[u8]) -> String {
    hex::encode(&key[..4])
}

impl Store {
    /// Makes a token for `uses` hosts into `folder` (created when missing: the admin's act),
    /// valid until `expires_at`. Returns the token (shown once) and its id.
    pub fn create_enrollment(
        &self,
        folder: &NodePath,
        uses: u32,
        expires_at: u64,
        now: u64,
    ) -> Result<(String, String), StoreError> {
        if uses == 0 {
            return Err(StoreError::Token {
                reason: "a token must allow at least one host (--uses N)",
            });
        }
        match self.node(folder)? {
            Some(n) if n.host.is_some() => return Err(StoreError::NotAFolder(folder.to_string())),
            Some(_) => {}
            None if folder.is_root() => {}
            None => self.mkdir(folder)?,
        }
        let mut secret = [0u8; 20];
        rand::thread_rng().fill_bytes(&mut secret);
        let token = format!("{TOKEN_PREFIX}{}", hex::encode(secret));
        let key = token_key(&token);
        put(
            &self.enrollments,
            &key,
            &Enrollment {
                folder: folder.clone(),
                uses_left: uses,
                expires_at,
                created_at: now,
            },
        )?;
        Ok((token, token_id(&key)))
    }

    /// Every token: its id and record.
    pub fn enrollments(&self) -> Result<Vec<(String, Enrollment)>, StoreError> {
        self.enrollments
            .iter()
            .map(|kv| {
                let (k, v) = kv?;
                Ok((token_id(&k), super::decode("enrollments", &v)?))
            })
            .collect()
    }

    /// Revokes the tokens whose id is `id`; returns how many.
    pub fn revoke_enrollment(&self, id: &str) -> Result<usize, StoreError> {
        let mut n = 0;
        for kv in self.enrollments.iter() {
            let (k, _) = kv?;
            if token_id(&k) == id.to_ascii_lowercase() {
                self.enrollments.remove(k)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Registers a new host with a token: checks the token, places the host in the token's
    /// folder (named `name`, or by its Internet-ID), then takes one use. A bad token or a
    /// taken name registers nothing and takes no use.
    pub fn enroll_host(
        &self,
        peer: &str,
        token: &str,
        name: Option<&str>,
        addrs: Vec<String>,
        agent: &str,
        now: u64,
    ) -> Result<HostRecord, StoreError> {
        let refuse = |reason| Err(StoreError::Token { reason });
        if token.len() > MAX_TOKEN_LEN || !token.starts_with(TOKEN_PREFIX) {
            return refuse("not an enrollment token");
        }
        let key = token_key(token);
        let Some(mut e) = get::<Enrollment>(&self.enrollments, "enrollments", &key)? else {
            return refuse("unknown enrollment token (revoked, or never made by this server)");
        };
        if now > e.expires_at {
            return refuse("the enrollment token has expired");
        }
        if e.uses_left == 0 {
            return refuse("the enrollment token is used up");
        }
        let placement = Placement::In {
            folder: e.folder.clone(),
            name: name.map(str::to_string),
        };
        let (record, _) = self.register_host(peer, &placement, addrs, agent, now)?;
        e.uses_left -= 1;
        if e.uses_left == 0 {
            self.enrollments.remove(key)?;
        } else {
            put(&self.enrollments, &key, &e)?;
        }
        Ok(record)
    }

    /// Puts a host on the waiting list (or refreshes its entry); `true` when it is new there.
    /// Refused when the list, or this host's IP address's share of it, is full.
    pub fn add_pending(&self, p: PendingHost, limits: PendingLimits) -> Result<bool, StoreError> {
        if let Some(mut known) = get::<PendingHost>(&self.pending, "pending", p.peer.as_bytes())? {
            known.last_seen = p.last_seen;
            put(&self.pending, p.peer.as_bytes(), &known)?;
            return Ok(false);
        }
        let waiting = self.pending()?;
        if waiting.len() >= limits.total {
            return Err(StoreError::PendingFull {
                limit: limits.total,
                ip: None,
            });
        }
        if waiting.iter().filter(|w| w.ip == p.ip).count() >= limits.per_ip {
            return Err(StoreError::PendingFull {
                limit: limits.per_ip,
                ip: Some(p.ip),
            });
        }
        put(&self.pending, p.peer.as_bytes(), &p)?;
        Ok(true)
    }

    /// The hosts waiting for approval.
    pub fn pending(&self) -> Result<Vec<PendingHost>, StoreError> {
        all(&self.pending, "pending")
    }

    /// Approves a waiting host: registers it at `path`, or where it asked, or under
    /// `/unassigned/` (missing folders are created: the admin's act).
    pub fn approve_host(
        &self,
        peer: &str,
        path: Option<NodePath>,
        now: u64,
    ) -> Result<HostRecord, StoreError> {
        let p = get::<PendingHost>(&self.pending, "pending", peer.as_bytes())?
            .ok_or_else(|| StoreError::NotPending(peer.to_string()))?;
        let placement = match path.or(p.wanted) {
            Some(path) => Placement::At(path),
            None => Placement::Unassigned,
        };
        let (record, _) = self.register_host(peer, &placement, Vec::new(), &p.agent, now)?;
        self.pending.remove(peer.as_bytes())?;
        self.rejected.remove(peer.as_bytes())?;
        Ok(record)
    }

    /// Rejects a waiting host: it leaves the list, and later requests are refused at once.
    pub fn reject_host(&self, peer: &str, now: u64) -> Result<(), StoreError> {
        if self.pending.remove(peer.as_bytes())?.is_none() {
            return Err(StoreError::NotPending(peer.to_string()));
        }
        put(&self.rejected, peer.as_bytes(), &now)
    }

    /// Whether an admin rejected this host.
    pub fn is_rejected(&self, peer: &str) -> Result<bool, StoreError> {
        Ok(self.rejected.contains_key(peer.as_bytes())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> NodePath {
        NodePath::parse(s).unwrap()
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::open(dir.path()).unwrap();
        (dir, s)
    }

    #[test]
    fn tokens_place_hosts_in_their_folder_and_run_out() {
        let (_d, s) = store();
        let (token, id) = s.create_enrollment(&p("/Sales"), 2, 1_000, 10).unwrap();
        assert!(token.starts_with(TOKEN_PREFIX));
        assert_eq!(s.enrollments().unwrap()[0].0, id);
        // The admin's act created the folder; the host's wanted name is a leaf in it.
        let a = s
            .enroll_host("peer-a", &token, Some("pc-7"), vec![], "t", 20)
            .unwrap();
        assert_eq!(a.node_path, p("/Sales/pc-7"));
        // A taken name registers nothing and takes no use.
        let taken = s.enroll_host("peer-b", &token, Some("pc-7"), vec![], "t", 20);
        assert!(matches!(taken, Err(StoreError::PathExists(_))));
        let b = s
            .enroll_host("peer-b", &token, None, vec![], "t", 20)
            .unwrap();
        assert_eq!(
            b.node_path.to_string(),
            format!("/Sales/{}", b.internet_id.to_string().replace(' ', "-"))
        );
        // Used up: the record is gone; a third host is refused.
        assert!(s.enrollments().unwrap().is_empty());
        let third = s.enroll_host("peer-c", &token, None, vec![], "t", 20);
        assert!(matches!(third, Err(StoreError::Token { .. })));
        assert!(s.host("peer-c").unwrap().is_none());
    }

    #[test]
    fn expired_forged_and_revoked_tokens_are_refused() {
        let (_d, s) = store();
        let (token, id) = s.create_enrollment(&p("/Lab"), 5, 100, 10).unwrap();
        let refused = |t: &str, now| {
            matches!(
                s.enroll_host("peer-x", t, None, vec![], "t", now),
                Err(StoreError::Token { .. })
            )
        };
        assert!(refused(&token, 101), "expired");
        assert!(refused(
            "enroll-0000000000000000000000000000000000000000",
            50
        ));
        assert!(refused(&"x".repeat(4096), 50));
        assert_eq!(s.revoke_enrollment(&id).unwrap(), 1);
        assert!(refused(&token, 50), "revoked");
        assert!(s.host("peer-x").unwrap().is_none());
        // A token cannot point into a host, and hosts cannot name their way out of the folder.
        let (t2, _) = s.create_enrollment(&p("/Lab"), 5, 100, 10).unwrap();
        let h = s
            .enroll_host("peer-h", &t2, Some("box"), vec![], "t", 20)
            .unwrap();
        assert!(matches!(
            s.create_enrollment(&h.node_path, 1, 100, 10),
            Err(StoreError::NotAFolder(_))
        ));
        assert!(s
            .enroll_host("peer-y", &t2, Some("a/b"), vec![], "t", 20)
            .is_err());
        assert!(s
            .enroll_host("peer-y", &t2, Some(".."), vec![], "t", 20)
            .is_err());
    }

    #[test]
    fn the_waiting_list_is_bounded_per_ip_and_approval_places_the_host() {
        let (_d, s) = store();
        let limits = PendingLimits {
            total: 3,
            per_ip: 2,
        };
        let wait = |peer: &str, ip: &str| PendingHost {
            peer: peer.into(),
            wanted: Some(p("/Branch/pc-1")),
            ip: ip.into(),
            agent: "portico/test".into(),
            first_seen: 1,
            last_seen: 1,
        };
        assert!(s.add_pending(wait("a", "10.0.0.1"), limits).unwrap());
        assert!(
            !s.add_pending(wait("a", "10.0.0.1"), limits).unwrap(),
            "a retry"
        );
        assert!(s.add_pending(wait("b", "10.0.0.1"), limits).unwrap());
        assert!(matches!(
            s.add_pending(wait("c", "10.0.0.1"), limits),
            Err(StoreError::PendingFull { ip: Some(_), .. })
        ));
        assert!(s.add_pending(wait("d", "10.0.0.2"), limits).unwrap());
        assert!(matches!(
            s.add_pending(wait("e", "10.0.0.3"), limits),
            Err(StoreError::PendingFull { ip: None, .. })
        ));
        let a = s.approve_host("a", None, 5).unwrap();
        assert_eq!(a.node_path, p("/Branch/pc-1"));
        let b = s.approve_host("b", Some(p("/Elsewhere/b")), 5).unwrap();
        assert_eq!(b.node_path, p("/Elsewhere/b"));
        s.reject_host("d", 5).unwrap();
        assert!(s.is_rejected("d").unwrap());
        assert!(s.pending().unwrap().is_empty());
        assert!(matches!(
            s.approve_host("zzz", None, 5),
            Err(StoreError::NotPending(_))
        ));
    }
}
