//! [`Cache`]: the middleware.

use std::fmt;
use std::sync::Arc;

use cachio_core::Meta;
use cachio_core::store::{Store, StoreError};
use cachio_tower::{CacheLayer, CacheMode, CacheStats, ResponseBody, Sharing};
use http::Extensions;
use reqwest::ResponseBuilderExt;
use reqwest_middleware::{Middleware, Next};
use tower::{Layer, Service, ServiceExt};

use crate::body::SyncBody;
use crate::forward::{FinalUrl, Forward, drive};

/// An RFC 9111 HTTP cache as a [`reqwest_middleware::Middleware`]: the engine of
/// [`cachio_tower::CacheLayer`], with its policy, stores and options.
///
/// Responses carry `Cache-Status` (RFC 9211). A [`CacheMode`] set with
/// [`RequestBuilder::with_extension`](reqwest_middleware::RequestBuilder::with_extension), or in
/// the extensions of the `http::Request` a `reqwest::Request` was made from, changes how one
/// request uses the cache; when both are set, the request's own wins.
///
/// # Example
///
/// ```
/// use cachio_moka::MokaStore;
/// use cachio_reqwest::Cache;
///
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(Cache::private(MokaStore::new(64 << 20)))
///     .build();
/// ```
pub struct Cache<St> {
    svc: cachio_tower::Cache<Forward, St>,
    sharing: Sharing,
}

impl<St: Store> Cache<St> {
    /// A private cache (one user's: an API client, a crawler) over `store`.
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_moka::MokaStore;
    ///
    /// let cache = cachio_reqwest::Cache::private(MokaStore::new(64 << 20));
    /// assert_eq!(cache.sharing(), cachio_tower::Sharing::Private);
    /// ```
    pub fn private(store: St) -> Self {
        Self::new(CacheLayer::private(store))
    }

    /// A shared cache (one that serves many users, as a gateway's does) over `store`.
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_moka::MokaStore;
    ///
    /// let cache = cachio_reqwest::Cache::shared(MokaStore::new(64 << 20));
    /// assert_eq!(cache.sharing(), cachio_tower::Sharing::Shared);
    /// ```
    pub fn shared(store: St) -> Self {
        Self::new(CacheLayer::shared(store))
    }

    /// The cache `layer` describes, with every option set on it (cache name, object size limit,
    /// key function, clock...). It shares the layer's store, counters and fetches in flight.
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_moka::MokaStore;
    /// use cachio_tower::CacheLayer;
    ///
    /// let layer = CacheLayer::private(MokaStore::new(64 << 20))
    ///     .cache_name("api")
    ///     .max_object_size(1 << 20);
    /// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
    ///     .with(cachio_reqwest::Cache::new(layer))
    ///     .build();
    /// ```
    pub fn new(layer: CacheLayer<St>) -> Self {
        Self {
            sharing: layer.sharing(),
            svc: layer.layer(Forward::default()),
        }
    }

    /// The client that `stale-while-revalidate` revalidations (RFC 5861 §3) go through.
    ///
    /// Such a revalidation runs in the background once the stale response has been returned,
    /// when the middleware chain the request came through is no longer there to run it. It then
    /// goes through `client` directly, without the middleware after this one. With no client
    /// set, it ends at once without reaching the network: the stale response is served until
    /// its `stale-while-revalidate` window ends, then validated by the request that finds it so.
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_moka::MokaStore;
    ///
    /// let http = reqwest::Client::new();
    /// let client = reqwest_middleware::ClientBuilder::new(http.clone())
    ///     .with(cachio_reqwest::Cache::private(MokaStore::new(64 << 20)).background_client(http))
    ///     .build();
    /// ```
    #[must_use]
    pub fn background_client(mut self, client: reqwest::Client) -> Self {
        self.svc.get_mut().background(Some(client));
        self
    }

    /// The counters of this cache (shared with the layer it was made from).
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_moka::MokaStore;
    ///
    /// let cache = cachio_reqwest::Cache::private(MokaStore::new(64 << 20));
    /// assert_eq!(cache.stats().snapshot().hits, 0);
    /// ```
    pub fn stats(&self) -> Arc<CacheStats> {
        self.svc.stats()
    }

    /// The store.
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_moka::MokaStore;
    ///
    /// let cache = cachio_reqwest::Cache::private(MokaStore::new(64 << 20));
    /// let store: &MokaStore = cache.store();
    /// ```
    pub fn store(&self) -> &St {
        self.svc.store()
    }

