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
//! | `{PREFIX:HASH}:p` | the fence: when the key was last deleted, by Redis's clock, in microseconds (see [Purge](#purge)) | an hour |
//! | `{PREFIX:HASH}:e` | (a set) the epochs of the variant indexes deleted under the key: an index of one of them is never written back | an hour |
//! | `PREFIX:purged` (one server), `{PREFIX:purged:N}` (a cluster, one per slot) | the floor: when the last purge by a predicate began, by Redis's clock | an hour |
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
//! ones it picks (unless they were replaced in the meantime).
//!
//! Deletes and purges are ordered with the writes of every node sharing the store, so that once
//! a purge has answered, no node stores what it removed (a response that was on its way from
//! the origin while it ran). [`Store::delete`] records Redis's time (`TIME`) under the key's
//! *fence* in the same script that deletes the record; a purge by a predicate first raises the
//! *floor* to Redis's time, then scans. The commit script refuses a write, with
//! [`ErrorKind::Invalidated`] (counted in [`RedisStats::invalidated`]; the cache layer treats
//! it as "not stored"), when the fence of its key or the floor is at or after its response's
//! request time ([`ResponseMeta::request_time`], taken by the node before the request went to
//! the origin) minus [`RedisStoreBuilder::clock_skew`] (default [`DEFAULT_CLOCK_SKEW`]), which
//! allows for the node's clock and Redis's to differ. A write that began before the floor was
//! raised and committed before it is found by the scan. The variants of a resource
//! (`KEY \0 v...`) are fenced by the fence of `KEY`, whose delete also removes the variant
//! index that makes them reachable. The index carries no request time of its own: its commit
//! takes that of the variant the store committed just before under the same resource and epoch
//! (the cache layer writes a variant, then its index), so it is refused with its variant.
//! Updates (a `304`'s new metadata) of a removed entry fail already: the entry is gone.
//!
//! A Redis Cluster runs a script on the keys of one slot: the fence lives in the entry's slot
//! (its hash tag), there is a floor in each of the 16 384 slots, and a purge by a predicate
//! raises them all (16 384 small scripts, run 64 at a time: about half a second on a small
//! machine). There, a variant's write cannot read its resource's fence (another slot) and may
//! be stored, but its index is refused, so it is never reachable. A delete that removes a
//! variant index also notes its epoch as dead: a fetch that read the index before the delete
//! and sent its request after it (so its own variant is fresh) would write the index back
//! listing the older variants, which are still stored; that commit is refused.
//!
//! Fences and floors live an hour: a write committed more than an hour after a purge of its
//! key, of a response requested before it, is not refused. A write refused within the
//! allowance after a purge costs a store, never a wrong response.
//!
//! The request time comes from the cache layer's clock (`CacheLayer::clock`), the fence and
//! the floor from Redis's: the two must agree within the allowance. A layer whose clock runs
//! behind the real time (a `ManualClock` set in the past) stores nothing under a deleted key,
//! and after a purge by a predicate nothing at all, until its clock passes the purge (or the
//! fence expires). Over this store, keep the layer's clock the real one; one set ahead (tests)
//! keeps storing, but no longer orders the fetches in flight with purges.
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
//! Several nodes share one Redis, each with a small memory tier in front of it: see [`Broadcast`]
//! for how to start them, what each node sees of the others' purges, and the window in which
//! another node may still serve a removed entry.
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
//! [`ResponseMeta::request_time`]: cachio_core::meta::ResponseMeta::request_time
//! [`StoreWriter::append`]: cachio_core::store::StoreWriter::append
//! [`StoreWriter::commit`]: cachio_core::store::StoreWriter::commit

mod body;
mod breaker;
mod broadcast;
mod builder;
mod conn;
mod fence;
mod record;
mod scripts;
mod store;
mod tls;
mod writer;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

#[cfg(doc)]
use cachio_core::store::Store;
use cachio_core::store::{ErrorKind, StoreError};

pub use body::RedisBody;
pub use broadcast::{Broadcast, BroadcastStats, FleetStore};
pub use builder::RedisStoreBuilder;
pub use writer::RedisWriter;

pub use conn::RedisStats;
use conn::{Core, Runtime, Shared, Target};
use record::Names;

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

/// How far apart the clocks of a fleet's nodes and of Redis may be, by default (see
/// [`RedisStoreBuilder::clock_skew`]).
pub const DEFAULT_CLOCK_SKEW: Duration = Duration::from_secs(1);

/// How long an open circuit breaker refuses calls unless configured otherwise: 1 s.
pub const DEFAULT_BREAKER_COOLDOWN: Duration = Duration::from_secs(1);

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
        core.counters.snapshot(core.breaker.opened())
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
        let tls = &self.shared.core.settings.tls;
        self.target
            .urls()
            .iter()
            .filter_map(|u| tls.client(u).ok())
            .collect()
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
