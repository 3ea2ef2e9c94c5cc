//! A clean shutdown loses no committed write: every response that said `stored` before SIGTERM
//! is a hit from the disk tier after a restart, also when the client had its last byte before
//! the cache committed the entry.

use crate::cli::stop_gracefully;
use crate::support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use support::{Origin, client, ok, send};

const BIN: &str = env!("CARGO_BIN_EXE_cachio-gateway");

/// The same `Host` on both runs: the key is the URL the client asked for, not the port.
const HOST: [(&str, &str); 1] = [("host", "drain.example.test")];

/// Starts the binary on `dir`; returns it and the address it listens on.
fn start(origin: &str, dir: &Path) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(["--upstream", origin, "--listen", "127.0.0.1:0"])
        .args(["--memory-mb", "16", "--disk-mb", "64", "--workers", "2"])
        .arg("--disk-dir")
        .arg(dir)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr = listening_on(&mut child);
    (child, addr)
}

/// The address a gateway started with its stderr piped says it listens on; its log is read on
/// (and dropped) from then on, so it never blocks on a full pipe.
pub(crate) fn listening_on(child: &mut Child) -> String {
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("the gateway logs its address").unwrap();
        if let Some(rest) = line.split("listen=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || lines.map_while(Result::ok).for_each(drop));
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_stored_response_survives_a_sigterm_right_after_it() {
    // Bodies of a few sizes, with `Content-Length`: the client has every byte as soon as they
    // are sent, which may be before the cache has seen the end of the body and committed.
    let origin = Origin::start(|req| async move {
        let n: usize = req
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        ok("max-age=600", vec![b'x'; n])
    })
    .await;
    let sizes = [1usize << 10, 64 << 10, 300 << 10, 3 << 20];
    let c = client();
    let rounds = 12;
    let mut lost = Vec::new();
    for round in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let (mut gw, addr) = start(&origin.url(), dir.path());
        let mut stored = Vec::new();
        for (i, n) in sizes.iter().enumerate() {
            let path = format!("/r{round}/{i}/{n}");
            let got = send(&c, "GET", &format!("http://{addr}{path}"), &HOST).await;
            assert_eq!(got.body.len(), *n);
            if got.cache_status().ends_with("stored") {
                stored.push(path);
            }
        }
        assert_eq!(stored.len(), sizes.len(), "every response is stored");
        stop_gracefully(&mut gw);

        let (mut gw, addr) = start(&origin.url(), dir.path());
        for path in &stored {
            let got = send(&c, "GET", &format!("http://{addr}{path}"), &HOST).await;
            if !got.cache_status().contains("; hit") {
                lost.push(format!("round {round}: {path}: {}", got.cache_status()));
            }
        }
        stop_gracefully(&mut gw);
    }
    assert!(
        lost.is_empty(),
        "stored before SIGTERM, missing after restart:\n{}",
        lost.join("\n")
    );
}
