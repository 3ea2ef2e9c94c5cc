//! HAR export and import: a round trip, a browser's recording, and bad input.

use std::convert::Infallible;
use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cachio_archive::har::{ImportOptions, export_har, import_har};
use cachio_archive::{ArchiveError, EntryRef};
use cachio_core::clock::ManualClock;
use cachio_core::store::Store;
use cachio_fjall::FjallStore;
use cachio_moka::MokaStore;
use cachio_tower::CacheLayer;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt, service_fn};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A binary body that is not UTF-8.
fn image() -> Vec<u8> {
    (0..3000u32).map(|i| (i * 7 % 256) as u8).collect()
}

/// An origin with a few kinds of response, as a site serves them.
async fn origin(req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let b = Response::builder().header("cache-control", "max-age=3600");
    let res = match req.uri().path() {
        "/page" => b
            .header("content-type", "text/html; charset=utf-8")
            .header("set-cookie", "a=1; Path=/")
            .header("set-cookie", "b=2; HttpOnly")
            .header("x-quote", "say \"hi\"")
            .body(Full::new(Bytes::from("<p>héllo \"world\"\n\t</p>"))),
        "/image" => b
            .header("content-type", "image/png")
            .body(Full::new(Bytes::from(image()))),
        "/zipped" => b
            .header("content-type", "text/plain")
            .header("content-encoding", "gzip")
            .body(Full::new(Bytes::from(gzip(b"compressed text")))),
        "/untyped" => b.body(Full::new(Bytes::from_static(b"plain words\n"))),
        "/moved" => b
            .status(StatusCode::MOVED_PERMANENTLY)
            .header("location", "/page")
            .body(Full::new(Bytes::new())),
        "/lang" => {
            let lang = req
                .headers()
                .get("accept-language")
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            b.header("vary", "Accept-Language")
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from(format!("in {lang}"))))
        }
        _ => b.status(404).body(Full::new(Bytes::new())),
    };
    Ok(res.unwrap())
}

