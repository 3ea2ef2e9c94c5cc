//! A fleet of gateways sharing one Redis (`--redis-url`): each with its own memory tier, a miss
//! on one is a hit on the other, purges and unsafe methods reach every memory tier, and a Redis
//! that dies or restarts makes the cache step aside (the origin answers) until it is back.

use crate::support;

#[path = "../../../cachio-redis/tests/support/server.rs"]
pub(crate) mod redis_server;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cachio_gateway::{Config, Gateway};
use http::Response;
use http_body_util::BodyExt;
use http_body_util::channel::Channel;
use redis_server::{RedisServer, unique_prefix};
use support::{Gate, Origin, Running, client, eventually, full, ok, send};

const HOST: (&str, &str) = ("host", "shop.test");
const TOKEN: &str = "s3cret";

fn gateway(origin: &Origin, redis: &RedisServer, prefix: &str) -> cachio_gateway::GatewayBuilder {
    Gateway::builder(origin.url())
        .memory_bytes(16 << 20)
        .redis_url(redis.url())
        .redis_prefix(prefix)
        .redis_timeout(Duration::from_millis(500))
        .purge_token(Some(TOKEN.into()))
}

/// Waits until every gateway is subscribed to the fleet's invalidations (and so uses its cache).
async fn subscribed(gws: &[&Running]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gws
        .iter()
        .all(|g| g.gateway.metrics().contains("cachio_fleet_subscribed 1\n"))
    {
        assert!(Instant::now() < deadline, "a gateway did not subscribe");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn get(gw: &Running, path: &str) -> support::Got {
    send(&client(), "GET", &gw.url(path), &[HOST]).await
}

/// An origin whose responses are cacheable, tagged `t-NAME` after the path's last segment, and
/// say which request of the origin's they were.
async fn tagged_origin() -> Origin {
    Origin::start(|req| async move {
        let name = req.uri().path().rsplit('/').next().unwrap_or("").to_owned();
        Response::builder()
            .header("cache-control", "max-age=600")
            .header("surrogate-key", format!("all t-{name}"))
            .body(full(format!("body of {}", req.uri().path())))
            .unwrap()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miss_on_one_gateway_is_a_hit_on_the_other() {
    let redis = RedisServer::start();
    let origin = tagged_origin().await;
    let prefix = unique_prefix("share");
    let a = Running::start(gateway(&origin, &redis, &prefix).cache_name("a")).await;
    let b = Running::start(gateway(&origin, &redis, &prefix).cache_name("b")).await;
    subscribed(&[&a, &b]).await;

    let got = get(&a, "/shared").await;
    assert_eq!(got.body, "body of /shared");
    assert_eq!(
        got.cache_status(),
        "a; fwd=uri-miss; fwd-status=200; stored"
    );
    // The entry is committed once the body has gone out: wait for it.
    let stats = a.gateway.stats();
    eventually("stored", 10, || stats.snapshot().stores == 1).await;
    let got = get(&b, "/shared").await;
    assert_eq!(got.body, "body of /shared");
    assert!(
        got.cache_status().starts_with("b; hit"),
        "{}",
        got.cache_status()
    );
    // Now in b's memory too: a hit without Redis.
    assert!(
        get(&b, "/shared")
            .await
            .cache_status()
            .starts_with("b; hit")
    );
    assert_eq!(origin.state.count(), 1);
    let metrics = b.gateway.metrics();
    assert!(
        metrics.contains("cachio_store_capacity_bytes{tier=\"memory\"} 16777216"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cachio_redis_timeouts_total 0"),
        "{metrics}"
    );
}

/// The requests of `origin` for `path`.
fn origin_requests_for(origin: &Origin, path: &str) -> usize {
    origin
        .state
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|s| {
            s.target
                .parse::<http::Uri>()
                .is_ok_and(|u| u.path() == path)
        })
        .count()
}

/// Fires `n` concurrent GETs of `path` at each gateway at once (interleaved) and returns every
/// response.
async fn burst(gws: &[&Running], path: &str, n: usize) -> Vec<support::Got> {
    let c = client();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..n {
        for gw in gws {
            let (c, url) = (c.clone(), gw.url(path));
            tasks.spawn(async move { send(&c, "GET", &url, &[HOST]).await });
        }
    }
    let mut all = Vec::with_capacity(n * gws.len());
    while let Some(got) = tasks.join_next().await {
        all.push(got.unwrap());
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_cold_key_under_concurrent_load_reaches_the_origin_at_most_once_per_node() {
    // There is no lock across nodes: each node coalesces its own requests for a key, so a cold
    // key hit on every node at once reaches the origin at most once per node; once an entry is
    // committed to Redis, no node's miss goes to the origin again.
    const PATH: &str = "/fleet-cold";
    const N: usize = 100;
    let body: Bytes = (0..16 << 10).map(|i| (i % 251) as u8).collect();
    let redis = RedisServer::start();
    let b = body.clone();
    let origin = Origin::start(move |_req| {
        let b = b.clone();
        async move {
            // Slow enough that both bursts are in flight together.
            tokio::time::sleep(Duration::from_millis(200)).await;
            ok("max-age=60", b)
        }
    })
    .await;
    let prefix = unique_prefix("cold-burst");
    let a = Running::start(gateway(&origin, &redis, &prefix).cache_name("a")).await;
    let b = Running::start(gateway(&origin, &redis, &prefix).cache_name("b")).await;
    subscribed(&[&a, &b]).await;

    let got = burst(&[&a, &b], PATH, N).await;
    assert_eq!(got.len(), 2 * N);
    for g in &got {
        assert_eq!(g.status, 200, "{}", g.cache_status());
        assert_eq!(g.body, body, "{}", g.cache_status());
    }
    let fetched = origin_requests_for(&origin, PATH);
    assert!(
        (1..=2).contains(&fetched),
        "{fetched} origin requests for {} concurrent requests on 2 nodes",
        2 * N
    );
    // The bound is per node: each gateway sent its cold key to the origin at most once.
    for gw in [&a, &b] {
        let s = gw.gateway.stats().snapshot();
        assert!(s.misses <= 1, "{s:?}");
    }

    // Everything is stored now: a third burst is served from memory (or Redis) on every node.
    let got = burst(&[&a, &b], PATH, N / 2).await;
    assert_eq!(got.len(), N);
    for g in &got {
        assert_eq!(g.status, 200, "{}", g.cache_status());
        assert_eq!(g.body, body, "{}", g.cache_status());
        assert!(g.cache_status().contains("; hit"), "{}", g.cache_status());
    }
    assert_eq!(origin_requests_for(&origin, PATH), fetched);
    assert_eq!(origin.state.count(), fetched);
}

/// Waits until `path` is no longer a hit on `gw` (the invalidation reached it).
async fn not_a_hit(gw: &Running, path: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = get(gw, path).await;
        if !got.cache_status().contains("; hit") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{path} is still a hit: {}",
            got.cache_status()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_and_unsafe_methods_reach_every_gateways_memory() {
    let redis = RedisServer::start();
    let origin = tagged_origin().await;
    let prefix = unique_prefix("purge");
    let a = Running::start(gateway(&origin, &redis, &prefix)).await;
    let b = Running::start(gateway(&origin, &redis, &prefix)).await;
    subscribed(&[&a, &b]).await;
    let paths = ["/p/a", "/p/b", "/d/x", "/d/y", "/u", "/keep"];
    for p in paths {
        get(&a, p).await;
    }
    let stats = a.gateway.stats();
    eventually("stored", 10, || {
        stats.snapshot().stores == paths.len() as u64
    })
    .await;
    for p in paths {
        // Once from Redis (copied into memory), then from memory.
        assert!(get(&b, p).await.cache_status().contains("; hit"), "{p}");
        assert!(get(&b, p).await.cache_status().contains("; hit"), "{p}");
        assert!(get(&a, p).await.cache_status().contains("; hit"), "{p}");
    }
    let c = client();
    let auth = ("authorization", "Bearer s3cret");

    // PURGE of one URL on a: gone from b's memory too.
    let res = send(&c, "PURGE", &a.url("/p/a"), &[HOST, auth]).await;
    assert_eq!(res.body, "{\"purged\":1}\n");
    not_a_hit(&b, "/p/a").await;

    // A prefix purge on b: gone from a's memory.
    let res = send(
        &c,
        "POST",
        &b.url("/_cachio/purge/prefix?prefix=/d/"),
        &[HOST, auth],
    )
    .await;
    assert_eq!(res.status, 200, "{:?}", res.body);
    assert_eq!(res.body, "{\"purged\":2}\n");
    not_a_hit(&a, "/d/x").await;
    not_a_hit(&a, "/d/y").await;

    // A tag purge on a: gone from b's memory.
    let res = send(
        &c,
        "POST",
        &a.url("/_cachio/purge/tag?tag=t-b"),
        &[HOST, auth],
    )
    .await;
    assert_eq!(res.body, "{\"purged\":1}\n");
    not_a_hit(&b, "/p/b").await;

    // An unsafe method on b invalidates the URL on a (RFC 9111 §4.4).
    let res = send(&c, "POST", &b.url("/u"), &[HOST]).await;
    assert_eq!(res.status, 200);
    not_a_hit(&a, "/u").await;

    // What nobody purged is still a hit everywhere.
    assert!(get(&a, "/keep").await.cache_status().contains("; hit"));
    assert!(get(&b, "/keep").await.cache_status().contains("; hit"));
    assert!(
        b.gateway
            .metrics()
            .contains("cachio_fleet_invalidations_received_total")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_in_the_middle_of_a_large_write() {
    // Redis persists every write, so the chunks written before the kill come back after the
    // restart: still, no gateway may serve a partial body.
    let mut redis = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    const CHUNK: usize = 64 << 10;
    const CHUNKS: usize = 64;
    let gate = Gate::closed();
    let half_sent = Arc::new(AtomicBool::new(false));
    let (g, h) = (gate.clone(), half_sent.clone());
    let origin = Origin::start(move |_req| {
        let (gate, half_sent) = (g.clone(), h.clone());
        async move {
            let (mut tx, body) = Channel::<Bytes, Box<dyn std::error::Error + Send + Sync>>::new(2);
            tokio::spawn(async move {
                for i in 0..CHUNKS {
                    if i == CHUNKS / 2 {
                        half_sent.store(true, Ordering::SeqCst);
                        gate.wait(Duration::from_secs(20)).await;
                    }
                    if tx
                        .send_data(Bytes::from(vec![i as u8; CHUNK]))
                        .await
                        .is_err()
                    {
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
    .await;
    let prefix = unique_prefix("killed");
    let a = Running::start(gateway(&origin, &redis, &prefix)).await;
    let b = Running::start(gateway(&origin, &redis, &prefix)).await;
    subscribed(&[&a, &b]).await;

    let url = a.url("/big");
    let download = tokio::spawn(async move { send(&client(), "GET", &url, &[HOST]).await });
    eventually("half the body sent", 10, || {
        half_sent.load(Ordering::SeqCst)
    })
    .await;
    let pattern = format!("{{{prefix}:*}}:c:*");
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis
        .cli(&["--scan", "--pattern", &pattern])
        .lines()
        .count()
        < 8
    {
        assert!(
            Instant::now() < deadline,
            "the body is not being written to Redis"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    redis.kill();
    gate.open();
    let got = download.await.unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(
        got.body.len(),
        CHUNK * CHUNKS,
        "the client still gets the whole body"
    );
    assert!(
        got.body
            .chunks(CHUNK)
            .enumerate()
            .all(|(i, c)| c.iter().all(|b| *b == i as u8))
    );

    redis.restart();
    subscribed(&[&a, &b]).await;
    // The chunks written before the kill are back, but no entry refers to them: a miss,
    // served whole by the origin.
    let got = get(&b, "/big").await;
    assert!(
        !got.cache_status().contains("hit"),
        "{}",
        got.cache_status()
    );
    assert_eq!(got.body.len(), CHUNK * CHUNKS);
    assert_eq!(origin.state.count(), 2);
    // That miss was stored again: a hit on the other gateway, whole.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = get(&a, "/big").await;
        assert_eq!(got.body.len(), CHUNK * CHUNKS);
        if got.cache_status().contains("hit") {
            assert!(
                got.body
                    .chunks(CHUNK)
                    .enumerate()
                    .all(|(i, c)| c.iter().all(|b| *b == i as u8))
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never stored again: {}",
            got.cache_status()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_the_cache_steps_aside_and_comes_back() {
    let mut redis = RedisServer::start();
    let origin = tagged_origin().await;
    let prefix = unique_prefix("restart");
    let a = Running::start(gateway(&origin, &redis, &prefix)).await;
    let b = Running::start(gateway(&origin, &redis, &prefix)).await;
    subscribed(&[&a, &b]).await;
    get(&a, "/s").await;
    let stats = a.gateway.stats();
    eventually("stored", 10, || stats.snapshot().stores == 1).await;
    assert!(get(&b, "/s").await.cache_status().contains("; hit"));

    redis.kill();
    let before = origin.state.count();
    for gw in [&a, &b, &a, &b, &a, &b] {
        let start = Instant::now();
        let got = get(gw, "/s").await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body, "body of /s");
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }
    // Without its subscription a gateway does not use its memory either: the origin answered.
    assert!(origin.state.count() > before, "the origin was not asked");

    redis.restart();
    let start = Instant::now();
    // Each gateway comes back on its own (the restarted Redis is empty: a miss stores the
    // response again, then it is a hit on both).
    for gw in [&a, &b] {
        let deadline = start + Duration::from_secs(15);
        loop {
            let got = get(gw, "/s").await;
            assert_eq!(got.body, "body of /s");
            if got.cache_status().contains("; hit") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the cache never came back: {}",
                got.cache_status()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        eprintln!("the cache was back {:?} after the restart", start.elapsed());
    }
}

/// Starts the binary in front of `origin` with these Redis flags, and waits until it is
/// subscribed to the fleet's invalidations: the child and its address.
async fn spawn_binary(origin: &Origin, redis_flags: &[&str]) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cachio-gateway"))
        .args([
            "--upstream",
            &origin.url(),
            "--listen",
            "127.0.0.1:0",
            "--workers",
            "1",
        ])
        .args(redis_flags)
        .args(["--redis-timeout-ms", "500"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the gateway logs its address").unwrap();
        if let Some(rest) = line.split("listen=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    let c = client();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !send(&c, "GET", &format!("http://{addr}/_cachio/metrics"), &[])
        .await
        .body
        .windows(25)
        .any(|w| w == b"cachio_fleet_subscribed 1")
    {
        assert!(Instant::now() < deadline, "the binary did not subscribe");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (child, addr)
}

fn stop(mut child: std::process::Child) {
    assert!(
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap()
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "still running after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_joins_a_fleet_with_redis_url() {
    let redis = RedisServer::start();
    let origin = tagged_origin().await;
    let prefix = unique_prefix("cli");
    let (child, addr) = spawn_binary(
        &origin,
        &["--redis-url", &redis.url(), "--redis-prefix", &prefix],
    )
    .await;
    let c = client();
    let got = send(&c, "GET", &format!("http://{addr}/from-cli"), &[HOST]).await;
    assert!(
        got.cache_status().ends_with("stored"),
        "{}",
        got.cache_status()
    );

    // An in-process gateway of the same fleet finds it in Redis.
    let b = Running::start(gateway(&origin, &redis, &prefix)).await;
    subscribed(&[&b]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !get(&b, "/from-cli").await.cache_status().contains("; hit") {
        assert!(Instant::now() < deadline, "not shared through Redis");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop(child);
}

/// The binary built with its default features joins a fleet on a Redis that speaks only TLS
/// and asks for client certificates: `--redis-url rediss://`, `--redis-ca`, `--redis-cert`,
/// `--redis-key`; a gateway configured from TOML with the same files shares its entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_joins_a_fleet_over_mutual_tls() {
    let pki = redis_server::Pki::new();
    let redis = RedisServer::start_tls(&pki, true, &[]);
    assert!(redis.url().starts_with("rediss://"));
    let origin = tagged_origin().await;
    let prefix = unique_prefix("tls");
    let path = |n: &str| pki.path(n).display().to_string();
    let (child, addr) = spawn_binary(
        &origin,
        &[
            "--redis-url",
            &redis.url(),
            "--redis-prefix",
            &prefix,
            "--redis-ca",
            &path("ca.pem"),
            "--redis-cert",
            &path("client.pem"),
            "--redis-key",
            &path("client.key"),
        ],
    )
    .await;
    let got = send(
        &client(),
        "GET",
        &format!("http://{addr}/over-tls"),
        &[HOST],
    )
    .await;
    assert!(
        got.cache_status().ends_with("stored"),
        "{}",
        got.cache_status()
    );

    let config = Config::from_toml(&format!(
        "upstream = {:?}\nredis-url = {:?}\nredis-prefix = {prefix:?}\nredis-timeout-ms = 500\n\
         redis-ca = {:?}\nredis-cert = {:?}\nredis-key = {:?}\n",
        origin.url(),
        redis.url(),
        path("ca.pem"),
        path("client.pem"),
        path("client.key"),
    ))
    .unwrap();
    let b = Running::start(config.builder().unwrap()).await;
    subscribed(&[&b]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !get(&b, "/over-tls").await.cache_status().contains("; hit") {
        assert!(
            Instant::now() < deadline,
            "not shared through Redis over TLS"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop(child);
}

#[test]
fn redis_settings_from_flags_and_toml() {
    let out = Command::new(env!("CARGO_BIN_EXE_cachio-gateway"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--redis-url",
        "--redis-cluster",
        "--redis-prefix",
        "--redis-timeout-ms",
        "--redis-ca",
        "--redis-cert",
        "--redis-key",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_cachio-gateway"))
        .args([
            "--upstream",
            "http://127.0.0.1:1",
            "--redis-url",
            "redis://127.0.0.1:1/",
        ])
        .args(["--redis-cluster", "redis://127.0.0.1:2"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "--redis-url and --redis-cluster together"
    );

    let config = Config::from_toml(
        r#"
        upstream = "http://127.0.0.1:9000"
        redis-cluster = ["redis://127.0.0.1:7000", "redis://127.0.0.1:7001,redis://127.0.0.1:7002"]
        redis-prefix = "edge"
        redis-timeout-ms = 20
        "#,
    )
    .unwrap();
    assert_eq!(config.redis_cluster.as_ref().map(Vec::len), Some(2));
    let gateway = config.builder().unwrap().build().unwrap();
    assert!(gateway.metrics().contains("cachio_fleet_subscribed 0"));
    let both = Config::from_toml(
        "upstream = \"http://127.0.0.1:9000\"\nredis-url = \"redis://a/\"\nredis-cluster = [\"redis://b/\"]",
    )
    .unwrap();
    assert!(both.builder().is_err());
    let half = Config::from_toml(
        "upstream = \"http://127.0.0.1:9000\"\nredis-url = \"rediss://a/\"\nredis-cert = \"c.pem\"",
    )
    .unwrap();
    assert!(half.builder().is_err(), "redis-cert without redis-key");
    let missing = Gateway::builder("http://127.0.0.1:9000")
        .redis_url("rediss://127.0.0.1:1/")
        .redis_ca("/nonexistent/ca.pem")
        .build();
    assert!(matches!(
        missing,
        Err(cachio_gateway::GatewayError::Config(_))
    ));
    // Certificates for a plaintext Redis are a mistake, not a plaintext connection.
    let plain = Gateway::builder("http://127.0.0.1:9000")
        .redis_url("redis://127.0.0.1:1/")
        .redis_ca(std::env::current_exe().unwrap())
        .build();
    assert!(matches!(plain, Err(cachio_gateway::GatewayError::Redis(_))));
    let with_disk = Gateway::builder("http://127.0.0.1:9000")
        .disk(std::env::temp_dir(), 1 << 20)
        .redis_url("redis://127.0.0.1:1/")
        .build();
    assert!(matches!(
        with_disk,
        Err(cachio_gateway::GatewayError::Config(_))
    ));
    let bad = Gateway::builder("http://127.0.0.1:9000")
        .redis_url("redis://127.0.0.1:1/")
        .redis_prefix("a b")
        .build();
    assert!(matches!(bad, Err(cachio_gateway::GatewayError::Redis(_))));
}
