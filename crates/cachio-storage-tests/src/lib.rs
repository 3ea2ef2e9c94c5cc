//! The behaviour every cachio [`Store`] must show, as async functions each backend's tests call.
//!
//! Each check takes a fresh store, exercises one property of the [`Store`] contract and panics
//! with a message naming the check and what went wrong. A backend's tests call [`behaviours!`]
//! once: it defines one test per check, named after the check, so a failure is reported by name
//! and a check added here reaches every backend. [`run_all`] runs them all in one go:
//!
//! ```
//! use cachio_core::store::Store;
//!
//! async fn every_check<S: Store>(make: impl Fn() -> S) {
//!     cachio_storage_tests::run_all(make).await;
//! }
//! ```
//!
//! The checks spawn tokio tasks ([`concurrent_writers`]), so they must run inside a tokio runtime;
//! a multi-threaded one exercises real parallelism.
//!
//! What is checked:
//! - [`round_trip`]: metadata (status, version, every header line in order, `Vary` values,
//!   exchange times) and a body written in several chunks come back exactly;
//! - [`visible_only_after_commit`]: nothing is visible before commit, and an older entry stays
//!   visible while a new one is being written;
//! - [`abort_and_drop_leave_nothing`]: a writer dropped before commit leaves nothing and does not
//!   disturb the entry visible before it;
//! - [`overwrite`]: of two sequential commits, the second wins;
//! - [`delete`]: a deleted entry is gone, others stay, deleting nothing is not an error;
//! - [`purge`]: a purge removes exactly the entries its predicate picks and counts them;
//! - [`scan`]: a scan lists every entry once, with its metadata, and removes nothing;
//! - [`update_meta`]: an update replaces the metadata and keeps the body; updating a missing key
//!   returns `false` and creates nothing;
//! - [`concurrent_writers`]: two interleaved writers of one key leave one complete entry, never a
//!   mix of bodies or a body with the other writer's metadata;
//! - [`large_body_many_chunks`]: 8 MiB in 64 KiB chunks come back byte for byte, streamed;
//! - [`empty_body`] and [`variants_round_trip`]: empty bodies and variant indexes
//!   ([`Meta::Variants`]) are stored like any entry;
//! - [`distinct_keys`]: keys that differ only slightly name different entries;
//! - [`hit_survives_overwrite`]: a hit being read while its key is overwritten yields its own
//!   complete body or an error, never other bytes;
//! - [`max_body_size_enforced`]: a store that reports a [`Store::max_body_size`] refuses a body
//!   past it and stores one of exactly that size.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use cachio_core::meta::{Meta, ResponseMeta, VaryIndex};
use cachio_core::store::{ErrorKind, Hit, Store, StoreError, StoreWriter};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Version};
use http_body::Body;
use http_body_util::BodyExt;

/// A time to live long enough never to expire during a test.
const LONG_TTL: Option<Duration> = Some(Duration::from_secs(3600));

/// Runs every check, each against a fresh store from `make`.
///
/// # Panics
///
/// When the store fails any check; the message names the check.
pub async fn run_all<S: Store>(make: impl Fn() -> S) {
    crate::__behaviours!(@each run_all make);
}

