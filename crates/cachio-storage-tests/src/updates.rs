//! Updating an entry's metadata, alone and racing other writes.

use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use cachio_core::meta::{Meta, ResponseMeta};
use cachio_core::store::Store;
use http::header::{self, HeaderMap, HeaderValue};
use http::{StatusCode, Version};

use crate::support::*;

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
