//! Stale responses: stale-while-revalidate in the background, stale-if-error and grace for a
//! failing origin, and 502/504 once nothing stored may stand in.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use cachio_core::clock::ManualClock;
use cachio_gateway::Gateway;
use http::Response;
use support::{Gate, Origin, Running, client, eventually, full, get};

/// A 200 dated by the test's clock (an origin's `Date` and the cache's clock agree).
fn ok(clock: &ManualClock, cache_control: &str, body: &'static str) -> Response<support::Body> {
    let mut res = support::ok(cache_control, body);
    res.headers_mut().insert(
        "date",
        cachio_core::meta::fmt_http_date(cachio_core::clock::Clock::now(clock)),
    );
    res
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_while_revalidate_answers_at_once_and_revalidates_once_in_the_background() {
    let gate = Gate::closed();
    let g = gate.clone();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let clock = ManualClock::new(SystemTime::now());
    let oc = clock.clone();
    let origin = Origin::start(move |_req| {
        let (g, c, clock) = (g.clone(), c.clone(), oc.clone());
        async move {
            if c.fetch_add(1, Ordering::SeqCst) == 0 {
                return ok(&clock, "max-age=10, stale-while-revalidate=60", "v1");
            }
            // The revalidation: slow (the gate stays shut until the stale answers are in;
            // 500 ms at least either way).
            tokio::time::sleep(Duration::from_millis(500)).await;
            g.wait(Duration::from_secs(20)).await;
            ok(&clock, "max-age=10, stale-while-revalidate=60", "v2")
        }
    })
    .await;
    let gw = Running::start(Gateway::builder(origin.url()).clock(clock.clone())).await;
    let client = client();
    let url = gw.url("/swr");

    assert_eq!(get(&client, &url).await.body, "v1");
    // The client has the whole body before the cache has committed it: wait for the commit.
    let stats = gw.gateway.stats();
    eventually("v1 stored", 10, || stats.snapshot().stores == 1).await;
    clock.advance(Duration::from_secs(20));

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..10 {
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move { get(&client, &url).await });
    }
    while let Some(got) = tasks.join_next().await {
        let got = got.unwrap();
        assert_eq!(got.status, 200);
        assert_eq!(got.body, "v1", "the stale response");
        assert!(got.cache_status().contains("hit"), "{}", got.cache_status());
        let age: u64 = got.headers["age"].to_str().unwrap().parse().unwrap();
        assert!(age >= 20, "age {age}");
    }
    // Every stale answer arrived while the one revalidation was still held at the origin.
    assert_eq!(
        origin.state.inflight(),
        1,
        "the revalidation is still in flight"
    );
    assert_eq!(origin.state.count(), 2, "exactly one background fetch");
    assert_eq!(stats.snapshot().background_revalidations, 1);

    gate.open();
    eventually("the revalidated response stored", 10, || {
        stats.snapshot().stores == 2
    })
    .await;
    let got = get(&client, &url).await;
    assert_eq!(got.body, "v2");
    assert!(got.cache_status().contains("hit"));
    assert_eq!(origin.state.count(), 2);
}

/// An origin that answers the first request with `v1` under `cache_control`, and every later
/// one by `later`.
async fn origin_then<F, Fut>(clock: &ManualClock, cache_control: &'static str, later: F) -> Origin
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<support::Body>> + Send + 'static,
{
    let calls = Arc::new(AtomicUsize::new(0));
    let later = Arc::new(later);
    let clock = clock.clone();
    Origin::start(move |_req| {
        let (calls, later, clock) = (calls.clone(), later.clone(), clock.clone());
        async move {
            if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                ok(&clock, cache_control, "v1")
            } else {
                later().await
            }
        }
    })
    .await
}

