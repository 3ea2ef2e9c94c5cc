//! Request coalescing: one origin fetch per key at a time, others wait for its result;
//! "hit-for-miss" memory of keys whose responses cannot be stored, so their traffic is not
//! serialised behind one another; and the keys invalidated while fetches were on their way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cachio_core::backend::KeyLocks;
use tokio::sync::watch;

/// What became of a fetch others are waiting for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Still in flight.
    Pending,
    /// The response was stored (or a stored one freshened); its status code.
    Stored(u16),
    /// The response cannot be stored: waiters go to the origin themselves.
    Pass,
    /// The fetch failed or was abandoned.
    Failed,
}

/// The fetches in flight, the keys known to be uncacheable, and the keys invalidated lately.
#[derive(Default)]
pub(crate) struct Flights {
    inflight: Mutex<HashMap<String, watch::Receiver<Outcome>>>,
    pass: Mutex<HashMap<String, Instant>>,
    /// How many invalidations this layer has made; a request notes it before it first reads
    /// the store.
    invalidations: AtomicU64,
    invalidated: Mutex<Invalidated>,
    writes: WriteLocks,
}

/// [`KeyLocks`] with [`WRITE_LOCKS`] shares: see [`Flights::write_lock`].
struct WriteLocks(KeyLocks);

/// How many write locks a layer has: commits of keys that share one wait for each other.
const WRITE_LOCKS: usize = 256;

impl Default for WriteLocks {
    fn default() -> Self {
        Self(KeyLocks::new(WRITE_LOCKS))
    }
}

/// The keys invalidated, each with the count of invalidations that its latest made.
#[derive(Default)]
struct Invalidated {
    keys: HashMap<String, u64>,
    /// Invalidations of keys no longer listed (forgotten, past the capacity) counted up to here.
    floor: u64,
}

/// The most invalidated keys remembered; past it they are all forgotten at once, and every fetch
/// that started before is treated as having seen its key invalidated.
const INVALIDATED_CAPACITY: usize = 16 * 1024;

/// How a request takes part in coalescing.
pub(crate) enum Join {
    /// It fetches; others wait for it.
    Leader(FlightGuard),
    /// Another request is fetching the key.
    Waiter(watch::Receiver<Outcome>),
}

/// The most keys remembered as uncacheable; past it, expired ones are dropped, then all.
const PASS_CAPACITY: usize = 16 * 1024;

