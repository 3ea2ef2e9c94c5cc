//! The functions a user may plug into a cache: the key of a request ([`KeyFn`]) and the
//! freshness lifetime of a response ([`TtlFn`]). A closure of the right shape is one of each.

use std::time::Duration;

use http::{request, response};

/// Computes the cache key of a request: requests with equal keys share stored responses. Set with
/// [`CacheLayer::key_by`](crate::CacheLayer::key_by), or [`key_fn`](crate::CacheLayer::key_fn)
/// for a closure.
///
/// A closure `Fn(&request::Parts) -> String` is a `KeyFn`; a type of its own can carry settings.
///
/// # Example
///
/// ```
/// use cachio_moka::MokaStore;
/// use cachio_tower::{CacheLayer, KeyFn};
///
/// /// The path alone: every host shares one entry per path.
/// struct PathOnly;
///
/// impl KeyFn for PathOnly {
///     fn key(&self, parts: &http::request::Parts) -> String {
///         parts.uri.path().to_owned()
///     }
/// }
///
/// let (parts, ()) = http::Request::get("https://a.example/x?y").body(()).unwrap().into_parts();
/// assert_eq!(PathOnly.key(&parts), "/x");
/// let layer = CacheLayer::private(MokaStore::new(1 << 20)).key_by(PathOnly);
/// ```
pub trait KeyFn: Send + Sync + 'static {
    /// The key of the request `parts`.
    fn key(&self, parts: &request::Parts) -> String;
}

impl<F> KeyFn for F
where
    F: Fn(&request::Parts) -> String + Send + Sync + 'static,
{
    fn key(&self, parts: &request::Parts) -> String {
        self(parts)
    }
}

/// Overrides the freshness lifetime of a response before it is stored: `Some` replaces the one
/// its header fields give. Set with [`CacheLayer::ttl_by`](crate::CacheLayer::ttl_by), or
/// [`ttl_override`](crate::CacheLayer::ttl_override) for a closure.
///
/// A closure `Fn(&request::Parts, &response::Parts) -> Option<Duration>` is a `TtlFn`.
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use cachio_moka::MokaStore;
/// use cachio_tower::{CacheLayer, TtlFn};
///
/// /// Images for a day, whatever their fields say.
/// struct Images;
///
/// impl TtlFn for Images {
///     fn ttl(&self, _: &http::request::Parts, res: &http::response::Parts) -> Option<Duration> {
///         let image = res.headers.get("content-type").is_some_and(|v| v.as_bytes().starts_with(b"image/"));
///         image.then_some(Duration::from_secs(86_400))
///     }
/// }
///
/// let layer = CacheLayer::private(MokaStore::new(1 << 20)).ttl_by(Images);
/// ```
pub trait TtlFn: Send + Sync + 'static {
    /// The lifetime to store the response `res` to the request `req` with, if not its own.
    fn ttl(&self, req: &request::Parts, res: &response::Parts) -> Option<Duration>;
}

impl<F> TtlFn for F
where
    F: Fn(&request::Parts, &response::Parts) -> Option<Duration> + Send + Sync + 'static,
{
    fn ttl(&self, req: &request::Parts, res: &response::Parts) -> Option<Duration> {
        self(req, res)
    }
}
