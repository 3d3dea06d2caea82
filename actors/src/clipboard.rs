//! The `Clipboard` actor: the host's X11 clipboard (arboard) on a dedicated thread. Sessions
//! allowed to (`clipboard`, and the owner's approval for guests and visitors) set its text;
//! changes made on the host are published to sessions holding `clipboard`.

use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::time::Duration;

use actix::prelude::*;
use tokio::sync::broadcast;

pub use portico_core::session::MAX_TEXT;
/// How often the host clipboard is checked for changes.
const POLL: Duration = Duration::from_millis(300);

/// The clipboard actor.
pub struct Clipboard {
    /// Texts to set.
    set: Option<Sender<String>>,
    /// Changes made on the host.
    changes: broadcast::Sender<String>,
}

impl Clipboard {
    /// Opens the clipboard of `$DISPLAY`; without one, clipboard sync is off (logged).
    pub fn new() -> Self {
        let (changes, _) = broadcast::channel(8);
        let (tx, rx) = channel::<String>();
        let out = changes.clone();
        let started = std::thread::Builder::new().name("portico-clipboard".into()).spawn(move || {
            let mut cb = match arboard::Clipboard::new() {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "no clipboard on this display; clipboard sync is off");
                    return;
                }
            };
            let mut last = cb.get_text().unwrap_or_default();
            loop {
                match rx.recv_timeout(POLL) {
                    Ok(text) => match cb.set_text(text.clone()) {
                        Ok(()) => last = text,
                        Err(e) => tracing::warn!(error = %e, "cannot set the clipboard"),
                    },
                    Err(RecvTimeoutError::Timeout) => {
                        if let Ok(now) = cb.get_text() {
                            if now != last && now.len() <= MAX_TEXT {
                                last = now.clone();
                                // No session listening is fine.
                                drop(out.send(now));
                            }
                        }
                    }
                    Err(RecvTimeoutError::Disconnected) => return,
                }
            }
        });
        if let Err(e) = started {
            tracing::error!(error = %e, "cannot start the clipboard thread");
        }
        Self {
            set: Some(tx),
            changes,
        }
    }
}

impl Default for Clipboard {
    fn default() -> Self {
        Self::new()
    }
}

impl Actor for Clipboard {
    type Context = Context<Self>;
}

/// Put text on the host's clipboard.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetText(pub String);

impl Handler<SetText> for Clipboard {
    type Result = ();
    fn handle(&mut self, m: SetText, _: &mut Context<Self>) {
        if let Some(tx) = &self.set {
            if tx.send(m.0).is_err() {
                self.set = None;
            }
        }
    }
}

/// Follow the host's clipboard changes.
#[derive(Message)]
#[rtype(result = "broadcast::Receiver<String>")]
pub struct WatchText;

impl Handler<WatchText> for Clipboard {
    type Result = MessageResult<WatchText>;
    fn handle(&mut self, _: WatchText, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.changes.subscribe())
    }
}
