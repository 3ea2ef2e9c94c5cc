//! An in-memory [`Store`] for cachio on [`moka::future::Cache`].
//!
//! [`MokaStore`] keeps each entry as its metadata and the body's [`Bytes`] chunks exactly as they
//! arrived: a hit is one hash-map lookup and a few reference-count increments, and its body
//! ([`MokaBody`]) hands out the stored chunks without copying a byte.
//!
//! # Admission: TinyLFU, not plain LRU
//!
//! A plain LRU cache admits every new entry and evicts whatever was used least recently. One scan
//! over many URLs that are each requested once (a crawler, a backup job, a burst of unique
//! query strings) then pushes the whole hot set out of the cache, to be replaced by entries that
//! will never be read again.
//!
//! moka's default policy, which this store keeps, is TinyLFU: it tracks how often keys were asked
//! for (hits and misses alike) in a small count-min sketch, and when the cache is full a new entry
//! is admitted only if its key has been more popular than the entry it would evict. A key seen
//! once loses against a key read a hundred times, so a scan of one-off URLs cannot flush the hot
//! set; a key that is truly becoming popular wins admission after a few requests. Within the
//! cache, entries are kept in LRU order (window and main segments), so recency still counts.
//!
//! A consequence: when the cache is full, a freshly committed entry may be visible for a moment
//! and then dropped at the next maintenance run because it lost the admission contest. The
//! [`Store`] contract allows this (a store may drop an entry early to make room).
//!
//! Keys are hashed with aHash, keyed at random when the store is built: as hard for clients to
//! make collide as the standard SipHash, and several times quicker on keys of URL length.
//!
//! # Weighing in bytes
//!
//! Capacity is a number of bytes, not of entries. Each entry weighs
//!
//! ```text
//! key length + Meta::weight() + body length + 32 bytes per body chunk + ENTRY_OVERHEAD
//! ```
//!
//! where [`Meta::weight`] estimates the stored header fields and [`ENTRY_OVERHEAD`] covers moka's
//! node, the reference counts and the allocations around them. moka weighs an entry with a `u32`,
//! so a weight above `u32::MAX` saturates; bodies are limited well below that anyway.
//!
//! The entries get the capacity less the budget of [kept header maps](#kept-header-maps):
//! [`MokaStore::weighted_size`] stays within `max_capacity_bytes - header_map_budget`.
//!
//! A body larger than a share of the capacity is not stored at all ([`ErrorKind::TooLarge`] from
//! [`StoreWriter::append`] as soon as the running total passes it): one huge response would evict
//! hundreds of small ones. The default share is [`DEFAULT_MAX_OBJECT_SHARE`] (1/8).
//!
//! # Kept header maps
//!
//! An entry keeps its header lines packed in one buffer (`cachio_core::backend::Fields`, about 10
//! bytes of table and the name and value bytes per line), so that a hundred thousand small
//! responses do not take a hundred thousand `HeaderMap`s (about 140 bytes per line). A hit must
//! still answer with a `HeaderMap`, and building one from the packed lines (hashing and inserting
//! each name, checking each value's bytes, allocating the map) costs about as much as the rest of
//! the hit together.
//!
//! So the first [`Store::get`] of an entry builds the map a hit serves (its lines, then an `Age`
//! and a `Cache-Status` line to fill in) and keeps it with the entry's head
//! (`cachio_core::backend::served::keep_headers`); every later hit clones it, which is what a service answering
//! from a prebuilt response pays, and sets the two values in place. The maps of entries that are
//! never read are never built.
//!
//! The maps are bounded: [`MokaStoreBuilder::header_map_share`] of the capacity
//! ([`DEFAULT_HEADER_MAP_SHARE`], 1/16, by default) is set aside for them, and the entries get
//! the rest. A map's bytes (an estimate of its allocations, [`MokaStore::header_map_bytes`]) are
//! counted when it is kept and given back when its head is dropped: when the entry is replaced,
//! updated by a 304, deleted, expired or evicted, and the responses served from it are done. Over
//! the budget, hits build their map each time, as they do with a share of zero. The entries
//! first read win the room: a map is not moved to an entry that becomes hot later, it waits for
//! room to be given back.
//!
//! The trade-off: a store whose entries are read once or never gives up the share for nothing;
//! a store with a hot set (the usual case) answers hits on its first entries read with fewer
//! instructions (see the README's benchmark section for the figures).
//!
//! # Hot reads
//!
//! A read through moka records itself for TinyLFU and reads moka's clock: about as much work as
//! the rest of a cache hit together. So an entry that keeps its header map is also put in a hot
//! index beside moka, a sharded hash table of the entries' handles; its later hits are one hash
//! lookup, without a lock. moka still decides what stays: a hot entry's first reads are all
//! recorded with it, then one in 32, and an entry leaves the index as it leaves moka
//! (replaced, updated, deleted, expired or evicted), never to be served after. Each indexed entry
//! counts about 250 bytes and its key's length against the header-map budget; a share of zero
//! indexes nothing.
//!
//! # Expiry
//!
//! Each entry expires after the `ttl` given to [`StoreWriter::commit`] or [`Store::update`]; `None`
//! means it stays until evicted to make room. A `ttl` of zero stores nothing and removes the entry
//! under the key.
//!
//! The store checks the expiry itself when it reads an entry (an expired entry is a miss and is
//! removed then) instead of giving moka a per-entry expiry: moka would keep a timer-wheel node for
//! every entry and call back on every read. Expiry times are read from the store's clock
//! ([`MokaStoreBuilder::clock`]): its [monotonic](cachio_core::clock::Clock::monotonic) reading,
//! which for the default [`SystemClock`] is the kernel's coarse monotonic clock, so an entry may
//! outlive its TTL by a few milliseconds and a hit does not pay for a precise reading. The price:
//! an expired entry that is never read again keeps its room until TinyLFU evicts it to make room
//! for others, so [`MokaStore::entry_count`] and [`MokaStore::weighted_size`] include such
//! entries, and [`MokaStore::evictions`] counts them when they go. The capacity is never exceeded
//! either way.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use std::time::{Duration, SystemTime};
//!
//! use bytes::Bytes;
//! use cachio_core::meta::{Meta, ResponseMeta};
//! use cachio_core::store::{Store, StoreWriter};
//! use cachio_moka::MokaStore;
//! use http_body_util::BodyExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = MokaStore::builder()
//!     .max_capacity_bytes(256 << 20)
//!     .max_object_share(0.05)
//!     .build();
//!
//! let now = SystemTime::now();
//! let meta = Arc::new(Meta::Response(ResponseMeta::new(
//!     http::StatusCode::OK,
//!     http::Version::HTTP_11,
//!     http::HeaderMap::new(),
//!     Vec::new(),
//!     now,
//!     now,
//! )));
//! let mut writer = store.begin("https://example.com/")?;
//! writer.append(Bytes::from_static(b"hello "))?;
//! writer.append(Bytes::from_static(b"world"))?;
//! writer.commit(meta, Some(Duration::from_secs(60))).await?;
//!
//! let hit = store.get("https://example.com/").await?.expect("just committed");
//! assert_eq!(hit.meta.as_response().unwrap().status(), http::StatusCode::OK);
//! assert_eq!(hit.body.collect().await?.to_bytes(), "hello world");
//! # Ok(())
//! # }
//! ```

