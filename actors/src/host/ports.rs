//! Several hosts on one machine: a listen address whose port is taken is refused with a clear
//! error, or, for the default port, replaced by a free one.
//!
//! libp2p's TCP listeners set `SO_REUSEPORT`, so a second host binding the first one's TCP
//! port would *succeed* and the kernel would split viewers between the two. Each address is
//! therefore tried first with a plain socket (which fails with "address in use" against any
//! other listener) before libp2p listens on it.

use std::net::{IpAddr, SocketAddr, TcpListener, UdpSocket};

use libp2p::multiaddr::Protocol;
use libp2p::Multiaddr;

use super::{HostError, DEFAULT_PORT};

/// The IP and port a TCP or UDP listen address binds, and whether it is UDP.
fn socket_of(addr: &Multiaddr) -> Option<(SocketAddr, bool)> {
    let mut ip: Option<IpAddr> = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(a.into()),
            Protocol::Ip6(a) => ip = Some(a.into()),
            Protocol::Tcp(port) => return Some((SocketAddr::new(ip?, port), false)),
            Protocol::Udp(port) => return Some((SocketAddr::new(ip?, port), true)),
            _ => {}
        }
    }
    None
}

fn in_use(sa: SocketAddr, udp: bool) -> bool {
    let taken = |e: std::io::Error| e.kind() == std::io::ErrorKind::AddrInUse;
    if udp {
        UdpSocket::bind(sa).err().is_some_and(taken)
    } else {
        TcpListener::bind(sa).err().is_some_and(taken)
    }
}

/// `addr` with its TCP or UDP port replaced.
fn with_port(addr: &Multiaddr, port: u16) -> Multiaddr {
    addr.iter()
        .map(|p| match p {
            Protocol::Tcp(_) => Protocol::Tcp(port),
            Protocol::Udp(_) => Protocol::Udp(port),
            other => other,
        })
        .collect()
}

/// The addresses to listen on: each as given when free; the default port, when taken (another
/// host on this machine), replaced by a free one; any other taken port an error.
pub(super) fn free_listen_addrs(addrs: &[Multiaddr]) -> Result<Vec<Multiaddr>, HostError> {
    let mut out = Vec::with_capacity(addrs.len());
    for addr in addrs {
        match socket_of(addr) {
            Some((sa, udp)) if sa.port() != 0 && in_use(sa, udp) => {
                if sa.port() != DEFAULT_PORT {
                    return Err(HostError::Listen {
                        addr: addr.to_string(),
                        reason: format!(
                            "port {} ({}) is in use by another program (another portico host?); choose another with --listen",
                            sa.port(),
                            if udp { "UDP" } else { "TCP" }
                        ),
                    });
                }
                tracing::info!(%addr, "the default port is taken (another host on this machine?); listening on a free one");
                out.push(with_port(addr, 0));
            }
            _ => out.push(addr.clone()),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_taken_port_is_an_error_and_a_free_one_is_kept() {
        let held = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let taken: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
        let err = free_listen_addrs(&[taken]).unwrap_err().to_string();
        assert!(err.contains("in use"), "{err}");
        drop(held);
        let free: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
        assert_eq!(
            free_listen_addrs(std::slice::from_ref(&free)).unwrap(),
            vec![free]
        );
        let any: Multiaddr = "/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap();
        assert_eq!(
            free_listen_addrs(std::slice::from_ref(&any)).unwrap(),
            vec![any]
        );
        assert_eq!(
            with_port(&"/ip4/127.0.0.1/udp/5650/quic-v1".parse().unwrap(), 0).to_string(),
            "/ip4/127.0.0.1/udp/0/quic-v1"
        );
    }
}
