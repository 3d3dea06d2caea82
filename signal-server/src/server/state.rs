//! Everything the server knows besides the swarm, and the answer to each request.
//!
//! [`State::handle`] takes the caller's PeerId (authenticated by libp2p's Noise), its IP,
//! the request and the time, and returns the response. The swarm loop only moves messages.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use portico_core::clock::Clock;

use libp2p::{Multiaddr, PeerId};
use portico_core::identity::Identity;
use portico_core::ratelimit::{Backoff, TokenBucket};
use portico_core::ticket::{self, Subject, Ticket, TicketKind, TICKET_VERSION};
use portico_core::wire::signal::*;
use portico_core::wire::WirePeerId;
use rand::RngCore;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::store::{LoginSession, NodePath, Store, StoreError, User};

/// Most addresses a host may report.
const MAX_ADDRS: usize = 32;
/// Longest address string accepted.
const MAX_ADDR_LEN: usize = 256;
/// The address key of a login whose address is not known.
const UNKNOWN_IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
/// Longest agent string kept (longer ones are cut).
const MAX_AGENT_LEN: usize = 64;

mod hosts;
#[cfg(test)]
mod tests;

/// The server's state.
pub(crate) struct State {
    /// Configuration.
    pub(crate) config: Config,
    /// The server identity (signs tickets).
    pub(crate) identity: Identity,
    /// Persistent state.
    pub(crate) store: Store,
    /// Registered hosts, shared with the relay's reservation gate.
    pub(crate) registered: Arc<RwLock<HashSet<PeerId>>>,
    /// Last heartbeat per host, and the address it came from.
    presence: HashMap<PeerId, Presence>,
    /// Hosts holding a relay reservation now.
    pub(crate) reservations: HashSet<PeerId>,
    /// Relay circuits open now, per source address and host (shared with the relay's gate).
    pub(crate) circuits: Arc<std::sync::Mutex<super::circuits::CircuitGate>>,
    /// Addresses viewers should use to reach this server.
    pub(crate) public_addrs: Vec<Multiaddr>,
    /// Login backoff per IP.
    ip_backoff: Backoff<IpAddr>,
    /// Login backoff per address and account name together.
    pair_backoff: Backoff<(IpAddr, String)>,
    /// Failures per account from anywhere: past the ceiling only known devices may try.
    account_backoff: Backoff<String>,
    /// Lookup and ticket request rate per peer.
    request_rate: TokenBucket<PeerId>,
    /// The same requests per IP address (PeerIds are free; addresses are not).
    ip_rate: TokenBucket<IpAddr>,
    /// Tickets per account per host: an account cannot mint a pile of tickets for one
    /// host (each one a nonce the host must remember).
    ticket_rate: TokenBucket<(String, PeerId)>,
    /// Hash checked when the user does not exist, so timing does not tell.
    dummy_hash: String,
    /// Prometheus metrics.
    pub(crate) metrics: Metrics,
    /// The answer just made acknowledges a write that must survive a crash (a new host
    /// enrolled): the event loop sends it only after a flush.
    pub(crate) unflushed: bool,
}

/// A host's last sign of life.
#[derive(Debug, Clone, Copy)]
struct Presence {
    /// Its last registration or heartbeat.
    at: Instant,
    /// The address that came from.
    ip: Option<IpAddr>,
}

fn err(code: ErrorCode, message: impl Into<String>) -> SignalResponse {
    SignalResponse::Error(SignalError {
        code,
        message: message.into(),
        retry_after_ms: None,
    })
}

fn internal(e: StoreError) -> SignalResponse {
    tracing::error!(error = %e, "store error while answering a request");
    err(ErrorCode::Internal, "server storage error")
}

type Reply = Result<SignalResponse, SignalResponse>;

/// Tickets one account may fetch for one host at once, then one per 3 s.
const TICKET_BURST: u32 = 12;
const TICKETS_PER_SEC: f64 = 1.0 / 3.0;

