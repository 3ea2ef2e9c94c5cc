//! The test of the README's "Record and replay in tests", run here on a temporary directory:
//! recorded with the stand-in API, then replayed without it.

use cachio_cassette::{Cassette, Mode, Unmatched};

/// The API the code under test calls, as a local server; only recording needs it.
async fn api() -> std::net::SocketAddr {
    use axum::{Router, routing::get};
    let app = Router::new().route(
        "/users/{id}",
        get(|| async { r#"{"id": 7, "name": "Ada"}"# }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    addr
}

/// The README's test, with the mode and directory given.
async fn fetches_a_user(
    mode: Mode,
    dir: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut http = reqwest::Client::builder();
    if mode != Mode::Replay {
        // The URLs stay `http://api.test/...` whatever port the stand-in gets.
        http = http.resolve("api.test", api().await);
    }
    let cassette = Cassette::open(dir, mode)?;
    let client = reqwest_middleware::ClientBuilder::new(http.build()?)
        .with(cachio_reqwest::Cache::new(cassette.layer()))
        .build();

    let res = client.get("http://api.test/users/7").send().await?;
    assert!(
        Unmatched::from_headers(res.headers()).is_none(),
        "not recorded: record again"
    );
    assert_eq!(res.text().await?, r#"{"id": 7, "name": "Ada"}"#);
    Ok(())
}

#[tokio::test]
async fn the_readme_test_records_then_replays() {
    let dir = tempfile::tempdir().unwrap();
    let cassette = dir.path().join("users");
    fetches_a_user(Mode::Record, &cassette).await.unwrap();
    fetches_a_user(Mode::Replay, &cassette).await.unwrap();
    // Replaying what was never recorded fails as the README says.
    let empty = dir.path().join("empty");
    let failed = tokio::spawn(async move {
        fetches_a_user(Mode::Replay, &empty)
            .await
            .map_err(|e| e.to_string())
    })
    .await;
    let panic = failed.expect_err("replaying an empty cassette cannot pass");
    let message = panic.into_panic();
    let message = message.downcast_ref::<&str>().copied().unwrap_or_default();
    assert!(message.contains("not recorded"), "{message}");
}
