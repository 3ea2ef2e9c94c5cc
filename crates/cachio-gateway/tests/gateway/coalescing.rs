//! Concurrent requests for one URL: one origin fetch when cacheable, no serialisation when not.

use crate::support;

use std::time::Duration;

use cachio_gateway::Gateway;
use support::{Gate, Origin, Running, client, eventually, get, ok};

const N: usize = 500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cold_cacheable_url_reaches_the_origin_once_for_500_concurrent_requests() {
    let gate = Gate::closed();
    let g = gate.clone();
    let body = vec![b'c'; 100_000];
    let b = body.clone();
    let origin = Origin::start(move |_req| {
        let (g, b) = (g.clone(), b.clone());
        async move {
            g.wait(Duration::from_secs(20)).await;
            ok("max-age=60", b)
        }
    })
    .await;
    let gw =
        Running::start(Gateway::builder(origin.url()).coalesce_timeout(Duration::from_secs(30)))
            .await;
    let stats = gw.gateway.stats();
    let client = client();
    let url = gw.url("/cold");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..N {
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move { get(&client, &url).await });
    }
    // Every request has arrived: one at the origin, the others waiting for it.
    eventually("499 requests waiting on the first", 30, || {
        stats.snapshot().coalesced == (N - 1) as u64 && origin.state.inflight() == 1
    })
    .await;
    gate.open();
    let mut collapsed = 0;
    while let Some(got) = tasks.join_next().await {
        let got = got.unwrap();
        assert_eq!(got.status, 200);
        assert_eq!(got.body.len(), body.len());
        assert!(got.body.iter().all(|b| *b == b'c'));
        if got.cache_status().contains("collapsed") {
            collapsed += 1;
        }
    }
    assert_eq!(origin.state.count(), 1, "one origin fetch for {N} requests");
    assert_eq!(collapsed, N - 1);
    let s = stats.snapshot();
    assert_eq!((s.misses, s.stores), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncacheable_url_sends_every_request_to_the_origin_without_serialising() {
    let gate = Gate::closed();
    let g = gate.clone();
    let origin = Origin::start(move |_req| {
        let g = g.clone();
        async move {
            g.wait(Duration::from_secs(20)).await;
            ok("no-store", "fresh every time")
        }
    })
    .await;
    let gw =
        Running::start(Gateway::builder(origin.url()).coalesce_timeout(Duration::from_secs(30)))
            .await;
    let stats = gw.gateway.stats();
    let client = client();
    let url = gw.url("/uncacheable");

    // A cold burst: the first request leads, the others wait until its response shows the URL
    // cannot be stored, then all go to the origin at once.
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..N {
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move { get(&client, &url).await });
    }
    eventually("the cold burst waiting on its first request", 30, || {
        stats.snapshot().coalesced == (N - 1) as u64 && origin.state.inflight() == 1
    })
    .await;
    gate.open();
    while let Some(got) = tasks.join_next().await {
        let got = got.unwrap();
        assert_eq!(got.status, 200);
        assert_eq!(got.body, "fresh every time");
    }
    assert_eq!(
        origin.state.count(),
        N,
        "every request of the cold burst reached the origin"
    );

    // The next burst goes straight to the origin (hit-for-miss): all N are in flight at the
    // origin together, which a serialised cache could never do.
    gate.close();
    let coalesced_before = stats.snapshot().coalesced;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..N {
        let (client, url) = (client.clone(), url.clone());
        tasks.spawn(async move { get(&client, &url).await });
    }
    eventually(
        "all requests of the second burst in flight at the origin",
        30,
        || origin.state.inflight() == N,
    )
    .await;
    gate.open();
    while let Some(got) = tasks.join_next().await {
        assert_eq!(got.unwrap().status, 200);
    }
    assert_eq!(origin.state.count(), 2 * N);
    assert_eq!(origin.state.max_inflight(), N);
    assert_eq!(
        stats.snapshot().coalesced,
        coalesced_before,
        "no request waited on another"
    );
}
