//! The TLS listener's certificate: read from PEM files, given to every handshake, and reloaded
//! in place without touching the connections already open.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::GatewayError;

/// The certificate and key a TLS listener serves, from two PEM files, reloadable: give it to
/// [`serve_tls`](crate::serve_tls) or [`Listeners::tls`](crate::Listeners::tls), and call
/// [`reload`](Self::reload) when the files change (the binary does on `SIGHUP`).
///
/// Handshakes offer HTTP/2 and HTTP/1.1 by ALPN, over TLS 1.2 or 1.3 (rustls with ring). Clones
/// share the certificate: a reload through one is seen by all.
///
/// # Example
///
/// ```no_run
/// use cachio_gateway::{Gateway, ServerTls};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tls = ServerTls::from_pem_files("/etc/cachio/cert.pem", "/etc/cachio/key.pem")?;
/// let router = Gateway::builder("http://127.0.0.1:9000").build()?.into_router();
/// let listener = tokio::net::TcpListener::bind("0.0.0.0:443").await?;
/// let reloader = tls.clone();
/// tokio::spawn(async move {
///     // Whenever the certificate was renewed on disk:
///     if let Err(e) = reloader.reload() {
///         eprintln!("keeping the old certificate: {e}");
///     }
/// });
/// cachio_gateway::serve_tls(listener, router, tls, std::future::pending()).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ServerTls {
    inner: Arc<Inner>,
}

struct Inner {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: Arc<ArcSwap<CertifiedKey>>,
    acceptor: TlsAcceptor,
}

impl ServerTls {
    /// Reads the certificate chain (`cert_file`: the server's certificate, then its
    /// intermediates) and its private key (`key_file`: PKCS#8, PKCS#1 or SEC1), both PEM.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Tls`] when a file cannot be read, holds no certificate or no key, or the
    /// key does not match the certificate.
    pub fn from_pem_files(
        cert_file: impl Into<PathBuf>,
        key_file: impl Into<PathBuf>,
    ) -> Result<Self, GatewayError> {
        let cert_path = cert_file.into();
        let key_path = key_file.into();
        let current = Arc::new(ArcSwap::from_pointee(load(&cert_path, &key_path)?));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| GatewayError::Tls(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(current.clone())));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Self {
            inner: Arc::new(Inner {
                cert_path,
                key_path,
                current,
                acceptor: TlsAcceptor::from(Arc::new(config)),
            }),
        })
    }

    /// Reads the two files again and serves what they hold from the next handshake on;
    /// connections already open keep theirs. When the files cannot be used, the certificate
    /// served stays the one before.
    ///
    /// # Errors
    ///
    /// [`GatewayError::Tls`], as [`from_pem_files`](Self::from_pem_files), saying why the new
    /// files were not taken.
    pub fn reload(&self) -> Result<(), GatewayError> {
        let key = load(&self.inner.cert_path, &self.inner.key_path)?;
        self.inner.current.store(Arc::new(key));
        Ok(())
    }

    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        self.inner.acceptor.clone()
    }
}

impl fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerTls")
            .field("cert_file", &self.inner.cert_path)
            .field("key_file", &self.inner.key_path)
            .finish_non_exhaustive()
    }
}

/// Gives every handshake the certificate of the moment.
struct Resolver(Arc<ArcSwap<CertifiedKey>>);

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver")
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.load_full())
    }
}

/// A certificate chain and its key, checked to belong together.
fn load(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, GatewayError> {
    let bad = |path: &Path, why: String| GatewayError::Tls(format!("{}: {why}", path.display()));
    let read = |path: &Path| std::fs::read(path).map_err(|e| bad(path, e.to_string()));
    let chain = CertificateDer::pem_slice_iter(&read(cert_path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert_path, e.to_string()))?;
    if chain.is_empty() {
        return Err(bad(cert_path, "no CERTIFICATE in the PEM file".into()));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(key_path)?)
        .map_err(|e| bad(key_path, format!("no private key: {e}")))?;
    let provider = rustls::crypto::ring::default_provider();
    CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
        GatewayError::Tls(format!(
            "{} and {}: {e}",
            cert_path.display(),
            key_path.display()
        ))
    })
}
