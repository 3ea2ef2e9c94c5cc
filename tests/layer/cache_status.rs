//! RFC 9211: the Cache-Status response header field, on every response.

use crate::support;

use cachio::{CacheLayer, CacheMode};
use support::{Harness, memory, ok, reply};

async fn named() -> Harness {
    let layer = CacheLayer::private(memory()).cache_name("edge-1");
    Harness::with(layer, |s| match s.path() {
        "/vary" => ok("x").cc("max-age=100").header("vary", "accept-language"),
        "/error" => reply(500).body("oops"),
        "/etag" if s.header("if-none-match").is_some() => {
            reply(304).cc("max-age=100").header("etag", "\"e\"")
        }
        "/etag" => ok("x").cc("max-age=100").header("etag", "\"e\""),
        _ => ok("x").cc("max-age=100"),
    })
    .await
}

#[tokio::test]
async fn rfc9211_2_1_hit_with_ttl() {
    let h = named().await;
    h.get("/r").await;
    assert_eq!(h.get("/r").await.cache_status(), "edge-1; hit; ttl=100");
    h.advance(42);
    assert_eq!(h.get("/r").await.cache_status(), "edge-1; hit; ttl=58");
}

#[tokio::test]
async fn rfc9211_2_2_fwd_uri_miss_and_stored() {
    let h = named().await;
    let res = h.get("/r").await;
    assert_eq!(
        res.cache_status(),
        "edge-1; fwd=uri-miss; fwd-status=200; stored"
    );
    assert_eq!(res.all("cache-status").len(), 1);
}

#[tokio::test]
async fn rfc9211_2_2_fwd_vary_miss() {
    let h = named().await;
    h.send(h.req("/vary").header("accept-language", "en")).await;
    let res = h.send(h.req("/vary").header("accept-language", "de")).await;
    assert_eq!(
        res.cache_status(),
        "edge-1; fwd=vary-miss; fwd-status=200; stored"
    );
}

#[tokio::test]
async fn rfc9211_2_2_fwd_stale() {
    let h = named().await;
    h.get("/etag").await;
    h.advance(150);
    let res = h.get("/etag").await;
    assert_eq!(
        res.cache_status(),
        "edge-1; fwd=stale; fwd-status=304; ttl=100"
    );
}

#[tokio::test]
async fn rfc9211_2_2_fwd_request_when_a_fresh_response_is_refused() {
    let h = named().await;
    h.get("/etag").await;
    let res = h
        .send(h.req("/etag").header("cache-control", "no-cache"))
        .await;
    assert_eq!(
        res.cache_status(),
        "edge-1; fwd=request; fwd-status=304; ttl=100"
    );
}

#[tokio::test]
async fn rfc9211_2_2_request_directives_on_a_miss_are_uri_miss() {
    // `request` means a fresh response was there to refuse; with nothing stored it is a miss.
    let h = named().await;
    let res = h
        .send(h.req("/new").header("cache-control", "no-cache"))
        .await;
    assert_eq!(
        res.cache_status(),
        "edge-1; fwd=uri-miss; fwd-status=200; stored"
    );
}

#[tokio::test]
async fn rfc9211_2_2_request_directives_on_a_stale_response_are_fwd_stale() {
    let h = Harness::private(|s| {
        let r = reply(200)
            .cc("max-age=10, stale-while-revalidate=60")
            .header("etag", "\"e\"");
        if s.header("if-none-match").is_some() {
            r.status(304)
        } else {
            r.body("x")
        }
    })
    .await;
    h.get("/r").await;
    h.advance(20);
    // Servable stale (stale-while-revalidate), but the request refuses it: it was stale all the same.
    let res = h
        .send(h.req("/r").header("cache-control", "max-age=0"))
        .await;
    assert_eq!(
        res.cache_status(),
        "cachio; fwd=stale; fwd-status=304; ttl=10"
    );
}

#[tokio::test]
async fn rfc9211_2_2_response_no_cache_is_fwd_stale() {
    // It was the response's directive, not the request's, that demanded validation.
    let h = Harness::private(|s| {
        let r = reply(200)
            .cc("max-age=100, no-cache")
            .header("etag", "\"e\"");
        if s.header("if-none-match").is_some() {
            r.status(304)
        } else {
            r.body("x")
        }
    })
    .await;
    h.get("/r").await;
    let res = h.get("/r").await;
    assert_eq!(
        res.cache_status(),
        "cachio; fwd=stale; fwd-status=304; ttl=100"
    );
}

#[tokio::test]
async fn rfc9211_2_2_fwd_method() {
    let h = named().await;
    let res = h.send(h.req("/r").method("POST")).await;
    assert_eq!(res.cache_status(), "edge-1; fwd=method; fwd-status=200");
}

#[tokio::test]
async fn rfc9211_2_2_fwd_bypass() {
    let h = named().await;
    let res = h.send(h.req("/r").extension(CacheMode::NoStore)).await;
    assert_eq!(res.cache_status(), "edge-1; fwd=bypass; fwd-status=200");
}

#[tokio::test]
async fn rfc9211_2_3_fwd_status_of_unstored_error() {
    let h = named().await;
    let res = h.get("/error").await;
    assert_eq!(res.status, 500);
    assert_eq!(res.cache_status(), "edge-1; fwd=uri-miss; fwd-status=500");
}

#[tokio::test]
async fn rfc9211_2_on_gateway_timeout() {
    let h = named().await;
    let res = h
        .send(h.req("/r").header("cache-control", "only-if-cached"))
        .await;
    assert_eq!(res.status, 504);
    let status = res.cache_status();
    assert!(status.starts_with("edge-1"), "{status}");
    assert!(
        !status.contains("fwd-status"),
        "nothing was forwarded: {status}"
    );
}

#[tokio::test]
async fn rfc9211_2_name_that_is_not_a_token_is_quoted() {
    let layer = CacheLayer::private(memory()).cache_name("my cache");
    let h = Harness::with(layer, |_| ok("x").cc("max-age=100")).await;
    h.get("/r").await;
    assert_eq!(
        h.get("/r").await.cache_status(),
        "\"my cache\"; hit; ttl=100"
    );
}

#[tokio::test]
async fn rfc9211_2_appended_after_upstream_entries() {
    let h = Harness::shared(|_| ok("x").header("cache-status", "upstream; fwd=uri-miss")).await;
    let res = h.get("/r").await;
    assert_eq!(
        res.all("cache-status"),
        [
            "upstream; fwd=uri-miss",
            "cachio; fwd=uri-miss; fwd-status=200"
        ]
    );
}

/// The layer's statistics count what `Cache-Status` says: fresh hits served straight from the
/// memory store count as requests and hits, like any other.
#[tokio::test]
async fn statistics_count_each_request_once_and_each_fresh_hit_as_a_hit() {
    let h = named().await;
    let stats = h.svc.stats();
    h.get("/r").await;
    for _ in 0..3 {
        assert_eq!(h.get("/r").await.cache_status(), "edge-1; hit; ttl=100");
    }
    h.get("/error").await;
    let snap = stats.snapshot();
    assert_eq!(
        (snap.requests, snap.hits, snap.misses),
        (5, 3, 2),
        "{snap:?}"
    );
}
