//! HAR 1.2, the HTTP Archive format of browsers' developer tools, mitmproxy, Charles and
//! Postman: [`export_har`] writes any store that can list its entries as a `.har`,
//! [`import_har`] loads a `.har` into any store, keyed and shaped as
//! `CacheLayer` stores what it fetches.
//!
//! # What an entry holds
//!
//! - `request`: `GET`, the URL, and as headers the request values the response's `Vary`
//!   selected (what the cache keeps of a request; other request headers are not stored).
//! - `response`: the status, the stored header lines in order (a field with several lines,
//!   `Set-Cookie` say, as several entries), the body in `content.text`: text for a UTF-8 body
//!   of a textual type, otherwise base64 with `content.encoding: "base64"`.
//! - `startedDateTime` is when the request was sent and `time` how long its response took: the
//!   two times freshness is computed from (RFC 9111 §4.2.3).
//! - Fields of cachio's own, which other tools ignore: `_cachioKey` when the cache key is not
//!   the one the URL gives (a gateway's site prefix, keyed headers), `_ttlOverride` (ms) when
//!   the entry carries an operator TTL, and `content._encodedBody: true` when the body is
//!   written as stored, still in its `Content-Encoding`.
//!
//! An export imported into an empty store and exported again gives the same bytes.
//!
//! # Content-Encoding
//!
//! A browser saves bodies decoded: `content.text` holds the bytes after decompression while
//! the headers still say `Content-Encoding: gzip`. Stored as they are, such an entry would be
//! served with a coding its body no longer has. So an imported entry whose headers name a
//! coding and whose content is not marked `_encodedBody` is stored without its
//! `Content-Encoding` field, and with a `Content-Length` of the decoded body when it had one.
//! A `Vary: Accept-Encoding` stays: the response still was selected by that request field.
//!
//! # Import
//!
//! The file is read twice, one entry at a time: a first pass checks every entry, and only
//! when all of them pass does a second one write them. Bad input is an [`ArchiveError`](crate::ArchiveError) naming
//! the entry by its index and URL, and leaves the store as it was: invalid JSON, an entry
//! without a request URL or a response, a body that is not valid base64 or whose length is
//! not its `content.size`, invalid header lines, an invalid date. A body larger than
//! [`ImportOptions::max_body_bytes`] (64 MiB unless set) or than the store accepts is
//! [`ArchiveError::TooLarge`](crate::ArchiveError::TooLarge). An import holds one entry in memory at a time (its body
//! decoded, and its JSON as it is parsed).
//!
//! Some entries are not errors but are not stored either, as a cache would not store them:
//! requests other than `GET`, responses the policy may not store (`no-store`, `206`, `304`,
//! ...), requests the browser never got an answer to (`status: 0`), bodies the file did not
//! save (`content.size` above 0 and no `text`). They are listed in
//! [`ImportSummary::skipped`] with the reason.
//!
//! Imported entries are committed without a time to live of the store's: they stay until the
//! store evicts them, and the layer decides their freshness from their times and headers when
//! it serves them (a recording made an hour ago is an hour old).

mod export;
pub(crate) use export::iso_time;
mod import;
mod walk;

pub use export::export_har;
pub use import::{DEFAULT_MAX_BODY_BYTES, ImportOptions, ImportSummary, Skipped, import_har};

use http::{HeaderMap, Version, header};

/// The entry field that carries a cache key the URL alone does not give.
const KEY_FIELD: &str = "_cachioKey";
/// The entry field that carries an operator TTL, in milliseconds.
const TTL_FIELD: &str = "_ttlOverride";
/// The content field that says the body is still in its `Content-Encoding`.
const ENCODED_BODY: &str = "_encodedBody";

/// How HAR names an HTTP version.
fn version_str(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2.0",
        Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
}

/// The version a HAR names, in the spellings tools use (`HTTP/1.1`, `http/2.0`, `h2`, `h3`);
/// HTTP/1.1 for anything else.
fn parse_version(s: &str) -> Version {
    match s.trim().to_ascii_lowercase().as_str() {
        "http/0.9" => Version::HTTP_09,
        "http/1.0" => Version::HTTP_10,
        "http/2" | "http/2.0" | "h2" | "h2c" => Version::HTTP_2,
        "http/3" | "http/3.0" | "h3" => Version::HTTP_3,
        _ => Version::HTTP_11,
    }
}

/// Whether a media type is text: `text/*`, JSON, XML, JavaScript, forms and their `+json`,
/// `+xml` kin.
fn textual(mime: &str) -> bool {
    let essence = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let Some((kind, sub)) = essence.split_once('/') else {
        return false;
    };
    kind == "text"
        || matches!(
            sub,
            "json"
                | "xml"
                | "javascript"
                | "ecmascript"
                | "x-javascript"
                | "x-www-form-urlencoded"
                | "graphql"
        )
        || sub.ends_with("+json")
        || sub.ends_with("+xml")
}

/// Whether the headers name a content coding (other than `identity`).
fn content_encoded(headers: &HeaderMap) -> bool {
    headers.get_all(header::CONTENT_ENCODING).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .map(<[u8]>::trim_ascii)
            .any(|c| !c.is_empty() && !c.eq_ignore_ascii_case(b"identity"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_in_every_spelling() {
        for (s, v) in [
            ("HTTP/1.1", Version::HTTP_11),
            ("http/2.0", Version::HTTP_2),
            ("h2", Version::HTTP_2),
            ("h3", Version::HTTP_3),
            ("HTTP/1.0", Version::HTTP_10),
            ("", Version::HTTP_11),
        ] {
            assert_eq!(parse_version(s), v, "{s}");
            assert_eq!(parse_version(version_str(v)), v);
        }
    }

    #[test]
    fn text_types() {
        for t in [
            "text/html; charset=utf-8",
            "application/json",
            "application/ld+json",
            "image/svg+xml",
        ] {
            assert!(textual(t), "{t}");
        }
        for t in ["image/png", "application/octet-stream", "", "font/woff2"] {
            assert!(!textual(t), "{t}");
        }
    }
}
