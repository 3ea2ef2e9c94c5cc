//! Reopening a directory, and the lock that keeps it to one store at a time.

use crate::common;

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cachio_core::clock::ManualClock;
use cachio_core::store::{ErrorKind, Store, StoreWriter};
use cachio_fjall::{Durability, FjallStore};
use common::{body, get, header, meta, put};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_gives_back_every_committed_entry() {
    for durability in [
        Durability::Lazy,
        Durability::Flush,
        Durability::SyncData,
        Durability::SyncAll,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(SystemTime::now());
        let open = || {
            FjallStore::builder(dir.path())
                .durability(durability)
                .clock(clock.clone())
                .open()
                .unwrap()
        };
        let store = open();
        let sizes = [0, 1, 1000, 64 * 1024, 64 * 1024 + 1, 300_000, 1 << 20];
        for (i, &n) in sizes.iter().enumerate() {
            put(
                &store,
                &format!("k{i}"),
                &format!("v{i}"),
                &body(i as u64, n),
                7000,
                None,
            )
            .await
            .unwrap();
        }
        put(&store, "gone", "x", b"deleted", 10, None)
            .await
            .unwrap();
        store.delete("gone").await.unwrap();
        put(
            &store,
            "short",
            "x",
            b"expires",
            10,
            Some(Duration::from_millis(300)),
        )
        .await
        .unwrap();
        put(&store, "updated", "before", b"kept body", 3, None)
            .await
            .unwrap();
        assert!(
            store
                .update(
                    "updated",
                    &meta("before", b"kept body"),
                    meta("after", b"kept body"),
                    Some(Duration::from_secs(3600))
                )
                .await
                .unwrap()
        );
        put(&store, "over", "first", &body(100, 200_000), 50_000, None)
            .await
            .unwrap();
        put(&store, "over", "second", &body(101, 5), 5, None)
            .await
            .unwrap();
        store.run_pending_tasks().await.unwrap();
        let (tracked, count) = (store.tracked_bytes(), store.entry_count());
        assert_eq!(count, sizes.len() as u64 + 3);
        drop(store);

        let store = open();
        assert_eq!(store.tracked_bytes(), tracked, "{durability:?}");
        assert_eq!(store.entry_count(), count, "{durability:?}");
        for (i, &n) in sizes.iter().enumerate() {
            let (m, b) = get(&store, &format!("k{i}")).await.unwrap().unwrap();
            assert_eq!(header(&m, "x-tag"), Some(format!("v{i}").as_str()));
            assert_eq!(b.unwrap(), body(i as u64, n), "{durability:?} k{i}");
        }
        assert!(get(&store, "gone").await.unwrap().is_none());
        let (m, b) = get(&store, "updated").await.unwrap().unwrap();
        assert_eq!(header(&m, "x-tag"), Some("after"));
        assert_eq!(b.unwrap(), b"kept body");
        let (m, b) = get(&store, "over").await.unwrap().unwrap();
        assert_eq!(header(&m, "x-tag"), Some("second"));
        assert_eq!(b.unwrap(), body(101, 5));
        assert!(get(&store, "short").await.unwrap().is_some());
        clock.advance(Duration::from_millis(300));
        assert!(
            get(&store, "short").await.unwrap().is_none(),
            "a ttl was lost"
        );
    }
}

#[tokio::test]
async fn a_second_open_of_the_directory_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let store = FjallStore::open(dir.path()).unwrap();
    let e = FjallStore::open(dir.path()).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.to_string().contains("already open"), "{e}");
    // A clone is not a second open.
    let clone = store.clone();
    drop(store);
    assert!(
        FjallStore::open(dir.path()).is_err(),
        "a clone is still open"
    );
    drop(clone);
    let again = FjallStore::open(dir.path()).unwrap();
    drop(again);

    // Another process.
    let _store = FjallStore::open(dir.path()).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "persistence::open_from_another_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CACHIO_FJALL_OPEN_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("OPEN FAILED: store unavailable:") && stdout.contains("already open"),
        "{stdout}"
    );
}

/// Run by `a_second_open_of_the_directory_fails_clearly` in a child process.
#[test]
fn open_from_another_process() {
    let Some(dir) = std::env::var_os("CACHIO_FJALL_OPEN_DIR") else {
        return;
    };
    match FjallStore::open(dir) {
        Ok(_) => println!("OPENED"),
        Err(e) => println!("OPEN FAILED: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_and_bodies_may_outlive_the_store_handle() {
    let dir = tempfile::tempdir().unwrap();
    let store = FjallStore::open(dir.path()).unwrap();
    put(&store, "k", "v", &body(1, 500_000), 100_000, None)
        .await
        .unwrap();
    let hit = store.get("k").await.unwrap().unwrap();
    let mut w = store.begin("w").unwrap();
    w.append(Bytes::from_static(b"abc")).unwrap();
    drop(store);
    // The writer keeps the store running: it can still commit.
    w.commit(meta("w", b"abc"), None).await.unwrap();
    // The body keeps the database open; the directory stays locked until it is dropped.
    let got = cachio_storage_tests::read_body(hit.body).await.unwrap();
    assert_eq!(got, body(1, 500_000));
    let store = FjallStore::open(dir.path()).unwrap();
    assert_eq!(get(&store, "w").await.unwrap().unwrap().1.unwrap(), b"abc");

    // A writer dropped after the store handle does not hang, and leaves nothing.
    let mut w = store.begin("dropped").unwrap();
    w.append(Bytes::from_static(b"x")).unwrap();
    drop(store);
    drop(w);
    let store = FjallStore::open(dir.path()).unwrap();
    assert!(get(&store, "dropped").await.unwrap().is_none());
}

#[test]
fn get_outside_a_tokio_runtime_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = FjallStore::open(dir.path()).unwrap();
    let e = futures_lite_block_on(store.get("k")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
}

/// A minimal executor that is not tokio.
fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Noop;
    impl Wake for Noop {
        fn wake(self: std::sync::Arc<Self>) {}
    }
    let waker = Waker::from(std::sync::Arc::new(Noop));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        std::thread::yield_now();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purged_entries_stay_gone_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let store = FjallStore::open(dir.path()).unwrap();
    for i in 0..30 {
        let prefix = if i % 3 == 0 {
            "https://a/"
        } else {
            "https://b/"
        };
        put(
            &store,
            &format!("{prefix}{i}"),
            &format!("t{i}"),
            &body(i, 70_000),
            70_000,
            None,
        )
        .await
        .unwrap();
    }
    let n = store
        .purge(|key, _| key.starts_with("https://a/"))
        .await
        .unwrap();
    assert_eq!(n, 10);
    let n = store
        .purge(|_, m| header(m, "x-tag") == Some("t1"))
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(store.purge(|_, _| false).await.unwrap(), 0);
    store.run_pending_tasks().await.unwrap();
    assert_eq!(store.entry_count(), 19);
    drop(store);
    let store = FjallStore::open(dir.path()).unwrap();
    assert_eq!(store.entry_count(), 19);
    for i in 0..30 {
        let prefix = if i % 3 == 0 {
            "https://a/"
        } else {
            "https://b/"
        };
        let found = get(&store, &format!("{prefix}{i}")).await.unwrap();
        assert_eq!(found.is_some(), i % 3 != 0 && i != 1, "{prefix}{i}");
    }
    drop(store);
    assert_eq!(
        common::chunks_on_disk(dir.path()).values().sum::<u32>(),
        19 * common::chunk_count(70_000)
    );
}
