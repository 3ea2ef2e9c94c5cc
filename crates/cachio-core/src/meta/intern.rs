//! Header values that many responses share (`Content-Type: application/json`, a site's
//! `Strict-Transport-Security`), kept once for the life of the process.
//!
//! A value served from a stored head shares that head's buffer, so every hit takes a reference to
//! it and gives it back: two atomic operations per header line and hit. A value interned here is
//! static instead, and costs nothing to clone or drop. Only the fields whose
//! values are the same across a site's responses are interned (not `Date`, `ETag` or
//! `Content-Length`), with the names of fields the `http` crate does not know (`X-Request-Id`),
//! which would otherwise share the head's buffer too. The table is bounded: once it holds
//! [`MAX_VALUES`] values or [`MAX_BYTES`] bytes it takes no more, and the rest go on sharing their
//! head's buffer.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex};

use bytes::Bytes;
use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

/// The most values the table holds.
const MAX_VALUES: usize = 1024;

/// The most bytes of values the table holds.
const MAX_BYTES: usize = 64 * 1024;

/// The longest value interned.
const MAX_LEN: usize = 256;

/// Whether `name` is a field whose values are usually one of a few per site.
fn is_shared_field(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-type"
            | "cache-control"
            | "cdn-cache-control"
            | "server"
            | "vary"
            | "content-encoding"
            | "content-language"
            | "accept-ranges"
            | "strict-transport-security"
            | "x-content-type-options"
            | "x-frame-options"
            | "x-xss-protection"
            | "referrer-policy"
            | "access-control-allow-origin"
            | "access-control-allow-credentials"
            | "access-control-allow-methods"
            | "access-control-allow-headers"
            | "access-control-expose-headers"
            | "access-control-max-age"
            | "cross-origin-opener-policy"
            | "cross-origin-embedder-policy"
            | "cross-origin-resource-policy"
            | "permissions-policy"
            | "timing-allow-origin"
            | "alt-svc"
            | "via"
            | "pragma"
            | "x-powered-by"
    )
}

struct Table {
    values: HashSet<&'static [u8]>,
    bytes: usize,
}

static TABLE: LazyLock<Mutex<Table>> = LazyLock::new(|| {
    Mutex::new(Table {
        values: HashSet::new(),
        bytes: 0,
    })
});

/// A copy of `map` whose custom field names, and whose values of the
/// [shared fields](is_shared_field), are static, as far as the table has room. The lines keep
/// their order, and each value its sensitivity.
pub(crate) fn interned(map: &HeaderMap) -> HeaderMap {
    let Ok(mut table) = TABLE.lock() else {
        return map.clone();
    };
    let mut out = HeaderMap::with_capacity(map.len());
    for (name, value) in map {
        let static_name = table
            .get_or_insert(name.as_str().as_bytes())
            // A valid name's text is a valid static name (a standard one comes back as the
            // `http` crate's own constant).
            .and_then(|b| std::str::from_utf8(b).ok());
        let name = static_name.map_or_else(|| name.clone(), HeaderName::from_static);
        let static_value = is_shared_field(&name)
            .then(|| table.get_or_insert(value.as_bytes()))
            .flatten()
            .and_then(|b| HeaderValue::from_maybe_shared(Bytes::from_static(b)).ok());
        let value = match static_value {
            Some(mut v) => {
                v.set_sensitive(value.is_sensitive());
                v
            }
            None => value.clone(),
        };
        out.append(name, value);
    }
    out
}

impl Table {
    /// The static copy of `value`, made now if the table has room.
    fn get_or_insert(&mut self, value: &[u8]) -> Option<&'static [u8]> {
        if let Some(known) = self.values.get(value) {
            return Some(known);
        }
        if value.len() > MAX_LEN
            || self.values.len() >= MAX_VALUES
            || self.bytes + value.len() > MAX_BYTES
        {
            return None;
        }
        let leaked: &'static [u8] = Box::leak(value.to_vec().into_boxed_slice());
        self.values.insert(leaked);
        self.bytes += leaked.len();
        Some(leaked)
    }
}

#[cfg(test)]
mod tests {
    use http::header;

    use super::*;

    #[test]
    fn shared_fields_and_custom_names_become_static_and_the_rest_stays_shared() {
        let block = bytes::Bytes::from_static(
            b"text/css; charset=interned-testDate-not-internedx-intern-1",
        );
        let shared = |r: std::ops::Range<usize>| HeaderValue::from_maybe_shared(block.slice(r));
        let mut map = HeaderMap::new();
        let mut ct = shared(0..31).unwrap();
        ct.set_sensitive(true);
        map.insert(header::DATE, shared(31..48).unwrap());
        map.insert(header::CONTENT_TYPE, ct);
        let custom = HeaderName::from_bytes(b"x-intern-test").unwrap();
        map.append(custom.clone(), shared(48..58).unwrap());
        map.append(header::DATE, HeaderValue::from_static("second"));

        let out = interned(&map);
        // The same lines, in the same order.
        let lines = |m: &HeaderMap| {
            m.iter()
                .map(|(n, v)| (n.clone(), v.clone(), v.is_sensitive()))
                .collect::<Vec<_>>()
        };
        assert_eq!(lines(&out), lines(&map));
        // The interned value no longer points into the head's buffer; the others still do.
        let inside = |v: &HeaderValue| block.as_ptr_range().contains(&v.as_bytes().as_ptr());
        assert!(!inside(&out[header::CONTENT_TYPE]));
        assert!(inside(&out[header::DATE]));
        assert!(inside(&out[&custom]));
        // The custom name is a static copy: a second map gets the same text.
        let again = interned(&map);
        let name = |m: &HeaderMap| m.keys().nth(2).unwrap().as_str().as_ptr();
        assert_eq!(name(&again), name(&out));
        assert_ne!(name(&out), custom.as_str().as_ptr());
        assert_eq!(
            again[header::CONTENT_TYPE].as_bytes().as_ptr(),
            out[header::CONTENT_TYPE].as_bytes().as_ptr()
        );
    }

    #[test]
    fn the_table_stops_growing_at_its_bounds() {
        let mut table = Table {
            values: HashSet::new(),
            bytes: 0,
        };
        assert!(table.get_or_insert(&[b'a'; MAX_LEN + 1]).is_none());
        for i in 0..MAX_VALUES {
            assert!(table.get_or_insert(format!("v{i}").as_bytes()).is_some());
        }
        assert!(table.get_or_insert(b"one more").is_none());
        // Values already there are still found.
        assert!(table.get_or_insert(b"v7").is_some());
        let mut table = Table {
            values: HashSet::new(),
            bytes: 0,
        };
        let big = vec![b'b'; MAX_LEN];
        let mut taken = 0;
        for i in 0.. {
            let mut v = big.clone();
            v[..8].copy_from_slice(&(i as u64).to_le_bytes());
            if table.get_or_insert(&v).is_none() {
                break;
            }
            taken += v.len();
        }
        assert!(taken <= MAX_BYTES && taken + MAX_LEN > MAX_BYTES, "{taken}");
    }
}