fn server_error() -> Response<support::Body> {
    Response::builder().status(500).body(full("boom")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_answering_500_gets_stale_responses_within_stale_if_error_then_the_500() {
    let clock = ManualClock::new(SystemTime::now());
    let origin = origin_then(&clock, "max-age=10, stale-if-error=60", || async {
        server_error()
    })
    .await;
    let gw = Running::start(Gateway::builder(origin.url()).clock(clock.clone())).await;
    let client = client();
    let url = gw.url("/sie");
    assert_eq!(get(&client, &url).await.body, "v1");
    // The client has the whole body before the cache has committed it: wait for the commit.
    let stats = gw.gateway.stats();
    eventually("v1 stored", 10, || stats.snapshot().stores == 1).await;

    clock.advance(Duration::from_secs(20));
    let got = get(&client, &url).await;
    assert_eq!((got.status.as_u16(), &got.body[..]), (200, &b"v1"[..]));
    assert!(
        got.cache_status().contains("fwd=stale"),
        "{}",
        got.cache_status()
    );
    assert!(
        got.cache_status().contains("stale-if-error"),
        "{}",
        got.cache_status()
    );
    assert_eq!(origin.state.count(), 2, "the origin was asked");

    clock.advance(Duration::from_secs(60));
    let got = get(&client, &url).await;
    assert_eq!((got.status.as_u16(), &got.body[..]), (500, &b"boom"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_is_down_gets_stale_responses_within_stale_if_error_then_502() {
    let clock = ManualClock::new(SystemTime::now());
    let mut origin = origin_then(&clock, "max-age=10, stale-if-error=60", || async {
        server_error()
    })
    .await;
    let gw = Running::start(Gateway::builder(origin.url()).clock(clock.clone())).await;
    let client = client();
    let url = gw.url("/down");
    assert_eq!(get(&client, &url).await.body, "v1");
    // The client has the whole body before the cache has committed it: wait for the commit.
    let stats = gw.gateway.stats();
    eventually("v1 stored", 10, || stats.snapshot().stores == 1).await;
    origin.kill().await;

    clock.advance(Duration::from_secs(20));
    let got = get(&client, &url).await;
    assert_eq!((got.status.as_u16(), &got.body[..]), (200, &b"v1"[..]));
    assert!(
        got.cache_status().contains("stale-if-error"),
        "{}",
        got.cache_status()
    );

    clock.advance(Duration::from_secs(60));
    let got = get(&client, &url).await;
    assert_eq!(got.status, 502);
    assert!(
        got.cache_status().contains("origin-unreachable"),
        "{}",
        got.cache_status()
    );
    assert_eq!(got.headers["via"], "1.1 cachio");
    let metrics = gw.gateway.metrics();
    // Two failed calls: refused connections, or a pooled connection found cut.
    let errors: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("cachio_origin_errors_total{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(errors, 2, "{metrics}");
    assert!(
        metrics.contains("cachio_gateway_responses_total{cache=\"cachio\",class=\"5xx\"} 1"),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_hangs_gets_stale_responses_within_stale_if_error_then_504() {
    let clock = ManualClock::new(SystemTime::now());
    let origin = origin_then(&clock, "max-age=10, stale-if-error=60", || async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        server_error()
    })
    .await;
    let gw = Running::start(
        Gateway::builder(origin.url())
            .clock(clock.clone())
            .upstream_timeout(Some(Duration::from_millis(300))),
    )
    .await;
    let client = client();
    let url = gw.url("/hang");
    assert_eq!(get(&client, &url).await.body, "v1");
    // The client has the whole body before the cache has committed it: wait for the commit.
    let stats = gw.gateway.stats();
    eventually("v1 stored", 10, || stats.snapshot().stores == 1).await;

    clock.advance(Duration::from_secs(20));
    let got = get(&client, &url).await;
    assert_eq!((got.status.as_u16(), &got.body[..]), (200, &b"v1"[..]));

    clock.advance(Duration::from_secs(60));
    let got = get(&client, &url).await;
    assert_eq!(got.status, 504);
    assert!(
        got.cache_status().contains("origin-timeout"),
        "{}",
        got.cache_status()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_stands_in_for_a_dead_origin_without_stale_if_error() {
    let clock = ManualClock::new(SystemTime::now());
    let mut origin = origin_then(&clock, "max-age=10", || async { server_error() }).await;
    let gw = Running::start(
        Gateway::builder(origin.url())
            .clock(clock.clone())
            .grace(Duration::from_secs(30)),
    )
    .await;
    let client = client();
    let url = gw.url("/grace");
    assert_eq!(get(&client, &url).await.body, "v1");
    // The client has the whole body before the cache has committed it: wait for the commit.
    let stats = gw.gateway.stats();
    eventually("v1 stored", 10, || stats.snapshot().stores == 1).await;
    origin.kill().await;

    clock.advance(Duration::from_secs(25));
    let got = get(&client, &url).await;
    assert_eq!((got.status.as_u16(), &got.body[..]), (200, &b"v1"[..]));

    clock.advance(Duration::from_secs(30));
    assert_eq!(get(&client, &url).await.status, 502);
}
