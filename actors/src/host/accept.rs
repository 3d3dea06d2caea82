//! Session streams taken off libp2p as fast as they arrive. `libp2p_stream` hands inbound
//! streams over through a channel with room for one and drops the next while it is full;
//! polled on the host's actix thread, which also runs capture, encode and every session, a
//! burst of viewers opening their streams together lost most of them ("connection is
//! closed" at the viewer). A thread of its own does nothing but move them into a roomy
//! bounded queue for the sessions.

use futures::StreamExt;
use libp2p::{PeerId, Stream};
use tokio::sync::mpsc;

/// Session streams waiting for the host to start their sessions.
const QUEUE: usize = 64;

/// Moves `incoming` to a thread that forwards every stream; the receiving end.
pub(crate) fn spawn(
    mut incoming: libp2p_stream::IncomingStreams,
) -> std::io::Result<mpsc::Receiver<(PeerId, Stream)>> {
    let (tx, rx) = mpsc::channel(QUEUE);
    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    std::thread::Builder::new()
        .name("portico-accept".into())
        .spawn(move || {
            rt.block_on(async move {
                while let Some(s) = incoming.next().await {
                    if tx.send(s).await.is_err() {
                        break;
                    }
                }
            });
        })?;
    Ok(rx)
}
