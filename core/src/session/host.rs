//! The host side of a session.

use std::collections::{HashMap, VecDeque};

use crate::noise::Transport;
use crate::policy::{Permission, Permissions};
use crate::wire::session::{
    Accepted, Bye, ByeReason, Clipboard, FileOffer, FileResult, InputEvent, Moved,
    PermissionsChanged, Refused, Service, ServiceDecision, SessionMessage, Waiting,
};

use super::{Channel, SessionError, MAX_FILE, MAX_TEXT, MAX_TRANSFERS};

/// What the owner is asked to confirm (the shell passes it back with the answer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ask {
    /// A file transfer.
    File(u64),
    /// The clipboard text waiting in the machine.
    Clipboard,
    /// Browsing the shared folders (once per session).
    Browse,
}

/// What the host's shell must do.
#[derive(Debug, Clone, PartialEq)]
pub enum HostEvent {
    /// The viewer left while waiting for the owner: withdraw the request.
    Withdrawn,
    /// Inject this input (the session holds `control` now).
    Inject(InputEvent),
    /// Input arrived from a session without `control`; it was dropped.
    InputDropped,
    /// Release every key and button this session holds down (it ended or lost `control`).
    ReleaseInput,
    /// The viewer asks for a keyframe (or fell behind).
    Keyframe,
    /// The viewer asks for this video bitrate.
    Bitrate(u32),
    /// The viewer asks for another monitor (`None`: the whole desktop).
    SelectMonitor(Option<u8>),
    /// Ask the owner (guests, visitors): answer with [`HostSession::owner_answered`].
    AskOwner {
        /// What, for the answer.
        ask: Ask,
        /// Which service.
        service: Service,
        /// A line for the owner.
        detail: String,
    },
    /// Put this text on the host's clipboard (allowed).
    SetClipboard(String),
    /// Open the destination for an allowed file; answer with [`HostSession::file_opened`].
    OpenFile(FileOffer),
    /// Write a chunk of an open file; on failure call [`HostSession::file_failed`].
    WriteChunk {
        /// The transfer.
        transfer_id: u64,
        /// Where.
        offset: u64,
        /// What.
        data: Vec<u8>,
    },
    /// The viewer says the file is complete: verify and keep it, then call
    /// [`HostSession::file_finished`].
    FinishFile(u64),
    /// Drop this transfer's partial file.
    AbortFile(u64),
    /// An audit line (transfers allowed by permission).
    Audit(&'static str, String),
    /// The viewer's next message comes on the stream that resumed the session: read that
    /// one from now on.
    PeerMoved,
    /// List or download under the shared roots (allowed); answer with
    /// [`HostSession::listing`] or [`HostSession::download`] and
    /// [`HostSession::download_end`].
    Browse(crate::wire::session::Browse),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Deciding,
    Waiting,
    Live,
    Closed,
}

#[derive(Debug, Clone, PartialEq)]
enum Transfer {
    /// Waiting for the owner.
    Asked(FileOffer),
    /// Allowed; the shell is opening the file.
    Opening,
    /// Receiving chunks.
    Open,
}

/// The host side of one session stream.
pub struct HostSession {
    /// The encrypted channel and what waits to be written.
    channel: Channel,
    /// Where the session is.
    state: State,
    /// Permissions now (kept current by [`HostSession::set_permissions`]).
    pub(super) permissions: Permissions,
    /// Guests and visitors: the owner confirms each file and clipboard use.
    pub(super) confirm: bool,
    /// Video is skipped until a keyframe (at the start and after falling behind).
    need_keyframe: bool,
    /// File transfers in progress.
    transfers: HashMap<u64, Transfer>,
    /// Clipboard text waiting for the owner.
    clip: Option<String>,
    /// Remote browsing: the owner's answer for this session.
    pub(super) browse: super::browse::Gate,
    /// Work for the shell.
    pub(super) events: VecDeque<HostEvent>,
}

impl HostSession {
    /// A session whose handshake finished; the access decision is pending.
    pub fn new(transport: Transport) -> Self {
        Self {
            channel: Channel::new(transport),
            state: State::Deciding,
            permissions: Permissions::NONE,
            confirm: true,
            need_keyframe: true,
            transfers: HashMap::new(),
            clip: None,
            browse: Default::default(),
            events: VecDeque::new(),
        }
    }