/// The longest password a sign-in may carry (argon2 reads all of it).
const MAX_PASSWORD_LEN: usize = 1024;

/// A login waiting for its password check.
pub(crate) struct LoginCheck {
    /// Who asks.
    peer: PeerId,
    /// From where.
    ip: Option<IpAddr>,
    /// The account name given.
    name: String,
    /// The password given (checked off the event loop).
    pub(crate) password: String,
    /// The account's hash, or the dummy one.
    pub(crate) hash: String,
    /// The account, when it exists.
    user: Option<User>,
}

impl State {
    pub(crate) fn new(
        config: Config,
        identity: Identity,
        store: Store,
        metrics: Metrics,
    ) -> Result<Self, StoreError> {
        let registered = store
            .hosts()?
            .iter()
            .filter_map(|h| h.peer.parse::<PeerId>().ok())
            .collect::<HashSet<_>>();
        metrics.registered.set(registered.len() as i64);
        let lc = config.login.clone();
        Ok(Self {
            dummy_hash: crate::store::accounts::hash_password("portico-dummy")?,
            ip_backoff: Backoff::new(lc.free_failures, lc.base(), lc.max(), 100_000),
            pair_backoff: Backoff::new(lc.free_failures, lc.base(), lc.max(), 100_000),
            account_backoff: Backoff::new(lc.account_ceiling, lc.base(), lc.max(), 100_000),
            request_rate: TokenBucket::new(
                config.rate.per_peer_burst,
                config.rate.per_peer_per_sec,
                100_000,
            ),
            ip_rate: TokenBucket::new(
                config.rate.per_ip_burst,
                config.rate.per_ip_per_sec,
                100_000,
            ),
            ticket_rate: TokenBucket::new(TICKET_BURST, TICKETS_PER_SEC, 100_000),
            registered: Arc::new(RwLock::new(registered)),
            presence: HashMap::new(),
            reservations: HashSet::new(),
            circuits: Arc::new(std::sync::Mutex::new(super::circuits::CircuitGate::new(
                config.relay.max_circuits_per_ip,
                config.relay.max_circuits_per_host,
            ))),
            public_addrs: Vec::new(),
            config,
            identity,
            store,
            metrics,
            unflushed: false,
        })
    }

    /// Whether a host heartbeated recently.
    pub(crate) fn is_online(&self, peer: &PeerId, now: Instant) -> bool {
        self.presence_at(peer, now).is_some()
    }

    /// A host's presence when it heartbeated within three intervals of `now`.
    fn presence_at(&self, peer: &PeerId, now: Instant) -> Option<Presence> {
        let window = Duration::from_secs(u64::from(self.config.heartbeat_secs) * 3);
        self.presence
            .get(peer)
            .copied()
            .filter(|p| now.saturating_duration_since(p.at) < window)
    }

    /// The connected peers that are registered hosts (event recipients).
    pub(crate) fn is_registered(&self, peer: &PeerId) -> bool {
        self.registered
            .read()
            .map(|s| s.contains(peer))
            .unwrap_or(false)
    }

    /// Drops a host's presence (its last connection closed).
    pub(crate) fn disconnected(&mut self, peer: &PeerId) {
        self.presence.remove(peer);
        self.metrics.online.set(self.presence.len() as i64);
    }

    /// The registered host at `path`, when there is one (a node change concerns only it).
    pub(crate) fn host_at(&self, path: &str) -> Option<PeerId> {
        let path = NodePath::parse(path).ok()?;
        let host = self.store.host_by_path(&path).ok()??;
        host.peer.parse().ok()
    }

