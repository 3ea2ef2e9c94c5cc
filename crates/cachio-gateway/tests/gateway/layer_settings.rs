//! The layer's and the fleet store's settings given in the configuration reach them: with
//! `fill-window-mb = 1` (or 0) a request joining a fetch 2 MiB in gets no byte until the
//! response is stored; with `fill-after-disconnect-mb = 0` a fetch whose client went away stops and is not stored;
//! with `redis-clock-skew-ms` the fleet store refuses (or stores) a fetch begun just after a
//! purge. Each is checked against the default, which behaves the other way.

use crate::support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cachio_gateway::Config;
use http::{Request, Response};
use http_body_util::channel::Channel;
use http_body_util::{BodyExt, Empty};
use support::{Gate, Origin, Running, client, eventually, get};

/// A 16 MiB body: more than the sockets between origin, gateway and client buffer, so that an
/// origin whose response the gateway stops reading notices it.
const CHUNK: usize = 64 * 1024;
const CHUNKS: usize = 256;
/// The origin sends this many chunks (2 MiB), then waits.
const HELD_AFTER: usize = 32;

/// The gateway of `toml` (the origin's `upstream` added, and a memory tier that stores the
/// 16 MiB body) on an ephemeral port.
async fn gateway(origin: &Origin, toml: &str) -> Running {
    let toml = format!("upstream = \"{}\"\nmemory-mb = 256\n{toml}", origin.url());
    let config = Config::from_toml(&toml).unwrap_or_else(|e| panic!("{toml}: {e}"));
    Running::start(config.builder().expect("the configuration builds")).await
}

/// An origin whose 16 MiB response sends its first 2 MiB, then waits at `gate` before the rest;
/// `stopped` says that the gateway stopped reading it.
async fn gated_origin(gate: &Gate, stopped: &Arc<AtomicBool>) -> Origin {
    let (g, s) = (gate.clone(), Arc::clone(stopped));
    Origin::start(move |_req| {
        let (gate, stopped) = (g.clone(), Arc::clone(&s));
        async move {
            let (mut tx, body) = Channel::<Bytes, Box<dyn std::error::Error + Send + Sync>>::new(1);
            tokio::spawn(async move {
                for i in 0..CHUNKS {
                    if i == HELD_AFTER {
                        gate.wait(Duration::from_secs(20)).await;
                    }
                    if tx.send_data(Bytes::from(chunk(i))).await.is_err() {
                        stopped.store(true, Ordering::SeqCst);
                        return;
                    }
                }
            });
            Response::builder()
                .header("cache-control", "max-age=600")
                .header("content-length", (CHUNK * CHUNKS).to_string())
                .body(body.boxed())
                .unwrap()
        }
    })
    .await
}

fn chunk(i: usize) -> Vec<u8> {
    vec![(i % 251) as u8 + 1; CHUNK]
}

fn whole() -> Vec<u8> {
    (0..CHUNKS).flat_map(chunk).collect()
}

type Client = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Empty<Bytes>,
>;

/// Sends `GET url` and returns its response once its first bytes of body have come.
async fn first_bytes(client: &Client, url: &str) -> (Response<hyper::body::Incoming>, Bytes) {
    let req = Request::get(url).body(Empty::new()).unwrap();
    let mut res = client.request(req).await.expect("the gateway answers");
    assert_eq!(res.status(), 200);
    loop {
        let frame = res
            .body_mut()
            .frame()
            .await
            .expect("a body")
            .expect("no body error");
        if let Ok(data) = frame.into_data()
            && !data.is_empty()
        {
            return (res, data);
        }
    }
}

