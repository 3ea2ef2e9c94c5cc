//! Invalidations for a fleet: deletes and purges published on a Redis channel and applied to the
//! memory tier of every node.

use std::collections::HashSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use cachio_core::meta::Meta;
use cachio_core::store::{ErrorKind, Hit, Store, StoreError};
use cachio_core::tiered::Tiered;
use tokio::sync::oneshot;

use crate::RedisStore;

mod message;
mod subscriber;

use message::{KIND_ALL, KIND_KEYS, encode};
use subscriber::{FirstTier, LocalTier, Plain, Subscriber};

/// Memory over Redis with invalidations broadcast across the fleet: what each node of a fleet
/// uses. Made by [`Broadcast::fleet`].
pub type FleetStore<M> = Broadcast<Tiered<M, RedisStore>, M>;

/// The most keys one purge announces one by one; a larger purge tells every node to empty its
/// memory tier instead.
const MAX_ANNOUNCED_KEYS: usize = 100_000;

/// The most bytes of keys in one message.
const MESSAGE_BYTES: usize = 256 * 1024;

/// Wraps a store `S` (usually memory over Redis) so that every [`delete`](Store::delete) and
/// [`purge`](Store::purge) also reaches the local tier `L` (the memory tier) of every other node
/// sharing the Redis and the prefix.
///
/// A delete or a purge first runs on `S`, then publishes the keys it removed on the channel
/// `PREFIX:invalidate` ([`RedisStore::invalidation_channel`]). Each `Broadcast` subscribes to
/// that channel (on its own connection, reconnecting by itself) and deletes the keys it
/// receives from `L`; a purge that removed more than 100 000 keys tells every node to empty
/// `L` instead.
///
/// Messages published while a node is not subscribed are lost, so a node uses its cache only
/// while subscribed: until the subscription is made, and from the moment it breaks until it
/// is made again, [`get`](Store::get) and [`begin`](Store::begin) fail with
/// [`ErrorKind::Unavailable`] (the cache layer serves from the origin), and every new
/// subscription empties `L` before the cache is used again. See [Running a
/// fleet](#running-a-fleet) below for the window in which another node may still serve a
/// removed entry.
///
/// `L` must be a local tier (it must not hold the same [`RedisStore`]): the subscriber runs on
/// the Redis store's runtime and keeps `L` alive. Cloning is cheap; the subscriber stops when
/// the last clone is dropped.
///
/// # Running a fleet
///
/// Several gateways (or any services with a [`cachio_tower::CacheLayer`](https://docs.rs/cachio-tower)) share one Redis and
/// each keep a small memory tier in front of it:
///
/// ```text
///            ┌──────── node A ────────┐   ┌──────── node B ────────┐
/// request ─▶ │ memory (moka) ─▶ miss ─┼─┐ │ memory (moka) ─▶ miss ─┼─┐
///            └────────────────────────┘ │ └────────────────────────┘ │
///                                       ▼                            ▼
///                        Redis (or a Redis Cluster): records + chunks, `PREFIX:invalidate`
/// ```
///
/// - Start each node with the same Redis and the same prefix: `cachio-gateway --upstream URL
///   --redis-url redis://redis.internal:6379/ --redis-prefix shop` (or `--redis-cluster
///   redis://10.0.0.1:7000,redis://10.0.0.2:7000,...`, or `redis-url = "..."` in the TOML
///   file). In code: [`Broadcast::fleet`]`(memory, redis)` gives a [`FleetStore`].
/// - A response one node fetched is a hit on every node: a miss in a node's memory reads Redis,
///   and copies the entry into that node's memory as it streams.
/// - Concurrent requests for one key are coalesced within a node (one origin fetch per key per
///   node at a time, the others wait for it), but there is no lock across nodes. So while a key
///   is cold, the origin sees at most one request for it per node (with N nodes, at most N);
///   after the first node has committed the entry to Redis, none: every other node's later
///   misses are served from Redis. This holds while Redis answers and each fetch finishes
///   within the coalescing timeout (`CacheLayer::coalesce_timeout`, 10 s by default); past
///   it, the requests waiting for the fetch go to the origin themselves.
/// - Every purge (`PURGE`, `/_cachio/purge/...`) and every invalidation by an unsafe method
///   (`POST`, `PUT`, `DELETE`, ... RFC 9111 §4.4) on any node removes the entries from Redis
///   and from that node's memory, then publishes the removed keys on `PREFIX:invalidate`; every
///   other node's subscriber removes them from its memory. On a cluster, the subscriber listens
///   on one node (classic Pub/Sub reaches every node of a cluster) and moves to the next one
///   when it fails.
/// - The window: after a purge returns on node A, another node B may still serve its memory copy
///   until the message reaches it: one Redis round trip plus B applying it, normally well under
///   a millisecond on a LAN. A node whose subscription breaks (Redis restarting, a network
///   fault) stops using its cache (misses go to the origin) until it has subscribed again, and
///   then empties its memory tier before serving from it, since it may have missed messages. A
///   silent network fault (no connection reset) is noticed by a `PING` every second on the
///   subscription (answered within half a second), so the window can stretch to about 1.5 s
///   then.
/// - Purges are ordered with every node's fetches: a response that node B was fetching from the
///   origin while A purged it (by URL, prefix or tag, or by an unsafe method) is not stored
///   once the purge has answered, in Redis nor in B's memory (the Redis tier commits first, and
///   refuses it). Redis keeps, in the script that deletes, when each key was last deleted and
///   when the last purge by a predicate began, by its own clock; the script that commits an
///   entry refuses one whose request was sent before either, allowing
///   [`RedisStoreBuilder::clock_skew`](crate::RedisStoreBuilder::clock_skew) (1 s by default)
///   for the nodes' clocks to differ from Redis's. So a fetch that began up to that long after
///   a purge is not stored either; it is served all the same. Refusals are counted
///   ([`RedisStats::invalidated`](crate::RedisStats::invalidated)). Keep the nodes' clocks in
///   step (NTP) and within the allowance, and each cache layer on the real clock: a layer
///   whose clock runs behind (a `ManualClock` in the past) never stores a key again after its
///   purge, nor anything after a prefix or tag purge, until its clock passes the purge; one
///   set ahead (tests) keeps storing, but its fetches in flight are no longer ordered with
///   purges. See the [crate] documentation, "Purge".
/// - A copy into B's memory that was on its way when the purge came (a read on B that found
///   the entry in Redis just before the purge removed it there, or B's own commit that Redis
///   took just before) does not outlive the announcement: B's subscriber removes the keys
///   under the memory tier's key locks, which such a copy holds from its last look at Redis
///   (or its Redis commit) until it lands. So once B has applied the announcement, B's memory
///   does not serve the purged version. Applying waits for copies of the same keys in
///   progress, each within the Redis timeout.
/// - While Redis cannot be reached, a delete or a purge fails with an error saying that it did
///   not reach the fleet (the gateway answers `503`): other nodes may still hold what it
///   removes here, and it is to be retried.
/// - A purge by a predicate removes and announces the entries it finds in Redis and in the
///   purging node's memory. A copy that only another node's memory still holds (its Redis copy
///   already expired or evicted) is not announced; it lives at most as long as copies from Redis
///   stay in memory (`Tiered::promote_ttl`, 5 minutes by default).
/// - Size Redis for the whole fleet's working set, with `maxmemory` and an eviction policy
///   (`allkeys-lru` or `volatile-ttl`); an entry with a chunk evicted is a miss.
/// - When Redis is down, every node serves from the origin within the timeout, then without
///   even trying while the breaker is open, and uses the cache again when Redis is back.
///
///
/// # Example
///
/// ```no_run
/// // Needs a Redis server, so it is compiled but not run by `cargo test`.
/// use std::time::Duration;
///
/// use cachio_core::store::Store;
/// use cachio_moka::MokaStore;
/// use cachio_redis::{Broadcast, RedisStore};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cachio_core::store::StoreError> {
/// let redis = RedisStore::builder("redis://127.0.0.1:6379/").prefix("shop").build()?;
/// let memory = MokaStore::new(256 << 20);
/// let store = Broadcast::fleet(memory, redis);
/// while !store.is_subscribed() {
///     tokio::time::sleep(Duration::from_millis(5)).await;
/// }
/// // Removed here, in Redis, and from the memory tier of every node.
/// store.delete("https://example.com/").await?;
/// # Ok(())
/// # }
/// ```
pub struct Broadcast<S, L> {
    inner: Arc<Inner<S, L>>,
}

