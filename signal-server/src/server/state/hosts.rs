//! Requests from hosts: registration (and enrollment of new hosts), heartbeats, and the
//! checks a host makes of its principals and users.

use std::net::IpAddr;

use libp2p::PeerId;
use portico_core::wire::signal::*;

use super::{clean_addrs, err, fmt_ip, internal, Presence, Reply, State, MAX_AGENT_LEN};
use crate::store::{HostRecord, NodePath, PendingHost, PendingLimits, StoreError};
use portico_core::clock::Clock;

impl State {
    pub(super) fn register(
        &mut self,
        peer: PeerId,
        ip: Option<IpAddr>,
        r: Register,
        now: Clock,
    ) -> Reply {
        let addrs = clean_addrs(r.addrs)?;
        self.same_key_elsewhere(peer, ip, now)?;
        let agent = portico_core::text::clean(&r.agent, MAX_AGENT_LEN);
        let known = self
            .store
            .refresh_host(&peer.to_string(), addrs.clone(), &agent)
            .map_err(internal)?;
        let record = match known {
            Some(record) => record,
            None => self.admit(peer, ip, r.node_path, r.enroll, addrs, agent, now)?,
        };
        // Enrolled now, or approved by an admin since its last attempt: the relay reserves
        // for it and server events reach it.
        if !self.is_registered(&peer) {
            if let Ok(mut set) = self.registered.write() {
                set.insert(peer);
                self.metrics.registered.set(set.len() as i64);
            }
        }
        self.presence.insert(peer, Presence { at: now.at, ip });
        self.metrics.online.set(self.presence.len() as i64);
        let flags = self
            .store
            .effective_flags(&record.node_path)
            .map_err(internal)?;
        Ok(SignalResponse::Registered(Registered {
            internet_id: record.internet_id,
            node_path: record.node_path.to_string(),
            allow_guests: flags.allow_guests,
            allow_visitors: flags.allow_visitors,
            guest_sharing: self.store.setting("guest_sharing").map_err(internal)?,
            visitor_sharing: self.store.setting("visitor_sharing").map_err(internal)?,
            server_name: self.config.server_name.clone(),
            heartbeat_secs: self.config.heartbeat_secs,
            state_version: self.store.state_version().map_err(internal)?,
        }))
    }

    /// A host the server does not know: enrolls it with its token, or puts it on the
    /// waiting list for an admin. Every attempt costs a store lookup or write, so it is
    /// rate-limited per IP and PeerId like lookups.
    #[allow(clippy::too_many_arguments)]
    fn admit(
        &mut self,
        peer: PeerId,
        ip: Option<IpAddr>,
        node_path: Option<String>,
        token: Option<String>,
        addrs: Vec<String>,
        agent: String,
        now: Clock,
    ) -> Result<HostRecord, SignalResponse> {
        self.rate(peer, ip, now.at)?;
        let id = peer.to_string();
        let wanted = node_path
            .as_deref()
            .map(NodePath::parse)
            .transpose()
            .map_err(|e| err(ErrorCode::BadRequest, e.to_string()))?;
        let Some(token) = token else {
            return Err(self.wait_for_approval(peer, ip, wanted, agent, now.unix));
        };
        let name = wanted.as_ref().and_then(NodePath::name);
        let record = self
            .store
            .enroll_host(&id, &token, name, addrs, &agent, now.unix)
            .map_err(|e| match e {
                StoreError::Token { .. } => err(
                    ErrorCode::Forbidden,
                    format!("{e}; ask the server's admin for a new one (portico-signal node enroll FOLDER)"),
                ),
                StoreError::PathExists(_)
                | StoreError::PathNotFound(_)
                | StoreError::NotAFolder(_)
                | StoreError::BadPath { .. } => err(ErrorCode::BadRequest, e.to_string()),
                other => internal(other),
            })?;
        self.store
            .audit()
            .append(
                &format!("peer:{peer}"),
                "host.enroll",
                &format!(
                    "{} {} from {}",
                    record.internet_id,
                    record.node_path,
                    fmt_ip(ip)
                ),
                now.unix,
            )
            .map_err(internal)?;
        self.unflushed = true;
        tracing::info!(%peer, id = %record.internet_id, path = %record.node_path, "host enrolled");
        Ok(record)
    }

    /// The answer to a host without a token: refused (rejected, or approval off), or put on
    /// the waiting list.
    fn wait_for_approval(
        &mut self,
        peer: PeerId,
        ip: Option<IpAddr>,
        wanted: Option<NodePath>,
        agent: String,
        now: u64,
    ) -> SignalResponse {
        let id = peer.to_string();
        match self.store.is_rejected(&id) {
            Ok(true) => {
                return err(
                    ErrorCode::Forbidden,
                    "the server's admin rejected this host",
                )
            }
            Ok(false) => {}
            Err(e) => return internal(e),
        }
        if !self.config.enrollment.approval {
            return err(
                ErrorCode::Forbidden,
                "this server admits new hosts only with an enrollment token: ask its admin for one \
                 (portico-signal node enroll FOLDER) and run portico host --enroll TOKEN",
            );
        }
        let waiting = PendingHost {
            peer: id.clone(),
            wanted,
            ip: fmt_ip(ip),
            agent,
            first_seen: now,
            last_seen: now,
        };
        let limits = PendingLimits {
            total: self.config.enrollment.max_pending,
            per_ip: self.config.enrollment.max_pending_per_ip,
        };
        match self.store.add_pending(waiting, limits) {
            Ok(new) => {
                if new {
                    tracing::info!(%peer, ip = %fmt_ip(ip), "host waits for approval");
                    if let Err(e) = self.store.audit().append(
                        &format!("peer:{peer}"),
                        "host.pending",
                        &fmt_ip(ip),
                        now,
                    ) {
                        return internal(e);
                    }
                }
                err(
                    ErrorCode::PendingApproval,
                    format!("this host waits for the server admin's approval: portico-signal host approve {peer}"),
                )
            }
            Err(e @ StoreError::PendingFull { .. }) => err(ErrorCode::RateLimited, e.to_string()),
            Err(e) => internal(e),
        }
    }

