//! A caching reverse proxy built on cachio: an axum [`Router`] you can mount in your own app,
//! and the `cachio-gateway` binary.
//!
//! The gateway forwards every request to one origin and keeps what RFC 9111 allows in a
//! [`CacheLayer`] over memory (and optionally disk, or a Redis shared by a fleet of gateways,
//! see [`GatewayBuilder::redis_url`]). It forwards the
//! method, the path and the query byte for byte and every header field except the hop-by-hop
//! ones (RFC 9110 §7.6.1) and those it owns or drops (below), appends `Via`, streams bodies both
//! ways, and invents no lifetime unless told to ([`GatewayBuilder::default_ttl`]); a response
//! with `Last-Modified` and no explicit lifetime is heuristically fresh for a tenth of its age, up
//! to a day, unless [`GatewayBuilder::heuristics`] is off. The origin's interim responses (`103 Early
//! Hints`, `102 Processing`) reach HTTP/1.1 clients as they arrive when the router runs under
//! [`serve`] or [`serve_threaded`]; they are never stored. Concurrent misses for one URL share one
//! origin fetch; stale responses are revalidated in the background within
//! `stale-while-revalidate` and stand in for a failing origin within `stale-if-error` (or
//! [`GatewayBuilder::grace`]). Otherwise a failing origin gives `502 Bad Gateway`, or
//! `504 Gateway Timeout` when it does not answer within [`GatewayBuilder::upstream_timeout`].
//!
//! Besides the proxied paths, the router answers:
//!
//! | route | what it does |
//! |---|---|
//! | `PURGE /any/path` | removes the stored responses of that URL (all its `Vary` variants) |
//! | `POST /_cachio/purge/url?url=/path` | the same; `url` may be a path (with the request's `Host`, or `host=`) or an absolute URL |
//! | `POST /_cachio/purge/prefix?prefix=/path/` | removes every URL that starts with the prefix |
//! | `POST /_cachio/purge/tag?tag=T` | removes every response tagged `T` in `Surrogate-Key` (space-separated) or `Cache-Tag` (comma-separated); see [`GatewayBuilder::tag_headers`] |
//! | `GET /_cachio/metrics` | counters in the Prometheus text format |
//!
//! Purging needs the token set with [`GatewayBuilder::purge_token`], sent as
//! `Authorization: Bearer TOKEN` or `X-Purge-Token: TOKEN`: without it the answer is `401`, with
//! a wrong one `403`, and with no token configured purging is off (`403`). Paths under
//! `/_cachio/` are never proxied. With [`GatewayBuilder::separate_admin`] these routes are served
//! only by [`Gateway::admin_router`], for a listener of their own.
//!
//! # Request hygiene
//!
//! Whatever changes an origin's answer without being part of the cache key lets one client choose
//! what the next clients get (cache poisoning), so by default the gateway:
//!
//! - drops the forwarding fields a client sends (`Forwarded`, `X-Forwarded-*`, `X-Real-IP`,
//!   `X-Host`, ...) and sets `Forwarded` and `X-Forwarded-For`/`-Proto`/`-Host` from the
//!   connection ([`GatewayBuilder::forwarded_headers`]); a [trusted
//!   proxy](GatewayBuilder::trusted_proxies)'s fields are kept and appended to;
//! - answers `400` to a request with more than one `Host`, an invalid one, or one that is not
//!   the authority of an absolute-form target (RFC 9112 §3.2), and to a request whose body is
//!   malformed;
//! - drops the [`REWRITE_HEADERS`] ([`GatewayBuilder::pass_headers`],
//!   [`GatewayBuilder::drop_headers`]);
//! - in shared mode, stores a response to a request with `Cookie` or `Authorization` only with an
//!   explicit lifetime: no heuristic freshness (web cache deception).
//!
//! Every proxied response carries `Cache-Status` (RFC 9211). Each request runs in a `tracing`
//! span named `request`, and ends with one `INFO` event on the target [`ACCESS_LOG_TARGET`]
//! (method, path, status, cache status, bytes, duration).
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `disk` | yes | the disk tier ([`GatewayBuilder::disk`], `cachio-fjall`) |
//! | `redis` | yes | the shared Redis tier with fleet-wide invalidation ([`GatewayBuilder::redis_url`], [`GatewayBuilder::redis_cluster`], `cachio-redis`) |
//! | `redis-tls` | yes | TLS to Redis: `rediss://` URLs, [`GatewayBuilder::redis_ca`], [`GatewayBuilder::redis_client_cert`] (rustls) |
//! | `cli` | yes | the `cachio-gateway` binary's command line (clap, tracing-subscriber) |
//!
//! # Serving
//!
//! [`serve`] runs a router on the current tokio runtime; [`serve_threaded`] (what the binary
//! uses) runs one single-threaded runtime per core, which answers cache hits markedly faster on
//! small machines. Both speak HTTP/1.1 and h2c and shut down gracefully. [`serve_tls`], and
//! [`serve_threaded`] given [`Listeners`] with a TLS listener, serve HTTPS (HTTP/2 and HTTP/1.1
//! by ALPN) with a [`ServerTls`] certificate that [`ServerTls::reload`] replaces in place.
//!
//! # Several sites
//!
//! [`Gateway::sites`] puts one gateway and one store in front of several [`Site`]s, each chosen by
//! the request's `Host` (then its path prefix) with its own upstream, purge token and cache
//! options; a host no site names gets `421 Misdirected Request` unless a site is the
//! [default](Site::default_site). Each site's keys start with its name, so sites never share or
//! purge each other's entries. [`KeyOptions`] shapes the keys: headers and cookies added, query
//! parameters dropped or sorted ([`GatewayBuilder::cache_key`], [`GatewayBuilder::debug_key`]).
//!
//! # TLS to the origin
//!
//! An `https://` upstream is reached over TLS with its host as server name, HTTP/2 when it
//! offers it; see [`GatewayBuilder::upstream_ca`] and [`GatewayBuilder::upstream_client_cert`].
//!
//! # Example: mounting the gateway in an axum app
//!
//! ```
//! use axum::{Router, routing::get};
//! use cachio_gateway::Gateway;
//! use http_body_util::{BodyExt, Empty};
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // An origin to put the cache in front of.
//! let origin = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let origin_url = format!("http://{}", origin.local_addr()?);
//! let hello = || async { ([("cache-control", "max-age=60")], "hello") };
//! tokio::spawn(async move { axum::serve(origin, Router::new().route("/hello", get(hello))).await });
//!
//! // The gateway's routes beside the app's own: the gateway is the fallback.
//! let gateway = Gateway::builder(origin_url).memory_bytes(32 << 20).build()?;
//! let app = Router::new()
//!     .route("/healthz", get(|| async { "ok" }))
//!     .merge(gateway.router());
//!
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! tokio::spawn(cachio_gateway::serve(listener, app, std::future::pending()));
//!
//! let client = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
//! for expected in ["cachio; fwd=uri-miss; fwd-status=200; stored", "cachio; hit; ttl=60"] {
//!     let res = client.get(format!("http://{addr}/hello").parse()?).await?;
//!     assert_eq!(res.headers()["cache-status"], expected);
//!     assert_eq!(res.into_body().collect().await?.to_bytes(), "hello");
//! }
//! let res = client.get(format!("http://{addr}/healthz").parse()?).await?;
//! assert_eq!(res.into_body().collect().await?.to_bytes(), "ok");
//! # Ok(())
//! # }
//! ```

