//! Prometheus metrics (`--metrics ADDR`, `GET /metrics`): registered and online hosts, logins,
//! tickets, lookups, relay circuits, and transport bytes (relayed traffic dominates them).

use std::net::SocketAddr;
use std::sync::Arc;

use portico_core::ticket::TicketKind;
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: &'static str,
}

/// The server's metrics (cheap to clone; all handles share the registry's atomics).
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    /// Hosts registered (ever).
    pub(crate) registered: Gauge,
    /// Hosts online now.
    pub(crate) online: Gauge,
    /// Logins by result.
    logins: Family<ResultLabel, Counter>,
    /// Tickets by kind.
    tickets: Family<KindLabel, Counter>,
    /// Lookups answered.
    pub(crate) lookups: Counter,
    /// Relay circuits open now.
    pub(crate) circuits: Gauge,
    /// Relay circuits opened.
    pub(crate) circuits_total: Counter,
    /// Relay reservations held now.
    pub(crate) reservations: Gauge,
    /// Registrations refused because the same host key was online from another address.
    pub(crate) duplicate_keys: Counter,
}

impl Metrics {
    /// Registers every metric.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "portico_registered_hosts",
            "Hosts registered with this server",
            self.registered.clone(),
        );
        r.register(
            "portico_online_hosts",
            "Hosts that heartbeated recently",
            self.online.clone(),
        );
        r.register(
            "portico_logins",
            "Viewer sign-ins by result",
            self.logins.clone(),
        );
        r.register(
            "portico_tickets",
            "Tickets issued by kind",
            self.tickets.clone(),
        );
        r.register("portico_lookups", "Lookups answered", self.lookups.clone());
        r.register(
            "portico_relay_circuits_open",
            "Relayed circuits open now",
            self.circuits.clone(),
        );
        r.register(
            "portico_relay_circuits",
            "Relayed circuits opened",
            self.circuits_total.clone(),
        );
        r.register(
            "portico_relay_reservations",
            "Relay reservations held now",
            self.reservations.clone(),
        );
        r.register(
            "portico_duplicate_host_keys",
            "Registrations refused: the host key was online from another address",
            self.duplicate_keys.clone(),
        );
    }

    pub(crate) fn login(&self, ok: bool) {
        self.logins
            .get_or_create(&ResultLabel {
                result: if ok { "ok" } else { "failed" },
            })
            .inc();
    }

    pub(crate) fn ticket(&self, kind: TicketKind) {
        let kind = match kind {
            TicketKind::Visitor => "visitor",
            TicketKind::User => "user",
            TicketKind::Provisioning => "provisioning",
        };
        self.tickets.get_or_create(&KindLabel { kind }).inc();
    }
}

/// Serves `GET /metrics` on `addr`; returns the bound address and the task.
pub async fn serve(
    addr: SocketAddr,
    registry: Arc<Registry>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let registry = registry.clone();
            tokio::spawn(async move {
                // Read the request head (bounded); answer only GET /metrics.
                let mut buf = vec![0u8; 4096];
                let mut n = 0;
                while n < buf.len() {
                    match stream.read(&mut buf[n..]).await {
                        Ok(0) | Err(_) => break,
                        Ok(k) => n += k,
                    }
                    if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let head = String::from_utf8_lossy(&buf[..n]);
                let (status, body) = if head.starts_with("GET /metrics ") {
                    let mut text = String::new();
                    match encode(&mut text, &registry) {
                        Ok(()) => ("200 OK", text),
                        Err(e) => ("500 Internal Server Error", e.to_string()),
                    }
                } else {
                    ("404 Not Found", "try GET /metrics\n".to_string())
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                if let Err(e) = stream.write_all(resp.as_bytes()).await {
                    tracing::debug!(error = %e, "metrics client went away");
                }
            });
        }
    });
    Ok((bound, task))
}
