//! The `cachio` binary on a directory filled by `cachio::embedded` and `CacheLayer` in front of
//! a real origin on 127.0.0.1, checked by what it prints.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cachio::CacheLayer;
use cachio_core::store::Store;
use http::{Request, Response};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpListener;
use tower::{Service, ServiceBuilder, ServiceExt};

/// The bytes of `/image`: 6 MiB, more than the disk store keeps in memory before it writes
/// bodies to their files, so its first chunks are in a body file when the fill is done; with a
/// run of a marker there that the damage test finds.
fn image() -> Vec<u8> {
    let mut body: Vec<u8> = (0..6u32 << 20).map(|i| (i % 253) as u8).collect();
    body[100_000..100_064].copy_from_slice(&[b'M'; 64]);
    body
}

async fn origin(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let b = Response::builder();
    let two_hours_ago = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(7200));
    let res = match req.uri().path() {
        "/fresh" => b
            .header("cache-control", "max-age=3600")
            .header("surrogate-key", "news front")
            .body(Full::from("fresh for an hour")),
        "/old" => b
            .header("cache-control", "max-age=60")
            .header("date", two_hours_ago)
            .header("etag", "\"v1\"")
            .body(Full::from("stale for a while")),
        "/greeting" => {
            let hello = match req.headers().get("accept-language").map(|v| v.as_bytes()) {
                Some(b"fr") => "bonjour",
                _ => "hello",
            };
            b.header("cache-control", "max-age=3600")
                .header("vary", "accept-language")
                .header("surrogate-key", "greetings")
                .body(Full::from(hello))
        }
        "/docs/a" | "/docs/b" => b
            .header("cache-control", "max-age=3600")
            .header("cache-tag", "docs,manual")
            .body(Full::from(format!("page {}", req.uri().path()))),
        "/image" => b
            .header("cache-control", "max-age=3600")
            .header("content-type", "image/png")
            .body(Full::from(image())),
        _ => b.status(404).body(Full::default()),
    };
    Ok(res.unwrap())
}

async fn start_origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(origin);
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// Fills `dir` through the quickstart's stack: `cachio::embedded` under `CacheLayer`, a
/// hyper client, a real origin. Gives the origin's base URL. Everything is dropped (and the
/// directory unlocked) when this returns.
fn fill(dir: &Path) -> String {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let base = runtime.block_on(async {
        let addr = start_origin().await;
        let base = format!("http://{addr}");
        let store = cachio::embedded(dir).unwrap();
        let client =
            Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(HttpConnector::new());
        let mut client = ServiceBuilder::new()
            .layer(CacheLayer::private(store.clone()))
            .service(client);
        for (path, lang) in [
            ("/fresh", None),
            ("/old", None),
            ("/greeting", Some("en")),
            ("/greeting", Some("fr")),
            ("/docs/a", None),
            ("/docs/b", None),
            ("/image", None),
        ] {
            let mut req = Request::get(format!("{base}{path}"));
            if let Some(lang) = lang {
                req = req.header("accept-language", lang);
            }
            let res = client
                .ready()
                .await
                .unwrap()
                .call(req.body(Empty::new()).unwrap())
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{path}");
            res.into_body().collect().await.unwrap();
        }
        // 7 responses and the greeting's variant index, on disk.
        for _ in 0..500 {
            if store.second().scan().await.unwrap().len() == 8 {
                return base;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the layer did not store every response");
    });
    drop(runtime);
    // Released by every process the other tests started meanwhile.
    drop(open_when_free(dir));
    base
}

/// Opens `dir` with `cachio::embedded`, waiting while its lock is held. The tests run in
/// parallel and spawn processes: a child forked while this process had the lock file open
/// holds the lock until it executes the binary, a moment after.
fn open_when_free(dir: &Path) -> cachio::EmbeddedStore {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match cachio::embedded(dir) {
            Ok(store) => return store,
            Err(e)
                if e.kind() == cachio_core::ErrorKind::Unavailable
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::yield_now();
            }
            Err(e) => panic!("{e}"),
        }
    }
}

fn cachio(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cachio"))
        .args(args)
        .output()
        .unwrap()
}

