//! The owner console: a small local web page (the tray pop-up of the seeds) on loopback,
//! protected by a random token, plus the JSON API the page and the CLI use.
//!
//! - `GET /?token=T` — the page (plain HTML, no CDN), updated live over Server-Sent Events.
//! - `GET /api/state`, `GET /api/events?token=T` (SSE) — what the owner sees.
//! - `POST /api/requests/{id}` `{"answer":"accept"|"accept_view_only"|"refuse","time_limit_secs":900}`
//! - `POST /api/services/{id}` `{"allow":true}` (file transfers, clipboard)
//! - `POST /api/sessions/{id}/kick`, `POST /api/sessions/{id}/mode` `{"view_only":true}`
//! - `POST /api/sharing` `{"allow_guests":true,"allow_visitors":false}`
//! - `PUT /api/acl` `[{"principal":"group:Sales","permissions":["view"],"approval":"never"}]`
//!   (the managed part of the ACL, `DATA/acl.toml`)
//!
//! API calls need `Authorization: Bearer T`, or the console's cookie together with the
//! `X-Portico-Console` header (a cross-site form can send neither); only the page and the
//! event stream accept the token in the query. `GET /?code=C` swaps a one-time code (what a
//! notification's click opens: no token on a command line other users can read) for an
//! HttpOnly, SameSite=Strict cookie. Requests whose `Host` is not a loopback name are
//! refused (DNS rebinding). The URL and token are written to `DATA/console.json` (mode
//! 0600) for `portico requests|accept|refuse|sessions|kick`.

use std::net::SocketAddr;
use std::path::Path;

use actix::Addr;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use portico_core::policy::OwnerAnswer;
use serde::{Deserialize, Serialize};

mod auth;

pub use auth::ConsoleLink;

use crate::access::AnswerService;
use crate::access::{
    AccessControl, Answer, GetState, Kick, SetManagedAcl, SetSharing, SetViewOnly, WatchChanges,
};

/// Where the CLI finds the console.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConsoleFile {
    /// Base URL (`http://127.0.0.1:PORT`).
    pub url: String,
    /// The token.
    pub token: String,
}

struct AppState {
    token: String,
    codes: auth::Codes,
    access: Addr<AccessControl>,
}

/// The rejection for a request that is not from loopback with the right token.
fn check(req: &HttpRequest, st: &AppState, allow_query: bool) -> Option<HttpResponse> {
    auth::check(req, &st.token, allow_query)
}

async fn page(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    if let Some(code) = auth::query(&req, "code") {
        return auth::swap_code(&req, &st.codes, &code, &st.token);
    }
    if let Some(r) = check(&req, &st, true) {
        return r;
    }
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((
            "Content-Security-Policy",
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'",
        ))
        .body(PAGE)
}

async fn state(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    if let Some(r) = check(&req, &st, false) {
        return r;
    }
    match st.access.send(GetState).await {
        Ok(s) => HttpResponse::Ok().json(s),
        Err(_) => HttpResponse::ServiceUnavailable().body("the host is stopping"),
    }
}

async fn events(req: HttpRequest, st: web::Data<AppState>) -> HttpResponse {
    if let Some(r) = check(&req, &st, true) {
        return r;
    }
    let Ok(rx) = st.access.send(WatchChanges).await else {
        return HttpResponse::ServiceUnavailable().body("the host is stopping");
    };
    let first = futures::stream::once(async {
        Ok::<_, actix_web::Error>(web::Bytes::from_static(b"data: 0\n\n"))
    });
    let rest = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok(v) => return Some((Ok(web::Bytes::from(format!("data: {v}\n\n"))), rx)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    use futures::StreamExt;
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-store"))
        .streaming(first.chain(rest))
}

/// Body of `POST /api/requests/{id}`.
#[derive(Debug, Deserialize, Serialize)]
pub struct AnswerBody {
    /// accept, accept_view_only, refuse.
    pub answer: OwnerAnswer,
    /// Time limit in seconds (absent or 0: until kicked).
    #[serde(default)]
    pub time_limit_secs: Option<u64>,
}

fn reply(r: Result<Result<(), String>, actix::MailboxError>) -> HttpResponse {
    match r {
        Ok(Ok(())) => HttpResponse::NoContent().finish(),
        Ok(Err(e)) => HttpResponse::NotFound().body(e),
        Err(_) => HttpResponse::ServiceUnavailable().body("the host is stopping"),
    }
}

async fn answer(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<u64>,
    body: web::Json<AnswerBody>,
) -> HttpResponse {
    if let Some(r) = check(&req, &st, false) {
        return r;
    }
    reply(
        st.access
            .send(Answer {
                request_id: *id,
                answer: body.answer,
                time_limit_secs: body.time_limit_secs,
            })
            .await,
    )
}

/// Body of `POST /api/services/{id}`.
#[derive(Debug, Deserialize, Serialize)]
pub struct ServiceBody {
    /// Allow (true) or deny.
    pub allow: bool,
}

async fn service(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<u64>,
    body: web::Json<ServiceBody>,
) -> HttpResponse {
    if let Some(r) = check(&req, &st, false) {
        return r;
    }
    reply(
        st.access
            .send(AnswerService {
                id: *id,
                allow: body.allow,
            })
            .await,
    )
}

async fn kick(req: HttpRequest, st: web::Data<AppState>, id: web::Path<u64>) -> HttpResponse {
    if let Some(r) = check(&req, &st, false) {
        return r;
    }
    reply(st.access.send(Kick(*id)).await)
}

/// Body of `POST /api/sessions/{id}/mode`.
#[derive(Debug, Deserialize, Serialize)]
pub struct ModeBody {
    /// View-only (true) or interactive.
    pub view_only: bool,
}

async fn mode(
    req: HttpRequest,
    st: web::Data<AppState>,
    id: web::Path<u64>,
    body: web::Json<ModeBody>,
) -> HttpResponse {
    if let Some(r) = check(&req, &st, false) {
        return r;
    }
    reply(
        st.access
            .send(SetViewOnly {
                session_id: *id,
                view_only: body.view_only,
            })
            .await,
    )
}

async fn sharing(
    req: HttpRequest,
    st: web::Data<AppState>,
    body: web::Json<SetSharing>,
) -> HttpResponse {
    if let Some(r) = check(&req, &st, false) {
        return r;
    }
    match st.access.send(body.into_inner()).await {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(_) => HttpResponse::ServiceUnavailable().body("the host is stopping"),
    }
}

async fn acl(
    req: HttpRequest,
    st: web::Data<AppState>,
    body: web::Json<Vec<portico_core::policy::AclEntry>>,
) -> HttpResponse {
    if let Some(r) = check(&req, &st, false) {
        return r;
    }
    match st.access.send(SetManagedAcl(body.into_inner())).await {
        Ok(()) => HttpResponse::NoContent().finish(),
        Err(_) => HttpResponse::ServiceUnavailable().body("the host is stopping"),
    }
}

/// The routes of the console.
fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::JsonConfig::default().limit(256 * 1024))
        .route("/", web::get().to(page))
        .route("/api/state", web::get().to(state))
        .route("/api/events", web::get().to(events))
        .route("/api/requests/{id}", web::post().to(answer))
        .route("/api/services/{id}", web::post().to(service))
        .route("/api/sessions/{id}/kick", web::post().to(kick))
        .route("/api/sessions/{id}/mode", web::post().to(mode))
        .route("/api/sharing", web::post().to(sharing))
        .route("/api/acl", web::put().to(acl));
}

