//! Test support: a private Xvfb per test, a known picture drawn with x11rb, screen grabs and
//! pointer queries — all on an explicit display, never through the process's `DISPLAY`.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use x11rb::connection::Connection;
use x11rb::protocol::xproto::{ChangeGCAux, ConnectionExt, CreateGCAux, ImageFormat, Rectangle};
use x11rb::rust_connection::RustConnection;
use x11rb::wrapper::ConnectionExt as _;

pub const W: u32 = 1280;
pub const H: u32 = 720;

/// A running Xvfb, killed on drop.
pub struct Xvfb {
    pub display: String,
    /// The server process; `None` for a handle on a display owned elsewhere.
    child: Option<Child>,
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Xvfb {
    pub fn start() -> Xvfb {
        for _ in 0..50 {
            let n = 200 + (std::process::id() % 400) + rand_u32() % 3000;
            if std::path::Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                || std::path::Path::new(&format!("/tmp/.X{n}-lock")).exists()
            {
                continue;
            }
            let child = Command::new("Xvfb")
                .args([
                    format!(":{n}"),
                    "-screen".into(),
                    "0".into(),
                    format!("{W}x{H}x24"),
                    "-noreset".into(),
                    "-nolisten".into(),
                    "tcp".into(),
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("Xvfb is not installed: run `make test` (it installs xvfb)");
            let display = format!(":{n}");
            let mut x = Xvfb {
                display: display.clone(),
                child: Some(child),
            };
            for _ in 0..100 {
                if RustConnection::connect(Some(&display)).is_ok() {
                    return x;
                }
                if let Some(Ok(Some(_))) = x.child.as_mut().map(Child::try_wait) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("could not start Xvfb");
    }

    /// A handle on an Xvfb another handle owns (it is not killed on drop of this one).
    pub fn attach(display: &str) -> Xvfb {
        Xvfb {
            display: display.to_string(),
            child: None,
        }
    }

    fn conn(&self) -> (RustConnection, u32) {
        let (c, screen) = RustConnection::connect(Some(&self.display)).unwrap();
        let root = c.setup().roots[screen].root;
        (c, root)
    }

    /// Draws RGB pixels (`W`×`H`×3) onto the root window.
    pub fn draw(&self, rgb: &[u8]) {
        let (c, root) = self.conn();
        let gc = c.generate_id().unwrap();
        c.create_gc(gc, root, &CreateGCAux::new()).unwrap();
        const STRIP: u32 = 32;
        for y0 in (0..H).step_by(STRIP as usize) {
            let rows = STRIP.min(H - y0);
            let mut data = Vec::with_capacity((W * rows * 4) as usize);
            for y in y0..y0 + rows {
                for x in 0..W {
                    let i = ((y * W + x) * 3) as usize;
                    data.extend_from_slice(&[rgb[i + 2], rgb[i + 1], rgb[i], 0]);
                }
            }
            c.put_image(
                ImageFormat::Z_PIXMAP,
                root,
                gc,
                W as u16,
                rows as u16,
                0,
                y0 as i16,
                0,
                24,
                &data,
            )
            .unwrap();
        }
        c.sync().unwrap();
    }

    /// A connection that fills rectangles cheaply (animations in tests).
    pub fn painter(&self) -> Painter {
        let (c, root) = self.conn();
        let gc = c.generate_id().unwrap();
        c.create_gc(gc, root, &CreateGCAux::new()).unwrap();
        Painter { c, root, gc }
    }

    /// Grabs the root window as RGBA.
    pub fn grab(&self) -> Vec<u8> {
        let (c, root) = self.conn();
        let reply = c
            .get_image(ImageFormat::Z_PIXMAP, root, 0, 0, W as u16, H as u16, !0)
            .unwrap()
            .reply()
            .unwrap();
        reply
            .data
            .chunks_exact(4)
            .flat_map(|p| [p[2], p[1], p[0], 255])
            .collect()
    }

    pub fn pointer(&self) -> (i32, i32) {
        let (c, root) = self.conn();
        let r = c.query_pointer(root).unwrap().reply().unwrap();
        (i32::from(r.root_x), i32::from(r.root_y))
    }

    /// Keycodes the X server has down now.
    pub fn keys_down(&self) -> Vec<u8> {
        let (c, _) = self.conn();
        let map = c.query_keymap().unwrap().reply().unwrap().keys;
        (0..=255u8)
            .filter(|k| map[usize::from(*k) / 8] & (1 << (k % 8)) != 0)
            .collect()
    }

    pub fn warp(&self, x: i16, y: i16) {
        let (c, root) = self.conn();
        c.warp_pointer(x11rb::NONE, root, 0, 0, 0, 0, x, y).unwrap();
        c.sync().unwrap();
    }
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    (t.subsec_nanos() ^ (t.as_secs() as u32).rotate_left(7)).wrapping_mul(2654435761)
}

fn hash(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51afd7ed558ccd);
    x ^= x >> 33;
    x
}

/// A deterministic desktop: gradient background, a white "document" of black and coloured
/// glyph-like text, and a blue window with a title bar; `t` moves the window.
pub fn desktop(t: u32) -> Vec<u8> {
    let mut v = vec![0u8; (W * H * 3) as usize];
    let (wx, wy) = (700 + (t * 13) % 400, 150 + (t * 7) % 300);
    for y in 0..H {
        for x in 0..W {
            let i = ((y * W + x) * 3) as usize;
            let (mut r, mut g, mut b) = ((x * 255 / W) as u8, (y * 255 / H) as u8, 120u8);
            if (40..640).contains(&x) && (40..680).contains(&y) {
                (r, g, b) = (250, 250, 245);
                let (cx, cy, px, py) = ((x - 40) / 8, (y - 40) / 16, (x - 40) % 8, (y - 40) % 16);
                if px < 6 && (2..14).contains(&py) && cx % 11 != 10 {
                    let glyph = hash(u64::from(cx) << 32 | u64::from(cy)) % 96;
                    if hash(glyph * 1000 + u64::from(py * 8 + px)) % 100 < 35 {
                        (r, g, b) = if cy % 5 == 3 {
                            (200, 30, 30)
                        } else {
                            (20, 20, 30)
                        };
                    }
                }
            }
            if (wx..wx + 300).contains(&x) && (wy..wy + 200).contains(&y) {
                (r, g, b) = if y < wy + 20 {
                    (200, 200, 210)
                } else {
                    (40, 90, 200)
                };
            }
            v[i] = r;
            v[i + 1] = g;
            v[i + 2] = b;
        }
    }
    v
}

/// Fills rectangles on the root window over one connection.
pub struct Painter {
    c: RustConnection,
    root: u32,
    gc: u32,
}

impl Painter {
    /// Fills `w`×`h` at (`x`, `y`) with `rgb` (0xRRGGBB) and waits until the server did it.
    pub fn fill(&self, x: i16, y: i16, w: u16, h: u16, rgb: u32) {
        self.c
            .change_gc(self.gc, &ChangeGCAux::new().foreground(rgb))
            .unwrap();
        self.c
            .poly_fill_rectangle(
                self.root,
                self.gc,
                &[Rectangle {
                    x,
                    y,
                    width: w,
                    height: h,
                }],
            )
            .unwrap();
        self.c.sync().unwrap();
    }
}
