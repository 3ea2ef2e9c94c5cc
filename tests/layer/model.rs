//! Random sequences of requests against an origin whose resources change, checked against a
//! model of what a correct cache may answer (RFC 9111 as a whole, RFC 5861).
//!
//! Each resource has a version, bumped by unsafe requests through the cache (which must then
//! never serve an older one, §4.4) and by changes the cache cannot see (which it may ignore while
//! what it holds is fresh). Every version comes with its own response policy, drawn from the
//! version: freshness, validators, `Vary`, `private`, `Set-Cookie`, stale windows, a status, and
//! now and then a body the origin abandons half-way. The origin also goes down for a while.
//!
//! Every response, whatever the cache made of it, must be one the origin gave for that URI and
//! variant, not older than the last invalidation, whole, with header and body from the same
//! version, with an exact `Age`, and served from the cache only when the request, the response's
//! directives and its age allow; a shared cache never gives one user's response to another.
//!
//! The generator is a seeded xorshift: a failure names its seed, mode, store and the last steps,
//! and `CACHIO_MODEL_SEED` / `CACHIO_MODEL_STEPS` replay or lengthen a run.

use crate::support;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use cachio::{CacheLayer, Store};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::BodyExt;
use support::{Harness, Seen, reply};

pub(super) const PATHS: [&str; 4] = ["/a", "/b", "/c", "/d"];
pub(super) const LANGS: [Option<&str>; 3] = [None, Some("en"), Some("de")];
pub(super) const USERS: [Option<&str>; 3] = [None, Some("alice"), Some("bob")];

/// xorshift64*.
pub(super) struct Rng(pub(super) u64);

impl Rng {
    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(super) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `percent` / 100.
    pub(super) fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub(super) fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

/// Who a response may be given to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Audience {
    /// No directive: shared only when the request carried no credentials.
    Plain,
    /// `public`: anyone, credentials or not.
    Public,
    /// `private`: the one user who asked.
    Private,
}

/// How the origin answers for one version of one resource.
#[derive(Clone, Copy, Debug)]
pub(super) struct Profile {
    pub(super) status: u16,
    pub(super) max_age: Option<u64>,
    pub(super) s_maxage: Option<u64>,
    pub(super) etag: bool,
    pub(super) last_modified: bool,
    pub(super) vary: bool,
    pub(super) audience: Audience,
    pub(super) cookie: bool,
    pub(super) must_revalidate: bool,
    pub(super) no_cache: bool,
    pub(super) no_store: bool,
    pub(super) swr: Option<u64>,
    pub(super) sie: Option<u64>,
}

