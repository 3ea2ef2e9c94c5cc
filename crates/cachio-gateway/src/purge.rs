//! Purging: the `PURGE` method on a proxied URL, and the admin routes under `/_cachio/purge/`.

use std::borrow::Cow;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use cachio_core::backend::carries_tag;
use cachio_core::store::{ErrorKind, Store};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Request, StatusCode, Uri};
use serde::Deserialize;

use crate::key::KeyShape;
use crate::metrics::PurgeKind;
use crate::proxy::Shared;

/// The purge settings: the token and the headers that carry surrogate keys.
#[derive(Clone, Debug)]
pub(crate) struct PurgeSettings {
    pub(crate) token: Option<String>,
    pub(crate) tag_headers: Vec<HeaderName>,
}

const X_PURGE_TOKEN: HeaderName = HeaderName::from_static("x-purge-token");

/// A refused or failed purge: a status and a short explanation.
#[derive(Debug)]
pub(crate) struct Reject(StatusCode, Cow<'static, str>);

impl IntoResponse for Reject {
    fn into_response(self) -> Response {
        let mut res = (self.0, self.1).into_response();
        res.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if self.0 == StatusCode::UNAUTHORIZED {
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"cachio purge\""),
            );
        }
        res
    }
}

fn text(status: StatusCode, body: &'static str) -> Reject {
    Reject(status, Cow::Borrowed(body))
}

/// Compares two byte strings in time that depends on their lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Checks the purge token: `Authorization: Bearer TOKEN` or `X-Purge-Token: TOKEN`.
/// No token configured: 403 (purging is off). None given: 401. A wrong one: 403.
fn authorize(settings: &PurgeSettings, headers: &HeaderMap) -> Result<(), Reject> {
    let Some(token) = &settings.token else {
        return Err(text(
            StatusCode::FORBIDDEN,
            "403 Forbidden: purging is disabled (no purge token is configured)\n",
        ));
    };
    let bearer = headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .map(str::as_bytes);
    let given: Vec<&[u8]> = bearer
        .chain(
            headers
                .get_all(X_PURGE_TOKEN)
                .iter()
                .map(|v| v.as_bytes().trim_ascii()),
        )
        .collect();
    if given.is_empty() {
        return Err(text(
            StatusCode::UNAUTHORIZED,
            "401 Unauthorized: send the purge token as `Authorization: Bearer TOKEN` or `X-Purge-Token: TOKEN`\n",
        ));
    }
    if given.iter().any(|g| same(g, token.as_bytes())) {
        Ok(())
    } else {
        Err(text(
            StatusCode::FORBIDDEN,
            "403 Forbidden: wrong purge token\n",
        ))
    }
}

