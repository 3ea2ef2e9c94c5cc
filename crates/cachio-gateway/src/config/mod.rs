//! The gateway's settings, defined once: [`Config`] is the TOML file, the command line (with the
//! `cli` feature, as `clap` arguments) and, through [`Config::builder`], a [`GatewayBuilder`].

mod options;
mod site;
#[cfg(all(test, feature = "cli"))]
mod tests;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::HeaderName;
use serde::{Deserialize, Serialize};

use crate::{Cidr, ForwardedHeaders, GatewayBuilder, GatewayError, ServerTls};

pub use options::SiteOptions;
pub use site::SiteConfig;

use options::NoOtherKeys;

/// The listen address when none is given: `127.0.0.1:8080`.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8080);

/// The TLS listen address when a certificate is given without one: `127.0.0.1:8443`.
pub const DEFAULT_LISTEN_TLS: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8443);

/// Whose cache the gateway is (RFC 9111 §1): shared by every client (a reverse proxy, the
/// default) or private to one user.
#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
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

/// Every setting of the gateway binary, as a TOML file and as its command line. Each TOML key
/// is the command-line flag without its dashes (`memory-mb = 64` for `--memory-mb 64`; a
/// repeatable flag's key is a list named in the plural: `--tag-header` gives `tag-headers`);
/// absent settings take the defaults of [`GatewayBuilder`]. Each field's documentation is
/// also its `--help` text. The settings a `[[site]]` table may give too are in
/// [`site_options`](Self::site_options).
///
/// With the `cli` feature it is a [`clap::Args`]: flatten it into a parser, and lay the
/// flags over a file with `clap::FromArgMatches::update_from_arg_matches`, which replaces only
/// the settings given on the command line (what the binary does).
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
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[non_exhaustive]
// The fields' docs are also their `--help` text, where `[default: 64]` and `host[:port]` are
// plain text, not links.
#[allow(rustdoc::broken_intra_doc_links)]
pub struct Config {
    /// The settings a `[[site]]` table may give too; here, the single upstream's, and every
    /// site's defaults.
    #[serde(flatten)]
    #[cfg_attr(feature = "cli", command(flatten))]
    pub site_options: SiteOptions,

    /// The address to listen on for plain HTTP [default: 127.0.0.1:8080, or none when
    /// --tls-cert is given].
    #[cfg_attr(feature = "cli", arg(long, value_name = "ADDR"))]
    pub listen: Option<SocketAddr>,

    /// The address to listen on for HTTPS, with --tls-cert and --tls-key
    /// [default: 127.0.0.1:8443].
    #[cfg_attr(feature = "cli", arg(long, value_name = "ADDR"))]
    pub listen_tls: Option<SocketAddr>,

    /// Serve HTTPS with this certificate chain (PEM: the certificate, then its intermediates);
    /// with --tls-key. Reloaded on SIGHUP; a file that cannot be used then keeps the old one.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE", requires = "tls_key"))]
    pub tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE", requires = "tls_cert"))]
    pub tls_key: Option<PathBuf>,

    /// The memory tier's size in MiB [default: 64].
    #[cfg_attr(feature = "cli", arg(long, value_name = "MIB"))]
    pub memory_mb: Option<u64>,

    /// Keep a disk tier in this directory, behind the memory tier.
    #[cfg_attr(feature = "cli", arg(long, value_name = "PATH"))]
    pub disk_dir: Option<PathBuf>,

    /// The disk tier's budget in MiB [default: 1024]. From 64 MiB up the directory stays within
    /// the budget + 10% + 32 MiB.
    #[cfg_attr(feature = "cli", arg(long, value_name = "MIB"))]
    pub disk_mb: Option<u64>,

    /// The disk tier's block cache in MiB, held in memory beside the memory tier [default: 16].
    #[cfg_attr(feature = "cli", arg(long, value_name = "MIB"))]
    pub disk_cache_mb: Option<u64>,

    /// The largest response body stored, in MiB; larger ones stream through [default: 64].
    #[cfg_attr(feature = "cli", arg(long, value_name = "MIB"))]
    pub max_object_mb: Option<u64>,

    /// How many MiB of a response being fetched are kept for the requests that wait on the same
    /// fetch: each streams it from this window at its own pace, and one that falls further behind
    /// reads the rest from the cache once the response is stored. 0 makes every waiter wait
    /// for the stored response [default: 4].
    #[cfg_attr(feature = "cli", arg(long, value_name = "MIB"))]
    pub fill_window_mb: Option<u64>,

