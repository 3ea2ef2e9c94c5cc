//! Serving a router on TCP listeners, plain (HTTP/1.1 and h2c) or TLS (HTTP/2 and HTTP/1.1 by
//! ALPN), with graceful shutdown.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use http::header::{HOST, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Uri};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::interim::InterimIo;
use crate::tls::ServerTls;

/// How long a client has to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

fn connection_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    builder.http2().timer(TokioTimer::new());
    builder
}

/// Serves one connection on the current runtime until it closes or, after a graceful shutdown
/// began, until its requests in flight are answered. A TLS connection's handshake runs first,
/// in the connection's task; the graceful shutdown waits for it too.
fn spawn_connection(
    builder: &auto::Builder<TokioExecutor>,
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    router: Router,
    watcher: Watcher,
) {
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    let Some(acceptor) = tls else {
        tokio::spawn(connection(builder, stream, false, router, watcher, peer));
        return;
    };
    let builder = builder.clone();
    tokio::spawn(async move {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => connection(&builder, stream, true, router, watcher, peer).await,
            Ok(Err(e)) => tracing::debug!(?peer, error = %e, "TLS handshake failed"),
            Err(_) => tracing::debug!(?peer, "TLS handshake timed out"),
        }
    });
}

/// One connection's HTTP, watched by the graceful shutdown.
fn connection<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    secure: bool,
    router: Router,
    watcher: Watcher,
    peer: Option<std::net::SocketAddr>,
) -> impl Future<Output = ()> + Send + 'static
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // The connection's requests forward the origin's interim responses through its I/O.
    let (io, interim) = InterimIo::new(io);
    // The peer's address, as axum's `ConnectInfo`: the forwarding fields are set from it.
    let service =
        TowerToHyperService::new(router.map_request(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(interim.clone());
            if let Some(peer) = peer {
                req.extensions_mut().insert(ConnectInfo(peer));
            }
            if secure {
                req.extensions_mut().insert(crate::forwarded::Secure);
                to_origin_form(&mut req);
            }
            req
        }));
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .into_owned();
    let conn = watcher.watch(conn);
    async move {
        if let Err(e) = conn.await {
            tracing::debug!(?peer, error = %e, "connection ended with an error");
        }
    }
}

/// An HTTP/2 request over TLS names its target `https://authority/path`, where an HTTP/1.1 one
/// names `/path` with a `Host`: the first becomes the second, so that the cache keys both alike,
/// and alike with the plain listener's requests (one cache for both listeners, which a purge by
/// path reaches).
fn to_origin_form<B>(req: &mut Request<B>) {
    let uri = req.uri().clone();
    if uri.scheme().is_none() {
        return;
    }
    if let Some(authority) = uri.authority()
        && !req.headers().contains_key(HOST)
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        req.headers_mut().insert(HOST, host);
    }
    let target = uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    *req.uri_mut() = Uri::from(target);
}

/// The next connection on `listener`, or never when there is none.
async fn accept_on(listener: Option<&TcpListener>) -> std::io::Result<TcpStream> {
    match listener {
        Some(l) => l.accept().await.map(|(stream, _)| stream),
        None => std::future::pending().await,
    }
}

