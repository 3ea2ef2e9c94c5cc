//! A cachio [`Store`] on Redis or a Redis Cluster, shared by every node of a fleet, and the
//! invalidation broadcast that keeps each node's memory tier in step with it.
//!
//! [`RedisStore`] keeps each entry as one record (its metadata) and its body in chunks of
//! [`CHUNK_SIZE`] bytes, writes bodies as they stream in without ever blocking the caller,
//! makes an entry visible in one atomic step after all of its chunks are stored, streams hits
//! chunk by chunk, expires every key with the entry's time to live, and steps aside (every call
//! fails fast with [`ErrorKind::Unavailable`], which the cache layer turns into a miss) while
//! Redis is down, slow or restarting, coming back by itself when Redis does.
//!
//! [`Broadcast`] wraps a store (usually memory over Redis, [`FleetStore`]) so that every
//! delete and purge is published on a Redis channel and applied to the memory tier of every
//! other node.
//!
//! # Example
//!
//! ```no_run
//! // Needs a Redis server on 127.0.0.1:6379, so it is compiled but not run by `cargo test`.
//! use std::sync::Arc;
//! use std::time::{Duration, SystemTime};
//!
//! use bytes::Bytes;
//! use cachio_core::meta::{Meta, ResponseMeta};
//! use cachio_core::store::{Store, StoreWriter};
//! use cachio_redis::RedisStore;
//! use http_body_util::BodyExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = RedisStore::builder("redis://127.0.0.1:6379/")
//!     .prefix("shop-prod")
//!     .timeout(Duration::from_millis(50))
//!     .max_object_size(16 << 20)
//!     .build()?;
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
//! assert_eq!(hit.body.collect().await?.to_bytes(), "hello world");
//! # Ok(())
//! # }
//! ```
//!
//! # Key layout
//!
//! Every key of an entry starts with the same hash tag, `{PREFIX:HASH}`, where `PREFIX` is the
//! deployment's prefix ([`RedisStoreBuilder::prefix`], default [`DEFAULT_PREFIX`]) and `HASH`
//! is the FNV-1a 128-bit hash of the cache key in 32 hex digits. A Redis Cluster hashes only
//! the part in braces, so an entry's keys all live in one slot, and a Lua script can change
//! them together.
//!
//! | key | value | expiry |
//! |---|---|---|
//! | `{PREFIX:HASH}:m` | the record: a header (format version, generation id, body length, chunk count), the cache key, the [`Meta::encode`] bytes, a CRC-32 per chunk or the whole body when it fits in one chunk (*inline*), and a CRC-32 of all that | the entry's `ttl` |
//! | `{PREFIX:HASH}:c:GENERATION:INDEX` | chunk `INDEX` (from 0) of the body written under generation `GENERATION` (16 hex digits): exactly [`CHUNK_SIZE`] bytes, the last one shorter | the entry's `ttl`; [`RedisStoreBuilder::pending_ttl`] while being written |
//! | `PREFIX:invalidate` | (a Pub/Sub channel) invalidations of [`Broadcast`] | |
//!
//! The record carries the full cache key: two keys with one hash (never seen, but possible)
//! evict each other instead of serving each other's entries. A record of another format
//! version, or one that fails its checksum, is a miss.
//!
//! # Writes
//!
//! [`Store::begin`] picks a fresh 64-bit generation id. A body that fits in one chunk (most
//! responses) stays with the writer and goes into the record at commit: one round trip. A
//! larger one is handed, append by append, to a task of the writer's own that cuts it into
//! chunks and `SET`s each with the pending expiry as it fills: [`StoreWriter::append`] never
//! waits. The bytes appended and not yet written, across all writers, are limited
//! ([`RedisStoreBuilder::write_queue_bytes`], default [`DEFAULT_WRITE_QUEUE_BYTES`]): an append
//! past the limit fails with [`ErrorKind::Unavailable`] and the response is not stored. An
//! append past [`RedisStoreBuilder::max_object_size`] fails with [`ErrorKind::TooLarge`].
//!
//! [`StoreWriter::commit`] runs one Lua script that checks every chunk of the new generation is
//! there, sets the record, gives the record and every chunk the entry's expiry, and lets the
//! chunks of the generation it replaced expire within [`RedisStoreBuilder::retired_grace`]
//! (so that hits still streaming the old body can finish). A reader sees the old entry or the
//! new one, never a mix, and never a partial body: a write interrupted at any point (a writer
//! dropped, the process killed, Redis restarted) leaves at most chunks that nothing refers to,
//! which the writer deletes or which expire after the pending expiry.
//!
//! # Reads
//!
//! [`Store::get`] is one `GET` of the record; for a chunked body, one `EXISTS` over its chunks
//! (an entry with a chunk evicted by Redis is a miss, and is removed). The body
//! ([`RedisBody`]) then `GET`s the chunks one at a time, one ahead of the one being sent, so a
//! hit holds at most about three chunks in memory whatever its size. Each chunk is checked
//! against its length and CRC-32; a chunk that is missing or wrong ends the body with an error,
//! never with wrong bytes.
//!
//! # Expiry
//!
//! The record and every chunk expire (`PX`/`PEXPIRE`) after the `ttl` given to
//! [`StoreWriter::commit`] or [`Store::update`], which is how long the entry can still be of use
//! to the cache: Redis never keeps an entry longer. `None` keeps it until Redis evicts it; a
//! `ttl` of zero stores nothing and removes the entry under the key.
//!
//! # Purge
//!
//! [`Store::purge`] `SCAN`s the record keys of the prefix (on every master of a cluster), reads
//! them in small batches, offers each cache key and metadata to the predicate, and deletes the
//! ones it picks (unless they were replaced in the meantime). Entries written while it runs may
//! or may not be seen.
//!
//! # Faults
//!
//! Every Redis call runs within [`RedisStoreBuilder::timeout`] (default [`DEFAULT_TIMEOUT`],
//! 50 ms); past it, or when Redis cannot be reached, the call fails with
//! [`ErrorKind::Unavailable`], and the cache layer serves from the origin instead. After
//! [`DEFAULT_BREAKER_THRESHOLD`] such failures in a row, the store stops calling Redis for
//! [`DEFAULT_BREAKER_COOLDOWN`] (every call fails at once), then lets one call through to probe
//! it ([`RedisStoreBuilder::breaker`]). The connection reconnects by itself in the background
//! (a single server through redis-rs' `ConnectionManager`, a cluster through its cluster
//! connection), so the store comes back without a restart once Redis answers again. No call of
//! this store blocks, panics, or waits longer than the timeout per Redis round trip.
//!
//! The connection, the writer tasks and the invalidation subscriber run on a small runtime of
//! the store's own (one thread, `cachio-redis`), so a store can be built outside any runtime and
//! used from several (the gateway runs one per core). It stops when the last handle, writer and
//! body are dropped.
//!
//! # Running a fleet
//!
//! Several gateways (or any services with a [`cachio_tower::CacheLayer`]) share one Redis and
//! each keep a small memory tier in front of it:
//!
//! ```text
//!            ┌──────── node A ────────┐   ┌──────── node B ────────┐
//! request ─▶ │ memory (moka) ─▶ miss ─┼─┐ │ memory (moka) ─▶ miss ─┼─┐
//!            └────────────────────────┘ │ └────────────────────────┘ │
//!                                       ▼                            ▼
//!                        Redis (or a Redis Cluster): records + chunks, `PREFIX:invalidate`
//! ```
//!
//! - Start each node with the same Redis and the same prefix: `cachio-gateway --upstream URL
//!   --redis-url redis://redis.internal:6379/ --redis-prefix shop` (or `--redis-cluster
//!   redis://10.0.0.1:7000,redis://10.0.0.2:7000,...`, or `redis-url = "..."` in the TOML
//!   file). In code: [`Broadcast::fleet`]`(memory, redis)` gives a [`FleetStore`].
//! - A response one node fetched is a hit on every node: a miss in a node's memory reads Redis,
//!   and copies the entry into that node's memory as it streams.
//! - Concurrent requests for one key are coalesced within a node (one origin fetch per key per
//!   node at a time, the others wait for it), but there is no lock across nodes. So while a key
//!   is cold, the origin sees at most one request for it per node (with N nodes, at most N);
//!   after the first node has committed the entry to Redis, none: every other node's later
//!   misses are served from Redis. This holds while Redis answers and each fetch finishes
//!   within the coalescing timeout (`CacheLayer::coalesce_timeout`, 10 s by default); past
//!   it, the requests waiting for the fetch go to the origin themselves.
//! - Every purge (`PURGE`, `/_cachio/purge/...`) and every invalidation by an unsafe method
//!   (`POST`, `PUT`, `DELETE`, ... RFC 9111 §4.4) on any node removes the entries from Redis
//!   and from that node's memory, then publishes the removed keys on `PREFIX:invalidate`; every
//!   other node's subscriber removes them from its memory. On a cluster, the subscriber listens
//!   on one node (classic Pub/Sub reaches every node of a cluster) and moves to the next one
//!   when it fails.
//! - The window: after a purge returns on node A, another node B may still serve its memory copy
//!   until the message reaches it: one Redis round trip plus B applying it, normally well under
//!   a millisecond on a LAN. A node whose subscription breaks (Redis restarting, a network
//!   fault) stops using its cache (misses go to the origin) until it has subscribed again, and
//!   then empties its memory tier before serving from it, since it may have missed messages. A
//!   silent network fault (no connection reset) is noticed by a `PING` every second on the
//!   subscription (answered within half a second), so the window can stretch to about 1.5 s
//!   then. A response that node B was fetching from the origin while A purged it can still be
//!   stored by B afterwards (as in any cache, a purge does not stop fetches already in
//!   flight).
//! - A purge by a predicate removes and announces the entries it finds in Redis and in the
//!   purging node's memory. A copy that only another node's memory still holds (its Redis copy
//!   already expired or evicted) is not announced; it lives at most as long as copies from Redis
//!   stay in memory (`Tiered::promote_ttl`, 5 minutes by default).
//! - Size Redis for the whole fleet's working set, with `maxmemory` and an eviction policy
//!   (`allkeys-lru` or `volatile-ttl`); an entry with a chunk evicted is a miss.
//! - When Redis is down, every node serves from the origin within the timeout, then without
//!   even trying while the breaker is open, and uses the cache again when Redis is back.
//!
//! # TLS
//!
//! With the `tls` feature (off by default; `redis-tls` in `cachio` and the gateway), a
//! `rediss://` URL connects through rustls, as managed services (ElastiCache with in-transit
//! encryption, Upstash, Redis Cloud) require; the URLs of a cluster are all `rediss://` or all
//! `redis://`. The server's certificate is checked against the system's root certificates
//! (read through `rustls-native-certs`, so the operating system's store and `SSL_CERT_FILE`
//! apply), or only against the CAs given to [`RedisStoreBuilder::tls_ca`];
//! [`RedisStoreBuilder::tls_client_cert`] adds a client certificate for mutual TLS. Unless the
//! program has chosen a rustls crypto provider already, building a TLS store makes ring the
//! process's default. A `rediss://` URL without the feature, certificates with a `redis://`
//! URL, and `#insecure` fail in [`RedisStoreBuilder::build`]: a store never falls back to
//! plaintext. A store that cannot connect (an untrusted certificate, say) logs why once, and
//! the errors of its calls carry the reason.
//!
//! [`Meta::encode`]: cachio_core::meta::Meta::encode
//! [`StoreWriter::append`]: cachio_core::store::StoreWriter::append
//! [`StoreWriter::commit`]: cachio_core::store::StoreWriter::commit
//! [`cachio_tower::CacheLayer`]: https://docs.rs/cachio-tower

