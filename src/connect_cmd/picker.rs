//! What the window's host list shows: the address book at once, then the hosts that answer
//! on the LAN and the node tree of every server signed in at, as they come.

use std::path::Path;
use std::time::Duration;

use portico_core::identity::Identity;
use portico_viewer::window::{PickEntry, Source, UiEvent, UiProxy};

use crate::signin::Session;

/// How long the list listens on the LAN.
const LAN_WAIT: Duration = Duration::from_secs(3);

/// Sends the book's rows now and starts looking on the LAN and at the server (each sends
/// its rows when it has them; one failing does not stop the others).
pub(crate) fn offer(data: &Path, identity: &Identity, ui: &UiProxy) {
    let send = |ui: &UiProxy, rows: Vec<PickEntry>| {
        if !rows.is_empty() && ui.send_event(UiEvent::Hosts(rows)).is_err() {
            tracing::debug!("the window is closed");
        }
    };
    match crate::book_cmd::load(data) {
        Ok(book) => send(
            ui,
            book.entries
                .into_iter()
                .map(|e| PickEntry {
                    source: Source::Book,
                    detail: e.target,
                    target: e.name.clone(),
                    label: e.name,
                })
                .collect(),
        ),
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "the address book cannot be read"),
    }
    let (id, lan_ui) = (identity.clone(), ui.clone());
    tokio::spawn(async move {
        match portico_viewer::discover::discover(&id, LAN_WAIT).await {
            Ok(found) => send(
                &lan_ui,
                found
                    .into_iter()
                    .filter_map(|d| {
                        // Dialled by address and key: no second discovery after the click.
                        let addr = d.addrs.first()?.clone();
                        Some(PickEntry {
                            source: Source::Lan,
                            target: addr.with_p2p(d.peer).ok()?.to_string(),
                            detail: format!("key {}", d.fingerprint),
                            label: d.name,
                        })
                    })
                    .collect(),
            ),
            Err(e) => tracing::info!(error = %e, "no LAN discovery"),
        }
    });
    let sessions: Vec<Session> = crate::signin::load_sessions(data).unwrap_or_else(|e| {
        tracing::warn!(error = %format!("{e:#}"), "the sign-ins cannot be read");
        Vec::new()
    });
    for s in sessions {
        let (id, server_ui) = (identity.clone(), ui.clone());
        tokio::spawn(async move {
            match crate::signin::list_nodes(&id, &s, "/").await {
                Ok(nodes) => send(
                    &server_ui,
                    nodes
                        .into_iter()
                        .map(|n| {
                            let detail = if n.is_host {
                                format!(
                                    "{}{}",
                                    if n.online { "online" } else { "offline" },
                                    n.internet_id.map(|i| format!("  {i}")).unwrap_or_default()
                                )
                            } else {
                                "folder".into()
                            };
                            // A folder is a heading: nothing to connect to.
                            let (label, target) = if n.is_host {
                                (n.path.clone(), n.path)
                            } else {
                                (format!("{}/", n.path), String::new())
                            };
                            PickEntry {
                                source: Source::Server,
                                label,
                                detail,
                                target,
                            }
                        })
                        .collect(),
                ),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "the server's node tree is not available")
                }
            }
        });
    }
}
