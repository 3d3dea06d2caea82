//! The messages the owner (console, CLI), the network actor and session tasks send to
//! [`AccessControl`]: each calls the table and flushes its effects.

use std::time::Duration;

use actix::prelude::*;
use portico_core::policy::{AclEntry, OwnerAnswer};
use portico_core::table::{ConsoleState, ServerTrust};
use portico_core::wire::session::Service;
use portico_core::wire::signal::Change;
use serde::Deserialize;
use tokio::sync::{broadcast, oneshot};

use super::{clock, AccessControl};

/// The console's view of the state.
#[derive(Message)]
#[rtype(result = "ConsoleState")]
pub struct GetState;

impl Handler<GetState> for AccessControl {
    type Result = MessageResult<GetState>;
    fn handle(&mut self, _: GetState, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.table.view(clock()))
    }
}

/// A feed that ticks whenever the state changes.
#[derive(Message)]
#[rtype(result = "broadcast::Receiver<u64>")]
pub struct WatchChanges;

impl Handler<WatchChanges> for AccessControl {
    type Result = MessageResult<WatchChanges>;
    fn handle(&mut self, _: WatchChanges, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.changes.subscribe())
    }
}

/// The owner answers a request.
#[derive(Message, Debug, Clone, Deserialize)]
#[rtype(result = "Result<(), String>")]
pub struct Answer {
    /// Request number.
    pub request_id: u64,
    /// Accept, accept view-only, or refuse.
    pub answer: OwnerAnswer,
    /// Time limit for the session (None: until kicked).
    pub time_limit_secs: Option<u64>,
}

impl Handler<Answer> for AccessControl {
    type Result = Result<(), String>;
    fn handle(&mut self, m: Answer, ctx: &mut Context<Self>) -> Self::Result {
        let gone = self
            .waiting
            .get(&m.request_id)
            .is_some_and(|reply| reply.is_closed());
        let result = if gone {
            self.table.withdraw(m.request_id);
            Err("the viewer left before the answer".to_string())
        } else {
            let limit = m.time_limit_secs.map(Duration::from_secs);
            self.table.answer(clock(), m.request_id, m.answer, limit)
        };
        self.flush(ctx);
        result
    }
}

/// The owner ends a session.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), String>")]
pub struct Kick(pub u64);

impl Handler<Kick> for AccessControl {
    type Result = Result<(), String>;
    fn handle(&mut self, m: Kick, ctx: &mut Context<Self>) -> Self::Result {
        let r = self.table.kick(m.0);
        self.flush(ctx);
        r
    }
}

/// The owner switches a session between view-only and interactive.
#[derive(Message, Debug)]
#[rtype(result = "Result<(), String>")]
pub struct SetViewOnly {
    /// Session number.
    pub session_id: u64,
    /// View-only (true) or back to what the session may have.
    pub view_only: bool,
}

impl Handler<SetViewOnly> for AccessControl {
    type Result = Result<(), String>;
    fn handle(&mut self, m: SetViewOnly, ctx: &mut Context<Self>) -> Self::Result {
        let r = self.table.set_view_only(clock(), m.session_id, m.view_only);
        self.flush(ctx);
        r
    }
}

/// The owner turns guest or visitor sharing on or off on this host.
#[derive(Message, Debug, Clone, Deserialize)]
#[rtype(result = "()")]
pub struct SetSharing {
    /// Guests.
    pub allow_guests: Option<bool>,
    /// Visitors.
    pub allow_visitors: Option<bool>,
}

impl Handler<SetSharing> for AccessControl {
    type Result = ();
    fn handle(&mut self, m: SetSharing, ctx: &mut Context<Self>) {
        self.table
            .set_sharing(clock(), m.allow_guests, m.allow_visitors);
        self.flush(ctx);
    }
}

/// The host registered (or re-registered) with its server, or its flags changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetServer(pub Option<ServerTrust>);

impl Handler<SetServer> for AccessControl {
    type Result = ();
    fn handle(&mut self, m: SetServer, ctx: &mut Context<Self>) {
        self.table.set_server(clock(), m.0);
        self.flush(ctx);
    }
}

/// The server says a user's groups or state changed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ServerChange(pub Change);

impl Handler<ServerChange> for AccessControl {
    type Result = ();
    fn handle(&mut self, m: ServerChange, ctx: &mut Context<Self>) {
        self.table.server_change(clock(), &m.0);
        self.flush(ctx);
    }
}

