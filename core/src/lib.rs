//! Portico core: everything that decides or encodes, and nothing that waits.
//!
//! This crate holds the wire messages and their codec, the machine identity, Internet-IDs,
//! server-signed tickets, the per-session Noise handshake, the access policy and the rate
//! limiters. It has no actix, no tokio and no sockets: every state machine here takes `now`
//! as an argument and returns a decision, so the host, the viewer and the server share one
//! tested implementation and the tests are deterministic.

pub mod area;
pub mod audit_chain;
pub mod bundle;
pub mod cbor;
pub mod clock;
pub mod data_dir;
pub mod identity;
pub mod internet_id;
pub mod link;
pub mod noise;
pub mod policy;
pub mod ratelimit;
pub mod session;
pub mod table;
pub mod text;
pub mod ticket;
pub mod tiles;
pub mod wire;

pub use identity::Identity;
pub use internet_id::InternetId;
