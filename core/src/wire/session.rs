//! `/portico/session/1`: viewer ↔ host, after the Noise handshake of [`crate::noise`].
//!
//! Every message here travels encrypted (see [`crate::noise::Transport`]). The host first
//! answers the access request (`Waiting`, then `Accepted` or `Refused`); then video flows to
//! the viewer and input, control and service requests flow to the host; `Bye` ends it with a
//! reason the viewer shows.

use serde::{Deserialize, Serialize};

use super::wire_enum;
use crate::policy::Permissions;

/// The libp2p protocol name.
pub const PROTOCOL: &str = "/portico/session/1";

/// Largest session message (a 4K keyframe fits; bigger frames must be split by the encoder).
pub const MAX_SESSION_LEN: usize = 4 * 1024 * 1024;

wire_enum! {
    /// A message on an established session.
    pub enum SessionMessage: "session", version 1, max MAX_SESSION_LEN {
        /// Host → viewer: the owner has been asked; wait.
        1 => Waiting(Waiting),
        /// Host → viewer: access granted.
        2 => Accepted(Accepted),
        /// Host → viewer: access refused (the stream closes after this).
        3 => Refused(Refused),
        /// Host → viewer: an encoded video frame.
        4 => Video(VideoFrame),
        /// Viewer → host: an input event.
        5 => Input(InputEvent),
        /// Viewer → host: send a keyframe.
        6 => RequestKeyframe(RequestKeyframe),
        /// Viewer → host: change the target bitrate.
        7 => SetBitrate(SetBitrate),
        /// Viewer → host: receiver statistics.
        8 => Stats(ReceiverStats),
        /// Either way: the session ends, with a reason.
        9 => Bye(Bye),
        /// Host → viewer: the owner changed this session's permissions.
        10 => PermissionsChanged(PermissionsChanged),
        /// Viewer → host: offer a file.
        11 => FileOffer(FileOffer),
        /// Host → viewer: the owner's answer to a service request.
        12 => ServiceDecision(ServiceDecision),
        /// Viewer → host: a chunk of an allowed file.
        13 => FileChunk(FileChunk),
        /// Viewer → host: all chunks sent.
        14 => FileEnd(FileEnd),
        /// Host → viewer: the file landed (or not).
        15 => FileResult(FileResult),
        /// Either way: clipboard text.
        16 => Clipboard(Clipboard),
        // 17 was `Tiles` (per-tile zstd RGB); content coding replaced it with 21 and 22.
        // 18 was `CursorShape` with raw RGBA; 23 carries it compressed.
        /// Host → viewer: where the pointer is, at input rate.
        19 => CursorPosition(CursorPosition),
        /// Viewer → host: show this monitor (or the whole desktop).
        20 => SelectMonitor(SelectMonitor),
        /// Host → viewer: move regions of the picture (a scrolled terminal, a moved block).
        21 => Copy(CopyUpdate),
        /// Host → viewer: regions coded losslessly in the stream's persistent context.
        22 => Lossless(LosslessUpdate),
        /// Host → viewer: the pointer's shape, compressed (sent once per shape; the viewer
        /// keeps the last by serial).
        23 => Cursor(CursorImage),
        /// Either way: the sender's next message comes on the stream that resumed this
        /// session (see [`RESUME_MAGIC`]); nothing more comes on this one.
        24 => Moved(Moved),
        /// Viewer → host: list a directory or download a file (remote browsing).
        25 => Browse(Browse),
        /// Host → viewer: a directory listing (or why not).
        26 => Listing(Listing),
        /// Host → viewer: a chunk of a downloaded file.
        27 => Download(Download),
        /// Host → viewer: a download finished (its hash) or failed.
        28 => DownloadEnd(DownloadEnd),
    }
}

mod browse;
pub use browse::{Browse, DirEntry, Download, DownloadEnd, Listing, DOWNLOAD_CHUNK, MAX_LISTING};

/// How a stream that resumes a live session starts, instead of a Noise handshake: this
/// magic, then the session's resume token ([`RESUME_TOKEN_LEN`] bytes), as one
/// length-prefixed frame. The token is a secret the host sent inside the encrypted session
/// (in [`Accepted::resume`] or the host's last [`Moved::next_resume`]); the host also checks
/// that the stream comes from the session's own viewer key, and takes each token once.
pub const RESUME_MAGIC: &[u8; 16] = b"portico-resume/1";
/// Length of a resume token.
pub const RESUME_TOKEN_LEN: usize = 32;

/// The first frame of a resuming stream for `token`.
pub fn resume_preface(token: &[u8]) -> Vec<u8> {
    let mut body = RESUME_MAGIC.to_vec();
    body.extend_from_slice(token);
    let mut framed = (body.len() as u32).to_be_bytes().to_vec();
    framed.extend(body);
    framed
}

