//! The admin socket: `DATA/admin.sock`, mode 0600, one JSON command and one JSON reply per
//! connection. Only the server's own user (or root) can open it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use super::{AdminCommand, AdminReply};

/// Largest command accepted (a bundle command with many grants fits).
const MAX_COMMAND: u64 = 1024 * 1024;

/// A command and where to send its reply.
pub type AdminRequest = (AdminCommand, oneshot::Sender<AdminReply>);

/// Binds the socket (replacing a stale one) and serves it until the receiver side closes.
pub fn serve(
    dir: &Path,
    tx: mpsc::Sender<AdminRequest>,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let path = dir.join(portico_core::data_dir::ADMIN_SOCKET);
    // The data directory is the owner's alone (0700), so the socket is unreachable to others
    // from the moment it exists, before its own mode is narrowed to 0600 below.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = tokio::net::UnixListener::bind(&path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(tokio::spawn(async move {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "admin socket accept failed");
                    continue;
                }
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                if let Err(e) = handle(stream, tx).await {
                    tracing::warn!(error = %e, "admin connection failed");
                }
            });
        }
    }))
}

async fn handle(
    stream: tokio::net::UnixStream,
    tx: mpsc::Sender<AdminRequest>,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    tokio::io::BufReader::new(read.take(MAX_COMMAND))
        .read_line(&mut line)
        .await?;
    let reply = match serde_json::from_str::<AdminCommand>(&line) {
        Ok(cmd) => {
            let (reply_tx, reply_rx) = oneshot::channel();
            if tx.send((cmd, reply_tx)).await.is_err() {
                AdminReply {
                    ok: false,
                    output: "the server is shutting down".into(),
                    file: None,
                }
            } else {
                reply_rx.await.unwrap_or(AdminReply {
                    ok: false,
                    output: "the server dropped the command".into(),
                    file: None,
                })
            }
        }
        Err(e) => AdminReply {
            ok: false,
            output: format!("bad admin command: {e}"),
            file: None,
        },
    };
    let mut bytes = serde_json::to_vec(&reply).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    write.write_all(&bytes).await?;
    write.shutdown().await
}

/// What happened when the CLI tried the socket.
#[derive(Debug)]
pub enum Sent {
    /// The running server answered.
    Reply(AdminReply),
    /// No server is listening (no socket, or a stale one).
    NotRunning,
}

/// Sends one command to a running server (blocking; used by the CLI).
pub fn send(dir: &Path, cmd: &AdminCommand) -> std::io::Result<Sent> {
    let path: PathBuf = dir.join(portico_core::data_dir::ADMIN_SOCKET);
    let mut stream = match std::os::unix::net::UnixStream::connect(&path) {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(Sent::NotRunning)
        }
        Err(e) => return Err(e),
    };
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut bytes = serde_json::to_vec(cmd).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    stream.write_all(&bytes)?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    let reply = serde_json::from_str(&line)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok(Sent::Reply(reply))
}
