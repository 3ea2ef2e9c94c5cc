//! The store: a memory tier, alone or over a disk tier or a Redis shared by a fleet. Their
//! settings (the [`GatewayBuilder`] setters below) and the opening of the stores.

use std::path::PathBuf;
use std::time::Duration;

use cachio_moka::MokaStore;

use crate::router::assemble;
use crate::sites::Resolved;
use crate::{
    DEFAULT_DISK_CACHE_BYTES, DEFAULT_MAX_OBJECT_BYTES, DEFAULT_MEMORY_BYTES, Gateway,
    GatewayBuilder, GatewayError,
};

/// The store's settings: the memory tier, and a disk or a Redis tier behind it.
#[derive(Debug)]
pub(crate) struct Tiers {
    memory_bytes: u64,
    /// The largest body stored, in any tier.
    pub(crate) max_object_bytes: u64,
    disk: Option<(PathBuf, u64)>,
    /// fjall's block cache, in bytes.
    disk_cache: u64,
    redis: Option<RedisTarget>,
    redis_prefix: Option<String>,
    redis_timeout: Option<Duration>,
    redis_clock_skew: Option<Duration>,
    redis_ca: Option<PathBuf>,
    redis_client_cert: Option<(PathBuf, PathBuf)>,
}

impl Default for Tiers {
    fn default() -> Self {
        Self {
            memory_bytes: DEFAULT_MEMORY_BYTES,
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
            disk: None,
            disk_cache: DEFAULT_DISK_CACHE_BYTES,
            redis: None,
            redis_prefix: None,
            redis_timeout: None,
            redis_clock_skew: None,
            redis_ca: None,
            redis_client_cert: None,
        }
    }
}

/// Where the shared Redis tier is.
#[derive(Clone, Debug)]
#[cfg_attr(
    not(feature = "redis"),
    expect(dead_code, reason = "read only by the `redis` feature")
)]
enum RedisTarget {
    Single(String),
    Cluster(Vec<String>),
}

impl GatewayBuilder {
    /// The memory tier's size in bytes ([`DEFAULT_MEMORY_BYTES`] by default).
    pub fn memory_bytes(mut self, bytes: u64) -> Self {
        self.tiers.memory_bytes = bytes;
        self
    }

    /// Adds a disk tier in directory `dir` with a budget of `bytes`, behind the memory tier:
    /// hits on disk are copied into memory, writes go to both. Needs the `disk` feature
    /// (on by default); [`build`](Self::build) fails without it.
    pub fn disk(mut self, dir: impl Into<PathBuf>, bytes: u64) -> Self {
        self.tiers.disk = Some((dir.into(), bytes));
        self
    }

    /// The disk tier's block cache in bytes ([`DEFAULT_DISK_CACHE_BYTES`] by default): the
    /// recently read parts of the disk tier's files, kept in memory on top of the memory tier
    /// (see "Memory" in the README's gateway section).
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_gateway::Gateway;
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// let gateway = Gateway::builder("http://127.0.0.1:9000")
    ///     .memory_bytes(64 << 20)
    ///     .disk(dir.path(), 1 << 30)
    ///     .disk_cache_bytes(32 << 20)
    ///     .build()?;
    /// # let _ = gateway;
    /// # Ok::<(), cachio_gateway::GatewayError>(())
    /// ```
    pub fn disk_cache_bytes(mut self, bytes: u64) -> Self {
        self.tiers.disk_cache = bytes;
        self
    }

    /// Shares the cache with every gateway on the same Redis server and
    /// [prefix](Self::redis_prefix): a memory tier over Redis (`redis://[user:password@]host[:port][/db]`),
    /// whose purges and invalidations reach the memory tier of every gateway of the fleet (see
    /// "Running a fleet" in the `cachio-redis` documentation). A response fetched by one gateway
    /// is a hit on all of them. While Redis is down or slow, the cache steps aside (requests go
    /// to the origin, each Redis call bounded by [`redis_timeout`](Self::redis_timeout)) and
    /// comes back by itself. Needs the `redis` feature (on by default); cannot be combined with
    /// [`disk`](Self::disk).
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_gateway::Gateway;
    ///
    /// // Building does not wait for Redis: it connects in the background.
    /// let gateway = Gateway::builder("http://127.0.0.1:9000")
    ///     .redis_url("redis://127.0.0.1:6379/")
    ///     .redis_prefix("shop")
    ///     .build()?;
    /// assert!(gateway.metrics().contains("cachio_fleet_subscribed"));
    /// # Ok::<(), cachio_gateway::GatewayError>(())
    /// ```
    pub fn redis_url(mut self, url: impl Into<String>) -> Self {
        self.tiers.redis = Some(RedisTarget::Single(url.into()));
        self
    }

