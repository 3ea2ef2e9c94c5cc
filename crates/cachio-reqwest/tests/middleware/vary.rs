//! RFC 9111 §4.1: responses that vary.

use crate::support::{Harness, ok};

#[tokio::test]
async fn rfc9111_4_1_two_variants_are_stored_side_by_side() {
    let h = Harness::private(|s| {
        let body = match s.header("accept-language") {
            Some("fr") => "bonjour",
            _ => "hello",
        };
        ok(body).cc("max-age=60").header("vary", "accept-language")
    })
    .await;
    let en = || h.get_req("/greeting").header("accept-language", "en");
    let fr = || h.get_req("/greeting").header("accept-language", "fr");
    assert_eq!(h.send(en()).await.text(), "hello");
    assert_eq!(h.send(fr()).await.text(), "bonjour");
    assert_eq!(h.count(), 2);
    let en_hit = h.send(en()).await;
    let fr_hit = h.send(fr()).await;
    assert!(en_hit.is_hit() && fr_hit.is_hit());
    assert_eq!(en_hit.text(), "hello");
    assert_eq!(fr_hit.text(), "bonjour");
    assert_eq!(h.count(), 2);
    // A third value is a variant not stored yet.
    let de = h
        .send(h.get_req("/greeting").header("accept-language", "de"))
        .await;
    assert!(
        de.cache_status().contains("fwd=vary-miss"),
        "{}",
        de.cache_status()
    );
    assert_eq!(h.count(), 3);
}
