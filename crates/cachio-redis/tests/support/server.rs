//! Redis servers for tests: `redis-server` processes on free loopback ports, without persistence,
//! killed when dropped (and by a small watchdog when the test process dies first), and a
//! three-master Redis Cluster made with `redis-cli --cluster create`.
//!
//! TLS servers use certificates of a throwaway certificate authority ([`Pki`]) made at test time
//! with the `openssl` command-line tool.
//!
//! A missing `redis-server`, `redis-cli` or `openssl` is a test failure that says to run
//! `scripts/setup`, never a silent skip.
//!
//! Shared by the tests of cachio-redis and cachio-gateway (included with `#[path]`).

#![allow(dead_code, reason = "each test file uses a part of the helpers")]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const SETUP: &str = "run scripts/setup (it installs redis-server, redis-tools and openssl)";

/// One `redis-server` on 127.0.0.1.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
    dir: tempfile::TempDir,
    extra: Vec<String>,
    /// For a TLS server: the `redis-server` arguments that set up TLS and the `redis-cli`
    /// arguments to reach it.
    tls: Option<(Vec<String>, Vec<String>)>,
}

/// A throwaway certificate authority, and a server and a client certificate it signed (P-256
/// keys, valid for two days, the server's for `localhost` and `127.0.0.1`), made with `openssl`
/// in a temporary directory: `ca.pem`, `server.pem`, `server.key`, `client.pem`, `client.key`.
pub struct Pki {
    dir: tempfile::TempDir,
}

