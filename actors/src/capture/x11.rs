//! Damage-driven X11 capture with x11rb: the DAMAGE extension says which regions changed,
//! only those are read (`GetImage` per damaged rectangle), and a still screen costs no reads
//! and no wake-ups (an event thread blocks on the X connection; the capture thread sleeps
//! until it signals, or a slow safety poll). XFIXES reports cursor shape changes (each
//! shape read once, by serial); XInput2 raw motion events say when to read the pointer's
//! position at once, and while someone watches it is also read 10 times a second (one round
//! trip), because a warp (`XWarpPointer`, xdotool) makes no motion event.
//!
//! Needs DAMAGE, XFIXES and a 24/32-bit TrueColor root; without them [`X11Source::open`]
//! fails and the host falls back to xcap's full grabs.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use portico_core::tiles::{Grid, TILE};
use portico_core::wire::session::{CursorPosition, CursorShape, MAX_CURSOR_EDGE};
use x11rb::connection::{Connection, RequestConnection as _};
use x11rb::protocol::damage::{self, ConnectionExt as _};
use x11rb::protocol::randr::ConnectionExt as _;
use x11rb::protocol::xfixes::{self, ConnectionExt as _};
use x11rb::protocol::xinput::{self, ConnectionExt as _};
use x11rb::protocol::xproto::{
    ClientMessageEvent, ConnectionExt as _, CreateWindowAux, EventMask, ImageFormat, Rectangle,
    WindowClass,
};
use x11rb::protocol::Event;
use x11rb::rust_connection::RustConnection;

/// Damaged rectangles read one by one up to this many; more are read as their bounding box.
const MAX_RECTS: usize = 32;
/// Regions of at least this many pixels are read through MIT-SHM.
const SHM_MIN_PIXELS: usize = 128 * 128;

/// What the event thread noticed.
#[derive(Debug, Default)]
struct Flags {
    /// The screen changed.
    damage: AtomicBool,
    /// The cursor's shape changed.
    shape: AtomicBool,
    /// The pointer moved.
    motion: AtomicBool,
    /// The source was dropped: the event thread ends (and with it the connection).
    closed: AtomicBool,
}

/// What a [`X11Source::update`] found.
#[derive(Debug, Default)]
pub struct Update {
    /// Tiles whose pixels changed.
    pub changed: Vec<usize>,
    /// A new cursor shape.
    pub shape: Option<CursorShape>,
    /// A new pointer position.
    pub position: Option<CursorPosition>,
}

