//! Sending a file from the viewer: hash it, offer it, stream it once the host allows.

use tokio::sync::{mpsc, oneshot};

use super::ViewerError;
use portico_core::wire::session::SessionMessage;

/// Offered files waiting for the host's answer: transfer number → the signal that lets its
/// sender task start.
pub(super) type Pending =
    std::sync::Arc<std::sync::Mutex<std::collections::HashMap<u64, oneshot::Sender<()>>>>;

/// Chunk size for file transfers.
const FILE_CHUNK: usize = 64 * 1024;

/// Hashes the file, offers it, and starts a task that streams it once allowed.
pub(super) async fn start_send(
    path: &std::path::Path,
    out: mpsc::Sender<SessionMessage>,
    id: u64,
    pending: &Pending,
) -> Result<(), ViewerError> {
    use portico_core::wire::session::{FileChunk, FileEnd, FileOffer};
    use sha2::Digest;
    use tokio::io::AsyncReadExt;
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
    let offer = FileOffer {
        transfer_id: id,
        name,
        size,
        sha256: hasher.finalize().to_vec(),
    };
    out.send(SessionMessage::FileOffer(offer))
        .await
        .map_err(|_| ViewerError::File("the session closed".into()))?;
    let (allow, allowed) = oneshot::channel::<()>();
    if let Ok(mut p) = pending.lock() {
        p.insert(id, allow);
    }
    let path = path.to_path_buf();
    tokio::spawn(async move {
        if allowed.await.is_err() {
            return;
        }
        let bar = indicatif::ProgressBar::new(size);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bytes}/{total_bytes} {wide_bar} {bytes_per_sec} eta {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let Ok(mut f) = tokio::fs::File::open(&path).await else {
            eprintln!("cannot reopen {}", path.display());
            return;
        };
        let mut offset = 0u64;
        let mut buf = vec![0u8; FILE_CHUNK];
        loop {
            let n = match f.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    eprintln!("reading {}: {e}", path.display());
                    return;
                }
            };
            if out
                .send(SessionMessage::FileChunk(FileChunk {
                    transfer_id: id,
                    offset,
                    data: buf[..n].to_vec(),
                }))
                .await
                .is_err()
            {
                return;
            }
            offset += n as u64;
            bar.set_position(offset);
        }
        bar.finish_and_clear();
        // The session may be ending; the host then discards the partial file.
        drop(
            out.send(SessionMessage::FileEnd(FileEnd { transfer_id: id }))
                .await,
        );
    });
    Ok(())
}