/// The token in a stream's first frame (without its length prefix), if the frame is a
/// resume preface.
pub fn parse_resume(frame: &[u8]) -> Option<[u8; RESUME_TOKEN_LEN]> {
    let token = frame.strip_prefix(RESUME_MAGIC.as_slice())?;
    token.try_into().ok()
}

/// The session moves to another stream (relay → direct).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Moved {
    /// Host → viewer: the token for the next move (each token is taken once).
    #[serde(
        rename = "t",
        default,
        skip_serializing_if = "Option::is_none",
        with = "serde_bytes"
    )]
    pub next_resume: Option<Vec<u8>>,
}

/// The owner has been asked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Waiting {
    /// The request's number on the host (shown in the console and `portico requests`).
    pub request_id: u64,
    /// How long the owner has before the request counts as refused, in ms.
    pub timeout_ms: u64,
}

/// Access granted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Accepted {
    /// The session's number on the host.
    pub session_id: u64,
    /// What this session may do (`view` alone = view-only).
    pub permissions: Permissions,
    /// Time limit the owner set, in ms from now.
    pub time_limit_ms: Option<u64>,
    /// Monitors available: (width, height) each.
    pub monitors: Vec<(u32, u32)>,
    /// The secret that lets this viewer move the session to another stream (a direct
    /// connection after a relayed start) without a new handshake; see [`RESUME_MAGIC`].
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub resume: Option<Vec<u8>>,
}

/// Access refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Refused {
    /// A stable machine-readable reason (`guest_sharing_off`, `owner_refused`, …).
    pub code: String,
    /// A sentence for the user.
    pub message: String,
}

/// Video codec of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Codec {
    /// H.264 Annex B.
    H264,
}

/// Why this frame was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameRole {
    /// The screen changed.
    Update,
    /// The screen is still; this frame sharpens it (low QP).
    Refine,
}

/// A rectangle in screen pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rect {
    /// Left.
    pub x: u32,
    /// Top.
    pub y: u32,
    /// Width.
    pub w: u32,
    /// Height.
    pub h: u32,
}

/// An encoded video frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VideoFrame {
    /// Frame number per monitor stream.
    pub seq: u64,
    /// Capture time, µs since the Unix epoch on the host's clock.
    pub capture_us: u64,
    /// Decodable on its own.
    pub keyframe: bool,
    /// Monitor index.
    pub monitor: u8,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Codec.
    pub codec: Codec,
    /// Update or refinement.
    pub role: FrameRole,
    /// Regions that changed since the previous frame (empty = unknown / whole frame).
    pub damage: Vec<Rect>,
    /// The encoded bitstream.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// Mouse buttons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MouseButton {
    /// Left.
    Left,
    /// Middle.
    Middle,
    /// Right.
    Right,
}

/// An input event. The same JSON shape is used by `--input-script` lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputEvent {
    /// Absolute pointer position in screen pixels of the monitor.
    PointerMove {
        /// X.
        x: i32,
        /// Y.
        y: i32,
    },
    /// Button press or release.
    Button {
        /// Which button.
        button: MouseButton,
        /// Pressed (true) or released.
        down: bool,
    },
    /// Scroll wheel, in notches.
    Wheel {
        /// Horizontal.
        dx: i32,
        /// Vertical.
        dy: i32,
    },
    /// A key by X keysym name (`Return`, `a`, `Control_L`).
    Key {
        /// Keysym name.
        keysym: String,
        /// Pressed (true) or released.
        down: bool,
    },
    /// Text to type.
    Text {
        /// The text.
        text: String,
    },
}

/// Keyframe request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestKeyframe {}

/// Bitrate change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SetBitrate {
    /// Target bits per second.
    pub bps: u32,
}

/// Receiver statistics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceiverStats {
    /// Last frame sequence decoded.
    pub last_seq: u64,
    /// Frames decoded since the last report.
    pub frames: u32,
    /// Mean decode time, µs.
    pub decode_us: u32,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ByeReason {
    /// The viewer closed.
    Closed,
    /// The owner kicked the session.
    Kicked,
    /// The owner's time limit ran out.
    TimeLimit,
    /// The server revoked the access (group, disabled, node flags).
    Revoked,
    /// The host is shutting down.
    Shutdown,
    /// The peer broke the protocol.
    ProtocolError,
}

/// Session end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bye {
    /// Why.
    pub reason: ByeReason,
    /// A sentence for the user.
    pub message: String,
}

/// New permissions for this session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PermissionsChanged {
    /// What the session may do now.
    pub permissions: Permissions,
}

/// A file offered to the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileOffer {
    /// Transfer number chosen by the viewer.
    pub transfer_id: u64,
    /// File name (the host sanitises it).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content.
    #[serde(with = "serde_bytes")]
    pub sha256: Vec<u8>,
}

