//! The storage behaviour every backend must show, on one Redis server (each check with a key
//! prefix of its own on a server shared by the checks).

use crate::support;

cachio_storage_tests::behaviours! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    |check| support::single(check)
}
