//! TLS (`rediss://`) against TLS-only `redis-server`s (`--port 0`) with certificates of a
//! throwaway CA made at test time: the storage behaviour over TLS, refusals (a CA the client does
//! not trust, a plaintext server behind `rediss://`, mutual TLS without a client certificate)
//! that fail every call instead of falling back to plaintext, the fleet's invalidations over
//! TLS, and a TLS cluster.

use std::sync::OnceLock;
use std::time::Duration;

use cachio_core::store::{ErrorKind, Store};
use cachio_moka::MokaStore;
use cachio_redis::{Broadcast, FleetStore, RedisStore, RedisStoreBuilder};
use cachio_storage_tests as behaviour;

use crate::support::server::{Pki, RedisCluster, RedisServer, unique_prefix};
use crate::support::{self, get, put};

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(Pki::new)
}

/// One TLS server (no client certificates asked for) shared by the checks of this file.
fn server() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(|| RedisServer::start_tls(pki(), false, &[]))
}

fn trusting(b: RedisStoreBuilder) -> RedisStoreBuilder {
    b.tls_ca(pki().read("ca.pem"))
}

fn single(name: &str) -> RedisStore {
    support::for_checks(trusting(RedisStore::builder(server().url())).prefix(unique_prefix(name)))
        .build()
        .unwrap()
}

cachio_storage_tests::behaviours! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    |check| single(check)
}

const KEY: &str = "https://example.com/tls";

/// A store that gives up on each call after half a second, without a breaker (so every call
/// really tries).
fn quick(b: RedisStoreBuilder) -> RedisStore {
    b.prefix(unique_prefix("refused"))
        .timeout(Duration::from_millis(500))
        .connect_timeout(Duration::from_millis(500))
        .breaker(0, Duration::ZERO)
        .build()
        .unwrap()
}

/// Every read and write of `store` fails with `Unavailable` (the cache steps aside), and nothing
/// reached `server`.
async fn assert_refused(store: &RedisStore, server: &RedisServer) {
    // Once the store has tried to connect and been refused, its errors say why.
    support::eventually("the store has tried to connect", 10, || async {
        store
            .get(KEY)
            .await
            .is_err_and(|e| e.to_string().contains("cannot connect"))
    })
    .await;
    for _ in 0..3 {
        let e = store.get(KEY).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    }
    let e = put(store, KEY, "t", b"body", 64, None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert_eq!(server.cli(&["EXISTS", &store.record_key(KEY)]), "0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_ca_is_not_trusted_is_refused() {
    let other = Pki::new();
    let store = quick(RedisStore::builder(server().url()).tls_ca(other.read("ca.pem")));
    assert_refused(&store, server()).await;
    // And the error says why.
    support::eventually("the error names the certificate", 5, || async {
        let e = store.get(KEY).await.unwrap_err();
        e.to_string().contains("invalid peer certificate")
    })
    .await;
    // The system's roots do not know the test CA either.
    let store = quick(RedisStore::builder(server().url()));
    assert_refused(&store, server()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_to_a_plaintext_server_never_falls_back_to_plaintext() {
    let plain = support::server::shared();
    let url = plain.url().replacen("redis://", "rediss://", 1);
    let store = quick(trusting(RedisStore::builder(url)));
    assert_refused(&store, plain).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls_needs_the_client_certificate() {
    let server = RedisServer::start_tls(pki(), true, &[]);
    let with_cert = support::for_checks(
        trusting(RedisStore::builder(server.url()))
            .tls_client_cert(pki().read("client.pem"), pki().read("client.key"))
            .prefix(unique_prefix("mtls")),
    )
    .build()
    .unwrap();
    put(&with_cert, KEY, "m", b"mutual", 64, None)
        .await
        .unwrap();
    let (tag, body) = get(&with_cert, KEY).await.unwrap().expect("stored");
    assert_eq!((tag.as_str(), body.unwrap()), ("m", b"mutual".to_vec()));

    let without = quick(trusting(RedisStore::builder(server.url())));
    assert_refused(&without, &server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fleets_invalidations_travel_over_tls() {
    let prefix = unique_prefix("fleet");
    let node = || -> FleetStore<MokaStore> {
        let redis = trusting(RedisStore::builder(server().url()))
            .prefix(prefix.clone())
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        Broadcast::fleet(MokaStore::new(16 << 20), redis)
    };
    let (a, b) = (node(), node());
    support::eventually("both nodes are subscribed", 10, || async {
        a.is_subscribed() && b.is_subscribed()
    })
    .await;
    let ttl = Some(Duration::from_secs(60));
    put(&a, KEY, "a", b"fleet", 64, ttl).await.unwrap();
    assert!(get(&b, KEY).await.unwrap().is_some());
    assert!(b.local().get(KEY).await.unwrap().is_some());
    a.delete(KEY).await.unwrap();
    support::eventually("b forgets the entry", 5, || async {
        b.local().get(KEY).await.unwrap().is_none()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_cluster_stores_and_purges() {
    let cluster = RedisCluster::start_tls(pki());
    assert!(cluster.urls().iter().all(|u| u.starts_with("rediss://")));
    let store = || {
        support::for_checks(
            trusting(RedisStore::cluster_builder(cluster.urls())).prefix(unique_prefix("cluster")),
        )
        .build()
        .unwrap()
    };
    behaviour::round_trip(store()).await;
    behaviour::distinct_keys(store()).await;
    behaviour::purge(store()).await;
}
