//! What a memory-tier miss that hits Redis costs, next to a plain Redis `GET` of the same bytes.
//!
//! Starts its own `redis-server` on a free loopback port (run `scripts/setup` first), stores a
//! 1 KiB body, then measures one client doing one request at a time:
//!
//! - `redis-benchmark -t set,get -d 1024 -n 100000 -c 1` (its GET line): Redis' own client;
//! - a `GET` of a 1 KiB value through the redis crate (a multiplexed connection): the same
//!   client library the store uses, without the store;
//! - `RedisStore::get` and reading the body;
//! - a `FleetStore` (memory over Redis, with the broadcast) whose memory tier misses (it is
//!   set to keep nothing, so every lookup goes to Redis): what a gateway node pays for an entry
//!   another node stored;
//! - the invalidation window: from a delete returning on one node until another node's memory
//!   tier no longer has the entry (its ops/s column means nothing).
//!
//! The client runs on a current-thread runtime, as each worker of the gateway does.
//!
//! `cargo bench -p cachio-redis --bench fleet_miss`; `FLEET_MISS_N` sets the number of requests
//! per measurement (default 20 000).

#[path = "../tests/support/server.rs"]
mod server;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use cachio_core::meta::{Meta, ResponseMeta};
use cachio_core::store::{Store, StoreWriter};
use cachio_moka::MokaStore;
use cachio_redis::{Broadcast, RedisStore};
use http_body_util::BodyExt;

const BODY: usize = 1024;

struct Figures {
    name: &'static str,
    mean_us: f64,
    p50_us: f64,
    p99_us: f64,
}

impl Figures {
    fn from_samples(name: &'static str, mut samples: Vec<Duration>) -> Figures {
        samples.sort_unstable();
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let mean = samples.iter().map(|d| us(*d)).sum::<f64>() / samples.len() as f64;
        Figures {
            name,
            mean_us: mean,
            p50_us: us(samples[samples.len() / 2]),
            p99_us: us(samples[samples.len() * 99 / 100]),
        }
    }

    fn print(&self) {
        println!(
            "{:<58} {:>9.1} {:>9.1} {:>9.1} {:>10.0}",
            self.name,
            self.mean_us,
            self.p50_us,
            self.p99_us,
            1e6 / self.mean_us
        );
    }
}

async fn measure<F, Fut>(n: usize, mut op: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..n / 10 {
        op().await;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        op().await;
        samples.push(start.elapsed());
    }
    samples
}

/// `redis-benchmark`'s figures for GET of a 1 KiB value, one client.
fn redis_benchmark(port: u16, n: usize) -> Option<Figures> {
    let out = Command::new("redis-benchmark")
        .args(["-p", &port.to_string()])
        .args([
            "-t",
            "set,get",
            "-d",
            &BODY.to_string(),
            "-n",
            &n.to_string(),
        ])
        .args(["-c", "1", "--csv"])
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    let line = text.lines().find(|l| l.starts_with("\"GET\""))?;
    let f: Vec<f64> = line
        .split(',')
        .skip(1)
        .map(|v| v.trim_matches('"').parse().unwrap_or(f64::NAN))
        .collect();
    Some(Figures {
        name: "redis-benchmark GET (1 client, its own figures)",
        mean_us: f[1] * 1000.0,
        p50_us: f[3] * 1000.0,
        p99_us: f[5] * 1000.0,
    })
}

fn meta() -> Arc<Meta> {
    let now = SystemTime::now();
    Arc::new(Meta::Response(ResponseMeta::new(
        http::StatusCode::OK,
        http::Version::HTTP_11,
        http::HeaderMap::from_iter([
            (
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/plain"),
            ),
            (
                http::header::CACHE_CONTROL,
                http::HeaderValue::from_static("max-age=600"),
            ),
        ]),
        Vec::new(),
        now,
        now,
    )))
}

