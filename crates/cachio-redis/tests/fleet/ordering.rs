//! Purges ordered with every node's writes: a write whose response was requested before a
//! delete or a purge on another node is refused at its commit (on one server and on a cluster),
//! a later one is stored, the clock-skew allowance is applied, and a purge that cannot reach
//! Redis says so.

use crate::support;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cachio_core::meta::{Meta, VaryIndex};
use cachio_core::store::{ErrorKind, Store, StoreWriter};
use cachio_moka::MokaStore;
use cachio_redis::{Broadcast, CHUNK_SIZE, FleetStore, RedisStore, RedisStoreBuilder};
use http::HeaderName;
use support::server::{self, RedisServer};
use support::{body, get, meta_requested, tag};

const TTL: Option<Duration> = Some(Duration::from_secs(60));

fn node(builder: RedisStoreBuilder) -> FleetStore<MokaStore> {
    let redis = support::for_checks(builder).build().unwrap();
    Broadcast::fleet(MokaStore::new(16 << 20), redis)
}

/// Two nodes of one fleet on the shared server or cluster.
fn two_nodes(cluster: bool, name: &str) -> (FleetStore<MokaStore>, FleetStore<MokaStore>) {
    let prefix = server::unique_prefix(name);
    let builder = || {
        if cluster {
            RedisStore::cluster_builder(server::shared_cluster().urls()).prefix(&prefix)
        } else {
            RedisStore::builder(server::shared().url()).prefix(&prefix)
        }
    };
    (node(builder()), node(builder()))
}

async fn subscribed(nodes: &[&FleetStore<MokaStore>]) {
    support::eventually("every node is subscribed", 10, || async {
        nodes.iter().all(|n| n.is_subscribed())
    })
    .await;
}

#[derive(Clone, Copy, Debug)]
enum Purge {
    /// `delete`: a `PURGE` of one URL, or an unsafe method's invalidation.
    Key,
    /// A purge by a predicate on the key (a prefix purge).
    Prefix,
    /// A purge by a predicate on the metadata (a tag purge).
    Tag,
}

async fn purge(node: &FleetStore<MokaStore>, how: Purge, key: &str, tagged: &str) {
    match how {
        Purge::Key => node.delete(key).await.unwrap(),
        Purge::Prefix => {
            let key = key.to_owned();
            node.purge(move |k, _| k == key).await.map(|_| ()).unwrap();
        }
        Purge::Tag => {
            let tagged = tagged.to_owned();
            node.purge(move |_, m| tag(m).as_deref() == Some(&tagged))
                .await
                .map(|_| ())
                .unwrap();
        }
    }
}

