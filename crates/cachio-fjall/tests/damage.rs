//! Seeded rounds of damage to every kind of file in a store directory (the journal, tables, blob
//! files, the version files that list them): bit flips, random bytes, truncation, a zeroed block,
//! deletion. After each, the store must open (with what is intact, or moved aside and empty),
//! serve no wrong byte, and take and serve a new entry.
//!
//! Each round opens the damaged copy in a child process (this test binary, run again with
//! `CACHIO_DAMAGE_CHILD` set), so that a damage that aborts the process fails the round that
//! caused it, with its seed, instead of ending the test run. `CACHIO_DAMAGE_ROUNDS` sets the
//! number of rounds per kind of file (20 by default) and `CACHIO_DAMAGE_SEED` the first seed.
//!
//! Before the seeded rounds, targeted rounds damage exactly one length or count that fjall
//! reserves memory for (see [`Count`]). A count no checksum covers first must be refused by name
//! with `OnDamage::Fail`, and the store must open empty with the default; a journal entry's
//! length must be cut off, and the store open in place; a length behind a checksum must be
//! refused by fjall's check. The same damage is also opened by fjall alone, whose outcome is
//! printed: it shows whether the dependency still aborts on it.

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cachio_fjall::{FjallStore, OnDamage};
use common::{Rng, body, copy_dir, get, header, list, put};

/// Entries written before the damage: enough that chunks are flushed from the journal to tables
/// and blob files, so that every kind of file holds some.
const KEYS: u64 = 32;
const BODY: usize = 200_000;
const CHILD: &str = "CACHIO_DAMAGE_CHILD";
/// What a child does with the directory: the seeded rounds' [`child`] unless set.
const MODE: &str = "CACHIO_DAMAGE_MODE";
/// [`refuse_child`].
const REFUSE: &str = "refuse";
/// [`fjall_child`].
const FJALL: &str = "fjall";

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match (std::env::var_os(CHILD), std::env::var(MODE).as_deref()) {
        (Some(dir), Ok(REFUSE)) => runtime.block_on(refuse_child(PathBuf::from(dir))),
        (Some(dir), Ok(FJALL)) => fjall_child(&PathBuf::from(dir)),
        (Some(dir), _) => runtime.block_on(child(PathBuf::from(dir))),
        (None, _) => runtime.block_on(parent()),
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

    let exe = std::env::current_exe().unwrap();
    let mut failures = targeted(&exe, pristine.path());

    let mut plan = Vec::new();
    for (kind, files) in &by_kind {
        for round in 0..rounds {
            plan.push((*kind, files, first_seed + round));
        }
    }
    // Two rounds at a time: each child spends most of its time waiting on the disk.
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
    run_child_in(exe, dir, "", None)
        .map(|out| out.lines().last().unwrap_or("no outcome").to_owned())
}