mod body;
mod breaker;
mod broadcast;
mod conn;
mod record;
mod scripts;
mod tls;
mod writer;

use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cachio_core::meta::Meta;
use cachio_core::store::{ErrorKind, Hit, Store, StoreError};
use redis::aio::ConnectionManagerConfig;

pub use body::RedisBody;
pub use broadcast::{Broadcast, BroadcastStats, FleetStore};
pub use writer::RedisWriter;

use conn::{Connector, Core, Counters, Locals, Runtime, Shared};
use record::{Names, StoredBody};

/// The size of the chunks bodies are stored in (the last chunk of a body may be shorter, and a
/// body of at most this size is stored inside its record): 64 KiB.
pub const CHUNK_SIZE: usize = 64 * 1024;

/// The key prefix of a store built without [`RedisStoreBuilder::prefix`]: `cachio`.
pub const DEFAULT_PREFIX: &str = "cachio";

/// How long one Redis call may take unless configured otherwise: 50 ms.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(50);

/// How long connecting to Redis may take unless configured otherwise: 1 s.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The largest body stored unless configured otherwise: 64 MiB.
pub const DEFAULT_MAX_OBJECT_SIZE: u64 = 64 << 20;

/// The bytes of appended chunks that may wait to be written, across all writers, unless
/// configured otherwise: 64 MiB.
pub const DEFAULT_WRITE_QUEUE_BYTES: u64 = 64 << 20;

