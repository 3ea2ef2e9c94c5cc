//! Seeded rounds of damage to every kind of file in a store directory (the journal, tables, blob
//! files, the version files that list them): bit flips, random bytes, truncation, a zeroed block,
//! deletion. After each, the store must open (with what is intact, or moved aside and empty),
//! serve no wrong byte, and take and serve a new entry.
//!
//! Each round opens the damaged copy in a child process (this test binary, run again with
//! `CACHIO_DAMAGE_CHILD` set), so that a damage that aborts the process fails the round that
//! caused it, with its seed, instead of ending the test run. `CACHIO_DAMAGE_ROUNDS` sets the
//! number of rounds per kind of file (20 by default) and `CACHIO_DAMAGE_SEED` the first seed.

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cachio_fjall::FjallStore;
use common::{Rng, body, copy_dir, get, header, list, put};

/// Entries written before the damage: enough that chunks are flushed from the journal to tables
/// and blob files, so that every kind of file holds some.
const KEYS: u64 = 32;
const BODY: usize = 200_000;
const CHILD: &str = "CACHIO_DAMAGE_CHILD";

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match std::env::var_os(CHILD) {
        Some(dir) => runtime.block_on(child(PathBuf::from(dir))),
        None => runtime.block_on(parent()),
    }
}

/// What a round does to one file.
#[derive(Clone, Copy, Debug)]
enum Damage {
    /// Flips one bit at each of a few places.
    FlipBits,
    /// Overwrites a run of bytes with random ones.
    RandomBytes,
    /// Cuts the file short.
    Truncate,
    /// Zeroes a 4 KiB block.
    ZeroBlock,
    /// Removes the file.
    Delete,
}

const DAMAGES: [Damage; 5] = [
    Damage::FlipBits,
    Damage::RandomBytes,
    Damage::Truncate,
    Damage::ZeroBlock,
    Damage::Delete,
];

/// The kind of a file in the database directory, by its place and name.
fn kind_of(rel: &Path) -> &'static str {
    let text = rel.to_string_lossy();
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    if name.ends_with(".jnl") {
        "journal"
    } else if text.contains("/tables/") {
        "table"
    } else if text.contains("/blobs/") {
        "blob"
    } else if name.starts_with('v') || text.contains("version") || name == "current" {
        "version"
    } else {
        "other"
    }
}

async fn parent() -> ExitCode {
    let started = Instant::now();
    let rounds: u64 = env_number("CACHIO_DAMAGE_ROUNDS", 20);
    let first_seed: u64 = env_number("CACHIO_DAMAGE_SEED", 1);
    let pristine = tempfile::tempdir().unwrap();
    populate(pristine.path()).await;

    let mut files = Vec::new();
    list(pristine.path(), &mut files);
    let mut by_kind: BTreeMap<&str, Vec<PathBuf>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(pristine.path()).unwrap().to_path_buf();
        if rel.to_string_lossy().ends_with("lock") {
            continue;
        }
        by_kind.entry(kind_of(&rel)).or_default().push(rel);
    }
    for kind in ["journal", "table", "blob", "version"] {
        assert!(
            by_kind.contains_key(kind),
            "the populated store has no {kind} file: {by_kind:#?}"
        );
    }

    let mut plan = Vec::new();
    for (kind, files) in &by_kind {
        for round in 0..rounds {
            plan.push((*kind, files, first_seed + round));
        }
    }
    // Two rounds at a time: each child spends most of its time waiting on the disk.
    let exe = std::env::current_exe().unwrap();
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                while let Some((kind, files, seed)) = plan.get(next.fetch_add(1, Ordering::Relaxed))
                {
                    let result = round(&exe, pristine.path(), kind, files, *seed);
                    results.lock().unwrap().push(result);
                }
            });
        }
    });
    let total = plan.len();
    let mut failures = Vec::new();
    let mut tally: BTreeMap<String, u32> = BTreeMap::new();
    for result in results.into_inner().unwrap() {
        match result {
            Ok(outcome) => *tally.entry(outcome).or_default() += 1,
            Err(failure) => failures.push(failure),
        }
    }
    for (outcome, n) in &tally {
        println!("{n:4} × {outcome}");
    }
    println!(
        "{total} rounds of damage in {:.1} s, {} failed",
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    if failures.is_empty() {
        println!("test damaged store directories ... ok");
        ExitCode::SUCCESS
    } else {
        for f in &failures {
            eprintln!("FAILED {f}");
        }
        ExitCode::FAILURE
    }
}

/// Damages a copy of the pristine directory in one of the files of `kind`, chosen by `seed`, and
/// opens it in a child: the child's outcome, or why the round failed.
fn round(
    exe: &Path,
    pristine: &Path,
    kind: &str,
    files: &[PathBuf],
    seed: u64,
) -> Result<String, String> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let rel = &files[rng.below(files.len() as u64) as usize];
    let damage = DAMAGES[rng.below(DAMAGES.len() as u64) as usize];
    let copy = tempfile::tempdir().unwrap();
    let dir = copy.path().join("store");
    copy_dir(pristine, &dir);
    let what = apply(&dir.join(rel), damage, &mut rng);
    run_child(exe, &dir)
        .map(|outcome| format!("{kind}: {outcome}"))
        .map_err(|why| format!("{kind} {} ({what}), seed {seed}: {why}", rel.display()))
}