    /// Bytes to write to the stream, in order.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.channel.poll()
    }

    /// The next thing the shell must do.
    pub fn poll_event(&mut self) -> Option<HostEvent> {
        self.events.pop_front()
    }

    /// The session is over: the shell closes the stream once transmit is drained.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// The session is live (accepted and not ended).
    pub fn is_live(&self) -> bool {
        self.state == State::Live
    }

    /// Permissions now.
    pub fn permissions(&self) -> Permissions {
        self.permissions
    }

    fn send(&mut self, msg: &SessionMessage) -> Result<(), SessionError> {
        self.channel.send(msg)
    }

    /// Sends `msg` while the session is live (nothing after it ended).
    pub(super) fn send_live(&mut self, msg: &SessionMessage) -> Result<(), SessionError> {
        if self.state == State::Live {
            self.send(msg)?;
        }
        Ok(())
    }

    /// The owner must answer first: tell the viewer.
    pub fn waiting(&mut self, request_id: u64, timeout_ms: u64) -> Result<(), SessionError> {
        if self.state != State::Deciding {
            return Ok(());
        }
        self.state = State::Waiting;
        self.send(&SessionMessage::Waiting(Waiting {
            request_id,
            timeout_ms,
        }))
    }

    /// Access granted.
    pub fn accepted(
        &mut self,
        accepted: Accepted,
        confirm_services: bool,
    ) -> Result<(), SessionError> {
        if !matches!(self.state, State::Deciding | State::Waiting) {
            return Ok(());
        }
        self.state = State::Live;
        self.permissions = accepted.permissions;
        self.confirm = confirm_services;
        self.send(&SessionMessage::Accepted(accepted))
    }

    /// The session moves to a stream that resumed it: after this message (and everything
    /// queued before it) is written to the old stream, write to the new one. `next_resume`
    /// is the token for a later move.
    pub fn moved(&mut self, next_resume: Vec<u8>) -> Result<(), SessionError> {
        if self.state != State::Live {
            return Ok(());
        }
        self.send(&SessionMessage::Moved(Moved {
            next_resume: Some(next_resume),
        }))
    }

    /// Access refused (by the policy, the owner or the timeout).
    pub fn refused(&mut self, code: String, message: String) -> Result<(), SessionError> {
        if self.state == State::Closed {
            return Ok(());
        }
        self.state = State::Closed;
        self.send(&SessionMessage::Refused(Refused { code, message }))
    }

    /// The table changed what this session may do: applies to the very next message, and
    /// the viewer is told. Transfers and clipboard that lost their permission are dropped.
    pub fn set_permissions(&mut self, p: Permissions) -> Result<(), SessionError> {
        if self.state != State::Live || p == self.permissions {
            return Ok(());
        }
        if self.permissions.has(Permission::Control) && !p.has(Permission::Control) {
            self.events.push_back(HostEvent::ReleaseInput);
        }
        self.permissions = p;
        if !p.has(Permission::Files) {
            let ids: Vec<u64> = self.transfers.keys().copied().collect();
            for id in ids {
                self.abort(id, "file transfer is no longer permitted")?;
            }
        }
        if !p.has(Permission::Clipboard) {
            self.clip = None;
        }
        self.send(&SessionMessage::PermissionsChanged(PermissionsChanged {
            permissions: p,
        }))
    }

