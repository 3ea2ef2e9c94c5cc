//! Damaged stored bytes give misses or errors, never wrong bytes or a panic; a directory that
//! cannot be opened is moved aside and the store starts empty.

use crate::common;

use std::path::Path;

use cachio_core::store::ErrorKind;
use cachio_fjall::{FjallStore, OnDamage, ReadMode};
use common::{body, copy_dir, get, header, list, put};
use fjall::{Database, KeyspaceCreateOptions};

const KEYS: usize = 8;

/// Writes `KEYS` entries of 200 KB (four chunks each), then closes the store. With `filler`,
/// writes 4.8 MB more first, so that chunks are flushed from the journal to tables and blob
/// files.
async fn populate(dir: &Path, filler: bool) {
    let store = FjallStore::open(dir).unwrap();
    for i in 0..if filler { 24 } else { 0 } {
        put(
            &store,
            &format!("filler{i}"),
            "f",
            &body(1000 + i, 200_000),
            65_536,
            None,
        )
        .await
        .unwrap();
    }
    for i in 0..KEYS {
        put(
            &store,
            &format!("k{i}"),
            &format!("v{i}"),
            &body(i as u64, 200_000),
            50_000,
            None,
        )
        .await
        .unwrap();
    }
}

/// Changes stored values with fjall directly, while the store is closed.
fn tamper(dir: &Path, f: impl FnOnce(&Database)) {
    let db = Database::builder(dir.join("db")).open().unwrap();
    f(&db);
    db.persist(fjall::PersistMode::SyncAll).unwrap();
}

fn keyspace(db: &Database, name: &str) -> fjall::Keyspace {
    db.keyspace(name, KeyspaceCreateOptions::default).unwrap()
}

/// The generation of the entry under `key`, from its record.
fn gen_of(db: &Database, key: &str) -> u64 {
    let rec = keyspace(db, "entries").get(key).unwrap().unwrap();
    u64::from_be_bytes(rec[1..9].try_into().unwrap())
}