impl Profile {
    /// The profile of `version` of resource `path_index`: drawn from them, so that every answer
    /// for one version agrees.
    pub(super) fn of(path_index: usize, version: u64) -> Self {
        let mut r = Rng((path_index as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
            ^ (version + 1).wrapping_mul(7919));
        r.next();
        let max_age = if r.chance(80) {
            Some(r.pick(&[0, 2, 5, 30]))
        } else {
            None
        };
        Profile {
            status: if r.chance(85) { 200 } else { 404 },
            max_age,
            s_maxage: if r.chance(15) {
                Some(r.pick(&[0, 4, 20]))
            } else {
                None
            },
            etag: r.chance(70),
            // Without explicit freshness, no `Last-Modified`: no heuristic lifetime to model.
            last_modified: max_age.is_some() && r.chance(50),
            vary: r.chance(35),
            audience: r.pick(&[
                Audience::Plain,
                Audience::Plain,
                Audience::Public,
                Audience::Private,
            ]),
            cookie: r.chance(10),
            must_revalidate: r.chance(15),
            no_cache: r.chance(8),
            no_store: r.chance(5),
            swr: if r.chance(25) {
                Some(r.pick(&[3, 10]))
            } else {
                None
            },
            sie: if r.chance(25) {
                Some(r.pick(&[3, 30]))
            } else {
                None
            },
        }
    }

    fn cache_control(&self) -> String {
        let mut cc = Vec::new();
        match self.audience {
            Audience::Plain => {}
            Audience::Public => cc.push("public".to_owned()),
            Audience::Private => cc.push("private".to_owned()),
        }
        if let Some(n) = self.max_age {
            cc.push(format!("max-age={n}"));
        }
        if let Some(n) = self.s_maxage {
            cc.push(format!("s-maxage={n}"));
        }
        if self.must_revalidate {
            cc.push("must-revalidate".to_owned());
        }
        if self.no_cache {
            cc.push("no-cache".to_owned());
        }
        if self.no_store {
            cc.push("no-store".to_owned());
        }
        if let Some(n) = self.swr {
            cc.push(format!("stale-while-revalidate={n}"));
        }
        if let Some(n) = self.sie {
            cc.push(format!("stale-if-error={n}"));
        }
        cc.join(", ")
    }

    /// Whether a shared cache may give this response, to a request from `user`, to anyone else
    /// (RFC 9111 §3.5): `public`, `s-maxage` and `must-revalidate` allow it despite credentials.
    fn shareable(&self, user: Option<&str>) -> bool {
        self.audience != Audience::Private
            && !self.cookie
            && (user.is_none()
                || self.audience == Audience::Public
                || self.s_maxage.is_some()
                || self.must_revalidate)
    }
}

/// The origin's resources.
#[derive(Default)]
pub(super) struct World {
    /// Per path: the current version and its `Last-Modified` (seconds after the epoch; strictly
    /// increasing, so `If-Modified-Since` never confuses two versions).
    pub(super) versions: HashMap<String, (u64, u64)>,
    pub(super) down: bool,
    /// Versions whose body the origin abandons half-way, once.
    pub(super) dies: HashMap<(String, u64), bool>,
    /// When set, every whole body is sent in two halves this far apart (real time), so that
    /// concurrent requests overlap in flight.
    pub(super) trickle: Option<Duration>,
}

pub(super) fn etag(version: u64, lang: &str) -> String {
    format!("\"v{version}-{lang}\"")
}

/// The origin: answers from the world's state at the moment of the request.
pub(super) fn answer(world: &Mutex<World>, now: u64, s: &Seen) -> support::Reply {
    let mut w = world.lock().unwrap();
    let path = s.path().to_owned();
    let user = s.header("authorization");
    if w.down {
        return reply(503).cc("no-store").body("down");
    }
    if !matches!(s.method, Method::GET | Method::HEAD) {
        let (version, lm) = w.versions.get(&path).copied().unwrap_or((0, 0));
        w.versions.insert(path, (version + 1, (lm + 1).max(now)));
        return reply(204)
            .cc("no-store")
            .header("x-version", &(version + 1).to_string());
    }
    let index = PATHS.iter().position(|p| *p == path).expect("a known path");
    let (version, lm) = *w.versions.entry(path.clone()).or_insert((0, now));
    let p = Profile::of(index, version);
    let lang = if p.vary {
        s.header("accept-language").unwrap_or("-")
    } else {
        "-"
    };
    let tag = etag(version, lang);
    let mut r = reply(p.status).header("x-version", &version.to_string());
    let cc = p.cache_control();
    if !cc.is_empty() {
        r = r.cc(&cc);
    }
    if p.etag {
        r = r.header("etag", &tag);
    }
    let last_modified = cachio::core::meta::fmt_http_date(UNIX_EPOCH + Duration::from_secs(lm));
    if p.last_modified {
        r = r.header("last-modified", last_modified.to_str().unwrap());
    }
    if p.vary {
        r = r.header("vary", "Accept-Language");
    }
    if p.cookie {
        r = r.header("set-cookie", &format!("session={}", user.unwrap_or("anon")));
    }
    let matches = s
        .header("if-none-match")
        .map(|inm| p.etag && inm.split(',').any(|t| t.trim() == tag))
        .or_else(|| {
            let ims = cachio::core::meta::parse_http_date(s.headers.get("if-modified-since")?)?;
            let ims = ims.duration_since(UNIX_EPOCH).ok()?.as_secs();
            Some(p.last_modified && lm <= ims)
        })
        .unwrap_or(false);
    if matches && p.status == 200 {
        return r.status(304);
    }
    let whom = if p.shareable(user) {
        "anyone"
    } else {
        user.unwrap_or("anon")
    };
    let body = format!("{path}|{lang}|v{version}|{whom}|{}|end", padding(version));
    if std::mem::take(w.dies.entry((path, version)).or_default()) {
        let prefix = Bytes::from(body[..body.len() / 2].to_owned());
        return r.header("content-length", &body.len().to_string()).stream(
            move |feed| async move {
                feed.send(prefix).await;
                tokio::task::yield_now().await;
                feed.fail("the origin died mid-body").await;
            },
        );
    }
    match w.trickle {
        Some(pause) => {
            let (first, second) = body.split_at(body.len() / 2);
            let (first, second) = (
                Bytes::from(first.to_owned()),
                Bytes::from(second.to_owned()),
            );
            r.header("content-length", &body.len().to_string())
                .stream(move |feed| async move {
                    feed.send(first).await;
                    tokio::time::sleep(pause).await;
                    feed.send(second).await;
                })
        }
        None => r.body(body),
    }
}

/// Makes each version's body longer than any earlier one's, so that a `HEAD` for one version
/// never describes another's stored body (RFC 9111 §4.3.5 compares lengths when nothing else
/// tells them apart).
pub(super) fn padding(version: u64) -> String {
    ".".repeat(16 * version as usize)
}

/// One request of a run.
#[derive(Debug, Default)]
struct Ask {
    method: Method,
    path: &'static str,
    lang: Option<&'static str>,
    user: Option<&'static str>,
    cc: Option<&'static str>,
    pragma: bool,
    if_none_match: Option<String>,
}

/// A request's own directives, as far as the model needs them.
#[derive(Default)]
pub(super) struct AskCc {
    no_cache: bool,
    max_age: Option<u64>,
    /// `Some(None)`: `max-stale` without a value.
    max_stale: Option<Option<u64>>,
    min_fresh: Option<u64>,
}

impl Ask {
    fn directives(&self) -> AskCc {
        AskCc::parse(self.cc, self.pragma)
    }
}

impl AskCc {
    /// The directives of a request with `Cache-Control: cc`, and `Pragma: no-cache` if `pragma`.
    pub(super) fn parse(cc: Option<&str>, pragma: bool) -> Self {
        let mut d = AskCc {
            no_cache: pragma && cc.is_none(),
            ..AskCc::default()
        };
        for part in cc.unwrap_or("").split(',').map(str::trim) {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            let n = value.parse().ok();
            match name {
                "no-cache" => d.no_cache = true,
                "max-age" => d.max_age = n,
                "max-stale" => d.max_stale = Some(n),
                "min-fresh" => d.min_fresh = n,
                _ => {}
            }
        }
        d
    }
}

/// The response directives of a served head, by name (lower case), with their values.
pub(super) fn directives(headers: &HeaderMap) -> HashMap<String, Option<u64>> {
    headers
        .get_all("cache-control")
        .iter()
        .flat_map(|v| v.to_str().unwrap().split(','))
        .map(|d| {
            let d = d.trim().to_ascii_lowercase();
            match d.split_once('=') {
                Some((n, v)) => (n.to_owned(), v.parse().ok()),
                None => (d, None),
            }
        })
        .collect()
}

impl World {
    /// The version `path` is at.
    pub(super) fn current(&self, path: &str) -> u64 {
        self.versions.get(path).map_or(0, |v| v.0)
    }