mod body;
mod engine;
mod entry;
mod hot;
mod writer;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use cachio_core::backend::KeyLocks;
use cachio_core::backend::served::MapBudget;
use cachio_core::clock::{Clock, SystemClock};
use cachio_core::meta::Meta;
use cachio_core::store::{Hit, Store, StoreError};
use moka::future::Cache;
use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;
#[cfg(doc)]
use {
    bytes::Bytes,
    cachio_core::store::{ErrorKind, StoreWriter},
};

pub use body::MokaBody;
use engine::{Shared, WRITE_LOCKS};
use entry::{MemEntry, weigh};
use hot::HotIndex;
pub use writer::MokaWriter;

/// The capacity of a store built without [`MokaStoreBuilder::max_capacity_bytes`]: 64 MiB.
pub const DEFAULT_MAX_CAPACITY_BYTES: u64 = 64 << 20;

/// The share of the capacity one body may take unless configured otherwise: 1/8.
///
/// Large enough for typical pages, images and API responses in a cache of tens of megabytes; small
/// enough that one body never evicts more than an eighth of the cache.
pub const DEFAULT_MAX_OBJECT_SHARE: f64 = 0.125;

/// The share of the capacity kept for the header maps of entries that are hit, unless configured
/// otherwise: 1/16 (see [Kept header maps](crate#kept-header-maps)).
pub const DEFAULT_HEADER_MAP_SHARE: f64 = 0.0625;

