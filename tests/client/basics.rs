//! The client's everyday behaviour: caching over plain HTTP, its directory outliving it, what it
//! sends, and the errors a caller can tell apart.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::origin::{self, Listen, handler, reply};
use crate::{client, is_hit, is_stored, memory, status};

fn fresh() -> origin::Handler {
    handler(|_| reply(200, &[("cache-control", "max-age=60")], "hello"))
}

#[tokio::test]
async fn rfc9111_4_2_a_fresh_response_is_served_from_the_cache() {
    let origin = origin::start(Listen::http(), None, fresh()).await;
    let client = client(&memory());
    let res = client.get(&origin.http("/")).await.unwrap();
    assert_eq!(status(&res), "cachio; fwd=uri-miss; fwd-status=200; stored");
    assert_eq!(res.into_body().bytes().await.unwrap(), "hello");
    let res = client.get(&origin.http("/")).await.unwrap();
    assert!(is_hit(&res), "{}", status(&res));
    assert_eq!(res.into_body().text().await.unwrap(), "hello");
    assert_eq!(origin.count("/"), 1);
    let stats = client.stats().snapshot();
    assert_eq!(stats.misses, 1);
    assert_eq!(stats.hits, 1);
}

#[tokio::test]
async fn the_cache_directory_outlives_the_client() {
    let origin = origin::start(Listen::http(), None, fresh()).await;
    let dir = tempfile::tempdir().unwrap();
    let first = cachio::Client::new(dir.path()).unwrap();
    let res = first.get(&origin.http("/kept")).await.unwrap();
    assert_eq!(res.into_body().text().await.unwrap(), "hello");
    drop(first);

    let second = cachio::Client::new(dir.path()).unwrap();
    let res = second.get(&origin.http("/kept")).await.unwrap();
    assert!(is_hit(&res), "{}", status(&res));
    assert_eq!(res.into_body().text().await.unwrap(), "hello");
    assert_eq!(
        origin.count("/kept"),
        1,
        "the second client asked the disk, not the origin"
    );
}

#[tokio::test]
async fn a_user_agent_is_sent_unless_the_request_has_one() {
    let origin = origin::start(Listen::http(), None, fresh()).await;
    let plain = client(&memory());
    plain.get(&origin.http("/a")).await.unwrap();
    let named = cachio::Client::builder("unused")
        .store(memory())
        .user_agent("my-crawler/2.0")
        .build()
        .unwrap();
    named.get(&origin.http("/b")).await.unwrap();
    let own = http::Request::get(origin.http("/c"))
        .header("user-agent", "its-own/1")
        .body(String::new())
        .unwrap();
    named.request(own).await.unwrap();
    let agents: Vec<_> = origin
        .seen()
        .iter()
        .map(|s| s.headers["user-agent"].clone())
        .collect();
    assert_eq!(agents[0], concat!("cachio/", env!("CARGO_PKG_VERSION")));
    assert_eq!(agents[1], "my-crawler/2.0");
    assert_eq!(agents[2], "its-own/1");

    let err = cachio::Client::builder("unused")
        .store(memory())
        .user_agent("bad\nvalue")
        .build()
        .unwrap_err();
    assert!(err.is_builder(), "{err:?}");
}

#[tokio::test]
async fn rfc9111_4_4_an_unsafe_request_passes_its_body_and_invalidates_the_url() {
    let origin = origin::start(
        Listen::http(),
        None,
        handler(|req| match *req.method() {
            http::Method::POST => reply(201, &[], "created"),
            _ => reply(200, &[("cache-control", "max-age=60")], "list"),
        }),
    )
    .await;
    let client = client(&memory());
    client
        .get(&origin.http("/items"))
        .await
        .unwrap()
        .into_body()
        .bytes()
        .await
        .unwrap();
    assert!(is_stored(&client, &origin.http("/items")).await);

    let post = http::Request::post(origin.http("/items"))
        .body("a new item".to_owned())
        .unwrap();
    let res = client.request(post).await.unwrap();
    assert_eq!(res.status(), 201);
    assert!(
        !is_stored(&client, &origin.http("/items")).await,
        "invalidated by the POST"
    );

    client
        .get(&origin.http("/items"))
        .await
        .unwrap()
        .into_body()
        .bytes()
        .await
        .unwrap();
    assert!(is_stored(&client, &origin.http("/items")).await);
    client.invalidate(&origin.http("/items")).await.unwrap();
    assert!(
        !is_stored(&client, &origin.http("/items")).await,
        "invalidated by hand"
    );
}

