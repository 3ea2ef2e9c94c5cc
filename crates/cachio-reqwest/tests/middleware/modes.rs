//! Per-request cache modes (`CacheMode`), set with `with_extension` or in the request itself;
//! RFC 9111 §5.2.1.7 (`only-if-cached`).

use cachio_reqwest::CacheMode;

use crate::support::{Harness, ok, read};

#[tokio::test]
async fn rfc9111_5_2_1_7_only_if_cached_mode_answers_504_on_a_miss() {
    let h = Harness::private(|_| ok("never").cc("max-age=60")).await;
    let res = h
        .send(h.get_req("/r").with_extension(CacheMode::OnlyIfCached))
        .await;
    assert_eq!(res.status, 504);
    assert_eq!(h.count(), 0, "only-if-cached never goes to the network");
}

#[tokio::test]
async fn rfc9111_5_2_1_7_only_if_cached_mode_serves_a_stored_response_offline() {
    let h = Harness::private(|_| ok("kept").cc("max-age=60")).await;
    h.get("/r").await;
    h.advance(3600);
    h.origin.stop();
    let res = h
        .send(h.get_req("/r").with_extension(CacheMode::OnlyIfCached))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "kept");
    assert!(res.is_hit(), "{}", res.cache_status());
    assert_eq!(h.count(), 1);
}

#[tokio::test]
async fn reload_mode_set_with_with_extension_goes_to_the_origin_and_stores() {
    let h = Harness::private(|s| match s.n {
        1 => ok("old").cc("max-age=600"),
        _ => ok("new").cc("max-age=600"),
    })
    .await;
    h.get("/r").await;
    let res = h
        .send(h.get_req("/r").with_extension(CacheMode::Reload))
        .await;
    assert_eq!(res.text(), "new");
    assert_eq!(h.count(), 2);
    let hit = h.get("/r").await;
    assert!(hit.is_hit());
    assert_eq!(
        hit.text(),
        "new",
        "the reloaded response replaced the stored one"
    );
}

#[tokio::test]
async fn no_store_mode_in_the_requests_own_extensions_bypasses_the_cache() {
    let h = Harness::private(|_| ok("body").cc("max-age=600")).await;
    h.get("/r").await;
    // A reqwest::Request made from an http::Request keeps its extensions.
    let mut req = http::Request::get(h.url("/r")).body(Vec::new()).unwrap();
    req.extensions_mut().insert(CacheMode::NoStore);
    let req = reqwest::Request::try_from(req).unwrap();
    let res = read(h.client.execute(req).await.unwrap()).await;
    assert!(
        res.cache_status().contains("fwd=bypass"),
        "{}",
        res.cache_status()
    );
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn the_requests_own_mode_wins_over_with_extension() {
    let h = Harness::private(|_| ok("body").cc("max-age=600")).await;
    h.get("/r").await;
    let mut req = http::Request::get(h.url("/r")).body(Vec::new()).unwrap();
    req.extensions_mut().insert(CacheMode::Reload);
    let req = reqwest::Request::try_from(req).unwrap();
    let mut ext = http::Extensions::new();
    ext.insert(CacheMode::OnlyIfCached);
    let res = read(
        h.client
            .execute_with_extensions(req, &mut ext)
            .await
            .unwrap(),
    )
    .await;
    assert!(!res.is_hit(), "{}", res.cache_status());
    assert_eq!(h.count(), 2, "Reload went to the origin");
}
