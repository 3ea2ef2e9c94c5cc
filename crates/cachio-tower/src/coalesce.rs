//! Request coalescing: one origin fetch per key at a time, others wait for its result; and
//! "hit-for-miss" memory of keys whose responses cannot be stored, so their traffic is not
//! serialised behind one another.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cachio_core::backend::served::hit_headers;
use cachio_core::policy::status::Fwd;
use cachio_core::policy::vary;
use cachio_core::store::Store;
use http::{Method, Response, header};
use tokio::sync::watch;

use crate::body::ResponseBody;
use crate::config::Ctx;
use crate::fill::Fill;
use crate::lookup::{Found, Lookup, lookup};
use crate::mode::CacheMode;
use crate::serve::serve_stored;
use crate::service::{Incoming, Next, Res, servable};
use crate::stats::Event;

/// What became of a fetch others are waiting for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Still in flight.
    #[default]
    Pending,
    /// The response was stored (or a stored one freshened); its status code.
    Stored(u16),
    /// The response cannot be stored: waiters go to the origin themselves.
    Pass,
    /// The fetch failed or was abandoned.
    Failed,
}

/// A fetch others are waiting for, as they see it: its outcome, and the fill they stream from
/// once its response is on its way into the store.
#[derive(Clone, Default)]
pub(crate) struct Flight {
    pub(crate) outcome: Outcome,
    pub(crate) fill: Option<Arc<Fill>>,
}

/// The fetches in flight and the keys known to be uncacheable.
#[derive(Default)]
pub(crate) struct Flights {
    inflight: Mutex<HashMap<String, watch::Receiver<Flight>>>,
    pass: Mutex<HashMap<String, Instant>>,
}

/// How a request takes part in coalescing.
pub(crate) enum Join {
    /// It fetches; others wait for it.
    Leader(FlightGuard),
    /// Another request is fetching the key.
    Waiter(watch::Receiver<Flight>),
}

/// The most keys remembered as uncacheable; past it, expired ones are dropped, then all.
const PASS_CAPACITY: usize = 16 * 1024;

impl Flights {
    /// Joins the flight for `key`, or starts one.
    pub(crate) fn join(self: &Arc<Self>, key: &str) -> Join {
        let mut map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(rx) = map.get(key)
            && rx.borrow().outcome == Outcome::Pending
        {
            return Join::Waiter(rx.clone());
        }
        let (tx, rx) = watch::channel(Flight::default());
        map.insert(key.to_owned(), rx);
        Join::Leader(FlightGuard {
            flights: self.clone(),
            key: key.to_owned(),
            tx,
            done: false,
        })
    }

    /// The fetch for `key` in flight, to wait for, without starting one when there is none.
    pub(crate) fn waiter(&self, key: &str) -> Option<watch::Receiver<Flight>> {
        let map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .filter(|rx| rx.borrow().outcome == Outcome::Pending)
            .cloned()
    }

    /// Whether a fetch for `key` is in flight.
    #[cfg(test)]
    pub(crate) fn in_flight(&self, key: &str) -> bool {
        let map = self.inflight.lock().unwrap_or_else(|p| p.into_inner());
        map.get(key)
            .is_some_and(|rx| rx.borrow().outcome == Outcome::Pending)
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
}

/// Held by the request that fetches a key; tells the waiters the outcome when finished, and
/// `Failed` if dropped unfinished (an error, a cancelled request, a body abandoned mid-way).
pub(crate) struct FlightGuard {
    flights: Arc<Flights>,
    key: String,
    tx: watch::Sender<Flight>,
    done: bool,
}

impl FlightGuard {
    pub(crate) fn finish(mut self, outcome: Outcome) {
        self.resolve(outcome);
    }