fn ok(args: &[&str]) -> String {
    let out = cachio(args);
    assert!(
        out.status.success(),
        "cachio {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn json(args: &[&str]) -> Value {
    serde_json::from_str(&ok(args)).unwrap()
}

fn filled() -> (tempfile::TempDir, PathBuf, String) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cache");
    let base = fill(&dir);
    (tmp, dir, base)
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn ls_prints_a_table_and_json() {
    let (_tmp, dir, base) = filled();
    let table = ok(&["ls", s(&dir)]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("STATUS  SIZE"), "{table}");
    assert_eq!(lines.last().unwrap(), &"7 responses");
    let line_of = |path: &str| -> &str {
        lines
            .iter()
            .find(|l| l.contains(&format!("{base}{path}")))
            .unwrap_or_else(|| panic!("{path} in {table}"))
    };
    assert!(line_of("/fresh").contains("fresh for 59m"), "{table}");
    assert!(line_of("/old").contains("stale since 1h5"), "{table}");
    assert!(line_of("/image").contains("6.0 MiB"), "{table}");
    assert!(table.contains(&format!("{base}/greeting [accept-language: fr]")));

    let rows = json(&["ls", s(&dir), "--json"]);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 7);
    let row = |path: &str| {
        rows.iter()
            .find(|r| r["url"] == format!("{base}{path}"))
            .unwrap()
    };
    let fresh = row("/fresh");
    assert_eq!(fresh["status"], 200);
    assert_eq!(fresh["body_bytes"], "fresh for an hour".len());
    assert_eq!(fresh["fresh"], true);
    assert_eq!(fresh["variants"], 1);
    let ttl = fresh["fresh_for_secs"].as_u64().unwrap();
    assert!((3500..=3600).contains(&ttl), "{ttl}");
    let old = row("/old");
    assert_eq!(old["fresh"], false);
    assert!(old["stale_since_secs"].as_u64().unwrap() >= 7200 - 60 - 5);
    let greetings: Vec<&Value> = rows
        .iter()
        .filter(|r| r["url"] == format!("{base}/greeting"))
        .collect();
    assert_eq!(greetings.len(), 2);
    assert!(greetings.iter().all(|g| g["variants"] == 2));
    assert_eq!(greetings[0]["vary"]["accept-language"], "en");
    assert_eq!(greetings[1]["vary"]["accept-language"], "fr");
    assert_eq!(row("/image")["body_bytes"], image().len());

    let docs = json(&[
        "ls",
        s(&dir),
        "--json",
        "--prefix",
        &format!("{base}/docs/"),
    ]);
    assert_eq!(docs.as_array().unwrap().len(), 2);

    // Listing changed nothing: the same again.
    assert_eq!(
        json(&["ls", s(&dir), "--json"]).as_array().unwrap().len(),
        7
    );
}

