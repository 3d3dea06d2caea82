//! The viewer: dials a host, runs the session handshake, decodes H.264 and lossless tiles
//! into a picture, and forwards input. Headless mode records per-frame stats, writes a PNG
//! snapshot and plays an input script, for automation and tests.

mod dial;
mod files;
pub mod picture;
pub mod script;
pub mod window;

use dial::connect;
use files::{start_send, Pending};

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{Multiaddr, PeerId};
use portico_core::identity::Identity;
use portico_core::noise::Initiator;
use portico_core::policy::{Permission, Permissions};
use portico_core::wire::handshake::AccessRequest;
use portico_core::wire::session::{Bye, ByeReason, SessionMessage};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::network::SESSION;
use crate::stream_io::{read_handshake, send, Reader, SharedTransport, StreamError};
use picture::Picture;

/// Where to connect.
#[derive(Debug, Clone)]
pub struct Dial {
    /// Addresses to try (direct and/or relayed).
    pub addrs: Vec<Multiaddr>,
    /// The host's PeerId when known (pinned or looked up); learned on connect otherwise.
    pub peer: Option<PeerId>,
}

/// Headless options.
#[derive(Debug, Clone, Default)]
pub struct Headless {
    /// Stop after this many video frames.
    pub frames: Option<u64>,
    /// Stop after this long.
    pub duration: Option<Duration>,
    /// Write the final picture here (PNG).
    pub snapshot: Option<PathBuf>,
    /// Write stats here (JSON).
    pub stats: Option<PathBuf>,
    /// Play this input script (JSON lines).
    pub input_script: Option<PathBuf>,
    /// Send the script's input even when the host granted view-only (tests the host's
    /// enforcement).
    pub force_input: bool,
    /// Ask the host for this video bitrate (bits per second).
    pub bitrate: Option<u32>,
    /// Send this file (the session ends when it has landed, unless frames/duration say more).
    pub send_file: Option<PathBuf>,
    /// Put this text on the host's clipboard.
    pub clipboard: Option<String>,
}

