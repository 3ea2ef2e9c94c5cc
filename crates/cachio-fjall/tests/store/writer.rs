//! Streaming writes: appends never block, chunks are coalesced, and nothing is left behind by
//! writers that do not commit or by entries that are replaced.

use crate::common;

use bytes::Bytes;
use cachio_core::store::{ErrorKind, Store, StoreWriter};
use cachio_fjall::{CHUNK_SIZE, FjallStore};
use common::{body, chunk_count, chunks_on_disk, get, meta, put};
use http_body::Body;
use http_body_util::BodyExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_write_queue_fails_the_append_instead_of_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let store = FjallStore::builder(dir.path())
        .write_queue_bytes(256 * 1024)
        .open()
        .unwrap();
    put(&store, "k", "before", b"visible", 7, None)
        .await
        .unwrap();
    let chunk = Bytes::from(vec![1u8; 64 * 1024]);
    let mut w = store.begin("k").unwrap();
    let started = std::time::Instant::now();
    let mut refused = None;
    for i in 0..1000 {
        if let Err(e) = w.append(chunk.clone()) {
            refused = Some((i, e));
            break;
        }
    }
    let (i, e) = refused.expect("1000 appends of 64 KiB into a 256 KiB queue all went through");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "appends blocked"
    );
    assert!(i >= 4, "refused after {i} appends");
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.to_string().contains("write queue is full"), "{e}");
    // The writer stays failed, and commit says so.
    assert!(w.append(Bytes::from_static(b"x")).is_err());
    assert_eq!(
        w.commit(meta("after", b""), None).await.unwrap_err().kind(),
        ErrorKind::Unavailable
    );
    let (m, b) = get(&store, "k").await.unwrap().unwrap();
    assert_eq!(common::header(&m, "x-tag"), Some("before"));
    assert_eq!(b.unwrap(), b"visible");
    // The store goes on working once the queue has drained.
    store.run_pending_tasks().await.unwrap();
    put(&store, "k2", "v", &body(3, 100_000), 30_000, None)
        .await
        .unwrap();
    assert_eq!(
        get(&store, "k2").await.unwrap().unwrap().1.unwrap(),
        body(3, 100_000)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_written_keeps_a_writer_within_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let store = FjallStore::builder(dir.path())
        .write_queue_bytes(1 << 20)
        .open()
        .unwrap();
    let data = body(9, 16 << 20);
    let mut w = store.begin("big").unwrap();
    for (i, c) in data.chunks(256 * 1024).enumerate() {
        w.append(Bytes::copy_from_slice(c)).unwrap();
        if i % 4 == 3 {
            w.wait_written().await;
        }
    }
    assert_eq!(w.len(), 16 << 20);
    w.commit(meta("big", &data), None).await.unwrap();
    assert_eq!(get(&store, "big").await.unwrap().unwrap().1.unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_appends_are_stored_in_full_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let store = FjallStore::open(dir.path()).unwrap();
    let data = body(5, 200_000);
    put(&store, "tiny", "t", &data, 100, None).await.unwrap();
    let mut b = store.get("tiny").await.unwrap().unwrap().body;
    let mut frames = Vec::new();
    while let Some(f) = b.frame().await {
        frames.push(f.unwrap().into_data().unwrap());
    }
    let sizes: Vec<usize> = frames.iter().map(Bytes::len).collect();
    assert_eq!(
        sizes,
        [CHUNK_SIZE, CHUNK_SIZE, CHUNK_SIZE, 200_000 - 3 * CHUNK_SIZE]
    );
    assert_eq!(frames.concat(), data);
    assert!(b.is_end_stream());
}

/// Writers dropped before commit, commits refused, entries overwritten, deleted, expired and
/// evicted (some while being read): afterwards the database holds exactly the chunks of the
/// visible entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_but_visible_entries_stays_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let store = FjallStore::builder(dir.path())
        .budget_bytes(4 << 20)
        .max_object_size(1 << 20)
        .open()
        .unwrap();
    let mut expected = std::collections::BTreeMap::new();
    for i in 0..40u64 {
        let key = format!("k{}", i % 10);
        let data = body(i, (i as usize * 37_000) % 900_000 + 1);
        match i % 5 {
            0 => {
                // Dropped before commit.
                let mut w = store.begin(&key).unwrap();
                w.append(Bytes::from(data)).unwrap();
                drop(w);
            }
            1 => {
                // A commit future dropped before it ran.
                let mut w = store.begin(&key).unwrap();
                w.append(Bytes::from(data)).unwrap();
                drop(w.commit(meta("never", b""), None));
            }
            2 => {
                // Too large.
                let mut w = store.begin(&key).unwrap();
                w.append(Bytes::from(data)).unwrap();
                let _ = w.append(Bytes::from(vec![0; 1 << 20]));
                assert!(w.commit(meta("never", b""), None).await.is_err());
            }
            _ => {
                put(&store, &key, "v", &data, 50_000, None).await.unwrap();
                expected.insert(key, data.len());
            }
        }
    }
    // A hit that outlives the overwrite, delete and eviction of its entry.
    put(&store, "read", "r", &body(99, 700_000), 70_000, None)
        .await
        .unwrap();
    let hit = store.get("read").await.unwrap().unwrap();
    put(&store, "read", "r2", &body(98, 10), 10, None)
        .await
        .unwrap();
    store.delete("read").await.unwrap();
    store.delete("k1").await.unwrap();
    expected.remove("k1");
    // Push everything older out of the budget.
    for i in 0..8 {
        put(
            &store,
            &format!("new{i}"),
            "n",
            &body(200 + i, 500_000),
            100_000,
            None,
        )
        .await
        .unwrap();
    }
    store.run_pending_tasks().await.unwrap();
    let got = hit.body.collect().await.unwrap().to_bytes();
    assert_eq!(got, body(99, 700_000), "a hit lost its chunks");
    let mut visible_chunks = 0;
    for key in expected
        .keys()
        .cloned()
        .chain((0..8).map(|i| format!("new{i}")))
    {
        if let Some((m, b)) = get(&store, &key).await.unwrap() {
            let b = b.unwrap();
            assert_eq!(
                common::header(&m, "x-len"),
                Some(b.len().to_string().as_str())
            );
            visible_chunks += chunk_count(b.len());
        }
    }
    assert!(visible_chunks > 0);
    store.run_pending_tasks().await.unwrap();
    drop(store);
    let on_disk: u32 = chunks_on_disk(dir.path()).values().sum();
    assert_eq!(on_disk, visible_chunks, "chunks left behind");
}

