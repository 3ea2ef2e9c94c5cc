//! A failing store is a miss, never an error; odd origins do not confuse the cache.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use cachio::CacheLayer;
use http_body_util::{BodyExt, Full};
use support::flaky::{Faults, Flaky};
use support::{Harness, memory, ok, reply};
use tower::{ServiceBuilder, ServiceExt};

async fn flaky(handler: fn(&support::Seen) -> support::Reply) -> (Harness<Flaky>, Arc<Faults>) {
    let store = Flaky::new();
    let faults = store.faults.clone();
    (
        Harness::with(CacheLayer::private(store), handler).await,
        faults,
    )
}

fn cacheable(s: &support::Seen) -> support::Reply {
    if s.method != "GET" {
        return reply(204);
    }
    if s.header("if-none-match").is_some() {
        return reply(304)
            .cc("max-age=10")
            .header("etag", "\"e\"")
            .header("x-n", &s.n.to_string());
    }
    reply(200)
        .cc("max-age=10")
        .header("etag", "\"e\"")
        .header("x-n", &s.n.to_string())
        .body(format!("body #{}", s.n))
}

#[tokio::test]
async fn store_read_failure_is_a_miss() {
    let (h, faults) = flaky(cacheable).await;
    h.get("/r").await;
    faults.get.store(true, Ordering::SeqCst);
    for n in 2..=3 {
        let res = h.get("/r").await;
        assert_eq!(res.status, 200);
        assert_eq!(res.text(), format!("body #{n}"));
        assert!(
            res.cache_status().contains("fwd=uri-miss"),
            "{}",
            res.cache_status()
        );
    }
    faults.get.store(false, Ordering::SeqCst);
    assert!(h.get("/r").await.is_hit());
}

#[tokio::test]
async fn store_write_failures_store_nothing_and_lose_nothing() {
    for fault in ["begin", "append", "commit"] {
        let (h, faults) = flaky(cacheable).await;
        match fault {
            "begin" => &faults.begin,
            "append" => &faults.append,
            _ => &faults.commit,
        }
        .store(true, Ordering::SeqCst);
        let res = h.get("/r").await;
        assert_eq!(res.text(), "body #1", "{fault}");
        let res = h.get("/r").await;
        assert!(!res.is_hit(), "{fault}: {}", res.cache_status());
        assert_eq!(res.text(), "body #2", "{fault}");
    }
}

#[tokio::test]
async fn store_update_failure_after_304_still_serves() {
    let (h, faults) = flaky(cacheable).await;
    h.get("/r").await;
    faults.update.store(true, Ordering::SeqCst);
    h.advance(20);
    let res = h.get("/r").await;
    assert_eq!(res.status, 200);
    assert_eq!(res.text(), "body #1");
    assert_eq!(
        res.header("x-n"),
        Some("2"),
        "the 304's fields are used even if not stored"
    );
}

#[tokio::test]
async fn store_delete_failure_does_not_fail_the_unsafe_request() {
    let (h, faults) = flaky(cacheable).await;
    h.get("/r").await;
    faults.delete.store(true, Ordering::SeqCst);
    let res = h.send(h.req("/r").method("DELETE")).await;
    assert_eq!(res.status, 204);
}

#[tokio::test]
async fn origin_connection_failure_without_entry_is_an_error() {
    let h = Harness::private(|_| ok("x").cc("max-age=10")).await;
    h.origin.stop();
    assert!(h.call(h.req("/r")).await.is_err());
}

#[tokio::test]
async fn rfc9111_3_3_declared_length_mismatch_not_stored() {
    // An origin service (no HTTP framing to catch it) whose body is shorter than it says.
    let origin = tower::service_fn(|req: http::Request<Full<Bytes>>| async move {
        let body = if req.uri().path() == "/short" {
            "short"
        } else {
            "exact"
        };
        Ok::<_, std::convert::Infallible>(
            http::Response::builder()
                .header("cache-control", "max-age=60")
                .header("content-length", if body == "short" { "10" } else { "5" })
                .body(Full::new(Bytes::from_static(body.as_bytes())))
                .unwrap(),
        )
    });
    let cache = ServiceBuilder::new()
        .layer(CacheLayer::private(memory()))
        .service(origin);
    for (path, stored) in [("/short", false), ("/exact", true)] {
        for _ in 0..2 {
            let req = http::Request::get(format!("http://example.com{path}"))
                .body(Full::default())
                .unwrap();
            let res = cache.clone().oneshot(req).await.unwrap();
            let _ = res.into_body().collect().await;
        }
        support::settle().await;
        let req = http::Request::get(format!("http://example.com{path}"))
            .header("cache-control", "only-if-cached")
            .body(Full::default())
            .unwrap();
        let res = cache.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status() == 200, stored, "{path}");
    }
}

#[tokio::test]
async fn unknown_method_is_passed_on() {
    let h = Harness::private(|s| reply(200).body(s.method.to_string())).await;
    let res = h.send(h.req("/r").method("PROPFIND")).await;
    assert_eq!(res.text(), "PROPFIND");
    assert!(
        res.cache_status().contains("fwd=method"),
        "{}",
        res.cache_status()
    );
}

#[tokio::test]
async fn many_concurrent_requests_all_answered() {
    let h = Harness::private(|s| reply(200).cc("max-age=100").body(s.path().to_owned())).await;
    let h = Arc::new(h);
    let mut tasks = Vec::new();
    for i in 0..50 {
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            let path = format!("/r{}", i % 5);
            let res = h.get(&path).await;
            assert_eq!(res.text(), path);
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for i in 0..5 {
        assert!(h.get(&format!("/r{i}")).await.is_hit());
    }
}

/// A store that falls behind on its commits: past the write backlog, responses are passed on
/// unstored, and stored again once the commits are done.
#[tokio::test]
async fn responses_past_the_write_backlog_are_passed_on_unstored() {
    let store = Flaky::new();
    let faults = store.faults.clone();
    let layer = CacheLayer::shared(store.clone()).write_backlog(100);
    let h = Arc::new(
        Harness::with(layer, |s| {
            let body = if s.path() == "/big" {
                "x".repeat(100)
            } else {
                "small".to_owned()
            };
            reply(200).body(body).cc("max-age=100")
        })
        .await,
    );

    // The commit of a 100-byte body waits: 100 bytes are being committed.
    faults.hold_response.store(true, Ordering::SeqCst);
    let big = {
        let h = h.clone();
        tokio::spawn(async move { h.get("/big").await })
    };
    faults.reached.notified().await;
    let passed = h.get("/a").await;
    assert_eq!(passed.text(), "small");
    assert!(
        !passed.cache_status().contains("stored"),
        "{}",
        passed.cache_status()
    );
    assert_eq!(h.svc.stats().snapshot().backlogged, 1);

    // Once the commit is done, the backlog is empty and responses are stored again.
    faults.release.notify_one();
    assert_eq!(big.await.unwrap().text(), "x".repeat(100));
    assert!(h.get("/big").await.is_hit());
    assert!(!h.get("/a").await.is_hit(), "/a was passed on unstored");
    let stored = h.get("/b").await;
    assert!(
        stored.cache_status().contains("stored"),
        "{}",
        stored.cache_status()
    );
    assert!(h.get("/b").await.is_hit());
    // /a again, while nothing was behind: stored, not counted.
    assert_eq!(h.svc.stats().snapshot().backlogged, 1);
}