#[test]
fn show_stats_and_bodies() {
    let (_tmp, dir, base) = filled();
    let shown = ok(&["show", s(&dir), &format!("{base}/fresh")]);
    assert!(shown.contains("HTTP/1.1 200"), "{shown}");
    assert!(shown.contains("surrogate-key: news front"), "{shown}");
    assert!(shown.contains("body:         17 bytes"), "{shown}");

    let greeting = json(&["show", s(&dir), &format!("{base}/greeting"), "--json"]);
    assert_eq!(greeting.as_array().unwrap().len(), 2);

    let out = cachio(&["show", s(&dir), &format!("{base}/image"), "--body"]);
    assert!(out.status.success());
    assert_eq!(out.stdout, image());

    // Two variants: --body needs one, and says which there are.
    let out = cachio(&["show", s(&dir), &format!("{base}/greeting"), "--body"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("2 stored variants") && err.contains("accept-language: fr"),
        "{err}"
    );
    let url = format!("{base}/greeting");
    let out = cachio(&[
        "show",
        s(&dir),
        &url,
        "--body",
        "--vary",
        "Accept-Language=fr",
    ]);
    assert_eq!(out.stdout, b"bonjour");
    let out = cachio(&["show", s(&dir), &url, "--vary", "accept-language=de"]);
    assert_eq!(out.status.code(), Some(1));

    let out = cachio(&["show", s(&dir), &format!("{base}/nothing")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no stored response"));

    let stats = json(&["stats", s(&dir), "--json"]);
    assert_eq!(stats["responses"], 7);
    assert_eq!(stats["resources"], 6);
    assert_eq!(stats["variant_indexes"], 1);
    assert_eq!(stats["fresh"], 6);
    assert_eq!(stats["stale"], 1);
    assert_eq!(stats["statuses"]["200"], 7);
    let bodies = 17 + 17 + 5 + 7 + 12 + 12 + image().len();
    assert_eq!(stats["body_bytes"], bodies);
    let text = ok(&["stats", s(&dir)]);
    assert!(text.contains("responses:       7"), "{text}");
}

#[test]
fn purge_by_url_prefix_and_tag() {
    let (_tmp, dir, base) = filled();
    let urls = |dir: &Path| -> Vec<String> {
        json(&["ls", s(dir), "--json"])
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r["url"]
                    .as_str()
                    .unwrap()
                    .trim_start_matches(&base)
                    .to_owned()
            })
            .collect()
    };
    // Both variants and the index.
    assert_eq!(
        ok(&["purge", s(&dir), &format!("{base}/greeting")]),
        "purged 3 entries\n"
    );
    assert_eq!(
        urls(&dir),
        ["/docs/a", "/docs/b", "/fresh", "/image", "/old"]
    );
    assert_eq!(
        json(&["purge", s(&dir), "--tag", "news", "--json"]),
        serde_json::json!({"purged": 1})
    );
    assert_eq!(urls(&dir), ["/docs/a", "/docs/b", "/image", "/old"]);
    // A tag in a comma-separated Cache-Tag, and a tag nothing has.
    assert_eq!(
        ok(&["purge", s(&dir), "--tag", "nothing"]),
        "purged 0 entries\n"
    );
    assert_eq!(
        ok(&["purge", s(&dir), "--prefix", &format!("{base}/docs/")]),
        "purged 2 entries\n"
    );
    assert_eq!(urls(&dir), ["/image", "/old"]);

    // By a tag in a comma-separated `Cache-Tag`, on a fresh fill; and the variants of a
    // tagged resource that varies, with their index.
    let (_tmp2, dir2, _) = filled();
    assert_eq!(
        ok(&["purge", s(&dir2), "--tag", "manual"]),
        "purged 2 entries\n"
    );
    assert_eq!(
        ok(&["purge", s(&dir2), "--tag", "greetings"]),
        "purged 3 entries\n"
    );
    let left = json(&["stats", s(&dir2), "--json"]);
    assert_eq!(left["responses"], 3);
    assert_eq!(left["variant_indexes"], 0);

    let out = cachio(&["purge", s(&dir)]);
    assert_eq!(out.status.code(), Some(2), "a target is required");
}

/// Flips one byte of the first file under `dir` holding `needle`, a journal file of the
/// database or one of its other files; gives that file.
fn flip_byte_of(dir: &Path, needle: &[u8], journal: bool) -> Option<PathBuf> {
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let mut bytes = std::fs::read(&path).unwrap();
            if let Some(at) = bytes.windows(needle.len()).position(|w| w == needle) {
                if path.extension().is_some_and(|e| e == "jnl") != journal {
                    continue;
                }
                bytes[at + needle.len() / 2] ^= 0x01;
                std::fs::write(&path, bytes).unwrap();
                return Some(path);
            }
        }
    }
    None
}

