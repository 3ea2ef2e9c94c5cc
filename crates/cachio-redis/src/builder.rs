//! [`RedisStoreBuilder`]: the options of a [`RedisStore`] and connecting it.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use cachio_core::store::{ErrorKind, StoreError};

use crate::conn::{Core, Counters, GenerationIds, Locals, Runtime, Settings, Shared, Target};
use crate::{
    DEFAULT_BREAKER_COOLDOWN, DEFAULT_BREAKER_THRESHOLD, DEFAULT_CLOCK_SKEW,
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_MAX_OBJECT_SIZE, DEFAULT_PENDING_TTL, DEFAULT_PREFIX,
    DEFAULT_RETIRED_GRACE, DEFAULT_TIMEOUT, DEFAULT_WRITE_QUEUE_BYTES, RedisStore, breaker, fence,
    tls,
};

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
    clock_skew: Duration,
    breaker_threshold: u32,
    breaker_cooldown: Duration,
    tls: tls::Tls,
}

impl RedisStoreBuilder {
    pub(crate) fn new(target: Target) -> Self {
        RedisStoreBuilder {
            target,
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            max_object: DEFAULT_MAX_OBJECT_SIZE,
            write_queue: DEFAULT_WRITE_QUEUE_BYTES,
            pending_ttl: DEFAULT_PENDING_TTL,
            retired_grace: DEFAULT_RETIRED_GRACE,
            clock_skew: DEFAULT_CLOCK_SKEW,
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

    /// How far apart the clocks of the fleet's nodes and of Redis may be (default
    /// [`DEFAULT_CLOCK_SKEW`]). A commit is refused ([`ErrorKind::Invalidated`]) when a purge
    /// or an invalidation of its key, timed by Redis's clock, came at or after its response's
    /// request time (the node's clock) minus this allowance. A larger allowance refuses more
    /// fetches that started just after a purge (each refusal costs only a store); a smaller one
    /// than the real skew lets a node whose clock runs ahead store what a purge removed. Keep
    /// the clocks in step with NTP (typically within milliseconds) and leave a margin.
    ///
    /// The two clocks compared are Redis's (`TIME`, when the purge ran) and the one the cache
    /// layer times its requests with (`CacheLayer::clock`, the system clock by default). A layer
    /// on a clock of its own that runs behind the real time (a `ManualClock` set in the past, as
    /// tests do) requests everything "before" any purge: after a delete of a key, nothing is
    /// stored under that key, and after a purge by a predicate (a prefix or tag purge) nothing
    /// at all, until that clock passes the purge's time plus this allowance, or the fence
    /// expires an hour later. Over a fleet store, keep the layer's clock the real one. A manual
    /// clock set ahead of the real time (tests) keeps storing, but as for any clock ahead by more
    /// than the allowance, a fetch in flight during a purge may then be stored after it.
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let store = cachio_redis::RedisStore::builder("redis://127.0.0.1/")
    ///     .clock_skew(Duration::from_millis(250))
    ///     .build()?;
    /// # let _ = store;
    /// # Ok::<(), cachio_core::store::StoreError>(())
    /// ```
    pub fn clock_skew(self, skew: Duration) -> Self {
        Self {
            clock_skew: skew,
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
        self.tls.check(self.target.urls()).map_err(bad)?;
        let connector = self
            .target
            .connector(&self.tls, self.connect_timeout, self.timeout)
            .map_err(bad)?;
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
        let fences = fence::Fences::new(&self.prefix, matches!(self.target, Target::Cluster(_)));
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
                clock_skew: self.clock_skew,
                tls: self.tls,
            },
            breaker: breaker::Breaker::new(self.breaker_threshold, self.breaker_cooldown),
            counters: Counters::default(),
            queued: AtomicU64::new(0),
            generations: GenerationIds::new(),
            connect_error: std::sync::Mutex::new(None),
            connect_failed: std::sync::atomic::AtomicBool::new(false),
            fences,
            variant_times: fence::VariantTimes::default(),
        });
        core.warm_up(&runtime);
        Ok(RedisStore {
            shared: Arc::new(Shared { core, runtime }),
            target: Arc::new(self.target),
        })
    }
}
