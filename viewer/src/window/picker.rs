//! The host list the window shows when `portico connect` starts without a target: the
//! address book, the hosts found on the LAN, and the signed-in server's node tree with
//! online state. A double click (or Enter) on a row connects to it.
//!
//! Text is drawn with an 8×8 bitmap font scaled up (ASCII; other characters show as `?`).

use std::time::{Duration, Instant};

use winit::keyboard::{Key, NamedKey};

/// Where a row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The address book.
    Book,
    /// Found on the LAN (mDNS).
    Lan,
    /// The signed-in server's node tree.
    Server,
}

impl Source {
    fn tag(self) -> &'static str {
        match self {
            Source::Book => "book",
            Source::Lan => "LAN",
            Source::Server => "server",
        }
    }
}

/// One row of the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PickEntry {
    /// Where it comes from.
    pub source: Source,
    /// What the row says first (a name, a node path).
    pub label: String,
    /// What it says after (a target, a fingerprint, online state).
    pub detail: String,
    /// What `portico connect` gets when it is chosen (empty: a heading, e.g. a server
    /// folder, that cannot be chosen).
    pub target: String,
}

/// Pixels per font pixel.
const SCALE: u32 = 2;
/// One character cell.
const CHAR: u32 = 8 * SCALE;
/// One row.
pub(crate) const ROW: u32 = 28;
/// Where the first row starts.
pub(crate) const TOP: u32 = 72;
/// Left margin.
const LEFT: u32 = 24;
/// Two clicks on one row within this are a double click.
const DOUBLE_CLICK: Duration = Duration::from_millis(500);

/// The list's state.
#[derive(Debug, Default)]
pub(crate) struct Picker {
    entries: Vec<PickEntry>,
    selected: usize,
    /// The last click: when and on which row.
    last_click: Option<(Instant, usize)>,
}

impl Picker {
    /// Adds rows (a row already listed is not repeated).
    pub(crate) fn add(&mut self, rows: Vec<PickEntry>) {
        for r in rows {
            if !self
                .entries
                .iter()
                .any(|e| e.source == r.source && e.target == r.target && e.label == r.label)
            {
                tracing::info!(source = r.source.tag(), label = %r.label, target = %r.target, "host list entry");
                self.entries.push(r);
            }
        }
    }

    /// The row at window height `y`.
    fn row_at(&self, y: f64) -> Option<usize> {
        if y < f64::from(TOP) {
            return None;
        }
        let i = ((y - f64::from(TOP)) / f64::from(ROW)) as usize;
        (i < self.entries.len()).then_some(i)
    }

    /// A left click at height `y`: selects the row; the second click on it within
    /// [`DOUBLE_CLICK`] chooses it (its target).
    pub(crate) fn click(&mut self, y: f64, now: Instant) -> Option<String> {
        let row = self.row_at(y)?;
        self.selected = row;
        let double = self
            .last_click
            .is_some_and(|(t, r)| r == row && now.duration_since(t) <= DOUBLE_CLICK);
        self.last_click = Some((now, row));
        let target = &self.entries[row].target;
        (double && !target.is_empty()).then(|| target.clone())
    }

    /// Up and Down move the selection; Enter chooses it.
    pub(crate) fn key(&mut self, key: &Key) -> Option<String> {
        match key {
            Key::Named(NamedKey::ArrowUp) => self.selected = self.selected.saturating_sub(1),
            Key::Named(NamedKey::ArrowDown) if self.selected + 1 < self.entries.len() => {
                self.selected += 1
            }
            Key::Named(NamedKey::Enter) => {
                return self
                    .entries
                    .get(self.selected)
                    .filter(|e| !e.target.is_empty())
                    .map(|e| e.target.clone())
            }
            _ => {}
        }
        None
    }

