//! Invalidation (RFC 9111 §4.4): what a response to an unsafe request makes stale.

use http::header::{self, HeaderMap};
use http::{Method, StatusCode, Uri};

/// Whether a response to `method` with `status` invalidates stored responses (RFC 9111 §4.4): an
/// unsafe method (anything but GET, HEAD, OPTIONS, TRACE) and a non-error status (2xx or 3xx; a
/// 1xx is not a final response).
pub fn invalidates(method: &Method, status: StatusCode) -> bool {
    !is_safe(method) && (status.is_success() || status.is_redirection())
}

/// Whether a method is safe (RFC 9110 §9.2.1).
pub fn is_safe(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
    )
}

/// The URIs an unsafe request's non-error response invalidates (RFC 9111 §4.4): the target URI,
/// and the `Location` and `Content-Location` URIs when they have the same origin.
///
/// `target` must be absolute (scheme and authority); references in the response are resolved
/// against it as RFC 3986 §5.2 says (relative paths, `..` and `.` segments, query-only
/// references), and fragments are dropped.
pub fn invalidation_uris(target: &Uri, resp_headers: &HeaderMap) -> Vec<Uri> {
    let mut out = vec![target.clone()];
    for name in [header::LOCATION, header::CONTENT_LOCATION] {
        let Some(value) = resp_headers.get(&name).and_then(|v| v.to_str().ok()) else {
            continue;
        };
        let Some(uri) = resolve(target, value.trim()) else {
            continue;
        };
        if same_origin(target, &uri) && !out.contains(&uri) {
            out.push(uri);
        }
    }
    out
}

/// Resolves a URI reference against an absolute base (RFC 3986 §5.2.2).
///
/// Written here rather than taken from the `url` crate: `url` implements the WHATWG URL
/// Standard, which maps hosts through IDNA, percent-encodes and treats `\\` as `/` in `http` URLs,
/// so a resolved URI could differ from the key the same URI was stored under (made from the
/// `http::Uri` as received). This resolver does only RFC 3986 §5.2 (merge, dot segments) on
/// `http::Uri` parts, and is checked against every example of RFC 3986 §5.4 below.
fn resolve(base: &Uri, reference: &str) -> Option<Uri> {
    let reference = reference.split('#').next().unwrap_or("");
    let base_scheme = base.scheme_str().unwrap_or("http");
    let base_authority = base.authority()?.as_str();
    let (scheme, rest) = match split_scheme(reference) {
        Some((scheme, rest)) => (Some(scheme), rest),
        None => (None, reference),
    };
    let (authority, rest) = match rest.strip_prefix("//") {
        Some(r) => {
            let end = r.find(['/', '?']).unwrap_or(r.len());
            (Some(&r[..end]), &r[end..])
        }
        None => (None, rest),
    };
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let (scheme, authority, path, query) = if scheme.is_some() || authority.is_some() {
        (
            scheme.unwrap_or(base_scheme),
            authority.unwrap_or(""),
            remove_dot_segments(path),
            query,
        )
    } else if path.is_empty() {
        (
            base_scheme,
            base_authority,
            base.path().to_owned(),
            query.or(base.query()),
        )
    } else if path.starts_with('/') {
        (
            base_scheme,
            base_authority,
            remove_dot_segments(path),
            query,
        )
    } else {
        let base_path = base.path();
        let dir = &base_path[..base_path.rfind('/').map_or(0, |i| i + 1)];
        let merged = if dir.is_empty() {
            format!("/{path}")
        } else {
            format!("{dir}{path}")
        };
        (
            base_scheme,
            base_authority,
            remove_dot_segments(&merged),
            query,
        )
    };
    let path = if path.is_empty() {
        "/".to_owned()
    } else {
        path
    };
    let uri = match query {
        Some(q) => format!("{scheme}://{authority}{path}?{q}"),
        None => format!("{scheme}://{authority}{path}"),
    };
    uri.parse().ok()
}

