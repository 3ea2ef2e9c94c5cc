//! The client's TLS: rustls with ring, the trusted roots, ALPN.

use std::sync::Arc;

use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::Error;

/// The certificate authorities a client trusts.
#[derive(Clone, Debug)]
pub(crate) struct Roots {
    /// The Mozilla roots that ship with `webpki-roots`.
    pub(crate) webpki: bool,
    /// The roots the operating system trusts (`rustls-native-certs`).
    pub(crate) native: bool,
    /// Roots given to the builder.
    pub(crate) extra: Vec<CertificateDer<'static>>,
}

impl Default for Roots {
    fn default() -> Self {
        Self {
            webpki: true,
            native: true,
            extra: Vec::new(),
        }
    }
}

impl Roots {
    /// Adds the certificates of a PEM file's text.
    pub(crate) fn add_pem(&mut self, pem: &[u8]) -> Result<(), Error> {
        let before = self.extra.len();
        for cert in CertificateDer::pem_slice_iter(pem) {
            let cert = cert.map_err(|e| Error::builder(format!("a root certificate: {e}")))?;
            self.extra.push(cert);
        }
        if self.extra.len() == before {
            return Err(Error::builder(
                "a root certificate: no CERTIFICATE in the PEM text",
            ));
        }
        Ok(())
    }

    /// The store of every root to trust: the union of the sets that are on. A certificate is
    /// trusted when it chains to any of them.
    fn store(&self) -> Result<RootCertStore, Error> {
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
                .map_err(|e| Error::builder(format!("a root certificate: {e}")))?;
        }
        if store.is_empty() {
            return Err(Error::builder(
                "no root certificate to trust: the built-in sets are off and none was given",
            ));
        }
        Ok(store)
    }
}

/// An HTTP and HTTPS connector: TLS 1.2 and 1.3 with ring, SNI from the URL's host, HTTP/2 or
/// HTTP/1.1 as ALPN settles.
pub(crate) fn connector(
    roots: &Roots,
    connect_timeout: Option<std::time::Duration>,
) -> Result<HttpsConnector<HttpConnector>, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(Error::builder)?
        .with_root_certificates(roots.store()?)
        .with_no_client_auth();
    let mut http = HttpConnector::new();
    // The TLS layer takes `https` URLs; the TCP connector must let them through.
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(connect_timeout);
    Ok(HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(http))
}