/// How long the chunks of a body being written live before its commit, unless configured
/// otherwise: 5 minutes. A body that takes longer to arrive is not stored.
pub const DEFAULT_PENDING_TTL: Duration = Duration::from_secs(300);

/// How long the chunks of a replaced or deleted entry stay for hits still reading them, unless
/// configured otherwise: 30 s (never longer than their own expiry).
pub const DEFAULT_RETIRED_GRACE: Duration = Duration::from_secs(30);

/// Failures in a row that open the circuit breaker unless configured otherwise: 3.
pub const DEFAULT_BREAKER_THRESHOLD: u32 = 3;

/// How long an open circuit breaker refuses calls unless configured otherwise: 1 s.
pub const DEFAULT_BREAKER_COOLDOWN: Duration = Duration::from_secs(1);

/// Records read per `MGET` while purging.
const PURGE_BATCH: usize = 16;

/// Keys per `DEL` when deleting the chunks of an abandoned write.
const DELETE_BATCH: usize = 256;

/// The settings of a store, fixed when it is built.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) prefix: String,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) max_object: u64,
    pub(crate) write_queue: u64,
    pub(crate) pending_ttl: Duration,
    pub(crate) retired_grace: Duration,
    pub(crate) tls: tls::Tls,
}

/// Fresh generation ids (and node ids): a random 64-bit seed per store mixed with a counter, so
/// that writers on different nodes of a fleet never pick the same id (the chance is 2^-64 per
/// pair) and writers of one store never do.
pub(crate) struct GenerationIds {
    seed: u64,
    next: AtomicU64,
}

impl GenerationIds {
    fn new() -> Self {
        let mut h = RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
        );
        GenerationIds {
            seed: h.finish(),
            next: AtomicU64::new(1),
        }
    }

    pub(crate) fn next(&self) -> u64 {
        // splitmix64: a bijection, so distinct counters give distinct ids.
        let mut z = (self.seed ^ self.next.fetch_add(1, Ordering::Relaxed))
            .wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// The time to live of an entry, as the scripts take it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// No expiry (`ttl` `None`).
    Never,
    /// Expire after this many milliseconds (at least 1).
    Millis(u64),
    /// A `ttl` under a millisecond: store nothing, remove the entry.
    Now,
}

impl Expiry {
    pub(crate) fn of(ttl: Option<Duration>) -> Expiry {
        match ttl {
            None => Expiry::Never,
            Some(d) => match u64::try_from(d.as_millis()).unwrap_or(u64::MAX) {
                0 => Expiry::Now,
                ms => Expiry::Millis(ms),
            },
        }
    }

    /// The script argument: milliseconds, 0 for none.
    pub(crate) fn arg(self) -> u64 {
        match self {
            Expiry::Millis(ms) => ms,
            Expiry::Never | Expiry::Now => 0,
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Where the store connects.
#[derive(Clone, Debug)]
enum Target {
    Single(String),
    Cluster(Vec<String>),
}

/// What went wrong with Redis so far, for metrics and tests. Made by [`RedisStore::stats`].
///
/// # Example
///
/// ```
/// let store = cachio_redis::RedisStore::builder("redis://127.0.0.1:1/").build().unwrap();
/// let stats = store.stats();
/// assert_eq!(stats.timeouts, 0);
/// assert_eq!(stats.breaker_opened, 0);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStats {
    /// Calls that did not complete within the timeout.
    pub timeouts: u64,
    /// Calls that failed because Redis could not be reached (refused, reset, loading, cluster
    /// down).
    pub unavailable: u64,
    /// Calls refused at once by the open circuit breaker.
    pub refused: u64,
    /// Calls Redis answered with an error (out of memory, for example).
    pub errors: u64,
    /// Records or chunks found corrupt or missing (and removed).
    pub corrupt: u64,
    /// How many times the circuit breaker opened.
    pub breaker_opened: u64,
}

/// A cachio [`Store`] on Redis or a Redis Cluster. See the [crate] documentation.
///
/// Cloning is cheap (one `Arc`); clones share the connection and the store's runtime.
///
/// # Example
///
/// ```no_run
/// // Needs a Redis Cluster, so it is compiled but not run by `cargo test`.
/// use cachio_core::store::Store;
/// use cachio_redis::RedisStore;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cachio_core::store::StoreError> {
/// let store = RedisStore::cluster_builder(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
///     .prefix("edge")
///     .build()?;
/// assert!(store.is_cluster());
/// assert!(store.get("https://example.com/").await?.is_none());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    shared: Arc<Shared>,
    target: Arc<Target>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = &self.shared.core.settings;
        f.debug_struct("RedisStore")
            .field("target", &self.target)
            .field("prefix", &s.prefix)
            .field("timeout", &s.timeout)
            .field("max_body_size", &s.max_object)
            .field("stats", &self.stats())
            .finish()
    }
}