/// Splits `scheme:rest` when the reference starts with a scheme (RFC 3986 §3.1).
fn split_scheme(reference: &str) -> Option<(&str, &str)> {
    let colon = reference.find(':')?;
    let scheme = &reference[..colon];
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
    .then(|| (scheme, &reference[colon + 1..]))
}

/// Removes `.` and `..` segments from a path (RFC 3986 §5.2.4).
fn remove_dot_segments(path: &str) -> String {
    let segments: Vec<&str> = path.split('/').collect();
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    let last = segments.len() - 1;
    for (i, segment) in segments.iter().enumerate() {
        match *segment {
            "." => {
                if i == last {
                    out.push("");
                }
            }
            ".." => {
                if out.len() > 1 {
                    out.pop();
                }
                if i == last {
                    out.push("");
                }
            }
            s => out.push(s),
        }
    }
    let joined = out.join("/");
    if path.starts_with('/') && !joined.starts_with('/') {
        format!("/{joined}")
    } else {
        joined
    }
}

fn same_origin(a: &Uri, b: &Uri) -> bool {
    fn port(u: &Uri) -> Option<u16> {
        u.port_u16().or(match u.scheme_str() {
            Some("https") => Some(443),
            Some("http") | None => Some(80),
            _ => None,
        })
    }
    a.scheme_str()
        .unwrap_or("http")
        .eq_ignore_ascii_case(b.scheme_str().unwrap_or("http"))
        && a.host()
            .zip(b.host())
            .is_some_and(|(x, y)| x.eq_ignore_ascii_case(y))
        && port(a) == port(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3986 §5.4.1 and §5.4.2: every example with an `http` result (`http:g`, whose strict
    /// result `http:g` has no authority, is left out).
    #[test]
    fn rfc3986_5_4_reference_resolution_examples() {
        let base: Uri = "http://a/b/c/d;p?q".parse().unwrap();
        let cases = [
            ("g", "http://a/b/c/g"),
            ("./g", "http://a/b/c/g"),
            ("g/", "http://a/b/c/g/"),
            ("/g", "http://a/g"),
            ("//g", "http://g/"),
            ("?y", "http://a/b/c/d;p?y"),
            ("g?y", "http://a/b/c/g?y"),
            ("#s", "http://a/b/c/d;p?q"),
            ("g#s", "http://a/b/c/g"),
            ("g?y#s", "http://a/b/c/g?y"),
            (";x", "http://a/b/c/;x"),
            ("g;x", "http://a/b/c/g;x"),
            ("g;x?y#s", "http://a/b/c/g;x?y"),
            ("", "http://a/b/c/d;p?q"),
            (".", "http://a/b/c/"),
            ("./", "http://a/b/c/"),
            ("..", "http://a/b/"),
            ("../", "http://a/b/"),
            ("../g", "http://a/b/g"),
            ("../..", "http://a/"),
            ("../../", "http://a/"),
            ("../../g", "http://a/g"),
            ("../../../g", "http://a/g"),
            ("../../../../g", "http://a/g"),
            ("/./g", "http://a/g"),
            ("/../g", "http://a/g"),
            ("g.", "http://a/b/c/g."),
            (".g", "http://a/b/c/.g"),
            ("g..", "http://a/b/c/g.."),
            ("..g", "http://a/b/c/..g"),
            ("./../g", "http://a/b/g"),
            ("./g/.", "http://a/b/c/g/"),
            ("g/./h", "http://a/b/c/g/h"),
            ("g/../h", "http://a/b/c/h"),
            ("g;x=1/./y", "http://a/b/c/g;x=1/y"),
            ("g;x=1/../y", "http://a/b/c/y"),
            ("g?y/./x", "http://a/b/c/g?y/./x"),
            ("g?y/../x", "http://a/b/c/g?y/../x"),
            ("g#s/./x", "http://a/b/c/g"),
            ("g#s/../x", "http://a/b/c/g"),
        ];
        for (reference, expected) in cases {
            let resolved = resolve(&base, reference).map(|u| u.to_string());
            assert_eq!(resolved.as_deref(), Some(expected), "{reference:?}");
        }
    }
}
