//! The settings a site may have of its own: at the top level of the file (and on the command
//! line) the single upstream's and every site's defaults, and in a `[[site]]` table that site's.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, IgnoredAny};
use serde::{Deserialize, Deserializer, Serialize};

use super::header_names;
use crate::{KeyOptions, Sharing, Site};

/// The settings of one upstream that a `[[site]]` table may give as well as the top level of
/// the file: there they are the single upstream's and every site's defaults (and the command
/// line's flags), in a table that site's own. Flattened into [`Config`](super::Config) and
/// [`SiteConfig`](super::SiteConfig): the keys are theirs.
///
/// # Example
///
/// ```
/// use cachio_gateway::Config;
///
/// let config = Config::from_toml(r#"
///     purge-token = "s3cret"
///
///     [[site]]
///     name = "shop"
///     host = ["shop.example"]
///     upstream = "http://127.0.0.1:9001"
///     grace-secs = 30
/// "#)?;
/// assert_eq!(config.site_options.purge_token.as_deref(), Some("s3cret"));
/// let shop = &config.site.as_deref().unwrap_or_default()[0];
/// assert_eq!(shop.options.grace_secs, Some(30));
/// # Ok::<(), cachio_gateway::GatewayError>(())
/// ```
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
#[cfg_attr(feature = "cli", derive(clap::Args))]
#[non_exhaustive]
// The fields' docs are also their `--help` text, where `[default: 0]` and `host[:port]` are
// plain text, not links.
#[allow(rustdoc::broken_intra_doc_links)]
pub struct SiteOptions {
    /// The origin to forward to: http://host[:port][/path-prefix] or https://... (TLS with
    /// the host as server name, HTTP/2 when the origin offers it).
    #[cfg_attr(feature = "cli", arg(long, value_name = "URL"))]
    pub upstream: Option<String>,

    /// For an https:// upstream: trust only the certificate authorities in this PEM file,
    /// instead of the built-in and system root certificates.
    #[cfg_attr(feature = "cli", arg(long, value_name = "FILE"))]
    pub upstream_ca: Option<PathBuf>,

    /// For an https:// upstream that asks for a client certificate (mutual TLS): this PEM
    /// certificate, with --upstream-key.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "FILE", requires = "upstream_key")
    )]
    pub upstream_cert: Option<PathBuf>,

    /// The private key (PEM) of --upstream-cert.
    #[cfg_attr(
        feature = "cli",
        arg(long, value_name = "FILE", requires = "upstream_cert")
    )]
    pub upstream_key: Option<PathBuf>,

    /// `shared`: a cache for every client (honours s-maxage and private) [default];
    /// `private`: one user's cache.
    #[cfg_attr(feature = "cli", arg(long, value_enum))]
    pub mode: Option<Sharing>,

    /// The token that allows purging, sent as `Authorization: Bearer TOKEN` or
    /// `X-Purge-Token: TOKEN`. Without one, purging is disabled.
    #[cfg_attr(
        feature = "cli",
        arg(
            long,
            value_name = "TOKEN",
            env = "CACHIO_PURGE_TOKEN",
            hide_env_values = true
        )
    )]
    pub purge_token: Option<String>,

    /// Serve a stored response up to this many seconds past its freshness when the origin
    /// fails or answers 5xx, whatever its stale-if-error says [default: 0].
    #[cfg_attr(feature = "cli", arg(long, value_name = "SECS"))]
    pub grace_secs: Option<u64>,

    /// Give responses without explicit freshness (max-age, s-maxage, Expires) this lifetime.
    /// Unset by default: the gateway invents no lifetime (see --heuristics for Last-Modified).
    #[cfg_attr(feature = "cli", arg(long, value_name = "SECS"))]
    pub default_ttl_secs: Option<u64>,

    /// A request header whose value is part of the cache key (repeatable), e.g.
    /// --key-header accept-language.
    #[cfg_attr(feature = "cli", arg(long = "key-header", value_name = "NAME"))]
    pub key_headers: Option<Vec<String>>,

    /// A cookie whose value is part of the cache key (repeatable). A request with Cookie still
    /// gets no heuristic freshness in shared mode.
    #[cfg_attr(feature = "cli", arg(long = "key-cookie", value_name = "NAME"))]
    pub key_cookies: Option<Vec<String>>,

    /// A query parameter left out of the cache key (repeatable); a trailing * makes it a
    /// prefix, e.g. --key-drop-query 'utm_*' --key-drop-query fbclid.
    #[cfg_attr(feature = "cli", arg(long = "key-drop-query", value_name = "NAME"))]
    pub key_drop_query: Option<Vec<String>>,

    /// Sort the query parameters by name in the cache key, so ?a=1&b=2 and ?b=2&a=1 share an
    /// entry [default: false].
    #[cfg_attr(feature = "cli", arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL"))]
    pub key_sort_query: Option<bool>,
}

impl SiteOptions {
    /// `site` with the options given here set (all but `upstream`, which makes the site).
    pub(super) fn apply(&self, mut site: Site) -> Result<Site, String> {
        if let Some(mode) = self.mode {
            site = site.mode(mode);
        }
        if let Some(s) = self.default_ttl_secs {
            site = site.default_ttl(Duration::from_secs(s));
        }
        if let Some(s) = self.grace_secs {
            site = site.grace(Duration::from_secs(s));
        }
        if let Some(key) = self.key_options()? {
            site = site.cache_key(key);
        }
        if let Some(token) = &self.purge_token {
            site = site.purge_token(Some(token.clone()));
        }
        if let Some(ca) = &self.upstream_ca {
            site = site.upstream_ca(ca.clone());
        }
        if let Some((cert, key)) = super::pair("upstream", &self.upstream_cert, &self.upstream_key)?
        {
            site = site.upstream_client_cert(cert.clone(), key.clone());
        }
        Ok(site)
    }

    /// The cache key's options; `None` when none is set.
    fn key_options(&self) -> Result<Option<KeyOptions>, String> {
        let (headers, cookies, drop) = (&self.key_headers, &self.key_cookies, &self.key_drop_query);
        if headers.is_none() && cookies.is_none() && drop.is_none() && self.key_sort_query.is_none()
        {
            return Ok(None);
        }
        let mut key = KeyOptions::new().sort_query(self.key_sort_query.unwrap_or(false));
        for name in header_names(headers.as_deref().unwrap_or_default())? {
            key = key.header(name);
        }
        for c in cookies.iter().flatten() {
            key = key.cookie(c.clone());
        }
        for q in drop.iter().flatten() {
            key = key.drop_query(q.clone());
        }
        Ok(Some(key))
    }
}

/// The keys of a table that no setting took, refused: the last flattened field of [`Config`]
/// and [`SiteConfig`], doing what `#[serde(deny_unknown_fields)]` does for a table without
/// flattened fields (serde does not support it beside `flatten`).
///
/// [`Config`]: super::Config
/// [`SiteConfig`]: super::SiteConfig
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct NoOtherKeys;

impl<'de> Deserialize<'de> for NoOtherKeys {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let rest = BTreeMap::<String, IgnoredAny>::deserialize(deserializer)?;
        match rest.keys().next() {
            None => Ok(NoOtherKeys),
            Some(key) => Err(de::Error::custom(format!("unknown field `{key}`"))),
        }
    }
}
