//! The `AccessControl` actor: a thin shell over `portico_core::table::SessionTable`, which
//! decides every request, holds pending requests, live sessions and service requests, and
//! re-checks live sessions after every change. This actor only moves the table's effects to
//! where they act: the waiting viewer's reply, each live session's [`Link`], the service
//! replies, the audit log, the console's change feed, and one timer for the table's next
//! deadline.
//!
//! A live session reads its permissions and its end from a `watch` channel: the value can
//! always be replaced (never a full queue, never a dropped send), and the session task reads
//! the current value on every input event, so what the table decides is what the session
//! does, at once.

mod messages;
mod ticket_memory;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use actix::prelude::*;
use libp2p::PeerId;
use portico_core::policy::{AclEntry, HostSettings, Permissions};
use portico_core::table::{Clock, Effect, Incoming, Outcome, SessionTable};
use portico_core::wire::handshake::AccessRequest;
use portico_core::wire::session::ByeReason;
use tokio::sync::{broadcast, oneshot, watch};

pub use messages::{
    Answer, AnswerService, AskService, GetState, Kick, LiveUsers, LogService, ResumeRefused,
    ServerChange, SessionEnded, SetManagedAcl, SetServer, SetSharing, SetViewOnly, WatchChanges,
    Watching, Withdraw,
};
pub use portico_core::table::{
    ConsoleState, PendingView, Refusal, ServerTrust, ServiceView, SessionView,
};

/// What a live session may do now, and whether it must end. The table is the only writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// Permissions now.
    pub permissions: Permissions,
    /// Set once: the session must say bye with this reason and sentence, and close.
    pub end: Option<(ByeReason, String)>,
}

/// Access granted.
#[derive(Debug)]
pub struct Granted {
    /// The session's number.
    pub session_id: u64,
    /// The owner's time limit (the table ends the session when it runs out).
    pub time_limit: Option<Duration>,
    /// Permissions now and the session's end, as the table decides them.
    pub link: watch::Receiver<Link>,
    /// Guests and visitors: the owner confirms each file transfer and clipboard sync.
    pub confirm_services: bool,
}

/// The outcome of [`Decide`].
#[derive(Debug)]
pub enum Verdict {
    /// Allowed now.
    Granted(Granted),
    /// Waiting for the owner.
    Pending {
        /// The request's number (console, `portico accept ID`).
        request_id: u64,
        /// How long the owner has.
        timeout: Duration,
        /// The owner's answer (or the timeout's refusal).
        answer: oneshot::Receiver<Result<Granted, Refusal>>,
    },
}

/// Decide a request from `viewer` (proven by the session handshake).
#[derive(Message, Debug)]
#[rtype(result = "Result<Verdict, Refusal>")]
pub struct Decide {
    /// The viewer's PeerId.
    pub viewer: PeerId,
    /// Its address as the host sees it.
    pub ip: String,
    /// Whether the connection is relayed.
    pub relayed: bool,
    /// What it asks.
    pub request: AccessRequest,
}

/// The access-control actor.
pub struct AccessControl {
    /// The decisions and the state.
    table: SessionTable,
    /// Host audit log (written on its own thread).
    audit: Option<crate::audit_log::AuditWriter>,
    /// Viewers waiting for the owner, by request.
    waiting: HashMap<u64, oneshot::Sender<Result<Granted, Refusal>>>,
    /// Live sessions' links, by session.
    links: HashMap<u64, watch::Sender<Link>>,
    /// Sessions waiting for a service answer, by request.
    service_replies: HashMap<u64, oneshot::Sender<bool>>,
    /// Ticks on every change (the console listens).
    changes: broadcast::Sender<u64>,
    /// The table's version last announced.
    announced: u64,
    /// The timer for the table's next deadline.
    timer: Option<SpawnHandle>,
    /// Where the table's ticket memory is kept (`DATA/tickets.json`), when there is a data
    /// dir.
    memory_file: Option<std::path::PathBuf>,
}

/// The clock the table runs on.
pub(crate) fn clock() -> Clock {
    Clock::now()
}

impl AccessControl {
    /// An access controller for host `me`.
    pub fn new(
        me: PeerId,
        settings: HostSettings,
        acl: Vec<AclEntry>,
        owner_timeout: Duration,
        audit: Option<crate::audit_log::AuditWriter>,
    ) -> Self {
        let (changes, _) = broadcast::channel(64);
        Self {
            memory_file: None,
            table: SessionTable::new(me, settings, acl, owner_timeout),
            audit,
            waiting: HashMap::new(),
            links: HashMap::new(),
            service_replies: HashMap::new(),
            changes,
            announced: 0,
            timer: None,
        }
    }

