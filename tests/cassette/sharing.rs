//! Two cassettes over one directory (two tests, two processes): a reader never gets one entry's
//! head with another's body while the other rewrites it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use cachio_cassette::{Cassette, Mode};
use cachio_core::meta::{Meta, ResponseMeta};
use cachio_core::store::{Store, StoreWriter};
use http_body_util::BodyExt;

fn meta(tag: &str) -> Arc<Meta> {
    let mut h = http::HeaderMap::new();
    h.insert("x-tag", http::HeaderValue::from_str(tag).unwrap());
    let t = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    Arc::new(Meta::Response(ResponseMeta::new(
        http::StatusCode::OK,
        http::Version::HTTP_11,
        h,
        Vec::new(),
        t,
        t,
    )))
}

/// The body written with tag `tag`: several chunks, all bodies of one length, so that only the
/// bytes tell them apart.
fn body(tag: &str) -> Bytes {
    Bytes::from(vec![tag.as_bytes()[0]; 200_000])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_never_pairs_a_head_with_another_body() {
    let dir = tempfile::tempdir().unwrap();
    let writer = Cassette::open(dir.path(), Mode::RecordNew).unwrap();
    let reader = Cassette::open(dir.path(), Mode::RecordNew).unwrap();
    let key = "http://shared.test/entry";
    let done = Arc::new(AtomicBool::new(false));
    let writing = {
        let done = done.clone();
        tokio::spawn(async move {
            for i in 0..60 {
                let tag = ["a", "b", "c"][i % 3];
                let mut w = writer.begin(key).unwrap();
                for chunk in body(tag).chunks(50_000) {
                    w.append(Bytes::copy_from_slice(chunk)).unwrap();
                }
                w.commit(meta(tag), None).await.unwrap();
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut seen = 0;
    while !done.load(Ordering::SeqCst) {
        let Some(hit) = reader.get(key).await.unwrap() else {
            continue;
        };
        let tag = hit.meta.as_response().unwrap().headers()["x-tag"]
            .to_str()
            .unwrap()
            .to_owned();
        // A body whose file went away meanwhile may end in an error; never in other bytes.
        if let Ok(got) = hit.body.collect().await.map(|b| b.to_bytes()) {
            assert!(
                got == body(&tag),
                "the head of {tag} with a body of {} bytes starting {:?}",
                got.len(),
                &got[..got.len().min(8)]
            );
            seen += 1;
        }
    }
    writing.await.unwrap();
    assert!(seen > 0, "some reads overlapped the writes");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 2, "one entry file and its body, nothing else");
}

#[tokio::test]
async fn opening_removes_what_a_killed_writer_left() {
    let dir = tempfile::tempdir().unwrap();
    // No process has this id (above the kernel's largest); ours is writing right now.
    let gone = dir.path().join(".999999999-0.body.tmp");
    let ours = dir
        .path()
        .join(format!(".{}-7.body.tmp", std::process::id()));
    let unrelated = dir.path().join(".keep");
    for f in [&gone, &ours, &unrelated] {
        std::fs::write(f, "x").unwrap();
    }
    Cassette::open(dir.path(), Mode::Replay).unwrap();
    assert!(!gone.exists(), "a dead writer's file is removed");
    assert!(
        ours.exists() && unrelated.exists(),
        "nothing else is touched"
    );
}
