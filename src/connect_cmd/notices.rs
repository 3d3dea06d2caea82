//! How the viewer's notices look on a terminal: lines on stderr, and a progress bar per file.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use portico_viewer::{Notice, Notify};

/// A notice printer with its progress bars.
pub(crate) fn printer() -> Notify {
    let bars: Arc<Mutex<HashMap<u64, indicatif::ProgressBar>>> = Arc::default();
    Arc::new(move |n: Notice| {
        match n {
        Notice::Waiting {
            request_id,
            timeout_secs,
        } => eprintln!(
            "waiting for the owner to accept (request {request_id}, up to {timeout_secs} s)…"
        ),
        Notice::Connected { path, permissions } if permissions.is_view_only() => {
            eprintln!("connected {path}, view-only: the host ignores your input")
        }
        Notice::Connected { path, permissions } => {
            eprintln!("connected {path} with {permissions}")
        }
        Notice::Listing(lines) => {
            for l in lines {
                println!("{l}");
            }
        }
        Notice::MovedToDirect { after_ms } => eprintln!(
            "moved off the relay onto a direct connection ({:.0} ms after starting)",
            after_ms
        ),
        Notice::PermissionsChanged(p) => eprintln!("the host changed this session to {p}"),
        Notice::ScriptSkipped => eprintln!(
            "view-only: not sending the input script (use --force-input to test the host's enforcement)"
        ),
        Notice::Offering(path) => eprintln!("offering {}…", path.display()),
        Notice::FileStarted { id, size } => {
            let bar = indicatif::ProgressBar::new(size);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bytes}/{total_bytes} {wide_bar} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            if let Ok(mut b) = bars.lock() {
                b.insert(id, bar);
            }
        }
        Notice::FileProgress { id, sent } => {
            if let Some(bar) = bars.lock().ok().and_then(|b| b.get(&id).cloned()) {
                bar.set_position(sent);
                if bar.length().is_some_and(|l| sent >= l) {
                    bar.finish_and_clear();
                }
            }
        }
        Notice::FileSent(m) => eprintln!("file sent: {m}"),
        Notice::FileNotSent(m) => eprintln!("file not sent: {m}"),
        Notice::Decision(m) => eprintln!("{m}"),
        Notice::Clipboard(text) => eprintln!(
            "clipboard from the host: {:?}",
            text.chars().take(80).collect::<String>()
        ),
    }
    })
}
