//! Request hygiene by default: Host checks (RFC 9112 §3.2), malformed bodies, headers that
//! rewrite the target or the method, no heuristic freshness for requests with credentials, and
//! the admin routes on a listener of their own.

use crate::support;

use std::time::Duration;

use cachio_gateway::{Gateway, REWRITE_HEADERS};
use http::{HeaderName, Response};
use support::{Origin, Running, client, eventually, full, get, ok, send};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `raw` bytes on a new connection and reads until the gateway closes it (each request
/// here asks it to); returns the status code and the whole answer.
async fn raw(addr: std::net::SocketAddr, raw: &str) -> (u16, String) {
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    sock.write_all(raw.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    // A safety bound only: the gateway answers and closes at once.
    tokio::time::timeout(Duration::from_secs(10), sock.read_to_end(&mut out))
        .await
        .expect("the gateway answers and closes")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    (status, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9112_3_2_two_host_fields_are_a_400_and_never_reach_the_origin() {
    let origin = Origin::start(|_req| async { ok("max-age=60", "page") }).await;
    let gw = Running::start(Gateway::builder(origin.url())).await;
    let (status, text) = raw(
        gw.addr,
        "GET /x HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("more than one Host"), "{text}");
    for bad in ["Host: a.test\r\nHost: a.test\r\n", "Host: u@a.test\r\n", ""] {
        let req = format!("GET /x HTTP/1.1\r\n{bad}Connection: close\r\n\r\n");
        assert_eq!(raw(gw.addr, &req).await.0, 400, "{bad:?}");
    }
    // PURGE is checked too.
    let purge = "PURGE /x HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\nConnection: close\r\n\r\n";
    assert_eq!(raw(gw.addr, purge).await.0, 400);
    assert_eq!(origin.state.count(), 0, "the origin saw a refused request");
    // One valid Host goes through.
    let (status, _) = raw(
        gw.addr,
        "GET /x HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(origin.state.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9112_3_2_a_host_that_disagrees_with_an_absolute_form_target_is_a_400() {
    let origin = Origin::start(|_req| async { ok("max-age=60", "page") }).await;
    let gw = Running::start(Gateway::builder(origin.url())).await;
    for host in ["b.test", "a.test:8080"] {
        let req =
            format!("GET http://a.test/x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let (status, text) = raw(gw.addr, &req).await;
        assert_eq!(status, 400, "{host}: {text}");
        assert!(
            text.contains("not the request target's authority"),
            "{text}"
        );
    }
    assert_eq!(origin.state.count(), 0);
    // The same authority, written otherwise, is fine.
    let req = "GET http://a.test/x HTTP/1.1\r\nHost: A.test:80\r\nConnection: close\r\n\r\n";
    assert_eq!(raw(gw.addr, req).await.0, 200);
    assert_eq!(origin.state.last().headers["host"], "A.test:80");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_chunked_request_body_is_a_400_not_a_502() {
    let origin = Origin::start(|req| async move {
        use http_body_util::BodyExt;
        let body = req.into_body().collect().await;
        let body = body.map(|b| b.to_bytes()).unwrap_or_default();
        ok("no-store", body)
    })
    .await;
    let gw = Running::start(Gateway::builder(origin.url())).await;
    let head = "POST /upload HTTP/1.1\r\nHost: a.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    // A well-formed body goes through.
    let (status, text) = raw(gw.addr, &format!("{head}5\r\nhello\r\n0\r\n\r\n")).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.ends_with("hello"), "{text}");
    // A chunk size that is not hexadecimal, and a chunk longer than its size.
    for body in ["zz\r\nhello\r\n0\r\n\r\n", "2\r\nhello\r\n0\r\n\r\n"] {
        let (status, text) = raw(gw.addr, &format!("{head}{body}")).await;
        assert_eq!(status, 400, "{body:?}: {text}");
        assert!(text.contains("request body"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rewrite_headers_are_dropped_unless_passed() {
    let origin = Origin::start(|_req| async { ok("no-store", "") }).await;
    let c = client();
    let rewrite = REWRITE_HEADERS;
    let mut headers: Vec<(&str, &str)> = rewrite.iter().map(|n| (n.as_str(), "/admin")).collect();
    headers.push(("x-my-override", "DELETE"));
    headers.push(("x-kept", "yes"));
    let custom = HeaderName::from_static("x-my-override");

    let gw =
        Running::start(Gateway::builder(origin.url()).drop_headers(vec![custom.clone()])).await;
    send(&c, "GET", &gw.url("/r"), &headers).await;
    let seen = origin.state.last();
    for name in REWRITE_HEADERS.iter().chain([&custom]) {
        assert!(
            !seen.headers.contains_key(name),
            "{name} reached the origin"
        );
    }
    assert_eq!(seen.headers["x-kept"], "yes");

    let passed = HeaderName::from_static("x-http-method-override");
    let gw =
        Running::start(Gateway::builder(origin.url()).pass_headers(vec![passed.clone()])).await;
    send(&c, "GET", &gw.url("/r"), &headers).await;
    let seen = origin.state.last();
    assert_eq!(seen.headers[&passed], "/admin");
    assert_eq!(seen.headers["x-my-override"], "DELETE", "not dropped here");
    assert!(!seen.headers.contains_key("x-original-url"));

    // Forwarding fields are the trusted proxies' business, not passed headers.
    let err = Gateway::builder(origin.url())
        .pass_headers(vec![HeaderName::from_static("x-forwarded-host")])
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("x-forwarded-host"), "{err}");
}

/// `/account/profile.css` answered with the account page, with only `Last-Modified`.
async fn account_origin() -> Origin {
    Origin::start(|req| async move {
        let whom = req
            .headers()
            .get("cookie")
            .map_or("anonymous".to_owned(), |c| {
                format!("account of {}", c.to_str().unwrap())
            });
        Response::builder()
            .header("last-modified", "Mon, 01 Jan 2024 00:00:00 GMT")
            .body(full(whom))
            .unwrap()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_2_2_web_cache_deception_a_response_to_a_cookie_is_not_served_to_others() {
    let origin = account_origin().await;
    let gw = Running::start(Gateway::builder(origin.url())).await;
    let stats = gw.gateway.stats();
    let c = client();
    let url = gw.url("/account/profile.css");
    let own = send(&c, "GET", &url, &[("cookie", "session=alice")]).await;
    assert_eq!(own.body, "account of session=alice");
    assert!(!own.cache_status().contains("stored"), "{own:?}");
    let other = get(&c, &url).await;
    assert_eq!(other.body, "anonymous");
    assert_eq!(origin.state.count(), 2);

    // Without a cookie the heuristic still applies (on by default).
    eventually("stored", 10, || stats.snapshot().stores == 1).await;
    let hit = get(&c, &url).await;
    assert!(hit.cache_status().contains("hit"), "{hit:?}");
    assert_eq!(origin.state.count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9111_4_2_2_heuristics_off_stores_only_explicit_lifetimes() {
    let origin = account_origin().await;
    let gw = Running::start(Gateway::builder(origin.url()).heuristics(false)).await;
    let c = client();
    let url = gw.url("/style.css");
    let stats = gw.gateway.stats();
    get(&c, &url).await;
    // Kept for its validator, but never fresh: every request asks the origin.
    eventually("stored", 10, || stats.snapshot().stores == 1).await;
    let second = get(&c, &url).await;
    assert!(!second.cache_status().contains("hit"), "{second:?}");
    assert_eq!(origin.state.count(), 2);
    assert!(
        origin
            .state
            .last()
            .headers
            .contains_key("if-modified-since")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_routes_can_have_a_listener_of_their_own() {
    let origin = Origin::start(|_req| async { ok("max-age=60", "page") }).await;
    let gw = Running::start(
        Gateway::builder(origin.url())
            .purge_token(Some("s3cret".into()))
            .separate_admin(true),
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin = listener.local_addr().unwrap();
    tokio::spawn(cachio_gateway::serve(
        listener,
        gw.gateway.admin_router(),
        std::future::pending(),
    ));
    let c = client();
    let stats = gw.gateway.stats();
    get(&c, &gw.url("/p")).await;
    eventually("stored", 10, || stats.snapshot().stores == 1).await;

    // Not on the main listener, and never proxied.
    assert_eq!(get(&c, &gw.url("/_cachio/metrics")).await.status, 404);
    let token = [("authorization", "Bearer s3cret")];
    assert_eq!(send(&c, "PURGE", &gw.url("/p"), &token).await.status, 405);
    let purge_url = "/_cachio/purge/url?url=/p";
    assert_eq!(
        send(&c, "POST", &gw.url(purge_url), &token).await.status,
        404
    );
    assert!(get(&c, &gw.url("/p")).await.cache_status().contains("hit"));
    assert_eq!(origin.state.count(), 1);

    // On the admin listener.
    let metrics = get(&c, &format!("http://{admin}/_cachio/metrics")).await;
    assert_eq!(metrics.status, 200);
    assert!(
        std::str::from_utf8(&metrics.body)
            .unwrap()
            .contains("cachio_hits_total{cache=\"cachio\"} 1")
    );
    assert_eq!(get(&c, &format!("http://{admin}/p")).await.status, 404);
    let host = gw.addr.to_string();
    let purged = send(
        &c,
        "PURGE",
        &format!("http://{admin}/p"),
        &[("authorization", "Bearer s3cret"), ("host", &host)],
    )
    .await;
    assert_eq!(purged.status, 200, "{purged:?}");
    assert_eq!(purged.body, "{\"purged\":1}\n");
    assert!(!get(&c, &gw.url("/p")).await.cache_status().contains("hit"));
    assert_eq!(origin.state.count(), 2);
}
