//! The files of a cassette: their names, and the JSON that holds one entry's head.

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cachio_core::backend::{from_micros, micros, stable_hash};
use cachio_core::meta::{Meta, ResponseMeta, VaryIndex, parse_http_date};
use cachio_core::policy::vary::vary_names;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Version};
use serde::{Deserialize, Serialize};

use crate::redact::Redact;

/// One entry's file. Fields are written in the order they are declared here.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct EntryFile {
    pub(crate) request: RequestPart,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) response: Option<ResponsePart>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) variants: Option<VariantsPart>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct RequestPart {
    pub(crate) method: String,
    pub(crate) url: String,
    /// For an entry of a resource that varies: the rest of its key (`v<epoch>:<hash>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) variant: Option<String>,
    /// The request fields the response's `Vary` selects, as `name: value` lines.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) headers: Vec<String>,
    /// The selected values in the order of `Vary`, written only when they do not line up with
    /// the fields the response's `Vary` names (metadata made by hand).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) vary_values: Option<Vec<Option<String>>>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct ResponsePart {
    pub(crate) status: u16,
    pub(crate) version: String,
    /// Every stored field line in order, as `name: value`.
    pub(crate) headers: Vec<String>,
    /// The body file beside this one; absent for an empty body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) body: Option<BodyPart>,
    /// The request and response times in microseconds since the epoch, written only for a
    /// response without a valid `Date` (with one, both are its `Date`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) times_us: Option<[i64; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) ttl_override_ms: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct BodyPart {
    pub(crate) file: String,
    pub(crate) length: u64,
}

#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct VariantsPart {
    /// The request fields the resource varies on.
    pub(crate) vary: Vec<String>,
    pub(crate) epoch: u64,
    /// The stored variants' hashes, oldest first, in hexadecimal.
    pub(crate) hashes: Vec<String>,
}

/// A key split into the primary key (a URL) and, for a variant, the rest after the NUL byte.
pub(crate) fn split_key(key: &str) -> (&str, Option<&str>) {
    match key.split_once('\0') {
        Some((primary, rest)) => (primary, Some(rest)),
        None => (key, None),
    }
}

/// The file name of `key`'s entry without its extension: the host and port, a slug of the path,
/// a short hash of the primary key; and for a variant, its hash.
pub(crate) fn stem(key: &str) -> String {
    let (primary, variant) = split_key(key);
    let mut out = String::new();
    let rest = match primary.parse::<http::Uri>() {
        Ok(uri) if uri.authority().is_some() => {
            let authority = uri.authority().map(|a| a.as_str()).unwrap_or_default();
            push_slug(
                &mut out,
                authority.rsplit('@').next().unwrap_or_default(),
                64,
            );
            out.push_str("--");
            uri.path_and_query().map_or("/", |p| p.as_str()).to_owned()
        }
        _ => primary.to_owned(),
    };
    push_slug(&mut out, &rest, 60);
    if out.is_empty() || out.ends_with("--") {
        out.push_str("root");
    }
    let _ = write!(out, "-{:012x}", stable_hash(primary) & 0xffff_ffff_ffff);
    if let Some(variant) = variant {
        // `v<epoch>:<hash>`: the hash names the variant; the epoch is checked on reading.
        let hash = variant
            .rsplit_once(':')
            .map(|(_, h)| h)
            .filter(|h| h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .map_or_else(|| format!("{:016x}", stable_hash(variant)), str::to_owned);
        let _ = write!(out, ".{hash}");
    }
    out
}

/// Appends the letters and digits of `s` (lowercased), every other run as one `-`, at most `max`
/// characters.
fn push_slug(out: &mut String, s: &str, max: usize) {
    let start = out.len();
    let mut dash = false;
    for c in s.chars() {
        if out.len() - start >= max {
            break;
        }
        if c.is_ascii_alphanumeric() || c == '.' || c == '_' {
            if dash && out.len() > start {
                out.push('-');
            }
            dash = false;
            out.push(c.to_ascii_lowercase());
        } else if c == ':' && out.len() > start && !dash {
            out.push('_');
        } else {
            dash = true;
        }
    }
}

/// A header value as text: each byte one character (ISO-8859-1), so any value round-trips.
pub(crate) fn value_text(v: &[u8]) -> String {
    v.iter().map(|&b| char::from(b)).collect()
}

/// The bytes of a value written by [`value_text`]; a character past U+00FF (typed into the file
/// by hand) is taken as its UTF-8 bytes.
fn value_bytes(s: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(s.len());
    for c in s.chars() {
        match u8::try_from(u32::from(c)) {
            Ok(b) => out.push(b),
            Err(_) => out.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
        }
    }
    out
}

fn line(name: &HeaderName, value: &HeaderValue) -> String {
    format!("{}: {}", name.as_str(), value_text(value.as_bytes()))
}

fn parse_line(line: &str) -> Result<(HeaderName, HeaderValue), String> {
    let (name, value) = line
        .split_once(':')
        .ok_or_else(|| format!("header line without a colon: {line:?}"))?;
    let value = value.strip_prefix(' ').unwrap_or(value);
    let name = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("invalid header name {name:?}"))?;
    let value = HeaderValue::from_bytes(&value_bytes(value))
        .map_err(|_| format!("invalid value of header {name}"))?;
    Ok((name, value))
}