    /// The largest response, in MiB, still fetched into the cache after its client went away
    /// when no other request waits on it; a larger one stops at once, and is not stored
    /// [default: --max-object-mb].
    #[cfg_attr(feature = "cli", arg(long, value_name = "MIB"))]
    pub fill_after_disconnect_mb: Option<u64>,

    /// The name in Cache-Status and Via [default: cachio].
    #[cfg_attr(feature = "cli", arg(long, value_name = "NAME"))]
    pub cache_name: Option<String>,

    /// Send the upstream's host as Host instead of the client's.
    #[cfg_attr(feature = "cli", arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL"))]
    pub rewrite_host: Option<bool>,

    /// How long to wait to connect to the origin and for its response head; past it: a stale
    /// response if allowed, else 504. 0 waits forever [default: 30].
    #[cfg_attr(feature = "cli", arg(long, value_name = "SECS"))]
    pub upstream_timeout_secs: Option<u64>,

    /// How long an idle connection to the origin is kept for reuse; keep it under the origin's
    /// own idle timeout [default: 4].
    #[cfg_attr(feature = "cli", arg(long, value_name = "SECS"))]
    pub upstream_idle_secs: Option<u64>,

    /// In shared mode, also store responses that carry Set-Cookie (their cookies are then
    /// served to every client) [default: false].
    #[cfg_attr(feature = "cli", arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL"))]
    pub store_set_cookie: Option<bool>,

    /// A targeted cache-control field obeyed over Cache-Control, most specific first
    /// (repeatable; RFC 9213), e.g. --targeted-field surrogate-control --targeted-field
    /// cdn-cache-control [default: cdn-cache-control in shared mode, none in private mode].
    #[cfg_attr(feature = "cli", arg(long = "targeted-field", value_name = "NAME"))]
    pub targeted_fields: Option<Vec<String>>,

    /// A response header whose values are surrogate keys for purge by tag (repeatable)
    /// [default: surrogate-key and cache-tag].
    #[cfg_attr(feature = "cli", arg(long = "tag-header", value_name = "NAME"))]
    pub tag_headers: Option<Vec<String>>,

    /// Worker threads, each a single-threaded runtime serving its share of the connections
    /// [default: the number of CPUs].
    #[cfg_attr(feature = "cli", arg(long, value_name = "N"))]
    pub workers: Option<usize>,

