//! RFC 9111 §4.3: validation and 304 merging.

use crate::support::{Harness, ok, reply};

#[tokio::test]
async fn rfc9111_4_3_1_stale_etag_sends_if_none_match_and_304_is_merged() {
    let h = Harness::private(|s| {
        if s.n == 1 {
            ok("the stored body")
                .cc("max-age=10")
                .header("etag", "\"v1\"")
                .header("x-version", "1")
        } else {
            reply(304)
                .header("etag", "\"v1\"")
                .cc("max-age=100")
                .header("x-version", "2")
                .header("x-new", "added")
        }
    })
    .await;
    h.get("/r").await;
    h.advance(20);
    let res = h.get("/r").await;
    assert_eq!(h.count(), 2);
    let seen = h.origin.last();
    assert_eq!(seen.header("if-none-match"), Some("\"v1\""));
    assert!(seen.through_chain());
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "the stored body");
    assert_eq!(
        res.header("x-version"),
        Some("2"),
        "304 fields replace stored ones"
    );
    assert_eq!(res.header("x-new"), Some("added"), "304 fields are added");
    assert_eq!(res.header("cache-control"), Some("max-age=100"));
    assert_eq!(
        res.cache_status(),
        "cachio; fwd=stale; fwd-status=304; ttl=100"
    );
    // The merged response is fresh again: the next request is a hit with the new fields.
    let hit = h.get("/r").await;
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert_eq!(hit.header("x-version"), Some("2"));
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_4_3_2_a_conditional_request_is_answered_304_from_the_cache() {
    let h = Harness::private(|_| ok("body").cc("max-age=60").header("etag", "\"e\"")).await;
    h.get("/r").await;
    let res = h
        .send(h.get_req("/r").header("if-none-match", "\"e\""))
        .await;
    assert_eq!(res.status, 304);
    assert!(res.body.is_empty());
    assert_eq!(h.count(), 1);
}