struct Inner<S, L> {
    store: S,
    local: L,
    redis: RedisStore,
    channel: String,
    node: [u8; 16],
    state: Arc<State>,
    _stop: oneshot::Sender<()>,
}

#[derive(Debug, Default)]
struct State {
    subscribed: AtomicBool,
    subscriptions: AtomicU64,
    published: AtomicU64,
    publish_failures: AtomicU64,
    received: AtomicU64,
    applied: AtomicU64,
}

/// What a [`Broadcast`] did so far. Made by [`Broadcast::stats`].
///
/// # Example
///
/// ```
/// use cachio_moka::MokaStore;
/// use cachio_redis::{Broadcast, RedisStore};
///
/// let redis = RedisStore::builder("redis://127.0.0.1:1/").build()?;
/// let store = Broadcast::fleet(MokaStore::new(1 << 20), redis);
/// assert_eq!(store.stats().published, 0);
/// # Ok::<(), cachio_core::store::StoreError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BroadcastStats {
    /// Whether the node is subscribed now (and so uses its cache).
    pub subscribed: bool,
    /// How many times it subscribed (each time emptying its local tier).
    pub subscriptions: u64,
    /// Messages published.
    pub published: u64,
    /// Messages that could not be published (Redis down).
    pub publish_failures: u64,
    /// Messages received from other nodes.
    pub received: u64,
    /// Keys removed from the local tier because of them.
    pub applied: u64,
}

