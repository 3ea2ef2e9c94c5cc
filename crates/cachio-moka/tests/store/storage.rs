//! The storage behaviour every backend must show, and what is particular to the moka store.

use cachio_core::backend::served::{hit_headers, keeps_headers};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cachio_core::clock::ManualClock;
use cachio_core::store::{ErrorKind, Store, StoreWriter};
use cachio_moka::MokaStore;
use cachio_storage_tests as behaviour;
use cachio_storage_tests::sample_meta;
use http_body::Body;
use http_body_util::BodyExt;

/// Large enough for every shared check (an 8 MiB body within the default 1/8 share).
fn store() -> MokaStore {
    MokaStore::new(256 << 20)
}

cachio_storage_tests::behaviours! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    |_| store()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_all() {
    behaviour::run_all(store).await;
}

async fn put(store: &MokaStore, key: &str, chunks: &[Bytes], ttl: Option<Duration>) {
    let mut w = store.begin(key).unwrap();
    for c in chunks {
        w.append(c.clone()).unwrap();
    }
    w.commit(sample_meta(key), ttl).await.unwrap();
}

#[tokio::test]
async fn entries_expire_after_their_ttl() {
    let clock = ManualClock::new(SystemTime::now());
    let store = MokaStore::builder()
        .max_capacity_bytes(256 << 20)
        .clock(clock.clone())
        .build();
    put(
        &store,
        "short",
        &[Bytes::from_static(b"s")],
        Some(Duration::from_millis(200)),
    )
    .await;
    put(&store, "forever", &[Bytes::from_static(b"f")], None).await;
    put(
        &store,
        "extended",
        &[Bytes::from_static(b"e")],
        Some(Duration::from_millis(200)),
    )
    .await;
    assert!(
        store
            .update(
                "extended",
                &sample_meta("extended"),
                sample_meta("extended"),
                None
            )
            .await
            .unwrap()
    );
    assert!(store.get("short").await.unwrap().is_some());

    clock.advance(Duration::from_millis(199));
    assert!(
        store.get("short").await.unwrap().is_some(),
        "an entry expired before its ttl"
    );
    clock.advance(Duration::from_millis(1));
    assert!(
        store.get("short").await.unwrap().is_none(),
        "an entry outlived its ttl"
    );
    assert!(
        store.get("forever").await.unwrap().is_some(),
        "an entry without ttl expired"
    );
    assert!(
        store.get("extended").await.unwrap().is_some(),
        "update did not replace the ttl"
    );
    // (moka purges expired entries on a timer wheel of about a second per slot, so
    // `entry_count` may still include the expired one: `get` never returns it.)

    // An update can also shorten the ttl.
    assert!(
        store
            .update(
                "forever",
                &sample_meta("forever"),
                sample_meta("forever"),
                Some(Duration::from_millis(50))
            )
            .await
            .unwrap()
    );
    clock.advance(Duration::from_millis(50));
    assert!(
        store.get("forever").await.unwrap().is_none(),
        "update did not shorten the ttl"
    );
}

#[tokio::test]
async fn a_zero_ttl_stores_nothing() {
    let store = store();
    put(&store, "k", &[Bytes::from_static(b"old")], None).await;
    put(
        &store,
        "k",
        &[Bytes::from_static(b"new")],
        Some(Duration::ZERO),
    )
    .await;
    assert!(store.get("k").await.unwrap().is_none());

    put(&store, "k", &[Bytes::from_static(b"old")], None).await;
    assert!(
        store
            .update(
                "k",
                &sample_meta("k"),
                sample_meta("k"),
                Some(Duration::ZERO)
            )
            .await
            .unwrap()
    );
    assert!(store.get("k").await.unwrap().is_none());
}