    /// Changes `path` where the cache does not see it, at `now`; the new version.
    pub(super) fn change_behind(&mut self, path: &str, now: u64) -> u64 {
        let (v, lm) = self.versions.get(path).copied().unwrap_or((0, now));
        self.versions
            .insert(path.to_owned(), (v + 1, (lm + 1).max(now)));
        v + 1
    }

    /// Makes the current version of `path` abandon its body half-way, once; that version.
    pub(super) fn doom(&mut self, path: &str) -> u64 {
        let v = self.current(path);
        self.dies.insert((path.to_owned(), v), true);
        v
    }

    /// Takes the origin down, or brings it back; whether it is down now.
    pub(super) fn toggle(&mut self) -> bool {
        self.down = !self.down;
        self.down
    }
}

/// The cache in front of an origin answering from `world`, on a clock of its own that the
/// origin reads too.
pub(super) async fn harness<St: Store>(
    layer: CacheLayer<St>,
    world: &Arc<Mutex<World>>,
) -> Harness<St> {
    let world = world.clone();
    // A day ahead of the real time: a fleet store times its purge fences by Redis's clock, and
    // a fetch this run starts must not look older than the invalidations it made before (the
    // fences themselves are tested by cachio-redis's and the gateway's fleet tests).
    let ahead = SystemTime::now() + Duration::from_secs(86_400);
    let clock = cachio::ManualClock::new(UNIX_EPOCH + Duration::from_secs(secs_of(ahead)));
    let origin_clock = clock.clone();
    Harness::with_clock(layer, clock, move |s| {
        answer(&world, seconds(&origin_clock), s)
    })
    .await
}

/// `t` in whole seconds after the epoch.
fn secs_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// The time on `clock`, in seconds after the epoch.
pub(super) fn seconds(clock: &cachio::ManualClock) -> u64 {
    cachio::Clock::now(clock)
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `GET path` (or `method`) with the model's request fields.
pub(super) fn request<St: Store>(
    h: &Harness<St>,
    method: &Method,
    path: &str,
    lang: Option<&str>,
    user: Option<&str>,
    cc: Option<&str>,
) -> http::request::Builder {
    let mut req = h.req(path).method(method.clone());
    if let Some(lang) = lang {
        req = req.header("accept-language", lang);
    }
    if let Some(user) = user {
        req = req.header("authorization", user);
    }
    if let Some(cc) = cc {
        req = req.header("cache-control", cc);
    }
    req
}

/// The last `Cache-Status` value of a response (the one this cache added), or nothing.
pub(super) fn cache_status(headers: &HeaderMap) -> String {
    headers
        .get_all("cache-status")
        .iter()
        .next_back()
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// Checks that `headers` are those of `version` of `path`, answering a request in language
/// `asked`: its `Cache-Control` and `ETag`. Gives the version's profile and the language its
/// body is in (`-` when it does not vary).
pub(super) fn describes(
    path: &str,
    asked: Option<&'static str>,
    version: u64,
    headers: &HeaderMap,
) -> Result<(Profile, &'static str), String> {
    let path_index = PATHS.iter().position(|p| *p == path).unwrap();
    let profile = Profile::of(path_index, version);
    if directives(headers) != directives(&profile_headers(&profile)) {
        return Err(format!(
            "the headers of version {version} do not carry its Cache-Control"
        ));
    }
    let lang = if profile.vary {
        asked.unwrap_or("-")
    } else {
        "-"
    };
    if profile.etag {
        let tag = etag(version, lang);
        let got = headers.get("etag").map(|v| v.to_str().unwrap());
        if got != Some(tag.as_str()) {
            return Err(format!(
                "ETag {got:?} for version {version} and language {lang}"
            ));
        }
    }
    Ok((profile, lang))
}

/// Checks a whole response (not a 304) of `version` of `path` in `lang`: its status, and its
/// body: for a `GET` that version's, given in a shared cache (`shared_user` is `Some(user)`) only
/// to whom it may be given; for a `HEAD` none.
#[expect(
    clippy::too_many_arguments,
    reason = "what one response is checked against"
)]
pub(super) fn whole(
    method: &Method,
    path: &str,
    lang: &str,
    version: u64,
    profile: &Profile,
    status: StatusCode,
    body: &[u8],
    shared_user: Option<Option<&str>>,
) -> Result<(), String> {
    if status.as_u16() != profile.status {
        return Err(format!("status {status} for version {version}"));
    }
    if *method != Method::GET {
        return if body.is_empty() {
            Ok(())
        } else {
            Err("a HEAD with a body".into())
        };
    }
    let text = std::str::from_utf8(body).unwrap_or("");
    let fields: Vec<&str> = text.split('|').collect();
    if !(fields.len() == 6
        && fields[0] == path
        && fields[1] == lang
        && fields[2] == format!("v{version}")
        && fields[4] == padding(version)
        && fields[5] == "end")
    {
        return Err(format!("body {text:?} for {path} v{version} {lang}"));
    }
    if let Some(user) = shared_user {
        let whom = fields[3];
        if !(whom == "anyone" || whom == user.unwrap_or("anon")) {
            return Err(format!("{whom}'s response given to {user:?}"));
        }
    }
    Ok(())
}

/// The freshness lifetime of a response of `profile`.
pub(super) fn lifetime(profile: &Profile, shared: bool) -> u64 {
    match (shared, profile.s_maxage) {
        (true, Some(s)) => s,
        _ => profile.max_age.unwrap_or(0),
    }
}

/// Checks that a response of `profile` may come from the store at all.
pub(super) fn reusable(profile: &Profile, shared: bool) -> Result<(), String> {
    if profile.no_store {
        Err("a no-store response from the cache".into())
    } else if shared && profile.audience == Audience::Private {
        Err("a private response from a shared cache".into())
    } else if shared && profile.cookie {
        Err("a response with Set-Cookie from a shared cache".into())
    } else if profile.no_cache {
        Err("served without validation despite the response's no-cache".into())
    } else {
        Ok(())
    }
}

/// Checks the request's own limits on a stored response `age` old with `lifetime`.
pub(super) fn within_request(req: &AskCc, age: u64, lifetime: u64) -> Result<(), String> {
    if req.no_cache {
        return Err("served without validation despite the request's no-cache".into());
    }
    if let Some(max) = req.max_age
        && age > max
    {
        return Err(format!("age {age} over the request's max-age"));
    }
    if let Some(min) = req.min_fresh
        && lifetime < age + min
    {
        return Err(format!("lifetime {lifetime}, age {age}, min-fresh {min}"));
    }
    Ok(())
}

/// Whether the response forbids serving it stale (RFC 9111 §4.2.4).
pub(super) fn forbids_stale(profile: &Profile, shared: bool) -> bool {
    profile.must_revalidate || (shared && profile.s_maxage.is_some()) || profile.no_cache
}

/// Whether the request's `max-stale`, or the response's `stale-while-revalidate` (unless the
/// request asks for `max-age` or `min-fresh`), allows serving it `staleness` seconds stale.
pub(super) fn stale_allowed(profile: &Profile, req: &AskCc, staleness: u64) -> bool {
    let by_request = match req.max_stale {
        Some(None) => true,
        Some(Some(n)) => staleness <= n,
        None => false,
    };
    let by_swr = req.max_age.is_none()
        && req.min_fresh.is_none()
        && profile.swr.is_some_and(|n| staleness <= n);
    by_request || by_swr
}

/// A run of one seed, mode and store, with what it has seen so far.
struct Run<St> {
    h: Harness<St>,
    world: Arc<Mutex<World>>,
    shared: bool,
    /// Per path: the version the last invalidation through the cache left.
    floor: HashMap<&'static str, u64>,
    /// Per path and language: the last `ETag` the client saw.
    tags: HashMap<(&'static str, Option<&'static str>), String>,
    log: VecDeque<String>,
    what: String,
    seen: Tally,
}

/// What a run has exercised: each kind must have happened, or the run proved little.
#[derive(Debug, Default)]
struct Tally {
    fresh_hits: usize,
    stale_hits: usize,
    stale_if_error: usize,
    not_modified: usize,
    vary_hits: usize,
    invalidations: usize,
    abandoned: usize,
}

impl<St: Store> Run<St> {
    fn now(&self) -> u64 {
        seconds(&self.h.clock)
    }

