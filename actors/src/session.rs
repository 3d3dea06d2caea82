//! The host side of one `/portico/session/1` stream: Noise handshake, access decision, then
//! video out and input in. Every error ends this stream only; the host serves everyone else.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::Addr;
use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{PeerId, Stream};
use portico_core::identity::Identity;
use portico_core::noise::Responder;
use portico_core::wire::session::{Accepted, Bye, ByeReason, Refused, SessionMessage};
use tokio::sync::broadcast::error::RecvError;
use tracing::Instrument;

use crate::access::{
    self, AccessControl, AskService, Decide, Granted, LogService, SessionEnded, Verdict, Withdraw,
};
use crate::encoder::{self, Encoder, Subscribe};
use crate::files::{sanitize_name, Incoming, MAX_FILE};
use crate::input::{Inject, Input};
use crate::network::PeerAddrs;
use crate::stream_io::{read_handshake, send, Reader, SharedTransport, StreamError};
use portico_core::policy::{Permission, Permissions};
use portico_core::wire::session::{
    Clipboard, FileChunk, FileOffer, FileResult, Service, ServiceDecision,
};

/// What a session needs from the host.
#[derive(Clone)]
pub struct SessionDeps {
    /// The host identity (proves the host in the handshake).
    pub identity: Identity,
    /// Agent string sent in the handshake.
    pub agent: String,
    /// Decides access.
    pub access: Addr<AccessControl>,
    /// The video source.
    pub encoder: Addr<Encoder>,
    /// Injects input.
    pub input: Addr<Input>,
    /// Monitor sizes, announced on accept.
    pub monitors: Vec<(u32, u32)>,
    /// Input events dropped from sessions without `control` (all sessions).
    pub dropped_input: Arc<AtomicU64>,
    /// Where peers connect from.
    pub peers: PeerAddrs,
    /// Where received files land.
    pub download_dir: std::path::PathBuf,
    /// The host's clipboard.
    pub clipboard: Addr<crate::clipboard::Clipboard>,
}

/// Transfers a session may have open at once.
const MAX_TRANSFERS: usize = 4;

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

async fn run(stream: Stream, peer: PeerId, deps: SessionDeps) -> Result<(), StreamError> {
    let (mut r, mut w) = stream.split();
    let msg1 = read_handshake(&mut r).await?;
    let (responder, msg2) = Responder::respond(&deps.identity, &deps.agent, &msg1)?;
    w.write_all(&msg2).await?;
    w.flush().await?;
    let msg3 = read_handshake(&mut r).await?;
    let (transport, viewer) = responder.finish(&msg3)?;
    let transport = SharedTransport::new(transport);
    if viewer.peer_id != peer {
        // The session key was proven by another identity than the connection's: refuse.
        let refused = SessionMessage::Refused(Refused {
            code: "identity_mismatch".into(),
            message: "session identity does not match the connection".into(),
        });
        send(&mut w, &transport, &refused).await?;
        return Ok(());
    }
    let (ip, relayed) = deps
        .peers
        .lock()
        .ok()
        .and_then(|m| m.get(&peer).cloned())
        .unwrap_or_else(|| ("unknown".into(), false));
    let verdict = deps
        .access
        .send(Decide {
            viewer: peer,
            ip,
            relayed,
            request: viewer.request,
        })
        .await
        .map_err(|_| StreamError::Poisoned)?;
    let mut reader = Reader::new(r, transport.clone());
    let granted = match verdict {
        Ok(Verdict::Granted(g)) => Ok(g),
        Ok(Verdict::Pending {
            request_id,
            timeout,
            answer,
        }) => {
            let waiting = SessionMessage::Waiting(portico_core::wire::session::Waiting {
                request_id,
                timeout_ms: timeout.as_millis() as u64,
            });
            send(&mut w, &transport, &waiting).await?;
            tokio::select! {
                a = answer => a.unwrap_or_else(|_| Err(access::Refusal { code: "owner_timeout".into(), message: "the owner did not answer".into() })),
                // The viewer gave up while waiting: withdraw the request from the owner's list.
                gone = reader.next() => {
                    deps.access.do_send(Withdraw(request_id));
                    gone?;
                    return Ok(());
                }
            }
        }
        Err(refusal) => Err(refusal),
    };
    let granted = match granted {
        Ok(g) => g,
        Err(refusal) => {
            send(
                &mut w,
                &transport,
                &SessionMessage::Refused(Refused {
                    code: refusal.code,
                    message: refusal.message,
                }),
            )
            .await?;
            w.close().await?;
            return Ok(());
        }
    };
    let session_id = granted.session_id;
    let accepted = Accepted {
        session_id,
        permissions: granted.link.borrow().permissions,
        time_limit_ms: granted.time_limit.map(|t| t.as_millis() as u64),
        monitors: deps.monitors.clone(),
    };
    send(&mut w, &transport, &SessionMessage::Accepted(accepted)).await?;
    let result = stream_session(reader, w, transport, granted, &deps).await;
    deps.access.do_send(SessionEnded(session_id));
    result
}

