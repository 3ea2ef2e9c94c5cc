//! Purged means gone, fleet-wide: two gateways over one Redis (or a Redis Cluster) and a slow
//! origin; gateway b's fetch is in flight while gateway a purges it (by URL, prefix or tag), and
//! once the purge has answered, b neither stores nor serves what it fetched; a purge while
//! Redis is down answers `503` saying it did not reach the fleet.

use crate::support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::redis::redis_server::{RedisCluster, RedisServer, unique_prefix};
use cachio_gateway::Gateway;
use http::Response;
use support::{Running, client, full, send};

const HOST: (&str, &str) = ("host", "shop.test");
const AUTH: (&str, &str) = ("authorization", "Bearer s3cret");

/// Where the origin's resources are: purged or not, and how many requests reached it.
#[derive(Default)]
struct Resources(Mutex<HashMap<String, (usize, bool)>>);

impl Resources {
    fn arrive(&self, path: &str) -> bool {
        let mut map = self.0.lock().unwrap();
        let e = map.entry(path.to_owned()).or_default();
        e.0 += 1;
        e.1
    }

    fn arrived(&self, path: &str) -> usize {
        self.0.lock().unwrap().get(path).map_or(0, |e| e.0)
    }

    fn purged(&self, path: &str) -> bool {
        self.0.lock().unwrap().get(path).is_some_and(|e| e.1)
    }

    fn set_purged(&self, path: &str) {
        self.0.lock().unwrap().entry(path.to_owned()).or_default().1 = true;
    }
}

/// An origin that answers a request that came before the resource was purged with its old
/// version, and only once the purge has answered (the slow fetch in flight during the purge);
/// after, with the new version at once. Responses are cacheable and tagged `t-ROUND`.
async fn origin(resources: Arc<Resources>) -> support::Origin {
    support::Origin::start(move |req| {
        let resources = Arc::clone(&resources);
        async move {
            let path = req.uri().path().to_owned();
            let round = path.split('/').nth(2).unwrap_or("").to_owned();
            let version = if resources.arrive(&path) {
                "new"
            } else {
                let deadline = Instant::now() + Duration::from_secs(20);
                while !resources.purged(&path) && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                "old"
            };
            Response::builder()
                .header("cache-control", "max-age=600")
                .header("surrogate-key", format!("t-{round}"))
                .body(full(format!("{path} {version}")))
                .unwrap()
        }
    })
    .await
}

fn gateway(
    origin: &support::Origin,
    redis: Redis<'_>,
    prefix: &str,
) -> cachio_gateway::GatewayBuilder {
    let builder = Gateway::builder(origin.url())
        .memory_bytes(16 << 20)
        .redis_prefix(prefix)
        .redis_timeout(Duration::from_secs(2))
        .purge_token(Some("s3cret".into()));
    match redis {
        Redis::Single(s) => builder.redis_url(s.url()),
        Redis::Cluster(c) => builder.redis_cluster(c.urls()),
    }
}