    fn current(&self, path: &str) -> u64 {
        self.world.lock().unwrap().current(path)
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
        let steps: Vec<_> = self.log.iter().map(String::as_str).collect();
        panic!(
            "{}: {why}\nlast steps, oldest first:\n  {}",
            self.what,
            steps.join("\n  ")
        );
    }

    fn note(&mut self, step: String) {
        if self.log.len() == 40 {
            self.log.pop_front();
        }
        self.log.push_back(step);
    }

    async fn step(&mut self, rng: &mut Rng) {
        if rng.chance(35) {
            let secs = rng.below(7) + 1;
            self.h.advance(secs);
            self.note(format!("clock +{secs}s"));
        }
        if rng.chance(6) {
            let down = self.world.lock().unwrap().toggle();
            self.note(format!("origin {}", if down { "down" } else { "up" }));
        }
        if rng.chance(4) {
            // A change the cache does not see.
            let path = rng.pick(&PATHS);
            let now = self.now();
            let v = self.world.lock().unwrap().change_behind(path, now);
            self.note(format!("{path} changed behind the cache to v{v}"));
        }
        if rng.chance(3) {
            let path = rng.pick(&PATHS);
            let v = self.world.lock().unwrap().doom(path);
            self.note(format!("{path} v{v} will die mid-body once"));
        }
        if rng.chance(2) {
            support::settle().await;
        }
        let path = rng.pick(&PATHS);
        let method = match rng.below(100) {
            0..=7 => Method::HEAD,
            8..=13 => Method::POST,
            14..=15 => Method::DELETE,
            _ => Method::GET,
        };
        let lang = rng.pick(&LANGS);
        let mut ask = Ask {
            method,
            path,
            lang,
            user: rng.pick(&USERS),
            ..Ask::default()
        };
        if rng.chance(30) {
            ask.cc = Some(rng.pick(&[
                "no-cache",
                "max-age=0",
                "max-age=3",
                "max-stale",
                "max-stale=4",
                "min-fresh=2",
                "max-age=20, max-stale=3",
            ]));
        } else if rng.chance(3) {
            ask.pragma = true;
        }
        if ask.method == Method::GET && rng.chance(10) {
            ask.if_none_match = self.tags.get(&(path, lang)).cloned();
        }
        self.send(ask).await;
    }

