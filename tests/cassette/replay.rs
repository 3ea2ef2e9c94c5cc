//! Recording against a real origin on 127.0.0.1, then replaying with the origin stopped, through
//! the layer, `cachio::Client` and the reqwest middleware.

use crate::support;

use std::path::{Path, PathBuf};

use crate::support::{Origin, Seen, snapshot};
use cachio_cassette::{Cassette, Mode, Unmatched};
use cachio_core::store::Store;

/// The exchanges every test records: a path and the request's fields.
const EXCHANGES: &[(&str, &[(&str, &str)])] = &[
    ("/text", &[]),
    ("/json", &[]),
    ("/binary", &[]),
    ("/no-store", &[]),
    ("/not-found", &[]),
    ("/vary", &[("accept-language", "en")]),
    ("/vary", &[("accept-language", "fr")]),
];

/// One of the three ways in.
#[derive(Clone, Copy, Debug)]
enum Via {
    Layer,
    Client,
    Reqwest,
}

enum Frontend {
    Layer(Cassette),
    Client(cachio::Client),
    Reqwest(reqwest_middleware::ClientWithMiddleware),
}

impl Frontend {
    fn new(via: Via, cassette: &Cassette) -> Self {
        match via {
            Via::Layer => Frontend::Layer(cassette.clone()),
            Via::Client => Frontend::Client(support::client(cassette, cassette.dir())),
            Via::Reqwest => Frontend::Reqwest(support::reqwest(cassette)),
        }
    }

    async fn get(&self, url: &str, headers: &[(&str, &str)]) -> Seen {
        match self {
            Frontend::Layer(c) => support::via_layer(c, url, headers).await,
            Frontend::Client(c) => support::via_client(c, url, headers).await,
            Frontend::Reqwest(c) => support::via_reqwest(c, url, headers).await,
        }
    }
}

/// The entry file of `url` (not a variant's).
fn entry_file(dir: &Path, url: &str) -> PathBuf {
    let needle = format!("\"url\": \"{url}\"");
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "json")
                && std::fs::read_to_string(p)
                    .is_ok_and(|t| t.contains(&needle) && !t.contains("\"variant\""))
        })
        .unwrap_or_else(|| panic!("no entry file for {url}"))
}

