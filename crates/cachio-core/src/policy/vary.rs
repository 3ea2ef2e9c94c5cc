//! Secondary keys: matching a request against the `Vary` of a stored response (RFC 9111 §4.1).

use http::header::{ACCEPT_ENCODING, ACCEPT_LANGUAGE, HeaderMap, HeaderName, HeaderValue, VARY};

/// The request field names a response's `Vary` lists, lowercased and without duplicates, in order.
///
/// Returns `None` when `Vary` contains `*` (the response never matches a later request), and an
/// empty list when there is no `Vary`.
///
/// # Example
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use cachio_core::policy::vary::vary_names;
///
/// let mut h = HeaderMap::new();
/// h.append("vary", HeaderValue::from_static("Accept-Encoding, accept-language"));
/// h.append("vary", HeaderValue::from_static("ACCEPT-ENCODING"));
/// assert_eq!(vary_names(&h).unwrap(), ["accept-encoding", "accept-language"]);
/// ```
pub fn vary_names(headers: &HeaderMap) -> Option<Vec<HeaderName>> {
    let mut names: Vec<HeaderName> = Vec::new();
    for value in headers.get_all(VARY) {
        for item in value.as_bytes().split(|b| *b == b',') {
            let item = trim(item);
            if item.is_empty() {
                continue;
            }
            if item == b"*" {
                return None;
            }
            // HeaderName::from_bytes lowercases; an invalid token can never match a request field,
            // so the response can never be selected: treat it like `*`.
            let name = HeaderName::from_bytes(item).ok()?;
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Some(names)
}

/// The normalised value of request field `name` (RFC 9111 §4.1): all field lines combined with
/// `", "` (RFC 9110 §5.3), spaces and tabs around each comma-separated member removed, and empty
/// members dropped. `None` when the field is absent.
///
/// The members of `Accept-Language` and `Accept-Encoding`, whose language ranges, codings and
/// parameter names are case-insensitive (RFC 9110 §12.5.3, §12.5.4), are also lowercased and
/// lose the whitespace around `;` and `=`: `en-GB ; q=0.5` selects what `en-gb;q=0.5` does.
/// Their order is kept: a server may prefer the first of equally weighted members.
///
/// # Example
///
/// ```
/// use http::{HeaderMap, HeaderValue};
/// use cachio_core::policy::vary::normalize;
///
/// let mut a = HeaderMap::new();
/// a.append("accept-encoding", HeaderValue::from_static("gzip ,  br"));
/// let mut b = HeaderMap::new();
/// b.append("accept-encoding", HeaderValue::from_static("gzip"));
/// b.append("accept-encoding", HeaderValue::from_static("br"));
/// assert_eq!(normalize(&a, &http::header::ACCEPT_ENCODING), normalize(&b, &http::header::ACCEPT_ENCODING));
/// ```
pub fn normalize(headers: &HeaderMap, name: &HeaderName) -> Option<HeaderValue> {
    let mut all = headers.get_all(name).iter().peekable();
    all.peek()?;
    // Combine the field lines first (RFC 9110 §5.3), so that a quoted string is read the same
    // whether or not a sender split the field across lines.
    let mut combined: Vec<u8> = Vec::new();
    for (i, value) in all.enumerate() {
        if i > 0 {
            combined.extend_from_slice(b", ");
        }
        combined.extend_from_slice(value.as_bytes());
    }
    let folded = *name == ACCEPT_LANGUAGE || *name == ACCEPT_ENCODING;
    let mut out: Vec<u8> = Vec::with_capacity(combined.len());
    for member in split_members(&combined) {
        let member = trim(member);
        if member.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.extend_from_slice(b", ");
        }
        if folded {
            push_folded(&mut out, member);
        } else {
            out.extend_from_slice(member);
        }
    }
    // The input was a valid header value and we only removed bytes and added ", ".
    Some(HeaderValue::from_bytes(&out).unwrap_or_else(|_| HeaderValue::from_static("")))
}

/// The normalised values of every field in `names`, in order.
pub fn request_values(headers: &HeaderMap, names: &[HeaderName]) -> Vec<Option<HeaderValue>> {
    names.iter().map(|n| normalize(headers, n)).collect()
}

/// Whether a request whose fields are `headers` matches stored values `stored` for `names`.
pub fn matches(names: &[HeaderName], stored: &[Option<HeaderValue>], headers: &HeaderMap) -> bool {
    names.len() == stored.len()
        && names
            .iter()
            .zip(stored)
            .all(|(name, stored)| normalize(headers, name).as_ref() == stored.as_ref())
}

/// Splits on commas that are not inside a quoted string.
fn split_members(bytes: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    let mut cuts = Vec::new();
    for (i, b) in bytes.iter().enumerate() {
        if escaped {
            escaped = false;
            continue;
        }
        match b {
            b'\\' if in_quotes => escaped = true,
            b'"' => in_quotes = !in_quotes,
            b',' if !in_quotes => {
                cuts.push((start, i));
                start = i + 1;
            }
            _ => {}
        }
    }
    cuts.push((start, bytes.len()));
    cuts.into_iter().map(move |(a, b)| &bytes[a..b])
}

/// Appends `member` lowercased, without the spaces and tabs around its `;` and `=`.
fn push_folded(out: &mut Vec<u8>, member: &[u8]) {
    let lower = |s: &[u8]| s.iter().map(u8::to_ascii_lowercase).collect::<Vec<u8>>();
    for (i, param) in member.split(|&b| b == b';').enumerate() {
        if i > 0 {
            out.push(b';');
        }
        let param = trim(param);
        match param.iter().position(|&b| b == b'=') {
            Some(eq) => {
                out.extend(lower(trim(&param[..eq])));
                out.push(b'=');
                out.extend(lower(trim(&param[eq + 1..])));
            }
            None => out.extend(lower(param)),
        }
    }
}

fn trim(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}
