//! The client side: forwards a request to the origin and returns its response head as it comes.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Request, Response, Uri, Version};
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower::Service;

use crate::connect::Connector;
use crate::forwarded::Forwarding;
use crate::hop::{self, Via};
use crate::interim;
use crate::metrics::{Metrics, OriginError};

/// The largest read buffer of a connection to the origin. The body chunks the stores keep are
/// slices of it, and a slice keeps its whole buffer alive: a smaller buffer bounds what an
/// entry can hold on to beyond its own bytes (hyper's default grows to about 400 KiB).
const READ_BUFFER_MAX: usize = 64 * 1024;

/// Where requests go: an `http://` or `https://` origin, optionally under a path prefix.
#[derive(Clone, Debug)]
pub(crate) struct Origin {
    pub(crate) scheme: Scheme,
    pub(crate) authority: Authority,
    /// A path prefix without its trailing `/` (empty for none).
    pub(crate) prefix: String,
}

impl Origin {
    /// Parses an origin URL such as `http://127.0.0.1:9000`, `http://backend/api` or
    /// `https://backend:8443`.
    pub(crate) fn parse(url: &str) -> Result<Self, String> {
        let uri: Uri = url
            .parse()
            .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        let scheme = uri
            .scheme()
            .cloned()
            .ok_or_else(|| format!("`{url}` has no scheme (write http://{url})"))?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(format!(
                "`{url}`: only http:// and https:// origins are supported"
            ));
        }
        let authority = uri
            .authority()
            .cloned()
            .ok_or_else(|| format!("`{url}` has no host"))?;
        if uri.query().is_some() {
            return Err(format!("`{url}`: an origin URL cannot carry a query"));
        }
        let prefix = uri.path().trim_end_matches('/').to_owned();
        Ok(Self {
            scheme,
            authority,
            prefix,
        })
    }

    fn uri_for(&self, pq: Option<&PathAndQuery>) -> Result<Uri, http::Error> {
        let pq = pq.map_or("/", PathAndQuery::as_str);
        let pq = if self.prefix.is_empty() {
            PathAndQuery::try_from(pq)?
        } else {
            PathAndQuery::try_from(format!("{}{pq}", self.prefix))?
        };
        Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query(pq)
            .build()
    }
}

/// Why the origin gave no response.
#[derive(Debug)]
pub(crate) enum UpstreamError {
    /// No connection could be made.
    Connect(hyper_util::client::legacy::Error),
    /// No response head within the timeout.
    Timeout(Duration),
    /// TLS with the origin failed (a certificate not trusted, expired or for another name; a
    /// client certificate the origin refused): the reason in words, and the error.
    Tls(String, hyper_util::client::legacy::Error),
    /// The connection failed otherwise (closed before a response, a protocol error).
    Other(crate::BoxError),
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Connect(_) => f.write_str("cannot connect to the origin"),
            UpstreamError::Timeout(d) => {
                write!(f, "the origin did not answer within {} s", d.as_secs_f64())
            }
            UpstreamError::Tls(reason, _) => write!(f, "TLS with the origin failed: {reason}"),
            UpstreamError::Other(_) => f.write_str("the origin's connection failed"),
        }
    }
}

impl std::error::Error for UpstreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UpstreamError::Connect(e) | UpstreamError::Tls(_, e) => Some(e),
            UpstreamError::Timeout(_) => None,
            UpstreamError::Other(e) => Some(&**e),
        }
    }
}

struct Settings {
    origin: Origin,
    /// The `Host` sent when the client's is replaced (`rewrite_host`).
    origin_host: HeaderValue,
    rewrite_host: bool,
    timeout: Option<Duration>,
    via: Via,
    forwarding: Forwarding,
}

/// What the gateway does to every request it sends to the origin, beside pointing it there.
pub(crate) struct Outgoing {
    /// Send the origin's authority as `Host` instead of the client's.
    pub(crate) rewrite_host: bool,
    /// The `Via` entry to append.
    pub(crate) via: Via,
    /// The forwarding fields to set (and the client's to drop). They are set here, on the
    /// requests that reach the origin only: a hit costs nothing for them, and the cache never
    /// sees a client's `X-Forwarded-*` differently from the origin.
    pub(crate) forwarding: Forwarding,
}

/// The origin as a tower service: rewrites the target to the origin, removes hop-by-hop fields,
/// appends `Via`, and returns the origin's response with a streaming body. Errors are
/// [`UpstreamError`]s, which the cache layer may answer with a stale response.
///
/// `poll_ready` is always ready (the client pools connections itself).
#[derive(Clone)]
pub(crate) struct Upstream {
    // Behind an `Arc`: the proxy's service, and so this, is cloned for every request, hits
    // included, and hyper's client with its connector is many reference counts to clone.
    client: Arc<Client<Connector, Body>>,
    settings: Arc<Settings>,
    metrics: Arc<Metrics>,
}