#[tokio::test]
async fn capacity_is_honoured_in_bytes() {
    const CAPACITY: u64 = 1 << 20;
    let store = MokaStore::new(CAPACITY);
    let body = Bytes::from(vec![0u8; 16 * 1024]);
    // 16 MiB of bodies into a 1 MiB store.
    for i in 0..1024 {
        put(
            &store,
            &format!("https://example.com/{i}"),
            std::slice::from_ref(&body),
            None,
        )
        .await;
    }
    store.run_pending_tasks().await;
    let size = store.weighted_size();
    assert!(
        size <= CAPACITY,
        "weighted size {size} above the capacity {CAPACITY}"
    );
    // Each entry weighs at least its body, so at most 64 can be left.
    let count = store.entry_count();
    assert!(count > 0 && count <= 64, "{count} entries left");
    assert!(
        size >= count * 16 * 1024,
        "weighted size {size} below the bodies of {count} entries"
    );
}

#[tokio::test]
async fn a_scan_does_not_flush_the_hot_set() {
    const CAPACITY: u64 = 1 << 20;
    let store = MokaStore::new(CAPACITY);
    let body = Bytes::from(vec![0u8; 8 * 1024]);
    for i in 0..32 {
        put(
            &store,
            &format!("hot/{i}"),
            std::slice::from_ref(&body),
            None,
        )
        .await;
    }
    for _ in 0..20 {
        for i in 0..32 {
            assert!(store.get(&format!("hot/{i}")).await.unwrap().is_some());
        }
    }
    store.run_pending_tasks().await;
    for i in 0..2000 {
        put(
            &store,
            &format!("scan/{i}"),
            std::slice::from_ref(&body),
            None,
        )
        .await;
    }
    store.run_pending_tasks().await;
    let mut kept = 0;
    for i in 0..32 {
        kept += usize::from(store.get(&format!("hot/{i}")).await.unwrap().is_some());
    }
    assert!(
        kept >= 28,
        "a scan of one-off keys evicted {} of 32 hot entries",
        32 - kept
    );
}

#[tokio::test]
async fn a_body_over_the_share_is_too_large() {
    let store = MokaStore::new(1 << 20);
    assert_eq!(
        store.max_body_size(),
        Some(128 * 1024),
        "default share is 1/8"
    );

    let mut w = store.begin("big").unwrap();
    w.append(Bytes::from(vec![1; 100 * 1024])).unwrap();
    w.append(Bytes::from(vec![2; 28 * 1024])).unwrap(); // exactly the limit
    let e = w.append(Bytes::from_static(b"x")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge);
    // Stays refused, also at commit.
    assert_eq!(
        w.append(Bytes::new()).unwrap_err().kind(),
        ErrorKind::TooLarge
    );
    let e = w.commit(sample_meta("big"), None).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::TooLarge);
    assert!(store.get("big").await.unwrap().is_none());
}

#[tokio::test]
async fn body_limit_settings() {
    let s = MokaStore::builder()
        .max_capacity_bytes(1000)
        .max_object_share(0.5)
        .build();
    assert_eq!(s.max_body_size(), Some(500));
    let s = MokaStore::builder()
        .max_capacity_bytes(1000)
        .max_body_size(10)
        .build();
    assert_eq!(s.max_body_size(), Some(10));
    // Capped at the capacity of the entries (the capacity less the header maps' budget).
    let s = MokaStore::builder()
        .max_capacity_bytes(1000)
        .max_body_size(5000)
        .build();
    assert_eq!(s.max_body_size(), Some(1000 - s.header_map_budget()));
    let s = MokaStore::builder()
        .max_capacity_bytes(1000)
        .max_body_size(5000)
        .header_map_share(0.0)
        .build();
    assert_eq!(s.max_body_size(), Some(1000));
    // The last setting wins.
    let s = MokaStore::builder()
        .max_body_size(10)
        .max_object_share(1.0)
        .max_capacity_bytes(64)
        .build();
    assert_eq!(s.max_body_size(), Some(64 - s.header_map_budget()));
    let s = MokaStore::builder().build();
    assert_eq!(
        s.max_capacity_bytes(),
        cachio_moka::DEFAULT_MAX_CAPACITY_BYTES
    );
    assert_eq!(
        s.max_body_size(),
        Some(cachio_moka::DEFAULT_MAX_CAPACITY_BYTES / 8)
    );
}

#[test]
#[should_panic(expected = "max_object_share")]
fn a_share_above_one_panics() {
    let _ = MokaStore::builder().max_object_share(1.5);
}

