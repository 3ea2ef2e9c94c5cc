//! The access log line: `complete` for every body sent to its end, `stored` for every body that
//! reached the store, and `Cache-Status` announcing `stored` only where storing is possible.

use crate::support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use cachio_gateway::Gateway;
use support::{Origin, Running, client, eventually, get, ok};

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Buf {
    fn lines(&self) -> Vec<String> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .filter(|l| l.contains("cachio_gateway::access"))
            .map(str::to_owned)
            .collect()
    }
}

// One thread: the server's tasks, and the commit's, see this test's subscriber.
#[tokio::test(flavor = "current_thread")]
async fn the_log_says_complete_and_stored_truly() {
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let origin = Origin::start(|req| async move {
        if req.uri().path() == "/big" {
            ok("max-age=60", vec![b'x'; 2048])
        } else {
            ok("max-age=60", "hello world")
        }
    })
    .await;
    let gw = Running::start(Gateway::builder(origin.url()).max_object_bytes(1024)).await;
    // Each request on a connection of its own, closed after it: the server may keep a body
    // that has sent all its bytes until the connection's next request, and the line is written
    // when the body goes.
    let fetch = |path: &'static str| {
        let url = gw.url(path);
        async move { get(&client(), &url).await }
    };

    // A miss with a Content-Length, read to its end: complete, and stored.
    let miss = fetch("/small").await;
    assert!(
        miss.cache_status().ends_with("; stored"),
        "{}",
        miss.cache_status()
    );
    assert_eq!(&miss.body[..], b"hello world");
    eventually("the miss's line", 10, || buf.lines().len() == 1).await;
    // Then a hit: complete, nothing stored by it.
    let hit = fetch("/small").await;
    assert!(hit.cache_status().contains("hit"), "{}", hit.cache_status());
    eventually("the hit's line", 10, || buf.lines().len() == 2).await;
    // Past the object size limit by its own Content-Length: not announced as stored, not stored.
    let big = fetch("/big").await;
    assert_eq!(big.body.len(), 2048);
    assert!(
        !big.cache_status().contains("stored"),
        "{}",
        big.cache_status()
    );
    eventually("the big one's line", 10, || buf.lines().len() == 3).await;

    let lines = buf.lines();
    for (line, stored) in lines.iter().zip([true, false, false]) {
        assert!(line.contains("complete=true"), "{line}");
        assert!(line.contains(&format!("stored={stored}")), "{line}");
    }
    assert!(lines[0].contains("bytes=11"), "{}", lines[0]);
    assert!(lines[2].contains("bytes=2048"), "{}", lines[2]);
}
