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
//! (`ResponseMeta::keep_headers`); every later hit clones it, which is what a service answering
//! from a prebuilt response pays, and sets the two values in place. The maps of entries that are
//! never read are never built.
//!
//! The values of one map share one reference count, which every clone writes: a hot entry's hits
//! on several cores would all write that count's cache line. So a thread's first hit on an entry
//! makes it a copy of its own (one per thread, up to 8, each from its own copy of the packed
//! lines, counted against the same budget), and its later hits clone that copy.
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
//! The trade-off, with the default share: a store whose entries are read once or never gives
//! up 1/16 of its capacity for nothing; a store with a hot set (the usual case) answers a hit
//! on its first few thousand entries read with about 30% fewer instructions (a 1 KiB response
//! with 11 fields: 10 000 instead of 14 200, against 4 600 for a service answering a prebuilt
//! response). A kept map of 11 fields is counted at 1.8 KB, about what the entry itself takes.
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
//! every entry (about 48 bytes) and call back on every read. It reads a coarse monotonic clock
//! ([`cachio_core::clock::monotonic`]): an entry may outlive its TTL by a few milliseconds, and a
//! hit does not pay for a precise reading. The price: an expired entry that is
//! never read again keeps its room until TinyLFU evicts it to make room for others, so
//! [`MokaStore::entry_count`] and [`MokaStore::weighted_size`] include such entries, and
//! [`MokaStore::evictions`] counts them when they go. The capacity is never exceeded either way.
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

mod hot;

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use cachio_core::backend::KeyLocks;
use cachio_core::clock;
use cachio_core::meta::{MapBudget, Meta};
use cachio_core::store::{ErrorKind, Hit, Store, StoreError, StoreWriter};
use http_body::{Body, Frame, SizeHint};
use moka::future::Cache;
use moka::notification::RemovalCause;
use moka::policy::EvictionPolicy;

use crate::hot::HotIndex;

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

/// The weight of each body chunk's handle (a `Bytes` is four words).
const CHUNK_OVERHEAD: u64 = size_of::<Bytes>() as u64;

/// Chunks shorter than this are merged with their short neighbours at commit.
const SMALL_CHUNK: usize = 4 * 1024;

/// Merged runs of short chunks stop growing at this size.
const MERGED_CHUNK: usize = 64 * 1024;

/// One stored entry, kept by value in moka's node (no allocation of its own): a hit clones the
/// metadata's `Arc` and the body's handle, which it needs anyway.
#[derive(Clone)]
struct MemEntry {
    meta: Arc<Meta>,
    chunks: Chunks,
    /// When the entry stops being of use, on [`clock::monotonic`]'s scale (`None`: never by time).
    expires: Option<Duration>,
}

/// A stored body: most bodies are one chunk after [`coalesce`], kept without a list around it.
#[derive(Clone)]
enum Chunks {
    One(Bytes),
    Many(Arc<[Bytes]>, u64),
}

impl Chunks {
    fn new(mut chunks: Vec<Bytes>, len: u64) -> Self {
        if chunks.len() == 1 {
            Chunks::One(chunks.pop().expect("one chunk"))
        } else {
            Chunks::Many(chunks.into(), len)
        }
    }

    fn len(&self) -> u64 {
        match self {
            Chunks::One(b) => b.len() as u64,
            Chunks::Many(_, len) => *len,
        }
    }

    fn count(&self) -> usize {
        match self {
            Chunks::One(_) => 1,
            Chunks::Many(c, _) => c.len(),
        }
    }

    fn get(&self, i: usize) -> Option<&Bytes> {
        match self {
            Chunks::One(b) => (i == 0).then_some(b),
            Chunks::Many(c, _) => c.get(i),
        }
    }
}

/// Whether `entry` is past its expiry.
fn expired(entry: &MemEntry) -> bool {
    entry.expires.is_some_and(|at| at <= clock::monotonic())
}

/// The hit that serves `entry`.
fn hit(entry: MemEntry) -> Hit<MokaBody> {
    let remaining = entry.chunks.len();
    Hit {
        meta: entry.meta,
        body: MokaBody {
            chunks: entry.chunks,
            next: 0,
            remaining,
        },
    }
}

fn deadline(ttl: Option<Duration>) -> Option<Duration> {
    // A TTL too far out to represent never expires.
    ttl.and_then(|ttl| clock::monotonic().checked_add(ttl))
}

/// Keys are hashed with aHash: several times quicker than the standard SipHash on URL-sized keys
/// (a hit hashes its key once), and keyed at random per process like it, so that keys chosen by
/// clients cannot be made to collide.
type Inner = Cache<String, MemEntry, ahash::RandomState>;

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

