//! A 1 GiB body, stored in 64 KiB chunks and read back, with bounded memory: measured as the
//! growth of the peak resident set (VmHWM) of a child process that does only this; it must stay
//! under 128 MiB.
//!
//! `CACHIO_FJALL_LARGE_BYTES` sets another size; with `--release -- --nocapture` the test doubles
//! as a benchmark and prints the write and total times and the resident set before and after.

use std::sync::Arc;

use bytes::Bytes;
use cachio_core::meta::{Meta, ResponseMeta};
use cachio_core::store::{Store, StoreWriter};
use cachio_fjall::FjallStore;
use http_body_util::BodyExt;

const TOTAL_DEFAULT: u64 = 1 << 30;
const CHUNK: u64 = 64 << 10;

/// The 8-byte word at `offset` (a multiple of 8) of the body.
fn word(offset: u64) -> u64 {
    (offset / 8).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// The child.
#[test]
fn large_body_child() {
    let Some(dir) = std::env::var_os("CACHIO_FJALL_LARGE_DIR") else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let total: u64 = std::env::var("CACHIO_FJALL_LARGE_BYTES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(TOTAL_DEFAULT);
    rt.block_on(async move {
        let store = FjallStore::builder(&dir)
            .budget_bytes(4 << 30)
            .max_object_size(2 << 30)
            .open()
            .unwrap();
        let baseline = vm_hwm_kib();
        let started = std::time::Instant::now();
        let mut w = store.begin("large").unwrap();
        let mut offset = 0;
        while offset < total {
            let mut chunk = Vec::with_capacity(CHUNK as usize);
            for o in (offset..offset + CHUNK).step_by(8) {
                chunk.extend_from_slice(&word(o).to_le_bytes());
            }
            w.append(Bytes::from(chunk)).unwrap();
            offset += CHUNK;
            if offset % (4 << 20) == 0 {
                w.wait_written().await;
            }
        }
        let meta = Arc::new(Meta::Response(ResponseMeta::new(
            http::StatusCode::OK,
            http::Version::HTTP_11,
            http::HeaderMap::new(),
            Vec::new(),
            std::time::SystemTime::now(),
            std::time::SystemTime::now(),
        )));
        w.commit(meta, None).await.unwrap();
        let written = started.elapsed();
        let after_write = vm_hwm_kib();

        let mut body = store.get("large").await.unwrap().unwrap().body;
        let mut offset = 0u64;
        let mut carry = Vec::new();
        while let Some(frame) = body.frame().await {
            let data = frame.unwrap().into_data().unwrap();
            carry.extend_from_slice(&data);
            let whole = carry.len() / 8 * 8;
            for w in carry[..whole].chunks_exact(8) {
                assert_eq!(
                    u64::from_le_bytes(w.try_into().unwrap()),
                    word(offset),
                    "at {offset}"
                );
                offset += 8;
            }
            carry.drain(..whole);
        }
        assert_eq!(offset, total);
        if std::env::var_os("CACHIO_FJALL_LARGE_STATUS").is_some() {
            let status = std::fs::read_to_string("/proc/self/status").unwrap();
            for l in status
                .lines()
                .filter(|l| l.starts_with("Rss") || l.starts_with("Vm"))
            {
                println!("{l}");
            }
        }
        println!(
            "LARGE_BODY baseline={baseline} after_write={} after_read={} write_ms={} total_ms={}",
            after_write,
            vm_hwm_kib(),
            written.as_millis(),
            started.elapsed().as_millis()
        );
    });
}

#[test]
fn a_1_gib_body_is_stored_and_read_with_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "large_body_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CACHIO_FJALL_LARGE_DIR", dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        .find_map(|l| l.find("LARGE_BODY").map(|at| &l[at..]))
        .unwrap_or_else(|| panic!("no report from the child: {stdout}"));
    eprintln!("{line}");
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|f| f.strip_prefix(&format!("{name}=")))
            .unwrap()
            .parse()
            .unwrap()
    };
    let growth_mib = (field("after_read") - field("baseline")) / 1024;
    assert!(
        growth_mib < 128,
        "the peak resident set grew by {growth_mib} MiB for a 1 GiB body"
    );
}