mod config;
mod connect;
mod forwarded;
mod hop;
mod hygiene;
mod interim;
mod key;
mod metrics;
mod proxy;
mod purge;
mod serve;
mod sites;
mod tls;
mod upstream;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use cachio_core::cache_control::CacheControl;
use cachio_core::clock::Clock;
use cachio_core::policy::Policy;
use cachio_core::store::Store;
use cachio_moka::MokaStore;
use cachio_tower::CacheLayer;
use http::StatusCode;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use tower::Layer;

pub use cachio_tower::{CacheStats, StatsSnapshot};
#[expect(deprecated)]
pub use config::Mode;
pub use config::{Config, DEFAULT_LISTEN, DEFAULT_LISTEN_TLS, Sharing, SiteConfig};
pub use forwarded::{Cidr, ForwardedHeaders};
pub use hygiene::REWRITE_HEADERS;
pub use key::KeyOptions;
pub use proxy::ACCESS_LOG_TARGET;
pub use serve::{Listeners, serve, serve_threaded, serve_tls};
pub use sites::Site;
pub use tls::ServerTls;

use crate::connect::UpstreamTls;
use crate::hop::Via;
use crate::metrics::{Metrics, StoreGauges};
use crate::proxy::{Proxy, Shared};
use crate::purge::PurgeSettings;
use crate::sites::{Dispatch, Resolved, Route};
use crate::upstream::Upstream;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The memory tier's size when none is set: 64 MiB.
pub const DEFAULT_MEMORY_BYTES: u64 = 64 << 20;

/// The disk tier's budget when a directory is given without one: 1 GiB.
pub const DEFAULT_DISK_BYTES: u64 = 1 << 30;

/// The largest body stored when no limit is set: 64 MiB.
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 64 << 20;

/// How long to wait for the origin's response head when no timeout is set: 30 seconds.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an idle connection to the origin is kept for reuse: 4 seconds, under the 5 seconds
/// after which common servers (Node.js, Apache httpd) close idle connections themselves, so the
/// gateway seldom sends a request on a connection the origin is closing.
pub const DEFAULT_UPSTREAM_IDLE: Duration = Duration::from_secs(4);

