//! A purge on one node against a copy on its way into another node's memory tier: a read that
//! found the entry in Redis just before the purge, or that node's own commit which Redis took
//! just before it. Once the purge has answered and the other node has applied its
//! announcement, that node's memory never serves the purged version.

use crate::support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cachio_core::meta::Meta;
use cachio_core::store::{Hit, Store, StoreError, StoreWriter};
use cachio_moka::{MokaBody, MokaStore, MokaWriter};
use cachio_redis::{Broadcast, FleetStore, RedisStore};
use support::server;
use support::{body, get, meta_requested, tag};
use tokio::sync::oneshot;

const TTL: Option<Duration> = Some(Duration::from_secs(60));

/// A memory tier whose next commit can be held just before it lands, as on a node that is slow
/// at that moment: the test purges on the other node meanwhile.
#[derive(Clone)]
struct Held {
    moka: MokaStore,
    next: Arc<Mutex<Option<Hold>>>,
}

/// The signals of one held commit: it tells `reached` that it is about to land and waits for
/// `release`.
struct Hold {
    reached: oneshot::Sender<()>,
    release: oneshot::Receiver<()>,
}

impl Held {
    fn new() -> Held {
        Held {
            moka: MokaStore::new(16 << 20),
            next: Arc::default(),
        }
    }

    /// Holds the next commit into this tier; the receiver says when it is about to land, the
    /// sender lets it.
    fn hold_next(&self) -> (oneshot::Receiver<()>, oneshot::Sender<()>) {
        let (reached, reached_rx) = oneshot::channel();
        let (release_tx, release) = oneshot::channel();
        *self.next.lock().unwrap_or_else(PoisonError::into_inner) = Some(Hold { reached, release });
        (reached_rx, release_tx)
    }
}

struct HeldWriter {
    inner: MokaWriter,
    next: Arc<Mutex<Option<Hold>>>,
}

impl StoreWriter for HeldWriter {
    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), StoreError>> {
        self.inner.poll_ready(cx)
    }

    fn append(&mut self, chunk: Bytes) -> Result<(), StoreError> {
        self.inner.append(chunk)
    }

    fn commit(
        self,
        meta: Arc<Meta>,
        ttl: Option<Duration>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send + 'static {
        let HeldWriter { inner, next } = self;
        async move {
            let hold = next.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(Hold { reached, release }) = hold {
                let _ = reached.send(());
                let _ = release.await;
            }
            inner.commit(meta, ttl).await
        }
    }
}

impl Store for Held {
    type Body = MokaBody;
    type Writer = HeldWriter;

    async fn get(&self, key: &str) -> Result<Option<Hit<MokaBody>>, StoreError> {
        self.moka.get(key).await
    }

    fn try_get(&self, key: &str) -> Option<Result<Option<Hit<MokaBody>>, StoreError>> {
        self.moka.try_get(key)
    }

    fn begin(&self, key: &str) -> Result<HeldWriter, StoreError> {
        Ok(HeldWriter {
            inner: self.moka.begin(key)?,
            next: Arc::clone(&self.next),
        })
    }

    async fn update(
        &self,
        key: &str,
        previous: &Meta,
        meta: Arc<Meta>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.moka.update(key, previous, meta, ttl).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.moka.delete(key).await
    }

    fn max_body_size(&self) -> Option<u64> {
        self.moka.max_body_size()
    }

    async fn purge<F>(&self, matches: F) -> Result<u64, StoreError>
    where
        F: Fn(&str, &Meta) -> bool + Send + Sync + 'static,
    {
        self.moka.purge(matches).await
    }
}

fn redis(prefix: &str) -> RedisStore {
    support::for_checks(RedisStore::builder(server::shared().url()).prefix(prefix))
        .build()
        .unwrap()
}

#[derive(Clone, Copy, Debug)]
enum Purge {
    Key,
    Prefix,
    Tag,
}

async fn purge<S: Store>(node: &S, how: Purge, key: &str, tagged: &str) {
    match how {
        Purge::Key => node.delete(key).await.unwrap(),
        Purge::Prefix => {
            let key = key.to_owned();
            let n = node.purge(move |k, _| k == key).await.unwrap();
            assert_eq!(n, 1);
        }
        Purge::Tag => {
            let tagged = tagged.to_owned();
            let n = node
                .purge(move |_, m| tag(m).as_deref() == Some(&tagged))
                .await
                .unwrap();
            assert_eq!(n, 1);
        }
    }
}

async fn write<S: Store>(node: &S, key: &str, tagged: &str, bytes: &[u8]) {
    let mut w = node.begin(key).unwrap();
    w.append(Bytes::copy_from_slice(bytes)).unwrap();
    w.commit(meta_requested(tagged, SystemTime::now()), TTL)
        .await
        .unwrap();
}

/// How the purged version was on its way into b's memory.
#[derive(Clone, Copy, Debug)]
enum Landing {
    /// A read on b found it in Redis (written by a) and copies it as it streams.
    Read,
    /// b's own commit: Redis took it, b's memory is next.
    Commit,
}

