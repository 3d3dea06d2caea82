//! Sending a file from the viewer: hash it, offer it, stream it once the host allows. Progress
//! goes out as notices (the CLI draws the bar).

use std::path::{Path, PathBuf};

use portico_core::wire::session::{FileChunk, FileOffer};
use sha2::Digest;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};

use crate::drive::Command;
use crate::notice::{Notice, Notify};
use crate::ViewerError;

/// Offered files waiting for the host's answer: transfer number → the signal that lets its
/// sender task start.
pub(crate) type Pending =
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<u64, oneshot::Sender<()>>>>;

/// Chunk size for file transfers.
const FILE_CHUNK: usize = 64 * 1024;

/// Hashes the file, offers it, and starts a task that streams it once allowed.
pub(crate) async fn offer(
    path: &Path,
    id: u64,
    out: &mpsc::Sender<Command>,
    pending: &Pending,
    notify: Option<Notify>,
) -> Result<(), ViewerError> {
    let err = |e: std::io::Error| ViewerError::File(format!("{}: {e}", path.display()));
    let mut f = tokio::fs::File::open(path).await.map_err(err)?;
    let size = f.metadata().await.map_err(err)?.len();
    let mut hasher = sha2::Sha256::new();
    let mut buf = vec![0u8; FILE_CHUNK];
    loop {
        let n = f.read(&mut buf).await.map_err(err)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let (allow, allowed) = oneshot::channel::<()>();
    if let Ok(mut p) = pending.lock() {
        p.insert(id, allow);
    }
    let offer = FileOffer {
        transfer_id: id,
        name,
        size,
        sha256: hasher.finalize().to_vec(),
    };
    out.send(Command::Offer(offer))
        .await
        .map_err(|_| ViewerError::File("the session closed".into()))?;
    let (path, out) = (path.to_path_buf(), out.clone());
    tokio::spawn(async move {
        if allowed.await.is_ok() {
            stream(path, id, size, out, notify).await;
        }
    });
    Ok(())
}

async fn stream(
    path: PathBuf,
    id: u64,
    size: u64,
    out: mpsc::Sender<Command>,
    notify: Option<Notify>,
) {
    let tell = |n: Notice| crate::notice::notify(&notify, n);
    tell(Notice::FileStarted { id, size });
    let Ok(mut f) = tokio::fs::File::open(&path).await else {
        tell(Notice::FileNotSent(format!(
            "cannot reopen {}",
            path.display()
        )));
        return;
    };
    let mut offset = 0u64;
    let mut buf = vec![0u8; FILE_CHUNK];
    loop {
        let n = match f.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                tell(Notice::FileNotSent(format!(
                    "reading {}: {e}",
                    path.display()
                )));
                return;
            }
        };
        let chunk = FileChunk {
            transfer_id: id,
            offset,
            data: buf[..n].to_vec(),
        };
        if out.send(Command::Chunk(chunk)).await.is_err() {
            return;
        }
        offset += n as u64;
        tell(Notice::FileProgress { id, sent: offset });
    }
    // The session may be ending; the host then discards the partial file.
    if out.send(Command::FileEnd(id)).await.is_err() {
        tracing::debug!(transfer = id, "the session closed before the file's end");
    }
}
