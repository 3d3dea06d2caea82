//! `portico requests|accept|refuse|sessions|kick`: the owner console's actions from the
//! command line, against the running host (its URL and token are in `DATA/console.json`).

use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context};
use portico_actors::access::ConsoleState;
use portico_actors::console::{AnswerBody, ConsoleFile};
use portico_core::policy::OwnerAnswer;

fn console(data: &Path) -> anyhow::Result<ConsoleFile> {
    let path = data.join(portico_core::data_dir::CONSOLE);
    let text = std::fs::read_to_string(&path).with_context(|| format!("no running host with a console here ({} is missing): start `portico host` with this --data", path.display()))?;
    serde_json::from_str(&text).context("console.json is invalid; restart the host")
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into()
}

fn post(data: &Path, path: &str, body: serde_json::Value) -> anyhow::Result<()> {
    let c = console(data)?;
    let mut r = agent()
        .post(&format!("{}{path}", c.url))
        .header("Authorization", &format!("Bearer {}", c.token))
        .send_json(body)
        .with_context(|| {
            format!(
                "cannot reach the host's console at {}: is `portico host` running?",
                c.url
            )
        })?;
    if r.status().is_success() {
        Ok(())
    } else {
        bail!("{}", r.body_mut().read_to_string().unwrap_or_default())
    }
}

fn state(data: &Path) -> anyhow::Result<ConsoleState> {
    let c = console(data)?;
    let mut r = agent()
        .get(&format!("{}/api/state", c.url))
        .header("Authorization", &format!("Bearer {}", c.token))
        .call()
        .with_context(|| {
            format!(
                "cannot reach the host's console at {}: is `portico host` running?",
                c.url
            )
        })?;
    if !r.status().is_success() {
        bail!("the console answered {}", r.status());
    }
    Ok(r.body_mut().read_json()?)
}

/// `portico requests`.
pub(crate) fn requests(data: &Path) -> anyhow::Result<()> {
    let s = state(data)?;
    if s.pending.is_empty() && s.services.is_empty() {
        println!("no requests waiting");
    }
    for x in &s.services {
        println!(
            "{}\t{} asks to send a {}: {}\t{} s left\t(`portico allow {}` / `portico deny {}`)",
            x.id, x.who, x.service, x.detail, x.seconds_left, x.id, x.id
        );
    }
    for p in s.pending {
        let who = match (&p.account, &p.server_name) {
            (Some(a), Some(srv)) => format!("{} {a} (signed in at {srv})", p.kind),
            _ => format!("{} {}", p.kind, p.name),
        };
        println!(
            "{}\t{who}\tfrom {}{}\tkey {}\t{}\t{} s left\tmessage: {}",
            p.id,
            p.ip,
            if p.relayed { " via relay" } else { "" },
            p.fingerprint,
            if p.view_only_asked {
                "view-only"
            } else {
                "interactive"
            },
            p.seconds_left,
            p.message
        );
    }
    Ok(())
}

/// `portico sessions`.
pub(crate) fn sessions(data: &Path) -> anyhow::Result<()> {
    let s = state(data)?;
    if s.sessions.is_empty() {
        println!("nobody is connected");
    }
    for x in s.sessions {
        println!(
            "{}\t{} {}\tfrom {}\t{}\t{}\t{}\t{} s{}",
            x.id,
            x.kind,
            x.name,
            x.ip,
            x.path,
            x.mode,
            if x.watching.is_empty() {
                "starting"
            } else {
                &x.watching
            },
            x.seconds,
            x.seconds_left
                .map(|l| format!(" ({l} s left)"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// Parses `30m`, `1h`, `90s`, `45` (seconds).
pub(crate) fn parse_duration(s: &str) -> anyhow::Result<u64> {
    let (num, mult) = match s.chars().last() {
        Some('s') => (&s[..s.len() - 1], 1),
        Some('m') => (&s[..s.len() - 1], 60),
        Some('h') => (&s[..s.len() - 1], 3600),
        _ => (s, 1),
    };
    let n: u64 = num
        .parse()
        .with_context(|| format!("bad duration {s:?}: use e.g. 90s, 30m, 1h"))?;
    Ok(n * mult)
}

/// `portico accept ID [--view-only] [--for 30m]`.
pub(crate) fn accept(
    data: &Path,
    id: u64,
    view_only: bool,
    limit: Option<&str>,
) -> anyhow::Result<()> {
    let time_limit_secs = limit.map(parse_duration).transpose()?;
    let answer = if view_only {
        OwnerAnswer::AcceptViewOnly
    } else {
        OwnerAnswer::Accept
    };
    post(
        data,
        &format!("/api/requests/{id}"),
        serde_json::to_value(AnswerBody {
            answer,
            time_limit_secs,
        })?,
    )?;
    println!(
        "accepted request {id}{}",
        if view_only { " (view-only)" } else { "" }
    );
    Ok(())
}

/// `portico refuse ID`.
pub(crate) fn refuse(data: &Path, id: u64) -> anyhow::Result<()> {
    post(
        data,
        &format!("/api/requests/{id}"),
        serde_json::to_value(AnswerBody {
            answer: OwnerAnswer::Refuse,
            time_limit_secs: None,
        })?,
    )?;
    println!("refused request {id}");
    Ok(())
}

/// `portico allow ID` / `portico deny ID` (file transfers, clipboard).
pub(crate) fn service(data: &Path, id: u64, allow: bool) -> anyhow::Result<()> {
    post(
        data,
        &format!("/api/services/{id}"),
        serde_json::json!({ "allow": allow }),
    )?;
    println!("{} request {id}", if allow { "allowed" } else { "denied" });
    Ok(())
}

/// `portico kick ID`.
pub(crate) fn kick(data: &Path, id: u64) -> anyhow::Result<()> {
    post(
        data,
        &format!("/api/sessions/{id}/kick"),
        serde_json::json!({}),
    )?;
    println!("kicked session {id}");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations() {
        assert_eq!(super::parse_duration("30m").unwrap(), 1800);
        assert_eq!(super::parse_duration("1h").unwrap(), 3600);
        assert_eq!(super::parse_duration("45").unwrap(), 45);
        assert!(super::parse_duration("soon").is_err());
    }
}
