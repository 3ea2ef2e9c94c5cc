//! RFC 9111 §4.1: responses that vary on request header fields.

use crate::support;

use cachio::{CacheLayer, Policy};
use support::{Harness, memory, ok, reply};

/// An origin whose body names the language it was asked for.
async fn by_language(layer: CacheLayer<cachio::MemoryStore>) -> Harness {
    Harness::with(layer, |s| {
        let lang = s.header("accept-language").unwrap_or("none").to_owned();
        reply(200)
            .cc("max-age=100")
            .header("vary", "Accept-Language")
            .body(lang)
    })
    .await
}

#[tokio::test]
async fn rfc9111_4_1_alternating_variants_both_hit() {
    let h = by_language(CacheLayer::private(memory())).await;
    let get = |lang: &str| h.send(h.req("/r").header("accept-language", lang));
    assert_eq!(get("en").await.text(), "en");
    let de = get("de").await;
    assert_eq!(de.text(), "de");
    assert!(
        de.cache_status().contains("fwd=vary-miss"),
        "{}",
        de.cache_status()
    );
    assert_eq!(h.count(), 2);
    for lang in ["en", "de", "en", "de", "en"] {
        let res = get(lang).await;
        assert!(res.is_hit(), "{lang}: {}", res.cache_status());
        assert_eq!(res.text(), lang);
    }
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_4_1_absent_field_is_its_own_variant() {
    let h = by_language(CacheLayer::private(memory())).await;
    assert_eq!(
        h.send(h.req("/r").header("accept-language", "en"))
            .await
            .text(),
        "en"
    );
    let none = h.get("/r").await;
    assert!(!none.is_hit());
    assert_eq!(none.text(), "none");
    let none = h.get("/r").await;
    assert!(none.is_hit());
    assert_eq!(none.text(), "none");
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_4_1_field_values_are_normalised() {
    let h = Harness::private(|_| ok("x").cc("max-age=100").header("vary", "accept-encoding")).await;
    h.send(h.req("/r").header("accept-encoding", "gzip, br"))
        .await;
    // Two field lines combine into one value (RFC 9110 §5.3), whitespace is not significant.
    let two_lines = h
        .send(
            h.req("/r")
                .header("accept-encoding", "gzip")
                .header("accept-encoding", "br"),
        )
        .await;
    assert!(two_lines.is_hit(), "{}", two_lines.cache_status());
    let spaced = h
        .send(h.req("/r").header("accept-encoding", "gzip ,\tbr"))
        .await;
    assert!(spaced.is_hit(), "{}", spaced.cache_status());
    assert_eq!(h.count(), 1);
    let other = h
        .send(h.req("/r").header("accept-encoding", "identity"))
        .await;
    assert!(!other.is_hit());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_4_1_vary_names_are_case_insensitive_and_listed_fields_all_match() {
    let h = Harness::private(|_| {
        ok("x")
            .cc("max-age=100")
            .header("vary", "Accept-Language")
            .header("vary", "X-Tenant")
    })
    .await;
    let req = |lang: &str, tenant: &str| {
        h.req("/r")
            .header("accept-language", lang)
            .header("x-tenant", tenant)
    };
    h.send(req("en", "a")).await;
    assert!(h.send(req("en", "a")).await.is_hit());
    assert!(!h.send(req("en", "b")).await.is_hit());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_4_1_vary_star_never_matches() {
    let h = Harness::private(|_| ok("x").cc("max-age=100").header("vary", "*")).await;
    h.get("/r").await;
    let again = h.get("/r").await;
    assert!(!again.is_hit(), "{}", again.cache_status());
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_4_1_variants_bounded_by_max_variants() {
    let h =
        by_language(CacheLayer::private(memory()).policy(Policy::private().max_variants(2))).await;
    let get = |lang: &str| h.send(h.req("/r").header("accept-language", lang));
    for lang in ["en", "de", "fr"] {
        assert!(!get(lang).await.is_hit());
    }
    assert_eq!(h.count(), 3);
    // The two most recent are kept, the oldest was dropped.
    assert!(get("de").await.is_hit());
    assert!(get("fr").await.is_hit());
    assert_eq!(h.count(), 3);
    let en = get("en").await;
    assert!(!en.is_hit(), "{}", en.cache_status());
    assert_eq!(en.text(), "en");
    assert_eq!(h.count(), 4);
}

#[tokio::test]
async fn rfc9111_4_1_new_vary_replaces_old_variants() {
    // The resource switches from varying on Accept-Language to not varying at all.
    let h = Harness::private(|s| {
        if s.n == 1 {
            ok("varied")
                .cc("max-age=10")
                .header("vary", "accept-language")
        } else {
            ok("plain").cc("max-age=100")
        }
    })
    .await;
    h.send(h.req("/r").header("accept-language", "en")).await;
    h.advance(20);
    let res = h.send(h.req("/r").header("accept-language", "en")).await;
    assert_eq!(res.text(), "plain");
    for lang in ["en", "de"] {
        let res = h.send(h.req("/r").header("accept-language", lang)).await;
        assert!(res.is_hit(), "{lang}: {}", res.cache_status());
        assert_eq!(res.text(), "plain");
    }
    assert_eq!(h.count(), 2);
}

#[tokio::test]
async fn rfc9111_4_3_stale_variant_revalidated_and_updated() {
    let h = Harness::private(|s| {
        let lang = s.header("accept-language").unwrap_or("none").to_owned();
        let etag = format!("\"{lang}\"");
        if s.header("if-none-match") == Some(etag.as_str()) {
            reply(304)
                .cc("max-age=100")
                .header("vary", "accept-language")
                .header("etag", &etag)
        } else {
            reply(200)
                .cc("max-age=10")
                .header("vary", "accept-language")
                .header("etag", &etag)
                .body(lang)
        }
    })
    .await;
    let get = |lang: &str| h.send(h.req("/r").header("accept-language", lang));
    get("en").await;
    get("de").await;
    h.advance(20);
    let en = get("en").await;
    assert_eq!(h.origin.last().header("if-none-match"), Some("\"en\""));
    assert_eq!(en.text(), "en");
    assert!(
        en.cache_status().contains("fwd-status=304"),
        "{}",
        en.cache_status()
    );
    assert_eq!(h.count(), 3);
    // en is fresh again; de is still stale.
    assert!(get("en").await.is_hit());
    let de = get("de").await;
    assert!(!de.is_hit());
    assert_eq!(de.text(), "de");
    assert_eq!(h.origin.last().header("if-none-match"), Some("\"de\""));
    assert_eq!(h.count(), 4);
}

#[tokio::test]
async fn rfc5861_3_stale_while_revalidate_on_a_variant() {
    let h = Harness::private(|s| {
        let lang = s.header("accept-language").unwrap_or("none").to_owned();
        reply(200)
            .cc("max-age=10, stale-while-revalidate=60")
            .header("vary", "accept-language")
            .body(format!("{lang} #{}", s.n))
    })
    .await;
    let get = |lang: &str| h.send(h.req("/r").header("accept-language", lang));
    get("en").await;
    get("de").await;
    h.advance(20);
    assert_eq!(get("en").await.text(), "en #1");
    support::eventually("the background revalidation", || h.count() == 3).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let en = get("en").await;
        assert!(en.is_hit());
        if en.text() == "en #3" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the variant was never replaced"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    // The other variant is still there (stale, served while it revalidates).
    let de = get("de").await;
    assert!(de.is_hit(), "{}", de.cache_status());
    assert_eq!(de.text(), "de #2");
}
