//! RFC 9111 §5.2 (and §5.4, Pragma): request and response cache directives.

use crate::support;

use support::{Harness, ok, reply};

/// An origin that answers `max-age=100` with an `ETag`, and `304` to a matching validation.
async fn validating(cc: &'static str) -> Harness {
    Harness::private(move |s| {
        if s.header("if-none-match") == Some("\"v1\"") {
            reply(304).header("etag", "\"v1\"").cc(cc)
        } else {
            ok("v1").header("etag", "\"v1\"").cc(cc)
        }
    })
    .await
}

#[tokio::test]
async fn rfc9111_5_2_1_1_request_max_age() {
    let h = Harness::private(|_| ok("x").cc("max-age=100")).await;
    h.get("/r").await;
    h.advance(30);
    let res = h
        .send(h.req("/r").header("cache-control", "max-age=40"))
        .await;
    assert!(res.is_hit(), "{}", res.cache_status());
    assert_eq!(h.count(), 1);
    let res = h
        .send(h.req("/r").header("cache-control", "max-age=20"))
        .await;
    assert!(!res.is_hit(), "{}", res.cache_status());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_5_2_1_2_max_stale_with_value() {
    let h = Harness::private(|_| ok("x").cc("max-age=10")).await;
    h.get("/r").await;
    h.advance(15);
    let res = h
        .send(h.req("/r").header("cache-control", "max-stale=10"))
        .await;
    assert!(res.is_hit(), "{}", res.cache_status());
    assert_eq!(res.cache_status(), "cachio; hit; ttl=-5");
    assert_eq!(h.count(), 1);
    let res = h
        .send(h.req("/r").header("cache-control", "max-stale=2"))
        .await;
    assert!(!res.is_hit(), "{}", res.cache_status());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_5_2_1_2_max_stale_without_value() {
    let h = Harness::private(|_| ok("x").cc("max-age=10").header("etag", "\"a\"")).await;
    h.get("/r").await;
    h.advance(10_000);
    let res = h
        .send(h.req("/r").header("cache-control", "max-stale"))
        .await;
    assert!(res.is_hit(), "{}", res.cache_status());
    assert_eq!(h.count(), 1);
}

#[tokio::test]
async fn rfc9111_5_2_1_3_min_fresh() {
    let h = Harness::private(|_| ok("x").cc("max-age=100")).await;
    h.get("/r").await;
    h.advance(50);
    let res = h
        .send(h.req("/r").header("cache-control", "min-fresh=40"))
        .await;
    assert!(res.is_hit(), "{}", res.cache_status());
    assert_eq!(h.count(), 1);
    let res = h
        .send(h.req("/r").header("cache-control", "min-fresh=60"))
        .await;
    assert!(!res.is_hit(), "{}", res.cache_status());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_5_2_1_4_request_no_cache_validates() {
    let h = validating("max-age=100").await;
    h.get("/r").await;
    let res = h
        .send(h.req("/r").header("cache-control", "no-cache"))
        .await;
    assert_eq!(h.count(), 2);
    assert_eq!(h.origin.last().header("if-none-match"), Some("\"v1\""));
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "v1");
    assert_eq!(
        res.cache_status(),
        "cachio; fwd=request; fwd-status=304; ttl=100"
    );
}

#[tokio::test]
async fn rfc9111_5_2_1_5_request_no_store_response_not_stored() {
    let h = Harness::private(|_| ok("x").cc("max-age=100")).await;
    let first = h
        .send(h.req("/r").header("cache-control", "no-store"))
        .await;
    assert!(
        !first.cache_status().contains("stored"),
        "{}",
        first.cache_status()
    );
    assert!(!h.get("/r").await.is_hit());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_5_2_1_7_only_if_cached_gateway_timeout_when_nothing_stored() {
    let h = Harness::private(|_| ok("x").cc("max-age=10")).await;
    let only = || h.req("/r").header("cache-control", "only-if-cached");
    let res = h.send(only()).await;
    assert_eq!(res.status, 504);
    assert_eq!(h.count(), 0);
    h.get("/r").await;
    let res = h.send(only()).await;
    assert_eq!(res.status, 200);
    assert!(res.is_hit());
    // A stale response is not usable either.
    h.advance(20);
    let res = h.send(only()).await;
    assert_eq!(res.status, 504);
    assert_eq!(h.count(), 1);
}

#[tokio::test]
async fn rfc9111_5_4_pragma_no_cache_without_cache_control() {
    let h = Harness::private(|_| ok("x").cc("max-age=100")).await;
    h.get("/r").await;
    let res = h.send(h.req("/r").header("pragma", "no-cache")).await;
    assert!(!res.is_hit(), "{}", res.cache_status());
    assert_eq!(h.count(), 2);
    // Cache-Control present: Pragma is ignored.
    let res = h
        .send(
            h.req("/r")
                .header("pragma", "no-cache")
                .header("cache-control", "max-age=100"),
        )
        .await;
    assert!(res.is_hit(), "{}", res.cache_status());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_5_2_2_2_must_revalidate_forbids_stale() {
    let h = Harness::private(|_| ok("x").cc("max-age=10, must-revalidate")).await;
    h.get("/r").await;
    h.advance(20);
    let res = h
        .send(h.req("/r").header("cache-control", "max-stale=100"))
        .await;
    assert!(!res.is_hit(), "{}", res.cache_status());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_5_2_2_8_proxy_revalidate_in_shared_cache() {
    let handler = |_: &support::Seen| ok("x").cc("max-age=10, proxy-revalidate");
    let shared = Harness::shared(handler).await;
    shared.get("/r").await;
    shared.advance(20);
    let res = shared
        .send(shared.req("/r").header("cache-control", "max-stale=100"))
        .await;
    assert!(!res.is_hit(), "{}", res.cache_status());
    assert_eq!(shared.count(), 2);

    let private = Harness::private(handler).await;
    private.get("/r").await;
    private.advance(20);
    let res = private
        .send(private.req("/r").header("cache-control", "max-stale=100"))
        .await;
    assert!(res.is_hit(), "{}", res.cache_status());
    assert_eq!(private.count(), 1);
}

#[tokio::test]
async fn rfc9111_5_2_2_4_response_no_cache_always_validates() {
    let h = validating("max-age=100, no-cache").await;
    h.get("/r").await;
    for n in 2..=3 {
        let res = h.get("/r").await;
        assert_eq!(h.count(), n);
        assert_eq!(h.origin.last().header("if-none-match"), Some("\"v1\""));
        assert_eq!(res.text(), "v1");
        assert!(
            res.cache_status().contains("fwd-status=304"),
            "{}",
            res.cache_status()
        );
    }
}

#[tokio::test]
async fn rfc9111_5_2_2_4_no_cache_field_not_served_without_revalidation() {
    let h = Harness::private(|s| {
        let r = ok("x")
            .cc("max-age=100, no-cache=\"x-secret\"")
            .header("etag", "\"v1\"");
        let r = r
            .header("x-secret", &format!("s{}", s.n))
            .header("x-other", "o");
        if s.header("if-none-match").is_some() {
            r.body("")
        } else {
            r
        }
    })
    .await;
    let miss = h.get("/r").await;
    assert_eq!(miss.header("x-secret"), Some("s1"));
    let hit = h.get("/r").await;
    assert!(hit.is_hit());
    assert_eq!(hit.header("x-secret"), None);
    assert_eq!(hit.header("x-other"), Some("o"));
    assert_eq!(h.count(), 1);
}

#[tokio::test]
async fn rfc9111_5_2_2_7_private_field_stripped_in_shared_cache() {
    let handler = |_: &support::Seen| {
        ok("x")
            .cc("max-age=100, private=\"x-user\"")
            .header("x-user", "alice")
            .header("x-other", "o")
    };
    let shared = Harness::shared(handler).await;
    let miss = shared.get("/r").await;
    assert_eq!(miss.header("x-user"), Some("alice"));
    let hit = shared.get("/r").await;
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert_eq!(hit.header("x-user"), None);
    assert_eq!(hit.header("x-other"), Some("o"));

    let private = Harness::private(handler).await;
    private.get("/r").await;
    let hit = private.get("/r").await;
    assert!(hit.is_hit());
    assert_eq!(hit.header("x-user"), Some("alice"));
}

#[tokio::test]
async fn rfc9111_5_2_2_9_public_allows_heuristic_for_any_status() {
    let h = Harness::shared(|_| {
        reply(302)
            .header("location", "/elsewhere")
            .cc("public")
            .header("last-modified", &support::http_date(-10_000))
    })
    .await;
    h.get("/r").await;
    h.advance(500);
    let hit = h.get("/r").await;
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert_eq!(hit.status, 302);
    assert_eq!(h.count(), 1);
}

/// A private cache keeps a response a day past its own windows (`Policy::stale_retention`), so a
/// client's `max-stale` can still be met. (A shared cache keeps nothing past the windows; the
/// policy tests show its retention.)
#[tokio::test]
async fn rfc9111_5_2_1_2_max_stale_past_the_response_windows() {
    let h = Harness::private(|_| ok("x").cc("max-age=2")).await;
    let first = h.get("/r").await;
    assert!(first.cache_status().contains("stored"));
    h.advance(500);
    let res = h
        .send(h.req("/r").header("cache-control", "max-stale=1000"))
        .await;
    assert!(res.is_hit(), "{}", res.cache_status());
    assert_eq!(res.age(), Some(500));
    assert_eq!(h.count(), 1);
}