    /// Share the cache with a fleet of gateways through this Redis server
    /// (redis://[user:password@]host[:port][/db], or rediss://... for TLS): memory over Redis,
    /// with purges and invalidations reaching every gateway's memory. While Redis is down the
    /// cache steps aside.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "URL", conflicts_with = "redis_cluster")
    )]
    pub redis_url: Option<String>,

    /// Like --redis-url, on a Redis Cluster: the URLs of some of its nodes, comma-separated.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "URL,URL,...", value_delimiter = ',')
    )]
    pub redis_cluster: Option<Vec<String>>,

    /// The fleet's key prefix in Redis [default: cachio].
    #[cfg_attr(feature = "cli", arg(long, value_name = "PREFIX"))]
    pub redis_prefix: Option<String>,

    /// How long one Redis call may take before the cache steps aside for that request, in
    /// milliseconds [default: 50].
    #[cfg_attr(feature = "cli", arg(long, value_name = "MS"))]
    pub redis_timeout_ms: Option<u64>,

    /// How far the clocks of the fleet's gateways and of Redis may be apart, in milliseconds:
    /// a response whose request was sent up to this long after a purge of its URL on any
    /// gateway is not stored (the purge may have come first). Keep the clocks in step with NTP,
    /// within this margin [default: 1000].
    #[cfg_attr(feature = "cli", arg(long, value_name = "MS"))]
    pub redis_clock_skew_ms: Option<u64>,

    /// For a rediss:// Redis: trust the certificate authorities in this PEM file instead of the
    /// system's root certificates.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub redis_ca: Option<PathBuf>,

    /// For a rediss:// Redis that asks for a client certificate (mutual TLS): this PEM
    /// certificate, with --redis-key.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "FILE", requires = "redis_key")
    )]
    pub redis_cert: Option<PathBuf>,

    /// The private key (PEM) of --redis-cert.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "FILE", requires = "redis_cert")
    )]
    pub redis_key: Option<PathBuf>,

    /// The forwarding fields set on requests to the origin, from the connection (the client's
    /// address, the scheme, its Host): `forwarded` (RFC 7239), `x-forwarded` (X-Forwarded-For,
    /// -Proto, -Host), `both` or `none` [default: both]. Whatever it is, the forwarding fields a
    /// client sends (Forwarded, X-Forwarded-*, X-Real-IP, X-Host, ...) are dropped unless it is a
    /// --trusted-proxy: an origin that reflects them would otherwise let one client poison what
    /// the cache serves to all.
    #[cfg_attr(feature = "cli", arg(long, value_enum, value_name = "WHICH"))]
    pub forwarded_headers: Option<ForwardedHeaders>,

    /// A proxy in front of the gateway (address or CIDR range, repeatable) whose forwarding
    /// fields are kept: the gateway appends to its X-Forwarded-For and Forwarded [default: none].
    #[cfg_attr(feature = "cli", arg(long = "trusted-proxy", value_name = "CIDR"))]
    pub trusted_proxies: Option<Vec<String>>,

    /// A request header the gateway would drop that goes to the origin after all (repeatable).
    /// Dropped by default: X-Original-URL, X-Rewrite-URL, X-HTTP-Method-Override, X-HTTP-Method,
    /// X-Method-Override (they make common origins serve another path or method than the cache
    /// keys on), and those of --drop-header.
    #[cfg_attr(feature = "cli", arg(long = "pass-header", value_name = "NAME"))]
    pub pass_headers: Option<Vec<String>>,

    /// A request header to drop before the cache and the origin see the request, besides the
    /// rewrite headers (repeatable).
    #[cfg_attr(feature = "cli", arg(long = "drop-header", value_name = "NAME"))]
    pub drop_headers: Option<Vec<String>>,

    /// `on`: a response with Last-Modified and no explicit lifetime is fresh for a tenth of its
    /// age, up to a day (RFC 9111 §4.2.2) [default]; `off`: only explicit lifetimes (and
    /// --default-ttl-secs). In shared mode a response to a request with Cookie or Authorization
    /// never gets heuristic freshness and is stored only with an explicit lifetime.
    #[cfg_attr(feature = "cli", arg(long, value_name = "on|off", value_parser = clap::builder::BoolishValueParser::new()))]
    pub heuristics: Option<bool>,

    /// Serve the admin routes (/_cachio/metrics, /_cachio/purge/..., PURGE) on this address
    /// only, not on --listen.
    #[cfg_attr(feature = "cli", arg(long, value_name = "ADDR"))]
    pub admin_listen: Option<SocketAddr>,

    /// Show the cache key in Cache-Status (its key parameter, RFC 9211) [default: false].
    #[cfg_attr(feature = "cli", arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL"))]
    pub debug_key: Option<bool>,

    /// The sites (`[[site]]` tables), instead of one `upstream`; in the file only.
    #[cfg_attr(feature = "cli", arg(skip))]
    pub site: Option<Vec<SiteConfig>>,

    /// Refuses a key no setting takes.
    #[serde(flatten, skip_serializing)]
    #[cfg_attr(feature = "cli", arg(skip))]
    other_keys: NoOtherKeys,
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
    /// `over` must be a setting TOML can hold, as every `Config` read from a file is: should one
    /// of either side's not be (a path that is not UTF-8, a number past `i64::MAX`), the result
    /// is `over` alone.
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
        // A setting that is `None` is left out of its table, so the keys of `over`'s table are
        // exactly the settings it gives.
        let (Ok(mut merged), Ok(given)) =
            (toml::Table::try_from(&self), toml::Table::try_from(&over))
        else {
            return over;
        };
        merged.extend(given);
        Config::deserialize(merged).unwrap_or(over)
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
        match pair("tls", &self.tls_cert, &self.tls_key).map_err(GatewayError::Config)? {
            Some((cert, key)) => {
                let tls = ServerTls::from_pem_files(cert, key)?;
                Ok(Some((self.listen_tls.unwrap_or(DEFAULT_LISTEN_TLS), tls)))
            }
            None if self.listen_tls.is_some() => Err(GatewayError::Config(
                "listen-tls needs tls-cert and tls-key".into(),
            )),
            None => Ok(None),
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
        let b = self.origins()?;
        let b = self.upstream_options(b)?;
        let b = self.cache(b)?;
        let b = self.redis(b)?;
        self.hygiene(b)
    }

    /// A builder for `upstream`, or for the `[[site]]` tables.
    fn origins(&self) -> Result<GatewayBuilder, GatewayError> {
        match (&self.site_options.upstream, self.site.as_deref()) {
            (Some(_), Some(sites)) if !sites.is_empty() => Err(GatewayError::Config(
                "give upstream or [[site]] tables, not both".into(),
            )),
            (Some(upstream), _) => Ok(crate::Gateway::builder(upstream.clone())),
            (None, Some(sites)) if !sites.is_empty() => {
                let sites = sites
                    .iter()
                    .enumerate()
                    .map(|(i, s)| s.site(i + 1))
                    .collect::<Result<Vec<_>, _>>()?;
                crate::sites::validate(&sites)?;
                Ok(crate::Gateway::sites(sites))
            }
            (None, _) => Err(GatewayError::Config(
                "no upstream: give --upstream URL (or [[site]] tables in the file)".into(),
            )),
        }
    }

    /// The single upstream's options, which are also every site's defaults.
    fn upstream_options(&self, mut b: GatewayBuilder) -> Result<GatewayBuilder, GatewayError> {
        let options = &self.site_options;
        b.site = options.apply(b.site).map_err(GatewayError::Config)?;
        if let Some(token) = &options.purge_token {
            // The builder's setter takes an empty token for none, where a site's keeps it.
            b = b.purge_token(Some(token.clone()));
        }
        Ok(b)
    }

    /// The tiers' sizes and the caching policy.
    fn cache(&self, mut b: GatewayBuilder) -> Result<GatewayBuilder, GatewayError> {
        if let Some(on) = self.debug_key {
            b = b.debug_key(on);
        }
        if let Some(mb) = self.memory_mb {
            b = b.memory_bytes(mib(mb));
        }
        if let Some(dir) = &self.disk_dir {
            let mb = self.disk_mb.unwrap_or(crate::DEFAULT_DISK_BYTES >> 20);
            b = b.disk(dir, mib(mb));
        }
        if let Some(mb) = self.disk_cache_mb {
            b = b.disk_cache_bytes(mib(mb));
        }
        if let Some(mb) = self.max_object_mb {
            b = b.max_object_bytes(mib(mb));
        }
        if let Some(mb) = self.fill_window_mb {
            b = b.fill_window(mib(mb));
        }
        if let Some(mb) = self.fill_after_disconnect_mb {
            b = b.fill_after_disconnect(mib(mb));
        }
        if let Some(name) = &self.cache_name {
            b = b.cache_name(name.clone());
        }
        if let Some(names) = &self.tag_headers {
            b = b.tag_headers(header_names(names).map_err(GatewayError::Config)?);
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
            b = b.targeted_fields(header_names(names).map_err(GatewayError::Config)?);
        }
        if let Some(on) = self.heuristics {
            b = b.heuristics(on);
        }
        Ok(b)
    }

    /// The shared Redis tier.
    fn redis(&self, mut b: GatewayBuilder) -> Result<GatewayBuilder, GatewayError> {
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
        if let Some(ms) = self.redis_clock_skew_ms {
            b = b.redis_clock_skew(Duration::from_millis(ms));
        }
        if let Some(ca) = &self.redis_ca {
            b = b.redis_ca(ca.clone());
        }
        if let Some((cert, key)) =
            pair("redis", &self.redis_cert, &self.redis_key).map_err(GatewayError::Config)?
        {
            b = b.redis_client_cert(cert.clone(), key.clone());
        }
        Ok(b)
    }

    /// The forwarding fields, the dropped headers and the admin listener.
    fn hygiene(&self, mut b: GatewayBuilder) -> Result<GatewayBuilder, GatewayError> {
        if let Some(set) = self.forwarded_headers {
            b = b.forwarded_headers(set);
        }
        if let Some(ranges) = &self.trusted_proxies {
            let ranges: Vec<Cidr> = ranges.iter().map(|r| r.parse()).collect::<Result<_, _>>()?;
            b = b.trusted_proxies(ranges);
        }
        if let Some(names) = &self.pass_headers {
            b = b.pass_headers(header_names(names).map_err(GatewayError::Config)?);
        }
        if let Some(names) = &self.drop_headers {
            b = b.drop_headers(header_names(names).map_err(GatewayError::Config)?);
        }
        if self.admin_listen.is_some() {
            b = b.separate_admin(true);
        }
        Ok(b)
    }
}

/// `mb` mebibytes in bytes.
fn mib(mb: u64) -> u64 {
    mb.saturating_mul(1 << 20)
}

/// A certificate and its key, given both or neither: `PREFIX-cert` and `PREFIX-key`.
fn pair<'a>(
    prefix: &str,
    cert: &'a Option<PathBuf>,
    key: &'a Option<PathBuf>,
) -> Result<Option<(&'a PathBuf, &'a PathBuf)>, String> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some((cert, key))),
        (None, None) => Ok(None),
        _ => Err(format!(
            "{prefix}-cert and {prefix}-key go together: give both or neither"
        )),
    }
}

fn header_names(names: &[String]) -> Result<Vec<HeaderName>, String> {
    names
        .iter()
        .map(|n| {
            HeaderName::try_from(n.as_str()).map_err(|_| format!("`{n}` is not a header name"))
        })
        .collect()
}
