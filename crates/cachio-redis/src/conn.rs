//! The connection to Redis (one server or a cluster), the store's own runtime, and the wrapper
//! every Redis call goes through: a timeout, error mapping and the circuit breaker.

use std::collections::HashMap;
use std::future::Future;
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

/// Counters of what went wrong, for [`crate::RedisStats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) timeouts: AtomicU64,
    pub(crate) unavailable: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) corrupt: AtomicU64,
}

/// What every part of the store shares: the connection, the settings, the breaker.
pub(crate) struct Core {
    /// The connection on the store's runtime.
    pub(crate) conn: Conn,
    pub(crate) connector: Connector,
    pub(crate) locals: Locals,
    pub(crate) settings: crate::Settings,
    pub(crate) breaker: Breaker,
    pub(crate) counters: Counters,
    /// Body bytes appended and not yet written, across all writers.
    pub(crate) queued: AtomicU64,
    pub(crate) generations: crate::GenerationIds,
    /// Why the last probe could not connect, until a call succeeds: told with the calls that
    /// time out meanwhile.
    pub(crate) connect_error: Mutex<Option<String>>,
    pub(crate) connect_failed: AtomicBool,
}

impl Core {
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