/// Fills `store` through the layer.
async fn fill<S: Store>(store: &S) {
    let client = CacheLayer::private(store.clone()).layer(service_fn(origin));
    for (path, lang) in [
        ("/page", None),
        ("/image", None),
        ("/zipped", None),
        ("/moved", None),
        ("/untyped", None),
        ("/lang?x=1&y", Some("en")),
        ("/lang?x=1&y", Some("de")),
    ] {
        let mut req = Request::get(format!("https://site.example{path}"));
        if let Some(lang) = lang {
            req = req.header("accept-language", lang);
        }
        let res = client
            .clone()
            .oneshot(req.body(Full::default()).unwrap())
            .await
            .unwrap();
        res.into_body().collect().await.unwrap();
    }
    // The layer commits as the body ends; wait until every entry is there.
    for _ in 0..200 {
        if store.scan().await.unwrap().len() == 8 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the layer did not store every response");
}

async fn har_of<S: Store>(store: &S) -> Vec<u8> {
    let mut out = Vec::new();
    export_har(store, &mut out, |_, _| {}).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn export_import_export_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let first_store = FjallStore::open(dir.path().join("a")).unwrap();
    fill(&first_store).await;
    let first = har_of(&first_store).await;

    let json: serde_json::Value = serde_json::from_slice(&first).unwrap();
    let entries = json["log"]["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 7, "{json:#}");
    let by_url = |url: &str| -> Vec<&serde_json::Value> {
        entries
            .iter()
            .filter(|e| e["request"]["url"] == url)
            .collect()
    };
    let page = by_url("https://site.example/page")[0];
    assert_eq!(
        page["response"]["content"]["text"],
        "<p>héllo \"world\"\n\t</p>"
    );
    assert!(page["response"]["content"].get("encoding").is_none());
    let cookies: Vec<_> = page["response"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["name"] == "set-cookie")
        .map(|h| h["value"].as_str().unwrap())
        .collect();
    assert_eq!(cookies, ["a=1; Path=/", "b=2; HttpOnly"]);
    let image = by_url("https://site.example/image")[0];
    assert_eq!(image["response"]["content"]["encoding"], "base64");
    assert_eq!(image["response"]["content"]["size"], 3000);
    let zipped = by_url("https://site.example/zipped")[0];
    assert_eq!(zipped["response"]["content"]["_encodedBody"], true);
    assert_eq!(zipped["response"]["content"]["encoding"], "base64");
    // No type, but UTF-8 text: text.
    let untyped = &by_url("https://site.example/untyped")[0]["response"]["content"];
    assert_eq!(untyped["text"], "plain words\n");
    assert!(untyped.get("encoding").is_none());
    let moved = by_url("https://site.example/moved")[0];
    assert_eq!(moved["response"]["status"], 301);
    assert_eq!(moved["response"]["redirectURL"], "/page");
    let lang = by_url("https://site.example/lang?x=1&y");
    assert_eq!(lang.len(), 2);
    let langs: Vec<_> = lang
        .iter()
        .map(|e| {
            (
                e["request"]["headers"][0]["value"].as_str().unwrap(),
                e["response"]["content"]["text"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(langs, [("de", "in de"), ("en", "in en")]);
    assert_eq!(
        lang[0]["request"]["queryString"],
        serde_json::json!([{"name": "x", "value": "1"}, {"name": "y", "value": ""}])
    );

    let path = dir.path().join("first.har");
    std::fs::write(&path, &first).unwrap();
    let second_store = FjallStore::open(dir.path().join("b")).unwrap();
    let summary = import_har(&path, &second_store, &ImportOptions::new(), |_, _| {})
        .await
        .unwrap();
    assert_eq!(summary.imported, 7, "{:?}", summary.skipped);
    assert!(summary.skipped.is_empty());
    let second = har_of(&second_store).await;
    assert_eq!(
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&second)
    );
    assert_eq!(first, second);
}

const BROWSER_HAR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/browser.har");

fn at(rfc3339: &str) -> SystemTime {
    let t = time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap();
    UNIX_EPOCH + Duration::from_secs(t.unix_timestamp() as u64)
}

#[tokio::test]
async fn a_browser_recording_imports_and_is_served_by_the_layer() {
    let store = MokaStore::new(16 << 20);
    let path = std::path::Path::new(BROWSER_HAR);
    let summary = import_har(path, &store, &ImportOptions::new(), |_, _| {})
        .await
        .unwrap();
    assert_eq!((summary.entries, summary.imported), (7, 4));
    let skipped: Vec<(usize, &str)> = summary
        .skipped
        .iter()
        .map(|s| (s.at.index, s.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 3, "{skipped:?}");
    assert!(skipped[0].0 == 4 && skipped[0].1.contains("method POST"));
    assert!(skipped[1].0 == 5 && skipped[1].1.contains("status 0"));
    assert!(skipped[2].0 == 6 && skipped[2].1.contains("no-store"));

    // Served by the layer, at a time the recording is fresh, with no origin to ask.
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let unreachable = service_fn(move |_req: Request<Full<Bytes>>| {
        counter.fetch_add(1, Ordering::Relaxed);
        async {
            Ok::<_, Infallible>(
                Response::builder()
                    .status(502)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            )
        }
    });
    let clock = ManualClock::new(at("2026-11-30T09:15:30Z"));
    let client = CacheLayer::private(store.clone())
        .clock(clock)
        .layer(unreachable);
    let get = |url: &str, headers: &[(&str, &str)]| {
        let mut b = Request::get(url);
        for (n, v) in headers {
            b = b.header(*n, *v);
        }
        client.clone().oneshot(b.body(Full::default()).unwrap())
    };
    let chrome = [
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("accept-language", "en-GB,en;q=0.9"),
    ];

    let res = get("https://shop.example/", &chrome).await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["cache-status"]
            .to_str()
            .unwrap()
            .contains("hit"),
        "{:?}",
        res.headers()
    );
    // Saved decoded: stored without the coding it no longer has, with its decoded length.
    assert!(res.headers().get("content-encoding").is_none());
    let cookies: Vec<_> = res.headers().get_all("set-cookie").iter().collect();
    assert_eq!(cookies.len(), 2);
    let length: usize = res.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), length);
    let text = std::str::from_utf8(&body).unwrap();
    assert!(text.contains("Prices in € and “quotes” survive."), "{text}");

    let res = get("https://shop.example/old-page", &chrome).await.unwrap();
    assert_eq!(res.status(), 301);
    assert_eq!(res.headers()["location"], "/new-page");

    let res = get("https://shop.example/static/logo.png", &[])
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "image/png");
    let png = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    assert_eq!(png.len(), 70);

    let res = get("https://shop.example/api/cart?currency=EUR", &chrome)
        .await
        .unwrap();
    assert!(res.headers().get("content-encoding").is_none());
    let cart = res.into_body().collect().await.unwrap().to_bytes();
    let cart: serde_json::Value = serde_json::from_slice(&cart).unwrap();
    assert_eq!(cart["total"], "42.50");
    assert_eq!(
        calls.load(Ordering::Relaxed),
        0,
        "everything came from the store"
    );

    // The variant was recorded for the browser's request values: another language is a miss.
    let res = get(
        "https://shop.example/api/cart?currency=EUR",
        &[
            ("accept-encoding", "gzip, deflate, br, zstd"),
            ("accept-language", "de"),
        ],
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

/// A HAR of `entries` (JSON texts) in a file.
fn har_file(dir: &tempfile::TempDir, name: &str, entries: &[&str]) -> std::path::PathBuf {
    let path = dir.path().join(name);
    let text = format!(
        r#"{{"log": {{"version": "1.2", "entries": [{}]}}}}"#,
        entries.join(",")
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn good(url: &str, body: &str) -> String {
    format!(
        r#"{{"startedDateTime": "2026-01-01T00:00:00Z", "time": 5,
            "request": {{"method": "GET", "url": "{url}", "headers": []}},
            "response": {{"status": 200, "httpVersion": "HTTP/1.1",
                "headers": [{{"name": "cache-control", "value": "max-age=60"}}],
                "content": {{"size": {}, "mimeType": "text/plain", "text": "{body}"}}}}}}"#,
        body.len()
    )
}

/// What an import's error must satisfy.
type Expect = Box<dyn Fn(&ArchiveError) -> bool>;

#[tokio::test]
async fn bad_input_is_an_error_naming_the_entry_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = MokaStore::new(1 << 20);
    // What the store held before stays as it was.
    let before = dir.path().join("before.har");
    std::fs::write(
        &before,
        format!(
            r#"{{"log": {{"entries": [{}]}}}}"#,
            good("https://x.example/kept", "kept")
        ),
    )
    .unwrap();
    import_har(&before, &store, &ImportOptions::new(), |_, _| {})
        .await
        .unwrap();
    store.run_pending_tasks().await;
    let keys = || async {
        store.run_pending_tasks().await;
        let mut k: Vec<String> = store
            .scan()
            .await
            .unwrap()
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        k.sort();
        k
    };
    assert_eq!(keys().await, ["https://x.example/kept"]);

    let first = good("https://x.example/first", "one");
    let cases: Vec<(&str, String, Expect)> = vec![
        (
            "no-response",
            r#"{"startedDateTime": "2026-01-01T00:00:00Z", "request": {"method": "GET", "url": "https://x.example/lost"}}"#.into(),
            Box::new(|e| {
                matches!(e, ArchiveError::BadEntry { at, problem }
                    if *at == EntryRef::new(1, "https://x.example/lost") && problem.contains("no response"))
            }),
        ),
        (
            "size",
            good("https://x.example/short", "abc").replace("\"size\": 3", "\"size\": 4"),
            Box::new(|e| {
                matches!(e, ArchiveError::BadEntry { at, problem }
                    if *at == EntryRef::new(1, "https://x.example/short") && problem.contains("content.size says 4"))
            }),
        ),
        (
            "base64",
            good("https://x.example/b64", "ab!").replace("\"text\":", "\"encoding\": \"base64\", \"text\":"),
            Box::new(|e| {
                matches!(e, ArchiveError::BadEntry { at, problem }
                    if at.index == 1 && problem.contains("base64"))
            }),
        ),
        (
            "too-large",
            good("https://x.example/big", &"z".repeat(100)),
            Box::new(|e| {
                matches!(e, ArchiveError::TooLarge { at, limit: 64 }
                    if *at == EntryRef::new(1, "https://x.example/big"))
            }),
        ),
        (
            "json",
            r#"{"startedDateTime": "2026-01-01T00:00:00Z", "request": {"url": "https://x.example/cut""#.into(),
            Box::new(|e| {
                matches!(e, ArchiveError::Json { at: Some(at), .. } if at.index == 1)
            }),
        ),
    ];
    for (name, bad, expected) in cases {
        let path = har_file(&dir, name, &[&first, &bad]);
        let options = ImportOptions::new().max_body_bytes(64);
        let err = import_har(&path, &store, &options, |_, _| {})
            .await
            .expect_err(name);
        assert!(expected(&err), "{name}: {err:?}");
        let message = err.to_string();
        assert!(message.contains("log.entries[1]"), "{name}: {message}");
        assert_eq!(
            keys().await,
            ["https://x.example/kept"],
            "{name}: nothing written"
        );
    }

    // An entry whose JSON alone is far past the limit is refused as it is read, before it is
    // all in memory.
    let huge = good("https://x.example/huge", &"h".repeat(17 << 20));
    let path = har_file(&dir, "huge", &[&first, &huge]);
    let options = ImportOptions::new().max_body_bytes(64);
    let err = import_har(&path, &store, &options, |_, _| {})
        .await
        .unwrap_err();
    assert!(
        matches!(&err, ArchiveError::TooLarge { at, .. } if at.index == 1),
        "{err:?}"
    );
    assert_eq!(keys().await, ["https://x.example/kept"]);

    // Not a HAR at all.
    let path = dir.path().join("not.har");
    std::fs::write(&path, r#"{"log": {"version": "1.2"}}"#).unwrap();
    let err = import_har(&path, &store, &ImportOptions::new(), |_, _| {})
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no log.entries"), "{err}");
}
