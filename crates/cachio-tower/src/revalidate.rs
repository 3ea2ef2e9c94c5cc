//! Validation (RFC 9111 §4.3): a stored response checked with the origin, freshened by a `304`
//! (§4.3.4) or a `HEAD` response (§4.3.5), replaced by a full response, or served in place of an
//! error (RFC 5861 §4).

use std::sync::Arc;
use std::time::SystemTime;

use cachio_core::cache_control::CacheControl;
use cachio_core::meta::{Meta, ResponseMeta};
use cachio_core::policy::status::Fwd;
use cachio_core::policy::{self, Verdict};
use cachio_core::store::Store;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, request};
use http_body::Body;
use tower_service::Service;

use crate::capture::{Exchange, answer_full, ready_call, store_response};
use crate::coalesce::{FlightGuard, Outcome};
use crate::config::Ctx;
use crate::lookup::{Found, Lookup, lookup};
use crate::serve::{serve_if_error, serve_updated};
use crate::service::{Incoming, Origin, OriginBody, Res};
use crate::stats::Event;

/// Validates a stored response with the origin (RFC 9111 §4.3) and answers from the result.
pub(crate) async fn revalidate<S, St, ReqB, ResB>(
    cx: &Ctx<St>,
    mut inner: S,
    (req, body): (Incoming, ReqB),
    found: Found<St::Body>,
    guard: Option<FlightGuard>,
) -> Result<Res<ResB, St>, S::Error>
where
    S: Origin<ReqB, ResB> + Clone,
    ReqB: Default + Send + 'static,
    ResB: OriginBody,
    St: Store,
{
    let stored = found
        .meta
        .as_response()
        .expect("lookup only finds responses");
    let fwd = why_validated(cx, stored, found.at);
    let Incoming {
        parts,
        key,
        cc,
        since,
        ..
    } = req;
    let fwd_parts = validation_parts(&parts, stored, false);
    let head_through = fwd_parts.method == Method::HEAD;
    cx.config.count(Event::Revalidation);
    let request_time = cx.now();
    let result = inner.call(Request::from_parts(fwd_parts, body)).await;
    let response_time = cx.now();
    let times = (request_time, response_time);
    let store_key = found.variant_key.as_deref().unwrap_or(&key);
    let res = match result {
        Ok(res) => res,
        Err(_) if cx.config.policy.stale_if_error(&cc, stored, response_time) => {
            let stale = (stored, found.body);
            return Ok(serve_if_error(cx, &parts, &cc, stale, None, response_time));
        }
        Err(e) => return Err(e),
    };
    let code = res.status();
    let mut ex = Exchange {
        parts,
        key: &key,
        fwd,
        index: found.index.clone(),
        request_time,
        since,
        response_time,
        guard: None,
        replaces: Some(store_key),
    };
    if code == StatusCode::NOT_MODIFIED {
        let stored = (&*found.meta, found.body);
        return not_modified(cx, inner, ex, stored, res, guard).await;
    }
    if code.is_server_error() && cx.config.policy.stale_if_error(&cc, stored, response_time) {
        drop(res);
        let stale = (stored, found.body);
        let code = Some(code.as_u16());
        return Ok(serve_if_error(
            cx,
            &ex.parts,
            &cc,
            stale,
            code,
            response_time,
        ));
    }
    if head_through && code == StatusCode::OK {
        let stored_len = stored_length(stored, &found.body);
        let req_headers = &ex.parts.headers;
        let merged = apply_head(
            cx,
            (&found.meta, stored_len),
            store_key,
            req_headers,
            res.headers(),
            times,
        )
        .await;
        // (A HEAD leads no flight: only GETs are coalesced, so there is no guard to finish.)
        if let Some(merged) = merged {
            let status = (fwd, 200);
            return Ok(serve_updated(
                cx,
                &ex.parts,
                &merged,
                found.body,
                status,
                response_time,
            ));
        }
        // (A HEAD's 200 that did not freshen the stored response has removed it already.)
        ex.replaces = None;
    }
    ex.guard = guard;
    if head_through {
        // A `HEAD` response is passed on, and stores nothing.
        return store_response(cx, ex, res).await;
    }
    answer_full(cx, ex, res).await
}

