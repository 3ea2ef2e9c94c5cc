//! A caching reverse proxy built on cachio: an axum [`Router`] you can mount in your own app,
//! and the `cachio-gateway` binary.
//!
//! The gateway forwards every request to one origin and keeps what RFC 9111 allows in a
//! [`CacheLayer`](cachio_tower::CacheLayer) over memory (and optionally disk, or a Redis shared by a fleet of gateways,
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
//! | `jemalloc` | yes | the `cachio-gateway` binary allocates with jemalloc (not with MSVC); the library never sets an allocator |
//!
//! # Settings from a file or a command line
//!
//! [`Config`] holds every setting of the binary, one field each: the same field is a key of the
//! TOML file (`memory-mb = 256`), a flag of `cachio-gateway` (`--memory-mb 256`, with the `cli`
//! feature), and, through [`Config::builder`], a call of the [`GatewayBuilder`] method of the
//! same meaning (`memory_bytes(256 << 20)`). A flag given beats the file, which beats the
//! default.
//!
//! # Serving
//!
//! [`serve`] runs a router on the current tokio runtime; [`serve_threaded`] (what the binary
//! uses) runs it on a number of threads, each a single-threaded runtime accepting its share of
//! the connections. Both speak HTTP/1.1 and h2c and shut down gracefully. [`serve_tls`], and
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
mod dispatch;
mod error;
mod forwarded;
mod hop;
mod hygiene;
mod interim;
mod key;
mod metrics;
mod proxy;
mod purge;
mod router;
mod serve;
mod settle;
mod sites;
mod tiers;
mod tls;
mod upstream;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use cachio_core::clock::Clock;
use http::header::HeaderName;

pub use cachio_tower::{CacheStats, StatsSnapshot};
#[expect(deprecated)]
pub use config::Mode;
pub use config::{Config, DEFAULT_LISTEN, DEFAULT_LISTEN_TLS, Sharing, SiteConfig, SiteOptions};
pub use error::GatewayError;
pub use forwarded::{Cidr, ForwardedHeaders};
pub use hygiene::REWRITE_HEADERS;
pub use key::KeyOptions;
pub use proxy::ACCESS_LOG_TARGET;
pub use serve::{Listeners, serve, serve_threaded, serve_threaded_then, serve_tls};
pub use sites::Site;
pub use tls::ServerTls;

use crate::router::{RenderMetrics, SharedClock};
use crate::tiers::Tiers;

type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The memory tier's size when none is set: 64 MiB.
pub const DEFAULT_MEMORY_BYTES: u64 = 64 << 20;

/// The disk tier's budget when a directory is given without one: 1 GiB.
pub const DEFAULT_DISK_BYTES: u64 = 1 << 30;

/// The disk tier's block cache unless set otherwise: 16 MiB.
pub const DEFAULT_DISK_CACHE_BYTES: u64 = 16 << 20;

/// The largest body stored when no limit is set: 64 MiB.
pub const DEFAULT_MAX_OBJECT_BYTES: u64 = 64 << 20;

/// How long to wait for the origin's response head when no timeout is set: 30 seconds.
pub const DEFAULT_UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an idle connection to the origin is kept for reuse: 4 seconds, under the 5 seconds
/// after which common servers (Node.js, Apache httpd) close idle connections themselves, so the
/// gateway seldom sends a request on a connection the origin is closing.
pub const DEFAULT_UPSTREAM_IDLE: Duration = Duration::from_secs(4);

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
#[derive(Debug)]
#[must_use]
pub struct GatewayBuilder {
    /// The single upstream, as a site (named by `cache_name` when built, answering for every
    /// host); its cache options are also the defaults of the [sites](Gateway::sites).
    site: Site,
    /// The memory tier, and a disk or Redis tier behind it (`tiers.rs`).
    tiers: Tiers,
    cache_name: String,
    tag_headers: Vec<HeaderName>,
    rewrite_host: bool,
    upstream_timeout: Option<Duration>,
    upstream_idle: Duration,
    store_set_cookie: bool,
    targeted_fields: Option<Vec<HeaderName>>,
    coalesce_timeout: Duration,
    /// The layer's `fill_window` and `fill_after_disconnect`, when set.
    fill_window: Option<u64>,
    fill_after_disconnect: Option<u64>,
    clock: Option<SharedClock>,
    /// The forwarding fields (`forwarded.rs`).
    forwarding: forwarded::Forwarding,
    /// The headers dropped, and heuristic freshness (`hygiene.rs`).
    hygiene: hygiene::Settings,
    separate_admin: bool,
    sites: Vec<Site>,
    debug_key: bool,
}

