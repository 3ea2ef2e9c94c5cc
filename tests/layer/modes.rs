//! Per-request cache modes (`CacheMode`, after the Fetch standard's request cache modes).

use crate::support;

use cachio::CacheMode;
use support::{Harness, ok, reply};

/// Numbered `max-age=10` responses with an ETag; `304` to a matching validation.
async fn numbered() -> Harness {
    Harness::private(|s| {
        if s.header("if-none-match") == Some("\"1\"") {
            reply(304).cc("max-age=10").header("etag", "\"1\"")
        } else {
            reply(200)
                .cc("max-age=10")
                .header("etag", &format!("\"{}\"", s.n))
                .body(format!("#{}", s.n))
        }
    })
    .await
}

#[tokio::test]
async fn mode_default_follows_http_rules() {
    let h = numbered().await;
    let req = || h.req("/r").extension(CacheMode::Default);
    assert_eq!(h.send(req()).await.text(), "#1");
    assert!(h.send(req()).await.is_hit());
    h.advance(20);
    let res = h.send(req()).await;
    assert!(
        res.cache_status().contains("fwd=stale"),
        "{}",
        res.cache_status()
    );
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn mode_no_store_neither_reads_nor_writes() {
    let h = numbered().await;
    h.get("/r").await;
    let res = h.send(h.req("/r").extension(CacheMode::NoStore)).await;
    assert_eq!(res.text(), "#2");
    assert_eq!(res.cache_status(), "cachio; fwd=bypass; fwd-status=200");
    assert!(h.origin.last().header("if-none-match").is_none());
    // The stored response is still #1.
    let hit = h.get("/r").await;
    assert!(hit.is_hit());
    assert_eq!(hit.text(), "#1");
    // And on a miss nothing is written.
    h.send(h.req("/other").extension(CacheMode::NoStore)).await;
    assert!(!h.get("/other").await.is_hit());
    assert_eq!(h.count(), 4);
}

#[tokio::test]
async fn mode_reload_does_not_read_but_writes() {
    let h = numbered().await;
    h.get("/r").await;
    let res = h.send(h.req("/r").extension(CacheMode::Reload)).await;
    assert_eq!(res.text(), "#2");
    assert!(
        h.origin.last().header("if-none-match").is_none(),
        "a reload is unconditional"
    );
    assert_eq!(
        res.cache_status(),
        "cachio; fwd=request; fwd-status=200; stored"
    );
    let hit = h.get("/r").await;
    assert!(hit.is_hit());
    assert_eq!(hit.text(), "#2");
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn mode_no_cache_validates_fresh_response() {
    let h = numbered().await;
    h.get("/r").await;
    let res = h.send(h.req("/r").extension(CacheMode::NoCache)).await;
    assert_eq!(h.count(), 2);
    assert_eq!(h.origin.last().header("if-none-match"), Some("\"1\""));
    assert_eq!(res.text(), "#1");
    assert_eq!(
        res.cache_status(),
        "cachio; fwd=request; fwd-status=304; ttl=10"
    );
}

#[tokio::test]
async fn mode_force_cache_uses_stale_response() {
    let h = numbered().await;
    h.get("/r").await;
    h.advance(1000);
    let res = h.send(h.req("/r").extension(CacheMode::ForceCache)).await;
    assert!(res.is_hit(), "{}", res.cache_status());
    assert_eq!(res.text(), "#1");
    assert_eq!(res.age(), Some(1000));
    assert_eq!(h.count(), 1);
    // Nothing stored: it goes to the origin, and stores.
    let res = h.send(h.req("/new").extension(CacheMode::ForceCache)).await;
    assert_eq!(res.text(), "#2");
    assert!(
        h.send(h.req("/new").extension(CacheMode::ForceCache))
            .await
            .is_hit()
    );
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn mode_only_if_cached_gateway_timeout_on_miss() {
    let h = numbered().await;
    let res = h.send(h.req("/r").extension(CacheMode::OnlyIfCached)).await;
    assert_eq!(res.status, 504);
    assert!(res.body.is_empty());
    assert_eq!(h.count(), 0);
    h.get("/r").await;
    h.advance(1000);
    let res = h.send(h.req("/r").extension(CacheMode::OnlyIfCached)).await;
    assert_eq!(
        res.status, 200,
        "any stored response, whatever its freshness"
    );
    assert_eq!(res.text(), "#1");
    assert_eq!(h.count(), 1);
}

#[tokio::test]
async fn mode_only_if_cached_gateway_timeout_on_vary_miss() {
    let h = Harness::private(|_| ok("x").cc("max-age=100").header("vary", "accept-language")).await;
    h.send(h.req("/r").header("accept-language", "en")).await;
    let res = h
        .send(
            h.req("/r")
                .header("accept-language", "de")
                .extension(CacheMode::OnlyIfCached),
        )
        .await;
    assert_eq!(res.status, 504);
    assert_eq!(h.count(), 1);
}

#[tokio::test]
async fn mode_no_store_unsafe_request_still_invalidates() {
    // RFC 9111 §4.4 protects every later request, whatever this one's mode.
    let h = Harness::private(|s| {
        if s.method == "GET" {
            reply(200).cc("max-age=100").body(format!("#{}", s.n))
        } else {
            reply(204)
        }
    })
    .await;
    h.get("/r").await;
    let res = h
        .send(h.req("/r").method("POST").extension(CacheMode::NoStore))
        .await;
    assert_eq!(res.status, 204);
    assert_eq!(res.cache_status(), "cachio; fwd=bypass; fwd-status=204");
    let after = h.get("/r").await;
    assert!(!after.is_hit(), "{}", after.cache_status());
    assert_eq!(after.text(), "#3");
}

/// A response that is never fresh (no freshness, no validators) is still kept by a private cache
/// for the offline modes.
#[tokio::test]
async fn mode_only_if_cached_serves_a_response_that_was_never_fresh() {
    let h = Harness::private(|_| ok("offline")).await;
    h.get("/r").await;
    h.advance(3600);
    let res = h.send(h.req("/r").extension(CacheMode::OnlyIfCached)).await;
    assert_eq!(res.status, 200, "{}", res.cache_status());
    assert_eq!(res.text(), "offline");
    assert_eq!(h.count(), 1);
}

/// A `HEAD` in `Reload` goes to the origin, and its `200` updates the stored `GET` response when
/// it describes the same representation, or invalidates it when not (RFC 9111 §4.3.5).
#[tokio::test]
async fn rfc9111_4_3_5_reload_head_updates_or_invalidates_the_stored_get_response() {
    for (length, updated) in [("5", true), ("6", false)] {
        let h = Harness::private(move |s| {
            if s.method == "HEAD" {
                ok("")
                    .header("content-length", length)
                    .cc("max-age=1000")
                    .header("x-version", "2")
            } else {
                ok("hello").cc("max-age=100").header("x-version", "1")
            }
        })
        .await;
        h.get("/r").await;
        let head = h
            .send(h.req("/r").method("HEAD").extension(CacheMode::Reload))
            .await;
        assert_eq!(h.origin.last().method, "HEAD");
        assert_eq!(head.header("x-version"), Some("2"));
        let get = h.get("/r").await;
        if updated {
            assert!(get.is_hit(), "{}", get.cache_status());
            assert_eq!(get.header("x-version"), Some("2"));
            assert_eq!(get.header("cache-control"), Some("max-age=1000"));
            assert_eq!(get.text(), "hello");
            assert_eq!(h.count(), 2);
        } else {
            assert!(
                !get.is_hit(),
                "another length, and the old response was reused"
            );
            assert_eq!(h.count(), 3);
        }
    }
}

#[tokio::test]
async fn a_default_mode_applies_to_requests_without_one() {
    let layer =
        cachio::CacheLayer::private(support::memory()).default_mode(CacheMode::OnlyIfCached);
    let h = support::Harness::with(layer, |s| {
        reply(200).cc("max-age=10").body(format!("#{}", s.n))
    })
    .await;
    let offline = h.get("/r").await;
    assert_eq!(offline.status, 504);
    assert_eq!(h.count(), 0, "never the network");
    // A request's own mode wins.
    let fetched = h.send(h.req("/r").extension(CacheMode::Default)).await;
    assert_eq!(fetched.text(), "#1");
    h.advance(60);
    // Stale, and served all the same: only-if-cached takes what is stored.
    let replayed = h.get("/r").await;
    assert!(replayed.is_hit(), "{}", replayed.cache_status());
    assert_eq!(replayed.text(), "#1");
    assert_eq!(h.count(), 1);
}

#[tokio::test]
async fn store_all_stores_what_the_rules_forbid_but_never_a_part() {
    for on in [false, true] {
        let layer = cachio::CacheLayer::private(support::memory())
            .store_all(on)
            .default_mode(CacheMode::ForceCache);
        let h = support::Harness::with(layer, |s| match s.path() {
            "/no-store" => ok("kept").cc("no-store"),
            "/private" => ok("mine")
                .cc("private, max-age=60")
                .header("set-cookie", "id=1"),
            _ => reply(206).header("content-range", "bytes 0-0/2").body("p"),
        })
        .await;
        for path in ["/no-store", "/private", "/part"] {
            h.get(path).await;
        }
        let again = h.get("/no-store").await;
        assert_eq!(again.is_hit(), on, "no-store with store_all({on})");
        assert!(
            h.get("/private").await.is_hit(),
            "a private cache keeps private responses"
        );
        assert!(!h.get("/part").await.is_hit(), "a 206 is never stored");
        assert_eq!(h.count(), if on { 4 } else { 5 });
    }
}

/// A shared cache ignores `store_all`: one user's private response is never kept where another
/// user could be served it (RFC 9111 §3.5), whatever the layer was told.
#[tokio::test]
async fn rfc9111_3_5_store_all_never_makes_a_shared_cache_keep_a_private_response() {
    let layer = cachio::CacheLayer::shared(support::memory())
        .store_all(true)
        .default_mode(CacheMode::ForceCache);
    let h = support::Harness::with(layer, |s| match s.path() {
        "/private" => ok("mine").cc("private, max-age=60"),
        _ => ok("kept").cc("no-store"),
    })
    .await;
    for path in ["/private", "/no-store"] {
        h.get(path).await;
        assert!(
            !h.get(path).await.is_hit(),
            "{path} stored by a shared cache"
        );
    }
    assert_eq!(h.count(), 4);
}