/// Services the owner confirms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Service {
    /// A file transfer.
    File,
    /// Clipboard sync.
    Clipboard,
    /// Browsing the host's shared folders and downloading from them (asked once per
    /// session).
    Browse,
}

/// The host's answer to a service request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceDecision {
    /// Which service.
    pub service: Service,
    /// Transfer number (files) or 0.
    pub id: u64,
    /// Allowed now.
    pub allowed: bool,
    /// Waiting for the owner (then another decision follows).
    pub pending: bool,
    /// A sentence for the user.
    pub message: String,
}

/// A chunk of file content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileChunk {
    /// Transfer number.
    pub transfer_id: u64,
    /// Offset of this chunk.
    pub offset: u64,
    /// Content.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// End of file content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEnd {
    /// Transfer number.
    pub transfer_id: u64,
}

/// Outcome of a file transfer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileResult {
    /// Transfer number.
    pub transfer_id: u64,
    /// Landed with the right hash.
    pub ok: bool,
    /// Where it landed, or why not.
    pub message: String,
}

/// Clipboard text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Clipboard {
    /// The text.
    pub text: String,
}

// Media messages sent per captured frame use one-letter field names on the wire (each
// message would otherwise spend ~50 bytes on names: a typed key costs ~100 bytes in all).

/// Most copies in one [`CopyUpdate`].
pub const MAX_COPIES: usize = 64;

/// One region of the picture moved: the pixels of `src` (as they were before this update)
/// are written with their top-left corner at (`dst_x`, `dst_y`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyRect {
    /// Where the pixels come from.
    #[serde(rename = "s")]
    pub src: Rect,
    /// Left of the destination.
    #[serde(rename = "x")]
    pub dst_x: u32,
    /// Top of the destination.
    #[serde(rename = "y")]
    pub dst_y: u32,
}

/// Regions that moved since the last update, applied in order before anything else of
/// the same captured frame (a scroll costs a few bytes instead of the scrolled pixels).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyUpdate {
    /// The encoder's number for the captured frame this belongs to.
    #[serde(rename = "f")]
    pub frame: u64,
    /// Capture time of that frame, µs since the Unix epoch (the same in every message of
    /// one captured frame: viewers count picture updates by it).
    #[serde(rename = "t")]
    pub capture_us: u64,
    /// Monitor index.
    #[serde(rename = "m")]
    pub monitor: u8,
    /// Screen width (the coordinate space).
    #[serde(rename = "w")]
    pub width: u32,
    /// Screen height.
    #[serde(rename = "h")]
    pub height: u32,
    /// The moves, in order (at most [`MAX_COPIES`]).
    #[serde(rename = "c")]
    pub copies: Vec<CopyRect>,
}

/// Regions coded losslessly (see [`crate::tiles::lossless`] for the coding): exact on
/// arrival, kept until a video frame's damage covers them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LosslessUpdate {
    /// The encoder's number for the captured frame this belongs to.
    #[serde(rename = "f")]
    pub frame: u64,
    /// Capture time of that frame, µs since the Unix epoch.
    #[serde(rename = "t")]
    pub capture_us: u64,
    /// Monitor index.
    #[serde(rename = "m")]
    pub monitor: u8,
    /// Screen width (the coordinate space).
    #[serde(rename = "w")]
    pub width: u32,
    /// Screen height.
    #[serde(rename = "h")]
    pub height: u32,
    /// The compressor context starts afresh here (a viewer may start decoding here).
    #[serde(rename = "r")]
    pub reset: bool,
    /// How many rectangles `data` holds.
    #[serde(rename = "n")]
    pub rects: u32,
    /// The rectangles, each with its position and coding, in one flushed zstd block
    /// sequence that continues the previous update's context unless `reset`.
    #[serde(rename = "d", with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// Largest cursor image edge accepted (X servers allow 64; some themes use 256).
pub const MAX_CURSOR_EDGE: u16 = 256;

/// The pointer's shape, as the host reads it and the viewer draws it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CursorShape {
    /// The X server's serial for this shape (the viewer keeps the last by it).
    pub serial: u32,
    /// Width in pixels (at most [`MAX_CURSOR_EDGE`]).
    pub width: u16,
    /// Height in pixels (at most [`MAX_CURSOR_EDGE`]).
    pub height: u16,
    /// Hotspot x (the pixel that points).
    pub hot_x: u16,
    /// Hotspot y.
    pub hot_y: u16,
    /// RGBA, premultiplied alpha, `width * height * 4` bytes.
    pub rgba: Vec<u8>,
}

