//! A Redis that is down, slow, restarting, or killed in the middle of a write: the store fails
//! fast with `Unavailable`, never shows a partial entry, and comes back by itself.

use crate::support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use cachio_core::store::{ErrorKind, Store, StoreError, StoreWriter};
use cachio_redis::{CHUNK_SIZE, RedisStore};
use support::server::RedisServer;
use support::{body, get, meta, put};

const TIMEOUT: Duration = Duration::from_millis(50);

fn store(url: String, prefix: &str) -> RedisStore {
    RedisStore::builder(url)
        .prefix(prefix)
        .timeout(TIMEOUT)
        .connect_timeout(Duration::from_millis(200))
        .breaker(3, Duration::from_millis(200))
        .build()
        .unwrap()
}

fn unavailable<T: std::fmt::Debug>(r: Result<T, StoreError>) {
    match r {
        Err(e) => assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}"),
        Ok(v) => panic!("expected Unavailable, got {v:?}"),
    }
}

/// Waits until the store answers again (a get of a missing key succeeds).
async fn recovered(store: &RedisStore, secs: u64) -> Duration {
    let start = Instant::now();
    support::eventually("the store answers again", secs, || async {
        store.get("probe").await.is_ok()
    })
    .await;
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_at_start_then_up() {
    // A port with nothing on it (the server is started on it later).
    let mut server = RedisServer::start();
    server.kill();
    let store = store(server.url(), "down-at-start");
    for _ in 0..5 {
        let start = Instant::now();
        unavailable(store.get("k").await);
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "{:?}",
            start.elapsed()
        );
    }
    unavailable(put(&store, "k", "t", b"x", 1, None).await);
    assert!(store.stats().breaker_opened >= 1, "{:?}", store.stats());
    // While the breaker is open, calls fail at once.
    let start = Instant::now();
    for _ in 0..100 {
        let _ = store.get("k").await;
    }
    assert!(
        start.elapsed() < Duration::from_millis(150),
        "{:?}",
        start.elapsed()
    );
    assert!(store.stats().refused > 0);

    server.restart();
    let took = recovered(&store, 10).await;
    eprintln!("recovered {took:?} after the server came up");
    put(&store, "k", "t", b"stored", 3, None).await.unwrap();
    assert_eq!(
        get(&store, "k").await.unwrap().unwrap().1.unwrap(),
        b"stored"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_the_same_port() {
    let mut server = RedisServer::start();
    let store = store(server.url(), "restart");
    put(&store, "k", "t", &body(1, 100_000), 10_000, None)
        .await
        .unwrap();
    server.kill();
    let start = Instant::now();
    for _ in 0..10 {
        let r = store.get("k").await;
        assert!(r.is_err(), "a hit from a dead Redis");
    }
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    unavailable(store.begin("other").map(|_| ()));
    server.restart();
    let took = recovered(&store, 10).await;
    eprintln!("recovered {took:?} after the restart");
    // The restarted server is empty (no persistence): a miss, then it stores again.
    assert!(get(&store, "k").await.unwrap().is_none());
    put(&store, "k", "t", b"again", 5, None).await.unwrap();
    assert_eq!(
        get(&store, "k").await.unwrap().unwrap().1.unwrap(),
        b"again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_costs_the_timeout_then_nothing() {
    let server = RedisServer::start();
    let store = store(server.url(), "paused");
    put(&store, "k", "t", b"v", 1, None).await.unwrap();
    server.pause();
    let start = Instant::now();
    unavailable(store.get("k").await);
    let first = start.elapsed();
    assert!(
        first >= TIMEOUT && first < TIMEOUT * 6,
        "a call to a paused Redis took {first:?}"
    );
    let _ = store.get("k").await;
    let _ = store.get("k").await;
    let start = Instant::now();
    unavailable(store.get("k").await);
    assert!(
        start.elapsed() < Duration::from_millis(10),
        "{:?}",
        start.elapsed()
    );
    assert!(store.stats().timeouts >= 3, "{:?}", store.stats());
    server.resume();
    recovered(&store, 10).await;
    assert_eq!(get(&store, "k").await.unwrap().unwrap().1.unwrap(), b"v");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_write_queue_fails_the_append_instead_of_waiting() {
    let server = RedisServer::start();
    let store = RedisStore::builder(server.url())
        .prefix("queue")
        .timeout(Duration::from_secs(5))
        .write_queue_bytes(4 * CHUNK_SIZE as u64)
        .build()
        .unwrap();
    server.pause();
    let mut w = store.begin("k").unwrap();
    let mut refused = None;
    let start = Instant::now();
    for i in 0..64 {
        if let Err(e) = w.append(Bytes::from(vec![1u8; CHUNK_SIZE])) {
            refused = Some((i, e));
            break;
        }
    }
    assert!(start.elapsed() < Duration::from_millis(100));
    let (i, e) = refused.expect("the queue filled up");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!((3..=7).contains(&i), "refused after {i} appends");
    drop(w);
    server.resume();
    // The queue drains: a new write goes through.
    support::eventually("the queue drains", 10, || async {
        put(
            &store,
            "k2",
            "t",
            &body(2, 3 * CHUNK_SIZE),
            CHUNK_SIZE,
            None,
        )
        .await
        .is_ok()
    })
    .await;
}

/// A write in progress when Redis is killed, with Redis persisting every write (so the chunks
/// written before the kill survive the restart): after the restart the old entry is still
/// complete, the new one is not there, and its orphan chunks are deleted or expire on their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_in_the_middle_of_a_write() {
    let mut server = RedisServer::start_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let store = RedisStore::builder(server.url())
        .prefix("killed")
        .timeout(Duration::from_millis(200))
        .pending_ttl(Duration::from_secs(30))
        .build()
        .unwrap();
    let old = body(7, 5 * CHUNK_SIZE + 7);
    put(&store, "k", "old", &old, CHUNK_SIZE, None)
        .await
        .unwrap();

    let new = body(8, 40 * CHUNK_SIZE);
    let mut w = store.begin("k").unwrap();
    for (i, piece) in new.chunks(CHUNK_SIZE).enumerate() {
        if i == 20 {
            // Let the first chunks reach Redis, then kill it.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let chunks = server
                .cli(&["--scan", "--pattern", "{killed:*}:c:*"])
                .lines()
                .count();
            assert!(
                chunks > 6,
                "only {chunks} chunks: the new body is not being written"
            );
            server.kill();
        }
        if w.append(Bytes::copy_from_slice(piece)).is_err() {
            break;
        }
        tokio::task::yield_now().await;
    }
    let committed = w.commit(meta("new"), None).await;
    assert!(committed.is_err(), "a commit after Redis died succeeded");

    server.restart();
    recovered(&store, 10).await;
    let (tag, got) = get(&store, "k")
        .await
        .unwrap()
        .expect("the old entry survived");
    assert_eq!(tag, "old");
    assert_eq!(got.unwrap(), old, "the old body, whole");
    // Chunks of the interrupted write may be there, but expire.
    let orphans: Vec<String> = server
        .cli(&["--scan", "--pattern", "{killed:*}:c:*"])
        .lines()
        .map(str::to_owned)
        .collect();
    let record = server.cli(&["GET", &store.record_key("k")]);
    assert!(!record.is_empty());
    let mut orphaned = 0;
    for k in &orphans {
        let t: i64 = server.cli(&["PTTL", k]).parse().unwrap();
        if t != -1 {
            orphaned += 1;
            assert!((0..=30_000).contains(&t), "orphan chunk {k} PTTL {t}");
        }
    }
    // (The writer deletes them itself when its delete reaches the restarted Redis.)
    eprintln!("{orphaned} orphan chunks of the interrupted write left, all expiring");
}

#[test]
fn built_outside_a_runtime_and_used_from_several() {
    let server = RedisServer::start();
    // Built outside any runtime, then used from two runtimes in turn, the first one gone before
    // the second starts.
    let store = store(server.url(), "runtimes");
    let expected = body(3, 3 * CHUNK_SIZE);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        support::eventually("connected", 10, || async { store.ping().await.is_ok() }).await;
        put(&store, "k", "t", &expected, 1000, None).await.unwrap();
    });
    drop(rt);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        assert_eq!(
            get(&store, "k").await.unwrap().unwrap().1.unwrap(),
            expected
        );
    });
}
