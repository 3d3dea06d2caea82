//! The one libp2p stack every Portico peer runs on: TCP (no Nagle) and QUIC, Noise, Yamux,
//! DNS and the relay client transport, plus the behaviour pieces hosts, viewers, the signal
//! client and the server all use (identify with a Portico agent string, the signal protocol
//! with its timeout). The server adds bandwidth metrics and the relay server, so it uses the
//! pieces but not [`build`].

use std::time::Duration;

use libp2p::identity::{Keypair, PublicKey};
use libp2p::request_response::{self, ProtocolSupport};
use libp2p::swarm::NetworkBehaviour;
use libp2p::{identify, noise, relay, tcp, yamux, Swarm, SwarmBuilder};
use portico_core::identity::Identity;

use crate::codec::{SignalCodec, PROTOCOL};

/// The identify protocol version every Portico peer announces.
pub const IDENTIFY_PROTOCOL: &str = "/portico/1.0.0";
/// How long a signal request may take before it fails.
pub const SIGNAL_TIMEOUT: Duration = Duration::from_secs(30);

/// The swarm could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up networking ({stage}): {reason}")]
pub struct SwarmError {
    /// Which part of the stack failed.
    pub stage: &'static str,
    /// Why.
    pub reason: String,
}

/// TCP as every Portico peer uses it (no Nagle delay: input and small frames go at once).
pub fn tcp_config() -> tcp::Config {
    tcp::Config::default().nodelay(true)
}

/// Identify with the Portico protocol version and `agent` (e.g. `portico/0.1.0`).
pub fn identify(key: &PublicKey, agent: String) -> identify::Behaviour {
    identify::Behaviour::new(
        identify::Config::new(IDENTIFY_PROTOCOL.into(), key.clone()).with_agent_version(agent),
    )
}

/// The `/portico/signal/1` request-response behaviour (both directions: the server pushes
/// events to hosts as requests).
pub fn signal() -> request_response::Behaviour<SignalCodec> {
    request_response::Behaviour::with_codec(
        SignalCodec,
        [(PROTOCOL, ProtocolSupport::Full)],
        request_response::Config::default().with_request_timeout(SIGNAL_TIMEOUT),
    )
}

/// Builds a peer swarm (host, viewer, signal client) for `identity`: the full transport
/// stack with the relay client, the behaviour `make` returns, and `idle` as the idle
/// connection timeout.
pub fn build<B: NetworkBehaviour>(
    identity: &Identity,
    idle: Duration,
    make: impl FnOnce(&Keypair, relay::client::Behaviour) -> B,
) -> Result<Swarm<B>, SwarmError> {
    let fail = |stage: &'static str| {
        move |e: &dyn std::fmt::Display| SwarmError {
            stage,
            reason: e.to_string(),
        }
    };
    Ok(
        SwarmBuilder::with_existing_identity(identity.keypair().clone())
            .with_tokio()
            .with_tcp(tcp_config(), noise::Config::new, yamux::Config::default)
            .map_err(|e| fail("tcp")(&e))?
            .with_quic()
            .with_dns()
            .map_err(|e| fail("dns")(&e))?
            .with_relay_client(noise::Config::new, yamux::Config::default)
            .map_err(|e| fail("relay client")(&e))?
            .with_behaviour(|key, relay| make(key, relay))
            .map_err(|e| fail("behaviour")(&e))?
            .with_swarm_config(|c| c.with_idle_connection_timeout(idle))
            .build(),
    )
}
