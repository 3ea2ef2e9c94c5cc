//! A child process writes, overwrites, updates and deletes entries in a loop and is killed with
//! SIGKILL at random moments. After each kill the store must open, every visible entry must
//! have its whole body (the length and CRC-32 its metadata recorded), and every operation the
//! child saw complete must be there (the default durability loses nothing on a process crash).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cachio_core::meta::{Meta, ResponseMeta};
use cachio_core::store::{Store, StoreWriter};
use cachio_fjall::FjallStore;
use common::{Rng, chunk_count, chunks_on_disk, get, header};
use http::{HeaderMap, HeaderValue, StatusCode, Version};

const ROUNDS: u64 = 20;
const TASKS: u64 = 3;
const KEYS: u64 = 10;

fn meta(seq: u64, len: usize, crc: u32) -> Arc<Meta> {
    let mut h = HeaderMap::new();
    h.insert("x-seq", HeaderValue::from(seq));
    h.insert("x-len", HeaderValue::from(len));
    h.insert("x-crc", HeaderValue::from(crc));
    Arc::new(Meta::Response(ResponseMeta::new(
        StatusCode::OK,
        Version::HTTP_11,
        h,
        Vec::new(),
        std::time::UNIX_EPOCH,
        std::time::UNIX_EPOCH,
    )))
}

/// An entry as the log and the checks see it: sequence number, body length and CRC-32.
type State = Option<(u64, usize, u32)>;

/// Reads and checks the entry under `key`: its body must match its metadata.
async fn observe(store: &FjallStore, key: &str) -> State {
    let (m, b) = get(store, key).await.unwrap()?;
    let b = b.unwrap_or_else(|e| panic!("{key}: the body failed: {e}"));
    let num = |name| header(&m, name).unwrap().parse::<u64>().unwrap();
    assert_eq!(b.len() as u64, num("x-len"), "{key}: body length");
    assert_eq!(
        u64::from(crc32fast::hash(&b)),
        num("x-crc"),
        "{key}: body checksum"
    );
    Some((num("x-seq"), b.len(), crc32fast::hash(&b)))
}

