//! TLS for HTTP clients: rustls with ring, the roots to trust, an optional client certificate,
//! and ALPN. [`Client`](crate::Client) connects with it; so can any hyper client.
//!
//! [`TlsConfig`] trusts, by default, the Mozilla roots that ship with cachio (`webpki-roots`)
//! and the roots the operating system trusts, both at once: a certificate is accepted when it
//! chains to either set. It can trust only given certificate authorities instead, and present a
//! client certificate to servers that ask for one (mutual TLS).
//!
//! ```
//! use hyper_util::client::legacy::{Client, connect::HttpConnector};
//! use hyper_util::rt::TokioExecutor;
//!
//! # fn main() -> Result<(), cachio::tls::TlsError> {
//! # let ca_pem = rcgen::generate_simple_self_signed(vec!["ca.test".into()]).unwrap().cert.pem();
//! // Trust only a private CA; HTTP/2 or HTTP/1.1 as ALPN settles, SNI from the URL's host.
//! let connector = cachio::tls::TlsConfig::new()
//!     .built_in_roots(false)
//!     .root_certificate_pem(ca_pem.as_bytes())?
//!     .https_connector(HttpConnector::new())?;
//! let client = Client::builder(TokioExecutor::new())
//!     .build::<_, http_body_util::Empty<bytes::Bytes>>(connector);
//! # let _ = client;
//! # Ok(())
//! # }
//! ```

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// What a client trusts and presents in TLS: see the [module](self) documentation.
///
/// Cloning is cheap enough for start-up: certificates are a few kilobytes.
///
/// # Example
///
/// A client certificate for a server that asks for one:
///
/// ```no_run
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let config = cachio::tls::TlsConfig::new()
///     .client_certificate_pem(
///         &std::fs::read("/etc/app/client.pem")?,
///         &std::fs::read("/etc/app/client.key")?,
///     )?
///     .client_config()?;
/// # let _ = config;
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct TlsConfig {
    /// The Mozilla roots that ship with `webpki-roots`.
    webpki: bool,
    /// The roots the operating system trusts (`rustls-native-certs`).
    native: bool,
    /// Roots given to the builder.
    extra: Vec<CertificateDer<'static>>,
    /// The certificate chain and key presented to servers that ask for one.
    client_auth: Option<(Vec<CertificateDer<'static>>, Arc<PrivateKeyDer<'static>>)>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl TlsConfig {
    /// Trusts the built-in roots (both sets) and presents no client certificate.
    pub fn new() -> Self {
        Self {
            webpki: true,
            native: true,
            extra: Vec::new(),
            client_auth: None,
        }
    }

    /// Also trusts the certificate authorities in `pem` (PEM text, one or more `CERTIFICATE`
    /// blocks): a company's CA, a test's own. Call it again for more.
    ///
    /// # Errors
    ///
    /// When the text holds no certificate or one that does not parse.
    pub fn root_certificate_pem(mut self, pem: &[u8]) -> Result<Self, TlsError> {
        let certs = certificates(pem).map_err(|e| TlsError(format!("a root certificate: {e}")))?;
        self.extra.extend(certs);
        Ok(self)
    }

    /// Whether to trust the built-in roots, both sets (on by default). Turn them off to trust
    /// only the roots given with [`root_certificate_pem`](Self::root_certificate_pem).
    pub fn built_in_roots(self, on: bool) -> Self {
        Self {
            webpki: on,
            native: on,
            ..self
        }
    }

    /// Whether to trust the Mozilla roots that ship with cachio (on by default).
    pub fn built_in_webpki_roots(self, on: bool) -> Self {
        Self { webpki: on, ..self }
    }

    /// Whether to trust the roots the operating system trusts (on by default).
    pub fn built_in_native_roots(self, on: bool) -> Self {
        Self { native: on, ..self }
    }

    /// Presents this client certificate to servers that ask for one (mutual TLS): `chain_pem`
    /// holds the certificate, then any intermediates; `key_pem` its private key (PKCS#8,
    /// PKCS#1 or SEC1).
    ///
    /// # Errors
    ///
    /// When either text does not parse, holds no certificate, or no key.
    pub fn client_certificate_pem(
        mut self,
        chain_pem: &[u8],
        key_pem: &[u8],
    ) -> Result<Self, TlsError> {
        let chain = certificates(chain_pem)
            .map_err(|e| TlsError(format!("the client certificate: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(key_pem)
            .map_err(|e| TlsError(format!("the client certificate's key: {e}")))?;
        self.client_auth = Some((chain, Arc::new(key)));
        Ok(self)
    }

    /// The rustls configuration: TLS 1.2 and 1.3 with ring, these roots, this client
    /// certificate. No ALPN protocol is set: [`https_connector`](Self::https_connector) sets
    /// them, or set `alpn_protocols` yourself.
    ///
    /// This reads the system's root certificates when they are on: call it at start-up.
    ///
    /// # Errors
    ///
    /// When no root is left to trust (the built-in sets are off and none was given), or the
    /// client key does not match its certificate.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError(e.to_string()))?
            .with_root_certificates(self.store()?);
        match &self.client_auth {
            None => Ok(builder.with_no_client_auth()),
            Some((chain, key)) => builder
                .with_client_auth_cert(chain.clone(), key.clone_key())
                .map_err(|e| TlsError(format!("the client certificate: {e}"))),
        }
    }

    /// A connector for `http` and `https` URLs over `http` (TCP): TLS as
    /// [`client_config`](Self::client_config) makes it, the server name (SNI) from the URL's
    /// host, HTTP/2 or HTTP/1.1 as ALPN settles. An `https` URL is never sent in plain text:
    /// a failed handshake fails the connection.
    ///
    /// # Errors
    ///
    /// As [`client_config`](Self::client_config).
    pub fn https_connector(
        &self,
        mut http: HttpConnector,
    ) -> Result<HttpsConnector<HttpConnector>, TlsError> {
        // The TLS layer takes `https` URLs; the TCP connector must let them through.
        http.enforce_http(false);
        Ok(HttpsConnectorBuilder::new()
            .with_tls_config(self.client_config()?)
            .https_or_http()
            .enable_all_versions()
            .wrap_connector(http))
    }

    /// The store of every root to trust: the union of the sets that are on. A certificate is
    /// trusted when it chains to any of them.
    fn store(&self) -> Result<RootCertStore, TlsError> {
        let mut store = RootCertStore::empty();
        if self.webpki {
            store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        if self.native {
            let found = rustls_native_certs::load_native_certs();
            for err in &found.errors {
                tracing::debug!(error = %err, "a system root certificate could not be read");
            }
            let (added, ignored) = store.add_parsable_certificates(found.certs);
            tracing::debug!(added, ignored, "system root certificates");
        }
        for cert in &self.extra {
            store
                .add(cert.clone())
                .map_err(|e| TlsError(format!("a root certificate: {e}")))?;
        }
        if store.is_empty() {
            return Err(TlsError(
                "no root certificate to trust: the built-in sets are off and none was given".into(),
            ));
        }
        Ok(store)
    }
}

/// The certificates of a PEM text; an error when there is none.
fn certificates(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no CERTIFICATE in the PEM text".into());
    }
    Ok(certs)
}

/// Why a [`TlsConfig`] could not be made into a rustls configuration or connector; its
/// `Display` says what was wrong.
#[derive(Clone, Debug)]
pub struct TlsError(String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for TlsError {}

/// What a TLS failure somewhere in `err`'s chain means, in words (`the certificate is not
/// signed by a trusted authority (unknown issuer)`), or `None` when the chain holds no rustls
/// error. For logs that must say why a handshake failed.
///
/// # Example
///
/// ```
/// let err = std::io::Error::other(rustls::Error::InvalidCertificate(
///     rustls::CertificateError::UnknownIssuer,
/// ));
/// let reason = cachio::tls::describe_error(&err).unwrap();
/// assert!(reason.contains("unknown issuer"));
/// assert_eq!(cachio::tls::describe_error(&std::io::Error::other("refused")), None);
/// ```
pub fn describe_error(err: &(dyn StdError + 'static)) -> Option<String> {
    find::<rustls::Error>(err).map(reason)
}

/// The first error of type `E` in `err`'s chain. An `io::Error` that wraps another error (as
/// tokio-rustls wraps rustls's) is looked into: its `source` skips the error it wraps.
pub(crate) fn find<'a, E: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a E> {
    let mut next = Some(err);
    while let Some(err) = next {
        if let Some(found) = err.downcast_ref::<E>() {
            return Some(found);
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && let Some(found) = find::<E>(inner)
        {
            return Some(found);
        }
        next = err.source();
    }
    None
}

/// What a certificate error means, in words.
fn reason(err: &rustls::Error) -> String {
    use rustls::CertificateError as C;
    match err {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            "the certificate is not signed by a trusted authority (unknown issuer)".to_owned()
        }
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            format!("the certificate has expired ({err})")
        }
        rustls::Error::InvalidCertificate(
            C::NotValidForName | C::NotValidForNameContext { .. },
        ) => {
            format!("the certificate was issued for another name ({err})")
        }
        other => other.to_string(),
    }
}