/// The leader of a fetch has read 2 MiB when the origin holds the rest; a second request for
/// the URL joins the fetch then. Returns whether the second request got its first bytes while
/// the origin still held the rest (from the fetch's window, if that still holds the first
/// byte), and checks that both got the whole body from one origin fetch.
async fn a_waiter_streams_a_held_fetch(toml: &str) -> bool {
    let gate = Gate::closed();
    let stopped = Arc::new(AtomicBool::new(false));
    let origin = gated_origin(&gate, &stopped).await;
    let gw = gateway(&origin, toml).await;
    let url = gw.url("/held");
    let (leader, waiter) = (client(), client());
    let (mut leading, first) = first_bytes(&leader, &url).await;
    assert!(first.len() <= CHUNK && first.iter().all(|b| *b == 1));
    // The leader reads what the origin sent before it holds: 2 MiB.
    let mut all = first.to_vec();
    while all.len() < HELD_AFTER * CHUNK {
        let frame = leading.body_mut().frame().await.unwrap().unwrap();
        if let Ok(data) = frame.into_data() {
            all.extend_from_slice(&data);
        }
    }
    let (started, mut streaming) = tokio::sync::oneshot::channel();
    let waiting = {
        let url = url.clone();
        tokio::spawn(async move {
            let (mut res, first) = first_bytes(&waiter, &url).await;
            let _ = started.send(());
            let mut body = first.to_vec();
            while let Some(frame) = res.body_mut().frame().await {
                let frame = frame.unwrap_or_else(|e| panic!("after {} bytes: {e}", body.len()));
                if let Ok(data) = frame.into_data() {
                    body.extend_from_slice(&data);
                }
            }
            let collapsed = res
                .headers()
                .get("cache-status")
                .is_some_and(|v| v.to_str().unwrap().contains("collapsed"));
            (body, collapsed)
        })
    };
    eventually("the second request joins the fetch", 10, || {
        gw.gateway.stats().snapshot().coalesced == 1
    })
    .await;
    // The origin still holds the rest of the body.
    let streamed = tokio::time::timeout(Duration::from_secs(2), &mut streaming)
        .await
        .is_ok();
    gate.open();
    while let Some(frame) = leading.body_mut().frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            all.extend_from_slice(&data);
        }
    }
    assert!(all == whole(), "{toml}: the leader's body");
    let (body, collapsed) = waiting.await.unwrap();
    assert!(body == whole(), "{toml}: the waiter's body");
    assert!(collapsed, "{toml}: the waiter joined the fetch");
    assert_eq!(origin.state.count(), 1, "{toml}");
    streamed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_window_reaches_the_layer() {
    assert!(
        a_waiter_streams_a_held_fetch("").await,
        "with the default window the waiter streams the fetch"
    );
    assert!(
        !a_waiter_streams_a_held_fetch("fill-window-mb = 1").await,
        "with a 1 MiB window the waiter is behind it, and waits for the stored response"
    );
    assert!(
        !a_waiter_streams_a_held_fetch("fill-window-mb = 0").await,
        "with no window every waiter waits for the stored response"
    );
}

