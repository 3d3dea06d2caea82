//! The `Input` actor: injects mouse and keyboard events with enigo (XTEST on X11) from a
//! dedicated thread. Only sessions holding `control` reach it — the session drops (and
//! counts) input from view-only sessions before it gets here. Keys and buttons a session
//! holds down are remembered, and released when it ends or loses `control` ([`Release`]),
//! so a viewer that disconnects mid-shortcut leaves no key stuck on the host.

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};

use actix::prelude::*;
use enigo::{Axis, Button, Coordinate, Direction, Enigo, Key, Keyboard, Mouse, Settings};
use portico_core::wire::session::{InputEvent, MouseButton};

/// Events queued for injection before new ones are dropped.
const QUEUE: usize = 256;

/// What the injection thread does.
#[derive(Debug)]
enum Job {
    /// Inject for a session.
    Inject(u64, InputEvent),
    /// Release what a session holds down.
    Release(u64),
}

/// A key or button held down.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Held {
    Key(String),
    Button(MouseButton),
}

/// The input actor.
pub struct Input {
    /// Events for the injection thread.
    tx: Option<SyncSender<Job>>,
    /// Events dropped because the queue was full.
    dropped: u64,
}

impl Input {
    /// Starts the injection thread on `$DISPLAY`; pointer positions are on the root window
    /// (each session adds the origin of the area its viewer watches).
    pub fn open() -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        std::thread::Builder::new().name("portico-input".into()).spawn(move || {
            let mut enigo = match Enigo::new(&Settings::default()) {
                Ok(e) => e,
                Err(e) => {
                    tracing::error!(error = %e, "cannot open the display for input; remote control is off");
                    return;
                }
            };
            let mut held: HashMap<u64, HashSet<Held>> = HashMap::new();
            while let Ok(job) = rx.recv() {
                match job {
                    Job::Inject(session, ev) => {
                        track(held.entry(session).or_default(), &ev);
                        if let Err(e) = inject(&mut enigo, &ev) {
                            tracing::warn!(error = %e, ?ev, "input injection failed");
                        }
                    }
                    Job::Release(session) => {
                        for h in held.remove(&session).unwrap_or_default() {
                            let ev = match h {
                                Held::Key(keysym) => InputEvent::Key { keysym, down: false },
                                Held::Button(button) => InputEvent::Button { button, down: false },
                            };
                            if let Err(e) = inject(&mut enigo, &ev) {
                                tracing::warn!(error = %e, ?ev, "releasing a held input failed");
                            }
                        }
                    }
                }
            }
        })?;
        Ok(Self {
            tx: Some(tx),
            dropped: 0,
        })
    }
}

impl Actor for Input {
    type Context = Context<Self>;
}

/// Keeps `held` in step with a press or release.
fn track(held: &mut HashSet<Held>, ev: &InputEvent) {
    let (h, down) = match ev {
        InputEvent::Key { keysym, down } => (Held::Key(keysym.clone()), *down),
        InputEvent::Button { button, down } => (Held::Button(*button), *down),
        _ => return,
    };
    if down {
        held.insert(h);
    } else {
        held.remove(&h);
    }
}

/// Inject one event for a session (holding `control`).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Inject(pub u64, pub InputEvent);

/// Release every key and button a session holds down (it ended or lost `control`).
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub struct Release(pub u64);

impl Handler<Release> for Input {
    type Result = ();
    fn handle(&mut self, m: Release, _: &mut Context<Self>) {
        let Some(tx) = &self.tx else { return };
        // Released on the same queue as the events, so after them; a full queue must not
        // lose a release: wait for room (the thread drains it quickly).
        if tx.send(Job::Release(m.0)).is_err() {
            self.tx = None;
        }
    }
}

impl Handler<Inject> for Input {
    type Result = ();
    fn handle(&mut self, m: Inject, _: &mut Context<Self>) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(Job::Inject(m.0, m.1)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped += 1;
                tracing::warn!(dropped = self.dropped, "input queue full; event dropped");
            }
            Err(TrySendError::Disconnected(_)) => self.tx = None,
        }
    }
}

fn inject(enigo: &mut Enigo, ev: &InputEvent) -> Result<(), String> {
    let e = |x: enigo::InputError| x.to_string();
    match ev {
        InputEvent::PointerMove { x, y } => enigo.move_mouse(*x, *y, Coordinate::Abs).map_err(e),
        InputEvent::Button { button, down } => {
            let b = match button {
                MouseButton::Left => Button::Left,
                MouseButton::Middle => Button::Middle,
                MouseButton::Right => Button::Right,
            };
            enigo
                .button(
                    b,
                    if *down {
                        Direction::Press
                    } else {
                        Direction::Release
                    },
                )
                .map_err(e)
        }
        InputEvent::Wheel { dx, dy } => {
            if *dy != 0 {
                enigo.scroll(*dy, Axis::Vertical).map_err(e)?;
            }
            if *dx != 0 {
                enigo.scroll(*dx, Axis::Horizontal).map_err(e)?;
            }
            Ok(())
        }
        InputEvent::Key { keysym, down } => {
            let key = key_for(keysym).ok_or_else(|| format!("unknown keysym {keysym:?}"))?;
            enigo
                .key(
                    key,
                    if *down {
                        Direction::Press
                    } else {
                        Direction::Release
                    },
                )
                .map_err(e)
        }
        InputEvent::Text { text } => enigo.text(text).map_err(e),
    }
}

/// Maps an X keysym name (`Return`, `a`, `F5`, `Control_L`) to an enigo key.
pub fn key_for(name: &str) -> Option<Key> {
    let mut chars = name.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return Some(Key::Unicode(c));
    }
    if let Some(n) = name
        .strip_prefix('F')
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| (1..=24).contains(n))
    {
        return Some(Key::Other(0xffbe + n - 1));
    }
    let sym: u32 = match name {
        "BackSpace" => 0xff08,
        "Tab" => 0xff09,
        "Return" => 0xff0d,
        "Escape" => 0xff1b,
        "Delete" => 0xffff,
        "Home" => 0xff50,
        "Left" => 0xff51,
        "Up" => 0xff52,
        "Right" => 0xff53,
        "Down" => 0xff54,
        "Page_Up" | "Prior" => 0xff55,
        "Page_Down" | "Next" => 0xff56,
        "End" => 0xff57,
        "Insert" => 0xff63,
        "Menu" => 0xff67,
        "Shift_L" => 0xffe1,
        "Shift_R" => 0xffe2,
        "Control_L" => 0xffe3,
        "Control_R" => 0xffe4,
        "Caps_Lock" => 0xffe5,
        "Alt_L" => 0xffe9,
        "Alt_R" => 0xffea,
        "Super_L" => 0xffeb,
        "Super_R" => 0xffec,
        "space" => 0x20,
        _ => return None,
    };
    Some(Key::Other(sym))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keysyms_map() {
        assert_eq!(key_for("a"), Some(Key::Unicode('a')));
        assert_eq!(key_for("Return"), Some(Key::Other(0xff0d)));
        assert_eq!(key_for("F1"), Some(Key::Other(0xffbe)));
        assert_eq!(key_for("F12"), Some(Key::Other(0xffc9)));
        assert_eq!(key_for("F25"), None);
        assert_eq!(key_for("NoSuchKey"), None);
    }
}
