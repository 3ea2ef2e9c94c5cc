//! The TLS listener: HTTP/2 and HTTP/1.1 by ALPN, certificate reload without a failed request,
//! a bad file on reload keeping the old certificate, and graceful shutdown over TLS.

use crate::certs::{Ca, fetch_new_connection, https_client};
use crate::support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cachio_gateway::{Gateway, GatewayError, ServerTls};
use http::{Response, Version};
use http_body_util::BodyExt;
use http_body_util::channel::Channel;
use support::{Gate, Origin, ok};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A gateway served over TLS on an ephemeral port, in front of `origin`.
struct TlsGateway {
    addr: SocketAddr,
    tls: ServerTls,
    shutdown: Option<oneshot::Sender<()>>,
    served: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TlsGateway {
    async fn start(origin: &Origin, cert: PathBuf, key: PathBuf) -> TlsGateway {
        let tls = ServerTls::from_pem_files(cert, key).expect("the certificate loads");
        let router = Gateway::builder(origin.url())
            .build()
            .unwrap()
            .into_router();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel();
        let served = tokio::spawn(cachio_gateway::serve_tls(
            listener,
            router,
            tls.clone(),
            async {
                let _ = rx.await;
            },
        ));
        TlsGateway {
            addr,
            tls,
            shutdown: Some(tx),
            served,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{path}", self.addr.port())
    }
}

#[tokio::test]
async fn https_clients_get_http2_or_http1_as_alpn_settles_and_the_cache_answers_both() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("listener CA");
    let (cert, key) = ca.leaf().write(dir.path(), "server");
    let origin = Origin::start(|_req| async { ok("max-age=60", "over tls") }).await;
    let gw = TlsGateway::start(&origin, cert, key).await;

    for (version, status) in [
        (
            Version::HTTP_2,
            "cachio; fwd=uri-miss; fwd-status=200; stored",
        ),
        (Version::HTTP_11, "cachio; hit; ttl=60"),
    ] {
        let client = https_client(&ca, version);
        let res = client.get(gw.url("/page").parse().unwrap()).await.unwrap();
        assert_eq!(res.version(), version, "the protocol ALPN settled on");
        assert_eq!(res.headers()["cache-status"], status);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "over tls");
    }
    assert_eq!(origin.state.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_serves_the_new_certificate_to_new_connections_and_no_request_fails() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("listener CA");
    let (old, new) = (ca.leaf(), ca.leaf());
    let (cert, key) = old.write(dir.path(), "server");
    let origin = Origin::start(|_req| async { ok("no-store", "fine") }).await;
    let gw = TlsGateway::start(&origin, cert, key).await;
    assert_eq!(
        fetch_new_connection(gw.addr, &ca, "/").await.unwrap().cert,
        old.der()
    );

    // A connection opened before the reload, used again after it.
    let h2 = https_client(&ca, Version::HTTP_2);
    let res = h2.get(gw.url("/before").parse().unwrap()).await.unwrap();
    assert_eq!(res.status(), 200);

    // Requests on new connections, without a pause, across the reload.
    let stop = Arc::new(AtomicBool::new(false));
    let (addr, ca2, stop2) = (gw.addr, Arc::new(ca), stop.clone());
    let ca_for_loop = ca2.clone();
    let requests = tokio::spawn(async move {
        let mut certs = Vec::new();
        for _ in 0..2000 {
            let got = fetch_new_connection(addr, &ca_for_loop, "/loop").await;
            let got = got.expect("every request during the reload succeeds");
            assert_eq!(got.status, 200);
            assert_eq!(got.body, "fine");
            certs.push(got.cert);
            if stop2.load(Ordering::SeqCst) {
                break;
            }
        }
        certs
    });
    support::eventually("requests before the reload", 10, || {
        origin.state.count() >= 5
    })
    .await;
    new.write(dir.path(), "server");
    gw.tls.reload().expect("the new files load");
    let after = origin.state.count();
    support::eventually("requests after the reload", 10, || {
        origin.state.count() >= after + 5
    })
    .await;
    stop.store(true, Ordering::SeqCst);
    let certs = requests.await.unwrap();
    assert!(
        certs.first() == Some(&old.der()),
        "the loop began with the old certificate"
    );
    assert!(
        certs.last() == Some(&new.der()),
        "and ended with the new one"
    );
    let switched = certs.iter().position(|c| *c == new.der()).unwrap();
    assert!(
        certs[switched..].iter().all(|c| *c == new.der()),
        "once served, the new certificate stays"
    );

    let res = h2.get(gw.url("/after").parse().unwrap()).await.unwrap();
    assert_eq!(
        res.status(),
        200,
        "the connection opened before the reload still works"
    );
    let fresh = fetch_new_connection(gw.addr, &ca2, "/").await.unwrap();
    assert_eq!(fresh.cert, new.der());
}

#[tokio::test]
async fn a_file_that_cannot_be_used_on_reload_keeps_the_old_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("listener CA");
    let old = ca.leaf();
    let (cert, key) = old.write(dir.path(), "server");
    let origin = Origin::start(|_req| async { ok("no-store", "fine") }).await;
    let gw = TlsGateway::start(&origin, cert.clone(), key.clone()).await;

    // A key that is not PEM.
    std::fs::write(&key, "garbage").unwrap();
    let err = gw.tls.reload().unwrap_err();
    assert!(matches!(err, GatewayError::Tls(_)), "{err:?}");
    assert!(err.to_string().contains("server.key"), "{err}");
    let got = fetch_new_connection(gw.addr, &ca, "/").await.unwrap();
    assert_eq!(got.cert, old.der());
    assert_eq!(got.body, "fine");

    // A certificate and a key that do not belong together.
    let other = ca.leaf();
    std::fs::write(&cert, &other.cert_pem).unwrap();
    std::fs::write(&key, &old.key_pem).unwrap();
    let err = gw.tls.reload().unwrap_err();
    assert!(err.to_string().contains("server.pem"), "{err}");
    assert_eq!(
        fetch_new_connection(gw.addr, &ca, "/").await.unwrap().cert,
        old.der()
    );

    // A missing file.
    std::fs::remove_file(&cert).unwrap();
    assert!(gw.tls.reload().is_err());
    assert_eq!(
        fetch_new_connection(gw.addr, &ca, "/").await.unwrap().cert,
        old.der()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_response_in_flight_completes_after_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("listener CA");
    let (cert, key) = ca.leaf().write(dir.path(), "server");
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
    let mut gw = TlsGateway::start(&origin, cert, key).await;
    let client = https_client(&ca, Version::HTTP_2);
    let res = client.get(gw.url("/slow").parse().unwrap()).await.unwrap();
    assert_eq!(res.version(), Version::HTTP_2);
    let mut body = res.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "first half, ");

    let _ = gw.shutdown.take().unwrap().send(());
    support::eventually("the listener closes", 10, || {
        std::net::TcpStream::connect(gw.addr).is_err()
    })
    .await;
    assert!(
        !gw.served.is_finished(),
        "the server waits for the response in flight"
    );

    gate.open();
    let mut rest = Vec::new();
    while let Some(frame) = body.frame().await {
        rest.extend_from_slice(&frame.unwrap().into_data().unwrap());
    }
    assert_eq!(rest, b"second half");
    tokio::time::timeout(Duration::from_secs(10), gw.served)
        .await
        .expect("the server stops once the response is done")
        .unwrap()
        .unwrap();
}