/// Chunks of a write that a crash interrupted are deleted when the store is opened again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orphaned_chunks_are_collected_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = FjallStore::open(dir.path()).unwrap();
    put(&store, "a", "a", &body(1, 200_000), 200_000, None)
        .await
        .unwrap();
    put(&store, "b", "b", &body(2, 10), 10, None).await.unwrap();
    drop(store);
    let live = chunks_on_disk(dir.path());
    assert_eq!(live.values().sum::<u32>(), chunk_count(200_000) + 1);
    {
        // What a crash in the middle of two writes leaves: chunks of generations no record
        // names, below and above the live ones.
        let db = fjall::Database::builder(dir.path().join("db"))
            .open()
            .unwrap();
        let chunks = db
            .keyspace("chunks", fjall::KeyspaceCreateOptions::default)
            .unwrap();
        for (gen_id, n) in [(0u64, 3u32), (*live.keys().next().unwrap() + 100, 5)] {
            for i in 0..n {
                let mut key = gen_id.to_be_bytes().to_vec();
                key.extend_from_slice(&i.to_be_bytes());
                chunks.insert(key, vec![1u8; 2000]).unwrap();
            }
        }
        db.persist(fjall::PersistMode::SyncAll).unwrap();
    }
    assert_eq!(
        chunks_on_disk(dir.path()).values().sum::<u32>(),
        chunk_count(200_000) + 1 + 8
    );
    let store = FjallStore::open(dir.path()).unwrap();
    store.run_pending_tasks().await.unwrap();
    // New generations do not collide with the orphaned ones.
    put(&store, "c", "c", &body(3, 5), 5, None).await.unwrap();
    assert_eq!(
        get(&store, "a").await.unwrap().unwrap().1.unwrap(),
        body(1, 200_000)
    );
    drop(store);
    assert_eq!(
        chunks_on_disk(dir.path()).values().sum::<u32>(),
        chunk_count(200_000) + 2
    );
}

#[test]
fn the_public_types_are_send_sync_and_unpin() {
    fn store<T: Send + Sync + Clone + 'static>() {}
    fn body<T: http_body::Body<Data = Bytes> + Send + Unpin + 'static>() {}
    fn writer<T: Send + 'static>() {}
    store::<FjallStore>();
    body::<cachio_fjall::FjallBody>();
    writer::<cachio_fjall::FjallWriter>();
    store::<cachio_fjall::FjallStoreBuilder>();
}
