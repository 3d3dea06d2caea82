//! Service requests the owner confirms (file transfers, clipboard) for guests and visitors.

use std::time::Instant;

use actix::prelude::*;
use portico_core::wire::session::Service;
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use super::AccessControl;

/// A service request waiting for the owner.
#[derive(Debug)]
pub(super) struct PendingService {
    pub(super) session_id: u64,
    pub(super) who: String,
    pub(super) service: Service,
    pub(super) detail: String,
    pub(super) created: Instant,
    pub(super) reply: oneshot::Sender<bool>,
}

/// A pending service request as the owner sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceView {
    /// Request number.
    pub id: u64,
    /// The session asking.
    pub session_id: u64,
    /// Who.
    pub who: String,
    /// `file` or `clipboard`.
    pub service: String,
    /// What (file name and size).
    pub detail: String,
    /// Seconds left to answer.
    pub seconds_left: u64,
}

impl AccessControl {
    pub(super) fn service_views(&self) -> Vec<ServiceView> {
        let mut v: Vec<ServiceView> = self
            .pending_services
            .iter()
            .map(|(id, p)| ServiceView {
                id: *id,
                session_id: p.session_id,
                who: p.who.clone(),
                service: match p.service {
                    Service::File => "file".into(),
                    Service::Clipboard => "clipboard".into(),
                },
                detail: p.detail.clone(),
                seconds_left: self
                    .owner_timeout
                    .saturating_sub(p.created.elapsed())
                    .as_secs(),
            })
            .collect();
        v.sort_by_key(|s| s.id);
        v
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
        let who = self
            .sessions
            .get(&m.session_id)
            .map(|s| format!("{} {}", s.kind, s.name))
            .ok_or("the session is gone")?;
        if self.pending_services.len() >= super::MAX_PENDING {
            return Err("too many requests are waiting for the owner".into());
        }
        let id = self.id();
        let (reply, rx) = oneshot::channel();
        self.log(
            "service_asked",
            format!("request {id}: {who} {:?} {}", m.service, m.detail),
        );
        self.pending_services.insert(
            id,
            PendingService {
                session_id: m.session_id,
                who,
                service: m.service,
                detail: m.detail,
                created: Instant::now(),
                reply,
            },
        );
        let timeout = self.owner_timeout;
        ctx.run_later(timeout, move |act, _| {
            if let Some(p) = act.pending_services.remove(&id) {
                act.log("service_timed_out", format!("request {id}"));
                if p.reply.send(false).is_err() {
                    tracing::debug!(request = id, "the session ended before the timeout");
                }
                act.changed();
            }
        });
        self.changed();
        Ok((id, rx))
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
    fn handle(&mut self, m: AnswerService, _: &mut Context<Self>) -> Self::Result {
        let p = self
            .pending_services
            .remove(&m.id)
            .ok_or_else(|| format!("no pending service request {}", m.id))?;
        self.log(
            if m.allow {
                "service_allowed"
            } else {
                "service_denied"
            },
            format!("request {}: {} {}", m.id, p.who, p.detail),
        );
        self.changed();
        p.reply
            .send(m.allow)
            .map_err(|_| "the session ended before the answer".to_string())
    }
}

/// Record a service outcome in the audit log (transfers allowed by permission, results).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct LogService(pub String, pub String);

impl Handler<LogService> for AccessControl {
    type Result = ();
    fn handle(&mut self, m: LogService, _: &mut Context<Self>) {
        self.log(&m.0, m.1);
    }
}