fn main() {
    let n: usize = std::env::var("FLEET_MISS_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let redis = server::RedisServer::start();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let body = Bytes::from(vec![b'x'; BODY]);

    let figures = rt.block_on(async {
        let store = RedisStore::builder(redis.url())
            .prefix("bench")
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        while store.ping().await.is_err() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        vec![
            redis_crate_get(&redis, &body, n).await,
            store_get(&store, &body, n).await,
            fleet_get(&store, n).await,
            invalidation_window(&redis, &store, &body).await,
        ]
    });

    println!(
        "\none client, one request at a time, 127.0.0.1, {n} requests each (µs; ops/s = 1/mean)\n"
    );
    println!(
        "{:<58} {:>9} {:>9} {:>9} {:>10}",
        "", "mean", "p50", "p99", "ops/s"
    );
    match redis_benchmark(redis.port, 100_000) {
        Some(f) => f.print(),
        None => println!("redis-benchmark: not available (run scripts/setup)"),
    }
    for f in &figures {
        f.print();
    }
}

/// The redis crate alone: a GET of the same 1 KiB value.
async fn redis_crate_get(redis: &server::RedisServer, body: &Bytes, n: usize) -> Figures {
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("SET")
        .arg("plain")
        .arg(&body[..])
        .exec_async(&mut conn)
        .await
        .unwrap();
    let samples = measure(n, || {
        let mut c = conn.clone();
        async move {
            let v: Bytes = redis::cmd("GET")
                .arg("plain")
                .query_async(&mut c)
                .await
                .unwrap();
            assert_eq!(v.len(), BODY);
        }
    })
    .await;
    Figures::from_samples("redis crate GET, 1 KiB (multiplexed connection)", samples)
}

/// The store alone: a hit and its body. Leaves the entry for [`fleet_get`].
async fn store_get(store: &RedisStore, body: &Bytes, n: usize) -> Figures {
    let mut w = store.begin("https://example.com/1k").unwrap();
    w.append(body.clone()).unwrap();
    w.commit(meta(), None).await.unwrap();
    let samples = measure(n, || async {
        let hit = store.get("https://example.com/1k").await.unwrap().unwrap();
        let got = hit.body.collect().await.unwrap().to_bytes();
        assert_eq!(got.len(), BODY);
    })
    .await;
    Figures::from_samples("RedisStore::get + body, 1 KiB", samples)
}

/// Memory over Redis with the broadcast, the memory tier missing every time.
async fn fleet_get(store: &RedisStore, n: usize) -> Figures {
    let memory = MokaStore::builder()
        .max_capacity_bytes(1 << 20)
        .max_body_size(0)
        .build();
    let fleet = Broadcast::fleet(memory, store.clone());
    while !fleet.is_subscribed() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let samples = measure(n, || async {
        let hit = fleet.get("https://example.com/1k").await.unwrap().unwrap();
        let got = hit.body.collect().await.unwrap().to_bytes();
        assert_eq!(got.len(), BODY);
    })
    .await;
    Figures::from_samples("FleetStore::get, memory miss -> Redis hit, 1 KiB", samples)
}

/// The invalidation window: from a delete returning on one node until another node's memory
/// tier has forgotten the entry.
async fn invalidation_window(
    redis: &server::RedisServer,
    store: &RedisStore,
    body: &Bytes,
) -> Figures {
    let node = |redis: RedisStore| Broadcast::fleet(MokaStore::new(16 << 20), redis);
    let a = node(store.clone());
    let b = node(
        RedisStore::builder(redis.url())
            .prefix("bench")
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap(),
    );
    while !(a.is_subscribed() && b.is_subscribed()) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut samples = Vec::new();
    for i in 0..500 {
        let key = format!("https://example.com/window/{i}");
        let mut w = a.begin(&key).unwrap();
        w.append(body.clone()).unwrap();
        w.commit(meta(), None).await.unwrap();
        let hit = b.get(&key).await.unwrap().unwrap();
        hit.body.collect().await.unwrap();
        assert!(b.local().get(&key).await.unwrap().is_some());
        a.delete(&key).await.unwrap();
        let start = Instant::now();
        while b.local().get(&key).await.unwrap().is_some() {
            // Sleep rather than spin: on a small machine a spinning client would take the
            // core the other node's runtime needs. (Resolution: tens of microseconds.)
            std::thread::sleep(Duration::from_micros(20));
        }
        samples.push(start.elapsed());
    }
    Figures::from_samples(
        "invalidation window: delete returned -> other node forgot",
        samples,
    )
}
