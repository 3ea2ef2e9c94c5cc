//! The gateway's settings as a TOML file (and as the command line merges them).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use serde::Deserialize;

use crate::{Cidr, ForwardedHeaders, GatewayBuilder, GatewayError, KeyOptions, ServerTls, Site};

/// The listen address when none is given: `127.0.0.1:8080`.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

/// The TLS listen address when a certificate is given without one: `127.0.0.1:8443`.
pub const DEFAULT_LISTEN_TLS: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8443);

/// Whose cache the gateway is (RFC 9111 §1): shared by every client (a reverse proxy, the
/// default) or private to one user.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
pub enum Sharing {
    /// A shared cache: honours `s-maxage`, `private`, and does not store responses to requests
    /// with `Authorization` unless the response allows it.
    #[default]
    Shared,
    /// A private cache: one user's, storing `private` responses too.
    Private,
}

/// The former name of [`Sharing`].
#[deprecated(note = "renamed to `Sharing`")]
pub type Mode = Sharing;

/// Every setting of the gateway, as read from a TOML file. Each key is the command-line flag
/// without its dashes (`memory-mb = 64`); absent keys take the defaults of [`GatewayBuilder`].
///
/// # Example
///
/// ```
/// use cachio_gateway::Config;
///
/// let config = Config::from_toml(r#"
///     upstream = "http://127.0.0.1:9000"
///     listen = "127.0.0.1:8080"
///     memory-mb = 128
///     purge-token = "s3cret"
///     tag-headers = ["surrogate-key"]
///     redis-url = "redis://127.0.0.1:6379/"
///     redis-prefix = "shop"
/// "#)?;
/// assert_eq!(config.memory_mb, Some(128));
/// let gateway = config.builder()?.build()?;
/// # let _ = gateway;
/// # Ok::<(), cachio_gateway::GatewayError>(())
/// ```
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct Config {
    /// The origin, `http://host[:port][/prefix]` or `https://host[:port][/prefix]`.
    pub upstream: Option<String>,
    /// The address to listen on for plain HTTP.
    pub listen: Option<SocketAddr>,
    /// The address to listen on for HTTPS (needs `tls-cert` and `tls-key`).
    pub listen_tls: Option<SocketAddr>,
    /// The PEM file of the TLS listener's certificate chain.
    pub tls_cert: Option<PathBuf>,
    /// The PEM file of the TLS listener's private key.
    pub tls_key: Option<PathBuf>,
    /// A PEM file of the only certificate authorities to trust for an `https://` upstream.
    pub upstream_ca: Option<PathBuf>,
    /// A PEM file with the client certificate for an `https://` upstream that asks for one;
    /// needs `upstream-key`.
    pub upstream_cert: Option<PathBuf>,
    /// The PEM file of the upstream client certificate's private key; needs `upstream-cert`.
    pub upstream_key: Option<PathBuf>,
    /// Shared or private.
    pub mode: Option<Sharing>,
    /// The memory tier's size in MiB.
    pub memory_mb: Option<u64>,
    /// The disk tier's directory.
    pub disk_dir: Option<PathBuf>,
    /// The disk tier's budget in MiB.
    pub disk_mb: Option<u64>,
    /// The largest body stored, in MiB.
    pub max_object_mb: Option<u64>,
    /// The name in `Cache-Status` and `Via`.
    pub cache_name: Option<String>,
    /// The token that allows purging.
    pub purge_token: Option<String>,
    /// How long past freshness a stored response may stand in for a failing origin, in seconds.
    pub grace_secs: Option<u64>,
    /// The freshness lifetime of responses that carry none of their own, in seconds.
    pub default_ttl_secs: Option<u64>,
    /// Whether to send the origin's host as `Host` instead of the client's.
    pub rewrite_host: Option<bool>,
    /// How long to wait for the origin's response head, in seconds (0: forever).
    pub upstream_timeout_secs: Option<u64>,
    /// How long an idle connection to the origin is kept for reuse, in seconds.
    pub upstream_idle_secs: Option<u64>,
    /// Whether a shared gateway stores responses that carry `Set-Cookie`.
    pub store_set_cookie: Option<bool>,
    /// The targeted cache-control fields obeyed over `Cache-Control`, most specific first.
    pub targeted_fields: Option<Vec<String>>,
    /// The response header fields that carry surrogate keys for purge by tag.
    pub tag_headers: Option<Vec<String>>,
    /// The binary's worker threads (each a single-threaded runtime).
    pub workers: Option<usize>,
    /// A Redis server shared by the fleet (`redis://host:port/`): memory over Redis.
    pub redis_url: Option<String>,
    /// The nodes of a Redis Cluster shared by the fleet (in TOML a list of URLs; on the command
    /// line comma-separated).
    pub redis_cluster: Option<Vec<String>>,
    /// The fleet's key prefix in Redis.
    pub redis_prefix: Option<String>,
    /// How long one Redis call may take, in milliseconds.
    pub redis_timeout_ms: Option<u64>,
    /// A PEM file of the certificate authorities to trust for a `rediss://` Redis, instead of
    /// the system's root certificates.
    pub redis_ca: Option<PathBuf>,
    /// A PEM file with the client certificate for a Redis that asks for one (mutual TLS); needs
    /// `redis-key`.
    pub redis_cert: Option<PathBuf>,
    /// The PEM file of the client certificate's private key; needs `redis-cert`.
    pub redis_key: Option<PathBuf>,
    /// The forwarding fields set on requests to the origin.
    pub forwarded_headers: Option<ForwardedHeaders>,
    /// The addresses (CIDR ranges) of proxies whose forwarding fields are kept and appended to.
    pub trusted_proxies: Option<Vec<String>>,
    /// Request headers of the dropped ones (rewrite headers) that go to the origin after all.
    pub pass_headers: Option<Vec<String>>,
    /// More request headers to drop before the cache and the origin.
    pub drop_headers: Option<Vec<String>>,
    /// Whether heuristic freshness (RFC 9111 §4.2.2) is used.
    pub heuristics: Option<bool>,
    /// An address of its own for the admin routes (`/_cachio/…`, `PURGE`), which the main
    /// address then does not serve.
    pub admin_listen: Option<SocketAddr>,
    /// Request headers whose values are part of the cache key.
    pub key_headers: Option<Vec<String>>,
    /// Cookies whose values are part of the cache key.
    pub key_cookies: Option<Vec<String>>,
    /// Query parameters left out of the cache key (`utm_*`: a prefix).
    pub key_drop_query: Option<Vec<String>>,
    /// Whether the query parameters are sorted in the cache key.
    pub key_sort_query: Option<bool>,
    /// Whether `Cache-Status` shows the cache key.
    pub debug_key: Option<bool>,
    /// The sites (`[[site]]` tables), instead of one `upstream`.
    pub site: Option<Vec<SiteConfig>>,
}

