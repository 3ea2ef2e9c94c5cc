//! Read while writing: requests that join a fetch in flight stream its body from the first byte,
//! at their own pace; a fill goes on when the client that started it goes away.

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cachio::{CacheLayer, Store};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use support::*;
use tokio::sync::Semaphore;
use tokio::time::{Instant, timeout};

const KIB: usize = 1024;
const CHUNK: usize = 64 * KIB;

/// `len` bytes of a pattern that shows misplaced or repeated chunks.
fn pattern(len: usize) -> Bytes {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 251 % 256) as u8)
        .collect::<Vec<u8>>()
        .into()
}

type Body<St = cachio::MemoryStore> = cachio::ResponseBody<Incoming, St>;

/// An origin that sends `body` in `CHUNK`s, each once the gate gives a permit (the test's hand on
/// the origin's pace), then fails instead of its last chunk when `fail` is set. It declares its
/// length unless the path ends in `-chunked`.
async fn gated<St: Store>(
    body: Bytes,
    gate: Arc<Semaphore>,
    fail: bool,
    layer: CacheLayer<St>,
) -> Arc<Harness<St>> {
    Arc::new(
        Harness::with(layer, move |seen| {
            let body = body.clone();
            let gate = gate.clone();
            let mut reply = ok("").cc("max-age=60");
            if !seen.path().ends_with("-chunked") {
                reply = reply.header("content-length", &body.len().to_string());
            }
            reply.stream(move |feed| async move {
                let chunks = body.len().div_ceil(CHUNK);
                for i in 0..chunks {
                    gate.acquire().await.expect("gate open").forget();
                    if fail && i + 1 == chunks {
                        feed.fail("origin died mid-body").await;
                        return;
                    }
                    let end = ((i + 1) * CHUNK).min(body.len());
                    if !feed.send(body.slice(i * CHUNK..end)).await {
                        return;
                    }
                }
            })
        })
        .await,
    )
}

/// Starts `GET path` on a task of its own and hands back its head and body.
async fn start<St: Store>(
    h: &Arc<Harness<St>>,
    path: &'static str,
) -> (http::response::Parts, Body<St>) {
    let h = h.clone();
    let res = tokio::spawn(async move { h.call(h.req(path)).await.expect("a response") })
        .await
        .expect("request task");
    res.into_parts()
}

/// The first `CHUNK` bytes of `body` (hyper may split a chunk into several frames), waiting at
/// most two seconds for each frame.
async fn next_data(body: &mut Body) -> Result<Bytes, String> {
    let mut got = Vec::new();
    while got.len() < CHUNK {
        let frame = timeout(Duration::from_secs(2), body.frame())
            .await
            .map_err(|_| "no frame in time".to_owned())?;
        match frame {
            None => return Err("end".to_owned()),
            Some(Err(e)) => return Err(e.to_string()),
            Some(Ok(f)) => {
                if let Ok(d) = f.into_data() {
                    got.extend_from_slice(&d);
                }
            }
        }
    }
    Ok(got.into())
}

/// Reads the rest of `body` after `first`.
async fn rest(first: Bytes, body: Body) -> Result<Bytes, String> {
    let more = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok([first, more].concat().into())
}

