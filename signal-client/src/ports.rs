//! Default ports (TCP and UDP/QUIC on the same number).

/// A host's direct port (LAN, hole-punched and public connections).
pub const HOST_PORT: u16 = 5650;
/// The signalling/authorization server's port.
pub const SERVER_PORT: u16 = 5655;
/// A host's owner console (loopback; another free port when a second host takes this one).
pub const CONSOLE_PORT: u16 = 5651;
