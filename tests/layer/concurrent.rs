//! The random exchanges of [`model`](super::model), sent by several clients at once through one
//! layer, on a runtime with several threads, to an origin whose bodies arrive in two halves a
//! moment apart: so that fetches, their tees, collapsed waiters, validations and invalidations
//! overlap.
//!
//! With requests in flight together, the exact answer of a correct cache is no longer one: the
//! check is what holds whatever the interleaving. Every response is one the origin gave for that
//! URI and variant, whole, with header and body from one version; never older than an
//! invalidation that completed before the request was sent (RFC 9111 §4.4); forwarded ones no
//! older than the origin when the request left; from the store only with an `Age` within the
//! request's own span of the clock, and only when that age, the response's directives and the
//! request allow it; and a shared cache never gives one user's response to another.
//!
//! A failure prints the seed and the last steps of all clients, interleaved as they happened;
//! the interleaving itself is not replayable, so a failure is worth keeping as it is printed.

use crate::model::{
    AskCc, LANGS, PATHS, Rng, USERS, World, cache_status, describes, directives, forbids_stale,
    harness, lifetime, request, reusable, seconds, seed, stale_allowed, whole, within_request,
};
use crate::support;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use cachio::{CacheLayer, Store};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use support::Harness;

/// Clients sending at once.
const CLIENTS: u64 = 8;

/// What every client of a run shares.
struct Shared<St> {
    h: Harness<St>,
    world: Arc<Mutex<World>>,
    shared: bool,
    /// Per path: the newest version an invalidation through the cache has completed for.
    floor: Mutex<HashMap<&'static str, u64>>,
    /// The clock when the run began.
    began: u64,
    log: Mutex<VecDeque<String>>,
    what: String,
    seen: Seen,
}

/// What a run has exercised.
#[derive(Debug, Default)]
struct Seen {
    hits: AtomicUsize,
    stale_hits: AtomicUsize,
    collapsed: AtomicUsize,
    not_modified: AtomicUsize,
    vary_hits: AtomicUsize,
    invalidations: AtomicUsize,
    abandoned: AtomicUsize,
    forwarded: AtomicUsize,
}

fn bump(n: &AtomicUsize) {
    n.fetch_add(1, Ordering::Relaxed);
}

impl<St: Store> Shared<St> {
    fn now(&self) -> u64 {
        seconds(&self.h.clock)
    }

    fn current(&self, path: &str) -> u64 {
        self.world.lock().unwrap().current(path)
    }

