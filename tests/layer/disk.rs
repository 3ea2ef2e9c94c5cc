//! The layer over the embedded store (memory in front of a disk directory), through a real hyper
//! origin: what the disk keeps across a restart, what moves between the tiers, and the storage
//! behaviour every backend must show, run on the tiered store.

use crate::support;

use std::path::Path;

use bytes::Bytes;
use cachio::{CacheLayer, Embedded, EmbeddedStore, Store};
use hyper_util::client::legacy::Client as LegacyClient;
use hyper_util::rt::TokioExecutor;
use support::{Client, Harness, Seen, ok, reply};
use tempfile::TempDir;
use tower::ServiceBuilder;

/// A memory tier of 4 MiB (bodies up to 512 KiB) in front of a disk budget of 64 MiB (bodies up
/// to 8 MiB, which the disk store's default write queue takes whole).
fn open(dir: &Path) -> EmbeddedStore {
    Embedded::builder(dir)
        .memory_bytes(4 << 20)
        .disk_bytes(64 << 20)
        .open()
        .expect("the store opens")
}

/// A private cache over the embedded store in `dir`, in front of an origin answering with
/// `handler`.
async fn start<H>(dir: &TempDir, handler: H) -> Harness<EmbeddedStore>
where
    H: Fn(&Seen) -> support::Reply + Send + Sync + 'static,
{
    Harness::with(CacheLayer::private(open(dir.path())), handler).await
}

/// Simulates a restart of the program: drops the cache (and with it both tiers, which closes
/// the directory), opens the directory again with an empty memory tier, and puts a new cache in
/// front of the same origin, on the same clock.
fn restart(h: Harness<EmbeddedStore>, dir: &TempDir) -> Harness<EmbeddedStore> {
    let Harness { origin, clock, svc } = h;
    drop(svc);
    let client: Client = LegacyClient::builder(TokioExecutor::new()).build_http();
    let svc = ServiceBuilder::new()
        .layer(CacheLayer::private(open(dir.path())).clock(clock.clone()))
        .service(client);
    Harness { origin, clock, svc }
}

/// The store behind the cache.
fn store(h: &Harness<EmbeddedStore>) -> &EmbeddedStore {
    h.svc.store()
}

/// Whether each tier holds an entry under the key of `path` (memory, disk).
async fn tiers(h: &Harness<EmbeddedStore>, path: &str) -> (bool, bool) {
    let key = h.url(path);
    let memory = store(h).first().get(&key).await.expect("memory get");
    let disk = store(h).second().get(&key).await.expect("disk get");
    (memory.is_some(), disk.is_some())
}

/// The value of `name` in the stored metadata of `path`, in the memory and the disk tier.
async fn stored_header(h: &Harness<EmbeddedStore>, path: &str, name: &str) -> [Option<String>; 2] {
    let key = h.url(path);
    let value = |meta: &cachio::core::Meta| {
        meta.as_response()
            .and_then(|m| m.headers().get(name))
            .map(|v| v.to_str().expect("ASCII").to_owned())
    };
    let memory = store(h).first().get(&key).await.expect("memory get");
    let disk = store(h).second().get(&key).await.expect("disk get");
    [
        memory.and_then(|hit| value(&hit.meta)),
        disk.and_then(|hit| value(&hit.meta)),
    ]
}

/// Every GET is fresh for 100 s and numbered; other methods get a 204.
fn numbered(s: &Seen) -> support::Reply {
    if s.method == "GET" {
        reply(200)
            .cc("max-age=100")
            .body(format!("{} #{}", s.path(), s.n))
    } else {
        reply(204)
    }
}

#[tokio::test]
async fn a_hit_after_restart_reaches_no_origin() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(&dir, numbered).await;
    let first = h.get("/a").await;
    assert!(
        first.cache_status().ends_with("stored"),
        "{}",
        first.cache_status()
    );
    assert_eq!(first.text(), "/a #1");

    let h = restart(h, &dir);
    assert_eq!(
        tiers(&h, "/a").await,
        (false, true),
        "only the disk keeps entries"
    );
    let again = h.get("/a").await;
    assert!(again.is_hit(), "{}", again.cache_status());
    assert_eq!(again.text(), "/a #1");
    h.advance(30);
    let later = h.get("/a").await;
    assert!(later.is_hit(), "{}", later.cache_status());
    assert_eq!(later.age(), Some(30));
    assert_eq!(h.count(), 1, "the restarted cache asked the origin");
}

#[tokio::test]
async fn a_disk_hit_is_promoted_to_memory() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(&dir, numbered).await;
    h.get("/a").await;
    let h = restart(h, &dir);
    assert_eq!(tiers(&h, "/a").await, (false, true));

    // Served from disk, and copied into memory as it streams.
    assert!(h.get("/a").await.is_hit());
    assert_eq!(tiers(&h, "/a").await, (true, true), "not promoted");

    // With the disk copy gone, memory answers on its own.
    let key = h.url("/a");
    store(&h).second().delete(&key).await.unwrap();
    let from_memory = h.get("/a").await;
    assert!(from_memory.is_hit(), "{}", from_memory.cache_status());
    assert_eq!(from_memory.text(), "/a #1");
    assert_eq!(h.count(), 1);
}

