//! The forwarding fields the gateway owns: a client cannot poison the cache through headers the
//! origin reflects, and the fields of trusted proxies are kept and appended to.

use crate::support;

use cachio_gateway::{Cidr, ForwardedHeaders, Gateway};
use http::Response;
use support::{Origin, Running, client, eventually, full, get, send};

/// The headers a client could use to make an origin that reflects them change a cached page.
const REFLECTED: [&str; 8] = [
    "x-forwarded-host",
    "x-host",
    "x-forwarded-scheme",
    "x-forwarded-proto",
    "x-original-url",
    "x-rewrite-url",
    "forwarded",
    "x-http-method-override",
];

/// An origin that writes each of [`REFLECTED`] it receives into a cacheable page, as origins
/// that build absolute links or pick a page from them do.
async fn reflecting_origin() -> Origin {
    Origin::start(|req| async move {
        let mut body = String::new();
        for name in REFLECTED {
            for v in req.headers().get_all(name) {
                body.push_str(&format!("{name}: {}\n", v.to_str().unwrap_or("?")));
            }
        }
        Response::builder()
            .header("cache-control", "max-age=600")
            .body(full(body))
            .unwrap()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reflected_header_cannot_poison_the_page_a_plain_client_gets() {
    let origin = reflecting_origin().await;
    let gw = Running::start(Gateway::builder(origin.url())).await;
    let stats = gw.gateway.stats();
    let c = client();
    for (i, name) in REFLECTED.into_iter().enumerate() {
        let path = format!("/page-{i}");
        let evil = format!("evil-{i}.example");
        let attack = send(&c, "GET", &gw.url(&path), &[(name, &evil)]).await;
        assert_eq!(attack.status, 200, "{name}");
        assert!(
            !String::from_utf8_lossy(&attack.body).contains("evil"),
            "{name} reached the origin:\n{:?}",
            attack.body
        );
        eventually("stored", 10, || stats.snapshot().stores == i as u64 + 1).await;
        let plain = get(&c, &gw.url(&path)).await;
        assert!(plain.cache_status().contains("hit"), "{name}: {plain:?}");
        assert!(
            !String::from_utf8_lossy(&plain.body).contains("evil"),
            "{name} poisoned the cache:\n{:?}",
            plain.body
        );
    }
    assert_eq!(origin.state.count(), REFLECTED.len());
    // What the origin saw instead: the gateway's own account of the connection.
    let seen = origin.state.last();
    let host = gw.addr.to_string();
    assert_eq!(seen.headers["x-forwarded-host"], host.as_str());
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(
        seen.headers["forwarded"],
        format!("for=127.0.0.1;host=\"{host}\";proto=http").as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rfc7239_a_trusted_proxys_chain_is_appended_to_and_an_untrusted_ones_dropped() {
    let origin = Origin::start(|_req| async { support::ok("no-store", "") }).await;
    let c = client();
    let from_proxy = [
        ("x-forwarded-for", "203.0.113.9"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "www.example.test"),
        ("x-real-ip", "203.0.113.9"),
        ("forwarded", "for=203.0.113.9;proto=https"),
        ("host", "www.example.test"),
    ];

    // The test client connects from 127.0.0.1: trusted here.
    let trusted: Cidr = "127.0.0.0/8".parse().unwrap();
    let gw = Running::start(Gateway::builder(origin.url()).trusted_proxies([trusted])).await;
    send(&c, "GET", &gw.url("/t"), &from_proxy).await;
    let seen = origin.state.last();
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    assert_eq!(seen.headers["x-forwarded-host"], "www.example.test");
    assert_eq!(seen.headers["x-real-ip"], "203.0.113.9");
    assert_eq!(
        seen.headers["forwarded"],
        "for=203.0.113.9;proto=https, for=127.0.0.1;host=www.example.test;proto=http"
    );

    // Not trusted: its fields are dropped and replaced by the gateway's.
    let elsewhere: Cidr = "10.0.0.0/8".parse().unwrap();
    let gw = Running::start(Gateway::builder(origin.url()).trusted_proxies([elsewhere])).await;
    send(&c, "GET", &gw.url("/u"), &from_proxy).await;
    let seen = origin.state.last();
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-forwarded-host"], "www.example.test");
    assert!(!seen.headers.contains_key("x-real-ip"));
    assert_eq!(
        seen.headers["forwarded"],
        "for=127.0.0.1;host=www.example.test;proto=http"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forwarding_fields_set_are_configurable() {
    let origin = Origin::start(|_req| async { support::ok("no-store", "") }).await;
    let c = client();
    let attack = [("x-forwarded-for", "6.6.6.6"), ("forwarded", "for=6.6.6.6")];
    for (set, forwarded, x_forwarded) in [
        (ForwardedHeaders::Forwarded, true, false),
        (ForwardedHeaders::XForwarded, false, true),
        (ForwardedHeaders::None, false, false),
    ] {
        let gw = Running::start(Gateway::builder(origin.url()).forwarded_headers(set)).await;
        send(&c, "GET", &gw.url("/f"), &attack).await;
        let seen = origin.state.last();
        assert_eq!(seen.headers.contains_key("forwarded"), forwarded, "{set:?}");
        assert_eq!(
            seen.headers.contains_key("x-forwarded-for"),
            x_forwarded,
            "{set:?}"
        );
        assert_eq!(
            seen.headers.contains_key("x-forwarded-proto"),
            x_forwarded,
            "{set:?}"
        );
        let all: Vec<_> = seen.headers.values().collect();
        assert!(
            !all.iter().any(|v| v.to_str().unwrap().contains("6.6.6.6")),
            "{set:?}: {:?}",
            seen.headers
        );
    }
}
