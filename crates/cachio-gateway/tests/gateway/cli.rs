//! The `cachio-gateway` binary: its help, a TOML file under command-line flags, SIGTERM, an
//! HTTPS listener whose certificate SIGHUP reloads, and the hygiene settings with a separate
//! admin listener.

use crate::certs::{Ca, fetch_new_connection};
use crate::support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use support::{Origin, client, get, ok};

const BIN: &str = env!("CARGO_BIN_EXE_cachio-gateway");

#[test]
fn help_explains_every_option() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--upstream",
        "--listen",
        "--mode",
        "--memory-mb",
        "--disk-dir",
        "--disk-mb",
        "--max-object-mb",
        "--cache-name",
        "--purge-token",
        "--config",
        "--grace-secs",
        "--default-ttl-secs",
        "--rewrite-host",
        "--upstream-timeout-secs",
        "--tag-header",
        "--workers",
        "--listen-tls",
        "--tls-cert",
        "--tls-key",
        "--upstream-ca",
        "--upstream-cert",
        "--upstream-key",
        "--forwarded-headers",
        "--trusted-proxy",
        "--pass-header",
        "--drop-header",
        "--heuristics",
        "--admin-listen",
        "--key-header",
        "--key-cookie",
        "--key-drop-query",
        "--key-sort-query",
        "--debug-key",
    ] {
        assert!(help.contains(flag), "{flag} missing from --help:\n{help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_under_flags_and_a_graceful_sigterm() {
    let origin = Origin::start(|_req| async { ok("max-age=60", "from the origin") }).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "upstream = \"{}\"\nlisten = \"127.0.0.1:0\"\ncache-name = \"from-file\"\nmemory-mb = 16\nworkers = 1\n",
            origin.url()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["--cache-name", "from-flag"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the gateway logs its address").unwrap();
        if let Some(rest) = line.split("listen=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());

    let got = get(&client(), &format!("http://{addr}/cli")).await;
    assert_eq!(got.body, "from the origin");
    assert_eq!(
        got.cache_status(),
        "from-flag; fwd=uri-miss; fwd-status=200; stored"
    );
    assert_eq!(got.headers["via"], "1.1 from-flag");

    stop_gracefully(&mut child);
    let log = log.join().unwrap().join("\n");
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(
        log.contains("cachio_gateway::access") && log.contains("status=200"),
        "one access line per request:\n{log}"
    );
}

/// Sends SIGTERM and waits (up to 10 s) for a clean exit.
pub(crate) fn stop_gracefully(child: &mut std::process::Child) {
    signal(child, "-TERM");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "still running after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}

fn signal(child: &std::process::Child, sig: &str) {
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args([sig, &pid])
            .status()
            .unwrap()
            .success()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_only_with_the_certificate_reloaded_on_sighup() {
    let origin = Origin::start(|_req| async { ok("no-store", "from the origin") }).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("listener CA");
    let (old, new) = (ca.leaf(), ca.leaf());
    let (cert, key) = old.write(dir.path(), "server");
    let mut child = Command::new(BIN)
        .args(["--upstream", &origin.url(), "--listen-tls", "127.0.0.1:0"])
        .arg("--tls-cert")
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .args(["--workers", "1"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let wait_for = |what: &str| loop {
        let line = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("the gateway logs {what}"));
        if line.contains(what) {
            break line;
        }
    };
    let line = wait_for("listen_tls=");
    assert!(line.contains("listen=none"), "no plain listener: {line}");
    let addr: std::net::SocketAddr = line
        .split("listen_tls=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();

    let got = fetch_new_connection(addr, &ca, "/tls").await.unwrap();
    assert_eq!(got.body, "from the origin");
    assert_eq!(got.cert, old.der());

    new.write(dir.path(), "server");
    signal(&child, "-HUP");
    wait_for("TLS certificate reloaded");
    let got = fetch_new_connection(addr, &ca, "/tls").await.unwrap();
    assert_eq!(
        got.cert,
        new.der(),
        "new connections get the new certificate"
    );

    std::fs::write(&key, "not a key").unwrap();
    signal(&child, "-HUP");
    let line = wait_for("not reloaded");
    assert!(
        line.contains("server.key"),
        "the log says which file: {line}"
    );
    let got = fetch_new_connection(addr, &ca, "/tls").await.unwrap();
    assert_eq!(
        got.cert,
        new.der(),
        "the previous certificate is still served"
    );
    assert_eq!(got.body, "from the origin");

    stop_gracefully(&mut child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hygiene_settings_from_a_file_and_the_admin_listener() {
    let origin = Origin::start(|_req| async { ok("max-age=60", "from the origin") }).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "upstream = \"{}\"\nlisten = \"127.0.0.1:0\"\nworkers = 1\n\
             forwarded-headers = \"x-forwarded\"\ntrusted-proxies = [\"10.0.0.0/8\"]\n\
             drop-headers = [\"x-my-override\"]\nheuristics = false\n",
            origin.url()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["--admin-listen", "127.0.0.1:0", "--heuristics", "on"])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut admin, mut main) = (None, None);
    while admin.is_none() || main.is_none() {
        let line = lines
            .next()
            .expect("the gateway logs its addresses")
            .unwrap();
        let field = |name: &str| {
            line.split(name)
                .nth(1)
                .map(|rest| rest.split_whitespace().next().unwrap().to_owned())
        };
        admin = admin.or(field(" admin="));
        main = main.or(field(" listen="));
    }
    let (admin, main) = (admin.unwrap(), main.unwrap());
    std::thread::spawn(move || lines.for_each(drop));

    let c = client();
    let got = support::send(
        &c,
        "GET",
        &format!("http://{main}/p"),
        &[("x-forwarded-for", "6.6.6.6"), ("x-my-override", "1")],
    )
    .await;
    assert_eq!(got.body, "from the origin");
    let seen = origin.state.last();
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert!(!seen.headers.contains_key("forwarded"), "x-forwarded only");
    assert!(!seen.headers.contains_key("x-my-override"));
    assert_eq!(
        get(&c, &format!("http://{main}/_cachio/metrics"))
            .await
            .status,
        404
    );
    let metrics = get(&c, &format!("http://{admin}/_cachio/metrics")).await;
    assert_eq!(metrics.status, 200);
    assert!(
        std::str::from_utf8(&metrics.body)
            .unwrap()
            .contains("cachio_misses_total{cache=\"cachio\"} 1")
    );

    stop_gracefully(&mut child);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_file_with_two_sites_and_debug_key() {
    let a = Origin::start(|_req| async { ok("max-age=60", "site a") }).await;
    let b = Origin::start(|_req| async { ok("max-age=60", "site b") }).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("gateway.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\nworkers = 1\n\
             [[site]]\nname = \"a\"\nhost = [\"a.test\"]\nupstream = \"{}\"\n\
             key-drop-query = [\"utm_*\"]\n\
             [[site]]\nname = \"b\"\nhost = [\"b.test\"]\nupstream = \"{}\"\n",
            a.url(),
            b.url()
        ),
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .arg("--debug-key")
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the gateway logs its address").unwrap();
        if let Some(rest) = line.split("listen=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || lines.map_while(Result::ok).count());
    let c = client();
    let url = format!("http://{addr}/p?utm_source=x");
    let got = support::send(&c, "GET", &url, &[("host", "a.test")]).await;
    assert_eq!(got.body, "site a");
    assert_eq!(
        got.cache_status(),
        "a; fwd=uri-miss; fwd-status=200; stored; key=\"[a]http://a.test/p\""
    );
    let got = support::send(&c, "GET", &url, &[("host", "b.test")]).await;
    assert_eq!(got.body, "site b");
    assert!(
        got.cache_status()
            .ends_with("key=\"[b]http://b.test/p?utm_source=x\""),
        "{}",
        got.cache_status()
    );
    let got = support::send(&c, "GET", &url, &[("host", "c.test")]).await;
    assert_eq!(got.status, 421);
    let _ = child.kill();
    let _ = child.wait();
}