/// Why a stored response is validated (RFC 9211 §2.2): `request` when it was fresh but the
/// request (its directives or its cache mode) did not allow its use; `stale` when the response
/// itself needs validation (it is stale, or marked `no-cache`).
fn why_validated<St>(cx: &Ctx<St>, stored: &ResponseMeta, at: SystemTime) -> Fwd {
    let usable = cx
        .config
        .policy
        .evaluate(&CacheControl::default(), stored, at)
        .verdict;
    if usable == Verdict::Fresh {
        Fwd::Request
    } else {
        Fwd::Stale
    }
}

/// Answers a validation the origin answered with a `304`: the stored response freshened with its
/// fields (RFC 9111 §4.3.4), or, when it selects nothing, the whole response fetched again.
async fn not_modified<S, St, ReqB, ResB>(
    cx: &Ctx<St>,
    inner: S,
    mut ex: Exchange<'_>,
    (previous, body): (&Meta, St::Body),
    res: Response<ResB>,
    guard: Option<FlightGuard>,
) -> Result<Res<ResB, St>, S::Error>
where
    S: Origin<ReqB, ResB> + Clone,
    ReqB: Default + Send + 'static,
    ResB: OriginBody,
    St: Store,
{
    // The exchange replaces the stored response it validates.
    let store_key = ex.replaces.unwrap_or(ex.key);
    let times = (ex.request_time, ex.response_time);
    let req_headers = &ex.parts.headers;
    let applied = apply_not_modified(
        cx,
        previous,
        req_headers,
        res.headers(),
        store_key,
        times,
        guard,
    );
    match applied.await {
        Ok(merged) => {
            let status = (ex.fwd, 304);
            let at = ex.response_time;
            Ok(serve_updated(cx, &ex.parts, &merged, body, status, at))
        }
        // The 304 is not for the stored response (§4.3.4): fetch it whole, without our
        // conditions.
        Err(guard) => {
            drop(res);
            ex.guard = guard;
            refetch(cx, inner, ex).await
        }
    }
}

/// Fetches the whole response a validation could not freshen (its `304` selected nothing), with
/// the client's request as it came, and answers with it.
async fn refetch<S, St, ReqB, ResB>(
    cx: &Ctx<St>,
    mut svc: S,
    mut ex: Exchange<'_>,
) -> Result<Res<ResB, St>, S::Error>
where
    S: Origin<ReqB, ResB> + Clone,
    ReqB: Default + Send + 'static,
    ResB: OriginBody,
    St: Store,
{
    let mut retry = ex.parts.clone();
    if ex.parts.method == Method::HEAD {
        retry.method = Method::GET;
    }
    let res = ready_call(&mut svc, Request::from_parts(retry, ReqB::default())).await?;
    ex.response_time = cx.now();
    answer_full(cx, ex, res).await
}
/// Updates the stored response `stored` (with its body's length) under `store_key` with a `200`
/// response to a `HEAD` the cache passed on, whose fields are `head` (RFC 9111 §4.3.5); or, when
/// that describes another representation, removes it. Returns the updated response.
async fn apply_head<St: Store>(
    cx: &Ctx<St>,
    (previous, stored_len): (&Meta, Option<u64>),
    store_key: &str,
    req_headers: &http::HeaderMap,
    head: &http::HeaderMap,
    (request_time, response_time): (SystemTime, SystemTime),
) -> Option<Arc<Meta>> {
    let stored = previous.as_response()?;
    let policy = &cx.config.policy;
    let Some(merged) = policy.merge_head(stored, head, stored_len, request_time, response_time)
    else {
        remove(cx, store_key).await;
        return None;
    };
    Some(
        write_update(
            cx,
            store_key,
            req_headers,
            (previous, merged),
            response_time,
        )
        .await,
    )
}

