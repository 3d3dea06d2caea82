//! `portico host`'s settings, decided in one place from its flags, its config file, a
//! provisioning bundle and this machine's defaults. One rule for every key: **a flag beats
//! the file, the file beats the bundle, the bundle beats the default.** Switches take a
//! value on the command line too (`--allow-guests=false` turns off what the file turns on).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use libp2p::Multiaddr;
use portico_actors::capture::Pacing;
use portico_actors::host::{self, CaptureMode, HostFile};
use portico_core::area::Area;
use portico_core::policy::{AclEntry, HostSettings};

use super::{CaptureArg, HostArgs};

/// What a provisioning bundle says about where the host registers.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bundle {
    /// The server's address.
    pub(crate) server: String,
    /// The node path to enroll under.
    pub(crate) name: String,
    /// Its enrollment token.
    pub(crate) enroll: Option<String>,
}

/// What this machine gives when nothing else does (read once, passed in so tests can say).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Defaults {
    /// Shared for browsing (`~/Public`).
    pub(crate) browse_roots: Vec<PathBuf>,
    /// Where received files land (`~/Downloads/Portico`).
    pub(crate) download_dir: Option<PathBuf>,
    /// The machine's host name.
    pub(crate) hostname: Option<String>,
}

impl Defaults {
    /// This machine's.
    pub(crate) fn of_this_machine() -> Self {
        Self {
            browse_roots: default_browse_roots(),
            download_dir: portico_core::data_dir::default_downloads(),
            hostname: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
                .filter(|h| !h.is_empty()),
        }
    }
}

/// Everything `portico host` runs with, before any network I/O.
#[derive(Debug, Clone)]
pub(crate) struct Resolved {
    pub(crate) listen: Vec<Multiaddr>,
    pub(crate) server: Option<String>,
    pub(crate) name: Option<String>,
    pub(crate) enroll: Option<EnrollFrom>,
    pub(crate) area: Area,
    pub(crate) capture: CaptureMode,
    pub(crate) pacing: Pacing,
    pub(crate) settings: HostSettings,
    pub(crate) acl: Vec<AclEntry>,
    pub(crate) mdns: bool,
    pub(crate) notifications: bool,
    pub(crate) owner_timeout: Duration,
    pub(crate) download_dir: PathBuf,
    pub(crate) browse_roots: Vec<PathBuf>,
    pub(crate) connections_per_ip: usize,
    pub(crate) console: Option<SocketAddr>,
    pub(crate) lan_name: String,
}

/// Where the enrollment token comes from.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EnrollFrom {
    /// `--enroll` (the token, `@FILE` or `-`; read when the server is contacted).
    Flag(String),
    /// The bundle's token.
    Bundle(String),
}

/// The frame rate used without `--fps` or `fps`.
const DEFAULT_FPS: u32 = 30;
/// Seconds the owner has to answer, without `--owner-timeout` or `owner_timeout`.
const DEFAULT_OWNER_TIMEOUT: u64 = 60;