#[derive(Clone, Copy)]
enum Redis<'a> {
    Single(&'a RedisServer),
    Cluster(&'a RedisCluster),
}

async fn subscribed(gws: &[&Running]) {
    support::eventually("every gateway is subscribed", 10, || {
        gws.iter()
            .all(|g| g.gateway.metrics().contains("cachio_fleet_subscribed 1\n"))
    })
    .await;
}

/// One racing round: b's fetch of the round's path is at the origin while a purges it, and the
/// origin answers it only after the purge did.
async fn round(a: String, b: String, i: usize, resources: Arc<Resources>) -> String {
    let path = format!("/race/{i}/x");
    let c = client();
    let fetch = {
        let (c, url) = (c.clone(), format!("{b}{path}"));
        tokio::spawn(async move { send(&c, "GET", &url, &[HOST]).await })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while resources.arrived(&path) == 0 {
        assert!(Instant::now() < deadline, "{path}: b's fetch never came");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let (method, target) = match i % 3 {
        0 => ("PURGE", format!("{a}{path}")),
        1 => (
            "POST",
            format!("{a}/_cachio/purge/prefix?prefix=/race/{i}/"),
        ),
        _ => ("POST", format!("{a}/_cachio/purge/tag?tag=t-{i}")),
    };
    let purge = send(&c, method, &target, &[HOST, AUTH]).await;
    assert_eq!(purge.status, 200, "{method} {target}: {:?}", purge.body);
    resources.set_purged(&path);
    let got = fetch.await.unwrap();
    assert_eq!(got.body, format!("{path} old"), "the fetch in flight");
    path
}

async fn purges_are_ordered_with_fetches_in_flight_on_other_nodes(redis: Redis<'_>, rounds: usize) {
    let resources = Arc::new(Resources::default());
    let origin = origin(Arc::clone(&resources)).await;
    let prefix = unique_prefix("race");
    let a = Running::start(gateway(&origin, redis, &prefix)).await;
    let b = Running::start(gateway(&origin, redis, &prefix)).await;
    subscribed(&[&a, &b]).await;
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..rounds {
        let (a, b) = (a.url(""), b.url(""));
        tasks.spawn(round(a, b, i, Arc::clone(&resources)));
    }
    let mut paths = Vec::new();
    while let Some(path) = tasks.join_next().await {
        paths.push(path.unwrap());
    }
    // b's commits run after its responses ended: give them time to land (or not).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let raced = started.elapsed();
    for path in &paths {
        for gw in [&b, &a, &b] {
            let got = send(&client(), "GET", &gw.url(path), &[HOST]).await;
            assert_eq!(got.status, 200);
            assert_eq!(
                got.body,
                format!("{path} new"),
                "the purged version was served after the purge ({})",
                got.cache_status()
            );
        }
    }
    // Every fetch in flight was refused by Redis at its commit (b's layer never saw a's purges),
    // and so were the checks' own fetches that began within the clock-skew allowance after them.
    let refused = counter(&b.gateway.metrics(), "cachio_redis_invalidated_total");
    assert!(
        refused >= rounds as u64,
        "{refused} refusals in {rounds} rounds"
    );
    eprintln!("{rounds} racing rounds in {raced:?}");
}

/// The value of the counter `name` in a metrics page.
fn counter(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_are_ordered_with_fetches_in_flight_on_other_nodes_single() {
    let redis = RedisServer::start();
    purges_are_ordered_with_fetches_in_flight_on_other_nodes(Redis::Single(&redis), 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purges_are_ordered_with_fetches_in_flight_on_other_nodes_cluster() {
    let cluster = RedisCluster::start();
    purges_are_ordered_with_fetches_in_flight_on_other_nodes(Redis::Cluster(&cluster), 30).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_with_redis_down_answers_503_saying_it_did_not_reach_the_fleet() {
    let mut redis = RedisServer::start();
    let resources = Arc::new(Resources::default());
    let origin = origin(Arc::clone(&resources)).await;
    let a = Running::start(gateway(
        &origin,
        Redis::Single(&redis),
        &unique_prefix("down"),
    ))
    .await;
    subscribed(&[&a]).await;
    redis.kill();
    let c = client();
    for (method, target) in [
        ("PURGE", a.url("/race/0/x")),
        ("POST", a.url("/_cachio/purge/url?url=/race/0/x")),
        ("POST", a.url("/_cachio/purge/prefix?prefix=/race/")),
        ("POST", a.url("/_cachio/purge/tag?tag=t-0")),
    ] {
        let got = send(&c, method, &target, &[HOST, AUTH]).await;
        assert_eq!(got.status, 503, "{method} {target}: {:?}", got.body);
        let body = String::from_utf8_lossy(&got.body);
        assert!(body.contains("did not reach the fleet"), "{body}");
    }
}
