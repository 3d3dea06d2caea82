//! The screens viewers watch: one capture and one shared encode per [`Area`] (a monitor, or
//! the whole desktop) that someone watches.
//!
//! Each viewer watches one area of its own choosing. The host's configured area is opened
//! at start and kept; another opens when the first viewer picks it (its own X connection,
//! damage object and encoder) and closes when the last one watching it leaves or moves on,
//! so two viewers on one monitor share one encode, and two on two monitors cost two.
//! A closed screen costs nothing: its threads end and the X server frees what it held.

use std::collections::HashMap;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex, Weak};

use actix::prelude::*;
use portico_core::area::Area;

use crate::capture::{x11::X11Source, Capture, FrameSource, Outputs, Pacing, Source, XcapSource};
use crate::encoder::Encoder;

/// How the X display is captured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaptureMode {
    /// X11 damage when the server has DAMAGE and XFIXES, else xcap.
    #[default]
    Auto,
    /// X11 damage only (fails without the extensions).
    X11,
    /// xcap full grabs (no cursor messages).
    Xcap,
}

/// Why an area cannot be shown.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ScreenError {
    /// No such monitor.
    #[error("monitor {index} does not exist; this display has {count}")]
    NoMonitor {
        /// The monitor asked for.
        index: u8,
        /// How many there are.
        count: usize,
    },
    /// xcap grabs one monitor at a time.
    #[error("the whole desktop needs X11 damage capture; this host captures with xcap")]
    DesktopNeedsDamage,
    /// The host shows one fixed picture (a benchmark's synthetic desktop).
    #[error("this host shows one fixed picture; it has no other area to show")]
    Fixed,
    /// The X display could not be captured.
    #[error("{0}")]
    Capture(String),
    /// A capture or encoder thread did not start.
    #[error("cannot start the {what} thread: {source}")]
    Thread {
        /// Which.
        what: &'static str,
        /// Why.
        #[source]
        source: Arc<std::io::Error>,
    },
}

/// A thread that did not start, as a screen error.
fn thread(what: &'static str) -> impl FnOnce(std::io::Error) -> ScreenError {
    move |e| ScreenError::Thread {
        what,
        source: Arc::new(e),
    }
}

/// One area being captured and encoded for everyone who watches it.
pub struct Screen {
    /// What it shows.
    pub area: Area,
    /// Its shared encode: subscribe to watch.
    pub encoder: Addr<Encoder>,
    /// Where the area sits on the root window: a session adds it to its viewer's pointer
    /// positions, so a click on monitor 1's picture lands on monitor 1.
    pub origin: (i32, i32),
    /// Keeps the capture running (it stops when the last holder of this screen drops it).
    _capture: Addr<Capture>,
}

impl Screen {
    /// Starts the capture and the encoder of `area` (inside the actix system).
    fn start(
        area: Area,
        source: Source,
        origin: (i32, i32),
        pacing: Pacing,
    ) -> Result<Self, ScreenError> {
        let viewers = Arc::new(AtomicUsize::new(0));
        let (to_encoder, frames) = crossbeam_channel::bounded(1);
        let (cursor_tx, cursor) = crossbeam_channel::bounded(32);
        let encoder = Encoder::new(frames, cursor, area.index(), viewers.clone())
            .map_err(thread("encoder"))?
            .start();
        let out = Outputs {
            frames: to_encoder,
            cursor: cursor_tx,
        };
        let capture = Capture::new(source, pacing, viewers, out)
            .map_err(thread("capture"))?
            .start();
        Ok(Self {
            area,
            encoder,
            origin,
            _capture: capture,
        })
    }
}

impl Drop for Screen {
    fn drop(&mut self) {
        tracing::info!(area = %self.area, "screen closed: nobody watches it");
    }
}

/// Where new screens come from.
#[derive(Debug, Clone, Copy)]
enum Opener {
    /// The X display.
    X11(CaptureMode),
    /// A fixed source given at start: nothing else to open.
    Fixed,
}

/// Every screen someone watches, shared by the host's sessions.
#[derive(Clone)]
pub struct Screens(Arc<Inner>);

struct Inner {
    /// The host's configured area, kept open for the next viewer.
    first: Arc<Screen>,
    /// The others, while someone watches them.
    open: Mutex<HashMap<Area, Weak<Screen>>>,
    /// How to open more.
    opener: Opener,
    /// Capture pacing for each.
    pacing: Pacing,
    /// The monitors' sizes, announced to viewers (primary first).
    monitors: Vec<(u32, u32)>,
}

impl Screens {
    /// Opens the host's configured area of the X display (inside the actix system).
    pub fn open(mode: CaptureMode, area: Area, pacing: Pacing) -> Result<Self, ScreenError> {
        let (source, monitors, origin) = open_capture(mode, area)?;
        Ok(Self::with_first(
            Screen::start(area, source, origin, pacing)?,
            Opener::X11(mode),
            pacing,
            monitors,
        ))
    }

