//! portico-signal-client: what hosts, viewers and the server share on the network side,
//! without the server's store.
//!
//! - [`codec`]: the `/portico/signal/1` request-response codec (length-prefixed CBOR frames,
//!   checked against the maximum before the body is read);
//! - [`client::SignalClient`]: a client for that protocol (viewers, the CLI, simulations);
//! - [`swarm`]: the one transport stack (TCP + QUIC, Noise, Yamux, DNS, relay client) and the
//!   behaviour pieces (identify, signal) every Portico swarm is built from;
//! - [`peer`]: the host's and viewer's swarm (session streams, relay client, DCUtR, mDNS);
//! - [`prefer_direct`]: new session streams on a direct connection when there is one;
//! - [`ip_limits`]: inbound connections per IP address, checked before the handshake;
//! - [`only_peer`]: a behaviour served on the connections to one peer only (the host's
//!   signal protocol, for its server);
//! - [`session_io`]: framed handshake reads and stream errors for `/portico/session/1`;
//! - [`password`]: reading a password at a prompt or from stdin;
//! - [`ports`]: the default ports.
//!
//! Depending on this crate instead of `portico-signal` keeps sled, argon2 and the metrics
//! stack out of the host agent and the CLI.

pub mod client;
pub mod codec;
pub mod ip_limits;
pub mod only_peer;
pub mod password;
pub mod peer;
mod peer_behaviour;
pub mod ports;
pub mod prefer_direct;
pub mod session_io;
pub mod swarm;

pub use client::{server_multiaddr, ClientError, SignalClient};
