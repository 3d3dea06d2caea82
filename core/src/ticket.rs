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
    /// This account holds its whole share of the replay cache.
    #[error(
        "too many tickets of account {user} in flight at this host; try again in a few minutes"
    )]
    AccountBusy {
        /// The account.
        user: String,
    },
    /// Not the kind of ticket this request needs.
    #[error("a {got:?} ticket cannot be used here")]
    WrongKind {
        /// The ticket's kind.
        got: TicketKind,
    },
}

/// Live nonces one account may hold in a host's replay cache: one account cannot fill the
/// cache and lock everyone else out.
pub const NONCES_PER_ACCOUNT: usize = 64;

/// Remembers nonces of tickets a host admitted (or asked its owner about) until they
/// expire. Bounded in all and per account: when full of unexpired nonces it refuses new
/// tickets ([`TicketError::ReplayCacheFull`], [`TicketError::AccountBusy`]) instead of
/// forgetting. [`verify`] only reads it; the host records a ticket with
/// [`ReplayCache::remember`] once its decision admits or asks, so tickets the policy refuses
/// cost the cache nothing.
#[derive(Debug)]
pub struct ReplayCache {
    /// Nonce → expiry (Unix seconds) and account.
    seen: HashMap<Vec<u8>, (u64, String)>,
    /// Live nonces per account.
    per_account: HashMap<String, usize>,
    /// Most nonces remembered at once.
    capacity: usize,
}

/// A remembered nonce, as a host keeps it across restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RememberedNonce {
    /// The ticket's nonce.
    #[serde(with = "serde_bytes")]
    pub nonce: Vec<u8>,
    /// Its expiry, Unix seconds.
    pub expires_at: u64,
    /// The account it was issued for.
    pub account: String,
}

