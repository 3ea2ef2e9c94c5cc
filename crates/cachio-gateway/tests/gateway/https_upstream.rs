//! `https://` upstreams: TLS with the host as server name, trust in a given CA only, HTTP/2
//! when the origin offers it, a client certificate for an origin that asks for one, and `502`
//! (with the reason in the log, nothing stored) for a certificate that cannot be trusted.

use crate::certs::{Ca, HttpsOrigin};
use crate::support;

use std::io::Write;
use std::sync::{Arc, Mutex};

use cachio_gateway::{Gateway, GatewayError};
use http::Version;
use support::{Running, client, get};

const BOTH: &[&[u8]] = &[b"h2", b"http/1.1"];
const H1: &[&[u8]] = &[b"http/1.1"];

#[tokio::test]
async fn an_https_origin_signed_by_the_given_ca_is_fetched_once_and_served_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("origin CA");
    let origin = HttpsOrigin::start(&ca.leaf(), H1, None).await;
    let gw =
        Running::start(Gateway::builder(origin.url()).upstream_ca(ca.write(dir.path(), "ca.pem")))
            .await;
    let c = client();

    let first = get(&c, &gw.url("/page")).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body, "secure");
    assert_eq!(
        first.cache_status(),
        "cachio; fwd=uri-miss; fwd-status=200; stored"
    );
    let second = get(&c, &gw.url("/page")).await;
    assert_eq!(second.body, "secure");
    assert!(
        second.cache_status().starts_with("cachio; hit"),
        "{}",
        second.cache_status()
    );

    let seen = origin.seen();
    assert_eq!(seen.len(), 1, "the origin was asked once: {seen:?}");
    assert_eq!(seen[0].path, "/page");
    assert_eq!(
        seen[0].version,
        Version::HTTP_11,
        "the origin offered HTTP/1.1 only"
    );
    assert_eq!(
        seen[0].sni.as_deref(),
        Some("localhost"),
        "SNI is the upstream's host"
    );
}

#[tokio::test]
async fn http2_to_the_origin_when_it_offers_h2_by_alpn() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("origin CA");
    let origin = HttpsOrigin::start(&ca.leaf(), BOTH, None).await;
    let gw =
        Running::start(Gateway::builder(origin.url()).upstream_ca(ca.write(dir.path(), "ca.pem")))
            .await;
    let c = client();
    for path in ["/a", "/b", "/c"] {
        let got = get(&c, &gw.url(path)).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body, "secure");
    }
    let seen = origin.seen();
    assert_eq!(seen.len(), 3);
    assert!(
        seen.iter().all(|s| s.version == Version::HTTP_2),
        "every request went over HTTP/2: {seen:?}"
    );
    assert_eq!(
        origin.handshakes.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one connection carried them all"
    );
}

#[tokio::test]
async fn an_origin_that_requires_a_client_certificate_gets_the_configured_one() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::new("origin CA");
    let clients = Ca::new("client CA");
    let origin = HttpsOrigin::start(&ca.leaf(), BOTH, Some(&clients)).await;
    let ca_file = ca.write(dir.path(), "ca.pem");
    let (cert, key) = clients.leaf().write(dir.path(), "gateway");

    let with = Running::start(
        Gateway::builder(origin.url())
            .upstream_ca(&ca_file)
            .upstream_client_cert(cert, key),
    )
    .await;
    let got = get(&client(), &with.url("/mtls")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, "secure");
    assert_eq!(origin.seen().len(), 1);

    let without = Running::start(Gateway::builder(origin.url()).upstream_ca(&ca_file)).await;
    let got = get(&client(), &without.url("/mtls")).await;
    // In TLS 1.3 the origin refuses the missing certificate once the client's side of the
    // handshake is done; over HTTP/2 the refusal reaches the gateway as a failed connection.
    assert_eq!(got.status, 502, "{got:?}");
    assert!(
        got.cache_status().contains("detail=origin-"),
        "{}",
        got.cache_status()
    );
    assert_eq!(
        origin.seen().len(),
        1,
        "no request got through without a certificate"
    );
}

/// Collects what the gateway logs on the current thread.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

// On one thread, so that the log subscriber set for it sees the gateway's tasks.
#[tokio::test(flavor = "current_thread")]
async fn an_untrusted_certificate_is_a_502_with_the_reason_logged_and_nothing_stored() {
    let log = Log::default();
    let writer = log.clone();
    let _guard = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish(),
    );
    let dir = tempfile::tempdir().unwrap();
    let signer = Ca::new("nobody trusts me");
    let trusted = Ca::new("the CA the gateway trusts");
    let origin = HttpsOrigin::start(&signer.leaf(), BOTH, None).await;
    let gw = Running::start(
        Gateway::builder(origin.url()).upstream_ca(trusted.write(dir.path(), "ca.pem")),
    )
    .await;
    let c = client();
    for _ in 0..2 {
        let got = get(&c, &gw.url("/untrusted")).await;
        assert_eq!(got.status, 502, "{got:?}");
        assert!(
            !got.cache_status().contains("hit"),
            "{}",
            got.cache_status()
        );
        assert!(
            got.cache_status().contains("origin-tls-error"),
            "{}",
            got.cache_status()
        );
    }
    assert_eq!(
        origin.seen().len(),
        0,
        "no request was sent, in TLS or in plain text"
    );
    assert_eq!(gw.gateway.stats().snapshot().stores, 0, "nothing stored");
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.contains("TLS with the origin failed")
            && text.contains("not signed by a trusted authority (unknown issuer)"),
        "the log says why:\n{text}"
    );
}

#[test]
fn tls_files_are_checked_when_the_gateway_is_built() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let err = Gateway::builder("https://localhost:1")
        .upstream_ca(&missing)
        .build()
        .unwrap_err();
    assert!(matches!(err, GatewayError::Tls(_)), "{err:?}");
    assert!(err.to_string().contains("missing.pem"), "{err}");

    let not_pem = dir.path().join("not.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let err = Gateway::builder("https://localhost:1")
        .upstream_ca(&not_pem)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("no CERTIFICATE"), "{err}");

    // TLS settings for a plain upstream would do nothing: refused.
    let ca = Ca::new("ca");
    let err = Gateway::builder("http://localhost:1")
        .upstream_ca(ca.write(dir.path(), "ca.pem"))
        .build()
        .unwrap_err();
    assert!(matches!(err, GatewayError::Config(_)), "{err:?}");
}