    /// Like [`redis_url`](Self::redis_url), on the Redis Cluster that these nodes belong to.
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_gateway::Gateway;
    ///
    /// let gateway = Gateway::builder("http://127.0.0.1:9000")
    ///     .redis_cluster(["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"])
    ///     .build()?;
    /// # let _ = gateway;
    /// # Ok::<(), cachio_gateway::GatewayError>(())
    /// ```
    pub fn redis_cluster<I, U>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        self.tiers.redis = Some(RedisTarget::Cluster(
            urls.into_iter().map(Into::into).collect(),
        ));
        self
    }

    /// The key prefix in Redis (`cachio` by default): the gateways of one fleet share it, other
    /// deployments on the same Redis use their own.
    pub fn redis_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.tiers.redis_prefix = Some(prefix.into());
        self
    }

    /// How long one Redis call may take before the cache steps aside for that request (50 ms
    /// by default).
    pub fn redis_timeout(mut self, timeout: Duration) -> Self {
        self.tiers.redis_timeout = Some(timeout);
        self
    }

    /// How far the clocks of the fleet's gateways and of Redis may be apart (1 s by default;
    /// `RedisStoreBuilder::clock_skew` in `cachio-redis`): a response whose request was sent up
    /// to this long after a purge of its key on any gateway is not stored, since by Redis's
    /// clock the purge may have come after it. A wider margin refuses more fetches that began
    /// just after a purge (each costs a store); a narrower one than the real skew lets a gateway
    /// whose clock runs ahead store what a purge removed.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use cachio_gateway::Gateway;
    ///
    /// let gateway = Gateway::builder("http://127.0.0.1:9000")
    ///     .redis_url("redis://127.0.0.1:6379/")
    ///     .redis_clock_skew(Duration::from_millis(250))
    ///     .build()?;
    /// # let _ = gateway;
    /// # Ok::<(), cachio_gateway::GatewayError>(())
    /// ```
    pub fn redis_clock_skew(mut self, skew: Duration) -> Self {
        self.tiers.redis_clock_skew = Some(skew);
        self
    }

    /// Trusts the certificate authorities in this PEM file for a `rediss://` Redis, instead of
    /// the system's root certificates (a Redis whose certificate a private CA signed). The file
    /// is read by [`build`](Self::build). Needs the `redis-tls` feature (on by default).
    ///
    /// # Example
    ///
    /// ```no_run
    /// // Needs the CA file, so it is compiled but not run by `cargo test`.
    /// let gateway = cachio_gateway::Gateway::builder("http://127.0.0.1:9000")
    ///     .redis_url("rediss://redis.internal:6380/")
    ///     .redis_ca("/etc/cachio/redis-ca.pem")
    ///     .build()?;
    /// # let _ = gateway;
    /// # Ok::<(), cachio_gateway::GatewayError>(())
    /// ```
    pub fn redis_ca(mut self, pem_file: impl Into<PathBuf>) -> Self {
        self.tiers.redis_ca = Some(pem_file.into());
        self
    }

    /// Presents this client certificate (a PEM file: the certificate, then any intermediates)
    /// and private key (a PEM file) to a `rediss://` Redis that asks for one (mutual TLS). The
    /// files are read by [`build`](Self::build). Needs the `redis-tls` feature (on by default).
    ///
    /// # Example
    ///
    /// ```no_run
    /// // Needs the files, so it is compiled but not run by `cargo test`.
    /// let gateway = cachio_gateway::Gateway::builder("http://127.0.0.1:9000")
    ///     .redis_url("rediss://redis.internal:6380/")
    ///     .redis_ca("/etc/cachio/redis-ca.pem")
    ///     .redis_client_cert("/etc/cachio/gateway.pem", "/etc/cachio/gateway.key")
    ///     .build()?;
    /// # let _ = gateway;
    /// # Ok::<(), cachio_gateway::GatewayError>(())
    /// ```
    pub fn redis_client_cert(
        mut self,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        self.tiers.redis_client_cert = Some((cert_file.into(), key_file.into()));
        self
    }

    /// The largest response body stored ([`DEFAULT_MAX_OBJECT_BYTES`] by default). Larger
    /// responses stream through without being stored. With a disk tier, bodies over an eighth
    /// of the memory tier are kept on disk only.
    pub fn max_object_bytes(mut self, bytes: u64) -> Self {
        self.tiers.max_object_bytes = bytes;
        self
    }
}

