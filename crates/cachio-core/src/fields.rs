//! The header field lines of a stored response in a compact form.
//!
//! A [`HeaderMap`] takes about 100 bytes per line besides the name and value bytes (its bucket, the
//! value's handle, the hash table), more than a small response's whole header section. [`Fields`]
//! keeps every line in one shared buffer instead: a table of two or three bytes per line (the
//! name as an index into the standard names, the value's length), then the names that
//! are not standard and the values. A map is built from it when a response is served; its values
//! are slices of the buffer, so no value byte is copied.

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The names stored as a one-byte index, the most frequent in responses first.
static STANDARD: [HeaderName; 79] = [
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::CACHE_CONTROL,
    header::DATE,
    header::LAST_MODIFIED,
    header::ETAG,
    header::SERVER,
    header::EXPIRES,
    header::VARY,
    header::AGE,
    header::CONTENT_ENCODING,
    header::ACCESS_CONTROL_ALLOW_ORIGIN,
    header::STRICT_TRANSPORT_SECURITY,
    header::X_CONTENT_TYPE_OPTIONS,
    header::X_FRAME_OPTIONS,
    header::SET_COOKIE,
    header::ACCEPT_RANGES,
    header::CONTENT_SECURITY_POLICY,
    header::LOCATION,
    header::LINK,
    header::VIA,
    header::CONTENT_LANGUAGE,
    header::CONTENT_DISPOSITION,
    header::CONTENT_LOCATION,
    header::CONTENT_RANGE,
    header::REFERRER_POLICY,
    header::X_XSS_PROTECTION,
    header::ALT_SVC,
    header::PRAGMA,
    header::WARNING,
    header::ALLOW,
    header::RETRY_AFTER,
    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
    header::ACCESS_CONTROL_ALLOW_HEADERS,
    header::ACCESS_CONTROL_ALLOW_METHODS,
    header::ACCESS_CONTROL_EXPOSE_HEADERS,
    header::ACCESS_CONTROL_MAX_AGE,
    header::CONTENT_SECURITY_POLICY_REPORT_ONLY,
    header::X_DNS_PREFETCH_CONTROL,
    header::WWW_AUTHENTICATE,
    header::PROXY_AUTHENTICATE,
    header::REFRESH,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::CONNECTION,
    header::UPGRADE,
    header::TE,
    header::PUBLIC_KEY_PINS,
    header::PUBLIC_KEY_PINS_REPORT_ONLY,
    header::FORWARDED,
    header::ACCEPT,
    header::ACCEPT_CHARSET,
    header::ACCEPT_ENCODING,
    header::ACCEPT_LANGUAGE,
    header::ACCESS_CONTROL_REQUEST_HEADERS,
    header::ACCESS_CONTROL_REQUEST_METHOD,
    header::AUTHORIZATION,
    header::COOKIE,
    header::DNT,
    header::EXPECT,
    header::FROM,
    header::HOST,
    header::IF_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_NONE_MATCH,
    header::IF_RANGE,
    header::IF_UNMODIFIED_SINCE,
    header::MAX_FORWARDS,
    header::ORIGIN,
    header::PROXY_AUTHORIZATION,
    header::RANGE,
    header::REFERER,
    header::SEC_WEBSOCKET_ACCEPT,
    header::SEC_WEBSOCKET_EXTENSIONS,
    header::SEC_WEBSOCKET_KEY,
    header::SEC_WEBSOCKET_PROTOCOL,
    header::SEC_WEBSOCKET_VERSION,
    header::UPGRADE_INSECURE_REQUESTS,
    header::USER_AGENT,
];

/// The code of a name that is not in [`STANDARD`]: its bytes follow in the data.
const OTHER: u8 = u8::MAX;

/// Appends `n` as a LEB128 varint.
fn put_varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

/// Reads a LEB128 varint at `*at`.
fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut n = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at)?;
        *at += 1;
        n |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(n);
        }
    }
    None
}

