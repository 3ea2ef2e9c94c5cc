//! `cachio-gateway`: a caching reverse proxy in front of one HTTP origin.
//!
//! Run `cachio-gateway --help` for the options. Every option can also be set in a TOML file
//! given with `--config` (keys are the option names without the dashes); options on the command
//! line override the file.

use std::path::PathBuf;
use std::process::ExitCode;

use cachio_gateway::{Config, Listeners, ServerTls};
use clap::{CommandFactory, FromArgMatches, Parser};

/// Under a stream of distinct responses the system allocator kept the memory of freed bodies
/// (resident memory rose past 270 MiB for a 16 MiB memory tier); jemalloc gives it back.
#[cfg(all(feature = "jemalloc", not(target_env = "msvc")))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// A caching reverse proxy (RFC 9111) in front of one HTTP or HTTPS origin.
///
/// Listens for HTTP/1.1 and h2c, and for HTTPS (HTTP/2 and HTTP/1.1) with --tls-cert; SIGHUP
/// reloads the certificate. Forwards every request to the origin, and keeps what the
/// origin's Cache-Control allows in memory (and optionally on disk, or in a Redis shared by a
/// fleet of gateways). Purge with `PURGE /path` or
/// `POST /_cachio/purge/{url,prefix,tag}`; counters at `GET /_cachio/metrics`. Logs go to stderr,
/// filtered by RUST_LOG (default `info`: one line per request).
#[derive(Debug, Parser)]
#[command(version, about, long_about)]
struct Cli {
    #[command(flatten)]
    settings: Config,

    /// Read settings from this TOML file; command-line options override it.
    #[arg(long, value_name = "FILE.toml")]
    config: Option<PathBuf>,
}

impl Cli {
    /// The settings of the command line, laid over those of the `--config` file: a flag given
    /// (or its environment variable) replaces the file's setting, the others stay.
    fn settings() -> Result<Config, Box<dyn std::error::Error>> {
        let matches = Cli::command().get_matches();
        let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        let Some(file) = cli.config else {
            return Ok(cli.settings);
        };
        let mut config = Config::load(file)?;
        config.update_from_arg_matches(&matches)?;
        Ok(config)
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::settings().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = e.to_string();
            let mut source = e.source();
            while let Some(s) = source {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                source = s.source();
            }
            eprintln!("cachio-gateway: {msg}");
            ExitCode::FAILURE
        }
    }
}

/// How long a shutdown waits for the responses still being stored, once requests are done.
const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let workers = config
        .workers
        .filter(|n| *n > 0)
        .or_else(|| std::thread::available_parallelism().ok().map(usize::from))
        .unwrap_or(1);
    let gateway = config.builder()?.build()?;
    let tls = config.tls_listener()?;
    let mut listeners = Listeners::new();
    let plain = match config.plain_listen_addr() {
        Some(addr) => {
            let listener = std::net::TcpListener::bind(addr)?;
            let addr = listener.local_addr()?;
            listeners = listeners.plain(listener);
            Some(addr)
        }
        None => None,
    };
    let (secure, reload) = match tls {
        Some((addr, tls)) => {
            let listener = std::net::TcpListener::bind(addr)?;
            let addr = listener.local_addr()?;
            listeners = listeners.tls(listener, tls.clone());
            (Some(addr), Some(tls))
        }
        None => (None, None),
    };
    // The first signal starts a graceful shutdown; a second one exits at once. The handlers are
    // in place before the gateway says it listens, so a signal right after start-up is never
    // met by the default action (an abrupt exit).
    let (first_tx, first_rx) = tokio::sync::watch::channel(false);
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<std::io::Result<()>>();
    std::thread::Builder::new()
        .name("cachio-signals".into())
        .spawn(move || {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let signals = {
                let _in_runtime = rt.enter();
                Signals::new()
            };
            let mut signals = match signals {
                Ok(s) => {
                    let _ = ready_tx.send(Ok(()));
                    s
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            rt.block_on(async {
                signals.next(reload.as_ref()).await;
                let _ = first_tx.send(true);
                signals.next(reload.as_ref()).await;
                tracing::warn!("second signal: exiting without waiting for requests in flight");
                std::process::exit(130);
            });
        })?;
    ready_rx
        .recv()
        .map_err(|_| std::io::Error::other("the signal thread stopped"))??;
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };
    let admin = match config.admin_listen {
        Some(addr) => Some(serve_admin(
            std::net::TcpListener::bind(addr)?,
            gateway.admin_router(),
            stopped(first_rx.clone()),
        )?),
        None => None,
    };
    tracing::info!(
        listen = %plain.map_or_else(|| "none".into(), |a| a.to_string()),
        listen_tls = %secure.map_or_else(|| "none".into(), |a| a.to_string()),
        upstream = config.site_options.upstream.as_deref().unwrap_or_default(),
        workers,
        "cachio-gateway listening"
    );
    // Once the last connection is done, the responses still being stored are stored and the
    // disk tier synced, before the workers' runtimes (and the tasks they run) are dropped.
    let settle = async {
        if gateway.settle(SETTLE_TIMEOUT).await {
            tracing::info!("every stored response is committed");
        }
    };
    cachio_gateway::serve_threaded_then(
        listeners,
        gateway.router(),
        workers,
        stopped(first_rx),
        settle,
    )?;
    if let Some(admin) = admin {
        let _ = admin.join();
    }
    tracing::info!("stopped");
    Ok(())
}

/// Serves the admin routes on a thread of their own until `shutdown` completes.
fn serve_admin(
    listener: std::net::TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    listener.set_nonblocking(true)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let listener = {
        let _in_runtime = rt.enter();
        tokio::net::TcpListener::from_std(listener)?
    };
    tracing::info!(admin = %listener.local_addr()?, "admin routes listening");
    std::thread::Builder::new()
        .name("cachio-admin".into())
        .spawn(move || {
            if let Err(e) = rt.block_on(cachio_gateway::serve(listener, router, shutdown)) {
                tracing::error!(error = %e, "the admin listener failed");
            }
        })
}

/// SIGTERM and Ctrl-C (SIGINT), and SIGHUP (reload the TLS certificate), listened for from the
/// moment they are made.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
    #[cfg(unix)]
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers; must be called within a tokio runtime.
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
                hup: signal(SignalKind::hangup())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Self {})
    }

    /// Completes at the next SIGTERM or Ctrl-C; reloads `tls` at each SIGHUP meanwhile.
    async fn next(&mut self, tls: Option<&ServerTls>) {
        #[cfg(unix)]
        loop {
            tokio::select! {
                _ = self.term.recv() => return tracing::info!("SIGTERM: shutting down"),
                _ = self.int.recv() => return tracing::info!("Ctrl-C: shutting down"),
                _ = self.hup.recv() => match tls.map(ServerTls::reload) {
                    Some(Ok(())) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                    Some(Err(e)) => tracing::error!(
                        error = %e,
                        "SIGHUP: TLS certificate not reloaded; the previous one is still served"
                    ),
                    None => tracing::info!("SIGHUP: no TLS certificate to reload"),
                },
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tls;
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
            tracing::info!("Ctrl-C: shutting down");
        }
    }
}
