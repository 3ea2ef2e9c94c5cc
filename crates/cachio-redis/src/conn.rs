//! The connection to Redis (one server or a cluster), the store's own runtime, and the wrapper
//! every Redis call goes through: a timeout, error mapping and the circuit breaker.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use cachio_core::store::{ErrorKind, StoreError};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, FromRedisValue, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value};
use tokio::sync::oneshot;

use crate::breaker::Breaker;
use crate::tls::Tls;

/// A connection to one Redis server (reconnecting) or to a Redis Cluster.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

impl Conn {
    /// The masters to scan: `None` for a single server (scan it through the connection), or the
    /// `(host, port)` of every master of the cluster.
    pub(crate) async fn masters(&self) -> RedisResult<Option<Vec<(String, u16)>>> {
        let Conn::Cluster(c) = self else {
            return Ok(None);
        };
        let mut c = c.clone();
        let slots = c
            .route_command(
                redis::cmd("CLUSTER").arg("SLOTS").clone(),
                RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random),
            )
            .await?;
        let mut masters = Vec::new();
        if let Value::Array(ranges) = slots {
            for range in ranges {
                let Value::Array(parts) = range else { continue };
                let Some(Value::Array(node)) = parts.get(2) else {
                    continue;
                };
                let host = match node.first() {
                    Some(Value::BulkString(h)) => String::from_utf8_lossy(h).into_owned(),
                    Some(Value::SimpleString(h)) => h.clone(),
                    _ => continue,
                };
                let Some(Value::Int(port)) = node.get(1) else {
                    continue;
                };
                let Ok(port) = u16::try_from(*port) else {
                    continue;
                };
                if !masters.contains(&(host.clone(), port)) {
                    masters.push((host, port));
                }
            }
        }
        Ok(Some(masters))
    }

    /// One `SCAN` step on `node` (a cluster master) or on the single server.
    pub(crate) async fn scan(
        &self,
        node: Option<&(String, u16)>,
        cursor: u64,
        pattern: &str,
        count: usize,
    ) -> RedisResult<(u64, Vec<String>)> {
        let mut cmd = redis::cmd("SCAN");
        cmd.arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(count)
            .arg("TYPE")
            .arg("string");
        let value = match (self, node) {
            (Conn::Cluster(c), Some((host, port))) => {
                c.clone()
                    .route_command(
                        cmd,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
                            host: host.clone(),
                            port: *port,
                        }),
                    )
                    .await?
            }
            _ => cmd.query_async::<Value>(&mut self.clone()).await?,
        };
        Ok(redis::from_redis_value(value)?)
    }
}

/// Where a store connects.
#[derive(Clone, Debug)]
pub(crate) enum Target {
    Single(String),
    Cluster(Vec<String>),
}

impl Target {
    /// The server's URL, or the cluster's.
    pub(crate) fn urls(&self) -> &[String] {
        match self {
            Target::Single(url) => std::slice::from_ref(url),
            Target::Cluster(urls) => urls.as_slice(),
        }
    }

    /// The client of the server or the cluster, with `tls` and the timeouts.
    pub(crate) fn connector(
        &self,
        tls: &Tls,
        connect_timeout: Duration,
        timeout: Duration,
    ) -> Result<Connector, String> {
        Ok(match self {
            Target::Single(url) => {
                let client = tls
                    .client(url)
                    .map_err(|e| format!("bad Redis URL {url:?}: {e}"))?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(connect_timeout))
                    .set_response_timeout(None)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500))
                    .set_number_of_retries(1_000_000);
                Connector::Single(client, config)
            }
            Target::Cluster(urls) => {
                if urls.is_empty() {
                    return Err("no Redis Cluster node given".into());
                }
                let builder =
                    redis::cluster::ClusterClient::builder(urls.iter().map(String::as_str))
                        .connection_timeout(connect_timeout)
                        .response_timeout(timeout.max(Duration::from_millis(500)))
                        .retries(2)
                        .min_retry_wait(10)
                        .max_retry_wait(200);
                #[cfg(feature = "tls")]
                let builder = if crate::tls::is_tls_url(&urls[0]) {
                    builder.certs(tls.certificates())
                } else {
                    builder
                };
                let client = builder
                    .build()
                    .map_err(|e| format!("bad Redis Cluster URLs {urls:?}: {e}"))?;
                Connector::Cluster(client)
            }
        })
    }
}

