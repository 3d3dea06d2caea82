//! The owner's and the server's changes to the table, and the re-check that keeps every live
//! session in step with the policy.

use super::services::keys_where;
use super::*;
use crate::policy::RefuseReason;

impl SessionTable {
    /// The viewer left while waiting: its request leaves the owner's list.
    pub fn withdraw(&mut self, request_id: u64) {
        if self.pending.remove(&request_id).is_some() {
            self.audit("withdrawn", format!("request {request_id}"));
            self.changed();
        }
    }

    /// The owner ends a session.
    pub fn kick(&mut self, session_id: u64) -> Result<(), String> {
        let s = self
            .sessions
            .get(&session_id)
            .ok_or_else(|| format!("no session {session_id}"))?;
        let detail = format!("session {session_id} {} ({})", s.name, s.viewer);
        self.audit("kicked", detail);
        self.end(
            session_id,
            ByeReason::Kicked,
            "disconnected by the owner".into(),
        );
        Ok(())
    }

    /// A session now watches `area` (it started, or its viewer switched): the owner's list
    /// shows it. Not audited: a switch changes what the viewer sees, not what it may do.
    pub fn watching(&mut self, session_id: u64, area: crate::area::Area) {
        if let Some(s) = self.sessions.get_mut(&session_id) {
            if s.watching != Some(area) {
                s.watching = Some(area);
                self.changed();
            }
        }
    }

    /// The owner switches a session to view-only, or back to what it may have.
    pub fn set_view_only(
        &mut self,
        now: Clock,
        session_id: u64,
        view_only: bool,
    ) -> Result<(), String> {
        let s = self
            .sessions
            .get_mut(&session_id)
            .ok_or_else(|| format!("no session {session_id}"))?;
        s.view_only = view_only;
        self.recheck(now);
        let p = self.permissions(session_id).unwrap_or(Permissions::NONE);
        self.audit("mode", format!("session {session_id}: {p}"));
        Ok(())
    }

    /// The owner turns guest or visitor sharing on or off on this host.
    pub fn set_sharing(&mut self, now: Clock, guests: Option<bool>, visitors: Option<bool>) {
        if let Some(g) = guests {
            self.settings.allow_guests = g;
        }
        if let Some(v) = visitors {
            self.settings.allow_visitors = v;
        }
        let detail = format!(
            "guests={} visitors={}",
            self.settings.allow_guests, self.settings.allow_visitors
        );
        self.audit("sharing", detail);
        self.recheck(now);
    }

    /// The host registered (or re-registered) with its server, or its flags changed.
    pub fn set_server(&mut self, now: Clock, server: Option<ServerTrust>) {
        self.server = server;
        self.recheck(now);
    }

    /// The managed part of the ACL changed (`portico acl`, provisioning).
    pub fn set_managed_acl(&mut self, now: Clock, entries: Vec<AclEntry>) {
        self.managed_acl = entries;
        self.acl = self
            .base_acl
            .iter()
            .chain(self.managed_acl.iter())
            .cloned()
            .collect();
        self.audit("acl", format!("{} managed entries", self.managed_acl.len()));
        self.recheck(now);
    }

    /// The server reports a change about a user: new groups, disabled, or forced to come
    /// in only as a server user. Tickets of that account issued until the change are
    /// refused from now on; live sessions and requests waiting for the owner take the
    /// server's word at once (a disabled account's end, the others are re-checked).
    pub fn server_change(&mut self, now: Clock, change: &Change) {
        if let Change::User {
            user,
            groups,
            disabled,
            force_server_security,
            changed_at,
        } = change
        {
            // A server that does not say when: past the host's clock (the event is fresh;
            // tickets of this very second are refused too).
            let at = if *changed_at == 0 {
                now.unix + 1
            } else {
                *changed_at
            };
            self.note_user_change(user, at, now.unix);
            self.audit(
                "account_changed",
                format!(
                    "{user} at {at}: groups [{}]{}{}",
                    groups.join(","),
                    if *disabled { ", disabled" } else { "" },
                    if *force_server_security {
                        ", server security forced"
                    } else {
                        ""
                    }
                ),
            );
            let update = |t: &mut crate::ticket::Ticket| {
                // The ticket's groups were true at issue time; the server's word is newer.
                t.subject.groups = groups.clone();
                t.subject.force_server_security |= *force_server_security;
            };
            let mut gone = Vec::new();
            for (id, s) in self.sessions.iter_mut() {
                let Some(t) = s.ticket.as_mut().filter(|t| t.subject.user == *user) else {
                    continue;
                };
                if *disabled {
                    gone.push(*id);
                } else {
                    update(t);
                }
            }
            for id in gone {
                self.audit(
                    "revoked",
                    format!("session {id} {user}: account disabled at the server"),
                );
                self.end(
                    id,
                    ByeReason::Revoked,
                    "access revoked: your account was disabled".into(),
                );
            }
            let waiting = keys_where(&self.pending, |p| {
                p.ticket.as_ref().is_some_and(|t| t.subject.user == *user)
            });
            for id in waiting {
                if *disabled {
                    self.refuse_pending(id, "revoked", "access revoked: your account was disabled");
                } else if let Some(t) = self.pending.get_mut(&id).and_then(|p| p.ticket.as_mut()) {
                    update(t);
                }
            }
        }
        self.recheck(now);
    }

