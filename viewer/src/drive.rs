//! The viewer's session loop: one task owns the [`ViewerSession`] machine and the stream;
//! everything else (input script, window, file senders) sends it [`Command`]s. Each turn
//! moves bytes in, commands in, events out (decode, show, report, notices) and bytes out.

use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt};
use libp2p::{PeerId, Stream};
use portico_core::policy::Permissions;
use portico_core::session::{ViewerEvent, ViewerSession};
use portico_core::wire::session::{
    ByeReason, FileChunk, FileOffer, InputEvent, Service, ServiceDecision,
};
use portico_signal_client::session_io::StreamError;
use tokio::sync::mpsc;

use crate::notice::notify;
use crate::notice::Notice;
use crate::picture::{Cursor, Picture};
use crate::{files, script, window, FrameStat, Headless, Report, ViewerError};

mod browsing;
mod moving;

/// What the other tasks ask the session loop to send.
#[derive(Debug)]
pub(crate) enum Command {
    /// Input (`true`: even when view-only, to test the host's enforcement).
    Input(InputEvent, bool),
    /// Offer a file.
    Offer(FileOffer),
    /// A chunk of an allowed file.
    Chunk(FileChunk),
    /// The file is complete.
    FileEnd(u64),
    /// Switch the shared monitor (`None`: the whole desktop).
    Monitor(Option<u8>),
    /// The next monitor (after the last: the whole desktop, then the first again).
    NextMonitor,
    /// The window's files panel lists or downloads.
    Browse(window::files_panel::BrowseAsk),
}

type ReadHalf = futures::io::ReadHalf<Stream>;
type WriteHalf = futures::io::WriteHalf<Stream>;

/// The session loop's state.
pub(crate) struct Driver<'o> {
    m: ViewerSession,
    r: ReadHalf,
    w: WriteHalf,
    opts: &'o Headless,
    started: Instant,
    path: &'static str,
    peer: PeerId,
    ui: Option<window::UiLink>,
    cmd_tx: mpsc::Sender<Command>,
    cmd_rx: mpsc::Receiver<Command>,
    picture: Picture,
    /// The remote pointer.
    cursor: Cursor,
    report: Report,
    /// Received video and lossless bytes.
    bytes: usize,
    /// The capture time of the last update applied (one captured frame may come as several
    /// messages).
    last_capture: Option<u64>,
    /// When the session went live.
    t0: Instant,
    /// Offered files waiting for the host's answer: the signal that starts their sender.
    offers: files::Pending,
    /// The monitor shown (`None`: the whole desktop).
    monitor: Option<u8>,
    /// Set when the session should stop (with the reason when it failed).
    ended: Option<Option<ViewerError>>,
    /// Moving the session off the relay.
    mig: crate::migrate::Migration,
    /// The download `portico files get` asked for.
    fetch: Option<crate::fetch::Fetch>,
    /// The window's files panel.
    window_files: crate::fetch::WindowFiles,
}