/// The body file an entry file names.
fn body_file(json: &Path) -> PathBuf {
    let text = std::fs::read_to_string(json).unwrap();
    let name = text
        .split("\"file\": \"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap_or_else(|| panic!("no body file in {text}"));
    json.with_file_name(name)
}

async fn record_then_replay(via: Via) {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let recording = Cassette::open(dir.path(), Mode::Record).unwrap();
    let front = Frontend::new(via, &recording);
    let mut recorded = Vec::new();
    for (path, headers) in EXCHANGES {
        recorded.push(front.get(&origin.url(path), headers).await);
    }
    assert_eq!(
        origin.hits(),
        EXCHANGES.len(),
        "{via:?}: each exchange went to the origin"
    );
    assert_eq!(recorded[0].text(), "hello, recorded world\n");
    assert_eq!(recorded[5].text(), "language: en\n");
    // Used again in the run: replayed from what was just recorded.
    for ((path, headers), first) in EXCHANGES.iter().zip(&recorded) {
        let again = front.get(&origin.url(path), headers).await;
        assert_eq!(
            (again.status, &again.lines, &again.body),
            (first.status, &first.lines, &first.body),
            "{via:?} {path}"
        );
    }
    assert_eq!(
        origin.hits(),
        EXCHANGES.len(),
        "{via:?}: the second uses were replayed"
    );
    let text_url = origin.url("/text");
    let base = origin.url("");
    origin.stop().await;
    drop(front);

    let on_disk = snapshot(dir.path());
    let replaying = Cassette::open(dir.path(), Mode::Replay).unwrap();
    let front = Frontend::new(via, &replaying);
    for ((path, headers), first) in EXCHANGES.iter().zip(&recorded) {
        let seen = front.get(&format!("{base}{path}"), headers).await;
        assert_eq!(seen.status, first.status, "{via:?} {path}: status");
        assert_eq!(
            seen.lines, first.lines,
            "{via:?} {path}: every header line, in order"
        );
        assert_eq!(seen.body, first.body, "{via:?} {path}: body");
    }
    let text = front.get(&text_url, &[]).await;
    let cookies: Vec<_> = text.headers.get_all("set-cookie").iter().collect();
    assert_eq!(cookies, ["theme=dark; Path=/", "lang=en; Path=/"]);
    assert_eq!(
        snapshot(dir.path()),
        on_disk,
        "{via:?}: replaying changed nothing on disk"
    );

    // A request without a recording: a 504 naming it, with the closest recorded URLs.
    let missing = format!("{base}/texts");
    let miss = front.get(&missing, &[]).await;
    assert_eq!(miss.status, 504, "{via:?}");
    let unmatched = Unmatched::from_headers(&miss.headers).expect("an unmatched answer");
    assert_eq!(unmatched.method, http::Method::GET);
    assert_eq!(unmatched.url, missing);
    assert_eq!(
        unmatched.closest.first(),
        Some(&text_url),
        "{:?}",
        unmatched.closest
    );
    assert!(unmatched.closest.len() > 1);
    let body = miss.text();
    assert!(
        body.contains(&format!("no recording for GET {missing}")),
        "{body}"
    );
    assert!(body.contains(&text_url), "{body}");
    // A language nobody recorded: no network either.
    let vary_miss = front
        .get(&format!("{base}/vary"), &[("accept-language", "de")])
        .await;
    assert_eq!(vary_miss.status, 504, "{via:?}");
    assert_eq!(
        snapshot(dir.path()),
        on_disk,
        "{via:?}: misses changed nothing on disk"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_layer_a_recording_replays_byte_identical_without_the_origin() {
    record_then_replay(Via::Layer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_client_a_recording_replays_byte_identical_without_the_origin() {
    record_then_replay(Via::Client).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_reqwest_a_recording_replays_byte_identical_without_the_origin() {
    record_then_replay(Via::Reqwest).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_files_are_readable_json_and_raw_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let cassette = Cassette::open(dir.path(), Mode::Record).unwrap();
    for (path, headers) in EXCHANGES {
        support::via_layer(&cassette, &origin.url(path), headers).await;
    }
    let url = origin.url("/text");
    let json = entry_file(dir.path(), &url);
    let name = json.file_name().unwrap().to_string_lossy().into_owned();
    assert!(
        name.starts_with(&format!("127.0.0.1_{}--text-", origin.addr.port())),
        "{name}"
    );
    let text = std::fs::read_to_string(&json).unwrap();
    let expected_start = format!(
        "{{\n  \"request\": {{\n    \"method\": \"GET\",\n    \"url\": \"{url}\"\n  }},\n  \"response\": {{\n    \"status\": 200,\n    \"version\": \"HTTP/1.1\",\n    \"headers\": [\n      \"date: {}\",\n",
        support::DATE
    );
    assert!(text.starts_with(&expected_start), "{text}");
    assert!(text.ends_with("}\n"), "a final newline");
    let first = text.find("set-cookie: theme=dark").unwrap();
    let second = text.find("set-cookie: lang=en").unwrap();
    assert!(
        first < second,
        "multi-valued fields stay separate lines, in order"
    );
    assert!(
        !text.contains("times_us"),
        "a response with a Date records no time of its own"
    );
    assert_eq!(
        std::fs::read(body_file(&json)).unwrap(),
        b"hello, recorded world\n"
    );
    let binary = entry_file(dir.path(), &origin.url("/binary"));
    assert_eq!(
        std::fs::read(body_file(&binary)).unwrap(),
        b"\x00\x01\xfe\xff binary \r\n"
    );

    // The resource that varies: its list of variants, and one file per variant with the
    // request field that selects it.
    let index = std::fs::read_to_string(entry_file(dir.path(), &origin.url("/vary"))).unwrap();
    assert!(index.contains("\"accept-language\""), "{index}");
    assert!(!index.contains("\"response\""), "{index}");
    let variants: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .filter(|t| t.contains("\"variant\""))
        .collect();
    assert_eq!(variants.len(), 2);
    assert!(
        variants
            .iter()
            .any(|t| t.contains("\"accept-language: en\""))
    );
    assert!(
        variants
            .iter()
            .any(|t| t.contains("\"accept-language: fr\""))
    );
    // Nothing half-written is left behind.
    assert!(snapshot(dir.path()).keys().all(|n| !n.starts_with('.')));
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redaction_keeps_secrets_off_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let cassette = Cassette::builder(dir.path())
        .mode(Mode::Record)
        .remove(http::header::SET_COOKIE)
        .mask("x-api-key")
        .redact_with(|rec| {
            rec.response.insert(
                "x-visible",
                http::HeaderValue::from_static("changed by a hook"),
            );
        })
        .open()
        .unwrap();
    let live = support::via_layer(
        &cassette,
        &origin.url("/secret"),
        &[
            ("authorization", "Bearer secret-token"),
            ("cookie", "sid=secret-cookie"),
        ],
    )
    .await;
    // The caller of the live exchange gets the response as the origin sent it.
    assert_eq!(
        live.headers["set-cookie"],
        "session=secret-set-cookie; HttpOnly"
    );
    assert_eq!(live.headers["x-api-key"], "secret-api-key");
    let files = snapshot(dir.path());
    assert_eq!(files.len(), 2, "an entry and its body: {:?}", files.keys());
    for (name, bytes) in &files {
        for secret in [
            "secret-token",
            "secret-cookie",
            "secret-set-cookie",
            "secret-api-key",
        ] {
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(
                !found,
                "{name} holds {secret}: {}",
                String::from_utf8_lossy(bytes)
            );
        }
    }
    let all: String = files
        .values()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .collect();
    for line in ["x-api-key: REDACTED", "x-visible: changed by a hook"] {
        assert!(all.contains(line), "{line} in {all}");
    }
    assert!(!all.contains("set-cookie"), "{all}");
    assert!(
        !all.contains("authorization"),
        "request fields no Vary selects are not recorded"
    );

    // A response that varies on a credential: its name would derive from the secret, and it
    // could never be replayed. The caller gets it; nothing is written.
    let live = support::via_layer(
        &cassette,
        &origin.url("/per-user"),
        &[("authorization", "Bearer secret-token")],
    )
    .await;
    assert_eq!(live.text(), "for one user\n");
    assert_eq!(snapshot(dir.path()), files, "nothing more on disk");
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recording_the_same_responses_again_leaves_the_files_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let port = origin.addr.port();
    let cassette = Cassette::open(dir.path(), Mode::Record).unwrap();
    for (path, headers) in EXCHANGES {
        support::via_layer(&cassette, &origin.url(path), headers).await;
    }
    let first = snapshot(dir.path());
    assert_eq!(first.len(), 15, "{:?}", first.keys());
    origin.stop().await;

    // Again, on the same address, with a cassette of the next run.
    let origin = Origin::on(port).await;
    let cassette = Cassette::open(dir.path(), Mode::Record).unwrap();
    for (path, headers) in EXCHANGES {
        support::via_layer(&cassette, &origin.url(path), headers).await;
    }
    assert_eq!(
        origin.hits(),
        EXCHANGES.len(),
        "Record went to the origin again"
    );
    let again = snapshot(dir.path());
    assert_eq!(
        again.keys().collect::<Vec<_>>(),
        first.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &first {
        assert_eq!(
            String::from_utf8_lossy(&again[name]),
            String::from_utf8_lossy(bytes),
            "{name} changed"
        );
    }

    // RecordNew: what is there is replayed; what is not is recorded.
    let cassette = Cassette::open(dir.path(), Mode::RecordNew).unwrap();
    for (path, headers) in EXCHANGES {
        support::via_layer(&cassette, &origin.url(path), headers).await;
    }
    assert_eq!(origin.hits(), EXCHANGES.len(), "nothing new to record");
    support::via_layer(
        &cassette,
        &origin.url("/vary"),
        &[("accept-language", "de")],
    )
    .await;
    assert_eq!(
        origin.hits(),
        EXCHANGES.len() + 1,
        "a new variant was recorded"
    );
    assert_eq!(snapshot(dir.path()).len(), first.len() + 2);
    origin.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_file_is_a_miss_never_a_wrong_body() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let cassette = Cassette::open(dir.path(), Mode::Record).unwrap();
    for path in ["/text", "/json", "/binary"] {
        support::via_layer(&cassette, &origin.url(path), &[]).await;
    }
    let urls = ["/text", "/json", "/binary"].map(|p| origin.url(p));
    origin.stop().await;

    // Invalid JSON, a body file of another length, a body file missing.
    std::fs::write(entry_file(dir.path(), &urls[1]), "{ not json").unwrap_or(());
    let text = entry_file(dir.path(), &urls[0]);
    std::fs::write(body_file(&text), "hello, edited!\n").unwrap();
    let binary = entry_file(dir.path(), &urls[2]);
    std::fs::remove_file(body_file(&binary)).unwrap();

    let replaying = Cassette::open(dir.path(), Mode::Replay).unwrap();
    for url in &urls {
        let seen = support::via_layer(&replaying, url, &[]).await;
        assert_eq!(seen.status, 504, "{url}: {}", seen.text());
        assert!(Unmatched::from_headers(&seen.headers).is_some());
    }
    let store = Cassette::open(dir.path(), Mode::RecordNew).unwrap();
    for url in &urls {
        assert!(store.get(url).await.unwrap().is_none(), "{url}");
    }
    // The other entries are still listed.
    assert_eq!(store.scan().await.unwrap().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn freshness_is_followed_only_when_asked() {
    for (follow, expected_hits) in [(false, 1), (true, 2)] {
        let dir = tempfile::tempdir().unwrap();
        let origin = Origin::start().await;
        let cassette = Cassette::builder(dir.path())
            .mode(Mode::RecordNew)
            .follow_freshness(follow)
            .open()
            .unwrap();
        // `/json` has no freshness: a cache would validate it on every use.
        for _ in 0..2 {
            let seen = support::via_layer(&cassette, &origin.url("/json"), &[]).await;
            assert_eq!(seen.status, 200);
        }
        assert_eq!(origin.hits(), expected_hits, "follow_freshness({follow})");
        origin.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_record_all_what_the_rules_forbid_is_not_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let origin = Origin::start().await;
    let cassette = Cassette::builder(dir.path())
        .mode(Mode::Record)
        .record_all(false)
        .open()
        .unwrap();
    support::via_layer(&cassette, &origin.url("/no-store"), &[]).await;
    support::via_layer(&cassette, &origin.url("/text"), &[]).await;
    let names: Vec<String> = snapshot(dir.path()).into_keys().collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names.iter().all(|n| n.contains("--text-")), "{names:?}");
    origin.stop().await;
}