    fn note(&self, step: String) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() == 80 {
            log.pop_front();
        }
        log.push_back(step);
    }

    #[track_caller]
    fn check(&self, ok: bool, why: impl FnOnce() -> String) {
        if !ok {
            self.fail(why());
        }
    }

    #[track_caller]
    fn holds<T>(&self, checked: Result<T, String>) -> T {
        checked.unwrap_or_else(|why| self.fail(why))
    }

    #[track_caller]
    fn fail(&self, why: String) -> ! {
        let steps = {
            let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
            log.iter()
                .map(String::as_str)
                .collect::<Vec<_>>()
                .join("\n  ")
        };
        panic!(
            "{}: {why}\nlast steps of all clients, oldest first:\n  {steps}",
            self.what
        );
    }

    /// Sometimes changes the world (the clock, the origin's health, a resource behind the
    /// cache's back, a body to abandon), then sends one random request and checks its answer.
    async fn step(&self, client: u64, rng: &mut Rng) {
        if rng.chance(8) {
            let secs = rng.below(5) + 1;
            self.h.advance(secs);
            self.note(format!("#{client} clock +{secs}s"));
        }
        if rng.chance(2) {
            let down = self.world.lock().unwrap().toggle();
            self.note(format!(
                "#{client} origin {}",
                if down { "down" } else { "up" }
            ));
        }
        if rng.chance(2) {
            let path = rng.pick(&PATHS);
            let now = self.now();
            let v = self.world.lock().unwrap().change_behind(path, now);
            self.note(format!("#{client} {path} changed behind the cache to v{v}"));
        }
        if rng.chance(2) {
            let path = rng.pick(&PATHS);
            let v = self.world.lock().unwrap().doom(path);
            self.note(format!("#{client} {path} v{v} will die mid-body once"));
        }
        let path = rng.pick(&PATHS[..3]);
        let method = match rng.below(100) {
            0..=7 => Method::HEAD,
            8..=12 => Method::POST,
            13..=14 => Method::DELETE,
            _ => Method::GET,
        };
        let lang = rng.pick(&LANGS);
        let user = rng.pick(&USERS);
        let cc = rng.chance(15).then(|| {
            rng.pick(&[
                "no-cache",
                "max-age=0",
                "max-age=3",
                "max-stale",
                "max-stale=4",
                "min-fresh=2",
            ])
        });
        self.send(client, method, path, lang, user, cc).await;
    }

    async fn send(
        &self,
        client: u64,
        method: Method,
        path: &'static str,
        lang: Option<&'static str>,
        user: Option<&'static str>,
        cc: Option<&'static str>,
    ) {
        let req = request(&self.h, &method, path, lang, user, cc);
        let floor = self.floor.lock().unwrap().get(path).copied().unwrap_or(0);
        let before = self.current(path);
        let sent_at = self.now();
        let res = self.h.call(req).await;
        let Ok(res) = res else {
            self.note(format!("#{client} {method} {path} -> connection error"));
            return;
        };
        let (parts, body) = res.into_parts();
        let (status, headers) = (parts.status, parts.headers);
        let body = body.collect().await.map(|c| c.to_bytes());
        let after = self.current(path);
        let done_at = self.now();
        let cache_status = cache_status(&headers);
        self.note(format!(
            "#{client} {method} {path} lang={lang:?} user={user:?} cc={cc:?} (v{before}..v{after}, floor v{floor}) -> {status} [{cache_status}] {:?}",
            body.as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned()),
        ));
        self.check(!cache_status.is_empty(), || {
            "a response without Cache-Status".into()
        });
        let hit = cache_status.split("; ").any(|p| p == "hit");
        let collapsed = cache_status.split("; ").any(|p| p == "collapsed");
        let Ok(body) = body else {
            // Only the origin's abandoned body may fail (for the request that fetched it and for
            // those that stream it while it is fetched: `collapsed`), never one read from the store.
            self.check(!hit, || "a body from the store that failed".into());
            bump(&self.seen.abandoned);
            return;
        };

        if !matches!(method, Method::GET | Method::HEAD) {
            self.check(!hit, || "an unsafe method answered from the cache".into());
            if status.is_success() {
                let made: u64 = headers["x-version"].to_str().unwrap().parse().unwrap();
                let mut floor = self.floor.lock().unwrap();
                let f = floor.entry(path).or_default();
                *f = (*f).max(made);
                bump(&self.seen.invalidations);
            }
            return;
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let origins = if method == Method::HEAD {
                &b""[..]
            } else {
                b"down"
            };
            self.check(!hit && body == origins, || {
                "a 503 that is not the origin's".into()
            });
            return;
        }

        let version = headers
            .get("x-version")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        self.check(version.is_some(), || format!("no version in {headers:?}"));
        let version = version.unwrap_or_default();
        self.check(version >= floor && version <= after, || {
            format!("version {version}, outside v{floor}..=v{after}")
        });
        let (profile, body_lang) = self.holds(describes(path, lang, version, &headers));
        let shared_user = self.shared.then_some(user);
        self.holds(whole(
            &method,
            path,
            body_lang,
            version,
            &profile,
            status,
            &body,
            shared_user,
        ));

        let if_error = cache_status.contains("detail=stale-if-error");
        if !hit && !collapsed && !if_error {
            // Forwarded: what the origin held at some moment after the request left.
            self.check(version >= before, || {
                format!("a forwarded response of version {version}, the origin had {before}")
            });
            bump(&self.seen.forwarded);
            if cache_status.contains("fwd-status=304") {
                bump(&self.seen.not_modified);
            }
            return;
        }
        if collapsed {
            bump(&self.seen.collapsed);
        } else {
            bump(&self.seen.hits);
        }
        if profile.vary {
            bump(&self.seen.vary_hits);
        }

        // From the store: never younger than its Date says at the time the request was sent.
        // It may be older: the age counts the delay of the exchange that fetched it (RFC 9111
        // §4.2.3), over which the clock may have moved; but no exchange began before the run.
        // And an age the response's directives and the request allow.
        let date = headers
            .get("date")
            .and_then(cachio::core::meta::parse_http_date)
            .map(|d| d.duration_since(UNIX_EPOCH).unwrap().as_secs());
        self.check(date.is_some(), || "a stored response without Date".into());
        let date = date.unwrap_or_default();
        let age: Option<u64> = headers
            .get("age")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        self.check(
            age.is_some_and(|a| a + date >= sent_at && a <= done_at - self.began),
            || format!("Age {age:?}, Date {date}, the request ran from {sent_at} to {done_at}"),
        );
        let age = age.unwrap_or_default();
        let shared = self.shared;
        self.holds(reusable(&profile, shared));
        let lifetime = lifetime(&profile, shared);
        let forbidden = forbids_stale(&profile, shared);
        if if_error {
            self.check(
                !forbidden && profile.sie.is_some_and(|n| age <= lifetime + n),
                || {
                    format!(
                        "stale-if-error at age {age} despite {:?}",
                        directives(&headers)
                    )
                },
            );
            return;
        }
        // A waiter is answered with the fetch it waited for, whatever its own directives said.
        if collapsed {
            return;
        }
        let req = AskCc::parse(cc, false);
        self.holds(within_request(&req, age, lifetime));
        if age < lifetime {
            return;
        }
        bump(&self.seen.stale_hits);
        let staleness = age - lifetime;
        self.check(!forbidden, || {
            format!(
                "served {staleness}s stale despite {:?}",
                directives(&headers)
            )
        });
        self.check(stale_allowed(&profile, &req, staleness), || {
            format!("served {staleness}s stale, nothing allows it")
        });
    }
}

