//! Server-signed tickets: proof that a signed-in account may ask one host for access.
//!
//! The server signs the CBOR encoding of a [`Ticket`] with its ed25519 identity key. A host
//! checks it with [`verify`] against the server key it pinned, its own PeerId, the current
//! time and a bounded replay cache. Any failure refuses: there is no "allow on error".

use std::collections::HashMap;

use libp2p_identity::{PeerId, PublicKey};
use serde::{Deserialize, Serialize};

use crate::cbor::{WirePeerId, MAX_DEPTH};
use crate::identity::Identity;

/// Domain separation for ticket signatures.
const DOMAIN: &[u8] = b"portico-ticket-v1\0";
/// Ticket format version.
pub const TICKET_VERSION: u8 = 1;
/// Largest encoded ticket body accepted.
pub const MAX_TICKET_LEN: usize = 4096;
/// Largest signature accepted.
pub const MAX_SIGNATURE_LEN: usize = 128;
/// Longest validity window accepted, whatever the server says (one hour).
pub const MAX_LIFETIME_SECS: u64 = 3600;
/// Clock difference tolerated between server and host.
pub const CLOCK_SKEW_SECS: u64 = 60;

/// What a ticket lets its holder ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TicketKind {
    /// A visitor: the owner must accept; the owner sees the account name.
    Visitor,
    /// A server user (Custom Server Security): the host's ACL decides.
    User,
    /// A provisioning bundle for hosts.
    Provisioning,
}

/// Who the ticket speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// Account name.
    pub user: String,
    /// Groups the account belongs to (user tickets).
    pub groups: Vec<String>,
    /// The account may only come in as a server user.
    pub force_server_security: bool,
}

/// A ticket's signed contents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    /// Format version.
    pub version: u8,
    /// Visitor, user or provisioning.
    pub kind: TicketKind,
    /// The account.
    pub subject: Subject,
    /// The host it is for.
    pub audience: WirePeerId,
    /// The viewer it was issued to (its signed-in PeerId); only that viewer may present it.
    pub holder: WirePeerId,
    /// The server's display name (owners see "signed in at SERVER").
    pub server_name: String,
    /// Issue time, Unix seconds.
    pub issued_at: u64,
    /// Expiry, Unix seconds.
    pub expires_at: u64,
    /// Random, for replay detection.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
}

/// A ticket as it travels: the encoded body and the server's signature over it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTicket {
    /// CBOR encoding of [`Ticket`].
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
    /// ed25519 signature over the domain tag and `body`.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

impl std::fmt::Debug for SignedTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SignedTicket({} bytes)", self.body.len())
    }
}

/// Why a ticket is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// Body or signature larger than allowed.
    #[error("ticket too large ({len} bytes, max {max})")]
    TooLarge {
        /// Size seen.
        len: usize,
        /// Maximum.
        max: usize,
    },
    /// The signature does not verify against the pinned server key.
    #[error("ticket signature does not verify against the pinned server key")]
    BadSignature,
    /// The body is not a ticket.
    #[error("malformed ticket: {reason}")]
    Malformed {
        /// What was wrong.
        reason: String,
    },
    /// Another format version.
    #[error("ticket version {got} is not supported")]
    UnsupportedVersion {
        /// Version seen.
        got: u8,
    },
    /// Issued for another host.
    #[error("ticket is for host {audience:?}, not this host")]
    WrongAudience {
        /// The ticket's audience.
        audience: WirePeerId,
    },
    /// Issued to another viewer.
    #[error("ticket was issued to another viewer")]
    WrongHolder,
    /// Issued with an expiry beyond what we accept.
    #[error("ticket validity of {secs}s exceeds the maximum of {MAX_LIFETIME_SECS}s")]
    LifetimeTooLong {
        /// The ticket's validity window.
        secs: u64,
    },
    /// Past its expiry.
    #[error("ticket expired at {expires_at} (now {now})")]
    Expired {
        /// Expiry.
        expires_at: u64,
        /// Now.
        now: u64,
    },
    /// Issued in the future (beyond tolerated skew).
    #[error("ticket not valid before {issued_at} (now {now}); check the clocks")]
    NotYetValid {
        /// Issue time.
        issued_at: u64,
        /// Now.
        now: u64,
    },
    /// The nonce was seen before.
    #[error("ticket was already used")]
    Replayed,
    /// Too many live tickets to remember; refusing rather than forgetting.
    #[error("too many tickets in flight; try again in a minute")]
    ReplayCacheFull,
    /// Not the kind of ticket this request needs.
    #[error("a {got:?} ticket cannot be used here")]
    WrongKind {
        /// The ticket's kind.
        got: TicketKind,
    },
}

/// Remembers nonces of accepted tickets until they expire. Bounded: when full of unexpired
/// nonces it refuses new tickets ([`TicketError::ReplayCacheFull`]) instead of forgetting.
#[derive(Debug)]
pub struct ReplayCache {
    /// Nonce → expiry (Unix seconds).
    seen: HashMap<Vec<u8>, u64>,
    /// Most nonces remembered at once.
    capacity: usize,
}

