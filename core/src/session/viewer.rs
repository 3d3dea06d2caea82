//! The viewer side of a session.

use std::collections::VecDeque;

use crate::noise::Transport;
use crate::policy::{Permission, Permissions};
use crate::wire::session::{
    Accepted, Bye, ByeReason, Clipboard, CopyUpdate, CursorPosition, CursorShape, FileChunk,
    FileEnd, FileOffer, FileResult, InputEvent, LosslessUpdate, Moved, RequestKeyframe,
    SelectMonitor, ServiceDecision, SessionMessage, SetBitrate, VideoFrame,
};

use super::{Channel, SessionError};

/// What the viewer's shell must show or do.
#[derive(Debug, Clone, PartialEq)]
pub enum ViewerEvent {
    /// The owner must accept first.
    Waiting {
        /// The request's number (the owner sees it).
        request_id: u64,
        /// How long the owner has, ms.
        timeout_ms: u64,
    },
    /// The host accepted the session.
    Accepted(Accepted),
    /// The host refused.
    Refused {
        /// Stable code.
        code: String,
        /// The host's sentence.
        message: String,
    },
    /// The session ended (the host said bye or closed the stream).
    Ended {
        /// Why.
        reason: ByeReason,
        /// The host's sentence.
        message: String,
    },
    /// A video frame.
    Video(VideoFrame),
    /// Regions of the picture moved.
    Copy(CopyUpdate),
    /// Lossless regions.
    Lossless(LosslessUpdate),
    /// The pointer's shape (checked: size and image agree, within the limits).
    CursorShape(CursorShape),
    /// A pointer shape that cannot be drawn (why): the shape is dropped, the session goes on.
    BadCursor(String),
    /// Where the pointer is.
    CursorPosition(CursorPosition),
    /// What the session may do changed.
    Permissions(Permissions),
    /// Text from the host's clipboard.
    Clipboard(String),
    /// The host's answer about a file or the clipboard.
    Decision(ServiceDecision),
    /// A file transfer finished (or failed).
    FileResult(FileResult),
    /// A directory listing (remote browsing).
    Listing(crate::wire::session::Listing),
    /// A chunk of a download.
    Download(crate::wire::session::Download),
    /// A download finished or failed.
    DownloadEnd(crate::wire::session::DownloadEnd),
    /// The host took the stream that resumes the session: its next message comes there.
    /// Answer with [`ViewerSession::moved`], then write and read only the new stream.
    Moved,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting,
    Live,
    Ended,
}

/// The viewer side of one session stream.
pub struct ViewerSession {
    /// The encrypted channel and what waits to be written.
    channel: Channel,
    /// Where the session is.
    state: State,
    /// What the host says the session may do.
    permissions: Permissions,
    /// What the shell must show or do.
    events: VecDeque<ViewerEvent>,
    /// The secret for resuming the session on another stream (from the host, used once).
    resume: Option<Vec<u8>>,
}

impl ViewerSession {
    /// A session whose handshake finished; the host has not answered yet.
    pub fn new(transport: Transport) -> Self {
        Self {
            channel: Channel::new(transport),
            state: State::Connecting,
            permissions: Permissions::NONE,
            events: VecDeque::new(),
            resume: None,
        }
    }

