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

/// The figures of one cold burst on a trickling origin.
struct Burst {
    /// Each client's first byte, after the leader's (the leader's own is zero).
    first_byte_after_leader: Vec<Duration>,
    /// How many chunks the origin had sent when each client got its first byte.
    chunks_sent_at_first_byte: Vec<usize>,
    origin_requests: usize,
    next_is_hit: bool,
}

/// `clients` requests for one cold key whose origin sends `chunks` chunks of 64 KiB, one every
/// `every`; the first client (the leader) hangs up after its first chunk when `leader_leaves`.
async fn trickle_burst(
    clients: usize,
    chunks: usize,
    every: Duration,
    leader_leaves: bool,
) -> Burst {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http_body_util::BodyExt;
    use http_body_util::channel::Channel;

    const CHUNK: usize = 64 * 1024;
    let sent = Arc::new(AtomicUsize::new(0));
    let s = sent.clone();
    let origin = Origin::start(move |_req| {
        let s = s.clone();
        async move {
            let (mut tx, body) = Channel::<Bytes, Box<dyn std::error::Error + Send + Sync>>::new(1);
            tokio::spawn(async move {
                for i in 0..chunks {
                    if i > 0 {
                        tokio::time::sleep(every).await;
                    }
                    let chunk = Bytes::from(vec![(i % 251) as u8; CHUNK]);
                    if tx.send_data(chunk).await.is_err() {
                        return;
                    }
                    s.fetch_add(1, Ordering::SeqCst);
                }
            });
            let body = body.boxed();
            let mut res = ok("max-age=60", Bytes::new());
            *res.body_mut() = body;
            res.headers_mut().insert(
                "content-length",
                (chunks * CHUNK).to_string().parse().unwrap(),
            );
            res
        }
    })
    .await;
    let gw = Running::start(Gateway::builder(origin.url())).await;
    let stats = gw.gateway.stats();
    let client = client();
    let url = gw.url("/release.tar");
    let start = tokio::time::Instant::now();
    let mut tasks = Vec::new();
    for n in 0..clients {
        let (client, url, sent) = (client.clone(), url.clone(), sent.clone());
        tasks.push(tokio::spawn(async move {
            let res = client
                .get(url.parse().unwrap())
                .await
                .expect("the gateway answers");
            let mut body = res.into_body();
            let mut got = Vec::new();
            let mut first = None;
            while let Some(frame) = body.frame().await {
                let Ok(data) = frame.expect("the body streams").into_data() else {
                    continue;
                };
                if first.is_none() {
                    first = Some((start.elapsed(), sent.load(Ordering::SeqCst)));
                    if n == 0 && leader_leaves {
                        return (first.unwrap(), None);
                    }
                }
                got.extend_from_slice(&data);
            }
            (first.expect("a first byte"), Some(got))
        }));
        if n == 0 {
            // The leader is at the origin before the others arrive.
            eventually("the leader at the origin", 10, || origin.state.count() == 1).await;
        }
    }
    eventually("the others waiting on the leader", 10, || {
        stats.snapshot().coalesced == (clients - 1) as u64
    })
    .await;
    let mut firsts = Vec::new();
    for t in tasks {
        let ((at, sent), body) = t.await.unwrap();
        if let Some(body) = body {
            assert_eq!(
                body.len(),
                chunks * CHUNK,
                "every waiter gets the whole body"
            );
            assert!(
                body.chunks(CHUNK)
                    .enumerate()
                    .all(|(i, c)| c.iter().all(|b| *b == (i % 251) as u8)),
                "identical bytes"
            );
        }
        firsts.push((at, sent));
    }
    let leader = firsts[0].0;
    let hit = get(&client, &url).await;
    Burst {
        first_byte_after_leader: firsts
            .iter()
            .map(|(at, _)| at.saturating_sub(leader))
            .collect(),
        chunks_sent_at_first_byte: firsts.iter().map(|(_, s)| *s).collect(),
        origin_requests: origin.state.count(),
        next_is_hit: hit.cache_status().contains("hit"),
    }
}

/// 8 clients on one cold 3 MB key from an origin taking 2.5 s (48 chunks of 64 KiB, one every
/// 52 ms): the figures are printed (`--nocapture`); the assertions hold whatever the machine's
/// load (one origin request, every body whole, and every waiter's first byte long before the
/// fetch ends: it streams, it does not wait for the store).
async fn eight_clients_on_a_slow_cold_key(leader_leaves: bool) {
    let b = trickle_burst(8, 48, Duration::from_millis(52), leader_leaves).await;
    eprintln!(
        "leader leaves: {leader_leaves}; first byte after the leader's (ms): {:?}; chunks the origin had sent then: {:?}",
        b.first_byte_after_leader
            .iter()
            .map(Duration::as_millis)
            .collect::<Vec<_>>(),
        b.chunks_sent_at_first_byte,
    );
    assert_eq!(b.origin_requests, 1, "one origin request");
    assert!(b.next_is_hit, "the fill was stored");
    for (i, sent) in b.chunks_sent_at_first_byte.iter().enumerate() {
        assert!(
            *sent < 24,
            "client {i} got its first byte only after {sent} of 48 chunks"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_stream_a_slow_cold_fill_from_its_first_byte() {
    eight_clients_on_a_slow_cold_key(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_goes_on_when_its_leader_hangs_up() {
    eight_clients_on_a_slow_cold_key(true).await;
}
