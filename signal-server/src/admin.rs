//! Admin commands: users, groups, nodes, settings, audit, bundles.
//!
//! One [`execute`] serves both paths: when the server runs, the CLI sends the command over
//! the admin socket (`DATA/admin.sock`, mode 0600) and the server executes it on its open
//! store (and tells hosts what changed); when it does not run, the CLI opens the store itself.
//! Every successful write is audited and flushed before the reply.

pub mod socket;

use portico_core::bundle::{self, Bundle, BUNDLE_VERSION};
use portico_core::identity::Identity;
use portico_core::policy::{AclEntry, Approval, Permissions, Principal};
use portico_core::wire::signal::{Change, ServerEvent};
use serde::{Deserialize, Serialize};

use crate::store::accounts::PasswordHashed;
use crate::store::{NodePath, Store, StoreError};

mod enroll;

/// A command from `portico-signal` admin subcommands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(missing_docs)] // variant fields are the subcommand's arguments of the same name
#[serde(rename_all = "snake_case")]
pub enum AdminCommand {
    /// Add a user.
    UserAdd {
        name: String,
        password: PasswordHashed,
        force_server_security: bool,
    },
    /// Delete a user.
    UserDel { name: String },
    /// List users.
    UserList,
    /// Change a password.
    UserPasswd {
        name: String,
        password: PasswordHashed,
    },
    /// Disable or enable a user.
    UserSetDisabled { name: String, disabled: bool },
    /// Turn "force custom server security" on or off.
    UserSetForce { name: String, on: bool },
    /// Add a group.
    GroupAdd { name: String },
    /// Delete a group.
    GroupDel { name: String },
    /// List groups with members.
    GroupList,
    /// Add or remove a member.
    GroupMember {
        group: String,
        user: String,
        member: bool,
    },
    /// List the tree under a path.
    NodeList { path: String },
    /// Create a folder.
    NodeMkdir { path: String },
    /// Move a node.
    NodeMove { from: String, to: String },
    /// Set node flags.
    NodeSet {
        path: String,
        allow_guests: Option<bool>,
        allow_visitors: Option<bool>,
    },
    /// Set a global switch.
    SettingsSet { key: String, on: bool },
    /// Show global switches.
    SettingsShow,
    /// Print (and optionally verify) the audit log.
    Audit { tail: Option<usize>, verify: bool },
    /// Write a provisioning bundle (with an enrollment token for `uses` hosts, valid
    /// `hours`).
    Bundle {
        node: String,
        grants: Vec<String>,
        approval: Approval,
        server_addrs: Vec<String>,
        uses: u32,
        hours: u64,
    },
    /// Make an enrollment token for `uses` hosts into the folder `path`, valid `hours`.
    NodeEnroll { path: String, uses: u32, hours: u64 },
    /// List enrollment tokens.
    EnrollList,
    /// Revoke an enrollment token by its id.
    EnrollRevoke { id: String },
    /// List hosts waiting for approval.
    HostPending,
    /// Approve a waiting host (at `path`, or where it asked).
    HostApprove { peer: String, path: Option<String> },
    /// Reject a waiting host.
    HostReject { peer: String },
}

/// The reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdminReply {
    /// Whether the command succeeded.
    pub ok: bool,
    /// Text for the terminal (the error message when `ok` is false).
    pub output: String,
    /// A file to write (bundles).
    pub file: Option<Vec<u8>>,
}

/// What a command needs besides the store.
pub struct AdminContext<'a> {
    /// The store.
    pub store: &'a Store,
    /// The server identity (signs bundles).
    pub identity: &'a Identity,
    /// The server's display name.
    pub server_name: &'a str,
    /// Addresses hosts should use to reach the server (for bundles).
    pub server_addrs: Vec<String>,
    /// Whether a host (PeerId string) is online now.
    pub online: &'a dyn Fn(&str) -> bool,
    /// Unix seconds.
    pub now: u64,
}