struct Shared {
    cache: Inner,
    capacity: u64,
    max_body: u64,
    /// The budget of the header maps kept with entries that were hit (`None`: none are kept).
    maps: Option<MapBudget>,
    /// Entries removed to make room (shared with the cache's eviction listener).
    evictions: Arc<AtomicU64>,
    /// The entries that are hit, for reads that skip moka's bookkeeping (shared with the
    /// eviction listener, which removes what moka evicts).
    hot: Arc<HotIndex>,
    /// Locks, each for a share of the keys, taken by every write of a key (commit, update,
    /// delete): an update reads the entry, then writes, and moka orders neither its inserts nor
    /// its removals with that, so a commit or a delete landing in between would be undone.
    writes: KeyLocks,
}

/// How many write locks a store has.
const WRITE_LOCKS: usize = 256;

impl Shared {
    /// Puts `entry` under `key`, or removes what is there (`None`).
    async fn set(&self, key: &str, entry: Option<MemEntry>) {
        let _write = self.writes.lock(key).await;
        match entry {
            Some(entry) => self.cache.insert(key.to_owned(), entry).await,
            None => self.cache.invalidate(key).await,
        }
        self.hot.remove(key);
    }
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

    /// Removes the entry under `key` if it is still the expired one that was read (a newer entry
    /// committed meanwhile stays).
    async fn remove_expired(&self, key: &str, meta: &Arc<Meta>) {
        let _write = self.shared.writes.lock(key).await;
        if let Some(current) = self.shared.cache.get(key).await
            && Arc::ptr_eq(&current.meta, meta)
        {
            self.shared.cache.invalidate(key).await;
        }
        self.shared.hot.remove_entry(key, meta);
    }

    /// A hit from the [hot index](crate#hot-reads), if `key` is there and has not expired;
    /// otherwise the ticket a promotion after the moka read needs.
    #[inline]
    fn read_hot(&self, key: &str) -> Result<Hit<MokaBody>, hot::Ticket> {
        let (entry, record) = self.shared.hot.get(key)?;
        if expired(&entry) {
            return Err(self.shared.hot.ticket(key));
        }
        if record {
            // Polled once, like `try_get`: a read that would wait for moka's upkeep is dropped,
            // which changes nothing but the count of reads.
            let read = std::pin::pin!(self.shared.cache.get(key));
            let _ = read.poll(&mut Context::from_waker(Waker::noop()));
        }
        Ok(hit(entry))
    }

    /// A hit read through moka; an entry that keeps its header map is then indexed as hot.
    async fn read_cold(
        &self,
        key: &str,
        ticket: hot::Ticket,
    ) -> Result<Option<Hit<MokaBody>>, StoreError> {
        let Some(entry) = self.shared.cache.get(key).await else {
            return Ok(None);
        };
        if expired(&entry) {
            // Boxed: the rare path would otherwise make every read's future (and the cache
            // layer's, which holds it) as large as a keyed computation.
            Box::pin(self.remove_expired(key, &entry.meta)).await;
            return Ok(None);
        }
        if let (Some(budget), Meta::Response(head)) = (&self.shared.maps, &*entry.meta)
            && head.keep_headers(budget)
        {
            self.shared.hot.promote(key, ticket, &entry, budget);
        }
        Ok(Some(hit(entry)))
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
        match self.read_hot(key) {
            Ok(hit) => Ok(Some(hit)),
            Err(ticket) => self.read_cold(key, ticket).await,
        }
    }

    /// Answers from the [hot index](crate#hot-reads) at once, or else polls the moka read once.
    /// That read waits only when it runs moka's upkeep and another task holds the upkeep lock;
    /// the read is recorded after that, and moka keeps an upkeep that was interrupted for the
    /// next caller, so dropping a read that waited changes nothing a later `get` sees.
    #[inline]
    fn try_get(&self, key: &str) -> Option<Result<Option<Hit<MokaBody>>, StoreError>> {
        let ticket = match self.read_hot(key) {
            Ok(hit) => return Some(Ok(Some(hit))),
            Err(ticket) => ticket,
        };
        let read = std::pin::pin!(self.read_cold(key, ticket));
        match read.poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        }
    }

    fn begin(&self, key: &str) -> Result<MokaWriter, StoreError> {
        Ok(MokaWriter {
            store: self.clone(),
            key: key.to_owned(),
            chunks: Vec::new(),
            len: 0,
            too_large: false,
        })
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
        } else if expired(&old) {
            // An expired entry is no longer there to update.
            self.shared.cache.invalidate(key).await;
            false
        } else {
            let entry = MemEntry {
                meta,
                chunks: old.chunks,
                expires: deadline(ttl),
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
#[derive(Clone, Debug)]
#[must_use]
pub struct MokaStoreBuilder {
    capacity: u64,
    limit: BodyLimit,
    map_share: f64,
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
            }),
        }
    }
}

