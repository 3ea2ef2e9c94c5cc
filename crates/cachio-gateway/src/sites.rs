//! Several sites behind one gateway: each a [`Site`] with its own upstream and cache options,
//! all over one store (chosen per request in `dispatch.rs`). A site's options are a
//! [`SiteSettings`], the gateway's too: what a site leaves unset is the gateway's.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use crate::connect::{Connector, UpstreamTls};
use crate::key::KeyShape;
use crate::upstream::Origin;
use crate::{GatewayBuilder, GatewayError, KeyOptions, Sharing};

/// One site of a gateway: the hosts it answers for, its upstream, and the cache options that
/// differ from the gateway's. Added with [`Gateway::sites`](crate::Gateway::sites).
///
/// Every site's keys start with its name, so sites never share or purge each other's entries
/// although they share the store. Its name is also the one its responses carry in
/// `Cache-Status` and `Via`.
///
/// # Example
///
/// ```
/// use std::time::Duration;
///
/// use cachio_gateway::{Gateway, KeyOptions, Site};
///
/// let shop = Site::new("shop", "http://127.0.0.1:9001")
///     .hosts(["shop.example", "www.shop.example"])
///     .purge_token(Some("shop-token".into()))
///     .cache_key(KeyOptions::new().drop_query("utm_*"));
/// let api = Site::new("api", "http://127.0.0.1:9002")
///     .hosts(["shop.example"])
///     .path_prefix("/api")
///     .grace(Duration::from_secs(30));
/// let gateway = Gateway::sites([shop, api]).memory_bytes(64 << 20).build()?;
/// # let _ = gateway;
/// # Ok::<(), cachio_gateway::GatewayError>(())
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct Site {
    pub(crate) name: String,
    pub(crate) hosts: Vec<String>,
    pub(crate) upstream: String,
    pub(crate) path_prefix: String,
    pub(crate) default: bool,
    pub(crate) settings: SiteSettings,
    pub(crate) upstream_tls: UpstreamTls,
}

/// The cache options each site may have of its own: a [`Site`] leaves unset those it takes from
/// the gateway, whose own are the [`GatewayBuilder`]'s.
#[derive(Clone, Default)]
pub(crate) struct SiteSettings {
    pub(crate) mode: Option<Sharing>,
    pub(crate) default_ttl: Option<Duration>,
    pub(crate) grace: Option<Duration>,
    pub(crate) cache_key: Option<KeyOptions>,
    pub(crate) purge_token: Option<String>,
}

impl SiteSettings {
    /// These settings, with the gateway's in place of those unset.
    fn or(&self, gateway: &SiteSettings) -> SiteSettings {
        SiteSettings {
            mode: self.mode.or(gateway.mode),
            default_ttl: self.default_ttl.or(gateway.default_ttl),
            grace: self.grace.or(gateway.grace),
            cache_key: self.cache_key.clone().or_else(|| gateway.cache_key.clone()),
            purge_token: self
                .purge_token
                .clone()
                .or_else(|| gateway.purge_token.clone()),
        }
    }
}

