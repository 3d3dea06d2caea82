//! Relay circuits open now, per source address and per destination host: the relay's own
//! limits count per PeerId (free to make) and new circuits per minute, so without this one
//! machine could hold every circuit the relay allows. Sans-IO: the relay's gate asks
//! [`CircuitGate::admit`] before a circuit is accepted; the server loop reports accepted and
//! closed circuits, and hears which source to drop when a host has too many.

use std::collections::HashMap;
use std::net::IpAddr;

use libp2p::PeerId;

/// The counts and the caps.
#[derive(Debug)]
pub(crate) struct CircuitGate {
    per_ip: usize,
    per_host: usize,
    /// The address each source last asked from (set by [`CircuitGate::admit`]).
    asked_from: HashMap<PeerId, IpAddr>,
    /// Open circuits: (source, host) → their source address, one per circuit.
    open: HashMap<(PeerId, PeerId), Vec<IpAddr>>,
    by_ip: HashMap<IpAddr, usize>,
    by_host: HashMap<PeerId, usize>,
}

/// What the loop must do after a circuit opened.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Opened {
    /// Nothing.
    Fine,
    /// The host holds more circuits than allowed: drop this source's connection (the
    /// stranger loses its own circuit, the host keeps the others).
    DropSource,
}

impl CircuitGate {
    pub(crate) fn new(per_ip: usize, per_host: usize) -> Self {
        Self {
            per_ip: per_ip.max(1),
            per_host: per_host.max(1),
            asked_from: HashMap::new(),
            open: HashMap::new(),
            by_ip: HashMap::new(),
            by_host: HashMap::new(),
        }
    }

    /// May `src`, asking from `ip`, open another circuit? (`None`: an address the relay
    /// could not tell, let through to its other limits.)
    pub(crate) fn admit(&mut self, src: PeerId, ip: Option<IpAddr>) -> bool {
        let Some(ip) = ip.map(portico_core::ratelimit::limit_key) else {
            return true;
        };
        if self.by_ip.get(&ip).copied().unwrap_or(0) >= self.per_ip {
            return false;
        }
        // Bounded: sources that asked but never opened are forgotten when it grows.
        if self.asked_from.len() >= 4 * (self.open.len() + 1024) {
            let open = &self.open;
            self.asked_from
                .retain(|peer, _| open.keys().any(|(s, _)| s == peer));
        }
        self.asked_from.insert(src, ip);
        true
    }

    /// A circuit from `src` to `host` opened.
    pub(crate) fn opened(&mut self, src: PeerId, host: PeerId) -> Opened {
        let ip = self.asked_from.get(&src).copied();
        if let Some(ip) = ip {
            *self.by_ip.entry(ip).or_default() += 1;
            self.open.entry((src, host)).or_default().push(ip);
        } else {
            self.open.entry((src, host)).or_default();
        }
        let n = self.by_host.entry(host).or_default();
        *n += 1;
        if *n > self.per_host {
            Opened::DropSource
        } else {
            Opened::Fine
        }
    }

    /// A circuit from `src` to `host` closed.
    pub(crate) fn closed(&mut self, src: PeerId, host: PeerId) {
        let key = (src, host);
        if let Some(ips) = self.open.get_mut(&key) {
            if let Some(ip) = ips.pop() {
                decrement(&mut self.by_ip, &ip);
            }
            if ips.is_empty() {
                self.open.remove(&key);
            }
        }
        decrement(&mut self.by_host, &host);
        if !self.open.keys().any(|(s, _)| *s == src) {
            self.asked_from.remove(&src);
        }
    }
}

fn decrement<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, k: &K) {
    if let Some(n) = map.get_mut(k) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            map.remove(k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn circuits_are_capped_per_address_and_per_host() {
        let mut g = CircuitGate::new(2, 2);
        let (host, other) = (PeerId::random(), PeerId::random());
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "198.51.100.1".parse().unwrap();
        let open = |g: &mut CircuitGate, ip: IpAddr, to: PeerId| {
            let src = PeerId::random();
            g.admit(src, Some(ip)).then(|| (src, g.opened(src, to)))
        };
        // Two from one address, whatever the PeerIds; the third is refused.
        let first = open(&mut g, a, host).unwrap();
        assert_eq!(first.1, Opened::Fine);
        assert!(open(&mut g, a, other).is_some());
        assert!(open(&mut g, a, host).is_none());
        // Another address still gets through.
        assert_eq!(open(&mut g, b, host).unwrap().1, Opened::Fine);
        // A closed circuit frees its address's slot.
        g.closed(first.0, host);
        assert!(open(&mut g, a, host).is_some());
        // The host holds two now; a third (from a fresh address) is dropped.
        let c: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(open(&mut g, c, host).unwrap().1, Opened::DropSource);
        // IPv6 counts by /64.
        let mut g = CircuitGate::new(1, 10);
        assert!(open(&mut g, "2001:db8::1".parse().unwrap(), host).is_some());
        assert!(open(&mut g, "2001:db8::2".parse().unwrap(), host).is_none());
    }
}