impl RedisStore {
    /// A builder for a store on one Redis server at `url` (`redis://[user:password@]host[:port][/db]`,
    /// or `rediss://...` for TLS with the `tls` feature), with the defaults listed on
    /// [`RedisStoreBuilder`].
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_core::store::Store;
    ///
    /// // Building does not connect: the store connects in the background.
    /// let store = cachio_redis::RedisStore::builder("redis://127.0.0.1:6379/").build()?;
    /// assert_eq!(store.prefix(), "cachio");
    /// assert_eq!(store.max_body_size(), Some(cachio_redis::DEFAULT_MAX_OBJECT_SIZE));
    /// # Ok::<(), cachio_core::store::StoreError>(())
    /// ```
    pub fn builder(url: impl Into<String>) -> RedisStoreBuilder {
        RedisStoreBuilder::new(Target::Single(url.into()))
    }

    /// A builder for a store on the Redis Cluster that any of `urls` belongs to (the others
    /// are tried when one does not answer).
    ///
    /// # Example
    ///
    /// ```
    /// let store = cachio_redis::RedisStore::cluster_builder(["redis://127.0.0.1:7000"])
    ///     .prefix("edge")
    ///     .build()?;
    /// assert!(store.is_cluster());
    /// # Ok::<(), cachio_core::store::StoreError>(())
    /// ```
    pub fn cluster_builder<I, U>(urls: I) -> RedisStoreBuilder
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        RedisStoreBuilder::new(Target::Cluster(urls.into_iter().map(Into::into).collect()))
    }

    /// The key prefix of this deployment.
    ///
    /// # Example
    ///
    /// ```
    /// let store = cachio_redis::RedisStore::builder("redis://127.0.0.1/").prefix("p").build()?;
    /// assert_eq!(store.prefix(), "p");
    /// # Ok::<(), cachio_core::store::StoreError>(())
    /// ```
    pub fn prefix(&self) -> &str {
        &self.shared.core.settings.prefix
    }

    /// Whether the store is on a Redis Cluster.
    ///
    /// # Example
    ///
    /// ```
    /// let store = cachio_redis::RedisStore::builder("redis://127.0.0.1/").build()?;
    /// assert!(!store.is_cluster());
    /// # Ok::<(), cachio_core::store::StoreError>(())
    /// ```
    pub fn is_cluster(&self) -> bool {
        matches!(*self.target, Target::Cluster(_))
    }

    /// The Redis key of the record of the entry under cache key `key` (see the [crate]
    /// documentation for the key layout), for inspecting a deployment with `redis-cli`.
    ///
    /// # Example
    ///
    /// ```
    /// let store = cachio_redis::RedisStore::builder("redis://127.0.0.1/").prefix("p").build()?;
    /// assert_eq!(
    ///     store.record_key("https://example.com/"),
    ///     "{p:e45265d9164e796bae99d8a63c4c318c}:m"
    /// );
    /// # Ok::<(), cachio_core::store::StoreError>(())
    /// ```
    pub fn record_key(&self, key: &str) -> String {
        Names::new(self.prefix(), key).record()
    }

    /// The Pub/Sub channel [`Broadcast`] publishes invalidations on: `PREFIX:invalidate`.
    ///
    /// # Example
    ///
    /// ```
    /// let store = cachio_redis::RedisStore::builder("redis://127.0.0.1/").prefix("p").build()?;
    /// assert_eq!(store.invalidation_channel(), "p:invalidate");
    /// # Ok::<(), cachio_core::store::StoreError>(())
    /// ```
    pub fn invalidation_channel(&self) -> String {
        format!("{}:invalidate", self.prefix())
    }

    /// What went wrong with Redis so far.
    ///
    /// # Example
    ///
    /// ```
    /// let store = cachio_redis::RedisStore::builder("redis://127.0.0.1/").build()?;
    /// assert_eq!(store.stats(), cachio_redis::RedisStats::default());
    /// # Ok::<(), cachio_core::store::StoreError>(())
    /// ```
    pub fn stats(&self) -> RedisStats {
        let core = &self.shared.core;
        let c = &core.counters;
        RedisStats {
            timeouts: c.timeouts.load(Ordering::Relaxed),
            unavailable: c.unavailable.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            corrupt: c.corrupt.load(Ordering::Relaxed),
            breaker_opened: core.breaker.opened(),
        }
    }

    /// Sends a `PING` (to a random node of a cluster), through the timeout and the circuit
    /// breaker like every call: a health check.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Unavailable`] when Redis does not answer in time or cannot be reached.
    ///
    /// # Example
    ///
    /// ```no_run
    /// // Needs a Redis server, so it is compiled but not run by `cargo test`.
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let store = cachio_redis::RedisStore::builder("redis://127.0.0.1/").build().unwrap();
    /// store.ping().await.expect("Redis answers");
    /// # }
    /// ```
    pub async fn ping(&self) -> Result<(), StoreError> {
        let core = Arc::clone(&self.shared.core);
        self.shared
            .runtime
            .run(async move {
                let mut c = core.conn.clone();
                core.exec(
                    "PING",
                    redis::cmd("PING").query_async::<redis::Value>(&mut c),
                )
                .await
                .map(|_| ())
            })
            .await
    }

    /// Publishes `payload` on `channel`.
    pub(crate) async fn publish(&self, channel: &str, payload: Vec<u8>) -> Result<(), StoreError> {
        let core = Arc::clone(&self.shared.core);
        let channel = channel.to_owned();
        self.shared
            .runtime
            .run(async move {
                let mut c = core.conn.clone();
                core.exec(
                    "PUBLISH",
                    redis::cmd("PUBLISH")
                        .arg(&channel)
                        .arg(&payload[..])
                        .query_async::<i64>(&mut c),
                )
                .await
                .map(|_| ())
            })
            .await
    }

    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.shared.core
    }

    pub(crate) fn runtime(&self) -> &Runtime {
        &self.shared.runtime
    }

    /// Clients for the servers (with the store's TLS settings), for the subscriber's own
    /// connections; URLs that do not make a client are left out.
    pub(crate) fn clients(&self) -> Vec<redis::Client> {
        let urls = match &*self.target {
            Target::Single(url) => std::slice::from_ref(url),
            Target::Cluster(urls) => urls.as_slice(),
        };
        let tls = &self.shared.core.settings.tls;
        urls.iter().filter_map(|u| tls.client(u).ok()).collect()
    }

    fn check_open(&self) -> Result<(), StoreError> {
        let core = &self.shared.core;
        if core.breaker.is_open() {
            Err(core.refused())
        } else {
            Ok(())
        }
    }

    /// Runs a script for the entry named by `names`, on the store's runtime.
    async fn script(
        &self,
        what: &'static str,
        script: &'static redis::Script,
        keys: Vec<String>,
        args: Vec<Vec<u8>>,
    ) -> Result<i64, StoreError> {
        let core = Arc::clone(&self.shared.core);
        self.shared
            .runtime
            .run(async move { run_script(&core, what, script, &keys, &args).await })
            .await
    }

    /// Deletes the record under `names` (only if it still has `generation`, when given).
    async fn delete_record(
        &self,
        names: &Names,
        generation: Option<u64>,
    ) -> Result<bool, StoreError> {
        let grace = millis(self.shared.core.settings.retired_grace);
        let generation = generation.map_or_else(Vec::new, |g| g.to_be_bytes().to_vec());
        let n = self
            .script(
                "delete",
                &scripts::DELETE,
                vec![names.record()],
                vec![grace.to_string().into_bytes(), generation],
            )
            .await?;
        Ok(n == 1)
    }

    /// Removes a corrupt record in the background.
    fn drop_corrupt(&self, names: &Names, why: &StoreError) {
        let core = Arc::clone(&self.shared.core);
        core.counters.corrupt.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %why, key = %names.record(), "removing a corrupt Redis record");
        let record = names.record();
        self.shared.runtime.handle.spawn(async move {
            let mut c = core.conn.clone();
            let _ = core
                .exec(
                    "DEL",
                    redis::cmd("DEL").arg(&record).query_async::<i64>(&mut c),
                )
                .await;
        });
    }
}

