//! `cachio-gateway`: a caching reverse proxy in front of one HTTP origin.
//!
//! Run `cachio-gateway --help` for the options. Every option can also be set in a TOML file
//! given with `--config` (keys are the option names without the dashes); options on the command
//! line override the file.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use cachio_gateway::{Config, ForwardedHeaders, Listeners, ServerTls, Sharing};
use clap::Parser;

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
struct Args {
    /// The origin to forward to: http://host[:port][/path-prefix] or https://... (TLS with
    /// the host as server name, HTTP/2 when the origin offers it).
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,

    /// The address to listen on for plain HTTP [default: 127.0.0.1:8080, or none when
    /// --tls-cert is given].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,

    /// The address to listen on for HTTPS, with --tls-cert and --tls-key
    /// [default: 127.0.0.1:8443].
    #[arg(long, value_name = "ADDR")]
    listen_tls: Option<SocketAddr>,

    /// Serve HTTPS with this certificate chain (PEM: the certificate, then its intermediates);
    /// with --tls-key. Reloaded on SIGHUP; a file that cannot be used then keeps the old one.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// For an https:// upstream: trust only the certificate authorities in this PEM file,
    /// instead of the built-in and system root certificates.
    #[arg(long, value_name = "FILE")]
    upstream_ca: Option<PathBuf>,

    /// For an https:// upstream that asks for a client certificate (mutual TLS): this PEM
    /// certificate, with --upstream-key.
    #[arg(long, value_name = "FILE", requires = "upstream_key")]
    upstream_cert: Option<PathBuf>,

    /// The private key (PEM) of --upstream-cert.
    #[arg(long, value_name = "FILE", requires = "upstream_cert")]
    upstream_key: Option<PathBuf>,

    /// `shared`: a cache for every client (honours s-maxage and private) [default];
    /// `private`: one user's cache.
    #[arg(long, value_enum)]
    mode: Option<Sharing>,

    /// The memory tier's size in MiB [default: 64].
    #[arg(long, value_name = "MIB")]
    memory_mb: Option<u64>,

    /// Keep a disk tier in this directory, behind the memory tier.
    #[arg(long, value_name = "PATH")]
    disk_dir: Option<PathBuf>,

    /// The disk tier's budget in MiB [default: 1024].
    #[arg(long, value_name = "MIB")]
    disk_mb: Option<u64>,

    /// The largest response body stored, in MiB; larger ones stream through [default: 64].
    #[arg(long, value_name = "MIB")]
    max_object_mb: Option<u64>,

    /// The name in Cache-Status and Via [default: cachio].
    #[arg(long, value_name = "NAME")]
    cache_name: Option<String>,

