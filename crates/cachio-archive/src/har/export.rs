//! Writing a store as a HAR, an entry at a time, bodies streamed.

use std::io::Write;
use std::time::SystemTime;

use cachio_core::meta::{Meta, ResponseMeta};
use cachio_core::store::Store;
use http::{HeaderMap, header};
use serde::Serialize;

use super::{ENCODED_BODY, KEY_FIELD, TTL_FIELD, content_encoded, textual, version_str};
use crate::catalog::{StoredResponse, catalog, read_body};
use crate::stream::{Base64Writer, Utf8Check, write_json_str};
use crate::{ArchiveError, ExportSummary};

#[derive(Serialize)]
struct NameValue<'a> {
    name: &'a str,
    value: std::borrow::Cow<'a, str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Request<'a> {
    method: &'static str,
    url: &'a str,
    http_version: &'static str,
    cookies: Vec<NameValue<'a>>,
    headers: Vec<NameValue<'a>>,
    query_string: Vec<NameValue<'a>>,
    headers_size: i64,
    body_size: i64,
}

fn lines(map: &HeaderMap) -> Vec<NameValue<'_>> {
    map.iter()
        .map(|(n, v)| NameValue {
            name: n.as_str(),
            value: String::from_utf8_lossy(v.as_bytes()),
        })
        .collect()
}

/// `name=value` pairs of a `Cookie` or `Set-Cookie` value (for `Set-Cookie`, the first pair:
/// the attributes after it are not cookies).
fn cookies<'a>(
    values: impl Iterator<Item = &'a http::HeaderValue>,
    set: bool,
) -> Vec<NameValue<'a>> {
    let mut out = Vec::new();
    for v in values {
        let Ok(v) = v.to_str() else { continue };
        let pairs: Box<dyn Iterator<Item = &str>> = if set {
            Box::new(v.split(';').take(1))
        } else {
            Box::new(v.split(';'))
        };
        for pair in pairs {
            if let Some((name, value)) = pair.trim().split_once('=') {
                out.push(NameValue {
                    name: name.trim(),
                    value: value.trim().into(),
                });
            }
        }
    }
    out
}

fn query_of(url: &str) -> Vec<NameValue<'_>> {
    let query = url
        .split_once('?')
        .map(|(_, q)| q.split_once('#').map_or(q, |(q, _)| q));
    query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            NameValue {
                name,
                value: value.into(),
            }
        })
        .collect()
}