    /// Answers one request from `peer`, connected from `ip`.
    pub(crate) fn handle(
        &mut self,
        peer: PeerId,
        ip: Option<IpAddr>,
        req: SignalRequest,
        now: Clock,
    ) -> SignalResponse {
        let result = match req {
            SignalRequest::Register(r) => self.register(peer, ip, r, now),
            SignalRequest::Heartbeat(h) => self.heartbeat(peer, ip, h, now),
            SignalRequest::Lookup(l) => {
                (self.rate(peer, ip, now.at)).and_then(|()| self.lookup(peer, l, now))
            }
            // The server loop answers logins itself (`Loop::login`), checking passwords off
            // the event loop; a login here would be a bug, and is refused rather than served.
            SignalRequest::Login(_) => {
                tracing::error!("login reached the synchronous handler");
                Err(err(
                    ErrorCode::Internal,
                    "server error: login routed wrongly",
                ))
            }
            // Every request a stranger can send costs a token: these read the store too.
            SignalRequest::Logout(l) => {
                (self.rate(peer, ip, now.at)).and_then(|()| self.logout(peer, l, now.unix))
            }
            SignalRequest::ListNodes(l) => self
                .rate(peer, ip, now.at)
                .and_then(|()| self.list_nodes(peer, l, now)),
            SignalRequest::IssueTicket(t) => self
                .rate(peer, ip, now.at)
                .and_then(|()| self.issue_ticket(peer, t, now)),
            SignalRequest::WhoAmI(w) => self
                .rate(peer, ip, now.at)
                .and_then(|()| self.session(peer, &w.session, now.unix))
                .map(|(s, u)| self.logged_in(&w.session, &s, &u)),
            SignalRequest::Event(_) => {
                Err(err(ErrorCode::BadRequest, "only the server sends events"))
            }
            SignalRequest::CheckPrincipals(c) => self
                .rate(peer, ip, now.at)
                .and_then(|()| self.check_principals(peer, c)),
            SignalRequest::CheckUsers(c) => self
                .rate(peer, ip, now.at)
                .and_then(|()| self.check_users(peer, c, now.unix)),
        };
        result.unwrap_or_else(|e| e)
    }

    fn rate(
        &mut self,
        peer: PeerId,
        ip: Option<IpAddr>,
        now: Instant,
    ) -> Result<(), SignalResponse> {
        let by_ip = match ip {
            Some(ip) => self.ip_rate.try_take(&ip, now),
            None => Ok(()),
        };
        by_ip
            .and_then(|()| self.request_rate.try_take(&peer, now))
            .map_err(|r| {
                SignalResponse::Error(SignalError {
                    code: ErrorCode::RateLimited,
                    message: r.to_string(),
                    retry_after_ms: Some(r.retry_after.as_millis() as u64),
                })
            })
    }

    fn lookup(&mut self, peer: PeerId, l: Lookup, now: Clock) -> Reply {
        self.metrics.lookups.inc();
        let record = match &l.target {
            LookupTarget::Id(id) => self.store.host_by_id(*id).map_err(internal)?,
            LookupTarget::Path(p) => {
                let token = l.session.as_ref().ok_or_else(|| {
                    err(ErrorCode::Unauthorized, "sign in to look hosts up by path")
                })?;
                self.session(peer, token, now.unix)?;
                let path =
                    NodePath::parse(p).map_err(|e| err(ErrorCode::BadRequest, e.to_string()))?;
                self.store.host_by_path(&path).map_err(internal)?
            }
        };
        let record = record
            .ok_or_else(|| err(ErrorCode::NotFound, "no host with that Internet-ID or path"))?;
        // A stranger with an Internet-ID learns what connecting needs, not where the host
        // sits in the organisation's tree.
        let signed_in = l
            .session
            .as_ref()
            .is_some_and(|t| self.session(peer, t, now.unix).is_ok());
        let host: PeerId = record
            .peer
            .parse()
            .map_err(|_| err(ErrorCode::Internal, "bad stored PeerId"))?;
        let relay_addrs = if self.reservations.contains(&host) {
            self.public_addrs
                .iter()
                .map(|a| format!("{a}/p2p/{}/p2p-circuit/p2p/{host}", self.identity.peer_id()))
                .collect()
        } else {
            Vec::new()
        };
        Ok(SignalResponse::Found(Found {
            peer: host.into(),
            internet_id: record.internet_id,
            node_path: if signed_in {
                record.node_path.to_string()
            } else {
                String::new()
            },
            addrs: record.addrs,
            relay_addrs,
            online: self.is_online(&host, now.at),
        }))
    }