/// Decides every setting: flag, then file, then bundle, then default.
pub(crate) fn resolve(
    args: &HostArgs,
    file: &HostFile,
    bundle: Option<&Bundle>,
    defaults: &Defaults,
) -> anyhow::Result<Resolved> {
    let listen_specs = if !args.listen.is_empty() {
        args.listen.clone()
    } else if !file.listen.is_empty() {
        file.listen.clone()
    } else {
        vec![format!("0.0.0.0:{}", portico_actors::network::DEFAULT_PORT)]
    };
    let mut listen = Vec::new();
    for spec in &listen_specs {
        listen.extend(host::listen_addrs(spec)?);
    }
    let server = (args.server.clone())
        .or_else(|| file.server.clone())
        .or_else(|| bundle.map(|b| b.server.clone()));
    let name = (args.name.clone())
        .or_else(|| file.name.clone())
        .or_else(|| bundle.map(|b| b.name.clone()));
    let enroll = match (&args.enroll, bundle.and_then(|b| b.enroll.clone())) {
        (Some(given), _) => Some(EnrollFrom::Flag(given.clone())),
        (None, Some(t)) => Some(EnrollFrom::Bundle(t)),
        (None, None) => None,
    };
    let switch = |flag: Option<bool>, in_file: bool| flag.unwrap_or(in_file);
    let console = match args.console.as_str() {
        "off" => None,
        a => Some(
            a.parse()
                .with_context(|| format!("--console {a:?}: use IP:PORT on loopback, or off"))?,
        ),
    };
    Ok(Resolved {
        listen,
        lan_name: lan_name(args.name.as_deref().or(file.name.as_deref()), defaults),
        server,
        name,
        enroll,
        area: args.monitor.unwrap_or(file.monitor),
        capture: match args.capture {
            CaptureArg::Auto => CaptureMode::Auto,
            CaptureArg::X11 => CaptureMode::X11,
            CaptureArg::Xcap => CaptureMode::Xcap,
        },
        pacing: Pacing {
            fps: args.fps.or(file.fps).unwrap_or(DEFAULT_FPS).clamp(1, 120),
            ..Pacing::default()
        },
        settings: HostSettings {
            allow_guests: switch(args.allow_guests, file.allow_guests),
            allow_visitors: switch(args.allow_visitors, file.allow_visitors),
        },
        acl: file.acl.clone(),
        mdns: !switch(args.no_mdns, file.no_mdns),
        notifications: !switch(args.no_notifications, file.no_notifications),
        owner_timeout: Duration::from_secs(
            (args.owner_timeout)
                .or(file.owner_timeout)
                .unwrap_or(DEFAULT_OWNER_TIMEOUT)
                .clamp(1, 3600),
        ),
        download_dir: (args.download_dir.clone())
            .or_else(|| file.download_dir.clone())
            .or_else(|| defaults.download_dir.clone())
            .context("no download folder: give --download-dir DIR")?,
        browse_roots: (file.browse_roots.clone()).unwrap_or_else(|| defaults.browse_roots.clone()),
        connections_per_ip: (file.connections_per_ip)
            .unwrap_or(portico_signal_client::ip_limits::MAX_INBOUND_PER_IP)
            .max(1),
        console,
    })
}

/// The name a host shows on the LAN: the last part of its node path, else the machine's
/// host name.
fn lan_name(node_path: Option<&str>, defaults: &Defaults) -> String {
    let name = node_path
        .and_then(|p| p.rsplit('/').find(|s| !s.is_empty()))
        .map(str::to_string)
        .or_else(|| defaults.hostname.clone())
        .unwrap_or_else(|| "portico-host".into());
    portico_core::text::clean(&name, 64)
}

