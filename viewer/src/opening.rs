//! The session stream and its Noise handshake, tried again when the host drops the stream
//! before answering. A host hands inbound streams to its sessions through a queue that can
//! overflow when many viewers open theirs in the same instant; the host then drops the
//! stream, and the viewer sees "connection is closed" before any answer. Nothing of the
//! session existed yet, so a fresh stream and handshake are safe: up to [`ATTEMPTS`]
//! times with a growing, jittered pause, and once over a new connection if the old one is
//! gone.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{AsyncReadExt, AsyncWriteExt};
use portico_core::identity::Identity;
use portico_core::noise::{Initiator, Transport};
use portico_core::wire::handshake::AccessRequest;
use portico_signal_client::peer::SESSION;
use portico_signal_client::session_io::{read_handshake, StreamError};

use crate::dial::{connect, Connected};
use crate::{Dial, ViewerError};

/// Tries at most.
const ATTEMPTS: u32 = 5;

/// The stream's halves.
pub(crate) type Halves = (
    futures::io::ReadHalf<libp2p::Stream>,
    futures::io::WriteHalf<libp2p::Stream>,
);

/// Why one attempt failed.
enum Failed {
    /// The stream could not be opened (the connection may be gone).
    Open(String),
    /// The stream broke before the host answered: worth another try.
    Dropped(StreamError),
    /// Anything else (a key that does not verify, a protocol error): final.
    Final(ViewerError),
}

/// Opens the session stream on `conn` and runs the handshake asking `request`; returns
/// the connection used (a new one after a redial), the stream and the transport.
pub(crate) async fn open(
    identity: &Identity,
    dial: &Dial,
    mut conn: Connected,
    request: &AccessRequest,
) -> Result<(Connected, Halves, Transport), ViewerError> {
    let mut redialled = false;
    let mut last = String::new();
    for attempt in 1..=ATTEMPTS {
        match once(identity, &mut conn, request).await {
            Ok((halves, transport)) => return Ok((conn, halves, transport)),
            Err(Failed::Final(e)) => return Err(e),
            Err(Failed::Dropped(e)) => last = e.to_string(),
            Err(Failed::Open(e)) if !redialled => {
                tracing::info!(error = %e, "no stream to the host; dialling it again");
                conn = connect(identity, dial).await?;
                redialled = true;
                last = e;
            }
            Err(Failed::Open(e)) => last = e,
        }
        if attempt < ATTEMPTS {
            let jitter = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::from(d.subsec_nanos()) % 100);
            let pause = Duration::from_millis((50 << attempt) + jitter);
            tracing::info!(attempt, error = %last, "the host dropped the session stream before answering; opening another");
            tokio::time::sleep(pause).await;
        }
    }
    Err(ViewerError::Connect(format!(
        "the host dropped the session stream {ATTEMPTS} times before answering ({last}); it may be overloaded, try again"
    )))
}

async fn once(
    identity: &Identity,
    conn: &mut Connected,
    request: &AccessRequest,
) -> Result<(Halves, Transport), Failed> {
    let stream = conn
        .control
        .open_stream(conn.peer, SESSION)
        .await
        .map_err(|e| Failed::Open(e.to_string()))?;
    let (mut r, mut w) = stream.split();
    let (initiator, msg1) = Initiator::start(identity, conn.peer, request.clone())
        .map_err(|e| Failed::Final(StreamError::from(e).into()))?;
    let dropped = |e: std::io::Error| Failed::Dropped(StreamError::from(e));
    w.write_all(&msg1).await.map_err(dropped)?;
    w.flush().await.map_err(dropped)?;
    let msg2 = match read_handshake(&mut r).await {
        Ok(m) => m,
        Err(e @ StreamError::Io(_)) => return Err(Failed::Dropped(e)),
        Err(e) => return Err(Failed::Final(e.into())),
    };
    // The host answered: from here on a failure is the session's, not the queue's.
    let (msg3, transport, _host) = initiator
        .finish(&msg2)
        .map_err(|e| Failed::Final(StreamError::from(e).into()))?;
    let fail = |e: std::io::Error| Failed::Final(StreamError::from(e).into());
    w.write_all(&msg3).await.map_err(fail)?;
    w.flush().await.map_err(fail)?;
    Ok(((r, w), transport))
}