impl Upstream {
    pub(crate) fn new(
        origin: Origin,
        connector: Connector,
        outgoing: Outgoing,
        timeout: Option<Duration>,
        idle: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        // An `https` origin that offers HTTP/2 by ALPN gets it; the request's version is left
        // at HTTP/1.1, which the client sends over either.
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(idle)
            .http1_max_buf_size(READ_BUFFER_MAX)
            .build(connector);
        let origin_host = HeaderValue::from_str(origin.authority.as_str())
            .unwrap_or_else(|_| HeaderValue::from_static("localhost"));
        Self {
            client: Arc::new(client),
            settings: Arc::new(Settings {
                origin,
                origin_host,
                rewrite_host: outgoing.rewrite_host,
                timeout,
                via: outgoing.via,
                forwarding: outgoing.forwarding,
            }),
            metrics,
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl Service<Request<Body>> for Upstream {
    type Response = Response<Incoming>;
    type Error = UpstreamError;
    type Future = BoxFuture<Result<Response<Incoming>, UpstreamError>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        let s = &self.settings;
        s.forwarding.apply(&mut req);
        let (mut parts, body) = req.into_parts();
        let uri = match s.origin.uri_for(parts.uri.path_and_query()) {
            Ok(uri) => uri,
            Err(e) => return Box::pin(std::future::ready(Err(UpstreamError::Other(e.into())))),
        };
        // The client's `Host` goes on unless told otherwise; an HTTP/2 client sends its
        // `:authority` instead, which becomes the `Host` of the HTTP/1.1 request.
        if s.rewrite_host {
            parts.headers.insert(header::HOST, s.origin_host.clone());
        } else if !parts.headers.contains_key(header::HOST)
            && let Some(a) = parts.uri.authority()
            && let Ok(v) = HeaderValue::from_str(a.as_str())
        {
            parts.headers.insert(header::HOST, v);
        }
        // Hop-by-hop fields were removed by the proxy before the cache saw the request; a
        // background revalidation reuses those headers.
        parts
            .headers
            .append(header::VIA, s.via.for_version(parts.version));
        parts.uri = uri;
        parts.version = Version::HTTP_11;
        let timeout = s.timeout;
        let metrics = self.metrics.clone();
        // An idempotent request without a body can be sent again (RFC 9110 §9.2.2) if the
        // connection it went out on fails before any response: a pooled connection the origin
        // closed as idle just as the request left.
        let again = (parts.method.is_idempotent() && body.size_hint().exact() == Some(0))
            .then(|| (parts.clone(), self.client.clone()));
        let interim = parts.extensions.get::<interim::Sender>().cloned();
        let fut = self
            .client
            .request(with_interim(Request::from_parts(parts, body), &interim));
        Box::pin(async move {
            let start = Instant::now();
            let deadline = timeout.map(|t| start + t);
            let mut result = send(fut, deadline, timeout).await;
            if let (Err(UpstreamError::Other(e)), Some((parts, client))) = (&result, again)
                && before_response(&**e)
            {
                tracing::debug!(error = %e, "origin connection failed before a response; sending the request again");
                let req = with_interim(Request::from_parts(parts, Body::empty()), &interim);
                let fut = client.request(req);
                result = send(fut, deadline, timeout).await;
            }
            metrics.origin_latency(start.elapsed());
            match result {
                Ok(mut res) => {
                    hop::strip(res.headers_mut());
                    Ok(res)
                }
                Err(e) => {
                    metrics.origin_error(match e {
                        UpstreamError::Connect(_) | UpstreamError::Tls(..) => OriginError::Connect,
                        UpstreamError::Timeout(_) => OriginError::Timeout,
                        UpstreamError::Other(_) => OriginError::Other,
                    });
                    tracing::warn!(error = %e, source = ?std::error::Error::source(&e), "origin request failed");
                    Err(e)
                }
            }
        })
    }
}

/// `req`, with the origin's interim responses to it forwarded to the client through `sender`.
fn with_interim(mut req: Request<Body>, sender: &Option<interim::Sender>) -> Request<Body> {
    if let Some(sender) = sender.clone() {
        hyper::ext::on_informational(&mut req, move |res| {
            sender.forward(res.status(), res.headers());
        });
    }
    req
}

/// One exchange with the origin, bounded by what is left of the timeout.
async fn send(
    fut: hyper_util::client::legacy::ResponseFuture,
    deadline: Option<Instant>,
    timeout: Option<Duration>,
) -> Result<Response<Incoming>, UpstreamError> {
    let result = match (deadline, timeout) {
        (Some(deadline), Some(t)) => tokio::time::timeout_at(deadline.into(), fut)
            .await
            .map_err(|_| UpstreamError::Timeout(t))?,
        _ => fut.await,
    };
    let e = match result {
        Ok(res) => return Ok(res),
        Err(e) => e,
    };
    // A handshake that failed, or (TLS 1.3) a client certificate refused after it.
    if let Some(reason) = cachio::tls::describe_error(&e) {
        Err(UpstreamError::Tls(reason, e))
    } else if e.is_connect() {
        Err(UpstreamError::Connect(e))
    } else {
        Err(UpstreamError::Other(e.into()))
    }
}

/// Whether the connection failed before any response head arrived: closed or reset while the
/// request was sent or its answer awaited.
fn before_response(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut source = Some(e);
    while let Some(e) = source {
        if let Some(h) = e.downcast_ref::<hyper::Error>()
            && (h.is_incomplete_message() || h.is_canceled())
        {
            return true;
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            )
        {
            return true;
        }
        source = e.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_urls() {
        let o = Origin::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(o.prefix, "");
        let pq = PathAndQuery::from_static("/a?b=%2F&c=1&c=2");
        assert_eq!(
            o.uri_for(Some(&pq)).unwrap(),
            "http://127.0.0.1:9000/a?b=%2F&c=1&c=2"
        );
        let o = Origin::parse("http://backend/api/").unwrap();
        assert_eq!(
            o.uri_for(Some(&pq)).unwrap(),
            "http://backend/api/a?b=%2F&c=1&c=2"
        );
        let o = Origin::parse("https://backend:8443/api").unwrap();
        assert_eq!(
            o.uri_for(Some(&pq)).unwrap(),
            "https://backend:8443/api/a?b=%2F&c=1&c=2"
        );
        assert!(Origin::parse("ftp://backend").is_err());
        assert!(Origin::parse("backend:80").is_err());
        assert!(Origin::parse("http://backend/?q").is_err());
    }
}
