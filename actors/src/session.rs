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
    self, AccessControl, Decide, Granted, SessionControl, SessionEnded, Verdict, Withdraw,
};
use crate::encoder::{self, Encoder, Subscribe};
use crate::input::{Inject, Input};
use crate::network::PeerAddrs;
use crate::stream_io::{read_handshake, send, Reader, SharedTransport, StreamError};

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
}

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
        permissions: granted.permissions,
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
    let mut control = granted.control;
    let mut may_control = access::may_control(granted.permissions);
    let deadline = granted.time_limit.map(|t| tokio::time::Instant::now() + t);
    let limit = async move {
        match deadline {
            Some(d) => tokio::time::sleep_until(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(limit);
    let mut waiting_for_key = true;
    loop {
        tokio::select! {
            () = &mut limit => {
                let bye = SessionMessage::Bye(Bye { reason: ByeReason::TimeLimit, message: "the owner's time limit for this session ran out".into() });
                send(&mut w, &transport, &bye).await?;
                w.close().await?;
                return Ok(());
            }
            c = control.recv() => match c {
                Some(SessionControl::End(reason, message)) => {
                    send(&mut w, &transport, &SessionMessage::Bye(Bye { reason, message })).await?;
                    w.close().await?;
                    return Ok(());
                }
                Some(SessionControl::Permissions(p)) => {
                    may_control = access::may_control(p);
                    send(&mut w, &transport, &SessionMessage::PermissionsChanged(portico_core::wire::session::PermissionsChanged { permissions: p })).await?;
                }
                None => {}
            },
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
                    if may_control {
                        deps.input.do_send(Inject(ev));
                    } else {
                        let n = deps.dropped_input.fetch_add(1, Ordering::Relaxed) + 1;
                        tracing::debug!(dropped = n, "input from a view-only session dropped");
                    }
                }
                Some(SessionMessage::RequestKeyframe(_)) => deps.encoder.do_send(encoder::Resync),
                Some(SessionMessage::SetBitrate(b)) => deps.encoder.do_send(encoder::SetBitrate(b.bps)),
                Some(SessionMessage::Stats(_)) => {}
                Some(SessionMessage::Bye(b)) => {
                    tracing::info!(reason = ?b.reason, "viewer said bye");
                    return Ok(());
                }
                Some(other) => {
                    tracing::debug!(kind = other_name(&other), "message not handled by this host yet");
                }
            },
        }
    }
}

fn other_name(m: &SessionMessage) -> &'static str {
    use portico_core::wire::WireMessage;
    m.variant_name()
}