/// The server users of live sessions (the network actor asks the server for their state
/// after missing events).
#[derive(Message)]
#[rtype(result = "Vec<String>")]
pub struct LiveUsers;

impl Handler<LiveUsers> for AccessControl {
    type Result = Vec<String>;
    fn handle(&mut self, _: LiveUsers, _: &mut Context<Self>) -> Vec<String> {
        self.table.live_users()
    }
}

/// Replace the managed part of the ACL (`DATA/acl.toml`); live sessions follow it.
#[derive(Message, Debug, Clone, Deserialize)]
#[rtype(result = "()")]
pub struct SetManagedAcl(pub Vec<AclEntry>);

impl Handler<SetManagedAcl> for AccessControl {
    type Result = ();
    fn handle(&mut self, m: SetManagedAcl, ctx: &mut Context<Self>) {
        self.table.set_managed_acl(clock(), m.0);
        self.flush(ctx);
    }
}

/// A session ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionEnded(pub u64);

impl Handler<SessionEnded> for AccessControl {
    type Result = ();
    fn handle(&mut self, m: SessionEnded, ctx: &mut Context<Self>) {
        self.links.remove(&m.0);
        self.table.session_ended(clock(), m.0);
        self.flush(ctx);
    }
}

/// A session now watches this area (it started, or its viewer switched).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Watching(pub u64, pub portico_core::area::Area);

impl Handler<Watching> for AccessControl {
    type Result = ();
    fn handle(&mut self, m: Watching, ctx: &mut Context<Self>) {
        self.table.watching(m.0, m.1);
        self.flush(ctx);
    }
}

/// Withdraw a pending request (the viewer left while waiting).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Withdraw(pub u64);

impl Handler<Withdraw> for AccessControl {
    type Result = ();
    fn handle(&mut self, m: Withdraw, ctx: &mut Context<Self>) {
        self.waiting.remove(&m.0);
        self.table.withdraw(m.0);
        self.flush(ctx);
    }
}

/// A session asks for a service the owner must confirm; the answer (true = allowed) comes on
/// the returned channel; no answer in time is a denial.
#[derive(Message)]
#[rtype(result = "Result<(u64, oneshot::Receiver<bool>), String>")]
pub struct AskService {
    /// The session.
    pub session_id: u64,
    /// Which service.
    pub service: Service,
    /// What, for the owner.
    pub detail: String,
}

impl Handler<AskService> for AccessControl {
    type Result = Result<(u64, oneshot::Receiver<bool>), String>;
    fn handle(&mut self, m: AskService, ctx: &mut Context<Self>) -> Self::Result {
        let r = self
            .table
            .ask_service(clock(), m.session_id, m.service, m.detail)
            .map(|id| {
                let (reply, rx) = oneshot::channel();
                self.service_replies.insert(id, reply);
                (id, rx)
            });
        self.flush(ctx);
        r
    }
}

/// The owner allows or denies a service request.
#[derive(Message, Debug, Clone, Deserialize)]
#[rtype(result = "Result<(), String>")]
pub struct AnswerService {
    /// Request number.
    pub id: u64,
    /// Allowed.
    pub allow: bool,
}

impl Handler<AnswerService> for AccessControl {
    type Result = Result<(), String>;
    fn handle(&mut self, m: AnswerService, ctx: &mut Context<Self>) -> Self::Result {
        let closed = self
            .service_replies
            .get(&m.id)
            .is_some_and(|r| r.is_closed());
        let r = self.table.answer_service(m.id, m.allow);
        self.flush(ctx);
        if closed && r.is_ok() {
            return Err("the session ended before the answer".into());
        }
        r
    }
}

/// Record a service outcome in the audit log (transfers allowed by permission, results).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct LogService(pub &'static str, pub String);

/// A resume attempt was refused (audited once a minute at most).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct ResumeRefused(pub String);

impl Handler<ResumeRefused> for AccessControl {
    type Result = ();
    fn handle(&mut self, m: ResumeRefused, ctx: &mut Context<Self>) {
        if self.table.resume_refused(clock(), m.0.clone()) {
            tracing::warn!(detail = %m.0, "resume refused");
        }
        self.flush(ctx);
    }
}

impl Handler<LogService> for AccessControl {
    type Result = ();
    fn handle(&mut self, m: LogService, ctx: &mut Context<Self>) {
        self.table.log(m.0, m.1);
        self.flush(ctx);
    }
}