impl<S, L> Clone for Broadcast<S, L> {
    fn clone(&self) -> Self {
        Broadcast {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<S, L> fmt::Debug for Broadcast<S, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broadcast")
            .field("channel", &self.inner.channel)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl<M: Store> Broadcast<Tiered<M, RedisStore>, M> {
    /// Memory over Redis, with the broadcast: `Tiered::new(memory, redis)` whose deletes and
    /// purges reach the memory tier of every node.
    ///
    /// This starts the subscriber on the Redis store's runtime.
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_moka::MokaStore;
    /// use cachio_redis::{Broadcast, FleetStore, RedisStore};
    ///
    /// let redis = RedisStore::builder("redis://127.0.0.1:6379/").build()?;
    /// let store: FleetStore<MokaStore> = Broadcast::fleet(MokaStore::new(64 << 20), redis);
    /// assert_eq!(store.local().max_capacity_bytes(), 64 << 20);
    /// # Ok::<(), cachio_core::store::StoreError>(())
    /// ```
    pub fn fleet(memory: M, redis: RedisStore) -> Self {
        let tiers = Tiered::new(memory.clone(), redis.clone());
        Broadcast::start(tiers.clone(), memory, &redis, FirstTier(tiers))
    }
}

impl<S: Store, L: Store> Broadcast<S, L> {
    /// Wraps `store`, applying received invalidations to `local`, publishing and subscribing
    /// through `redis` (on its channel, `PREFIX:invalidate`).
    ///
    /// Received invalidations are plain deletes from `local`, not ordered with the copies
    /// `store` makes into it: a copy on its way when an announcement arrives can land after it.
    /// [`Broadcast::fleet`] orders them (see [Running a fleet](#running-a-fleet)); use it for
    /// memory over Redis.
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_core::tiered::Tiered;
    /// use cachio_moka::MokaStore;
    /// use cachio_redis::{Broadcast, RedisStore};
    ///
    /// let redis = RedisStore::builder("redis://127.0.0.1:6379/").build()?;
    /// let memory = MokaStore::new(64 << 20);
    /// let tiers = Tiered::new(memory.clone(), redis.clone()).promote_ttl(None);
    /// let store = Broadcast::new(tiers, memory, &redis);
    /// # let _ = store;
    /// # Ok::<(), cachio_core::store::StoreError>(())
    /// ```
    pub fn new(store: S, local: L, redis: &RedisStore) -> Self {
        Broadcast::start(store, local.clone(), redis, Plain(local))
    }

    /// Starts the subscriber, which removes what other nodes purged through `forget`.
    fn start<F: LocalTier>(store: S, local: L, redis: &RedisStore, forget: F) -> Self {
        let state = Arc::new(State::default());
        let (stop, stopped) = oneshot::channel();
        let mut node = [0u8; 16];
        let generations = &redis.core().generations;
        node[..8].copy_from_slice(&generations.next().to_be_bytes());
        node[8..].copy_from_slice(&generations.next().to_be_bytes());
        let channel = redis.invalidation_channel();
        let subscriber = Subscriber {
            clients: redis.clients(),
            channel: channel.clone(),
            node,
            local: forget,
            state: Arc::clone(&state),
            connect_timeout: redis.core().settings.connect_timeout,
        };
        redis.runtime().handle.spawn(subscriber.run(stopped));
        Broadcast {
            inner: Arc::new(Inner {
                store,
                local,
                redis: redis.clone(),
                channel,
                node,
                state,
                _stop: stop,
            }),
        }
    }
}

impl<S, L> Broadcast<S, L> {
    /// The wrapped store.
    ///
    /// # Example
    ///
    /// ```
    /// # use cachio_moka::MokaStore;
    /// # use cachio_redis::{Broadcast, RedisStore};
    /// let redis = RedisStore::builder("redis://127.0.0.1:6379/").build()?;
    /// let store = Broadcast::fleet(MokaStore::new(1 << 20), redis);
    /// assert_eq!(store.store().second().prefix(), "cachio");
    /// # Ok::<(), cachio_core::store::StoreError>(())
    /// ```
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// The local tier that received invalidations are applied to.
    ///
    /// # Example
    ///
    /// ```
    /// # use cachio_moka::MokaStore;
    /// # use cachio_redis::{Broadcast, RedisStore};
    /// let redis = RedisStore::builder("redis://127.0.0.1:6379/").build()?;
    /// let store = Broadcast::fleet(MokaStore::new(1 << 20), redis);
    /// assert_eq!(store.local().max_capacity_bytes(), 1 << 20);
    /// # Ok::<(), cachio_core::store::StoreError>(())
    /// ```
    pub fn local(&self) -> &L {
        &self.inner.local
    }

    /// The Redis store the invalidations go through.
    ///
    /// # Example
    ///
    /// ```
    /// # use cachio_moka::MokaStore;
    /// # use cachio_redis::{Broadcast, RedisStore};
    /// let redis = RedisStore::builder("redis://127.0.0.1:6379/").prefix("p").build()?;
    /// let store = Broadcast::fleet(MokaStore::new(1 << 20), redis);
    /// assert_eq!(store.redis().invalidation_channel(), "p:invalidate");
    /// # Ok::<(), cachio_core::store::StoreError>(())
    /// ```
    pub fn redis(&self) -> &RedisStore {
        &self.inner.redis
    }

    /// Whether the node is subscribed to invalidations now, and so uses its cache.
    ///
    /// # Example
    ///
    /// ```
    /// # use cachio_moka::MokaStore;
    /// # use cachio_redis::{Broadcast, RedisStore};
    /// // Nothing listens on port 1: never subscribed.
    /// let redis = RedisStore::builder("redis://127.0.0.1:1/").build()?;
    /// let store = Broadcast::fleet(MokaStore::new(1 << 20), redis);
    /// assert!(!store.is_subscribed());
    /// # Ok::<(), cachio_core::store::StoreError>(())
    /// ```
    pub fn is_subscribed(&self) -> bool {
        self.inner.state.subscribed.load(Ordering::Acquire)
    }

    /// What the broadcast did so far.
    ///
    /// # Example
    ///
    /// ```
    /// # use cachio_moka::MokaStore;
    /// # use cachio_redis::{Broadcast, RedisStore};
    /// let redis = RedisStore::builder("redis://127.0.0.1:1/").build()?;
    /// let store = Broadcast::fleet(MokaStore::new(1 << 20), redis);
    /// assert_eq!(store.stats().received, 0);
    /// # Ok::<(), cachio_core::store::StoreError>(())
    /// ```
    pub fn stats(&self) -> BroadcastStats {
        let s = &self.inner.state;
        BroadcastStats {
            subscribed: s.subscribed.load(Ordering::Acquire),
            subscriptions: s.subscriptions.load(Ordering::Relaxed),
            published: s.published.load(Ordering::Relaxed),
            publish_failures: s.publish_failures.load(Ordering::Relaxed),
            received: s.received.load(Ordering::Relaxed),
            applied: s.applied.load(Ordering::Relaxed),
        }
    }

    fn check_subscribed(&self) -> Result<(), StoreError> {
        if self.is_subscribed() {
            Ok(())
        } else {
            Err(StoreError::new(
                ErrorKind::Unavailable,
                "not subscribed to the fleet's invalidations: the cache steps aside",
            ))
        }
    }

    /// Publishes that `keys` were removed (or, past the limit, that everything was); the first
    /// failure to publish is the error.
    async fn announce(&self, keys: Vec<String>) -> Result<(), StoreError> {
        let messages = if keys.len() > MAX_ANNOUNCED_KEYS {
            vec![encode(&self.inner.node, KIND_ALL, &[])]
        } else {
            let mut out = Vec::new();
            let mut start = 0;
            let mut size = 0;
            for (i, k) in keys.iter().enumerate() {
                if size > 0 && size + k.len() + 4 > MESSAGE_BYTES {
                    out.push(encode(&self.inner.node, KIND_KEYS, &keys[start..i]));
                    start = i;
                    size = 0;
                }
                size += k.len() + 4;
            }
            if start < keys.len() {
                out.push(encode(&self.inner.node, KIND_KEYS, &keys[start..]));
            }
            out
        };
        let state = &self.inner.state;
        let mut result = Ok(());
        for message in messages {
            match self.inner.redis.publish(&self.inner.channel, message).await {
                Ok(()) => {
                    state.published.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    state.publish_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, "could not publish an invalidation to the fleet");
                    result = result.and(Err(e));
                }
            }
        }
        result
    }
}

/// A delete or a purge that Redis did not take or could not announce: other nodes may still
/// hold, or store, what it removed here.
fn not_in_fleet(e: StoreError) -> StoreError {
    StoreError::new(
        e.kind(),
        format!("the purge did not reach the fleet (Redis: {e})"),
    )
}

impl<S: Store, L: Store> Store for Broadcast<S, L> {
    type Body = S::Body;
    type Writer = S::Writer;

    async fn get(&self, key: &str) -> Result<Option<Hit<S::Body>>, StoreError> {
        self.check_subscribed()?;
        self.inner.store.get(key).await
    }

    /// What the inner store gives at once (a memory-tier hit), on the same terms as `get`.
    fn try_get(&self, key: &str) -> Option<Result<Option<Hit<S::Body>>, StoreError>> {
        if let Err(e) = self.check_subscribed() {
            return Some(Err(e));
        }
        self.inner.store.try_get(key)
    }

    fn begin(&self, key: &str) -> Result<S::Writer, StoreError> {
        self.check_subscribed()?;
        self.inner.store.begin(key)
    }

    async fn update(
        &self,
        key: &str,
        previous: &Meta,
        meta: Arc<Meta>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.inner.store.update(key, previous, meta, ttl).await
    }

    /// Deletes on the inner store (raising the key's fence in Redis) and announces the key.
    ///
    /// # Errors
    ///
    /// When Redis could not be reached, to delete or to announce: the purge did not reach the
    /// fleet (the message says so); the local copy is gone all the same.
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let result = self.inner.store.delete(key).await;
        let announced = self.announce(vec![key.to_owned()]).await;
        result.and(announced).map_err(not_in_fleet)
    }

    fn max_body_size(&self) -> Option<u64> {
        self.inner.store.max_body_size()
    }

    async fn scan(&self) -> Result<Vec<(String, Meta)>, StoreError> {
        self.inner.store.scan().await
    }

    async fn purge<F>(&self, matches: F) -> Result<u64, StoreError>
    where
        F: Fn(&str, &Meta) -> bool + Send + Sync + 'static,
    {
        let found = Arc::new(Mutex::new(HashSet::new()));
        let record = Arc::clone(&found);
        let result = self
            .inner
            .store
            .purge(move |key, meta| {
                let hit = matches(key, meta);
                if hit {
                    record
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(key.to_owned());
                }
                hit
            })
            .await;
        let keys: Vec<String> =
            std::mem::take(&mut *found.lock().unwrap_or_else(PoisonError::into_inner))
                .into_iter()
                .collect();
        let announced = if keys.is_empty() {
            Ok(())
        } else {
            self.announce(keys).await
        };
        result
            .and_then(|n| announced.map(|()| n))
            .map_err(not_in_fleet)
    }
}