async fn stream_session(
    mut reader: Reader<futures::io::ReadHalf<Stream>>,
    mut w: futures::io::WriteHalf<Stream>,
    transport: SharedTransport,
    granted: Granted,
    deps: &SessionDeps,
) -> Result<(), StreamError> {
    let sub = deps
        .encoder
        .send(Subscribe)
        .await
        .map_err(|_| StreamError::Poisoned)?;
    let mut packets = sub.packets;
    let mut link = granted.link.clone();
    let mut permissions = link.borrow_and_update().permissions;
    let mut files = Transfers {
        session_id: granted.session_id,
        confirm: granted.confirm_services,
        offers: Default::default(),
        incoming: Default::default(),
    };
    let (svc_tx, mut svc_rx) = tokio::sync::mpsc::channel::<(u64, bool)>(8);
    let (clip_tx, mut clip_rx) = tokio::sync::mpsc::channel::<(bool, String)>(4);
    // Host → viewer clipboard: sessions holding `clipboard` that need no per-use approval.
    let mut host_clip = if permissions.has(Permission::Clipboard) && !granted.confirm_services {
        deps.clipboard.send(crate::clipboard::WatchText).await.ok()
    } else {
        None
    };
    let mut waiting_for_key = true;
    loop {
        tokio::select! {
            text = next_text(&mut host_clip) => {
                if permissions.has(Permission::Clipboard) {
                    send(&mut w, &transport, &SessionMessage::Clipboard(Clipboard { text })).await?;
                }
            }
            Some((allowed, text)) = clip_rx.recv() => {
                let reply = clip_decided(allowed, text, deps, granted.session_id);
                send(&mut w, &transport, &reply).await?;
            }
            Some((id, allowed)) = svc_rx.recv() => {
                let reply = files.decided(id, allowed, deps);
                send(&mut w, &transport, &reply).await?;
            }
            changed = link.changed() => {
                // The table is the only writer; a closed link means the host dropped it.
                let now = link.borrow_and_update().clone();
                if let Some((reason, message)) = now.end {
                    send(&mut w, &transport, &SessionMessage::Bye(Bye { reason, message })).await?;
                    w.close().await?;
                    return Ok(());
                }
                if changed.is_err() {
                    return Ok(());
                }
                if now.permissions != permissions {
                    permissions = now.permissions;
                    send(&mut w, &transport, &SessionMessage::PermissionsChanged(portico_core::wire::session::PermissionsChanged { permissions })).await?;
                }
            }
            packet = packets.recv() => match packet {
                Ok(p) => {
                    if waiting_for_key && !p.keyframe {
                        continue;
                    }
                    waiting_for_key = false;
                    let bytes = transport.seal(&p.bytes)?;
                    w.write_all(&bytes).await?;
                    w.flush().await?;
                }
                Err(RecvError::Lagged(n)) => {
                    // This viewer fell behind: skip to the next keyframe, ask for one.
                    tracing::debug!(skipped = n, "viewer lagging; resyncing");
                    waiting_for_key = true;
                    deps.encoder.do_send(encoder::Resync);
                }
                Err(RecvError::Closed) => {
                    let bye = SessionMessage::Bye(Bye { reason: ByeReason::Shutdown, message: "the host is shutting down".into() });
                    send(&mut w, &transport, &bye).await?;
                    return Ok(());
                }
            },
            msg = reader.next() => match msg? {
                None => return Ok(()),
                Some(SessionMessage::Input(ev)) => {
                    // Read at this moment: a narrowing applies to the very next event.
                    if access::may_control(link.borrow().permissions) {
                        deps.input.do_send(Inject(ev));
                    } else {
                        let n = deps.dropped_input.fetch_add(1, Ordering::Relaxed) + 1;
                        tracing::debug!(dropped = n, "input from a view-only session dropped");
                    }
                }
                Some(SessionMessage::RequestKeyframe(_)) => deps.encoder.do_send(encoder::Resync),
                Some(SessionMessage::SetBitrate(b)) => deps.encoder.do_send(encoder::SetBitrate(b.bps)),
                Some(SessionMessage::Stats(_)) => {}
                Some(SessionMessage::Clipboard(c)) => {
                    if let Some(reply) = clipboard_in(c.text, permissions, files.confirm, granted.session_id, deps, clip_tx.clone()).await {
                        send(&mut w, &transport, &reply).await?;
                    }
                }
                Some(SessionMessage::FileOffer(o)) => {
                    if let Some(reply) = files.offer(o, permissions, deps, svc_tx.clone()).await {
                        send(&mut w, &transport, &reply).await?;
                    }
                }
                Some(SessionMessage::FileChunk(c)) => {
                    if let Some(reply) = files.chunk(c) {
                        send(&mut w, &transport, &reply).await?;
                    }
                }
                Some(SessionMessage::FileEnd(e)) => {
                    let reply = files.end(e.transfer_id, deps);
                    send(&mut w, &transport, &reply).await?;
                }
                Some(SessionMessage::Bye(b)) => {
                    tracing::info!(reason = ?b.reason, "viewer said bye");
                    return Ok(());
                }
                Some(other) => {
                    tracing::debug!(kind = portico_core::wire::WireMessage::variant_name(&other), "message not handled by this host yet");
                }
            },
        }
    }
}