/// One `[[site]]` table: a [`Site`]. Unset keys take the file's top-level settings.
///
/// # Example
///
/// ```
/// use cachio_gateway::Config;
///
/// let config = Config::from_toml(r#"
///     memory-mb = 256
///
///     [[site]]
///     name = "shop"
///     host = ["shop.example", "www.shop.example"]
///     upstream = "http://127.0.0.1:9001"
///     purge-token = "shop-token"
///     key-drop-query = ["utm_*", "fbclid", "gclid"]
///     key-sort-query = true
///
///     [[site]]
///     name = "blog"
///     host = ["blog.example"]
///     upstream = "http://127.0.0.1:9002"
///     default = true
/// "#)?;
/// let sites = config.site.as_deref().unwrap_or_default();
/// assert_eq!(sites[1].host, ["blog.example"]);
/// let gateway = config.builder()?.build()?;
/// # let _ = gateway;
/// # Ok::<(), cachio_gateway::GatewayError>(())
/// ```
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
#[non_exhaustive]
pub struct SiteConfig {
    /// The site's name: its keys' prefix and its name in `Cache-Status` (default: its first
    /// host).
    pub name: Option<String>,
    /// The hosts it answers for (ports ignored, any case).
    #[serde(default)]
    pub host: Vec<String>,
    /// Its origin.
    pub upstream: Option<String>,
    /// Only paths under this prefix.
    pub path_prefix: Option<String>,
    /// Whether it answers the hosts no site names (else they get `421`).
    #[serde(default)]
    pub default: bool,
    /// Shared or private.
    pub mode: Option<Sharing>,
    /// The lifetime of responses that state none, in seconds.
    pub default_ttl_secs: Option<u64>,
    /// The grace period, in seconds.
    pub grace_secs: Option<u64>,
    /// Request headers whose values are part of the cache key.
    pub key_headers: Option<Vec<String>>,
    /// Cookies whose values are part of the cache key.
    pub key_cookies: Option<Vec<String>>,
    /// Query parameters left out of the cache key.
    pub key_drop_query: Option<Vec<String>>,
    /// Whether the query parameters are sorted in the cache key.
    pub key_sort_query: Option<bool>,
    /// The token that purges this site's entries.
    pub purge_token: Option<String>,
    /// The CAs to trust for an `https://` upstream (PEM).
    pub upstream_ca: Option<PathBuf>,
    /// The client certificate for an `https://` upstream (PEM); needs `upstream-key`.
    pub upstream_cert: Option<PathBuf>,
    /// The key of `upstream-cert` (PEM).
    pub upstream_key: Option<PathBuf>,
}

