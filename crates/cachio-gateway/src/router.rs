//! A gateway's routers: for each site, its cache layer over the origin (the proxy) beside its
//! admin routes (metrics, purge), all over one store; with several sites, a dispatch by `Host`.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use cachio_core::cache_control::CacheControl;
use cachio_core::clock::Clock;
use cachio_core::policy::Policy;
use cachio_core::store::Store;
use cachio_tower::CacheLayer;
use http::StatusCode;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use tower::Layer;

use crate::dispatch::{Dispatch, Route};
use crate::hop::Via;
use crate::metrics::{Metrics, StoreGauges};
use crate::proxy::{Proxy, Shared};
use crate::purge::{self, PurgeSettings};
use crate::settle::Settle;
use crate::sites::Resolved;
use crate::upstream::{self, Upstream};
use crate::{Gateway, GatewayBuilder, Sharing};

/// A shared handle on a clock (the layer takes a concrete [`Clock`]).
#[derive(Clone)]
pub(crate) struct SharedClock(pub(crate) Arc<dyn Clock>);

impl Clock for SharedClock {
    fn now(&self) -> SystemTime {
        self.0.now()
    }

    fn monotonic(&self) -> std::time::Duration {
        self.0.monotonic()
    }
}

impl fmt::Debug for SharedClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedClock")
    }
}

/// Whether a response states its own freshness lifetime (RFC 9111 §4.2.1).
fn explicit_freshness(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::EXPIRES) {
        return true;
    }
    let cc = CacheControl::from_headers(headers, &header::CACHE_CONTROL);
    if cc.max_age.is_some() || cc.s_maxage.is_some() {
        return true;
    }
    CacheControl::from_targeted_headers(headers, &HeaderName::from_static("cdn-cache-control"))
        .is_some_and(|cc| cc.max_age.is_some())
}

/// The routers of every site over one store, and a dispatch by `Host` when there are several.
pub(crate) fn assemble<St: Store + StoreGauges>(
    store: St,
    b: &GatewayBuilder,
    sites: Vec<Resolved>,
    settle: Option<Settle>,
) -> Gateway {
    let implicit = sites.len() == 1 && sites[0].hosts.is_empty();
    let default = sites.iter().position(|s| s.default);
    let mut routes = Vec::with_capacity(sites.len());
    let mut first = None;
    let mut settle = settle.unwrap_or_default();
    for site in sites {
        let (route, layer, metrics) = assemble_site(store.clone(), b, site);
        first.get_or_insert((layer.stats(), metrics));
        settle.layer(layer);
        routes.push(route);
    }
    let (stats, metrics) = first.expect("a gateway has a site");
    if implicit && let Some(route) = routes.pop() {
        return Gateway {
            router: route.router,
            admin: route.admin,
            stats,
            metrics,
            settle,
        };
    }
    let routes: Arc<[Route]> = routes.into();
    Gateway {
        router: Router::new().fallback_service(Dispatch::new(routes.clone(), default, false)),
        admin: Router::new().fallback_service(Dispatch::new(routes, default, true)),
        stats,
        metrics,
        settle,
    }
}

