//! The one error type of [`Client`](super::Client).

use std::error::Error as StdError;
use std::fmt;

use http::Uri;

use super::BoxError;
use crate::tls::{describe_error, find};

/// Why a request through [`Client`](super::Client) failed, or a client could not be built.
///
/// The `is_*` methods tell the kinds apart; [`source`](StdError::source) gives the underlying
/// error. Its `Display` names the host where one is involved, and the reason:
///
/// ```text
/// the certificate of wrong.test is not valid: certificate not valid for name "wrong.test"; ...
/// ```
///
/// # Example
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// let client = cachio::Client::new(dir.path())?;
/// let err = client.get("ftp://example.com/").await.unwrap_err();
/// assert!(err.is_url());
/// # Ok(())
/// # }
/// ```
pub struct Error {
    kind: Kind,
    /// The host the failure happened with, when one did.
    host: Option<String>,
    source: Option<BoxError>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Builder,
    Url,
    Tls,
    Connect,
    Timeout,
    Redirect,
    Request,
    Body,
    Store,
}

impl Error {
    fn new(kind: Kind, host: Option<String>, source: Option<BoxError>) -> Self {
        Self { kind, host, source }
    }

    pub(crate) fn builder(source: impl Into<BoxError>) -> Self {
        Self::new(Kind::Builder, None, Some(source.into()))
    }

    pub(crate) fn url(source: impl Into<BoxError>) -> Self {
        Self::new(Kind::Url, None, Some(source.into()))
    }

    pub(crate) fn store(source: cachio_core::store::StoreError) -> Self {
        Self::new(Kind::Store, None, Some(source.into()))
    }

    pub(crate) fn timeout() -> Self {
        Self::new(Kind::Timeout, None, None)
    }

    pub(crate) fn too_many_redirects(max: usize, location: &Uri) -> Self {
        let msg = format!("more than {max} redirects; the next was to {location}");
        Self::new(
            Kind::Redirect,
            location.host().map(str::to_owned),
            Some(msg.into()),
        )
    }

    pub(crate) fn body(source: BoxError) -> Self {
        match source.downcast::<Error>() {
            Ok(err) => *err,
            Err(source) => Self::new(Kind::Body, None, Some(source)),
        }
    }

    /// The error of a request to `uri` that got no response: a certificate that is not trusted,
    /// a connection refused, a protocol error.
    pub(crate) fn transport(uri: &Uri, source: BoxError) -> Self {
        let kind = if find::<rustls::Error>(&*source).is_some() {
            Kind::Tls
        } else if is_connect(&*source) {
            Kind::Connect
        } else {
            Kind::Request
        };
        Self::new(kind, uri.host().map(str::to_owned), Some(source))
    }

    /// Turns what the service stack failed with back into an `Error`: one of ours passes
    /// through, tower's `Elapsed` is a timeout, anything else is a request error.
    pub(crate) fn from_stack(source: BoxError) -> Self {
        if source.is::<tower::timeout::error::Elapsed>() {
            return Self::timeout();
        }
        match source.downcast::<Error>() {
            Ok(err) => *err,
            Err(source) => Self::new(Kind::Request, None, Some(source)),
        }
    }

    /// Whether the client could not be built (a store that did not open, a bad certificate or
    /// header value given to the builder).
    pub fn is_builder(&self) -> bool {
        self.kind == Kind::Builder
    }

    /// Whether the URL was not an absolute `http` or `https` URL.
    pub fn is_url(&self) -> bool {
        self.kind == Kind::Url
    }

    /// Whether the TLS handshake failed: a certificate that is not trusted, has expired or was
    /// issued for another name. Nothing was sent and nothing stored.
    pub fn is_tls(&self) -> bool {
        self.kind == Kind::Tls
    }

    /// Whether no connection could be made (refused, unreachable, a name that does not resolve).
    pub fn is_connect(&self) -> bool {
        self.kind == Kind::Connect
    }

    /// Whether the origin did not answer within the client's
    /// [timeout](super::ClientBuilder::timeout).
    pub fn is_timeout(&self) -> bool {
        self.kind == Kind::Timeout
    }

    /// Whether the redirects went past the client's [limit](super::ClientBuilder::max_redirects).
    pub fn is_redirect(&self) -> bool {
        self.kind == Kind::Redirect
    }

    /// Whether the response body failed while it was read (the origin closed the connection
    /// mid-body, say). Nothing of such a body is stored.
    pub fn is_body(&self) -> bool {
        self.kind == Kind::Body
    }

    /// The host this error happened with, when one did.
    pub fn host(&self) -> Option<&str> {
        self.host.as_deref()
    }
}

fn is_connect(err: &(dyn StdError + 'static)) -> bool {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(legacy) = err.downcast_ref::<hyper_util::client::legacy::Error>()
            && legacy.is_connect()
        {
            return true;
        }
        next = err.source();
    }
    false
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.host.as_deref().unwrap_or("the origin");
        match self.kind {
            Kind::Builder => f.write_str("the client could not be built")?,
            Kind::Url => f.write_str("not an absolute http or https URL")?,
            Kind::Tls => {
                write!(f, "TLS with {host} failed")?;
                if let Some(reason) = self.source.as_deref().and_then(|e| describe_error(e)) {
                    return write!(f, ": {reason}");
                }
            }
            Kind::Connect => write!(f, "could not connect to {host}")?,
            Kind::Timeout => return f.write_str("the origin did not answer in time"),
            Kind::Redirect => write!(f, "too many redirects from {host}")?,
            Kind::Request => write!(f, "the request to {host} failed")?,
            Kind::Body => f.write_str("the response body failed")?,
            Kind::Store => f.write_str("the cache's store failed")?,
        }
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("cachio::client::Error")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("source", &self.source)
            .finish()
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source.as_deref().map(|e| e as _)
    }
}