/// How to make a [`Conn`]: the client and its settings, kept to open one connection per
/// calling runtime.
#[derive(Clone)]
pub(crate) enum Connector {
    Single(redis::Client, ConnectionManagerConfig),
    Cluster(ClusterClient),
}

impl Connector {
    /// A connection that connects in the background, on the current runtime.
    pub(crate) fn lazy(&self) -> RedisResult<Conn> {
        Ok(match self {
            Connector::Single(client, config) => {
                Conn::Single(client.get_connection_manager_lazy(config.clone())?)
            }
            Connector::Cluster(client) => {
                Conn::Cluster(client.get_pending_async_connection_with_config(ClusterConfig::new()))
            }
        })
    }

    /// Connects once, apart from the store's connections, and `PING`s: why connecting fails
    /// (a refused connection, a certificate that is not trusted, a wrong password), which the
    /// store's own connections, retrying by themselves, only show as calls that time out.
    pub(crate) async fn probe(&self, wait: Duration) -> Result<(), String> {
        let attempt = async {
            match self {
                Connector::Single(client, _) => {
                    let mut c = client.get_multiplexed_async_connection().await?;
                    redis::cmd("PING").query_async::<Value>(&mut c).await
                }
                Connector::Cluster(client) => {
                    let mut c = client.get_async_connection().await?;
                    redis::cmd("PING").query_async::<Value>(&mut c).await
                }
            }
        };
        match tokio::time::timeout(wait, attempt).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no connection within {wait:?}")),
        }
    }

    /// A connection made now, on the current runtime.
    async fn connect(&self) -> RedisResult<Conn> {
        Ok(match self {
            Connector::Single(client, config) => Conn::Single(
                client
                    .get_connection_manager_with_config(config.clone())
                    .await?,
            ),
            Connector::Cluster(client) => Conn::Cluster(
                client
                    .get_async_connection_with_config(ClusterConfig::new())
                    .await?,
            ),
        })
    }
}

/// At most this many runtimes get a connection of their own; calls from others hop to the
/// store's runtime. (Runtime ids are never reused, so a runtime that is gone keeps its slot.)
const MAX_LOCAL: usize = 64;

/// How long after a failed attempt to connect from a runtime the next attempt is made.
const LOCAL_RETRY: Duration = Duration::from_secs(1);

/// The connection of one calling runtime.
enum Local {
    /// Being made, by a task on that runtime.
    Connecting,
    Ready(Conn),
    /// The last attempt failed: try again after this.
    Failed(Instant),
    /// The runtime cannot run a connection (no timer or no IO driver): always hop.
    Never,
}

/// The connections made on the runtimes the store is called from, by runtime id: reads use
/// them, rather than hopping to the store's runtime and back.
#[derive(Default)]
pub(crate) struct Locals {
    map: Mutex<HashMap<tokio::runtime::Id, Local>>,
}

impl Locals {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<tokio::runtime::Id, Local>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Records the end of a connecting task, whatever the way it ends: a panic (a runtime
/// without timer or IO) means never on that runtime, a cancellation (the runtime shutting
/// down) forgets the attempt.
struct ConnectingGuard {
    core: Weak<Core>,
    id: tokio::runtime::Id,
    outcome: Option<Local>,
}

impl Drop for ConnectingGuard {
    fn drop(&mut self) {
        let Some(core) = self.core.upgrade() else {
            return;
        };
        let mut map = core.locals.lock();
        match self.outcome.take() {
            Some(local) => {
                map.insert(self.id, local);
            }
            None if std::thread::panicking() => {
                map.insert(self.id, Local::Never);
            }
            None => {
                map.remove(&self.id);
            }
        }
    }
}

/// Whether an error means Redis is not there (down, restarting, unreachable, failing over), as
/// opposed to Redis answering with an error.
fn unreachable(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || matches!(
            e.kind(),
            redis::ErrorKind::ClusterConnectionNotFound
                | redis::ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::ClusterDown
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::MasterDown
                )
        )
}

/// What went wrong with Redis so far, for metrics and tests. Made by [`RedisStore::stats`](crate::RedisStore::stats).
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
    /// Commits refused because a purge or an invalidation of their key (on any node) came after
    /// their response was requested: nothing was stored (see [`crate::Broadcast`], "Running a
    /// fleet").
    pub invalidated: u64,
    /// How many times the circuit breaker opened.
    pub breaker_opened: u64,
}

/// Counters of what went wrong, for [`crate::RedisStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) timeouts: AtomicU64,
    pub(crate) unavailable: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) corrupt: AtomicU64,
    pub(crate) invalidated: AtomicU64,
}