/// Runs `script` with `keys` and `args` through [`Core::exec`].
pub(crate) async fn run_script(
    core: &Core,
    what: &'static str,
    script: &redis::Script,
    keys: &[String],
    args: &[Vec<u8>],
) -> Result<i64, StoreError> {
    let mut invocation = script.prepare_invoke();
    for k in keys {
        invocation.key(k);
    }
    for a in args {
        invocation.arg(&a[..]);
    }
    let mut c = core.conn.clone();
    core.exec(what, invocation.invoke_async::<i64>(&mut c))
        .await
}

/// Deletes `keys` in batches, ignoring failures (they expire anyway).
pub(crate) async fn delete_keys(core: &Core, keys: &[String]) {
    for batch in keys.chunks(DELETE_BATCH) {
        let mut c = core.conn.clone();
        let _ = core
            .exec(
                "DEL",
                redis::cmd("DEL").arg(batch).query_async::<i64>(&mut c),
            )
            .await;
    }
}

impl Store for RedisStore {
    type Body = RedisBody;
    type Writer = RedisWriter;

    async fn get(&self, key: &str) -> Result<Option<Hit<RedisBody>>, StoreError> {
        self.check_open()?;
        let names = Names::new(self.prefix(), key);
        let record_key = names.record();
        let mut cmd = redis::cmd("GET");
        cmd.arg(&record_key);
        let found: Option<Bytes> = self
            .shared
            .core
            .read(&self.shared.runtime, "GET", cmd)
            .await?;
        let Some(bytes) = found else {
            return Ok(None);
        };
        let record = match record::decode(bytes) {
            Ok(r) => r,
            Err(e) if e.kind() == ErrorKind::UnknownFormat => {
                tracing::debug!(error = %e, key, "a Redis record of another format: a miss");
                return Ok(None);
            }
            Err(e) => {
                self.drop_corrupt(&names, &e);
                return Ok(None);
            }
        };
        if record.key != key {
            // Another key with the same hash.
            return Ok(None);
        }
        let meta = match record.decode_meta() {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::UnknownFormat => return Ok(None),
            Err(e) => {
                self.drop_corrupt(&names, &e);
                return Ok(None);
            }
        };
        let body = match record.body {
            StoredBody::Inline(body) => RedisBody::inline(body),
            StoredBody::Chunks(crcs) => {
                let keys = names.chunks(record.generation, crcs.len() as u32);
                let mut cmd = redis::cmd("EXISTS");
                cmd.arg(&keys);
                let present: u64 = self
                    .shared
                    .core
                    .read(&self.shared.runtime, "EXISTS", cmd)
                    .await?;
                if present != crcs.len() as u64 {
                    // A chunk expired or was evicted: the entry is gone.
                    self.shared
                        .core
                        .counters
                        .corrupt
                        .fetch_add(1, Ordering::Relaxed);
                    let _ = self.delete_record(&names, Some(record.generation)).await;
                    return Ok(None);
                }
                RedisBody::chunked(
                    Arc::clone(&self.shared),
                    names,
                    record.generation,
                    record.len,
                    crcs,
                )
            }
        };
        Ok(Some(Hit {
            meta: Arc::new(meta),
            body,
        }))
    }

