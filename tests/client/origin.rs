//! Real origins on 127.0.0.1 for the client's tests: plain HTTP or HTTPS (rustls, certificates
//! made here with rcgen), HTTP/1.1 and HTTP/2, compressing what they send when asked to.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use rcgen::{CertificateParams, DnType, IsCa, Issuer, KeyPair, date_time_ymd};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio::task::AbortHandle;
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;

/// A certificate authority made for one test.
pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `names` (host names or IP addresses), valid now, or expired
    /// since 2021.
    pub fn leaf(&self, names: &[&str], expired: bool) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        if expired {
            params.not_before = date_time_ymd(2020, 1, 1);
            params.not_after = date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        Leaf {
            chain: vec![cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        }
    }
}

/// A server's certificate chain and key.
pub struct Leaf {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

/// What an origin received, in order.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    pub version: http::Version,
    pub headers: HeaderMap,
}

/// A running origin; it stops when dropped.
pub struct Origin {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// The server names (SNI) TLS clients sent, in order.
    names: Arc<Mutex<Vec<Option<String>>>>,
    task: AbortHandle,
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Origin {
    /// The requests received so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The server names (SNI) that TLS clients sent, one per connection.
    pub fn server_names(&self) -> Vec<Option<String>> {
        self.names.lock().unwrap().clone()
    }

    /// How many requests for `path` it received.
    pub fn count(&self, path: &str) -> usize {
        self.seen().iter().filter(|s| s.path == path).count()
    }

    /// `https://127.0.0.1:PORT{path}`.
    pub fn https(&self, path: &str) -> String {
        format!("https://127.0.0.1:{}{path}", self.addr.port())
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn http(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.addr.port())
    }
}

/// How an origin answers: from the request's head.
pub type Handler = Arc<dyn Fn(&Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync>;

/// Where and how an origin listens.
pub struct Listen {
    /// `None`: plain HTTP.
    pub tls: Option<Leaf>,
    /// The ALPN protocols offered (TLS only).
    pub alpn: Vec<&'static [u8]>,
}

impl Listen {
    pub fn http() -> Self {
        Self {
            tls: None,
            alpn: Vec::new(),
        }
    }

    /// HTTPS offering HTTP/2 and HTTP/1.1.
    pub fn https(leaf: Leaf) -> Self {
        Self {
            tls: Some(leaf),
            alpn: vec![b"h2", b"http/1.1"],
        }
    }

    /// HTTPS offering HTTP/1.1 only.
    pub fn https_h1(leaf: Leaf) -> Self {
        Self {
            tls: Some(leaf),
            alpn: vec![b"http/1.1"],
        }
    }
}

/// Starts an origin that answers with `handler`, compressing bodies when the request accepts it
/// (tower-http's `CompressionLayer`, restricted to `only` when given: "gzip" or "br").
pub async fn start(listen: Listen, only: Option<&str>, handler: Handler) -> Origin {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let names = Arc::new(Mutex::new(Vec::new()));
    let acceptor = listen.tls.map(|leaf| {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(leaf.chain, leaf.key)
            .expect("server certificate");
        config.alpn_protocols = listen.alpn.iter().map(|p| p.to_vec()).collect();
        tokio_rustls::TlsAcceptor::from(Arc::new(config))
    });
    let compression = match only {
        Some("gzip") => CompressionLayer::new().no_br().no_deflate().no_zstd(),
        Some("br") => CompressionLayer::new().no_gzip().no_deflate().no_zstd(),
        _ => CompressionLayer::new(),
    };
    let log = seen.clone();
    let sni = names.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            let handler = handler.clone();
            let svc = ServiceBuilder::new().layer(compression.clone()).service_fn(
                move |req: Request<Incoming>| {
                    log.lock().unwrap().push(Seen {
                        path: req.uri().path().to_owned(),
                        version: req.version(),
                        headers: req.headers().clone(),
                    });
                    let res = handler(&req);
                    async move { Ok::<_, Infallible>(res) }
                },
            );
            let acceptor = acceptor.clone();
            let sni = sni.clone();
            tokio::spawn(async move {
                let server = auto::Builder::new(TokioExecutor::new());
                let svc = TowerToHyperService::new(svc);
                match acceptor {
                    Some(acceptor) => {
                        // A client that rejects the certificate ends the handshake: no request.
                        let Ok(tls) = acceptor.accept(tcp).await else {
                            return;
                        };
                        let name = tls.get_ref().1.server_name().map(str::to_owned);
                        sni.lock().unwrap().push(name);
                        let _ = server.serve_connection(TokioIo::new(tls), svc).await;
                    }
                    None => {
                        let _ = server.serve_connection(TokioIo::new(tcp), svc).await;
                    }
                }
            });
        }
    })
    .abort_handle();
    Origin {
        addr,
        seen,
        names,
        task,
    }
}

/// A handler from a closure over the request.
pub fn handler<F>(f: F) -> Handler
where
    F: Fn(&Request<Incoming>) -> Response<Full<Bytes>> + Send + Sync + 'static,
{
    Arc::new(f)
}

/// A response with `status`, the given header fields and `body`.
pub fn reply(status: u16, headers: &[(&str, &str)], body: &'static str) -> Response<Full<Bytes>> {
    let mut res = Response::builder().status(status);
    for (name, value) in headers {
        res = res.header(*name, *value);
    }
    res.body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("a valid response")
}