fn chunk_key(gen_id: u64, index: u32) -> Vec<u8> {
    let mut k = gen_id.to_be_bytes().to_vec();
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// Reads every entry: each must be a miss, an error, or exactly what was written (a body may end
/// with an error, after correct bytes only).
async fn check_all(store: &FjallStore) -> (usize, usize, usize) {
    let (mut hits, mut misses, mut errors) = (0, 0, 0);
    for i in 0..KEYS {
        let expected = body(i as u64, 200_000);
        match get(store, &format!("k{i}")).await {
            Err(_) => errors += 1,
            Ok(None) => misses += 1,
            Ok(Some((m, b))) => {
                assert_eq!(
                    header(&m, "x-tag"),
                    Some(format!("v{i}").as_str()),
                    "metadata of k{i}"
                );
                match b {
                    Ok(b) => {
                        assert!(b == expected, "k{i}: {} wrong bytes", b.len());
                        hits += 1;
                    }
                    Err(_) => errors += 1,
                }
            }
        }
    }
    (hits, misses, errors)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_records_are_misses_and_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), false).await;
    tamper(dir.path(), |db| {
        let entries = keyspace(db, "entries");
        let rec = entries.get("k0").unwrap().unwrap().to_vec();
        // k0: one bit flipped in the metadata.
        let mut flipped = rec.clone();
        flipped[60] ^= 0x04;
        entries.insert("k0", flipped).unwrap();
        // k1: truncated.
        let rec1 = entries.get("k1").unwrap().unwrap().to_vec();
        entries
            .insert("k1", rec1[..rec1.len() / 2].to_vec())
            .unwrap();
        // k2: a format version this crate does not know.
        let mut other = entries.get("k2").unwrap().unwrap().to_vec();
        other[0] = 2;
        entries.insert("k2", other).unwrap();
        // k3: a valid record (the checksum recomputed as documented) whose metadata has an
        // unknown format version.
        let mut meta_v9 = entries.get("k3").unwrap().unwrap().to_vec();
        let n = meta_v9.len();
        meta_v9[41 + 4..41 + 6].copy_from_slice(&9u16.to_be_bytes());
        let mut crc = crc32fast::Hasher::new();
        crc.update(b"k3");
        crc.update(&meta_v9[..n - 4]);
        meta_v9[n - 4..].copy_from_slice(&crc.finalize().to_be_bytes());
        entries.insert("k3", meta_v9).unwrap();
        // k4: empty; k5: another key's record.
        entries.insert("k4", Vec::<u8>::new()).unwrap();
        entries.insert("k5", rec).unwrap();
        // A damaged LRU item.
        let lru = keyspace(db, "lru");
        let first = lru.first_key_value().unwrap().into_inner().unwrap();
        let mut v = first.1.to_vec();
        v[5] ^= 0xff;
        lru.insert(first.0, v).unwrap();
    });
    let store = FjallStore::open(dir.path()).unwrap();
    for i in 0..6 {
        assert!(
            get(&store, &format!("k{i}")).await.unwrap().is_none(),
            "k{i}"
        );
    }
    assert_eq!(
        store.corrupt_entries(),
        6,
        "each damaged record counted once"
    );
    assert_eq!(check_all(&store).await, (2, 6, 0));
    store.run_pending_tasks().await.unwrap();
    drop(store);
    // They were removed.
    tamper(dir.path(), |db| {
        let entries = keyspace(db, "entries");
        for i in 0..6 {
            assert!(
                entries.get(format!("k{i}")).unwrap().is_none(),
                "k{i} was not removed"
            );
        }
    });
    // The keys can be written again, and eviction copes with the leftover index items.
    let store = FjallStore::builder(dir.path())
        .budget_bytes(600_000)
        .max_object_size(300_000)
        .open()
        .unwrap();
    put(&store, "k0", "v0", &body(0, 200_000), 50_000, None)
        .await
        .unwrap();
    store.run_pending_tasks().await.unwrap();
    assert!(store.tracked_bytes() <= 600_000);
    assert_eq!(
        get(&store, "k0").await.unwrap().unwrap().1.unwrap(),
        body(0, 200_000)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_chunks_end_the_body_with_an_error() {
    damaged_chunks(ReadMode::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_chunks_end_the_body_with_an_error_reading_inline() {
    damaged_chunks(ReadMode::Inline).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_chunks_end_the_body_with_an_error_reading_on_the_blocking_pool() {
    damaged_chunks(ReadMode::Blocking).await;
}

async fn damaged_chunks(mode: ReadMode) {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path(), false).await;
    tamper(dir.path(), |db| {
        let chunks = keyspace(db, "chunks");
        // k0: a bit flipped in chunk 2's payload.
        let k = chunk_key(gen_of(db, "k0"), 2);
        let mut v = chunks.get(&k).unwrap().unwrap().to_vec();
        v[1000] ^= 0x01;
        chunks.insert(k, v).unwrap();
        // k1: chunk 1 missing.
        chunks.remove(chunk_key(gen_of(db, "k1"), 1)).unwrap();
        // k2: the last chunk truncated.
        let k = chunk_key(gen_of(db, "k2"), 3);
        let v = chunks.get(&k).unwrap().unwrap().to_vec();
        chunks.insert(k, v[..v.len() - 10].to_vec()).unwrap();
        // k3: chunk 0 replaced by k4's chunk 0 (valid, but not its own): damaged from the start.
        let other = chunks.get(chunk_key(gen_of(db, "k4"), 0)).unwrap().unwrap();
        chunks
            .insert(chunk_key(gen_of(db, "k3"), 0), other)
            .unwrap();
    });
    let store = FjallStore::builder(dir.path())
        .read_mode(mode)
        .open()
        .unwrap();
    // k3's body is damaged from its first chunk, found before anything could be sent: a miss,
    // so the caller fetches the response again instead of getting a body that fails at once.
    assert!(
        cachio_core::store::Store::get(&store, "k3")
            .await
            .unwrap()
            .is_none(),
        "k3: a body damaged from its start is a miss"
    );
    for (i, good_frames) in [(0, 2), (1, 1), (2, 3)] {
        let hit = cachio_core::store::Store::get(&store, &format!("k{i}"))
            .await
            .unwrap()
            .unwrap();
        let expected = body(i, 200_000);
        let mut body = hit.body;
        let mut got = Vec::new();
        let err = loop {
            use http_body_util::BodyExt;
            match body.frame().await {
                Some(Ok(f)) => got.extend_from_slice(&f.into_data().unwrap()),
                Some(Err(e)) => break e,
                None => panic!("k{i}: the damaged body ended without an error"),
            }
        };
        assert_eq!(err.kind(), ErrorKind::Corrupt, "k{i}: {err}");
        assert_eq!(got.len(), good_frames * cachio_fjall::CHUNK_SIZE, "k{i}");
        assert_eq!(
            got,
            expected[..got.len()],
            "k{i}: wrong bytes before the error"
        );
        use http_body::Body;
        assert!(body.is_end_stream());
    }
    assert_eq!(store.corrupt_entries(), 4);
    // Each damaged entry was removed when its body failed: the next read is a miss.
    store.run_pending_tasks().await.unwrap();
    assert_eq!(check_all(&store).await, (4, 4, 0));
}

/// Bytes flipped in every file of the database, one file at a time: the store opens every time,
/// with what is intact or (when fjall cannot open it) empty, and never serves a wrong byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_files_give_errors_or_misses_never_wrong_bytes() {
    let pristine = tempfile::tempdir().unwrap();
    populate(pristine.path(), true).await;
    let mut files = Vec::new();
    list(pristine.path(), &mut files);
    files.retain(|f| !f.ends_with("cachio-fjall.lock") && !f.ends_with("lock"));
    assert!(files.len() > 5, "{files:?}");
    let mut outcomes = std::collections::BTreeMap::new();
    let mut moved = 0;
    for file in &files {
        let rel = file.strip_prefix(pristine.path()).unwrap();
        if std::fs::metadata(file).unwrap().len() == 0 {
            continue;
        }
        // Journals are preallocated: aim at the part that was written.
        let written = std::fs::read(file)
            .unwrap()
            .iter()
            .rposition(|&b| b != 0)
            .map_or(1, |p| p as u64 + 1);
        let mut offsets = vec![written / 2, written.saturating_sub(9)];
        offsets.dedup();
        for at in offsets {
            let copy = tempfile::tempdir().unwrap();
            let dir = copy.path().join("store");
            copy_dir(pristine.path(), &dir);
            let target = dir.join(rel);
            let mut bytes = std::fs::read(&target).unwrap();
            bytes[at as usize] ^= 0x5a;
            std::fs::write(&target, bytes).unwrap();
            let what = format!("{} @{at}", rel.display());
            let store = FjallStore::open(&dir)
                .unwrap_or_else(|e| panic!("{what}: the store did not open: {e}"));
            let (hits, misses, errors) = check_all(&store).await;
            if let Some(aside) = store.moved_aside() {
                moved += 1;
                assert!(
                    aside.is_dir(),
                    "{what}: the damaged directory is kept aside"
                );
                assert_eq!(
                    (hits, errors),
                    (0, 0),
                    "{what}: a store moved aside starts empty"
                );
            }
            store.run_pending_tasks().await.ok();
            outcomes.insert(
                what,
                format!(
                    "{hits} hits, {misses} misses, {errors} errors, moved aside: {}",
                    store.moved_aside().is_some()
                ),
            );
        }
    }
    for (file, outcome) in &outcomes {
        eprintln!("{file}: {outcome}");
    }
    assert!(
        moved > 0,
        "some damage needs the directory moved aside: {outcomes:#?}"
    );
}

/// With [`OnDamage::Fail`], the damage is an error and the directory stays as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_on_damage_fail_a_damaged_directory_is_an_error_left_in_place() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    populate(&dir, true).await;
    let journal = dir.join("db").join("0.jnl");
    let mut bytes = std::fs::read(&journal).unwrap();
    let written = bytes.iter().rposition(|&b| b != 0).unwrap();
    bytes[written / 2] ^= 0x5a;
    std::fs::write(&journal, &bytes).unwrap();

    let err = FjallStore::builder(&dir)
        .on_damage(OnDamage::Fail)
        .open()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert_eq!(std::fs::read(&journal).unwrap(), bytes, "left as it was");
    assert_eq!(siblings(root.path()), ["store"]);

    // The default recovers: the same directory opens, empty, and the damaged one is kept.
    let store = FjallStore::open(&dir).unwrap();
    assert_eq!(check_all(&store).await, (0, KEYS, 0));
    let aside = store.moved_aside().unwrap().to_owned();
    assert_eq!(
        std::fs::read(aside.join("db").join("0.jnl")).unwrap(),
        bytes
    );
}

/// A file where the directory should be, and damage found twice: each is moved aside, and only
/// the latest damaged copy is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_in_the_way_is_moved_aside_and_one_damaged_copy_is_kept() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    std::fs::write(&dir, b"first").unwrap();
    let store = FjallStore::open(&dir).unwrap();
    let first = store.moved_aside().unwrap().to_owned();
    assert_eq!(std::fs::read(&first).unwrap(), b"first");
    put(&store, "k", "v", &body(1, 1000), 1000, None)
        .await
        .unwrap();
    drop(store);

    // Again: the first damaged copy goes, the second is kept, and the new store works.
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, b"second").unwrap();
    let store = FjallStore::open(&dir).unwrap();
    let second = store.moved_aside().unwrap().to_owned();
    assert_eq!(std::fs::read(&second).unwrap(), b"second");
    let names = siblings(root.path());
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("store.corrupt-")),
        "{names:?}"
    );
    put(&store, "k", "v", &body(2, 1000), 1000, None)
        .await
        .unwrap();
    assert!(get(&store, "k").await.unwrap().is_some());
}

/// A directory another store has open is not damage: an error, and nothing is moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_in_use_is_an_error_and_is_not_moved() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let first = FjallStore::open(&dir).unwrap();
    let err = FjallStore::open(&dir).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    assert_eq!(siblings(root.path()), ["store"]);
    drop(first);
}

/// The names in `dir`, sorted.
fn siblings(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}