    /// First half of a login, on the event loop: rate limits and the account lookup. The
    /// password check (argon2, tens of ms) runs off the loop on the returned [`LoginCheck`].
    pub(crate) fn login_begin(
        &mut self,
        peer: PeerId,
        ip: Option<IpAddr>,
        l: Login,
        now: Instant,
    ) -> Result<LoginCheck, SignalResponse> {
        let limited = |r: portico_core::ratelimit::RetryAfter| {
            SignalResponse::Error(SignalError {
                code: ErrorCode::RateLimited,
                message: r.to_string(),
                retry_after_ms: Some(r.retry_after.as_millis() as u64),
            })
        };
        // A name no account can have is refused before it is remembered anywhere (the
        // backoff tables keep names: a stranger's megabyte names would cost us megabytes).
        // Nothing is revealed: no account has such a name.
        if crate::store::check_name(&l.user).is_err() || l.password.len() > MAX_PASSWORD_LEN {
            return Err(err(
                ErrorCode::BadRequest,
                format!(
                    "not a valid sign-in: account names are 1 to 64 letters, digits, spaces or ._-@ \
                     and passwords at most {MAX_PASSWORD_LEN} bytes"
                ),
            ));
        }
        let pair = (ip.unwrap_or(UNKNOWN_IP), l.user.clone());
        if let Some(ip) = ip {
            self.ip_backoff.check(&ip, now).map_err(limited)?;
        }
        self.pair_backoff.check(&pair, now).map_err(limited)?;
        if let Err(r) = self.account_backoff.check(&l.user, now) {
            // Strangers have failed many times: a device this user signed in from before
            // may still try (with its own backoff above); others wait.
            if !self
                .store
                .known_device(&l.user, &peer.to_string())
                .map_err(internal)?
            {
                return Err(limited(r));
            }
        }
        let user = self.store.user(&l.user).map_err(internal)?;
        // An unknown account is checked against a dummy hash, so timing does not tell.
        let hash = user
            .as_ref()
            .map(|u| u.hash.clone())
            .unwrap_or_else(|| self.dummy_hash.clone());
        Ok(LoginCheck {
            peer,
            ip,
            name: l.user,
            password: l.password,
            hash,
            user,
        })
    }

    /// Second half of a login, back on the event loop, with the password check's result.
    pub(crate) fn login_end(&mut self, check: LoginCheck, ok: bool, now: Clock) -> SignalResponse {
        self.login_finish(check, ok, now).unwrap_or_else(|e| e)
    }

