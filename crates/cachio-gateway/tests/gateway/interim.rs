//! Interim (1xx) responses (RFC 9110 §15.2): forwarded to HTTP/1.1 clients as they arrive, before
//! the final response, and never stored. The origin writes its answers by hand, since hyper's
//! server sends final responses only.

use crate::support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cachio_gateway::Gateway;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use support::{Gate, Running, client};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HINTS: &str =
    "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nLink: </b.js>; rel=preload\r\n\r\n";
const FINAL: &str =
    "HTTP/1.1 200 OK\r\nCache-Control: max-age=60\r\nContent-Length: 5\r\n\r\nhello";

/// An origin on raw TCP: for each request (without a body) it writes `interim`, waits at `gate`,
/// then writes `FINAL`. Counts the requests.
async fn origin(interim: &'static str, gate: Gate) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let c = count.clone();
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            let (c, gate) = (c.clone(), gate.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let mut chunk = [0u8; 4096];
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..end + 4);
                        c.fetch_add(1, Ordering::SeqCst);
                        sock.write_all(interim.as_bytes()).await.unwrap();
                        gate.wait(Duration::from_secs(10)).await;
                        sock.write_all(FINAL.as_bytes()).await.unwrap();
                    }
                }
            });
        }
    });
    (addr, count)
}

/// A gate that is open from the start: the origin answers at once.
fn open() -> Gate {
    let gate = Gate::closed();
    gate.open();
    gate
}

/// Reads one response head (up to its blank line) from `sock`, with `rest` holding bytes read
/// past it.
async fn read_head(sock: &mut (impl AsyncRead + Unpin), rest: &mut Vec<u8>) -> String {
    loop {
        if let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(rest[..end + 4].to_vec()).unwrap();
            rest.drain(..end + 4);
            return head;
        }
        let mut chunk = [0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(10), sock.read(&mut chunk))
            .await
            .expect("a response head within 10 s")
            .unwrap();
        assert!(
            n > 0,
            "the connection closed; got {:?}",
            String::from_utf8_lossy(rest)
        );
        rest.extend_from_slice(&chunk[..n]);
    }
}

