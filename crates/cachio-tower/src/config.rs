//! What every request of a cache reads: its configuration, and the store beside it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use cachio_core::clock::Clock;
use cachio_core::policy::Policy;
use cachio_core::policy::status::{CacheStatus, Fwd};
use http::HeaderValue;

use crate::coalesce::Flights;
use crate::hooks::{KeyFn, TtlFn};
use crate::invalidate::Invalidations;
use crate::stats::{CacheStats, Event, Recorded};

/// The options of a cache, set on its [`CacheLayer`](crate::CacheLayer) and shared by the
/// services it makes.
pub(crate) struct Config {
    pub(crate) policy: Policy,
    pub(crate) clock: Arc<dyn Clock>,
    /// The name this cache gives itself in `Cache-Status`.
    pub(crate) name: String,
    pub(crate) max_object_size: u64,
    pub(crate) key_fn: Option<Arc<dyn KeyFn>>,
    pub(crate) ttl_fn: Option<Arc<dyn TtlFn>>,
    pub(crate) coalesce: bool,
    pub(crate) coalesce_timeout: Duration,
    pub(crate) hit_for_miss: Duration,
    /// The most bytes of a fill in flight kept in memory for the requests that wait on it.
    pub(crate) fill_window: u64,
    /// The largest body a fill finishes after its client went away, when nobody waits on it
    /// (`None`: the largest stored, `max_object_size`).
    pub(crate) fill_after_disconnect: Option<u64>,
    /// The most bytes of bodies whose commits may be running before responses go unstored.
    pub(crate) write_backlog: u64,
    /// The mode of a request that carries no [`CacheMode`](crate::CacheMode).
    pub(crate) default_mode: crate::CacheMode,
    /// Whether responses RFC 9111 §3 would not store are stored too (a private cache only).
    pub(crate) store_all: bool,
    /// Fetches in flight and keys known to be uncacheable; shared by clones.
    pub(crate) flights: Arc<Flights>,
    /// The invalidations made, for the fetches in flight to check; shared by clones.
    pub(crate) invalidations: Arc<Invalidations>,
    /// Counters; shared by clones.
    pub(crate) stats: Arc<CacheStats>,
    /// The writes running on tasks of their own; shared by clones.
    pub(crate) writes: Arc<Writes>,
    /// The counters' `metrics` handles, registered when the first service is made (once the
    /// cache name is known); a changed configuration registers its own.
    pub(crate) recorded: OnceLock<Recorded>,
}

impl Config {
    /// The key `parts` is stored under: the user's key function's, or the primary key.
    pub(crate) fn key(&self, parts: &http::request::Parts) -> String {
        match &self.key_fn {
            Some(f) => f.key(parts),
            None => cachio_core::key::primary_key(parts),
        }
    }

    /// The name this cache gives itself in `Cache-Status`.
    pub(crate) fn cache_name(&self) -> &str {
        &self.name
    }

    /// The `Cache-Status` of a hit with `ttl` seconds of freshness left (RFC 9211).
    pub(crate) fn hit_status(&self, ttl: i64) -> HeaderValue {
        CacheStatus::hit(&self.name, ttl).to_header_value()
    }

    /// The `metrics` handles, registered with the current recorder on first use.
    pub(crate) fn recorded(&self) -> &Recorded {
        self.recorded
            .get_or_init(|| Recorded::register(self.cache_name()))
    }

    /// Counts `event` (see [`CacheStats`]).
    pub(crate) fn count(&self, event: Event) {
        self.stats.count(self.recorded(), event);
    }

    /// Counts a fresh hit served at once.
    pub(crate) fn fresh_hit(&self) {
        self.stats.fresh_hit(self.recorded());
    }

    /// Counts a response of `len` body bytes written to the store.
    pub(crate) fn stored(&self, len: u64) {
        self.stats.stored(self.recorded(), len);
    }
}

impl Clone for Config {
    fn clone(&self) -> Self {
        Self {
            policy: self.policy.clone(),
            clock: self.clock.clone(),
            name: self.name.clone(),
            max_object_size: self.max_object_size,
            key_fn: self.key_fn.clone(),
            ttl_fn: self.ttl_fn.clone(),
            coalesce: self.coalesce,
            coalesce_timeout: self.coalesce_timeout,
            hit_for_miss: self.hit_for_miss,
            fill_window: self.fill_window,
            write_backlog: self.write_backlog,
            fill_after_disconnect: self.fill_after_disconnect,
            default_mode: self.default_mode,
            store_all: self.store_all,
            flights: self.flights.clone(),
            invalidations: self.invalidations.clone(),
            stats: self.stats.clone(),
            writes: self.writes.clone(),
            recorded: OnceLock::new(),
        }
    }
}

/// The writes a cache runs on tasks of their own (the commit of a body seen to its end, a
/// background revalidation), counted so that a program can wait for them before it exits: a
/// runtime that shuts down drops its tasks, and with them the writes not yet done.
#[derive(Debug, Default)]
pub(crate) struct Writes {
    running: AtomicUsize,
    /// The bytes of the bodies whose commits are running.
    bytes: AtomicU64,
    idle: tokio::sync::Notify,
}

impl Writes {
    /// Counts a write of a body of `bytes` until the returned guard is dropped (with the task
    /// that holds it).
    pub(crate) fn start(self: &Arc<Self>, bytes: u64) -> Running {
        self.running.fetch_add(1, Ordering::SeqCst);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        Running(Arc::clone(self), bytes)
    }

    /// The bytes of the bodies whose commits are running.
    pub(crate) fn backlog(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Completes once no write is running.
    pub(crate) async fn settled(&self) {
        loop {
            let idle = self.idle.notified();
            let mut idle = std::pin::pin!(idle);
            // Registered before the count is read: a write ending in between still wakes it.
            idle.as_mut().enable();
            if self.running.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

/// One running write of [`Writes`]; ends when dropped.
pub(crate) struct Running(Arc<Writes>, u64);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.bytes.fetch_sub(self.1, Ordering::Relaxed);
        if self.0.running.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// What a request's handling needs of the cache: the store and the configuration.
pub(crate) struct Ctx<St> {
    pub(crate) store: St,
    pub(crate) config: Arc<Config>,
}

impl<St> Ctx<St> {
    pub(crate) fn now(&self) -> SystemTime {
        self.config.clock.now()
    }

    /// The `Cache-Status` of a request that went forward for `fwd`.
    pub(crate) fn status(&self, fwd: Fwd) -> CacheStatus {
        CacheStatus::forward(self.config.cache_name(), fwd)
    }
}
