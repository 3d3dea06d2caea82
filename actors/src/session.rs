//! The host side of one `/portico/session/1` stream: the Noise handshake, the access
//! decision, then a loop that only moves bytes and messages between the stream, the
//! `portico_core::session::HostSession` machine (which gates every viewer message on the
//! session's permissions), the encoder, the input and clipboard actors, and the file system.
//! Every error ends this stream only; the host serves everyone else.
//!
//! A stream may instead resume a live session (its first frame a resume preface, see
//! [`resume`]): the session then moves onto it, typically from the relay to a direct
//! connection.

mod browsing;
pub mod resume;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::Addr;
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{PeerId, Stream};
use portico_core::area::Area;
use portico_core::identity::Identity;
use portico_core::noise::Responder;
use portico_core::session::{Ask, HostEvent, HostSession};
use portico_core::wire::session::{parse_resume, Accepted, ByeReason, FileOffer, InputEvent};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tracing::Instrument;

use crate::access::{
    AccessControl, AskService, Decide, Granted, LogService, ResumeRefused, SessionEnded, Verdict,
    Watching, Withdraw,
};
use crate::encoder::{self, Subscribe, Subscription};
use crate::files::Incoming;
use crate::input::{Inject, Input, Release};
use crate::network::PeerAddrs;
use crate::screens::{Screen, Screens};
use portico_signal_client::session_io::{read_handshake, StreamError};

/// What a session needs from the host.
#[derive(Clone)]
pub struct SessionDeps {
    /// The host identity (proves the host in the handshake).
    pub identity: Identity,
    /// Agent string sent in the handshake.
    pub agent: String,
    /// Decides access.
    pub access: Addr<AccessControl>,
    /// What viewers watch: one shared capture and encode per area someone watches.
    pub screens: Screens,
    /// Injects input.
    pub input: Addr<Input>,
    /// Input events dropped from sessions without `control` (all sessions).
    pub dropped_input: Arc<AtomicU64>,
    /// Where peers connect from.
    pub peers: PeerAddrs,
    /// Where received files land.
    pub download_dir: std::path::PathBuf,
    /// The host's clipboard.
    pub clipboard: Addr<crate::clipboard::Clipboard>,
    /// Live sessions' resume tokens.
    pub resumes: resume::Resumes,
    /// The folders shared for remote browsing.
    pub roots: Arc<crate::browse::Roots>,
}

type ReadHalf = futures::io::ReadHalf<Stream>;
type WriteHalf = futures::io::WriteHalf<Stream>;

/// Serves one incoming session stream to its end.
pub async fn serve(stream: Stream, peer: PeerId, deps: SessionDeps) {
    let span = tracing::info_span!("session", %peer);
    async move {
        match run(stream, peer, deps).await {
            Ok(()) => tracing::info!("session ended"),
            Err(e) => tracing::info!(error = %e, "session closed"),
        }
    }
    .instrument(span)
    .await
}

/// Writes what the machine has to send.
async fn flush(w: &mut WriteHalf, m: &mut HostSession) -> Result<(), StreamError> {
    let mut wrote = false;
    while let Some(bytes) = m.poll_transmit() {
        w.write_all(&bytes).await?;
        wrote = true;
    }
    if wrote {
        w.flush().await?;
    }
    if m.is_closed() {
        w.close().await?;
    }
    Ok(())
}

/// Reads the next bytes (`&[]` at the end of the stream).
async fn read<'b>(r: &mut ReadHalf, buf: &'b mut [u8]) -> Result<&'b [u8], StreamError> {
    let n = r.read(buf).await?;
    Ok(&buf[..n])
}

/// The Noise XX handshake (host side) after its first message: proves the host, learns the
/// viewer and its request.
async fn handshake(
    msg1: Vec<u8>,
    r: &mut ReadHalf,
    w: &mut WriteHalf,
    deps: &SessionDeps,
) -> Result<(HostSession, portico_core::noise::ViewerInfo), StreamError> {
    let (responder, msg2) = Responder::respond(&deps.identity, &deps.agent, &msg1)?;
    w.write_all(&msg2).await?;
    w.flush().await?;
    let msg3 = read_handshake(r).await?;
    let (transport, viewer) = responder.finish(&msg3)?;
    Ok((HostSession::new(transport), viewer))
}

