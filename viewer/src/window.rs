//! The native viewer window (winit + softbuffer): the remote picture scaled to fit with its
//! aspect kept, mouse and keyboard forwarded, the title naming host, mode and path.
//!
//! winit owns the main thread; the session runs on its own thread and hands pictures over
//! through [`Shared`], waking the window with a [`UiEvent`].
//!
//! Started without a target, the window first shows a host list ([`picker`]); the chosen
//! row's target goes to the session thread, and the same window then shows the session.

pub mod files_panel;
pub mod picker;

pub use picker::{PickEntry, Source};

use std::num::NonZeroU32;
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use portico_core::wire::session::{InputEvent, MouseButton};
use tokio::sync::mpsc;
use winit::application::ApplicationHandler;
use winit::event::{ElementState, MouseScrollDelta, WindowEvent};
use winit::event_loop::{ActiveEventLoop, EventLoop, EventLoopProxy};
use winit::keyboard::{Key, NamedKey};
use winit::window::{Window, WindowId};

/// The latest picture, shared between the session thread and the window.
#[derive(Debug, Default)]
pub struct Shared {
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// RGBA pixels.
    pub rgba: Vec<u8>,
}

/// What the session tells the window.
#[derive(Debug, Clone)]
pub enum UiEvent {
    /// A new picture is in [`Shared`].
    Frame,
    /// The session is up: title text (host, mode, path).
    Status(String),
    /// The session ended, with the reason.
    Ended(String),
    /// Rows for the host list (before a host is chosen).
    Hosts(Vec<PickEntry>),
    /// A listing for the files panel: the folder asked, and the answer.
    Listing(String, portico_core::wire::session::Listing),
    /// A line for the files panel (a download's progress or outcome).
    FilesStatus(String),
}

/// Wakes the window and hands it [`UiEvent`]s from other threads.
pub type UiProxy = EventLoopProxy<UiEvent>;

/// What the window sends the session.
#[derive(Debug, Clone, PartialEq)]
pub enum FromWindow {
    /// Mouse or keyboard input for the host.
    Input(InputEvent),
    /// Ctrl+Alt+M: show the host's next monitor (after the last: the whole desktop).
    NextMonitor,
    /// The files panel lists a folder or downloads a file.
    Browse(files_panel::BrowseAsk),
}

/// The session side of the window: where pictures go and input comes from.
pub struct UiLink {
    /// The picture.
    pub shared: Arc<Mutex<Shared>>,
    /// Wakes the window.
    pub notify: EventLoopProxy<UiEvent>,
    /// Input (and monitor switches) from the window.
    pub input: mpsc::Receiver<FromWindow>,
    /// Files dropped on the window (taken once by the session).
    pub files: Mutex<Option<mpsc::Receiver<std::path::PathBuf>>>,
}

/// Where the picture sits in the window.
#[derive(Debug, Clone, Copy, Default)]
struct Layout {
    ox: u32,
    oy: u32,
    dw: u32,
    dh: u32,
    pw: u32,
    ph: u32,
}

struct App {
    window: Option<Rc<Window>>,
    surface: Option<softbuffer::Surface<Rc<Window>, Rc<Window>>>,
    shared: Arc<Mutex<Shared>>,
    input: mpsc::Sender<FromWindow>,
    files: mpsc::Sender<std::path::PathBuf>,
    layout: Layout,
    /// The picture size the window was last sized for (a new size resizes it once, to 1:1
    /// when the screen has room; the user's own resizing is kept otherwise).
    sized_for: Option<(u32, u32)>,
    /// Modifier keys held (for the window's own shortcut).
    mods: winit::keyboard::ModifiersState,
    title: String,
    ended: Option<String>,
    error: Option<String>,
    /// The host list, until a row is chosen.
    picker: Option<picker::Picker>,
    /// Where the chosen row's target goes.
    choose: Option<mpsc::Sender<String>>,
    /// The pointer's height in the window (the list's clicks).
    pointer_y: f64,
    /// The files panel, while it shows (Ctrl+Alt+F).
    files_panel: Option<files_panel::FilesPanel>,
}

