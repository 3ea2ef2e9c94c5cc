//! RFC 5861: stale-if-error and stale-while-revalidate.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use support::{Harness, eventually, ok, reply};

#[tokio::test]
async fn rfc5861_4_stale_if_error_serves_stored_on_server_error() {
    let h = Harness::private(|s| {
        if s.n == 1 {
            ok("good").cc("max-age=10, stale-if-error=60")
        } else {
            reply(500).body("broken")
        }
    })
    .await;
    h.get("/r").await;
    h.advance(30);
    let res = h.get("/r").await;
    assert_eq!(h.count(), 2);
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "good");
    assert_eq!(res.age(), Some(30));
    assert_eq!(
        res.cache_status(),
        "cachio; fwd=stale; fwd-status=500; ttl=-20; detail=stale-if-error"
    );
}

#[tokio::test]
async fn rfc5861_4_stale_if_error_serves_stored_when_origin_unreachable() {
    let h = Harness::private(|_| ok("good").cc("max-age=10, stale-if-error=60")).await;
    h.get("/r").await;
    h.origin.stop();
    h.advance(30);
    let res = h.get("/r").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "good");
    // No answer from the origin: no fwd-status.
    assert_eq!(
        res.cache_status(),
        "cachio; fwd=stale; ttl=-20; detail=stale-if-error"
    );
    assert_eq!(h.count(), 1);
}

#[tokio::test]
async fn rfc5861_4_stale_if_error_not_after_window() {
    let h = Harness::private(|s| {
        if s.n == 1 {
            ok("good").cc("max-age=10, stale-if-error=60")
        } else {
            reply(500).body("broken")
        }
    })
    .await;
    h.get("/r").await;
    h.advance(71);
    let res = h.get("/r").await;
    assert_eq!(res.status, 500);
    assert_eq!(res.text(), "broken");
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc5861_4_stale_if_error_unreachable_after_window_is_an_error() {
    let h = Harness::private(|_| ok("good").cc("max-age=10, stale-if-error=60")).await;
    h.get("/r").await;
    h.origin.stop();
    h.advance(71);
    assert!(h.call(h.req("/r")).await.is_err());
}

#[tokio::test]
async fn rfc5861_4_request_stale_if_error() {
    let h = Harness::private(|s| {
        if s.n == 1 {
            ok("good").cc("max-age=10")
        } else {
            reply(503)
        }
    })
    .await;
    h.get("/r").await;
    h.advance(30);
    let res = h
        .send(h.req("/r").header("cache-control", "stale-if-error=60"))
        .await;
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "good");
    let res = h.get("/r").await;
    assert_eq!(res.status, 503, "without the directive the error passes");
}

#[tokio::test]
async fn rfc5861_4_stale_if_error_not_with_must_revalidate() {
    let h = Harness::private(|s| {
        if s.n == 1 {
            ok("good").cc("max-age=10, must-revalidate, stale-if-error=60")
        } else {
            reply(500)
        }
    })
    .await;
    h.get("/r").await;
    h.advance(30);
    assert_eq!(h.get("/r").await.status, 500);
}