/// Runs a child in `mode` on `dir` (with at most `limit` KiB of address space, when set) and
/// gives all it printed, or why it failed.
fn run_child_in(exe: &Path, dir: &Path, mode: &str, limit: Option<u64>) -> Result<String, String> {
    let mut command = match limit {
        None => Command::new(exe),
        Some(kib) => {
            let mut sh = Command::new("sh");
            sh.args(["-c", "ulimit -v \"$1\" && exec \"$0\""])
                .arg(exe)
                .arg(kib.to_string());
            sh
        }
    };
    let mut child = command
        .env(CHILD, dir)
        .env(MODE, mode)
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
        Ok(out)
    } else if let Some(refused) = err.lines().find(|l| l.starts_with("memory allocation of")) {
        // An allocation the system refused: the line says how much was asked for.
        Err(format!("{status}: {refused}"))
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

/// A count that fjall's recovery reads from disk and reserves memory for before any checksum
/// covers it (a little-endian `u32` each). Damage to one made fjall ask for as much as 160 GB
/// and abort the process.
#[derive(Clone, Copy, Debug)]
enum Count {
    /// The number of sections in a table's table of contents: memory for them is reserved
    /// before the table of contents' checksum is checked.
    TableSections,
    /// The same in a blob file.
    BlobSections,
    /// The same in the version file that `current` names.
    VersionSections,
    /// The number of blob files a version lists (nothing checks a version file's checksum).
    VersionBlobFiles,
    /// The number of blob files a version keeps garbage counts for.
    VersionGcStats,
    /// The number of blob files a table refers to (a region no checksum covers), read when a
    /// compaction picks the table.
    TableLinkedBlobFiles,
    /// The stored length of a journal item's value, written together with its value length (a
    /// release build reads both; a debug build of fjall asserts that they are equal for an
    /// uncompressed value). Memory for it is reserved before the batch's checksum is checked:
    /// at most 4 GiB, which aborts the process where the system refuses that much, so these
    /// rounds run with 3.5 GiB of address space. Cut from the journal, not refused.
    JournalValue,
    /// The length of a blob file's metadata block, in the block's header, which fjall reserves
    /// memory for. The header carries its own checksum, checked first, so damage to it is not
    /// a length the store checks: fjall refuses the file. The round (3.5 GiB of address space,
    /// the high byte damaged only) makes sure that a version that checks later fails here.
    BlobMetaLength,
}

const COUNTS: [Count; 8] = [
    Count::TableSections,
    Count::BlobSections,
    Count::VersionSections,
    Count::VersionBlobFiles,
    Count::VersionGcStats,
    Count::TableLinkedBlobFiles,
    Count::JournalValue,
    Count::BlobMetaLength,
];

/// The address space, in KiB, that the children of journal rounds run with: less than the
/// 0xF00xxxxx bytes a damaged value length reserves.
const SMALL_MACHINE_KIB: u64 = 3584 << 10;

/// The value a targeted round writes over a count.
#[derive(Clone, Copy, Debug)]
enum Value {
    /// The largest count whose items fit in the bytes they are read from: not refused as a
    /// length (fjall's own checks may still refuse the file).
    Largest,
    /// One more than that: refused.
    OneMore,
    /// The count with its high byte damaged (0xF0), as in the abort that was reported
    /// (0xF0000006 sections of 40 bytes): refused.
    HighByte,
}

/// Where a count is in the pristine store: the file (below the store's directory), the offset
/// of the count (and of a second field written with it), its value, and the largest value whose
/// items fit in the bytes after it.
#[derive(Clone, Debug)]
struct Spot {
    count: Count,
    file: PathBuf,
    at: usize,
    also: Option<usize>,
    value: u32,
    largest: u32,
}

impl Spot {
    /// Writes `written` over the count in the copy of the store at `dir`.
    fn write(&self, dir: &Path, written: u32) {
        let file = dir.join(&self.file);
        let mut bytes = std::fs::read(&file).unwrap();
        for at in std::iter::once(self.at).chain(self.also) {
            bytes[at..at + 4].copy_from_slice(&written.to_le_bytes());
        }
        std::fs::write(&file, bytes).unwrap();
    }
}

/// The first item in the journals of the store at `store`: its journal and where it begins.
/// An item is a tag byte (2), value type, compression, keyspace (8 bytes), key length (2),
/// value length (4), stored length (4), key, value; a batch's start takes 13 bytes, its end 13.
fn first_journal_item(store: &Path) -> (PathBuf, Vec<u8>, usize) {
    let mut journals: Vec<PathBuf> = std::fs::read_dir(store.join("db"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jnl"))
        .collect();
    journals.sort();
    for journal in journals {
        let bytes = std::fs::read(&journal).unwrap();
        let mut at = 0;
        while let Some(tag) = bytes.get(at) {
            match tag {
                1 | 3 => at += 13,
                4 => at += 9,
                2 => return (journal, bytes, at),
                _ => break,
            }
        }
    }
    panic!("no journal of {store:?} holds an item");
}

/// A section of a file fjall writes as a table of sections: its name, position and length.
type Section = (Vec<u8>, u64, u64);

fn le_u32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
}

fn le_u64(bytes: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
}

/// Where the table of contents of a file of sections starts, and its sections (the file's
/// trailer is 38 bytes: magic, two format bytes, a 16-byte checksum, the table's position and
/// length).
fn sections(bytes: &[u8]) -> (usize, Vec<Section>) {
    let trailer = &bytes[bytes.len() - 38..];
    assert_eq!(&trailer[..4], b"SFA!", "not a file of sections");
    let toc = le_u64(trailer, 22) as usize;
    assert_eq!(&bytes[toc..toc + 4], b"TOC!", "no table of contents");
    let mut at = toc + 8;
    let mut out = Vec::new();
    for _ in 0..le_u32(bytes, toc + 4) {
        let name_len = usize::from(u16::from_le_bytes([bytes[at + 16], bytes[at + 17]]));
        let name = bytes[at + 18..at + 18 + name_len].to_vec();
        out.push((name, le_u64(bytes, at), le_u64(bytes, at + 8)));
        at += 18 + name_len;
    }
    (toc, out)
}

/// The size on disk of one item of a counted section.
fn item_size(section: &[u8]) -> u64 {
    match section {
        b"linked_blob_files" => 8 + 8 + 8 + 8,
        b"blob_files" => 8 + 1 + 16,
        b"blob_gc_stats" => 8 + 4 + 8 + 8,
        other => panic!("no counted section {}", String::from_utf8_lossy(other)),
    }
}

/// Finds `count` in the pristine store at `store`: in the tree of the chunks keyspace (the one
/// with blob files), its current version file, a table that refers to blob files, a blob file.
fn find(store: &Path, count: Count) -> Spot {
    if let Count::JournalValue = count {
        let (journal, bytes, item) = first_journal_item(store);
        let key = usize::from(u16::from_le_bytes([bytes[item + 11], bytes[item + 12]]));
        return Spot {
            count,
            file: journal.strip_prefix(store).unwrap().to_path_buf(),
            at: item + 17,
            also: Some(item + 13),
            value: le_u32(&bytes, item + 17),
            largest: u32::try_from(bytes.len() - item - 21 - key).unwrap(),
        };
    }
    let mut trees: Vec<PathBuf> = std::fs::read_dir(store.join("db/keyspaces"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    trees.sort();
    let tree = trees
        .into_iter()
        .find(|t| std::fs::read_dir(t.join("blobs")).is_ok_and(|mut d| d.next().is_some()))
        .expect("a tree with blob files");
    let current = std::fs::read(tree.join("current")).unwrap();
    let version = tree.join(format!("v{}", le_u64(&current, 0)));
    let first_in = |dir: &str, section: Option<&[u8]>| {
        let mut files: Vec<PathBuf> = std::fs::read_dir(tree.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
            .into_iter()
            .find(|f| {
                let (_, list) = sections(&std::fs::read(f).unwrap());
                section.is_none_or(|s| list.iter().any(|(n, _, _)| n == s))
            })
            .unwrap_or_else(|| panic!("no file in {dir} with the section {section:?}"))
    };
    let linked: &[u8] = b"linked_blob_files";
    if let Count::BlobMetaLength = count {
        let file = first_in("blobs", None);
        let bytes = std::fs::read(&file).unwrap();
        let (_, list) = sections(&bytes);
        let (_, meta, _) = list.iter().find(|(n, _, _)| n == b"meta").unwrap();
        // "META", then the block's header: "LSM\x03", its type, a 16-byte checksum of the
        // data, the data's length, its uncompressed length, the header's checksum.
        let meta = *meta as usize;
        assert_eq!(&bytes[meta..meta + 8], b"METALSM\x03");
        let value = le_u32(&bytes, meta + 25);
        return Spot {
            count,
            file: file.strip_prefix(store).unwrap().to_path_buf(),
            at: meta + 25,
            also: None,
            value,
            largest: value,
        };
    }
    let (file, section): (PathBuf, Option<&[u8]>) = match count {
        Count::TableSections => (first_in("tables", Some(linked)), None),
        Count::BlobSections => (first_in("blobs", None), None),
        Count::VersionSections => (version, None),
        Count::VersionBlobFiles => (version, Some(b"blob_files")),
        Count::VersionGcStats => (version, Some(b"blob_gc_stats")),
        Count::TableLinkedBlobFiles | Count::JournalValue | Count::BlobMetaLength => {
            (first_in("tables", Some(linked)), Some(linked))
        }
    };
    let bytes = std::fs::read(&file).unwrap();
    let (toc, list) = sections(&bytes);
    let (at, largest) = match section {
        None => (toc + 4, (bytes.len() - toc - 8) as u64 / 18),
        Some(name) => {
            let (_, pos, size) = list.iter().find(|(n, _, _)| n == name).unwrap();
            let value = u64::from(le_u32(&bytes, *pos as usize));
            // The items fill the section: the sizes above are the ones fjall writes.
            assert_eq!(4 + value * item_size(name), *size, "{file:?} {name:?}");
            (*pos as usize, (size - 4) / item_size(name))
        }
    };
    Spot {
        count,
        file: file.strip_prefix(store).unwrap().to_path_buf(),
        at,
        also: None,
        value: le_u32(&bytes, at),
        largest: u32::try_from(largest).unwrap(),
    }
}

/// Runs the targeted rounds: every count, with every [`Value`]. Gives the failures.
fn targeted(exe: &Path, pristine: &Path) -> Vec<String> {
    let started = Instant::now();
    let mut plan = Vec::new();
    for count in COUNTS {
        let spot = find(pristine, count);
        for value in [Value::Largest, Value::OneMore, Value::HighByte] {
            // A counted section is exactly as long as its items: its largest count is the one
            // it has, and one such round (the store opens with every entry) is enough.
            let redundant = (matches!(value, Value::Largest)
                && spot.largest == spot.value
                && !matches!(count, Count::VersionBlobFiles))
                || (matches!(count, Count::BlobMetaLength) && !matches!(value, Value::HighByte));
            if !redundant {
                plan.push((count, value, spot.clone()));
            }
        }
    }
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| {
                while let Some((count, value, spot)) =
                    plan.get(next.fetch_add(1, Ordering::Relaxed))
                {
                    let result = target(exe, pristine, spot, *value)
                        .map_err(|why| format!("{count:?} = {value:?} at {spot:?}: {why}"));
                    results.lock().unwrap().push((*count, *value, result));
                }
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(c, v, _)| (*c as u8, *v as u8));
    let mut failures = Vec::new();
    for (count, value, result) in results {
        match result {
            Ok(outcome) => println!("{count:?} = {value:?}: {outcome}"),
            Err(failure) => failures.push(failure),
        }
    }
    println!(
        "{} targeted rounds in {:.1} s, {} failed",
        plan.len(),
        started.elapsed().as_secs_f64(),
        failures.len()
    );
    failures
}

/// One targeted round: writes `value` over the count at `spot` in a copy of the pristine store,
/// then opens it in a child that refuses damage and then recovers from it. Gives the outcome.
fn target(exe: &Path, pristine: &Path, spot: &Spot, value: Value) -> Result<String, String> {
    let written = match value {
        Value::Largest => spot.largest,
        Value::OneMore => spot.largest + 1,
        Value::HighByte => spot.value | 0xF000_0000,
    };
    let copy = tempfile::tempdir().unwrap();
    let dir = copy.path().join("store");
    copy_dir(pristine, &dir);
    spot.write(&dir, written);

    // A journal is cut, not refused: the store opens in place with what comes before the cut.
    let journal = matches!(spot.count, Count::JournalValue);
    let checksummed = matches!(spot.count, Count::BlobMetaLength);
    let limit = (journal || checksummed).then_some(SMALL_MACHINE_KIB);
    let out = run_child_in(exe, &dir, REFUSE, limit)?;
    let first = out.lines().next().unwrap_or_default();
    let last = out.lines().last().unwrap_or_default();
    let named = first.starts_with("refused:")
        && first.contains("claims")
        && first.contains(&*spot.file.to_string_lossy());
    let refused = written > spot.largest && !journal && !checksummed;
    if checksummed && !(first.starts_with("refused:") && last.starts_with("moved aside")) {
        return Err(format!("{written} written; not refused by fjall: {out}"));
    }
    if journal && (first != "opened" || !last.starts_with("opened in place")) {
        return Err(format!("{written} written; not opened in place: {out}"));
    }
    if refused != named {
        return Err(format!(
            "{written} written; expected the length check {} it: {first}",
            if refused {
                "to refuse"
            } else {
                "not to refuse"
            }
        ));
    }
    if refused && !last.starts_with("moved aside") {
        return Err(format!("{written} written; not moved aside: {last}"));
    }
    if written == spot.value && last != "opened in place, every entry intact" {
        return Err(format!("the count left as it was; {last}"));
    }
    let mut outcome = format!("{written:#x} written: {last}");
    if let Value::HighByte = value {
        // The same damage opened (and compacted) by fjall alone, for the record.
        let alone_dir = dir.with_extension("fjall");
        copy_dir(pristine, &alone_dir);
        spot.write(&alone_dir, written);
        let alone = match run_child_in(exe, &alone_dir, FJALL, limit) {
            Ok(out) => out.lines().last().unwrap_or_default().to_owned(),
            Err(why) => why,
        };
        outcome.push_str(&format!("; fjall alone: {alone}"));
    }
    Ok(outcome)
}

/// Opens the directory refusing damage (`OnDamage::Fail`) and prints what happened, then runs
/// the seeded rounds' [`child`] on it (which opens it with the default, recovering).
async fn refuse_child(dir: PathBuf) -> ExitCode {
    match FjallStore::builder(&dir).on_damage(OnDamage::Fail).open() {
        Ok(store) => {
            drop(store);
            println!("opened");
        }
        Err(e) => println!("refused: {e}"),
    }
    child(dir).await
}

/// Opens the database with fjall alone, then compacts the chunks keyspace (a compaction reads
/// the blob files each table refers to). Prints what happened; a damage that aborts the process
/// shows as the child's signal.
fn fjall_child(dir: &Path) -> ExitCode {
    let opened = fjall::Database::builder(dir.join("db"))
        .open()
        .and_then(|db| {
            let chunks = db.keyspace("chunks", fjall::KeyspaceCreateOptions::default)?;
            chunks.major_compact()
        });
    match opened {
        Ok(()) => println!("opened and compacted"),
        Err(e) => println!("refused ({e})"),
    }
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