async fn run(stream: Stream, peer: PeerId, deps: SessionDeps) -> Result<(), StreamError> {
    let (mut r, mut w) = stream.split();
    let first = read_handshake(&mut r).await?;
    if let Some(token) = parse_resume(&first) {
        return resume_session(token, peer, (r, w), &deps).await;
    }
    let (mut m, viewer) = handshake(first, &mut r, &mut w, &deps).await?;
    if viewer.peer_id != peer {
        // The session key was proven by another identity than the connection's: refuse.
        let why = "session identity does not match the connection";
        m.refused("identity_mismatch".into(), why.into())?;
        return flush(&mut w, &mut m).await;
    }
    let (ip, relayed) = deps
        .peers
        .lock()
        .ok()
        .and_then(|m| m.get(&peer).cloned())
        .unwrap_or_else(|| ("unknown".into(), false));
    let decide = Decide {
        viewer: peer,
        ip,
        relayed,
        request: viewer.request,
    };
    let verdict = deps
        .access
        .send(decide)
        .await
        .map_err(|_| StreamError::Poisoned)?;
    let mut buf = vec![0u8; 64 * 1024];
    let granted = match verdict {
        Ok(Verdict::Granted(g)) => Ok(g),
        Ok(Verdict::Pending {
            request_id,
            timeout,
            mut answer,
        }) => {
            m.waiting(request_id, timeout.as_millis() as u64)?;
            flush(&mut w, &mut m).await?;
            loop {
                tokio::select! {
                    a = &mut answer => break a.unwrap_or_else(|_| Err(crate::access::Refusal {
                        code: "owner_timeout".into(),
                        message: "the owner did not answer".into(),
                    })),
                    bytes = read(&mut r, &mut buf) => {
                        m.handle_bytes(bytes?)?;
                        if m.is_closed() {
                            // The viewer gave up while waiting: the owner's list drops it.
                            deps.access.do_send(Withdraw(request_id));
                            return Ok(());
                        }
                    }
                }
            }
        }
        Err(refusal) => Err(refusal),
    };
    let granted = match granted {
        Ok(g) => g,
        Err(refusal) => {
            m.refused(refusal.code, refusal.message)?;
            return flush(&mut w, &mut m).await;
        }
    };
    let session_id = granted.session_id;
    let (resume_tx, resume_rx) = mpsc::channel(1);
    let held = resume::Held::issue(&deps.resumes, peer, resume_tx);
    let accepted = Accepted {
        session_id,
        permissions: granted.link.borrow().permissions,
        time_limit_ms: granted.time_limit.map(|t| t.as_millis() as u64),
        monitors: deps.screens.monitors().to_vec(),
        resume: Some(held.token().to_vec()),
    };
    m.accepted(accepted, granted.confirm_services)?;
    flush(&mut w, &mut m).await?;
    let stream = Moving {
        r,
        w,
        next_reader: None,
        held,
        resumes: resume_rx,
    };
    let result = live(stream, m, granted, &deps, buf).await;
    // However it ended (an error too): nothing it pressed stays down.
    deps.input.do_send(Release(session_id));
    deps.access.do_send(SessionEnded(session_id));
    result
}

/// A stream that resumes a live session: handed to that session if the token and the
/// viewer key check out; otherwise closed (and audited), the session untouched.
async fn resume_session(
    token: resume::Token,
    peer: PeerId,
    halves: resume::Halves,
    deps: &SessionDeps,
) -> Result<(), StreamError> {
    match deps.resumes.claim(&token, peer) {
        Ok(tx) => {
            if tx.send(halves).await.is_err() {
                tracing::debug!("the session ended before it could move");
            }
        }
        Err(why) => {
            tracing::debug!(%peer, %why, "resume refused");
            deps.access
                .do_send(ResumeRefused(format!("from {peer}: {why}")));
        }
    }
    Ok(())
}

