//! Text a server sends, made safe before a viewer or host shows it: error sentences, node
//! paths, account and group names, the server's name go through
//! [`portico_core::text::clean`] (no terminal escapes, no bidi tricks, bounded length). The
//! server is the organisation's own and pinned, but what it says is printed on terminals
//! and drawn in windows like a stranger's text.

use portico_core::text::clean;
use portico_core::wire::signal::SignalResponse;

/// Longest sentence kept.
const MAX_SENTENCE: usize = 500;
/// Longest node path kept.
const MAX_PATH: usize = 512;
/// Longest name kept.
const MAX_NAME: usize = 128;

/// `r` with its text cleaned.
pub fn clean_response(r: SignalResponse) -> SignalResponse {
    use SignalResponse as R;
    match r {
        R::Error(mut e) => {
            e.message = clean(&e.message, MAX_SENTENCE);
            R::Error(e)
        }
        R::Found(mut f) => {
            f.node_path = clean(&f.node_path, MAX_PATH);
            R::Found(f)
        }
        R::LoggedIn(mut l) => {
            l.user = clean(&l.user, MAX_NAME);
            l.server_name = clean(&l.server_name, MAX_NAME);
            l.groups = l.groups.iter().map(|g| clean(g, MAX_NAME)).collect();
            R::LoggedIn(l)
        }
        R::Nodes(mut n) => {
            for e in &mut n.entries {
                e.path = clean(&e.path, MAX_PATH);
            }
            R::Nodes(n)
        }
        R::Registered(mut g) => {
            g.node_path = clean(&g.node_path, MAX_PATH);
            g.server_name = clean(&g.server_name, MAX_NAME);
            R::Registered(g)
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portico_core::wire::signal::{ErrorCode, SignalError};

    #[test]
    fn a_servers_words_are_cleaned() {
        let r = clean_response(SignalResponse::Error(SignalError {
            code: ErrorCode::Forbidden,
            message: "no\u{1b}[2J \u{202E}way".into(),
            retry_after_ms: None,
        }));
        let SignalResponse::Error(e) = r else {
            panic!()
        };
        assert!(
            !e.message.chars().any(portico_core::text::hidden),
            "{:?}",
            e.message
        );
    }
}