/// Each round holds b's memory copy at the moment it is about to land, purges on a (by key,
/// prefix or tag), lets the copy go on, waits until b has applied the purge's announcement, and
/// looks in b's memory and through b's store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_landing_during_a_purge_is_not_served_after_it() {
    let prefix = server::unique_prefix("memory-race");
    let a: FleetStore<MokaStore> = Broadcast::fleet(MokaStore::new(16 << 20), redis(&prefix));
    let b: FleetStore<Held> = Broadcast::fleet(Held::new(), redis(&prefix));
    support::eventually("both nodes are subscribed", 10, || async {
        a.is_subscribed() && b.is_subscribed()
    })
    .await;
    let ways = [Purge::Key, Purge::Prefix, Purge::Tag];
    let landings = [Landing::Read, Landing::Commit];
    for round in 0..36usize {
        let how = ways[round % ways.len()];
        let copy = landings[(round / ways.len()) % landings.len()];
        let key = format!("http://m/{round}");
        let tagged = format!("t-{round}");
        let old = body(round as u64, 100 + round * 37);
        let (reached, release) = b.local().hold_next();
        let copying = match copy {
            Landing::Read => {
                write(&a, &key, &tagged, &old).await;
                let (b, key) = (b.clone(), key.clone());
                tokio::spawn(async move {
                    let (_, read) = get(&b, &key).await.unwrap().expect("in Redis");
                    read.unwrap()
                })
            }
            Landing::Commit => {
                let (b, key, tagged, old) = (b.clone(), key.clone(), tagged.clone(), old.clone());
                tokio::spawn(async move {
                    write(&b, &key, &tagged, &old).await;
                    old
                })
            }
        };
        tokio::time::timeout(Duration::from_secs(10), reached)
            .await
            .expect("b's memory copy comes")
            .unwrap();
        let (received, applied) = (b.stats().received, b.stats().applied);
        purge(&a, how, &key, &tagged).await;
        // The purge has answered. b receives its announcement while the copy waits to land;
        // in half of the rounds b is given time to apply it first (it must not finish before
        // the copy has landed, since it would miss the copy), in the others the copy lands at
        // once.
        support::eventually("b receives the purge", 10, || async {
            b.stats().received > received
        })
        .await;
        if round % 2 == 0 {
            let early = tokio::time::timeout(
                Duration::from_millis(100),
                support::eventually("b applies the purge", 1, || async {
                    b.stats().applied > applied
                }),
            )
            .await;
            assert!(
                early.is_err(),
                "{copy:?} {how:?} round {round}: b applied the purge while a copy was landing"
            );
        }
        release.send(()).unwrap();
        support::eventually("b applies the purge", 10, || async {
            b.stats().applied > applied
        })
        .await;
        // Begun before the purge answered, the read (or the write) had the old version.
        assert_eq!(copying.await.unwrap(), old, "{copy:?} {how:?} {round}");
        assert!(
            b.local().get(&key).await.unwrap().is_none(),
            "{copy:?} {how:?} round {round}: b's memory kept the purged version"
        );
        assert!(
            get(&b, &key).await.unwrap().is_none(),
            "{copy:?} {how:?} round {round}: b serves the purged version"
        );
        assert!(get(&a, &key).await.unwrap().is_none());
    }
}

/// Reads on b race with purges on a, with no hold: many rounds, each with several reads that
/// copy the entry from Redis into b's memory while a purges it. After the purge answered and b
/// applied it, b serves nothing of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_racing_purges_leave_no_purged_copy() {
    let prefix = server::unique_prefix("memory-race-free");
    let a: FleetStore<MokaStore> = Broadcast::fleet(MokaStore::new(16 << 20), redis(&prefix));
    let b: FleetStore<MokaStore> = Broadcast::fleet(MokaStore::new(16 << 20), redis(&prefix));
    support::eventually("both nodes are subscribed", 10, || async {
        a.is_subscribed() && b.is_subscribed()
    })
    .await;
    let ways = [Purge::Key, Purge::Prefix, Purge::Tag];
    for round in 0..100usize {
        let how = ways[round % ways.len()];
        let key = format!("http://f/{round}");
        let tagged = format!("t-{round}");
        let old = body(round as u64, 64 + round);
        write(&a, &key, &tagged, &old).await;
        let go = Arc::new(AtomicBool::new(false));
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let (b, key, go) = (b.clone(), key.clone(), Arc::clone(&go));
                tokio::spawn(async move {
                    while !go.load(Ordering::Acquire) {
                        tokio::task::yield_now().await;
                    }
                    // Before the purge: the old body; after it: nothing. Never another body.
                    if let Some((_, read)) = get(&b, &key).await.unwrap() {
                        read.unwrap()
                    } else {
                        Vec::new()
                    }
                })
            })
            .collect();
        let applied = b.stats().applied;
        go.store(true, Ordering::Release);
        purge(&a, how, &key, &tagged).await;
        support::eventually("b applies the purge", 10, || async {
            b.stats().applied > applied
        })
        .await;
        for reader in readers {
            let read = reader.await.unwrap();
            assert!(read.is_empty() || read == old, "{how:?} {round}");
        }
        assert!(
            get(&b, &key).await.unwrap().is_none(),
            "{how:?} round {round}: b serves the purged version"
        );
    }
}