/// Requests per client.
fn steps() -> usize {
    std::env::var("CACHIO_MODEL_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(150, |n: usize| n / 8)
}

async fn run<St: Store>(layer: CacheLayer<St>, shared: bool, store: &str, seed: u64) -> [usize; 8] {
    let world = Arc::new(Mutex::new(World {
        trickle: Some(Duration::from_millis(3)),
        ..World::default()
    }));
    let h = harness(layer, &world).await;
    let what = format!(
        "seed {seed}, {CLIENTS} clients, {} cache, {store}",
        if shared { "shared" } else { "private" }
    );
    let began = seconds(&h.clock);
    let run = Arc::new(Shared {
        began,
        h,
        world,
        shared,
        floor: Mutex::new(HashMap::new()),
        log: Mutex::new(VecDeque::new()),
        what,
        seen: Seen::default(),
    });
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let run = run.clone();
            tokio::spawn(async move {
                let mut rng =
                    Rng((seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ ((client + 1) * 7919)) | 1);
                for _ in 0..steps() {
                    run.step(client, &mut rng).await;
                }
            })
        })
        .collect();
    // Every client runs to its end (or its first failed check); the first failure is told.
    let mut failure = None;
    for client in clients {
        if let Err(e) = client.await {
            failure.get_or_insert(e.into_panic());
        }
    }
    if let Some(panic) = failure {
        std::panic::resume_unwind(panic);
    }
    eprintln!("{}: {:?}", run.what, run.seen);
    run.seen.counts()
}

/// Runs `seeds` and checks that together they exercised every kind of answer (how often each
/// happens depends on how the clients interleave, so one seed alone may miss a rare one).
async fn runs<St: Store>(
    seeds: std::ops::RangeInclusive<u64>,
    shared: bool,
    store: &str,
    new: impl Fn() -> St,
) {
    let mut total = [0; 8];
    for s in seeds {
        let layer = if shared {
            CacheLayer::shared(new())
        } else {
            CacheLayer::private(new())
        };
        let counts = run(layer, shared, store, seed() + s).await;
        for (t, n) in total.iter_mut().zip(counts) {
            *t += n;
        }
    }
    assert!(
        total.iter().all(|&n| n > 0),
        "the runs did not exercise every kind of answer: {total:?} ({})",
        Seen::KINDS
    );
}

impl Seen {
    const KINDS: &str =
        "hits, stale hits, collapsed, 304s, Vary hits, invalidations, abandoned, forwarded";

    fn counts(&self) -> [usize; 8] {
        [
            &self.hits,
            &self.stale_hits,
            &self.collapsed,
            &self.not_modified,
            &self.vary_hits,
            &self.invalidations,
            &self.abandoned,
            &self.forwarded,
        ]
        .map(|a| a.load(Ordering::Relaxed))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rfc9111_concurrent_exchanges_keep_every_rule_private_memory() {
    runs(41..=42, false, "memory", support::memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rfc9111_concurrent_exchanges_keep_every_rule_shared_memory() {
    runs(51..=53, true, "memory", support::memory).await;
}

/// [`model::embedded`](crate::model::embedded) in a directory of its own, kept in `dirs`.
#[cfg(feature = "disk")]
fn embedded(dirs: &Mutex<Vec<tempfile::TempDir>>) -> impl Store + use<> {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::model::embedded(dir.path());
    dirs.lock().unwrap().push(dir);
    store
}

#[cfg(feature = "disk")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rfc9111_concurrent_exchanges_keep_every_rule_private_memory_and_disk() {
    let dirs = Mutex::new(Vec::new());
    runs(61..=62, false, "memory and disk", || embedded(&dirs)).await;
}

#[cfg(feature = "disk")]
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rfc9111_concurrent_exchanges_keep_every_rule_shared_memory_and_disk() {
    let dirs = Mutex::new(Vec::new());
    runs(71..=73, true, "memory and disk", || embedded(&dirs)).await;
}

/// `redis-server` processes for the fleet's runs (the helpers of cachio-redis's own tests).
#[path = "../../crates/cachio-redis/tests/support/server.rs"]
mod redis_server;

/// A fleet node's store: a small memory tier over a Redis of its own prefix on one shared
/// `redis-server`, invalidations published to the other nodes (there are none here). The memory
/// tier is small, so that entries also come back from Redis.
fn fleet() -> impl Store + use<> {
    let redis = cachio_redis::RedisStore::builder(redis_server::shared().url())
        .prefix(redis_server::unique_prefix("concurrent"))
        .timeout(Duration::from_secs(5))
        .build()
        .expect("the Redis store is built");
    cachio_redis::Broadcast::fleet(cachio::MemoryStore::new(4 << 10), redis)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rfc9111_concurrent_exchanges_keep_every_rule_private_fleet() {
    runs(81..=82, false, "memory over Redis", fleet).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rfc9111_concurrent_exchanges_keep_every_rule_shared_fleet() {
    runs(91..=93, true, "memory over Redis", fleet).await;
}
