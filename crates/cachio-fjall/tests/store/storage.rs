//! The storage behaviour every backend must show, each check against a store in a fresh
//! directory that is deleted when the check ends.

use std::sync::Mutex;

use cachio_fjall::{FjallStore, ReadMode};
use cachio_storage_tests as behaviour;
use tempfile::TempDir;

/// 64 MiB budget, so the shared checks use 8 MiB bodies (the default 1/8 share), which fit the
/// default write queue.
fn store(dir: &TempDir) -> FjallStore {
    store_reading(dir, ReadMode::default())
}

fn store_reading(dir: &TempDir, mode: ReadMode) -> FjallStore {
    FjallStore::builder(dir.path())
        .budget_bytes(64 << 20)
        .read_mode(mode)
        .open()
        .unwrap()
}

// Each check gets a directory of its own, a temporary of the statement that awaits the check: it
// is deleted when the check ends, after the store.
cachio_storage_tests::behaviours! {
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    |_| store(&tempfile::tempdir().unwrap())
}

async fn run_all_reading(mode: ReadMode) {
    let dirs = Mutex::new(Vec::new());
    behaviour::run_all(|| {
        let dir = tempfile::tempdir().unwrap();
        let store = store_reading(&dir, mode);
        dirs.lock().unwrap().push(dir);
        store
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_all() {
    run_all_reading(ReadMode::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_all_reading_inline() {
    run_all_reading(ReadMode::Inline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn run_all_reading_on_the_blocking_pool() {
    run_all_reading(ReadMode::Blocking).await;
}

/// Reads on the calling task need no other thread: a current-thread runtime does.
#[tokio::test(flavor = "current_thread")]
async fn run_all_on_a_current_thread_runtime() {
    run_all_reading(ReadMode::Inline).await;
    run_all_reading(ReadMode::Blocking).await;
}