    /// End the session with a reason the viewer shows.
    pub fn end(&mut self, reason: ByeReason, message: String) -> Result<(), SessionError> {
        if self.state == State::Closed {
            return Ok(());
        }
        let ids: Vec<u64> = self.transfers.keys().copied().collect();
        for id in ids {
            self.transfers.remove(&id);
            self.events.push_back(HostEvent::AbortFile(id));
        }
        if self.state == State::Live {
            self.events.push_back(HostEvent::ReleaseInput);
        }
        self.state = State::Closed;
        self.send(&SessionMessage::Bye(Bye { reason, message }))
    }

    /// An encoded video/tiles message for every viewer (encoded once): sealed for this one,
    /// unless it is waiting for a keyframe.
    pub fn media(&mut self, encoded: &[u8], keyframe: bool) -> Result<(), SessionError> {
        if self.state != State::Live || (self.need_keyframe && !keyframe) {
            return Ok(());
        }
        self.need_keyframe = false;
        self.channel.seal(encoded)
    }

    /// An encoded cursor shape or position (encoded once for every viewer): sent whenever
    /// the session is live, independent of the video's keyframe gate.
    pub fn cursor(&mut self, encoded: &[u8]) -> Result<(), SessionError> {
        if self.state != State::Live {
            return Ok(());
        }
        self.channel.seal(encoded)
    }

    /// This viewer now watches another area (its own monitor switch): skip to the new
    /// stream's first start point (subscribing to it asks for one).
    pub fn switched(&mut self) {
        self.need_keyframe = true;
    }

    /// This viewer fell behind: skip to the next keyframe and ask for one.
    pub fn lagged(&mut self) {
        self.need_keyframe = true;
        self.events.push_back(HostEvent::Keyframe);
    }

    /// The host's clipboard changed: sent when the session holds `clipboard` and needs no
    /// per-use approval.
    pub fn host_clipboard(&mut self, text: String) -> Result<(), SessionError> {
        if self.state != State::Live || self.confirm || !self.permissions.has(Permission::Clipboard)
        {
            return Ok(());
        }
        self.send(&SessionMessage::Clipboard(Clipboard { text }))
    }

    /// Bytes from the viewer; `b""` is the end of the stream.
    pub fn handle_bytes(&mut self, bytes: &[u8]) -> Result<(), SessionError> {
        if bytes.is_empty() {
            if self.state == State::Waiting {
                self.events.push_back(HostEvent::Withdrawn);
            }
            if self.state != State::Closed {
                let ids: Vec<u64> = self.transfers.drain().map(|(id, _)| id).collect();
                self.events
                    .extend(ids.into_iter().map(HostEvent::AbortFile));
            }
            if self.state == State::Live {
                self.events.push_back(HostEvent::ReleaseInput);
            }
            self.state = State::Closed;
            return Ok(());
        }
        for msg in self.channel.receive(bytes)? {
            self.message(msg)?;
        }
        Ok(())
    }