impl Flights {
    /// Joins the flight for `key`, or starts one.
    pub(crate) fn join(self: &Arc<Self>, key: &str) -> Join {
        let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rx) = map.get(key)
            && *rx.borrow() == Outcome::Pending
        {
            return Join::Waiter(rx.clone());
        }
        let (tx, rx) = watch::channel(Outcome::Pending);
        map.insert(key.to_owned(), rx);
        Join::Leader(FlightGuard {
            flights: self.clone(),
            key: key.to_owned(),
            tx,
            done: false,
        })
    }

    /// The fetch for `key` in flight, to wait for, without starting one when there is none.
    pub(crate) fn waiter(&self, key: &str) -> Option<watch::Receiver<Outcome>> {
        let map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|rx| *rx.borrow() == Outcome::Pending)
            .cloned()
    }

    /// Whether a fetch for `key` is in flight.
    #[cfg(test)]
    pub(crate) fn in_flight(&self, key: &str) -> bool {
        let map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .is_some_and(|rx| *rx.borrow() == Outcome::Pending)
    }

    /// Whether `key` was recently found uncacheable.
    pub(crate) fn is_pass(&self, key: &str) -> bool {
        let mut pass = self.pass.lock().unwrap_or_else(|p| p.into_inner());
        match pass.get(key) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                pass.remove(key);
                false
            }
            None => false,
        }
    }

    /// Remembers `key` as uncacheable for `ttl`.
    pub(crate) fn mark_pass(&self, key: &str, ttl: Duration) {
        if ttl.is_zero() {
            return;
        }
        let mut pass = self.pass.lock().unwrap_or_else(|p| p.into_inner());
        if pass.len() >= PASS_CAPACITY {
            let now = Instant::now();
            pass.retain(|_, until| *until > now);
            if pass.len() >= PASS_CAPACITY {
                pass.clear();
            }
        }
        pass.insert(key.to_owned(), Instant::now() + ttl);
    }

    /// Forgets that `key` was uncacheable (its response was stored after all).
    pub(crate) fn clear_pass(&self, key: &str) {
        let mut pass = self.pass.lock().unwrap_or_else(|p| p.into_inner());
        pass.remove(key);
    }

    /// The lock that makes an invalidation of `key` (its mark and its removal) and the commit
    /// of a fetch of it (its check for invalidations and its writes) happen one after the other.
    /// Without it, a commit that checked before an invalidation could land after the removal,
    /// and be served until it looked again and removed itself: after the request that
    /// invalidated had its answer.
    pub(crate) async fn write_lock(&self, key: &str) -> tokio::sync::MutexGuard<'_, ()> {
        self.writes.0.lock(key).await
    }

    /// Every write lock, for a purge that may remove any key: see [`write_lock`](Self::write_lock).
    pub(crate) async fn write_lock_all(&self) -> Vec<tokio::sync::MutexGuard<'_, ()>> {
        self.writes.0.lock_all().await
    }

    /// A mark of this moment, which a request takes before it first reads the store, for
    /// [`invalidated_since`](Self::invalidated_since).
    pub(crate) fn mark(&self) -> u64 {
        self.invalidations.load(Ordering::Acquire)
    }

    /// Notes that `key` was invalidated (RFC 9111 §4.4).
    pub(crate) fn invalidate(&self, key: &str) {
        let mut inv = self.invalidated.lock().unwrap_or_else(|p| p.into_inner());
        let n = self.invalidations.fetch_add(1, Ordering::AcqRel) + 1;
        if inv.keys.len() >= INVALIDATED_CAPACITY {
            inv.keys.clear();
            inv.floor = n;
        } else {
            inv.keys.insert(key.to_owned(), n);
        }
    }

    /// Notes that every key may have been invalidated: a purge whose keys are known only to the
    /// store. Every fetch that took its mark before counts as invalidated.
    pub(crate) fn invalidate_all(&self) {
        let mut inv = self.invalidated.lock().unwrap_or_else(|p| p.into_inner());
        let n = self.invalidations.fetch_add(1, Ordering::AcqRel) + 1;
        inv.keys.clear();
        inv.floor = n;
    }

    /// Whether `key` may have been invalidated after `mark` was taken: a response fetched since
    /// may describe the resource as it was before the change, and is not to be stored.
    pub(crate) fn invalidated_since(&self, key: &str, mark: u64) -> bool {
        let inv = self.invalidated.lock().unwrap_or_else(|p| p.into_inner());
        inv.floor > mark || inv.keys.get(key).is_some_and(|&n| n > mark)
    }
}

/// Held by the request that fetches a key; tells the waiters the outcome when finished, and
/// `Failed` if dropped unfinished (an error, a cancelled request, a body abandoned mid-way).
pub(crate) struct FlightGuard {
    flights: Arc<Flights>,
    key: String,
    tx: watch::Sender<Outcome>,
    done: bool,
}

impl FlightGuard {
    pub(crate) fn finish(mut self, outcome: Outcome) {
        self.resolve(outcome);
    }

    fn resolve(&mut self, outcome: Outcome) {
        if self.done {
            return;
        }
        self.done = true;
        {
            let mut map = self
                .flights
                .inflight
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if map
                .get(&self.key)
                .is_some_and(|rx| rx.same_channel(&self.tx.subscribe()))
            {
                map.remove(&self.key);
            }
        }
        let _ = self.tx.send(outcome);
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.resolve(Outcome::Failed);
    }
}