impl fmt::Debug for SiteSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SiteSettings")
            .field("mode", &self.mode)
            .field("default_ttl", &self.default_ttl)
            .field("grace", &self.grace)
            .field("cache_key", &self.cache_key)
            .field("purge_token", &self.purge_token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl Site {
    /// A site named `name` (letters, digits, `.`, `_`, `-`) in front of `upstream`
    /// (`http://host[:port][/prefix]` or `https://...`). It answers for no host until
    /// [`hosts`](Self::hosts) or [`default_site`](Self::default_site) says so; every other
    /// setting is the gateway's.
    pub fn new(name: impl Into<String>, upstream: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            hosts: Vec::new(),
            upstream: upstream.into(),
            path_prefix: String::new(),
            default: false,
            settings: SiteSettings::default(),
            upstream_tls: UpstreamTls::default(),
        }
    }

    /// The hosts this site answers for, matched without their port and ignoring case.
    pub fn hosts<I, H>(mut self, hosts: I) -> Self
    where
        I: IntoIterator<Item = H>,
        H: Into<String>,
    {
        self.hosts.extend(hosts.into_iter().map(Into::into));
        self
    }

    /// Answers only for paths under `prefix` (`/api` takes `/api` and `/api/...`, not
    /// `/apis`); where several sites share a host, the longest matching prefix wins. The path
    /// goes to the upstream as it came.
    pub fn path_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.path_prefix = prefix.into().trim_end_matches('/').to_owned();
        self
    }

    /// Answers the requests whose `Host` no site names (at most one site may). Without a
    /// default site such requests get `421 Misdirected Request`.
    pub fn default_site(mut self, default: bool) -> Self {
        self.default = default;
        self
    }

    /// Shared or private, instead of the gateway's.
    pub fn mode(mut self, mode: Sharing) -> Self {
        self.settings.mode = Some(mode);
        self
    }

    /// The lifetime of responses that state none, instead of the gateway's.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.settings.default_ttl = Some(ttl);
        self
    }

    /// The grace period, instead of the gateway's.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.settings.grace = Some(grace);
        self
    }

    /// How this site's cache keys are made, instead of the gateway's.
    pub fn cache_key(mut self, key: KeyOptions) -> Self {
        self.settings.cache_key = Some(key);
        self
    }

    /// The token that purges this site's entries (and no other site's), instead of the
    /// gateway's.
    pub fn purge_token(mut self, token: Option<String>) -> Self {
        self.settings.purge_token = token;
        self
    }

    /// For an `https://` upstream: trusts only the CAs in this PEM file.
    pub fn upstream_ca(mut self, pem_file: impl Into<PathBuf>) -> Self {
        self.upstream_tls = self.upstream_tls.ca(pem_file);
        self
    }

    /// For an `https://` upstream that asks for one: this client certificate and key (PEM).
    pub fn upstream_client_cert(
        mut self,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        self.upstream_tls = self.upstream_tls.client_cert(cert_file, key_file);
        self
    }
}

/// Checks the sites as a whole: names, hosts, one default at most, no host and prefix twice.
pub(crate) fn validate(sites: &[Site]) -> Result<(), GatewayError> {
    let bad = |m: String| Err(GatewayError::Config(m));
    let mut seen: Vec<(String, &str, &str)> = Vec::new();
    for (i, site) in sites.iter().enumerate() {
        let n = &site.name;
        if n.is_empty()
            || !n
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        {
            return bad(format!(
                "site {}: name `{n}` must be letters, digits, `.`, `_` or `-`",
                i + 1
            ));
        }
        if sites[..i].iter().any(|s| s.name == *n) {
            return bad(format!("two sites are named `{n}`"));
        }
        if site.upstream.is_empty() {
            return bad(format!(
                "site `{n}` has no upstream: give upstream = \"http://...\""
            ));
        }
        if site.hosts.is_empty() && !site.default {
            return bad(format!(
                "site `{n}` has no host: give host = [\"example.com\"] (or default = true)"
            ));
        }
        for host in &site.hosts {
            let host = host.to_ascii_lowercase();
            if host.is_empty() || host.contains(['/', ' ', ':']) {
                return bad(format!(
                    "site `{n}`: `{host}` is not a host name (no scheme, port or path)"
                ));
            }
            if let Some((_, _, other)) = seen
                .iter()
                .find(|(h, p, _)| *h == host && *p == site.path_prefix)
            {
                let at = if site.path_prefix.is_empty() {
                    String::new()
                } else {
                    format!(" with path-prefix `{}`", site.path_prefix)
                };
                return bad(format!(
                    "host `{host}`{at} is in two sites, `{other}` and `{n}`"
                ));
            }
            seen.push((host, &site.path_prefix, n));
        }
    }
    let defaults: Vec<&str> = sites
        .iter()
        .filter(|s| s.default)
        .map(|s| s.name.as_str())
        .collect();
    if defaults.len() > 1 {
        return bad(format!(
            "only one site can be the default; these are: {}",
            defaults.join(", ")
        ));
    }
    Ok(())
}

