//! Text a host sends, made safe before the viewer shows it: a host is a stranger to the
//! viewer as much as a guest is to the owner. Refusal and goodbye sentences, service
//! answers, file results, browse errors and listing names go through [`crate::text::clean`]
//! (no terminal escapes, no bidi tricks, bounded length); listing names that are not a
//! single path component (empty, `.`, `..`, or holding `/`) are dropped.

use crate::text::clean;
use crate::wire::session::{DirEntry, SessionMessage};

/// Longest sentence kept from a host, in characters.
const MAX_SENTENCE: usize = 500;
/// Longest reason code kept.
const MAX_CODE: usize = 64;
/// Longest listing name kept.
const MAX_NAME: usize = 255;

/// `msg` with its text cleaned.
pub(super) fn clean_message(msg: SessionMessage) -> SessionMessage {
    use SessionMessage as M;
    let sentence = |s: String| clean(&s, MAX_SENTENCE);
    match msg {
        M::Refused(mut r) => {
            r.code = clean(&r.code, MAX_CODE);
            r.message = sentence(r.message);
            M::Refused(r)
        }
        M::Bye(mut b) => {
            b.message = sentence(b.message);
            M::Bye(b)
        }
        M::ServiceDecision(mut d) => {
            d.message = sentence(d.message);
            M::ServiceDecision(d)
        }
        M::FileResult(mut r) => {
            r.message = sentence(r.message);
            M::FileResult(r)
        }
        M::Listing(mut l) => {
            l.error = l.error.map(sentence);
            l.entries = l.entries.into_iter().filter_map(entry).collect();
            M::Listing(l)
        }
        M::DownloadEnd(mut e) => {
            e.error = e.error.map(sentence);
            M::DownloadEnd(e)
        }
        other => other,
    }
}

fn entry(mut e: DirEntry) -> Option<DirEntry> {
    e.name = clean(&e.name, MAX_NAME);
    let single = !e.name.is_empty() && e.name != "." && e.name != ".." && !e.name.contains('/');
    single.then_some(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::session::{Bye, ByeReason, Listing, Refused};

    #[test]
    fn a_hosts_text_is_cleaned_and_odd_names_dropped() {
        let r = clean_message(SessionMessage::Refused(Refused {
            code: "x\u{1b}[2J".into(),
            message: "go \u{202E}away\n\u{1b}]0;pwned\u{7}".into(),
        }));
        let SessionMessage::Refused(r) = r else {
            panic!()
        };
        assert!(
            !r.message.chars().any(crate::text::hidden),
            "{:?}",
            r.message
        );
        assert!(!r.code.contains('\u{1b}'));
        let b = clean_message(SessionMessage::Bye(Bye {
            reason: ByeReason::Kicked,
            message: "a".repeat(10_000),
        }));
        let SessionMessage::Bye(b) = b else { panic!() };
        assert_eq!(b.message.chars().count(), MAX_SENTENCE);
        let e = |name: &str| DirEntry {
            name: name.into(),
            dir: false,
            size: 1,
            modified: 0,
        };
        let l = clean_message(SessionMessage::Listing(Listing {
            req: 1,
            entries: vec![
                e("ok.txt"),
                e(".."),
                e("a/b"),
                e(""),
                e("bad\u{1b}[31m.txt"),
            ],
            truncated: false,
            error: None,
        }));
        let SessionMessage::Listing(l) = l else {
            panic!()
        };
        let names: Vec<_> = l.entries.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["ok.txt", "bad[31m.txt"]);
    }
}