/// `n` requests that join the flight the leader started, once every one of them waits on it.
async fn join<St: Store>(
    h: &Arc<Harness<St>>,
    path: &'static str,
    n: usize,
) -> Vec<tokio::task::JoinHandle<(http::response::Parts, Body<St>)>> {
    let stats = h.svc.stats();
    let before = stats.snapshot().coalesced;
    let tasks = (0..n)
        .map(|_| {
            let h = h.clone();
            tokio::spawn(async move { h.call(h.req(path)).await.expect("a response").into_parts() })
        })
        .collect();
    eventually("the waiters to join", || {
        stats.snapshot().coalesced == before + n as u64
    })
    .await;
    tasks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_stream_the_fill_from_its_first_chunk() {
    let body = pattern(8 * CHUNK);
    let gate = Arc::new(Semaphore::new(0));
    let h = gated(
        body.clone(),
        gate.clone(),
        false,
        CacheLayer::shared(memory()),
    )
    .await;
    let leader = {
        let h = h.clone();
        tokio::spawn(async move { start(&h, "/video").await })
    };
    eventually("the leader to reach the origin", || h.count() == 1).await;
    let waiters = join(&h, "/video", 7).await;
    // The origin sends one chunk and then waits: every client gets it before the next is sent,
    // so every waiter's first byte comes within one chunk interval of the leader's.
    gate.add_permits(1);
    let (_, mut leader_body) = leader.await.unwrap();
    let first = next_data(&mut leader_body)
        .await
        .expect("the leader's first chunk");
    assert!(first == body.slice(..CHUNK), "the leader's first chunk");
    let mut followers = Vec::new();
    for w in waiters {
        let (head, mut b) = w.await.unwrap();
        let status = head.headers["cache-status"].to_str().unwrap().to_owned();
        assert!(
            status.contains("collapsed") && status.contains("fwd=uri-miss"),
            "{status}"
        );
        assert!(head.headers.contains_key("age"), "a waiter has its own Age");
        let got = next_data(&mut b)
            .await
            .expect("a waiter's first chunk before the second is sent");
        assert!(got == body.slice(..CHUNK), "a waiter's first chunk");
        followers.push((got, b));
    }
    gate.add_permits(7);
    assert!(rest(first, leader_body).await.unwrap() == body);
    for (got, b) in followers {
        let whole = rest(got, b).await.expect("a whole body");
        assert!(whole == body, "identical bytes");
    }
    assert_eq!(h.count(), 1, "one origin request");
    assert!(h.get("/video").await.is_hit(), "the fill was stored");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_goes_on_when_its_leader_goes_away() {
    let body = pattern(8 * CHUNK);
    let gate = Arc::new(Semaphore::new(0));
    let h = gated(
        body.clone(),
        gate.clone(),
        false,
        CacheLayer::shared(memory()),
    )
    .await;
    let leader = {
        let h = h.clone();
        tokio::spawn(async move { start(&h, "/iso").await })
    };
    eventually("the leader to reach the origin", || h.count() == 1).await;
    let waiters = join(&h, "/iso", 3).await;
    gate.add_permits(1);
    let (_, mut b) = leader.await.unwrap();
    next_data(&mut b).await.expect("the leader's first chunk");
    // The leader hangs up after its first chunk.
    drop(b);
    gate.add_permits(7);
    for w in waiters {
        let (_, b) = w.await.unwrap();
        let got = b
            .collect()
            .await
            .expect("every waiter completes")
            .to_bytes();
        assert!(got == body, "identical bytes");
    }
    assert_eq!(h.count(), 1, "the origin saw one request");
    assert!(h.get("/iso").await.is_hit(), "the next request is a hit");
}

/// A leader alone hangs up after its first chunk; whether the body is fetched to the store
/// depends on `fill_after_disconnect`.
async fn leader_alone_hangs_up(layer: CacheLayer<cachio::MemoryStore>) -> Arc<Harness> {
    let body = pattern(8 * CHUNK);
    let gate = Arc::new(Semaphore::new(1));
    let h = gated(body, gate.clone(), false, layer).await;
    let (_, mut b) = start(&h, "/alone").await;
    next_data(&mut b).await.expect("the first chunk");
    drop(b);
    // Enough for this fetch and the next.
    gate.add_permits(64);
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_nobody_waits_on_is_finished_within_its_bound() {
    let h = leader_alone_hangs_up(CacheLayer::shared(memory())).await;
    let stored = || async {
        let got = h
            .send(h.req("/alone").header("cache-control", "only-if-cached"))
            .await;
        got.status == 200
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !stored().await {
        assert!(Instant::now() < deadline, "the fill was not finished");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(h.get("/alone").await.body == pattern(8 * CHUNK));
    assert_eq!(
        h.count(),
        1,
        "the next request is a hit, not a second fetch"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fill_nobody_waits_on_past_its_bound_stops() {
    let layer = CacheLayer::shared(memory()).fill_after_disconnect(CHUNK as u64);
    let h = leader_alone_hangs_up(layer).await;
    settle().await;
    settle().await;
    let got = h.get("/alone").await;
    assert!(!got.is_hit(), "{}", got.cache_status());
    assert_eq!(
        h.count(),
        2,
        "the fetch stopped with its client: nothing was stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_origin_fails_every_waiter() {
    let body = pattern(4 * CHUNK);
    let gate = Arc::new(Semaphore::new(0));
    let h = gated(
        body.clone(),
        gate.clone(),
        true,
        CacheLayer::shared(memory()),
    )
    .await;
    let leader = {
        let h = h.clone();
        tokio::spawn(async move { start(&h, "/broken").await })
    };
    eventually("the leader to reach the origin", || h.count() == 1).await;
    let waiters = join(&h, "/broken", 5).await;
    gate.add_permits(1);
    let (_, leader) = leader.await.unwrap();
    let mut bodies = vec![leader];
    for w in waiters {
        bodies.push(w.await.unwrap().1);
    }
    for b in &mut bodies {
        let first = next_data(b).await.expect("the first chunk");
        assert!(first == body.slice(..CHUNK), "the first chunk");
    }
    gate.add_permits(3);
    for b in bodies {
        assert!(
            b.collect().await.is_err(),
            "a body cut by the origin's failure ends with an error, never cleanly"
        );
    }
    settle().await;
    let got = h
        .send(h.req("/broken").header("cache-control", "only-if-cached"))
        .await;
    assert_eq!(got.status, 504, "nothing was stored");
}

/// Reads `body` to the end, sleeping `pause` after every frame; the bytes, or the error.
async fn read_slowly<St: Store>(mut body: Body<St>, pause: Duration) -> Result<Bytes, String> {
    let mut got = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Ok(d) = frame.into_data() {
            got.extend_from_slice(&d);
        }
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
    Ok(got.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_waiters_at_their_own_pace_get_identical_bytes() {
    // A window of four chunks for a body of 32: most waiters fall behind it and finish from the
    // stored entry; the fill never waits for them.
    let layer = CacheLayer::shared(memory()).fill_window(4 * CHUNK as u64);
    waiters_at_their_own_pace(layer, 100).await;
}

/// The same over the embedded store (memory in front of disk), with a body larger than the
/// memory tier keeps: the waiters that fall behind the window finish from the disk tier, read
/// from the byte each had reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiters_behind_the_window_finish_from_the_disk_tier() {
    let dir = tempfile::tempdir().unwrap();
    let store = cachio::Embedded::builder(dir.path())
        .memory_bytes(8 * CHUNK as u64)
        .open()
        .unwrap();
    let layer = CacheLayer::shared(store).fill_window(4 * CHUNK as u64);
    waiters_at_their_own_pace(layer, 20).await;
}

/// `waiters` requests join a 32-chunk fill and read at 0 to 3 ms a frame; every one gets the
/// whole body, identical, from one origin request.
async fn waiters_at_their_own_pace<St: Store>(layer: CacheLayer<St>, waiters: usize) {
    let body = pattern(32 * CHUNK);
    let gate = Arc::new(Semaphore::new(0));
    let h = gated(body.clone(), gate.clone(), false, layer).await;
    let leader = {
        let h = h.clone();
        tokio::spawn(async move { start(&h, "/many").await })
    };
    eventually("the leader to reach the origin", || h.count() == 1).await;
    let waiters = join(&h, "/many", waiters).await;
    gate.add_permits(32);
    let (_, leader) = leader.await.unwrap();
    let origin_pace = tokio::spawn(read_slowly(leader, Duration::ZERO));
    let readers: Vec<_> = waiters
        .into_iter()
        .enumerate()
        .map(|(i, w)| {
            tokio::spawn(async move {
                let (_, b) = w.await.unwrap();
                read_slowly(b, Duration::from_millis((i % 4) as u64)).await
            })
        })
        .collect();
    assert!(origin_pace.await.unwrap().unwrap() == body);
    for r in readers {
        assert!(
            r.await.unwrap().expect("a whole body") == body,
            "identical bytes"
        );
    }
    assert_eq!(h.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_behind_a_fill_that_is_not_stored_ends_with_an_error() {
    // Too large to store: a waiter that falls behind the window has nowhere to read the rest.
    let body = pattern(16 * CHUNK);
    let gate = Arc::new(Semaphore::new(0));
    let layer = CacheLayer::shared(memory())
        .fill_window(2 * CHUNK as u64)
        .max_object_size(4 * CHUNK as u64);
    let h = gated(body.clone(), gate.clone(), false, layer).await;
    let leader = {
        let h = h.clone();
        tokio::spawn(async move { start(&h, "/huge-chunked").await })
    };
    eventually("the leader to reach the origin", || h.count() == 1).await;
    let waiters = join(&h, "/huge-chunked", 1).await;
    gate.add_permits(16);
    let (_, leader) = leader.await.unwrap();
    assert!(read_slowly(leader, Duration::ZERO).await.unwrap() == body);
    let (_, slow) = waiters.into_iter().next().unwrap().await.unwrap();
    let got = read_slowly(slow, Duration::ZERO).await;
    assert!(
        got.is_err(),
        "a short body must not end cleanly: {:?}",
        got.map(|b| b.len())
    );
}
