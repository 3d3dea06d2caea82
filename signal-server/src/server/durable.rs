//! Answers that are sent only once the store is on disk.
//!
//! A new host's registration (its token use, its node, its Internet-ID) is acknowledged to
//! the host, which from then on relies on it; a `kill -9` after the answer must not lose it.
//! sled's background flusher runs every 200 ms, so those answers wait for an explicit flush.
//! Flushes run on the blocking pool, one at a time, and each covers every answer that was
//! waiting when it started (group commit): a burst of enrolments costs a few disk syncs,
//! and the event loop never waits for the disk.

use libp2p::request_response::ResponseChannel;
use portico_core::wire::signal::{ErrorCode, SignalError, SignalResponse};
use tokio::sync::mpsc;

use crate::store::Store;

/// An answer and where it goes.
pub(super) type Answer = (ResponseChannel<SignalResponse>, SignalResponse);

/// Answers waiting for a flush, and the flush in flight.
pub(super) struct Durable {
    /// Answers that arrived after the running flush started: the next flush covers them.
    waiting: Vec<Answer>,
    /// Answers the running flush covers (`None`: no flush running).
    flushing: Option<Vec<Answer>>,
    /// The running flush reports here.
    done_tx: mpsc::Sender<Result<(), String>>,
    /// See `done_tx`; the event loop polls it.
    pub(super) done_rx: mpsc::Receiver<Result<(), String>>,
}

impl Durable {
    pub(super) fn new() -> Self {
        // One flush runs at a time, so one result is ever in the channel.
        let (done_tx, done_rx) = mpsc::channel(1);
        Self {
            waiting: Vec::new(),
            flushing: None,
            done_tx,
            done_rx,
        }
    }

    /// Holds `answer` until the store has flushed.
    pub(super) fn push(&mut self, store: &Store, answer: Answer) {
        self.waiting.push(answer);
        self.start(store);
    }

    /// The running flush finished with `result`: the answers it covered, to send now
    /// (turned into errors if the flush failed: nothing is acknowledged that may be lost).
    pub(super) fn finished(&mut self, store: &Store, result: Result<(), String>) -> Vec<Answer> {
        let batch = self.flushing.take().unwrap_or_default();
        self.start(store);
        match result {
            Ok(()) => batch,
            Err(e) => {
                tracing::error!(error = %e, answers = batch.len(), "flush failed; registrations answered with an error");
                batch
                    .into_iter()
                    .map(|(channel, _)| {
                        let refusal = SignalResponse::Error(SignalError {
                            code: ErrorCode::Internal,
                            message: "the server could not save the registration; retry".into(),
                            retry_after_ms: Some(1000),
                        });
                        (channel, refusal)
                    })
                    .collect()
            }
        }
    }

    fn start(&mut self, store: &Store) {
        if self.flushing.is_some() || self.waiting.is_empty() {
            return;
        }
        self.flushing = Some(std::mem::take(&mut self.waiting));
        let (store, tx) = (store.clone(), self.done_tx.clone());
        tokio::task::spawn_blocking(move || {
            let result = store.flush().map_err(|e| e.to_string());
            if tx.blocking_send(result).is_err() {
                tracing::debug!("server stopped during a flush");
            }
        });
    }
}
