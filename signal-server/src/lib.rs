//! portico-signal: the self-hosted signalling and authorization server (library).
//!
//! The server is a library so tests can start several in one process; `main.rs` only parses
//! the command line. The serving side (accounts, node tree, rendezvous, relay, tickets)
//! lands with the server issue; today the crate provides the binary's identity command.