    fn login_finish(&mut self, check: LoginCheck, ok: bool, clock: Clock) -> Reply {
        let now = clock.at;
        let LoginCheck {
            peer,
            ip,
            name,
            user,
            ..
        } = check;
        let ok = ok && user.is_some();
        let l = Login {
            user: name,
            password: String::new(),
        };
        let user = match user {
            Some(u) if ok && !u.disabled => u,
            other => {
                if let Some(ip) = ip {
                    self.ip_backoff.failure(&ip, now);
                }
                self.pair_backoff
                    .failure(&(ip.unwrap_or(UNKNOWN_IP), l.user.clone()), now);
                self.account_backoff.failure(&l.user, now);
                self.metrics.login(false);
                let why = if other.is_some_and(|u| u.disabled) && ok {
                    "disabled"
                } else {
                    "bad credentials"
                };
                self.store
                    .audit()
                    .append(
                        &format!("peer:{peer}"),
                        "login.failed",
                        &format!("{} ({why}) from {}", l.user, fmt_ip(ip)),
                        clock.unix,
                    )
                    .map_err(internal)?;
                return Err(if why == "disabled" {
                    err(
                        ErrorCode::Forbidden,
                        "this account is disabled; ask your administrator",
                    )
                } else {
                    err(ErrorCode::Unauthorized, "wrong user name or password")
                });
            }
        };
        if let Some(ip) = ip {
            self.ip_backoff.success(&ip);
        }
        self.pair_backoff
            .success(&(ip.unwrap_or(UNKNOWN_IP), l.user.clone()));
        self.store
            .remember_device(&user.name, &peer.to_string(), clock.unix)
            .map_err(internal)?;
        let mut token = vec![0u8; 32];
        rand::thread_rng().fill_bytes(&mut token);
        let session = LoginSession {
            user: user.name.clone(),
            peer: peer.to_string(),
            expires_at: clock.unix + u64::from(self.config.session_hours) * 3600,
        };
        self.store.put_session(&token, &session).map_err(internal)?;
        self.store
            .audit()
            .append(
                &format!("peer:{peer}"),
                "login.ok",
                &format!("{} from {}", user.name, fmt_ip(ip)),
                clock.unix,
            )
            .map_err(internal)?;
        self.metrics.login(true);
        let token = SessionToken(token);
        Ok(self.logged_in(&token, &session, &user))
    }

    fn logged_in(&self, token: &SessionToken, s: &LoginSession, u: &User) -> SignalResponse {
        SignalResponse::LoggedIn(LoggedIn {
            session: token.clone(),
            user: u.name.clone(),
            groups: u.groups.iter().cloned().collect(),
            force_server_security: u.force_server_security,
            expires_at: s.expires_at,
            server_name: self.config.server_name.clone(),
        })
    }

    /// The caller's live session and account.
    fn session(
        &self,
        peer: PeerId,
        token: &SessionToken,
        now: u64,
    ) -> Result<(LoginSession, User), SignalResponse> {
        let expired = || {
            err(
                ErrorCode::Unauthorized,
                "not signed in or the sign-in expired; run `portico login` again",
            )
        };
        let s = self
            .store
            .session(&token.0, now)
            .map_err(internal)?
            .ok_or_else(expired)?;
        if s.peer != peer.to_string() {
            return Err(expired());
        }
        let u = self
            .store
            .user(&s.user)
            .map_err(internal)?
            .ok_or_else(expired)?;
        if u.disabled {
            return Err(err(ErrorCode::Forbidden, "this account is disabled"));
        }
        Ok((s, u))
    }

    fn logout(&mut self, peer: PeerId, l: Logout, now: u64) -> Reply {
        let (s, _) = self.session(peer, &l.session, now)?;
        self.store.end_session(&l.session.0).map_err(internal)?;
        self.store
            .audit()
            .append(&format!("peer:{peer}"), "logout", &s.user, now)
            .map_err(internal)?;
        Ok(SignalResponse::Ack(Ack::default()))
    }

    fn list_nodes(&mut self, peer: PeerId, l: ListNodes, now: Clock) -> Reply {
        self.session(peer, &l.session, now.unix)?;
        let path =
            NodePath::parse(&l.path).map_err(|e| err(ErrorCode::BadRequest, e.to_string()))?;
        let nodes = self.store.subtree(&path).map_err(|e| match e {
            StoreError::PathNotFound(_) => err(ErrorCode::NotFound, e.to_string()),
            other => internal(other),
        })?;
        let mut entries = Vec::with_capacity(nodes.len());
        for n in nodes {
            let flags = self.store.effective_flags(&n.path).map_err(internal)?;
            let (internet_id, online) = match &n.host {
                Some(peer) => {
                    let id = self
                        .store
                        .host(peer)
                        .map_err(internal)?
                        .map(|h| h.internet_id);
                    (id, peer.parse().is_ok_and(|p| self.is_online(&p, now.at)))
                }
                None => (None, false),
            };
            entries.push(NodeEntry {
                path: n.path.to_string(),
                is_host: n.host.is_some(),
                internet_id,
                online,
                allow_guests: flags.allow_guests,
                allow_visitors: flags.allow_visitors,
            });
        }
        Ok(SignalResponse::Nodes(Nodes { entries }))
    }

