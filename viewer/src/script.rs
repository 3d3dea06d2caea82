//! `--input-script`: JSON lines, one event each with a delay before it:
//!
//! ```text
//! {"delay_ms":300,"event":{"pointer_move":{"x":640,"y":360}}}
//! {"delay_ms":50,"event":{"button":{"button":"left","down":true}}}
//! {"delay_ms":50,"event":{"button":{"button":"left","down":false}}}
//! {"delay_ms":0,"event":{"wheel":{"dx":0,"dy":-3}}}
//! {"delay_ms":0,"event":{"key":{"keysym":"Return","down":true}}}
//! {"delay_ms":0,"event":{"text":{"text":"hello"}}}
//! ```
//!
//! A line may instead switch the shared monitor: `{"delay_ms":500,"monitor":1}` (an index
//! into the host's monitor list) or `{"delay_ms":500,"monitor":"desktop"}`.
//!
//! Blank lines and lines starting with `#` are ignored.

use std::path::Path;
use std::time::Duration;

use portico_core::wire::session::InputEvent;
use serde::Deserialize;

/// Longest delay accepted on one line (a typo of 300000 for 300 should not hang a test).
const MAX_DELAY_MS: u64 = 60_000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    #[serde(default)]
    delay_ms: u64,
    #[serde(default)]
    event: Option<InputEvent>,
    #[serde(default)]
    monitor: Option<MonitorChoice>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum MonitorChoice {
    Index(u8),
    Named(String),
}

/// One step of a script.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Send this input.
    Input(InputEvent),
    /// Switch the shared monitor (`None`: the whole desktop).
    Monitor(Option<u8>),
}

/// Parses a script; errors name the line.
pub fn parse(text: &str) -> Result<Vec<(Duration, Step)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let l: Line = serde_json::from_str(line).map_err(|e| format!("line {}: {e}", n + 1))?;
        if l.delay_ms > MAX_DELAY_MS {
            return Err(format!(
                "line {}: delay_ms {} is more than {MAX_DELAY_MS}",
                n + 1,
                l.delay_ms
            ));
        }
        let step = match (l.event, l.monitor) {
            (Some(ev), None) => Step::Input(ev),
            (None, Some(MonitorChoice::Index(i))) => Step::Monitor(Some(i)),
            (None, Some(MonitorChoice::Named(n))) if n == "desktop" => Step::Monitor(None),
            _ => {
                return Err(format!(
                    "line {}: give either \"event\" or \"monitor\" (an index or \"desktop\")",
                    n + 1
                ))
            }
        };
        out.push((Duration::from_millis(l.delay_ms), step));
    }
    Ok(out)
}

/// Reads and parses a script file.
pub fn load(path: &Path) -> Result<Vec<(Duration, Step)>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_core::wire::session::MouseButton;

    #[test]
    fn documented_schema_parses() {
        let s = r#"
# move and click
{"delay_ms":300,"event":{"pointer_move":{"x":640,"y":360}}}
{"delay_ms":50,"event":{"button":{"button":"left","down":true}}}
{"event":{"wheel":{"dx":0,"dy":-3}}}
{"delay_ms":0,"event":{"key":{"keysym":"Return","down":true}}}
{"delay_ms":0,"event":{"text":{"text":"hello"}}}
"#;
        let v = parse(s).unwrap();
        assert_eq!(v.len(), 5);
        assert_eq!(
            v[0],
            (
                Duration::from_millis(300),
                Step::Input(InputEvent::PointerMove { x: 640, y: 360 })
            )
        );
        assert_eq!(
            v[1].1,
            Step::Input(InputEvent::Button {
                button: MouseButton::Left,
                down: true
            })
        );
        let m = parse("{\"monitor\":1}\n{\"delay_ms\":5,\"monitor\":\"desktop\"}").unwrap();
        assert_eq!(m[0].1, Step::Monitor(Some(1)));
        assert_eq!(m[1], (Duration::from_millis(5), Step::Monitor(None)));
        assert!(parse(r#"{"monitor":"left"}"#).is_err());
        assert!(parse(r#"{"delay_ms":1}"#).is_err());
        assert!(parse(r#"{"delay_ms":1,"event":{"fly":{}}}"#)
            .unwrap_err()
            .starts_with("line 1"));
        assert!(parse(r#"{"delay_ms":999999,"event":{"text":{"text":""}}}"#).is_err());
    }
}
