//! A disk that fills up: writes fail with a clear error, nothing panics, nothing partial becomes
//! visible, reads go on serving every committed entry (and the cache layer its memory tier's
//! hits), and once there is room again the store takes writes without a restart, with every
//! entry committed before the disk filled still there, intact.
//!
//! The store lives on a small tmpfs, mounted in a mount namespace of its own (`unshare`, no
//! privilege needed where user namespaces are enabled). Inside it, this test binary runs twice:
//! `write` fills the disk, checks reads, makes the tmpfs larger and checks that writes work
//! again, noting each commit that returned `Ok` in a log outside the tmpfs; `verify` then
//! reopens the directory and checks every noted entry.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cachio_core::store::{Store, StoreWriter};
use cachio_core::tiered::Tiered;
use cachio_fjall::{Durability, FjallStore};
use cachio_moka::MokaStore;
use cachio_tower::{CACHE_STATUS, Cache, CacheLayer};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tower::{Layer, ServiceExt};

use crate::common::{body, get, header, put};

const DIR_VAR: &str = "CACHIO_FJALL_FULL_DISK_DIR";
const LOG_VAR: &str = "CACHIO_FJALL_FULL_DISK_LOG";
/// The size of the tmpfs while the disk fills.
const FULL_MIB: u64 = 24;
/// Bodies of 64 KiB: a few hundred fit, so the store takes many entries before the first
/// failure and many writes after it.
const BODY: usize = 64 << 10;
const ENTRIES: u64 = 600;

fn key(i: u64) -> String {
    format!("https://example.com/full/{i}")
}

fn vars() -> Option<(PathBuf, PathBuf)> {
    Some((
        std::env::var_os(DIR_VAR)?.into(),
        std::env::var_os(LOG_VAR)?.into(),
    ))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// An origin on 127.0.0.1 answering `GET /x` with `page /x`, cacheable for an hour; it counts
/// the requests it answers.
async fn origin() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&seen);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let count = Arc::clone(&count);
            let svc = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                count.fetch_add(1, Ordering::SeqCst);
                let page = format!("page {}", req.uri().path());
                async move {
                    Ok::<_, Infallible>(
                        Response::builder()
                            .header("cache-control", "max-age=3600")
                            .body(Full::new(Bytes::from(page)))
                            .unwrap(),
                    )
                }
            });
            tokio::spawn(
                hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc),
            );
        }
    });
    (base, seen)
}

type Tiers = Tiered<MokaStore, FjallStore>;
type Svc = Cache<Client<HttpConnector, Full<Bytes>>, Tiers>;

/// The cache layer over a memory tier in front of `store`, over a client of [`origin`].
fn cache(store: &FjallStore) -> Svc {
    let tiers = Tiered::new(MokaStore::new(16 << 20), store.clone());
    let client = Client::builder(TokioExecutor::new()).build_http();
    CacheLayer::shared(tiers).layer(client)
}

/// Fetches `path` through the cache: the status, the cache status and the body.
async fn fetch(svc: &Svc, base: &str, path: &str) -> (u16, String, String) {
    let req = Request::get(format!("{base}{path}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = svc.clone().oneshot(req).await.unwrap();
    let status = res.status().as_u16();
    let cache = res
        .headers()
        .get(CACHE_STATUS)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, cache, String::from_utf8(body.to_vec()).unwrap())
}

/// Whether a `Cache-Status` value says the cache answered (`cachio; hit; ttl=...`).
fn is_hit(cache_status: &str) -> bool {
    cache_status.split(';').any(|p| p.trim() == "hit")
}

/// Checks that every entry in `committed` reads back whole.
async fn check_committed(store: &FjallStore, committed: &[u64], when: &str) {
    for &i in committed {
        let (meta, read) = get(store, &key(i))
            .await
            .unwrap_or_else(|e| panic!("{when}: entry {i} unreadable: {e}"))
            .unwrap_or_else(|| panic!("{when}: committed entry {i} lost"));
        assert_eq!(header(&meta, "x-tag"), Some(i.to_string().as_str()));
        assert_eq!(
            read.unwrap(),
            body(i, BODY),
            "{when}: entry {i} read back wrong"
        );
    }
}

/// Makes the tmpfs at `dir` larger.
fn make_room(dir: &Path) {
    let status = Command::new("mount")
        .args(["-o", "remount,size=512m", "cachio-full"])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success(), "cannot remount the tmpfs");
}

