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
    let mut out = Vec::with_capacity(n + 8);
    // Eight bytes a step: the budget tests write gigabytes in an unoptimised build.
    while out.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(n);
    out
}

/// The bytes the files under `dir` take. Files removed while it looks are passed over (it
/// runs while the store writes, compacts and deletes files).
pub fn du(dir: &Path) -> u64 {
    let mut total = 0;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    for e in entries.flatten() {
        let Ok(m) = e.metadata() else { continue };
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

/// The blocks allocated under `dir`, by kind: the path below `dir` with the file names and
/// numbers left out (`db/keyspaces/#/blobs`, `db` for the journals, ...).
pub fn du_by_kind(dir: &Path, out: &mut std::collections::BTreeMap<String, u64>, at: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(m) = e.metadata() else { continue };
        let name = e.file_name().to_string_lossy().into_owned();
        if m.is_dir() {
            let part = if name.bytes().all(|b| b.is_ascii_digit()) {
                "#".to_owned()
            } else {
                name
            };
            du_by_kind(&e.path(), out, &format!("{at}/{part}"));
        } else {
            let kind = if name.ends_with(".jnl")
                || name.bytes().all(|b| b.is_ascii_digit()) && at.ends_with("db")
            {
                format!("{at}/journal")
            } else {
                at.to_owned()
            };
            *out.entry(kind).or_default() += std::os::unix::fs::MetadataExt::blocks(&m) * 512;
        }
    }
}

/// What [`budget_load`] measured.
pub struct Load {
    /// The most blocks allocated in the directory, sampled every few milliseconds while
    /// writing.
    pub peak_du: u64,
    /// The most fjall counted, sampled likewise.
    pub peak_fjall: u64,
    /// The accounted bytes at the end.
    pub tracked: u64,
    /// Where the blocks were at the peak.
    pub at_peak: String,
    /// Commits per second.
    pub writes_per_sec: f64,
    pub writes: u64,
    /// The accounted size, averaged over the samples taken while writing.
    pub mean_tracked: u64,
}

/// Writes ten times `store`'s budget in distinct keys (bodies of `size` bytes, appended 16 KiB
/// at a time), sampling the directory's disk use from another thread all along.
pub async fn budget_load(store: &FjallStore, size: usize) -> Load {
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    let dir = store.path().to_owned();
    let stop = Arc::new(AtomicBool::new(false));
    let (peak_du, peak_fjall) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (tracked_sum, samples) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let sampler = {
        let (stop, peak_du, peak_fjall, store) = (
            Arc::clone(&stop),
            Arc::clone(&peak_du),
            Arc::clone(&peak_fjall),
            store.clone(),
        );
        let (tracked_sum, samples) = (Arc::clone(&tracked_sum), Arc::clone(&samples));
        std::thread::spawn(move || {
            let mut at_peak = String::new();
            while !stop.load(Ordering::Relaxed) {
                let mut kinds = std::collections::BTreeMap::new();
                du_by_kind(&dir, &mut kinds, "");
                let used = kinds.values().sum();
                if used > peak_du.fetch_max(used, Ordering::Relaxed) {
                    at_peak = kinds
                        .iter()
                        .map(|(k, v)| format!("{k} {:.1} MiB", *v as f64 / 1048576.0))
                        .collect::<Vec<_>>()
                        .join(", ");
                }
                if let Ok(n) = store.disk_space() {
                    peak_fjall.fetch_max(n, Ordering::Relaxed);
                }
                tracked_sum.fetch_add(store.tracked_bytes(), Ordering::Relaxed);
                samples.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
            at_peak
        })
    };
    let writes = 10 * store.budget_bytes() / size as u64;
    let started = std::time::Instant::now();
    for i in 0..writes {
        let b = body(i, size);
        put(store, &format!("load/{i}"), "load", &b, 16 * 1024, None)
            .await
            .unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    store.run_pending_tasks().await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let at_peak = sampler.join().unwrap();
    let end = du(store.path());
    Load {
        peak_du: peak_du.load(Ordering::Relaxed).max(end),
        peak_fjall: peak_fjall.load(Ordering::Relaxed),
        tracked: store.tracked_bytes(),
        at_peak,
        writes_per_sec: writes as f64 / secs,
        writes,
        mean_tracked: tracked_sum.load(Ordering::Relaxed) / samples.load(Ordering::Relaxed).max(1),
    }
}

/// The disk bound the crate documents: budget + 10% + 32 MiB.
pub fn disk_bound(budget: u64) -> u64 {
    budget + budget / 10 + (32 << 20)
}

/// Every file under `dir`, into `out`.
pub fn list(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            list(&e.path(), out);
        } else {
            out.push(e.path());
        }
    }
}

/// Copies the tree at `from` to `to`.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}