fn code(name: &HeaderName) -> u8 {
    STANDARD
        .iter()
        .position(|n| n == name)
        .map_or(OTHER, |i| i as u8)
}

/// The header field lines of a stored response, in order (multi-valued fields kept line by line),
/// in one shared buffer. Cloning it is one reference-count increment.
///
/// # Example
///
/// ```
/// use cachio_core::backend::Fields;
/// use http::{HeaderMap, HeaderValue};
///
/// let mut map = HeaderMap::new();
/// map.insert("content-type", HeaderValue::from_static("text/plain"));
/// map.append("set-cookie", HeaderValue::from_static("a=1"));
/// map.append("set-cookie", HeaderValue::from_static("b=2"));
/// map.insert("x-trace", HeaderValue::from_static("abc"));
///
/// let fields = Fields::from_map(&map);
/// assert_eq!(fields.len(), 4);
/// assert_eq!(fields.get(&http::header::CONTENT_TYPE), Some(&b"text/plain"[..]));
/// assert_eq!(fields.get_all(&http::header::SET_COOKIE).count(), 2);
/// assert_eq!(fields.to_header_map(0), map);
/// ```
#[derive(Clone, Default)]
pub struct Fields {
    /// The line table (`table` bytes), then each line's name bytes (names not in [`STANDARD`])
    /// and value bytes, in line order.
    block: Bytes,
    table: u32,
    len: u32,
}

/// One line of [`Fields`], as [`Fields::iter`] gives it.
#[derive(Clone, Copy, Debug)]
pub struct Line<'a> {
    code: u8,
    name: &'a [u8],
    value: &'a [u8],
    /// Where the value starts in the buffer.
    at: usize,
    sensitive: bool,
}

impl<'a> Line<'a> {
    /// Whether this line's name is `name`.
    pub fn is(&self, name: &HeaderName) -> bool {
        match STANDARD.get(usize::from(self.code)) {
            Some(n) => n == name,
            None => self.name == name.as_str().as_bytes(),
        }
    }

    /// Whether the name is one of the standard names (stored as a one-byte code).
    pub fn is_standard(&self) -> bool {
        usize::from(self.code) < STANDARD.len()
    }

    /// The name (a standard name is a copy of a constant; another one is allocated).
    pub fn name(&self) -> Option<HeaderName> {
        match STANDARD.get(usize::from(self.code)) {
            Some(n) => Some(n.clone()),
            None => HeaderName::from_bytes(self.name).ok(),
        }
    }

    /// The name's bytes (lowercase).
    pub fn name_bytes(&self) -> &'a [u8] {
        match STANDARD.get(usize::from(self.code)) {
            Some(n) => n.as_str().as_bytes(),
            None => self.name,
        }
    }

    /// The value's bytes.
    pub fn value(&self) -> &'a [u8] {
        self.value
    }
}

impl Fields {
    /// Packs every line of `map`, in its order.
    pub fn from_map(map: &HeaderMap) -> Self {
        // Per line: the name's code, the name's length for a name that is not standard, then the
        // value's length and its sensitivity (the low bit), as varints.
        let mut table = Vec::with_capacity(map.len() * 3);
        let mut data_len = 0;
        for (name, value) in map {
            let code = code(name);
            table.push(code);
            if code == OTHER {
                let n = name.as_str().len();
                put_varint(&mut table, n as u64);
                data_len += n;
            }
            put_varint(
                &mut table,
                (value.len() as u64) << 1 | u64::from(value.is_sensitive()),
            );
            data_len += value.len();
        }
        let mut block = BytesMut::with_capacity(table.len() + data_len);
        block.put_slice(&table);
        for (name, value) in map {
            if code(name) == OTHER {
                block.put_slice(name.as_str().as_bytes());
            }
            block.put_slice(value.as_bytes());
        }
        Self {
            block: block.freeze(),
            table: table.len() as u32,
            len: map.len() as u32,
        }
    }

    /// The number of lines.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether there are no lines.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes the lines take in the buffer.
    pub fn bytes_len(&self) -> usize {
        self.block.len()
    }