#[tokio::test]
async fn a_304_updates_both_tiers() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(&dir, |s| {
        if s.header("if-none-match") == Some("\"v1\"") {
            reply(304)
                .cc("max-age=100")
                .header("etag", "\"v1\"")
                .header("x-version", "2")
        } else {
            ok("the body")
                .cc("max-age=10")
                .header("etag", "\"v1\"")
                .header("x-version", "1")
        }
    })
    .await;
    h.get("/r").await;
    assert_eq!(
        stored_header(&h, "/r", "x-version").await,
        [Some("1".to_owned()), Some("1".to_owned())]
    );

    h.advance(20);
    let revalidated = h.get("/r").await;
    assert!(
        revalidated.cache_status().contains("fwd-status=304"),
        "{}",
        revalidated.cache_status()
    );
    assert_eq!(revalidated.header("x-version"), Some("2"));
    assert_eq!(revalidated.text(), "the body");
    assert!(h.origin.last().is_conditional());
    assert_eq!(
        stored_header(&h, "/r", "x-version").await,
        [Some("2".to_owned()), Some("2".to_owned())],
        "(memory, disk) after the 304"
    );

    // The disk kept the update: fresh again for 100 s, with the new header field.
    let h = restart(h, &dir);
    let hit = h.get("/r").await;
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert_eq!(hit.header("x-version"), Some("2"));
    assert_eq!(hit.text(), "the body");
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn invalidation_reaches_both_tiers() {
    let dir = tempfile::tempdir().unwrap();
    let h = start(&dir, numbered).await;
    h.get("/r").await;
    h.get("/other").await;
    assert_eq!(tiers(&h, "/r").await, (true, true));

    let post = h.send(h.req("/r").method("POST")).await;
    assert_eq!(post.status, 204);
    assert_eq!(
        tiers(&h, "/r").await,
        (false, false),
        "(memory, disk) after POST"
    );
    assert_eq!(
        tiers(&h, "/other").await,
        (true, true),
        "another URI was invalidated"
    );

    let h = restart(h, &dir);
    let after = h.get("/r").await;
    assert!(!after.is_hit(), "{}", after.cache_status());
    assert_eq!(after.text(), "/r #4");
    assert!(h.get("/other").await.is_hit());
}

#[tokio::test]
async fn a_body_over_the_memory_limit_lives_on_disk_only() {
    const LEN: usize = 3 << 20;
    let body: Bytes = (0..LEN)
        .map(|i| (i % 251) as u8)
        .collect::<Vec<u8>>()
        .into();
    let dir = tempfile::tempdir().unwrap();
    let served = body.clone();
    let h = start(&dir, move |_| {
        let body = served.clone();
        reply(200).cc("max-age=100").stream(move |feed| async move {
            for chunk in body.chunks(64 << 10) {
                if !feed.send(body.slice_ref(chunk)).await {
                    return;
                }
            }
        })
    })
    .await;
    assert!(store(&h).first().max_body_size() < Some(LEN as u64));

    let first = h.get("/big").await;
    assert!(
        first.cache_status().ends_with("stored"),
        "{}",
        first.cache_status()
    );
    assert!(first.body == body, "the body passed through changed");
    assert_eq!(tiers(&h, "/big").await, (false, true), "(memory, disk)");

    let hit = h.get("/big").await;
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert!(hit.body == body, "the body read from disk differs");
    assert_eq!(
        tiers(&h, "/big").await,
        (false, true),
        "promoted past the limit"
    );

    let h = restart(h, &dir);
    let hit = h.get("/big").await;
    assert!(hit.is_hit(), "{}", hit.cache_status());
    assert!(hit.body == body, "the body read after a restart differs");
    assert_eq!(h.count(), 1);
}

/// The storage behaviour every backend must show, on the tiered store: a memory tier of 8 MiB
/// (bodies up to 1 MiB, so the 8 MiB bodies of the checks go to disk only) in front of a disk
/// budget of 64 MiB, in a fresh directory per check.
mod storage {
    use cachio::{Embedded, EmbeddedStore};
    use tempfile::TempDir;

    fn store(dir: &TempDir) -> EmbeddedStore {
        Embedded::builder(dir.path())
            .memory_bytes(8 << 20)
            .disk_bytes(64 << 20)
            .open()
            .unwrap()
    }

    // Each check gets a directory of its own, a temporary of the statement that awaits the check:
    // it is deleted when the check ends, after the store.
    cachio_storage_tests::behaviours! {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        |_| store(&tempfile::tempdir().unwrap())
    }
}

/// A body the origin sends faster than the disk store writes it is still stored: the tee waits
/// for the store (its writer is not ready while its queue is full) instead of the store giving up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_faster_than_the_disk_is_stored_at_the_disk_pace() {
    const CHUNK: usize = 64 * 1024;
    const CHUNKS: usize = 512; // 32 MiB, 32 times the write queue below
    let dir = tempfile::tempdir().expect("temp dir");
    let disk = cachio::DiskStore::builder(dir.path())
        .budget_bytes(256 << 20)
        .write_queue_bytes(1 << 20)
        .open()
        .expect("the disk store opens");
    let layer = CacheLayer::private(disk).max_object_size(64 << 20);
    let h = Harness::with(layer, |_| {
        ok("").cc("max-age=600").stream(|feed| async move {
            let block = Bytes::from(vec![b'z'; CHUNK]);
            for _ in 0..CHUNKS {
                if !feed.send(block.clone()).await {
                    return;
                }
            }
        })
    })
    .await;
    let first = h.get("/big").await;
    assert_eq!(first.body.len(), CHUNK * CHUNKS);
    assert!(
        first.cache_status().contains("stored"),
        "{}",
        first.cache_status()
    );
    let second = h.get("/big").await;
    assert!(
        second.is_hit(),
        "the body was not stored: {}",
        second.cache_status()
    );
    assert_eq!(second.body.len(), CHUNK * CHUNKS);
    assert!(second.body.iter().all(|b| *b == b'z'));
    assert_eq!(h.count(), 1);
}
