//! The connections to the origin: plain TCP for an `http://` upstream, TLS for an `https://`
//! one, set up by `cachio::tls` (the roots to trust, a client certificate, ALPN).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use cachio::tls::TlsConfig;
use http::Uri;
use http::uri::Scheme;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tower::Service;

use crate::{BoxError, GatewayError};

/// The stream of one connection to the origin.
pub(crate) type Stream = MaybeHttpsStream<TokioIo<TcpStream>>;

/// How an `https://` upstream is trusted and what the gateway presents to it.
#[derive(Clone, Debug, Default)]
pub(crate) struct UpstreamTls {
    /// A PEM file of the only certificate authorities to trust (else the built-in roots).
    pub(crate) ca: Option<PathBuf>,
    /// PEM files of a client certificate (with its chain) and its key.
    pub(crate) client_cert: Option<(PathBuf, PathBuf)>,
}

impl UpstreamTls {
    /// Trusts only the CAs of this PEM file.
    pub(crate) fn ca(self, pem_file: impl Into<PathBuf>) -> Self {
        Self {
            ca: Some(pem_file.into()),
            ..self
        }
    }

    /// Presents this certificate and key (PEM files).
    pub(crate) fn client_cert(
        self,
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Self {
        Self {
            client_cert: Some((cert_file.into(), key_file.into())),
            ..self
        }
    }
}

/// Makes connections to the origin: TCP, then TLS when the upstream is `https://`. An `https`
/// upstream's connections are TLS or nothing: a failed handshake fails the request.
#[derive(Clone, Debug)]
pub(crate) enum Connector {
    Plain(HttpConnector),
    Tls(HttpsConnector<HttpConnector>),
}

impl Connector {
    /// The connector for an upstream of `scheme`, each connection attempt bounded by
    /// `timeout`. Reads the PEM files and, unless a CA is given, the system's roots.
    pub(crate) fn new(
        scheme: &Scheme,
        tls: &UpstreamTls,
        timeout: Option<Duration>,
    ) -> Result<Self, GatewayError> {
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.set_connect_timeout(timeout);
        if *scheme != Scheme::HTTPS {
            if tls.ca.is_some() || tls.client_cert.is_some() {
                return Err(GatewayError::Config(
                    "upstream-ca, upstream-cert and upstream-key need an https:// upstream".into(),
                ));
            }
            return Ok(Self::Plain(http));
        }
        let mut config = TlsConfig::new();
        if let Some(ca) = &tls.ca {
            config = config
                .built_in_roots(false)
                .root_certificate_pem(&read("upstream CA", ca)?)
                .map_err(|e| tls_error(ca, e))?;
        }
        if let Some((cert, key)) = &tls.client_cert {
            config = config
                .client_certificate_pem(
                    &read("upstream client certificate", cert)?,
                    &read("upstream client key", key)?,
                )
                .map_err(|e| tls_error(cert, e))?;
        }
        let https = config
            .https_connector(http)
            .map_err(|e| GatewayError::Tls(format!("the upstream's TLS: {e}")))?;
        Ok(Self::Tls(https))
    }
}

fn read(what: &str, path: &Path) -> Result<Vec<u8>, GatewayError> {
    std::fs::read(path)
        .map_err(|e| GatewayError::Tls(format!("cannot read the {what} {}: {e}", path.display())))
}

fn tls_error(path: &Path, e: cachio::tls::TlsError) -> GatewayError {
    GatewayError::Tls(format!("{}: {e}", path.display()))
}

impl Service<Uri> for Connector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            Self::Plain(c) => c.poll_ready(cx).map_err(Into::into),
            Self::Tls(c) => c.poll_ready(cx),
        }
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        match self {
            Self::Plain(c) => {
                let connecting = c.call(dst);
                Box::pin(async move {
                    connecting
                        .await
                        .map(MaybeHttpsStream::Http)
                        .map_err(Into::into)
                })
            }
            Self::Tls(c) => c.call(dst),
        }
    }
}
