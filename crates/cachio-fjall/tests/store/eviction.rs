//! The disk budget: eviction keeps the accounted size within it and the disk within the stated
//! slack, and recently read entries survive.

use crate::common;

use std::time::Duration;

use cachio_fjall::FjallStore;
use common::{body, du, get, put};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writing_ten_times_the_budget_stays_within_it() {
    const BUDGET: u64 = 8 << 20;
    const SIZE: usize = 64 * 1024;
    let dir = tempfile::tempdir().unwrap();
    let store = FjallStore::builder(dir.path())
        .budget_bytes(BUDGET)
        .touch_interval(Duration::ZERO)
        .open()
        .unwrap();
    let limit = BUDGET + store.disk_slack_bytes();
    let hot: Vec<Vec<u8>> = (0..8).map(|i| body(i, 32 * 1024)).collect();
    for (i, b) in hot.iter().enumerate() {
        put(&store, &format!("hot/{i}"), "hot", b, 16 * 1024, None)
            .await
            .unwrap();
    }
    let (mut max_disk, mut max_du) = (0, 0);
    let cold = (10 * BUDGET) as usize / SIZE;
    for i in 0..cold {
        let b = body(1000 + i as u64, SIZE);
        put(&store, &format!("cold/{i}"), "cold", &b, 16 * 1024, None)
            .await
            .unwrap();
        if i % 16 == 0 {
            // Recently read entries are the last to go.
            for (j, h) in hot.iter().enumerate() {
                let (_, got) = get(&store, &format!("hot/{j}"))
                    .await
                    .unwrap()
                    .unwrap_or_else(|| panic!("hot/{j} was evicted after {i} writes"));
                assert_eq!(&got.unwrap(), h);
            }
        }
        if i % 32 == 0 {
            store.run_pending_tasks().await.unwrap();
            let tracked = store.tracked_bytes();
            assert!(tracked <= BUDGET, "tracked {tracked} above the budget");
            let (disk, used) = (store.disk_space().unwrap(), du(dir.path()));
            assert!(disk <= limit, "fjall counts {disk} bytes, above {limit}");
            assert!(
                used <= limit,
                "the directory takes {used} bytes, above {limit}"
            );
            max_disk = max_disk.max(disk);
            max_du = max_du.max(used);
        }
    }
    store.run_pending_tasks().await.unwrap();
    eprintln!(
        "wrote {} MiB into a {} MiB budget: at most {} MiB on disk by fjall's count, {} MiB allocated; limit {} MiB",
        (cold * SIZE) >> 20,
        BUDGET >> 20,
        max_disk >> 20,
        max_du >> 20,
        limit >> 20
    );
    let tracked = store.tracked_bytes();
    assert!(
        tracked <= BUDGET && tracked > BUDGET * 3 / 4,
        "tracked {tracked}"
    );
    let count = store.entry_count();
    assert!(
        (90..=140).contains(&count),
        "{count} entries of at least 32 KiB, most of 64 KiB, in 8 MiB"
    );
    for j in 0..8 {
        assert!(
            get(&store, &format!("hot/{j}")).await.unwrap().is_some(),
            "hot/{j} was evicted"
        );
    }
    assert!(
        get(&store, "cold/0").await.unwrap().is_none(),
        "the oldest entry survived"
    );
    let newest = format!("cold/{}", cold - 1);
    assert!(
        get(&store, &newest).await.unwrap().is_some(),
        "the newest entry was evicted"
    );

    // The accounting survives a restart.
    drop(store);
    let store = FjallStore::builder(dir.path())
        .budget_bytes(BUDGET)
        .open()
        .unwrap();
    assert_eq!(store.tracked_bytes(), tracked);
    assert_eq!(store.entry_count(), count);

    // A smaller budget takes effect at once.
    drop(store);
    let store = FjallStore::builder(dir.path())
        .budget_bytes(BUDGET / 4)
        .open()
        .unwrap();
    store.run_pending_tasks().await.unwrap();
    assert!(store.tracked_bytes() <= BUDGET / 4);
    assert!(get(&store, &newest).await.unwrap().is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_larger_than_the_budget_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = FjallStore::builder(dir.path())
        .budget_bytes(100_000)
        .max_object_size(100_000)
        .open()
        .unwrap();
    put(&store, "small", "s", &body(1, 1000), 1000, None)
        .await
        .unwrap();
    // The body fits the object limit, but with its key and record not the budget.
    let e = put(&store, "big", "b", &body(2, 100_000), 10_000, None)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), cachio_core::store::ErrorKind::TooLarge);
    assert!(get(&store, "big").await.unwrap().is_none());
    assert!(get(&store, "small").await.unwrap().is_some());
}

/// Writes ten times `budget` in distinct keys of `size` bytes into a new store, prints what the
/// directory took, and checks that it never took more blocks than the stated bound.
async fn within_the_bound(budget: u64, size: usize) -> common::Load {
    let dir = tempfile::tempdir().unwrap();
    let store = FjallStore::builder(dir.path())
        .budget_bytes(budget)
        .open()
        .unwrap();
    let bound = budget + store.disk_slack_bytes();
    assert_eq!(bound, common::disk_bound(budget));
    let load = common::budget_load(&store, size).await;
    eprintln!(
        "{} MiB budget, {} writes: peak {:.1} MiB allocated, {:.1} MiB by fjall's count, bound {} MiB; {:.1} MiB of entries held on average; {:.0} writes/s",
        budget >> 20,
        load.writes,
        load.peak_du as f64 / 1048576.0,
        load.peak_fjall as f64 / 1048576.0,
        bound >> 20,
        load.mean_tracked as f64 / 1048576.0,
        load.writes_per_sec
    );
    eprintln!("at the peak: {}", load.at_peak);
    assert!(load.peak_du <= bound, "peak {} above {bound}", load.peak_du);
    load
}

/// At 64 MiB, the smallest budget the bound is stated for: ten times the budget in distinct
/// keys never takes more blocks than the stated bound, sampled while writing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_stays_within_the_bound_at_64_mib() {
    const BUDGET: u64 = 64 << 20;
    let load = within_the_bound(BUDGET, 64 * 1024).await;
    // fjall's journal takes up to 61 MiB of the 102 while it fills: the entries make room for
    // it, and take the room back once it is sealed and dropped.
    assert!(
        load.tracked <= BUDGET && load.tracked >= BUDGET / 8,
        "tracked {}",
        load.tracked
    );
    assert!(
        load.mean_tracked >= BUDGET / 4,
        "held {} on average",
        load.mean_tracked
    );
}

/// The same at 1 GiB, with bodies of 1 MiB: ten times the budget is 10 GiB of writes, the
/// slowest test of the suite (about 5 minutes on two busy cores).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_disk_stays_within_the_bound_at_1_gib() {
    const BUDGET: u64 = 1 << 30;
    let load = within_the_bound(BUDGET, 1 << 20).await;
    assert!(load.tracked > BUDGET * 3 / 4, "tracked {}", load.tracked);
}
