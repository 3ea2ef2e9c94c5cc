//! The storage contract every cachio store keeps, on a cassette.

use cachio_cassette::{Cassette, Mode};

fn open(dir: &tempfile::TempDir) -> Cassette {
    Cassette::open(dir.path(), Mode::RecordNew).expect("open a cassette")
}

cachio_storage_tests::behaviours! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    |_| open(&tempfile::tempdir().unwrap())
}
