use actix::Actor;
use actix_web::test::{call_service, init_service, TestRequest};

use super::auth::{loopback_host, Codes, COOKIE, HEADER};
use super::*;

#[test]
fn only_the_host_header_decides_loopback() {
    let host = |h: &str| {
        TestRequest::default()
            .insert_header(("host", h))
            .to_http_request()
    };
    for ok in [
        "127.0.0.1:5651",
        "localhost:5651",
        "[::1]:5651",
        "localhost",
        "[::1]",
    ] {
        assert!(loopback_host(&host(ok)), "{ok}");
    }
    for bad in [
        "evil.example:5651",
        "127.0.0.1.evil.example",
        "[::2]:5651",
        "",
    ] {
        assert!(!loopback_host(&host(bad)), "{bad}");
    }
    // A rebinding page names loopback in the forwarding headers; they do not count.
    let spoofed = TestRequest::default()
        .insert_header(("host", "evil.example:5651"))
        .insert_header(("x-forwarded-host", "localhost:5651"))
        .insert_header(("forwarded", "host=localhost:5651"))
        .to_http_request();
    assert!(!loopback_host(&spoofed));
}

/// The finding: a notification's click ran `xdg-open URL?token=T`, and every local user
/// can read a command line. Now the click carries a code good for one visit.
#[actix_web::test]
async fn a_one_time_code_becomes_an_http_only_cookie_once() {
    let access = crate::access::AccessControl::new(
        libp2p::PeerId::random(),
        portico_core::policy::HostSettings::default(),
        vec![],
        std::time::Duration::from_secs(5),
        None,
    )
    .start();
    let codes = Codes::default();
    let link = ConsoleLink::new("http://127.0.0.1:5651".into(), codes.clone());
    let st = web::Data::new(AppState {
        token: "secret-token".into(),
        codes,
        access,
    });
    let app = init_service(App::new().app_data(st).configure(routes)).await;
    let url = link.one_time_url().unwrap();
    assert!(!url.contains("secret-token"), "{url}");
    let path = url.trim_start_matches("http://127.0.0.1:5651");
    let get = |p: &str| {
        TestRequest::get()
            .uri(p)
            .insert_header(("host", "127.0.0.1:5651"))
    };
    let r = call_service(&app, get(path).to_request()).await;
    assert_eq!(r.status(), 303);
    let cookie = r
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    // Used once: a second visit with the same code is refused.
    let again = call_service(&app, get(path).to_request()).await;
    assert_eq!(again.status(), 401);
    // The cookie reads the state; a change needs the page's header as well.
    let jar = actix_web::cookie::Cookie::new(COOKIE, "secret-token");
    let r = call_service(&app, get("/api/state").cookie(jar.clone()).to_request()).await;
    assert_eq!(r.status(), 200);
    let post = |with_header: bool| {
        let mut t = TestRequest::post()
            .uri("/api/sharing")
            .insert_header(("host", "127.0.0.1:5651"))
            .cookie(jar.clone())
            .set_json(serde_json::json!({"allow_guests": false}));
        if with_header {
            t = t.insert_header((HEADER, "1"));
        }
        t.to_request()
    };
    assert_eq!(call_service(&app, post(false)).await.status(), 401);
    assert_eq!(call_service(&app, post(true)).await.status(), 204);
    // A made-up code is refused.
    let r = call_service(&app, get("/?code=00ff").to_request()).await;
    assert_eq!(r.status(), 401);
}