    /// The token that allows purging, sent as `Authorization: Bearer TOKEN` or
    /// `X-Purge-Token: TOKEN`. Without one, purging is disabled.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "CACHIO_PURGE_TOKEN",
        hide_env_values = true
    )]
    purge_token: Option<String>,

    /// Serve a stored response up to this many seconds past its freshness when the origin
    /// fails or answers 5xx, whatever its stale-if-error says [default: 0].
    #[arg(long, value_name = "SECS")]
    grace_secs: Option<u64>,

    /// Give responses without explicit freshness (max-age, s-maxage, Expires) this lifetime.
    /// Unset by default: the gateway invents no lifetime (see --heuristics for Last-Modified).
    #[arg(long, value_name = "SECS")]
    default_ttl_secs: Option<u64>,

    /// Send the upstream's host as Host instead of the client's.
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    rewrite_host: Option<bool>,

    /// How long to wait to connect to the origin and for its response head; past it: a stale
    /// response if allowed, else 504. 0 waits forever [default: 30].
    #[arg(long, value_name = "SECS")]
    upstream_timeout_secs: Option<u64>,

    /// How long an idle connection to the origin is kept for reuse; keep it under the origin's
    /// own idle timeout [default: 4].
    #[arg(long, value_name = "SECS")]
    upstream_idle_secs: Option<u64>,

    /// In shared mode, also store responses that carry Set-Cookie (their cookies are then
    /// served to every client) [default: false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    store_set_cookie: Option<bool>,

    /// A targeted cache-control field obeyed over Cache-Control, most specific first
    /// (repeatable; RFC 9213), e.g. --targeted-field surrogate-control --targeted-field
    /// cdn-cache-control [default: cdn-cache-control in shared mode, none in private mode].
    #[arg(long = "targeted-field", value_name = "NAME")]
    targeted_fields: Vec<String>,

    /// A response header whose values are surrogate keys for purge by tag (repeatable)
    /// [default: surrogate-key and cache-tag].
    #[arg(long = "tag-header", value_name = "NAME")]
    tag_headers: Vec<String>,

    /// Worker threads, each a single-threaded runtime serving its share of the connections
    /// [default: the number of CPUs].
    #[arg(long, value_name = "N")]
    workers: Option<usize>,

    /// Share the cache with a fleet of gateways through this Redis server
    /// (redis://[user:password@]host[:port][/db], or rediss://... for TLS): memory over Redis,
    /// with purges and invalidations reaching every gateway's memory. While Redis is down the
    /// cache steps aside.
    #[arg(long, value_name = "URL", conflicts_with = "redis_cluster")]
    redis_url: Option<String>,

    /// Like --redis-url, on a Redis Cluster: the URLs of some of its nodes, comma-separated.
    #[arg(long, value_name = "URL,URL,...", value_delimiter = ',')]
    redis_cluster: Vec<String>,

    /// The fleet's key prefix in Redis [default: cachio].
    #[arg(long, value_name = "PREFIX")]
    redis_prefix: Option<String>,

    /// How long one Redis call may take before the cache steps aside for that request, in
    /// milliseconds [default: 50].
    #[arg(long, value_name = "MS")]
    redis_timeout_ms: Option<u64>,

    /// For a rediss:// Redis: trust the certificate authorities in this PEM file instead of the
    /// system's root certificates.
    #[arg(long, value_name = "FILE")]
    redis_ca: Option<PathBuf>,

    /// For a rediss:// Redis that asks for a client certificate (mutual TLS): this PEM
    /// certificate, with --redis-key.
    #[arg(long, value_name = "FILE", requires = "redis_key")]
    redis_cert: Option<PathBuf>,

    /// The private key (PEM) of --redis-cert.
    #[arg(long, value_name = "FILE", requires = "redis_cert")]
    redis_key: Option<PathBuf>,

    /// The forwarding fields set on requests to the origin, from the connection (the client's
    /// address, the scheme, its Host): `forwarded` (RFC 7239), `x-forwarded` (X-Forwarded-For,
    /// -Proto, -Host), `both` or `none` [default: both]. Whatever it is, the forwarding fields a
    /// client sends (Forwarded, X-Forwarded-*, X-Real-IP, X-Host, ...) are dropped unless it is a
    /// --trusted-proxy: an origin that reflects them would otherwise let one client poison what
    /// the cache serves to all.
    #[arg(long, value_enum, value_name = "WHICH")]
    forwarded_headers: Option<ForwardedHeaders>,

    /// A proxy in front of the gateway (address or CIDR range, repeatable) whose forwarding
    /// fields are kept: the gateway appends to its X-Forwarded-For and Forwarded [default: none].
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    trusted_proxies: Vec<String>,

    /// A request header the gateway would drop that goes to the origin after all (repeatable).
    /// Dropped by default: X-Original-URL, X-Rewrite-URL, X-HTTP-Method-Override, X-HTTP-Method,
    /// X-Method-Override (they make common origins serve another path or method than the cache
    /// keys on), and those of --drop-header.
    #[arg(long = "pass-header", value_name = "NAME")]
    pass_headers: Vec<String>,

    /// A request header to drop before the cache and the origin see the request, besides the
    /// rewrite headers (repeatable).
    #[arg(long = "drop-header", value_name = "NAME")]
    drop_headers: Vec<String>,

    /// `on`: a response with Last-Modified and no explicit lifetime is fresh for a tenth of its
    /// age, up to a day (RFC 9111 §4.2.2) [default]; `off`: only explicit lifetimes (and
    /// --default-ttl-secs). In shared mode a response to a request with Cookie or Authorization
    /// never gets heuristic freshness and is stored only with an explicit lifetime.
    #[arg(long, value_name = "on|off", value_parser = clap::builder::BoolishValueParser::new())]
    heuristics: Option<bool>,

    /// Serve the admin routes (/_cachio/metrics, /_cachio/purge/..., PURGE) on this address
    /// only, not on --listen.
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,

    /// A request header whose value is part of the cache key (repeatable), e.g.
    /// --key-header accept-language.
    #[arg(long = "key-header", value_name = "NAME")]
    key_headers: Vec<String>,

    /// A cookie whose value is part of the cache key (repeatable). A request with Cookie still
    /// gets no heuristic freshness in shared mode.
    #[arg(long = "key-cookie", value_name = "NAME")]
    key_cookies: Vec<String>,

    /// A query parameter left out of the cache key (repeatable); a trailing * makes it a
    /// prefix, e.g. --key-drop-query 'utm_*' --key-drop-query fbclid.
    #[arg(long = "key-drop-query", value_name = "NAME")]
    key_drop_query: Vec<String>,

    /// Sort the query parameters by name in the cache key, so ?a=1&b=2 and ?b=2&a=1 share an
    /// entry [default: false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    key_sort_query: Option<bool>,

    /// Show the cache key in Cache-Status (its key parameter, RFC 9211) [default: false].
    #[arg(long, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    debug_key: Option<bool>,

    /// Read settings from this TOML file; command-line options override it.
    #[arg(long, value_name = "FILE.toml")]
    config: Option<PathBuf>,
}