impl Counters {
    /// The counts now, with the breaker's count of openings.
    pub(crate) fn snapshot(&self, breaker_opened: u64) -> RedisStats {
        RedisStats {
            timeouts: self.timeouts.load(Ordering::Relaxed),
            unavailable: self.unavailable.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            corrupt: self.corrupt.load(Ordering::Relaxed),
            invalidated: self.invalidated.load(Ordering::Relaxed),
            breaker_opened,
        }
    }
}

/// What every part of the store shares: the connection, the settings, the breaker.
pub(crate) struct Core {
    /// The connection on the store's runtime.
    pub(crate) conn: Conn,
    pub(crate) connector: Connector,
    pub(crate) locals: Locals,
    pub(crate) settings: Settings,
    pub(crate) breaker: Breaker,
    pub(crate) counters: Counters,
    /// Body bytes appended and not yet written, across all writers.
    pub(crate) queued: AtomicU64,
    pub(crate) generations: GenerationIds,
    /// Why the last probe could not connect, until a call succeeds: told with the calls that
    /// time out meanwhile.
    pub(crate) connect_error: Mutex<Option<String>>,
    pub(crate) connect_failed: AtomicBool,
    /// The fence and floor keys (`fence.rs`).
    pub(crate) fences: crate::fence::Fences,
    /// The request times of variants, for their indexes' commits (`fence.rs`).
    pub(crate) variant_times: crate::fence::VariantTimes,
}

impl Core {
    /// Connects now rather than on the first request, and says once, at a level operators see,
    /// when it cannot.
    pub(crate) fn warm_up(self: &Arc<Self>, runtime: &Runtime) {
        // Not through the breaker: a Redis that is still starting must not open it.
        let warm = Arc::clone(self);
        runtime.handle.spawn(async move {
            let mut c = warm.conn.clone();
            let cmd = redis::cmd("PING");
            let ping = tokio::time::timeout(
                Duration::from_secs(5),
                cmd.query_async::<redis::Value>(&mut c),
            );
            let _ = ping.await;
        });
        let probe = Arc::clone(self);
        runtime.handle.spawn(async move {
            // Said once, at a level operators see: a wrong address, password or certificate
            // would otherwise only show as a cache that misses.
            if let Err(e) = probe.connector.probe(probe.settings.connect_timeout).await {
                tracing::warn!(error = %e, "cannot connect to Redis; the cache steps aside until it can");
                probe.set_connect_error(Some(e));
            }
        });
    }

    pub(crate) fn unavailable(&self, why: impl Into<String>) -> StoreError {
        StoreError::new(ErrorKind::Unavailable, why.into())
    }

    /// Records why connecting fails ([`Connector::probe`]), or that it works.
    pub(crate) fn set_connect_error(&self, error: Option<String>) {
        let mut slot = self
            .connect_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        self.connect_failed
            .store(error.is_some(), Ordering::Relaxed);
        *slot = error;
    }

    /// The error for a call refused by the open breaker.
    pub(crate) fn refused(&self) -> StoreError {
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        self.unavailable("Redis is unavailable (circuit open after repeated failures)")
    }