    fn message(&mut self, msg: SessionMessage) -> Result<(), SessionError> {
        if let SessionMessage::Bye(_) = msg {
            return self.handle_bytes(b"");
        }
        if self.state != State::Live {
            return Ok(());
        }
        match msg {
            SessionMessage::Moved(_) => self.events.push_back(HostEvent::PeerMoved),
            SessionMessage::Browse(b) => self.browse_in(b)?,
            SessionMessage::Input(ev) => {
                self.events
                    .push_back(if self.permissions.has(Permission::Control) {
                        HostEvent::Inject(ev)
                    } else {
                        HostEvent::InputDropped
                    })
            }
            // One request outstanding per viewer: it gets its start point before it may ask
            // again, so asking costs it the start point's bytes each time (and the encoder
            // spaces start points out for everyone).
            SessionMessage::RequestKeyframe(_) if !self.need_keyframe => {
                self.need_keyframe = true;
                self.events.push_back(HostEvent::Keyframe);
            }
            SessionMessage::RequestKeyframe(_) => {}
            // The encoder serves every viewer of its area: only a session that may control
            // the machine retunes it, never a view-only one.
            SessionMessage::SetBitrate(b) if self.permissions.has(Permission::Control) => {
                self.events.push_back(HostEvent::Bitrate(b.bps))
            }
            SessionMessage::SetBitrate(_) => self.events.push_back(HostEvent::InputDropped),
            // What a viewer watches is its own choice, view-only or not: it changes nothing
            // for anyone else.
            SessionMessage::SelectMonitor(m) => {
                self.events.push_back(HostEvent::SelectMonitor(m.index))
            }
            SessionMessage::Clipboard(c) => self.clipboard_in(c.text)?,
            SessionMessage::FileOffer(o) => self.offer(o)?,
            SessionMessage::FileChunk(c) => match self.transfers.get(&c.transfer_id) {
                Some(Transfer::Open) => self.events.push_back(HostEvent::WriteChunk {
                    transfer_id: c.transfer_id,
                    offset: c.offset,
                    data: c.data,
                }),
                _ => self.result(
                    c.transfer_id,
                    false,
                    "chunk for a transfer that is not allowed or open",
                )?,
            },
            SessionMessage::FileEnd(e) => match self.transfers.remove(&e.transfer_id) {
                Some(Transfer::Open) => self.events.push_back(HostEvent::FinishFile(e.transfer_id)),
                Some(other) => {
                    self.transfers.insert(e.transfer_id, other);
                    self.result(e.transfer_id, false, "the transfer is not open yet")?;
                }
                None => self.result(e.transfer_id, false, "no such open transfer")?,
            },
            // Viewer → host messages with no effect here, and host → viewer ones a viewer
            // has no business sending.
            _ => {}
        }
        Ok(())
    }

    fn decision(
        &mut self,
        service: Service,
        id: u64,
        allowed: bool,
        pending: bool,
        message: impl Into<String>,
    ) -> Result<(), SessionError> {
        self.send(&SessionMessage::ServiceDecision(ServiceDecision {
            service,
            id,
            allowed,
            pending,
            message: message.into(),
        }))
    }

    fn result(
        &mut self,
        id: u64,
        ok: bool,
        message: impl Into<String>,
    ) -> Result<(), SessionError> {
        self.send(&SessionMessage::FileResult(FileResult {
            transfer_id: id,
            ok,
            message: message.into(),
        }))
    }

    fn abort(&mut self, id: u64, why: &str) -> Result<(), SessionError> {
        match self.transfers.remove(&id) {
            Some(Transfer::Asked(_)) => self.decision(Service::File, id, false, false, why),
            Some(_) => {
                self.events.push_back(HostEvent::AbortFile(id));
                self.result(id, false, why)
            }
            None => Ok(()),
        }
    }

    fn clipboard_in(&mut self, text: String) -> Result<(), SessionError> {
        let deny = |m: &str| (false, false, m.to_string());
        let (allowed, pending, message) = if !self.permissions.has(Permission::Clipboard) {
            deny("this session may not use the clipboard")
        } else if text.len() > MAX_TEXT {
            deny("clipboard text too large")
        } else if !self.confirm {
            self.events.push_back(HostEvent::SetClipboard(text));
            (true, false, "clipboard set on the host".to_string())
        } else if self.clip.is_some() {
            deny("a clipboard request is already waiting for the owner")
        } else {
            let preview: String = text.chars().take(40).collect();
            let detail = format!("paste {} characters: {preview:?}", text.chars().count());
            self.clip = Some(text);
            self.events.push_back(HostEvent::AskOwner {
                ask: Ask::Clipboard,
                service: Service::Clipboard,
                detail,
            });
            (
                false,
                true,
                "waiting for the owner to allow the clipboard".to_string(),
            )
        };
        self.decision(Service::Clipboard, 0, allowed, pending, message)
    }