/// The length of a stored body: its `Content-Length`, or what the store says it holds.
fn stored_length<B: Body>(stored: &ResponseMeta, body: &B) -> Option<u64> {
    let declared = stored.fields().get_all(&header::CONTENT_LENGTH).next();
    match declared {
        Some(v) => std::str::from_utf8(v).ok()?.trim().parse().ok(),
        None => body.size_hint().exact(),
    }
}

/// Removes the entry under `store_key` (a store failure is counted and logged).
pub(crate) async fn remove<St: Store>(cx: &Ctx<St>, store_key: &str) {
    if let Err(e) = cx.store.delete(store_key).await {
        cx.config.count(Event::StoreError);
        tracing::warn!(key = store_key, error = %e, "removing a stored response failed");
    }
}

/// The request that validates a stored response (RFC 9111 §4.3.1): a `GET` carrying the stored
/// validators in place of the client's own conditionals, so that a changed response comes whole
/// and is stored. A background validation also drops `Range`: it refreshes the whole response.
///
/// A `HEAD` for a stored response without validators is passed on as a `HEAD` (§4.3.5): a
/// conditional `GET` is not possible, and the `HEAD` response freshens the stored one without its
/// content being sent again.
pub(crate) fn validation_parts(
    parts: &request::Parts,
    stored: &ResponseMeta,
    background: bool,
) -> request::Parts {
    let mut out = parts.clone();
    let conditionals = policy::conditional_headers(&stored.fields().to_header_map(0));
    if background || !conditionals.is_empty() || parts.method != Method::HEAD {
        out.method = Method::GET;
    }
    if !conditionals.is_empty() || background {
        for name in [
            header::IF_NONE_MATCH,
            header::IF_MODIFIED_SINCE,
            header::IF_MATCH,
            header::IF_UNMODIFIED_SINCE,
            header::IF_RANGE,
        ] {
            out.headers.remove(name);
        }
    }
    if background {
        out.headers.remove(header::RANGE);
    }
    for (name, value) in conditionals {
        out.headers.insert(name, value);
    }
    out
}

/// Freshens a stored response with a 304 (RFC 9111 §4.3.4) and writes it back. `None` when the
/// 304 does not select the stored response.
///
/// The 304 answers the validation request, which carried this stored response's own validators
/// whenever it has any (`validation_parts`). A 304 that carries no validator at all (against RFC
/// 9110 §15.4.5, yet common) can then only be about this response, so it selects it, as if it
/// had repeated the stored validators; fetching the response again would cost the origin a
/// second request for what it has just said is unchanged. A 304 with a different validator still
/// selects nothing.
///
/// The flight `guard` leads, if any, ends with the update stored; it is given back when the 304
/// selects nothing, for the fetch that follows.
pub(crate) async fn apply_not_modified<St: Store>(
    cx: &Ctx<St>,
    previous: &Meta,
    req_headers: &http::HeaderMap,
    headers_304: &http::HeaderMap,
    store_key: &str,
    (request_time, response_time): (SystemTime, SystemTime),
    guard: Option<FlightGuard>,
) -> Result<Arc<Meta>, Option<FlightGuard>> {
    let Some(stored) = previous.as_response() else {
        return Err(guard);
    };
    let repeated;
    // Read from the packed fields: `stored.headers()` would build a map and keep it with the
    // stored head, outside any store's budget.
    let fields = stored.fields();
    let stored_has_validators =
        fields.contains(&header::ETAG) || fields.contains(&header::LAST_MODIFIED);
    let headers_304 = if stored_has_validators && !policy::has_validators(headers_304) {
        let mut h = headers_304.clone();
        for name in [header::ETAG, header::LAST_MODIFIED] {
            for value in fields.get_all(&name) {
                if let Ok(value) = HeaderValue::from_bytes(value) {
                    h.append(name.clone(), value);
                }
            }
        }
        repeated = h;
        &repeated
    } else {
        headers_304
    };
    let Some(merged) =
        cx.config
            .policy
            .merge_not_modified(stored, headers_304, request_time, response_time)
    else {
        return Err(guard);
    };
    cx.config.count(Event::NotModified);
    let updated = write_update(
        cx,
        store_key,
        req_headers,
        (previous, merged),
        response_time,
    )
    .await;
    if let Some(g) = guard {
        g.finish(Outcome::Stored(304));
    }
    Ok(updated)
}

