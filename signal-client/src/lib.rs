//! portico-signal-client: what hosts, viewers and the server share on the network side,
//! without the server's store.
//!
//! - [`codec`]: the `/portico/signal/1` request-response codec (length-prefixed CBOR frames,
//!   checked against the maximum before the body is read);
//! - [`client::SignalClient`]: a client for that protocol (viewers, the CLI, simulations),
//!   whose answers come cleaned of hidden characters ([`from_server`]);
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

/// The two pending-connection methods of a `NetworkBehaviour` wrapper, handed to its
/// `inner` field unchanged (wrappers here differ only once a connection is established).
macro_rules! delegate_pending {
    () => {
        fn handle_pending_inbound_connection(
            &mut self,
            connection_id: libp2p::swarm::ConnectionId,
            local_addr: &libp2p::Multiaddr,
            remote_addr: &libp2p::Multiaddr,
        ) -> Result<(), libp2p::swarm::ConnectionDenied> {
            self.inner
                .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
        }

        fn handle_pending_outbound_connection(
            &mut self,
            connection_id: libp2p::swarm::ConnectionId,
            maybe_peer: Option<libp2p::PeerId>,
            addresses: &[libp2p::Multiaddr],
            effective_role: libp2p::core::Endpoint,
        ) -> Result<Vec<libp2p::Multiaddr>, libp2p::swarm::ConnectionDenied> {
            self.inner.handle_pending_outbound_connection(
                connection_id,
                maybe_peer,
                addresses,
                effective_role,
            )
        }
    };
}

pub mod client;
pub mod codec;
pub mod from_server;
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
