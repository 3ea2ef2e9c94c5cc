//! Helpers shared by the integration tests.
#![allow(dead_code, reason = "each test file uses a part of the helpers")]

pub mod server;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cachio_core::meta::{Meta, ResponseMeta};
use cachio_core::store::{Store, StoreError, StoreWriter};
use cachio_redis::{RedisStore, RedisStoreBuilder};
use http::{HeaderMap, HeaderValue, StatusCode, Version};

/// The settings the behaviour checks need: a generous timeout (debug builds on a busy machine),
/// 8 MiB bodies that fit the write queue even when appended without a pause, and no clock-skew
/// allowance (the tests and Redis share one clock), so that an entry requested just after a
/// delete of its key is stored.
pub fn for_checks(b: RedisStoreBuilder) -> RedisStoreBuilder {
    b.timeout(Duration::from_secs(2))
        .clock_skew(Duration::ZERO)
        .max_object_size(8 << 20)
        .write_queue_bytes(32 << 20)
}

/// A store on the shared single server with a prefix of its own.
pub fn single(name: &str) -> RedisStore {
    for_checks(RedisStore::builder(server::shared().url()).prefix(server::unique_prefix(name)))
        .build()
        .unwrap()
}

/// A store on the shared cluster with a prefix of its own.
pub fn cluster(name: &str) -> RedisStore {
    for_checks(
        RedisStore::cluster_builder(server::shared_cluster().urls())
            .prefix(server::unique_prefix(name)),
    )
    .build()
    .unwrap()
}

/// Response metadata carrying `tag` in `x-tag`.
pub fn meta(tag: &str) -> Arc<Meta> {
    meta_requested(tag, UNIX_EPOCH + Duration::from_secs(1_700_000_000))
}

/// Response metadata carrying `tag` in `x-tag`, for a request made at `t`.
pub fn meta_requested(tag: &str, t: SystemTime) -> Arc<Meta> {
    let mut h = HeaderMap::new();
    h.insert("x-tag", HeaderValue::from_str(tag).unwrap());
    Arc::new(Meta::Response(ResponseMeta::new(
        StatusCode::OK,
        Version::HTTP_11,
        h,
        Vec::new(),
        t,
        t,
    )))
}

pub fn tag(meta: &Meta) -> Option<String> {
    Some(
        meta.as_response()?
            .headers()
            .get("x-tag")?
            .to_str()
            .ok()?
            .to_owned(),
    )
}

/// Writes `body` under `key` in appends of `piece` bytes.
pub async fn put<S: Store>(
    store: &S,
    key: &str,
    tag: &str,
    body: &[u8],
    piece: usize,
    ttl: Option<Duration>,
) -> Result<(), StoreError> {
    let mut w = store.begin(key)?;
    for c in body.chunks(piece.max(1)) {
        w.append(Bytes::copy_from_slice(c))?;
    }
    w.commit(meta(tag), ttl).await
}

/// Reads the entry under `key`: its tag and body (or the error the body ended with).
pub async fn get<S: Store>(
    store: &S,
    key: &str,
) -> Result<Option<(String, Result<Vec<u8>, StoreError>)>, StoreError> {
    match store.get(key).await? {
        None => Ok(None),
        Some(hit) => {
            let body = cachio_storage_tests::read_body(hit.body).await;
            Ok(Some((tag(&hit.meta).unwrap_or_default(), body)))
        }
    }
}

/// `n` bytes that differ with `seed`.
pub fn body(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Polls `cond` until it holds; panics after `secs` seconds.
pub async fn eventually<F, Fut>(what: &str, secs: u64, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !cond().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
