//! The clock the policy reads "now" from.
//!
//! Every freshness and age decision takes its time from a [`Clock`], so tests can move time by hand
//! with [`ManualClock`] instead of sleeping.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A source of the current wall-clock time.
///
/// # Example
///
/// ```
/// use cachio_core::clock::{Clock, SystemClock};
///
/// let now = SystemClock.now();
/// assert!(now > std::time::UNIX_EPOCH);
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;

    /// A reading that never goes back, for deadlines within this process (a store's expiries):
    /// the time since an unspecified start. By default the process's [`monotonic`] reading; a
    /// clock that tests move by hand moves this one too.
    fn monotonic(&self) -> Duration {
        monotonic()
    }
}

/// A shared clock is a clock: a store and a layer can read the same one.
impl<C: Clock + ?Sized> Clock for Arc<C> {
    fn now(&self) -> SystemTime {
        (**self).now()
    }

    fn monotonic(&self) -> Duration {
        (**self).monotonic()
    }
}

/// The operating system's wall clock.
///
/// On Linux, Android and FreeBSD it is read coarsely (`CLOCK_REALTIME_COARSE`): the time of the
/// kernel's last tick, at most a few milliseconds behind, for a fraction of the cost of a precise
/// read (which, on a virtual machine, can take longer than a whole cache hit's lookup). HTTP
/// counts time in whole seconds, so no caching decision depends on the difference. Elsewhere it is
/// [`SystemTime::now`].
///
/// # Example
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use cachio_core::clock::{Clock, SystemClock};
///
/// let lag = SystemTime::now().duration_since(SystemClock.now()).unwrap_or_default();
/// assert!(lag < Duration::from_secs(1));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        coarse::realtime().unwrap_or_else(SystemTime::now)
    }
}

/// A monotonic reading, for deadlines within this process (a store's expiries, say): the time
/// since an unspecified start, read as coarsely as [`SystemClock`] reads the wall clock. It never
/// goes back.
///
/// # Example
///
/// ```
/// use cachio_core::clock::monotonic;
///
/// let a = monotonic();
/// let b = monotonic();
/// assert!(b >= a);
/// ```
pub fn monotonic() -> Duration {
    coarse::monotonic().unwrap_or_else(|| {
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed()
    })
}

#[cfg(any(target_os = "linux", target_os = "android", target_os = "freebsd"))]
mod coarse {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use rustix::time::{ClockId, clock_gettime};

    pub(super) fn realtime() -> Option<SystemTime> {
        Some(UNIX_EPOCH + read(ClockId::RealtimeCoarse)?)
    }

    pub(super) fn monotonic() -> Option<Duration> {
        read(ClockId::MonotonicCoarse)
    }

    /// The clock's reading since its zero; `None` before it (a wall clock set before 1970).
    fn read(id: ClockId) -> Option<Duration> {
        let t = clock_gettime(id);
        Some(Duration::new(
            u64::try_from(t.tv_sec).ok()?,
            u32::try_from(t.tv_nsec).ok()?,
        ))
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_os = "freebsd")))]
mod coarse {
    use std::time::{Duration, SystemTime};

    pub(super) fn realtime() -> Option<SystemTime> {
        None
    }

    pub(super) fn monotonic() -> Option<Duration> {
        None
    }
}

/// A clock that only moves when told to. Clones share one time.
///
/// # Example
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use cachio_core::clock::{Clock, ManualClock};
///
/// let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_000));
/// let start = clock.monotonic();
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(clock.now(), UNIX_EPOCH + Duration::from_secs(1_005));
/// assert_eq!(clock.monotonic() - start, Duration::from_secs(5));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    millis: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock standing at `at` (times before the Unix epoch are taken as the epoch).
    pub fn new(at: SystemTime) -> Self {
        let clock = Self {
            millis: Arc::new(AtomicU64::new(0)),
        };
        clock.set(at);
        clock
    }

    /// Moves the clock to `at`.
    pub fn set(&self, at: SystemTime) {
        let millis = at
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            .min(u64::MAX as u128) as u64;
        self.millis.store(millis, Ordering::SeqCst);
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let add = by.as_millis().min(u64::MAX as u128) as u64;
        self.millis.fetch_add(add, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.millis.load(Ordering::SeqCst))
    }

    /// The time since the Unix epoch: it moves with [`advance`](Self::advance), and goes back
    /// only when [`set`](Self::set) moves the clock back.
    fn monotonic(&self) -> Duration {
        Duration::from_millis(self.millis.load(Ordering::SeqCst))
    }
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ManualClock")
            .field("now", &self.now())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    #[test]
    fn the_system_clock_is_within_a_tick_of_the_precise_one() {
        let before = SystemTime::now();
        let coarse = SystemClock.now();
        let after = SystemTime::now();
        // A coarse reading is the time of the last tick: never after the precise reading that
        // follows it, and not far before the one that precedes it.
        assert!(coarse <= after, "{coarse:?} after {after:?}");
        let lag = before.duration_since(coarse).unwrap_or_default();
        assert!(lag < Duration::from_millis(100), "{lag:?} behind");
    }

    #[test]
    fn the_monotonic_reading_never_goes_back_and_follows_real_time() {
        let start = monotonic();
        let mut last = start;
        for _ in 0..10_000 {
            let now = monotonic();
            assert!(now >= last);
            last = now;
        }
        std::thread::sleep(Duration::from_millis(60));
        let moved = monotonic() - start;
        assert!(
            moved >= Duration::from_millis(40) && moved < Duration::from_secs(30),
            "{moved:?}"
        );
    }
}
