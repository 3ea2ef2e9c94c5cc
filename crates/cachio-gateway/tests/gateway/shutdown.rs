//! Graceful shutdown: a response in flight completes; new connections are refused.

use crate::support;

use std::time::Duration;

use bytes::Bytes;
use cachio_gateway::Gateway;
use http::Response;
use http_body_util::BodyExt;
use http_body_util::channel::Channel;
use support::{Gate, Origin, Running, client};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_response_in_flight_completes_after_shutdown_and_new_connections_are_refused() {
    let gate = Gate::closed();
    let g = gate.clone();
    let origin = Origin::start(move |_req| {
        let g = g.clone();
        async move {
            let (mut tx, body) = Channel::<Bytes, std::convert::Infallible>::new(1);
            tokio::spawn(async move {
                let _ = tx.send_data(Bytes::from_static(b"first half, ")).await;
                g.wait(Duration::from_secs(20)).await;
                let _ = tx.send_data(Bytes::from_static(b"second half")).await;
            });
            Response::builder()
                .header("cache-control", "no-store")
                .body(body.map_err(|e| match e {}).boxed())
                .unwrap()
        }
    })
    .await;
    let mut gw = Running::start(Gateway::builder(origin.url())).await;
    let c = client();
    let res = c.get(gw.url("/slow").parse().unwrap()).await.unwrap();
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "first half, ");

    gw.signal_shutdown();
    // The listener closes: new connections are refused.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match tokio::net::TcpStream::connect(gw.addr).await {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            // A handshake that raced with the listener's closing is reset: try again.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => panic!("connecting failed otherwise: {e}"),
            Ok(_) => {
                assert!(tokio::time::Instant::now() < deadline, "still accepting");
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let served = gw.served.take().unwrap();
    assert!(
        !served.is_finished(),
        "the server waits for the response in flight"
    );

    // The response in flight completes.
    gate.open();
    let mut rest = Vec::new();
    while let Some(frame) = body.frame().await {
        rest.extend_from_slice(&frame.unwrap().into_data().unwrap());
    }
    assert_eq!(rest, b"second half");
    tokio::time::timeout(Duration::from_secs(10), served)
        .await
        .expect("the server stops once the response is done")
        .unwrap()
        .unwrap();
}