fn purged(n: u64) -> Response {
    let mut res = Response::new(Body::from(format!("{{\"purged\":{n}}}\n")));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// A `GET` for `target`: an absolute URL as it is, a path with `host` (or the request's `Host`).
fn get_for(target: &str, host: Option<&HeaderValue>) -> Result<Request<()>, Reject> {
    let bad = || {
        text(
            StatusCode::BAD_REQUEST,
            "400 Bad Request: not a URL or a path\n",
        )
    };
    let uri: Uri = target.parse().map_err(|_| bad())?;
    if uri.authority().is_none() && host.is_none() {
        return Err(text(
            StatusCode::BAD_REQUEST,
            "400 Bad Request: a path needs a Host (send one, or give `host=` or an absolute URL)\n",
        ));
    }
    let mut req = Request::get(uri);
    if let Some(host) = host {
        req = req.header(header::HOST, host);
    }
    req.body(()).map_err(|_| bad())
}

/// The cache key of `req`, as the site's cache computes it.
fn key_of(keys: &KeyShape, req: &Request<()>) -> String {
    let (parts, ()) = req.clone().into_parts();
    keys.key(&parts)
}

/// What every key of `req`'s URL starts with, whatever its keyed headers and cookies.
fn url_key_of(keys: &KeyShape, req: &Request<()>) -> String {
    let (parts, ()) = req.clone().into_parts();
    keys.url_key(&parts)
}

/// Removes the stored responses of one URL: its key, which also makes every `Vary` variant
/// unreachable, and, when the site keys on headers or cookies, the keys of the URL's other
/// header and cookie values. It takes the cache's own invalidation path, so no response on its
/// way from the origin when the purge came is stored after it. Returns how many entries went.
async fn purge_url<St: Store>(shared: &Shared<St>, get: &Request<()>) -> Result<u64, Reject> {
    let key = key_of(&shared.keys, get);
    let existed = matches!(shared.store.get(&key).await, Ok(Some(_)));
    match shared.layer.invalidate(get).await {
        Ok(()) => {
            let mut n = u64::from(existed);
            if shared.keys.has_extras() {
                // A store that cannot enumerate its keys purges the one the request names.
                let others = format!("{} ", url_key_of(&shared.keys, get));
                n += match shared
                    .layer
                    .purge(move |stored, _| stored.starts_with(&others))
                    .await
                {
                    Ok(n) => n,
                    Err(e) if e.kind() == ErrorKind::Unsupported => 0,
                    Err(e) => return Err(store_failed(&e)),
                };
            }
            shared.metrics.purge(PurgeKind::Url, n);
            tracing::info!(key, purged = n, "purged a URL");
            Ok(n)
        }
        Err(e) => Err(store_failed(&e)),
    }
}

/// `PURGE /path`: removes the stored responses of the request's own URL.
pub(crate) async fn purge_method<St: Store>(
    shared: Arc<Shared<St>>,
    req: Request<Body>,
) -> Response {
    if let Err(res) = authorize(&shared.purge, req.headers()) {
        return res.into_response();
    }
    let (parts, _) = req.into_parts();
    let mut get = match Request::get(parts.uri).body(()) {
        Ok(get) => get,
        Err(_) => return text(StatusCode::BAD_REQUEST, "400 Bad Request\n").into_response(),
    };
    *get.headers_mut() = parts.headers;
    match purge_url(&shared, &get).await {
        Ok(n) => purged(n),
        Err(res) => res.into_response(),
    }
}

/// The query of the admin purge routes.
#[derive(Debug, Deserialize)]
pub(crate) struct Target {
    url: Option<String>,
    prefix: Option<String>,
    tag: Option<String>,
    host: Option<String>,
}

impl Target {
    /// The `GET` request for `target` (the `url` or `prefix` parameter, answered `missing`
    /// when absent) with the request's host or the `host` parameter.
    fn request(
        &self,
        target: Option<&str>,
        missing: &'static str,
        headers: &HeaderMap,
    ) -> Result<Request<()>, Reject> {
        let target = target.ok_or_else(|| text(StatusCode::BAD_REQUEST, missing))?;
        get_for(target, self.host(headers)?.as_ref())
    }

    fn host(&self, headers: &HeaderMap) -> Result<Option<HeaderValue>, Reject> {
        match &self.host {
            Some(h) => HeaderValue::from_str(h)
                .map(Some)
                .map_err(|_| text(StatusCode::BAD_REQUEST, "400 Bad Request: bad host\n")),
            None => Ok(headers.get(header::HOST).cloned()),
        }
    }
}

fn store_failed(e: &cachio_core::StoreError) -> Reject {
    if e.kind() == ErrorKind::Unsupported {
        text(
            StatusCode::NOT_IMPLEMENTED,
            "501 Not Implemented: this store cannot enumerate its entries (purge by URL works)\n",
        )
    } else if e.kind() == ErrorKind::Unavailable {
        // Redis (or another shared store) is down: the other nodes may still hold, or store,
        // what was asked to go. Say so; the caller retries.
        tracing::warn!(error = %e, "purge failed: the store is unavailable");
        Reject(
            StatusCode::SERVICE_UNAVAILABLE,
            Cow::Owned(format!("503 Service Unavailable: {e}\n")),
        )
    } else {
        tracing::warn!(error = %e, "purge failed");
        text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "500 Internal Server Error: the store failed\n",
        )
    }
}

/// `POST /_cachio/purge/url?url=URL-or-path[&host=H]`
pub(crate) async fn by_url<St: Store>(
    State(shared): State<Arc<Shared<St>>>,
    Query(t): Query<Target>,
    headers: HeaderMap,
) -> Result<Response, Reject> {
    authorize(&shared.purge, &headers)?;
    let get = t.request(t.url.as_deref(), "400 Bad Request: give url=\n", &headers)?;
    Ok(purged(purge_url(&shared, &get).await?))
}