const PKI_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = cachio-test
[ext_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[ext_server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ext_client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run openssl ({e}): {SETUP}"));
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let d = dir.path();
        std::fs::write(d.join("pki.cnf"), PKI_CONFIG).expect("write pki.cnf");
        let key = |name: &str| {
            openssl(
                d,
                &[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-out",
                    name,
                ],
            );
        };
        key("ca.key");
        openssl(
            d,
            &[
                "req",
                "-new",
                "-x509",
                "-key",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=cachio-test-ca",
                "-config",
                "pki.cnf",
                "-extensions",
                "ext_ca",
            ],
        );
        for (name, cn, serial) in [
            ("server", "localhost", "2"),
            ("client", "cachio-client", "3"),
        ] {
            let (k, csr, pem) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.pem"),
            );
            key(&k);
            openssl(
                d,
                &[
                    "req",
                    "-new",
                    "-key",
                    &k,
                    "-out",
                    &csr,
                    "-subj",
                    &format!("/CN={cn}"),
                    "-config",
                    "pki.cnf",
                ],
            );
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-set_serial",
                    serial,
                    "-days",
                    "2",
                    "-out",
                    &pem,
                    "-extfile",
                    "pki.cnf",
                    "-extensions",
                    &format!("ext_{name}"),
                ],
            );
        }
        Pki { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn read(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
    }

    /// The `redis-server` arguments of a TLS-only server with this CA's server certificate
    /// (`--port 0`: no plaintext port); `auth_clients` asks every client for a certificate.
    fn server_args(&self, auth_clients: bool) -> Vec<String> {
        let p = |n: &str| self.path(n).display().to_string();
        vec![
            "--tls-cert-file".into(),
            p("server.pem"),
            "--tls-key-file".into(),
            p("server.key"),
            "--tls-ca-cert-file".into(),
            p("ca.pem"),
            "--tls-auth-clients".into(),
            if auth_clients { "yes" } else { "no" }.into(),
        ]
    }

    /// The `redis-cli` arguments to reach such a server.
    fn cli_args(&self) -> Vec<String> {
        let p = |n: &str| self.path(n).display().to_string();
        vec![
            "--tls".into(),
            "--cacert".into(),
            p("ca.pem"),
            "--cert".into(),
            p("client.pem"),
            "--key".into(),
            p("client.key"),
        ]
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Runs `redis-cli -p PORT ARGS...` and returns its output (empty when it fails).
pub fn cli(port: u16, args: &[&str]) -> String {
    cli_with(&[], port, args)
}

/// Runs `redis-cli CONNECTION_ARGS... -p PORT ARGS...` and returns its output (empty when it
/// fails).
fn cli_with(connection: &[String], port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(connection)
        .arg("-p")
        .arg(port.to_string())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}): {SETUP}"));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

impl RedisServer {
    /// A server on a free port.
    pub fn start() -> RedisServer {
        Self::start_with(&[])
    }

    /// A server on a free port with extra `redis-server` arguments.
    pub fn start_with(extra: &[&str]) -> RedisServer {
        Self::start_inner(extra, None)
    }

    /// A TLS-only server on a free port with `pki`'s server certificate; `auth_clients` makes it
    /// refuse clients without a certificate of `pki` (mutual TLS).
    pub fn start_tls(pki: &Pki, auth_clients: bool, extra: &[&str]) -> RedisServer {
        Self::start_inner(extra, Some((pki.server_args(auth_clients), pki.cli_args())))
    }

    fn start_inner(extra: &[&str], tls: Option<(Vec<String>, Vec<String>)>) -> RedisServer {
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        for _ in 0..5 {
            let mut server = RedisServer {
                port: free_port(),
                child: None,
                dir: tempfile::tempdir().expect("a temporary directory"),
                extra: extra.clone(),
                tls: tls.clone(),
            };
            if server.spawn() {
                return server;
            }
        }
        panic!("redis-server did not start on a free port five times in a row");
    }

    /// `redis://127.0.0.1:PORT/`, or `rediss://...` for a TLS server.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    pub fn dir(&self) -> PathBuf {
        self.dir.path().to_owned()
    }

    /// Starts the process on `self.port`; `false` when it did not come up.
    fn spawn(&mut self) -> bool {
        let port = self.port.to_string();
        let mut ports: Vec<&str> = match &self.tls {
            None => vec!["--port", &port],
            Some(_) => vec!["--port", "0", "--tls-port", &port],
        };
        // A cluster node's bus port would be its port + 10 000: past 65 535 for a high ephemeral
        // port, or taken by another process. It gets a free port of its own.
        let bus = free_port().to_string();
        if self.extra.iter().any(|a| a == "--cluster-enabled") {
            ports.extend(["--cluster-port", &bus]);
        }
        let child = Command::new("redis-server")
            .args(ports)
            .args(self.tls.iter().flat_map(|(server, _)| server))
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--protected-mode", "no"])
            .args(["--loglevel", "warning"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => panic!("cannot start redis-server ({e}): {SETUP}"),
        };
        watchdog(child.id());
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return false;
            }
            if self.cli(&["PING"]) == "PONG" {
                self.child = Some(child);
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// Kills the server at once (`SIGKILL`): connections are cut, nothing is saved.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port, empty.
    ///
    /// # Panics
    ///
    /// When it does not come up (the port was taken meanwhile).
    pub fn restart(&mut self) {
        self.kill();
        for _ in 0..50 {
            if self.spawn() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start again on port {}", self.port);
    }

    /// Stops the process (`SIGSTOP`): it keeps its connections but answers nothing.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused process go on (`SIGCONT`).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("the server runs").id();
        let ok = Command::new("kill")
            .arg(sig)
            .arg(pid.to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill {sig} {pid} failed");
    }

    pub fn cli(&self, args: &[&str]) -> String {
        let connection = self.tls.as_ref().map_or(&[][..], |(_, cli)| cli.as_slice());
        cli_with(connection, self.port, args)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            // A paused server ignores SIGTERM but not SIGKILL.
            self.kill();
        }
    }
}

/// Kills `pid` once this test process has gone, so that servers held in statics (never dropped)
/// do not outlive the tests.
fn watchdog(pid: u32) {
    let me = std::process::id();
    let _ = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "while kill -0 {me} 2>/dev/null && kill -0 {pid} 2>/dev/null; do sleep 0.5; done; kill -9 {pid} 2>/dev/null"
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// One server shared by every test of a test binary (each test uses its own key prefix).
pub fn shared() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(RedisServer::start)
}

/// A Redis Cluster of three masters without replicas.
pub struct RedisCluster {
    pub nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start() -> RedisCluster {
        Self::start_inner(None)
    }

    /// A cluster whose nodes speak only TLS, to clients and to each other, with `pki`'s
    /// certificates (clients need no certificate).
    pub fn start_tls(pki: &Pki) -> RedisCluster {
        Self::start_inner(Some(pki))
    }

    fn start_inner(pki: Option<&Pki>) -> RedisCluster {
        const CLUSTER: [&str; 6] = [
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            "2000",
        ];
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| match pki {
                None => RedisServer::start_with(&CLUSTER),
                Some(pki) => {
                    let mut args = CLUSTER.to_vec();
                    args.extend(["--tls-cluster", "yes", "--tls-replication", "yes"]);
                    RedisServer::start_tls(pki, false, &args)
                }
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .args(pki.map(Pki::cli_args).unwrap_or_default())
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run redis-cli ({e}): {SETUP}"));
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = nodes.iter().all(|n| {
                let info = n.cli(&["CLUSTER", "INFO"]);
                info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384")
            });
            if ok {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not reach cluster_state:ok"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        RedisCluster { nodes }
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }
}

/// One cluster shared by every test of a test binary.
pub fn shared_cluster() -> &'static RedisCluster {
    static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
    CLUSTER.get_or_init(RedisCluster::start)
}

/// A key prefix no other test uses.
pub fn unique_prefix(name: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "t-{name}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}