/// The child: runs until it is killed.
#[test]
fn crash_child() {
    let (Some(dir), Some(log)) = (
        std::env::var_os("CACHIO_FJALL_CRASH_DIR"),
        std::env::var_os("CACHIO_FJALL_CRASH_LOG"),
    ) else {
        return;
    };
    let round: u64 = std::env::var("CACHIO_FJALL_CRASH_ROUND")
        .unwrap()
        .parse()
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = FjallStore::builder(&dir)
            .budget_bytes(1 << 30)
            .open()
            .unwrap();
        let log = Arc::new(std::sync::Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(log)
                .unwrap(),
        ));
        let tasks: Vec<_> = (0..TASKS)
            .map(|t| {
                let (store, log) = (store.clone(), Arc::clone(&log));
                tokio::spawn(async move { child_task(store, log, round, t).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
}

async fn child_task(
    store: FjallStore,
    log: Arc<std::sync::Mutex<std::fs::File>>,
    round: u64,
    t: u64,
) {
    let write = |line: String| {
        // One write(2) per line: it reaches the OS before the next operation starts.
        log.lock().unwrap().write_all(line.as_bytes()).unwrap();
    };
    let mut rng = Rng(Rng::new().0 ^ (t + 1).wrapping_mul(0x9E37_79B9));
    let mut known: HashMap<String, State> = HashMap::new();
    for k in 0..KEYS {
        let key = format!("t{t}/k{k}");
        known.insert(key.clone(), observe(&store, &key).await);
    }
    for n in 1.. {
        let seq = round * 1_000_000 + n;
        let key = format!("t{t}/k{}", rng.below(KEYS));
        match rng.below(10) {
            0..=5 => {
                let len = match rng.below(10) {
                    0 => 0,
                    1..=4 => rng.below(5000) as usize,
                    5..=8 => rng.below(40_000) as usize,
                    // Several chunks.
                    _ => 100_000 + rng.below(400_000) as usize,
                };
                let body = common::body(seq, len);
                let crc = crc32fast::hash(&body);
                write(format!("S {key} {seq} C\n"));
                let mut w = store.begin(&key).unwrap();
                let mut at = 0;
                while at < len {
                    let n = (1 + rng.below(100_000) as usize).min(len - at);
                    w.append(Bytes::copy_from_slice(&body[at..at + n])).unwrap();
                    at += n;
                    if rng.below(8) == 0 {
                        w.wait_written().await;
                    }
                }
                w.commit(meta(seq, len, crc), None).await.unwrap();
                write(format!("C {key} {seq} {len} {crc}\n"));
                known.insert(key, Some((seq, len, crc)));
            }
            6 => {
                // A writer abandoned halfway.
                let mut w = store.begin(&key).unwrap();
                w.append(Bytes::from(common::body(seq, 100_000))).unwrap();
                tokio::task::yield_now().await;
                drop(w);
            }
            7 => {
                let Some(Some((current, len, crc))) = known.get(&key).copied() else {
                    continue;
                };
                write(format!("S {key} {seq} U\n"));
                let previous = meta(current, len, crc);
                assert!(
                    store
                        .update(&key, &previous, meta(seq, len, crc), None)
                        .await
                        .unwrap()
                );
                write(format!("U {key} {seq}\n"));
                known.insert(key, Some((seq, len, crc)));
            }
            8 => {
                write(format!("S {key} {seq} D\n"));
                store.delete(&key).await.unwrap();
                write(format!("D {key} {seq}\n"));
                known.insert(key, None);
            }
            _ => {
                assert_eq!(observe(&store, &key).await, known[&key], "{key}: a read");
            }
        }
    }
}

/// What the log says about one key: the state after the last completed operation, and the
/// operation in flight when the child was killed (its sequence number and kind).
fn expected(start: State, lines: &[Vec<&str>]) -> (State, Option<(u64, char)>) {
    let mut state = start;
    let mut in_flight = None;
    for l in lines {
        let seq: u64 = l[2].parse().unwrap();
        match l[0] {
            "S" => in_flight = Some((seq, l[3].chars().next().unwrap())),
            "C" => {
                state = Some((seq, l[3].parse().unwrap(), l[4].parse().unwrap()));
                in_flight = None;
            }
            "U" => {
                let (_, len, crc) = state.expect("an update of a missing entry");
                state = Some((seq, len, crc));
                in_flight = None;
            }
            "D" => {
                state = None;
                in_flight = None;
            }
            other => panic!("log line {other}"),
        }
    }
    (state, in_flight)
}

#[test]
fn sigkill_at_random_moments_never_tears_or_loses_an_entry() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let mut rng = Rng::new();
    let mut truth: BTreeMap<String, State> = (0..TASKS)
        .flat_map(|t| (0..KEYS).map(move |k| (format!("t{t}/k{k}"), None)))
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (mut completed, mut in_flight_seen) = (0, 0);
    for round in 1..=ROUNDS {
        let log = logs.path().join(format!("{round}.log"));
        let mut child = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env("CACHIO_FJALL_CRASH_DIR", dir.path())
            .env("CACHIO_FJALL_CRASH_LOG", &log)
            .env("CACHIO_FJALL_CRASH_ROUND", round.to_string())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        if round % 5 == 0 {
            // Sometimes during start-up and recovery.
            std::thread::sleep(Duration::from_millis(rng.below(150)));
        } else {
            // Mostly once the child is at work.
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while std::fs::metadata(&log).map_or(0, |m| m.len()) == 0 {
                assert!(
                    std::time::Instant::now() < deadline,
                    "round {round}: the child did not start"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
            std::thread::sleep(Duration::from_millis(20 + rng.below(400)));
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("round {round}: the child exited on its own: {status}");
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let text = std::fs::read_to_string(&log).unwrap_or_default();
        // A line cut by the kill has no newline: it did not happen.
        let complete = match text.rfind('\n') {
            Some(end) => &text[..=end],
            None => "",
        };
        let mut per_key: HashMap<&str, Vec<Vec<&str>>> = HashMap::new();
        for line in complete.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            completed += usize::from(fields[0] != "S");
            per_key.entry(fields[1]).or_default().push(fields);
        }
        rt.block_on(check_round(
            dir.path(),
            round,
            &mut truth,
            &per_key,
            &mut in_flight_seen,
        ));
    }
    eprintln!(
        "{ROUNDS} rounds, {completed} operations completed, {in_flight_seen} in flight at a kill"
    );
    assert!(
        completed > 100,
        "the child did little: {completed} operations"
    );

    // Nothing is left over: the entries are all counted, and the database holds exactly
    // their chunks (interrupted writes and deletions were cleaned up).
    rt.block_on(async {
        let store = FjallStore::open(dir.path()).unwrap();
        store.run_pending_tasks().await.unwrap();
        let visible: Vec<_> = truth.values().flatten().collect();
        assert_eq!(store.entry_count(), visible.len() as u64);
        drop(store);
        let on_disk: u32 = chunks_on_disk(dir.path()).values().sum();
        let expected: u32 = visible.iter().map(|(_, len, _)| chunk_count(*len)).sum();
        assert_eq!(on_disk, expected, "chunks left behind");
    });
}

async fn check_round(
    dir: &Path,
    round: u64,
    truth: &mut BTreeMap<String, State>,
    per_key: &HashMap<&str, Vec<Vec<&str>>>,
    in_flight_seen: &mut usize,
) {
    let store = FjallStore::open(dir)
        .unwrap_or_else(|e| panic!("round {round}: the store did not open after a kill: {e}"));
    for (key, state) in truth.iter_mut() {
        let lines = per_key.get(key.as_str()).map_or(&[][..], Vec::as_slice);
        let (done, in_flight) = expected(*state, lines);
        let seen = observe(&store, key).await;
        let ok = seen == done
            || match in_flight {
                Some((_, 'D')) => seen.is_none(),
                Some((seq, 'C')) => seen.is_some_and(|(s, _, _)| s == seq),
                Some((seq, 'U')) => seen.is_some_and(|(s, len, crc)| {
                    s == seq && done.is_some_and(|d| (d.1, d.2) == (len, crc))
                }),
                _ => false,
            };
        assert!(
            ok,
            "round {round}, {key}: found {seen:?}, expected {done:?} (in flight: {in_flight:?})"
        );
        if in_flight.is_some() {
            *in_flight_seen += 1;
        }
        *state = seen;
    }
}