/// Errors of a viewer run.
#[derive(Debug, thiserror::Error)]
pub enum ViewerError {
    /// Networking could not be set up or the host not reached.
    #[error("cannot reach the host: {0}")]
    Connect(String),
    /// The host's key is not the one expected.
    #[error("the host's key changed: expected {expected}, got {got}; refusing to connect")]
    KeyChanged {
        /// Pinned.
        expected: String,
        /// Seen.
        got: String,
    },
    /// The session broke.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// The host refused.
    #[error("the host refused: {message} ({code})")]
    Refused {
        /// Code.
        code: String,
        /// Message.
        message: String,
    },
    /// The host ended the session.
    #[error("{message}")]
    Ended {
        /// Why.
        reason: ByeReason,
        /// The host's sentence.
        message: String,
    },
    /// A file could not be sent.
    #[error("file not sent: {0}")]
    File(String),
    /// The input script is invalid.
    #[error("input script: {0}")]
    Script(String),
    /// Writing outputs failed.
    #[error("cannot write {path}: {reason}")]
    Output {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// One frame's figures.
#[derive(Debug, Clone, Serialize)]
pub struct FrameStat {
    /// Sequence number.
    pub seq: u64,
    /// Encoded size.
    pub bytes: usize,
    /// Keyframe.
    pub keyframe: bool,
    /// Capture → decoded, ms (meaningful when host and viewer share a clock).
    pub latency_ms: f64,
    /// Decode time, ms.
    pub decode_ms: f64,
    /// Arrival, ms since the session was accepted.
    pub at_ms: f64,
}

/// The run's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The host's PeerId.
    pub host: String,
    /// `direct` or `relayed` (the connection the session runs on).
    pub path: String,
    /// A direct connection to the host appeared after a relayed start (DCUtR hole punch),
    /// in ms after connecting.
    pub direct_upgrade_ms: Option<f64>,
    /// What the session may do.
    pub permissions: String,
    /// Connect → first decoded frame, ms.
    pub connect_to_first_frame_ms: Option<f64>,
    /// Video frames decoded.
    pub frames: u64,
    /// Lossless tile updates applied.
    pub tile_updates: u64,
    /// Frames per second over the run.
    pub fps: f64,
    /// Received bitrate (video + tiles), kbit/s.
    pub kbps: f64,
    /// Seconds the session lasted.
    pub seconds: f64,
    /// The file transfer's outcome, when one was sent.
    pub file_result: Option<String>,
    /// The host's answer to `--clipboard`.
    pub clipboard_result: Option<String>,
    /// The last clipboard text the host sent.
    pub clipboard_received: Option<String>,
    /// Per frame.
    pub frame_stats: Vec<FrameStat>,
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Connects, runs the session headless, writes the outputs and returns the report.
pub async fn run_headless(
    identity: &Identity,
    dial: Dial,
    request: AccessRequest,
    opts: Headless,
) -> Result<Report, ViewerError> {
    run(identity, dial, request, opts, None).await
}

/// Connects and runs the session; with a window link, pictures go to the window and its
/// input comes back (the headless outputs are still written when asked for).
pub async fn run(
    identity: &Identity,
    dial: Dial,
    request: AccessRequest,
    opts: Headless,
    ui: Option<window::UiLink>,
) -> Result<Report, ViewerError> {
    let started = Instant::now();
    let conn = connect(identity, &dial).await?;
    let (peer, relayed, mut control) = (conn.peer, conn.relayed, conn.control.clone());
    let stream = control
        .open_stream(peer, SESSION)
        .await
        .map_err(|e| ViewerError::Connect(e.to_string()))?;
    let (mut r, mut w) = stream.split();
    let (initiator, msg1) = Initiator::start(identity, peer, request).map_err(StreamError::from)?;
    w.write_all(&msg1).await.map_err(StreamError::from)?;
    let msg2 = read_handshake(&mut r).await?;
    let (msg3, transport, _host) = initiator.finish(&msg2).map_err(StreamError::from)?;
    w.write_all(&msg3).await.map_err(StreamError::from)?;
    w.flush().await.map_err(StreamError::from)?;
    let transport = SharedTransport::new(transport);
    let mut reader = Reader::new(r, transport.clone());

    let permissions = loop {
        match reader.next().await? {
            Some(SessionMessage::Accepted(a)) => break a.permissions,
            Some(SessionMessage::Waiting(wt)) => eprintln!(
                "waiting for the owner to accept (request {}, up to {} s)…",
                wt.request_id,
                wt.timeout_ms / 1000
            ),
            Some(SessionMessage::Refused(r)) => {
                return Err(ViewerError::Refused {
                    code: r.code,
                    message: r.message,
                })
            }
            Some(SessionMessage::Bye(b)) => {
                return Err(ViewerError::Ended {
                    reason: b.reason,
                    message: b.message,
                })
            }
            Some(_) => {}
            None => {
                return Err(ViewerError::Connect(
                    "the host closed the session during setup".into(),
                ))
            }
        }
    };
    let path = if relayed { "relayed" } else { "direct" };
    if permissions.is_view_only() {
        eprintln!("connected {path}, view-only: the host ignores your input");
    } else {
        eprintln!("connected {path} with {permissions}");
    }

    // Everything the viewer sends goes through one writer task.
    let (out_tx, mut out_rx) = mpsc::channel::<SessionMessage>(64);
    let wt = transport.clone();
    let writer = tokio::spawn(async move {
        while let Some(m) = out_rx.recv().await {
            let bye = matches!(m, SessionMessage::Bye(_));
            send(&mut w, &wt, &m).await?;
            if bye {
                break;
            }
        }
        w.close().await.map_err(StreamError::from)
    });
    if let Some(bps) = opts.bitrate {
        if out_tx
            .send(SessionMessage::SetBitrate(
                portico_core::wire::session::SetBitrate { bps },
            ))
            .await
            .is_err()
        {
            return Err(ViewerError::Connect("the session closed".into()));
        }
    }
    let script = match &opts.input_script {
        Some(p) => Some(script::load(p).map_err(ViewerError::Script)?),
        None => None,
    };
    if let Some(events) = script {
        let may_send = permissions.has(Permission::Control) || opts.force_input;
        if !may_send {
            eprintln!("view-only: not sending the input script (use --force-input to test the host's enforcement)");
        } else {
            let tx = out_tx.clone();
            tokio::spawn(async move {
                for (delay, ev) in events {
                    tokio::time::sleep(delay).await;
                    if tx.send(SessionMessage::Input(ev)).await.is_err() {
                        return;
                    }
                }
            });
        }
    }

    if let Some(text) = &opts.clipboard {
        if out_tx
            .send(SessionMessage::Clipboard(
                portico_core::wire::session::Clipboard { text: text.clone() },
            ))
            .await
            .is_err()
        {
            return Err(ViewerError::Connect("the session closed".into()));
        }
    }
    let ui = ui.map(|mut link| {
        let title = format!(
            "{} ({}, {path})",
            short(&peer),
            if permissions.is_view_only() {
                "view-only"
            } else {
                "interactive"
            }
        );
        if link
            .notify
            .send_event(window::UiEvent::Status(title))
            .is_err()
        {
            tracing::debug!("the window is gone");
        }
        let tx = out_tx.clone();
        let may = permissions.has(Permission::Control);
        let mut input = std::mem::replace(&mut link.input, mpsc::channel(1).1);
        tokio::spawn(async move {
            while let Some(ev) = input.recv().await {
                // View-only: the window's input stays here (the host would drop it anyway).
                if may && tx.send(SessionMessage::Input(ev)).await.is_err() {
                    return;
                }
            }
        });
        link
    });
    let pending = Pending::default();
    if let Some(path) = &opts.send_file {
        start_send(path, out_tx.clone(), 1, &pending).await?;
    }
    // Files dropped on the window go the same way, numbered from 2.
    if let Some(mut dropped) = ui
        .as_ref()
        .and_then(|l| l.files.lock().ok().and_then(|mut f| f.take()))
    {
        let (tx, pending) = (out_tx.clone(), pending.clone());
        tokio::spawn(async move {
            let mut id = 1;
            while let Some(path) = dropped.recv().await {
                id += 1;
                eprintln!("offering {}…", path.display());
                if let Err(e) = start_send(&path, tx.clone(), id, &pending).await {
                    eprintln!("{e}");
                }
            }
        });
    }
    let result = receive(
        &mut reader,
        &opts,
        started,
        permissions,
        pending,
        ui.as_ref(),
    )
    .await;
    // Say goodbye whatever happened; the host may already be gone.
    if out_tx
        .send(SessionMessage::Bye(Bye {
            reason: ByeReason::Closed,
            message: "viewer closed".into(),
        }))
        .await
        .is_ok()
    {
        drop(out_tx);
        match tokio::time::timeout(Duration::from_secs(2), writer).await {
            Ok(Ok(Err(e))) => tracing::debug!(error = %e, "closing the session stream"),
            Ok(Err(e)) => tracing::debug!(error = %e, "writer task failed"),
            _ => {}
        }
    }
    let (picture, mut report, ended) = result?;
    report.host = peer.to_string();
    report.path = path.into();
    report.direct_upgrade_ms = conn.upgrade.lock().ok().and_then(|u| *u);
    if let Some(p) = &opts.snapshot {
        picture.save_png(p).map_err(|reason| ViewerError::Output {
            path: p.display().to_string(),
            reason,
        })?;
    }
    if let Some(p) = &opts.stats {
        let json = serde_json::to_vec_pretty(&report).map_err(|e| ViewerError::Output {
            path: p.display().to_string(),
            reason: e.to_string(),
        })?;
        std::fs::write(p, json).map_err(|e| ViewerError::Output {
            path: p.display().to_string(),
            reason: e.to_string(),
        })?;
    }
    match ended {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

/// Receives until done; a session the host ends still yields the picture and figures so far,
/// with the reason.
async fn receive<R: futures::AsyncRead + Unpin>(
    reader: &mut Reader<R>,
    opts: &Headless,
    started: Instant,
    permissions: Permissions,
    pending: Pending,
    ui: Option<&window::UiLink>,
) -> Result<(Picture, Report, Option<ViewerError>), ViewerError> {
    let show = |picture: &Picture| {
        let Some(link) = ui else { return };
        if let (Some((w, h)), Ok(mut shared)) = (picture.size(), link.shared.lock()) {
            shared.width = w;
            shared.height = h;
            shared.rgba.clear();
            shared.rgba.extend_from_slice(picture.rgba());
        }
        if link.notify.send_event(window::UiEvent::Frame).is_err() {
            tracing::debug!("the window is gone");
        }
    };
    let mut picture = Picture::new()?;
    let mut report = Report {
        host: String::new(),
        path: String::new(),
        direct_upgrade_ms: None,
        permissions: permissions.to_string(),
        connect_to_first_frame_ms: None,
        frames: 0,
        tile_updates: 0,
        fps: 0.0,
        kbps: 0.0,
        seconds: 0.0,
        file_result: None,
        clipboard_result: None,
        clipboard_received: None,
        frame_stats: Vec::new(),
    };
    let t0 = Instant::now();
    let deadline = opts.duration.map(|d| t0 + d);
    let mut bytes = 0usize;
    let mut ended = None;
    loop {
        if opts.frames.is_some_and(|n| report.frames >= n) {
            break;
        }
        // A headless file-only run ends once the file landed (a window stays open).
        if ui.is_none()
            && opts.send_file.is_some()
            && report.file_result.is_some()
            && opts.frames.is_none()
            && opts.duration.is_none()
        {
            break;
        }
        let next = match deadline {
            Some(d) => match tokio::time::timeout_at(d.into(), reader.next()).await {
                Ok(m) => m?,
                Err(_) => break,
            },
            None => reader.next().await?,
        };
        match next {
            None => {
                ended = Some(ViewerError::Ended {
                    reason: ByeReason::Closed,
                    message: "the host closed the session".into(),
                });
                break;
            }
            Some(SessionMessage::Video(v)) => {
                bytes += v.data.len();
                let t = Instant::now();
                let decoded = picture
                    .video(&v)
                    .map_err(|e| ViewerError::Connect(format!("decoding: {e}")))?;
                if !decoded {
                    continue;
                }
                let decode_ms = t.elapsed().as_secs_f64() * 1e3;
                report.frames += 1;
                show(&picture);
                if report.connect_to_first_frame_ms.is_none() {
                    report.connect_to_first_frame_ms = Some(started.elapsed().as_secs_f64() * 1e3);
                }
                let latency_ms = now_us().saturating_sub(v.capture_us) as f64 / 1e3;
                report.frame_stats.push(FrameStat {
                    seq: v.seq,
                    bytes: v.data.len(),
                    keyframe: v.keyframe,
                    latency_ms,
                    decode_ms,
                    at_ms: t0.elapsed().as_secs_f64() * 1e3,
                });
            }
            Some(SessionMessage::Tiles(t)) => {
                bytes += t.tiles.iter().map(|t| t.data.len()).sum::<usize>();
                picture
                    .tiles(&t)
                    .map_err(|e| ViewerError::Connect(format!("bad tiles from the host: {e}")))?;
                report.tile_updates += 1;
                show(&picture);
            }
            Some(SessionMessage::Bye(b)) => {
                ended = Some(ViewerError::Ended {
                    reason: b.reason,
                    message: b.message,
                });
                break;
            }
            Some(SessionMessage::Clipboard(c)) => {
                eprintln!(
                    "clipboard from the host: {:?}",
                    c.text.chars().take(80).collect::<String>()
                );
                report.clipboard_received = Some(c.text);
            }
            Some(SessionMessage::ServiceDecision(d))
                if d.service == portico_core::wire::session::Service::Clipboard =>
            {
                eprintln!("{}{}", d.message, if d.pending { "…" } else { "" });
                if !d.pending {
                    report.clipboard_result = Some(d.message);
                }
            }
            Some(SessionMessage::ServiceDecision(d)) => {
                // Transfer 1 is `--send`: its failure ends the run; dropped files only report.
                let fatal = d.id == 1 && opts.send_file.is_some();
                if d.pending {
                    eprintln!("{}…", d.message);
                } else if d.allowed {
                    let tx = pending.lock().ok().and_then(|mut p| p.remove(&d.id));
                    if tx.is_some_and(|tx| tx.send(()).is_err()) {
                        tracing::debug!("the file sender already stopped");
                    }
                } else if fatal {
                    ended = Some(ViewerError::File(d.message));
                    break;
                } else {
                    eprintln!("file not sent: {}", d.message);
                }
            }
            Some(SessionMessage::FileResult(r)) => {
                if r.ok {
                    eprintln!("file sent: {}", r.message);
                    report.file_result = Some(r.message);
                } else if r.transfer_id == 1 && opts.send_file.is_some() {
                    ended = Some(ViewerError::File(r.message));
                    break;
                } else {
                    eprintln!("file not sent: {}", r.message);
                }
            }
            Some(SessionMessage::PermissionsChanged(p)) => {
                report.permissions = p.permissions.to_string()
            }
            Some(_) => {}
        }
    }
    let secs = t0.elapsed().as_secs_f64().max(1e-3);
    report.seconds = secs;
    report.fps = report.frames as f64 / secs;
    report.kbps = bytes as f64 * 8.0 / 1000.0 / secs;
    Ok((picture, report, ended))
}

/// A PeerId shortened for a window title.
fn short(p: &PeerId) -> String {
    let s = p.to_string();
    format!(
        "{}…{}",
        &s[..8.min(s.len())],
        &s[s.len().saturating_sub(6)..]
    )
}
