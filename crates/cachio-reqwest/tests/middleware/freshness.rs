//! RFC 9111 §4.2: freshness.

use cachio_reqwest::CacheLayer;

use crate::support::{Harness, memory, ok};

#[tokio::test]
async fn rfc9111_4_2_fresh_response_is_served_without_contacting_the_origin() {
    let h = Harness::private(|_| ok("fresh").cc("max-age=60")).await;
    let miss = h.get("/r?q=1").await;
    assert_eq!(
        miss.cache_status(),
        "cachio; fwd=uri-miss; fwd-status=200; stored"
    );
    assert_eq!(miss.text(), "fresh");
    assert_eq!(miss.url.as_str(), h.url("/r?q=1"));
    h.advance(10);
    let hit = h.get("/r?q=1").await;
    assert_eq!(hit.cache_status(), "cachio; hit; ttl=50");
    assert_eq!(hit.header("age"), Some("10"));
    assert_eq!(hit.text(), "fresh");
    assert_eq!(
        hit.url.as_str(),
        h.url("/r?q=1"),
        "a hit keeps the URL asked for"
    );
    assert_eq!(h.count(), 1);
    let stats = h.cache.stats().snapshot();
    assert_eq!((stats.hits, stats.misses), (1, 1));
}

#[tokio::test]
async fn rfc9111_4_2_stale_response_goes_to_the_origin() {
    let h = Harness::private(|s| match s.n {
        1 => ok("first").cc("max-age=10"),
        _ => ok("second").cc("max-age=10"),
    })
    .await;
    assert_eq!(h.get("/r").await.text(), "first");
    h.advance(5);
    assert_eq!(h.get("/r").await.text(), "first");
    h.advance(10);
    let res = h.get("/r").await;
    assert_eq!(res.text(), "second");
    assert!(!res.is_hit(), "{}", res.cache_status());
    assert_eq!(h.count(), 2);
    assert!(h.origin.last().through_chain(), "misses go down the chain");
}

#[tokio::test]
async fn rfc9111_4_2_options_of_the_layer_apply() {
    let layer = CacheLayer::private(memory())
        .cache_name("api")
        .key_fn(|parts| parts.uri.path().to_owned());
    let h = Harness::with(layer, |_| ok("keyed").cc("max-age=60")).await;
    let miss = h.get("/r?a=1").await;
    assert_eq!(
        miss.cache_status(),
        "api; fwd=uri-miss; fwd-status=200; stored"
    );
    // The key function ignores the query: another query is the same entry.
    let hit = h.get("/r?b=2").await;
    assert_eq!(hit.cache_status(), "api; hit; ttl=60");
    assert_eq!(h.count(), 1);
}

#[tokio::test]
async fn rfc9111_4_2_a_disk_store_serves_hits_too() {
    let dir = tempfile::tempdir().unwrap();
    let store = cachio_fjall::FjallStore::open(dir.path()).unwrap();
    let h = Harness::with(CacheLayer::private(store), |_| {
        ok("from disk").cc("max-age=60")
    })
    .await;
    let miss = h.get("/d").await;
    assert!(
        miss.cache_status().ends_with("stored"),
        "{}",
        miss.cache_status()
    );
    let hit = h.get("/d").await;
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert_eq!(hit.text(), "from disk");
    assert_eq!(h.count(), 1);
}