    /// Keeps the ticket memory in `file`, taking back what it holds now (a previous run's).
    pub fn remembering(mut self, file: std::path::PathBuf) -> Result<Self, crate::host::HostError> {
        let memory = ticket_memory::load(&file)?;
        self.table.restore_memory(clock(), memory);
        self.memory_file = Some(file);
        Ok(self)
    }

    fn link(&mut self, g: portico_core::table::Grant) -> Granted {
        let (tx, link) = watch::channel(Link {
            permissions: g.permissions,
            end: None,
        });
        self.links.insert(g.session_id, tx);
        Granted {
            session_id: g.session_id,
            time_limit: g.time_limit,
            link,
            confirm_services: g.confirm_services,
        }
    }

    /// Carries out the table's effects, announces changes, and re-arms the timer.
    fn flush(&mut self, ctx: &mut Context<Self>) {
        while let Some(effect) = self.table.poll_effect() {
            self.apply(effect);
        }
        if self.table.version() != self.announced {
            self.announced = self.table.version();
            // Nobody listening is fine.
            drop(self.changes.send(self.announced));
        }
        if let Some(h) = self.timer.take() {
            ctx.cancel_future(h);
        }
        if let Some(at) = self.table.next_deadline(clock()) {
            let wait = at.saturating_duration_since(Instant::now());
            self.timer = Some(ctx.run_later(wait, |act, ctx| {
                act.timer = None;
                act.table.handle_timeout(clock());
                act.flush(ctx);
            }));
        }
    }

    fn apply(&mut self, effect: Effect) {
        match effect {
            Effect::Audit { action, detail } => {
                if let Some(a) = &self.audit {
                    a.append(action, detail);
                }
            }
            Effect::Answered { request_id, result } => {
                let Some(reply) = self.waiting.remove(&request_id) else {
                    return;
                };
                let session = result.as_ref().ok().map(|g| g.session_id);
                let result = result.map(|g| self.link(g));
                if reply.send(result).is_err() {
                    // The viewer left just before the answer: nothing stays open for it.
                    if let Some(id) = session {
                        self.links.remove(&id);
                        self.table.session_ended(clock(), id);
                    }
                }
            }
            Effect::Permissions {
                session_id,
                permissions,
            } => {
                if let Some(l) = self.links.get(&session_id) {
                    l.send_modify(|l| l.permissions = permissions);
                }
            }
            Effect::End {
                session_id,
                reason,
                message,
            } => {
                if let Some(l) = self.links.remove(&session_id) {
                    l.send_modify(|l| {
                        l.permissions = Permissions::NONE;
                        l.end = Some((reason, message));
                    });
                }
            }
            Effect::Remember => {
                if let Some(file) = &self.memory_file {
                    if let Err(e) = ticket_memory::save(file, &self.table.memory(clock())) {
                        // Not fatal for the sessions of now; a restart would forget.
                        tracing::error!(error = %e, "cannot keep the ticket memory");
                    }
                }
            }
            Effect::Service { id, allowed } => {
                if let Some(reply) = self.service_replies.remove(&id) {
                    if reply.send(allowed).is_err() {
                        tracing::debug!(request = id, "the session ended before the answer");
                    }
                }
            }
        }
    }
}

impl Actor for AccessControl {
    type Context = Context<Self>;
}

impl Handler<Decide> for AccessControl {
    type Result = Result<Verdict, Refusal>;

    fn handle(&mut self, m: Decide, ctx: &mut Context<Self>) -> Self::Result {
        let span =
            tracing::info_span!("access", viewer = %m.viewer, kind = %m.request.kind, ip = %m.ip);
        let _g = span.enter();
        let incoming = Incoming {
            viewer: m.viewer,
            ip: &m.ip,
            relayed: m.relayed,
            request: &m.request,
        };
        let outcome = self.table.decide(clock(), incoming);
        let verdict = match outcome {
            Ok(Outcome::Granted(g)) => {
                tracing::info!(permissions = %g.permissions, "access allowed");
                Ok(Verdict::Granted(self.link(g)))
            }
            Ok(Outcome::Pending {
                request_id,
                timeout,
            }) => {
                tracing::info!(request = request_id, "asking the owner");
                let (reply, answer) = oneshot::channel();
                self.waiting.insert(request_id, reply);
                Ok(Verdict::Pending {
                    request_id,
                    timeout,
                    answer,
                })
            }
            Err(r) => {
                tracing::info!(reason = %r.code, "access refused");
                Err(r)
            }
        };
        self.flush(ctx);
        verdict
    }
}
