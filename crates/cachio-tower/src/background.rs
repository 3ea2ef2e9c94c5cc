//! Background revalidation (RFC 5861 §3, `stale-while-revalidate`): a stale response is served
//! while a task validates it with the origin.

use std::sync::Arc;

use cachio_core::meta::{Meta, VaryIndex};
use cachio_core::policy::status::Fwd;
use cachio_core::store::Store;
use http::{Method, Request, StatusCode};

use crate::capture::{Exchange, drain, store_response};
use crate::coalesce::Join;
use crate::config::Ctx;
use crate::revalidate::{apply_not_modified, validation_parts};
use crate::service::{Incoming, Origin, OriginBody, Res};
use crate::stats::Event;

/// A stale response just served, to revalidate.
pub(crate) struct Stale {
    /// The key it is stored under.
    pub(crate) store_key: String,
    /// Always a [`Meta::Response`].
    pub(crate) meta: Arc<Meta>,
    /// The resource's variant index, for a resource that varies.
    pub(crate) index: Option<VaryIndex>,
}

/// Revalidates a stale response in the background while it is served (RFC 5861 §3). It takes
/// part in coalescing: nothing starts while a fetch of the key is in flight, and requests that
/// cannot use the stale response wait for this one.
pub(crate) fn spawn_revalidation<S, St, ReqB, ResB>(
    cx: &Arc<Ctx<St>>,
    mut inner: S,
    req: &Incoming,
    stale: Stale,
) where
    S: Origin<ReqB, ResB>,
    ReqB: Default + Send + 'static,
    ResB: OriginBody,
    St: Store,
{
    let Stale {
        store_key,
        meta,
        index,
    } = stale;
    let Some(stored) = meta.as_response() else {
        return;
    };
    let guard = match cx.config.flights.join(&req.key) {
        Join::Leader(g) => g,
        Join::Waiter(_) => return,
    };
    cx.config.count(Event::BackgroundRevalidation);
    let cx = Arc::clone(cx);
    let fwd_parts = validation_parts(&req.parts, stored, true);
    let key = req.key.clone();
    let since = req.since;
    let store_parts = {
        let mut p = req.parts.clone();
        p.method = Method::GET;
        p
    };
    let running = cx.config.writes.start(0);
    tokio::spawn(async move {
        let _running = running;
        let request_time = cx.now();
        let res = match inner
            .call(Request::from_parts(fwd_parts, ReqB::default()))
            .await
        {
            Ok(res) => res,
            Err(_) => {
                tracing::debug!(key, "background revalidation failed");
                return;
            }
        };
        let response_time = cx.now();
        if res.status() == StatusCode::NOT_MODIFIED {
            // The flight ends with the update stored, or failed when the 304 selects nothing.
            let _ = apply_not_modified(
                &cx,
                &meta,
                &store_parts.headers,
                res.headers(),
                &store_key,
                (request_time, response_time),
                Some(guard),
            )
            .await;
            return;
        }
        if res.status().is_server_error() {
            return;
        }
        // A full response: store it by reading it to the end through a tee nobody else reads.
        let ex = Exchange {
            parts: store_parts,
            key: &key,
            fwd: Fwd::Stale,
            index,
            request_time,
            since,
            response_time,
            guard: Some(guard),
            replaces: Some(&store_key),
        };
        let res: Result<Res<ResB, St>, ()> = store_response(&cx, ex, res).await;
        if let Ok(res) = res {
            // Read to the end as a fill its client left is (`fill::finish_in_background`).
            drain(res.into_body()).await;
        }
    });
}