    async fn send(&mut self, ask: Ask) {
        let mut req = request(&self.h, &ask.method, ask.path, ask.lang, ask.user, ask.cc);
        if ask.pragma {
            req = req.header("pragma", "no-cache");
        }
        if let Some(tag) = &ask.if_none_match {
            req = req.header("if-none-match", tag);
        }
        let floor = self.floor.get(ask.path).copied().unwrap_or(0);
        let current = self.current(ask.path);
        let down = self.world.lock().unwrap().down;
        let res = self.h.call(req).await;
        let now = self.now();
        let Ok(res) = res else {
            self.note(format!("{ask:?} -> connection error"));
            return;
        };
        let (parts, body) = res.into_parts();
        let (status, headers) = (parts.status, parts.headers);
        let cache_status = cache_status(&headers);
        let body = body.collect().await.map(|c| c.to_bytes());
        self.note(format!(
            "{} {} lang={:?} user={:?} cc={:?} inm={:?} -> {} [{}] {:?}",
            ask.method,
            ask.path,
            ask.lang,
            ask.user,
            ask.cc.or(ask.pragma.then_some("pragma")),
            ask.if_none_match,
            status,
            cache_status,
            body.as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned()),
        ));
        self.check(!cache_status.is_empty(), || {
            "a response without Cache-Status".into()
        });
        let hit = cache_status.split("; ").any(|p| p == "hit");
        let Ok(body) = body else {
            // Only the origin's abandoned body may fail, and never from the cache.
            self.check(!hit, || "a hit whose body failed".into());
            self.seen.abandoned += 1;
            return;
        };