    fn begin(&self, key: &str) -> Result<RedisWriter, StoreError> {
        self.check_open()?;
        Ok(RedisWriter::new(
            Arc::clone(&self.shared),
            key,
            Names::new(self.prefix(), key),
        ))
    }

    async fn update(
        &self,
        key: &str,
        previous: &Meta,
        meta: Arc<Meta>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.check_open()?;
        let names = Names::new(self.prefix(), key);
        let expiry = Expiry::of(ttl);
        if expiry == Expiry::Now {
            return self.delete_record(&names, None).await;
        }
        let record_key = names.record();
        let mut cmd = redis::cmd("GET");
        cmd.arg(&record_key);
        let found: Option<Bytes> = self
            .shared
            .core
            .read(&self.shared.runtime, "GET", cmd)
            .await?;
        let Some(bytes) = found else {
            return Ok(false);
        };
        let record = match record::decode(bytes) {
            Ok(r) if r.key == key => r,
            _ => return Ok(false),
        };
        // Another entry was written under the key since `previous` was read: its body is not the
        // one `meta` describes. (The script checks that the generation read here is still there.)
        if *record.meta != *previous.encode() {
            return Ok(false);
        }
        let mut keys = vec![names.record()];
        keys.extend(names.chunks(record.generation, record.chunk_count()));
        let updated = record.with_meta(&meta.encode());
        let n = self
            .script(
                "update",
                &scripts::UPDATE,
                keys,
                vec![updated, expiry.arg().to_string().into_bytes()],
            )
            .await?;
        Ok(n == 1)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.check_open()?;
        self.delete_record(&Names::new(self.prefix(), key), None)
            .await
            .map(|_| ())
    }

    fn max_body_size(&self) -> Option<u64> {
        Some(self.shared.core.settings.max_object)
    }

    /// `SCAN`s the prefix's records (on every master of a cluster), offers each to `matches`,
    /// and deletes the ones it picks that were not replaced meanwhile. See the [crate]
    /// documentation.
    async fn purge<F>(&self, matches: F) -> Result<u64, StoreError>
    where
        F: Fn(&str, &Meta) -> bool + Send + Sync + 'static,
    {
        self.check_open()?;
        let core = Arc::clone(&self.shared.core);
        self.shared
            .runtime
            .run(async move { purge(&core, &matches).await })
            .await
    }
}

