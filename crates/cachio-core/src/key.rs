//! Cache keys: which stored responses a request may be answered with (RFC 9111 §2).
//!
//! The primary key is the target URI: scheme, authority, path and query. The method is not part of
//! it, because a `HEAD` is answered from a stored `GET` response; only `GET` responses are stored.

use std::fmt::Write as _;
use std::hash::Hasher;

use http::request::Parts;
use http::{HeaderValue, header};

use crate::backend::Fnv;

/// The primary cache key of a request: `scheme://authority/path?query`.
///
/// The scheme defaults to `http` and the authority is taken from the URI, or from the `Host` header
/// when the URI has none (as on a server receiving an origin-form request). The scheme and host are
/// lowercased (RFC 3986 §6.2.2.1); the path and query are kept byte for byte.
///
/// # Example
///
/// ```
/// use cachio_core::key::primary_key;
///
/// let (parts, ()) = http::Request::get("/a?b=1")
///     .header("host", "Example.COM")
///     .body(())
///     .unwrap()
///     .into_parts();
/// assert_eq!(primary_key(&parts), "http://example.com/a?b=1");
/// ```
pub fn primary_key(req: &Parts) -> String {
    let mut key = String::new();
    write_primary_key(req, &mut key);
    key
}

/// Appends the [`primary_key`] of `req` to `out`, so that a caller may reuse one buffer.
///
/// # Example
///
/// ```
/// use cachio_core::key::write_primary_key;
///
/// let (parts, ()) = http::Request::get("https://Example.com/a").body(()).unwrap().into_parts();
/// let mut key = String::new();
/// write_primary_key(&parts, &mut key);
/// assert_eq!(key, "https://example.com/a");
/// ```
pub fn write_primary_key(req: &Parts, out: &mut String) {
    let uri = &req.uri;
    let scheme = uri.scheme_str().unwrap_or("http");
    let authority = match uri.authority() {
        Some(a) => a.as_str(),
        None => req
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or(""),
    };
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let path = if path.is_empty() { "/" } else { path };
    out.reserve(scheme.len() + 3 + authority.len() + path.len());
    let start = out.len();
    out.push_str(scheme);
    out.push_str("://");
    out.push_str(authority);
    // The scheme and host are lowercased where they were written: one pass, with no scan for
    // capitals first and no second copy.
    if let Some(origin) = out.get_mut(start..) {
        origin.make_ascii_lowercase();
    }
    out.push_str(path);
}

/// The key of one variant of a resource whose responses carry `Vary` (RFC 9111 §4.1).
///
/// `epoch` names the variant index the variant belongs to, so that invalidating a URI (which removes
/// its index) makes every older variant unreachable at once. `values` are the normalised request
/// field values that the index's `Vary` names select, in the index's order.
///
/// # Example
///
/// ```
/// use http::HeaderValue;
/// use cachio_core::key::variant_key;
///
/// let en = [Some(HeaderValue::from_static("en"))];
/// let de = [Some(HeaderValue::from_static("de"))];
/// let a = variant_key("http://x/", 7, &en);
/// assert_ne!(a, variant_key("http://x/", 7, &de));
/// assert_ne!(a, variant_key("http://x/", 8, &en));
/// assert_eq!(a, variant_key("http://x/", 7, &en));
/// ```
pub fn variant_key(primary: &str, epoch: u64, values: &[Option<HeaderValue>]) -> String {
    variant_key_for_hash(primary, epoch, variant_hash(values))
}

/// The [`variant_key`] of the values whose [`variant_hash`] is `hash`: what a variant index
/// records of each variant.
///
/// # Example
///
/// ```
/// use http::HeaderValue;
/// use cachio_core::key::{variant_hash, variant_key, variant_key_for_hash};
///
/// let en = [Some(HeaderValue::from_static("en"))];
/// assert_eq!(variant_key_for_hash("http://x/", 7, variant_hash(&en)), variant_key("http://x/", 7, &en));
/// ```
pub fn variant_key_for_hash(primary: &str, epoch: u64, hash: u64) -> String {
    let mut key = String::with_capacity(primary.len() + 40);
    key.push_str(primary);
    let _ = write!(key, "\u{0}v{epoch:016x}:{hash:016x}");
    key
}

/// A stable 64-bit hash of normalised Vary values (FNV-1a, so it is the same in every process and
/// every version; the exact values are compared again on lookup, so collisions cost a miss only).
pub fn variant_hash(values: &[Option<HeaderValue>]) -> u64 {
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    for v in values {
        match v {
            Some(v) => {
                h.write_u8(1);
                h.write(v.as_bytes());
                h.write_u8(0);
            }
            None => h.write_u8(2),
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(uri: &str, host: Option<&str>) -> Parts {
        let mut b = http::Request::get(uri);
        if let Some(h) = host {
            b = b.header("host", h);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn rfc9111_2_key_is_scheme_authority_path_query() {
        assert_eq!(
            primary_key(&parts("https://A.example:8443/p/Q?x=Y", None)),
            "https://a.example:8443/p/Q?x=Y"
        );
        assert_eq!(
            primary_key(&parts("/p?q", Some("h.example"))),
            "http://h.example/p?q"
        );
        assert_ne!(
            primary_key(&parts("/p?q=1", Some("h"))),
            primary_key(&parts("/p?q=2", Some("h")))
        );
        assert_ne!(
            primary_key(&parts("https://h/p", None)),
            primary_key(&parts("http://h/p", None))
        );
    }

    #[test]
    fn rfc9111_2_uri_authority_wins_over_host() {
        assert_eq!(primary_key(&parts("http://a/p", Some("b"))), "http://a/p");
    }
}
