//! Entries: round trips, commit visibility, dropped writers, overwrites, deletes, purges, scans.

use bytes::Bytes;
use cachio_core::store::{Store, StoreWriter};
use http::header;

use crate::support::*;

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
    // A store that cleans up on a task of its own has done so once a later write has landed.
    write_barrier(&store, CHECK).await;
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
    write_barrier(&store, CHECK).await;
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