    pub(super) fn heartbeat(
        &mut self,
        peer: PeerId,
        ip: Option<IpAddr>,
        h: Heartbeat,
        now: Clock,
    ) -> Reply {
        self.same_key_elsewhere(peer, ip, now)?;
        let record = self
            .store
            .host(&peer.to_string())
            .map_err(internal)?
            .ok_or_else(|| err(ErrorCode::NotRegistered, "register first"))?;
        let addrs = clean_addrs(h.addrs)?;
        if addrs != record.addrs {
            self.store
                .refresh_host(&peer.to_string(), addrs, &record.agent)
                .map_err(internal)?;
        }
        self.presence.insert(peer, Presence { at: now.at, ip });
        self.metrics.online.set(self.presence.len() as i64);
        Ok(SignalResponse::Ack(Ack {
            state_version: Some(self.store.state_version().map_err(internal)?),
        }))
    }

    /// Refuses a host whose key is online from another address right now: a copied key
    /// (a second machine under the same PeerId) must not take over the addresses viewers
    /// reach. The admin learns of it from the audit log and the server's log; the first
    /// host stays. A host that really moved is answered once its old connection closes or
    /// goes quiet (three heartbeats). Rate-limited like lookups, so retries cost the
    /// sender, and the audit holds at most one line per allowed attempt.
    fn same_key_elsewhere(
        &mut self,
        peer: PeerId,
        ip: Option<IpAddr>,
        now: Clock,
    ) -> Result<(), SignalResponse> {
        let Some(first) = self.presence_at(&peer, now.at) else {
            return Ok(());
        };
        if first.ip == ip || first.ip.is_none() || ip.is_none() {
            return Ok(());
        }
        self.rate(peer, ip, now.at)?;
        let detail = format!(
            "same key, new address: {} while online from {}; the new one is refused",
            fmt_ip(ip),
            fmt_ip(first.ip)
        );
        tracing::warn!(%peer, "a host key is in use on two machines: {detail}");
        self.metrics.duplicate_keys.inc();
        self.store
            .audit()
            .append(
                &format!("peer:{peer}"),
                "host.duplicate_key",
                &detail,
                now.unix,
            )
            .map_err(internal)?;
        Err(err(
            ErrorCode::Forbidden,
            format!(
                "this host's key is online from another address ({}); the server's admin is told. \
                 If this machine has a copy of another's key, give it its own (a new data dir)",
                fmt_ip(first.ip)
            ),
        ))
    }

    pub(super) fn check_principals(&mut self, peer: PeerId, c: CheckPrincipals) -> Reply {
        if !self.is_registered(&peer) {
            return Err(err(ErrorCode::NotRegistered, "register first"));
        }
        if c.principals.len() > 1024 {
            return Err(err(
                ErrorCode::BadRequest,
                "at most 1024 principals at once",
            ));
        }
        let mut known = Vec::with_capacity(c.principals.len());
        for p in &c.principals {
            let k = match p.parse::<portico_core::policy::Principal>() {
                Ok(portico_core::policy::Principal::User(u)) => {
                    self.store.user(&u).map_err(internal)?.is_some()
                }
                Ok(portico_core::policy::Principal::Group(g)) => {
                    self.store.group(&g).map_err(internal)?.is_some()
                }
                Ok(portico_core::policy::Principal::Peer(_)) => true,
                Err(_) => false,
            };
            known.push(k);
        }
        Ok(SignalResponse::Principals(Principals { known }))
    }

    /// The current state of users a host has sessions of (after it missed events).
    pub(super) fn check_users(&mut self, peer: PeerId, c: CheckUsers, now: u64) -> Reply {
        if !self.is_registered(&peer) {
            return Err(err(ErrorCode::NotRegistered, "register first"));
        }
        if c.users.len() > MAX_CHECK_USERS {
            return Err(err(
                ErrorCode::BadRequest,
                format!("at most {MAX_CHECK_USERS} users at once"),
            ));
        }
        let mut users = Vec::with_capacity(c.users.len());
        for name in c.users {
            let user = self.store.user(&name).map_err(internal)?;
            users.push(Change::User {
                groups: user
                    .as_ref()
                    .map(|u| u.groups.iter().cloned().collect())
                    .unwrap_or_default(),
                force_server_security: user.as_ref().is_some_and(|u| u.force_server_security),
                // The account's last change (1 for one never changed: an answer is not a
                // change, and 0 would mean "not said"); a deleted account: now.
                changed_at: user
                    .as_ref()
                    .map_or_else(|| now + 1, |u| u.changed_at.max(1)),
                disabled: user.is_none_or(|u| u.disabled),
                user: name,
            });
        }
        Ok(SignalResponse::Users(Users { users }))
    }
}