/// Why a gateway could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum GatewayError {
    /// The upstream URL is not an `http://` or `https://` URL with a host.
    Upstream(String),
    /// A TLS setting cannot be used: a certificate or key file that cannot be read or parsed, a
    /// key that does not match its certificate.
    Tls(String),
    /// A setting is missing or invalid (a TOML file that does not parse, a bad header name).
    Config(String),
    /// The disk tier could not be opened.
    Disk(cachio_core::StoreError),
    /// A disk tier was asked for, but this build has no `disk` feature.
    DiskUnsupported,
    /// The Redis tier could not be set up (a URL that does not parse, a bad prefix).
    Redis(cachio_core::StoreError),
    /// A Redis tier was asked for, but this build has no `redis` feature.
    RedisUnsupported,
}

impl fmt::Display for GatewayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GatewayError::Upstream(m) => write!(f, "bad upstream: {m}"),
            GatewayError::Config(m) => write!(f, "bad configuration: {m}"),
            GatewayError::Tls(m) => write!(f, "bad TLS setting: {m}"),
            GatewayError::Disk(_) => f.write_str("cannot open the disk tier"),
            GatewayError::DiskUnsupported => {
                f.write_str("a disk tier needs cachio-gateway built with the `disk` feature")
            }
            GatewayError::Redis(_) => f.write_str("cannot set up the Redis tier"),
            GatewayError::RedisUnsupported => {
                f.write_str("a Redis tier needs cachio-gateway built with the `redis` feature")
            }
        }
    }
}

impl std::error::Error for GatewayError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GatewayError::Disk(e) | GatewayError::Redis(e) => Some(e),
            _ => None,
        }
    }
}

/// Builds a [`Gateway`]. Made by [`Gateway::builder`].
///
/// # Example
///
/// ```
/// use std::time::Duration;
///
/// use cachio_gateway::{Gateway, Sharing};
///
/// let gateway = Gateway::builder("http://127.0.0.1:9000")
///     .mode(Sharing::Shared)
///     .memory_bytes(256 << 20)
///     .max_object_bytes(8 << 20)
///     .cache_name("edge-1")
///     .purge_token(Some("s3cret".into()))
///     .grace(Duration::from_secs(60))
///     .upstream_timeout(Some(Duration::from_secs(10)))
///     .build()?;
/// let router: axum::Router = gateway.into_router();
/// # let _ = router;
/// # Ok::<(), cachio_gateway::GatewayError>(())
/// ```
#[must_use]
pub struct GatewayBuilder {
    upstream: String,
    mode: Sharing,
    memory_bytes: u64,
    disk: Option<(PathBuf, u64)>,
    redis: Option<RedisTarget>,
    redis_prefix: Option<String>,
    redis_timeout: Option<Duration>,
    redis_ca: Option<PathBuf>,
    redis_client_cert: Option<(PathBuf, PathBuf)>,
    upstream_tls: UpstreamTls,
    max_object_bytes: u64,
    cache_name: String,
    purge_token: Option<String>,
    tag_headers: Vec<HeaderName>,
    grace: Duration,
    default_ttl: Option<Duration>,
    rewrite_host: bool,
    upstream_timeout: Option<Duration>,
    upstream_idle: Duration,
    store_set_cookie: bool,
    targeted_fields: Option<Vec<HeaderName>>,
    coalesce_timeout: Duration,
    clock: Option<Arc<dyn Clock>>,
    forwarding: forwarded::Forwarding,
    hygiene: hygiene::Settings,
    separate_admin: bool,
    sites: Vec<Site>,
    cache_key: KeyOptions,
    debug_key: bool,
}

impl fmt::Debug for GatewayBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GatewayBuilder")
            .field("upstream", &self.upstream)
            .field("mode", &self.mode)
            .field("memory_bytes", &self.memory_bytes)
            .field("disk", &self.disk)
            .field("redis", &self.redis)
            .field("redis_prefix", &self.redis_prefix)
            .field("redis_timeout", &self.redis_timeout)
            .field("redis_ca", &self.redis_ca)
            .field("redis_client_cert", &self.redis_client_cert)
            .field("upstream_tls", &self.upstream_tls)
            .field("max_object_bytes", &self.max_object_bytes)
            .field("cache_name", &self.cache_name)
            .field("purge_token", &self.purge_token.as_ref().map(|_| "<set>"))
            .field("tag_headers", &self.tag_headers)
            .field("grace", &self.grace)
            .field("default_ttl", &self.default_ttl)
            .field("rewrite_host", &self.rewrite_host)
            .field("upstream_timeout", &self.upstream_timeout)
            .field("upstream_idle", &self.upstream_idle)
            .field("store_set_cookie", &self.store_set_cookie)
            .field("targeted_fields", &self.targeted_fields)
            .field("forwarding", &self.forwarding)
            .field("hygiene", &self.hygiene)
            .field("separate_admin", &self.separate_admin)
            .field("sites", &self.sites)
            .field("cache_key", &self.cache_key)
            .field("debug_key", &self.debug_key)
            .finish_non_exhaustive()
    }
}

impl GatewayBuilder {
    /// Shared (the default) or private; see [`Sharing`].
    pub fn mode(self, mode: Sharing) -> Self {
        Self { mode, ..self }
    }