/// A time as HAR writes it (ISO 8601, UTC, to the microsecond).
pub(crate) fn iso_time(t: SystemTime) -> String {
    use time::format_description::well_known::Rfc3339;
    time::OffsetDateTime::from(t)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

/// Milliseconds from `a` to `b` (0 when `b` is before `a`), to the microsecond.
fn millis_between(a: SystemTime, b: SystemTime) -> f64 {
    let micros = b.duration_since(a).map_or(0, |d| d.as_micros());
    micros as f64 / 1000.0
}

/// Whether the body may go out as text, and whether its bytes must be looked at for that: a
/// textual type may (if it is UTF-8), a body without a type may if it is UTF-8 without control
/// characters; a content-coded body or another type goes out in base64.
fn may_be_text(meta: &ResponseMeta) -> Option<bool> {
    if content_encoded(meta.headers()) {
        return None;
    }
    match meta.headers().get(header::CONTENT_TYPE) {
        None => Some(true),
        Some(v) => textual(v.to_str().unwrap_or("")).then_some(false),
    }
}

/// Writes every response `store` holds to `out` as a HAR 1.2 log and gives what it wrote.
///
/// Entries come in a stable order (by URL, then by the request values that selected each
/// variant), one per line, so that two exports of the same entries are byte for byte the same
/// and a diff of two exports shows the entries that changed. Each body is read from the store
/// and written as it streams: as text when it is UTF-8, not content-coded, and of a textual
/// `Content-Type` (or of none, and free of control characters), read twice for that (once to
/// check it, once to write it); all others in base64. A content-coded body is written as stored (still coded), marked with
/// `content._encodedBody: true` so that [`import_har`](super::import_har) keeps its
/// `Content-Encoding`. `progress` is called with (entries written, entries in all) after each
/// entry.
///
/// `out` is written with blocking calls: give it a buffered file, or a `Vec<u8>`.
///
/// # Errors
///
/// [`ArchiveError::Store`] for a store that fails or cannot list its entries,
/// [`ArchiveError::Io`] when `out` fails, [`ArchiveError::Changed`] when an entry is written
/// or removed while it is exported.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use std::time::SystemTime;
/// use bytes::Bytes;
/// use cachio_core::{Meta, Policy, Store, StoreWriter};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = cachio_moka::MokaStore::new(1 << 20);
/// let mut head = http::HeaderMap::new();
/// head.insert("content-type", "text/plain".parse()?);
/// let now = SystemTime::now();
/// let meta = Policy::private().to_meta(&http::HeaderMap::new(), http::StatusCode::OK, http::Version::HTTP_11, &head, now, now);
/// let mut w = store.begin("https://example.com/hello")?;
/// w.append(Bytes::from_static(b"hello"))?;
/// w.commit(Arc::new(Meta::Response(meta)), None).await?;
///
/// let mut har = Vec::new();
/// let summary = cachio_archive::har::export_har(&store, &mut har, |_, _| {}).await?;
/// assert_eq!(summary.entries, 1);
/// let json: serde_json::Value = serde_json::from_slice(&har)?;
/// let entry = &json["log"]["entries"][0];
/// assert_eq!(entry["request"]["url"], "https://example.com/hello");
/// assert_eq!(entry["response"]["content"]["text"], "hello");
/// # Ok(())
/// # }
/// ```
pub async fn export_har<S: Store, W: Write>(
    store: &S,
    mut out: W,
    mut progress: impl FnMut(usize, usize),
) -> Result<ExportSummary, ArchiveError> {
    let listed = catalog(store).await?;
    let total = listed.responses.len();
    write!(
        out,
        "{{\"log\":{{\"version\":\"1.2\",\"creator\":{{\"name\":\"cachio\",\"version\":\"{}\"}},\"entries\":[",
        env!("CARGO_PKG_VERSION")
    )?;
    let mut summary = ExportSummary::default();
    for (i, entry) in listed.responses.iter().enumerate() {
        out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        summary.body_bytes += write_entry(store, entry, &mut out).await?;
        summary.entries += 1;
        progress(i + 1, total);
    }
    out.write_all(b"\n]}}\n")?;
    out.flush()?;
    Ok(summary)
}

/// Whether the body of `entry` goes out as JSON text: UTF-8, with a textual type or with no
/// type and no control characters (the body is read once to tell).
async fn body_is_text<S: Store>(
    store: &S,
    entry: &StoredResponse,
    expected: &Meta,
) -> Result<bool, ArchiveError> {
    let Some(untyped) = may_be_text(&entry.meta) else {
        return Ok(false);
    };
    let mut check = Utf8Check::default();
    let mut control = false;
    read_body(store, &entry.key, Some(expected), |c| {
        check.push(c);
        control |= untyped
            && c.iter()
                .any(|&b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0x7f);
        Ok(())
    })
    .await?;
    Ok(check.is_utf8() && !control)
}

/// Streams the body of `entry` into `out` as the inside of a JSON string, as text or base64;
/// gives its length.
async fn write_body<S: Store, W: Write>(
    store: &S,
    entry: &StoredResponse,
    expected: &Meta,
    text: bool,
    out: &mut W,
) -> Result<u64, ArchiveError> {
    let mut len = 0u64;
    let mut b64 = Base64Writer::default();
    {
        let out = &mut *out;
        read_body(store, &entry.key, Some(expected), |chunk| {
            len += chunk.len() as u64;
            if text {
                write_json_str(out, chunk)?;
            } else {
                b64.push(out, chunk)?;
            }
            Ok(())
        })
        .await?;
    }
    if !text {
        b64.finish(out)?;
    }
    Ok(len)
}

/// Writes one entry; gives its body length.
async fn write_entry<S: Store, W: Write>(
    store: &S,
    entry: &StoredResponse,
    out: &mut W,
) -> Result<u64, ArchiveError> {
    let meta = &entry.meta;
    let expected = Meta::Response(meta.clone());
    let text = body_is_text(store, entry, &expected).await?;

    let url = entry.url();
    let version = version_str(meta.version());
    let request_headers = entry.request_headers();
    let request = Request {
        method: "GET",
        url,
        http_version: version,
        cookies: cookies(request_headers.get_all(header::COOKIE).iter(), false),
        headers: lines(&request_headers),
        query_string: query_of(url),
        headers_size: -1,
        body_size: 0,
    };
    let wait = millis_between(meta.request_time(), meta.response_time());
    write!(
        out,
        "{{\"startedDateTime\":\"{}\",\"time\":",
        iso_time(meta.request_time())
    )?;
    serde_json::to_writer(&mut *out, &wait).map_err(std::io::Error::from)?;
    if super::import::key_for_url(url).as_deref() != Some(entry.primary_key()) {
        write!(out, ",\"{KEY_FIELD}\":")?;
        serde_json::to_writer(&mut *out, entry.primary_key()).map_err(std::io::Error::from)?;
    }
    if let Some(ttl) = meta.ttl_override() {
        write!(out, ",\"{TTL_FIELD}\":{}", ttl.as_millis())?;
    }
    out.write_all(b",\"request\":")?;
    serde_json::to_writer(&mut *out, &request).map_err(std::io::Error::from)?;

    let headers = meta.headers();
    let status = meta.status();
    write!(
        out,
        ",\"response\":{{\"status\":{},\"statusText\":",
        status.as_u16()
    )?;
    serde_json::to_writer(&mut *out, status.canonical_reason().unwrap_or(""))
        .map_err(std::io::Error::from)?;
    write!(out, ",\"httpVersion\":\"{version}\",\"cookies\":")?;
    serde_json::to_writer(
        &mut *out,
        &cookies(headers.get_all(header::SET_COOKIE).iter(), true),
    )
    .map_err(std::io::Error::from)?;
    out.write_all(b",\"headers\":")?;
    serde_json::to_writer(&mut *out, &lines(headers)).map_err(std::io::Error::from)?;
    let mime = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    out.write_all(b",\"content\":{\"mimeType\":")?;
    serde_json::to_writer(&mut *out, &mime).map_err(std::io::Error::from)?;
    if content_encoded(headers) {
        write!(out, ",\"{ENCODED_BODY}\":true")?;
    }
    if !text {
        out.write_all(b",\"encoding\":\"base64\"")?;
    }
    out.write_all(b",\"text\":\"")?;
    let len = write_body(store, entry, &expected, text, out).await?;
    write!(out, "\",\"size\":{len}}},\"redirectURL\":")?;
    let location = headers
        .get(header::LOCATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    serde_json::to_writer(&mut *out, &location).map_err(std::io::Error::from)?;
    write!(
        out,
        ",\"headersSize\":-1,\"bodySize\":{len}}},\"cache\":{{}},\"timings\":{{\"send\":0,\"wait\":"
    )?;
    serde_json::to_writer(&mut *out, &wait).map_err(std::io::Error::from)?;
    out.write_all(b",\"receive\":0}}")?;
    Ok(len)
}