/// The fixed weight, in bytes, added to every entry for the bookkeeping around it: moka's node and
/// its deques (about 380 bytes), the key's copy, the shared handles a first hit gives the body and
/// the header buffer, and the allocator's rounding. Measured with `cargo bench --bench memory`:
/// the weights then match the growth of the resident set within a few percent.
pub const ENTRY_OVERHEAD: u64 = 408;

/// An in-memory [`Store`] on [`moka::future::Cache`]: weighed in bytes, TinyLFU admission,
/// per-entry expiry, zero-copy hits. See the [crate] documentation.
///
/// Cloning is cheap (one `Arc`); clones share the same entries.
///
/// # Example
///
/// ```
/// use cachio_core::store::Store;
/// use cachio_moka::MokaStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = MokaStore::new(32 << 20);
/// assert_eq!(store.max_capacity_bytes(), 32 << 20);
/// assert_eq!(store.max_body_size(), Some(4 << 20)); // 1/8 of the capacity
/// assert!(store.get("https://example.com/").await.unwrap().is_none());
/// # }
/// ```
#[derive(Clone)]
pub struct MokaStore {
    shared: Arc<Shared>,
}

impl MokaStore {
    /// A store of `capacity_bytes` with the default body limit ([`DEFAULT_MAX_OBJECT_SHARE`] of
    /// the capacity).
    #[must_use]
    pub fn new(capacity_bytes: u64) -> Self {
        Self::builder().max_capacity_bytes(capacity_bytes).build()
    }

    /// A builder with the defaults: [`DEFAULT_MAX_CAPACITY_BYTES`] and
    /// [`DEFAULT_MAX_OBJECT_SHARE`].
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_core::store::Store;
    /// use cachio_moka::MokaStore;
    ///
    /// let store = MokaStore::builder().max_capacity_bytes(1 << 30).max_body_size(10 << 20).build();
    /// assert_eq!(store.max_body_size(), Some(10 << 20));
    /// ```
    pub fn builder() -> MokaStoreBuilder {
        MokaStoreBuilder::default()
    }

    /// The capacity, in bytes: the entries and the [kept header maps](crate#kept-header-maps)
    /// together.
    ///
    /// # Example
    ///
    /// ```
    /// assert_eq!(cachio_moka::MokaStore::new(1 << 20).max_capacity_bytes(), 1 << 20);
    /// ```
    pub fn max_capacity_bytes(&self) -> u64 {
        self.shared.capacity
    }

    /// The total weight of the entries, in bytes (see the [crate] documentation for how entries
    /// are weighed).
    ///
    /// Like [`entry_count`](Self::entry_count) this is an estimate that lags behind writes; call
    /// [`run_pending_tasks`](Self::run_pending_tasks) first for an up-to-date figure.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let store = cachio_moka::MokaStore::new(1 << 20);
    /// store.run_pending_tasks().await;
    /// assert_eq!(store.weighted_size(), 0);
    /// # }
    /// ```
    pub fn weighted_size(&self) -> u64 {
        self.shared.cache.weighted_size()
    }

    /// The number of entries (an estimate, see [`weighted_size`](Self::weighted_size)).
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let store = cachio_moka::MokaStore::new(1 << 20);
    /// store.run_pending_tasks().await;
    /// assert_eq!(store.entry_count(), 0);
    /// # }
    /// ```
    pub fn entry_count(&self) -> u64 {
        self.shared.cache.entry_count()
    }

    /// Runs moka's pending maintenance now: admission and eviction of recent writes, removal of
    /// expired entries. moka does this on its own as the cache is used; call it before reading
    /// [`weighted_size`](Self::weighted_size) or [`entry_count`](Self::entry_count) in tests.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let store = cachio_moka::MokaStore::new(1 << 20);
    /// store.run_pending_tasks().await;
    /// # }
    /// ```
    pub async fn run_pending_tasks(&self) {
        self.shared.cache.run_pending_tasks().await;
    }

