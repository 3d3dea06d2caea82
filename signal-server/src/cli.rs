//! The command line: `serve`, `id`, and the admin commands (users, groups, nodes and
//! enrollment, waiting hosts, settings, audit, bundle). Admin commands go to the running server's admin socket when it runs and
//! straight to the store when it does not.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand, ValueEnum};
use portico_core::identity::Identity;
use portico_core::policy::Approval;
use portico_signal::admin::socket::{self, Sent};
use portico_signal::admin::{self, AdminCommand, AdminContext};
use portico_signal::store::accounts::PasswordHashed;
use portico_signal::{Config, Store};

/// Portico's self-hosted signalling and authorization server.
///
/// Holds users, groups and the node tree; lets viewers find hosts by Internet-ID; relays
/// for hosts behind NAT; signs tickets. Default port 5655 (TCP and QUIC). Admin commands
/// work whether or not the server is running.
#[derive(Debug, Parser)]
#[command(name = "portico-signal", version, about, long_about)]
pub(crate) struct Cli {
    /// Data directory (server key, database, admin socket). Default: the platform data dir,
    /// e.g. ~/.local/share/portico-signal.
    #[arg(long, global = true, env = "PORTICO_SIGNAL_DATA", value_name = "DIR")]
    data: Option<PathBuf>,

