//! `portico-signal`: the signalling/authorization server binary (thin: parses the CLI).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use portico_core::identity::{self, Identity};

/// Portico's self-hosted signalling and authorization server.
///
/// Holds users, groups and the node tree; lets viewers find hosts by Internet-ID; relays
/// for hosts behind NAT; signs tickets. Default port 5655 (TCP and QUIC).
#[derive(Debug, Parser)]
#[command(name = "portico-signal", version, about, long_about)]
struct Cli {
    /// Data directory (server key, database). Default: the platform data dir,
    /// e.g. ~/.local/share/portico-signal.
    #[arg(long, global = true, env = "PORTICO_SIGNAL_DATA", value_name = "DIR")]
    data: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the server's identity: PeerId and key fingerprint (creates it on first use).
    /// Hosts and viewers pin this key; compare the fingerprint when they first connect.
    Id,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let data = identity::data_dir(cli.data, "portico-signal")?;
    match cli.command {
        Command::Id => {
            let (id, created) = Identity::load_or_create(&data)
                .with_context(|| format!("loading the server identity in {}", data.display()))?;
            if created {
                println!("Created a new server identity in {}", data.display());
            }
            println!("PeerId:      {}", id.peer_id());
            println!("Fingerprint: {}", id.fingerprint());
            Ok(())
        }
    }
}