/// What [`event_loop`] returns: the loop (for [`run`]), the session's link, and the
/// window's ends of the input channel and the picture.
pub struct WindowParts {
    /// The event loop (main thread).
    pub event_loop: EventLoop<UiEvent>,
    /// For the session.
    pub link: UiLink,
    /// The window sends input here.
    pub input: mpsc::Sender<FromWindow>,
    /// The window reads the picture here.
    pub shared: Arc<Mutex<Shared>>,
    /// The window sends dropped files here.
    pub files: mpsc::Sender<std::path::PathBuf>,
}

/// Creates the event loop and the link the session uses. Call on the main thread.
pub fn event_loop() -> Result<WindowParts, String> {
    let el = EventLoop::<UiEvent>::with_user_event()
        .build()
        .map_err(|e| format!("cannot open a window ({e}); use --headless without a display"))?;
    let shared = Arc::new(Mutex::new(Shared::default()));
    let (tx, rx) = mpsc::channel(256);
    let (files_tx, files_rx) = mpsc::channel(16);
    let link = UiLink {
        shared: shared.clone(),
        notify: el.create_proxy(),
        input: rx,
        files: Mutex::new(Some(files_rx)),
    };
    Ok(WindowParts {
        event_loop: el,
        link,
        input: tx,
        shared,
        files: files_tx,
    })
}

/// Runs the window until it is closed or the session ends; returns the end reason, if any.
/// With `choose`, it first shows the host list and sends the chosen target there.
pub fn run(
    el: EventLoop<UiEvent>,
    input: mpsc::Sender<FromWindow>,
    files: mpsc::Sender<std::path::PathBuf>,
    shared: Arc<Mutex<Shared>>,
    title: String,
    choose: Option<mpsc::Sender<String>>,
) -> Result<Option<String>, String> {
    let mut app = App {
        window: None,
        surface: None,
        shared,
        input,
        files,
        layout: Layout::default(),
        sized_for: None,
        mods: Default::default(),
        title,
        ended: None,
        error: None,
        picker: choose.is_some().then(picker::Picker::default),
        choose,
        pointer_y: 0.0,
        files_panel: None,
    };
    el.run_app(&mut app).map_err(|e| e.to_string())?;
    match app.error {
        Some(e) => Err(e),
        None => Ok(app.ended),
    }
}

/// X keysym names for winit's named keys.
fn keysym(key: &Key) -> Option<String> {
    let named = match key {
        Key::Character(s) if s.chars().count() == 1 => return Some(s.to_string()),
        Key::Named(n) => n,
        _ => return None,
    };
    let name = match named {
        NamedKey::Enter => "Return",
        NamedKey::Backspace => "BackSpace",
        NamedKey::Tab => "Tab",
        NamedKey::Escape => "Escape",
        NamedKey::Delete => "Delete",
        NamedKey::Insert => "Insert",
        NamedKey::Home => "Home",
        NamedKey::End => "End",
        NamedKey::PageUp => "Page_Up",
        NamedKey::PageDown => "Page_Down",
        NamedKey::ArrowLeft => "Left",
        NamedKey::ArrowRight => "Right",
        NamedKey::ArrowUp => "Up",
        NamedKey::ArrowDown => "Down",
        NamedKey::Shift => "Shift_L",
        NamedKey::Control => "Control_L",
        NamedKey::Alt => "Alt_L",
        NamedKey::Super => "Super_L",
        NamedKey::CapsLock => "Caps_Lock",
        NamedKey::Space => "space",
        NamedKey::F1 => "F1",
        NamedKey::F2 => "F2",
        NamedKey::F3 => "F3",
        NamedKey::F4 => "F4",
        NamedKey::F5 => "F5",
        NamedKey::F6 => "F6",
        NamedKey::F7 => "F7",
        NamedKey::F8 => "F8",
        NamedKey::F9 => "F9",
        NamedKey::F10 => "F10",
        NamedKey::F11 => "F11",
        NamedKey::F12 => "F12",
        _ => return None,
    };
    Some(name.to_string())
}