    /// Draws the list into `buf` (`w`×`h`, 0RGB).
    pub(crate) fn draw(&self, buf: &mut [u32], w: u32, h: u32) {
        buf.fill(0x0020_2428);
        let mut canvas = Canvas { buf, w, h };
        canvas.text(
            LEFT,
            24,
            "Choose a host: double-click, or arrows and Enter",
            0x00e8_e8e8,
        );
        if self.entries.is_empty() {
            canvas.text(
                LEFT,
                TOP + 6,
                "Looking on the LAN and at the server...",
                0x0090_9090,
            );
        }
        for (i, e) in self.entries.iter().enumerate() {
            let y = TOP + i as u32 * ROW;
            if i == self.selected {
                canvas.fill(0, y, w, ROW, 0x0030_5a8c);
            }
            let tag = format!("{:<7}", e.source.tag());
            canvas.text(LEFT, y + 6, &tag, 0x0090_b0d0);
            let label_x = LEFT + 8 * CHAR;
            canvas.text(label_x, y + 6, &e.label, 0x00ff_ffff);
            let detail_x = label_x + (e.label.chars().count().max(18) as u32 + 2) * CHAR;
            canvas.text(detail_x, y + 6, &e.detail, 0x00b0_b0b0);
        }
    }
}

/// A 0RGB pixel buffer to draw on (clipped at its edges).
pub(crate) struct Canvas<'a> {
    buf: &'a mut [u32],
    w: u32,
    h: u32,
}

impl<'a> Canvas<'a> {
    /// Draws on `buf`, `w`×`h`.
    pub(crate) fn new(buf: &'a mut [u32], w: u32, h: u32) -> Self {
        Self { buf, w, h }
    }

    pub(crate) fn fill(&mut self, x: u32, y: u32, w: u32, h: u32, color: u32) {
        for yy in y..(y + h).min(self.h) {
            for xx in x..(x + w).min(self.w) {
                self.buf[(yy * self.w + xx) as usize] = color;
            }
        }
    }

    pub(crate) fn text(&mut self, x: u32, y: u32, s: &str, color: u32) {
        for (i, c) in s.chars().enumerate() {
            let glyph = font8x8::legacy::BASIC_LEGACY
                .get(c as usize)
                .copied()
                .unwrap_or(font8x8::legacy::BASIC_LEGACY[usize::from(b'?')]);
            let cx = x + i as u32 * CHAR;
            if cx + CHAR > self.w {
                return;
            }
            for (gy, bits) in glyph.iter().enumerate() {
                for gx in 0..8u32 {
                    if bits & (1 << gx) != 0 {
                        self.fill(cx + gx * SCALE, y + gy as u32 * SCALE, SCALE, SCALE, color);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(source: Source, target: &str) -> PickEntry {
        PickEntry {
            source,
            label: target.into(),
            detail: String::new(),
            target: target.into(),
        }
    }

    #[test]
    fn a_double_click_or_enter_chooses_and_rows_are_not_repeated() {
        let mut p = Picker::default();
        p.add(vec![row(Source::Book, "office"), row(Source::Lan, "pc-7")]);
        p.add(vec![
            row(Source::Lan, "pc-7"),
            row(Source::Server, "/Lab/pc-9"),
        ]);
        assert_eq!(p.entries.len(), 3);
        let t0 = Instant::now();
        let second = f64::from(TOP + ROW + 3);
        assert_eq!(p.click(second, t0), None);
        assert_eq!(
            p.click(second, t0 + Duration::from_millis(200)),
            Some("pc-7".into())
        );
        // Too slow, or on another row: a selection, not a choice.
        assert_eq!(p.click(second, t0 + Duration::from_secs(2)), None);
        assert_eq!(
            p.click(f64::from(TOP + 3), t0 + Duration::from_millis(2100)),
            None
        );
        assert_eq!(p.click(f64::from(TOP + 40 * ROW), t0), None);
        assert_eq!(p.key(&Key::Named(NamedKey::ArrowDown)), None);
        assert_eq!(p.key(&Key::Named(NamedKey::ArrowDown)), None);
        assert_eq!(p.key(&Key::Named(NamedKey::ArrowDown)), None);
        assert_eq!(
            p.key(&Key::Named(NamedKey::Enter)),
            Some("/Lab/pc-9".into())
        );
        let mut buf = vec![0u32; 800 * 200];
        p.draw(&mut buf, 800, 200);
        assert!(buf.contains(&0x00ff_ffff), "labels are drawn");
    }
}