    /// The memory tier's size in bytes ([`DEFAULT_MEMORY_BYTES`] by default).
    pub fn memory_bytes(self, bytes: u64) -> Self {
        Self {
            memory_bytes: bytes,
            ..self
        }
    }

    /// Adds a disk tier in directory `dir` with a budget of `bytes`, behind the memory tier:
    /// hits on disk are copied into memory, writes go to both. Needs the `disk` feature
    /// (on by default); [`build`](Self::build) fails without it.
    pub fn disk(self, dir: impl Into<PathBuf>, bytes: u64) -> Self {
        Self {
            disk: Some((dir.into(), bytes)),
            ..self
        }
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
    pub fn redis_url(self, url: impl Into<String>) -> Self {
        Self {
            redis: Some(RedisTarget::Single(url.into())),
            ..self
        }
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
    pub fn redis_cluster<I, U>(self, urls: I) -> Self
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        Self {
            redis: Some(RedisTarget::Cluster(
                urls.into_iter().map(Into::into).collect(),
            )),
            ..self
        }
    }

    /// The key prefix in Redis (`cachio` by default): the gateways of one fleet share it, other
    /// deployments on the same Redis use their own.
    pub fn redis_prefix(self, prefix: impl Into<String>) -> Self {
        Self {
            redis_prefix: Some(prefix.into()),
            ..self
        }
    }

    /// How long one Redis call may take before the cache steps aside for that request (50 ms
    /// by default).
    pub fn redis_timeout(self, timeout: Duration) -> Self {
        Self {
            redis_timeout: Some(timeout),
            ..self
        }
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
    pub fn redis_ca(self, pem_file: impl Into<PathBuf>) -> Self {
        Self {
            redis_ca: Some(pem_file.into()),
            ..self
        }
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
        self,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        Self {
            redis_client_cert: Some((cert_file.into(), key_file.into())),
            ..self
        }
    }

    /// For an `https://` upstream: trusts only the certificate authorities in this PEM file,
    /// instead of the Mozilla roots that ship with cachio and the system's (an origin whose
    /// certificate a private CA signed). The file is read by [`build`](Self::build).
    ///
    /// An `https://` upstream's connections are TLS or nothing: a certificate that cannot be
    /// trusted fails the request with `502 Bad Gateway`, and the log says why.
    ///
    /// # Example
    ///
    /// ```no_run
    /// // Needs the CA file, so it is compiled but not run by `cargo test`.
    /// let gateway = cachio_gateway::Gateway::builder("https://origin.internal:8443")
    ///     .upstream_ca("/etc/cachio/origin-ca.pem")
    ///     .build()?;
    /// # let _ = gateway;
    /// # Ok::<(), cachio_gateway::GatewayError>(())
    /// ```
    pub fn upstream_ca(mut self, pem_file: impl Into<PathBuf>) -> Self {
        self.upstream_tls.ca = Some(pem_file.into());
        self
    }

    /// For an `https://` upstream that asks for a client certificate (mutual TLS): presents
    /// this certificate (a PEM file: the certificate, then any intermediates) with its private
    /// key (a PEM file). The files are read by [`build`](Self::build).
    ///
    /// # Example
    ///
    /// ```no_run
    /// // Needs the files, so it is compiled but not run by `cargo test`.
    /// let gateway = cachio_gateway::Gateway::builder("https://origin.internal:8443")
    ///     .upstream_ca("/etc/cachio/origin-ca.pem")
    ///     .upstream_client_cert("/etc/cachio/gateway.pem", "/etc/cachio/gateway.key")
    ///     .build()?;
    /// # let _ = gateway;
    /// # Ok::<(), cachio_gateway::GatewayError>(())
    /// ```
    pub fn upstream_client_cert(
        mut self,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        self.upstream_tls.client_cert = Some((cert_file.into(), key_file.into()));
        self
    }

    /// The largest response body stored ([`DEFAULT_MAX_OBJECT_BYTES`] by default). Larger
    /// responses stream through without being stored. With a disk tier, bodies over an eighth
    /// of the memory tier are kept on disk only.
    pub fn max_object_bytes(self, bytes: u64) -> Self {
        Self {
            max_object_bytes: bytes,
            ..self
        }
    }

    /// The name the gateway gives itself in `Cache-Status` and `Via` (`cachio` by default).
    pub fn cache_name(self, name: impl Into<String>) -> Self {
        Self {
            cache_name: name.into(),
            ..self
        }
    }

    /// The token that allows purging (`None`, the default, turns purging off).
    pub fn purge_token(self, token: Option<String>) -> Self {
        Self {
            purge_token: token.filter(|t| !t.is_empty()),
            ..self
        }
    }

    /// The response header fields whose values are the surrogate keys (tags) that
    /// `/_cachio/purge/tag` matches; values are split on spaces and commas. By default
    /// `Surrogate-Key` and `Cache-Tag`.
    pub fn tag_headers(self, names: Vec<HeaderName>) -> Self {
        Self {
            tag_headers: names,
            ..self
        }
    }

    /// How long past its freshness a stored response may be served when the origin fails or
    /// answers 5xx, whatever its `stale-if-error` says (zero, the default, leaves it to
    /// `stale-if-error`).
    pub fn grace(self, grace: Duration) -> Self {
        Self { grace, ..self }
    }

    /// The freshness lifetime given to storable responses that carry no explicit one (no
    /// `max-age`, `s-maxage`, `Expires` or `CDN-Cache-Control: max-age`). `None`, the default,
    /// invents nothing: such responses get RFC 9111's heuristic freshness only when they have a
    /// `Last-Modified` (see [`heuristics`](Self::heuristics)). In shared mode, a response to a
    /// request with `Cookie` or `Authorization` gets neither: it is not stored without an
    /// explicit lifetime.
    pub fn default_ttl(self, ttl: Option<Duration>) -> Self {
        Self {
            default_ttl: ttl,
            ..self
        }
    }

    /// Sends the origin's host and port as `Host` instead of the client's (off by default:
    /// the client's `Host` goes on unchanged).
    pub fn rewrite_host(self, rewrite: bool) -> Self {
        Self {
            rewrite_host: rewrite,
            ..self
        }
    }

    /// How long to wait to connect to the origin and for its response head
    /// ([`DEFAULT_UPSTREAM_TIMEOUT`] by default; `None` waits forever). Past it the request gets
    /// a stale response if one may stand in, else `504 Gateway Timeout`. Bodies are streamed
    /// without a time limit.
    pub fn upstream_timeout(self, timeout: Option<Duration>) -> Self {
        Self {
            upstream_timeout: timeout,
            ..self
        }
    }

    /// How long an idle connection to the origin is kept for reuse ([`DEFAULT_UPSTREAM_IDLE`] by
    /// default). Keep it below the origin's own idle timeout. Whatever it is, a `GET`, `HEAD` or
    /// other idempotent request without a body whose reused connection fails before a response
    /// head arrives is sent once more on a new connection (RFC 9110 §9.2.2).
    pub fn upstream_idle_timeout(self, idle: Duration) -> Self {
        Self {
            upstream_idle: idle,
            ..self
        }
    }

    /// Whether a shared gateway stores responses that carry `Set-Cookie` (off by default: such
    /// responses are usually personal even when marked cacheable). The `Set-Cookie` lines are
    /// stored and served with the response, to every client. A private gateway always stores
    /// them.
    pub fn store_set_cookie(self, store: bool) -> Self {
        Self {
            store_set_cookie: store,
            ..self
        }
    }

    /// The targeted cache-control fields this gateway obeys over `Cache-Control`, most specific
    /// first (RFC 9213 §2.2); by default `CDN-Cache-Control` in shared mode and none in private
    /// mode. For example `[Surrogate-Control, CDN-Cache-Control]` also honours the
    /// `Surrogate-Control` of Edge Architecture origins (its `max-age`, `no-store` and the other
    /// Cache-Control directives).
    pub fn targeted_fields(self, fields: Vec<HeaderName>) -> Self {
        Self {
            targeted_fields: Some(fields),
            ..self
        }
    }

    /// The longest a request waits for another request's fetch of the same URL before going to
    /// the origin itself (10 seconds by default).
    pub fn coalesce_timeout(self, timeout: Duration) -> Self {
        Self {
            coalesce_timeout: timeout,
            ..self
        }
    }

    /// Serves the admin routes (`/_cachio/…` and the `PURGE` method) only on
    /// [`Gateway::admin_router`], for a listener of their own, instead of beside the proxy (off by
    /// default). The main router then answers `/_cachio/…` with `404` and `PURGE` with `405`.
    pub fn separate_admin(self, separate: bool) -> Self {
        Self {
            separate_admin: separate,
            ..self
        }
    }

    /// How cache keys are made (by default the URL alone): request headers and cookies to add,
    /// query parameters to drop or sort; see [`KeyOptions`]. A [`Site`] may have its own.
    pub fn cache_key(self, key: KeyOptions) -> Self {
        Self {
            cache_key: key,
            ..self
        }
    }

    /// Adds the cache key to every `Cache-Status` (its `key` parameter, RFC 9211 §2.6); off by
    /// default, since it shows the keyed headers and cookies to the client.
    pub fn debug_key(self, on: bool) -> Self {
        Self {
            debug_key: on,
            ..self
        }
    }

    /// The clock the cache reads the time from (the system clock by default). For tests:
    /// [`cachio_core::clock::ManualClock`] moves time by hand.
    pub fn clock<C: Clock>(self, clock: C) -> Self {
        Self {
            clock: Some(Arc::new(clock)),
            ..self
        }
    }

    /// Opens the stores and assembles the router. Opening a disk tier blocks while it recovers.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Upstream`] for an upstream that is not an `http://` or `https://` URL
    /// with a host, [`GatewayError::Tls`] when the upstream's CA or client certificate files
    /// cannot be read or used, [`GatewayError::Config`] when they are given for an `http://`
    /// upstream or for a [passed header](Self::pass_headers) that is a forwarding field,
    /// [`GatewayError::Disk`] when the disk tier cannot be opened, and
    /// [`GatewayError::DiskUnsupported`] when a disk tier was asked for without the `disk`
    /// feature, [`GatewayError::Redis`] when the Redis tier cannot be set up (it does not need
    /// Redis to be up), [`GatewayError::RedisUnsupported`] when it was asked for without the
    /// `redis` feature, and [`GatewayError::Config`] when both a disk and a Redis tier were.
    pub fn build(self) -> Result<Gateway, GatewayError> {
        if let Some(name) = self
            .hygiene
            .pass
            .iter()
            .find(|n| forwarded::is_forwarding(n))
        {
            return Err(GatewayError::Config(format!(
                "{name} is a forwarding field: trust its senders as proxies instead of passing it"
            )));
        }
        let origin = sites::resolve(&self)?;
        if let Some(target) = &self.redis {
            if self.disk.is_some() {
                return Err(GatewayError::Config(
                    "a disk tier and a Redis tier cannot be combined: choose one".into(),
                ));
            }
            return self.build_redis(target, origin);
        }
        match &self.disk {
            None => {
                let memory = MokaStore::builder()
                    .max_capacity_bytes(self.memory_bytes)
                    .max_body_size(self.max_object_bytes)
                    .build();
                Ok(assemble(memory, &self, origin))
            }
            #[cfg(feature = "disk")]
            Some((dir, budget)) => {
                let memory = MokaStore::builder()
                    .max_capacity_bytes(self.memory_bytes)
                    .max_body_size(self.max_object_bytes.min(self.memory_bytes / 8))
                    .build();
                let disk = cachio_fjall::FjallStore::builder(dir)
                    .budget_bytes(*budget)
                    .max_object_size(self.max_object_bytes)
                    .open()
                    .map_err(GatewayError::Disk)?;
                let store = cachio_core::tiered::Tiered::new(memory, disk);
                Ok(assemble(store, &self, origin))
            }
            #[cfg(not(feature = "disk"))]
            Some(_) => Err(GatewayError::DiskUnsupported),
        }
    }

    /// Memory over Redis, with the fleet's invalidation broadcast.
    #[cfg(feature = "redis")]
    fn build_redis(
        &self,
        target: &RedisTarget,
        origin: Vec<Resolved>,
    ) -> Result<Gateway, GatewayError> {
        let memory = MokaStore::builder()
            .max_capacity_bytes(self.memory_bytes)
            .max_body_size(self.max_object_bytes.min(self.memory_bytes / 8))
            .build();
        let mut redis = match target {
            RedisTarget::Single(url) => cachio_redis::RedisStore::builder(url.clone()),
            RedisTarget::Cluster(urls) => cachio_redis::RedisStore::cluster_builder(urls.clone()),
        }
        .max_object_size(self.max_object_bytes);
        if let Some(prefix) = &self.redis_prefix {
            redis = redis.prefix(prefix.clone());
        }
        if let Some(timeout) = self.redis_timeout {
            redis = redis.timeout(timeout);
        }
        let read = |what: &str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| {
                GatewayError::Config(format!(
                    "cannot read the Redis {what} {}: {e}",
                    path.display()
                ))
            })
        };
        if let Some(ca) = &self.redis_ca {
            redis = redis.tls_ca(read("CA", ca)?);
        }
        if let Some((cert, key)) = &self.redis_client_cert {
            redis =
                redis.tls_client_cert(read("client certificate", cert)?, read("client key", key)?);
        }
        let redis = redis.build().map_err(GatewayError::Redis)?;
        Ok(assemble(
            cachio_redis::Broadcast::fleet(memory, redis),
            self,
            origin,
        ))
    }