/// A session's file transfers.
struct Transfers {
    session_id: u64,
    /// Guests and visitors: the owner allows each transfer.
    confirm: bool,
    /// Offers waiting for a decision.
    offers: std::collections::HashMap<u64, FileOffer>,
    /// Allowed transfers being received.
    incoming: std::collections::HashMap<u64, Incoming>,
}

fn decision(id: u64, allowed: bool, pending: bool, message: impl Into<String>) -> SessionMessage {
    SessionMessage::ServiceDecision(ServiceDecision {
        service: Service::File,
        id,
        allowed,
        pending,
        message: message.into(),
    })
}

fn result(id: u64, ok: bool, message: impl Into<String>) -> SessionMessage {
    SessionMessage::FileResult(FileResult {
        transfer_id: id,
        ok,
        message: message.into(),
    })
}

impl Transfers {
    async fn offer(
        &mut self,
        o: FileOffer,
        permissions: Permissions,
        deps: &SessionDeps,
        decided: tokio::sync::mpsc::Sender<(u64, bool)>,
    ) -> Option<SessionMessage> {
        let id = o.transfer_id;
        if !permissions.has(Permission::Files) {
            return Some(decision(
                id,
                false,
                false,
                "this session may not send files",
            ));
        }
        if self.offers.len() + self.incoming.len() >= MAX_TRANSFERS
            || self.offers.contains_key(&id)
            || self.incoming.contains_key(&id)
        {
            return Some(decision(
                id,
                false,
                false,
                "too many transfers at once, or a duplicate transfer number",
            ));
        }
        if o.size > MAX_FILE || o.sha256.len() != 32 {
            return Some(decision(
                id,
                false,
                false,
                format!("refused: files up to {MAX_FILE} bytes with a SHA-256"),
            ));
        }
        let detail = format!("{} ({} bytes)", sanitize_name(&o.name), o.size);
        self.offers.insert(id, o);
        if !self.confirm {
            deps.access.do_send(LogService(
                "file_allowed",
                format!("session {}: {detail} (by permission)", self.session_id),
            ));
            return Some(self.decided(id, true, deps));
        }
        match deps
            .access
            .send(AskService {
                session_id: self.session_id,
                service: Service::File,
                detail,
            })
            .await
        {
            Ok(Ok((_, answer))) => {
                tokio::spawn(async move {
                    let allowed = answer.await.unwrap_or(false);
                    if decided.send((id, allowed)).await.is_err() {
                        tracing::debug!(
                            transfer = id,
                            "the session ended before the owner answered"
                        );
                    }
                });
                Some(decision(
                    id,
                    false,
                    true,
                    "waiting for the owner to allow the file",
                ))
            }
            Ok(Err(e)) => {
                self.offers.remove(&id);
                Some(decision(id, false, false, e))
            }
            Err(_) => None,
        }
    }