/// Writes a stored response updated by a newer response's fields (a 304, RFC 9111 §4.3.4; a
/// `HEAD` response, §4.3.5) back to the store, where it may still be stored, and gives it back
/// to serve.
///
/// The update is the stored response from now on, so the rules for storing a response apply to it
/// as to any (§3): one that the update made unstorable (`no-store`, `private` or a `Set-Cookie`
/// in a shared cache, say) is removed, not kept with those fields for every later request. The
/// request that brought the update gets it all the same: it is that request's own response. A
/// request that asks for nothing to be stored (`no-store`, §5.2.1.5) leaves the entry as it was.
///
/// The update is for the entry that was validated, `previous`: one written under the key since
/// then is left as it is ([`Store::update`]). (A removal takes whatever entry is there: removing
/// is always safe.)
async fn write_update<St: Store>(
    cx: &Ctx<St>,
    store_key: &str,
    req_headers: &http::HeaderMap,
    (previous, m): (&Meta, ResponseMeta),
    now: SystemTime,
) -> Arc<Meta> {
    if policy::request_directives(req_headers).no_store {
        return Arc::new(Meta::Response(m));
    }
    let ttl = Some(cx.config.policy.retention(&m, now));
    let fields = m.fields().to_header_map(0);
    let storable = cx
        .config
        .policy
        .storable(&Method::GET, req_headers, m.status(), &fields);
    let updated = Arc::new(Meta::Response(m));
    if let Err(why) = storable {
        tracing::debug!(
            key = store_key,
            reason = why.as_str(),
            "an update made the stored response unstorable: removed"
        );
        remove(cx, store_key).await;
        return updated;
    }
    if let Err(e) = cx
        .store
        .update(store_key, previous, updated.clone(), ttl)
        .await
    {
        cx.config.count(Event::StoreError);
        tracing::warn!(key = store_key, error = %e, "writing an updated stored response failed");
    }
    updated
}

/// A `HEAD` in [`CacheMode::Reload`](crate::CacheMode::Reload): passed on, and a `200` updates or
/// invalidates the stored `GET` response the request would have been answered with (RFC 9111
/// §4.3.5).
pub(crate) async fn reload_head<S, St, ReqB, ResB>(
    cx: &Ctx<St>,
    mut inner: S,
    (req, body): (Incoming, ReqB),
) -> Result<Res<ResB, St>, S::Error>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: OriginBody,
    St: Store,
{
    let Incoming { parts, key, .. } = req;
    let request_time = cx.now();
    let since = cx.config.invalidations.mark();
    let res = inner.call(Request::from_parts(parts.clone(), body)).await?;
    let response_time = cx.now();
    if res.status() == StatusCode::OK
        && let Lookup::Found(found) = lookup(cx, &key, &parts, None).await
    {
        let stored_len = stored_length(found.response(), &found.body);
        apply_head(
            cx,
            (&found.meta, stored_len),
            found.store_key(&key),
            &parts.headers,
            res.headers(),
            (request_time, response_time),
        )
        .await;
    }
    let ex = Exchange {
        parts,
        key: &key,
        fwd: Fwd::Request,
        index: None,
        request_time,
        since,
        response_time,
        guard: None,
        replaces: None,
    };
    store_response(cx, ex, res).await
}
