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
    event: InputEvent,
}

/// Parses a script; errors name the line.
pub fn parse(text: &str) -> Result<Vec<(Duration, InputEvent)>, String> {
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
        out.push((Duration::from_millis(l.delay_ms), l.event));
    }
    Ok(out)
}

/// Reads and parses a script file.
pub fn load(path: &Path) -> Result<Vec<(Duration, InputEvent)>, String> {
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
                InputEvent::PointerMove { x: 640, y: 360 }
            )
        );
        assert_eq!(
            v[1].1,
            InputEvent::Button {
                button: MouseButton::Left,
                down: true
            }
        );
        assert!(parse(r#"{"delay_ms":1,"event":{"fly":{}}}"#)
            .unwrap_err()
            .starts_with("line 1"));
        assert!(parse(r#"{"delay_ms":999999,"event":{"text":{"text":""}}}"#).is_err());
    }
}