    /// How many entries were evicted to make room for others (or refused admission after their
    /// commit), since the store was built. Expired, replaced and deleted entries do not count.
    ///
    /// Like [`entry_count`](Self::entry_count) this lags behind writes until moka's maintenance
    /// runs; call [`run_pending_tasks`](Self::run_pending_tasks) first in tests.
    ///
    /// # Example
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let store = cachio_moka::MokaStore::new(1 << 20);
    /// store.run_pending_tasks().await;
    /// assert_eq!(store.evictions(), 0);
    /// # }
    /// ```
    pub fn evictions(&self) -> u64 {
        self.shared.evictions.load(Ordering::Relaxed)
    }
}

impl MokaStore {
    /// The bytes kept for the header maps of entries that are hit (see
    /// [Kept header maps](crate#kept-header-maps)); zero when none are kept.
    ///
    /// # Example
    ///
    /// ```
    /// let store = cachio_moka::MokaStore::new(16 << 20);
    /// assert_eq!(store.header_map_budget(), 1 << 20); // 1/16 of the capacity
    /// ```
    pub fn header_map_budget(&self) -> u64 {
        self.shared.maps.as_ref().map_or(0, MapBudget::limit)
    }

    /// The bytes the header maps kept now take (at most
    /// [`header_map_budget`](Self::header_map_budget)). A map goes, and its bytes with it, when
    /// its entry has left the store and the last response served from it is done.
    ///
    /// # Example
    ///
    /// ```
    /// assert_eq!(cachio_moka::MokaStore::new(1 << 20).header_map_bytes(), 0);
    /// ```
    pub fn header_map_bytes(&self) -> u64 {
        self.shared.maps.as_ref().map_or(0, MapBudget::used)
    }
}

impl fmt::Debug for MokaStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MokaStore")
            .field("max_capacity_bytes", &self.shared.capacity)
            .field("max_body_size", &self.shared.max_body)
            .field("weighted_size", &self.weighted_size())
            .field("entry_count", &self.entry_count())
            .finish()
    }
}

impl Store for MokaStore {
    type Body = MokaBody;
    type Writer = MokaWriter;

    async fn get(&self, key: &str) -> Result<Option<Hit<MokaBody>>, StoreError> {
        match self.shared.read_hot(key) {
            Ok(hit) => Ok(Some(hit)),
            Err(ticket) => self.shared.read_cold(key, ticket).await,
        }
    }

    /// Answers from the [hot index](crate#hot-reads) at once, or else polls the moka read once.
    /// That read waits only when it runs moka's upkeep and another task holds the upkeep lock;
    /// the read is recorded after that, and moka keeps an upkeep that was interrupted for the
    /// next caller, so dropping a read that waited changes nothing a later `get` sees.
    #[inline]
    fn try_get(&self, key: &str) -> Option<Result<Option<Hit<MokaBody>>, StoreError>> {
        let ticket = match self.shared.read_hot(key) {
            Ok(hit) => return Some(Ok(Some(hit))),
            Err(ticket) => ticket,
        };
        let read = std::pin::pin!(self.shared.read_cold(key, ticket));
        match read.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        }
    }

    fn begin(&self, key: &str) -> Result<MokaWriter, StoreError> {
        Ok(MokaWriter::new(self.clone(), key))
    }

    async fn update(
        &self,
        key: &str,
        previous: &Meta,
        meta: Arc<Meta>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let _write = self.shared.writes.lock(key).await;
        let Some(old) = self.shared.cache.get(key).await else {
            return Ok(false);
        };
        let updated = if !old.meta.same_as(previous) {
            // Another entry was written under the key since `previous` was read.
            return Ok(false);
        } else if ttl == Some(Duration::ZERO) {
            self.shared.cache.invalidate(key).await;
            true
        } else if self.shared.expired(&old) {
            // An expired entry is no longer there to update.
            self.shared.cache.invalidate(key).await;
            false
        } else {
            let entry = MemEntry {
                meta,
                chunks: old.chunks,
                expires: self.shared.deadline(ttl),
            };
            self.shared.cache.insert(key.to_owned(), entry).await;
            true
        };
        self.shared.hot.remove(key);
        Ok(updated)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.shared.set(key, None).await;
        Ok(())
    }

    fn max_body_size(&self) -> Option<u64> {
        Some(self.shared.max_body)
    }

    async fn purge<F>(&self, matches: F) -> Result<u64, StoreError>
    where
        F: Fn(&str, &Meta) -> bool + Send + Sync + 'static,
    {
        let doomed: Vec<Arc<String>> = self
            .shared
            .cache
            .iter()
            // Each entry's metadata is shown as a copy, so that a predicate that reads
            // `ResponseMeta::headers` builds that map in the copy, not in the stored entry (which
            // would then take more memory than it was weighed at).
            .filter(|(key, entry)| matches(key, &Meta::clone(&entry.meta)))
            .map(|(key, _)| key)
            .collect();
        for key in &doomed {
            self.shared.set(key, None).await;
        }
        Ok(doomed.len() as u64)
    }
}

