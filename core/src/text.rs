//! Text from strangers, made safe to show: display names, request messages, agent strings
//! reach the owner's console, the CLI, notifications and audit logs.
//!
//! [`clean`] removes what could fake or hide text there: control characters (terminal
//! escapes start with ESC), bidirectional overrides and isolates (which can make
//! `exe.txt` read as `txt.exe`), and invisible format characters; line breaks become
//! spaces; runs of spaces collapse; the result is cut at a character limit.

/// Longest display name kept, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// Whether `c` is removed: controls, bidi embeddings/overrides/isolates/marks, zero-width
/// and other invisible format characters (the zero-width joiner stays: emoji need it).
pub fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(c,
            '\u{061C}' | '\u{200B}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}' | '\u{206A}'..='\u{206F}'
            | '\u{FEFF}' | '\u{FFF9}'..='\u{FFFB}')
}

/// `s` without hidden characters, line breaks and tabs as single spaces, trimmed, at most
/// `max_chars` characters.
pub fn clean(s: &str, max_chars: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max_chars * 4));
    let mut count = 0;
    let mut space = false;
    for c in s.chars() {
        if count >= max_chars {
            break;
        }
        let c = if matches!(c, '\n' | '\r' | '\t') {
            ' '
        } else {
            c
        };
        if hidden(c) || (c == ' ' && (space || count == 0)) {
            continue;
        }
        space = c == ' ';
        out.push(c);
        count += 1;
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_bidi_and_invisibles_go_lines_fold_and_length_is_cut() {
        assert_eq!(clean("Bob\x1b[2J\x07", 64), "Bob[2J");
        assert_eq!(clean("invoice\u{202E}fdp.exe", 64), "invoicefdp.exe");
        assert_eq!(clean("a\u{2066}b\u{2069}c\u{200B}d\u{FEFF}", 64), "abcd");
        assert_eq!(
            clean("  line one\r\n\tline  two  ", 64),
            "line one line two"
        );
        assert_eq!(clean("👩\u{200D}💻 dev", 64), "👩\u{200D}💻 dev");
        assert_eq!(clean(&"é".repeat(100), 10).chars().count(), 10);
        assert_eq!(clean("\u{202E}\u{202E}", 64), "");
    }

    proptest! {
        #[test]
        fn never_leaves_a_hidden_character_or_exceeds_the_limit(s in ".*", max in 0usize..80) {
            let c = clean(&s, max);
            prop_assert!(c.chars().count() <= max);
            prop_assert!(!c.chars().any(hidden));
            prop_assert_eq!(clean(&c, max), c.clone());
        }
    }
}