impl ReplayCache {
    /// A cache remembering at most `capacity` live nonces.
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: HashMap::new(),
            per_account: HashMap::new(),
            capacity,
        }
    }

    /// Whether `nonce` was remembered.
    pub fn contains(&self, nonce: &[u8]) -> bool {
        self.seen.contains_key(nonce)
    }

    /// Records `ticket`'s nonce; refuses one seen before, or when the cache or the
    /// account's share of it is full of nonces that have not expired.
    pub fn remember(&mut self, ticket: &Ticket, now: u64) -> Result<(), TicketError> {
        let account = &ticket.subject.user;
        if self.seen.contains_key(&ticket.nonce) {
            return Err(TicketError::Replayed);
        }
        let full = |c: &Self| {
            c.seen.len() >= c.capacity
                || c.per_account.get(account).copied().unwrap_or(0) >= NONCES_PER_ACCOUNT
        };
        if full(self) {
            self.forget_expired(now);
            if self.seen.len() >= self.capacity {
                return Err(TicketError::ReplayCacheFull);
            }
            if full(self) {
                return Err(TicketError::AccountBusy {
                    user: account.clone(),
                });
            }
        }
        self.seen
            .insert(ticket.nonce.clone(), (ticket.expires_at, account.clone()));
        *self.per_account.entry(account.clone()).or_default() += 1;
        Ok(())
    }

    fn forget_expired(&mut self, now: u64) {
        let per_account = &mut self.per_account;
        self.seen.retain(|_, (exp, account)| {
            let live = *exp + CLOCK_SKEW_SECS >= now;
            if !live {
                if let Some(n) = per_account.get_mut(account) {
                    *n = n.saturating_sub(1);
                }
            }
            live
        });
        self.per_account.retain(|_, n| *n > 0);
    }

    /// The live nonces, to keep across a restart.
    pub fn entries(&self, now: u64) -> Vec<RememberedNonce> {
        self.seen
            .iter()
            .filter(|(_, (exp, _))| *exp + CLOCK_SKEW_SECS >= now)
            .map(|(nonce, (expires_at, account))| RememberedNonce {
                nonce: nonce.clone(),
                expires_at: *expires_at,
                account: account.clone(),
            })
            .collect()
    }

    /// Takes back nonces kept across a restart (expired ones and any beyond the bounds
    /// are dropped: they are refused as expired anyway, or the file was not ours).
    pub fn restore(&mut self, entries: Vec<RememberedNonce>, now: u64) {
        for e in entries {
            let live = e.expires_at + CLOCK_SKEW_SECS >= now
                && e.expires_at.saturating_sub(now) <= MAX_LIFETIME_SECS + CLOCK_SKEW_SECS;
            let room = self.seen.len() < self.capacity
                && self.per_account.get(&e.account).copied().unwrap_or(0) < NONCES_PER_ACCOUNT;
            if live && room && e.nonce.len() <= 64 && !self.seen.contains_key(&e.nonce) {
                *self.per_account.entry(e.account.clone()).or_default() += 1;
                self.seen.insert(e.nonce, (e.expires_at, e.account));
            }
        }
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
/// server key, audience, holder, validity window, and that `replay` has not seen it.
/// Returns the ticket's contents; the caller records it with [`ReplayCache::remember`] when
/// it lets the ticket count.
pub fn verify(
    signed: &SignedTicket,
    server_key: &PublicKey,
    me: &PeerId,
    holder: &PeerId,
    now: u64,
    replay: &ReplayCache,
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
    if replay.contains(&ticket.nonce) {
        return Err(TicketError::Replayed);
    }
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
            check(&f, &signed, NOW + 10, &mut cache).unwrap(),
            t,
            "not remembered yet"
        );
        cache.remember(&t, NOW + 10).unwrap();
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

    fn nonce_of(account: &str, nonce: &[u8], expires_at: u64) -> Ticket {
        let f = fixture();
        let mut t = ticket(&f);
        t.subject.user = account.into();
        t.nonce = nonce.to_vec();
        t.expires_at = expires_at;
        t
    }

    #[test]
    fn replay_cache_is_bounded_and_forgets_only_expired() {
        let mut cache = ReplayCache::new(2);
        cache.remember(&nonce_of("a", b"a", NOW + 10), NOW).unwrap();
        cache
            .remember(&nonce_of("a", b"b", NOW + 1000), NOW)
            .unwrap();
        assert_eq!(
            cache.remember(&nonce_of("b", b"c", NOW + 10), NOW),
            Err(TicketError::ReplayCacheFull)
        );
        // Once "a" is past expiry (plus skew) it can be forgotten to make room.
        let later = NOW + 10 + CLOCK_SKEW_SECS + 1;
        cache
            .remember(&nonce_of("b", b"c", NOW + 500), later)
            .unwrap();
        assert_eq!(cache.len(), 2);
        assert_eq!(
            cache.remember(&nonce_of("a", b"b", NOW + 1000), NOW + 100),
            Err(TicketError::Replayed)
        );
        // Kept across a restart: the live ones come back, refused again.
        let mut again = ReplayCache::new(2);
        again.restore(cache.entries(later), later);
        assert!(again.contains(b"b") && again.contains(b"c") && !again.contains(b"a"));
    }

    #[test]
    fn one_account_cannot_fill_the_cache() {
        let mut cache = ReplayCache::new(4 * NONCES_PER_ACCOUNT);
        for i in 0..NONCES_PER_ACCOUNT as u32 {
            cache
                .remember(&nonce_of("mallory", &i.to_be_bytes(), NOW + 300), NOW)
                .unwrap();
        }
        assert_eq!(
            cache.remember(&nonce_of("mallory", b"one more", NOW + 300), NOW),
            Err(TicketError::AccountBusy {
                user: "mallory".into()
            })
        );
        cache
            .remember(&nonce_of("alice", b"alice's", NOW + 300), NOW)
            .unwrap();
        // Mallory's share frees up as the nonces expire.
        let later = NOW + 300 + CLOCK_SKEW_SECS + 1;
        cache
            .remember(&nonce_of("mallory", b"one more", later + 300), later)
            .unwrap();
    }
}