/// Damages `file` as `damage` says, and describes what it did.
fn apply(file: &Path, damage: Damage, rng: &mut Rng) -> String {
    let Ok(mut bytes) = std::fs::read(file) else {
        return "missing".to_owned();
    };
    // Journals are preallocated: aim at the part that was written.
    let written = bytes
        .iter()
        .rposition(|&b| b != 0)
        .map_or(1, |p| p + 1)
        .max(1);
    let at = rng.below(written as u64) as usize;
    let what = match damage {
        Damage::FlipBits => {
            let n = 1 + rng.below(4);
            for _ in 0..n {
                let at = rng.below(written as u64) as usize;
                if let Some(b) = bytes.get_mut(at) {
                    *b ^= 1 << rng.below(8);
                }
            }
            format!("{n} bits flipped")
        }
        Damage::RandomBytes => {
            let n = (1 + rng.below(64) as usize).min(bytes.len().saturating_sub(at));
            for b in &mut bytes[at..at + n] {
                *b = rng.next() as u8;
            }
            format!("{n} random bytes @{at}")
        }
        Damage::Truncate => {
            bytes.truncate(at);
            format!("truncated to {at}")
        }
        Damage::ZeroBlock => {
            let start = at & !4095;
            let end = (start + 4096).min(bytes.len());
            bytes[start..end].fill(0);
            format!("zeroed {start}..{end}")
        }
        Damage::Delete => {
            std::fs::remove_file(file).unwrap();
            return "deleted".to_owned();
        }
    };
    std::fs::write(file, bytes).unwrap();
    what
}

/// Runs one round's child and gives its one-line outcome, or why the round failed.
fn run_child(exe: &Path, dir: &Path) -> Result<String, String> {
    let mut child = Command::new(exe)
        .env(CHILD, dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("the child did not start: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            return Err("the child hung for 120 s".to_owned());
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    let mut err = String::new();
    child.stdout.take().unwrap().read_to_string(&mut out).ok();
    child.stderr.take().unwrap().read_to_string(&mut err).ok();
    if status.success() {
        Ok(out.lines().last().unwrap_or("no outcome").to_owned())
    } else {
        let tail: Vec<&str> = err.lines().rev().take(6).collect();
        Err(format!(
            "{status}: {} {}",
            out.lines().last().unwrap_or(""),
            tail.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ))
    }
}

/// Opens the damaged directory, reads every entry, then writes and reads a new one. Exits with
/// an error status on a failed open, a wrong byte, or a store that no longer works.
async fn child(dir: PathBuf) -> ExitCode {
    let store = match FjallStore::open(&dir) {
        Ok(store) => store,
        Err(e) => {
            println!("did not open: {e}");
            return ExitCode::from(3);
        }
    };
    let (mut hits, mut misses, mut errors) = (0, 0, 0);
    for i in 0..KEYS {
        let key = format!("k{i}");
        match get(&store, &key).await {
            Err(_) => errors += 1,
            Ok(None) => misses += 1,
            Ok(Some((meta, read))) => {
                if header(&meta, "x-tag") != Some(key.as_str()) {
                    println!("{key}: the metadata of another entry");
                    return ExitCode::from(2);
                }
                let expected = body(i, BODY);
                match read {
                    Ok(b) if b == expected => hits += 1,
                    Ok(b) => {
                        println!("{key}: {} wrong bytes served", b.len());
                        return ExitCode::from(2);
                    }
                    Err(_) => errors += 1,
                }
            }
        }
    }
    let fresh = body(999, BODY);
    if let Err(e) = put(&store, "after", "after", &fresh, 65_536, None).await {
        println!("a write after the damage failed: {e}");
        return ExitCode::from(4);
    }
    match get(&store, "after").await {
        Ok(Some((_, Ok(b)))) if b == fresh => {}
        other => {
            println!(
                "the entry written after the damage did not read back: {:?}",
                other.map(|o| o.map(|(_, b)| b.map(|b| b.len())))
            );
            return ExitCode::from(4);
        }
    }
    let moved = if store.moved_aside().is_some() {
        "moved aside"
    } else {
        "opened in place"
    };
    let outcome = match (hits, misses, errors) {
        (h, 0, 0) if h == KEYS => "every entry intact",
        (0, _, _) => "no entry served",
        _ => "some entries lost",
    };
    println!("{moved}, {outcome}");
    ExitCode::SUCCESS
}

async fn populate(dir: &Path) {
    let store = FjallStore::open(dir).unwrap();
    for i in 0..KEYS {
        let key = format!("k{i}");
        put(&store, &key, &key, &body(i, BODY), 50_000, None)
            .await
            .unwrap();
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}"))
        })
        .unwrap_or(default)
}