impl ReplayCache {
    /// A cache remembering at most `capacity` live nonces.
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: HashMap::new(),
            capacity,
        }
    }

    /// Records `nonce` valid until `expires_at`; refuses one seen before.
    pub fn check_and_insert(
        &mut self,
        nonce: &[u8],
        expires_at: u64,
        now: u64,
    ) -> Result<(), TicketError> {
        if self.seen.contains_key(nonce) {
            return Err(TicketError::Replayed);
        }
        if self.seen.len() >= self.capacity {
            self.seen.retain(|_, exp| *exp + CLOCK_SKEW_SECS >= now);
            if self.seen.len() >= self.capacity {
                return Err(TicketError::ReplayCacheFull);
            }
        }
        self.seen.insert(nonce.to_vec(), expires_at);
        Ok(())
    }

    /// Nonces currently remembered.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Nothing remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

fn signed_bytes(body: &[u8]) -> Vec<u8> {
    [DOMAIN, body].concat()
}

/// Signs `ticket` with the server identity.
pub fn sign(ticket: &Ticket, server: &Identity) -> Result<SignedTicket, TicketError> {
    let mut body = Vec::new();
    ciborium::ser::into_writer(ticket, &mut body).map_err(|e| TicketError::Malformed {
        reason: e.to_string(),
    })?;
    if body.len() > MAX_TICKET_LEN {
        return Err(TicketError::TooLarge {
            len: body.len(),
            max: MAX_TICKET_LEN,
        });
    }
    let signature = server.sign(&signed_bytes(&body));
    Ok(SignedTicket { body, signature })
}

