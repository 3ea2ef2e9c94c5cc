//! Two nodes, each with its own memory tier over one Redis: deletes and purges on one reach the
//! other's memory; a node without its subscription steps aside and forgets its memory.

use crate::support;

use std::time::Duration;

use cachio_core::store::{ErrorKind, Store};
use cachio_moka::MokaStore;
use cachio_redis::{Broadcast, FleetStore, RedisStore};
use support::server::RedisServer;
use support::{get, put};

fn node(server: &RedisServer, prefix: &str) -> FleetStore<MokaStore> {
    let redis = RedisStore::builder(server.url())
        .prefix(prefix)
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap();
    Broadcast::fleet(MokaStore::new(16 << 20), redis)
}

async fn subscribed(nodes: &[&FleetStore<MokaStore>]) {
    support::eventually("every node is subscribed", 10, || async {
        nodes.iter().all(|n| n.is_subscribed())
    })
    .await;
}

async fn in_memory(n: &FleetStore<MokaStore>, key: &str) -> bool {
    n.local().get(key).await.unwrap().is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_and_purges_reach_the_other_nodes_memory() {
    let server = RedisServer::start();
    let a = node(&server, "fleet");
    let b = node(&server, "fleet");
    subscribed(&[&a, &b]).await;
    let ttl = Some(Duration::from_secs(60));
    for key in ["http://x/1", "http://x/2", "http://y/1"] {
        put(&a, key, "a", key.as_bytes(), 100, ttl).await.unwrap();
        // Read on b: from Redis, and copied into b's memory.
        assert_eq!(
            get(&b, key).await.unwrap().unwrap().1.unwrap(),
            key.as_bytes()
        );
        assert!(
            in_memory(&a, key).await && in_memory(&b, key).await,
            "{key}"
        );
        // A memory-tier hit is given at once, with no future to wait on.
        let hit = b.try_get(key).expect("a memory hit answers at once");
        assert!(hit.unwrap().is_some(), "{key}");
    }
    // Not in memory: left to `get`, which asks Redis.
    assert!(b.try_get("http://x/elsewhere").is_none());

    // A delete on a (an unsafe method's invalidation, or PURGE of one URL).
    a.delete("http://x/1").await.unwrap();
    support::eventually("b forgets x/1", 5, || async {
        !in_memory(&b, "http://x/1").await
    })
    .await;
    assert!(get(&b, "http://x/1").await.unwrap().is_none());

    // A purge on b by a predicate: found in Redis and in b's memory, announced to a.
    let n = b.purge(|k, _| k.starts_with("http://x/")).await.unwrap();
    assert_eq!(n, 1);
    support::eventually("a forgets x/2", 5, || async {
        !in_memory(&a, "http://x/2").await
    })
    .await;
    assert!(get(&a, "http://x/2").await.unwrap().is_none());
    assert!(
        in_memory(&a, "http://y/1").await,
        "a purge removed more than it matched"
    );
    assert!(
        a.stats().received >= 1 && b.stats().received >= 1,
        "{:?} {:?}",
        a.stats(),
        b.stats()
    );
    assert!(a.stats().published >= 1 && b.stats().published >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_its_subscription_a_node_steps_aside_and_forgets() {
    let mut server = RedisServer::start();
    let a = node(&server, "resub");
    subscribed(&[&a]).await;
    put(&a, "k", "t", b"v", 1, None).await.unwrap();
    assert!(in_memory(&a, "k").await);
    server.kill();
    support::eventually("the subscription is lost", 5, || async {
        !a.is_subscribed()
    })
    .await;
    // Memory still holds the entry, but the node does not use it.
    assert!(in_memory(&a, "k").await);
    let e = a.get("k").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    let e = a.try_get("k").expect("an answer at once").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(a.begin("k").is_err());

    server.restart();
    subscribed(&[&a]).await;
    assert_eq!(a.stats().subscriptions, 2);
    // It may have missed invalidations meanwhile: its memory was emptied.
    a.local().run_pending_tasks().await;
    assert!(!in_memory(&a, "k").await);
    support::eventually("Redis answers again", 10, || async {
        a.redis().ping().await.is_ok()
    })
    .await;
    assert!(get(&a, "k").await.unwrap().is_none());
    put(&a, "k", "t", b"again", 5, None).await.unwrap();
    assert_eq!(get(&a, "k").await.unwrap().unwrap().1.unwrap(), b"again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleets_with_other_prefixes_do_not_hear_each_other() {
    let server = RedisServer::start();
    let a = node(&server, "one");
    let b = node(&server, "two");
    let c = node(&server, "two");
    subscribed(&[&a, &b, &c]).await;
    put(&b, "k", "t", b"v", 1, None).await.unwrap();
    a.delete("k").await.unwrap();
    assert_eq!(a.stats().published, 1);
    // A message on b's own channel, published after a's: once b has it, b has had whatever
    // Redis delivered to it before.
    c.delete("marker").await.unwrap();
    support::eventually("b hears its own fleet", 10, || async {
        b.stats().received >= 1
    })
    .await;
    assert!(in_memory(&b, "k").await);
    assert_eq!(b.stats().received, 1, "only c's message reached b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_too() {
    let urls = support::server::shared_cluster().urls();
    let prefix = support::server::unique_prefix("cluster-fleet");
    let node = |urls: Vec<String>| {
        let redis = RedisStore::cluster_builder(urls)
            .prefix(prefix.clone())
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        Broadcast::fleet(MokaStore::new(16 << 20), redis)
    };
    // Each node subscribes through a different master: classic Pub/Sub reaches every node.
    let a = node(urls.clone());
    let b = node(urls[1..].to_vec());
    subscribed(&[&a, &b]).await;
    let keys: Vec<String> = (0..20).map(|i| format!("http://c/{i}")).collect();
    for k in &keys {
        put(&a, k, "a", k.as_bytes(), 100, None).await.unwrap();
        assert_eq!(get(&b, k).await.unwrap().unwrap().1.unwrap(), k.as_bytes());
        assert!(in_memory(&b, k).await);
    }
    a.delete(&keys[0]).await.unwrap();
    support::eventually("b forgets the deleted key", 5, || async {
        !in_memory(&b, &keys[0]).await
    })
    .await;
    // A purge on a scans every master of the cluster, and b's memory follows.
    let n = a.purge(|k, _| k.starts_with("http://c/1")).await.unwrap();
    assert_eq!(n, 11, "http://c/1 and http://c/10..19");
    for k in keys.iter().filter(|k| k.starts_with("http://c/1")) {
        support::eventually("b forgets the purged keys", 5, || async {
            !in_memory(&b, k).await
        })
        .await;
        assert!(get(&b, k).await.unwrap().is_none());
    }
    assert!(in_memory(&b, "http://c/2").await);
}