fn weigh(key: &str, entry: &MemEntry) -> u32 {
    let weight = (key.len() as u64)
        .saturating_add(entry.meta.weight() as u64)
        .saturating_add(entry.chunks.len())
        .saturating_add(entry.chunks.count() as u64 * CHUNK_OVERHEAD)
        .saturating_add(ENTRY_OVERHEAD);
    u32::try_from(weight).unwrap_or(u32::MAX)
}

/// Writes one entry into a [`MokaStore`]: collects the body's chunks (no copy) and inserts the
/// entry at [`commit`](StoreWriter::commit). Dropping it stores nothing. Made by
/// [`Store::begin`].
///
/// # Example
///
/// ```
/// use bytes::Bytes;
/// use cachio_core::store::{ErrorKind, Store, StoreWriter};
/// use cachio_moka::MokaStore;
///
/// let store = MokaStore::builder().max_body_size(8).build();
/// let mut writer = store.begin("k").unwrap();
/// writer.append(Bytes::from_static(b"12345678")).unwrap();
/// let err = writer.append(Bytes::from_static(b"9")).unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::TooLarge);
/// ```
pub struct MokaWriter {
    store: MokaStore,
    key: String,
    chunks: Vec<Bytes>,
    len: u64,
    too_large: bool,
}

impl MokaWriter {
    fn too_large(&self) -> StoreError {
        StoreError::new(
            ErrorKind::TooLarge,
            format!(
                "body larger than the limit of {} bytes",
                self.store.shared.max_body
            ),
        )
    }
}

impl fmt::Debug for MokaWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MokaWriter")
            .field("key", &self.key)
            .field("len", &self.len)
            .field("chunks", &self.chunks.len())
            .field("too_large", &self.too_large)
            .finish()
    }
}

impl StoreWriter for MokaWriter {
    fn append(&mut self, chunk: Bytes) -> Result<(), StoreError> {
        let len = self.len.saturating_add(chunk.len() as u64);
        if self.too_large || len > self.store.shared.max_body {
            self.too_large = true;
            self.chunks = Vec::new();
            return Err(self.too_large());
        }
        self.len = len;
        if !chunk.is_empty() {
            self.chunks.push(chunk);
        }
        Ok(())
    }

    async fn commit(self, meta: Arc<Meta>, ttl: Option<Duration>) -> Result<(), StoreError> {
        if self.too_large {
            return Err(self.too_large());
        }
        if ttl == Some(Duration::ZERO) {
            self.store.shared.set(&self.key, None).await;
            return Ok(());
        }
        let entry = MemEntry {
            meta,
            chunks: Chunks::new(coalesce(self.chunks), self.len),
            expires: deadline(ttl),
        };
        self.store.shared.set(&self.key, Some(entry)).await;
        Ok(())
    }
}

/// Merges runs of short chunks into chunks of up to [`MERGED_CHUNK`] bytes, so that a body that
/// arrived in many tiny pieces is served in few frames, and copies a lone short chunk into an
/// allocation of its own: a short chunk is often a slice of a much larger read buffer (hyper's),
/// which storing the slice would keep alive whole. Chunks of [`SMALL_CHUNK`] bytes or more are
/// kept as they are (not copied).
fn coalesce(chunks: Vec<Bytes>) -> Vec<Bytes> {
    let small = |c: &Bytes| c.len() < SMALL_CHUNK;
    if !chunks.iter().any(small) {
        return chunks;
    }
    let mut out = Vec::with_capacity(chunks.len());
    let mut run: Vec<Bytes> = Vec::new();
    let mut run_len = 0;
    for chunk in chunks {
        if !small(&chunk) {
            flush(&mut out, &mut run, run_len);
            run_len = 0;
            out.push(chunk);
            continue;
        }
        if run_len + chunk.len() > MERGED_CHUNK {
            flush(&mut out, &mut run, run_len);
            run_len = 0;
        }
        run_len += chunk.len();
        run.push(chunk);
    }
    flush(&mut out, &mut run, run_len);
    out
}