impl App {
    fn send(&self, ev: InputEvent) {
        self.send_up(FromWindow::Input(ev));
    }

    fn send_up(&self, m: FromWindow) {
        // A full queue drops the event rather than stall the window.
        if self.input.try_send(m).is_err() {
            tracing::debug!("input queue full; event dropped");
        }
    }

    fn draw(&mut self) -> Result<(), String> {
        let (Some(window), Some(surface)) = (&self.window, &mut self.surface) else {
            return Ok(());
        };
        let size = window.inner_size();
        let (Some(w), Some(h)) = (NonZeroU32::new(size.width), NonZeroU32::new(size.height)) else {
            return Ok(());
        };
        surface.resize(w, h).map_err(|e| e.to_string())?;
        let mut buf = surface.buffer_mut().map_err(|e| e.to_string())?;
        if let Some(p) = &self.picker {
            p.draw(&mut buf, size.width, size.height);
            return buf.present().map_err(|e| e.to_string());
        }
        buf.fill(0x0020_2020);
        let pic = self.shared.lock().map_err(|_| "picture lock poisoned")?;
        if pic.width > 0 && self.sized_for != Some((pic.width, pic.height)) {
            self.sized_for = Some((pic.width, pic.height));
            // Show the picture 1:1 when it fits the screen (scaled to fit otherwise).
            let room = window
                .current_monitor()
                .map(|m| m.size())
                .unwrap_or(winit::dpi::PhysicalSize::new(pic.width, pic.height));
            let want = winit::dpi::PhysicalSize::new(
                pic.width.min(room.width),
                pic.height.min(room.height),
            );
            if want != size {
                // This frame draws at the old size; the resize redraws.
                match window.request_inner_size(want) {
                    Some(now) => tracing::debug!(?now, "window resized to the picture"),
                    None => tracing::debug!(?want, "window resize requested"),
                }
            }
        }
        if pic.width > 0
            && pic.height > 0
            && pic.rgba.len() == (pic.width * pic.height * 4) as usize
        {
            let (ww, wh) = (size.width, size.height);
            let scale = f64::min(
                f64::from(ww) / f64::from(pic.width),
                f64::from(wh) / f64::from(pic.height),
            );
            let dw = ((f64::from(pic.width) * scale) as u32).clamp(1, ww);
            let dh = ((f64::from(pic.height) * scale) as u32).clamp(1, wh);
            let (ox, oy) = ((ww - dw) / 2, (wh - dh) / 2);
            self.layout = Layout {
                ox,
                oy,
                dw,
                dh,
                pw: pic.width,
                ph: pic.height,
            };
            for y in 0..dh {
                let sy = (u64::from(y) * u64::from(pic.height) / u64::from(dh)) as u32;
                let src_row = (sy * pic.width * 4) as usize;
                let dst_row = ((oy + y) * ww + ox) as usize;
                for x in 0..dw {
                    let sx = (u64::from(x) * u64::from(pic.width) / u64::from(dw)) as usize;
                    let p = &pic.rgba[src_row + sx * 4..src_row + sx * 4 + 3];
                    buf[dst_row + x as usize] =
                        (u32::from(p[0]) << 16) | (u32::from(p[1]) << 8) | u32::from(p[2]);
                }
            }
        }
        drop(pic);
        if let Some(panel) = &self.files_panel {
            panel.draw(&mut buf, size.width, size.height);
        }
        buf.present().map_err(|e| e.to_string())
    }

    /// A row of the host list was chosen: the session thread gets its target, and the
    /// window waits for the session.
    fn chosen(&mut self, target: String) {
        self.picker = None;
        if let Some(tx) = self.choose.take() {
            if tx.try_send(target.clone()).is_err() {
                tracing::warn!("the session thread is gone");
            }
        }
        if let Some(w) = &self.window {
            w.set_title(&format!("Portico — connecting to {target}…"));
            w.request_redraw();
        }
    }