        if !matches!(ask.method, Method::GET | Method::HEAD) {
            self.check(!hit, || "an unsafe method answered from the cache".into());
            if status.is_success() {
                self.floor.insert(ask.path, self.current(ask.path));
                self.seen.invalidations += 1;
            }
            return;
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            let origins = if ask.method == Method::HEAD {
                &b""[..]
            } else {
                b"down"
            };
            self.check(down && !hit && body == origins, || {
                "a 503 that is not the origin's".into()
            });
            return;
        }

        // Header and body of one version of this URI, not older than the last invalidation.
        // A 304 carries only the fields that describe the response (RFC 9110 §15.4.5): its
        // version is the one its ETag names.
        let version = if status == StatusCode::NOT_MODIFIED {
            headers.get("etag").and_then(|v| {
                let v = v.to_str().ok()?.strip_prefix("\"v")?;
                v.split('-').next()?.parse::<u64>().ok()
            })
        } else {
            headers
                .get("x-version")
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        };
        self.check(version.is_some(), || format!("no version in {headers:?}"));
        let version = version.unwrap_or_default();
        self.check(version >= floor && version <= current, || {
            format!("version {version}, outside {floor}..={current}")
        });
        let (profile, lang) = self.holds(describes(ask.path, ask.lang, version, &headers));
        let tag = etag(version, lang);
        if status == StatusCode::NOT_MODIFIED {
            self.seen.not_modified += 1;
            // Only to the client's own validator.
            self.check(ask.if_none_match.as_deref() == Some(tag.as_str()), || {
                format!("a 304 to If-None-Match {:?}", ask.if_none_match)
            });
        } else {
            let shared_user = self.shared.then_some(ask.user);
            self.holds(whole(
                &ask.method,
                ask.path,
                lang,
                version,
                &profile,
                status,
                &body,
                shared_user,
            ));
            if profile.etag {
                self.tags.insert((ask.path, ask.lang), tag.clone());
            }
        }