/// A site with its settings settled: its upstream's connector, and its cache options with the
/// gateway's in place of those it does not set.
pub(crate) struct Resolved {
    /// The name in `Cache-Status` and `Via`.
    pub(crate) name: String,
    pub(crate) hosts: Vec<String>,
    pub(crate) path_prefix: String,
    pub(crate) default: bool,
    pub(crate) origin: Origin,
    pub(crate) connector: Connector,
    pub(crate) mode: Sharing,
    pub(crate) grace: Duration,
    pub(crate) default_ttl: Option<Duration>,
    pub(crate) key: KeyShape,
    pub(crate) purge_token: Option<String>,
}

impl Resolved {
    /// `site` with `gateway`'s settings in place of those it leaves unset; its keys start with
    /// `[key_prefix]` when there is one.
    fn new(
        site: &Site,
        gateway: &SiteSettings,
        key_prefix: Option<&str>,
        timeout: Option<Duration>,
    ) -> Result<Self, GatewayError> {
        let origin = Origin::parse(&site.upstream).map_err(GatewayError::Upstream)?;
        let connector = Connector::new(&origin.scheme, &site.upstream_tls, timeout)?;
        let settings = site.settings.or(gateway);
        Ok(Resolved {
            name: site.name.clone(),
            hosts: site.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
            path_prefix: site.path_prefix.clone(),
            default: site.default,
            origin,
            connector,
            mode: settings.mode.unwrap_or_default(),
            grace: settings.grace.unwrap_or_default(),
            default_ttl: settings.default_ttl,
            key: KeyShape::new(key_prefix, settings.cache_key.unwrap_or_default()),
            purge_token: settings.purge_token,
        })
    }
}

/// The builder's sites, or the one implicit site of its upstream (every host, keys without a
/// site name, so they stay those of a single-upstream gateway).
pub(crate) fn resolve(b: &GatewayBuilder) -> Result<Vec<Resolved>, GatewayError> {
    if b.sites.is_empty() {
        let implicit = Site {
            name: b.cache_name.clone(),
            default: true,
            ..b.site.clone()
        };
        let none = SiteSettings::default();
        return Ok(vec![Resolved::new(
            &implicit,
            &none,
            None,
            b.upstream_timeout,
        )?]);
    }
    if !b.site.upstream.is_empty() {
        return Err(GatewayError::Config(
            "give one upstream or sites, not both".into(),
        ));
    }
    validate(&b.sites)?;
    b.sites
        .iter()
        .map(|site| {
            Resolved::new(site, &b.site.settings, Some(&site.name), b.upstream_timeout)
                .map_err(|e| GatewayError::Config(format!("site `{}`: {e}", site.name)))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation() {
        let site = |n: &str, h: &str| Site::new(n, "http://127.0.0.1:1").hosts([h]);
        assert!(validate(&[site("a", "a.example"), site("b", "b.example")]).is_ok());
        let dup = validate(&[site("a", "x.example"), site("b", "X.example")]).unwrap_err();
        assert!(dup.to_string().contains("host `x.example` is in two sites"));
        assert!(
            validate(&[
                site("a", "x.example"),
                site("b", "x.example").path_prefix("/api")
            ])
            .is_ok()
        );
        let none = validate(&[Site::new("a", "http://h")]).unwrap_err();
        assert!(none.to_string().contains("site `a` has no host"), "{none}");
        let up = validate(&[Site::new("a", "").hosts(["a"])]).unwrap_err();
        assert!(up.to_string().contains("no upstream"), "{up}");
        assert!(validate(&[site("a b", "a")]).is_err());
    }
}