impl GatewayBuilder {
    /// Shared (the default) or private; see [`Sharing`].
    pub fn mode(self, mode: Sharing) -> Self {
        Self {
            site: self.site.mode(mode),
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
    pub fn upstream_ca(self, pem_file: impl Into<PathBuf>) -> Self {
        Self {
            site: self.site.upstream_ca(pem_file),
            ..self
        }
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
        self,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        Self {
            site: self.site.upstream_client_cert(cert_file, key_file),
            ..self
        }
    }

    /// The name the gateway gives itself in `Cache-Status` and `Via` (`cachio` by default).
    pub fn cache_name(mut self, name: impl Into<String>) -> Self {
        self.cache_name = name.into();
        self
    }

    /// The token that allows purging (`None`, the default, turns purging off).
    pub fn purge_token(self, token: Option<String>) -> Self {
        Self {
            site: self.site.purge_token(token.filter(|t| !t.is_empty())),
            ..self
        }
    }

    /// The response header fields whose values are the surrogate keys (tags) that
    /// `/_cachio/purge/tag` matches; values are split on spaces and commas. By default
    /// `Surrogate-Key` and `Cache-Tag`.
    pub fn tag_headers(mut self, names: Vec<HeaderName>) -> Self {
        self.tag_headers = names;
        self
    }

    /// How long past its freshness a stored response may be served when the origin fails or
    /// answers 5xx, whatever its `stale-if-error` says (zero, the default, leaves it to
    /// `stale-if-error`).
    pub fn grace(self, grace: Duration) -> Self {
        Self {
            site: self.site.grace(grace),
            ..self
        }
    }

    /// The freshness lifetime given to storable responses that carry no explicit one (no
    /// `max-age`, `s-maxage`, `Expires` or `CDN-Cache-Control: max-age`). `None`, the default,
    /// invents nothing: such responses get RFC 9111's heuristic freshness only when they have a
    /// `Last-Modified` (see [`heuristics`](Self::heuristics)). In shared mode, a response to a
    /// request with `Cookie` or `Authorization` gets neither: it is not stored without an
    /// explicit lifetime.
    pub fn default_ttl(mut self, ttl: Option<Duration>) -> Self {
        self.site.settings.default_ttl = ttl;
        self
    }

    /// Sends the origin's host and port as `Host` instead of the client's (off by default:
    /// the client's `Host` goes on unchanged).
    pub fn rewrite_host(mut self, rewrite: bool) -> Self {
        self.rewrite_host = rewrite;
        self
    }

    /// How long to wait to connect to the origin and for its response head
    /// ([`DEFAULT_UPSTREAM_TIMEOUT`] by default; `None` waits forever). Past it the request gets
    /// a stale response if one may stand in, else `504 Gateway Timeout`. Bodies are streamed
    /// without a time limit.
    pub fn upstream_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.upstream_timeout = timeout;
        self
    }

    /// How long an idle connection to the origin is kept for reuse ([`DEFAULT_UPSTREAM_IDLE`] by
    /// default). Keep it below the origin's own idle timeout. Whatever it is, a `GET`, `HEAD` or
    /// other idempotent request without a body whose reused connection fails before a response
    /// head arrives is sent once more on a new connection (RFC 9110 §9.2.2).
    pub fn upstream_idle_timeout(mut self, idle: Duration) -> Self {
        self.upstream_idle = idle;
        self
    }

    /// Whether a shared gateway stores responses that carry `Set-Cookie` (off by default: such
    /// responses are usually personal even when marked cacheable). The `Set-Cookie` lines are
    /// stored and served with the response, to every client. A private gateway always stores
    /// them.
    pub fn store_set_cookie(mut self, store: bool) -> Self {
        self.store_set_cookie = store;
        self
    }

    /// The targeted cache-control fields this gateway obeys over `Cache-Control`, most specific
    /// first (RFC 9213 §2.2); by default `CDN-Cache-Control` in shared mode and none in private
    /// mode. For example `[Surrogate-Control, CDN-Cache-Control]` also honours the
    /// `Surrogate-Control` of Edge Architecture origins (its `max-age`, `no-store` and the other
    /// Cache-Control directives).
    pub fn targeted_fields(mut self, fields: Vec<HeaderName>) -> Self {
        self.targeted_fields = Some(fields);
        self
    }

    /// The longest a request waits for another request's fetch of the same URL before going to
    /// the origin itself (10 seconds by default).
    pub fn coalesce_timeout(mut self, timeout: Duration) -> Self {
        self.coalesce_timeout = timeout;
        self
    }

    /// How many bytes of a fetch in flight are kept for the requests that wait on it
    /// (`CacheLayer::fill_window`, [`cachio_tower::DEFAULT_FILL_WINDOW`] by default): each
    /// streams the response from this window at its own pace, and one that falls further
    /// behind reads the rest from the cache once the response is stored. Zero makes every
    /// waiter wait for the stored response.
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_gateway::Gateway;
    ///
    /// let gateway = Gateway::builder("http://127.0.0.1:9000")
    ///     .fill_window(1 << 20)
    ///     .build()?;
    /// # let _ = gateway;
    /// # Ok::<(), cachio_gateway::GatewayError>(())
    /// ```
    pub fn fill_window(mut self, bytes: u64) -> Self {
        self.fill_window = Some(bytes);
        self
    }

    /// The largest body still fetched into the cache after its client went away, when no other
    /// request waits on it (`CacheLayer::fill_after_disconnect`; by default the
    /// [largest body stored](Self::max_object_bytes)). Past it the fetch stops, and nothing is
    /// stored; zero stops every such fetch.
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_gateway::Gateway;
    ///
    /// let gateway = Gateway::builder("http://127.0.0.1:9000")
    ///     .fill_after_disconnect(8 << 20)
    ///     .build()?;
    /// # let _ = gateway;
    /// # Ok::<(), cachio_gateway::GatewayError>(())
    /// ```
    pub fn fill_after_disconnect(mut self, bytes: u64) -> Self {
        self.fill_after_disconnect = Some(bytes);
        self
    }

    /// Serves the admin routes (`/_cachio/…` and the `PURGE` method) only on
    /// [`Gateway::admin_router`], for a listener of their own, instead of beside the proxy (off by
    /// default). The main router then answers `/_cachio/…` with `404` and `PURGE` with `405`.
    pub fn separate_admin(mut self, separate: bool) -> Self {
        self.separate_admin = separate;
        self
    }

    /// How cache keys are made (by default the URL alone): request headers and cookies to add,
    /// query parameters to drop or sort; see [`KeyOptions`]. A [`Site`] may have its own.
    pub fn cache_key(self, key: KeyOptions) -> Self {
        Self {
            site: self.site.cache_key(key),
            ..self
        }
    }

    /// Adds the cache key to every `Cache-Status` (its `key` parameter, RFC 9211 §2.6); off by
    /// default, since it shows the keyed headers and cookies to the client.
    pub fn debug_key(mut self, on: bool) -> Self {
        self.debug_key = on;
        self
    }

    /// The clock the cache reads the time from (the system clock by default). For tests:
    /// [`cachio_core::clock::ManualClock`] moves time by hand.
    pub fn clock<C: Clock>(mut self, clock: C) -> Self {
        self.clock = Some(SharedClock(Arc::new(clock)));
        self
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
        let sites = sites::resolve(&self)?;
        tiers::open(&self, sites)
    }
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
    settle: settle::Settle,
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
            site: Site::new(String::new(), upstream),
            tiers: Tiers::default(),
            cache_name: "cachio".to_owned(),
            tag_headers: vec![
                HeaderName::from_static("surrogate-key"),
                HeaderName::from_static("cache-tag"),
            ],
            rewrite_host: false,
            upstream_timeout: Some(DEFAULT_UPSTREAM_TIMEOUT),
            upstream_idle: DEFAULT_UPSTREAM_IDLE,
            store_set_cookie: false,
            targeted_fields: None,
            coalesce_timeout: cachio_tower::DEFAULT_COALESCE_TIMEOUT,
            fill_window: None,
            fill_after_disconnect: None,
            clock: None,
            forwarding: forwarded::Forwarding::default(),
            hygiene: hygiene::Settings::default(),
            separate_admin: false,
            sites: Vec::new(),
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

    /// Finishes what the gateway began before it exits: waits up to `timeout` for the responses
    /// it is still storing (a client may have had the last byte of a response before the
    /// cache committed it; background revalidations), then syncs the disk tier. Says whether
    /// all of it was done; what was not is logged. Call it once the server has stopped taking
    /// requests, on a runtime that still runs the tasks the requests spawned: after [`serve`]
    /// returns, on the same runtime, or through [`serve_threaded_then`] (the binary waits up to
    /// 10 seconds).
    ///
    /// # Example
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// use cachio_gateway::Gateway;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let gateway = Gateway::builder("http://127.0.0.1:9000").build()?;
    /// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    /// // Serve until the shutdown future completes (here at once), then settle.
    /// cachio_gateway::serve(listener, gateway.router(), async {}).await?;
    /// assert!(gateway.settle(Duration::from_secs(10)).await);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn settle(&self, timeout: Duration) -> bool {
        self.settle.run(timeout).await
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