pub(crate) type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// One site's proxy and admin routes over the shared store.
fn assemble_site<St: Store + StoreGauges>(
    store: St,
    b: &GatewayBuilder,
    site: Resolved,
) -> (Route, CacheLayer<St>, RenderMetrics) {
    let metrics = Arc::new(Metrics::new(&site.name));
    let via = Via::new(&site.name);
    let outgoing = upstream::Outgoing {
        rewrite_host: b.rewrite_host,
        via: via.clone(),
        forwarding: b.forwarding.clone(),
    };
    let upstream = Upstream::new(
        site.origin,
        site.connector,
        outgoing,
        b.upstream_timeout,
        b.upstream_idle,
        metrics.clone(),
    );
    let keys = Arc::new(site.key);
    let layer = cache_layer(
        store.clone(),
        b,
        &site.name,
        site.mode,
        site.grace,
        site.default_ttl,
    );
    let layer = if keys.is_default() {
        layer
    } else {
        let k = keys.clone();
        layer.key_fn(move |parts| k.key(parts))
    };
    let shared = Arc::new(Shared {
        store,
        layer: layer.clone(),
        metrics,
        cache_name: site.name,
        via,
        purge: PurgeSettings {
            token: site.purge_token,
            tag_headers: b.tag_headers.clone(),
        },
        dropped: b.hygiene.dropped(),
        purge_method: !b.separate_admin,
        keys,
        debug_key: b.debug_key,
    });
    // The layer's counters reach the gateway's recorder when it is read (`render_metrics`): a
    // hit then counts only in its thread's stripe of `CacheStats`, where counting it in the
    // recorder too bounced a shared cache line between the workers on every hit (about 5% of
    // the hit rate on two cores, by `scripts/bench-gateway`).
    let cache = layer.layer(upstream);
    let proxy = Proxy {
        cache,
        shared: shared.clone(),
    };
    let admin = Router::new()
        .route("/_cachio/metrics", get(metrics_route::<St>))
        .route("/_cachio/purge/url", post(purge::by_url::<St>))
        .route("/_cachio/purge/prefix", post(purge::by_prefix::<St>))
        .route("/_cachio/purge/tag", post(purge::by_tag::<St>));
    let admin = reserve_admin_paths(admin);
    let router = if b.separate_admin {
        reserve_admin_paths(Router::new())
    } else {
        admin.clone().with_state(shared.clone())
    }
    .fallback_service(proxy);
    let admin = admin
        .fallback(admin_fallback::<St>)
        .with_state(shared.clone());
    let route = Route {
        hosts: site.hosts,
        path_prefix: site.path_prefix,
        router,
        admin,
    };
    let layer = shared.layer.clone();
    (route, layer, Arc::new(move || render_metrics(&shared)))
}

fn render_metrics<St: Store + StoreGauges>(shared: &Shared<St>) -> String {
    let snapshot = shared.layer.stats().snapshot();
    shared
        .metrics
        .render(&shared.store, || snapshot.record(&shared.cache_name))
}

async fn metrics_route<St: Store + StoreGauges>(State(shared): State<Arc<Shared<St>>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        render_metrics(&shared),
    )
        .into_response()
}

/// The admin router's answer to other paths: `PURGE` purges the URL, anything else is `404`.
async fn admin_fallback<St: Store>(
    State(shared): State<Arc<Shared<St>>>,
    req: http::Request<axum::body::Body>,
) -> Response {
    if req.method().as_str() == "PURGE" {
        purge::purge_method(shared, req).await
    } else {
        not_found().await
    }
}

/// `router` answering `404` on the other paths under `/_cachio`, which are never proxied.
fn reserve_admin_paths<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .route("/_cachio", any(not_found))
        .route("/_cachio/{*rest}", any(not_found))
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "404 Not Found: no such cachio admin route\n",
    )
        .into_response()
}

/// A site's cache layer: its mode and policy, its name, its grace and default lifetime.
fn cache_layer<St: Store>(
    store: St,
    b: &GatewayBuilder,
    name: &str,
    mode: Sharing,
    grace: std::time::Duration,
    default_ttl: Option<std::time::Duration>,
) -> CacheLayer<St> {
    let (layer, policy) = match mode {
        Sharing::Shared => (CacheLayer::shared(store), Policy::shared()),
        Sharing::Private => (CacheLayer::private(store), Policy::private()),
    };
    let mut policy = policy.store_set_cookie(b.store_set_cookie || mode == Sharing::Private);
    if !b.hygiene.heuristics {
        policy = policy.heuristic_percent(0);
    }
    if let Some(fields) = &b.targeted_fields {
        policy = policy.targeted_fields(fields.clone());
    }
    let mut layer = layer
        .policy(policy)
        .cache_name(name.to_owned())
        .max_object_size(b.tiers.max_object_bytes)
        .grace(grace)
        .coalesce_timeout(b.coalesce_timeout);
    if let Some(bytes) = b.fill_window {
        layer = layer.fill_window(bytes);
    }
    if let Some(bytes) = b.fill_after_disconnect {
        layer = layer.fill_after_disconnect(bytes);
    }
    if let Some(clock) = &b.clock {
        layer = layer.clock(clock.clone());
    }
    if let Some(ttl) = default_ttl {
        layer =
            layer.ttl_override(move |_req, res| (!explicit_freshness(&res.headers)).then_some(ttl));
    }
    layer
}
