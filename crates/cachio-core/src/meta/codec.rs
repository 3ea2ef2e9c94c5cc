//! The binary format of [`Meta`], which every store that writes bytes shares, and the byte
//! [`Reader`] it is read with.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{StatusCode, Version};

use crate::store::{ErrorKind, StoreError};

use super::{FORMAT_VERSION, Meta, ResponseMeta, VaryIndex};

const MAGIC: &[u8; 4] = b"CHM1";
const KIND_RESPONSE: u8 = 1;
const KIND_VARIANTS: u8 = 2;

impl Meta {
    /// Encodes the metadata in cachio's binary format (versioned by [`FORMAT_VERSION`]).
    ///
    /// The layout: magic `CHM1`, the format version (u16 BE), a kind byte, then for a response the
    /// status (u16), version (u8), request and response times (i64 ms since the epoch), the
    /// operator's TTL (a presence byte, then u64 ms), the Vary
    /// values (count u16; each a presence byte and a length-prefixed value), and every header line
    /// in order (count u32; each name and value length-prefixed with u32); for a variant index the
    /// epoch (u64), the names and the variant hashes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
        match self {
            Meta::Response(r) => {
                out.push(KIND_RESPONSE);
                out.extend_from_slice(&r.status.as_u16().to_be_bytes());
                out.push(version_byte(r.version));
                out.extend_from_slice(&millis(r.request_time()).to_be_bytes());
                out.extend_from_slice(&millis(r.response_time()).to_be_bytes());
                match r.ttl_override() {
                    Some(ttl) => {
                        out.push(1);
                        out.extend_from_slice(
                            &ttl.as_millis().min(u128::from(u64::MAX)).to_be_bytes()[8..],
                        );
                    }
                    None => out.push(0),
                }
                out.extend_from_slice(&(r.vary.len() as u16).to_be_bytes());
                for v in &r.vary {
                    match v {
                        Some(v) => {
                            out.push(1);
                            put_bytes(&mut out, v.as_bytes());
                        }
                        None => out.push(0),
                    }
                }
                out.extend_from_slice(&(r.fields.len() as u32).to_be_bytes());
                for line in r.fields.iter() {
                    put_bytes(&mut out, line.name_bytes());
                    put_bytes(&mut out, line.value());
                }
            }
            Meta::Variants(v) => {
                out.push(KIND_VARIANTS);
                out.extend_from_slice(&v.epoch.to_be_bytes());
                out.extend_from_slice(&(v.names.len() as u16).to_be_bytes());
                for n in &v.names {
                    put_bytes(&mut out, n.as_str().as_bytes());
                }
                out.extend_from_slice(&(v.variants.len() as u32).to_be_bytes());
                for h in &v.variants {
                    out.extend_from_slice(&h.to_be_bytes());
                }
            }
        }
        out
    }

    /// Decodes metadata written by [`Meta::encode`].
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Corrupt`] when the bytes are truncated or malformed, and
    /// [`ErrorKind::UnknownFormat`] when they were written in another format version.
    pub fn decode(bytes: &[u8]) -> Result<Meta, StoreError> {
        let mut r = Reader::new(bytes);
        if r.take(4)? != MAGIC {
            return Err(corrupt("bad magic"));
        }
        let version = r.u16()?;
        if version != FORMAT_VERSION {
            return Err(StoreError::new(
                ErrorKind::UnknownFormat,
                format!("format version {version}"),
            ));
        }
        let meta = match r.u8()? {
            KIND_RESPONSE => {
                let status = StatusCode::from_u16(r.u16()?).map_err(|_| corrupt("bad status"))?;
                let version = byte_version(r.u8()?)?;
                let request_time = from_millis(r.i64()?);
                let response_time = from_millis(r.i64()?);
                let ttl_override = match r.u8()? {
                    0 => None,
                    1 => Some(Duration::from_millis(r.u64()?)),
                    _ => return Err(corrupt("bad ttl tag")),
                };
                let n = r.u16()? as usize;
                let mut vary = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    vary.push(match r.u8()? {
                        0 => None,
                        1 => Some(
                            HeaderValue::from_bytes(r.bytes()?)
                                .map_err(|_| corrupt("bad vary value"))?,
                        ),
                        _ => return Err(corrupt("bad vary tag")),
                    });
                }
                let n = r.u32()? as usize;
                let mut headers = HeaderMap::with_capacity(n.min(256));
                for _ in 0..n {
                    let name = HeaderName::from_bytes(r.bytes()?)
                        .map_err(|_| corrupt("bad header name"))?;
                    let value = HeaderValue::from_bytes(r.bytes()?)
                        .map_err(|_| corrupt("bad header value"))?;
                    headers.append(name, value);
                }
                Meta::Response(
                    ResponseMeta::new(status, version, headers, vary, request_time, response_time)
                        .with_ttl_override(ttl_override),
                )
            }
            KIND_VARIANTS => {
                let epoch = r.u64()?;
                let n = r.u16()? as usize;
                let mut names = Vec::with_capacity(n.min(64));
                for _ in 0..n {
                    names.push(
                        HeaderName::from_bytes(r.bytes()?).map_err(|_| corrupt("bad vary name"))?,
                    );
                }
                let n = r.u32()? as usize;
                let mut variants = Vec::with_capacity(n.min(1024));
                for _ in 0..n {
                    variants.push(r.u64()?);
                }
                Meta::Variants(VaryIndex {
                    names,
                    epoch,
                    variants,
                })
            }
            _ => return Err(corrupt("bad kind")),
        };
        if r.pos != bytes.len() {
            return Err(corrupt("trailing bytes"));
        }
        Ok(meta)
    }
}

fn corrupt(what: &'static str) -> StoreError {
    StoreError::new(ErrorKind::Corrupt, what)
}

fn millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis().min(i64::MAX as u128) as i64,
        Err(e) => -(e.duration().as_millis().min(i64::MAX as u128) as i64),
    }
}

fn from_millis(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_millis(ms.unsigned_abs()))
            .unwrap_or(UNIX_EPOCH)
    }
}

fn version_byte(v: Version) -> u8 {
    match v {
        Version::HTTP_09 => 9,
        Version::HTTP_10 => 10,
        Version::HTTP_2 => 20,
        Version::HTTP_3 => 30,
        _ => 11,
    }
}

fn byte_version(b: u8) -> Result<Version, StoreError> {
    Ok(match b {
        9 => Version::HTTP_09,
        10 => Version::HTTP_10,
        11 => Version::HTTP_11,
        20 => Version::HTTP_2,
        30 => Version::HTTP_3,
        _ => return Err(corrupt("bad version")),
    })
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_be_bytes());
    out.extend_from_slice(b);
}

/// Reads the big-endian integers and length-prefixed byte strings of a stored record, each read
/// failing with [`ErrorKind::Corrupt`] where the bytes end too soon. [`Meta::decode`] reads with
/// it; a store that frames its own records around the metadata (its key, its body's chunks) can
/// too.
///
/// # Example
///
/// ```
/// use cachio_core::meta::Reader;
///
/// let mut r = Reader::new(&[0, 0, 0, 2, b'h', b'i', 7]);
/// assert_eq!(r.bytes().unwrap(), b"hi");
/// assert_eq!(r.u8().unwrap(), 7);
/// assert_eq!(r.position(), 7);
/// assert!(r.u32().is_err(), "past the end");
/// ```
#[derive(Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    /// How many bytes have been read.
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The next `n` bytes.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Corrupt`] when fewer are left.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], StoreError> {
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| corrupt("length overflow"))?;
        let s = self
            .bytes
            .get(self.pos..end)
            .ok_or_else(|| corrupt("truncated"))?;
        self.pos = end;
        Ok(s)
    }

    /// The next `u8`, big-endian.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Corrupt`] when too few bytes are left.
    pub fn u8(&mut self) -> Result<u8, StoreError> {
        Ok(self.take(1)?[0])
    }

    /// The next `u16`, big-endian.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Corrupt`] when too few bytes are left.
    pub fn u16(&mut self) -> Result<u16, StoreError> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().map_err(|_| corrupt("u16"))?,
        ))
    }

    /// The next `u32`, big-endian.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Corrupt`] when too few bytes are left.
    pub fn u32(&mut self) -> Result<u32, StoreError> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().map_err(|_| corrupt("u32"))?,
        ))
    }

    /// The next `u64`, big-endian.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Corrupt`] when too few bytes are left.
    pub fn u64(&mut self) -> Result<u64, StoreError> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().map_err(|_| corrupt("u64"))?,
        ))
    }

    /// The next `i64`, big-endian.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Corrupt`] when too few bytes are left.
    pub fn i64(&mut self) -> Result<i64, StoreError> {
        Ok(i64::from_be_bytes(
            self.take(8)?.try_into().map_err(|_| corrupt("i64"))?,
        ))
    }

    /// The next byte string, after its length (a big-endian `u32`).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Corrupt`] when too few bytes are left.
    pub fn bytes(&mut self) -> Result<&'a [u8], StoreError> {
        let n = self.u32()? as usize;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_decode_keeps_every_header_line_in_order() {
        let mut h = HeaderMap::new();
        h.append("set-cookie", HeaderValue::from_static("a=1"));
        h.append("link", HeaderValue::from_static("</a>; rel=preload"));
        h.append("set-cookie", HeaderValue::from_static("b=2"));
        h.append("link", HeaderValue::from_static("</b>; rel=preload"));
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let m = Meta::Response(ResponseMeta::new(
            StatusCode::NOT_FOUND,
            Version::HTTP_2,
            h.clone(),
            vec![Some(HeaderValue::from_static("en")), None],
            t,
            t + Duration::from_millis(5),
        ));
        let back = Meta::decode(&m.encode()).unwrap();
        let r = back.as_response().unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.version(), Version::HTTP_2);
        assert_eq!(r.headers(), &h);
        let cookies: Vec<_> = r.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);
        assert_eq!(
            r.vary_values(),
            &[Some(HeaderValue::from_static("en")), None]
        );
        assert_eq!(r.request_time(), t);
        assert_eq!(r.response_time(), t + Duration::from_millis(5));
    }

    #[test]
    fn decode_rejects_truncation_and_other_versions() {
        let m = Meta::Variants(VaryIndex {
            names: vec![http::header::ACCEPT],
            epoch: 9,
            variants: vec![1, 2, 3],
        });
        let bytes = m.encode();
        for cut in 0..bytes.len() {
            let e = Meta::decode(&bytes[..cut]).unwrap_err();
            assert!(matches!(e.kind(), ErrorKind::Corrupt), "cut at {cut}: {e}");
        }
        let mut other = bytes.clone();
        other[5] = 99;
        assert!(matches!(
            Meta::decode(&other).unwrap_err().kind(),
            ErrorKind::UnknownFormat
        ));
        match Meta::decode(&bytes).unwrap() {
            Meta::Variants(v) => assert_eq!(v.variants, vec![1, 2, 3]),
            Meta::Response(_) => panic!("kind changed"),
        }
    }
}