fn parse_lines(lines: &[String]) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::with_capacity(lines.len());
    for l in lines {
        let (name, value) = parse_line(l)?;
        map.append(name, value);
    }
    Ok(map)
}

fn version_text(v: Version) -> &'static str {
    match v {
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

fn parse_version(s: &str) -> Result<Version, String> {
    Ok(match s {
        "HTTP/0.9" => Version::HTTP_09,
        "HTTP/1.0" => Version::HTTP_10,
        "HTTP/1.1" => Version::HTTP_11,
        "HTTP/2" | "HTTP/2.0" => Version::HTTP_2,
        "HTTP/3" | "HTTP/3.0" => Version::HTTP_3,
        _ => return Err(format!("unknown HTTP version {s:?}")),
    })
}

/// The `Date` of `headers` when it is valid.
fn date_of(headers: &HeaderMap) -> Option<SystemTime> {
    headers.get(header::DATE).and_then(parse_http_date)
}

/// The file for `meta` stored under `key`, redacted; `body` is the body file, if any.
pub(crate) fn to_file(
    key: &str,
    meta: &Meta,
    body: Option<BodyPart>,
    redact: &Redact,
) -> Result<EntryFile, String> {
    let (primary, variant) = split_key(key);
    let mut request = RequestPart {
        method: "GET".to_owned(),
        url: primary.to_owned(),
        variant: variant.map(str::to_owned),
        headers: Vec::new(),
        vary_values: None,
    };
    match meta {
        Meta::Response(r) => {
            let mut headers = r.headers().clone();
            let names = vary_names(&headers).unwrap_or_default();
            let values = r.vary_values();
            let mut selected = HeaderMap::new();
            let lined_up = names.len() == values.len();
            if lined_up {
                for (name, value) in names.iter().zip(values) {
                    if let Some(value) = value {
                        selected.append(name.clone(), value.clone());
                    }
                }
            }
            let asked = selected.clone();
            redact.apply(primary, &mut selected, &mut headers);
            if selected != asked {
                // Its name and its place in the resource's list of variants derive from the
                // values, and a recording with other values could never be replayed.
                return Err(
                    "the response varies on a redacted request field: not recorded".to_owned(),
                );
            }
            if lined_up {
                request.headers = names
                    .iter()
                    .filter_map(|n| selected.get(n).map(|v| line(n, v)))
                    .collect();
            } else {
                request.vary_values = Some(
                    values
                        .iter()
                        .map(|v| v.as_ref().map(|v| value_text(v.as_bytes())))
                        .collect(),
                );
            }
            let times_us = match date_of(&headers) {
                Some(_) => None,
                None => Some([micros(r.request_time()), micros(r.response_time())]),
            };
            let ttl_override_ms = r
                .ttl_override()
                .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX));
            Ok(EntryFile {
                request,
                response: Some(ResponsePart {
                    status: r.status().as_u16(),
                    version: version_text(r.version()).to_owned(),
                    headers: headers.iter().map(|(n, v)| line(n, v)).collect(),
                    body,
                    times_us,
                    ttl_override_ms,
                }),
                variants: None,
            })
        }
        Meta::Variants(index) => Ok(EntryFile {
            request,
            response: None,
            variants: Some(VariantsPart {
                vary: index.names.iter().map(|n| n.as_str().to_owned()).collect(),
                epoch: index.epoch,
                hashes: index.variants.iter().map(|h| format!("{h:016x}")).collect(),
            }),
        }),
    }
}