    /// Every line, in order.
    pub fn iter(&self) -> impl Iterator<Item = Line<'_>> + '_ {
        let block = &self.block[..];
        let table = self.table as usize;
        let (mut t, mut d) = (0usize, table);
        std::iter::from_fn(move || {
            if t >= table {
                return None;
            }
            let code = block[t];
            t += 1;
            let name_len = if code == OTHER {
                varint(block, &mut t)? as usize
            } else {
                0
            };
            let len_flag = varint(block, &mut t)?;
            let value_len = (len_flag >> 1) as usize;
            let flags = len_flag & 1;
            let name = block.get(d..d + name_len)?;
            d += name_len;
            let at = d;
            let value = block.get(d..d + value_len)?;
            d += value_len;
            Some(Line {
                code,
                name,
                value,
                at,
                sensitive: flags == 1,
            })
        })
    }

    /// The value of the first line named `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&[u8]> {
        self.iter().find(|l| l.is(name)).map(|l| l.value)
    }

    /// The values of every line named `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.iter().filter(|l| l.is(name)).map(|l| l.value)
    }

    /// Whether a line is named `name`.
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.iter().any(|l| l.is(name))
    }

    /// A header map of every line, with room for `extra` more fields. The values share this
    /// buffer (nothing is copied).
    pub fn to_header_map(&self, extra: usize) -> HeaderMap {
        let mut map = HeaderMap::with_capacity(self.len() + extra);
        self.append_to(&mut map, None);
        map
    }

    /// Appends every line to `map`, but those named `except`. The values share this buffer.
    pub fn append_to(&self, map: &mut HeaderMap, except: Option<&HeaderName>) {
        for line in self.iter() {
            if except.is_some_and(|name| line.is(name)) {
                continue;
            }
            let (Some(name), Ok(mut value)) = (
                line.name(),
                HeaderValue::from_maybe_shared(
                    self.block.slice(line.at..line.at + line.value.len()),
                ),
            ) else {
                // Every line was a valid field when it was packed.
                continue;
            };
            value.set_sensitive(line.sensitive);
            map.append(name, value);
        }
    }
}

impl std::fmt::Debug for Fields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|l| {
                (
                    String::from_utf8_lossy(l.name_bytes()).into_owned(),
                    String::from_utf8_lossy(l.value).into_owned(),
                )
            }))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_order_duplicates_and_sensitivity() {
        let mut map = HeaderMap::new();
        map.append("x-b", HeaderValue::from_static("1"));
        map.append(header::SET_COOKIE, HeaderValue::from_static("a=1"));
        map.append("x-b", HeaderValue::from_static("2"));
        map.append(header::SET_COOKIE, HeaderValue::from_static("b=2"));
        let mut secret = HeaderValue::from_static("s");
        secret.set_sensitive(true);
        map.append(header::AUTHORIZATION, secret);
        map.append("x-empty", HeaderValue::from_static(""));
        let long = "v".repeat(70_000);
        map.append("x-long", HeaderValue::from_str(&long).unwrap());
        let fields = Fields::from_map(&map);
        let back = fields.to_header_map(2);
        assert_eq!(back, map);
        assert!(back[header::AUTHORIZATION].is_sensitive());
        let lines: Vec<_> = fields
            .iter()
            .map(|l| (l.name().unwrap(), l.value().to_vec()))
            .collect();
        let expected: Vec<_> = map
            .iter()
            .map(|(n, v)| (n.clone(), v.as_bytes().to_vec()))
            .collect();
        assert_eq!(lines, expected);
        assert!(fields.contains(&HeaderName::from_static("x-long")));
        assert!(!fields.contains(&header::ETAG));
        assert!(Fields::default().is_empty());
    }

    #[test]
    fn every_standard_name_has_one_code() {
        for (i, name) in STANDARD.iter().enumerate() {
            assert_eq!(usize::from(code(name)), i, "{name} listed twice");
        }
        assert!(STANDARD.len() < usize::from(OTHER));
    }
}