    /// Config file (TOML); see docs/operations.md for every field and its default.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Show the server's identity: PeerId and key fingerprint (creates it on first use).
    Id,
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage groups.
    #[command(subcommand)]
    Group(GroupCmd),
    /// Manage the node tree (folders and hosts) and enrollment tokens.
    #[command(subcommand)]
    Node(NodeCmd),
    /// Hosts waiting for approval: list, approve, reject.
    #[command(subcommand)]
    Host(HostCmd),
    /// Global switches.
    #[command(subcommand)]
    Settings(SettingsCmd),
    /// Print the audit log.
    Audit {
        /// Check the hash chain and report the first tampered entry.
        #[arg(long)]
        verify: bool,
        /// Only the last N entries.
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
    },
    /// Write a signed provisioning bundle for hosts (`portico host --provision FILE`).
    Bundle {
        /// Node path the hosts go to.
        #[arg(long)]
        node: String,
        /// Grants, e.g. `group:Marketing=view,control,files` (repeatable).
        #[arg(long = "grant", value_name = "PRINCIPAL=PERMISSIONS", required = true)]
        grants: Vec<String>,
        /// Whether the owner must confirm these users' sessions.
        #[arg(long, value_enum, default_value = "never")]
        approval: ApprovalArg,
        /// Server address hosts should use (`HOST:PORT` or multiaddr; repeatable).
        #[arg(long = "server", value_name = "ADDR")]
        servers: Vec<String>,
        /// How many hosts the bundle's enrollment token admits.
        #[arg(long, default_value_t = 1, value_name = "N")]
        uses: u32,
        /// Hours the bundle's enrollment token stays valid.
        #[arg(long, default_value_t = 168, value_name = "H")]
        hours: u64,
        /// Output file.
        #[arg(short, long, value_name = "FILE")]
        output: PathBuf,
    },
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Listen address for TCP and QUIC (default 0.0.0.0:5655).
    #[arg(long, value_name = "IP:PORT")]
    listen: Option<SocketAddr>,
    /// Serve Prometheus metrics at http://ADDR/metrics.
    #[arg(long, value_name = "IP:PORT")]
    metrics: Option<SocketAddr>,
    /// Display name shown to owners ("signed in at NAME").
    #[arg(long)]
    name: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OnOff {
    On,
    Off,
}

impl From<OnOff> for bool {
    fn from(v: OnOff) -> bool {
        matches!(v, OnOff::On)
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ApprovalArg {
    Never,
    Always,
}

#[derive(Debug, Subcommand)]
enum UserCmd {
    /// Add a user (password from --password-stdin or a prompt).
    Add {
        name: String,
        #[arg(long)]
        password_stdin: bool,
        /// The user may only connect as a server user (Custom Server Security).
        #[arg(long)]
        force_server_security: bool,
    },
    /// Delete a user.
    Del { name: String },
    /// List users.
    List,
    /// Change a user's password (ends their sign-ins).
    Passwd {
        name: String,
        #[arg(long)]
        password_stdin: bool,
    },
    /// Disable a user (ends their sign-ins; hosts end their sessions).
    Disable { name: String },
    /// Enable a user.
    Enable { name: String },
    /// Change a user's flags.
    Set {
        name: String,
        #[arg(long, value_enum)]
        force_server_security: OnOff,
    },
}

#[derive(Debug, Subcommand)]
enum GroupCmd {
    /// Add a group.
    Add { name: String },
    /// Delete a group (members lose it).
    Del { name: String },
    /// List groups and members.
    List,
    /// Add a user to a group.
    AddMember { group: String, user: String },
    /// Remove a user from a group (hosts end sessions it granted).
    RemoveMember { group: String, user: String },
}

#[derive(Debug, Subcommand)]
enum NodeCmd {
    /// List the tree (under PATH).
    List {
        #[arg(default_value = "/")]
        path: String,
    },
    /// Create a folder (and missing parents).
    Mkdir { path: String },
    /// Move a folder or host.
    Move { from: String, to: String },
    /// Set guest/visitor flags on a node (inherited by everything below it).
    Set {
        path: String,
        #[arg(long, value_enum)]
        allow_guests: Option<OnOff>,
        #[arg(long, value_enum)]
        allow_visitors: Option<OnOff>,
    },
    /// Make an enrollment token: hosts that register with it go into the folder PATH
    /// (created if missing). Shown once; hosts use `portico host --enroll TOKEN`.
    Enroll {
        path: String,
        /// How many hosts it admits.
        #[arg(long, default_value_t = 1, value_name = "N")]
        uses: u32,
        /// Hours it stays valid.
        #[arg(long, default_value_t = 24, value_name = "H")]
        hours: u64,
    },
    /// List enrollment tokens (id, folder, uses left, time left).
    Enrollments,
    /// Revoke an enrollment token by its id (from `node enrollments`).
    RevokeEnrollment { id: String },
}

#[derive(Debug, Subcommand)]
enum HostCmd {
    /// List hosts that asked to register without a token.
    Pending,
    /// Approve a waiting host: it registers at PATH (or where it asked) at its next attempt.
    Approve {
        /// Its PeerId (from `host pending`).
        peer: String,
        /// Where it goes in the tree (default: the path it asked for, or /unassigned/).
        #[arg(long)]
        path: Option<String>,
    },
    /// Reject a waiting host: it leaves the list and is refused from then on.
    Reject { peer: String },
}

#[derive(Debug, Subcommand)]
enum SettingsCmd {
    /// Set a global switch: guest-sharing or visitor-sharing.
    Set {
        #[arg(value_parser = admin::SETTINGS)]
        key: String,
        #[arg(value_enum)]
        value: OnOff,
    },
    /// Show the global switches.
    Show,
}

fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    match path {
        Some(p) => Ok(Config::from_file(p)?),
        None => Ok(Config::default()),
    }
}

/// Reads a new password and hashes it here, in the CLI: the server never runs argon2 for
/// an admin command (only for sign-ins, off its event loop).
fn read_password(from_stdin: bool) -> anyhow::Result<PasswordHashed> {
    let plain = portico_signal_client::password::read(from_stdin, true)?;
    Ok(PasswordHashed::of(&plain)?)
}

pub(crate) fn run(cli: Cli) -> anyhow::Result<()> {
    let config = load_config(cli.config.as_deref())?;
    let data = portico_core::data_dir::resolve(cli.data.or(config.data.clone()), "portico-signal")?;
    let cmd = match cli.command {
        Command::Serve(args) => return serve(config, &data, args),
        Command::Id => {
            let id = load_identity(&data)?;
            println!("PeerId:      {}", id.peer_id());
            println!("Fingerprint: {}", id.fingerprint());
            return Ok(());
        }
        Command::User(u) => match u {
            UserCmd::Add {
                name,
                password_stdin,
                force_server_security,
            } => AdminCommand::UserAdd {
                name,
                password: read_password(password_stdin)?,
                force_server_security,
            },
            UserCmd::Del { name } => AdminCommand::UserDel { name },
            UserCmd::List => AdminCommand::UserList,
            UserCmd::Passwd {
                name,
                password_stdin,
            } => AdminCommand::UserPasswd {
                name,
                password: read_password(password_stdin)?,
            },
            UserCmd::Disable { name } => AdminCommand::UserSetDisabled {
                name,
                disabled: true,
            },
            UserCmd::Enable { name } => AdminCommand::UserSetDisabled {
                name,
                disabled: false,
            },
            UserCmd::Set {
                name,
                force_server_security,
            } => AdminCommand::UserSetForce {
                name,
                on: force_server_security.into(),
            },
        },
        Command::Group(g) => match g {
            GroupCmd::Add { name } => AdminCommand::GroupAdd { name },
            GroupCmd::Del { name } => AdminCommand::GroupDel { name },
            GroupCmd::List => AdminCommand::GroupList,
            GroupCmd::AddMember { group, user } => AdminCommand::GroupMember {
                group,
                user,
                member: true,
            },
            GroupCmd::RemoveMember { group, user } => AdminCommand::GroupMember {
                group,
                user,
                member: false,
            },
        },
        Command::Node(n) => match n {
            NodeCmd::List { path } => AdminCommand::NodeList { path },
            NodeCmd::Mkdir { path } => AdminCommand::NodeMkdir { path },
            NodeCmd::Move { from, to } => AdminCommand::NodeMove { from, to },
            NodeCmd::Set {
                path,
                allow_guests,
                allow_visitors,
            } => AdminCommand::NodeSet {
                path,
                allow_guests: allow_guests.map(Into::into),
                allow_visitors: allow_visitors.map(Into::into),
            },
            NodeCmd::Enroll { path, uses, hours } => AdminCommand::NodeEnroll { path, uses, hours },
            NodeCmd::Enrollments => AdminCommand::EnrollList,
            NodeCmd::RevokeEnrollment { id } => AdminCommand::EnrollRevoke { id },
        },
        Command::Host(h) => match h {
            HostCmd::Pending => AdminCommand::HostPending,
            HostCmd::Approve { peer, path } => AdminCommand::HostApprove { peer, path },
            HostCmd::Reject { peer } => AdminCommand::HostReject { peer },
        },
        Command::Settings(SettingsCmd::Set { key, value }) => AdminCommand::SettingsSet {
            key,
            on: value.into(),
        },
        Command::Settings(SettingsCmd::Show) => AdminCommand::SettingsShow,
        Command::Audit { verify, tail } => AdminCommand::Audit { tail, verify },
        Command::Bundle {
            node,
            grants,
            approval,
            servers,
            uses,
            hours,
            output,
        } => {
            let approval = match approval {
                ApprovalArg::Never => Approval::Never,
                ApprovalArg::Always => Approval::Always,
            };
            let reply = admin_command(
                &data,
                &config,
                AdminCommand::Bundle {
                    node,
                    grants,
                    approval,
                    server_addrs: servers,
                    uses,
                    hours,
                },
            )?;
            let file = reply.file.context("the server returned no bundle")?;
            write_private(&output, &file)
                .with_context(|| format!("writing {}", output.display()))?;
            println!("{}\nwrote {}", reply.output, output.display());
            return Ok(());
        }
    };
    let reply = admin_command(&data, &config, cmd)?;
    if !reply.output.is_empty() {
        println!("{}", reply.output);
    }
    Ok(())
}

fn load_identity(data: &Path) -> anyhow::Result<Identity> {
    let (id, created) = Identity::load_or_create(data)
        .with_context(|| format!("loading the server identity in {}", data.display()))?;
    if created {
        eprintln!("created a new server identity in {}", data.display());
    }
    Ok(id)
}

/// Sends the command to the running server, or runs it on the store when none runs.
fn admin_command(
    data: &Path,
    config: &Config,
    cmd: AdminCommand,
) -> anyhow::Result<admin::AdminReply> {
    let reply =
        match socket::send(data, &cmd).context("talking to the running server's admin socket")? {
            Sent::Reply(r) => r,
            Sent::NotRunning => {
                let identity = load_identity(data)?;
                let store = Store::open(data)
                    .with_context(|| format!("opening the database in {}", data.display()))?;
                let online = |_: &str| false;
                let ctx = AdminContext {
                    store: &store,
                    identity: &identity,
                    server_name: &config.server_name,
                    server_addrs: config.external_addrs.clone(),
                    online: &online,
                    now: portico_core::clock::Clock::now().unix,
                };
                admin::execute(&ctx, cmd).0
            }
        };
    if !reply.ok {
        bail!("{}", reply.output);
    }
    Ok(reply)
}

fn serve(mut config: Config, data: &Path, args: ServeArgs) -> anyhow::Result<()> {
    if let Some(l) = args.listen {
        config.listen = l;
    }
    if let Some(m) = args.metrics {
        config.metrics = Some(m);
    }
    if let Some(n) = args.name {
        config.server_name = n;
    }
    let identity = load_identity(data)?;
    let store =
        Store::open(data).with_context(|| format!("opening the database in {}", data.display()))?;
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let shutdown = async {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot watch SIGTERM; only Ctrl-C stops the server");
                    if let Err(e) = tokio::signal::ctrl_c().await {
                        tracing::error!(error = %e, "cannot watch Ctrl-C either");
                    }
                    return;
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        };
        portico_signal::run(config, identity, store, data, shutdown).await
    })?;
    Ok(())
}

/// Writes a bundle: it holds an enrollment token, so a regular file is made readable by its
/// owner only, like keys (an existing one too); a pipe or terminal is written as it is.
fn write_private(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    let regular = f.metadata()?.is_file();
    if regular {
        f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    f.write_all(bytes)?;
    if regular {
        f.sync_all()?;
    }
    Ok(())
}
