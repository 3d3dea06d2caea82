//! Moving a relayed session onto a direct connection, live.
//!
//! When hole punching (or a LAN address learned later) gives a direct connection to the
//! host while the session runs over the relay, the viewer opens a new session stream (it
//! goes on the direct connection: `PreferDirect`) whose first frame is the session's resume
//! token. The host answers on the old stream with its last message there (`Moved`, carrying
//! the next token); the viewer answers the same way; from then on both write and read the
//! new stream with the same Noise transport. Each side reads the old stream up to the
//! other's `Moved` before it reads the new one, so nothing is lost or reordered, and the
//! relayed connection is closed only once bytes have arrived over the direct one.

use std::future::pending;
use std::time::Instant;

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{PeerId, Stream};
use portico_core::wire::session::resume_preface;
use tokio::sync::{mpsc, oneshot, watch};

type ReadHalf = futures::io::ReadHalf<Stream>;
type WriteHalf = futures::io::WriteHalf<Stream>;
type Halves = (ReadHalf, WriteHalf);

/// The session's move off the relay.
pub(crate) struct Migration {
    /// The host.
    peer: PeerId,
    /// Opens the new stream.
    control: libp2p_stream::Control,
    /// Set (ms after dialling) when a direct connection follows a relayed start.
    direct: watch::Receiver<Option<f64>>,
    /// Tells the swarm task to close the relayed connections.
    close_relayed: mpsc::Sender<()>,
    /// The session still runs over the relay.
    relayed: bool,
    /// It may move (not `--relay-only`).
    movable: bool,
    /// A move was started (one per session).
    started: bool,
    /// The resuming stream being opened: its halves once the token is written.
    opening: Option<oneshot::Receiver<Result<Halves, String>>>,
    /// The new read side, to read once the host's last message on the old stream was read.
    pub(crate) next_reader: Option<ReadHalf>,
    /// The relayed connections close when the first bytes arrive on the new stream.
    close_on_data: bool,
    /// When the session moved (ms after the viewer started).
    pub(crate) switched_ms: Option<f64>,
    /// Session bytes carried by the relay (both ways).
    pub(crate) relay_bytes: u64,
}

impl Migration {
    /// For a session to `peer` that started `relayed` (and may move off the relay when
    /// `movable`).
    pub(crate) fn new(
        peer: PeerId,
        control: libp2p_stream::Control,
        relayed: bool,
        movable: bool,
        direct: watch::Receiver<Option<f64>>,
        close_relayed: mpsc::Sender<()>,
    ) -> Self {
        Self {
            peer,
            control,
            direct,
            close_relayed,
            relayed,
            movable,
            started: false,
            opening: None,
            next_reader: None,
            close_on_data: false,
            switched_ms: None,
            relay_bytes: 0,
        }
    }

    /// Resolves once a direct connection exists while the session is relayed and no move
    /// has started (never, otherwise).
    pub(crate) async fn wait_direct(&mut self) {
        if !self.relayed || !self.movable || self.started {
            return pending().await;
        }
        if self.direct.wait_for(Option::is_some).await.is_err() {
            pending::<()>().await;
        }
    }

    /// Counts `n` session bytes while they still go over the relay.
    pub(crate) fn carried(&mut self, n: usize) {
        if self.relayed {
            self.relay_bytes += n as u64;
        }
    }

    /// Opens the resuming stream with `token` (`None`: the host gave none; no move).
    pub(crate) fn start(&mut self, token: Option<Vec<u8>>) {
        self.started = true;
        let Some(token) = token else {
            tracing::debug!("a direct connection, but no resume token: the session stays relayed");
            return;
        };
        let (tx, rx) = oneshot::channel();
        let (mut control, peer) = (self.control.clone(), self.peer);
        tokio::spawn(async move {
            let opened = async {
                let stream = control
                    .open_stream(peer, crate::SESSION)
                    .await
                    .map_err(|e| e.to_string())?;
                let (r, mut w) = stream.split();
                w.write_all(&resume_preface(&token))
                    .await
                    .map_err(|e| e.to_string())?;
                w.flush().await.map_err(|e| e.to_string())?;
                Ok((r, w))
            }
            .await;
            if tx.send(opened).is_err() {
                tracing::debug!("the session ended while the resuming stream opened");
            }
        });
        self.opening = Some(rx);
        tracing::info!("direct connection to the host: moving the session off the relay");
    }

    /// The host moved to our new stream (its `Moved` was read): the new stream's halves.
    pub(crate) async fn take_new(&mut self, started: Instant) -> Result<Halves, String> {
        let rx = self
            .opening
            .take()
            .ok_or("the host moved the session, but no new stream was opened")?;
        let halves = rx.await.map_err(|_| "the resuming stream was lost")??;
        self.relayed = false;
        self.close_on_data = true;
        self.switched_ms = Some(started.elapsed().as_secs_f64() * 1e3);
        Ok(halves)
    }

    /// Bytes arrived on the session's stream: after a move, the relay can go now.
    pub(crate) fn data_arrived(&mut self) {
        if std::mem::take(&mut self.close_on_data) && self.close_relayed.try_send(()).is_err() {
            tracing::debug!("the swarm task is gone; the relayed connection idles out");
        }
    }
}