    /// Lets the waiters stream the response's body from `fill` as it arrives.
    pub(crate) fn publish(&self, fill: Arc<Fill>) {
        self.tx.send_modify(|f| f.fill = Some(fill));
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
        self.tx.send_modify(|f| f.outcome = outcome);
        if let Some(fill) = &self.tx.borrow().fill {
            fill.settle(outcome);
        }
    }
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        self.resolve(Outcome::Failed);
    }
}

/// Waits for a flight's outcome, at most `timeout`; `Failed` on timeout.
pub(crate) async fn wait(mut rx: watch::Receiver<Flight>, timeout: Duration) -> Outcome {
    let wait = async {
        match rx.wait_for(|f| f.outcome != Outcome::Pending).await {
            Ok(f) => f.outcome,
            Err(_) => Outcome::Failed,
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .unwrap_or(Outcome::Failed)
}

/// Waits, at most `timeout`, for a flight's response to be on its way into the store (its fill,
/// to stream from) or for its outcome; `Failed` on timeout.
async fn wait_start(
    rx: &mut watch::Receiver<Flight>,
    timeout: Duration,
) -> Result<Arc<Fill>, Outcome> {
    let wait = async {
        match rx
            .wait_for(|f| f.fill.is_some() || f.outcome != Outcome::Pending)
            .await
        {
            Ok(f) => f.fill.clone().ok_or(f.outcome),
            Err(_) => Err(Outcome::Failed),
        }
    };
    tokio::time::timeout(timeout, wait)
        .await
        .unwrap_or(Err(Outcome::Failed))
}

/// What coalescing made of a request that needs the origin.
pub(crate) enum Coalesced<ResB, St: Store> {
    /// It waited for another's fetch, whose stored result answers it.
    Served(Res<ResB, St>),
    /// It goes to the origin for `Next`, leading the flight of its key when it holds a guard.
    Go(Next<St::Body>, Option<FlightGuard>),
}

/// Joins the flight of the request's key, if it may: leads it, or waits for it and is answered
/// from what it stored.
pub(crate) async fn coalesce<ResB, St: Store>(
    cx: &Ctx<St>,
    req: &Incoming,
    next: Next<St::Body>,
) -> Coalesced<ResB, St> {
    let flights = &cx.config.flights;
    if !coalescable(cx, req) || flights.is_pass(&req.key) {
        return Coalesced::Go(next, None);
    }
    // A `Range` request waits for a whole fetch in flight (and is then answered from what it
    // stored), but does not lead one: its own answer is a part, which cannot be stored.
    let join = if req.parts.headers.contains_key(header::RANGE) {
        flights.waiter(&req.key).map(Join::Waiter)
    } else {
        Some(flights.join(&req.key))
    };
    match join {
        None => Coalesced::Go(next, None),
        Some(Join::Leader(g)) => Coalesced::Go(next, Some(g)),
        Some(Join::Waiter(rx)) => {
            let fwd = match &next {
                Next::Revalidate(_) => Fwd::Stale,
                Next::Fetch(fwd, _) => *fwd,
            };
            match wait_for_flight(cx, rx, req, fwd).await {
                AfterWait::Serve(res) => Coalesced::Served(res),
                // What the other request stored cannot be used as it is (stale already, or the
                // request asks for validation): validate it, and with it the stale serving rules
                // (stale-if-error, grace) apply.
                AfterWait::Revalidate(found) => Coalesced::Go(Next::Revalidate(found), None),
                // Not storable, failed, timed out, or another variant: go to the origin without
                // waiting again.
                AfterWait::Proceed => Coalesced::Go(next, None),
            }
        }
    }
}

enum AfterWait<ResB, St: Store> {
    /// Answer with this (the stored result serves the request).
    Serve(Res<ResB, St>),
    /// A stored response is there but needs validation first (it went stale meanwhile, say).
    Revalidate(Found<St::Body>),
    /// Go to the origin as planned.
    Proceed,
}

/// Waits for another request's fetch of `key` and answers from what it stored, if that serves
/// this request.
async fn wait_for_flight<ResB, St: Store>(
    cx: &Ctx<St>,
    mut rx: watch::Receiver<Flight>,
    req: &Incoming,
    fwd: Fwd,
) -> AfterWait<ResB, St> {
    cx.config.count(Event::Coalesced);
    if streams(req) {
        match wait_start(&mut rx, cx.config.coalesce_timeout).await {
            Ok(fill) => {
                if let Some(res) = follow(cx, req, fwd, &fill) {
                    return AfterWait::Serve(res);
                }
            }
            Err(Outcome::Pending) => {}
            Err(_) => return AfterWait::Proceed,
        }
    }
    let Outcome::Stored(code) = wait(rx, cx.config.coalesce_timeout).await else {
        return AfterWait::Proceed;
    };
    let Lookup::Found(found) = lookup(cx, &req.key, &req.parts, None).await else {
        return AfterWait::Proceed;
    };
    let eval = cx
        .config
        .policy
        .evaluate(&req.cc, found.response(), found.at);
    if !servable(req.mode, eval.verdict) {
        return AfterWait::Revalidate(found);
    }
    let status = cx
        .status(fwd)
        .fwd_status(code)
        .collapsed(true)
        .ttl(eval.ttl_secs());
    let Found { meta, body, .. } = found;
    let stored = meta.as_response().expect("lookup only finds responses");
    AfterWait::Serve(serve_stored(
        &req.parts,
        stored,
        eval.age,
        body,
        status.to_header_value(),
    ))
}

/// Whether a waiter may stream the fill it waits on: a plain `GET` of the whole body (a `Range`
/// or a conditional request waits for the stored entry, which answers it as a hit would).
fn streams(req: &Incoming) -> bool {
    let h = &req.parts.headers;
    !(h.contains_key(header::RANGE)
        || h.contains_key(header::IF_NONE_MATCH)
        || h.contains_key(header::IF_MODIFIED_SINCE))
}

/// A waiter's response streamed from the fill in flight, with its own `Age` and `Cache-Status`
/// (`collapsed`); `None` if the response on its way does not serve this request as it is.
fn follow<ResB, St: Store>(
    cx: &Ctx<St>,
    req: &Incoming,
    fwd: Fwd,
    fill: &Arc<Fill>,
) -> Option<Res<ResB, St>> {
    if cx
        .config
        .invalidations
        .invalidated_since(&req.key, fill.since)
    {
        // Fetched before a change to the resource: it will not be stored, nor streamed.
        return None;
    }
    let stored = fill.response();
    let names = vary::vary_names(&stored.fields().to_header_map(0))?;
    if stored.vary_values() != vary::request_values(&req.parts.headers, &names).as_slice() {
        return None;
    }
    let eval = cx.config.policy.evaluate(&req.cc, stored, cx.now());
    if !servable(req.mode, eval.verdict) {
        return None;
    }
    let status = cx
        .status(fwd)
        .fwd_status(fill.code)
        .collapsed(true)
        .ttl(eval.ttl_secs());
    let age = cachio_core::policy::age_value(eval.age);
    let mut res = Response::new(ResponseBody::follow(fill.follow(cx.store.clone())));
    *res.status_mut() = stored.status();
    *res.version_mut() = stored.version();
    *res.headers_mut() = hit_headers(stored, age, status.to_header_value());
    Some(res)
}

/// everyone asking (no `no-store`, and in a shared cache no credentials of its own).
fn coalescable<St>(cx: &Ctx<St>, req: &Incoming) -> bool {
    cx.config.coalesce
        && req.parts.method == Method::GET
        && matches!(req.mode, CacheMode::Default | CacheMode::ForceCache)
        && !req.cc.no_store
        && !req.cc.no_cache
        && !(cx.config.policy.sharing() == cachio_core::Sharing::Shared
            && req.parts.headers.contains_key(header::AUTHORIZATION))
}

#[cfg(test)]
mod tests {
    use super::*;

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