#[test]
#[should_panic(expected = "max_object_share")]
fn a_nan_share_panics() {
    let _ = MokaStore::builder().max_object_share(f64::NAN);
}

#[tokio::test]
async fn hits_share_the_stored_bytes() {
    let store = store();
    // Stored in pieces of 64 KiB: the first chunk whole, the other two together.
    let chunks = [
        Bytes::from(vec![1u8; 64 * 1024]),
        Bytes::from(vec![2u8; 8 * 1024]),
        Bytes::from(vec![3u8; 5000]),
    ];
    put(&store, "zc", &chunks, None).await;
    let mut seen: Option<Vec<(usize, usize)>> = None;
    for _ in 0..2 {
        let mut body = store.get("zc").await.unwrap().unwrap().body;
        assert_eq!(body.size_hint().exact(), Some(64 * 1024 + 8 * 1024 + 5000));
        let mut pieces = Vec::new();
        let mut bytes = Vec::new();
        for _ in 0..2 {
            assert!(!body.is_end_stream());
            let data = body.frame().await.unwrap().unwrap().into_data().unwrap();
            pieces.push((data.as_ptr() as usize, data.len()));
            bytes.extend_from_slice(&data);
        }
        assert_eq!(bytes, chunks.concat());
        assert_eq!(pieces[1].1, 8 * 1024 + 5000);
        // Every hit serves the same stored pieces: nothing is copied on the way out.
        assert_eq!(*seen.get_or_insert(pieces.clone()), pieces);
        assert!(body.is_end_stream(), "no end after the last chunk");
        assert_eq!(body.size_hint().exact(), Some(0));
        assert!(body.frame().await.is_none());
    }

    // A chunk is copied once, at commit, so it does not keep alive the (often much larger)
    // buffer it is a slice of; hits then share that copy.
    let buffer = Bytes::from(vec![9u8; 8192]);
    let one = buffer.slice(..4);
    put(&store, "one", std::slice::from_ref(&one), None).await;
    let first = store
        .get("one")
        .await
        .unwrap()
        .unwrap()
        .body
        .frame()
        .await
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(first, one);
    assert_ne!(
        first.as_ptr(),
        one.as_ptr(),
        "a short slice was stored as is"
    );
    let again = store
        .get("one")
        .await
        .unwrap()
        .unwrap()
        .body
        .frame()
        .await
        .unwrap()
        .unwrap()
        .into_data()
        .unwrap();
    assert_eq!(again.as_ptr(), first.as_ptr(), "hits copy the stored chunk");
}

#[tokio::test]
async fn tiny_chunks_are_served_in_few_frames() {
    let store = store();
    let chunks: Vec<Bytes> = (0..1000u32)
        .map(|i| Bytes::from(i.to_be_bytes().to_vec()))
        .collect();
    put(&store, "tiny", &chunks, None).await;
    let mut body = store.get("tiny").await.unwrap().unwrap().body;
    let mut frames = 0;
    let mut got = Vec::new();
    while let Some(frame) = body.frame().await {
        frames += 1;
        got.extend_from_slice(&frame.unwrap().into_data().unwrap());
    }
    assert_eq!(frames, 1);
    assert_eq!(got, chunks.concat());
}

#[tokio::test]
async fn empty_body_is_at_its_end_at_once() {
    let store = store();
    put(&store, "e", &[], None).await;
    let body = store.get("e").await.unwrap().unwrap().body;
    assert!(body.is_end_stream());
    assert_eq!(body.size_hint().exact(), Some(0));
    assert!(body.collect().await.unwrap().to_bytes().is_empty());
}

#[tokio::test]
async fn update_keeps_the_same_body_bytes() {
    let store = store();
    let chunk = Bytes::from(vec![9u8; 10_000]);
    put(&store, "u", std::slice::from_ref(&chunk), None).await;
    let before = store.get("u").await.unwrap().unwrap();
    let stored = before.body.collect().await.unwrap().to_bytes();
    let meta = sample_meta("updated");
    assert!(
        store
            .update("u", &sample_meta("u"), meta.clone(), None)
            .await
            .unwrap()
    );
    let hit = store.get("u").await.unwrap().unwrap();
    assert!(Arc::ptr_eq(&hit.meta, &meta));
    let data = hit.body.collect().await.unwrap().to_bytes();
    assert_eq!(data, chunk);
    assert_eq!(data.as_ptr(), stored.as_ptr());
}