/// The first phase, run by the test below: writes until well past the point the disk is full,
/// checks that reads still serve, makes room and checks that writes work again.
#[test]
fn write() {
    // Run on its own (not by the test below) it has nothing to do.
    let Some((dir, log)) = vars() else { return };
    runtime().block_on(async move {
        let store = FjallStore::builder(&dir)
            .durability(Durability::Flush)
            .open()
            .unwrap();
        let (base, origin_hits) = origin().await;
        let svc = cache(&store);
        assert_eq!(fetch(&svc, &base, "/hot").await.0, 200);
        let (status, cache, page) = fetch(&svc, &base, "/hot").await;
        assert_eq!((status, page.as_str()), (200, "page /hot"));
        assert!(is_hit(&cache), "a stored page was not a hit: {cache}");

        let committed = fill(&store).await;
        assert!(store.write_failures() > 0, "no write failure was noted");
        assert!(
            store.is_read_only(),
            "the store takes writes on a full disk"
        );
        // Reads serve what is committed, and a write fails at once, with an error.
        check_committed(&store, &committed, "on a full disk").await;
        let started = Instant::now();
        assert!(
            put(&store, &key(ENTRIES), "late", b"late", 4, None)
                .await
                .is_err()
        );
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "a refused write took {:?}",
            started.elapsed()
        );
        // Through the cache: the memory tier still answers its hits, and a new page is fetched.
        let before = origin_hits.load(Ordering::SeqCst);
        let (status, cache, page) = fetch(&svc, &base, "/hot").await;
        assert_eq!((status, page.as_str()), (200, "page /hot"));
        assert!(is_hit(&cache), "the memory tier did not answer: {cache}");
        assert_eq!(origin_hits.load(Ordering::SeqCst), before);
        let (status, _, page) = fetch(&svc, &base, "/new").await;
        assert_eq!((status, page.as_str()), (200, "page /new"));
        assert_eq!(origin_hits.load(Ordering::SeqCst), before + 1);
        println!("read-only checked");

        make_room(&dir);
        let started = Instant::now();
        while store.is_read_only() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the store never took writes again"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!(
            "writable again after {:?}, {} reopens",
            started.elapsed(),
            store.reopens()
        );
        assert!(store.reopens() >= 1);
        check_committed(&store, &committed, "after the reopen").await;
        let b = body(ENTRIES, BODY);
        put(
            &store,
            &key(ENTRIES),
            &ENTRIES.to_string(),
            &b,
            16 << 10,
            None,
        )
        .await
        .unwrap();
        let (_, read) = get(&store, &key(ENTRIES)).await.unwrap().unwrap();
        assert_eq!(read.unwrap(), b);
        // The cache stores pages again.
        assert_eq!(fetch(&svc, &base, "/after").await.0, 200);
        let (_, cache, page) = fetch(&svc, &base, "/after").await;
        assert_eq!(page, "page /after");
        assert!(
            is_hit(&cache),
            "a page stored after the reopen was not a hit: {cache}"
        );

        let mut log_text: String = committed.iter().map(|i| format!("{i}\n")).collect();
        log_text.push_str(&format!("{ENTRIES}\n"));
        std::fs::write(&log, log_text).unwrap();
        drop(svc);
        drop(store);
        println!("write done");
    });
}

