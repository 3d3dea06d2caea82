//! `portico`: the host agent and viewer CLI.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use portico_core::identity::Identity;

mod acl_cmd;
mod book_cmd;
mod cli_id;
mod connect_cmd;
mod host_cmd;
mod owner_cmd;
mod registration;
mod signin;

/// Portico: self-hostable peer-to-peer remote desktop.
///
/// Share this machine's screen (`portico host`), connect to another (`portico connect`),
/// and manage who may come in. Run `portico COMMAND --help` for each command.
#[derive(Debug, Parser)]
#[command(name = "portico", version, about, long_about)]
struct Cli {
    /// Data directory (identity key, pinned keys, sign-in session).
    /// Default: the platform data dir, e.g. ~/.local/share/portico.
    #[arg(long, global = true, env = "PORTICO_DATA", value_name = "DIR")]
    data: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show this machine's identity: Internet-ID, PeerId and key fingerprint
    /// (creates the identity on first use).
    Id,
    /// Sign in to a Portico server (single sign-on for visitor and server-user access).
    Login {
        /// The server, HOST[:PORT] (default port 5655) or a multiaddr.
        #[arg(long, value_name = "HOST[:PORT]")]
        server: String,
        /// Account name.
        #[arg(long)]
        user: String,
        /// Read the password from the first line of stdin instead of prompting.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Sign out (ends the session at the server and removes it here).
    Logout {
        /// The server to sign out of (needed when signed in at several).
        #[arg(long, value_name = "HOST[:PORT]")]
        server: Option<String>,
        /// Also forget the server's pinned key (after a deliberate server reinstall).
        #[arg(long)]
        forget_server: bool,
    },
    /// Show who is signed in, and where.
    Whoami,
    /// Share this machine's display (X11: the display in $DISPLAY).
    Host(host_cmd::HostArgs),
    /// Connect to a host: IP[:PORT], HOST:PORT, multiaddr, Internet-ID, node path, or the
    /// name of a host on the LAN (`portico discover`).
    Connect(connect_cmd::ConnectArgs),
    /// A host's shared folders (remote browsing; needs the `files` permission, and guests
    /// and visitors wait for the owner's yes once per session).
    #[command(subcommand)]
    Files(FilesCmd),
    /// The address book: names for hosts (`portico connect NAME`).
    #[command(subcommand)]
    Book(book_cmd::BookCmd),
    /// The servers this viewer knows: add (pins the key), list, remove, default.
    #[command(subcommand)]
    Servers(book_cmd::ServersCmd),
    /// List the Portico hosts announced on this LAN (mDNS): name, key fingerprint,
    /// addresses. Finding a host grants nothing: its owner's policy still decides.
    Discover {
        /// How long to listen for answers, in seconds.
        #[arg(long, default_value = "3", value_name = "SECS")]
        wait: f64,
    },
    /// Requests waiting for the owner of the running host.
    Requests,
    /// Accept a waiting request.
    Accept {
        /// Request number (from `portico requests`).
        id: u64,
        /// Accept view-only.
        #[arg(long)]
        view_only: bool,
        /// Time limit (90s, 30m, 1h); default until kicked.
        #[arg(long = "for", value_name = "DURATION")]
        for_: Option<String>,
    },
    /// Refuse a waiting request.
    Refuse {
        /// Request number.
        id: u64,
    },
    /// Allow a waiting file transfer or clipboard request.
    Allow {
        /// Request number (from `portico requests`).
        id: u64,
    },
    /// Deny a waiting file transfer or clipboard request.
    Deny {
        /// Request number.
        id: u64,
    },
    /// Live sessions on the running host.
    Sessions,
    /// End a live session ("disconnected by the owner").
    Kick {
        /// Session number (from `portico sessions`).
        id: u64,
    },
    /// The host's access-control list (DATA/acl.toml; applied live to a running host).
    #[command(subcommand)]
    Acl(AclCmd),
    /// List the server's node tree with online state.
    Nodes {
        /// The server (default: the default server's sign-in, else the latest).
        #[arg(long, value_name = "HOST[:PORT]")]
        server: Option<String>,
        /// Subtree to list.
        #[arg(default_value = "/")]
        path: String,
    },
}

#[derive(Debug, Subcommand)]
enum FilesCmd {
    /// List a folder: PATH is /FOLDER/… (`/` lists the shared folders).
    Ls {
        #[command(flatten)]
        connect: connect_cmd::ConnectArgs,
        /// The remote folder (`/` lists the shared folders).
        path: Option<String>,
    },
    /// Download a file (its SHA-256 checked; nothing is overwritten).
    Get {
        #[command(flatten)]
        connect: connect_cmd::ConnectArgs,
        /// The remote file, /FOLDER/…/FILE.
        path: Option<String>,
        /// Where to put it (a folder keeps the remote name).
        #[arg(long, default_value = ".")]
        out: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum AclCmd {
    /// Show the managed entries.
    List,
    /// Grant PERMISSIONS (view,control,files,clipboard) to a principal
    /// (user:NAME, group:NAME, peer:PEERID).
    Add {
        /// user:NAME, group:NAME or peer:PEERID.
        principal: String,
        /// Comma-separated permissions.
        permissions: String,
        /// Whether the owner confirms these sessions.
        #[arg(long, value_parser = ["never", "always"], default_value = "never")]
        approval: String,
    },
    /// Remove a principal's entry.
    Remove {
        /// user:NAME, group:NAME or peer:PEERID.
        principal: String,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_identity(data: &std::path::Path) -> anyhow::Result<(Identity, bool)> {
    Identity::load_or_create(data)
        .with_context(|| format!("loading the identity in {}", data.display()))
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let data = portico_core::data_dir::resolve(cli.data, "portico")?;
    match cli.command {
        Command::Id => {
            let (id, created) = load_identity(&data)?;
            cli_id::print(&id, created, &data, registration::read(&data)?.as_ref());
            Ok(())
        }
        Command::Login {
            server,
            user,
            password_stdin,
        } => {
            let (id, _) = load_identity(&data)?;
            runtime()?.block_on(signin::login(&data, &id, &server, &user, password_stdin))
        }
        Command::Logout {
            server,
            forget_server,
        } => {
            let (id, _) = load_identity(&data)?;
            runtime()?.block_on(signin::logout(&data, &id, server.as_deref(), forget_server))
        }
        Command::Whoami => {
            let (id, _) = load_identity(&data)?;
            runtime()?.block_on(signin::whoami(&data, &id))
        }
        Command::Host(args) => {
            let (id, _) = load_identity(&data)?;
            host_cmd::run(&data, id, args)
        }
        Command::Connect(args) => {
            let (id, _) = load_identity(&data)?;
            connect_cmd::run(&data, id, args)
        }
        Command::Files(cmd) => {
            let (id, _) = load_identity(&data)?;
            // Both positionals are optional to clap (TARGET is optional for `connect`).
            let need = || anyhow::anyhow!("give TARGET and the remote PATH (/FOLDER/…)");
            let (mut connect, job) = match cmd {
                FilesCmd::Ls { connect, path } => (
                    connect,
                    portico_viewer::fetch::BrowseJob::List(path.ok_or_else(need)?),
                ),
                FilesCmd::Get { connect, path, out } => {
                    let path = path.ok_or_else(need)?;
                    (connect, portico_viewer::fetch::BrowseJob::Get { path, out })
                }
            };
            connect.headless = true;
            connect.browse = Some(job);
            connect_cmd::run(&data, id, connect)
        }
        Command::Book(cmd) => book_cmd::book(&data, cmd),
        Command::Servers(cmd) => {
            let (id, _) = load_identity(&data)?;
            runtime()?.block_on(book_cmd::servers(&data, &id, cmd))
        }
        Command::Discover { wait } => {
            let (id, _) = load_identity(&data)?;
            runtime()?.block_on(connect_cmd::discover(&id, wait))
        }
        Command::Acl(AclCmd::List) => acl_cmd::list(&data),
        Command::Acl(AclCmd::Add {
            principal,
            permissions,
            approval,
        }) => {
            let (id, _) = load_identity(&data)?;
            let approval = if approval == "always" {
                portico_core::policy::Approval::Always
            } else {
                portico_core::policy::Approval::Never
            };
            acl_cmd::add(&data, &id, &principal, &permissions, approval)
        }
        Command::Acl(AclCmd::Remove { principal }) => acl_cmd::remove(&data, &principal),
        Command::Requests => owner_cmd::requests(&data),
        Command::Accept {
            id,
            view_only,
            for_,
        } => owner_cmd::accept(&data, id, view_only, for_.as_deref()),
        Command::Refuse { id } => owner_cmd::refuse(&data, id),
        Command::Sessions => owner_cmd::sessions(&data),
        Command::Allow { id } => owner_cmd::service(&data, id, true),
        Command::Deny { id } => owner_cmd::service(&data, id, false),
        Command::Kick { id } => owner_cmd::kick(&data, id),
        Command::Nodes { server, path } => {
            let (id, _) = load_identity(&data)?;
            runtime()?.block_on(signin::nodes(&data, &id, server.as_deref(), &path))
        }
    }
}
