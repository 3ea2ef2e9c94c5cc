//! What the gateway forwards and how: h2c, hop-by-hop fields, Via, the request target byte for
//! byte, Host, freshness it does not invent, the admin routes, a request sent again when a
//! reused origin connection closes, and the policy options (Set-Cookie, targeted fields).

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cachio_gateway::Gateway;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{Origin, Running, client, eventually, full, get, ok, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_with_prior_knowledge() {
    let origin = Origin::start(|_req| async { ok("max-age=60", "over h2") }).await;
    let gw = Running::start(Gateway::builder(origin.url())).await;
    let h2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    let url = gw.url("/h2");
    let res = h2.get(url.parse().unwrap()).await.unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert_eq!(res.status(), 200);
    let status = res.headers()["cache-status"].to_str().unwrap().to_owned();
    assert!(status.contains("fwd=uri-miss"), "{status}");
    assert_eq!(
        res.into_body().collect().await.unwrap().to_bytes(),
        "over h2"
    );
    // The origin got HTTP/1.1 with the client's authority as Host, and Via naming HTTP/2.
    let seen = origin.state.last();
    assert_eq!(seen.headers["host"], gw.addr.to_string());
    assert_eq!(seen.headers["via"], "2 cachio");

    let stats = gw.gateway.stats();
    eventually("stored", 10, || stats.snapshot().stores == 1).await;
    let res = h2.get(url.parse().unwrap()).await.unwrap();
    assert!(
        res.headers()["cache-status"]
            .to_str()
            .unwrap()
            .contains("hit")
    );
    // HTTP/1.1 and HTTP/2 requests for one URL share the entry.
    assert!(get(&client(), &url).await.cache_status().contains("hit"));
    assert_eq!(origin.state.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_fields_are_removed_both_ways_and_via_is_added() {
    let origin = Origin::start(|_req| async {
        Response::builder()
            .header("cache-control", "no-store")
            .header("connection", "x-resp-hop")
            .header("x-resp-hop", "1")
            .header("keep-alive", "timeout=5")
            .header("proxy-connection", "keep-alive")
            .header("trailer", "x-t")
            .header("upgrade", "foo/1")
            .header("x-resp-keep", "yes")
            .header("via", "1.1 origin-proxy")
            .body(full("ok"))
            .unwrap()
    })
    .await;
    let gw = Running::start(Gateway::builder(origin.url())).await;

    // A hand-made HTTP/1.1 request, so that no client adds or drops a field.
    let stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/hop")
        .header("host", "example.test")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .header("keep-alive", "timeout=5")
        .header("proxy-connection", "keep-alive")
        .header("te", "trailers")
        .header("trailer", "x-t")
        .header("upgrade", "foo/1")
        .header("x-keep", "yes")
        .header("proxy-authorization", "Basic eDp5")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    let seen = origin.state.last();
    for gone in [
        "connection",
        "x-hop",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "transfer-encoding",
    ] {
        assert!(
            !seen.headers.contains_key(gone),
            "{gone} reached the origin: {:?}",
            seen.headers
        );
    }
    assert_eq!(seen.headers["x-keep"], "yes");
    assert_eq!(seen.headers["proxy-authorization"], "Basic eDp5");
    assert_eq!(seen.headers["host"], "example.test");
    assert_eq!(seen.headers["via"], "1.1 cachio");

    assert_eq!(res.status(), 200);
    let h = res.headers();
    for gone in [
        "x-resp-hop",
        "keep-alive",
        "proxy-connection",
        "trailer",
        "upgrade",
    ] {
        assert!(!h.contains_key(gone), "{gone} reached the client: {h:?}");
    }
    assert!(h.get_all("connection").iter().all(|v| v != "x-resp-hop"));
    assert_eq!(h["x-resp-keep"], "yes");
    let via: Vec<_> = h
        .get_all("via")
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(via, ["1.1 origin-proxy", "1.1 cachio"]);
    assert!(h.contains_key("cache-status"));
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_target_is_forwarded_byte_for_byte() {
    let origin = Origin::start(|req| async move {
        let body = req.uri().to_string();
        let method = req.method().to_string();
        Response::builder()
            .header("cache-control", "no-store")
            .header("x-method", method)
            .body(full(body))
            .unwrap()
    })
    .await;
    let gw = Running::start(Gateway::builder(format!("{}/base/", origin.url()))).await;
    let c = client();
    for target in [
        "/a?b=%2F&c=1&c=2",
        "/a%2Fb/./c/../d?q=%zz&e=a+b&&f=&=g#",
        "/%E2%82%AC/x;y=1?%3D=%26",
        "/",
        "/?",
    ] {
        let target = target.trim_end_matches('#');
        let got = get(&c, &gw.url(target)).await;
        assert_eq!(got.status, 200, "{target}");
        assert_eq!(
            got.body,
            format!("/base{target}"),
            "the origin saw another target"
        );
    }
    for method in ["POST", "DELETE", "OPTIONS", "PATCH", "FOO"] {
        let got = send(&c, method, &gw.url("/m"), &[]).await;
        assert_eq!(got.headers["x-method"], method);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_is_passed_on_unless_rewritten() {
    let origin = Origin::start(|_req| async { ok("no-store", "") }).await;
    let c = client();
    let gw = Running::start(Gateway::builder(origin.url())).await;
    send(&c, "GET", &gw.url("/h"), &[("host", "www.example.test")]).await;
    assert_eq!(origin.state.last().headers["host"], "www.example.test");

    let gw = Running::start(Gateway::builder(origin.url()).rewrite_host(true)).await;
    send(&c, "GET", &gw.url("/h"), &[("host", "www.example.test")]).await;
    assert_eq!(origin.state.last().headers["host"], origin.addr.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_freshness_is_invented_unless_a_default_ttl_is_set() {
    let origin = Origin::start(|req| async move {
        if req.uri().path() == "/explicit" {
            ok("max-age=5", "explicit")
        } else {
            Response::new(full("plain"))
        }
    })
    .await;
    let c = client();
    let gw = Running::start(Gateway::builder(origin.url())).await;
    let got = get(&c, &gw.url("/plain")).await;
    assert!(
        !got.cache_status().contains("stored"),
        "{}",
        got.cache_status()
    );
    assert!(
        !get(&c, &gw.url("/plain"))
            .await
            .cache_status()
            .contains("hit")
    );

    let gw =
        Running::start(Gateway::builder(origin.url()).default_ttl(Some(Duration::from_secs(90))))
            .await;
    let stats = gw.gateway.stats();
    get(&c, &gw.url("/plain")).await;
    get(&c, &gw.url("/explicit")).await;
    eventually("stored", 10, || stats.snapshot().stores == 2).await;
    // The lifetimes: the default TTL, and the response's own (a second may have passed since).
    for (path, ttl) in [("/plain", 90), ("/explicit", 5)] {
        let got = get(&c, &gw.url(path)).await;
        let status = got.cache_status();
        assert!(
            status.contains(&format!("hit; ttl={ttl}"))
                || status.contains(&format!("hit; ttl={}", ttl - 1)),
            "{path}: {status}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_unknown_admin_routes() {
    let origin = Origin::start(|_req| async { ok("max-age=60", "x") }).await;
    let gw = Running::start(Gateway::builder(origin.url())).await;
    let c = client();
    let stats = gw.gateway.stats();
    get(&c, &gw.url("/m")).await;
    eventually("stored", 10, || stats.snapshot().stores == 1).await;
    get(&c, &gw.url("/m")).await;

    let got = get(&c, &gw.url("/_cachio/metrics")).await;
    assert_eq!(got.status, 200);
    assert!(
        got.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = std::str::from_utf8(&got.body).unwrap();
    for line in [
        "cachio_hits_total{cache=\"cachio\"} 1",
        "cachio_misses_total{cache=\"cachio\"} 1",
        "cachio_stores_total{cache=\"cachio\"} 1",
        "cachio_stored_bytes_total{cache=\"cachio\"} 1",
        "cachio_revalidations_total{cache=\"cachio\",kind=\"background\"} 0",
        "cachio_coalesced_total{cache=\"cachio\"} 0",
        "cachio_gateway_responses_total{cache=\"cachio\",class=\"2xx\"} 2",
        "cachio_origin_request_duration_seconds_count{cache=\"cachio\"} 1",
        "cachio_evictions_total 0",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "missing `{line}` in\n{text}"
        );
    }
    assert!(text.contains("cachio_store_bytes{tier=\"memory\"} "));
    assert!(
        text.contains(
            "cachio_origin_request_duration_seconds_bucket{cache=\"cachio\",le=\"+Inf\"} 1"
        )
    );

    assert_eq!(get(&c, &gw.url("/_cachio/nope")).await.status, 404);
    assert_eq!(origin.state.count(), 1, "admin paths are never proxied");
}

/// An origin on raw TCP that answers the first request on each connection (keep-alive) and
/// closes the connection when a second request arrives on it, without answering: what a server
/// does when it closes an idle connection just as a request is sent on it. Counts connections
/// and the request lines it read.
async fn closing_origin() -> (
    std::net::SocketAddr,
    Arc<AtomicUsize>,
    Arc<std::sync::Mutex<Vec<String>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
    let (c, l) = (conns.clone(), lines.clone());
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            c.fetch_add(1, Ordering::SeqCst);
            let l = l.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut answered = false;
                loop {
                    let mut chunk = [0u8; 4096];
                    let n = match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&chunk[..n]);
                    // Requests without bodies: one ends at its blank line.
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end + 4);
                        l.lock()
                            .unwrap()
                            .push(head.lines().next().unwrap_or_default().to_owned());
                        if answered {
                            return; // closes the connection without a response
                        }
                        answered = true;
                        let res = "HTTP/1.1 200 OK\r\ncache-control: no-store\r\ncontent-length: 2\r\n\r\nok";
                        sock.write_all(res.as_bytes()).await.unwrap();
                    }
                }
            });
        }
    });
    (addr, conns, lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_9_2_2_an_idempotent_request_is_sent_again_when_a_reused_connection_closes() {
    let (addr, conns, lines) = closing_origin().await;
    let c = client();
    let gw = Running::start(Gateway::builder(format!("http://{addr}"))).await;
    let first = get(&c, &gw.url("/one")).await;
    assert_eq!(first.status, 200);
    // Sent on the pooled connection, which the origin closes: sent again on a new one.
    let second = get(&c, &gw.url("/two")).await;
    assert_eq!(second.status, 200, "{second:?}");
    assert_eq!(&second.body[..], b"ok");
    assert_eq!(conns.load(Ordering::SeqCst), 2);
    assert_eq!(
        *lines.lock().unwrap(),
        [
            "GET /one HTTP/1.1",
            "GET /two HTTP/1.1",
            "GET /two HTTP/1.1"
        ]
    );
    // A POST is not idempotent: the same failure is an error, never a second send.
    let post = send(&c, "POST", &gw.url("/three"), &[]).await;
    assert_eq!(post.status, 502);
    assert_eq!(
        lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains("/three"))
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_cookie_responses_are_stored_in_shared_mode_only_when_asked() {
    let origin = Origin::start(|_req| async {
        let mut res = ok("max-age=60", "personal?");
        res.headers_mut()
            .insert("set-cookie", http::HeaderValue::from_static("id=1"));
        res
    })
    .await;
    let c = client();
    let gw = Running::start(Gateway::builder(origin.url())).await;
    get(&c, &gw.url("/c")).await;
    let again = get(&c, &gw.url("/c")).await;
    assert!(
        !again.cache_status().contains("hit"),
        "{}",
        again.cache_status()
    );
    assert_eq!(origin.state.count(), 2);

    let gw = Running::start(Gateway::builder(origin.url()).store_set_cookie(true)).await;
    let stats = gw.gateway.stats();
    get(&c, &gw.url("/c")).await;
    eventually("stored", 10, || stats.snapshot().stores == 1).await;
    let hit = get(&c, &gw.url("/c")).await;
    assert!(hit.cache_status().contains("hit"), "{}", hit.cache_status());
    assert_eq!(hit.headers["set-cookie"], "id=1");
    assert_eq!(origin.state.count(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9213_2_2_a_configured_targeted_field_such_as_surrogate_control_wins() {
    let origin = Origin::start(|_req| async {
        let mut res = ok("no-store", "for the edge");
        res.headers_mut().insert(
            "surrogate-control",
            http::HeaderValue::from_static("max-age=60"),
        );
        res
    })
    .await;
    let c = client();
    // By default only CDN-Cache-Control is targeted: Cache-Control's no-store rules.
    let gw = Running::start(Gateway::builder(origin.url())).await;
    get(&c, &gw.url("/s")).await;
    assert!(!get(&c, &gw.url("/s")).await.cache_status().contains("hit"));

    let fields = ["surrogate-control", "cdn-cache-control"].map(http::HeaderName::from_static);
    let gw = Running::start(Gateway::builder(origin.url()).targeted_fields(fields.to_vec())).await;
    let stats = gw.gateway.stats();
    get(&c, &gw.url("/s")).await;
    eventually("stored", 10, || stats.snapshot().stores == 1).await;
    let hit = get(&c, &gw.url("/s")).await;
    // Surrogate-Control's max-age=60 gives the lifetime (a second may have passed).
    let status = hit.cache_status();
    assert!(
        status.contains("hit; ttl=60") || status.contains("hit; ttl=59"),
        "{status}"
    );
}
