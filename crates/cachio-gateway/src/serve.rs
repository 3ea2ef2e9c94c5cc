//! Serving a router on a TCP listener: HTTP/1.1 and h2c, graceful shutdown.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt;

use crate::interim::InterimIo;

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
/// began, until its requests in flight are answered.
fn spawn_connection(
    builder: &auto::Builder<TokioExecutor>,
    stream: TcpStream,
    router: Router,
    watcher: Watcher,
) {
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().ok();
    // The connection's requests forward the origin's interim responses through its I/O.
    let (io, interim) = InterimIo::new(stream);
    // The peer's address, as axum's `ConnectInfo`: the forwarding fields are set from it.
    let service =
        TowerToHyperService::new(router.map_request(move |mut req: Request<Incoming>| {
            req.extensions_mut().insert(interim.clone());
            if let Some(peer) = peer {
                req.extensions_mut().insert(ConnectInfo(peer));
            }
            req
        }));
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .into_owned();
    let conn = watcher.watch(conn);
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(?peer, error = %e, "connection ended with an error");
        }
    });
}

/// Accepts until `shutdown` completes, handing each connection to `handle`; `None` when the
/// shutdown came.
async fn accept(
    listener: &TcpListener,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Option<TcpStream> {
    loop {
        tokio::select! {
            biased;
            () = &mut *shutdown => return None,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => return Some(stream),
                Err(e) => {
                    // Out of file descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
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
    let builder = connection_builder();
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    while let Some(stream) = accept(&listener, &mut shutdown).await {
        spawn_connection(&builder, stream, router.clone(), graceful.watcher());
    }
    drop(listener);
    tracing::info!(
        connections = graceful.count(),
        "shutting down: waiting for requests in flight"
    );
    graceful.shutdown().await;
    Ok(())
}

/// Serves `router` on `listener` with `workers` threads, each running a single-threaded tokio
/// runtime, until `shutdown` completes; then shuts down gracefully as [`serve`] does. Blocks the
/// calling thread, which accepts connections and hands them to the workers in turn.
///
/// A connection stays on one worker for its whole life, so a request never wakes another
/// thread: on a few cores this answers cache hits markedly faster than one multi-threaded
/// runtime. Tasks the cache spawns (background revalidations, commits) run on the worker that
/// spawned them.
///
/// # Errors
///
/// When a runtime or a worker thread cannot be started, or the listener cannot be registered.
///
/// # Panics
///
/// When `workers` is zero.
pub fn serve_threaded<F>(
    listener: std::net::TcpListener,
    router: Router,
    workers: usize,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send,
{
    assert!(workers > 0, "serve_threaded needs at least one worker");
    listener.set_nonblocking(true)?;
    let mut senders = Vec::with_capacity(workers);
    let mut threads = Vec::with_capacity(workers);
    for i in 0..workers {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(std::net::TcpStream, Watcher)>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let router = router.clone();
        let thread = std::thread::Builder::new()
            .name(format!("cachio-worker-{i}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let builder = connection_builder();
                    while let Some((stream, watcher)) = rx.recv().await {
                        match TcpStream::from_std(stream) {
                            Ok(stream) => {
                                spawn_connection(&builder, stream, router.clone(), watcher)
                            }
                            Err(e) => tracing::warn!(error = %e, "cannot register a connection"),
                        }
                    }
                });
                // Let tasks the cache spawned (commits, revalidations) finish briefly.
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        senders.push(tx);
        threads.push(thread);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        let graceful = GracefulShutdown::new();
        let mut shutdown = std::pin::pin!(shutdown);
        let mut next = 0;
        while let Some(stream) = accept(&listener, &mut shutdown).await {
            let stream = match stream.into_std() {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot hand a connection over");
                    continue;
                }
            };
            let _ = senders[next].send((stream, graceful.watcher()));
            next = (next + 1) % senders.len();
        }
        drop(listener);
        tracing::info!(
            connections = graceful.count(),
            "shutting down: waiting for requests in flight"
        );
        graceful.shutdown().await;
        drop(senders);
        Ok::<_, std::io::Error>(())
    })?;
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}
