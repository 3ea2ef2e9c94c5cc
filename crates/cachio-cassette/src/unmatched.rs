//! The answer to a request a replaying cassette has no recording for.

use std::fmt;

use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The field naming the request a replaying cassette had no recording for.
pub const UNMATCHED: HeaderName = HeaderName::from_static("cassette-unmatched");
/// The fields listing the recorded URLs closest to it, one line each, closest first.
pub const CLOSEST: HeaderName = HeaderName::from_static("cassette-closest");

/// A request a cassette in [`Mode::Replay`](crate::Mode::Replay) has no recording for.
///
/// It is answered with a `504 Gateway Timeout` (never the network) whose body names the method
/// and URL and lists the closest recorded URLs, and whose `cassette-unmatched` and
/// `cassette-closest` fields carry the same: [`Unmatched::from_response`] reads them back through
/// a [`CacheLayer`](cachio_tower::CacheLayer), `cachio::Client` or the reqwest middleware alike.
/// (The answer is a stored entry as far as the layer is concerned, so the layer adds its own
/// `Cache-Status` after the cassette's.) A resource that varies, asked with request fields no
/// recording of it matches, gets the layer's plain `504` instead: the cassette cannot tell which
/// fields were asked for.
///
/// # Example
///
/// ```
/// use cachio_cassette::Unmatched;
///
/// let res = http::Response::builder()
///     .status(504)
///     .header("cassette-unmatched", "GET http://127.0.0.1:8080/users/9")
///     .header("cassette-closest", "http://127.0.0.1:8080/users/1")
///     .body(())
///     .unwrap();
/// let unmatched = Unmatched::from_response(&res).expect("a replay miss");
/// assert_eq!(unmatched.method, http::Method::GET);
/// assert_eq!(unmatched.url, "http://127.0.0.1:8080/users/9");
/// assert_eq!(unmatched.closest, ["http://127.0.0.1:8080/users/1"]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Unmatched {
    /// The request's method (a cassette answers `GET` and `HEAD` from `GET` recordings).
    pub method: http::Method,
    /// The request's URL (its store key).
    pub url: String,
    /// The recorded URLs closest to it: those of the same host first, then by edit distance.
    pub closest: Vec<String>,
}

impl Unmatched {
    /// Reads the fields of a replay miss from a response; `None` for any other response.
    pub fn from_response<B>(res: &http::Response<B>) -> Option<Self> {
        Self::from_headers(res.headers())
    }

    /// Reads the fields of a replay miss; `None` when they are not there.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let line = headers.get(UNMATCHED)?.to_str().ok()?;
        let (method, url) = line.split_once(' ')?;
        Some(Self {
            method: method.parse().ok()?,
            url: url.to_owned(),
            closest: headers
                .get_all(CLOSEST)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_owned))
                .collect(),
        })
    }

    /// The fields that carry it.
    pub(crate) fn headers(&self) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        h.insert(
            http::header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        );
        h.insert(
            HeaderName::from_static("cache-status"),
            HeaderValue::from_static("cassette; fwd=uri-miss; detail=unmatched"),
        );
        h.insert(
            UNMATCHED,
            header_value(&format!("{} {}", self.method, self.url)),
        );
        for url in &self.closest {
            h.append(CLOSEST, header_value(url));
        }
        h
    }
}

/// `s` as a field value, with any character a field cannot hold replaced by `?`.
fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or_else(|_| {
        let clean: String = s
            .chars()
            .map(|c| {
                if c.is_ascii_graphic() || c == ' ' {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        HeaderValue::from_str(&clean).unwrap_or(HeaderValue::from_static("?"))
    })
}

impl fmt::Display for Unmatched {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "no recording for {} {}", self.method, self.url)?;
        if self.closest.is_empty() {
            writeln!(f, "the cassette has no recordings")
        } else {
            writeln!(f, "closest recorded URLs:")?;
            for url in &self.closest {
                writeln!(f, "  {url}")?;
            }
            Ok(())
        }
    }
}

impl std::error::Error for Unmatched {}

/// The host of a URL, if it has one.
fn host(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    Some(rest.split(['/', '?', '#']).next().unwrap_or(rest))
}

/// The edit distance between `a` and `b` (Levenshtein, over bytes).
fn distance(a: &[u8], b: &[u8]) -> usize {
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// The `n` URLs of `recorded` closest to `url`: the same host first, then by edit distance,
/// then in alphabetical order.
pub(crate) fn closest(
    url: &str,
    recorded: impl IntoIterator<Item = String>,
    n: usize,
) -> Vec<String> {
    let target_host = host(url);
    let mut scored: Vec<(bool, usize, String)> = recorded
        .into_iter()
        .map(|u| {
            let other_host = host(&u) != target_host;
            (other_host, distance(url.as_bytes(), u.as_bytes()), u)
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.2 == b.2);
    scored.into_iter().take(n).map(|(_, _, u)| u).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_host_comes_first_then_the_nearest() {
        let recorded = [
            "http://a.test/users/10",
            "http://b.test/users/1",
            "http://a.test/orders",
            "http://a.test/users/1",
        ]
        .map(str::to_owned);
        assert_eq!(
            closest("http://a.test/users/2", recorded, 3),
            [
                "http://a.test/users/1",
                "http://a.test/users/10",
                "http://a.test/orders"
            ]
        );
        assert_eq!(distance(b"kitten", b"sitting"), 3);
    }

    #[test]
    fn headers_read_back() {
        let u = Unmatched {
            method: http::Method::GET,
            url: "http://a.test/x".into(),
            closest: vec!["http://a.test/y".into(), "http://a.test/z".into()],
        };
        assert_eq!(Unmatched::from_headers(&u.headers()), Some(u.clone()));
        assert!(
            u.to_string()
                .contains("no recording for GET http://a.test/x")
        );
        assert_eq!(Unmatched::from_headers(&HeaderMap::new()), None);
    }
}
