//! Request hygiene: what the gateway refuses, or removes, before a request reaches the cache and
//! the origin. A shared cache keys on the target URI; anything else that changes what an origin
//! answers, and that one client can set, lets that client choose what the next clients get.
//!
//! - `Host` (RFC 9112 §3.2): a request with more than one, an invalid one, none (HTTP/1.1), or
//!   one that names another authority than an absolute-form target (or HTTP/2 `:authority`) is
//!   answered `400`: the cache would key on one authority and the origin answer for another.
//! - Headers that make common origins (IIS, Symfony, Rails and others) serve another path or run
//!   another method than the one requested (`X-Original-URL`, `X-HTTP-Method-Override`, ...)
//!   are removed, unless configured to pass.
//! - A request body that breaks off (malformed chunked coding) is the client's error: `400`, not
//!   `502`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use axum::body::Body;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, Scheme};
use http::{Request, Response, StatusCode, Version};
use http_body::{Frame, SizeHint};

use crate::GatewayBuilder;

/// The request headers that rewrite the target or the method at common origins, removed unless
/// passed with [`GatewayBuilder::pass_headers`].
pub const REWRITE_HEADERS: [HeaderName; 5] = [
    HeaderName::from_static("x-original-url"),
    HeaderName::from_static("x-rewrite-url"),
    HeaderName::from_static("x-http-method-override"),
    HeaderName::from_static("x-http-method"),
    HeaderName::from_static("x-method-override"),
];

/// The hygiene settings of a gateway.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub(crate) pass: Vec<HeaderName>,
    pub(crate) drop: Vec<HeaderName>,
    pub(crate) heuristics: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            pass: Vec::new(),
            drop: Vec::new(),
            heuristics: true,
        }
    }
}

impl Settings {
    /// The request headers removed: [`REWRITE_HEADERS`] and the added ones, less those passed.
    pub(crate) fn dropped(&self) -> Dropped {
        let mut names: Vec<HeaderName> = Vec::new();
        for name in REWRITE_HEADERS.iter().chain(&self.drop) {
            if !self.pass.contains(name) && !names.contains(name) {
                names.push(name.clone());
            }
        }
        Dropped(names)
    }
}

/// The request headers a gateway removes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Dropped(Vec<HeaderName>);

impl Dropped {
    /// Removes them from `headers`.
    pub(crate) fn strip(&self, headers: &mut HeaderMap) {
        // One look at each of the request's fields (a handful, compared without hashing) finds
        // the usual request, which has none of them; a lookup per listed name hashed each name.
        if !headers.keys().any(|k| self.0.contains(k)) {
            return;
        }
        for name in &self.0 {
            headers.remove(name);
        }
    }
}

/// Checks the request's `Host` (RFC 9112 §3.2, RFC 9113 §8.3.1): exactly one, valid, and naming
/// the same authority as the request target when that has one. The error says what is wrong.
pub(crate) fn check_host<B>(req: &Request<B>) -> Result<(), &'static str> {
    let mut fields = req.headers().get_all(header::HOST).iter();
    let first = fields.next();
    if fields.next().is_some() {
        return Err("more than one Host field");
    }
    let target = req.uri().authority();
    let host = match first {
        Some(v) => Some(authority(v).ok_or("an invalid Host")?),
        None if req.version() == Version::HTTP_11 && target.is_none() => {
            return Err("no Host field");
        }
        None => None,
    };
    if let Some(target) = target {
        if target.as_str().contains('@') {
            return Err("a request target with user information");
        }
        if let Some(host) = host {
            let default = if req.uri().scheme() == Some(&Scheme::HTTPS) {
                443
            } else {
                80
            };
            let port = |a: &Authority| a.port_u16().unwrap_or(default);
            if !target.host().eq_ignore_ascii_case(host.host()) || port(target) != port(&host) {
                return Err("a Host that is not the request target's authority");
            }
        }
    }
    Ok(())
}

/// A `Host` value as an authority: `host[:port]`, without user information.
fn authority(v: &HeaderValue) -> Option<Authority> {
    let a = Authority::try_from(v.as_bytes()).ok()?;
    if a.as_str().contains('@') || a.host().is_empty() {
        return None;
    }
    // What follows the host: nothing, or a port number.
    let rest = a.as_str().get(a.host().len()..)?;
    let port = rest.is_empty()
        || rest
            .strip_prefix(':')
            .is_some_and(|p| p.parse::<u16>().is_ok());
    port.then_some(a)
}