    /// Window events while the host list shows.
    fn pick_event(&mut self, event: &WindowEvent) {
        let Some(p) = self.picker.as_mut() else {
            return;
        };
        let chosen = match event {
            WindowEvent::CursorMoved { position, .. } => {
                self.pointer_y = position.y;
                None
            }
            WindowEvent::MouseInput {
                state: ElementState::Pressed,
                button: winit::event::MouseButton::Left,
                ..
            } => p.click(self.pointer_y, std::time::Instant::now()),
            WindowEvent::KeyboardInput { event, .. } if event.state == ElementState::Pressed => {
                p.key(&event.logical_key)
            }
            _ => None,
        };
        if let Some(target) = chosen {
            self.chosen(target);
        } else if let Some(w) = &self.window {
            w.request_redraw();
        }
    }

    /// Input while the files panel shows: keys drive it, pointer input stays local.
    /// `true` when the event was the panel's.
    fn panel_event(&mut self, event: &WindowEvent) -> bool {
        let Some(panel) = self.files_panel.as_mut() else {
            return false;
        };
        match event {
            WindowEvent::KeyboardInput { event, .. } => {
                if event.state == ElementState::Pressed {
                    match panel.key(&event.logical_key) {
                        Ok(Some(ask)) => self.send_up(FromWindow::Browse(ask)),
                        Ok(None) => {}
                        Err(()) => self.files_panel = None,
                    }
                    if let Some(w) = &self.window {
                        w.request_redraw();
                    }
                }
                true
            }
            WindowEvent::CursorMoved { .. }
            | WindowEvent::MouseInput { .. }
            | WindowEvent::MouseWheel { .. } => true,
            _ => false,
        }
    }

    fn offer_file(&self, path: std::path::PathBuf) {
        if self.files.try_send(path).is_err() {
            tracing::warn!("too many files waiting to be offered; drop it again later");
        }
    }

    /// Window position → remote screen position (None outside the picture).
    fn map(&self, x: f64, y: f64) -> Option<(i32, i32)> {
        let l = self.layout;
        if l.dw == 0 || l.dh == 0 {
            return None;
        }
        let (rx, ry) = (x - f64::from(l.ox), y - f64::from(l.oy));
        if rx < 0.0 || ry < 0.0 || rx >= f64::from(l.dw) || ry >= f64::from(l.dh) {
            return None;
        }
        Some((
            (rx * f64::from(l.pw) / f64::from(l.dw)) as i32,
            (ry * f64::from(l.ph) / f64::from(l.dh)) as i32,
        ))
    }
}

impl ApplicationHandler<UiEvent> for App {
    fn resumed(&mut self, el: &ActiveEventLoop) {
        if self.window.is_some() {
            return;
        }
        let attrs = Window::default_attributes()
            .with_title(&self.title)
            .with_inner_size(winit::dpi::PhysicalSize::new(1280, 720));
        let made = el
            .create_window(attrs)
            .map_err(|e| e.to_string())
            .and_then(|w| {
                let w = Rc::new(w);
                let ctx = softbuffer::Context::new(w.clone()).map_err(|e| e.to_string())?;
                let surface =
                    softbuffer::Surface::new(&ctx, w.clone()).map_err(|e| e.to_string())?;
                Ok((w, surface))
            });
        match made {
            Ok((w, s)) => {
                self.window = Some(w);
                self.surface = Some(s);
            }
            Err(e) => {
                self.error = Some(format!("cannot open the window: {e}"));
                el.exit();
            }
        }
    }