/// With no `browse_roots` in the config: `~/Public`, created empty when missing — never the
/// whole home folder. Nothing is shared when there is no home or it cannot be made.
fn default_browse_roots() -> Vec<PathBuf> {
    let Some(public) = std::env::var_os("HOME").map(|h| PathBuf::from(h).join("Public")) else {
        return Vec::new();
    };
    match std::fs::create_dir_all(&public) {
        Ok(()) => vec![public],
        Err(e) => {
            tracing::warn!(path = %public.display(), "no folder is shared for browsing: {e}");
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        host: HostArgs,
    }

    fn args(flags: &[&str]) -> HostArgs {
        let argv = std::iter::once("portico-host").chain(flags.iter().copied());
        Cli::try_parse_from(argv).unwrap().host
    }

    fn file(toml: &str) -> HostFile {
        toml::from_str(toml).unwrap()
    }

    fn defaults() -> Defaults {
        Defaults {
            browse_roots: vec!["/home/ann/Public".into()],
            download_dir: Some("/home/ann/Downloads/Portico".into()),
            hostname: Some("annbox".into()),
        }
    }

    fn run(flags: &[&str], toml: &str, bundle: Option<&Bundle>) -> Resolved {
        resolve(&args(flags), &file(toml), bundle, &defaults()).unwrap()
    }

    #[test]
    fn defaults_when_nothing_is_said() {
        let r = run(&[], "", None);
        assert_eq!(r.listen.len(), 2, "TCP and QUIC on the default port");
        assert!(r.listen[0].to_string().ends_with("/tcp/5650"));
        assert_eq!((r.server, r.name, r.enroll), (None, None, None));
        assert_eq!(r.area, Area::Monitor(0));
        assert_eq!(r.pacing.fps, 30);
        assert_eq!(r.settings, HostSettings::default());
        assert!(r.mdns && r.notifications);
        assert_eq!(r.owner_timeout, Duration::from_secs(60));
        assert_eq!(r.download_dir, PathBuf::from("/home/ann/Downloads/Portico"));
        assert_eq!(r.browse_roots, vec![PathBuf::from("/home/ann/Public")]);
        assert_eq!(r.console, Some("127.0.0.1:5651".parse().unwrap()));
        assert_eq!(r.lan_name, "annbox");
    }

    #[test]
    fn the_file_beats_defaults_and_flags_beat_the_file() {
        let toml = r#"
            listen = ["10.0.0.5:7000"]
            server = "file.example"
            name = "/Sales/pc-7"
            monitor = "desktop"
            fps = 20
            allow_guests = true
            allow_visitors = true
            no_mdns = true
            no_notifications = true
            owner_timeout = 30
            download_dir = "/srv/in"
            browse_roots = []
            connections_per_ip = 4
        "#;
        let r = run(&[], toml, None);
        assert!(r.listen[0].to_string().contains("10.0.0.5/tcp/7000"));
        assert_eq!(r.server.as_deref(), Some("file.example"));
        assert_eq!(r.area, Area::Desktop);
        assert_eq!(r.pacing.fps, 20);
        assert!(r.settings.allow_guests && r.settings.allow_visitors);
        assert!(!r.mdns && !r.notifications);
        assert_eq!(r.owner_timeout, Duration::from_secs(30));
        assert_eq!(r.download_dir, PathBuf::from("/srv/in"));
        assert!(r.browse_roots.is_empty(), "`[]` shares nothing");
        assert_eq!(r.connections_per_ip, 4);
        assert_eq!(r.lan_name, "pc-7");
        let flags = [
            "--listen",
            "127.0.0.1:0",
            "--server",
            "flag.example",
            "--monitor",
            "1",
            "--fps",
            "500",
            "--allow-guests=false",
            "--allow-visitors=false",
            "--no-mdns=false",
            "--no-notifications=false",
            "--owner-timeout",
            "0",
            "--download-dir",
            "/tmp/in",
            "--console",
            "off",
        ];
        let r = run(&flags, toml, None);
        assert!(r.listen[0].to_string().contains("127.0.0.1/tcp/0"));
        assert_eq!(r.server.as_deref(), Some("flag.example"));
        assert_eq!(r.area, Area::Monitor(1));
        assert_eq!(r.pacing.fps, 120, "clamped");
        assert_eq!(
            r.settings,
            HostSettings::default(),
            "a flag turns off what the file turns on"
        );
        assert!(r.mdns && r.notifications);
        assert_eq!(r.owner_timeout, Duration::from_secs(1), "clamped");
        assert_eq!(r.download_dir, PathBuf::from("/tmp/in"));
        assert_eq!(r.console, None);
        // A bare switch still means on.
        let r = run(&["--allow-guests", "--no-mdns"], "", None);
        assert!(r.settings.allow_guests && !r.mdns);
    }

    #[test]
    fn a_bundle_fills_in_what_flags_and_file_leave_open() {
        let b = Bundle {
            server: "bundle.example".into(),
            name: "/Dept/pc-ab12".into(),
            enroll: Some("tok".into()),
        };
        let r = run(&[], "", Some(&b));
        assert_eq!(r.server.as_deref(), Some("bundle.example"));
        assert_eq!(r.name.as_deref(), Some("/Dept/pc-ab12"));
        assert_eq!(r.enroll, Some(EnrollFrom::Bundle("tok".into())));
        let r = run(
            &["--enroll", "@/run/token"],
            "server = \"file.example\"",
            Some(&b),
        );
        assert_eq!(r.server.as_deref(), Some("file.example"));
        assert_eq!(r.enroll, Some(EnrollFrom::Flag("@/run/token".into())));
    }

    #[test]
    fn bad_values_say_what_to_do() {
        let bad = |flags: &[&str], toml: &str| {
            resolve(&args(flags), &file(toml), None, &defaults())
                .unwrap_err()
                .to_string()
        };
        assert!(bad(&["--console", "nowhere"], "").contains("IP:PORT on loopback, or off"));
        assert!(bad(&["--listen", "nowhere"], "").contains("IP:PORT or a multiaddr"));
        let no_home = Defaults {
            download_dir: None,
            ..defaults()
        };
        let e = resolve(&args(&[]), &file(""), None, &no_home).unwrap_err();
        assert!(e.to_string().contains("--download-dir DIR"), "{e}");
        assert!(Cli::try_parse_from(["p", "--monitor", "left"]).is_err());
    }
}
