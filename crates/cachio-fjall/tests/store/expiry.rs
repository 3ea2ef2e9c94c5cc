//! Entries past their ttl are misses, and are removed lazily and by the sweep.

use crate::common;

use std::time::{Duration, SystemTime};

use cachio_core::clock::ManualClock;
use cachio_core::store::Store;
use cachio_fjall::FjallStore;
use common::{get, meta, put};

/// A store on `dir` whose time is `clock`'s.
fn store(dir: &tempfile::TempDir, clock: &ManualClock) -> FjallStore {
    FjallStore::builder(dir.path())
        .sweep_interval(Duration::from_millis(100))
        .clock(clock.clone())
        .open()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_expire_after_their_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(SystemTime::now());
    let store = store(&dir, &clock);
    let ms = Duration::from_millis;
    put(&store, "short", "s", b"s", 1, Some(ms(200)))
        .await
        .unwrap();
    put(&store, "forever", "f", b"f", 1, None).await.unwrap();
    put(&store, "extended", "e", b"e", 1, Some(ms(200)))
        .await
        .unwrap();
    assert!(
        store
            .update("extended", &meta("e", b"e"), meta("e", b"e"), None)
            .await
            .unwrap()
    );
    assert!(get(&store, "short").await.unwrap().is_some());

    clock.advance(ms(199));
    assert!(
        get(&store, "short").await.unwrap().is_some(),
        "an entry expired before its ttl"
    );
    clock.advance(ms(1));
    assert!(
        get(&store, "short").await.unwrap().is_none(),
        "an entry outlived its ttl"
    );
    assert!(get(&store, "forever").await.unwrap().is_some());
    assert!(
        get(&store, "extended").await.unwrap().is_some(),
        "update did not replace the ttl"
    );

    // An update can also shorten the ttl.
    assert!(
        store
            .update("forever", &meta("f", b"f"), meta("f", b"f"), Some(ms(50)))
            .await
            .unwrap()
    );
    clock.advance(ms(50));
    assert!(
        get(&store, "forever").await.unwrap().is_none(),
        "update did not shorten the ttl"
    );
    // An expired entry is not there to update.
    assert!(
        !store
            .update("forever", &meta("f", b"f"), meta("f", b"f"), None)
            .await
            .unwrap()
    );
    assert!(get(&store, "forever").await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_removes_expired_entries_nobody_reads() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(SystemTime::now());
    let store = store(&dir, &clock);
    for i in 0..50 {
        let ttl = Duration::from_millis(if i % 2 == 0 { 1500 } else { 3_600_000 });
        put(
            &store,
            &format!("k{i}"),
            "t",
            &common::body(i, 100_000),
            30_000,
            Some(ttl),
        )
        .await
        .unwrap();
    }
    store.run_pending_tasks().await.unwrap();
    assert_eq!(store.entry_count(), 50);
    let full = store.tracked_bytes();
    clock.advance(Duration::from_millis(1500));
    // No reads: the periodic sweep alone removes them.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while store.entry_count() > 25 {
        assert!(
            std::time::Instant::now() < deadline,
            "the sweep did not run"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.run_pending_tasks().await.unwrap();
    assert_eq!(store.entry_count(), 25);
    assert!(store.tracked_bytes() < full / 2 + 1000);
    for i in (1..50).step_by(2) {
        assert!(get(&store, &format!("k{i}")).await.unwrap().is_some());
    }

    // Expired while closed: a miss after reopening, and swept.
    put(
        &store,
        "closed",
        "c",
        b"c",
        1,
        Some(Duration::from_millis(100)),
    )
    .await
    .unwrap();
    drop(store);
    clock.advance(Duration::from_millis(100));
    let store = self::store(&dir, &clock);
    assert!(get(&store, "closed").await.unwrap().is_none());
    store.run_pending_tasks().await.unwrap();
    assert_eq!(store.entry_count(), 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_ttl_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(&dir, &ManualClock::new(SystemTime::now()));
    put(&store, "k", "old", b"old", 3, None).await.unwrap();
    put(&store, "k", "new", b"new", 3, Some(Duration::ZERO))
        .await
        .unwrap();
    assert!(get(&store, "k").await.unwrap().is_none());

    put(&store, "k", "old", b"old", 3, None).await.unwrap();
    assert!(
        store
            .update(
                "k",
                &meta("old", b"old"),
                meta("k", b"old"),
                Some(Duration::ZERO)
            )
            .await
            .unwrap()
    );
    assert!(get(&store, "k").await.unwrap().is_none());
    store.run_pending_tasks().await.unwrap();
    assert_eq!(store.entry_count(), 0);
    assert_eq!(store.tracked_bytes(), 0);
}