impl Tiers {
    /// The memory tier. Alone it keeps every body the gateway stores; in front of a disk or
    /// Redis tier, only those up to an eighth of its size (the larger stay in the tier behind).
    fn memory(&self, alone: bool) -> MokaStore {
        let max_body = if alone {
            self.max_object_bytes
        } else {
            self.max_object_bytes.min(self.memory_bytes / 8)
        };
        MokaStore::builder()
            .max_capacity_bytes(self.memory_bytes)
            .max_body_size(max_body)
            .build()
    }
}

/// The bytes of body chunks that may wait for the disk tier's writer: past it, responses are
/// passed on without being stored until the disk catches up. Each waiting chunk can keep a
/// connection's read buffer alive, so this counts for more than its bytes in memory.
#[cfg(feature = "disk")]
const DISK_WRITE_QUEUE: u64 = 4 << 20;

/// Opens the stores `b` asks for and assembles the gateway over them.
pub(crate) fn open(b: &GatewayBuilder, sites: Vec<Resolved>) -> Result<Gateway, GatewayError> {
    let tiers = &b.tiers;
    if let Some(target) = &tiers.redis {
        if tiers.disk.is_some() {
            return Err(GatewayError::Config(
                "a disk tier and a Redis tier cannot be combined: choose one".into(),
            ));
        }
        return open_redis(b, target, sites);
    }
    match &tiers.disk {
        None => Ok(assemble(tiers.memory(true), b, sites, None)),
        #[cfg(feature = "disk")]
        Some((dir, budget)) => {
            let disk = cachio_fjall::FjallStore::builder(dir)
                .budget_bytes(*budget)
                .max_object_size(tiers.max_object_bytes)
                .write_queue_bytes(DISK_WRITE_QUEUE)
                .cache_bytes(tiers.disk_cache)
                .open()
                .map_err(GatewayError::Disk)?;
            // At shutdown, the journal goes to disk once the last commits are in.
            let mut settle = crate::settle::Settle::default();
            let synced = disk.clone();
            settle.sync(move || {
                let disk = synced.clone();
                async move { disk.sync().await }
            });
            let store = cachio_core::tiered::Tiered::new(tiers.memory(false), disk);
            Ok(assemble(store, b, sites, Some(settle)))
        }
        #[cfg(not(feature = "disk"))]
        Some(_) => Err(GatewayError::DiskUnsupported),
    }
}

/// Memory over Redis, with the fleet's invalidation broadcast.
#[cfg(feature = "redis")]
fn open_redis(
    b: &GatewayBuilder,
    target: &RedisTarget,
    sites: Vec<Resolved>,
) -> Result<Gateway, GatewayError> {
    let tiers = &b.tiers;
    let mut redis = match target {
        RedisTarget::Single(url) => cachio_redis::RedisStore::builder(url.clone()),
        RedisTarget::Cluster(urls) => cachio_redis::RedisStore::cluster_builder(urls.clone()),
    }
    .max_object_size(tiers.max_object_bytes);
    if let Some(prefix) = &tiers.redis_prefix {
        redis = redis.prefix(prefix.clone());
    }
    if let Some(timeout) = tiers.redis_timeout {
        redis = redis.timeout(timeout);
    }
    if let Some(skew) = tiers.redis_clock_skew {
        redis = redis.clock_skew(skew);
    }
    let read = |what: &str, path: &PathBuf| {
        std::fs::read(path).map_err(|e| {
            GatewayError::Config(format!(
                "cannot read the Redis {what} {}: {e}",
                path.display()
            ))
        })
    };
    if let Some(ca) = &tiers.redis_ca {
        redis = redis.tls_ca(read("CA", ca)?);
    }
    if let Some((cert, key)) = &tiers.redis_client_cert {
        redis = redis.tls_client_cert(read("client certificate", cert)?, read("client key", key)?);
    }
    let redis = redis.build().map_err(GatewayError::Redis)?;
    let store = cachio_redis::Broadcast::fleet(tiers.memory(false), redis);
    Ok(assemble(store, b, sites, None))
}

#[cfg(not(feature = "redis"))]
fn open_redis(
    _: &GatewayBuilder,
    _: &RedisTarget,
    _: Vec<Resolved>,
) -> Result<Gateway, GatewayError> {
    Err(GatewayError::RedisUnsupported)
}
