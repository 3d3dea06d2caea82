//! Payloads carried inside the session's Noise XX handshake (see [`crate::noise`]).
//!
//! Message 2 (host → viewer) carries [`HandshakePayload::HostHello`]: the host's identity
//! key and its signature over the host's Noise static key. Message 3 (viewer → host) carries
//! [`HandshakePayload::ViewerHello`]: the same proof for the viewer, and the access request.
//! Both are encrypted by Noise (XX encrypts the payloads of messages 2 and 3).

use serde::{Deserialize, Serialize};

use super::wire_enum;
use crate::policy::{AccessKind, RequestedMode};
use crate::ticket::SignedTicket;

/// Largest handshake payload (a few tickets and a message fit easily).
pub const MAX_HANDSHAKE_LEN: usize = 60 * 1024;

wire_enum! {
    /// A payload inside a Noise handshake message.
    pub enum HandshakePayload: "handshake", version 1, max MAX_HANDSHAKE_LEN {
        /// Host's proof of identity (message 2).
        1 => HostHello(HostHello),
        /// Viewer's proof of identity and access request (message 3).
        2 => ViewerHello(ViewerHello),
    }
}

/// Binds a Noise static key to a libp2p identity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdentityProof {
    /// The libp2p public key, protobuf-encoded.
    #[serde(with = "serde_bytes")]
    pub identity_key: Vec<u8>,
    /// Signature by that key over the domain tag and the Noise static public key.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// Host → viewer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostHello {
    /// The host's identity proof.
    pub proof: IdentityProof,
    /// Agent string.
    pub agent: String,
}

/// Viewer → host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewerHello {
    /// The viewer's identity proof.
    pub proof: IdentityProof,
    /// What the viewer asks for.
    pub request: AccessRequest,
}

/// An access request, as the owner will see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessRequest {
    /// Guest, visitor, server user or trusted key.
    pub kind: AccessKind,
    /// Display name the viewer chose (guests) — visitors and users are named by their ticket.
    pub display_name: String,
    /// Message to the owner.
    pub message: String,
    /// Server-signed tickets (visitor or user).
    pub tickets: Vec<SignedTicket>,
    /// Interactive or view-only.
    pub mode: RequestedMode,
    /// Agent string.
    pub agent: String,
}
