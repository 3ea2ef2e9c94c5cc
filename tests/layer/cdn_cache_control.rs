//! RFC 9213: CDN-Cache-Control, obeyed by shared caches only.

use crate::support;

use support::{Harness, Seen, ok};

fn longer_for_cdn(_: &Seen) -> support::Reply {
    ok("x")
        .cc("max-age=10")
        .header("cdn-cache-control", "max-age=100")
}

#[tokio::test]
async fn rfc9213_2_2_cdn_cache_control_takes_precedence_in_shared_cache() {
    let h = Harness::shared(longer_for_cdn).await;
    h.get("/r").await;
    h.advance(50);
    let hit = h.get("/r").await;
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert_eq!(hit.cache_status(), "cachio; hit; ttl=50");
    h.advance(51);
    assert!(!h.get("/r").await.is_hit());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9213_2_cdn_cache_control_ignored_in_private_cache() {
    let h = Harness::private(longer_for_cdn).await;
    h.get("/r").await;
    h.advance(50);
    assert!(!h.get("/r").await.is_hit());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9213_2_2_cdn_no_store_wins_over_cache_control_in_shared_cache() {
    let h = Harness::shared(|_| {
        ok("x")
            .cc("max-age=100")
            .header("cdn-cache-control", "no-store")
    })
    .await;
    h.get("/r").await;
    assert!(!h.get("/r").await.is_hit());
    assert_eq!(h.count(), 2);

    let p = Harness::private(|_| {
        ok("x")
            .cc("max-age=100")
            .header("cdn-cache-control", "no-store")
    })
    .await;
    p.get("/r").await;
    assert!(
        p.get("/r").await.is_hit(),
        "a private cache ignores CDN-Cache-Control"
    );
}

#[tokio::test]
async fn rfc9213_2_2_cache_control_no_store_ignored_when_cdn_cache_control_present() {
    let h = Harness::shared(|_| {
        ok("x")
            .cc("no-store")
            .header("cdn-cache-control", "max-age=100")
    })
    .await;
    h.get("/r").await;
    let hit = h.get("/r").await;
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert_eq!(h.count(), 1);
    // Both fields are passed on to the client unchanged.
    assert_eq!(hit.header("cache-control"), Some("no-store"));
    assert_eq!(hit.header("cdn-cache-control"), Some("max-age=100"));
}

#[tokio::test]
async fn rfc9213_2_2_expires_ignored_when_cdn_cache_control_present() {
    let h = Harness::shared(|_| {
        ok("x")
            .header("expires", &support::http_date(1000))
            .header("cdn-cache-control", "max-age=10")
    })
    .await;
    h.get("/r").await;
    h.advance(20);
    assert!(!h.get("/r").await.is_hit());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9213_2_1_invalid_cdn_cache_control_falls_back_to_cache_control() {
    // Not a Structured Fields Dictionary: the field is ignored as a whole.
    let h = Harness::shared(|_| {
        ok("x")
            .cc("max-age=100")
            .header("cdn-cache-control", "max-age=\"ten")
    })
    .await;
    h.get("/r").await;
    h.advance(50);
    let hit = h.get("/r").await;
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert_eq!(h.count(), 1);
}