/// Builds a [`MokaStore`]. Made by [`MokaStore::builder`].
///
/// # Example
///
/// ```
/// use cachio_core::store::Store;
/// use cachio_moka::MokaStore;
///
/// let store = MokaStore::builder()
///     .max_capacity_bytes(512 << 20)
///     .max_object_share(0.01)
///     .build();
/// assert_eq!(store.max_capacity_bytes(), 512 << 20);
/// assert_eq!(store.max_body_size(), Some((512u64 << 20) / 100));
/// ```
#[derive(Clone)]
#[must_use]
pub struct MokaStoreBuilder {
    capacity: u64,
    limit: BodyLimit,
    map_share: f64,
    clock: Arc<dyn Clock>,
}

impl fmt::Debug for MokaStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MokaStoreBuilder")
            .field("capacity", &self.capacity)
            .field("limit", &self.limit)
            .field("map_share", &self.map_share)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, Debug)]
enum BodyLimit {
    Share(f64),
    Bytes(u64),
}

impl Default for MokaStoreBuilder {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_MAX_CAPACITY_BYTES,
            limit: BodyLimit::Share(DEFAULT_MAX_OBJECT_SHARE),
            map_share: DEFAULT_HEADER_MAP_SHARE,
            clock: Arc::new(SystemClock),
        }
    }
}

impl MokaStoreBuilder {
    /// Sets the capacity in bytes (default [`DEFAULT_MAX_CAPACITY_BYTES`]).
    pub fn max_capacity_bytes(self, bytes: u64) -> Self {
        Self {
            capacity: bytes,
            ..self
        }
    }

    /// Limits one body to `share` of the capacity (default [`DEFAULT_MAX_OBJECT_SHARE`]).
    /// Replaces a limit set with [`max_body_size`](Self::max_body_size).
    ///
    /// # Panics
    ///
    /// When `share` is not in `(0, 1]`.
    pub fn max_object_share(self, share: f64) -> Self {
        assert!(
            share > 0.0 && share <= 1.0,
            "max_object_share must be in (0, 1], got {share}"
        );
        Self {
            limit: BodyLimit::Share(share),
            ..self
        }
    }

    /// Limits one body to `bytes`, whatever the capacity. Replaces a limit set with
    /// [`max_object_share`](Self::max_object_share). The limit is still capped at the capacity
    /// (a larger body could never be kept) and at `u32::MAX` bytes (moka's largest weight).
    pub fn max_body_size(self, bytes: u64) -> Self {
        Self {
            limit: BodyLimit::Bytes(bytes),
            ..self
        }
    }