fn flush(out: &mut Vec<Bytes>, run: &mut Vec<Bytes>, run_len: usize) {
    match run.len() {
        0 => {}
        1 => out.extend(run.drain(..).map(|c| Bytes::copy_from_slice(&c))),
        _ => {
            let mut merged = BytesMut::with_capacity(run_len);
            for c in run.drain(..) {
                merged.extend_from_slice(&c);
            }
            out.push(merged.freeze());
        }
    }
}

/// The body of a [`MokaStore`] hit: yields the stored chunks, each a reference-counted clone of
/// the [`Bytes`] that was committed (no copy). Its [`size_hint`](Body::size_hint) is exact.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use std::time::SystemTime;
///
/// use bytes::Bytes;
/// use cachio_core::meta::{Meta, ResponseMeta};
/// use cachio_core::store::{Store, StoreWriter};
/// use cachio_moka::MokaStore;
/// use http_body::Body;
/// use http_body_util::BodyExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = MokaStore::new(1 << 20);
/// let now = SystemTime::now();
/// let meta = Arc::new(Meta::Response(ResponseMeta::new(
///     http::StatusCode::OK,
///     http::Version::HTTP_11,
///     http::HeaderMap::new(),
///     Vec::new(),
///     now,
///     now,
/// )));
/// let chunk = Bytes::from(vec![b'x'; 10_000]);
/// let mut writer = store.begin("k").unwrap();
/// writer.append(chunk.clone()).unwrap();
/// writer.commit(meta, None).await.unwrap();
///
/// let mut body = store.get("k").await.unwrap().unwrap().body;
/// assert_eq!(body.size_hint().exact(), Some(10_000));
/// let data = body.frame().await.unwrap().unwrap().into_data().unwrap();
/// assert_eq!(data.as_ptr(), chunk.as_ptr()); // the very same bytes
/// assert!(body.is_end_stream());
/// # }
/// ```
#[derive(Clone)]
pub struct MokaBody {
    chunks: Chunks,
    next: usize,
    remaining: u64,
}

impl fmt::Debug for MokaBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MokaBody")
            .field("chunks", &self.chunks.count())
            .field("next", &self.next)
            .field("remaining", &self.remaining)
            .finish()
    }
}