/// Waits for a flight's outcome, at most `timeout`; `Failed` on timeout.
pub(crate) async fn wait(mut rx: watch::Receiver<Outcome>, timeout: Duration) -> Outcome {
    let wait = async {
        match rx.wait_for(|o| *o != Outcome::Pending).await {
            Ok(o) => *o,
            Err(_) => Outcome::Failed,
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .unwrap_or(Outcome::Failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_sees_the_invalidations_of_its_key_made_after_its_mark() {
        let flights = Flights::default();
        flights.invalidate("earlier");
        let mark = flights.mark();
        assert!(
            !flights.invalidated_since("earlier", mark),
            "before the mark"
        );
        flights.invalidate("k");
        assert!(flights.invalidated_since("k", mark));
        assert!(!flights.invalidated_since("other", mark));
        assert!(
            !flights.invalidated_since("k", flights.mark()),
            "a later fetch"
        );

        // Past the capacity every key is forgotten, and every earlier fetch counts as invalidated.
        let before = flights.mark();
        for i in 0..=INVALIDATED_CAPACITY {
            flights.invalidate(&i.to_string());
        }
        assert!(flights.invalidated_since("never-invalidated", before));
        assert!(!flights.invalidated_since("never-invalidated", flights.mark()));
    }

    #[test]
    fn a_purge_of_every_key_invalidates_every_earlier_fetch_and_no_later_one() {
        let flights = Flights::default();
        flights.invalidate("k");
        let before = flights.mark();
        flights.invalidate_all();
        assert!(flights.invalidated_since("k", before));
        assert!(flights.invalidated_since("never-named", before));
        let after = flights.mark();
        assert!(!flights.invalidated_since("k", after));
        flights.invalidate("k");
        assert!(
            flights.invalidated_since("k", after),
            "keys are noted again"
        );
        assert!(!flights.invalidated_since("other", after));
    }

    #[tokio::test]
    async fn waiters_see_the_leaders_outcome_and_the_flight_ends() {
        let flights = Arc::new(Flights::default());
        let Join::Leader(guard) = flights.join("k") else {
            panic!("first joiner must lead")
        };
        let Join::Waiter(rx) = flights.join("k") else {
            panic!("second joiner must wait")
        };
        assert!(flights.in_flight("k"));
        guard.finish(Outcome::Stored(200));
        assert_eq!(wait(rx, Duration::from_secs(1)).await, Outcome::Stored(200));
        assert!(!flights.in_flight("k"));
        assert!(matches!(flights.join("k"), Join::Leader(_)));
    }

    #[tokio::test]
    async fn a_dropped_leader_fails_its_waiters() {
        let flights = Arc::new(Flights::default());
        let Join::Leader(guard) = flights.join("k") else {
            panic!()
        };
        let Join::Waiter(rx) = flights.join("k") else {
            panic!()
        };
        drop(guard);
        assert_eq!(wait(rx, Duration::from_secs(1)).await, Outcome::Failed);
    }

    #[tokio::test]
    async fn waiting_is_bounded() {
        let flights = Arc::new(Flights::default());
        let Join::Leader(_guard) = flights.join("k") else {
            panic!()
        };
        let Join::Waiter(rx) = flights.join("k") else {
            panic!()
        };
        assert_eq!(wait(rx, Duration::from_millis(20)).await, Outcome::Failed);
    }

    #[test]
    fn pass_marks_expire() {
        let flights = Flights::default();
        flights.mark_pass("k", Duration::from_secs(60));
        assert!(flights.is_pass("k"));
        flights.clear_pass("k");
        assert!(!flights.is_pass("k"));
        flights.mark_pass("k", Duration::from_nanos(1));
        std::thread::sleep(Duration::from_millis(1));
        assert!(!flights.is_pass("k"));
    }
}
