//! The storage behaviour every backend must show, on a three-master Redis Cluster (each check with a key
//! prefix of its own on a cluster shared by the checks).

use crate::support;

use cachio_storage_tests as behaviour;

macro_rules! behaviours {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            behaviour::$name(support::cluster(stringify!($name))).await;
        }
    )*};
}

behaviours!(
    round_trip,
    visible_only_after_commit,
    abort_and_drop_leave_nothing,
    overwrite,
    delete,
    purge,
    update_meta,
    concurrent_writers,
    large_body_many_chunks,
    empty_body,
    variants_round_trip,
    distinct_keys,
    hit_survives_overwrite,
    max_body_size_enforced,
);
