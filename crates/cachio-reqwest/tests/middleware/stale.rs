//! RFC 5861 §3: `stale-while-revalidate`, whose revalidation runs once the request has its answer.

use std::time::Duration;

use cachio_reqwest::CacheLayer;

use crate::support::{Harness, memory, ok, reply};

fn swr(s: &crate::support::Seen) -> crate::support::Reply {
    if s.n == 1 {
        ok("stored")
            .cc("max-age=10, stale-while-revalidate=600")
            .header("etag", "\"v1\"")
    } else {
        reply(304)
            .cc("max-age=10, stale-while-revalidate=600")
            .header("etag", "\"v1\"")
            .header("x-revalidated", "yes")
    }
}

#[tokio::test(flavor = "current_thread")]
async fn rfc5861_3_without_a_background_client_stale_is_served_and_no_revalidation_is_made() {
    let h = Harness::private(swr).await;
    h.get("/r").await;
    h.advance(20);
    let stale = h.get("/r").await;
    assert_eq!(stale.text(), "stored");
    assert!(stale.is_hit(), "{}", stale.cache_status());
    // Each stale hit starts a revalidation when none is in flight: a second one starts only
    // once the first has ended, and it ends without reaching the origin.
    let mut started = 1;
    for _ in 0..100 {
        tokio::task::yield_now().await;
        assert!(h.get("/r").await.is_hit());
        started = h.cache.stats().snapshot().background_revalidations;
        if started >= 2 {
            break;
        }
    }
    assert!(started >= 2, "the first background revalidation ended");
    assert_eq!(h.count(), 1, "no revalidation reached the origin");
}

#[tokio::test]
async fn rfc5861_3_with_a_background_client_the_revalidation_goes_around_the_chain() {
    let h = Harness::build(CacheLayer::private(memory()), swr, |cache| {
        cache.background_client(reqwest::Client::new())
    })
    .await;
    h.get("/r").await;
    assert!(
        h.origin.next_arrival().await.through_chain(),
        "a miss goes down the chain"
    );
    h.advance(20);
    let stale = h.get("/r").await;
    assert_eq!(stale.text(), "stored");
    assert!(stale.is_hit(), "{}", stale.cache_status());
    assert!(stale.header("x-revalidated").is_none());
    let revalidation = h.origin.next_arrival().await;
    assert_eq!(revalidation.header("if-none-match"), Some("\"v1\""));
    assert!(
        !revalidation.through_chain(),
        "the background revalidation goes through the background client"
    );
    // Once the 304 is merged, the response is fresh again.
    let fresh = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let res = h.get("/r").await;
            if res.header("x-revalidated").is_some() {
                return res;
            }
            tokio::task::yield_now().await;
        }
    })
    .await
    .expect("the revalidation is merged");
    assert_eq!(fresh.cache_status(), "cachio; hit; ttl=10");
    assert_eq!(h.count(), 2);
}