/// The key options of a file or a site table; `None` when none is set.
fn key_options(
    headers: Option<&Vec<String>>,
    cookies: Option<&Vec<String>>,
    drop: Option<&Vec<String>>,
    sort: Option<bool>,
) -> Result<Option<KeyOptions>, GatewayError> {
    if headers.is_none() && cookies.is_none() && drop.is_none() && sort.is_none() {
        return Ok(None);
    }
    let mut key = KeyOptions::new().sort_query(sort.unwrap_or(false));
    for name in header_names(headers.map_or(&[][..], Vec::as_slice))? {
        key = key.header(name);
    }
    for c in cookies.into_iter().flatten() {
        key = key.cookie(c.clone());
    }
    for q in drop.into_iter().flatten() {
        key = key.drop_query(q.clone());
    }
    Ok(Some(key))
}

impl SiteConfig {
    /// The [`Site`] of this table; `n` is its place in the file, for messages.
    fn site(&self, n: usize) -> Result<Site, GatewayError> {
        let label = match &self.name {
            Some(name) => format!("site `{name}`"),
            None => format!("site {n}"),
        };
        let bad = |m: &str| Err(GatewayError::Config(format!("{label} ([[site]] {n}): {m}")));
        if self.host.is_empty() && !self.default {
            return bad("no host: give host = [\"example.com\"]");
        }
        let Some(upstream) = &self.upstream else {
            return bad("no upstream: give upstream = \"http://...\"");
        };
        let name = match (&self.name, self.host.first()) {
            (Some(name), _) => name.clone(),
            (None, Some(host)) => host.to_ascii_lowercase(),
            (None, None) => return bad("a default site without a host needs a name"),
        };
        let mut site = Site::new(name, upstream.clone())
            .hosts(self.host.iter().cloned())
            .default_site(self.default)
            .purge_token(self.purge_token.clone());
        if let Some(p) = &self.path_prefix {
            site = site.path_prefix(p.clone());
        }
        if let Some(mode) = self.mode {
            site = site.mode(mode);
        }
        if let Some(s) = self.default_ttl_secs {
            site = site.default_ttl(Duration::from_secs(s));
        }
        if let Some(s) = self.grace_secs {
            site = site.grace(Duration::from_secs(s));
        }
        if let Some(key) = key_options(
            self.key_headers.as_ref(),
            self.key_cookies.as_ref(),
            self.key_drop_query.as_ref(),
            self.key_sort_query,
        )? {
            site = site.cache_key(key);
        }
        if let Some(ca) = &self.upstream_ca {
            site = site.upstream_ca(ca.clone());
        }
        match (&self.upstream_cert, &self.upstream_key) {
            (Some(cert), Some(key)) => site = site.upstream_client_cert(cert.clone(), key.clone()),
            (None, None) => {}
            _ => return bad("upstream-cert and upstream-key go together: give both or neither"),
        }
        Ok(site)
    }
}