async fn purge<F>(core: &Core, matches: &F) -> Result<u64, StoreError>
where
    F: Fn(&str, &Meta) -> bool,
{
    let prefix = core.settings.prefix.clone();
    let pattern = record::record_pattern(&prefix);
    let masters = core.exec("CLUSTER SLOTS", core.conn.masters()).await?;
    let nodes: Vec<Option<(String, u16)>> = match masters {
        None => vec![None],
        Some(m) => m.into_iter().map(Some).collect(),
    };
    let grace = millis(core.settings.retired_grace).to_string().into_bytes();
    let mut removed = 0u64;
    for node in &nodes {
        let mut cursor = 0u64;
        loop {
            let (next, keys) = core
                .exec("SCAN", core.conn.scan(node.as_ref(), cursor, &pattern, 500))
                .await?;
            for batch in keys.chunks(PURGE_BATCH) {
                let mut c = core.conn.clone();
                let values: Vec<Option<Bytes>> = core
                    .exec("MGET", redis::cmd("MGET").arg(batch).query_async(&mut c))
                    .await?;
                for (record_key, value) in batch.iter().zip(values) {
                    let Some(value) = value else { continue };
                    let Ok(rec) = record::decode(value) else {
                        continue;
                    };
                    let Ok(meta) = rec.decode_meta() else {
                        continue;
                    };
                    if !matches(&rec.key, &meta) {
                        continue;
                    }
                    let n = run_script(
                        core,
                        "delete",
                        &scripts::DELETE,
                        std::slice::from_ref(record_key),
                        &[grace.clone(), rec.generation.to_be_bytes().to_vec()],
                    )
                    .await?;
                    removed += u64::try_from(n).unwrap_or(0);
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(removed)
}

/// Builds a [`RedisStore`]. Made by [`RedisStore::builder`] or [`RedisStore::cluster_builder`].
///
/// The defaults: prefix [`DEFAULT_PREFIX`], [`DEFAULT_TIMEOUT`], [`DEFAULT_CONNECT_TIMEOUT`],
/// [`DEFAULT_MAX_OBJECT_SIZE`], [`DEFAULT_WRITE_QUEUE_BYTES`], [`DEFAULT_PENDING_TTL`],
/// [`DEFAULT_RETIRED_GRACE`], and a breaker of [`DEFAULT_BREAKER_THRESHOLD`] failures and
/// [`DEFAULT_BREAKER_COOLDOWN`].
///
/// # Example
///
/// ```
/// use std::time::Duration;
///
/// use cachio_core::store::Store;
/// use cachio_redis::RedisStore;
///
/// let store = RedisStore::builder("redis://127.0.0.1:6379/")
///     .prefix("shop-eu")
///     .timeout(Duration::from_millis(20))
///     .connect_timeout(Duration::from_millis(500))
///     .max_object_size(8 << 20)
///     .write_queue_bytes(32 << 20)
///     .pending_ttl(Duration::from_secs(60))
///     .retired_grace(Duration::from_secs(10))
///     .breaker(5, Duration::from_millis(500))
///     .build()?;
/// assert_eq!(store.max_body_size(), Some(8 << 20));
/// # Ok::<(), cachio_core::store::StoreError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct RedisStoreBuilder {
    target: Target,
    prefix: String,
    timeout: Duration,
    connect_timeout: Duration,
    max_object: u64,
    write_queue: u64,
    pending_ttl: Duration,
    retired_grace: Duration,
    breaker_threshold: u32,
    breaker_cooldown: Duration,
    tls: tls::Tls,
}

impl RedisStoreBuilder {
    fn new(target: Target) -> Self {
        RedisStoreBuilder {
            target,
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_object: DEFAULT_MAX_OBJECT_SIZE,
            write_queue: DEFAULT_WRITE_QUEUE_BYTES,
            pending_ttl: DEFAULT_PENDING_TTL,
            retired_grace: DEFAULT_RETIRED_GRACE,
            breaker_threshold: DEFAULT_BREAKER_THRESHOLD,
            breaker_cooldown: DEFAULT_BREAKER_COOLDOWN,
            tls: tls::Tls::default(),
        }
    }

    /// The key prefix (default [`DEFAULT_PREFIX`]): deployments sharing a Redis with different
    /// prefixes never see each other's entries or invalidations. It must not be empty nor
    /// contain `{`, `}`, `*`, `?`, `[`, `]`, `\` or whitespace ([`build`](Self::build) fails).
    pub fn prefix(self, prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
            ..self
        }
    }

    /// How long one Redis call may take (default [`DEFAULT_TIMEOUT`]); past it the call fails
    /// with [`ErrorKind::Unavailable`] and the cache serves from the origin. Each chunk of a
    /// body is one call.
    pub fn timeout(self, timeout: Duration) -> Self {
        Self { timeout, ..self }
    }

    /// How long connecting to a Redis server may take (default [`DEFAULT_CONNECT_TIMEOUT`]).
    /// Connections are made in the background; calls waiting for one still fail after
    /// [`timeout`](Self::timeout).
    pub fn connect_timeout(self, timeout: Duration) -> Self {
        Self {
            connect_timeout: timeout,
            ..self
        }
    }

    /// The largest body stored (default [`DEFAULT_MAX_OBJECT_SIZE`]); an append past it fails
    /// with [`ErrorKind::TooLarge`].
    pub fn max_object_size(self, bytes: u64) -> Self {
        Self {
            max_object: bytes,
            ..self
        }
    }

    /// How many bytes of appended chunks may wait to be written, across all writers (default
    /// [`DEFAULT_WRITE_QUEUE_BYTES`]). An append past it fails with [`ErrorKind::Unavailable`];
    /// a single append larger than this is accepted when nothing else waits.
    pub fn write_queue_bytes(self, bytes: u64) -> Self {
        Self {
            write_queue: bytes,
            ..self
        }
    }

    /// How long the chunks of a body being written live until its commit (default
    /// [`DEFAULT_PENDING_TTL`]): the chunks of a write that was never committed (the process
    /// died, Redis restarted) are gone after this. A body that takes longer to arrive is not
    /// stored.
    pub fn pending_ttl(self, ttl: Duration) -> Self {
        Self {
            pending_ttl: ttl,
            ..self
        }
    }

    /// How long the chunks of a replaced, deleted or purged entry stay for the hits that are
    /// still streaming them (default [`DEFAULT_RETIRED_GRACE`]); never past their own expiry.
    /// Zero deletes them at once (such hits then end with an error).
    pub fn retired_grace(self, grace: Duration) -> Self {
        Self {
            retired_grace: grace,
            ..self
        }
    }

    /// The circuit breaker: after `failures` calls in a row that time out or find Redis
    /// unreachable, every call fails at once for `cooldown`, then one call probes Redis
    /// (defaults [`DEFAULT_BREAKER_THRESHOLD`] and [`DEFAULT_BREAKER_COOLDOWN`]; `failures`
    /// 0 turns the breaker off).
    pub fn breaker(self, failures: u32, cooldown: Duration) -> Self {
        Self {
            breaker_threshold: failures,
            breaker_cooldown: cooldown,
            ..self
        }
    }

    /// Trusts the certificate authorities in `pem` (one or more PEM certificates) for a
    /// `rediss://` server, instead of the system's root certificates: for a server whose
    /// certificate a private CA signed. Needs the `tls` feature; [`build`](Self::build) fails
    /// for a `redis://` URL (TLS certificates for a plaintext connection are a mistake) and
    /// for a `pem` without a certificate.
    ///
    /// # Example
    ///
    /// ```no_run
    /// // Needs the CA file and a Redis with TLS, so it is compiled but not run by `cargo test`.
    /// let ca = std::fs::read("/etc/cachio/redis-ca.pem")?;
    /// let store = cachio_redis::RedisStore::builder("rediss://redis.internal:6380/")
    ///     .tls_ca(ca)
    ///     .build()?;
    /// # let _ = store;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tls_ca(self, pem: impl Into<Vec<u8>>) -> Self {
        Self {
            tls: tls::Tls {
                ca: Some(pem.into()),
                ..self.tls
            },
            ..self
        }
    }

    /// Presents this client certificate (`cert_pem`: the certificate, then any intermediates)
    /// and its private key (`key_pem`: PKCS#8, PKCS#1 or SEC1) to a `rediss://` server that
    /// asks for one: mutual TLS, Redis's `tls-auth-clients yes`. Needs the `tls` feature;
    /// [`build`](Self::build) fails for a `redis://` URL or a key that does not parse.
    ///
    /// # Example
    ///
    /// ```no_run
    /// // Needs the files and a Redis with TLS, so it is compiled but not run by `cargo test`.
    /// let store = cachio_redis::RedisStore::builder("rediss://redis.internal:6380/")
    ///     .tls_ca(std::fs::read("/etc/cachio/redis-ca.pem")?)
    ///     .tls_client_cert(
    ///         std::fs::read("/etc/cachio/client.pem")?,
    ///         std::fs::read("/etc/cachio/client.key")?,
    ///     )
    ///     .build()?;
    /// # let _ = store;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn tls_client_cert(
        self,
        cert_pem: impl Into<Vec<u8>>,
        key_pem: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            tls: tls::Tls {
                client: Some((cert_pem.into(), key_pem.into())),
                ..self.tls
            },
            ..self
        }
    }

    /// Builds the store and starts its runtime. It does not wait for Redis: the connection is
    /// made in the background, and calls made before it is up fail after the timeout.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Other`] for a URL that does not parse, an empty cluster list, a bad prefix,
    /// a `rediss://` URL in a build without the `tls` feature (never a plaintext connection
    /// instead), TLS certificates with a `redis://` URL, or certificates that do not parse;
    /// [`ErrorKind::Io`] when the runtime thread cannot be started.
    pub fn build(self) -> Result<RedisStore, StoreError> {
        let bad = |m: String| StoreError::new(ErrorKind::Other, m);
        if self.prefix.is_empty()
            || self
                .prefix
                .chars()
                .any(|c| "{}*?[]\\".contains(c) || c.is_whitespace() || c.is_control())
        {
            return Err(bad(format!(
                "the key prefix {:?} must be non-empty, without braces, glob characters or whitespace",
                self.prefix
            )));
        }
        let urls = match &self.target {
            Target::Single(url) => std::slice::from_ref(url),
            Target::Cluster(urls) => urls.as_slice(),
        };
        self.tls.check(urls).map_err(bad)?;
        let connector = match &self.target {
            Target::Single(url) => {
                let client = self
                    .tls
                    .client(url)
                    .map_err(|e| bad(format!("bad Redis URL {url:?}: {e}")))?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(None)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500))
                    .set_number_of_retries(1_000_000);
                Connector::Single(client, config)
            }
            Target::Cluster(urls) => {
                if urls.is_empty() {
                    return Err(bad("no Redis Cluster node given".into()));
                }
                let builder =
                    redis::cluster::ClusterClient::builder(urls.iter().map(String::as_str))
                        .connection_timeout(self.connect_timeout)
                        .response_timeout(self.timeout.max(Duration::from_millis(500)))
                        .retries(2)
                        .min_retry_wait(10)
                        .max_retry_wait(200);
                #[cfg(feature = "tls")]
                let builder = if tls::is_tls_url(&urls[0]) {
                    builder.certs(self.tls.certificates())
                } else {
                    builder
                };
                let client = builder
                    .build()
                    .map_err(|e| bad(format!("bad Redis Cluster URLs {urls:?}: {e}")))?;
                Connector::Cluster(client)
            }
        };
        let runtime = Runtime::start().map_err(|e| {
            StoreError::new(
                ErrorKind::Io,
                format!("cannot start the cachio-redis runtime: {e}"),
            )
        })?;
        let conn = {
            let _entered = runtime.handle.enter();
            connector
                .lazy()
                .map_err(|e| bad(format!("cannot set up the Redis connection: {e}")))?
        };
        let core = Arc::new(Core {
            conn,
            connector,
            locals: Locals::default(),
            settings: Settings {
                prefix: self.prefix,
                timeout: self.timeout,
                connect_timeout: self.connect_timeout,
                max_object: self.max_object,
                write_queue: self.write_queue,
                pending_ttl: self.pending_ttl,
                retired_grace: self.retired_grace,
                tls: self.tls,
            },
            breaker: breaker::Breaker::new(self.breaker_threshold, self.breaker_cooldown),
            counters: Counters::default(),
            queued: AtomicU64::new(0),
            generations: GenerationIds::new(),
            connect_error: std::sync::Mutex::new(None),
            connect_failed: std::sync::atomic::AtomicBool::new(false),
        });
        // Connect now rather than on the first request. Not through the breaker: a Redis that
        // is still starting must not open it.
        let warm = Arc::clone(&core);
        runtime.handle.spawn(async move {
            let mut c = warm.conn.clone();
            let cmd = redis::cmd("PING");
            let ping = tokio::time::timeout(
                Duration::from_secs(5),
                cmd.query_async::<redis::Value>(&mut c),
            );
            let _ = ping.await;
        });
        let probe = Arc::clone(&core);
        runtime.handle.spawn(async move {
            // Said once, at a level operators see: a wrong address, password or certificate
            // would otherwise only show as a cache that misses.
            if let Err(e) = probe.connector.probe(probe.settings.connect_timeout).await {
                tracing::warn!(error = %e, "cannot connect to Redis; the cache steps aside until it can");
                probe.set_connect_error(Some(e));
            }
        });
        Ok(RedisStore {
            shared: Arc::new(Shared { core, runtime }),
            target: Arc::new(self.target),
        })
    }
}

