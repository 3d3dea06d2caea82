//! Async I/O for the session stream: framed handshake messages over any `AsyncRead` (a libp2p
//! stream), and the errors that end one stream. After the handshake the protocol machines
//! of `portico_core::session` own the encrypted transport. Limits come from `portico-core`.

use std::io;
use std::time::Duration;

use futures::{AsyncRead, AsyncReadExt};
use portico_core::noise::{NoiseError, MAX_NOISE_MSG};
use portico_core::wire::codec::{check_prefix, PREFIX_LEN};

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
    /// A host actor the session needs is gone (the host is shutting down).
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