    /// Private or shared.
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_moka::MokaStore;
    ///
    /// let cache = cachio_reqwest::Cache::private(MokaStore::new(64 << 20));
    /// assert_eq!(cache.sharing(), cachio_tower::Sharing::Private);
    /// ```
    pub fn sharing(&self) -> Sharing {
        self.sharing
    }

    /// Private or shared.
    #[deprecated(note = "renamed to `sharing`")]
    pub fn mode(&self) -> Sharing {
        self.sharing
    }

    /// Removes the stored responses that `req` would be answered with: those of its URL, and
    /// every `Vary` variant, as a `POST` or `DELETE` to it does (RFC 9111 §4.4). See
    /// [`CacheLayer::invalidate`].
    ///
    /// # Errors
    ///
    /// When the store fails to remove them.
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_moka::MokaStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = cachio_reqwest::Cache::private(MokaStore::new(64 << 20));
    /// let req = reqwest::Request::new(reqwest::Method::GET, "https://api.example.com/users/7".parse()?);
    /// cache.invalidate(&req).await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn invalidate(&self, req: &reqwest::Request) -> Result<(), StoreError> {
        // A URL that is not a URI was never sent through the cache: nothing is stored for it.
        let Ok(uri) = req.url().as_str().parse::<http::Uri>() else {
            return Ok(());
        };
        let mut head = http::Request::new(());
        *head.method_mut() = req.method().clone();
        *head.uri_mut() = uri;
        *head.headers_mut() = req.headers().clone();
        self.svc.invalidate(&head).await
    }

    /// Removes every stored entry for which `matches(key, meta)` holds, and returns how many went.
    /// See [`CacheLayer::purge`].
    ///
    /// # Errors
    ///
    /// When the store fails, or cannot enumerate its entries.
    ///
    /// # Example
    ///
    /// ```
    /// use cachio_moka::MokaStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cache = cachio_reqwest::Cache::private(MokaStore::new(64 << 20));
    /// let gone = cache.purge(|key, _| key.starts_with("https://api.example.com/users/")).await?;
    /// assert_eq!(gone, 0);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn purge<F>(&self, matches: F) -> Result<u64, StoreError>
    where
        F: Fn(&str, &Meta) -> bool + Send + Sync + 'static,
    {
        self.svc.purge(matches).await
    }
}

impl<St: Store> From<CacheLayer<St>> for Cache<St> {
    /// [`Cache::new`].
    fn from(layer: CacheLayer<St>) -> Self {
        Self::new(layer)
    }
}

impl<St: Clone> Clone for Cache<St> {
    fn clone(&self) -> Self {
        Self {
            svc: self.svc.clone(),
            sharing: self.sharing,
        }
    }
}

impl<St> fmt::Debug for Cache<St> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache").field("svc", &self.svc).finish()
    }
}

#[async_trait::async_trait]
impl<St: Store> Middleware for Cache<St> {
    async fn handle(
        &self,
        req: reqwest::Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<reqwest::Response> {
        let url = req.url().clone();
        let mut req = http::Request::<reqwest::Body>::try_from(req)?;
        if let Some(mode) = extensions.get::<CacheMode>()
            && req.extensions().get::<CacheMode>().is_none()
        {
            req.extensions_mut().insert(*mode);
        }
        let mut svc = self.svc.clone();
        let calls = svc.get_mut().bind();
        let fut = svc.ready().await?.call(req);
        drop(svc);
        let res = drive(fut, calls, extensions, next).await?;
        into_reqwest(res, url)
    }
}

/// The cache's response as reqwest's, with the URL it came from.
fn into_reqwest<St: Store>(
    res: http::Response<ResponseBody<reqwest::Body, St>>,
    url: reqwest::Url,
) -> reqwest_middleware::Result<reqwest::Response> {
    let (mut parts, body) = res.into_parts();
    let url = parts.extensions.remove::<FinalUrl>().map_or(url, |u| u.0);
    // reqwest reads a response's URL from an extension only its builder can set.
    let (with_url, ()) = http::Response::builder()
        .url(url)
        .body(())
        .map_err(reqwest_middleware::Error::middleware)?
        .into_parts();
    parts.extensions.extend(with_url.extensions);
    let body = reqwest::Body::wrap(SyncBody::new(body));
    Ok(reqwest::Response::from(http::Response::from_parts(
        parts, body,
    )))
}
