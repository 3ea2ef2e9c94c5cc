//! Which site a request goes to: by its `Host`, then the longest path prefix, else the default
//! site, else `421 Misdirected Request`.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::Router;
use axum::body::Body;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use tower::{Service, ServiceExt};

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
}
