//! Hop-by-hop header fields (RFC 9110 §7.6.1): they describe one connection, so a proxy removes
//! them before forwarding and a cache does not store them; and the proxy authentication fields a
//! cache does not store either (RFC 9111 §3.1).

use http::header::{self, HeaderMap, HeaderName};

/// The hop-by-hop fields removed whatever `Connection` lists (RFC 9110 §7.6.1).
pub const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// The proxy authentication fields, which a cache does not store (RFC 9111 §3.1).
pub const PROXY_FIELDS: [HeaderName; 3] = [
    header::PROXY_AUTHENTICATE,
    HeaderName::from_static("proxy-authentication-info"),
    header::PROXY_AUTHORIZATION,
];

/// Whether `name` is one of [`HOP_BY_HOP`].
///
/// # Example
///
/// ```
/// use cachio_core::backend::hop::is_hop_by_hop;
///
/// assert!(is_hop_by_hop(&http::header::TRANSFER_ENCODING));
/// assert!(!is_hop_by_hop(&http::header::CONTENT_TYPE));
/// ```
pub fn is_hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// Whether `name` is one of [`PROXY_FIELDS`].
pub fn is_proxy_field(name: &HeaderName) -> bool {
    PROXY_FIELDS.contains(name)
}

/// The field names listed in `Connection`.
pub fn connection_fields(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .filter_map(|t| HeaderName::from_bytes(t.trim_ascii()).ok())
        .collect()
}

/// Removes the hop-by-hop fields from `headers`, as a proxy does before forwarding a message:
/// every field `Connection` lists and the [`HOP_BY_HOP`] fields.
///
/// # Example
///
/// ```
/// use http::{HeaderMap, HeaderValue, header};
/// use cachio_core::backend::hop;
///
/// let mut headers = HeaderMap::new();
/// headers.insert(header::CONNECTION, HeaderValue::from_static("x-hop"));
/// headers.insert("x-hop", HeaderValue::from_static("1"));
/// headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
/// hop::strip(&mut headers);
/// assert_eq!(headers.len(), 1);
/// ```
pub fn strip(headers: &mut HeaderMap) {
    if headers.contains_key(header::CONNECTION) {
        for name in connection_fields(headers) {
            headers.remove(name);
        }
    }
    for name in &HOP_BY_HOP {
        if headers.contains_key(name) {
            headers.remove(name);
        }
    }
}