    /// The connection living on the current runtime, when there is one and it is connected;
    /// `None` otherwise (the caller hops to the store's runtime). The first call from a runtime
    /// starts connecting on it, in the background.
    pub(crate) fn local_conn(self: &Arc<Self>) -> Option<Conn> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let id = handle.id();
        {
            let mut map = self.locals.lock();
            match map.get(&id) {
                Some(Local::Ready(c)) => return Some(c.clone()),
                Some(Local::Connecting | Local::Never) => return None,
                Some(Local::Failed(at)) if Instant::now() < *at => return None,
                Some(Local::Failed(_)) => {}
                None if map.len() >= MAX_LOCAL => return None,
                None => {}
            }
            map.insert(id, Local::Connecting);
        }
        let connector = self.connector.clone();
        let wait = self.settings.connect_timeout;
        let guard = ConnectingGuard {
            core: Arc::downgrade(self),
            id,
            outcome: None,
        };
        handle.spawn(async move {
            let mut guard = guard;
            let outcome = match tokio::time::timeout(wait, connector.connect()).await {
                Ok(Ok(conn)) => Local::Ready(conn),
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "cannot connect to Redis from this runtime yet");
                    Local::Failed(Instant::now() + LOCAL_RETRY)
                }
                Err(_) => Local::Failed(Instant::now() + LOCAL_RETRY),
            };
            guard.outcome = Some(outcome);
        });
        None
    }

    /// Runs one read on the current runtime's connection when it has one, else on the
    /// store's runtime: within the timeout, through the breaker, either way.
    pub(crate) async fn read<T: FromRedisValue + Send + 'static>(
        self: &Arc<Self>,
        runtime: &Runtime,
        what: &'static str,
        cmd: Cmd,
    ) -> Result<T, StoreError> {
        if let Some(mut c) = self.local_conn() {
            return self.exec(what, cmd.query_async(&mut c)).await;
        }
        let core = Arc::clone(self);
        runtime
            .run(async move {
                let mut c = core.conn.clone();
                core.exec(what, cmd.query_async(&mut c)).await
            })
            .await
    }

    /// Runs one Redis call within the timeout, through the breaker. Must run on the store's
    /// runtime, or on the runtime of the connection it uses.
    pub(crate) async fn exec<T>(
        &self,
        what: &'static str,
        call: impl Future<Output = RedisResult<T>>,
    ) -> Result<T, StoreError> {
        let Some(permit) = self.breaker.allow() else {
            return Err(self.refused());
        };
        match tokio::time::timeout(self.settings.timeout, call).await {
            Ok(Ok(v)) => {
                self.breaker.success(&permit);
                if self.connect_failed.load(Ordering::Relaxed) {
                    self.set_connect_error(None);
                }
                Ok(v)
            }
            Ok(Err(e)) if unreachable(&e) => {
                self.breaker.failure(&permit);
                self.counters.unavailable.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, what, "Redis unavailable");
                Err(StoreError::new(ErrorKind::Unavailable, e))
            }
            Ok(Err(e)) => {
                // Redis answered, with an error: it is there.
                self.breaker.success(&permit);
                self.counters.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, what, "Redis error");
                Err(StoreError::new(ErrorKind::Other, e))
            }
            Err(_) => {
                self.breaker.failure(&permit);
                self.counters.timeouts.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(what, timeout = ?self.settings.timeout, "Redis call timed out");
                let why = match &*self
                    .connect_error
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                {
                    Some(e) => format!(" (cannot connect: {e})"),
                    None => String::new(),
                };
                Err(self.unavailable(format!(
                    "Redis did not answer {what} within {:?}{why}",
                    self.settings.timeout
                )))
            }
        }
    }
}

/// The store's own single-threaded tokio runtime, on a thread of its own: the connection, the
/// writer tasks and the subscriber live there, so the store works from any runtime (or several,
/// like the gateway's one runtime per core) and outlives none of them. Stopped when dropped.
pub(crate) struct Runtime {
    pub(crate) handle: tokio::runtime::Handle,
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl Runtime {
    pub(crate) fn start() -> std::io::Result<Runtime> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let handle = rt.handle().clone();
        let (tx, rx) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("cachio-redis".into())
            .spawn(move || {
                rt.block_on(async move {
                    let _ = rx.await;
                });
                // Dropping the runtime here cancels the tasks still in it (subscribers, writers
                // whose store was dropped).
                drop(rt);
            })?;
        Ok(Runtime {
            handle,
            stop: Mutex::new(Some(tx)),
        })
    }

    /// Runs `fut` on the store's runtime and waits for it.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, StoreError>> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.handle.spawn(fut).await.unwrap_or_else(|e| {
            Err(StoreError::new(
                ErrorKind::Unavailable,
                format!("the cachio-redis runtime stopped: {e}"),
            ))
        })
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let stop = self
            .stop
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
    }
}

/// `Arc<Core>` plus the runtime, as the store, its writers and its bodies hold it: the runtime
/// stops when the last of them is gone.
pub(crate) struct Shared {
    pub(crate) core: Arc<Core>,
    pub(crate) runtime: Runtime,
}

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
    /// How far apart the clocks of the nodes and of Redis may be (`fence.rs`).
    pub(crate) clock_skew: Duration,
    pub(crate) tls: crate::tls::Tls,
}

/// Fresh generation ids (and node ids): a random 64-bit seed per store mixed with a counter, so
/// that writers on different nodes of a fleet never pick the same id (the chance is 2^-64 per
/// pair) and writers of one store never do.
pub(crate) struct GenerationIds {
    seed: u64,
    next: AtomicU64,
}

impl GenerationIds {
    pub(crate) fn new() -> Self {
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
}