/// The live session's stream, and the one it may move to.
struct Moving {
    /// Read side now.
    r: ReadHalf,
    /// Write side now.
    w: WriteHalf,
    /// The resumed stream's read side, used once the viewer's last message on the old
    /// stream has been read.
    next_reader: Option<ReadHalf>,
    /// The session's resume token.
    held: resume::Held,
    /// Streams that resumed this session.
    resumes: mpsc::Receiver<resume::Halves>,
}

impl Moving {
    /// A stream resumed the session: our last message on the old stream says so (with
    /// the next token), then we write to the new one.
    async fn take(
        &mut self,
        (r2, w2): resume::Halves,
        m: &mut HostSession,
    ) -> Result<(), StreamError> {
        let next = self.held.renew();
        m.moved(next.to_vec())?;
        flush(&mut self.w, m).await?;
        let mut old = std::mem::replace(&mut self.w, w2);
        if let Err(e) = old.close().await {
            tracing::debug!(error = %e, "closing the old stream");
        }
        self.next_reader = Some(r2);
        tracing::info!("session moved to a new stream");
        Ok(())
    }

    /// The viewer's last message on the old stream has been read: read the new one.
    fn peer_moved(&mut self) -> Result<(), StreamError> {
        match self.next_reader.take() {
            Some(r2) => {
                self.r = r2;
                Ok(())
            }
            None => Err(StreamError::Io(std::io::Error::other(
                "the viewer moved the session without a new stream",
            ))),
        }
    }
}

/// The live session: every branch hands its input to the machine, then the machine's events
/// are carried out and its bytes written.
async fn live(
    mut s: Moving,
    mut m: HostSession,
    granted: Granted,
    deps: &SessionDeps,
    mut buf: Vec<u8>,
) -> Result<(), StreamError> {
    let watch = Watch::start(deps.screens.first()).await?;
    deps.access
        .do_send(Watching(granted.session_id, watch.screen.area));
    let mut link = granted.link;
    let mut shell = Shell::new(granted.session_id, deps, watch);
    // Host → viewer clipboard (the machine sends it only where allowed without approval).
    let mut host_clip = deps.clipboard.send(crate::clipboard::WatchText).await.ok();
    loop {
        tokio::select! {
            changed = link.changed() => {
                // The table is the only writer: its word applies to the next message.
                let now = link.borrow_and_update().clone();
                match (now.end, changed) {
                    (Some((reason, message)), _) => m.end(reason, message)?,
                    (None, Err(_)) => m.end(ByeReason::Shutdown, "the host is shutting down".into())?,
                    (None, Ok(())) => m.set_permissions(now.permissions)?,
                }
            }
            text = next_text(&mut host_clip) => m.host_clipboard(text)?,
            Some((ask, allowed)) = shell.answers.recv() => m.owner_answered(ask, allowed)?,
            packet = shell.watch.sub.packets.recv() => match packet {
                Ok(p) if p.cursor => m.cursor(&p.bytes)?,
                Ok(p) => m.media(&p.bytes, p.keyframe)?,
                Err(RecvError::Lagged(n)) => {
                    tracing::debug!(skipped = n, "viewer lagging; resyncing");
                    m.lagged();
                }
                Err(RecvError::Closed) => m.end(ByeReason::Shutdown, "the host is shutting down".into())?,
            },
            bytes = read(&mut s.r, &mut buf) => m.handle_bytes(bytes?)?,
            Some(halves) = s.resumes.recv() => s.take(halves, &mut m).await?,
            Some(read) = shell.browsing.rx.recv() => {
                if let Some((action, detail)) = shell.browsing.on_read(read, &mut m)? {
                    shell.log(action, detail);
                }
            }
        }
        shell.run(&mut m).await?;
        if std::mem::take(&mut shell.peer_moved) {
            s.peer_moved()?;
        }
        flush(&mut s.w, &mut m).await?;
        if m.is_closed() {
            return Ok(());
        }
    }
}