    /// Shows one fixed picture (a benchmark's synthetic desktop); no other area exists.
    pub fn fixed(source: Box<dyn FrameSource>, pacing: Pacing) -> Result<Self, ScreenError> {
        let screen = Screen::start(Area::Monitor(0), Source::Poll(source), (0, 0), pacing)?;
        Ok(Self::with_first(screen, Opener::Fixed, pacing, Vec::new()))
    }

    fn with_first(
        first: Screen,
        opener: Opener,
        pacing: Pacing,
        monitors: Vec<(u32, u32)>,
    ) -> Self {
        Self(Arc::new(Inner {
            first: Arc::new(first),
            open: Mutex::new(HashMap::new()),
            opener,
            pacing,
            monitors,
        }))
    }

    /// The monitors' sizes (primary first; empty for a fixed picture).
    pub fn monitors(&self) -> &[(u32, u32)] {
        &self.0.monitors
    }

    /// The host's configured area: what a viewer sees first.
    pub fn first(&self) -> Arc<Screen> {
        self.0.first.clone()
    }

    /// The screen of `area`, opened now if nobody watches it yet. Opening reads the X
    /// display (a few round trips and the first picture) on the blocking pool.
    pub async fn watch(&self, area: Area) -> Result<Arc<Screen>, ScreenError> {
        if let Some(s) = self.find(area) {
            return Ok(s);
        }
        let mode = match self.0.opener {
            Opener::X11(mode) => mode,
            Opener::Fixed => return Err(ScreenError::Fixed),
        };
        let (source, _, origin) = tokio::task::spawn_blocking(move || open_capture(mode, area))
            .await
            .map_err(|e| ScreenError::Capture(format!("opening the capture stopped: {e}")))??;
        let screen = Arc::new(Screen::start(area, source, origin, self.0.pacing)?);
        let mut open = self.0.open.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|_, w| w.strong_count() > 0);
        // Two viewers asked at once: the first one in is used, the other closes unused.
        if let Some(s) = open.get(&area).and_then(Weak::upgrade) {
            return Ok(s);
        }
        open.insert(area, Arc::downgrade(&screen));
        tracing::info!(%area, screens = open.len() + 1, "screen opened");
        Ok(screen)
    }

    /// The screen of `area` if it is open.
    fn find(&self, area: Area) -> Option<Arc<Screen>> {
        if self.0.first.area == area {
            return Some(self.0.first.clone());
        }
        let open = self.0.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(&area).and_then(Weak::upgrade)
    }

    /// How many screens are open (the host's first one included).
    pub fn open_count(&self) -> usize {
        let open = self.0.open.lock().unwrap_or_else(|p| p.into_inner());
        1 + open.values().filter(|w| w.strong_count() > 0).count()
    }
}

/// Opens the capture source for `area`; lists the monitors' sizes and the area's origin on
/// the root window.
#[allow(clippy::type_complexity)]
fn open_capture(
    mode: CaptureMode,
    area: Area,
) -> Result<(Source, Vec<(u32, u32)>, (i32, i32)), ScreenError> {
    let xcap = || {
        let Area::Monitor(index) = area else {
            return Err(ScreenError::DesktopNeedsDamage);
        };
        let (src, sizes, a) = XcapSource::open(usize::from(index)).map_err(ScreenError::Capture)?;
        Ok((Source::Poll(Box::new(src)), sizes, (a.0.into(), a.1.into())))
    };
    if mode == CaptureMode::Xcap {
        return xcap();
    }
    let damage = X11Source::open()
        .map_err(ScreenError::Capture)
        .and_then(|mut x| {
            let monitors = x.monitors().map_err(ScreenError::Capture)?;
            let rect = match area {
                Area::Desktop => x.desktop(),
                Area::Monitor(index) => {
                    *monitors
                        .get(usize::from(index))
                        .ok_or(ScreenError::NoMonitor {
                            index,
                            count: monitors.len(),
                        })?
                }
            };
            x.set_area(rect).map_err(ScreenError::Capture)?;
            let sizes = monitors
                .iter()
                .map(|m| (u32::from(m.2 & !1), u32::from(m.3 & !1)))
                .collect();
            Ok((x, sizes))
        });
    match damage {
        Ok((x, sizes)) => {
            tracing::debug!(%area, "capturing with X11 damage events");
            let origin = x.origin();
            Ok((Source::Damage(Box::new(x)), sizes, origin))
        }
        Err(e @ ScreenError::NoMonitor { .. }) => Err(e),
        Err(e) if mode == CaptureMode::Auto => {
            tracing::warn!(error = %e, "X11 damage capture unavailable; using full grabs (xcap)");
            xcap()
        }
        Err(e) => Err(e),
    }
}