/// Reads a final response's body of `Content-Length` bytes.
async fn read_body(sock: &mut TcpStream, head: &str, rest: &mut Vec<u8>) -> Vec<u8> {
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length: ")
                .map(str::to_owned)
        })
        .expect("a Content-Length")
        .trim()
        .parse()
        .unwrap();
    while rest.len() < len {
        let mut chunk = [0u8; 4096];
        let n = sock.read(&mut chunk).await.unwrap();
        assert!(n > 0, "the body was cut short");
        rest.extend_from_slice(&chunk[..n]);
    }
    rest.drain(..len).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_15_2_a_103_reaches_the_client_while_the_origin_works_and_is_not_stored() {
    let gate = Gate::closed();
    let (addr, count) = origin(HINTS, gate.clone()).await;
    let gw = Running::start(Gateway::builder(format!("http://{addr}"))).await;

    let mut sock = TcpStream::connect(gw.addr).await.unwrap();
    sock.write_all(b"GET /page HTTP/1.1\r\nHost: example.test\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    // The 103 arrives while the origin holds its final response back.
    let interim = read_head(&mut sock, &mut rest).await;
    assert_eq!(
        interim,
        "HTTP/1.1 103 Early Hints\r\nlink: </a.css>; rel=preload\r\nlink: </b.js>; rel=preload\r\n\
         via: 1.1 cachio\r\n\r\n"
    );
    assert!(
        rest.is_empty(),
        "more than the 103 before the origin answered"
    );
    gate.open();
    let head = read_head(&mut sock, &mut rest).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("fwd=uri-miss"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("link:"), "{head}");
    assert_eq!(read_body(&mut sock, &head, &mut rest).await, b"hello");

    // The final response was stored, without the interim's fields; a hit has no interim
    // response, on the same connection.
    let stats = gw.gateway.stats();
    support::eventually("stored", 10, || stats.snapshot().stores == 1).await;
    sock.write_all(b"GET /page HTTP/1.1\r\nHost: example.test\r\n\r\n")
        .await
        .unwrap();
    let head = read_head(&mut sock, &mut rest).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(head.contains("hit"), "{head}");
    assert!(!head.to_ascii_lowercase().contains("link:"), "{head}");
    assert_eq!(read_body(&mut sock, &head, &mut rest).await, b"hello");
    assert_eq!(count.load(Ordering::SeqCst), 1);

    // The next miss on the connection gets its own 103, framed as before.
    sock.write_all(b"GET /other HTTP/1.1\r\nHost: example.test\r\n\r\n")
        .await
        .unwrap();
    assert_eq!(read_head(&mut sock, &mut rest).await, interim);
    let head = read_head(&mut sock, &mut rest).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(read_body(&mut sock, &head, &mut rest).await, b"hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_15_2_a_hyper_client_sees_each_interim_response_in_order() {
    let (addr, _) = origin(
        "HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
        open(),
    )
    .await;
    let gw = Running::start(Gateway::builder(format!("http://{addr}"))).await;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let mut req = Request::get(gw.url("/seen"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let s = seen.clone();
    hyper::ext::on_informational(&mut req, move |res| {
        let link = res
            .headers()
            .get("link")
            .map(|v| v.to_str().unwrap().to_owned());
        s.lock().unwrap().push((res.status().as_u16(), link));
    });
    let res = client().request(req).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "hello");
    assert_eq!(
        *seen.lock().unwrap(),
        [(102, None), (103, Some("</a.css>; rel=preload".to_owned()))]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_15_2_http_1_0_and_http_2_clients_get_the_final_response_only() {
    let (addr, _) = origin(HINTS, open()).await;
    let gw = Running::start(Gateway::builder(format!("http://{addr}"))).await;

    // An HTTP/1.0 client must not receive a 1xx.
    let mut sock = TcpStream::connect(gw.addr).await.unwrap();
    sock.write_all(b"GET /old HTTP/1.0\r\nHost: example.test\r\n\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let head = read_head(&mut sock, &mut rest).await;
    assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
    assert_eq!(read_body(&mut sock, &head, &mut rest).await, b"hello");

    // hyper cannot send a 1xx on HTTP/2: the stream carries the final response, intact.
    let h2 = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    let res = h2.get(gw.url("/h2").parse().unwrap()).await.unwrap();
    assert_eq!(res.version(), http::Version::HTTP_2);
    assert_eq!(res.status(), 200);
    assert_eq!(res.into_body().collect().await.unwrap().to_bytes(), "hello");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9112_9_3_2_pipelined_requests_each_get_their_interim_response_before_their_own_final_one()
 {
    let (addr, count) = origin(HINTS, open()).await;
    let gw = Running::start(Gateway::builder(format!("http://{addr}"))).await;

    let mut sock = TcpStream::connect(gw.addr).await.unwrap();
    let mut pipelined = String::new();
    for path in ["/p1", "/p2", "/p3"] {
        pipelined.push_str(&format!(
            "GET {path} HTTP/1.1\r\nHost: example.test\r\n\r\n"
        ));
    }
    sock.write_all(pipelined.as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    for _ in 0..3 {
        let interim = read_head(&mut sock, &mut rest).await;
        assert!(interim.starts_with("HTTP/1.1 103 "), "{interim}");
        let head = read_head(&mut sock, &mut rest).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert_eq!(read_body(&mut sock, &head, &mut rest).await, b"hello");
    }
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc9110_10_1_1_expect_100_continue_gets_one_100_and_the_body_reaches_the_origin() {
    let origin = support::Origin::start(|req| async move {
        let body = req.into_body().collect().await.unwrap().to_bytes();
        support::ok(
            "no-store",
            format!("got {}", String::from_utf8_lossy(&body)),
        )
    })
    .await;
    let gw = Running::start(Gateway::builder(origin.url())).await;

    let mut sock = TcpStream::connect(gw.addr).await.unwrap();
    sock.write_all(
        b"POST /upload HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await
    .unwrap();
    let mut rest = Vec::new();
    // The gateway's own 100 asks for the body; the origin's (if it sends one) is not repeated.
    let interim = read_head(&mut sock, &mut rest).await;
    assert_eq!(interim, "HTTP/1.1 100 Continue\r\n\r\n");
    sock.write_all(b"hello").await.unwrap();
    let head = read_head(&mut sock, &mut rest).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert_eq!(read_body(&mut sock, &head, &mut rest).await, b"got hello");
    assert_eq!(origin.state.count(), 1);
}
