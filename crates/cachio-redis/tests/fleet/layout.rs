//! What the store leaves in Redis: key names under the prefix, one hash tag per entry, expiry
//! from the `ttl`, replaced and abandoned chunks cleaned up, integrity checks, prefix isolation.

use crate::support;

use std::time::Duration;

use bytes::Bytes;
use cachio_core::store::{Store, StoreWriter};
use cachio_redis::{CHUNK_SIZE, RedisStore};
use support::server::{self, RedisServer};
use support::{body, for_checks, get, meta, put};

fn store_on(server: &RedisServer, prefix: &str) -> RedisStore {
    for_checks(RedisStore::builder(server.url()).prefix(prefix))
        .retired_grace(Duration::from_millis(300))
        .build()
        .unwrap()
}

/// Every key under `prefix`, sorted.
fn keys(server: &RedisServer, prefix: &str) -> Vec<String> {
    let mut k: Vec<String> = server
        .cli(&["--scan", "--pattern", &format!("{{{prefix}:*")])
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect();
    k.sort();
    k
}

fn pttl(server: &RedisServer, key: &str) -> i64 {
    server.cli(&["PTTL", key]).parse().unwrap()
}

fn chunk_keys(keys: &[String]) -> Vec<&String> {
    keys.iter().filter(|k| k.contains("}:c:")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_share_a_hash_tag_and_expire_with_the_ttl() {
    let server = server::shared();
    let store = store_on(server, "layout-ttl");
    let big = body(1, 3 * CHUNK_SIZE + 100);
    put(
        &store,
        "https://a/big",
        "big",
        &big,
        10_000,
        Some(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    let all = keys(server, "layout-ttl");
    let record = store.record_key("https://a/big");
    assert!(all.contains(&record), "{all:?}");
    assert_eq!(chunk_keys(&all).len(), 4, "{all:?}");
    let tag = &record[..record.find('}').unwrap() + 1];
    for k in &all {
        assert!(k.starts_with(tag), "{k} outside the entry's hash tag {tag}");
        let t = pttl(server, k);
        assert!((59_000..=60_000).contains(&t), "PTTL of {k}: {t}");
    }
    // A body that fits one chunk lives inside its record.
    put(
        &store,
        "https://a/small",
        "small",
        b"tiny",
        4,
        Some(Duration::from_secs(30)),
    )
    .await
    .unwrap();
    let small = store.record_key("https://a/small");
    assert!((29_000..=30_000).contains(&pttl(server, &small)));
    assert_eq!(keys(server, "layout-ttl").len(), all.len() + 1);

    // No ttl: no expiry; an update sets a new one on the record and its chunks.
    put(&store, "https://a/big", "forever", &big, 65_536, None)
        .await
        .unwrap();
    let all = keys(server, "layout-ttl");
    let live: Vec<&String> = chunk_keys(&all)
        .into_iter()
        .filter(|k| pttl(server, k) == -1)
        .collect();
    assert_eq!(live.len(), 4, "{all:?}");
    assert_eq!(pttl(server, &record), -1);
    assert!(
        store
            .update(
                "https://a/big",
                &meta("forever"),
                meta("updated"),
                Some(Duration::from_secs(20))
            )
            .await
            .unwrap()
    );
    assert!((19_000..=20_000).contains(&pttl(server, &record)));
    for k in &live {
        assert!((19_000..=20_000).contains(&pttl(server, k)), "{k}");
    }
    let (tag, got) = get(&store, "https://a/big").await.unwrap().unwrap();
    assert_eq!(tag, "updated");
    assert_eq!(got.unwrap(), big);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_is_gone_when_its_ttl_has_passed() {
    let server = server::shared();
    let store = store_on(server, "layout-expire");
    put(
        &store,
        "k",
        "t",
        &body(2, 200_000),
        50_000,
        Some(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    put(
        &store,
        "s",
        "t",
        b"small",
        5,
        Some(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    assert!(get(&store, "k").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert!(get(&store, "k").await.unwrap().is_none());
    assert!(get(&store, "s").await.unwrap().is_none());
    assert_eq!(keys(server, "layout-expire"), Vec::<String>::new());
    // A ttl of zero stores nothing, and removes what was there.
    put(&store, "z", "t", b"x", 1, None).await.unwrap();
    put(
        &store,
        "z",
        "t",
        &body(3, 100_000),
        30_000,
        Some(Duration::ZERO),
    )
    .await
    .unwrap();
    assert!(get(&store, "z").await.unwrap().is_none());
    assert!(
        !store
            .update("z", &meta("t"), meta("t"), Some(Duration::from_secs(1)))
            .await
            .unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replaced_deleted_and_abandoned_chunks_go() {
    let server = server::shared();
    let store = store_on(server, "layout-retire");
    let one = body(4, 2 * CHUNK_SIZE + 1);
    let two = body(5, 2 * CHUNK_SIZE + 2);
    put(&store, "k", "one", &one, 70_000, None).await.unwrap();
    let first = keys(server, "layout-retire");
    put(&store, "k", "two", &two, 70_000, None).await.unwrap();
    // The old generation's chunks now expire within the grace.
    for k in chunk_keys(&first) {
        let t = pttl(server, k);
        assert!((0..=300).contains(&t), "old chunk {k}: PTTL {t}");
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let now = keys(server, "layout-retire");
    assert_eq!(chunk_keys(&now).len(), 3, "{now:?}");
    assert_eq!(get(&store, "k").await.unwrap().unwrap().1.unwrap(), two);

    // A writer dropped after writing chunks deletes them.
    let mut w = store.begin("abandoned").unwrap();
    for _ in 0..3 {
        w.append(Bytes::from(vec![9u8; CHUNK_SIZE])).unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(w);
    support::eventually("the abandoned chunks are deleted", 5, || async {
        chunk_keys(&keys(server, "layout-retire")).len() == 3
    })
    .await;
    assert!(get(&store, "abandoned").await.unwrap().is_none());

    store.delete("k").await.unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    // Only the key's fence stays, which orders the delete with commits still to come.
    let fence = store.record_key("k").replace("}:m", "}:p");
    assert_eq!(keys(server, "layout-retire"), vec![fence.clone()]);
    let ttl: i64 = server.cli(&["PTTL", &fence]).trim().parse().unwrap();
    assert!(ttl > 0 && ttl <= 3_600_000, "the fence expires: {ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_bytes_are_an_error_or_a_miss_never_wrong_bytes() {
    let server = server::shared();
    let store = store_on(server, "layout-corrupt");
    let big = body(6, 3 * CHUNK_SIZE);
    put(&store, "chunked", "t", &big, CHUNK_SIZE, None)
        .await
        .unwrap();
    let chunk = chunk_keys(&keys(server, "layout-corrupt"))
        .into_iter()
        .find(|k| k.ends_with(":1"))
        .unwrap()
        .clone();
    assert_eq!(server.cli(&["SETRANGE", &chunk, "100", "garbage"]), "65536");
    let (_, got) = get(&store, "chunked").await.unwrap().unwrap();
    let e = got.unwrap_err();
    assert_eq!(e.kind(), cachio_core::store::ErrorKind::Corrupt, "{e}");
    // The entry is removed.
    support::eventually("the corrupt entry is removed", 5, || async {
        get(&store, "chunked").await.unwrap().is_none()
    })
    .await;

    put(&store, "inline", "t", b"a small body", 100, None)
        .await
        .unwrap();
    let record = store.record_key("inline");
    server.cli(&["SETRANGE", &record, "40", "X"]);
    assert!(get(&store, "inline").await.unwrap().is_none());
    assert!(store.stats().corrupt >= 2);

    // A chunk evicted by Redis makes the entry a miss (and removes it).
    put(&store, "evicted", "t", &big, CHUNK_SIZE, None)
        .await
        .unwrap();
    let victim = chunk_keys(&keys(server, "layout-corrupt"))
        .into_iter()
        .find(|k| k.ends_with(":2"))
        .unwrap()
        .clone();
    server.cli(&["DEL", &victim]);
    assert!(get(&store, "evicted").await.unwrap().is_none());
    assert_eq!(server.cli(&["EXISTS", &store.record_key("evicted")]), "0");

    // A record copied under another key's name (as a hash collision would) is not served.
    put(&store, "a", "t", b"body of a", 100, None)
        .await
        .unwrap();
    server.cli(&["COPY", &store.record_key("a"), &store.record_key("b")]);
    assert!(get(&store, "b").await.unwrap().is_none());
    assert!(get(&store, "a").await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefixes_never_see_each_other() {
    let server = server::shared();
    let a = store_on(server, "iso");
    let ab = store_on(server, "iso:b");
    put(&a, "k", "a", b"from a", 100, None).await.unwrap();
    put(&ab, "k", "ab", b"from a:b", 100, None).await.unwrap();
    assert_eq!(get(&a, "k").await.unwrap().unwrap().1.unwrap(), b"from a");
    assert_eq!(a.purge(|_, _| true).await.unwrap(), 1);
    assert!(get(&a, "k").await.unwrap().is_none());
    assert_eq!(
        get(&ab, "k").await.unwrap().unwrap().1.unwrap(),
        b"from a:b"
    );
}