#[tokio::test]
async fn a_url_that_is_not_absolute_http_is_an_error() {
    let client = client(&memory());
    for url in [
        "ftp://example.com/",
        "/relative",
        "no url at all",
        "https:///",
    ] {
        let err = client.get(url).await.unwrap_err();
        assert!(err.is_url(), "{url}: {err:?}");
    }
}

#[tokio::test]
async fn a_refused_connection_is_an_error_naming_the_host() {
    // A port that was free a moment ago: nothing listens there now.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = client(&memory())
        .get(&format!("http://127.0.0.1:{port}/"))
        .await
        .unwrap_err();
    assert!(err.is_connect(), "{err:?}");
    assert_eq!(err.host(), Some("127.0.0.1"));
    assert!(
        err.to_string().contains("could not connect to 127.0.0.1"),
        "{err}"
    );
}

#[tokio::test]
async fn an_origin_that_does_not_answer_in_time_is_a_timeout() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0; 1024];
        // Reads the request and never answers.
        while tcp.read(&mut buf).await.is_ok_and(|n| n > 0) {}
    });
    let client = cachio::Client::builder("unused")
        .store(memory())
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let err = client.get(&format!("http://{addr}/")).await.unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    silent.abort();
}

#[tokio::test]
async fn an_origin_that_dies_mid_body_fails_the_body_and_nothing_is_stored() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut tcp, _) = listener.accept().await.unwrap();
        let mut buf = [0; 1024];
        let _ = tcp.read(&mut buf).await.unwrap();
        let head = "HTTP/1.1 200 OK\r\ncache-control: max-age=60\r\ncontent-length: 1000\r\n\r\n";
        tcp.write_all(head.as_bytes()).await.unwrap();
        tcp.write_all(&[b'x'; 100]).await.unwrap();
        // Closed with 900 bytes still owed.
    });
    let client = client(&memory());
    let url = format!("http://{addr}/cut");
    let res = client.get(&url).await.unwrap();
    let err = res.into_body().bytes().await.unwrap_err();
    assert!(err.is_body(), "{err:?}");
    assert!(
        !is_stored(&client, &url).await,
        "a partial body is never stored"
    );
}

#[tokio::test]
async fn requests_can_be_spawned_on_other_tasks() {
    let origin = origin::start(Listen::http(), None, fresh()).await;
    let client = client(&memory());
    let (url, c) = (origin.http("/spawned"), client.clone());
    let first = tokio::spawn(async move { c.get(&url).await?.into_body().text().await });
    assert_eq!(first.await.unwrap().unwrap(), "hello");
    let (url, c) = (origin.http("/spawned"), client.clone());
    let second = tokio::spawn(async move {
        let req = http::Request::get(url).body(String::new()).unwrap();
        c.request(req).await
    });
    let res = second.await.unwrap().unwrap();
    assert!(is_hit(&res), "{}", status(&res));
}

#[tokio::test]
async fn a_cache_directory_that_cannot_be_opened_is_moved_aside_and_the_client_starts() {
    let origin = origin::start(Listen::http(), None, fresh()).await;
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("cache");
    std::fs::write(&dir, b"a file where the cache directory should be").unwrap();
    let client = cachio::Client::new(&dir).expect("the client starts without the damaged cache");
    let res = client.get(&origin.http("/after")).await.unwrap();
    assert_eq!(res.into_body().text().await.unwrap(), "hello");
    assert!(dir.is_dir(), "a new cache directory");
    let aside: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("cache.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "the damaged one is kept aside: {aside:?}");
}
