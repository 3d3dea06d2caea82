//! Moving the session off the relay, on the driver's side (see `crate::migrate`).

use futures::AsyncWriteExt;

use super::{notify, Driver, Notice};
use crate::ViewerError;

impl Driver<'_> {
    /// The host moved the session to our resuming stream: our last message on the old
    /// stream says so, then we write to the new one (and read it after this turn).
    pub(super) async fn switch(&mut self) -> Result<(), ViewerError> {
        let (r, w) = self
            .mig
            .take_new(self.started)
            .await
            .map_err(ViewerError::Connect)?;
        self.m.moved()?;
        self.write().await?;
        let mut old = std::mem::replace(&mut self.w, w);
        if let Err(e) = old.close().await {
            tracing::debug!(error = %e, "closing the relayed stream");
        }
        self.mig.next_reader = Some(r);
        self.path = "direct";
        self.report.switched_at_ms = Some(self.t0.elapsed().as_secs_f64() * 1e3);
        notify(
            &self.opts.notify,
            Notice::MovedToDirect {
                after_ms: self.mig.switched_ms.unwrap_or_default(),
            },
        );
        Ok(())
    }
}