/// Accepts on the plain listener, the TLS one or both until `shutdown` completes; each
/// connection comes with whether it came on the TLS listener. `None` when the shutdown came.
async fn accept(
    plain: Option<&TcpListener>,
    tls: Option<&TcpListener>,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Option<(TcpStream, bool)> {
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut *shutdown => return None,
            accepted = accept_on(plain) => accepted.map(|s| (s, false)),
            accepted = accept_on(tls) => accepted.map(|s| (s, true)),
        };
        {
            match accepted {
                Ok(stream) => return Some(stream),
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
}

/// Serves `router` on `listener`, on the current tokio runtime, until `shutdown` completes;
/// then shuts down gracefully.
///
/// Each connection speaks HTTP/1.1, or HTTP/2 when the client opens it with the HTTP/2
/// connection preface (h2c with prior knowledge). An HTTP/1.1 request gets the interim responses
/// (1xx) the origin sends before its final response, as they arrive. When `shutdown` completes the listener is
/// closed at once (new connections are refused), idle connections are closed, and requests in
/// flight run to the end of their responses; the returned future completes when the last
/// connection has closed. To bound that wait, wrap the call in [`tokio::time::timeout`].
///
/// # Errors
///
/// None so far: failures to accept a connection are logged and retried. The `Result` leaves room
/// for listener errors that cannot be retried.
///
/// # Example
///
/// ```
/// use axum::{Router, routing::get};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let router = Router::new().route("/", get(|| async { "hello" }));
/// // Shut down at once: a real program waits for a signal here.
/// cachio_gateway::serve(listener, router, async {}).await?;
/// # Ok(())
/// # }
/// ```
pub async fn serve<F>(listener: TcpListener, router: Router, shutdown: F) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send,
{
    serve_one(listener, None, router, shutdown).await
}

/// Serves `router` over TLS on `listener`, on the current tokio runtime, until `shutdown`
/// completes; then shuts down gracefully as [`serve`] does, TLS connections still in their
/// handshake included.
///
/// Each connection offers HTTP/2 and HTTP/1.1 by ALPN, with the certificate `tls` holds at its
/// handshake: [`ServerTls::reload`] changes it for the connections that come next, and leaves
/// open ones as they are. A client that does not finish its handshake within 10 seconds is
/// disconnected.
///
/// # Errors
///
/// As [`serve`].
///
/// # Example
///
/// ```no_run
/// use axum::{Router, routing::get};
/// use cachio_gateway::ServerTls;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tls = ServerTls::from_pem_files("cert.pem", "key.pem")?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
/// let router = Router::new().route("/", get(|| async { "hello" }));
/// cachio_gateway::serve_tls(listener, router, tls, async {
///     let _ = tokio::signal::ctrl_c().await;
/// })
/// .await?;
/// # Ok(())
/// # }
/// ```
pub async fn serve_tls<F>(
    listener: TcpListener,
    router: Router,
    tls: ServerTls,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send,
{
    serve_one(listener, Some(tls.acceptor()), router, shutdown).await
}

async fn serve_one<F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send,
{
    let builder = connection_builder();
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    let (plain, secure) = match tls {
        None => (Some(&listener), None),
        Some(_) => (None, Some(&listener)),
    };
    while let Some((stream, _)) = accept(plain, secure, &mut shutdown).await {
        spawn_connection(
            &builder,
            stream,
            tls.clone(),
            router.clone(),
            graceful.watcher(),
        );
    }
    drop(listener);
    tracing::info!(
        connections = graceful.count(),
        "shutting down: waiting for requests in flight"
    );
    graceful.shutdown().await;
    Ok(())
}

/// The listeners [`serve_threaded`] accepts on: a plain one (HTTP/1.1 and h2c), a TLS one
/// (HTTP/2 and HTTP/1.1 by ALPN), or both. A plain [`std::net::TcpListener`] converts into one.
///
/// # Example
///
/// ```no_run
/// use cachio_gateway::{Listeners, ServerTls};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let tls = ServerTls::from_pem_files("cert.pem", "key.pem")?;
/// let listeners = Listeners::new()
///     .plain(std::net::TcpListener::bind("127.0.0.1:8080")?)
///     .tls(std::net::TcpListener::bind("127.0.0.1:8443")?, tls);
/// # let router = axum::Router::new();
/// cachio_gateway::serve_threaded(listeners, router, 2, std::future::pending())?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
#[must_use]
pub struct Listeners {
    plain: Option<std::net::TcpListener>,
    tls: Option<(std::net::TcpListener, ServerTls)>,
}

impl Listeners {
    /// No listener yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Accepts plain HTTP (HTTP/1.1 and h2c) on `listener`, in place of any plain one given
    /// before.
    pub fn plain(self, listener: std::net::TcpListener) -> Self {
        Self {
            plain: Some(listener),
            ..self
        }
    }

    /// Accepts TLS on `listener` with the certificate `tls` holds, in place of any TLS one given
    /// before.
    pub fn tls(self, listener: std::net::TcpListener, tls: ServerTls) -> Self {
        Self {
            tls: Some((listener, tls)),
            ..self
        }
    }
}

impl From<std::net::TcpListener> for Listeners {
    fn from(listener: std::net::TcpListener) -> Self {
        Self::new().plain(listener)
    }
}

/// Serves `router` on `listeners` (a plain [`std::net::TcpListener`], or [`Listeners`] for TLS)
/// with `workers` threads, each running a single-threaded tokio runtime, until `shutdown`
/// completes; then shuts down gracefully as [`serve`] does, on every listener. Blocks the
/// calling thread, which accepts connections and hands them to the workers in turn; the TLS
/// handshakes run on the workers.
///
/// A connection stays on one worker for its whole life, so a request never wakes another
/// thread: on a few cores this answers cache hits markedly faster than one multi-threaded
/// runtime. Tasks the cache spawns (background revalidations, commits) run on the worker that
/// spawned them.
///
/// # Errors
///
/// When a runtime or a worker thread cannot be started, a listener cannot be registered, or
/// `listeners` holds none.
///
/// # Panics
///
/// When `workers` is zero.
pub fn serve_threaded<F>(
    listeners: impl Into<Listeners>,
    router: Router,
    workers: usize,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send,
{
    serve_threaded_then(listeners, router, workers, shutdown, async {})
}

/// Like [`serve_threaded`], and once the last connection is done, runs `then` while the
/// workers still run the tasks the requests spawned; returns when it completes. Give it
/// [`Gateway::settle`](crate::Gateway::settle), so that the responses the cache is still storing
/// are stored before the workers' runtimes (and their tasks) are dropped.
///
/// # Errors
///
/// As [`serve_threaded`].
///
/// # Panics
///
/// When `workers` is zero.
///
/// # Example
///
/// ```no_run
/// use std::time::Duration;
///
/// // Serves until killed, so compiled but not run by `cargo test`.
/// let gateway = cachio_gateway::Gateway::builder("http://127.0.0.1:9000").build()?;
/// let listener = std::net::TcpListener::bind("127.0.0.1:8080")?;
/// let settle = gateway.clone();
/// cachio_gateway::serve_threaded_then(listener, gateway.router(), 2, std::future::pending(), async move {
///     settle.settle(Duration::from_secs(10)).await;
/// })?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn serve_threaded_then<F, T>(
    listeners: impl Into<Listeners>,
    router: Router,
    workers: usize,
    shutdown: F,
    then: T,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send,
    T: Future<Output = ()>,
{
    assert!(workers > 0, "serve_threaded needs at least one worker");
    let Listeners { plain, tls } = listeners.into();
    if plain.is_none() && tls.is_none() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "no listener to serve on",
        ));
    }
    let (secure, acceptor) = match tls {
        Some((listener, tls)) => (Some(listener), Some(tls.acceptor())),
        None => (None, None),
    };
    for listener in plain.iter().chain(&secure) {
        listener.set_nonblocking(true)?;
    }
    type Handed = (std::net::TcpStream, Option<TlsAcceptor>, Watcher);
    let mut senders = Vec::with_capacity(workers);
    let mut threads = Vec::with_capacity(workers);
    for i in 0..workers {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Handed>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let router = router.clone();
        let thread = std::thread::Builder::new()
            .name(format!("cachio-worker-{i}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let builder = connection_builder();
                    while let Some((stream, tls, watcher)) = rx.recv().await {
                        match TcpStream::from_std(stream) {
                            Ok(stream) => {
                                spawn_connection(&builder, stream, tls, router.clone(), watcher)
                            }
                            Err(e) => tracing::warn!(error = %e, "cannot register a connection"),
                        }
                    }
                });
                // The tasks still running are dropped; blocking ones get a second to end.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        senders.push(tx);
        threads.push(thread);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let plain = plain.map(TcpListener::from_std).transpose()?;
        let secure = secure.map(TcpListener::from_std).transpose()?;
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let mut next = 0;
        while let Some((stream, is_tls)) =
            accept(plain.as_ref(), secure.as_ref(), &mut shutdown).await
        {
            let stream = match stream.into_std() {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot hand a connection over");
                    continue;
                }
            };
            let tls = if is_tls { acceptor.clone() } else { None };
            let _ = senders[next].send((stream, tls, graceful.watcher()));
            next = (next + 1) % senders.len();
        }
        drop((plain, secure));
        tracing::info!(
            connections = graceful.count(),
            "shutting down: waiting for requests in flight"
        );
        graceful.shutdown().await;
        // The workers go on running the tasks the requests spawned meanwhile.
        then.await;
        drop(senders);
        Ok::<_, std::io::Error>(())
    })?;
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}