/// Carries out a live session's events: the actors, the owner's answers, the files.
struct Shell<'a> {
    /// The session's number.
    session_id: u64,
    /// The host.
    deps: &'a SessionDeps,
    /// Files being received.
    incoming: HashMap<u64, Incoming>,
    /// The owner's answers to this session's service requests.
    answers: mpsc::Receiver<(Ask, bool)>,
    /// Where the waiting tasks send them.
    answer_tx: mpsc::Sender<(Ask, bool)>,
    /// The viewer's last message on the old stream was read: read the new one now.
    peer_moved: bool,
    /// Remote browsing: listings and downloads.
    browsing: browsing::Browsing,
    /// What the viewer watches.
    watch: Watch,
}

impl<'a> Shell<'a> {
    fn new(session_id: u64, deps: &'a SessionDeps, watch: Watch) -> Self {
        let (answer_tx, answers) = mpsc::channel(portico_core::session::MAX_TRANSFERS + 2);
        Self {
            session_id,
            deps,
            incoming: HashMap::new(),
            answers,
            answer_tx,
            peer_moved: false,
            browsing: browsing::Browsing::new(deps.roots.clone()),
            watch,
        }
    }

    /// The viewer picked another area: it alone moves to that area's screen (opened now if
    /// nobody watched it); the screen it left closes if it was the last one there.
    async fn switch(&mut self, m: &mut HostSession, area: Area) -> Result<(), StreamError> {
        if area == self.watch.screen.area {
            return Ok(());
        }
        match self.deps.screens.watch(area).await {
            Ok(screen) => {
                self.watch = Watch::start(screen).await?;
                m.switched();
                self.deps.access.do_send(Watching(self.session_id, area));
                tracing::info!(%area, "the viewer watches another area");
            }
            Err(e) => tracing::warn!(error = %e, %area, "monitor switch refused"),
        }
        Ok(())
    }

    fn log(&self, action: &'static str, detail: String) {
        let detail = format!("session {}: {detail}", self.session_id);
        self.deps.access.do_send(LogService(action, detail));
    }

    async fn run(&mut self, m: &mut HostSession) -> Result<(), StreamError> {
        while let Some(ev) = m.poll_event() {
            match ev {
                HostEvent::Withdrawn => {}
                HostEvent::Inject(ev) => {
                    let ev = self.watch.on_root(ev);
                    self.deps.input.do_send(Inject(self.session_id, ev))
                }
                HostEvent::ReleaseInput => self.deps.input.do_send(Release(self.session_id)),
                HostEvent::InputDropped => {
                    let n = self.deps.dropped_input.fetch_add(1, Ordering::Relaxed) + 1;
                    tracing::debug!(dropped = n, "input from a view-only session dropped");
                }
                HostEvent::Keyframe => self.watch.screen.encoder.do_send(encoder::Resync),
                HostEvent::Bitrate(bps) => {
                    let to = &self.watch.screen.encoder;
                    to.do_send(encoder::SetBitrate(bps))
                }
                HostEvent::SelectMonitor(index) => self.switch(m, Area::from(index)).await?,
                HostEvent::AskOwner {
                    ask,
                    service,
                    detail,
                } => self.ask(m, ask, service, detail).await?,
                HostEvent::SetClipboard(text) => {
                    self.log(
                        "clipboard_set",
                        format!("{} characters", text.chars().count()),
                    );
                    self.deps.clipboard.do_send(crate::clipboard::SetText(text));
                }
                HostEvent::OpenFile(o) => {
                    let id = o.transfer_id;
                    let opened = self.open(o);
                    m.file_opened(id, opened)?;
                }
                HostEvent::WriteChunk {
                    transfer_id,
                    offset,
                    data,
                } => {
                    let written = match self.incoming.remove(&transfer_id) {
                        // On the blocking pool: a slow disk holds up this transfer, not
                        // the runtime the other sessions share.
                        Some(mut inc) => match tokio::task::spawn_blocking(move || {
                            let r = inc.write(offset, &data);
                            (inc, r)
                        })
                        .await
                        {
                            Ok((inc, Ok(()))) => {
                                self.incoming.insert(transfer_id, inc);
                                Ok(())
                            }
                            // Dropping the transfer removes the partial file.
                            Ok((_, Err(e))) => Err(e.to_string()),
                            Err(e) => Err(format!("the write stopped: {e}")),
                        },
                        None => Err("no such open transfer".into()),
                    };
                    if let Err(e) = written {
                        m.file_failed(transfer_id, e)?;
                    }
                }
                HostEvent::FinishFile(id) => {
                    let finished = match self.incoming.remove(&id) {
                        Some(inc) => tokio::task::spawn_blocking(move || inc.finish())
                            .await
                            .map_err(|e| format!("the check stopped: {e}"))
                            .and_then(|r| r.map_err(|e| e.to_string())),
                        None => Err("no such open transfer".into()),
                    };
                    match &finished {
                        Ok(path) => self.log("file_received", path.display().to_string()),
                        Err(e) => self.log("file_failed", e.clone()),
                    }
                    let result = finished.map(|p| format!("saved as {}", p.display()));
                    m.file_finished(id, result)?;
                }
                HostEvent::AbortFile(id) => {
                    self.incoming.remove(&id);
                }
                HostEvent::Audit(action, detail) => self.log(action, detail),
                HostEvent::PeerMoved => self.peer_moved = true,
                HostEvent::Browse(b) => {
                    let (action, detail) = self.browsing.start(b, m).await?;
                    self.log(action, detail);
                }
            }
        }
        Ok(())
    }

