//! Server configuration (TOML). Every field has a default; a config file only names what it
//! changes. `portico-signal serve --config FILE` reads it; command-line flags override it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The default port, TCP and UDP (QUIC).
pub const DEFAULT_PORT: u16 = portico_signal_client::ports::SERVER_PORT;

/// Server configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on, TCP and QUIC (UDP). Default `0.0.0.0:5655`.
    pub listen: SocketAddr,
    /// Data directory (server key, sled database, admin socket). Default: the platform data
    /// dir (`~/.local/share/portico-signal`); `--data` and `PORTICO_SIGNAL_DATA` override.
    pub data: Option<PathBuf>,
    /// Name shown to owners ("visitor alice, signed in at NAME"). Default `portico`.
    pub server_name: String,
    /// Address for Prometheus metrics (`GET /metrics`); off when absent. Default off.
    pub metrics: Option<SocketAddr>,
    /// Addresses to advertise to viewers instead of the listen addresses (multiaddrs), for a
    /// server behind port forwarding. Default: none (listen addresses are used).
    pub external_addrs: Vec<String>,
    /// Seconds between host heartbeats; a host is online while seen within 3 intervals.
    /// Default 20.
    pub heartbeat_secs: u32,
    /// Lifetime of a viewer's sign-in session, in hours. Default 12.
    pub session_hours: u32,
    /// Lifetime of tickets, in seconds. Default 300 (5 minutes).
    pub ticket_secs: u32,
    /// Relay (circuit v2) limits.
    pub relay: RelayConfig,
    /// Login backoff.
    pub login: LoginConfig,
    /// Request rates (`[rate]`).
    pub rate: RateConfig,
    /// How hosts the server does not know get in (`[enrollment]`).
    pub enrollment: EnrollmentConfig,
}

/// Relay limits, sized for desktop video. libp2p's defaults (2 minutes, 128 KiB per circuit)
/// would cut a remote-desktop session after a few frames.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelayConfig {
    /// Longest a relayed circuit may live, in seconds. Default 86400 (24 h).
    pub max_circuit_secs: u64,
    /// Most bytes a circuit may carry in each direction; 0 = unlimited. Default 16 GiB (a
    /// 3 Mbit/s session for ~12 hours; sessions that can go direct do).
    pub max_circuit_bytes: u64,
    /// New circuits a source PeerId may open per minute; 0 = unlimited. Default 30.
    pub circuits_per_minute_per_peer: u32,
    /// New circuits a source IP address may open per minute; 0 = unlimited. Default 120.
    pub circuits_per_minute_per_ip: u32,
    /// Most circuits at once. Default 256.
    pub max_circuits: usize,
    /// Most circuits per peer at once. Default 16.
    pub max_circuits_per_peer: usize,
    /// Most circuits open at once from one source address (an IPv6 /64): PeerIds are free,
    /// addresses are not. Default 16.
    pub max_circuits_per_ip: usize,
    /// Most circuits open at once to one host. Default 32.
    pub max_circuits_per_host: usize,
    /// Most reservations at once (registered hosts behind NAT). Default 4096.
    pub max_reservations: usize,
    /// How long a reservation lasts before the host renews it, in seconds. Default 3600.
    pub reservation_secs: u64,
}

/// Request rates for lookups, tickets and principal checks: per PeerId (free to make) and per
/// IP address (costly to change), each a token bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateConfig {
    /// Requests a PeerId may make at once. Default 50.
    pub per_peer_burst: u32,
    /// Sustained requests per second per PeerId. Default 10.
    pub per_peer_per_sec: f64,
    /// Requests an IP address may make at once (many viewers may share a NAT). Default 200.
    pub per_ip_burst: u32,
    /// Sustained requests per second per IP address. Default 40.
    pub per_ip_per_sec: f64,
}

impl Default for RateConfig {
    fn default() -> Self {
        Self {
            per_peer_burst: 50,
            per_peer_per_sec: 10.0,
            per_ip_burst: 200,
            per_ip_per_sec: 40.0,
        }
    }
}

/// Host enrollment. A host the server does not know registers with an enrollment token
/// (`portico-signal node enroll FOLDER`, or inside a provisioning bundle), or waits for an
/// admin's `portico-signal host approve`. There is no open registration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnrollmentConfig {
    /// Hosts without a token wait for approval (`host pending|approve|reject`); off: they
    /// are refused. Default on.
    pub approval: bool,
    /// Most hosts waiting at once (more are refused until the admin clears some). Default 1000.
    pub max_pending: usize,
    /// Most waiting hosts from one IP address (one address cannot fill the queue). Default 8.
    pub max_pending_per_ip: usize,
}

impl Default for EnrollmentConfig {
    fn default() -> Self {
        Self {
            approval: true,
            max_pending: 1000,
            max_pending_per_ip: 8,
        }
    }
}

/// Login backoff policy: per IP address, per IP address and account together (a stranger
/// elsewhere cannot lock an account out), and a ceiling per account past which only known
/// devices may try.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginConfig {
    /// Failed logins allowed before any wait. Default 5.
    pub free_failures: u32,
    /// First wait after that, in milliseconds; doubles per failure. Default 1000.
    pub base_ms: u64,
    /// Longest wait, in seconds. Default 900.
    pub max_secs: u64,
    /// Failed logins for one account, from anywhere, after which it admits only devices
    /// (PeerIds) that signed in as it before, with the usual backoff. Default 100.
    pub account_ceiling: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)),
            data: None,
            server_name: "portico".into(),
            metrics: None,
            external_addrs: Vec::new(),
            heartbeat_secs: 20,
            session_hours: 12,
            ticket_secs: 300,
            relay: RelayConfig::default(),
            login: LoginConfig::default(),
            rate: RateConfig::default(),
            enrollment: EnrollmentConfig::default(),
        }
    }
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            max_circuit_secs: 24 * 3600,
            max_circuit_bytes: 16 << 30,
            circuits_per_minute_per_peer: 30,
            circuits_per_minute_per_ip: 120,
            max_circuits: 256,
            max_circuits_per_peer: 16,
            max_circuits_per_ip: 16,
            max_circuits_per_host: 32,
            max_reservations: 4096,
            reservation_secs: 3600,
        }
    }
}

impl Default for LoginConfig {
    fn default() -> Self {
        Self {
            free_failures: 5,
            base_ms: 1000,
            max_secs: 900,
            account_ceiling: 100,
        }
    }
}

impl LoginConfig {
    /// The first wait.
    pub fn base(&self) -> Duration {
        Duration::from_millis(self.base_ms)
    }

    /// The longest wait.
    pub fn max(&self) -> Duration {
        Duration::from_secs(self.max_secs)
    }
}

/// A config file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this config.
    #[error("config file {path} is invalid: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What toml reported (with line and column).
        source: Box<toml::de::Error>,
    },
}

impl Config {
    /// Reads a TOML config file.
    pub fn from_file(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.to_path_buf(),
            source: Box::new(source),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_file_keeps_defaults_and_unknown_keys_are_refused() {
        let c: Config =
            toml::from_str("server_name = \"hq\"\n[relay]\nmax_circuit_secs = 60\n").unwrap();
        assert_eq!(c.server_name, "hq");
        assert_eq!(c.relay.max_circuit_secs, 60);
        assert_eq!(c.relay.max_circuit_bytes, 16 << 30);
        assert_eq!(c.listen.port(), DEFAULT_PORT);
        assert!(toml::from_str::<Config>("lisen = \"0.0.0.0:1\"").is_err());
    }
}