    /// Keeps `share` of the capacity for the header maps of entries that are hit (default
    /// [`DEFAULT_HEADER_MAP_SHARE`]); the entries themselves get the rest. Zero keeps no map:
    /// every hit builds its map from the packed fields. See
    /// [Kept header maps](crate#kept-header-maps).
    ///
    /// # Panics
    ///
    /// When `share` is not in `[0, 1)`.
    ///
    /// # Example
    ///
    /// ```
    /// let store = cachio_moka::MokaStore::builder()
    ///     .max_capacity_bytes(1 << 20)
    ///     .header_map_share(0.25)
    ///     .build();
    /// assert_eq!(store.header_map_budget(), 1 << 18);
    /// ```
    pub fn header_map_share(self, share: f64) -> Self {
        assert!(
            (0.0..1.0).contains(&share),
            "header_map_share must be in [0, 1), got {share}"
        );
        Self {
            map_share: share,
            ..self
        }
    }

    /// The clock entries expire by: its [monotonic](Clock::monotonic) reading ([`SystemClock`] by
    /// default). Give the store the clock the cache layer reads, so that a test that moves a
    /// [`ManualClock`](cachio_core::clock::ManualClock) moves both.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    ///
    /// use cachio_core::clock::ManualClock;
    /// use cachio_core::store::{Store, StoreWriter};
    /// use cachio_moka::MokaStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let clock = ManualClock::new(SystemTime::now());
    /// let store = MokaStore::builder().clock(clock.clone()).build();
    /// let meta = cachio_storage_tests::sample_meta("v");
    /// let writer = store.begin("k").unwrap();
    /// writer.commit(meta, Some(Duration::from_secs(60))).await.unwrap();
    /// assert!(store.get("k").await.unwrap().is_some());
    /// clock.advance(Duration::from_secs(60));
    /// assert!(store.get("k").await.unwrap().is_none());
    /// # }
    /// ```
    pub fn clock<C: Clock>(self, clock: C) -> Self {
        Self {
            clock: Arc::new(clock),
            ..self
        }
    }

    /// Builds the store.
    pub fn build(self) -> MokaStore {
        let map_budget = (self.capacity as f64 * self.map_share) as u64;
        let entries = self.capacity - map_budget;
        let max_body = match self.limit {
            // Exact in integers for the common shares of capacities below 2^53.
            BodyLimit::Share(share) => (self.capacity as f64 * share) as u64,
            BodyLimit::Bytes(bytes) => bytes,
        }
        .min(entries)
        .min(u64::from(u32::MAX));
        let evictions = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&evictions);
        let hot = Arc::new(HotIndex::new());
        let index = Arc::clone(&hot);
        let cache = Cache::builder()
            .max_capacity(entries)
            .weigher(|key: &String, entry: &MemEntry| weigh(key, entry))
            .eviction_policy(EvictionPolicy::tiny_lfu())
            .eviction_listener(move |key: Arc<String>, entry: MemEntry, cause| {
                if cause == RemovalCause::Size {
                    counter.fetch_add(1, Ordering::Relaxed);
                }
                index.remove_entry(&key, &entry.meta);
            })
            .build_with_hasher(ahash::RandomState::new());
        MokaStore {
            shared: Arc::new(Shared {
                cache,
                capacity: self.capacity,
                max_body,
                maps: (map_budget > 0).then(|| MapBudget::new(map_budget)),
                evictions,
                hot,
                writes: KeyLocks::new(WRITE_LOCKS),
                clock: self.clock,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use cachio_core::store::StoreWriter;

    use super::*;

    #[tokio::test]
    async fn evictions_count_entries_removed_for_room_only() {
        let store = MokaStore::builder()
            .max_capacity_bytes(64 << 10)
            .max_object_share(1.0)
            .build();
        for i in 0..40 {
            let mut w = store.begin(&format!("k{i}")).unwrap();
            w.append(Bytes::from(vec![0u8; 4096])).unwrap();
            w.commit(cachio_storage_tests::sample_meta("e"), None)
                .await
                .unwrap();
            store.run_pending_tasks().await;
        }
        let evicted = store.evictions();
        assert!(evicted > 0, "a full store evicts");
        assert_eq!(evicted + store.entry_count(), 40);
        let mut present = None;
        for i in 0..40 {
            if store.get(&format!("k{i}")).await.unwrap().is_some() {
                present = Some(format!("k{i}"));
                break;
            }
        }
        store.delete(&present.unwrap()).await.unwrap();
        store.run_pending_tasks().await;
        assert_eq!(
            store.evictions(),
            evicted,
            "a deleted entry is not an eviction"
        );
    }
}