/// The gateway's answer to a request it refuses: `400 Bad Request` saying why.
pub(crate) fn bad_request(why: &str) -> Response<Body> {
    let mut res = Response::new(Body::from(format!("400 Bad Request: {why}\n")));
    *res.status_mut() = StatusCode::BAD_REQUEST;
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// Wraps the request's body, if it has one, so that an error reading it (a malformed chunked
/// coding, a body cut short) is remembered: the returned flag is set when it happened.
pub(crate) fn watch_body(req: &mut Request<Body>) -> Option<Arc<AtomicBool>> {
    if http_body::Body::is_end_stream(req.body()) {
        return None;
    }
    let failed = Arc::new(AtomicBool::new(false));
    let inner = std::mem::take(req.body_mut());
    *req.body_mut() = Body::new(Watched {
        inner,
        failed: failed.clone(),
    });
    Some(failed)
}

/// A request body that sets a flag when reading it fails.
struct Watched {
    inner: Body,
    failed: Arc<AtomicBool>,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if let Some(Err(_)) = &frame {
            self.failed.store(true, Ordering::Release);
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Whether the flag of [`watch_body`] is set.
pub(crate) fn body_failed(flag: Option<&Arc<AtomicBool>>) -> bool {
    flag.is_some_and(|f| f.load(Ordering::Acquire))
}

impl GatewayBuilder {
    /// Request headers that go to the origin although the gateway would remove them: names from
    /// [`REWRITE_HEADERS`] (`X-Original-URL`, `X-Rewrite-URL`, `X-HTTP-Method-Override`,
    /// `X-HTTP-Method`, `X-Method-Override`) or from [`drop_headers`](Self::drop_headers). Pass
    /// one only when the origin ignores it or the cache key covers what it changes: otherwise one
    /// client can make the origin answer a cached URL with another page. Forwarding fields
    /// cannot be passed ([`build`](Self::build) fails): trust their senders with
    /// [`trusted_proxies`](Self::trusted_proxies).
    pub fn pass_headers(mut self, names: Vec<HeaderName>) -> Self {
        self.hygiene.pass = names;
        self
    }

    /// More request headers to remove before the cache and the origin see the request, besides
    /// [`REWRITE_HEADERS`]: headers the origin reads to change its answer but the cache key does
    /// not cover (an origin's own override header, say).
    pub fn drop_headers(mut self, names: Vec<HeaderName>) -> Self {
        self.hygiene.drop = names;
        self
    }

    /// Whether responses without explicit freshness but with `Last-Modified` are fresh for a
    /// tenth of their age, up to a day (RFC 9111 §4.2.2); on by default. Off, a response is
    /// stored and served only with the lifetime the origin states (`max-age`, `s-maxage`,
    /// `Expires`, `CDN-Cache-Control`) or [`default_ttl`](Self::default_ttl). Either way, a
    /// shared gateway gives no heuristic freshness to a response to a request that carried
    /// `Cookie` or `Authorization`, and does not store it without an explicit lifetime.
    pub fn heuristics(mut self, on: bool) -> Self {
        self.hygiene.heuristics = on;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(version: Version, target: &str, hosts: &[&str]) -> Result<(), &'static str> {
        let mut req = Request::get(target).version(version);
        for h in hosts {
            req = req.header("host", *h);
        }
        check_host(&req.body(()).unwrap())
    }

    #[test]
    fn rfc9112_3_2_host_checks() {
        const HTTP_10: Version = Version::HTTP_10;
        const HTTP_11: Version = Version::HTTP_11;
        const HTTP_2: Version = Version::HTTP_2;
        assert_eq!(host(HTTP_11, "/", &["a.test"]), Ok(()));
        assert_eq!(host(HTTP_11, "/", &["a.test:8080"]), Ok(()));
        assert_eq!(host(HTTP_11, "/", &["[::1]:8080"]), Ok(()));
        assert_eq!(
            host(HTTP_11, "/", &["a.test", "b.test"]),
            Err("more than one Host field")
        );
        assert_eq!(
            host(HTTP_11, "/", &["a.test", "a.test"]),
            Err("more than one Host field")
        );
        for bad in [
            "",
            "u@a.test",
            "a.test/x",
            "a test",
            "a.test:port",
            "a.test:99999",
        ] {
            assert_eq!(host(HTTP_11, "/", &[bad]), Err("an invalid Host"), "{bad}");
        }
        assert_eq!(host(HTTP_11, "/", &[]), Err("no Host field"));
        assert_eq!(host(HTTP_10, "/", &[]), Ok(()));
        // Absolute form, and HTTP/2's :authority: the same authority, whatever the case and
        // however the default port is written.
        assert_eq!(host(HTTP_11, "http://A.test/x", &["a.test:80"]), Ok(()));
        assert_eq!(host(HTTP_2, "https://a.test/x", &["a.test:443"]), Ok(()));
        assert_eq!(host(HTTP_2, "https://a.test/x", &[]), Ok(()));
        assert_eq!(host(HTTP_11, "http://a.test/x", &[]), Ok(()));
        for other in ["b.test", "a.test:8080"] {
            assert_eq!(
                host(HTTP_11, "http://a.test/x", &[other]),
                Err("a Host that is not the request target's authority"),
                "{other}"
            );
        }
        assert_eq!(
            host(HTTP_11, "http://u@a.test/x", &["a.test"]),
            Err("a request target with user information")
        );
    }

    #[test]
    fn rewrite_headers_are_dropped_unless_passed() {
        let settings = Settings {
            pass: vec![HeaderName::from_static("x-http-method")],
            drop: vec![
                HeaderName::from_static("x-my-override"),
                HeaderName::from_static("x-original-url"),
            ],
            heuristics: true,
        };
        let mut h = HeaderMap::new();
        for n in [
            "x-original-url",
            "x-rewrite-url",
            "x-http-method-override",
            "x-http-method",
            "x-method-override",
            "x-my-override",
            "x-other",
        ] {
            h.append(HeaderName::from_static(n), HeaderValue::from_static("v"));
        }
        settings.dropped().strip(&mut h);
        let mut left: Vec<_> = h.keys().map(HeaderName::as_str).collect();
        left.sort_unstable();
        assert_eq!(left, ["x-http-method", "x-other"]);
    }
}