/// A client reads the first chunk of a fetch and goes away while the origin holds the rest.
/// Returns whether the response was stored (the next request a hit) or the fetch stopped (the
/// next request fetches again).
async fn a_fetch_whose_client_went_away(toml: &str) -> bool {
    let gate = Gate::closed();
    let stopped = Arc::new(AtomicBool::new(false));
    let origin = gated_origin(&gate, &stopped).await;
    let gw = gateway(&origin, toml).await;
    let url = gw.url("/left");
    let (res, first) = first_bytes(&client(), &url).await;
    assert!(first.len() <= CHUNK && first.iter().all(|b| *b == 1));
    drop(res);
    gate.open();
    let stats = gw.gateway.stats();
    eventually("the fetch is stored or stops", 10, || {
        stats.snapshot().stores == 1 || stopped.load(Ordering::SeqCst)
    })
    .await;
    let stored = stats.snapshot().stores == 1;
    let got = get(&client(), &url).await;
    assert!(got.body == whole(), "{toml}: the body");
    let fetches = if stored { 1 } else { 2 };
    assert_eq!(
        origin.state.count(),
        fetches,
        "{toml}: {}",
        got.cache_status()
    );
    stored
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fill_after_disconnect_reaches_the_layer() {
    assert!(
        a_fetch_whose_client_went_away("").await,
        "by default the fetch is finished into the cache"
    );
    assert!(
        !a_fetch_whose_client_went_away("fill-after-disconnect-mb = 0").await,
        "with 0 the fetch stops"
    );
}

/// A gateway of a fleet (`redis-clock-skew-ms = skew_ms`) that stores a URL, purges it, and
/// fetches it again just after the purge, reading the response to its end.
#[cfg(all(feature = "redis", feature = "cli"))]
async fn fetch_after_a_purge(skew_ms: u64) -> (Origin, Running) {
    use crate::redis::redis_server::{self, unique_prefix};
    let redis = redis_server::shared();
    let origin = Origin::start(|_req| async { support::ok("max-age=600", "v") }).await;
    let toml = format!(
        "redis-url = \"{}\"\nredis-prefix = \"{}\"\nredis-timeout-ms = 2000\n\
         redis-clock-skew-ms = {skew_ms}\npurge-token = \"s3cret\"",
        redis.url(),
        unique_prefix("skew")
    );
    let gw = gateway(&origin, &toml).await;
    eventually("the gateway is subscribed", 10, || {
        gw.gateway.metrics().contains("cachio_fleet_subscribed 1\n")
    })
    .await;
    let c = client();
    let url = gw.url("/p");
    assert_eq!(get(&c, &url).await.body, "v");
    let purged = support::send(&c, "PURGE", &url, &[("authorization", "Bearer s3cret")]).await;
    assert_eq!(purged.status, 200);
    // The next fetch begins after the purge by the gateway's clock, whose reading may lag the
    // real time by a few milliseconds (a coarse clock): far less than this, and than the ten
    // minutes of the wide allowance.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(get(&c, &url).await.body, "v");
    assert_eq!(origin.state.count(), 2);
    (origin, gw)
}

/// The fleet's refusals of commits, counted by the Redis store.
#[cfg(all(feature = "redis", feature = "cli"))]
fn refused(gw: &Running) -> u64 {
    gw.gateway
        .metrics()
        .lines()
        .find_map(|l| {
            l.strip_prefix("cachio_redis_invalidated_total ")?
                .parse::<u64>()
                .ok()
        })
        .expect("the fleet's refusals are counted")
}

#[cfg(all(feature = "redis", feature = "cli"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_clock_skew_reaches_the_fleet_store() {
    // No allowance: the fetch after the purge is stored (the commit may end after the client
    // has its Content-Length bytes), and the next request is a hit.
    let (origin, gw) = fetch_after_a_purge(0).await;
    let stats = gw.gateway.stats();
    eventually("the fetch after the purge is stored", 10, || {
        stats.snapshot().stores == 2
    })
    .await;
    assert_eq!(get(&client(), &gw.url("/p")).await.body, "v");
    assert_eq!(origin.state.count(), 2);
    assert_eq!(refused(&gw), 0);
    // Ten minutes: the fetch after the purge is refused.
    let (_origin, gw) = fetch_after_a_purge(600_000).await;
    eventually("the refusal is counted", 10, || refused(&gw) == 1).await;
    assert_eq!(gw.gateway.stats().snapshot().stores, 1);
}

/// A commit the fleet refused because of a purge is counted once, as a refusal: it is not a
/// store error of the layer.
#[cfg(all(feature = "redis", feature = "cli"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_fleet_commit_is_not_a_store_error() {
    let (_origin, gw) = fetch_after_a_purge(600_000).await;
    // Counted by the store when it refuses, possibly after the response ended. The layer's own
    // count of the commit follows the store's answer at once; no event marks that it counted
    // nothing, so give it time it would not need.
    eventually("the refusal is counted", 10, || refused(&gw) == 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stats = gw.gateway.stats().snapshot();
    assert_eq!(stats.stores, 1, "{stats:?}");
    assert_eq!(stats.store_errors, 0, "{stats:?}");
    let metrics = gw.gateway.metrics();
    assert!(
        metrics.contains("cachio_store_errors_total{cache=\"cachio\"} 0\n"),
        "{metrics}"
    );
}
