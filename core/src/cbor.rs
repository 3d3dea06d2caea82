//! The leaf pieces every CBOR encoding in core shares: the nesting limit for bytes from peers
//! and the PeerId as it travels. `wire`, `ticket` and `bundle` all build on this module, so
//! none of them imports another for these.

/// Deepest CBOR nesting accepted from a peer; our own messages nest fewer than 8 levels.
pub const MAX_DEPTH: usize = 32;

/// A libp2p PeerId as it travels: its multihash bytes. Converted with `TryFrom` at the edge.
#[derive(Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(transparent)]
pub struct WirePeerId(#[serde(with = "serde_bytes")] pub Vec<u8>);

impl std::fmt::Debug for WirePeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match libp2p_identity::PeerId::from_bytes(&self.0) {
            Ok(p) => write!(f, "{p}"),
            Err(_) => write!(f, "invalid-peer-id({})", hex::encode(&self.0)),
        }
    }
}

impl From<libp2p_identity::PeerId> for WirePeerId {
    fn from(p: libp2p_identity::PeerId) -> Self {
        Self(p.to_bytes())
    }
}

/// A PeerId from the wire that is not a valid multihash.
#[derive(Debug, thiserror::Error)]
#[error("invalid peer id on the wire: {0}")]
pub struct InvalidPeerId(String);

impl TryFrom<&WirePeerId> for libp2p_identity::PeerId {
    type Error = InvalidPeerId;
    fn try_from(w: &WirePeerId) -> Result<Self, Self::Error> {
        libp2p_identity::PeerId::from_bytes(&w.0).map_err(|e| InvalidPeerId(e.to_string()))
    }
}