    fn decided(&mut self, id: u64, allowed: bool, deps: &SessionDeps) -> SessionMessage {
        let Some(o) = self.offers.remove(&id) else {
            return decision(id, false, false, "unknown transfer");
        };
        if !allowed {
            return decision(id, false, false, "the owner denied the file");
        }
        match Incoming::start(&deps.download_dir, id, &o.name, o.size, o.sha256) {
            Ok(inc) => {
                self.incoming.insert(id, inc);
                decision(id, true, false, "allowed")
            }
            Err(e) => decision(id, false, false, e.to_string()),
        }
    }

    fn chunk(&mut self, c: FileChunk) -> Option<SessionMessage> {
        let inc = match self.incoming.get_mut(&c.transfer_id) {
            Some(i) => i,
            None => {
                return Some(result(
                    c.transfer_id,
                    false,
                    "chunk for a transfer that is not allowed or open",
                ))
            }
        };
        match inc.write(c.offset, &c.data) {
            Ok(()) => None,
            Err(e) => {
                // Dropping the transfer removes the partial file.
                self.incoming.remove(&c.transfer_id);
                Some(result(c.transfer_id, false, e.to_string()))
            }
        }
    }

    fn end(&mut self, id: u64, deps: &SessionDeps) -> SessionMessage {
        let Some(inc) = self.incoming.remove(&id) else {
            return result(id, false, "no such open transfer");
        };
        match inc.finish() {
            Ok(path) => {
                deps.access.do_send(LogService(
                    "file_received",
                    format!("session {}: {}", self.session_id, path.display()),
                ));
                result(id, true, format!("saved as {}", path.display()))
            }
            Err(e) => {
                deps.access.do_send(LogService(
                    "file_failed",
                    format!("session {}: {e}", self.session_id),
                ));
                result(id, false, e.to_string())
            }
        }
    }
}

/// The next host clipboard change, or never when this session does not follow it.
async fn next_text(rx: &mut Option<tokio::sync::broadcast::Receiver<String>>) -> String {
    loop {
        match rx {
            Some(r) => match r.recv().await {
                Ok(t) => return t,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => *rx = None,
            },
            None => std::future::pending::<()>().await,
        }
    }
}

fn clip_decision(allowed: bool, pending: bool, message: impl Into<String>) -> SessionMessage {
    SessionMessage::ServiceDecision(ServiceDecision {
        service: Service::Clipboard,
        id: 0,
        allowed,
        pending,
        message: message.into(),
    })
}

/// Text the viewer wants on the host's clipboard.
async fn clipboard_in(
    text: String,
    permissions: Permissions,
    confirm: bool,
    session_id: u64,
    deps: &SessionDeps,
    decided: tokio::sync::mpsc::Sender<(bool, String)>,
) -> Option<SessionMessage> {
    if !permissions.has(Permission::Clipboard) {
        return Some(clip_decision(
            false,
            false,
            "this session may not use the clipboard",
        ));
    }
    if text.len() > crate::clipboard::MAX_TEXT {
        return Some(clip_decision(false, false, "clipboard text too large"));
    }
    if !confirm {
        return Some(clip_decided(true, text, deps, session_id));
    }
    let preview: String = text.chars().take(40).collect();
    let detail = format!("paste {} characters: {preview:?}", text.chars().count());
    match deps
        .access
        .send(AskService {
            session_id,
            service: Service::Clipboard,
            detail,
        })
        .await
    {
        Ok(Ok((_, answer))) => {
            tokio::spawn(async move {
                let allowed = answer.await.unwrap_or(false);
                if decided.send((allowed, text)).await.is_err() {
                    tracing::debug!("the session ended before the owner answered");
                }
            });
            Some(clip_decision(
                false,
                true,
                "waiting for the owner to allow the clipboard",
            ))
        }
        Ok(Err(e)) => Some(clip_decision(false, false, e)),
        Err(_) => None,
    }
}

fn clip_decided(
    allowed: bool,
    text: String,
    deps: &SessionDeps,
    session_id: u64,
) -> SessionMessage {
    if !allowed {
        return clip_decision(false, false, "the owner denied the clipboard");
    }
    deps.access.do_send(LogService(
        "clipboard_set",
        format!("session {session_id}: {} characters", text.chars().count()),
    ));
    deps.clipboard.do_send(crate::clipboard::SetText(text));
    clip_decision(true, false, "clipboard set on the host")
}