    #[cfg(not(feature = "redis"))]
    fn build_redis(&self, _: &RedisTarget, _: Vec<Resolved>) -> Result<Gateway, GatewayError> {
        Err(GatewayError::RedisUnsupported)
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

/// A caching reverse proxy in front of one origin, as an axum [`Router`]. See the [crate]
/// documentation for what it does and the routes it answers.
///
/// # Example
///
/// ```
/// use cachio_gateway::Gateway;
///
/// let gateway = Gateway::builder("http://127.0.0.1:9000").build()?;
/// assert_eq!(gateway.stats().snapshot().requests, 0);
/// let app = axum::Router::new().merge(gateway.router());
/// # let _ = app;
/// # Ok::<(), cachio_gateway::GatewayError>(())
/// ```
#[derive(Clone)]
pub struct Gateway {
    router: Router,
    admin: Router,
    stats: Arc<CacheStats>,
    metrics: RenderMetrics,
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Gateway")
            .field("stats", &self.stats.snapshot())
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A builder for a gateway in front of `upstream` (`http://host[:port][/prefix]`, or
    /// `https://...`), with
    /// the defaults: a shared cache of [`DEFAULT_MEMORY_BYTES`] in memory, bodies up to
    /// [`DEFAULT_MAX_OBJECT_BYTES`], purging off, no grace, no default TTL, the client's `Host`
    /// passed on, and [`DEFAULT_UPSTREAM_TIMEOUT`].
    pub fn builder(upstream: impl Into<String>) -> GatewayBuilder {
        GatewayBuilder {
            upstream: upstream.into(),
            mode: Sharing::Shared,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            disk: None,
            redis: None,
            redis_prefix: None,
            redis_timeout: None,
            redis_ca: None,
            redis_client_cert: None,
            upstream_tls: UpstreamTls::default(),
            max_object_bytes: DEFAULT_MAX_OBJECT_BYTES,
            cache_name: "cachio".to_owned(),
            purge_token: None,
            tag_headers: vec![
                HeaderName::from_static("surrogate-key"),
                HeaderName::from_static("cache-tag"),
            ],
            grace: Duration::ZERO,
            default_ttl: None,
            rewrite_host: false,
            upstream_timeout: Some(DEFAULT_UPSTREAM_TIMEOUT),
            upstream_idle: DEFAULT_UPSTREAM_IDLE,
            store_set_cookie: false,
            targeted_fields: None,
            coalesce_timeout: cachio_tower::DEFAULT_COALESCE_TIMEOUT,
            clock: None,
            forwarding: forwarded::Forwarding::default(),
            hygiene: hygiene::Settings::default(),
            separate_admin: false,
            sites: Vec::new(),
            cache_key: KeyOptions::default(),
            debug_key: false,
        }
    }

    /// A builder for a gateway in front of several sites, one store for all, each request
    /// going to the site its `Host` (then its path) selects; see [`Site`]. The builder's
    /// settings are every site's defaults.
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_gateway::{Gateway, Site};
    ///
    /// let gateway = Gateway::sites([
    ///     Site::new("shop", "http://127.0.0.1:9001").hosts(["shop.example"]),
    ///     Site::new("blog", "http://127.0.0.1:9002").hosts(["blog.example"]).default_site(true),
    /// ])
    /// .memory_bytes(128 << 20)
    /// .build()?;
    /// # let _ = gateway;
    /// # Ok::<(), cachio_gateway::GatewayError>(())
    /// ```
    pub fn sites<I: IntoIterator<Item = Site>>(sites: I) -> GatewayBuilder {
        GatewayBuilder {
            sites: sites.into_iter().collect(),
            ..Self::builder("")
        }
    }

    /// The router: the proxy as its fallback, and the `/_cachio/` routes. Cheap to clone.
    pub fn router(&self) -> Router {
        self.router.clone()
    }

    /// The admin routes alone (`/_cachio/metrics`, `/_cachio/purge/…`, and the `PURGE` method
    /// on any path), for a listener of their own; see [`GatewayBuilder::separate_admin`]. Any
    /// other request gets `404`. Cheap to clone.
    pub fn admin_router(&self) -> Router {
        self.admin.clone()
    }

    /// The router, consuming the gateway.
    pub fn into_router(self) -> Router {
        self.router
    }

    /// The cache layer's counters (with several sites, the first site's; `/_cachio/metrics`
    /// reports the site the request's `Host` selects).
    pub fn stats(&self) -> Arc<CacheStats> {
        self.stats.clone()
    }

    /// What `GET /_cachio/metrics` answers: every counter in the Prometheus text format (with
    /// several sites, the first site's).
    pub fn metrics(&self) -> String {
        (self.metrics)()
    }
}

impl From<Gateway> for Router {
    fn from(gateway: Gateway) -> Router {
        gateway.router
    }
}

/// A shared handle on a clock (the layer takes a concrete [`Clock`]).
struct SharedClock(Arc<dyn Clock>);

impl Clock for SharedClock {
    fn now(&self) -> SystemTime {
        self.0.now()
    }

    fn monotonic(&self) -> std::time::Duration {
        self.0.monotonic()
    }
}

/// Whether a response states its own freshness lifetime (RFC 9111 §4.2.1).
fn explicit_freshness(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::EXPIRES) {
        return true;
    }
    let cc = CacheControl::from_headers(headers, &header::CACHE_CONTROL);
    if cc.max_age.is_some() || cc.s_maxage.is_some() {
        return true;
    }
    CacheControl::from_targeted_headers(headers, &HeaderName::from_static("cdn-cache-control"))
        .is_some_and(|cc| cc.max_age.is_some())
}

/// The routers of every site over one store, and a dispatch by `Host` when there are several.
fn assemble<St: Store + StoreGauges>(
    store: St,
    b: &GatewayBuilder,
    sites: Vec<Resolved>,
) -> Gateway {
    let implicit = sites.len() == 1 && sites[0].hosts.is_empty();
    let default = sites.iter().position(|s| s.default);
    let mut routes = Vec::with_capacity(sites.len());
    let mut first = None;
    for site in sites {
        let (route, stats, metrics) = assemble_site(store.clone(), b, site);
        first.get_or_insert((stats, metrics));
        routes.push(route);
    }
    let (stats, metrics) = first.expect("a gateway has a site");
    if implicit && let Some(route) = routes.pop() {
        return Gateway {
            router: route.router,
            admin: route.admin,
            stats,
            metrics,
        };
    }
    let routes: Arc<[Route]> = routes.into();
    Gateway {
        router: Router::new().fallback_service(Dispatch::new(routes.clone(), default, false)),
        admin: Router::new().fallback_service(Dispatch::new(routes, default, true)),
        stats,
        metrics,
    }
}

type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// One site's proxy and admin routes over the shared store.
fn assemble_site<St: Store + StoreGauges>(
    store: St,
    b: &GatewayBuilder,
    site: Resolved,
) -> (Route, Arc<CacheStats>, RenderMetrics) {
    let metrics = Arc::new(Metrics::new(&site.name));
    let via = Via::new(&site.name);
    let outgoing = upstream::Outgoing {
        rewrite_host: b.rewrite_host,
        via: via.clone(),
        forwarding: b.forwarding.clone(),
    };
    let upstream = Upstream::new(
        site.origin,
        site.connector,
        outgoing,
        b.upstream_timeout,
        b.upstream_idle,
        metrics.clone(),
    );
    let (layer, policy) = match site.mode {
        Sharing::Shared => (CacheLayer::shared(store.clone()), Policy::shared()),
        Sharing::Private => (CacheLayer::private(store.clone()), Policy::private()),
    };
    let mut policy = policy.store_set_cookie(b.store_set_cookie || site.mode == Sharing::Private);
    if !b.hygiene.heuristics {
        policy = policy.heuristic_percent(0);
    }
    if let Some(fields) = &b.targeted_fields {
        policy = policy.targeted_fields(fields.clone());
    }
    let mut layer = layer
        .policy(policy)
        .cache_name(site.name.clone())
        .max_object_size(b.max_object_bytes)
        .grace(site.grace)
        .coalesce_timeout(b.coalesce_timeout);
    if let Some(clock) = &b.clock {
        layer = layer.clock(SharedClock(clock.clone()));
    }
    if let Some(ttl) = site.default_ttl {
        layer =
            layer.ttl_override(move |_req, res| (!explicit_freshness(&res.headers)).then_some(ttl));
    }
    let keys = Arc::new(site.key);
    if !keys.is_default() {
        let k = keys.clone();
        layer = layer.key_fn(move |parts| k.key(parts));
    }
    let stats = layer.stats();
    let shared = Arc::new(Shared {
        store,
        layer: layer.clone(),
        metrics,
        cache_name: site.name,
        via,
        purge: PurgeSettings {
            token: site.purge_token,
            tag_headers: b.tag_headers.clone(),
        },
        dropped: b.hygiene.dropped(),
        purge_method: !b.separate_admin,
        keys,
        debug_key: b.debug_key,
    });
    // The layer's counters reach the gateway's recorder when it is read (`render_metrics`): a
    // hit then counts only in its thread's stripe of `CacheStats`, where counting it in the
    // recorder too bounced a shared cache line between the workers on every hit (about 5% of
    // the hit rate on two cores, by `scripts/bench-gateway`).
    let cache = layer.layer(upstream);
    let proxy = Proxy {
        cache,
        shared: shared.clone(),
    };
    let admin = Router::new()
        .route("/_cachio/metrics", get(metrics_route::<St>))
        .route("/_cachio/purge/url", post(purge::by_url::<St>))
        .route("/_cachio/purge/prefix", post(purge::by_prefix::<St>))
        .route("/_cachio/purge/tag", post(purge::by_tag::<St>))
        .route("/_cachio", any(not_found))
        .route("/_cachio/{*rest}", any(not_found));
    let router = if b.separate_admin {
        Router::new()
            .route("/_cachio", any(not_found))
            .route("/_cachio/{*rest}", any(not_found))
    } else {
        admin.clone().with_state(shared.clone())
    }
    .fallback_service(proxy);
    let admin = admin
        .fallback(admin_fallback::<St>)
        .with_state(shared.clone());
    let route = Route {
        hosts: site.hosts,
        path_prefix: site.path_prefix,
        router,
        admin,
    };
    (route, stats, Arc::new(move || render_metrics(&shared)))
}

fn render_metrics<St: Store + StoreGauges>(shared: &Shared<St>) -> String {
    let snapshot = shared.layer.stats().snapshot();
    shared
        .metrics
        .render(&shared.store, || snapshot.record(&shared.cache_name))
}

async fn metrics_route<St: Store + StoreGauges>(State(shared): State<Arc<Shared<St>>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        render_metrics(&shared),
    )
        .into_response()
}

/// The admin router's answer to other paths: `PURGE` purges the URL, anything else is `404`.
async fn admin_fallback<St: Store>(
    State(shared): State<Arc<Shared<St>>>,
    req: http::Request<axum::body::Body>,
) -> Response {
    if req.method().as_str() == "PURGE" {
        purge::purge_method(shared, req).await
    } else {
        not_found().await
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "404 Not Found: no such cachio admin route\n",
    )
        .into_response()
}