/// Node b writes while node a purges: every write whose response was requested before the
/// purge is refused at its commit, and neither node has it afterwards; b's writes that began
/// after the purge are stored.
async fn writes_in_flight_during_a_purge_are_refused(cluster: bool) {
    let (a, b) = two_nodes(cluster, "ordering");
    subscribed(&[&a, &b]).await;
    let ways = [Purge::Key, Purge::Prefix, Purge::Tag];
    let rounds = 24;
    for round in 0..rounds {
        let how = ways[round % ways.len()];
        let key = format!("http://o/{round}/x");
        let tagged = format!("t-{round}");
        // Inline bodies and bodies in chunks (written before the commit).
        let size = if round % 2 == 0 {
            100
        } else {
            2 * CHUNK_SIZE + 7
        };
        let old = body(round as u64, size);
        // The entry is there before, as a hit on both nodes, when the round says so.
        if round % 4 < 2 {
            let meta = meta_requested(&tagged, SystemTime::now());
            let mut w = b.begin(&key).unwrap();
            w.append(Bytes::from(old.clone())).unwrap();
            w.commit(meta, TTL).await.unwrap();
            assert!(get(&a, &key).await.unwrap().is_some(), "{how:?} {round}");
        }
        let requested = SystemTime::now();
        let mut writer = b.begin(&key).unwrap();
        writer.append(Bytes::from(old.clone())).unwrap();
        purge(&a, how, &key, &tagged).await;
        let refused = writer
            .commit(meta_requested(&tagged, requested), TTL)
            .await
            .expect_err("a write requested before the purge was stored after it");
        assert_eq!(refused.kind(), ErrorKind::Invalidated, "{refused}");
        // Redis no longer has the entry, nor took the refused write; b's memory copy of the
        // earlier entry goes when the purge's announcement reaches it.
        assert!(
            get(&a, &key).await.unwrap().is_none(),
            "{how:?} round {round}: the purged write is in Redis"
        );
        support::eventually("b applies the purge", 5, || async {
            b.local().get(&key).await.unwrap().is_none()
        })
        .await;
        assert!(
            get(&b, &key).await.unwrap().is_none(),
            "{how:?} round {round}: the purged write is visible on b"
        );
        // A write requested after the purge (no skew allowance here) is stored.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let fresh = b"fresh".to_vec();
        let mut w = b.begin(&key).unwrap();
        w.append(Bytes::from(fresh.clone())).unwrap();
        w.commit(meta_requested(&tagged, SystemTime::now()), TTL)
            .await
            .unwrap();
        let (_, got) = get(&a, &key).await.unwrap().expect("the fresh write");
        assert_eq!(got.unwrap(), fresh);
    }
    let stats = b.store().second().stats();
    assert_eq!(stats.invalidated, rounds as u64, "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_in_flight_during_a_purge_are_refused_single() {
    writes_in_flight_during_a_purge_are_refused(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_in_flight_during_a_purge_are_refused_cluster() {
    writes_in_flight_during_a_purge_are_refused(true).await;
}

/// A variant requested before a delete of its resource on another node, and the variant index
/// written after it: on one server the variant is refused (its resource's fence is reachable);
/// on a cluster it cannot be (another slot), and its index, which would make it reachable, is.
async fn a_variant_requested_before_a_purge_is_never_reachable(cluster: bool) {
    let (a, b) = two_nodes(cluster, "ordering-variant");
    subscribed(&[&a, &b]).await;
    let primary = "http://o/v";
    let epoch = 0xab;
    let variant = format!("{primary}\0v{epoch:016x}:{:016x}", 2);
    let requested = SystemTime::now();
    let mut w = b.begin(&variant).unwrap();
    w.append(Bytes::from_static(b"de")).unwrap();
    a.delete(primary).await.unwrap();
    let committed = w.commit(meta_requested("v", requested), TTL).await;
    if cluster {
        committed.unwrap();
    } else {
        let e = committed.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Invalidated, "{e}");
        assert!(get(&a, &variant).await.unwrap().is_none());
    }
    let e = write_index(&b, primary, epoch, &[2]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalidated, "{e}");
    assert!(a.get(primary).await.unwrap().is_none(), "the index is back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variant_requested_before_a_purge_is_never_reachable_single() {
    a_variant_requested_before_a_purge_is_never_reachable(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_variant_requested_before_a_purge_is_never_reachable_cluster() {
    a_variant_requested_before_a_purge_is_never_reachable(true).await;
}

async fn write_variant(node: &FleetStore<MokaStore>, primary: &str, epoch: u64, hash: u64) {
    let variant = format!("{primary}\0v{epoch:016x}:{hash:016x}");
    let mut w = node.begin(&variant).unwrap();
    w.append(Bytes::from(format!("variant {hash}"))).unwrap();
    w.commit(meta_requested("v", SystemTime::now()), TTL)
        .await
        .unwrap();
}

async fn write_index(
    node: &FleetStore<MokaStore>,
    primary: &str,
    epoch: u64,
    variants: &[u64],
) -> Result<(), cachio_core::store::StoreError> {
    let mut index = VaryIndex::new(vec![HeaderName::from_static("accept-language")], epoch);
    index.variants.extend_from_slice(variants);
    let w = node.begin(primary)?;
    w.commit(Arc::new(Meta::Variants(index)), TTL).await
}

/// A fetch that read a resource's variant index before another node deleted the resource, and
/// requested its variant after: the variant is fresh, but the index it writes back would list
/// the older variants again. It is refused: the deleted index's epoch is dead.
async fn an_index_deleted_by_a_purge_is_never_written_back(cluster: bool) {
    let (a, b) = two_nodes(cluster, "ordering-epoch");
    subscribed(&[&a, &b]).await;
    let primary = "http://o/e";
    let epoch = 0xcd;
    write_variant(&b, primary, epoch, 1).await;
    write_index(&b, primary, epoch, &[1]).await.unwrap();
    assert!(a.get(primary).await.unwrap().is_some());
    a.delete(primary).await.unwrap();
    tokio::time::sleep(Duration::from_millis(2)).await;
    write_variant(&b, primary, epoch, 2).await;
    let e = write_index(&b, primary, epoch, &[1, 2]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalidated, "{e}");
    assert!(a.get(primary).await.unwrap().is_none(), "the index is back");
    // A new index (a new epoch) is written as usual.
    write_variant(&b, primary, epoch + 1, 2).await;
    write_index(&b, primary, epoch + 1, &[2]).await.unwrap();
    assert!(a.get(primary).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_deleted_by_a_purge_is_never_written_back_single() {
    an_index_deleted_by_a_purge_is_never_written_back(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_deleted_by_a_purge_is_never_written_back_cluster() {
    an_index_deleted_by_a_purge_is_never_written_back(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_clock_skew_allowance_refuses_what_a_fast_clock_requested_after_the_purge() {
    let prefix = server::unique_prefix("ordering-skew");
    let url = server::shared().url();
    let store = |skew: Duration| {
        support::for_checks(RedisStore::builder(url.clone()).prefix(&prefix))
            .clock_skew(skew)
            .build()
            .unwrap()
    };
    let (wide, narrow) = (
        store(Duration::from_secs(1)),
        store(Duration::from_millis(200)),
    );
    wide.delete("k").await.unwrap();
    // A node whose clock runs half a second ahead of Redis's, requesting just after the purge:
    // the 1 s allowance covers it (refused), a 200 ms one does not (stored).
    let ahead = SystemTime::now() + Duration::from_millis(500);
    let write = |store: &RedisStore| {
        let mut w = store.begin("k").unwrap();
        w.append(Bytes::from_static(b"x")).unwrap();
        w.commit(meta_requested("t", ahead), TTL)
    };
    let e = write(&wide).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Invalidated, "{e}");
    write(&narrow).await.unwrap();
    assert!(get(&wide, "k").await.unwrap().is_some());
    assert_eq!(wide.stats().invalidated, 1);
    assert_eq!(narrow.stats().invalidated, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_that_cannot_reach_redis_says_it_did_not_reach_the_fleet() {
    let mut server = RedisServer::start();
    let a = node(
        RedisStore::builder(server.url())
            .prefix("ordering-down")
            .connect_timeout(Duration::from_millis(200)),
    );
    subscribed(&[&a]).await;
    server.kill();
    let e = a.delete("http://o/k").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains("did not reach the fleet"), "{e}");
    let e = a.purge(|_, _| true).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.to_string().contains("did not reach the fleet"), "{e}");
}