    fn open(&mut self, o: FileOffer) -> Result<(), String> {
        let dir = &self.deps.download_dir;
        let inc = Incoming::start(dir, o.transfer_id, &o.name, o.size, o.sha256)
            .map_err(|e| e.to_string())?;
        self.incoming.insert(o.transfer_id, inc);
        Ok(())
    }

    /// Asks the owner; the answer comes back on `answers` (no answer in time: denied).
    async fn ask(
        &mut self,
        m: &mut HostSession,
        ask: Ask,
        service: portico_core::wire::session::Service,
        detail: String,
    ) -> Result<(), StreamError> {
        let asked = AskService {
            session_id: self.session_id,
            service,
            detail,
        };
        match self.deps.access.send(asked).await {
            Ok(Ok((_, answer))) => {
                let tx = self.answer_tx.clone();
                tokio::spawn(async move {
                    let allowed = answer.await.unwrap_or(false);
                    if tx.send((ask, allowed)).await.is_err() {
                        tracing::debug!("the session ended before the owner answered");
                    }
                });
                Ok(())
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "service request not taken");
                Ok(m.owner_answered(ask, false)?)
            }
            Err(_) => Err(StreamError::Poisoned),
        }
    }
}

/// The screen a session watches, and its place among that screen's viewers.
struct Watch {
    /// The screen.
    screen: Arc<Screen>,
    /// Its packets for this viewer (dropping it stops counting the viewer there).
    sub: Subscription,
}

impl Watch {
    /// Starts watching `screen` (its next packet for us is a start point).
    async fn start(screen: Arc<Screen>) -> Result<Self, StreamError> {
        let sub = screen
            .encoder
            .send(Subscribe)
            .await
            .map_err(|_| StreamError::Poisoned)?;
        Ok(Self { screen, sub })
    }

    /// A pointer position on the watched picture, as a position on the root window.
    fn on_root(&self, ev: InputEvent) -> InputEvent {
        let (ox, oy) = self.screen.origin;
        match ev {
            InputEvent::PointerMove { x, y } => InputEvent::PointerMove {
                x: x.saturating_add(ox),
                y: y.saturating_add(oy),
            },
            other => other,
        }
    }
}

/// The next host clipboard change, or never when this session does not follow it.
async fn next_text(rx: &mut Option<tokio::sync::broadcast::Receiver<String>>) -> String {
    loop {
        match rx {
            Some(r) => match r.recv().await {
                Ok(t) => return t,
                Err(RecvError::Lagged(_)) => continue,
                Err(RecvError::Closed) => *rx = None,
            },
            None => std::future::pending::<()>().await,
        }
    }
}
