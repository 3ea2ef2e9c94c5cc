//! The storage behaviour every backend must show, on a three-master Redis Cluster (each check with a key
//! prefix of its own on a cluster shared by the checks).

use crate::support;

cachio_storage_tests::behaviours! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    |check| support::cluster(check)
}
