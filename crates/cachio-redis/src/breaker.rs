//! A small circuit breaker: after a run of failures, calls fail at once for a while, so that a dead
//! Redis does not cost every request the full timeout; then one call at a time probes it.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct Breaker {
    epoch: Instant,
    threshold: u32,
    cooldown: Duration,
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which calls are refused; 0 when closed.
    open_until: AtomicU64,
    probing: AtomicBool,
    opened: AtomicU64,
}

/// Whether a call may go ahead, and whether it is the probe of a half-open breaker.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Permit {
    Closed,
    Probe,
}

impl Breaker {
    /// A breaker that opens after `threshold` failures in a row (0: never) for `cooldown`.
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            epoch: Instant::now(),
            threshold,
            cooldown,
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            probing: AtomicBool::new(false),
            opened: AtomicU64::new(0),
        }
    }

    fn now_ms(&self) -> u64 {
        // At least 1, so that 0 keeps meaning "closed".
        (self.epoch.elapsed().as_millis() as u64).max(1)
    }

    /// `Some` when a call may go ahead.
    pub(crate) fn allow(&self) -> Option<Permit> {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return Some(Permit::Closed);
        }
        if self.now_ms() < until {
            return None;
        }
        self.probing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| Permit::Probe)
    }

    /// Whether calls are being refused right now (a cheap check before doing any work).
    pub(crate) fn is_open(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        until != 0 && (self.now_ms() < until || self.probing.load(Ordering::Acquire))
    }

    /// Redis answered.
    pub(crate) fn success(&self, permit: &Permit) {
        self.failures.store(0, Ordering::Release);
        if self.open_until.load(Ordering::Acquire) != 0 {
            self.open_until.store(0, Ordering::Release);
        }
        if *permit == Permit::Probe {
            self.probing.store(false, Ordering::Release);
        }
    }

    /// Redis did not answer (in time).
    pub(crate) fn failure(&self, permit: &Permit) {
        let failures = self
            .failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        if self.threshold > 0 && (failures >= self.threshold || *permit == Permit::Probe) {
            let was = self.open_until.swap(
                self.now_ms() + self.cooldown.as_millis() as u64,
                Ordering::AcqRel,
            );
            if was == 0 {
                self.opened.fetch_add(1, Ordering::Relaxed);
            }
        }
        if *permit == Permit::Probe {
            self.probing.store(false, Ordering::Release);
        }
    }

    /// How many times the breaker opened.
    pub(crate) fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_probes_one_at_a_time() {
        let b = Breaker::new(2, Duration::from_millis(30));
        let p = b.allow().unwrap();
        b.failure(&p);
        assert!(b.allow().is_some());
        b.failure(&Permit::Closed);
        assert!(b.allow().is_none());
        assert!(b.is_open());
        assert_eq!(b.opened(), 1);
        std::thread::sleep(Duration::from_millis(40));
        let probe = b.allow().unwrap();
        assert_eq!(probe, Permit::Probe);
        assert!(b.allow().is_none(), "a second probe while the first is out");
        b.failure(&probe);
        assert!(
            b.allow().is_none(),
            "a failed probe opens the breaker again"
        );
        std::thread::sleep(Duration::from_millis(40));
        let probe = b.allow().unwrap();
        b.success(&probe);
        assert_eq!(b.allow(), Some(Permit::Closed));
        assert!(!b.is_open());
    }

    #[test]
    fn a_zero_threshold_never_opens() {
        let b = Breaker::new(0, Duration::from_secs(1));
        for _ in 0..10 {
            b.failure(&Permit::Closed);
        }
        assert_eq!(b.allow(), Some(Permit::Closed));
    }
}
