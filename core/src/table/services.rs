//! Service requests (file transfers, clipboard) waiting for the owner, and the table's
//! timers: owner deadlines, session time limits, ACL expiry.

use std::collections::BTreeMap;

use super::*;

/// The keys of `map` whose values satisfy `pred`, in order.
pub(super) fn keys_where<V>(map: &BTreeMap<u64, V>, pred: impl Fn(&V) -> bool) -> Vec<u64> {
    map.iter()
        .filter(|(_, v)| pred(v))
        .map(|(k, _)| *k)
        .collect()
}

impl SessionTable {
    /// A session asks for a service the owner must confirm; the answer comes as
    /// [`Effect::Service`]; no answer in time is a denial.
    pub fn ask_service(
        &mut self,
        now: Clock,
        session_id: u64,
        service: Service,
        detail: String,
    ) -> Result<u64, String> {
        let who = self
            .sessions
            .get(&session_id)
            .map(Live::who)
            .ok_or("the session is gone")?;
        if self.services.len() >= MAX_PENDING {
            return Err("too many requests are waiting for the owner".into());
        }
        let id = self.id();
        self.audit(
            "service_asked",
            format!("request {id}: {who} {service:?} {detail}"),
        );
        self.services.insert(
            id,
            PendingService {
                session_id,
                who,
                service,
                detail,
                deadline: now.at + self.owner_timeout,
            },
        );
        self.changed();
        Ok(id)
    }

    /// The owner allows or denies a service request.
    pub fn answer_service(&mut self, id: u64, allow: bool) -> Result<(), String> {
        let p = self
            .services
            .remove(&id)
            .ok_or_else(|| format!("no pending service request {id}"))?;
        let action = if allow {
            "service_allowed"
        } else {
            "service_denied"
        };
        self.audit(action, format!("request {id}: {} {}", p.who, p.detail));
        self.effects
            .push_back(Effect::Service { id, allowed: allow });
        self.changed();
        Ok(())
    }

    /// Records a service outcome decided elsewhere (allowed by permission, a result).
    pub fn log(&mut self, action: &'static str, detail: String) {
        self.audit(action, detail);
    }

    /// A stream that tried to resume a session with a token that does not check out: one
    /// audit line a minute at most, the others counted in the next line. Returns whether
    /// this one was written (the shell logs it too).
    pub fn resume_refused(&mut self, now: Clock, detail: String) -> bool {
        match self.resume_refusals.event(now.at) {
            Some(0) => self.audit("resume_refused", detail),
            Some(n) => self.audit(
                "resume_refused",
                format!("{detail} ({n} more refused before this)"),
            ),
            None => return false,
        }
        true
    }

    /// When [`SessionTable::handle_timeout`] should next run: the earliest owner deadline,
    /// session time limit or ACL expiry.
    pub fn next_deadline(&self, now: Clock) -> Option<Instant> {
        let pending = self.pending.values().map(|p| p.deadline);
        let services = self.services.values().map(|p| p.deadline);
        let limits = self
            .sessions
            .values()
            .filter_map(|s| s.time_limit.map(|t| s.started + t));
        let expiries = self
            .acl
            .iter()
            .filter_map(|e| e.expires_at)
            .filter(|t| *t > now.unix)
            .map(|t| now.at + Duration::from_secs(t - now.unix));
        let quiet = self.resume_refusals.due();
        pending
            .chain(services)
            .chain(limits)
            .chain(expiries)
            .chain(quiet)
            .min()
    }

    /// Runs what is due at `now`: unanswered requests are refused, unanswered service
    /// requests denied, sessions past their time limit end, expired ACL entries re-checked.
    pub fn handle_timeout(&mut self, now: Clock) {
        let due = keys_where(&self.pending, |p| p.deadline <= now.at);
        for request_id in due {
            if let Some(p) = self.pending.remove(&request_id) {
                self.audit(
                    "timed_out",
                    format!("request {request_id} from {} ({})", p.name, p.viewer),
                );
                self.effects.push_back(Effect::Answered {
                    request_id,
                    result: Err(Refusal::new(
                        "owner_timeout",
                        "the owner did not answer in time",
                    )),
                });
                self.changed();
            }
        }
        let due = keys_where(&self.services, |p| p.deadline <= now.at);
        for &id in &due {
            self.audit("service_timed_out", format!("request {id}"));
        }
        self.deny_services(due);
        let due = keys_where(&self.sessions, |s| {
            s.time_limit.is_some_and(|t| s.started + t <= now.at)
        });
        for id in due {
            self.audit("time_limit", format!("session {id}"));
            let msg = "the owner's time limit for this session ran out";
            self.end(id, ByeReason::TimeLimit, msg.into());
        }
        if self.acl.iter().any(|e| e.expires_at.is_some()) {
            self.recheck(now);
        }
        if let Some(n) = self.resume_refusals.flush(now.at) {
            self.audit(
                "resume_refused",
                format!("{n} more refused in the last minute"),
            );
        }
    }

    /// Denies (and drops) the service requests of a session that is gone.
    pub(super) fn drop_services_of(&mut self, session_id: u64) {
        let ids = keys_where(&self.services, |p| p.session_id == session_id);
        self.deny_services(ids);
    }

    /// Denies the service requests whose permission the session no longer holds.
    pub(super) fn deny_lost_services(&mut self) {
        let ids = keys_where(&self.services, |r| {
            let need = match r.service {
                Service::File => Permission::Files,
                Service::Browse => Permission::Browse,
                Service::Clipboard => Permission::Clipboard,
            };
            !self
                .sessions
                .get(&r.session_id)
                .is_some_and(|s| s.permissions.has(need))
        });
        self.deny_services(ids);
    }

    /// Removes these service requests, each answered "denied".
    fn deny_services(&mut self, ids: Vec<u64>) {
        for id in ids {
            if self.services.remove(&id).is_some() {
                self.effects
                    .push_back(Effect::Service { id, allowed: false });
                self.changed();
            }
        }
    }
}
