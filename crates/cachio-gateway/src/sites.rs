//! Several sites behind one gateway: each a [`Site`] with its own upstream and cache options,
//! all over one store, chosen per request by its `Host` and then its path.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use tower::{Service, ServiceExt};

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
#[derive(Clone)]
#[must_use]
pub struct Site {
    pub(crate) name: String,
    pub(crate) hosts: Vec<String>,
    pub(crate) upstream: String,
    pub(crate) path_prefix: String,
    pub(crate) default: bool,
    pub(crate) mode: Option<Sharing>,
    pub(crate) default_ttl: Option<Duration>,
    pub(crate) grace: Option<Duration>,
    pub(crate) cache_key: Option<KeyOptions>,
    pub(crate) purge_token: Option<String>,
    pub(crate) upstream_tls: UpstreamTls,
}

impl fmt::Debug for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Site")
            .field("name", &self.name)
            .field("hosts", &self.hosts)
            .field("upstream", &self.upstream)
            .field("path_prefix", &self.path_prefix)
            .field("default", &self.default)
            .field("mode", &self.mode)
            .field("default_ttl", &self.default_ttl)
            .field("grace", &self.grace)
            .field("cache_key", &self.cache_key)
            .field("purge_token", &self.purge_token.as_ref().map(|_| "<set>"))
            .field("upstream_tls", &self.upstream_tls)
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
            mode: None,
            default_ttl: None,
            grace: None,
            cache_key: None,
            purge_token: None,
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
        self.mode = Some(mode);
        self
    }

    /// The lifetime of responses that state none, instead of the gateway's.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }

    /// The grace period, instead of the gateway's.
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = Some(grace);
        self
    }

    /// How this site's cache keys are made, instead of the gateway's.
    pub fn cache_key(mut self, key: KeyOptions) -> Self {
        self.cache_key = Some(key);
        self
    }

    /// The token that purges this site's entries (and no other site's), instead of the
    /// gateway's.
    pub fn purge_token(mut self, token: Option<String>) -> Self {
        self.purge_token = token;
        self
    }

    /// For an `https://` upstream: trusts only the CAs in this PEM file.
    pub fn upstream_ca(mut self, pem_file: impl Into<PathBuf>) -> Self {
        self.upstream_tls.ca = Some(pem_file.into());
        self
    }

    /// For an `https://` upstream that asks for one: this client certificate and key (PEM).
    pub fn upstream_client_cert(
        mut self,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        self.upstream_tls.client_cert = Some((cert_file.into(), key_file.into()));
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

/// The builder's sites, or the one implicit site of its upstream (every host, keys without a
/// site name, so they stay those of a single-upstream gateway).
pub(crate) fn resolve(b: &GatewayBuilder) -> Result<Vec<Resolved>, GatewayError> {
    let connect = |upstream: &str, tls: &UpstreamTls| {
        let origin = Origin::parse(upstream).map_err(GatewayError::Upstream)?;
        let connector = Connector::new(&origin.scheme, tls, b.upstream_timeout)?;
        Ok::<_, GatewayError>((origin, connector))
    };
    if b.sites.is_empty() {
        let (origin, connector) = connect(&b.upstream, &b.upstream_tls)?;
        return Ok(vec![Resolved {
            name: b.cache_name.clone(),
            hosts: Vec::new(),
            path_prefix: String::new(),
            default: true,
            origin,
            connector,
            mode: b.mode,
            grace: b.grace,
            default_ttl: b.default_ttl,
            key: KeyShape::new(None, b.cache_key.clone()),
            purge_token: b.purge_token.clone(),
        }]);
    }
    if !b.upstream.is_empty() {
        return Err(GatewayError::Config(
            "give one upstream or sites, not both".into(),
        ));
    }
    validate(&b.sites)?;
    b.sites
        .iter()
        .map(|site| {
            let (origin, connector) = connect(&site.upstream, &site.upstream_tls)
                .map_err(|e| GatewayError::Config(format!("site `{}`: {e}", site.name)))?;
            Ok(Resolved {
                name: site.name.clone(),
                hosts: site.hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
                path_prefix: site.path_prefix.clone(),
                default: site.default,
                origin,
                connector,
                mode: site.mode.unwrap_or(b.mode),
                grace: site.grace.unwrap_or(b.grace),
                default_ttl: site.default_ttl.or(b.default_ttl),
                key: KeyShape::new(
                    Some(&site.name),
                    site.cache_key
                        .clone()
                        .unwrap_or_else(|| b.cache_key.clone()),
                ),
                purge_token: site.purge_token.clone().or_else(|| b.purge_token.clone()),
            })
        })
        .collect()
}

/// A site's place in the routing table: its hosts (lowercase), its path prefix, its routers.
pub(crate) struct Route {
    pub(crate) hosts: Vec<String>,
    pub(crate) path_prefix: String,
    pub(crate) router: Router,
    pub(crate) admin: Router,
}

/// Sends each request to the router of the site its `Host` (then path) selects, or of the
/// default site, or answers `421 Misdirected Request`.
#[derive(Clone)]
pub(crate) struct Dispatch {
    routes: Arc<[Route]>,
    default: Option<usize>,
    /// Whether this dispatches to the sites' admin routers.
    admin: bool,
}

impl Dispatch {
    pub(crate) fn new(routes: Arc<[Route]>, default: Option<usize>, admin: bool) -> Self {
        Self {
            routes,
            default,
            admin,
        }
    }

    fn select<B>(&self, req: &Request<B>) -> Option<&Route> {
        let host = host_of(req);
        let path = req.uri().path();
        host.and_then(|host| {
            self.routes
                .iter()
                .filter(|r| r.hosts.contains(&host))
                .filter(|r| under(path, &r.path_prefix))
                .max_by_key(|r| r.path_prefix.len())
        })
        .or_else(|| self.default.and_then(|i| self.routes.get(i)))
    }
}

/// Whether `path` is `prefix` or under it.
fn under(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || path
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// The request's host, lowercase, without its port: from `Host`, else the target's authority.
fn host_of<B>(req: &Request<B>) -> Option<String> {
    let raw = match req.headers().get(header::HOST) {
        Some(h) => h.to_str().ok()?,
        None => req.uri().authority()?.as_str(),
    };
    let host = if let Some(v6) = raw.strip_prefix('[') {
        v6.split_once(']').map_or(raw, |(h, _)| h)
    } else {
        raw.rsplit_once(':').map_or(raw, |(h, _)| h)
    };
    Some(host.to_ascii_lowercase())
}

fn misdirected() -> Response<Body> {
    let mut res = Response::new(Body::from(
        "421 Misdirected Request: no site is configured for this host\n",
    ));
    *res.status_mut() = StatusCode::MISDIRECTED_REQUEST;
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

impl Service<Request<Body>> for Dispatch {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // A router is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        let Some(route) = self.select(&req) else {
            return Box::pin(std::future::ready(Ok(misdirected())));
        };
        let router = if self.admin {
            route.admin.clone()
        } else {
            route.router.clone()
        };
        Box::pin(router.oneshot(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_and_prefixes() {
        let req = |host: &str| Request::get("/").header("host", host).body(()).unwrap();
        assert_eq!(host_of(&req("Shop.Example:8080")).unwrap(), "shop.example");
        assert_eq!(host_of(&req("[::1]:80")).unwrap(), "::1");
        assert_eq!(host_of(&req("a.b")).unwrap(), "a.b");
        assert!(under("/api", "/api"));
        assert!(under("/api/x", "/api"));
        assert!(!under("/apis", "/api"));
        assert!(under("/x", ""));
    }

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