/// A running console: the URL with its token (for the owner's terminal) and the link
/// that opens it in a browser without the token on a command line.
#[derive(Debug, Clone)]
pub struct Console {
    /// `http://127.0.0.1:PORT/?token=T`.
    pub url: String,
    /// Mints one-time links.
    pub link: ConsoleLink,
}

/// Why the console did not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// Not a loopback address.
    #[error("the owner console listens on loopback only (use 127.0.0.1:PORT), not {addr}")]
    NotLoopback {
        /// The address asked for.
        addr: SocketAddr,
    },
    /// The port could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address (a free port on its IP when the default was taken).
        addr: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// Bound, but no address came back.
    #[error("the console has no address after binding")]
    NoAddress,
    /// `console.json` could not be encoded.
    #[error("cannot encode console.json: {0}")]
    Encode(#[source] serde_json::Error),
    /// `console.json` could not be written.
    #[error("cannot write console.json: {0}")]
    File(#[source] portico_core::identity::IdentityError),
}

/// Starts the console on `addr` (must be loopback).
pub fn start(
    addr: SocketAddr,
    data: &Path,
    access: Addr<AccessControl>,
) -> Result<Console, ConsoleError> {
    if !addr.ip().is_loopback() {
        return Err(ConsoleError::NotLoopback { addr });
    }
    let token = auth::random_hex(24);
    let codes = auth::Codes::default();
    let app_state = web::Data::new(AppState {
        token: token.clone(),
        codes: codes.clone(),
        access,
    });
    let app = move || App::new().app_data(app_state.clone()).configure(routes);
    let serve = |addr: SocketAddr| {
        HttpServer::new(app.clone())
            .workers(1)
            .disable_signals()
            .bind(addr)
    };
    let server = match serve(addr) {
        Ok(s) => s,
        // Another host on this machine holds the default port: this one takes a free port
        // (the CLI finds it through console.json in this host's data directory).
        Err(e)
            if e.kind() == std::io::ErrorKind::AddrInUse
                && addr.port() == portico_signal_client::ports::CONSOLE_PORT =>
        {
            tracing::info!(%addr, "the default console port is taken (another host on this machine?); using a free one");
            serve(SocketAddr::new(addr.ip(), 0)).map_err(|source| ConsoleError::Listen {
                addr: format!("{}:0", addr.ip()),
                source,
            })?
        }
        Err(source) => {
            return Err(ConsoleError::Listen {
                addr: addr.to_string(),
                source,
            })
        }
    };
    let bound = server
        .addrs()
        .first()
        .copied()
        .ok_or(ConsoleError::NoAddress)?;
    actix::spawn(async move {
        if let Err(e) = server.run().await {
            tracing::error!(error = %e, "owner console stopped");
        }
    });
    let url = format!("http://{bound}");
    let file = ConsoleFile {
        url: url.clone(),
        token: token.clone(),
    };
    let json = serde_json::to_vec_pretty(&file).map_err(ConsoleError::Encode)?;
    portico_core::identity::replace_private(&data.join(portico_core::data_dir::CONSOLE), &json)
        .map_err(ConsoleError::File)?;
    Ok(Console {
        url: format!("{url}/?token={token}"),
        link: ConsoleLink::new(url, codes),
    })
}

const PAGE: &str = include_str!("console/page.html");

#[cfg(test)]
mod tests;
