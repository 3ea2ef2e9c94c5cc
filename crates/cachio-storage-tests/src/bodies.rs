//! Bodies: concurrent writers, large, empty and variant entries, keys, reads racing writes,
//! the body size limit.

use std::sync::Arc;

use bytes::Bytes;
use cachio_core::meta::{Meta, VaryIndex};
use cachio_core::store::{ErrorKind, Store, StoreError, StoreWriter};
use http::header;
use http_body::Body;
use http_body_util::BodyExt;

use crate::support::*;

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
