//! The tiered store (`cachio_core::tiered::Tiered`) over two memory stores: the shared storage
//! behaviour, promotion from the second tier, and updates and deletes reaching both tiers.

use bytes::Bytes;
use cachio_core::store::Store;
use cachio_core::tiered::Tiered;
use cachio_moka::MokaStore;
use cachio_storage_tests as behaviour;
use cachio_storage_tests::{put, read_body, sample_meta};

fn tiers() -> Tiered<MokaStore, MokaStore> {
    // The first tier is small: bodies over 1 MiB live in the second tier only.
    let first = MokaStore::builder()
        .max_capacity_bytes(8 << 20)
        .max_body_size(1 << 20)
        .build();
    Tiered::new(first, MokaStore::new(256 << 20))
}

cachio_storage_tests::behaviours! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    |_| tiers()
}

#[tokio::test]
async fn writes_reach_both_tiers_when_the_body_fits_the_first() {
    let t = tiers();
    put(&t, "small", sample_meta("s"), &[b"abc", b"def"]).await;
    assert!(
        t.first().get("small").await.unwrap().is_some(),
        "small body missing from the first tier"
    );
    assert!(
        t.second().get("small").await.unwrap().is_some(),
        "small body missing from the second tier"
    );

    let big = vec![7u8; 2 << 20];
    put(&t, "big", sample_meta("b"), &[&big]).await;
    assert!(
        t.first().get("big").await.unwrap().is_none(),
        "a body over the first tier's limit was kept there"
    );
    let hit = t
        .get("big")
        .await
        .unwrap()
        .expect("big body readable through the tiers");
    assert_eq!(read_body(hit.body).await.unwrap(), big);
}

#[tokio::test]
async fn a_second_tier_hit_is_promoted_once_read_to_the_end() {
    let t = tiers();
    put(t.second(), "k", sample_meta("p"), &[b"hello ", b"world"]).await;
    assert!(t.first().get("k").await.unwrap().is_none());

    let hit = t.get("k").await.unwrap().expect("second tier hit");
    assert_eq!(read_body(hit.body).await.unwrap(), b"hello world");

    let promoted = t
        .first()
        .get("k")
        .await
        .unwrap()
        .expect("promoted into the first tier");
    assert_eq!(read_body(promoted.body).await.unwrap(), b"hello world");
}

#[tokio::test]
async fn a_promotion_abandoned_midway_leaves_nothing_in_the_first_tier() {
    use http_body_util::BodyExt;
    let t = tiers();
    // Chunks of the size the memory store stores its pieces in, so it keeps them apart.
    let (a, b) = (vec![1u8; 64 * 1024], vec![2u8; 64 * 1024]);
    put(t.second(), "k", sample_meta("p"), &[&a, &b]).await;
    let hit = t.get("k").await.unwrap().unwrap();
    let mut body = hit.body;
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, Bytes::from(a));
    drop(body);
    assert!(
        t.first().get("k").await.unwrap().is_none(),
        "a partial body reached the first tier"
    );
}

#[tokio::test]
async fn delete_and_update_reach_both_tiers() {
    let t = tiers();
    put(&t, "k", sample_meta("a"), &[b"body"]).await;
    assert!(
        t.update("k", &sample_meta("a"), sample_meta("b"), None)
            .await
            .unwrap()
    );
    for (tier, hit) in [
        ("first", t.first().get("k").await.unwrap()),
        ("second", t.second().get("k").await.unwrap()),
    ] {
        let hit = hit.unwrap_or_else(|| panic!("{tier} tier lost the entry on update"));
        behaviour::assert_meta_eq(tier, &sample_meta("b"), &hit.meta);
    }
    t.delete("k").await.unwrap();
    assert!(t.first().get("k").await.unwrap().is_none());
    assert!(t.second().get("k").await.unwrap().is_none());
    assert!(t.get("k").await.unwrap().is_none());
}

#[tokio::test]
async fn a_first_tier_hit_is_given_at_once_and_anything_else_is_left_to_get() {
    let t = tiers();
    put(&t, "both", sample_meta("b"), &[b"abc"]).await;
    put(t.second(), "second", sample_meta("s"), &[b"def"]).await;

    let hit = t
        .try_get("both")
        .expect("a memory first tier answers at once")
        .unwrap()
        .expect("stored in both tiers");
    assert_eq!(read_body(hit.body).await.unwrap(), b"abc");

    // Only the second tier holds it: `try_get` declines, `get` finds it.
    assert!(t.try_get("second").is_none());
    assert!(t.try_get("nowhere").is_none());
    let hit = t.get("second").await.unwrap().expect("second tier hit");
    assert_eq!(read_body(hit.body).await.unwrap(), b"def");
}

/// The tag a [`sample_meta`] carries.
fn tag(meta: &cachio_core::meta::Meta) -> Vec<u8> {
    let fields = meta.as_response().expect("a response").fields();
    let name = http::HeaderName::from_static("x-tag");
    fields.get_all(&name).next().expect("x-tag").to_vec()
}

#[tokio::test]
async fn a_promotion_racing_a_delete_does_not_bring_the_entry_back() {
    let t = tiers();
    put(t.second(), "k", sample_meta("old"), &[b"hello"]).await;
    let hit = t.get("k").await.unwrap().expect("second tier hit");
    t.delete("k").await.unwrap();
    // The read that started before the delete still gets its whole body.
    assert_eq!(read_body(hit.body).await.unwrap(), b"hello");
    assert!(
        t.first().get("k").await.unwrap().is_none(),
        "the promotion put a deleted entry back in the first tier"
    );
    assert!(t.get("k").await.unwrap().is_none());
}

#[tokio::test]
async fn a_promotion_racing_a_replacement_does_not_hide_the_new_entry() {
    let t = tiers();
    put(t.second(), "k", sample_meta("old"), &[b"old body"]).await;
    let hit = t.get("k").await.unwrap().expect("second tier hit");
    put(&t, "k", sample_meta("new"), &[b"new body"]).await;
    assert_eq!(read_body(hit.body).await.unwrap(), b"old body");
    let now = t.get("k").await.unwrap().expect("the new entry");
    assert_eq!(
        tag(&now.meta),
        b"new",
        "the old entry came back over the new"
    );
    assert_eq!(read_body(now.body).await.unwrap(), b"new body");
}

#[tokio::test]
async fn a_promotion_racing_an_update_does_not_undo_it() {
    let t = tiers();
    put(t.second(), "k", sample_meta("a"), &[b"body"]).await;
    let hit = t.get("k").await.unwrap().expect("second tier hit");
    assert!(
        t.update("k", &sample_meta("a"), sample_meta("b"), None)
            .await
            .unwrap()
    );
    assert_eq!(read_body(hit.body).await.unwrap(), b"body");
    let now = t.get("k").await.unwrap().expect("the updated entry");
    assert_eq!(tag(&now.meta), b"b", "the promotion undid the update");
}

#[tokio::test]
async fn a_promotion_of_an_unchanged_entry_stays() {
    let t = tiers();
    put(t.second(), "k", sample_meta("p"), &[b"body"]).await;
    let hit = t.get("k").await.unwrap().expect("second tier hit");
    assert_eq!(read_body(hit.body).await.unwrap(), b"body");
    let promoted = t.first().get("k").await.unwrap().expect("promoted");
    assert_eq!(tag(&promoted.meta), b"p");
}