/// A monitor-sized area of the X root window, captured as damage arrives.
pub struct X11Source {
    /// The connection (shared with the event thread).
    conn: Arc<RustConnection>,
    /// The root window.
    root: u32,
    /// The damage object on the root.
    damage: u32,
    /// Scratch region the damage is moved into.
    region: u32,
    /// The captured area in root coordinates (x, y, width, height; even sizes).
    area: (i16, i16, u16, u16),
    /// The picture (RGBA), shared copy-on-write with the encoder.
    frame: Arc<Vec<u8>>,
    /// Set by the event thread.
    flags: Arc<Flags>,
    /// Wakes the capture thread.
    wake: Receiver<()>,
    /// Last cursor serial sent.
    serial: u32,
    /// Last position sent.
    position: Option<CursorPosition>,
    /// Cursor image reads that failed in a row.
    shape_failures: u32,
    /// The MIT-SHM segment for large reads (none without MIT-SHM 1.2).
    shm: Option<super::shm::Segment>,
    /// A private window: an event sent to it wakes the event thread when the source closes.
    waker: u32,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

impl X11Source {
    /// Opens the display in `$DISPLAY` and captures the whole root window ([`Self::set_area`]
    /// narrows it to a monitor).
    pub fn open() -> Result<Self, String> {
        let (conn, screen) =
            x11rb::connect(None).map_err(|e| format!("cannot open the X display: {e}"))?;
        let s = conn
            .setup()
            .roots
            .get(screen)
            .ok_or("the X server has no such screen")?;
        let (root, depth) = (s.root, s.root_depth);
        let (sw, sh) = (s.width_in_pixels, s.height_in_pixels);
        let bpp32 = conn
            .setup()
            .pixmap_formats
            .iter()
            .any(|f| f.depth == depth && f.bits_per_pixel == 32);
        if depth != 24 || !bpp32 {
            return Err(format!("the root window is {depth}-bit; damage capture needs 24-bit colour in 32-bit pixels"));
        }
        for ext in [damage::X11_EXTENSION_NAME, xfixes::X11_EXTENSION_NAME] {
            if conn.extension_information(ext).map_err(err)?.is_none() {
                return Err(format!("the X server lacks the {ext} extension"));
            }
        }
        conn.xfixes_query_version(5, 0)
            .map_err(err)?
            .reply()
            .map_err(err)?;
        conn.damage_query_version(1, 1)
            .map_err(err)?
            .reply()
            .map_err(err)?;
        let (dmg, region) = (
            conn.generate_id().map_err(err)?,
            conn.generate_id().map_err(err)?,
        );
        conn.damage_create(dmg, root, damage::ReportLevel::NON_EMPTY)
            .map_err(err)?;
        conn.xfixes_create_region(region, &[]).map_err(err)?;
        let waker = conn.generate_id().map_err(err)?;
        conn.create_window(
            0,
            waker,
            root,
            -1,
            -1,
            1,
            1,
            0,
            WindowClass::INPUT_ONLY,
            0,
            &CreateWindowAux::new(),
        )
        .map_err(err)?;
        conn.xfixes_select_cursor_input(root, xfixes::CursorNotifyMask::DISPLAY_CURSOR)
            .map_err(err)?;
        let xi2 = conn
            .extension_information(xinput::X11_EXTENSION_NAME)
            .map_err(err)?
            .is_some()
            && conn
                .xinput_xi_query_version(2, 2)
                .map_err(err)?
                .reply()
                .is_ok();
        if xi2 {
            let mask = xinput::EventMask {
                deviceid: 0, // all devices (XTest input comes from its own slave)
                mask: vec![xinput::XIEventMask::RAW_MOTION],
            };
            conn.xinput_xi_select_events(root, &[mask]).map_err(err)?;
        } else {
            tracing::info!("no XInput2: the pointer position follows the 10 Hz poll only");
        }
        conn.flush().map_err(err)?;
        let conn = Arc::new(conn);
        let flags = Arc::new(Flags::default());
        let (wake_tx, wake) = std::sync::mpsc::sync_channel(1);
        spawn_events(conn.clone(), flags.clone(), wake_tx)?;
        let mut me = Self {
            conn,
            root,
            damage: dmg,
            region,
            area: (0, 0, sw, sh),
            frame: Arc::new(Vec::new()),
            flags,
            wake,
            serial: 0,
            position: None,
            shape_failures: 0,
            shm: None,
            waker,
        };
        me.shm = match super::shm::Segment::create(&me.conn, u32::from(sw) * u32::from(sh) * 4) {
            Ok(seg) => Some(seg),
            Err(e) => {
                tracing::info!(error = %e, "no MIT-SHM: large regions are read over the socket");
                None
            }
        };
        // The first picture, read whole; the shape and position once.
        me.set_area((0, 0, sw, sh))?;
        me.flags.shape.store(true, Ordering::Relaxed);
        Ok(me)
    }

    /// The monitors (RandR 1.5; `xrandr --setmonitor` makes several on one screen), primary
    /// first, as root areas (x, y, width, height); the whole screen when RandR lists none.
    pub fn monitors(&self) -> Result<Vec<(i16, i16, u16, u16)>, String> {
        let screen = self.screen();
        let listed = self
            .conn
            .randr_get_monitors(self.root, true)
            .map_err(err)?
            .reply()
            .map(|r| r.monitors)
            .unwrap_or_default();
        let mut out: Vec<(bool, (i16, i16, u16, u16))> = listed
            .into_iter()
            .map(|m| (m.primary, (m.x, m.y, m.width, m.height)))
            .collect();
        // Primary first (stable otherwise), as xcap orders them.
        out.sort_by_key(|(primary, _)| !primary);
        let all: Vec<_> = out.into_iter().map(|(_, a)| a).collect();
        // A monitor holding another one whole is their union (Xvfb keeps its automatic
        // "screen" monitor beside `xrandr --setmonitor` ones): the parts are the monitors.
        let inside = |a: &(i16, i16, u16, u16), b: &(i16, i16, u16, u16)| {
            b.0 >= a.0
                && b.1 >= a.1
                && i32::from(b.0) + i32::from(b.2) <= i32::from(a.0) + i32::from(a.2)
                && i32::from(b.1) + i32::from(b.3) <= i32::from(a.1) + i32::from(a.3)
        };
        let mut areas: Vec<_> = all
            .iter()
            .enumerate()
            .filter(|(i, a)| {
                !all.iter()
                    .enumerate()
                    .any(|(j, b)| j != *i && b != *a && inside(a, b))
            })
            .map(|(_, a)| *a)
            .collect();
        areas.dedup();
        if areas.is_empty() {
            areas.push((0, 0, screen.0, screen.1));
        }
        Ok(areas)
    }