/// The pointer's shape on the wire: [`CursorShape`] with its image zstd-compressed (a
/// 16×16 I-beam is 1 KiB of RGBA, ~60 bytes compressed; mostly transparent pixels).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorImage {
    /// The X server's serial for this shape.
    #[serde(rename = "s")]
    pub serial: u32,
    /// Width in pixels (at most [`MAX_CURSOR_EDGE`]).
    #[serde(rename = "w")]
    pub width: u16,
    /// Height in pixels (at most [`MAX_CURSOR_EDGE`]).
    #[serde(rename = "h")]
    pub height: u16,
    /// Hotspot x.
    #[serde(rename = "x")]
    pub hot_x: u16,
    /// Hotspot y.
    #[serde(rename = "y")]
    pub hot_y: u16,
    /// The RGBA image (premultiplied), one zstd frame.
    #[serde(rename = "z", with = "serde_bytes")]
    pub zrgba: Vec<u8>,
}

/// Why a cursor image from the host cannot be drawn.
#[derive(Debug, thiserror::Error)]
pub enum CursorError {
    /// Larger than [`MAX_CURSOR_EDGE`] or a hotspot outside the image.
    #[error("cursor {width}×{height} with hotspot ({hot_x}, {hot_y}) is outside the limits (edge ≤ {MAX_CURSOR_EDGE})")]
    BadSize {
        /// Width.
        width: u16,
        /// Height.
        height: u16,
        /// Hotspot x.
        hot_x: u16,
        /// Hotspot y.
        hot_y: u16,
    },
    /// The image does not decompress to exactly `width * height * 4` bytes.
    #[error("cursor image does not decompress to {expected} bytes: {reason}")]
    BadImage {
        /// The size the dimensions call for.
        expected: usize,
        /// What went wrong.
        reason: String,
    },
    /// The local compressor failed.
    #[error("cannot compress the cursor image: {0}")]
    Compress(std::io::Error),
}

impl CursorShape {
    /// The wire form (the image compressed), checked against the limits first.
    pub fn compress(&self) -> Result<CursorImage, CursorError> {
        self.check()?;
        Ok(CursorImage {
            serial: self.serial,
            width: self.width,
            height: self.height,
            hot_x: self.hot_x,
            hot_y: self.hot_y,
            zrgba: zstd::bulk::compress(&self.rgba, 19).map_err(CursorError::Compress)?,
        })
    }

    /// Whether the image is as large as its size says and within the limits (checked
    /// before the viewer draws it).
    pub fn is_valid(&self) -> bool {
        self.check().is_ok()
    }

    fn expected(width: u16, height: u16) -> usize {
        usize::from(width) * usize::from(height) * 4
    }

    fn check(&self) -> Result<(), CursorError> {
        check_size(self.width, self.height, self.hot_x, self.hot_y)?;
        let expected = Self::expected(self.width, self.height);
        if self.rgba.len() != expected {
            return Err(CursorError::BadImage {
                expected,
                reason: format!("{} bytes", self.rgba.len()),
            });
        }
        Ok(())
    }
}

fn check_size(width: u16, height: u16, hot_x: u16, hot_y: u16) -> Result<(), CursorError> {
    if width > MAX_CURSOR_EDGE || height > MAX_CURSOR_EDGE || hot_x > width || hot_y > height {
        return Err(CursorError::BadSize {
            width,
            height,
            hot_x,
            hot_y,
        });
    }
    Ok(())
}

impl TryFrom<CursorImage> for CursorShape {
    type Error = CursorError;

    /// Decompresses at most the size the dimensions call for (≤ 256 KiB), and refuses an
    /// image of any other size.
    fn try_from(c: CursorImage) -> Result<Self, CursorError> {
        check_size(c.width, c.height, c.hot_x, c.hot_y)?;
        let expected = Self::expected(c.width, c.height);
        let bad = |reason: String| CursorError::BadImage { expected, reason };
        let rgba = zstd::bulk::decompress(&c.zrgba, expected).map_err(|e| bad(e.to_string()))?;
        if rgba.len() != expected {
            return Err(bad(format!("{} bytes", rgba.len())));
        }
        Ok(Self {
            serial: c.serial,
            width: c.width,
            height: c.height,
            hot_x: c.hot_x,
            hot_y: c.hot_y,
            rgba,
        })
    }
}

/// Where the pointer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorPosition {
    /// X in the shared picture's pixels (the hotspot's position).
    pub x: i32,
    /// Y in the shared picture's pixels.
    pub y: i32,
    /// Inside the shared area and not hidden.
    pub visible: bool,
    /// The shape in use (its serial).
    pub serial: u32,
}

/// Which monitor to share: an index into [`Accepted::monitors`], or `None` for the whole
/// desktop (every monitor's bounding box).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SelectMonitor {
    /// The monitor, or the whole desktop.
    pub index: Option<u8>,
}
