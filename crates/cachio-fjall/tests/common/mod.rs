//! Helpers shared by the integration tests.
#![allow(dead_code, reason = "each test file uses a different part")]

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use cachio_core::meta::{Meta, ResponseMeta};
use cachio_core::store::{Store, StoreError, StoreWriter};
use cachio_fjall::FjallStore;
use http::{HeaderMap, HeaderValue, StatusCode, Version};

/// Response metadata carrying `tag`, and the length and CRC-32 of the body it goes with.
pub fn meta(tag: &str, body: &[u8]) -> Arc<Meta> {
    let mut h = HeaderMap::new();
    h.insert("x-tag", HeaderValue::from_str(tag).unwrap());
    h.insert("x-len", HeaderValue::from(body.len() as u64));
    h.insert("x-crc", HeaderValue::from(crc32fast::hash(body)));
    let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    Arc::new(Meta::Response(ResponseMeta::new(
        StatusCode::OK,
        Version::HTTP_11,
        h,
        Vec::new(),
        t,
        t,
    )))
}

pub fn header<'a>(meta: &'a Meta, name: &str) -> Option<&'a str> {
    meta.as_response()?.headers().get(name)?.to_str().ok()
}

/// Writes `body` under `key` in chunks of `chunk` bytes.
pub async fn put(
    store: &FjallStore,
    key: &str,
    tag: &str,
    body: &[u8],
    chunk: usize,
    ttl: Option<Duration>,
) -> Result<(), StoreError> {
    let mut w = store.begin(key)?;
    for c in body.chunks(chunk.max(1)) {
        w.append(Bytes::copy_from_slice(c))?;
    }
    w.commit(meta(tag, body), ttl).await
}

/// Reads the entry under `key`: `None` for a miss, else its metadata and its body (or the error
/// the body ended with).
pub async fn get(
    store: &FjallStore,
    key: &str,
) -> Result<Option<(Arc<Meta>, Result<Vec<u8>, StoreError>)>, StoreError> {
    match store.get(key).await? {
        None => Ok(None),
        Some(hit) => {
            let body = cachio_storage_tests::read_body(hit.body).await;
            Ok(Some((hit.meta, body)))
        }
    }
}

/// The body of `n` bytes the tests write under `seed`.
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

/// The bytes the files under `dir` take.
pub fn du(dir: &Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        total += if m.is_dir() {
            du(&e.path())
        } else {
            std::os::unix::fs::MetadataExt::blocks(&m) * 512
        };
    }
    total
}

/// A small random number generator for the tests, seeded from the clock unless `seed` is set.
pub struct Rng(pub u64);

impl Rng {
    pub fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64;
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The chunks in the store's database at `dir` (which must be closed), per generation.
pub fn chunks_on_disk(dir: &Path) -> std::collections::BTreeMap<u64, u32> {
    let db = fjall::Database::builder(dir.join("db")).open().unwrap();
    let chunks = db
        .keyspace("chunks", fjall::KeyspaceCreateOptions::default)
        .unwrap();
    let mut out = std::collections::BTreeMap::new();
    for guard in chunks.iter() {
        let key = guard.key().unwrap();
        let gen_id = u64::from_be_bytes(key[..8].try_into().unwrap());
        *out.entry(gen_id).or_default() += 1;
    }
    out
}

/// How many chunks a body of `len` bytes takes.
pub fn chunk_count(len: usize) -> u32 {
    len.div_ceil(cachio_fjall::CHUNK_SIZE) as u32
}