    /// The root window's size.
    fn screen(&self) -> (u16, u16) {
        let s = &self.conn.setup().roots;
        s.iter()
            .find(|r| r.root == self.root)
            .map(|r| (r.width_in_pixels, r.height_in_pixels))
            .unwrap_or((self.area.2, self.area.3))
    }

    /// The bounding box of every monitor (the whole desktop).
    pub fn desktop(&self) -> (i16, i16, u16, u16) {
        let (w, h) = self.screen();
        (0, 0, w, h)
    }

    /// Captures another area (a monitor, or the desktop): the picture is read whole.
    pub fn set_area(&mut self, area: (i16, i16, u16, u16)) -> Result<(), String> {
        let (sw, sh) = self.screen();
        let (x, y, w, h) = area;
        let (w, h) = (w & !1, h & !1);
        if w == 0
            || h == 0
            || x < 0
            || y < 0
            || i32::from(x) + i32::from(w) > i32::from(sw)
            || i32::from(y) + i32::from(h) > i32::from(sh)
        {
            return Err(format!(
                "the area {w}x{h}+{x}+{y} is not inside the {sw}x{sh} screen"
            ));
        }
        self.area = (x, y, w, h);
        self.frame = Arc::new(vec![0; usize::from(w) * usize::from(h) * 4]);
        self.position = None;
        self.read_rect(
            Rectangle {
                x,
                y,
                width: w,
                height: h,
            },
            &mut Vec::new(),
        )?;
        self.flags.motion.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The captured area's origin in root coordinates.
    pub fn origin(&self) -> (i32, i32) {
        (i32::from(self.area.0), i32::from(self.area.1))
    }

    /// The picture's grid.
    pub fn grid(&self) -> Grid {
        Grid {
            width: u32::from(self.area.2),
            height: u32::from(self.area.3),
        }
    }

    /// The picture as it is now.
    pub fn frame(&self) -> Arc<Vec<u8>> {
        self.frame.clone()
    }

    /// Waits until something changed or `timeout` passed; true when there is work.
    pub fn wait(&self, timeout: Duration) -> bool {
        if self.pending() {
            return true;
        }
        match self.wake.recv_timeout(timeout) {
            Ok(()) => true,
            Err(RecvTimeoutError::Timeout) => self.pending(),
            Err(RecvTimeoutError::Disconnected) => true,
        }
    }

    fn pending(&self) -> bool {
        self.flags.damage.load(Ordering::Relaxed)
            || self.flags.shape.load(Ordering::Relaxed)
            || self.flags.motion.load(Ordering::Relaxed)
    }

    /// Marks the pointer for a re-read (the poll: a warp makes no motion event).
    pub fn poll_pointer(&self) {
        self.flags.motion.store(true, Ordering::Relaxed);
    }

    /// Reads what changed: damaged regions into the picture, the cursor's shape and position.
    pub fn update(&mut self, full: bool) -> Result<Update, String> {
        let mut up = Update::default();
        if full {
            // The whole picture counts as changed (a new viewer, a resync).
            up.changed = (0..self.grid().len()).collect();
        }
        if self.flags.damage.swap(false, Ordering::Relaxed) || full {
            self.read_damage(&mut up.changed)?;
        }
        if self.flags.shape.swap(false, Ordering::Relaxed) {
            // Some cursors cannot be read (the X server answers BadAccess for some animated
            // theme cursors): the viewer keeps the last shape; the picture goes on.
            up.shape = match self.read_shape() {
                Ok(s) => {
                    self.shape_failures = 0;
                    s
                }
                Err(e) => {
                    // Right after a change the server sometimes refuses; try again on the
                    // next update, a few times.
                    self.shape_failures += 1;
                    tracing::debug!(error = %e, tries = self.shape_failures, "cursor image unavailable");
                    if self.shape_failures < 5 {
                        self.flags.shape.store(true, Ordering::Relaxed);
                    }
                    None
                }
            };
        }
        if self.flags.motion.swap(false, Ordering::Relaxed) || up.shape.is_some() {
            up.position = self.read_position()?;
        }
        up.changed.sort_unstable();
        up.changed.dedup();
        tracing::trace!(changed = up.changed.len(), shape = up.shape.is_some(), position = ?up.position, "x11 update");
        Ok(up)
    }

    fn read_damage(&mut self, changed: &mut Vec<usize>) -> Result<(), String> {
        let c = &self.conn;
        c.damage_subtract(self.damage, x11rb::NONE, self.region)
            .map_err(err)?;
        let reply = c
            .xfixes_fetch_region(self.region)
            .map_err(err)?
            .reply()
            .map_err(err)?;
        let rects = if reply.rectangles.len() > MAX_RECTS {
            vec![reply.extents]
        } else {
            reply.rectangles
        };
        for r in rects {
            if let Some(r) = self.clip(r) {
                self.read_rect(r, changed)?;
            }
        }
        Ok(())
    }

    /// `r` (root coordinates) clipped to the captured area.
    fn clip(&self, r: Rectangle) -> Option<Rectangle> {
        let (ax, ay, aw, ah) = (
            i32::from(self.area.0),
            i32::from(self.area.1),
            i32::from(self.area.2),
            i32::from(self.area.3),
        );
        let x0 = i32::from(r.x).max(ax);
        let y0 = i32::from(r.y).max(ay);
        let x1 = (i32::from(r.x) + i32::from(r.width)).min(ax + aw);
        let y1 = (i32::from(r.y) + i32::from(r.height)).min(ay + ah);
        (x1 > x0 && y1 > y0).then(|| Rectangle {
            x: x0 as i16,
            y: y0 as i16,
            width: (x1 - x0) as u16,
            height: (y1 - y0) as u16,
        })
    }

    /// Reads `r` (inside the area) into the picture; tiles whose pixels differ go in `changed`.
    fn read_rect(&mut self, r: Rectangle, changed: &mut Vec<usize>) -> Result<(), String> {
        let (w, h) = (usize::from(r.width), usize::from(r.height));
        // Large regions through shared memory, small ones over the socket.
        let owned;
        let data: &[u8] = match &self.shm {
            Some(seg) if w * h >= SHM_MIN_PIXELS => seg.read(&self.conn, self.root, r)?,
            _ => {
                owned = self
                    .conn
                    .get_image(
                        ImageFormat::Z_PIXMAP,
                        self.root,
                        r.x,
                        r.y,
                        r.width,
                        r.height,
                        !0,
                    )
                    .map_err(err)?
                    .reply()
                    .map_err(err)?
                    .data;
                &owned
            }
        };
        if data.len() < w * h * 4 {
            return Err(format!("short image: {} bytes for {w}x{h}", data.len()));
        }
        let grid = self.grid();
        let fw = usize::from(self.area.2);
        let (ox, oy) = (
            (i32::from(r.x) - i32::from(self.area.0)) as usize,
            (i32::from(r.y) - i32::from(self.area.1)) as usize,
        );
        let frame = Arc::make_mut(&mut self.frame);
        let tile = TILE as usize;
        let mut row = vec![0u8; w * 4];
        for y in 0..h {
            // BGRX (little-endian 32-bit TrueColor) → RGBA.
            for (dst, src) in row
                .chunks_exact_mut(4)
                .zip(data[y * w * 4..(y + 1) * w * 4].chunks_exact(4))
            {
                dst.copy_from_slice(&[src[2], src[1], src[0], 255]);
            }
            let at = ((oy + y) * fw + ox) * 4;
            let dst = &mut frame[at..at + w * 4];
            if dst == row.as_slice() {
                continue;
            }
            // Which tiles of this row segment differ.
            let ty = (oy + y) / tile;
            let mut x = 0;
            while x < w {
                let tx = (ox + x) / tile;
                let end = (((tx + 1) * tile).min(ox + w)) - ox;
                if dst[x * 4..end * 4] != row[x * 4..end * 4] {
                    changed.push(ty * grid.cols() as usize + tx);
                }
                x = end;
            }
            dst.copy_from_slice(&row);
        }
        Ok(())
    }

    fn read_shape(&mut self) -> Result<Option<CursorShape>, String> {
        let c = match self.conn.xfixes_get_cursor_image().map_err(err)?.reply() {
            Ok(c) => c,
            Err(e) => {
                // Seen on Xvfb: after the root cursor changes, this connection gets BadAccess
                // for the new cursor while a fresh connection may read it.
                tracing::debug!(error = %e, "cursor image refused; asking on a fresh connection");
                let (fresh, _) = x11rb::connect(None).map_err(err)?;
                fresh
                    .xfixes_query_version(5, 0)
                    .map_err(err)?
                    .reply()
                    .map_err(err)?;
                let image = fresh.xfixes_get_cursor_image().map_err(err)?.reply();
                image.map_err(err)?
            }
        };
        if c.cursor_serial == self.serial || c.width > MAX_CURSOR_EDGE || c.height > MAX_CURSOR_EDGE
        {
            return Ok(None);
        }
        self.serial = c.cursor_serial;
        // ARGB (premultiplied) words → RGBA bytes, still premultiplied.
        let rgba = c
            .cursor_image
            .iter()
            .flat_map(|p| {
                let [b, g, r, a] = p.to_le_bytes();
                [r, g, b, a]
            })
            .collect();
        Ok(Some(CursorShape {
            serial: c.cursor_serial,
            width: c.width,
            height: c.height,
            hot_x: c.xhot.min(c.width),
            hot_y: c.yhot.min(c.height),
            rgba,
        }))
    }

    fn read_position(&mut self) -> Result<Option<CursorPosition>, String> {
        let p = self
            .conn
            .query_pointer(self.root)
            .map_err(err)?
            .reply()
            .map_err(err)?;
        let (x, y) = (
            i32::from(p.root_x) - i32::from(self.area.0),
            i32::from(p.root_y) - i32::from(self.area.1),
        );
        let visible = p.same_screen
            && x >= 0
            && y >= 0
            && x < i32::from(self.area.2)
            && y < i32::from(self.area.3);
        let pos = CursorPosition {
            x,
            y,
            visible,
            serial: self.serial,
        };
        if self.position == Some(pos) {
            return Ok(None);
        }
        self.position = Some(pos);
        Ok(Some(pos))
    }
}

impl Drop for X11Source {
    /// Ends the event thread (it holds the connection): the X server then frees the damage
    /// object, the region and the shared segment with the connection. Without this a
    /// closed screen would keep its connection until the next damage event.
    fn drop(&mut self) {
        self.flags.closed.store(true, Ordering::Relaxed);
        let wake = ClientMessageEvent::new(32, self.waker, 0u32, [0u32; 5]);
        // An empty mask sends it to the window's creator: this connection.
        let sent = self
            .conn
            .send_event(false, self.waker, EventMask::NO_EVENT, wake)
            .map_err(err)
            .and_then(|_| self.conn.flush().map_err(err));
        if let Err(e) = sent {
            tracing::debug!(error = %e, "cannot wake the X event thread; it ends with the next event");
        }
    }
}

/// The event thread: blocks on the connection, sets flags, wakes the capture thread.
fn spawn_events(
    conn: Arc<RustConnection>,
    flags: Arc<Flags>,
    wake: SyncSender<()>,
) -> Result<(), String> {
    std::thread::Builder::new()
        .name("portico-x11-events".into())
        .spawn(move || loop {
            let event = conn.wait_for_event();
            if flags.closed.load(Ordering::Relaxed) {
                return;
            }
            let flag = match event {
                Ok(Event::DamageNotify(_)) => &flags.damage,
                Ok(Event::XfixesCursorNotify(_)) => &flags.shape,
                Ok(Event::XinputRawMotion(_)) => &flags.motion,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "the X connection closed");
                    return;
                }
            };
            flag.store(true, Ordering::Relaxed);
            // Full: a wake-up is already pending, which is all it needs.
            if let Err(std::sync::mpsc::TrySendError::Disconnected(_)) = wake.try_send(()) {
                return;
            }
        })
        .map(drop)
        .map_err(|e| format!("cannot start the X event thread: {e}"))
}
