//! A disk that fills up: writes fail with a clear error, nothing panics, nothing partial becomes
//! visible, and every entry committed before the disk filled is still there, intact, once there
//! is room again.
//!
//! The store lives on a small tmpfs, mounted in a mount namespace of its own (`unshare`, no
//! privilege needed where user namespaces are enabled). Inside it, this test binary runs twice:
//! `write` fills the disk, noting each commit that returned `Ok` in a log outside the tmpfs; the
//! tmpfs is then made larger and `verify` reopens the directory and checks every noted entry.

use std::path::PathBuf;
use std::process::Command;

use cachio_core::store::{Store, StoreWriter};
use cachio_fjall::{Durability, FjallStore};

use crate::common::{body, get, header, put};

const DIR_VAR: &str = "CACHIO_FJALL_FULL_DISK_DIR";
const LOG_VAR: &str = "CACHIO_FJALL_FULL_DISK_LOG";
/// The size of the tmpfs while the disk fills.
const FULL_MIB: u64 = 24;
/// Bodies of 64 KiB: a few hundred fit, so the store takes many entries before the first
/// failure and many writes after it.
const BODY: usize = 64 << 10;
const ENTRIES: u64 = 600;

fn key(i: u64) -> String {
    format!("https://example.com/full/{i}")
}

fn vars() -> Option<(PathBuf, PathBuf)> {
    Some((
        std::env::var_os(DIR_VAR)?.into(),
        std::env::var_os(LOG_VAR)?.into(),
    ))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// The first phase, run by the test below: writes until well past the point the disk is full.
#[test]
fn write() {
    // Run on its own (not by the test below) it has nothing to do.
    let Some((dir, log)) = vars() else { return };
    runtime().block_on(async move {
        let store = FjallStore::builder(&dir)
            .durability(Durability::Flush)
            .open()
            .unwrap();
        let mut committed = String::new();
        let mut failures = 0;
        for i in 0..ENTRIES {
            let b = body(i, BODY);
            match put(&store, &key(i), &i.to_string(), &b, 16 << 10, None).await {
                Ok(()) => committed.push_str(&format!("{i}\n")),
                Err(e) => {
                    failures += 1;
                    if failures == 1 {
                        println!("first error at entry {i}: {e}");
                    }
                }
            }
            // Reads go on working or fail cleanly; they never give wrong bytes.
            if let Ok(Some((meta, Ok(read)))) = get(&store, &key(i)).await {
                assert_eq!(header(&meta, "x-tag"), Some(i.to_string().as_str()));
                assert_eq!(read, b, "entry {i} read back with wrong bytes");
            }
        }
        // A writer that is dropped, not committed, leaves nothing.
        let mut w = store.begin("https://example.com/full/abandoned").unwrap();
        let _ = w.append(body(9999, BODY).into());
        drop(w);
        std::fs::write(&log, committed).unwrap();
        println!("failures {failures}");
        drop(store);
        println!("write done");
    });
}

/// The second phase: reopens the store with room to spare and checks it.
#[test]
fn verify() {
    let Some((dir, log)) = vars() else { return };
    let committed: Vec<u64> = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    runtime().block_on(async move {
        let store = FjallStore::open(&dir).unwrap();
        for i in 0..ENTRIES {
            let got = get(&store, &key(i)).await.unwrap();
            if committed.contains(&i) {
                let (meta, read) = got.unwrap_or_else(|| panic!("committed entry {i} lost"));
                assert_eq!(header(&meta, "x-tag"), Some(i.to_string().as_str()));
                assert_eq!(read.unwrap(), body(i, BODY), "entry {i} corrupted");
            } else if let Some((meta, read)) = got {
                // A commit that reported an error may still have landed; if so, it is whole.
                assert_eq!(header(&meta, "x-tag"), Some(i.to_string().as_str()));
                assert_eq!(read.unwrap(), body(i, BODY), "entry {i} partial");
            }
        }
        let abandoned = get(&store, "https://example.com/full/abandoned").await;
        assert!(abandoned.unwrap().is_none());
        // The store takes writes again now that there is room.
        put(&store, &key(0), "again", b"room again", 4, None)
            .await
            .unwrap();
        let (_, read) = get(&store, &key(0)).await.unwrap().unwrap();
        assert_eq!(read.unwrap(), b"room again");
        println!("verified {}", committed.len());
    });
}

#[test]
fn a_full_disk_fails_writes_cleanly_and_keeps_every_committed_entry() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let script = format!(
        "set -e
        mount -t tmpfs -o size={FULL_MIB}m cachio-full \"$1\"
        \"$0\" --exact full_disk::write --nocapture --test-threads=1
        mount -o remount,size=512m cachio-full \"$1\"
        \"$0\" --exact full_disk::verify --nocapture --test-threads=1"
    );
    let out = Command::new("unshare")
        .args(["--map-root-user", "--mount", "bash", "-c", &script])
        .arg(&exe)
        .arg(dir.path())
        .env(DIR_VAR, dir.path())
        .env(LOG_VAR, logs.path().join("committed"))
        .output()
        .expect("unshare (util-linux) runs the store on a tmpfs of its own");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let show = format!("stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(out.status.success(), "a phase failed\n{show}");
    assert!(stdout.contains("write done"), "{show}");
    let failures: u64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("failures "))
        .unwrap_or_else(|| panic!("the write phase did not finish\n{show}"))
        .parse()
        .unwrap();
    let verified: usize = stdout
        .lines()
        .find_map(|l| Some(l.split_once("verified ")?.1))
        .unwrap_or_else(|| panic!("the verify phase did not finish\n{show}"))
        .parse()
        .unwrap();
    // The disk did fill (else this test shows nothing), and not before many commits.
    assert!(
        failures > 0,
        "no write failed: the tmpfs never filled\n{show}"
    );
    assert!(
        verified > 50,
        "too few commits before the disk filled\n{show}"
    );
}
