//! Purge tags: the names a response gives itself in `Surrogate-Key` or `Cache-Tag`.

use http::header::HeaderName;

use crate::meta::Meta;

/// Whether the stored response `meta` carries `tag` in one of the fields `names`, whose values
/// are lists split on spaces, commas and tabs (so both `Surrogate-Key: a b` and
/// `Cache-Tag: a,b` work). A variant index carries no tag.
///
/// # Example
///
/// ```
/// use std::time::SystemTime;
///
/// use cachio_core::backend::carries_tag;
/// use cachio_core::meta::{Meta, ResponseMeta};
/// use http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Version};
///
/// let mut h = HeaderMap::new();
/// h.insert("cache-tag", HeaderValue::from_static("docs,manual"));
/// let now = SystemTime::now();
/// let meta = Meta::Response(ResponseMeta::new(StatusCode::OK, Version::HTTP_11, h, Vec::new(), now, now));
/// let names = [HeaderName::from_static("surrogate-key"), HeaderName::from_static("cache-tag")];
/// assert!(carries_tag(&meta, &names, "manual"));
/// assert!(!carries_tag(&meta, &names, "man"));
/// ```
pub fn carries_tag(meta: &Meta, names: &[HeaderName], tag: &str) -> bool {
    let Some(res) = meta.as_response() else {
        return false;
    };
    names.iter().any(|name| {
        res.headers().get_all(name).iter().any(|v| {
            v.as_bytes()
                .split(|b| *b == b' ' || *b == b',' || *b == b'\t')
                .any(|t| t == tag.as_bytes())
        })
    })
}
