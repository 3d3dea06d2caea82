//! Test support: the real `portico` binary as host and viewer processes.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use super::x11::{self, Xvfb};

pub fn portico() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_portico"));
    c.env_remove("PORTICO_DATA")
        .env_remove("WAYLAND_DISPLAY")
        .env("XDG_SESSION_TYPE", "x11")
        .env("RUST_LOG", "warn");
    c
}

pub fn peer_of(data: &Path) -> String {
    let out = portico()
        .arg("--data")
        .arg(data)
        .arg("id")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("PeerId:").map(|s| s.trim().to_string()))
        .unwrap()
}

/// A `portico host` process, killed on drop; its stdout lines arrive on `lines`.
pub struct Host {
    pub child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Host {
    pub fn start(x: &Xvfb, data: &Path, config: &str, extra: &[&str]) -> Host {
        Self::start_env(x, data, config, extra, &[])
    }

    /// [`Host::start`] with extra environment variables.
    pub fn start_env(
        x: &Xvfb,
        data: &Path,
        config: &str,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> Host {
        let ports = ["--listen", "127.0.0.1:0", "--console", "127.0.0.1:0"];
        Self::spawn(x, data, config, &[&ports[..], extra].concat(), envs)
    }

    /// A host on the default listen and console ports (several hosts on one machine).
    pub fn start_on_default_ports(x: &Xvfb, data: &Path, config: &str) -> Host {
        Self::spawn(x, data, config, &[], &[])
    }

    fn spawn(x: &Xvfb, data: &Path, config: &str, extra: &[&str], envs: &[(&str, &str)]) -> Host {
        let cfg = data.join("host.toml");
        std::fs::create_dir_all(data).unwrap();
        std::fs::write(&cfg, config).unwrap();
        let mut child = portico()
            .arg("--data")
            .arg(data)
            .arg("host")
            .arg("--config")
            .arg(&cfg)
            .arg("--no-mdns")
            .args(extra)
            .env("DISPLAY", &x.display)
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let (tx, lines) = channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Host {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a stdout line starting with `prefix`; returns the rest.
    pub fn wait_line(&mut self, prefix: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.starts_with(prefix)) {
            return l[prefix.len()..].trim().to_string();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while let Ok(l) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
        {
            self.seen.push(l.clone());
            if let Some(rest) = l.strip_prefix(prefix) {
                return rest.trim().to_string();
            }
        }
        panic!("host never printed {prefix:?}; saw {:?}", self.seen);
    }

    pub fn tcp_addr(&mut self) -> String {
        loop {
            let a = self.wait_line("Listening:");
            if a.contains("/tcp/") {
                return a;
            }
            self.seen.retain(|l| !l.contains(&a));
        }
    }
}

pub fn acl(viewer: &str, perms: &str) -> String {
    format!(
        "[[acl]]\nprincipal = \"peer:{viewer}\"\npermissions = [{}]\n",
        perms
            .split(',')
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

pub fn connect(viewer: &Path, target: &str, args: &[&str]) -> Output {
    portico()
        .arg("--data")
        .arg(viewer)
        .args(["connect", target, "--headless"])
        .args(args)
        .output()
        .unwrap()
}

pub fn ok(o: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "viewer failed:\n{text}");
    text
}

pub fn psnr_png(png: &Path, reference: &[u8]) -> f64 {
    let img = image::open(png).unwrap().to_rgba8();
    assert_eq!(img.dimensions(), (x11::W, x11::H));
    portico_core::tiles::psnr_rgba(img.as_raw(), reference)
}

pub fn script(dir: &Path, lines: &[&str]) -> PathBuf {
    let p = dir.join("script.jsonl");
    std::fs::write(&p, lines.join("\n")).unwrap();
    p
}

/// A viewer's `--stats` JSON.
pub fn stats(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("no stats at {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("stats are not JSON ({e}): {text}"))
}

/// Named fields of a stats file, failing with the file's text when one is missing.
pub trait StatsFields {
    fn str_field(&self, name: &str) -> String;
    fn num_field(&self, name: &str) -> f64;
}

impl StatsFields for serde_json::Value {
    fn str_field(&self, name: &str) -> String {
        self[name]
            .as_str()
            .unwrap_or_else(|| panic!("no string {name} in {self}"))
            .to_string()
    }

    fn num_field(&self, name: &str) -> f64 {
        self[name]
            .as_f64()
            .unwrap_or_else(|| panic!("no number {name} in {self}"))
    }
}

/// The `portico-signal` binary, built beside `portico` (`cargo test --workspace` and
/// `make test` build it; the host agent and the CLI do not link the server).
pub fn signal_bin() -> PathBuf {
    let p = Path::new(env!("CARGO_BIN_EXE_portico")).with_file_name("portico-signal");
    let built = std::fs::metadata(&p)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| {
            panic!(
                "{} is missing: build it with `cargo build -p portico-signal`",
                p.display()
            )
        });
    // A binary older than the code it is built from would test yesterday's server.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let newer = ["signal-server/src", "signal-client/src", "core/src"]
        .iter()
        .flat_map(|d| rust_files(&root.join(d)))
        .find(|f| {
            std::fs::metadata(f)
                .and_then(|m| m.modified())
                .is_ok_and(|t| t > built)
        });
    if let Some(f) = newer {
        panic!(
            "{} is older than {}: build it again with `cargo build -p portico-signal` \
             (`make test` builds everything)",
            p.display(),
            f.display()
        );
    }
    p
}

/// Every `.rs` file under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|x| x == "rs") {
                out.push(path);
            }
        }
    }
    out
}

/// A `portico-signal serve` process, killed on drop.
pub struct Server {
    pub child: Child,
    /// Its data directory.
    pub dir: PathBuf,
    /// Its TCP port.
    pub port: u16,
    /// Its PeerId.
    pub peer: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts a server named "hq" with data in `dir`, listening on `listen`.
    pub fn start_at(dir: &Path, listen: &str) -> Server {
        std::fs::create_dir_all(dir).unwrap();
        let mut child = Command::new(signal_bin())
            .arg("--data")
            .arg(dir)
            .args(["serve", "--listen", listen, "--name", "hq"])
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        let (mut port, mut peer) = (None, None);
        for l in out.lines().map_while(Result::ok) {
            if let Some(p) = l.strip_prefix("PeerId:") {
                peer = Some(p.trim().to_string());
            }
            if let Some(a) = l.strip_prefix("Listening:") {
                if let Some(rest) = a.trim().split("/tcp/").nth(1) {
                    port = Some(rest.split('/').next().unwrap().parse().unwrap());
                    break;
                }
            }
        }
        let port = port.expect("the server printed no TCP address");
        Server {
            child,
            dir: dir.to_path_buf(),
            port,
            peer: peer.expect("the server printed no PeerId"),
        }
    }