impl EntryFile {
    /// The key this file is the entry of.
    pub(crate) fn key(&self) -> String {
        match &self.request.variant {
            Some(v) => format!("{}\0{v}", self.request.url),
            None => self.request.url.clone(),
        }
    }

    /// The stored metadata.
    pub(crate) fn meta(&self) -> Result<Meta, String> {
        match (&self.response, &self.variants) {
            (Some(r), None) => {
                let status = StatusCode::from_u16(r.status)
                    .map_err(|_| format!("invalid status {}", r.status))?;
                let headers = parse_lines(&r.headers)?;
                let selected = parse_lines(&self.request.headers)?;
                let values = match &self.request.vary_values {
                    Some(values) => values
                        .iter()
                        .map(|v| {
                            v.as_ref()
                                .map(|v| HeaderValue::from_bytes(&value_bytes(v)))
                                .transpose()
                                .map_err(|_| "an invalid Vary value".to_owned())
                        })
                        .collect::<Result<_, _>>()?,
                    None => vary_names(&headers)
                        .unwrap_or_default()
                        .iter()
                        .map(|n| selected.get(n).cloned())
                        .collect(),
                };
                let (request_time, response_time) = match (r.times_us, date_of(&headers)) {
                    (Some([a, b]), _) => (from_micros(a), from_micros(b)),
                    (None, Some(date)) => (date, date),
                    (None, None) => (UNIX_EPOCH, UNIX_EPOCH),
                };
                let meta = ResponseMeta::new(
                    status,
                    parse_version(&r.version)?,
                    headers,
                    values,
                    request_time,
                    response_time,
                )
                .with_ttl_override(r.ttl_override_ms.map(Duration::from_millis));
                Ok(Meta::Response(meta))
            }
            (None, Some(v)) => {
                let names = v
                    .vary
                    .iter()
                    .map(|n| {
                        HeaderName::from_bytes(n.as_bytes())
                            .map_err(|_| format!("invalid field name {n:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let mut index = VaryIndex::new(names, v.epoch);
                index.variants = v
                    .hashes
                    .iter()
                    .map(|h| u64::from_str_radix(h, 16).map_err(|_| format!("invalid hash {h:?}")))
                    .collect::<Result<_, _>>()?;
                Ok(Meta::Variants(index))
            }
            _ => Err("an entry holds either a response or variants".to_owned()),
        }
    }

    /// The body file and its length, for a response with a body.
    pub(crate) fn body(&self) -> Option<&BodyPart> {
        self.response.as_ref().and_then(|r| r.body.as_ref())
    }
}

/// The text of a file: pretty-printed JSON and a final newline.
pub(crate) fn render(file: &EntryFile) -> Vec<u8> {
    let mut out = serde_json::to_vec_pretty(file).unwrap_or_default();
    out.push(b'\n');
    out
}

/// Reads a file's text.
pub(crate) fn parse(bytes: &[u8]) -> Result<EntryFile, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// Whether `name` may be a body file of this directory: a plain name, no path.
pub(crate) fn plain_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0']) && name != ".."
}

/// The metadata as shared.
pub(crate) fn shared(meta: Meta) -> Arc<Meta> {
    Arc::new(meta)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_readable_and_stable() {
        let a = stem("http://127.0.0.1:8080/api/users/7?fields=name");
        assert!(
            a.starts_with("127.0.0.1_8080--api-users-7-fields-name-"),
            "{a}"
        );
        assert_eq!(a, stem("http://127.0.0.1:8080/api/users/7?fields=name"));
        assert_ne!(a, stem("http://127.0.0.1:8080/api/users/7?fields=Name"));
        assert!(stem("https://example.com/").starts_with("example.com--root-"));
        let v = stem("https://example.com/\0v00000000000000aa:00000000000000bb");
        assert!(v.ends_with(".00000000000000bb"), "{v}");
        assert!(stem("k").starts_with("k-"));
        assert!(stem("").starts_with("root-"));
    }

    #[test]
    fn header_values_round_trip_as_latin1() {
        let raw = [b'a', 0xe9, b' ', 0xff];
        let v = HeaderValue::from_bytes(&raw).unwrap();
        let l = line(&header::CONTENT_TYPE, &v);
        assert_eq!(parse_line(&l).unwrap().1, v);
        assert_eq!(parse_line("x-a:  two").unwrap().1, " two");
        assert!(parse_line("no colon").is_err());
    }
}