#[test]
fn verify_is_clean_then_finds_a_flipped_byte() {
    let (_tmp, dir, _base) = filled();
    let clean = ok(&["verify", s(&dir)]);
    assert!(clean.ends_with(": 0 bad\n"), "{clean}");
    assert!(clean.starts_with("8 entries"), "{clean}");
    let report = json(&["verify", s(&dir), "--json"]);
    assert_eq!(report["bad_entries"], 0);
    assert_eq!(
        report["body_bytes"].as_u64().unwrap() as usize,
        17 + 17 + 5 + 7 + 12 + 12 + image().len()
    );

    // The image's first chunks are in a body file by now (the fill wrote more than the store
    // keeps in memory); the journal still holds them too, but a store that opens reads the
    // body files.
    let file =
        flip_byte_of(&dir, &[b'M'; 64], false).expect("the image's bytes are in a body file");
    let out = cachio(&["verify", s(&dir)]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout} {stderr}");
    assert!(
        stdout.contains("/image") && stdout.to_lowercase().contains("checksum"),
        "{stdout} {stderr} ({})",
        file.display()
    );
    assert!(stdout.ends_with(": 1 bad\n"), "{stdout}");
    let report = json_any(&["verify", s(&dir), "--json"]);
    assert!(report["bad_entries"].as_u64().unwrap() >= 1, "{report}");
    // Nothing was removed: the damaged entry is still listed.
    assert_eq!(
        json(&["ls", s(&dir), "--json"]).as_array().unwrap().len(),
        7
    );

    // A damaged journal is found by the database itself when it opens: an error, status 1,
    // and the directory is left where it is.
    flip_byte_of(&dir, &[b'M'; 64], true).expect("the journal holds the image too");
    let out = cachio(&["verify", s(&dir)]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot open the store") && err.contains("corrupt"),
        "{err}"
    );
    assert!(dir.join("db").is_dir());
}

/// JSON on standard output whatever the exit status.
fn json_any(args: &[&str]) -> Value {
    serde_json::from_slice(&cachio(args).stdout).unwrap()
}