    /// Bytes to write to the stream, in order.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.channel.poll()
    }

    /// The next thing to show or do.
    pub fn poll_event(&mut self) -> Option<ViewerEvent> {
        self.events.pop_front()
    }

    /// Accepted and not ended.
    pub fn is_live(&self) -> bool {
        self.state == State::Live
    }

    /// Over (refused, ended, or closed by us).
    pub fn is_ended(&self) -> bool {
        self.state == State::Ended
    }

    /// What the host says the session may do.
    pub fn permissions(&self) -> Permissions {
        self.permissions
    }

    /// The token that resumes this session on another stream (taken: each works once; the
    /// host sends the next one when the move is done).
    pub fn take_resume(&mut self) -> Option<Vec<u8>> {
        self.resume.take()
    }

    /// Asks to list `path` (or download it, `get`) under the host's shared roots.
    pub fn browse(&mut self, req: u32, path: &str, get: bool) -> Result<bool, SessionError> {
        self.send_live(&SessionMessage::Browse(crate::wire::session::Browse {
            req,
            path: path.to_string(),
            get,
        }))
    }

    /// Tells the host our next message comes on the new stream (after the host's
    /// [`ViewerEvent::Moved`]).
    pub fn moved(&mut self) -> Result<bool, SessionError> {
        self.send_live(&SessionMessage::Moved(Moved::default()))
    }

    fn send(&mut self, msg: &SessionMessage) -> Result<(), SessionError> {
        self.channel.send(msg)
    }

    fn send_live(&mut self, msg: &SessionMessage) -> Result<bool, SessionError> {
        if self.state != State::Live {
            return Ok(false);
        }
        self.send(msg)?;
        Ok(true)
    }

    /// Sends input when the session holds `control` (or `force`, to test the host's own
    /// enforcement); a view-only session keeps its input local. Returns whether it was sent.
    pub fn input(&mut self, ev: InputEvent, force: bool) -> Result<bool, SessionError> {
        if !(force || self.permissions.has(Permission::Control)) {
            return Ok(false);
        }
        self.send_live(&SessionMessage::Input(ev))
    }

    /// Asks for a keyframe (after a decode error).
    pub fn request_keyframe(&mut self) -> Result<bool, SessionError> {
        self.send_live(&SessionMessage::RequestKeyframe(RequestKeyframe {}))
    }

    /// Asks for another monitor (`None`: the whole desktop).
    pub fn select_monitor(&mut self, index: Option<u8>) -> Result<bool, SessionError> {
        self.send_live(&SessionMessage::SelectMonitor(SelectMonitor { index }))
    }

    /// Asks for a video bitrate.
    pub fn set_bitrate(&mut self, bps: u32) -> Result<bool, SessionError> {
        self.send_live(&SessionMessage::SetBitrate(SetBitrate { bps }))
    }

    /// Offers clipboard text to the host.
    pub fn clipboard(&mut self, text: String) -> Result<bool, SessionError> {
        self.send_live(&SessionMessage::Clipboard(Clipboard { text }))
    }

    /// Offers a file.
    pub fn offer_file(&mut self, offer: FileOffer) -> Result<bool, SessionError> {
        self.send_live(&SessionMessage::FileOffer(offer))
    }

    /// Sends a chunk of an allowed file.
    pub fn file_chunk(&mut self, chunk: FileChunk) -> Result<bool, SessionError> {
        self.send_live(&SessionMessage::FileChunk(chunk))
    }

    /// Says the file is complete.
    pub fn file_end(&mut self, transfer_id: u64) -> Result<bool, SessionError> {
        self.send_live(&SessionMessage::FileEnd(FileEnd { transfer_id }))
    }

    /// Closes the session from this side.
    pub fn bye(&mut self, message: &str) -> Result<(), SessionError> {
        if self.state == State::Ended {
            return Ok(());
        }
        self.state = State::Ended;
        self.send(&SessionMessage::Bye(Bye {
            reason: ByeReason::Closed,
            message: message.into(),
        }))
    }

    /// Bytes from the host; `b""` is the end of the stream.
    pub fn handle_bytes(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        if bytes.is_empty() {
            if self.state != State::Ended {
                let setup = self.state == State::Connecting;
                self.state = State::Ended;
                let message = if setup {
                    "the host closed the session during setup"
                } else {
                    "the host closed the session"
                };
                self.events.push_back(ViewerEvent::Ended {
                    reason: ByeReason::Closed,
                    message: message.into(),
                });
            }
            return Ok(());
        }
        for msg in self.channel.receive(bytes)? {
            self.message(msg);
        }
        Ok(())
    }

    fn message(&mut self, msg: SessionMessage) {
        if self.state == State::Ended {
            return;
        }
        let ev = match (self.state, super::from_host::clean_message(msg)) {
            (State::Connecting, SessionMessage::Waiting(w)) => ViewerEvent::Waiting {
                request_id: w.request_id,
                timeout_ms: w.timeout_ms,
            },
            (State::Connecting, SessionMessage::Accepted(mut a)) => {
                self.state = State::Live;
                self.permissions = a.permissions;
                self.resume = a.resume.take();
                ViewerEvent::Accepted(a)
            }
            (State::Connecting, SessionMessage::Refused(r)) => {
                self.state = State::Ended;
                ViewerEvent::Refused {
                    code: r.code,
                    message: r.message,
                }
            }
            (_, SessionMessage::Bye(b)) => {
                self.state = State::Ended;
                ViewerEvent::Ended {
                    reason: b.reason,
                    message: b.message,
                }
            }
            (State::Live, SessionMessage::Video(v)) => ViewerEvent::Video(v),
            (State::Live, SessionMessage::Copy(c)) => ViewerEvent::Copy(c),
            (State::Live, SessionMessage::Lossless(l)) => ViewerEvent::Lossless(l),
            (State::Live, SessionMessage::Cursor(c)) => match CursorShape::try_from(c) {
                Ok(shape) => ViewerEvent::CursorShape(shape),
                // The cursor is drawn locally; a bad image only loses the shape.
                Err(e) => ViewerEvent::BadCursor(e.to_string()),
            },
            (State::Live, SessionMessage::CursorPosition(p)) => ViewerEvent::CursorPosition(p),
            (State::Live, SessionMessage::PermissionsChanged(p)) => {
                self.permissions = p.permissions;
                ViewerEvent::Permissions(p.permissions)
            }
            (State::Live, SessionMessage::Clipboard(c)) => ViewerEvent::Clipboard(c.text),
            (State::Live, SessionMessage::ServiceDecision(d)) => ViewerEvent::Decision(d),
            (State::Live, SessionMessage::FileResult(r)) => ViewerEvent::FileResult(r),
            (State::Live, SessionMessage::Listing(l)) => ViewerEvent::Listing(l),
            (State::Live, SessionMessage::Download(d)) => ViewerEvent::Download(d),
            (State::Live, SessionMessage::DownloadEnd(e)) => ViewerEvent::DownloadEnd(e),
            (State::Live, SessionMessage::Moved(m)) => {
                self.resume = m.next_resume;
                ViewerEvent::Moved
            }
            // Anything else is out of place for this state: ignored.
            _ => return,
        };
        self.events.push_back(ev);
    }
}
