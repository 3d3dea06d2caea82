//! Who may use the owner console: requests that name a loopback host and carry the token —
//! as a bearer header (the CLI, the page's API calls), in the query (the page and its event
//! stream), or as the cookie a one-time code was swapped for (with the `X-Portico-Console`
//! header on calls that change something: a cross-site form cannot send it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};

/// The cookie that carries the token after a code was swapped.
pub(super) const COOKIE: &str = "portico_console";
/// The header the page adds to its calls (required with the cookie).
pub(super) const HEADER: &str = "x-portico-console";
/// How long a one-time code is good for.
const CODE_LIFETIME: Duration = Duration::from_secs(60);
/// One-time codes alive at once (the oldest goes first).
const MAX_CODES: usize = 16;

/// `n` random bytes in hex.
pub(super) fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut b);
    hex::encode(b)
}

/// Live one-time codes and when each was made.
#[derive(Debug, Clone, Default)]
pub(super) struct Codes(Arc<Mutex<HashMap<String, Instant>>>);

impl Codes {
    fn mint(&self, now: Instant) -> Option<String> {
        let mut codes = self.0.lock().ok()?;
        codes.retain(|_, made| now.saturating_duration_since(*made) < CODE_LIFETIME);
        if codes.len() >= MAX_CODES {
            let oldest = codes
                .iter()
                .min_by_key(|(_, m)| **m)
                .map(|(c, _)| c.clone())?;
            codes.remove(&oldest);
        }
        let code = random_hex(16);
        codes.insert(code.clone(), now);
        Some(code)
    }

    /// Takes `code` if it is live (once: a second use fails).
    fn take(&self, code: &str, now: Instant) -> bool {
        let Ok(mut codes) = self.0.lock() else {
            return false;
        };
        let found = codes
            .keys()
            .find(|c| token_ok(c, code))
            .cloned()
            .and_then(|c| codes.remove(&c));
        found.is_some_and(|made| now.saturating_duration_since(made) < CODE_LIFETIME)
    }
}

/// Opens the console in the owner's browser with a one-time code instead of the token, so
/// the command line (`/proc/*/cmdline`, readable by every local user) holds nothing that
/// lasts.
#[derive(Debug, Clone)]
pub struct ConsoleLink {
    base: String,
    codes: Codes,
}

impl ConsoleLink {
    pub(super) fn new(base: String, codes: Codes) -> Self {
        Self { base, codes }
    }

    /// A URL good for one visit within a minute.
    pub fn one_time_url(&self) -> Option<String> {
        let code = self.codes.mint(Instant::now())?;
        Some(format!("{}/?code={code}", self.base))
    }
}

/// `GET /?code=C`: a live code becomes the token's cookie and a redirect to the page.
pub(super) fn swap_code(req: &HttpRequest, codes: &Codes, code: &str, token: &str) -> HttpResponse {
    if !loopback_host(req) {
        return HttpResponse::Forbidden().body("the owner console answers only on loopback");
    }
    if !codes.take(code, Instant::now()) {
        return HttpResponse::Unauthorized()
            .body("this link was used already or is too old: open the console again");
    }
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .insert_header((
            header::SET_COOKIE,
            format!("{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"),
        ))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish()
}

pub(super) fn token_ok(expected: &str, given: &str) -> bool {
    // Constant time in the length of the expected token.
    let (a, b) = (expected.as_bytes(), given.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether the request names a loopback host. Only the `Host` header (or an HTTP/2
/// authority) counts: actix's `connection_info()` would believe `X-Forwarded-Host` and
/// `Forwarded`, which a DNS-rebinding page can set on its own requests.
pub(super) fn loopback_host(req: &HttpRequest) -> bool {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()));
    host.is_some_and(|h| is_loopback_name(&h))
}

/// `127.0.0.1`, `localhost` or `[::1]`, with or without a port.
fn is_loopback_name(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map(|(a, _)| a).unwrap_or(""),
        None => host.split_once(':').map(|(h, _)| h).unwrap_or(host),
    };
    matches!(name, "127.0.0.1" | "localhost" | "::1")
}

fn bearer(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// A query parameter.
pub(super) fn query(req: &HttpRequest, name: &str) -> Option<String> {
    web::Query::<HashMap<String, String>>::from_query(req.query_string())
        .ok()?
        .get(name)
        .filter(|v| !v.is_empty())
        .cloned()
}

/// The cookie's token: on reads, and on changes only with the page's header.
fn cookie(req: &HttpRequest) -> Option<String> {
    let safe = req.method() == actix_web::http::Method::GET;
    if !safe && !req.headers().contains_key(HEADER) {
        return None;
    }
    req.cookie(COOKIE).map(|c| c.value().to_string())
}

/// The rejection for a request that is not from loopback with the right token.
pub(super) fn check(req: &HttpRequest, token: &str, allow_query: bool) -> Option<HttpResponse> {
    if !loopback_host(req) {
        return Some(HttpResponse::Forbidden().body("the owner console answers only on loopback"));
    }
    let given = bearer(req)
        .or_else(|| allow_query.then(|| query(req, "token")).flatten())
        .or_else(|| cookie(req));
    match given {
        Some(t) if token_ok(token, &t) => None,
        _ => Some(
            HttpResponse::Unauthorized()
                .body("missing or wrong token: open the console URL that `portico host` printed"),
        ),
    }
}