pub(crate) fn too_large(max: u64) -> StoreError {
    StoreError::new(
        ErrorKind::TooLarge,
        format!("body larger than the limit of {max} bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generation_ids_are_distinct() {
        let ids = GenerationIds::new();
        let mut seen: Vec<u64> = (0..10_000).map(|_| ids.next()).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 10_000);
        assert_ne!(GenerationIds::new().next(), GenerationIds::new().next());
    }

    #[test]
    fn expiry_rounds_down_to_milliseconds() {
        assert_eq!(Expiry::of(None), Expiry::Never);
        assert_eq!(Expiry::of(Some(Duration::ZERO)), Expiry::Now);
        assert_eq!(Expiry::of(Some(Duration::from_micros(999))), Expiry::Now);
        assert_eq!(
            Expiry::of(Some(Duration::from_micros(1_999))),
            Expiry::Millis(1)
        );
        assert_eq!(Expiry::of(Some(Duration::from_secs(60))).arg(), 60_000);
    }

    #[test]
    fn bad_prefixes_and_urls_are_refused() {
        for prefix in ["", "a{b", "a}b", "a*", "a b", "a?", "a[b]", "a\\b"] {
            let e = RedisStore::builder("redis://127.0.0.1/")
                .prefix(prefix)
                .build()
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Other, "{prefix:?}");
        }
        assert!(RedisStore::builder("http://nope").build().is_err());
        assert!(
            RedisStore::cluster_builder(Vec::<String>::new())
                .build()
                .is_err()
        );
    }
}