impl<'o> Driver<'o> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        m: ViewerSession,
        r: ReadHalf,
        w: WriteHalf,
        opts: &'o Headless,
        started: Instant,
        path: &'static str,
        peer: PeerId,
        ui: Option<window::UiLink>,
        mig: crate::migrate::Migration,
    ) -> Result<Self, ViewerError> {
        let (cmd_tx, cmd_rx) = mpsc::channel(64);
        Ok(Self {
            m,
            r,
            w,
            opts,
            started,
            path,
            peer,
            ui,
            cmd_tx,
            cmd_rx,
            picture: Picture::new()?,
            cursor: Cursor::default(),
            report: Report::empty(),
            bytes: 0,
            last_capture: None,
            t0: Instant::now(),
            offers: files::Pending::default(),
            monitor: opts.monitor.or(Some(0)),
            ended: None,
            mig,
            fetch: None,
            window_files: Default::default(),
        })
    }

    async fn write(&mut self) -> Result<(), StreamError> {
        let mut wrote = false;
        while let Some(b) = self.m.poll_transmit() {
            self.w.write_all(&b).await?;
            self.mig.carried(b.len());
            wrote = true;
        }
        if wrote {
            self.w.flush().await?;
        }
        Ok(())
    }

    async fn read(&mut self, buf: &mut [u8]) -> Result<(), ViewerError> {
        let n = self.r.read(buf).await.map_err(StreamError::from)?;
        Ok(self.m.handle_bytes(&buf[..n])?)
    }

    /// Runs the session: setup, live, goodbye. The picture and figures so far come back even
    /// when the host ends the session, with the reason.
    #[allow(clippy::type_complexity)]
    pub(crate) async fn run(
        mut self,
    ) -> Result<(Picture, Cursor, Report, Option<ViewerError>), ViewerError> {
        let mut buf = vec![0u8; 64 * 1024];
        let permissions = self.setup(&mut buf).await?;
        self.report.permissions = permissions.to_string();
        notify(
            &self.opts.notify,
            Notice::Connected {
                path: self.path,
                permissions,
            },
        );
        self.start_live(permissions).await?;
        self.t0 = Instant::now();
        let received = self.receive(&mut buf).await;
        // Say goodbye whatever happened; the host may already be gone.
        if let Err(e) = self.close().await {
            tracing::debug!(error = %e, "closing the session stream");
        }
        received?;
        let secs = self.t0.elapsed().as_secs_f64().max(1e-3);
        self.report.path = self.path.into();
        self.report.switched_to_direct_ms = self.mig.switched_ms;
        self.report.relay_bytes = self.mig.relay_bytes;
        self.report.seconds = secs;
        self.report.fps = self.report.frames as f64 / secs;
        self.report.kbps = self.bytes as f64 * 8.0 / 1000.0 / secs;
        Ok((self.picture, self.cursor, self.report, self.ended.flatten()))
    }

    async fn close(&mut self) -> Result<(), ViewerError> {
        self.m.bye("viewer closed")?;
        let bye = async {
            self.write().await?;
            self.w.close().await.map_err(StreamError::from)
        };
        match tokio::time::timeout(Duration::from_secs(2), bye).await {
            Ok(r) => Ok(r?),
            Err(_) => Ok(()),
        }
    }

    /// Waits for the host's answer (the owner may take a while).
    async fn setup(&mut self, buf: &mut [u8]) -> Result<Permissions, ViewerError> {
        loop {
            self.read(buf).await?;
            while let Some(ev) = self.m.poll_event() {
                match ev {
                    ViewerEvent::Waiting {
                        request_id,
                        timeout_ms,
                    } => notify(
                        &self.opts.notify,
                        Notice::Waiting {
                            request_id,
                            timeout_secs: timeout_ms / 1000,
                        },
                    ),
                    ViewerEvent::Accepted(a) => {
                        self.report.monitors = a.monitors.clone();
                        return Ok(a.permissions);
                    }
                    ViewerEvent::Refused { code, message } => {
                        return Err(ViewerError::Refused { code, message })
                    }
                    ViewerEvent::Ended { reason, message } => {
                        return Err(match reason {
                            ByeReason::Closed => ViewerError::Connect(message),
                            _ => ViewerError::Ended { reason, message },
                        })
                    }
                    _ => {}
                }
            }
        }
    }

    /// Bitrate, clipboard, input script, the window's input and the files to send.
    async fn start_live(&mut self, permissions: Permissions) -> Result<(), ViewerError> {
        if let Some(bps) = self.opts.bitrate {
            self.m.set_bitrate(bps)?;
        }
        if let Some(index) = self.opts.monitor {
            let count = self.report.monitors.len();
            // A host that lists no monitors shows one fixed picture: nothing to pick.
            if count > 0 && usize::from(index) >= count {
                return Err(ViewerError::NoMonitor { index, count });
            }
            self.m.select_monitor(Some(index))?;
        }
        if let Some(text) = &self.opts.clipboard {
            self.m.clipboard(text.clone())?;
        }
        if let Some(job) = &self.opts.browse {
            let get = match job {
                crate::fetch::BrowseJob::List(_) => false,
                crate::fetch::BrowseJob::Get { path, out } => {
                    self.fetch = Some(crate::fetch::Fetch::new(path, out));
                    true
                }
            };
            self.m.browse(1, job.path(), get)?;
        }
        self.write().await?;
        if let Some(p) = &self.opts.input_script {
            let events = script::load(p).map_err(ViewerError::Script)?;
            if permissions.is_view_only() && !self.opts.force_input {
                notify(&self.opts.notify, Notice::ScriptSkipped);
            } else {
                let (tx, force) = (self.cmd_tx.clone(), self.opts.force_input);
                tokio::spawn(async move {
                    for (delay, step) in events {
                        tokio::time::sleep(delay).await;
                        let cmd = match step {
                            script::Step::Input(ev) => Command::Input(ev, force),
                            script::Step::Monitor(m) => Command::Monitor(m),
                        };
                        if tx.send(cmd).await.is_err() {
                            return;
                        }
                    }
                });
            }
        }
        if let Some(path) = &self.opts.send_file {
            files::offer(
                path,
                1,
                &self.cmd_tx,
                &self.offers,
                self.opts.notify.clone(),
            )
            .await?;
        }
        self.link_window(permissions);
        Ok(())
    }

    /// The window's title, input and dropped files.
    fn link_window(&mut self, permissions: Permissions) {
        let Some(link) = self.ui.as_mut() else { return };
        let mode = if permissions.is_view_only() {
            "view-only"
        } else {
            "interactive"
        };
        let title = format!("{} ({mode}, {})", crate::short(&self.peer), self.path);
        if link
            .notify
            .send_event(window::UiEvent::Status(title))
            .is_err()
        {
            tracing::debug!("the window is gone");
        }
        let mut input = std::mem::replace(&mut link.input, mpsc::channel(1).1);
        let tx = self.cmd_tx.clone();
        tokio::spawn(async move {
            while let Some(m) = input.recv().await {
                // The machine keeps a view-only session's input local.
                let cmd = match m {
                    window::FromWindow::Input(ev) => Command::Input(ev, false),
                    window::FromWindow::NextMonitor => Command::NextMonitor,
                    window::FromWindow::Browse(ask) => Command::Browse(ask),
                };
                if tx.send(cmd).await.is_err() {
                    return;
                }
            }
        });
        let dropped = link.files.lock().ok().and_then(|mut f| f.take());
        if let Some(mut dropped) = dropped {
            let (tx, sink) = (self.cmd_tx.clone(), self.opts.notify.clone());
            let offers = self.offers.clone();
            tokio::spawn(async move {
                // Dropped files are numbered from 2 (1 is `--send`).
                let mut id = 1;
                while let Some(path) = dropped.recv().await {
                    id += 1;
                    notify(&sink, Notice::Offering(path.clone()));
                    if let Err(e) = files::offer(&path, id, &tx, &offers, sink.clone()).await {
                        notify(&sink, Notice::FileNotSent(e.to_string()));
                    }
                }
            });
        }
    }

    fn done(&self) -> bool {
        if self.opts.frames.is_some_and(|n| self.report.frames >= n) {
            return true;
        }
        // A headless file-only run ends once the file landed (a window stays open).
        self.ui.is_none()
            && self.opts.send_file.is_some()
            && self.report.file_result.is_some()
            && self.opts.frames.is_none()
            && self.opts.duration.is_none()
    }

    async fn receive(&mut self, buf: &mut [u8]) -> Result<(), ViewerError> {
        let deadline = self.opts.duration.map(|d| tokio::time::Instant::now() + d);
        let until = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(until);
        while self.ended.is_none() && !self.done() {
            tokio::select! {
                () = &mut until => break,
                n = self.r.read(buf) => {
                    let n = n.map_err(StreamError::from)?;
                    self.mig.carried(n);
                    if n > 0 {
                        self.mig.data_arrived();
                    }
                    self.m.handle_bytes(&buf[..n])?;
                }
                Some(cmd) = self.cmd_rx.recv() => self.command(cmd)?,
                () = self.mig.wait_direct() => self.mig.start(self.m.take_resume()),
            }
            while let Some(ev) = self.m.poll_event() {
                match ev {
                    ViewerEvent::Moved => self.switch().await?,
                    ev => self.event(ev)?,
                }
            }
            // The host's last message on the old stream has been read: read the new one.
            if let Some(r) = self.mig.next_reader.take() {
                self.r = r;
            }
            self.write().await?;
        }
        Ok(())
    }

    fn command(&mut self, cmd: Command) -> Result<(), ViewerError> {
        match cmd {
            Command::Input(ev, force) => self.m.input(ev, force)?,
            Command::Offer(o) => self.m.offer_file(o)?,
            Command::Chunk(c) => self.m.file_chunk(c)?,
            Command::FileEnd(id) => self.m.file_end(id)?,
            Command::Monitor(m) => {
                self.monitor = m;
                self.m.select_monitor(m)?
            }
            Command::Browse(ask) => {
                if let Some(line) = self.window_files.ask(&mut self.m, ask)? {
                    self.to_window(window::UiEvent::FilesStatus(line));
                }
                true
            }
            Command::NextMonitor => {
                let n = self.report.monitors.len();
                self.monitor = match self.monitor {
                    Some(i) if usize::from(i) + 1 < n => Some(i + 1),
                    Some(_) => None,
                    None => Some(0),
                };
                self.m.select_monitor(self.monitor)?
            }
        };
        Ok(())
    }

    /// Hands the window an event (nothing without a window).
    fn to_window(&self, ev: window::UiEvent) {
        if let Some(link) = &self.ui {
            if link.notify.send_event(ev).is_err() {
                tracing::debug!("the window is gone");
            }
        }
    }

    fn show(&self) {
        let Some(link) = &self.ui else { return };
        if let (Some((w, h)), Ok(mut shared)) = (self.picture.size(), link.shared.lock()) {
            shared.width = w;
            shared.height = h;
            shared.rgba.clear();
            shared.rgba.extend_from_slice(self.picture.rgba());
            // The remote pointer over the picture — unless this viewer drives the pointer:
            // then the local cursor is the feedback, with no round trip to wait for.
            if !self.opts.no_cursor
                && !self
                    .m
                    .permissions()
                    .has(portico_core::policy::Permission::Control)
            {
                self.cursor.draw(&mut shared.rgba, w, h);
            }
        }
        if link.notify.send_event(window::UiEvent::Frame).is_err() {
            tracing::debug!("the window is gone");
        }
    }

    fn event(&mut self, ev: ViewerEvent) -> Result<(), ViewerError> {
        match ev {
            ViewerEvent::Video(v) => {
                self.bytes += v.data.len();
                let t = Instant::now();
                match self.picture.video(&v) {
                    Ok(true) => {
                        self.report.video_frames += 1;
                        let decode_ms = t.elapsed().as_secs_f64() * 1e3;
                        let (seq, n) = (v.seq, v.data.len());
                        self.updated("video", v.capture_us, seq, n, v.keyframe, decode_ms);
                    }
                    Ok(false) => {}
                    Err(e) => self.refused(e)?,
                }
            }
            ViewerEvent::Copy(c) => match self.picture.copy(&c) {
                Ok(()) => {
                    self.report.copy_updates += 1;
                    self.updated("copy", c.capture_us, c.frame, 0, false, 0.0);
                }
                Err(e) => self.refused(e)?,
            },
            ViewerEvent::Lossless(l) => {
                self.bytes += l.data.len();
                let t = Instant::now();
                match self.picture.lossless(&l) {
                    Ok(_) => {
                        self.report.lossless_updates += 1;
                        let ms = t.elapsed().as_secs_f64() * 1e3;
                        let n = l.data.len();
                        self.updated("lossless", l.capture_us, l.frame, n, l.reset, ms);
                    }
                    Err(e) => self.refused(e)?,
                }
            }
            ViewerEvent::CursorShape(c) => {
                self.report.cursor_shapes += 1;
                self.cursor.shape = Some(c);
                self.cursor_stat(false);
                self.show();
            }
            ViewerEvent::BadCursor(why) => {
                tracing::warn!(%why, "the host sent a cursor shape that cannot be drawn");
                self.report.bad_updates += 1;
            }
            ViewerEvent::CursorPosition(p) => {
                self.cursor.position = Some(p);
                self.cursor_stat(true);
                self.show();
            }
            ViewerEvent::Ended { reason, message } => {
                self.ended = Some(Some(ViewerError::Ended { reason, message }));
            }
            ViewerEvent::Clipboard(text) => {
                notify(&self.opts.notify, Notice::Clipboard(text.clone()));
                self.report.clipboard_received = Some(text);
            }
            ViewerEvent::Decision(d) => self.decision(d),
            ViewerEvent::FileResult(r) => {
                if r.ok {
                    notify(&self.opts.notify, Notice::FileSent(r.message.clone()));
                    self.report.file_result = Some(r.message);
                } else if r.transfer_id == 1 && self.opts.send_file.is_some() {
                    self.ended = Some(Some(ViewerError::File(r.message)));
                } else {
                    notify(&self.opts.notify, Notice::FileNotSent(r.message));
                }
            }
            ViewerEvent::Permissions(p) => {
                notify(&self.opts.notify, Notice::PermissionsChanged(p));
                self.report.permissions = p.to_string();
            }
            ViewerEvent::Waiting { .. }
            | ViewerEvent::Accepted(_)
            | ViewerEvent::Refused { .. }
            | ViewerEvent::Moved => {}
            ev @ (ViewerEvent::Listing(_)
            | ViewerEvent::Download(_)
            | ViewerEvent::DownloadEnd(_)) => self.browse_event(ev),
        }
        Ok(())
    }

    /// Updates the stats' cursor (`moved`: a new position, timed).
    /// A picture update arrived and was applied: counted once per captured frame (its
    /// copies, video and lossless parts share the capture time), timed and shown.
    fn updated(
        &mut self,
        kind: &'static str,
        capture_us: u64,
        seq: u64,
        bytes: usize,
        start: bool,
        decode_ms: f64,
    ) {
        let new = self.last_capture != Some(capture_us);
        self.last_capture = Some(capture_us);
        if new {
            self.report.frames += 1;
            if self.report.connect_to_first_frame_ms.is_none() {
                self.report.connect_to_first_frame_ms =
                    Some(self.started.elapsed().as_secs_f64() * 1e3);
            }
        }
        self.report.frame_stats.push(FrameStat {
            kind,
            seq,
            bytes,
            keyframe: start,
            latency_ms: crate::now_us().saturating_sub(capture_us) as f64 / 1e3,
            decode_ms,
            at_ms: self.t0.elapsed().as_secs_f64() * 1e3,
        });
        self.show();
    }

    /// An update the picture refused: the session goes on from the host's next start.
    fn refused(&mut self, e: crate::picture::PictureError) -> Result<(), ViewerError> {
        tracing::warn!(error = %e, "update from the host refused; asking for a new start");
        self.report.bad_updates += 1;
        self.m.request_keyframe()?;
        Ok(())
    }

    fn cursor_stat(&mut self, moved: bool) {
        let Some(p) = self.cursor.position else {
            return;
        };
        let at_unix_ms = match (&self.report.cursor, moved) {
            (Some(c), false) => c.at_unix_ms,
            _ => crate::now_us() / 1000,
        };
        let shape = self
            .cursor
            .shape
            .as_ref()
            .filter(|s| s.serial == p.serial)
            .map(|s| [s.width, s.height, s.hot_x, s.hot_y]);
        self.report.cursor = Some(crate::CursorStat {
            x: p.x,
            y: p.y,
            visible: p.visible,
            serial: p.serial,
            shape,
            at_unix_ms,
        });
    }

    fn decision(&mut self, d: ServiceDecision) {
        if d.service == Service::Clipboard {
            let pending = if d.pending { "…" } else { "" };
            notify(
                &self.opts.notify,
                Notice::Decision(format!("{}{pending}", d.message)),
            );
            if !d.pending {
                self.report.clipboard_result = Some(d.message);
            }
            return;
        }
        // Transfer 1 is `--send`: its refusal ends the run; dropped files only report.
        let fatal = d.id == 1 && self.opts.send_file.is_some();
        if d.pending {
            notify(
                &self.opts.notify,
                Notice::Decision(format!("{}…", d.message)),
            );
        } else if d.allowed {
            let start = self.offers.lock().ok().and_then(|mut p| p.remove(&d.id));
            if start.is_some_and(|s| s.send(()).is_err()) {
                tracing::debug!("the file sender already stopped");
            }
        } else if fatal {
            self.ended = Some(Some(ViewerError::File(d.message)));
        } else {
            if let Ok(mut p) = self.offers.lock() {
                p.remove(&d.id);
            }
            notify(&self.opts.notify, Notice::FileNotSent(d.message));
        }
    }
}

impl Report {
    fn empty() -> Self {
        Self {
            host: String::new(),
            path: String::new(),
            direct_upgrade_ms: None,
            switched_to_direct_ms: None,
            switched_at_ms: None,
            relay_bytes: 0,
            permissions: String::new(),
            connect_to_first_frame_ms: None,
            frames: 0,
            video_frames: 0,
            lossless_updates: 0,
            copy_updates: 0,
            bad_updates: 0,
            fps: 0.0,
            kbps: 0.0,
            seconds: 0.0,
            file_result: None,
            clipboard_result: None,
            clipboard_received: None,
            cursor: None,
            cursor_shapes: 0,
            monitors: Vec::new(),
            frame_stats: Vec::new(),
        }
    }
}