impl AdminContext<'_> {
    /// Writes an admin action to the audit log and makes it (and the change) durable.
    fn audit(&self, action: &str, detail: String) -> Result<(), AdminError> {
        self.store
            .audit()
            .append("admin", action, &detail, self.now)?;
        self.store.flush()?;
        Ok(())
    }
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// A store error (unknown user, path not found…).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A bad argument.
    #[error("{0}")]
    Invalid(String),
}

/// The global switches.
pub const SETTINGS: [&str; 2] = ["guest-sharing", "visitor-sharing"];

fn setting_key(name: &str) -> Result<&'static str, AdminError> {
    match name {
        "guest-sharing" => Ok("guest_sharing"),
        "visitor-sharing" => Ok("visitor_sharing"),
        other => Err(AdminError::Invalid(format!(
            "unknown setting {other:?}; settings are: {}",
            SETTINGS.join(", ")
        ))),
    }
}

fn on_off(b: bool) -> &'static str {
    if b {
        "on"
    } else {
        "off"
    }
}

/// Runs a command. Returns the reply and the changes hosts must hear about.
pub fn execute(ctx: &AdminContext<'_>, cmd: AdminCommand) -> (AdminReply, Vec<ServerEvent>) {
    match run(ctx, cmd).and_then(|(output, changes, file)| {
        // Every change is numbered in the store, whether or not a server runs to push it:
        // a host compares the number when it registers again, and asks about what it missed.
        let events = changes
            .into_iter()
            .map(|change| {
                Ok(ServerEvent {
                    seq: ctx.store.next_state_version()?,
                    change: stamp(ctx, change)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        ctx.store.flush()?;
        Ok((output, events, file))
    }) {
        Ok((output, events, file)) => (
            AdminReply {
                ok: true,
                output,
                file,
            },
            events,
        ),
        Err(e) => (
            AdminReply {
                ok: false,
                output: e.to_string(),
                file: None,
            },
            Vec::new(),
        ),
    }
}

type Outcome = (String, Vec<Change>, Option<Vec<u8>>);

fn user_change(u: &crate::store::User, deleted: bool) -> Change {
    Change::User {
        user: u.name.clone(),
        groups: if deleted {
            vec![]
        } else {
            u.groups.iter().cloned().collect()
        },
        disabled: deleted || u.disabled,
        force_server_security: u.force_server_security,
        changed_at: 0,
    }
}

/// A change to an account is dated, in the event and in the account: one second past both
/// now and the account's previous date, so it is later than every ticket issued so far
/// (those carry at most the previous date). Hosts refuse the account's tickets issued
/// before the date, and the server issues later ones at it or after. A deleted account has
/// no record left: now + 1.
fn stamp(ctx: &AdminContext<'_>, mut change: Change) -> Result<Change, StoreError> {
    if let Change::User {
        user, changed_at, ..
    } = &mut change
    {
        *changed_at = ctx.now + 1;
        match ctx.store.update_user(user, |u| {
            u.changed_at = u.changed_at.max(ctx.now) + 1;
            Ok(())
        }) {
            Ok(u) => *changed_at = u.changed_at,
            Err(StoreError::NoSuchUser(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(change)
}

fn run(ctx: &AdminContext<'_>, cmd: AdminCommand) -> Result<Outcome, AdminError> {
    let s = ctx.store;
    let done = |text: String, changes: Vec<Change>| Ok((text, changes, None));
    match cmd {
        AdminCommand::UserAdd {
            name,
            password,
            force_server_security,
        } => {
            s.add_user(&name, &password, force_server_security)?;
            ctx.audit(
                "user.add",
                format!("{name} force_server_security={force_server_security}"),
            )?;
            done(format!("added user {name}"), vec![])
        }
        AdminCommand::UserDel { name } => {
            let u = s.del_user(&name)?;
            ctx.audit("user.del", name.clone())?;
            done(format!("deleted user {name}"), vec![user_change(&u, true)])
        }
        AdminCommand::UserList => {
            let mut out = String::new();
            for u in s.users()? {
                let groups: Vec<&str> = u.groups.iter().map(String::as_str).collect();
                out.push_str(&format!(
                    "{}\t{}\tforce-server-security={}\tgroups={}\n",
                    u.name,
                    if u.disabled { "disabled" } else { "enabled" },
                    on_off(u.force_server_security),
                    groups.join(",")
                ));
            }
            done(
                if out.is_empty() {
                    "no users; add one with `portico-signal user add NAME`".into()
                } else {
                    out.trim_end().into()
                },
                vec![],
            )
        }
        AdminCommand::UserPasswd { name, password } => {
            s.set_password(&name, &password)?;
            s.end_sessions_of(&name)?;
            ctx.audit("user.passwd", name.clone())?;
            done(
                format!("changed the password of {name} (their sign-ins were ended)"),
                vec![],
            )
        }
        AdminCommand::UserSetDisabled { name, disabled } => {
            let u = s.update_user(&name, |u| {
                u.disabled = disabled;
                Ok(())
            })?;
            if disabled {
                s.end_sessions_of(&name)?;
            }
            ctx.audit(
                if disabled {
                    "user.disable"
                } else {
                    "user.enable"
                },
                name.clone(),
            )?;
            done(
                format!(
                    "{} user {name}",
                    if disabled { "disabled" } else { "enabled" }
                ),
                vec![user_change(&u, false)],
            )
        }
        AdminCommand::UserSetForce { name, on } => {
            let u = s.update_user(&name, |u| {
                u.force_server_security = on;
                Ok(())
            })?;
            ctx.audit(
                "user.force_server_security",
                format!("{name} {}", on_off(on)),
            )?;
            done(
                format!("force-server-security {} for {name}", on_off(on)),
                vec![user_change(&u, false)],
            )
        }
        AdminCommand::GroupAdd { name } => {
            s.add_group(&name)?;
            ctx.audit("group.add", name.clone())?;
            done(format!("added group {name}"), vec![])
        }
        AdminCommand::GroupDel { name } => {
            let changed = s.del_group(&name)?;
            ctx.audit("group.del", name.clone())?;
            done(
                format!("deleted group {name}"),
                changed.iter().map(|u| user_change(u, false)).collect(),
            )
        }
        AdminCommand::GroupList => {
            let mut out = String::new();
            for g in s.groups()? {
                out.push_str(&format!(
                    "{}\tmembers={}\n",
                    g.name,
                    s.members(&g.name)?.join(",")
                ));
            }
            done(
                if out.is_empty() {
                    "no groups; add one with `portico-signal group add NAME`".into()
                } else {
                    out.trim_end().into()
                },
                vec![],
            )
        }
        AdminCommand::GroupMember {
            group,
            user,
            member,
        } => {
            let u = s.set_member(&group, &user, member)?;
            ctx.audit(
                if member {
                    "group.add_member"
                } else {
                    "group.remove_member"
                },
                format!("{group} {user}"),
            )?;
            let verb = if member { "added" } else { "removed" };
            done(
                format!(
                    "{verb} {user} {} {group}",
                    if member { "to" } else { "from" }
                ),
                vec![user_change(&u, false)],
            )
        }
        AdminCommand::NodeList { path } => done(node_list(ctx, &NodePath::parse(&path)?)?, vec![]),
        AdminCommand::NodeMkdir { path } => {
            let p = NodePath::parse(&path)?;
            s.mkdir(&p)?;
            ctx.audit("node.mkdir", p.to_string())?;
            done(format!("created {p}"), vec![])
        }
        AdminCommand::NodeMove { from, to } => {
            let (from, to) = (NodePath::parse(&from)?, NodePath::parse(&to)?);
            let moved = s.move_node(&from, &to)?;
            ctx.audit("node.move", format!("{from} -> {to}"))?;
            let mut changes = Vec::new();
            for h in &moved {
                let f = s.effective_flags(&h.node_path)?;
                changes.push(Change::Node {
                    path: h.node_path.to_string(),
                    allow_guests: f.allow_guests,
                    allow_visitors: f.allow_visitors,
                });
            }
            done(
                format!("moved {from} to {to} ({} host(s))", moved.len()),
                changes,
            )
        }
        AdminCommand::NodeSet {
            path,
            allow_guests,
            allow_visitors,
        } => {
            if allow_guests.is_none() && allow_visitors.is_none() {
                return Err(AdminError::Invalid(
                    "nothing to set; give --allow-guests on|off and/or --allow-visitors on|off"
                        .into(),
                ));
            }
            let p = NodePath::parse(&path)?;
            s.set_flags(&p, allow_guests, allow_visitors)?;
            ctx.audit(
                "node.set",
                format!("{p} guests={allow_guests:?} visitors={allow_visitors:?}"),
            )?;
            let mut changes = Vec::new();
            for n in s.subtree(&p)? {
                if n.host.is_some() {
                    let f = s.effective_flags(&n.path)?;
                    changes.push(Change::Node {
                        path: n.path.to_string(),
                        allow_guests: f.allow_guests,
                        allow_visitors: f.allow_visitors,
                    });
                }
            }
            done(format!("{p}: {}", flags_text(s, &p)?), changes)
        }
        AdminCommand::SettingsSet { key, on } => {
            let k = setting_key(&key)?;
            s.set_setting(k, on)?;
            ctx.audit("settings.set", format!("{key} {}", on_off(on)))?;
            let change = Change::Global {
                guest_sharing: s.setting("guest_sharing")?,
                visitor_sharing: s.setting("visitor_sharing")?,
            };
            done(format!("{key} is {}", on_off(on)), vec![change])
        }
        AdminCommand::SettingsShow => done(
            format!(
                "guest-sharing {}\nvisitor-sharing {}",
                on_off(s.setting("guest_sharing")?),
                on_off(s.setting("visitor_sharing")?)
            ),
            vec![],
        ),
        AdminCommand::Audit { tail, verify } => {
            let mut out = String::new();
            for e in s.audit().entries(tail)? {
                out.push_str(&format!(
                    "{:>6} {} {:<8} {:<24} {}\n",
                    e.seq, e.at, e.actor, e.action, e.detail
                ));
            }
            if verify {
                match s.audit().verify()? {
                    Ok(n) => out.push_str(&format!("audit chain OK: {n} entries\n")),
                    Err(t) => return Err(AdminError::Invalid(format!("{out}{t}"))),
                }
            }
            done(out.trim_end().to_string(), vec![])
        }
        cmd @ (AdminCommand::NodeEnroll { .. }
        | AdminCommand::EnrollList
        | AdminCommand::EnrollRevoke { .. }
        | AdminCommand::HostPending
        | AdminCommand::HostApprove { .. }
        | AdminCommand::HostReject { .. }) => enroll::run(ctx, cmd),
        AdminCommand::Bundle {
            node,
            grants,
            approval,
            server_addrs,
            uses,
            hours,
        } => {
            let path = NodePath::parse(&node)?;
            let acl = parse_grants(s, &grants, approval)?;
            let server_addrs = if server_addrs.is_empty() {
                ctx.server_addrs.clone()
            } else {
                server_addrs
            };
            if server_addrs.is_empty() {
                return Err(AdminError::Invalid(
                    "no server address known; give --server HOST:PORT (the address hosts will use)"
                        .into(),
                ));
            }
            let expires_at = ctx.now.saturating_add(hours.saturating_mul(3600));
            let (token, token_id) = s.create_enrollment(&path, uses, expires_at, ctx.now)?;
            let b = Bundle {
                version: BUNDLE_VERSION,
                server_name: ctx.server_name.to_string(),
                server_addrs,
                server_key: ctx.identity.public().encode_protobuf(),
                node_path: path.to_string(),
                acl,
                issued_at: ctx.now,
                enroll: Some(token),
            };
            let file =
                bundle::write(&b, ctx.identity).map_err(|e| AdminError::Invalid(e.to_string()))?;
            ctx.audit(
                "bundle.write",
                format!(
                    "{path} grants={} enrollment {token_id} for {uses} host(s)",
                    grants.join(" ")
                ),
            )?;
            Ok((
                format!(
                    "bundle for {path}: {} grant(s), server {}, enrollment {token_id} for {uses} \
                     host(s) valid {hours} h\nhosts apply it with: portico host --provision FILE \
                     --trust-server {}",
                    b.acl.len(),
                    b.server_addrs.join(", "),
                    ctx.identity.fingerprint()
                ),
                vec![],
                Some(file),
            ))
        }
    }
}

/// Parses `group:Marketing=view,control` grants, checking that users and groups exist.
fn parse_grants(
    s: &Store,
    grants: &[String],
    approval: Approval,
) -> Result<Vec<AclEntry>, AdminError> {
    if grants.is_empty() {
        return Err(AdminError::Invalid(
            "a bundle needs at least one --grant PRINCIPAL=PERMISSIONS".into(),
        ));
    }
    grants
        .iter()
        .map(|g| {
            let (who, perms) = g.split_once('=').ok_or_else(|| {
                AdminError::Invalid(format!(
                    "grant {g:?} must look like group:NAME=view,control"
                ))
            })?;
            let principal: Principal =
                who.parse()
                    .map_err(|e: portico_core::policy::BadPrincipal| {
                        AdminError::Invalid(e.to_string())
                    })?;
            match &principal {
                Principal::User(u) if s.user(u)?.is_none() => {
                    return Err(StoreError::NoSuchUser(u.clone()).into())
                }
                Principal::Group(n) if s.group(n)?.is_none() => {
                    return Err(StoreError::NoSuchGroup(n.clone()).into())
                }
                _ => {}
            }
            let permissions: Permissions =
                perms
                    .parse()
                    .map_err(|e: portico_core::policy::BadPermission| {
                        AdminError::Invalid(e.to_string())
                    })?;
            Ok(AclEntry {
                principal,
                permissions,
                approval,
                expires_at: None,
            })
        })
        .collect()
}

fn flags_text(s: &Store, path: &NodePath) -> Result<String, StoreError> {
    let f = s.effective_flags(path)?;
    let node = s.node(path)?;
    let mark = |explicit: Option<bool>| {
        if explicit.is_some() {
            ""
        } else {
            " (inherited)"
        }
    };
    let (g, v) = node
        .map(|n| (n.allow_guests, n.allow_visitors))
        .unwrap_or((None, None));
    Ok(format!(
        "allow-guests {}{} allow-visitors {}{}",
        on_off(f.allow_guests),
        mark(g),
        on_off(f.allow_visitors),
        mark(v)
    ))
}

fn node_list(ctx: &AdminContext<'_>, path: &NodePath) -> Result<String, AdminError> {
    let s = ctx.store;
    let mut out = String::new();
    for n in s.subtree(path)? {
        let kind = match &n.host {
            Some(peer) => {
                let h = s.host(peer)?;
                let id = h.map(|h| h.internet_id.to_string()).unwrap_or_default();
                format!(
                    "host {id} {}",
                    if (ctx.online)(peer) {
                        "online"
                    } else {
                        "offline"
                    }
                )
            }
            None => "folder".to_string(),
        };
        out.push_str(&format!(
            "{:<32} {:<28} {}\n",
            n.path.as_str(),
            kind,
            flags_text(s, &n.path)?
        ));
    }
    Ok(if out.is_empty() {
        format!("{path} is empty")
    } else {
        out.trim_end().into()
    })
}
