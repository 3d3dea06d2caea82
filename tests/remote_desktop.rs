//! The remote-desktop path end to end: a real Xvfb, the real `portico host` and
//! `portico connect` binaries, real libp2p over loopback (and a real server for Internet-ID).
#![allow(
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

#[path = "support/x11.rs"]
mod x11;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use x11::Xvfb;

fn portico() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_portico"));
    c.env_remove("PORTICO_DATA")
        .env_remove("WAYLAND_DISPLAY")
        .env("XDG_SESSION_TYPE", "x11")
        .env("RUST_LOG", "warn");
    c
}

fn peer_of(data: &Path) -> String {
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
struct Host {
    child: Child,
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
    fn start(x: &Xvfb, data: &Path, config: &str, extra: &[&str]) -> Host {
        let cfg = data.join("host.toml");
        std::fs::create_dir_all(data).unwrap();
        std::fs::write(&cfg, config).unwrap();
        let mut child = portico()
            .arg("--data")
            .arg(data)
            .arg("host")
            .arg("--config")
            .arg(&cfg)
            .args(["--listen", "127.0.0.1:0", "--no-mdns"])
            .args(extra)
            .env("DISPLAY", &x.display)
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
    fn wait_line(&mut self, prefix: &str) -> String {
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

    fn tcp_addr(&mut self) -> String {
        loop {
            let a = self.wait_line("Listening:");
            if a.contains("/tcp/") {
                return a;
            }
            self.seen.retain(|l| !l.contains(&a));
        }
    }
}

fn acl(viewer: &str, perms: &str) -> String {
    format!(
        "[[acl]]\nprincipal = \"peer:{viewer}\"\npermissions = [{}]\n",
        perms
            .split(',')
            .map(|p| format!("\"{p}\""))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn connect(viewer: &Path, target: &str, args: &[&str]) -> Output {
    portico()
        .arg("--data")
        .arg(viewer)
        .args(["connect", target, "--headless"])
        .args(args)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "viewer failed:\n{text}");
    text
}

fn psnr_png(png: &Path, reference: &[u8]) -> f64 {
    let img = image::open(png).unwrap().to_rgba8();
    assert_eq!(img.dimensions(), (x11::W, x11::H));
    portico_actors::media::psnr_rgba(img.as_raw(), reference)
}

fn script(dir: &Path, lines: &[&str]) -> PathBuf {
    let p = dir.join("script.jsonl");
    std::fs::write(&p, lines.join("\n")).unwrap();
    p
}

fn stats(path: &Path) -> serde_json_value::Value {
    serde_json_value::parse(&std::fs::read_to_string(path).unwrap())
}

/// Minimal JSON access without another dependency: the stats file is flat enough.
mod serde_json_value {
    pub struct Value(pub String);
    pub fn parse(s: &str) -> Value {
        Value(s.to_string())
    }
    impl Value {
        pub fn str_field(&self, name: &str) -> String {
            let key = format!("\"{name}\": \"");
            let start = self
                .0
                .find(&key)
                .unwrap_or_else(|| panic!("no {name} in {}", self.0))
                + key.len();
            self.0[start..].split('"').next().unwrap().to_string()
        }
        pub fn num_field(&self, name: &str) -> f64 {
            let key = format!("\"{name}\": ");
            let start = self
                .0
                .find(&key)
                .unwrap_or_else(|| panic!("no {name} in {}", self.0))
                + key.len();
            self.0[start..]
                .split([',', '\n'])
                .next()
                .unwrap()
                .trim()
                .parse()
                .unwrap()
        }
    }
}

#[test]
fn known_picture_arrives_sharp_and_input_moves_the_pointer() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(0));
    x.warp(5, 5);
    let dir = tempfile::tempdir().unwrap();
    let viewer = dir.path().join("viewer");
    let vpeer = peer_of(&viewer);
    let mut host = Host::start(
        &x,
        &dir.path().join("host"),
        &acl(&vpeer, "view,control"),
        &[],
    );
    let addr = host.tcp_addr();
    let snap = dir.path().join("snap.png");
    let st = dir.path().join("stats.json");
    let sc = script(
        dir.path(),
        &[
            r#"{"delay_ms":300,"event":{"pointer_move":{"x":640,"y":360}}}"#,
            r#"{"delay_ms":50,"event":{"button":{"button":"left","down":true}}}"#,
            r#"{"delay_ms":50,"event":{"button":{"button":"left","down":false}}}"#,
        ],
    );
    let out = ok(&connect(
        &viewer,
        &addr,
        &[
            "--duration",
            "2.5",
            "--snapshot",
            snap.to_str().unwrap(),
            "--stats",
            st.to_str().unwrap(),
            "--input-script",
            sc.to_str().unwrap(),
        ],
    ));
    assert!(out.contains("pinned the host's key"), "{out}");
    assert_eq!(
        x.pointer(),
        (640, 360),
        "the input script should have moved the pointer"
    );
    let psnr = psnr_png(&snap, &x.grab());
    assert!(
        psnr >= 45.0,
        "still-screen picture PSNR {psnr:.1} dB < 45 dB"
    );
    let s = stats(&st);
    assert_eq!(s.str_field("path"), "direct");
    assert!(s.num_field("frames") >= 1.0);
    assert!(
        s.num_field("tile_updates") >= 1.0,
        "lossless tiles expected once the screen is still"
    );
    // A second connection uses the pinned key silently.
    let out = ok(&connect(&viewer, &addr, &["--frames", "1"]));
    assert!(!out.contains("pinned"), "{out}");
}

#[test]
fn view_only_entry_drops_input_and_unknown_keys_are_refused() {
    let x = Xvfb::start();
    x.draw(&x11::desktop(1));
    x.warp(5, 5);
    let dir = tempfile::tempdir().unwrap();
    let viewer = dir.path().join("viewer");
    let vpeer = peer_of(&viewer);
    let mut host = Host::start(&x, &dir.path().join("host"), &acl(&vpeer, "view"), &[]);
    let addr = host.tcp_addr();
    let sc = script(
        dir.path(),
        &[
            r#"{"delay_ms":200,"event":{"pointer_move":{"x":640,"y":360}}}"#,
            r#"{"delay_ms":50,"event":{"button":{"button":"left","down":true}}}"#,
        ],
    );
    let st = dir.path().join("stats.json");
    let out = ok(&connect(
        &viewer,
        &addr,
        &[
            "--duration",
            "1.5",
            "--force-input",
            "--input-script",
            sc.to_str().unwrap(),
            "--stats",
            st.to_str().unwrap(),
        ],
    ));
    assert!(out.contains("view-only"), "{out}");
    assert_eq!(stats(&st).str_field("permissions"), "view");
    assert_eq!(x.pointer(), (5, 5), "a view-only session moved the pointer");

    // A viewer whose key is not in the ACL is refused with the reason.
    let stranger = dir.path().join("stranger");
    let out = connect(&stranger, &addr, &["--frames", "1"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no access entry"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
