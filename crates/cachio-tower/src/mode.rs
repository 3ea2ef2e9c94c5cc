//! Per-request cache modes, set as a request extension.

/// How one request uses the cache, set as a request extension; [`CacheMode::Default`] when absent.
///
/// The modes follow the Fetch standard's request cache modes, which users of HTTP clients know.
///
/// # Example
///
/// ```
/// use cachio_tower::CacheMode;
///
/// let mut req = http::Request::get("http://example.com/").body(()).unwrap();
/// req.extensions_mut().insert(CacheMode::OnlyIfCached);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CacheMode {
    /// Follow the HTTP caching rules.
    #[default]
    Default,
    /// Neither read from nor write to the cache. An unsafe request still invalidates the stored
    /// responses it changes (RFC 9111 §4.4), since later requests would otherwise see them.
    NoStore,
    /// Do not read from the cache, but store the response if it may be stored.
    Reload,
    /// Validate any stored response with the origin before using it.
    NoCache,
    /// Use any stored response, whatever its freshness; go to the origin only when nothing is
    /// stored. For replaying recorded traffic.
    ForceCache,
    /// Use any stored response, whatever its freshness, and never go to the origin: a miss is a
    /// `504 Gateway Timeout`. For tests and programs that must work offline.
    OnlyIfCached,
}