/// `POST /_cachio/purge/prefix?prefix=URL-or-path[&host=H]`: every entry whose key starts with
/// the prefix's key (its variants included).
pub(crate) async fn by_prefix<St: Store>(
    State(shared): State<Arc<Shared<St>>>,
    Query(t): Query<Target>,
    headers: HeaderMap,
) -> Result<Response, Reject> {
    authorize(&shared.purge, &headers)?;
    let get = t.request(
        t.prefix.as_deref(),
        "400 Bad Request: give prefix=\n",
        &headers,
    )?;
    let key = url_key_of(&shared.keys, &get);
    let k = key.clone();
    let n = shared
        .layer
        .purge(move |stored, _| stored.starts_with(&k))
        .await
        .map_err(|e| store_failed(&e))?;
    shared.metrics.purge(PurgeKind::Prefix, n);
    tracing::info!(prefix = key, purged = n, "purged a prefix");
    Ok(purged(n))
}

/// `POST /_cachio/purge/tag?tag=T`: every entry whose response carried the surrogate key `T`.
pub(crate) async fn by_tag<St: Store>(
    State(shared): State<Arc<Shared<St>>>,
    Query(t): Query<Target>,
    headers: HeaderMap,
) -> Result<Response, Reject> {
    authorize(&shared.purge, &headers)?;
    let Some(tag) = t.tag.filter(|t| !t.is_empty()) else {
        return Err(text(
            StatusCode::BAD_REQUEST,
            "400 Bad Request: give tag=\n",
        ));
    };
    let names = shared.purge.tag_headers.clone();
    let t2 = tag.clone();
    // Only this site's entries: its keys start with its name.
    let site = shared.keys.site_prefix().to_owned();
    let n = shared
        .layer
        .purge(move |stored, meta| stored.starts_with(&site) && carries_tag(meta, &names, &t2))
        .await
        .map_err(|e| store_failed(&e))?;
    shared.metrics.purge(PurgeKind::Tag, n);
    tracing::info!(tag, purged = n, "purged a tag");
    Ok(purged(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(token: Option<&str>) -> PurgeSettings {
        PurgeSettings {
            token: token.map(str::to_owned),
            tag_headers: vec![],
        }
    }

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| (HeaderName::from_static(n), HeaderValue::from_static(v)))
            .collect()
    }

    #[test]
    fn tokens() {
        let s = settings(Some("sekrit"));
        assert!(authorize(&s, &headers(&[("authorization", "Bearer sekrit")])).is_ok());
        assert!(authorize(&s, &headers(&[("authorization", "bearer  sekrit ")])).is_ok());
        assert!(authorize(&s, &headers(&[("x-purge-token", "sekrit")])).is_ok());
        let status = |h| authorize(&s, &h).unwrap_err().0;
        assert_eq!(status(headers(&[])), StatusCode::UNAUTHORIZED);
        assert_eq!(
            status(headers(&[("authorization", "Basic c2Vrcml0")])),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(headers(&[("x-purge-token", "sekri")])),
            StatusCode::FORBIDDEN
        );
        let off = settings(None);
        assert_eq!(
            authorize(&off, &headers(&[("x-purge-token", "sekrit")]))
                .unwrap_err()
                .0,
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn keys_of_paths_and_urls() {
        let host = HeaderValue::from_static("Example.com");
        let plain = KeyShape::default();
        assert_eq!(
            key_of(&plain, &get_for("/a?b", Some(&host)).unwrap()),
            "http://example.com/a?b"
        );
        assert_eq!(
            key_of(&plain, &get_for("http://h:8/a", None).unwrap()),
            "http://h:8/a"
        );
        let site = KeyShape::new(Some("shop"), crate::KeyOptions::new().cookie("c"));
        assert_eq!(
            key_of(&site, &get_for("/a", Some(&host)).unwrap()),
            "[shop]http://example.com/a c:c"
        );
        assert!(get_for("/a", None).is_err());
    }
}
