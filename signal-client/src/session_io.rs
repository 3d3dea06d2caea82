//! Async I/O for the session stream: framed handshake messages and encrypted transport,
//! over any `AsyncRead`/`AsyncWrite` (a libp2p stream). Limits come from `portico-core`.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use portico_core::noise::{NoiseError, Transport, MAX_NOISE_MSG};
use portico_core::wire::codec::{check_prefix, PREFIX_LEN};
use portico_core::wire::session::SessionMessage;

/// How long a peer may take for each handshake message.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors on a session stream. Each ends that stream only.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// I/O failed or the peer closed.
    #[error("stream I/O: {0}")]
    Io(#[from] io::Error),
    /// The peer broke the protocol or the crypto did not verify.
    #[error(transparent)]
    Noise(#[from] NoiseError),
    /// The session protocol machine refused the peer's bytes.
    #[error(transparent)]
    Session(#[from] portico_core::session::SessionError),
    /// The peer was too slow.
    #[error("timed out waiting for the peer")]
    Timeout,
    /// The transport lock was poisoned (a bug elsewhere).
    #[error("session state unavailable")]
    Poisoned,
}

/// Reads one handshake frame (≤ 65535 bytes), refusing a larger length before reading it.
pub async fn read_handshake<R: AsyncRead + Unpin>(r: &mut R) -> Result<Vec<u8>, StreamError> {
    let fut = async {
        let mut prefix = [0u8; PREFIX_LEN];
        r.read_exact(&mut prefix).await?;
        let len = check_prefix(prefix, MAX_NOISE_MSG).map_err(NoiseError::Frame)?;
        let mut body = vec![0u8; len];
        r.read_exact(&mut body).await?;
        Ok::<_, StreamError>(body)
    };
    tokio::time::timeout(HANDSHAKE_TIMEOUT, fut)
        .await
        .map_err(|_| StreamError::Timeout)?
}

/// The encrypted transport shared by a session's reader and writer halves.
#[derive(Clone)]
pub struct SharedTransport(Arc<Mutex<Transport>>);

impl SharedTransport {
    /// Wraps an established transport.
    pub fn new(t: Transport) -> Self {
        Self(Arc::new(Mutex::new(t)))
    }

    /// Encrypts a message (already encoded) for the wire.
    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, StreamError> {
        let mut t = self.0.lock().map_err(|_| StreamError::Poisoned)?;
        Ok(t.seal(plaintext)?)
    }

    /// Encodes and encrypts a message.
    pub fn seal_msg(&self, msg: &SessionMessage) -> Result<Vec<u8>, StreamError> {
        let mut t = self.0.lock().map_err(|_| StreamError::Poisoned)?;
        Ok(t.send(msg)?)
    }

    /// Feeds received bytes and returns the complete messages they finish.
    pub fn open(&self, bytes: &[u8]) -> Result<Vec<SessionMessage>, StreamError> {
        let mut t = self.0.lock().map_err(|_| StreamError::Poisoned)?;
        t.push(bytes);
        let mut out = Vec::new();
        while let Some(m) = t.recv()? {
            out.push(m);
        }
        Ok(out)
    }
}

/// Sends one message.
pub async fn send<W: AsyncWrite + Unpin>(
    w: &mut W,
    t: &SharedTransport,
    msg: &SessionMessage,
) -> Result<(), StreamError> {
    let bytes = t.seal_msg(msg)?;
    w.write_all(&bytes).await?;
    w.flush().await?;
    Ok(())
}

/// Reads until at least one message is complete; `Ok(None)` at a clean end of stream.
pub struct Reader<R> {
    /// The read half.
    inner: R,
    /// The transport.
    transport: SharedTransport,
    /// Messages decoded but not yet returned.
    queue: std::collections::VecDeque<SessionMessage>,
    /// Read buffer.
    buf: Vec<u8>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// Wraps a read half.
    pub fn new(inner: R, transport: SharedTransport) -> Self {
        Self {
            inner,
            transport,
            queue: Default::default(),
            buf: vec![0u8; 64 * 1024],
        }
    }

    /// The next message.
    pub async fn next(&mut self) -> Result<Option<SessionMessage>, StreamError> {
        loop {
            if let Some(m) = self.queue.pop_front() {
                return Ok(Some(m));
            }
            let n = self.inner.read(&mut self.buf).await?;
            if n == 0 {
                return Ok(None);
            }
            self.queue.extend(self.transport.open(&self.buf[..n])?);
        }
    }
}