    /// `HOST:PORT` for `--server`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

/// Starts a signal server on a free port (keep it: dropping it stops the server).
pub fn start_server(dir: &Path) -> Server {
    Server::start_at(dir, "127.0.0.1:0")
}

/// Runs `portico-signal --data DIR ARGS…` (an admin command: through the running server's
/// admin socket, or the store when none runs); `stdin` feeds `--password-stdin`. Asserts
/// success and returns stdout.
pub fn admin(dir: &Path, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut c = Command::new(signal_bin())
        .arg("--data")
        .arg(dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = c.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let o = c.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "portico-signal {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// An enrollment token for one host into `folder` (`portico-signal node enroll`).
pub fn enroll_token(dir: &Path, folder: &str) -> String {
    let out = admin(dir, &["node", "enroll", folder], None);
    out.lines()
        .find(|l| l.starts_with("enroll-"))
        .unwrap_or_else(|| panic!("no token in {out}"))
        .to_string()
}

/// Adds user `name` with password `NAME-pw` (`force`: Custom Server Security only).
pub fn add_user(dir: &Path, name: &str, force: bool) {
    let mut args = vec!["user", "add", name, "--password-stdin"];
    if force {
        args.push("--force-server-security");
    }
    admin(dir, &args, Some(&format!("{name}-pw\n")));
}

/// Signs the viewer in.
pub fn login(viewer: &Path, server: &str, user: &str, password: &str) {
    use std::io::Write;
    let mut c = portico()
        .arg("--data")
        .arg(viewer)
        .args([
            "login",
            "--server",
            server,
            "--user",
            user,
            "--password-stdin",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin
        .take()
        .unwrap()
        .write_all(format!("{password}\n").as_bytes())
        .unwrap();
    let out = c.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "login failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `portico --data DATA ARGS…` to completion.
pub fn run_at(data: &Path, args: &[&str]) -> Output {
    portico()
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .unwrap()
}

/// Starts `portico --data DATA ARGS…` with piped output.
pub fn spawn_at(data: &Path, args: &[&str]) -> Child {
    portico()
        .arg("--data")
        .arg(data)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a child to exit, killing it (and failing) after `limit`.
pub fn wait_exit(mut child: Child, limit: Duration) -> Output {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    panic!(
        "did not exit within {limit:?}: {:?}",
        child.wait_with_output().unwrap()
    );
}

/// Stdout and stderr together.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// One step in headless Chromium (tests/console/drive.mjs); returns what it printed.
pub fn drive(url: &str, args: &[&str]) -> String {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/console");
    assert!(
        dir.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: run `make test` (it runs npm ci in tests/console)"
    );
    let out = Command::new("node")
        .arg(dir.join("drive.mjs"))
        .arg(url)
        .args(args)
        .output()
        .expect("node is not installed");
    assert!(
        out.status.success(),
        "browser step {args:?} failed:\n{}",
        text(&out)
    );
    text(&out)
}

/// Polls `portico requests` on the host until a line containing `needle` appears; returns
/// its request number.
pub fn request_id(host: &Path, needle: &str) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = text(&run_at(host, &["requests"]));
        if let Some(line) = out.lines().find(|l| l.contains(needle)) {
            return line.split('\t').next().unwrap().parse().unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no request containing {needle:?}: {out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A viewer data dir (`dir/viewer`) and a host (`dir/host`) on `x` whose ACL trusts that
/// viewer's key with `perms`.
pub fn trusted_host(x: &Xvfb, dir: &Path, perms: &str, extra: &[&str]) -> (PathBuf, Host) {
    let viewer = dir.join("viewer");
    let host = Host::start(x, &dir.join("host"), &acl(&peer_of(&viewer), perms), extra);
    (viewer, host)
}
