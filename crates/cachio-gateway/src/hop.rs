//! Hop-by-hop header fields (RFC 9110 §7.6.1) and `Via` (§7.6.3).

use http::Version;
use http::header::HeaderValue;

/// Removes the hop-by-hop fields from `headers`: `Connection` and every field it lists,
/// `Keep-Alive`, `Proxy-Connection`, `TE`, `Transfer-Encoding`, `Upgrade` and `Trailer`.
pub(crate) use cachio_core::backend::hop::strip;

/// The `Via` values this proxy appends, one per protocol version it receives.
#[derive(Clone, Debug)]
pub(crate) struct Via {
    http10: HeaderValue,
    http11: HeaderValue,
    http2: HeaderValue,
}

impl Via {
    /// `Via` values naming this proxy `pseudonym` (RFC 9110 §7.6.3).
    pub(crate) fn new(pseudonym: &str) -> Self {
        let value = |version: &str| {
            HeaderValue::from_str(&format!("{version} {pseudonym}"))
                .unwrap_or_else(|_| HeaderValue::from_static("1.1 cachio"))
        };
        Self {
            http10: value("1.0"),
            http11: value("1.1"),
            http2: value("2"),
        }
    }

    /// The value for a message received with `version`.
    pub(crate) fn for_version(&self, version: Version) -> HeaderValue {
        match version {
            Version::HTTP_09 | Version::HTTP_10 => self.http10.clone(),
            Version::HTTP_2 | Version::HTTP_3 => self.http2.clone(),
            _ => self.http11.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HeaderMap, HeaderName};

    #[test]
    fn strips_listed_and_standard_hop_by_hop_fields() {
        let mut h = HeaderMap::new();
        for (n, v) in [
            ("connection", "close, x-hop"),
            ("x-hop", "1"),
            ("keep-alive", "timeout=5"),
            ("proxy-connection", "keep-alive"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("trailer", "x-t"),
            ("x-end", "kept"),
            ("proxy-authorization", "kept"),
        ] {
            h.append(HeaderName::from_static(n), HeaderValue::from_static(v));
        }
        strip(&mut h);
        let left: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(left, ["x-end", "proxy-authorization"]);
    }

    #[test]
    fn via_names_the_received_protocol() {
        let via = Via::new("cachio");
        assert_eq!(via.for_version(Version::HTTP_11), "1.1 cachio");
        assert_eq!(via.for_version(Version::HTTP_2), "2 cachio");
        assert_eq!(via.for_version(Version::HTTP_10), "1.0 cachio");
    }
}