#[test]
fn export_then_import_then_ls() {
    let (tmp, dir, base) = filled();
    let har = tmp.path().join("cache.har");
    let out = ok(&["export", s(&dir), s(&har)]);
    assert!(out.starts_with("exported 7 responses"), "{out}");
    let copy = tmp.path().join("copy");
    let out = ok(&["import", s(&har), s(&copy)]);
    assert_eq!(out, "imported 7 of 7 entries (6.0 MiB)\n");
    let before = json(&["ls", s(&dir), "--json"]);
    let after = json(&["ls", s(&copy), "--json"]);
    let summary = |rows: &Value| -> Vec<(String, Value, Value, Value)> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["url"].as_str().unwrap().to_owned(),
                    r["body_bytes"].clone(),
                    r["stored_at"].clone(),
                    r["vary"].clone(),
                )
            })
            .collect()
    };
    assert_eq!(summary(&before), summary(&after));
    let out = cachio(&["show", s(&copy), &format!("{base}/image"), "--body"]);
    assert_eq!(out.stdout, image());
    // The copy exports to the same HAR.
    let again = tmp.path().join("again.har");
    ok(&["export", s(&copy), s(&again)]);
    assert_eq!(std::fs::read(&har).unwrap(), std::fs::read(&again).unwrap());

    let warc = tmp.path().join("cache.warc.gz");
    let out = json(&["export", s(&dir), s(&warc), "--json"]);
    assert_eq!(out["entries"], 7);
    assert_eq!(&std::fs::read(&warc).unwrap()[..2], b"\x1f\x8b");

    let out = cachio(&["export", s(&dir), s(&tmp.path().join("cache.zip"))]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(".har"));

    // A browser's recording, into a new directory.
    let browser = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../cachio-archive/tests/data/browser.har"
    );
    let shop = tmp.path().join("shop");
    let imported = json(&["import", browser, s(&shop), "--json"]);
    assert_eq!(imported["imported"], 4);
    assert_eq!(imported["skipped"].as_array().unwrap().len(), 3);
    let rows = json(&["ls", s(&shop), "--json"]);
    let urls: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["url"].as_str().unwrap())
        .collect();
    assert_eq!(
        urls,
        [
            "https://shop.example/",
            "https://shop.example/api/cart?currency=EUR",
            "https://shop.example/old-page",
            "https://shop.example/static/logo.png"
        ]
    );

    // A bad HAR leaves the directory as it was.
    let bad = tmp.path().join("bad.har");
    std::fs::write(
        &bad,
        r#"{"log": {"entries": [{"request": {"url": "https://x/"}}]}}"#,
    )
    .unwrap();
    let out = cachio(&["import", s(&bad), s(&shop)]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("log.entries[0] (https://x/)"), "{err}");
    let keys = |rows: &Value| -> Vec<String> {
        rows.as_array()
            .unwrap()
            .iter()
            .map(|r| r["key"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(keys(&json(&["ls", s(&shop), "--json"])), keys(&rows));
    // Into a new directory: none is left behind.
    let new = tmp.path().join("new");
    assert_eq!(cachio(&["import", s(&bad), s(&new)]).status.code(), Some(1));
    assert!(!new.exists());
}

#[test]
fn a_directory_in_use_or_of_another_kind_is_a_clear_error() {
    let (tmp, dir, _base) = filled();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let held = runtime.block_on(async { open_when_free(&dir) });
    for args in [
        vec!["ls", s(&dir)],
        vec!["verify", s(&dir)],
        vec!["purge", s(&dir), "--tag", "docs"],
    ] {
        let out = cachio(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("in use by a running program"),
            "{args:?}: {err}"
        );
    }
    drop(held);
    drop(runtime);
    assert!(cachio(&["ls", s(&dir)]).status.success());

    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    std::fs::write(other.join("file.txt"), "x").unwrap();
    let out = cachio(&["ls", s(&other)]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a cachio cache directory"));
    let out = cachio(&["ls", s(&tmp.path().join("missing"))]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such directory"));
}

#[test]
fn help_names_every_command() {
    let help = ok(&["--help"]);
    for command in ["ls", "show", "stats", "purge", "verify", "export", "import"] {
        assert!(help.contains(&format!("  {command} ")), "{command}: {help}");
    }
    let help = ok(&["purge", "--help"]);
    assert!(help.contains("--tag-header"), "{help}");
}

/// Records the origin's responses into a cassette at `dir` through the cassette's own layer.
fn record_cassette(dir: &Path) -> String {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let addr = start_origin().await;
        let base = format!("http://{addr}");
        let cassette = cachio_cassette::Cassette::open(dir, cachio_cassette::Mode::Record).unwrap();
        let client =
            Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(HttpConnector::new());
        let mut client = ServiceBuilder::new()
            .layer(cassette.layer())
            .service(client);
        for path in ["/fresh", "/old", "/docs/a", "/image"] {
            let res = client
                .ready()
                .await
                .unwrap()
                .call(
                    Request::get(format!("{base}{path}"))
                        .body(Empty::new())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{path}");
            res.into_body().collect().await.unwrap();
        }
        for _ in 0..500 {
            if cassette.scan().await.unwrap().len() == 4 {
                return base;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("the cassette did not record every response");
    })
}

#[test]
fn a_cassette_is_listed_verified_and_exported() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cassette");
    let base = record_cassette(&dir);

    let rows = json(&["ls", s(&dir), "--json"]);
    let mut urls: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["url"].as_str().unwrap())
        .collect();
    urls.sort_unstable();
    let expected: Vec<String> = ["/docs/a", "/fresh", "/image", "/old"]
        .iter()
        .map(|p| format!("{base}{p}"))
        .collect();
    assert_eq!(urls, expected);
    let stats = json(&["stats", s(&dir), "--json"]);
    assert_eq!(stats["kind"], "cassette (recorded exchanges)");
    assert_eq!(stats["responses"], 4);

    let out = ok(&["verify", s(&dir)]);
    assert!(out.ends_with(": 0 bad\n"), "{out}");
    let har = tmp.path().join("cassette.har");
    let out = ok(&["export", s(&dir), s(&har)]);
    assert!(out.starts_with("exported 4 responses"), "{out}");

    // A body file cut short: the one entry is bad, and the exit status says so.
    let body = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| std::fs::metadata(p).unwrap().len() == image().len() as u64)
        .expect("the image's body file");
    let file = std::fs::OpenOptions::new().write(true).open(&body).unwrap();
    file.set_len(1000).unwrap();
    let out = cachio(&["verify", s(&dir)]);
    assert_eq!(out.status.code(), Some(1));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.ends_with(": 1 bad\n"), "{printed}");

    // An export does not carry the damage on: it stops and names the entry.
    let out = cachio(&["export", s(&dir), s(&har)]);
    assert!(!out.status.success());
    let printed = String::from_utf8_lossy(&out.stderr);
    assert!(
        printed.contains("/image") && printed.contains("damaged"),
        "{printed}"
    );
}