        // A response from the store without asking the origin now: a hit, a request that
        // waited for another's fetch (which may have left before a change the model made
        // since), or a stored response standing in for the origin's error (RFC 5861 §4).
        let collapsed = cache_status.split("; ").any(|p| p == "collapsed");
        let if_error = cache_status.contains("detail=stale-if-error");
        if if_error {
            self.seen.stale_if_error += 1;
            self.check(down, || "stale-if-error while the origin is up".into());
        }
        if !hit && !collapsed && !if_error {
            // Forwarded: what the origin holds now, or confirmed now (a 304 from it merged).
            self.check(version == current, || {
                format!("a forwarded response of version {version}, the origin has {current}")
            });
            return;
        }

        // From the cache: exactly as old as its Date says, and usable for this request.
        let date = headers
            .get("date")
            .and_then(cachio::core::meta::parse_http_date)
            .map(|d| d.duration_since(UNIX_EPOCH).unwrap().as_secs())
            .unwrap_or_else(|| panic!("{}: a stored response without Date", self.what));
        let age: Option<u64> = headers
            .get("age")
            .and_then(|v| v.to_str().ok()?.parse().ok());
        self.check(age == Some(now - date), || {
            format!("Age {age:?}, Date is {}s ago", now - date)
        });
        let age = now - date;
        let shared = self.shared;
        self.holds(reusable(&profile, shared));
        let lifetime = lifetime(&profile, shared);
        // The request's own limits, unless the origin failed the validation they asked for.
        let req = if if_error {
            AskCc::default()
        } else {
            ask.directives()
        };
        self.holds(within_request(&req, age, lifetime));
        if profile.vary {
            self.seen.vary_hits += 1;
        }
        if age < lifetime {
            self.seen.fresh_hits += 1;
            return;
        }
        self.seen.stale_hits += 1;
        // Stale: only where something allows it (RFC 9111 §4.2.4, RFC 5861).
        let staleness = age - lifetime;
        self.check(!forbids_stale(&profile, shared), || {
            format!(
                "served {staleness}s stale despite {:?}",
                directives(&headers)
            )
        });
        let by_sie = if_error && profile.sie.is_some_and(|n| staleness <= n);
        self.check(stale_allowed(&profile, &req, staleness) || by_sie, || {
            format!("served {staleness}s stale, nothing allows it")
        });
    }
}

