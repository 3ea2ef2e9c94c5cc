//! HTTPS: ALPN chooses HTTP/2 or HTTP/1.1, the cache works the same over both, and a certificate
//! that cannot be trusted is an error that names the host and the reason, with nothing stored.

use http::Version;

use crate::origin::{self, Ca, Listen, handler, reply};
use crate::{client, client_trusting, is_hit, is_stored, memory, status};

fn fresh() -> origin::Handler {
    handler(|_| reply(200, &[("cache-control", "max-age=60")], "secure"))
}

async fn fetched_twice_over(listen: fn(origin::Leaf) -> Listen, version: Version) {
    let ca = Ca::new("test CA");
    let origin = origin::start(listen(ca.leaf(&["127.0.0.1"], false)), None, fresh()).await;
    let store = memory();
    let client = client_trusting(&store, &ca.pem);

    let res = client
        .get(&origin.https("/page"))
        .await
        .expect("first fetch");
    assert_eq!(res.version(), version, "the protocol ALPN settled on");
    assert_eq!(status(&res), "cachio; fwd=uri-miss; fwd-status=200; stored");
    assert_eq!(res.into_body().text().await.unwrap(), "secure");

    let res = client
        .get(&origin.https("/page"))
        .await
        .expect("second fetch");
    assert!(is_hit(&res), "{}", status(&res));
    assert_eq!(res.into_body().text().await.unwrap(), "secure");
    let seen = origin.seen();
    assert_eq!(seen.len(), 1, "the origin was asked once");
    assert_eq!(seen[0].version, version);
}

#[tokio::test]
async fn rfc9111_https_over_http2_by_alpn_is_stored_and_served() {
    fetched_twice_over(Listen::https, Version::HTTP_2).await;
}

#[tokio::test]
async fn rfc9111_https_over_http1_when_the_origin_offers_only_it() {
    fetched_twice_over(Listen::https_h1, Version::HTTP_11).await;
}

#[tokio::test]
async fn the_server_name_is_the_url_host() {
    let ca = Ca::new("test CA");
    let leaf = ca.leaf(&["localhost"], false);
    let origin = origin::start(Listen::https(leaf), None, fresh()).await;
    let client = client_trusting(&memory(), &ca.pem);
    let url = format!("https://localhost:{}/named", origin.addr.port());
    let res = client.get(&url).await.expect("a certificate for localhost");
    assert_eq!(res.into_body().text().await.unwrap(), "secure");
    assert_eq!(origin.server_names(), [Some("localhost".to_owned())]);
}

/// A certificate the client must refuse: the error is TLS, names the host and gives `reason`;
/// the origin answered nothing and the cache holds nothing for the URL.
async fn refused(leaf: origin::Leaf, trust: Option<&Ca>, reason: &str) {
    let origin = origin::start(Listen::https(leaf), None, fresh()).await;
    let store = memory();
    let client = match trust {
        Some(ca) => client_trusting(&store, &ca.pem),
        None => client(&store),
    };
    let err = client.get(&origin.https("/")).await.unwrap_err();
    assert!(err.is_tls(), "{err:?}");
    assert_eq!(err.host(), Some("127.0.0.1"));
    let msg = err.to_string();
    assert!(msg.contains("127.0.0.1"), "{msg}");
    assert!(msg.contains(reason), "{msg}");
    assert!(origin.seen().is_empty(), "no request got through");
    assert!(!is_stored(&client, &origin.https("/")).await);
}

#[tokio::test]
async fn an_untrusted_certificate_is_an_error_naming_the_host_and_the_reason() {
    let ca = Ca::new("nobody trusts me");
    refused(ca.leaf(&["127.0.0.1"], false), None, "unknown issuer").await;
}

#[tokio::test]
async fn an_expired_certificate_is_an_error_naming_the_host_and_the_reason() {
    let ca = Ca::new("test CA");
    refused(ca.leaf(&["127.0.0.1"], true), Some(&ca), "expired").await;
}

#[tokio::test]
async fn a_certificate_for_another_name_is_an_error_naming_the_host_and_the_reason() {
    let ca = Ca::new("test CA");
    refused(
        ca.leaf(&["elsewhere.test"], false),
        Some(&ca),
        "another name",
    )
    .await;
}

#[tokio::test]
async fn only_the_given_roots_when_the_built_in_ones_are_off() {
    let ca = Ca::new("test CA");
    let origin = origin::start(Listen::https(ca.leaf(&["127.0.0.1"], false)), None, fresh()).await;
    let client = cachio::Client::builder("unused")
        .store(memory())
        .tls_built_in_root_certs(false)
        .root_certificate_pem(ca.pem.as_bytes())
        .build()
        .unwrap();
    let res = client
        .get(&origin.https("/"))
        .await
        .expect("trusted by the given root");
    assert_eq!(res.status(), 200);

    let err = cachio::Client::builder("unused")
        .store(memory())
        .tls_built_in_root_certs(false)
        .build()
        .unwrap_err();
    assert!(err.is_builder(), "{err:?}");
    assert!(err.to_string().contains("no root certificate"), "{err}");
}

#[tokio::test]
async fn a_root_certificate_that_is_not_pem_is_a_builder_error() {
    let err = cachio::Client::builder("unused")
        .store(memory())
        .root_certificate_pem(b"not a certificate")
        .build()
        .unwrap_err();
    assert!(err.is_builder(), "{err:?}");
    assert!(err.to_string().contains("root certificate"), "{err}");
}