/// Writes [`ENTRIES`] bodies, past the point the disk is full: the entries whose commit
/// returned `Ok`.
async fn fill(store: &FjallStore) -> Vec<u64> {
    let mut committed = Vec::new();
    let mut failures = 0;
    for i in 0..ENTRIES {
        let b = body(i, BODY);
        match put(store, &key(i), &i.to_string(), &b, 16 << 10, None).await {
            Ok(()) => committed.push(i),
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    println!("first error at entry {i}: {e}");
                }
            }
        }
        // Reads go on working or fail cleanly; they never give wrong bytes.
        if let Ok(Some((meta, Ok(read)))) = get(store, &key(i)).await {
            assert_eq!(header(&meta, "x-tag"), Some(i.to_string().as_str()));
            assert_eq!(read, b, "entry {i} read back with wrong bytes");
        }
    }
    // A writer that is dropped, not committed, leaves nothing.
    if let Ok(mut w) = store.begin("https://example.com/full/abandoned") {
        let _ = w.append(body(9999, BODY).into());
    }
    println!("failures {failures}");
    committed
}

/// The second phase: reopens the store with room to spare and checks it.
#[test]
fn verify() {
    let Some((dir, log)) = vars() else { return };
    let committed: Vec<u64> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    runtime().block_on(async move {
        let store = FjallStore::open(&dir).unwrap();
        for i in 0..ENTRIES {
            let got = get(&store, &key(i)).await.unwrap();
            if committed.contains(&i) {
                let (meta, read) = got.unwrap_or_else(|| panic!("committed entry {i} lost"));
                assert_eq!(header(&meta, "x-tag"), Some(i.to_string().as_str()));
                assert_eq!(read.unwrap(), body(i, BODY), "entry {i} corrupted");
            } else if let Some((meta, read)) = got {
                // A commit that reported an error may still have landed; if so, it is whole.
                assert_eq!(header(&meta, "x-tag"), Some(i.to_string().as_str()));
                assert_eq!(read.unwrap(), body(i, BODY), "entry {i} partial");
            }
        }
        let abandoned = get(&store, "https://example.com/full/abandoned").await;
        assert!(abandoned.unwrap().is_none());
        // The store takes writes after a restart too.
        put(&store, &key(0), "again", b"room again", 4, None)
            .await
            .unwrap();
        let (_, read) = get(&store, &key(0)).await.unwrap().unwrap();
        assert_eq!(read.unwrap(), b"room again");
        println!("verified {}", committed.len());
    });
}

#[test]
fn a_full_disk_fails_writes_cleanly_serves_reads_and_recovers_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let script = format!(
        "set -e
        mount -t tmpfs -o size={FULL_MIB}m cachio-full \"$1\"
        \"$0\" --exact full_disk::write --nocapture --test-threads=1
        \"$0\" --exact full_disk::verify --nocapture --test-threads=1"
    );
    let out = Command::new("unshare")
        .args(["--map-root-user", "--mount", "bash", "-c", &script])
        .arg(&exe)
        .arg(dir.path())
        .env(DIR_VAR, dir.path())
        .env(LOG_VAR, logs.path().join("committed"))
        .output()
        .expect("unshare (util-linux) runs the store on a tmpfs of its own");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let show = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(out.status.success(), "a phase failed\n{show}");
    assert!(stdout.contains("read-only checked"), "{show}");
    assert!(stdout.contains("writable again"), "{show}");
    assert!(stdout.contains("write done"), "{show}");
    let failures: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("failures "))
        .unwrap_or_else(|| panic!("the write phase did not finish\n{show}"))
        .parse()
        .unwrap();
    let verified: usize = stdout
        .lines()
        .find_map(|l| Some(l.split_once("verified ")?.1))
        .unwrap_or_else(|| panic!("the verify phase did not finish\n{show}"))
        .parse()
        .unwrap();
    for line in stdout
        .lines()
        .filter(|l| l.starts_with("first error") || l.starts_with("writable"))
    {
        eprintln!("{line}");
    }
    // The disk did fill (else this test shows nothing), and not before many commits.
    assert!(
        failures > 0,
        "no write failed: the tmpfs never filled\n{show}"
    );
    assert!(
        verified > 50,
        "too few commits before the disk filled\n{show}"
    );
}