#[test]
fn clones_share_entries_and_types_are_send_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<MokaStore>();
    assert_send_sync::<cachio_moka::MokaBody>();
    fn assert_send<T: Send + 'static>() {}
    assert_send::<cachio_moka::MokaWriter>();

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let a = store();
        let b = a.clone();
        put(&a, "k", &[Bytes::from_static(b"v")], None).await;
        assert!(b.get("k").await.unwrap().is_some());
    });
}

fn version(hit: &cachio_core::store::Hit<cachio_moka::MokaBody>) -> Vec<u8> {
    let head = hit.meta.as_response().unwrap();
    hit_headers(
        head,
        http::HeaderValue::from_static("0"),
        http::HeaderValue::from_static("t"),
    )["x-tag"]
        .as_bytes()
        .to_vec()
}

#[tokio::test]
async fn kept_header_maps_stay_within_their_budget_and_leave_with_their_entries() {
    let store = MokaStore::builder()
        .max_capacity_bytes(1 << 20)
        .header_map_share(1.0 / 64.0)
        .build();
    let budget = store.header_map_budget();
    assert_eq!(budget, 16 << 10);
    let body = Bytes::from_static(b"x");
    for i in 0..100 {
        put(&store, &format!("k{i}"), std::slice::from_ref(&body), None).await;
    }
    store.run_pending_tasks().await;
    assert!(store.weighted_size() <= (1 << 20) - budget);
    let mut kept = 0;
    for i in 0..100 {
        let hit = store.get(&format!("k{i}")).await.unwrap().unwrap();
        kept += u64::from(keeps_headers(hit.meta.as_response().unwrap()));
        assert!(store.header_map_bytes() <= budget);
    }
    assert!(kept > 0 && kept < 100, "{kept} maps kept");
    let used = store.header_map_bytes();
    assert!(used > budget / 2, "{used} of {budget}");

    // A replaced entry gives its map back and never serves it.
    let mut hot = None;
    for i in 0..100 {
        let key = format!("k{i}");
        let hit = store.get(&key).await.unwrap().unwrap();
        if keeps_headers(hit.meta.as_response().unwrap()) {
            hot = Some(key);
            break;
        }
    }
    let hot = hot.unwrap();
    let before = version(&store.get(&hot).await.unwrap().unwrap());
    let mut w = store.begin(&hot).unwrap();
    w.append(body.clone()).unwrap();
    w.commit(sample_meta("replaced"), None).await.unwrap();
    store.run_pending_tasks().await;
    assert!(store.header_map_bytes() < used);
    let after = version(&store.get(&hot).await.unwrap().unwrap());
    assert_ne!(before, after);
    assert_eq!(after, b"replaced");

    // So does an updated one (a 304 merge).
    store
        .update(&hot, &sample_meta("replaced"), sample_meta("updated"), None)
        .await
        .unwrap();
    assert_eq!(
        version(&store.get(&hot).await.unwrap().unwrap()),
        b"updated"
    );

    // Every map goes with its entry.
    for i in 0..100 {
        store.delete(&format!("k{i}")).await.unwrap();
    }
    store.run_pending_tasks().await;
    assert_eq!(store.header_map_bytes(), 0);
}

#[tokio::test]
async fn a_zero_header_map_share_keeps_no_map() {
    let store = MokaStore::builder().header_map_share(0.0).build();
    assert_eq!(store.header_map_budget(), 0);
    put(&store, "k", &[Bytes::from_static(b"x")], None).await;
    for _ in 0..2 {
        let hit = store.get("k").await.unwrap().unwrap();
        assert!(!keeps_headers(hit.meta.as_response().unwrap()));
    }
    assert_eq!(store.header_map_bytes(), 0);
}
