//! The connection to Redis (one server or a cluster), the store's own runtime, and the wrapper
//! every Redis call goes through: a timeout, error mapping and the circuit breaker.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use cachio_core::store::{ErrorKind, StoreError};
use redis::aio::{ConnectionLike, ConnectionManager};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, RedisError, RedisFuture, RedisResult, ServerErrorKind, Value};
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
    pub(crate) conn: Conn,
    pub(crate) settings: crate::Settings,
    pub(crate) breaker: Breaker,
    pub(crate) counters: Counters,
    /// Body bytes appended and not yet written, across all writers.
    pub(crate) queued: AtomicU64,
    pub(crate) generations: crate::GenerationIds,
}

impl Core {
    pub(crate) fn unavailable(&self, why: impl Into<String>) -> StoreError {
        StoreError::new(ErrorKind::Unavailable, why.into())
    }

    /// The error for a call refused by the open breaker.
    pub(crate) fn refused(&self) -> StoreError {
        self.counters.refused.fetch_add(1, Ordering::Relaxed);
        self.unavailable("Redis is unavailable (circuit open after repeated failures)")
    }

    /// Runs one Redis call within the timeout, through the breaker. Must run on the store's
    /// runtime.
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
                Err(self.unavailable(format!(
                    "Redis did not answer {what} within {:?}",
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