    /// Refuses a request that waits for the owner.
    pub(super) fn refuse_pending(&mut self, request_id: u64, code: &str, why: &str) {
        if let Some(p) = self.pending.remove(&request_id) {
            self.audit(
                "refused",
                format!("request {request_id} from {} ({}): {why}", p.name, p.viewer),
            );
            self.effects.push_back(Effect::Answered {
                request_id,
                result: Err(Refusal::new(code, why)),
            });
            self.changed();
        }
    }

    /// The server users of live sessions (each once): a host that missed server events
    /// asks the server for their state now.
    pub fn live_users(&self) -> Vec<String> {
        let mut users: Vec<String> = self
            .sessions
            .values()
            .filter_map(|s| s.ticket.as_ref().map(|t| t.subject.user.clone()))
            .collect();
        users.sort();
        users.dedup();
        users
    }

    /// A session ended on its own (viewer left, stream broke).
    pub fn session_ended(&mut self, now: Clock, session_id: u64) {
        if let Some(s) = self.sessions.remove(&session_id) {
            let secs = now.at.saturating_duration_since(s.started).as_secs();
            self.audit(
                "ended",
                format!("session {session_id} {} after {secs} s", s.name),
            );
            self.drop_services_of(session_id);
            self.changed();
        }
    }

    pub(super) fn end(&mut self, session_id: u64, reason: ByeReason, message: String) {
        if self.sessions.remove(&session_id).is_some() {
            self.drop_services_of(session_id);
            self.effects.push_back(Effect::End {
                session_id,
                reason,
                message,
            });
            self.changed();
        }
    }

    /// Re-evaluates every live session against the policy as it is now: refused sessions
    /// end, the rest get `policy ∩ ceiling ∩ owner switch` (narrowed or restored).
    pub(super) fn recheck(&mut self, now: Clock) {
        // Requests waiting for the owner that the policy now refuses are refused at once.
        let refused: Vec<(u64, RefuseReason)> = self
            .pending
            .iter()
            .filter_map(|(id, p)| {
                match self.policy(p.kind, p.viewer, p.mode, p.ticket.as_ref(), now.unix) {
                    Decision::Refuse(reason) => Some((*id, reason)),
                    _ => None,
                }
            })
            .collect();
        for (id, reason) in refused {
            self.refuse_pending(id, reason.code(), &reason.to_string());
        }
        let mut ended = Vec::new();
        let mut changed = Vec::new();
        for (id, s) in &self.sessions {
            match self.policy(s.kind, s.viewer, s.mode, s.ticket.as_ref(), now.unix) {
                Decision::Refuse(reason) => ended.push((*id, reason.to_string())),
                Decision::Allow { permissions } | Decision::AskOwner { permissions } => {
                    let switch = if s.view_only {
                        Permissions::VIEW_ONLY
                    } else {
                        Permissions::ALL
                    };
                    let p = permissions.intersect(s.ceiling).intersect(switch);
                    if p != s.permissions {
                        changed.push((*id, p));
                    }
                }
            }
        }
        for (id, why) in ended {
            let name = self.sessions.get(&id).map(Live::who).unwrap_or_default();
            self.audit("revoked", format!("session {id} {name}: {why}"));
            self.end(id, ByeReason::Revoked, format!("access revoked: {why}"));
        }
        for (id, p) in changed {
            if let Some(s) = self.sessions.get_mut(&id) {
                let narrowed = !p.union(s.permissions).eq(&p);
                s.permissions = p;
                let detail = format!("session {id} {}: now {p}", s.who());
                self.audit(if narrowed { "narrowed" } else { "widened" }, detail);
                self.effects.push_back(Effect::Permissions {
                    session_id: id,
                    permissions: p,
                });
            }
        }
        self.deny_lost_services();
        self.changed();
    }
}