    fn user_event(&mut self, el: &ActiveEventLoop, ev: UiEvent) {
        match ev {
            UiEvent::Frame => {
                if let Some(w) = &self.window {
                    w.request_redraw();
                }
            }
            UiEvent::Status(s) => {
                if let Some(w) = &self.window {
                    w.set_title(&format!("Portico — {s}"));
                }
            }
            UiEvent::Ended(reason) => {
                self.ended = Some(reason);
                el.exit();
            }
            UiEvent::Listing(path, listing) => {
                if let Some(p) = self.files_panel.as_mut() {
                    p.listing(&path, listing);
                }
                if let Some(w) = &self.window {
                    w.request_redraw();
                }
            }
            UiEvent::FilesStatus(line) => {
                if let Some(p) = self.files_panel.as_mut() {
                    p.status(line);
                }
                if let Some(w) = &self.window {
                    w.request_redraw();
                }
            }
            UiEvent::Hosts(rows) => {
                if let Some(p) = self.picker.as_mut() {
                    p.add(rows);
                }
                if let Some(w) = &self.window {
                    w.request_redraw();
                }
            }
        }
    }

    fn window_event(&mut self, el: &ActiveEventLoop, _: WindowId, event: WindowEvent) {
        if self.files_panel.is_some() && self.panel_event(&event) {
            return;
        }
        if self.picker.is_some()
            && matches!(
                event,
                WindowEvent::CursorMoved { .. }
                    | WindowEvent::MouseInput { .. }
                    | WindowEvent::KeyboardInput { .. }
            )
        {
            return self.pick_event(&event);
        }
        match event {
            WindowEvent::CloseRequested => el.exit(),
            // Dropping a file on the window sends it (the host decides as for --send).
            WindowEvent::DroppedFile(path) => self.offer_file(path),
            WindowEvent::RedrawRequested => {
                if let Err(e) = self.draw() {
                    tracing::warn!(error = %e, "drawing failed");
                }
            }
            WindowEvent::Resized(_) => {
                if let Some(w) = &self.window {
                    w.request_redraw();
                }
            }
            WindowEvent::CursorMoved { position, .. } => {
                if let Some((x, y)) = self.map(position.x, position.y) {
                    self.send(InputEvent::PointerMove { x, y });
                }
            }
            WindowEvent::MouseInput { state, button, .. } => {
                let button = match button {
                    winit::event::MouseButton::Left => MouseButton::Left,
                    winit::event::MouseButton::Middle => MouseButton::Middle,
                    winit::event::MouseButton::Right => MouseButton::Right,
                    _ => return,
                };
                self.send(InputEvent::Button {
                    button,
                    down: state == ElementState::Pressed,
                });
            }
            WindowEvent::MouseWheel { delta, .. } => {
                let (dx, dy) = match delta {
                    MouseScrollDelta::LineDelta(x, y) => (x.round() as i32, -(y.round() as i32)),
                    MouseScrollDelta::PixelDelta(p) => {
                        ((p.x / 40.0).round() as i32, -((p.y / 40.0).round() as i32))
                    }
                };
                if dx != 0 || dy != 0 {
                    self.send(InputEvent::Wheel { dx, dy });
                }
            }
            WindowEvent::ModifiersChanged(m) => self.mods = m.state(),
            WindowEvent::KeyboardInput { event, .. } => {
                let f_key = matches!(&event.logical_key, winit::keyboard::Key::Character(c) if c.eq_ignore_ascii_case("f"));
                if f_key && self.mods.control_key() && self.mods.alt_key() {
                    if event.state == ElementState::Pressed {
                        let (panel, ask) = files_panel::FilesPanel::open();
                        self.files_panel = Some(panel);
                        self.send_up(FromWindow::Browse(ask));
                        if let Some(w) = &self.window {
                            w.request_redraw();
                        }
                    }
                    return;
                }
                let m_key = matches!(&event.logical_key, winit::keyboard::Key::Character(c) if c.eq_ignore_ascii_case("m"));
                if m_key && self.mods.control_key() && self.mods.alt_key() {
                    // The window's own shortcut: not sent to the host.
                    if event.state == ElementState::Pressed {
                        self.send_up(FromWindow::NextMonitor);
                    }
                    return;
                }
                if let Some(keysym) = keysym(&event.logical_key) {
                    self.send(InputEvent::Key {
                        keysym,
                        down: event.state == ElementState::Pressed,
                    });
                }
            }
            _ => {}
        }
    }
}