impl Args {
    fn into_config(self) -> Result<(Config, Option<PathBuf>), cachio_gateway::GatewayError> {
        let mut flags = Config::default();
        flags.upstream = self.upstream;
        flags.listen = self.listen;
        flags.listen_tls = self.listen_tls;
        flags.tls_cert = self.tls_cert;
        flags.tls_key = self.tls_key;
        flags.upstream_ca = self.upstream_ca;
        flags.upstream_cert = self.upstream_cert;
        flags.upstream_key = self.upstream_key;
        flags.mode = self.mode;
        flags.memory_mb = self.memory_mb;
        flags.disk_dir = self.disk_dir;
        flags.disk_mb = self.disk_mb;
        flags.max_object_mb = self.max_object_mb;
        flags.cache_name = self.cache_name;
        flags.purge_token = self.purge_token;
        flags.grace_secs = self.grace_secs;
        flags.default_ttl_secs = self.default_ttl_secs;
        flags.rewrite_host = self.rewrite_host;
        flags.upstream_timeout_secs = self.upstream_timeout_secs;
        flags.upstream_idle_secs = self.upstream_idle_secs;
        flags.store_set_cookie = self.store_set_cookie;
        flags.targeted_fields = (!self.targeted_fields.is_empty()).then_some(self.targeted_fields);
        flags.tag_headers = (!self.tag_headers.is_empty()).then_some(self.tag_headers);
        flags.workers = self.workers;
        flags.redis_url = self.redis_url;
        flags.redis_cluster = (!self.redis_cluster.is_empty()).then_some(self.redis_cluster);
        flags.redis_prefix = self.redis_prefix;
        flags.redis_timeout_ms = self.redis_timeout_ms;
        flags.redis_ca = self.redis_ca;
        flags.redis_cert = self.redis_cert;
        flags.redis_key = self.redis_key;
        flags.forwarded_headers = self.forwarded_headers;
        flags.trusted_proxies = (!self.trusted_proxies.is_empty()).then_some(self.trusted_proxies);
        flags.pass_headers = (!self.pass_headers.is_empty()).then_some(self.pass_headers);
        flags.drop_headers = (!self.drop_headers.is_empty()).then_some(self.drop_headers);
        flags.heuristics = self.heuristics;
        flags.admin_listen = self.admin_listen;
        flags.key_headers = (!self.key_headers.is_empty()).then_some(self.key_headers);
        flags.key_cookies = (!self.key_cookies.is_empty()).then_some(self.key_cookies);
        flags.key_drop_query = (!self.key_drop_query.is_empty()).then_some(self.key_drop_query);
        flags.key_sort_query = self.key_sort_query;
        flags.debug_key = self.debug_key;
        Ok((flags, self.config))
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
    match run(Args::parse()) {
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

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let (flags, file) = args.into_config()?;
    let config = match file {
        Some(path) => Config::load(path)?.merge(flags),
        None => flags,
    };
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
        upstream = config.upstream.as_deref().unwrap_or_default(),
        workers,
        "cachio-gateway listening"
    );
    cachio_gateway::serve_threaded(listeners, gateway.into_router(), workers, stopped(first_rx))?;
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