/// Defines one test per check of this crate, named after the check, each against a fresh store.
///
/// A backend's tests call it once, with the attributes of each test (the runtime it runs on) and
/// `|check| store`, which looks like a closure: `store` is an expression that makes a fresh store,
/// and `check` a pattern (`_` when unused) bound to the name of the check, a `&'static str`, for
/// a store that wants one (a key prefix of its own on a shared server, say). The list of checks
/// lives here, so a check added to this crate runs against every backend.
///
/// ```test_harness
/// use cachio_moka::MokaStore;
///
/// cachio_storage_tests::behaviours! {
///     #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
///     |_| MokaStore::new(256 << 20)
/// }
/// ```
///
/// defines `async fn round_trip()` calling [`round_trip`]`(MokaStore::new(256 << 20)).await`, and
/// so on for every check.
///
/// `store` is evaluated inside the statement that awaits the check, so a temporary it makes lives
/// until the check ends: `|_| open(&tempfile::tempdir().unwrap())` gives each check a directory
/// of its own that is deleted after the check, once the store has been dropped.
#[macro_export]
macro_rules! behaviours {
    ($(#[$attr:meta])+ |$check:pat_param| $store:expr) => {
        $crate::__behaviours!(@each tests [$(#[$attr])+] [$check] [$store]);
    };
}

/// The list of checks [`behaviours!`] and [`run_all`] go through, in the order of this file.
#[doc(hidden)]
#[macro_export]
macro_rules! __behaviours {
    (@each $($then:tt)+) => {
        $crate::__behaviours! {
            $($then)+
            round_trip
            visible_only_after_commit
            abort_and_drop_leave_nothing
            overwrite
            delete
            purge
            scan
            update_meta
            update_of_a_replaced_entry
            update_racing_delete_and_commit
            concurrent_writers
            large_body_many_chunks
            empty_body
            variants_round_trip
            distinct_keys
            hit_survives_overwrite
            max_body_size_enforced
        }
    };
    (tests $attrs:tt $check:tt $store:tt $($name:ident)+) => {$(
        $crate::__behaviours!(test $attrs $check $store $name);
    )+};
    (test [$(#[$attr:meta])+] [$check:pat_param] [$store:expr] $name:ident) => {
        $(#[$attr])+
        async fn $name() {
            let $check: &'static str = ::core::stringify!($name);
            $crate::$name($store).await;
        }
    };
    (run_all $make:ident $($name:ident)+) => {$(
        $crate::$name($make()).await;
    )+};
    (names $($name:ident)+) => {
        [$(::core::stringify!($name)),+]
    };
}

// ---- helpers ----------------------------------------------------------------------------------

/// A response metadata with several multi-valued header fields (two `Set-Cookie` lines, two
/// `Link` lines), `Vary` values and exchange times in whole milliseconds; `tag` is stored in an
/// `x-tag` header field so entries can be told apart.
///
/// # Panics
///
/// When `tag` is not a valid header value.
pub fn sample_meta(tag: &str) -> Arc<Meta> {
    let mut h = HeaderMap::new();
    h.append(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.append(header::SET_COOKIE, HeaderValue::from_static("a=1; Path=/"));
    h.append(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=60, public"),
    );
    h.append(
        header::SET_COOKIE,
        HeaderValue::from_static("b=2; HttpOnly"),
    );
    h.append(
        header::LINK,
        HeaderValue::from_static("</a.css>; rel=preload"),
    );
    h.append(
        header::LINK,
        HeaderValue::from_static("</b.js>; rel=preload"),
    );
    h.append(
        header::VARY,
        HeaderValue::from_static("accept-language, accept-encoding"),
    );
    h.append(
        HeaderName::from_static("x-tag"),
        HeaderValue::from_str(tag).expect("sample_meta: the tag must be a valid header value"),
    );
    let request_time = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
    Arc::new(Meta::Response(ResponseMeta::new(
        StatusCode::NON_AUTHORITATIVE_INFORMATION,
        Version::HTTP_2,
        h,
        vec![Some(HeaderValue::from_static("en-GB")), None],
        request_time,
        request_time + Duration::from_millis(42),
    )))
}

/// Reads a body to its end, checking on the way that its [`size_hint`](Body::size_hint) never
/// contradicts the bytes that follow.
///
/// # Errors
///
/// The first error the body yields.
///
/// # Panics
///
/// When the size hint is wrong.
pub async fn read_body<B>(mut body: B) -> Result<Vec<u8>, StoreError>
where
    B: Body<Data = Bytes, Error = StoreError> + Unpin,
{
    let mut out = Vec::new();
    loop {
        let hint = body.size_hint();
        let before = out.len() as u64;
        let Some(frame) = body.frame().await else {
            break;
        };
        if let Ok(data) = frame?.into_data() {
            out.extend_from_slice(&data);
        }
        let read = out.len() as u64 - before;
        assert!(
            hint.upper().is_none_or(|u| read <= u),
            "read_body: a frame of {read} bytes after a size hint with upper bound {:?}",
            hint.upper()
        );
    }
    assert!(
        body.size_hint().lower() == 0,
        "read_body: the body ended but its size hint still promises {} bytes",
        body.size_hint().lower()
    );
    Ok(out)
}

/// Writes `chunks` under `key` and commits them with `meta` and a long TTL.
///
/// # Panics
///
/// When beginning, appending or committing fails.
pub async fn put<S: Store>(store: &S, key: &str, meta: Arc<Meta>, chunks: &[&[u8]]) {
    let mut w = store
        .begin(key)
        .unwrap_or_else(|e| panic!("put {key:?}: begin failed: {e}"));
    for c in chunks {
        w.append(Bytes::copy_from_slice(c))
            .unwrap_or_else(|e| panic!("put {key:?}: append failed: {e}"));
    }
    w.commit(meta, LONG_TTL)
        .await
        .unwrap_or_else(|e| panic!("put {key:?}: commit failed: {e}"));
}

/// Reads the entry under `key`, panicking when it fails or is absent.
async fn expect_hit<S: Store>(store: &S, check: &str, key: &str) -> (Arc<Meta>, Vec<u8>) {
    let hit = get(store, check, key)
        .await
        .unwrap_or_else(|| panic!("{check}: no entry under {key:?}"));
    let body = read_body(hit.body)
        .await
        .unwrap_or_else(|e| panic!("{check}: reading the body under {key:?} failed: {e}"));
    (hit.meta, body)
}

async fn get<S: Store>(store: &S, check: &str, key: &str) -> Option<Hit<S::Body>> {
    store
        .get(key)
        .await
        .unwrap_or_else(|e| panic!("{check}: get {key:?} failed: {e}"))
}

async fn expect_none<S: Store>(store: &S, check: &str, key: &str, when: &str) {
    if let Some(hit) = get(store, check, key).await {
        let body = read_body(hit.body).await;
        panic!("{check}: {when}, {key:?} should have no entry, found one (body {body:?})");
    }
}

/// Asserts that two metadata are the same in every stored field.
///
/// # Panics
///
/// When they differ; the message starts with `check`.
pub fn assert_meta_eq(check: &str, expected: &Meta, got: &Meta) {
    match (expected, got) {
        (Meta::Response(e), Meta::Response(g)) => {
            assert_eq!(e.status(), g.status(), "{check}: status");
            assert_eq!(e.version(), g.version(), "{check}: version");
            assert_eq!(
                e.headers().len(),
                g.headers().len(),
                "{check}: number of header lines"
            );
            for name in e.headers().keys() {
                let ev: Vec<_> = e.headers().get_all(name).iter().collect();
                let gv: Vec<_> = g.headers().get_all(name).iter().collect();
                assert_eq!(ev, gv, "{check}: the lines of header {name}, in order");
            }
            assert_eq!(e.vary_values(), g.vary_values(), "{check}: Vary values");
            assert_eq!(e.request_time(), g.request_time(), "{check}: request time");
            assert_eq!(
                e.response_time(),
                g.response_time(),
                "{check}: response time"
            );
        }
        (Meta::Variants(e), Meta::Variants(g)) => assert_eq!(e, g, "{check}: variant index"),
        _ => panic!("{check}: expected {expected:?}, got a different kind of metadata: {got:?}"),
    }
}

fn tag_of(meta: &Meta) -> Option<&[u8]> {
    meta.as_response()?
        .headers()
        .get("x-tag")
        .map(HeaderValue::as_bytes)
}

/// The byte at `offset` of the large test body: a hash of the offset, so that a lost, repeated or
/// reordered chunk shows.
fn pattern(offset: u64) -> u8 {
    (offset.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as u8
}

// ---- checks -----------------------------------------------------------------------------------

/// Metadata with multi-valued header fields and a body written in several chunks (one of them
/// empty) come back exactly, and can be read more than once.
///
/// # Panics
///
/// When the store fails the check.
pub async fn round_trip<S: Store>(store: S) {
    const CHECK: &str = "round_trip";
    let meta = sample_meta("round-trip");
    let chunks: [&[u8]; 5] = [b"hello, ", b"", b"wor", b"ld", b"\x00\xff binary \r\n tail"];
    put(&store, "rt", meta.clone(), &chunks).await;
    let expected = chunks.concat();
    for read in 0..2 {
        let (got_meta, got_body) = expect_hit(&store, CHECK, "rt").await;
        assert_meta_eq(CHECK, &meta, &got_meta);
        let cookies: Vec<_> = got_meta
            .as_response()
            .expect("round_trip: a response was stored")
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .collect();
        assert_eq!(
            cookies,
            ["a=1; Path=/", "b=2; HttpOnly"],
            "{CHECK}: both Set-Cookie lines, in order"
        );
        assert_eq!(got_body, expected, "{CHECK}: body bytes (read {read})");
    }
    expect_none(&store, CHECK, "rt-other", "nothing was written under it").await;
}

/// An entry becomes visible only when its writer commits; while a new entry is being written, the
/// older one stays visible.
///
/// # Panics
///
/// When the store fails the check.
pub async fn visible_only_after_commit<S: Store>(store: S) {
    const CHECK: &str = "visible_only_after_commit";
    let mut w = store.begin("v").expect("visible_only_after_commit: begin");
    w.append(Bytes::from_static(b"first "))
        .expect("visible_only_after_commit: append");
    expect_none(
        &store,
        CHECK,
        "v",
        "after begin and an append but before commit",
    )
    .await;
    w.append(Bytes::from_static(b"entry"))
        .expect("visible_only_after_commit: append");
    tokio::task::yield_now().await;
    expect_none(&store, CHECK, "v", "after two appends but before commit").await;
    let meta = sample_meta("first");
    w.commit(meta.clone(), LONG_TTL)
        .await
        .expect("visible_only_after_commit: commit");
    let (got_meta, body) = expect_hit(&store, CHECK, "v").await;
    assert_meta_eq(CHECK, &meta, &got_meta);
    assert_eq!(body, b"first entry", "{CHECK}: body after commit");

    let mut w = store
        .begin("v")
        .expect("visible_only_after_commit: second begin");
    w.append(Bytes::from_static(b"second entry"))
        .expect("visible_only_after_commit: append");
    let (got_meta, body) = expect_hit(&store, CHECK, "v").await;
    assert_eq!(
        tag_of(&got_meta),
        Some(&b"first"[..]),
        "{CHECK}: a write in progress replaced the metadata"
    );
    assert_eq!(
        body, b"first entry",
        "{CHECK}: a write in progress changed the visible body"
    );
    w.commit(sample_meta("second"), LONG_TTL)
        .await
        .expect("visible_only_after_commit: second commit");
    let (got_meta, body) = expect_hit(&store, CHECK, "v").await;
    assert_eq!(
        tag_of(&got_meta),
        Some(&b"second"[..]),
        "{CHECK}: metadata after the second commit"
    );
    assert_eq!(
        body, b"second entry",
        "{CHECK}: body after the second commit"
    );
}

/// A writer dropped before commit leaves no entry, and does not disturb the entry that was visible
/// before it.
///
/// # Panics
///
/// When the store fails the check.
pub async fn abort_and_drop_leave_nothing<S: Store>(store: S) {
    const CHECK: &str = "abort_and_drop_leave_nothing";
    let mut w = store
        .begin("a")
        .expect("abort_and_drop_leave_nothing: begin");
    w.append(Bytes::from_static(b"never committed"))
        .expect("abort_and_drop_leave_nothing: append");
    drop(w);
    expect_none(
        &store,
        CHECK,
        "a",
        "right after a writer was dropped without commit",
    )
    .await;
    // A store that cleans up on a task of its own gets time to do it wrong.
    tokio::time::sleep(Duration::from_millis(20)).await;
    expect_none(
        &store,
        CHECK,
        "a",
        "a while after a writer was dropped without commit",
    )
    .await;

    // A writer dropped without ever appending.
    drop(
        store
            .begin("a")
            .expect("abort_and_drop_leave_nothing: begin"),
    );
    expect_none(&store, CHECK, "a", "after an empty writer was dropped").await;

    let meta = sample_meta("old");
    put(&store, "a", meta.clone(), &[b"old ", b"body"]).await;
    let mut w = store
        .begin("a")
        .expect("abort_and_drop_leave_nothing: begin");
    w.append(Bytes::from_static(b"new body that is never committed"))
        .expect("abort_and_drop_leave_nothing: append");
    drop(w);
    tokio::time::sleep(Duration::from_millis(20)).await;
    let (got_meta, body) = expect_hit(&store, CHECK, "a").await;
    assert_meta_eq(CHECK, &meta, &got_meta);
    assert_eq!(
        body, b"old body",
        "{CHECK}: a dropped writer changed the entry visible before it"
    );
}

/// Of two sequential commits to one key, the second wins.
///
/// # Panics
///
/// When the store fails the check.
pub async fn overwrite<S: Store>(store: S) {
    const CHECK: &str = "overwrite";
    put(
        &store,
        "o",
        sample_meta("one"),
        &[b"a rather long first body"],
    )
    .await;
    let meta = sample_meta("two");
    put(&store, "o", meta.clone(), &[b"short"]).await;
    let (got_meta, body) = expect_hit(&store, CHECK, "o").await;
    assert_meta_eq(CHECK, &meta, &got_meta);
    assert_eq!(body, b"short", "{CHECK}: body after the second commit");
}

/// A deleted entry is gone; other entries stay; deleting a missing key is not an error.
///
/// # Panics
///
/// When the store fails the check.
pub async fn delete<S: Store>(store: S) {
    const CHECK: &str = "delete";
    put(&store, "d1", sample_meta("d1"), &[b"one"]).await;
    put(&store, "d2", sample_meta("d2"), &[b"two"]).await;
    store.delete("d1").await.expect("delete: delete d1");
    expect_none(&store, CHECK, "d1", "after delete").await;
    let (_, body) = expect_hit(&store, CHECK, "d2").await;
    assert_eq!(body, b"two", "{CHECK}: deleting d1 changed d2");
    store
        .delete("d1")
        .await
        .expect("delete: deleting a deleted key must succeed");
    store
        .delete("never-written")
        .await
        .expect("delete: deleting a missing key must succeed");
    put(&store, "d1", sample_meta("d1 again"), &[b"back"]).await;
    let (_, body) = expect_hit(&store, CHECK, "d1").await;
    assert_eq!(body, b"back", "{CHECK}: a key written again after delete");
}

/// `purge` removes exactly the entries its predicate picks (by key and by metadata) and counts
/// them; the others stay readable.
///
/// # Panics
///
/// When the store fails the check.
pub async fn purge<S: Store>(store: S) {
    const CHECK: &str = "purge";
    put(&store, "http://a/x/1", sample_meta("keep"), &[b"1"]).await;
    put(&store, "http://a/x/2", sample_meta("keep"), &[b"2"]).await;
    put(&store, "http://a/y/1", sample_meta("tagged"), &[b"3"]).await;
    put(&store, "http://b/x/1", sample_meta("keep"), &[b"4"]).await;

    let n = store
        .purge(|key, _| key.starts_with("http://a/x/"))
        .await
        .unwrap_or_else(|e| panic!("{CHECK}: purge by prefix failed: {e}"));
    assert_eq!(n, 2, "{CHECK}: purge by prefix count");
    expect_none(&store, CHECK, "http://a/x/1", "after a prefix purge").await;
    expect_none(&store, CHECK, "http://a/x/2", "after a prefix purge").await;

    let n = store
        .purge(|_, meta| {
            meta.as_response()
                .is_some_and(|r| r.headers().get("x-tag").is_some_and(|v| v == "tagged"))
        })
        .await
        .unwrap_or_else(|e| panic!("{CHECK}: purge by metadata failed: {e}"));
    assert_eq!(n, 1, "{CHECK}: purge by metadata count");
    expect_none(&store, CHECK, "http://a/y/1", "after a metadata purge").await;
    let (_, body) = expect_hit(&store, CHECK, "http://b/x/1").await;
    assert_eq!(body, b"4", "{CHECK}: an entry the predicate did not pick");
}

/// `scan` lists every entry exactly once, with its metadata, and removes nothing.
///
/// # Panics
///
/// When the store fails the check.
pub async fn scan<S: Store>(store: S) {
    const CHECK: &str = "scan";
    put(&store, "http://s/1", sample_meta("one"), &[b"1"]).await;
    put(&store, "http://s/2", sample_meta("two"), &[b"2"]).await;
    put(&store, "http://s/3", sample_meta("three"), &[b"3"]).await;
    store
        .delete("http://s/3")
        .await
        .unwrap_or_else(|e| panic!("{CHECK}: delete failed: {e}"));

    let mut listed = store
        .scan()
        .await
        .unwrap_or_else(|e| panic!("{CHECK}: scan failed: {e}"));
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    let tags: Vec<(&str, Option<String>)> = listed
        .iter()
        .map(|(key, meta)| {
            let tag = meta.as_response().and_then(|r| {
                r.headers()
                    .get("x-tag")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            });
            (key.as_str(), tag)
        })
        .collect();
    assert_eq!(
        tags,
        [
            ("http://s/1", Some("one".to_owned())),
            ("http://s/2", Some("two".to_owned()))
        ],
        "{CHECK}: every entry once, with its metadata, and nothing deleted"
    );
    let (_, body) = expect_hit(&store, CHECK, "http://s/1").await;
    assert_eq!(body, b"1", "{CHECK}: an entry after a scan");
}

/// An update of the entry that was read replaces its metadata and keeps its body; updating a
/// missing key returns `false` and creates nothing.
///
/// # Panics
///
/// When the store fails the check.
pub async fn update_meta<S: Store>(store: S) {
    const CHECK: &str = "update_meta";
    put(&store, "u", sample_meta("before"), &[b"the ", b"body"]).await;

    let mut headers = HeaderMap::new();
    headers.append(header::ETAG, HeaderValue::from_static("\"v2\""));
    headers.append(header::SET_COOKIE, HeaderValue::from_static("c=3"));
    headers.append(header::SET_COOKIE, HeaderValue::from_static("d=4"));
    headers.append("x-tag", HeaderValue::from_static("after"));
    let t = UNIX_EPOCH + Duration::from_millis(1_800_000_000_000);
    let updated = Arc::new(Meta::Response(ResponseMeta::new(
        StatusCode::OK,
        Version::HTTP_11,
        headers,
        vec![None, Some(HeaderValue::from_static("gzip"))],
        t,
        t + Duration::from_millis(7),
    )));
    let (read, _) = expect_hit(&store, CHECK, "u").await;
    let found = store
        .update("u", &read, updated.clone(), LONG_TTL)
        .await
        .expect("update_meta: update failed");
    assert!(found, "{CHECK}: update of an existing entry returned false");
    let (got_meta, body) = expect_hit(&store, CHECK, "u").await;
    assert_meta_eq(CHECK, &updated, &got_meta);
    assert_eq!(body, b"the body", "{CHECK}: update changed the body");

    let found = store
        .update(
            "u-missing",
            &sample_meta("ghost"),
            sample_meta("ghost"),
            LONG_TTL,
        )
        .await
        .expect("update_meta: update of a missing key failed");
    assert!(!found, "{CHECK}: update of a missing key returned true");
    expect_none(
        &store,
        CHECK,
        "u-missing",
        "after an update of a missing key",
    )
    .await;
}

/// An update is for the entry that was read: once another entry has been written under the key
/// (another body, which the update's metadata may not describe), the update changes nothing and
/// returns `false`, and the entry written last is served whole. Repeated with the metadata read
/// back (another copy) and with the metadata that was written.
///
/// # Panics
///
/// When the store fails the check.
pub async fn update_of_a_replaced_entry<S: Store>(store: S) {
    const CHECK: &str = "update_of_a_replaced_entry";
    let first = sample_meta("first");
    put(&store, "r", first.clone(), &[b"first body"]).await;
    let (read, _) = expect_hit(&store, CHECK, "r").await;
    let second = sample_meta("second");
    put(&store, "r", second.clone(), &[b"the second, longer body"]).await;
    for previous in [&read, &first] {
        let found = store
            .update("r", previous, sample_meta("merged"), LONG_TTL)
            .await
            .unwrap_or_else(|e| panic!("{CHECK}: update failed: {e}"));
        assert!(
            !found,
            "{CHECK}: an update of a replaced entry returned true"
        );
        let (got, body) = expect_hit(&store, CHECK, "r").await;
        assert_meta_eq(CHECK, &second, &got);
        assert_eq!(
            body, b"the second, longer body",
            "{CHECK}: the body changed"
        );
    }
    // The entry that is there now can be updated.
    let (now, _) = expect_hit(&store, CHECK, "r").await;
    let merged = sample_meta("merged");
    assert!(
        store
            .update("r", &now, merged.clone(), LONG_TTL)
            .await
            .unwrap_or(false),
        "{CHECK}: an update of the current entry returned false"
    );
    let (got, body) = expect_hit(&store, CHECK, "r").await;
    assert_meta_eq(CHECK, &merged, &got);
    assert_eq!(body, b"the second, longer body");
}

/// An update races a removal of its entry, then a replacement of it: once both are done, the
/// removed entry stays removed, and the replacing entry stays as it was written (an update never
/// lands over what was written after it read the entry, nor brings back what was removed after).
/// Repeated 200 times, each operation on a tokio task of its own.
///
/// # Panics
///
/// When the store fails the check.
pub async fn update_racing_delete_and_commit<S: Store>(store: S) {
    const CHECK: &str = "update_racing_delete_and_commit";
    for round in 0..200 {
        let key = format!("race{round}");
        put(&store, &key, sample_meta("first"), &[b"first body"]).await;
        let (read, _) = expect_hit(&store, CHECK, &key).await;
        let update = {
            let (store, key, read) = (store.clone(), key.clone(), read.clone());
            tokio::spawn(async move {
                store
                    .update(&key, &read, sample_meta("merged"), LONG_TTL)
                    .await
            })
        };
        let delete = {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move { store.delete(&key).await })
        };
        let (u, d) = (update.await.unwrap(), delete.await.unwrap());
        u.unwrap_or_else(|e| panic!("{CHECK}: update failed: {e}"));
        d.unwrap_or_else(|e| panic!("{CHECK}: delete failed: {e}"));
        expect_none(&store, CHECK, &key, "after a delete raced an update").await;

        put(&store, &key, sample_meta("first"), &[b"first body"]).await;
        let (read, _) = expect_hit(&store, CHECK, &key).await;
        let second = sample_meta("second");
        let update = {
            let (store, key) = (store.clone(), key.clone());
            tokio::spawn(async move {
                store
                    .update(&key, &read, sample_meta("merged"), LONG_TTL)
                    .await
            })
        };
        let replace = {
            let (store, key, second) = (store.clone(), key.clone(), second.clone());
            tokio::spawn(async move {
                put(&store, &key, second, &[b"the second, longer body"]).await;
            })
        };
        let u = update.await.unwrap();
        replace.await.unwrap();
        u.unwrap_or_else(|e| panic!("{CHECK}: update failed: {e}"));
        let (got, body) = expect_hit(&store, CHECK, &key).await;
        assert_meta_eq(CHECK, &second, &got);
        assert_eq!(
            body, b"the second, longer body",
            "{CHECK}: round {round}: the body changed"
        );
        store
            .delete(&key)
            .await
            .unwrap_or_else(|e| panic!("{CHECK}: delete failed: {e}"));
    }
}

/// Two writers of one key, appending in turn and committing concurrently, leave one complete
/// entry: one writer's whole body with that writer's metadata, never a mix. Repeated 200 times,
/// half of them with the writers on separate tokio tasks.
///
/// # Panics
///
/// When the store fails the check.
pub async fn concurrent_writers<S: Store>(store: S) {
    const CHECK: &str = "concurrent_writers";
    const CHUNKS: usize = 6;
    fn chunk(writer: u8, i: usize, round: usize) -> Bytes {
        // Different lengths per writer, so that a mix also shows in the length.
        let len = if writer == b'a' { 100 + i } else { 300 + 7 * i };
        Bytes::from(vec![writer ^ (i as u8) ^ (round as u8); len])
    }
    fn body(writer: u8, round: usize) -> Vec<u8> {
        (0..CHUNKS).flat_map(|i| chunk(writer, i, round)).collect()
    }

    for round in 0..200 {
        let key = if round % 2 == 0 {
            "cw".to_owned()
        } else {
            format!("cw-{round}")
        };
        if round % 4 < 2 {
            // Interleaved by hand on this task, committed concurrently.
            let mut a = store.begin(&key).expect("concurrent_writers: begin a");
            let mut b = store.begin(&key).expect("concurrent_writers: begin b");
            for i in 0..CHUNKS {
                a.append(chunk(b'a', i, round))
                    .expect("concurrent_writers: append a");
                b.append(chunk(b'b', i, round))
                    .expect("concurrent_writers: append b");
            }
            let ca = tokio::spawn(a.commit(sample_meta("a"), LONG_TTL));
            let cb = tokio::spawn(b.commit(sample_meta("b"), LONG_TTL));
            let (ra, rb) = tokio::join!(ca, cb);
            ra.expect("concurrent_writers: commit task a panicked")
                .expect("concurrent_writers: commit a failed");
            rb.expect("concurrent_writers: commit task b panicked")
                .expect("concurrent_writers: commit b failed");
        } else {
            // Each writer on its own task, yielding between appends.
            let tasks = [b'a', b'b'].map(|writer| {
                let store = store.clone();
                let key = key.clone();
                tokio::spawn(async move {
                    let mut w = store.begin(&key).expect("concurrent_writers: begin");
                    for i in 0..CHUNKS {
                        w.append(chunk(writer, i, round))
                            .expect("concurrent_writers: append");
                        tokio::task::yield_now().await;
                    }
                    let tag = if writer == b'a' { "a" } else { "b" };
                    w.commit(sample_meta(tag), LONG_TTL)
                        .await
                        .expect("concurrent_writers: commit failed");
                })
            });
            for t in tasks {
                t.await.expect("concurrent_writers: a writer task panicked");
            }
        }
        let (meta, got) = expect_hit(&store, CHECK, &key).await;
        let writer = match tag_of(&meta) {
            Some(b"a") => b'a',
            Some(b"b") => b'b',
            other => panic!("{CHECK}: round {round}: unexpected metadata tag {other:?}"),
        };
        let expected = body(writer, round);
        if got != expected {
            let other = body(if writer == b'a' { b'b' } else { b'a' }, round);
            panic!(
                "{CHECK}: round {round}: the metadata is writer {}'s but the body ({} bytes) is {}",
                writer as char,
                got.len(),
                if got == other {
                    "the other writer's"
                } else {
                    "a mix or garbage"
                },
            );
        }
    }
}

/// An 8 MiB body written in 64 KiB chunks with a verifiable pattern comes back byte for byte;
/// it is checked frame by frame as it streams, without collecting a copy. A store whose
/// [`Store::max_body_size`] is smaller gets a body of that size instead.
///
/// # Panics
///
/// When the store fails the check.
pub async fn large_body_many_chunks<S: Store>(store: S) {
    const CHECK: &str = "large_body_many_chunks";
    const CHUNK: u64 = 64 * 1024;
    let total = store.max_body_size().map_or(8 << 20, |m| m.min(8 << 20));
    let mut w = store.begin("large").expect("large_body_many_chunks: begin");
    let mut offset = 0u64;
    while offset < total {
        let len = CHUNK.min(total - offset);
        let chunk: Vec<u8> = (offset..offset + len).map(pattern).collect();
        w.append(Bytes::from(chunk))
            .unwrap_or_else(|e| panic!("{CHECK}: append at offset {offset} failed: {e}"));
        offset += len;
    }
    w.commit(sample_meta("large"), LONG_TTL)
        .await
        .unwrap_or_else(|e| panic!("{CHECK}: commit of {total} bytes failed: {e}"));

    let mut body = get(&store, CHECK, "large")
        .await
        .unwrap_or_else(|| panic!("{CHECK}: no entry after commit"))
        .body;
    let hint = body.size_hint();
    assert!(
        hint.lower() <= total && hint.upper().is_none_or(|u| u >= total),
        "{CHECK}: size hint {hint:?} for a body of {total} bytes"
    );
    let mut offset = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap_or_else(|e| panic!("{CHECK}: body error at offset {offset}: {e}"));
        let Ok(data) = frame.into_data() else {
            continue;
        };
        for (i, &b) in data.iter().enumerate() {
            let at = offset + i as u64;
            assert!(
                at < total,
                "{CHECK}: the body is longer than the {total} bytes written"
            );
            if b != pattern(at) {
                panic!(
                    "{CHECK}: byte {at} is {b:#04x}, expected {:#04x}",
                    pattern(at)
                );
            }
        }
        offset += data.len() as u64;
    }
    assert_eq!(offset, total, "{CHECK}: body length");
}

/// A body with no bytes (no append at all, or only empty chunks) is stored and read back empty.
///
/// # Panics
///
/// When the store fails the check.
pub async fn empty_body<S: Store>(store: S) {
    const CHECK: &str = "empty_body";
    let meta = sample_meta("empty");
    let w = store.begin("e").expect("empty_body: begin");
    w.commit(meta.clone(), LONG_TTL)
        .await
        .expect("empty_body: commit");
    let (got_meta, body) = expect_hit(&store, CHECK, "e").await;
    assert_meta_eq(CHECK, &meta, &got_meta);
    assert!(
        body.is_empty(),
        "{CHECK}: {} bytes read from an empty body",
        body.len()
    );

    put(&store, "e2", meta.clone(), &[b"", b""]).await;
    let (_, body) = expect_hit(&store, CHECK, "e2").await;
    assert!(
        body.is_empty(),
        "{CHECK}: {} bytes read from empty chunks",
        body.len()
    );
}

/// A variant index ([`Meta::Variants`]) with an empty body round-trips, and can be updated.
///
/// # Panics
///
/// When the store fails the check.
pub async fn variants_round_trip<S: Store>(store: S) {
    const CHECK: &str = "variants_round_trip";
    let mut index = VaryIndex::new(vec![header::ACCEPT_LANGUAGE, header::ACCEPT_ENCODING], 7);
    index.variants = vec![1, 0xdead_beef, u64::MAX];
    let meta = Arc::new(Meta::Variants(index.clone()));
    let w = store.begin("vi").expect("variants_round_trip: begin");
    w.commit(meta.clone(), LONG_TTL)
        .await
        .expect("variants_round_trip: commit");
    let (got, body) = expect_hit(&store, CHECK, "vi").await;
    assert_meta_eq(CHECK, &meta, &got);
    assert!(
        body.is_empty(),
        "{CHECK}: a variant index came back with a body"
    );

    index.variants.push(42);
    index.epoch = 8;
    let meta = Arc::new(Meta::Variants(index));
    let found = store
        .update("vi", &got, meta.clone(), LONG_TTL)
        .await
        .expect("variants_round_trip: update");
    assert!(found, "{CHECK}: update of an existing index returned false");
    let (got, _) = expect_hit(&store, CHECK, "vi").await;
    assert_meta_eq(CHECK, &meta, &got);
}

/// Keys that differ only slightly (case, a trailing space or slash, a long or non-ASCII key) name
/// different entries.
///
/// # Panics
///
/// When the store fails the check.
pub async fn distinct_keys<S: Store>(store: S) {
    const CHECK: &str = "distinct_keys";
    let long = format!("https://example.com/{}", "x".repeat(4096));
    let keys = [
        "k",
        "K",
        "k ",
        "k/",
        "https://example.com/path?q=1",
        "https://example.com/path?q=2",
        "ключ/日本",
        &long,
    ];
    for (i, key) in keys.iter().enumerate() {
        put(
            &store,
            key,
            sample_meta(&format!("key-{i}")),
            &[format!("body {i}").as_bytes()],
        )
        .await;
    }
    for (i, key) in keys.iter().enumerate() {
        let (meta, body) = expect_hit(&store, CHECK, key).await;
        assert_eq!(
            tag_of(&meta),
            Some(format!("key-{i}").as_bytes()),
            "{CHECK}: metadata of {key:.40?}"
        );
        assert_eq!(
            body,
            format!("body {i}").as_bytes(),
            "{CHECK}: body of {key:.40?}"
        );
    }
}

/// A hit whose key is overwritten and deleted while its body is still unread yields its own
/// complete body or an error, never other bytes.
///
/// # Panics
///
/// When the store fails the check.
pub async fn hit_survives_overwrite<S: Store>(store: S) {
    const CHECK: &str = "hit_survives_overwrite";
    let old: Vec<u8> = (0..100_000u64).map(pattern).collect();
    put(
        &store,
        "h",
        sample_meta("old"),
        &[&old[..50_000], &old[50_000..]],
    )
    .await;
    let hit = get(&store, CHECK, "h")
        .await
        .unwrap_or_else(|| panic!("{CHECK}: no entry after commit"));
    put(&store, "h", sample_meta("new"), &[&[7u8; 60_000]]).await;
    store
        .delete("h")
        .await
        .expect("hit_survives_overwrite: delete");
    // An error (the store could no longer read the old entry) is allowed; other bytes are not.
    if let Ok(body) = read_body(hit.body).await {
        assert!(
            body == old,
            "{CHECK}: a hit read after its key was overwritten gave {} other bytes",
            body.len()
        );
    }
    assert_eq!(
        tag_of(&hit.meta),
        Some(&b"old"[..]),
        "{CHECK}: the hit's metadata changed"
    );
}

/// A store that reports a [`Store::max_body_size`] of at most 64 MiB stores a body of exactly
/// that size and refuses a larger one with [`ErrorKind::TooLarge`] (from `append` or `commit`),
/// leaving the entry visible before untouched. Stores without a limit, or with a larger one, pass
/// trivially.
///
/// # Panics
///
/// When the store fails the check.
pub async fn max_body_size_enforced<S: Store>(store: S) {
    const CHECK: &str = "max_body_size_enforced";
    let Some(max) = store.max_body_size() else {
        return;
    };
    if max > 64 << 20 {
        return;
    }
    // The chunks share one buffer, so a memory store does not hold `max` bytes twice.
    let block = Bytes::from(vec![0x5a; 64 * 1024]);
    let write = |extra: u64| {
        let mut w = store.begin("max").expect("max_body_size_enforced: begin");
        let mut left = max + extra;
        while left > 0 {
            let n = left.min(block.len() as u64);
            w.append(block.slice(..n as usize))?;
            left -= n;
        }
        Ok::<_, StoreError>(w)
    };

    let w = write(0)
        .unwrap_or_else(|e| panic!("{CHECK}: a body of exactly {max} bytes was refused: {e}"));
    w.commit(sample_meta("max"), LONG_TTL)
        .await
        .unwrap_or_else(|e| {
            panic!("{CHECK}: a body of exactly {max} bytes was refused at commit: {e}")
        });
    let hit = get(&store, CHECK, "max")
        .await
        .unwrap_or_else(|| panic!("{CHECK}: no entry after committing exactly {max} bytes"));
    let mut body = hit.body;
    let mut len = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.unwrap_or_else(|e| panic!("{CHECK}: body error: {e}"));
        len += frame.into_data().map_or(0, |d| d.len() as u64);
    }
    assert_eq!(len, max, "{CHECK}: body length");

    let refused = match write(1) {
        Err(e) => e,
        Ok(w) => match w.commit(sample_meta("too large"), LONG_TTL).await {
            Err(e) => e,
            Ok(()) => panic!(
                "{CHECK}: a body of {} bytes (limit {max}) was committed",
                max + 1
            ),
        },
    };
    assert_eq!(
        refused.kind(),
        ErrorKind::TooLarge,
        "{CHECK}: the error for a body past the limit: {refused}"
    );
    let hit = get(&store, CHECK, "max")
        .await
        .unwrap_or_else(|| panic!("{CHECK}: a refused body removed the entry visible before it"));
    assert_eq!(
        tag_of(&hit.meta),
        Some(&b"max"[..]),
        "{CHECK}: a refused body replaced the metadata"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_is_not_periodic_per_chunk() {
        let a: Vec<u8> = (0..64).map(pattern).collect();
        let b: Vec<u8> = (65_536..65_536 + 64).map(pattern).collect();
        assert_ne!(a, b);
    }

    /// Every check of this file is in the list `behaviours!` and `run_all` go through.
    #[test]
    fn the_list_names_every_check() {
        let checks: Vec<&str> = include_str!("lib.rs")
            .lines()
            .filter_map(|line| {
                line.strip_prefix("pub async fn ")?
                    .strip_suffix("<S: Store>(store: S) {")
            })
            .collect();
        assert_eq!(
            checks,
            crate::__behaviours!(@each names),
            "the list in `__behaviours!` must name every check, in the order of this file"
        );
    }

    #[test]
    fn sample_meta_has_two_cookies() {
        let m = sample_meta("x");
        let r = m.as_response().unwrap();
        assert_eq!(r.headers().get_all(header::SET_COOKIE).iter().count(), 2);
        assert_eq!(tag_of(&m), Some(&b"x"[..]));
    }
}
