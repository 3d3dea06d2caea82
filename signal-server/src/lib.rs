//! portico-signal: the self-hosted signalling and authorization server (library).
//!
//! It holds users (argon2id), groups, the node tree with per-node guest/visitor flags,
//! global switches, host registrations (PeerId ↔ Internet-ID ↔ node) and a hash-chained
//! audit log in sled; answers `/portico/signal/1` (register, heartbeat, lookup, login,
//! node listing, tickets); relays for registered hosts behind NAT (circuit relay v2); and
//! pushes changes that may end sessions to hosts.
//!
//! The server is a library: [`start`] binds and returns a [`Running`] handle, [`run`] serves
//! until a shutdown future resolves; `main.rs` only parses the command line. Several
//! servers can run in one process (tests do). The matching client, the codec and the shared
//! swarm pieces live in `portico-signal-client`, so hosts and viewers do not link the store.

pub mod admin;
pub mod config;
pub mod metrics;
pub mod server;
pub mod store;

pub use config::Config;
pub use server::{run, start, Running, ServerError};
pub use store::{audit, Store};