#[tokio::test]
async fn rfc5861_3_stale_while_revalidate_serves_stale_and_revalidates_once() {
    let release = Arc::new(tokio::sync::Notify::new());
    let h = Harness::private({
        let release = release.clone();
        move |s| {
            if s.n == 1 {
                ok("old")
                    .cc("max-age=10, stale-while-revalidate=60")
                    .header("etag", "\"1\"")
            } else {
                // The background revalidation: held until the test lets it go.
                ok("new")
                    .cc("max-age=10, stale-while-revalidate=60")
                    .header("etag", "\"2\"")
                    .hold(release.clone())
            }
        }
    })
    .await;
    h.get("/r").await;
    h.advance(20);
    for _ in 0..3 {
        let res = h.get("/r").await;
        assert_eq!(res.text(), "old", "served stale at once");
        assert!(res.is_hit(), "{}", res.cache_status());
        assert_eq!(res.cache_status(), "cachio; hit; ttl=-10");
    }
    eventually("the background revalidation", || h.count() == 2).await;
    assert_eq!(h.origin.last().header("if-none-match"), Some("\"1\""));
    release.notify_one();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let res = h.get("/r").await;
        assert!(res.is_hit(), "{}", res.cache_status());
        if res.text() == "new" {
            assert_eq!(res.cache_status(), "cachio; hit; ttl=10");
            break;
        }
        assert_eq!(res.text(), "old");
        assert!(
            tokio::time::Instant::now() < deadline,
            "the entry was never replaced"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(h.count(), 2, "exactly one revalidation");
}

#[tokio::test]
async fn rfc5861_3_stale_while_revalidate_with_304() {
    let h = Harness::private(|s| {
        if s.n == 1 {
            ok("body")
                .cc("max-age=10, stale-while-revalidate=60")
                .header("etag", "\"1\"")
        } else {
            reply(304)
                .cc("max-age=100")
                .header("etag", "\"1\"")
                .header("x-refreshed", "yes")
        }
    })
    .await;
    h.get("/r").await;
    h.advance(20);
    let res = h.get("/r").await;
    assert_eq!(res.text(), "body");
    assert_eq!(res.header("x-refreshed"), None);
    eventually("the background revalidation", || h.count() == 2).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let res = h.get("/r").await;
        assert_eq!(res.text(), "body");
        if res.header("x-refreshed") == Some("yes") {
            assert_eq!(res.cache_status(), "cachio; hit; ttl=100");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the entry was never refreshed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc5861_3_stale_while_revalidate_not_after_window() {
    let h = Harness::private(|s| {
        ok("x")
            .cc("max-age=10, stale-while-revalidate=60")
            .header("x-n", &s.n.to_string())
    })
    .await;
    h.get("/r").await;
    h.advance(71);
    let res = h.get("/r").await;
    assert!(!res.is_hit(), "{}", res.cache_status());
    assert_eq!(res.header("x-n"), Some("2"));
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc5861_3_only_if_cached_serves_stale_without_contacting_origin() {
    let h = Harness::private(|_| ok("old").cc("max-age=10, stale-while-revalidate=60")).await;
    h.get("/r").await;
    h.advance(20);
    for req in [
        h.req("/r").header("cache-control", "only-if-cached"),
        h.req("/r").extension(cachio::CacheMode::OnlyIfCached),
    ] {
        let res = h.send(req).await;
        assert_eq!(res.status, 200);
        assert_eq!(res.text(), "old");
    }
    support::settle().await;
    assert_eq!(
        h.count(),
        1,
        "only-if-cached never goes to the origin, not even in the background"
    );
}

/// An origin whose `/r` was cacheable (no validators, a long `stale-if-error`), then answers the
/// validations with `then` (to GET and HEAD alike), then fails with a 503.
fn replaced(then: u16) -> impl Fn(&support::Seen) -> support::Reply {
    move |s| match s.n {
        1 => ok("old").cc("max-age=10, stale-if-error=600"),
        2 => reply(then).cc("no-store").body("now"),
        _ => reply(503).body("down"),
    }
}

#[tokio::test]
async fn rfc9111_4_3_3_a_response_the_origin_replaced_does_not_stand_in_for_its_errors() {
    // A deleted resource (404, 410), a moved one (301), or a current 200 the cache may not store:
    // each says the stored response is no longer the resource's.
    for then in [404, 410, 301, 200] {
        let h = Harness::private(replaced(then)).await;
        h.get("/r").await;
        h.advance(20);
        let now = h.get("/r").await;
        assert_eq!(now.status, then);
        h.advance(1);
        let res = h.get("/r").await;
        assert_eq!(
            (res.status.as_u16(), res.text()),
            (503, "down"),
            "after a {then}: {}",
            res.cache_status()
        );
    }
}

#[tokio::test]
async fn rfc9111_4_3_5_a_head_saying_the_resource_is_gone_removes_the_stored_response() {
    for then in [404, 410] {
        let h = Harness::private(replaced(then)).await;
        h.get("/r").await;
        h.advance(20);
        let head = h.send(h.req("/r").method("HEAD")).await;
        assert_eq!(head.status, then);
        h.advance(1);
        let res = h.get("/r").await;
        assert_eq!(
            res.status,
            503,
            "after a HEAD {then}: {}",
            res.cache_status()
        );
    }
}

#[tokio::test]
async fn rfc5861_4_an_answer_about_the_request_rather_than_the_resource_keeps_the_stored_response()
{
    // A 429 (rate limited) or 403 to a validation, or a 405 to a HEAD (an origin without HEAD),
    // says nothing of the resource: the stored response still stands in for a later error.
    for (method, then) in [("GET", 429), ("GET", 403), ("HEAD", 405)] {
        let h = Harness::private(replaced(then)).await;
        h.get("/r").await;
        h.advance(20);
        assert_eq!(h.send(h.req("/r").method(method)).await.status, then);
        h.advance(1);
        let res = h.get("/r").await;
        assert_eq!(
            (res.status.as_u16(), res.text()),
            (200, "old"),
            "after a {method} {then}: {}",
            res.cache_status()
        );
    }
}