    fn issue_ticket(&mut self, peer: PeerId, t: IssueTicket, now: Clock) -> Reply {
        let (_, user) = self.session(peer, &t.session, now.unix)?;
        let host =
            PeerId::try_from(&t.host).map_err(|e| err(ErrorCode::BadRequest, e.to_string()))?;
        self.ticket_rate
            .try_take(&(user.name.clone(), host), now.at)
            .map_err(|r| {
                SignalResponse::Error(SignalError {
                    code: ErrorCode::RateLimited,
                    message: format!("too many tickets for that host: {r}"),
                    retry_after_ms: Some(r.retry_after.as_millis() as u64),
                })
            })?;
        let record = self
            .store
            .host(&host.to_string())
            .map_err(internal)?
            .ok_or_else(|| err(ErrorCode::NotFound, "that host is not registered here"))?;
        let forbid = |m: &str| Err(err(ErrorCode::Forbidden, m));
        match t.kind {
            TicketKind::Visitor => {
                if user.force_server_security {
                    return forbid("your account may only connect with custom server security (as a server user), not as a visitor");
                }
                if !self.store.setting("visitor_sharing").map_err(internal)? {
                    return forbid("visitor access is turned off on this server");
                }
                if !self
                    .store
                    .effective_flags(&record.node_path)
                    .map_err(internal)?
                    .allow_visitors
                {
                    return forbid("visitor access is turned off for that host's node");
                }
            }
            TicketKind::User => {}
            TicketKind::Provisioning => {
                return Err(err(
                    ErrorCode::BadRequest,
                    "provisioning bundles come from `portico-signal bundle`",
                ))
            }
        }
        // Not before the account's last change: hosts refuse tickets dated before it.
        let issued = now.unix.max(user.changed_at);
        let ticket = Ticket {
            version: TICKET_VERSION,
            kind: t.kind,
            subject: Subject {
                user: user.name.clone(),
                groups: user.groups.iter().cloned().collect(),
                force_server_security: user.force_server_security,
            },
            audience: WirePeerId::from(host),
            holder: WirePeerId::from(peer),
            server_name: self.config.server_name.clone(),
            issued_at: issued,
            expires_at: issued + u64::from(self.config.ticket_secs),
            nonce: ticket::new_nonce(),
        };
        let signed = ticket::sign(&ticket, &self.identity)
            .map_err(|e| err(ErrorCode::Internal, e.to_string()))?;
        self.store
            .audit()
            .append(
                &format!("user:{}", user.name),
                "ticket.issued",
                &format!(
                    "{:?} for {} ({})",
                    t.kind, record.node_path, record.internet_id
                ),
                issued,
            )
            .map_err(internal)?;
        self.metrics.ticket(t.kind);
        Ok(SignalResponse::Ticket(signed))
    }
}

fn fmt_ip(ip: Option<IpAddr>) -> String {
    ip.map(|i| i.to_string())
        .unwrap_or_else(|| "unknown address".into())
}

fn clean_addrs(addrs: Vec<String>) -> Result<Vec<String>, SignalResponse> {
    if addrs.len() > MAX_ADDRS {
        return Err(err(
            ErrorCode::BadRequest,
            format!("at most {MAX_ADDRS} addresses"),
        ));
    }
    for a in &addrs {
        if a.len() > MAX_ADDR_LEN || a.parse::<Multiaddr>().is_err() {
            return Err(err(ErrorCode::BadRequest, format!("invalid address {a:?}")));
        }
    }
    Ok(addrs)
}