/// Checks the signature and decodes the body, without audience, time or replay checks.
/// Use [`verify`] for tickets presented to a host.
pub fn open(signed: &SignedTicket, server_key: &PublicKey) -> Result<Ticket, TicketError> {
    if signed.body.len() > MAX_TICKET_LEN {
        return Err(TicketError::TooLarge {
            len: signed.body.len(),
            max: MAX_TICKET_LEN,
        });
    }
    if signed.signature.len() > MAX_SIGNATURE_LEN {
        return Err(TicketError::TooLarge {
            len: signed.signature.len(),
            max: MAX_SIGNATURE_LEN,
        });
    }
    if !server_key.verify(&signed_bytes(&signed.body), &signed.signature) {
        return Err(TicketError::BadSignature);
    }
    let mut rest = signed.body.as_slice();
    let ticket: Ticket = ciborium::de::from_reader_with_recursion_limit(&mut rest, MAX_DEPTH)
        .map_err(|e| TicketError::Malformed {
            reason: e.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(TicketError::Malformed {
            reason: format!("{} trailing bytes", rest.len()),
        });
    }
    if ticket.version != TICKET_VERSION {
        return Err(TicketError::UnsupportedVersion {
            got: ticket.version,
        });
    }
    Ok(ticket)
}

/// Verifies a ticket presented to host `me` by viewer `holder`: signature by the pinned
/// server key, audience, holder, validity window and replay. Returns the ticket's contents.
pub fn verify(
    signed: &SignedTicket,
    server_key: &PublicKey,
    me: &PeerId,
    holder: &PeerId,
    now: u64,
    replay: &mut ReplayCache,
) -> Result<Ticket, TicketError> {
    let ticket = open(signed, server_key)?;
    if ticket.audience != WirePeerId::from(*me) {
        return Err(TicketError::WrongAudience {
            audience: ticket.audience,
        });
    }
    if ticket.holder != WirePeerId::from(*holder) {
        return Err(TicketError::WrongHolder);
    }
    let lifetime = ticket.expires_at.saturating_sub(ticket.issued_at);
    if lifetime > MAX_LIFETIME_SECS {
        return Err(TicketError::LifetimeTooLong { secs: lifetime });
    }
    if ticket.issued_at > now.saturating_add(CLOCK_SKEW_SECS) {
        return Err(TicketError::NotYetValid {
            issued_at: ticket.issued_at,
            now,
        });
    }
    if now >= ticket.expires_at {
        return Err(TicketError::Expired {
            expires_at: ticket.expires_at,
            now,
        });
    }
    replay.check_and_insert(&ticket.nonce, ticket.expires_at, now)?;
    Ok(ticket)
}

/// A random 16-byte nonce.
pub fn new_nonce() -> Vec<u8> {
    use rand::RngCore;
    let mut n = vec![0u8; 16];
    rand::thread_rng().fill_bytes(&mut n);
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    struct Fixture {
        server: Identity,
        host: PeerId,
        viewer: PeerId,
    }

    fn fixture() -> Fixture {
        Fixture {
            server: Identity::generate(),
            host: PeerId::random(),
            viewer: PeerId::random(),
        }
    }

    fn ticket(f: &Fixture) -> Ticket {
        Ticket {
            version: TICKET_VERSION,
            kind: TicketKind::User,
            subject: Subject {
                user: "alice".into(),
                groups: vec!["Sales".into()],
                force_server_security: false,
            },
            audience: f.host.into(),
            holder: f.viewer.into(),
            server_name: "hq".into(),
            issued_at: NOW,
            expires_at: NOW + 300,
            nonce: new_nonce(),
        }
    }

    fn check(
        f: &Fixture,
        t: &SignedTicket,
        now: u64,
        cache: &mut ReplayCache,
    ) -> Result<Ticket, TicketError> {
        verify(t, &f.server.public(), &f.host, &f.viewer, now, cache)
    }

    #[test]
    fn good_ticket_verifies_once() {
        let f = fixture();
        let t = ticket(&f);
        let signed = sign(&t, &f.server).unwrap();
        let mut cache = ReplayCache::new(16);
        assert_eq!(check(&f, &signed, NOW + 10, &mut cache).unwrap(), t);
        assert_eq!(
            check(&f, &signed, NOW + 11, &mut cache),
            Err(TicketError::Replayed)
        );
    }

    #[test]
    fn every_refusal() {
        let f = fixture();
        let mut cache = ReplayCache::new(16);
        let t = ticket(&f);
        // Signed by another key.
        let other = sign(&t, &Identity::generate()).unwrap();
        assert_eq!(
            check(&f, &other, NOW, &mut cache),
            Err(TicketError::BadSignature)
        );
        // Body flipped after signing.
        let mut flipped = sign(&t, &f.server).unwrap();
        let last = flipped.body.len() - 1;
        flipped.body[last] ^= 1;
        assert_eq!(
            check(&f, &flipped, NOW, &mut cache),
            Err(TicketError::BadSignature)
        );
        // Other audience.
        let wrong = Ticket {
            audience: PeerId::random().into(),
            nonce: new_nonce(),
            ..t.clone()
        };
        assert!(matches!(
            check(&f, &sign(&wrong, &f.server).unwrap(), NOW, &mut cache),
            Err(TicketError::WrongAudience { .. })
        ));
        // Other holder.
        let wrong = Ticket {
            holder: PeerId::random().into(),
            nonce: new_nonce(),
            ..t.clone()
        };
        assert_eq!(
            check(&f, &sign(&wrong, &f.server).unwrap(), NOW, &mut cache),
            Err(TicketError::WrongHolder)
        );
        // Expired, and exactly at expiry.
        let signed = sign(
            &Ticket {
                nonce: new_nonce(),
                ..t.clone()
            },
            &f.server,
        )
        .unwrap();
        assert!(matches!(
            check(&f, &signed, NOW + 300, &mut cache),
            Err(TicketError::Expired { .. })
        ));
        // Not yet valid beyond the skew; within the skew is fine.
        assert!(matches!(
            check(&f, &signed, NOW - CLOCK_SKEW_SECS - 1, &mut cache),
            Err(TicketError::NotYetValid { .. })
        ));
        assert!(check(&f, &signed, NOW - CLOCK_SKEW_SECS, &mut cache).is_ok());
        // Too long a lifetime.
        let long = Ticket {
            expires_at: NOW + MAX_LIFETIME_SECS + 1,
            nonce: new_nonce(),
            ..t.clone()
        };
        assert!(matches!(
            check(&f, &sign(&long, &f.server).unwrap(), NOW, &mut cache),
            Err(TicketError::LifetimeTooLong { .. })
        ));
        // Another version.
        let v2 = Ticket {
            version: 2,
            nonce: new_nonce(),
            ..t.clone()
        };
        assert_eq!(
            check(&f, &sign(&v2, &f.server).unwrap(), NOW, &mut cache),
            Err(TicketError::UnsupportedVersion { got: 2 })
        );
        // Oversized body.
        let big = SignedTicket {
            body: vec![0; MAX_TICKET_LEN + 1],
            signature: vec![],
        };
        assert!(matches!(
            check(&f, &big, NOW, &mut cache),
            Err(TicketError::TooLarge { .. })
        ));
        // Signed garbage.
        let body = b"\xff\xff garbage".to_vec();
        let signature = f.server.sign(&signed_bytes(&body));
        assert!(matches!(
            check(&f, &SignedTicket { body, signature }, NOW, &mut cache),
            Err(TicketError::Malformed { .. })
        ));
    }

    #[test]
    fn replay_cache_is_bounded_and_forgets_only_expired() {
        let mut cache = ReplayCache::new(2);
        cache.check_and_insert(b"a", NOW + 10, NOW).unwrap();
        cache.check_and_insert(b"b", NOW + 1000, NOW).unwrap();
        assert_eq!(
            cache.check_and_insert(b"c", NOW + 10, NOW),
            Err(TicketError::ReplayCacheFull)
        );
        // Once "a" is past expiry (plus skew) it can be forgotten to make room.
        cache
            .check_and_insert(b"c", NOW + 500, NOW + 10 + CLOCK_SKEW_SECS + 1)
            .unwrap();
        assert_eq!(cache.len(), 2);
        assert_eq!(
            cache.check_and_insert(b"b", NOW + 1000, NOW + 100),
            Err(TicketError::Replayed)
        );
    }
}
