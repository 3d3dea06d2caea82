//! portico-actors: the host agent's actix actors.
//!
//! Host: [`access::AccessControl`] decides requests with `portico-core`'s policy;
//! [`capture::Capture`] grabs the screen (xcap) on its own thread, paced and only when
//! something changed; [`encoder::Encoder`] encodes once per monitor for every viewer
//! (H.264 for motion, lossless tiles at rest); [`input::Input`] injects input (enigo) for
//! sessions holding `control`; [`network::Network`] owns the libp2p Swarm. [`host::start`]
//! wires them; [`session`] serves each `/portico/session/1` stream.
//!
//! This crate is the host agent only; the viewer is `portico-viewer`.

pub mod access;
pub mod audit_log;
pub mod browse;
pub mod capture;
pub mod clipboard;
pub mod console;
pub mod encoder;
pub mod files;
pub mod host;
pub mod input;
pub mod network;
pub mod notify;
pub mod screens;
pub mod session;
