//! The binary's resident memory under a soak of distinct keys: ten times its memory tier in
//! responses of mixed sizes, each stored once and never asked again, keeps it under the memory
//! budget (+ fjall's block cache with a disk tier) + 64 MiB. What is measured is the resident
//! memory the process allocated (`RssAnon`: heap, stacks, allocator pages), sampled while the
//! load runs: the binary's code, mapped from its file, is left out, as a debug build's is
//! three times a release build's (about 25 against 8 MiB). (`scripts/soak-gateway` prints the
//! figures of a release build under a longer soak, code included.)

use crate::support;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use support::{Origin, client, get, ok};

const BIN: &str = env!("CARGO_BIN_EXE_cachio-gateway");

const MEMORY_MB: u64 = 16;
/// fjall's block cache, as the gateway opens its disk tier.
#[cfg(feature = "disk")]
const DISK_CACHE_MB: u64 = cachio_gateway::DEFAULT_DISK_CACHE_BYTES >> 20;
/// What the process holds besides the tiers' budgets: stacks, connection buffers, fjall's
/// memtables and write queue, the commits in flight, allocator slack.
const OVERHEAD_MB: u64 = 64;

/// A value of kB from `/proc/PID/status` (`VmRSS`, `VmHWM`, `RssAnon`).
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resident_memory_stays_bounded_under_distinct_keys() {
    soak(None, MEMORY_MB + OVERHEAD_MB).await;
}

#[cfg(all(target_os = "linux", feature = "disk"))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resident_memory_stays_bounded_with_a_disk_tier() {
    let dir = tempfile::tempdir().unwrap();
    soak(Some(dir.path()), MEMORY_MB + DISK_CACHE_MB + OVERHEAD_MB).await;
}

/// Runs the binary (a memory tier, over a disk tier in `disk` if given) through ten times its
/// memory tier in distinct responses; asserts its allocated resident memory stays under
/// `bound` MiB.
async fn soak(disk: Option<&std::path::Path>, bound: u64) {
    let origin = Origin::start(|req| async move {
        let n: usize = req
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        ok("max-age=3600", vec![b's'; n])
    })
    .await;
    let mut gw = Command::new(BIN);
    gw.args(["--upstream", &origin.url(), "--listen", "127.0.0.1:0"])
        .args(["--memory-mb", &MEMORY_MB.to_string(), "--workers", "2"])
        .env("RUST_LOG", "warn,cachio_gateway=info")
        .stderr(Stdio::piped());
    if let Some(dir) = disk {
        // A disk budget under the load: the disk tier evicts and compacts as it takes writes.
        gw.arg("--disk-dir").arg(dir).args(["--disk-mb", "64"]);
    }
    let mut gw = gw.spawn().unwrap();
    let addr = crate::drain::listening_on(&mut gw);
    let pid = gw.id();
    let start_mb = status_kb(pid, "VmRSS") / 1024;
    // The largest `RssAnon` seen, every 10 ms until the load is done.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(status_kb(pid, "RssAnon"));
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            peak.max(status_kb(pid, "RssAnon"))
        })
    };

    // Ten times the memory tier, in bodies of 1 KiB to 1 MiB (about 100 KiB on average), from
    // sixteen clients at once (as many as the soak script's connections).
    let sizes = [
        1usize << 10,
        4 << 10,
        16 << 10,
        64 << 10,
        256 << 10,
        1 << 20,
    ];
    let weights = [30, 25, 20, 15, 8, 2];
    let target = (10 * MEMORY_MB) << 20;
    let read = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (read, next, c) = (read.clone(), next.clone(), client());
        let addr = addr.clone();
        clients.spawn(async move {
            while read.load(Ordering::Relaxed) < target {
                let i = next.fetch_add(1, Ordering::Relaxed);
                // A fixed spread of sizes over the sequence, by their weights.
                let mut r = (i * 37) % 100;
                let size = sizes
                    .iter()
                    .zip(weights)
                    .find(|(_, w)| {
                        let hit = r < *w;
                        r = r.saturating_sub(*w);
                        hit
                    })
                    .map_or(sizes[0], |(s, _)| *s);
                let got = get(&c, &format!("http://{addr}/soak/{i}/{size}")).await;
                assert_eq!(got.body.len(), size);
                read.fetch_add(size as u64, Ordering::Relaxed);
            }
        });
    }
    while let Some(done) = clients.join_next().await {
        done.unwrap();
    }
    done.store(true, Ordering::Relaxed);
    let anon_mb = sampler.join().unwrap() / 1024;
    let peak_mb = status_kb(pid, "VmHWM") / 1024;
    let now_mb = status_kb(pid, "VmRSS") / 1024;
    crate::cli::stop_gracefully(&mut gw);
    eprintln!(
        "{} MiB of distinct responses: RSS at start {start_mb} MiB, peak {peak_mb} MiB, after \
         {now_mb} MiB; allocated (RssAnon) at most {anon_mb} MiB, bound {bound} MiB",
        read.load(Ordering::Relaxed) >> 20
    );
    assert!(
        anon_mb <= bound,
        "allocated resident memory reached {anon_mb} MiB, over {bound} MiB"
    );
}
