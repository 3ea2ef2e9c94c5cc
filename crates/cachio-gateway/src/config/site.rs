//! One `[[site]]` table of the TOML file.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Mode, key_options, pair};
use crate::{GatewayError, Site};

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
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
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
    pub mode: Option<Mode>,
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

impl SiteConfig {
    /// The [`Site`] of this table; `n` is its place in the file, for messages.
    pub(super) fn site(&self, n: usize) -> Result<Site, GatewayError> {
        let label = match &self.name {
            Some(name) => format!("site `{name}`"),
            None => format!("site {n}"),
        };
        let bad = |m: &str| GatewayError::Config(format!("{label} ([[site]] {n}): {m}"));
        if self.host.is_empty() && !self.default {
            return Err(bad("no host: give host = [\"example.com\"]"));
        }
        let Some(upstream) = &self.upstream else {
            return Err(bad("no upstream: give upstream = \"http://...\""));
        };
        let name = match (&self.name, self.host.first()) {
            (Some(name), _) => name.clone(),
            (None, Some(host)) => host.to_ascii_lowercase(),
            (None, None) => return Err(bad("a default site without a host needs a name")),
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
        if let Some((cert, key)) =
            pair("upstream", &self.upstream_cert, &self.upstream_key).map_err(|m| bad(&m))?
        {
            site = site.upstream_client_cert(cert.clone(), key.clone());
        }
        Ok(site)
    }
}