impl Body for MokaBody {
    type Data = Bytes;
    type Error = StoreError;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StoreError>>> {
        let this = self.get_mut();
        let chunk = match &mut this.chunks {
            // The one chunk's handle is this body's own copy: handed out, not cloned again.
            Chunks::One(chunk) if this.next == 0 => std::mem::take(chunk),
            chunks => match chunks.get(this.next) {
                Some(chunk) => chunk.clone(),
                None => return Poll::Ready(None),
            },
        };
        this.next += 1;
        this.remaining -= chunk.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        // No chunk is empty, so no chunks left means no bytes left.
        self.next >= self.chunks.count()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(chunks: &[Bytes]) -> Vec<usize> {
        chunks.iter().map(Bytes::len).collect()
    }

    #[test]
    fn coalesce_keeps_large_chunks_and_copies_lonely_short_ones() {
        let big = Bytes::from(vec![1; SMALL_CHUNK]);
        let small = Bytes::from(vec![2; 10]);
        let chunks = vec![big.clone(), small.clone(), big.clone()];
        let out = coalesce(chunks);
        assert_eq!(sizes(&out), [SMALL_CHUNK, 10, SMALL_CHUNK]);
        assert_eq!(out[0].as_ptr(), big.as_ptr());
        // A lone short chunk is copied out of whatever buffer it was a slice of.
        assert_ne!(out[1].as_ptr(), small.as_ptr());
        assert_eq!(out[1], small);
    }

    #[test]
    fn coalesce_merges_runs_of_small_chunks() {
        let big = Bytes::from(vec![1; 10_000]);
        let mut chunks: Vec<Bytes> = (0..100u8).map(|i| Bytes::from(vec![i; 1000])).collect();
        chunks.push(big.clone());
        chunks.push(Bytes::from_static(b"ab"));
        chunks.push(Bytes::from_static(b"cd"));
        let expected: Vec<u8> = chunks.iter().flatten().copied().collect();
        let out = coalesce(chunks);
        assert_eq!(sizes(&out), [65_000, 35_000, 10_000, 4]);
        assert_eq!(out[2].as_ptr(), big.as_ptr());
        let got: Vec<u8> = out.iter().flatten().copied().collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn weight_saturates() {
        let entry = MemEntry {
            meta: cachio_storage_tests::sample_meta("w"),
            chunks: Chunks::Many(Arc::new([]), u64::from(u32::MAX) + 10),
            expires: None,
        };
        assert_eq!(weigh("k", &entry), u32::MAX);
    }

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

    async fn put(store: &MokaStore, key: &str, version: &str) {
        let mut w = store.begin(key).unwrap();
        w.append(Bytes::from(vec![0u8; 4096])).unwrap();
        w.commit(cachio_storage_tests::sample_meta(version), None)
            .await
            .unwrap();
    }

    fn version(hit: &Hit<MokaBody>) -> String {
        let head = hit.meta.as_response().unwrap();
        head.fields().to_header_map(0)["x-tag"]
            .to_str()
            .unwrap()
            .to_owned()
    }

    #[tokio::test]
    async fn a_hit_entry_is_served_from_the_hot_index_until_replaced() {
        let store = MokaStore::new(1 << 20);
        put(&store, "k", "1").await;
        assert_eq!(store.shared.hot.len(), 0, "entries are indexed once hit");
        assert_eq!(version(&store.get("k").await.unwrap().unwrap()), "1");
        assert_eq!(store.shared.hot.len(), 1);
        put(&store, "k", "2").await;
        assert_eq!(store.shared.hot.len(), 0);
        let read = store.get("k").await.unwrap().unwrap();
        assert_eq!(version(&read), "2");
        store
            .update(
                "k",
                &read.meta,
                cachio_storage_tests::sample_meta("3"),
                None,
            )
            .await
            .unwrap();
        assert_eq!(version(&store.get("k").await.unwrap().unwrap()), "3");
        store.delete("k").await.unwrap();
        assert!(store.get("k").await.unwrap().is_none());
        assert_eq!(store.shared.hot.len(), 0);
    }

    #[tokio::test]
    async fn an_expired_hot_entry_is_a_miss() {
        let store = MokaStore::new(1 << 20);
        let mut w = store.begin("k").unwrap();
        w.append(Bytes::from_static(b"x")).unwrap();
        // Long enough that a loaded machine still reads the entry before it expires.
        w.commit(
            cachio_storage_tests::sample_meta("e"),
            Some(Duration::from_millis(500)),
        )
        .await
        .unwrap();
        assert!(store.get("k").await.unwrap().is_some());
        assert_eq!(store.shared.hot.len(), 1);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(store.try_get("k").unwrap().unwrap().is_none());
        assert_eq!(store.shared.hot.len(), 0);
    }

    #[tokio::test]
    async fn evicted_entries_leave_the_hot_index() {
        let store = MokaStore::builder()
            .max_capacity_bytes(256 << 10)
            .header_map_share(0.5)
            .max_object_share(0.5)
            .build();
        for i in 0..16 {
            put(&store, &format!("k{i}"), "v").await;
            assert!(store.get(&format!("k{i}")).await.unwrap().is_some());
        }
        store.run_pending_tasks().await;
        let indexed = store.shared.hot.len();
        assert!(indexed > 0);
        // Entries read more often than the hot ones, so that TinyLFU admits them.
        for i in 0..200 {
            let key = format!("n{i}");
            for _ in 0..20 {
                let _ = store.get(&key).await.unwrap();
            }
            put(&store, &key, "v").await;
            store.run_pending_tasks().await;
        }
        assert!(store.evictions() > 0);
        let mut gone = 0;
        for i in 0..16 {
            let key = format!("k{i}");
            let in_moka = store.shared.cache.contains_key(&key);
            gone += usize::from(!in_moka);
            assert_eq!(
                store.try_get(&key).unwrap().unwrap().is_some(),
                in_moka,
                "{key} is served exactly while moka keeps it"
            );
        }
        assert!(gone > 0, "the test evicts some of the hot entries");
        assert!(store.shared.hot.len() as u64 <= store.entry_count());
    }

    /// A writer that replaces an entry sees its own write at once, while readers keep promoting
    /// the entry into the hot index from other threads.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn a_committed_replacement_is_never_shadowed_by_a_racing_promotion() {
        let store = MokaStore::new(8 << 20);
        put(&store, "k", "0").await;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (store, stop) = (store.clone(), Arc::clone(&stop));
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let _ = store.get("k").await.unwrap();
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for n in 1..2000 {
            let v = n.to_string();
            put(&store, "k", &v).await;
            for _ in 0..3 {
                assert_eq!(version(&store.get("k").await.unwrap().unwrap()), v);
            }
        }
        stop.store(true, Ordering::Relaxed);
        for r in readers {
            r.await.unwrap();
        }
    }
}
