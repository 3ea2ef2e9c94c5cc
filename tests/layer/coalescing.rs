//! Request coalescing in the layer: concurrent requests for one cold key share one origin fetch;
//! uncacheable keys are not serialised (hit-for-miss); waiting is bounded.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use cachio::CacheLayer;
use support::*;
use tokio::sync::Notify;

const N: usize = 500;

async fn burst(
    h: &Arc<Harness>,
    path: &'static str,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Got>> {
    (0..n)
        .map(|_| {
            let h = h.clone();
            tokio::spawn(async move { h.get(path).await })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coalescing_500_concurrent_requests_for_a_cold_url_reach_the_origin_once() {
    let release = Arc::new(Notify::new());
    let body = "x".repeat(64 * 1024);
    let h = {
        let release = release.clone();
        let body = body.clone();
        Arc::new(
            Harness::shared(move |_| {
                ok("")
                    .body(body.clone())
                    .cc("max-age=60")
                    .hold(release.clone())
            })
            .await,
        )
    };
    let stats = h.svc.stats();
    let tasks = burst(&h, "/cold", N).await;
    // Every request but the leader is waiting on the leader's fetch before the origin answers
    // (and the leader's request, on its way meanwhile, has reached the origin).
    eventually("all followers to wait", || {
        stats.snapshot().coalesced == (N - 1) as u64 && h.count() > 0
    })
    .await;
    assert_eq!(h.count(), 1, "only the leader reached the origin");
    release.notify_one();

    let mut collapsed = 0;
    for t in tasks {
        let got = t.await.expect("request task");
        assert_eq!(got.status, 200);
        assert_eq!(
            got.body.len(),
            body.len(),
            "every request gets the full body"
        );
        if got.cache_status().contains("collapsed") {
            collapsed += 1;
            assert!(
                got.cache_status().contains("fwd=uri-miss"),
                "{}",
                got.cache_status()
            );
            assert!(
                got.cache_status().contains("fwd-status=200"),
                "{}",
                got.cache_status()
            );
        }
    }
    assert_eq!(collapsed, N - 1);
    assert_eq!(h.count(), 1, "the origin saw exactly one request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn coalescing_an_uncacheable_url_releases_the_waiters_at_once_and_then_skips_waiting() {
    let release = Arc::new(Notify::new());
    let h = {
        let release = release.clone();
        Arc::new(
            Harness::shared(move |seen| {
                let r = ok("private stuff").cc("no-store");
                // Only the first request is held: the waiters are released by its answer.
                if seen.n == 1 {
                    r.hold(release.clone())
                } else {
                    r
                }
            })
            .await,
        )
    };
    let stats = h.svc.stats();
    let tasks = burst(&h, "/uncacheable", 50).await;
    eventually("the followers to wait", || stats.snapshot().coalesced == 49).await;
    release.notify_one();
    for t in tasks {
        let got = t.await.expect("request task");
        assert_eq!(got.text(), "private stuff");
        assert!(
            !got.cache_status().contains("collapsed"),
            "{}",
            got.cache_status()
        );
    }
    assert_eq!(h.count(), 50, "every request went to the origin");

    // Hit-for-miss: the key is now known to be uncacheable, so a second burst does not wait.
    let tasks = burst(&h, "/uncacheable", 50).await;
    for t in tasks {
        t.await.expect("request task");
    }
    assert_eq!(
        stats.snapshot().coalesced,
        49,
        "no request waited on another"
    );
    assert_eq!(h.count(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalescing_a_leader_that_fails_lets_the_waiters_fetch_for_themselves() {
    let release = Arc::new(Notify::new());
    let h = {
        let release = release.clone();
        Arc::new(
            Harness::shared(move |seen| {
                if seen.n == 1 {
                    ok("")
                        .cc("max-age=60")
                        .hold(release.clone())
                        .fail_after("par")
                } else {
                    ok("whole").cc("max-age=60")
                }
            })
            .await,
        )
    };
    let stats = h.svc.stats();
    let leader = {
        let h = h.clone();
        tokio::spawn(async move {
            // The origin dies mid-body: hyper reports it on the body, or on the head when the
            // failure comes before the head was flushed.
            match h.call(h.req("/flaky")).await {
                Ok(res) => http_body_util::BodyExt::collect(res.into_body())
                    .await
                    .is_err(),
                Err(_) => true,
            }
        })
    };
    eventually("the leader to reach the origin", || h.count() == 1).await;
    let followers = burst(&h, "/flaky", 5).await;
    eventually("the followers to wait", || stats.snapshot().coalesced == 5).await;
    release.notify_one();
    assert!(leader.await.unwrap(), "the leader's response fails");
    for t in followers {
        let got = t.await.expect("request task");
        assert_eq!(got.text(), "whole", "no partial body is served to a waiter");
    }
    assert!(
        h.count() >= 2,
        "the waiters fetched again after the leader failed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalescing_waiting_is_bounded_by_the_timeout() {
    let release = Arc::new(Notify::new());
    let layer = CacheLayer::shared(memory()).coalesce_timeout(Duration::from_millis(50));
    let h = {
        let release = release.clone();
        Arc::new(
            Harness::with(layer, move |seen| {
                let r = ok("late").cc("max-age=60");
                if seen.n == 1 {
                    r.hold(release.clone())
                } else {
                    r
                }
            })
            .await,
        )
    };
    let leader = burst(&h, "/slow", 1).await;
    eventually("the leader to reach the origin", || h.count() == 1).await;
    // The follower gives up waiting and fetches on its own while the leader is still held.
    let got = h.get("/slow").await;
    assert_eq!(got.text(), "late");
    assert_eq!(h.count(), 2);
    release.notify_one();
    for t in leader {
        assert_eq!(t.await.unwrap().text(), "late");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalescing_can_be_turned_off() {
    let release = Arc::new(Notify::new());
    let layer = CacheLayer::shared(memory()).coalesce(false);
    let h = {
        let release = release.clone();
        Arc::new(
            Harness::with(layer, move |_| {
                ok("x").cc("max-age=60").hold(release.clone())
            })
            .await,
        )
    };
    let tasks = burst(&h, "/k", 3).await;
    eventually("all three requests at the origin", || h.count() == 3).await;
    for _ in 0..3 {
        release.notify_one();
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().text(), "x");
    }
    assert_eq!(h.svc.stats().snapshot().coalesced, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalescing_a_waiter_that_finds_the_result_stale_validates_it() {
    let release = Arc::new(Notify::new());
    let h = {
        let release = release.clone();
        Arc::new(
            Harness::shared(move |seen| {
                if seen.is_conditional() {
                    return reply(304).header("etag", "\"v1\"").cc("max-age=0");
                }
                let r = ok("v1").header("etag", "\"v1\"").cc("max-age=0");
                if seen.n == 1 {
                    r.hold(release.clone())
                } else {
                    r
                }
            })
            .await,
        )
    };
    let stats = h.svc.stats();
    let leader = burst(&h, "/zero", 1).await;
    eventually("the leader to reach the origin", || h.count() == 1).await;
    let follower = burst(&h, "/zero", 1).await;
    eventually("the follower to wait", || stats.snapshot().coalesced == 1).await;
    release.notify_one();
    assert_eq!(
        leader.into_iter().next().unwrap().await.unwrap().text(),
        "v1"
    );
    let got = follower.into_iter().next().unwrap().await.unwrap();
    assert_eq!(got.text(), "v1");
    // The stored result was stale on arrival (max-age=0): the follower validated it rather than
    // fetching it whole again.
    assert_eq!(h.count(), 2);
    assert!(
        h.origin.last().is_conditional(),
        "the follower sent a conditional request"
    );
    assert!(
        got.cache_status().contains("fwd-status=304"),
        "{}",
        got.cache_status()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalescing_a_range_request_waits_for_a_whole_fetch_and_gets_its_part_from_the_cache() {
    let release = Arc::new(Notify::new());
    let h = {
        let release = release.clone();
        Arc::new(
            Harness::shared(move |_| ok("0123456789").cc("max-age=60").hold(release.clone())).await,
        )
    };
    let stats = h.svc.stats();
    let whole = burst(&h, "/video", 1).await;
    eventually("the whole fetch to reach the origin", || h.count() == 1).await;
    let ranged = {
        let h = h.clone();
        tokio::spawn(async move { h.send(h.req("/video").header("range", "bytes=2-4")).await })
    };
    eventually("the range request to wait", || {
        stats.snapshot().coalesced == 1
    })
    .await;
    release.notify_one();
    let part = ranged.await.unwrap();
    assert_eq!(part.status, 206);
    assert_eq!(part.text(), "234");
    assert_eq!(
        whole.into_iter().next().unwrap().await.unwrap().text(),
        "0123456789"
    );
    assert_eq!(h.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coalescing_a_range_request_does_not_make_whole_requests_wait_for_its_part() {
    let release = Arc::new(Notify::new());
    let h = {
        let release = release.clone();
        Arc::new(
            Harness::shared(move |seen| {
                if seen.header("range").is_some() {
                    reply(206)
                        .cc("max-age=60")
                        .header("content-range", "bytes 0-1/10")
                        .body("01")
                        .hold(release.clone())
                } else {
                    ok("0123456789").cc("max-age=60")
                }
            })
            .await,
        )
    };
    let ranged = {
        let h = h.clone();
        tokio::spawn(async move { h.send(h.req("/video").header("range", "bytes=0-1")).await })
    };
    eventually("the range request to reach the origin", || h.count() == 1).await;
    // The range request leads no flight: a whole request goes to the origin at once, and its
    // response is stored.
    let whole = h.get("/video").await;
    assert_eq!(whole.text(), "0123456789");
    assert_eq!(h.count(), 2);
    assert_eq!(h.svc.stats().snapshot().coalesced, 0);
    release.notify_one();
    assert_eq!(ranged.await.unwrap().status, 206);
    support::settle().await;
    assert!(h.get("/video").await.is_hit());
}