/// The header fields of a response with `profile`, as far as `Cache-Control` goes.
pub(super) fn profile_headers(profile: &Profile) -> HeaderMap {
    let mut h = HeaderMap::new();
    let cc = profile.cache_control();
    if !cc.is_empty() {
        h.insert("cache-control", cc.parse().unwrap());
    }
    h
}

pub(super) fn seed() -> u64 {
    std::env::var("CACHIO_MODEL_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn steps() -> usize {
    std::env::var("CACHIO_MODEL_STEPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1500)
}

async fn run<St: Store>(layer: CacheLayer<St>, shared: bool, store: &str, seed: u64) {
    let world = Arc::new(Mutex::new(World::default()));
    let h = harness(layer, &world).await;
    let what = format!(
        "seed {seed}, {} cache, {store}",
        if shared { "shared" } else { "private" }
    );
    let mut run = Run {
        h,
        world,
        shared,
        floor: HashMap::new(),
        tags: HashMap::new(),
        log: VecDeque::new(),
        what,
        seen: Tally::default(),
    };
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    for _ in 0..steps() {
        run.step(&mut rng).await;
    }
    let s = &run.seen;
    assert!(
        [
            s.fresh_hits,
            s.stale_hits,
            s.stale_if_error,
            s.not_modified,
            s.vary_hits,
            s.invalidations,
            s.abandoned
        ]
        .iter()
        .all(|&n| n > 0),
        "{}: the run did not exercise every kind of answer: {s:?}",
        run.what
    );
    eprintln!("{}: {s:?}", run.what);
}

async fn run_memory(shared: bool, seed: u64) {
    let layer = if shared {
        CacheLayer::shared(support::memory())
    } else {
        CacheLayer::private(support::memory())
    };
    run(layer, shared, "memory", seed).await;
}

/// Memory over disk, as `Embedded` builds it, in `dir`: a small memory tier, so that entries
/// also move between the tiers.
#[cfg(feature = "disk")]
pub fn embedded(dir: &std::path::Path) -> impl Store + use<> {
    cachio::Embedded::builder(dir)
        .memory_bytes(4 << 10)
        .disk_bytes(16 << 20)
        .open()
        .expect("the store opens")
}

#[cfg(feature = "disk")]
async fn run_embedded(shared: bool, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = embedded(dir.path());
    let layer = if shared {
        CacheLayer::shared(store)
    } else {
        CacheLayer::private(store)
    };
    run(layer, shared, "memory and disk", seed).await;
}

#[tokio::test]
async fn rfc9111_random_exchanges_keep_every_rule_private_memory() {
    for s in 1..=3 {
        run_memory(false, seed() + s).await;
    }
}

#[tokio::test]
async fn rfc9111_random_exchanges_keep_every_rule_shared_memory() {
    for s in 11..=13 {
        run_memory(true, seed() + s).await;
    }
}

#[cfg(feature = "disk")]
#[tokio::test]
async fn rfc9111_random_exchanges_keep_every_rule_private_memory_and_disk() {
    for s in 21..=22 {
        run_embedded(false, seed() + s).await;
    }
}

#[cfg(feature = "disk")]
#[tokio::test]
async fn rfc9111_random_exchanges_keep_every_rule_shared_memory_and_disk() {
    for s in 31..=32 {
        run_embedded(true, seed() + s).await;
    }
}
