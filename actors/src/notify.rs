//! Desktop notifications for the owner (freedesktop Notifications over D-Bus).
//!
//! Every request that waits for the owner — a guest or visitor asking to connect, a file or
//! clipboard request from a session — raises a notification naming who asks (name or
//! account, address, message) with buttons that answer it exactly like the console's:
//! Accept / View only / Refuse, or Allow / Deny. Clicking the notification itself opens the
//! console. The notification expires with the request.
//!
//! Without a session bus or a notification daemon nothing is shown: the first failure is
//! logged once and requests still reach the console and `portico requests`. Each
//! notification lives on its own thread (D-Bus calls block), so the host never waits for
//! the desktop.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use actix::Addr;
use notify_rust::{Notification, Timeout};
use portico_core::policy::OwnerAnswer;

use crate::access::{
    AccessControl, Answer, AnswerService, GetState, PendingView, ServiceView, WatchChanges,
};

/// Watches the owner's requests and raises a notification for each new one; `console` is
/// the console's URL (opened when the notification is clicked).
pub fn spawn(access: Addr<AccessControl>, console: Option<crate::console::ConsoleLink>) {
    actix::spawn(async move {
        let Ok(mut changes) = access.send(WatchChanges).await else {
            return;
        };
        let mut seen = HashSet::new();
        let failed_once = Arc::new(AtomicBool::new(false));
        loop {
            let Ok(state) = access.send(GetState).await else {
                return;
            };
            for p in state.pending {
                if seen.insert(("session", p.id)) {
                    let ctx = (access.clone(), console.clone(), failed_once.clone());
                    std::thread::spawn(move || request(p, ctx));
                }
            }
            for s in state.services {
                if seen.insert(("service", s.id)) {
                    let ctx = (access.clone(), console.clone(), failed_once.clone());
                    std::thread::spawn(move || service(s, ctx));
                }
            }
            match changes.recv().await {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
}

/// What a notification thread needs: the access actor, the console URL, and whether a
/// failure was already logged.
type Ctx = (
    Addr<AccessControl>,
    Option<crate::console::ConsoleLink>,
    Arc<AtomicBool>,
);

/// Freedesktop bodies may carry markup: a stranger's text must not.
fn plain(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn request(p: PendingView, (access, console, failed): Ctx) {
    let who = match (&p.account, &p.server_name) {
        (Some(a), Some(srv)) => format!("{} {a} (signed in at {srv})", p.kind),
        _ => format!("{} {}", p.kind, p.name),
    };
    let via = if p.relayed { " via the relay" } else { "" };
    let mode = if p.view_only_asked {
        "view-only"
    } else {
        "interactive"
    };
    let mut body = format!(
        "from {}{via}, key {}, asks for an {mode} session",
        p.ip, p.fingerprint
    );
    if !p.message.is_empty() {
        body.push_str(&format!("\n“{}”", p.message));
    }
    let mut n = Notification::new();
    n.appname("Portico")
        .summary(&format!("{who} wants to connect"))
        .body(&plain(&body))
        .action("default", "Open the console")
        .action("accept", "Accept")
        .action("view-only", "View only")
        .action("refuse", "Refuse")
        .timeout(expiry(p.seconds_left));
    show(n, failed, move |action| {
        let answer = match action {
            "accept" => OwnerAnswer::Accept,
            "view-only" => OwnerAnswer::AcceptViewOnly,
            "refuse" => OwnerAnswer::Refuse,
            "default" => return open_console(console.as_ref()),
            _ => return,
        };
        tracing::info!(
            request = p.id,
            ?answer,
            "answered from the desktop notification"
        );
        access.do_send(Answer {
            request_id: p.id,
            answer,
            time_limit_secs: None,
        });
    });
}

fn service(s: ServiceView, (access, console, failed): Ctx) {
    let mut n = Notification::new();
    n.appname("Portico")
        .summary(&format!("{} asks to send a {}", s.who, s.service))
        .body(&plain(&s.detail))
        .action("default", "Open the console")
        .action("allow", "Allow")
        .action("deny", "Deny")
        .timeout(expiry(s.seconds_left));
    show(n, failed, move |action| {
        let allow = match action {
            "allow" => true,
            "deny" => false,
            "default" => return open_console(console.as_ref()),
            _ => return,
        };
        tracing::info!(
            request = s.id,
            allow,
            "answered from the desktop notification"
        );
        access.do_send(AnswerService { id: s.id, allow });
    });
}

/// The notification goes when the request does.
fn expiry(seconds_left: u64) -> Timeout {
    Timeout::Milliseconds(u32::try_from(seconds_left.max(1) * 1000).unwrap_or(u32::MAX))
}

/// Shows `n` and hands the action the owner picks to `act` (this thread waits for it).
fn show(n: Notification, failed: Arc<AtomicBool>, act: impl FnOnce(&str)) {
    match n.show() {
        Ok(handle) => handle.wait_for_action(act),
        Err(e) => {
            if !failed.swap(true, Ordering::Relaxed) {
                tracing::info!(error = %e, "no desktop notifications (no session bus or notification daemon); requests show in the console and `portico requests`");
            }
        }
    }
}

/// Opens the console with a one-time code (never the token: the browser's command line is
/// readable by every local user).
fn open_console(link: Option<&crate::console::ConsoleLink>) {
    let Some(url) = link.and_then(crate::console::ConsoleLink::one_time_url) else {
        return;
    };
    if let Err(e) = std::process::Command::new("xdg-open").arg(url).spawn() {
        tracing::info!(error = %e, "cannot open the console in a browser");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strangers_text_carries_no_markup() {
        assert_eq!(
            plain("<b>boss</b> & <a href=x>"),
            "&lt;b&gt;boss&lt;/b&gt; &amp; &lt;a href=x&gt;"
        );
    }
}
