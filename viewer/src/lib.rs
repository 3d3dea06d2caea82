//! portico-viewer: dials a host, runs the session handshake, then drives the
//! `portico_core::session::ViewerSession` machine: decodes H.264 and lossless tiles into a
//! picture, forwards input (only with `control`), sends files and clipboard text. Headless
//! mode records per-frame stats, writes a PNG snapshot and plays an input script, for
//! automation and tests. It prints nothing: what a person should see comes out as
//! [`Notice`]s, which the CLI prints (and turns into progress bars).

mod dial;
pub mod discover;
mod drive;
pub mod fetch;
mod files;
mod migrate;
mod notice;
mod opening;
pub mod picture;
pub mod script;
pub mod window;

use dial::connect;

use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use libp2p::{Multiaddr, PeerId};
use portico_core::identity::Identity;
use portico_core::session::ViewerSession;
use portico_core::wire::handshake::AccessRequest;
use portico_core::wire::session::ByeReason;
use portico_signal_client::peer::SESSION;
use portico_signal_client::session_io::StreamError;
use serde::Serialize;

pub use notice::{Notice, Notify};

/// Where to connect.
#[derive(Debug, Clone)]
pub struct Dial {
    /// Addresses to try (direct and/or relayed).
    pub addrs: Vec<Multiaddr>,
    /// The host's PeerId when known (pinned or looked up); learned on connect otherwise.
    pub peer: Option<PeerId>,
    /// Keep a relayed session on the relay even when a direct connection appears
    /// (`--relay-only`).
    pub stay_relayed: bool,
}

/// Headless options.
#[derive(Clone, Default)]
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
    /// List or download under the host's shared folders, then end.
    pub browse: Option<fetch::BrowseJob>,
    /// Where notices for a person go (`None`: dropped).
    pub notify: Option<Notify>,
    /// Leave the remote cursor out of the snapshot and the window.
    pub no_cursor: bool,
    /// Ask for this monitor once connected (an index into the host's list).
    pub monitor: Option<u8>,
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
    /// The host's bytes broke the session protocol.
    #[error(transparent)]
    Session(#[from] portico_core::session::SessionError),
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
    /// `--monitor N` names a monitor the host does not have.
    #[error("the host has {count} monitor(s), numbered from 0; there is no monitor {index}: pick one of them, or leave --monitor out")]
    NoMonitor {
        /// Asked for.
        index: u8,
        /// How many the host listed.
        count: usize,
    },
    /// A file could not be sent.
    #[error("file not sent: {0}")]
    File(String),
    /// The input script is invalid.
    #[error("input script: {0}")]
    Script(String),
    /// Remote browsing failed (the host's reason, or the download's check).
    #[error("{0}")]
    Browse(String),
    /// Writing outputs failed.
    #[error("cannot write {path}: {reason}")]
    Output {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
}

/// One picture update's figures.
#[derive(Debug, Clone, Serialize)]
pub struct FrameStat {
    /// `video`, `copy` or `lossless`.
    pub kind: &'static str,
    /// Video: the frame's sequence number; copy/lossless: the captured frame's number.
    pub seq: u64,
    /// Encoded size.
    pub bytes: usize,
    /// A start point (an IDR or a lossless update that starts a new context).
    pub keyframe: bool,
    /// Capture → decoded, ms (meaningful when host and viewer share a clock).
    pub latency_ms: f64,
    /// Decode time, ms.
    pub decode_ms: f64,
    /// Arrival, ms since the session was accepted.
    pub at_ms: f64,
}

/// The remote pointer in the stats.
#[derive(Debug, Clone, Serialize)]
pub struct CursorStat {
    /// X in the picture.
    pub x: i32,
    /// Y in the picture.
    pub y: i32,
    /// Inside the shared area and shown.
    pub visible: bool,
    /// The shape's serial.
    pub serial: u32,
    /// The shape's size and hotspot, when known: `[width, height, hot_x, hot_y]`.
    pub shape: Option<[u16; 4]>,
    /// When this position arrived (Unix ms, for latency checks on one machine).
    pub at_unix_ms: u64,
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
    /// The session moved off the relay onto that direct connection, ms after the viewer
    /// started (`path` is then `direct`).
    pub switched_to_direct_ms: Option<f64>,
    /// The same moment in ms since the session was accepted (the clock of
    /// `frame_stats.at_ms`), to find the gap between pictures around it.
    pub switched_at_ms: Option<f64>,
    /// Session bytes (both ways) the relay carried.
    pub relay_bytes: u64,
    /// What the session may do.
    pub permissions: String,
    /// Connect → first decoded frame, ms.
    pub connect_to_first_frame_ms: Option<f64>,
    /// Picture updates applied (video frames, and captured frames sent as copies and
    /// lossless regions).
    pub frames: u64,
    /// H.264 frames decoded.
    pub video_frames: u64,
    /// Lossless updates applied.
    pub lossless_updates: u64,
    /// Copy updates applied (scrolled content).
    pub copy_updates: u64,
    /// Updates refused as malformed (each made the viewer ask for a new start).
    pub bad_updates: u64,
    /// Picture updates per second over the run.
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
    /// The remote pointer as last reported.
    pub cursor: Option<CursorStat>,
    /// Cursor shapes received (each shape is sent once).
    pub cursor_shapes: u64,
    /// The host's monitors (width, height), in its order (`--monitor N` indexes this).
    pub monitors: Vec<(u32, u32)>,
    /// Per frame.
    pub frame_stats: Vec<FrameStat>,
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
    let (conn, (r, w), transport) = opening::open(identity, &dial, conn, &request).await?;
    let (peer, relayed, control) = (conn.peer, conn.relayed, conn.control.clone());
    let machine = ViewerSession::new(transport);
    let path = if relayed { "relayed" } else { "direct" };
    let mig = migrate::Migration::new(
        peer,
        control,
        relayed,
        !dial.stay_relayed,
        conn.direct.clone(),
        conn.close_relayed.clone(),
    );
    let driver = drive::Driver::new(machine, r, w, &opts, started, path, peer, ui, mig)?;
    let (picture, cursor, mut report, ended) = driver.run().await?;
    report.host = peer.to_string();
    report.direct_upgrade_ms = *conn.direct.borrow();
    write_outputs(&opts, &picture, &cursor, &report)?;
    match ended {
        Some(e) => Err(e),
        None => Ok(report),
    }
}

fn write_outputs(
    opts: &Headless,
    picture: &picture::Picture,
    cursor: &picture::Cursor,
    report: &Report,
) -> Result<(), ViewerError> {
    let out = |p: &std::path::Path, reason: String| ViewerError::Output {
        path: p.display().to_string(),
        reason,
    };
    if let Some(p) = &opts.snapshot {
        let cursor = (!opts.no_cursor).then_some(cursor);
        picture.save_png(p, cursor).map_err(|e| out(p, e))?;
    }
    if let Some(p) = &opts.stats {
        let json = serde_json::to_vec_pretty(report).map_err(|e| out(p, e.to_string()))?;
        std::fs::write(p, json).map_err(|e| out(p, e.to_string()))?;
    }
    Ok(())
}

pub(crate) fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// A PeerId shortened for a window title.
pub(crate) fn short(p: &PeerId) -> String {
    let s = p.to_string();
    format!(
        "{}…{}",
        &s[..8.min(s.len())],
        &s[s.len().saturating_sub(6)..]
    )
}