impl Config {
    /// Parses a TOML document.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Config`] for TOML that does not parse or names an unknown key.
    pub fn from_toml(text: &str) -> Result<Self, GatewayError> {
        toml::from_str(text).map_err(|e| GatewayError::Config(e.to_string()))
    }

    /// Reads and parses a TOML file.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Config`] when the file cannot be read or parsed.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, GatewayError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path)
            .map_err(|e| GatewayError::Config(format!("{}: {e}", path.display())))?;
        Self::from_toml(&text).map_err(|e| GatewayError::Config(format!("{}: {e}", path.display())))
    }

    /// These settings with every setting of `over` that is present replacing this one's (the
    /// command line over the file).
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_gateway::Config;
    ///
    /// let file = Config::from_toml("memory-mb = 64\ncache-name = \"edge\"").unwrap();
    /// let flags = Config::from_toml("memory-mb = 256").unwrap();
    /// let merged = file.merge(flags);
    /// assert_eq!(merged.memory_mb, Some(256));
    /// assert_eq!(merged.cache_name.as_deref(), Some("edge"));
    /// ```
    #[must_use]
    pub fn merge(self, over: Config) -> Config {
        Config {
            upstream: over.upstream.or(self.upstream),
            listen: over.listen.or(self.listen),
            listen_tls: over.listen_tls.or(self.listen_tls),
            tls_cert: over.tls_cert.or(self.tls_cert),
            tls_key: over.tls_key.or(self.tls_key),
            upstream_ca: over.upstream_ca.or(self.upstream_ca),
            upstream_cert: over.upstream_cert.or(self.upstream_cert),
            upstream_key: over.upstream_key.or(self.upstream_key),
            mode: over.mode.or(self.mode),
            memory_mb: over.memory_mb.or(self.memory_mb),
            disk_dir: over.disk_dir.or(self.disk_dir),
            disk_mb: over.disk_mb.or(self.disk_mb),
            max_object_mb: over.max_object_mb.or(self.max_object_mb),
            cache_name: over.cache_name.or(self.cache_name),
            purge_token: over.purge_token.or(self.purge_token),
            grace_secs: over.grace_secs.or(self.grace_secs),
            default_ttl_secs: over.default_ttl_secs.or(self.default_ttl_secs),
            rewrite_host: over.rewrite_host.or(self.rewrite_host),
            upstream_timeout_secs: over.upstream_timeout_secs.or(self.upstream_timeout_secs),
            upstream_idle_secs: over.upstream_idle_secs.or(self.upstream_idle_secs),
            store_set_cookie: over.store_set_cookie.or(self.store_set_cookie),
            targeted_fields: over.targeted_fields.or(self.targeted_fields),
            tag_headers: over.tag_headers.or(self.tag_headers),
            workers: over.workers.or(self.workers),
            redis_url: over.redis_url.or(self.redis_url),
            redis_cluster: over.redis_cluster.or(self.redis_cluster),
            redis_prefix: over.redis_prefix.or(self.redis_prefix),
            redis_timeout_ms: over.redis_timeout_ms.or(self.redis_timeout_ms),
            redis_ca: over.redis_ca.or(self.redis_ca),
            redis_cert: over.redis_cert.or(self.redis_cert),
            redis_key: over.redis_key.or(self.redis_key),
            forwarded_headers: over.forwarded_headers.or(self.forwarded_headers),
            trusted_proxies: over.trusted_proxies.or(self.trusted_proxies),
            pass_headers: over.pass_headers.or(self.pass_headers),
            drop_headers: over.drop_headers.or(self.drop_headers),
            heuristics: over.heuristics.or(self.heuristics),
            admin_listen: over.admin_listen.or(self.admin_listen),
            key_headers: over.key_headers.or(self.key_headers),
            key_cookies: over.key_cookies.or(self.key_cookies),
            key_drop_query: over.key_drop_query.or(self.key_drop_query),
            key_sort_query: over.key_sort_query.or(self.key_sort_query),
            debug_key: over.debug_key.or(self.debug_key),
            site: over.site.or(self.site),
        }
    }

    /// The address to listen on ([`DEFAULT_LISTEN`] when unset).
    pub fn listen_addr(&self) -> SocketAddr {
        self.listen.unwrap_or(DEFAULT_LISTEN)
    }

    /// The address of the plain HTTP listener: `listen`, or [`DEFAULT_LISTEN`] when no TLS
    /// listener is set either. `None` when only HTTPS is served (`tls-cert` without `listen`).
    pub fn plain_listen_addr(&self) -> Option<SocketAddr> {
        match (self.listen, &self.tls_cert) {
            (Some(addr), _) => Some(addr),
            (None, None) => Some(DEFAULT_LISTEN),
            (None, Some(_)) => None,
        }
    }

    /// The HTTPS listener: its address (`listen-tls`, or [`DEFAULT_LISTEN_TLS`]) and its
    /// certificate, read from `tls-cert` and `tls-key`; `None` when they are unset.
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_gateway::Config;
    ///
    /// let config = Config::from_toml(r#"
    ///     upstream = "https://origin.internal"
    ///     listen-tls = "0.0.0.0:443"
    /// "#)?;
    /// // A TLS address without a certificate is an error; no TLS setting at all is `None`.
    /// assert!(config.tls_listener().is_err());
    /// assert!(Config::default().tls_listener()?.is_none());
    /// # Ok::<(), cachio_gateway::GatewayError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// [`GatewayError::Config`] when only one of `tls-cert` and `tls-key` is set, or
    /// `listen-tls` without them; [`GatewayError::Tls`] when the files cannot be used.
    pub fn tls_listener(&self) -> Result<Option<(SocketAddr, ServerTls)>, GatewayError> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => {
                let tls = ServerTls::from_pem_files(cert, key)?;
                Ok(Some((self.listen_tls.unwrap_or(DEFAULT_LISTEN_TLS), tls)))
            }
            (None, None) if self.listen_tls.is_some() => Err(GatewayError::Config(
                "listen-tls needs tls-cert and tls-key".into(),
            )),
            (None, None) => Ok(None),
            _ => Err(GatewayError::Config(
                "tls-cert and tls-key go together: give both or neither".into(),
            )),
        }
    }

    /// A [`GatewayBuilder`] with these settings.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Config`] when `upstream` is missing, a tag, passed or dropped header is
    /// not a valid field name, a trusted proxy is not an address or CIDR range, both
    /// `redis-url` and `redis-cluster` are set, or only one of `redis-cert` and `redis-key` is,
    /// or of `upstream-cert` and `upstream-key`.
    pub fn builder(&self) -> Result<GatewayBuilder, GatewayError> {
        let mut b = match (&self.upstream, self.site.as_deref()) {
            (Some(_), Some(sites)) if !sites.is_empty() => {
                return Err(GatewayError::Config(
                    "give upstream or [[site]] tables, not both".into(),
                ));
            }
            (Some(upstream), _) => crate::Gateway::builder(upstream.clone()),
            (None, Some(sites)) if !sites.is_empty() => {
                let sites = sites
                    .iter()
                    .enumerate()
                    .map(|(i, s)| s.site(i + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                crate::sites::validate(&sites)?;
                crate::Gateway::sites(sites)
            }
            (None, _) => {
                return Err(GatewayError::Config(
                    "no upstream: give --upstream URL (or [[site]] tables in the file)".into(),
                ));
            }
        };
        if let Some(key) = key_options(
            self.key_headers.as_ref(),
            self.key_cookies.as_ref(),
            self.key_drop_query.as_ref(),
            self.key_sort_query,
        )? {
            b = b.cache_key(key);
        }
        if let Some(on) = self.debug_key {
            b = b.debug_key(on);
        }
        if let Some(mode) = self.mode {
            b = b.mode(mode);
        }
        if let Some(mb) = self.memory_mb {
            b = b.memory_bytes(mb.saturating_mul(1 << 20));
        }
        if let Some(dir) = &self.disk_dir {
            let mb = self.disk_mb.unwrap_or(crate::DEFAULT_DISK_BYTES >> 20);
            b = b.disk(dir, mb.saturating_mul(1 << 20));
        }
        if let Some(mb) = self.max_object_mb {
            b = b.max_object_bytes(mb.saturating_mul(1 << 20));
        }
        if let Some(name) = &self.cache_name {
            b = b.cache_name(name.clone());
        }
        if let Some(token) = &self.purge_token {
            b = b.purge_token(Some(token.clone()));
        }
        if let Some(s) = self.grace_secs {
            b = b.grace(Duration::from_secs(s));
        }
        if let Some(s) = self.default_ttl_secs {
            b = b.default_ttl(Some(Duration::from_secs(s)));
        }
        if let Some(r) = self.rewrite_host {
            b = b.rewrite_host(r);
        }
        if let Some(s) = self.upstream_timeout_secs {
            b = b.upstream_timeout((s > 0).then(|| Duration::from_secs(s)));
        }
        if let Some(s) = self.upstream_idle_secs {
            b = b.upstream_idle_timeout(Duration::from_secs(s));
        }
        if let Some(store) = self.store_set_cookie {
            b = b.store_set_cookie(store);
        }
        if let Some(names) = &self.targeted_fields {
            b = b.targeted_fields(header_names(names)?);
        }
        match (&self.redis_url, &self.redis_cluster) {
            (Some(_), Some(_)) => {
                return Err(GatewayError::Config(
                    "give redis-url or redis-cluster, not both".into(),
                ));
            }
            (Some(url), None) => b = b.redis_url(url.clone()),
            (None, Some(urls)) => {
                let urls: Vec<String> = urls
                    .iter()
                    .flat_map(|u| u.split(','))
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(str::to_owned)
                    .collect();
                if urls.is_empty() {
                    return Err(GatewayError::Config("redis-cluster lists no node".into()));
                }
                b = b.redis_cluster(urls);
            }
            (None, None) => {}
        }
        if let Some(prefix) = &self.redis_prefix {
            b = b.redis_prefix(prefix.clone());
        }
        if let Some(ms) = self.redis_timeout_ms {
            b = b.redis_timeout(Duration::from_millis(ms.max(1)));
        }
        if let Some(ca) = &self.redis_ca {
            b = b.redis_ca(ca.clone());
        }
        match (&self.redis_cert, &self.redis_key) {
            (Some(cert), Some(key)) => b = b.redis_client_cert(cert.clone(), key.clone()),
            (None, None) => {}
            _ => {
                return Err(GatewayError::Config(
                    "redis-cert and redis-key go together: give both or neither".into(),
                ));
            }
        }
        if let Some(names) = &self.tag_headers {
            b = b.tag_headers(header_names(names)?);
        }
        if let Some(ca) = &self.upstream_ca {
            b = b.upstream_ca(ca.clone());
        }
        match (&self.upstream_cert, &self.upstream_key) {
            (Some(cert), Some(key)) => b = b.upstream_client_cert(cert.clone(), key.clone()),
            (None, None) => {}
            _ => {
                return Err(GatewayError::Config(
                    "upstream-cert and upstream-key go together: give both or neither".into(),
                ));
            }
        }
        if let Some(set) = self.forwarded_headers {
            b = b.forwarded_headers(set);
        }
        if let Some(ranges) = &self.trusted_proxies {
            let ranges: Vec<Cidr> = ranges.iter().map(|r| r.parse()).collect::<Result<_, _>>()?;
            b = b.trusted_proxies(ranges);
        }
        if let Some(names) = &self.pass_headers {
            b = b.pass_headers(header_names(names)?);
        }
        if let Some(names) = &self.drop_headers {
            b = b.drop_headers(header_names(names)?);
        }
        if let Some(on) = self.heuristics {
            b = b.heuristics(on);
        }
        if self.admin_listen.is_some() {
            b = b.separate_admin(true);
        }
        Ok(b)
    }
}

fn header_names(names: &[String]) -> Result<Vec<HeaderName>, GatewayError> {
    names
        .iter()
        .map(|n| {
            HeaderName::try_from(n.as_str())
                .map_err(|_| GatewayError::Config(format!("`{n}` is not a header name")))
        })
        .collect()
}
