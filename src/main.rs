//! `portico`: the host agent and viewer CLI.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use portico_core::identity::{self, Identity};

mod cli_id;

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

fn run(cli: Cli) -> anyhow::Result<()> {
    let data = identity::data_dir(cli.data, "portico")?;
    match cli.command {
        Command::Id => {
            let (id, created) = Identity::load_or_create(&data)
                .with_context(|| format!("loading the identity in {}", data.display()))?;
            cli_id::print(&id, created, &data);
            Ok(())
        }
    }
}