    fn offer(&mut self, o: FileOffer) -> Result<(), SessionError> {
        let id = o.transfer_id;
        let refuse = if !self.permissions.has(Permission::Files) {
            Some("this session may not send files".to_string())
        } else if self.transfers.len() >= MAX_TRANSFERS || self.transfers.contains_key(&id) {
            Some("too many transfers at once, or a duplicate transfer number".into())
        } else if o.size > MAX_FILE || o.sha256.len() != 32 {
            Some(format!(
                "refused: files up to {MAX_FILE} bytes with a SHA-256"
            ))
        } else {
            None
        };
        if let Some(why) = refuse {
            return self.decision(Service::File, id, false, false, why);
        }
        let detail = format!("{} ({} bytes)", super::sanitize_name(&o.name), o.size);
        if self.confirm {
            self.transfers.insert(id, Transfer::Asked(o));
            self.events.push_back(HostEvent::AskOwner {
                ask: Ask::File(id),
                service: Service::File,
                detail,
            });
            return self.decision(
                Service::File,
                id,
                false,
                true,
                "waiting for the owner to allow the file",
            );
        }
        self.events.push_back(HostEvent::Audit(
            "file_allowed",
            format!("{detail} (by permission)"),
        ));
        self.transfers.insert(id, Transfer::Opening);
        self.events.push_back(HostEvent::OpenFile(o));
        Ok(())
    }

    /// The owner answered (or the request failed or timed out: `allowed = false`).
    pub fn owner_answered(&mut self, ask: Ask, allowed: bool) -> Result<(), SessionError> {
        if self.state != State::Live {
            return Ok(());
        }
        match ask {
            Ask::Browse => self.browse_answered(allowed),
            Ask::Clipboard => {
                let Some(text) = self.clip.take() else {
                    return Ok(());
                };
                if !allowed || !self.permissions.has(Permission::Clipboard) {
                    return self.decision(
                        Service::Clipboard,
                        0,
                        false,
                        false,
                        "the owner denied the clipboard",
                    );
                }
                self.events.push_back(HostEvent::SetClipboard(text));
                self.decision(
                    Service::Clipboard,
                    0,
                    true,
                    false,
                    "clipboard set on the host",
                )
            }
            Ask::File(id) => {
                let Some(Transfer::Asked(offer)) = self.transfers.get(&id).cloned() else {
                    return Ok(());
                };
                match Some(offer).filter(|_| allowed && self.permissions.has(Permission::Files)) {
                    Some(o) => {
                        self.transfers.insert(id, Transfer::Opening);
                        self.events.push_back(HostEvent::OpenFile(o));
                        Ok(())
                    }
                    None => {
                        self.transfers.remove(&id);
                        self.decision(Service::File, id, false, false, "the owner denied the file")
                    }
                }
            }
        }
    }

    /// The shell opened (or could not open) the destination of an allowed file.
    pub fn file_opened(&mut self, id: u64, result: Result<(), String>) -> Result<(), SessionError> {
        if self.transfers.get(&id) != Some(&Transfer::Opening) {
            // Aborted meanwhile (permission lost, session ended): drop what was opened.
            if result.is_ok() {
                self.events.push_back(HostEvent::AbortFile(id));
            }
            return Ok(());
        }
        match result {
            Ok(()) => {
                self.transfers.insert(id, Transfer::Open);
                self.decision(Service::File, id, true, false, "allowed")
            }
            Err(e) => {
                self.transfers.remove(&id);
                self.decision(Service::File, id, false, false, e)
            }
        }
    }

    /// Writing a chunk failed: the transfer ends (the shell removes the partial file).
    pub fn file_failed(&mut self, id: u64, why: String) -> Result<(), SessionError> {
        if self.transfers.remove(&id).is_some() {
            self.events.push_back(HostEvent::AbortFile(id));
            self.result(id, false, why)?;
        }
        Ok(())
    }

    /// The shell verified (or rejected) a finished file.
    pub fn file_finished(
        &mut self,
        id: u64,
        result: Result<String, String>,
    ) -> Result<(), SessionError> {
        match result {
            Ok(m) => self.result(id, true, m),
            Err(e) => self.result(id, false, e),
        }
    }
}
