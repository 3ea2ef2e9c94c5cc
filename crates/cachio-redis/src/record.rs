//! Key names and the binary record stored under an entry's record key.
//!
//! The layout (all integers big-endian) has fixed offsets at the front so the Lua scripts can read
//! the generation, the inline flag and the chunk count without parsing the rest:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 3 | magic `CRR` |
//! | 3 | 1 | record version ([`RECORD_VERSION`]) |
//! | 4 | 1 | flags: bit 0 set when the body is inline |
//! | 5 | 8 | generation id |
//! | 13 | 8 | body length |
//! | 21 | 4 | chunk count (0 when inline) |
//! | 25 | 4 | cache key length, then the cache key |
//! | … | 4 | metadata length, then the [`Meta::encode`] bytes |
//! | … | 4 × chunks | the CRC-32 of each chunk (chunked bodies) |
//! | … | body length | the body (inline bodies) |
//! | end − 4 | 4 | CRC-32 of every byte before it |

use bytes::Bytes;
use cachio_core::backend::fnv1a_128;
use cachio_core::meta::{Meta, Reader};
use cachio_core::store::{ErrorKind, StoreError};

/// The version of the record layout this crate writes and reads.
pub(crate) const RECORD_VERSION: u8 = 1;

const MAGIC: &[u8; 3] = b"CRR";
const FLAG_INLINE: u8 = 1;
const HEADER: usize = 29;

/// The Redis key names of one entry: `{prefix:hash}:m` for the record,
/// `{prefix:hash}:c:<generation>:<index>` for the chunks and `{prefix:hash}:p` for its fence. The braces make a hash tag, so a
/// Redis Cluster keeps all of an entry's keys in one slot.
#[derive(Clone, Debug)]
pub(crate) struct Names {
    /// `{prefix:hash}:`
    base: String,
}

impl Names {
    pub(crate) fn new(prefix: &str, key: &str) -> Self {
        // FNV-1a, 128 bits: stable across builds and platforms, so every node of a fleet names
        // an entry the same way. Collisions are harmless: the record carries the full cache key,
        // and a record for another key reads as a miss.
        let hash = fnv1a_128(key.as_bytes());
        Names {
            base: format!("{{{prefix}:{hash:032x}}}:"),
        }
    }

    pub(crate) fn record(&self) -> String {
        let mut s = String::with_capacity(self.base.len() + 1);
        s.push_str(&self.base);
        s.push('m');
        s
    }

    /// `{prefix:hash}:p`: when the key was last deleted (see `fence.rs`).
    pub(crate) fn fence(&self) -> String {
        format!("{}p", self.base)
    }

    /// `{prefix:hash}:e`: the epochs of the variant indexes deleted under the key (`fence.rs`).
    pub(crate) fn dead_epochs(&self) -> String {
        format!("{}e", self.base)
    }

    pub(crate) fn chunk(&self, generation: u64, index: u32) -> String {
        format!("{}c:{generation:016x}:{index}", self.base)
    }

    pub(crate) fn chunks(&self, generation: u64, count: u32) -> Vec<String> {
        (0..count).map(|i| self.chunk(generation, i)).collect()
    }
}

/// The `SCAN MATCH` pattern of every record key under `prefix`: exactly 32 characters between
/// `{prefix:` and `}:m`, so that the keys of a longer prefix (`prefix:x`) never match.
pub(crate) fn record_pattern(prefix: &str) -> String {
    format!("{{{prefix}:{}}}:m", "?".repeat(32))
}

/// The body part of a record being written.
pub(crate) enum BodyPart<'a> {
    /// The whole body, inside the record.
    Inline(&'a [Bytes]),
    /// The CRC-32 of each chunk stored under the chunk keys.
    Chunks(&'a [u32]),
}

/// Encodes a record.
pub(crate) fn encode(
    generation: u64,
    len: u64,
    key: &str,
    meta: &[u8],
    body: BodyPart<'_>,
) -> Vec<u8> {
    let extra = match &body {
        BodyPart::Inline(parts) => parts.iter().map(Bytes::len).sum(),
        BodyPart::Chunks(crcs) => crcs.len() * 4,
    };
    let mut out = Vec::with_capacity(HEADER + key.len() + 4 + meta.len() + extra + 4);
    out.extend_from_slice(MAGIC);
    out.push(RECORD_VERSION);
    let (flags, count) = match &body {
        BodyPart::Inline(_) => (FLAG_INLINE, 0u32),
        BodyPart::Chunks(crcs) => (0, crcs.len() as u32),
    };
    out.push(flags);
    out.extend_from_slice(&generation.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&count.to_be_bytes());
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(&(meta.len() as u32).to_be_bytes());
    out.extend_from_slice(meta);
    match body {
        BodyPart::Inline(parts) => parts.iter().for_each(|p| out.extend_from_slice(p)),
        BodyPart::Chunks(crcs) => crcs
            .iter()
            .for_each(|c| out.extend_from_slice(&c.to_be_bytes())),
    }
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    out
}

/// A record read back.
#[derive(Debug)]
pub(crate) struct Record {
    pub(crate) generation: u64,
    pub(crate) len: u64,
    pub(crate) key: String,
    /// The [`Meta::encode`] bytes.
    pub(crate) meta: Bytes,
    pub(crate) body: StoredBody,
}

/// Where a record's body is.
#[derive(Debug)]
pub(crate) enum StoredBody {
    Inline(Bytes),
    Chunks(Vec<u32>),
}

impl Record {
    pub(crate) fn chunk_count(&self) -> u32 {
        match &self.body {
            StoredBody::Inline(_) => 0,
            StoredBody::Chunks(crcs) => crcs.len() as u32,
        }
    }

    /// The metadata, decoded.
    pub(crate) fn decode_meta(&self) -> Result<Meta, StoreError> {
        Meta::decode(&self.meta)
    }

    /// The same record with other metadata.
    pub(crate) fn with_meta(&self, meta: &[u8]) -> Vec<u8> {
        match &self.body {
            StoredBody::Inline(body) => encode(
                self.generation,
                self.len,
                &self.key,
                meta,
                BodyPart::Inline(std::slice::from_ref(body)),
            ),
            StoredBody::Chunks(crcs) => encode(
                self.generation,
                self.len,
                &self.key,
                meta,
                BodyPart::Chunks(crcs),
            ),
        }
    }
}

fn corrupt(what: &'static str) -> StoreError {
    StoreError::new(ErrorKind::Corrupt, what)
}

/// Decodes a record, checking its CRC and its lengths.
///
/// # Errors
///
/// [`ErrorKind::UnknownFormat`] for a record of another version, [`ErrorKind::Corrupt`] for one
/// that is truncated, malformed or fails its CRC.
pub(crate) fn decode(bytes: Bytes) -> Result<Record, StoreError> {
    if bytes.len() < HEADER + 8 || &bytes[..3] != MAGIC {
        return Err(corrupt("not a cachio-redis record"));
    }
    if bytes[3] != RECORD_VERSION {
        return Err(StoreError::new(
            ErrorKind::UnknownFormat,
            format!("record version {}", bytes[3]),
        ));
    }
    let body_end = bytes.len() - 4;
    let stored_crc = u32::from_be_bytes([
        bytes[body_end],
        bytes[body_end + 1],
        bytes[body_end + 2],
        bytes[body_end + 3],
    ]);
    if crc32fast::hash(&bytes[..body_end]) != stored_crc {
        return Err(corrupt("record checksum mismatch"));
    }
    let inline = bytes[4] & FLAG_INLINE != 0;
    let mut r = Reader::new(&bytes[..body_end]);
    r.take(5)?;
    let generation = r.u64()?;
    let len = r.u64()?;
    let count = r.u32()?;
    let key_len = r.u32()? as usize;
    let key = std::str::from_utf8(r.take(key_len)?)
        .map_err(|_| corrupt("cache key is not UTF-8"))?
        .to_owned();
    let meta_len = r.u32()? as usize;
    let meta_start = r.position();
    r.take(meta_len)?;
    let meta = bytes.slice(meta_start..meta_start + meta_len);
    let body = if inline {
        if count != 0 {
            return Err(corrupt("inline record with chunks"));
        }
        let start = r.position();
        if (body_end - start) as u64 != len {
            return Err(corrupt("inline body length mismatch"));
        }
        StoredBody::Inline(bytes.slice(start..body_end))
    } else {
        let mut crcs = Vec::with_capacity((count as usize).min(1 << 20));
        for _ in 0..count {
            crcs.push(r.u32()?);
        }
        if r.position() != body_end {
            return Err(corrupt("trailing bytes in record"));
        }
        let chunk = crate::CHUNK_SIZE as u64;
        if len.div_ceil(chunk) != u64::from(count) {
            return Err(corrupt("chunk count does not match the body length"));
        }
        StoredBody::Chunks(crcs)
    };
    Ok(Record {
        generation,
        len,
        key,
        meta,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_share_one_hash_tag() {
        let n = Names::new("edge", "https://example.com/a");
        let record = n.record();
        let chunk = n.chunk(0xabc, 7);
        let tag = |k: &str| k[..k.find('}').unwrap() + 1].to_owned();
        assert!(
            record.starts_with("{edge:") && record.ends_with("}:m"),
            "{record}"
        );
        assert_eq!(tag(&record), tag(&chunk));
        assert!(chunk.ends_with("}:c:0000000000000abc:7"), "{chunk}");
        assert_ne!(Names::new("edge", "https://example.com/b").record(), record);
        assert_ne!(
            Names::new("edge2", "https://example.com/a").record(),
            record
        );
    }

    #[test]
    fn the_pattern_matches_own_records_only() {
        let pattern = record_pattern("p");
        assert_eq!(pattern.len(), Names::new("p", "k").record().len());
        assert!(Names::new("p:x", "k").record().len() > pattern.len());
    }

    #[test]
    fn hash_is_stable() {
        // The hash names entries across a fleet and across versions: it must never change.
        assert_eq!(fnv1a_128(b""), 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d);
        assert_eq!(fnv1a_128(b"a"), 0xd228_cb69_6f1a_8caf_7891_2b70_4e4a_8964);
        assert_eq!(
            format!("{:032x}", fnv1a_128(b"https://example.com/")),
            "e45265d9164e796bae99d8a63c4c318c"
        );
    }

    #[test]
    fn round_trip_and_corruption() {
        let body = [Bytes::from_static(b"hello "), Bytes::from_static(b"world")];
        let rec = encode(42, 11, "k", b"meta", BodyPart::Inline(&body));
        let back = decode(Bytes::from(rec.clone())).unwrap();
        assert_eq!(back.generation, 42);
        assert_eq!(back.key, "k");
        assert_eq!(&back.meta[..], b"meta");
        assert!(matches!(back.body, StoredBody::Inline(ref b) if &b[..] == b"hello world"));
        for i in 0..rec.len() {
            let mut bad = rec.clone();
            bad[i] ^= 0x40;
            assert!(decode(Bytes::from(bad)).is_err(), "flipped byte {i}");
        }
        for cut in 0..rec.len() {
            assert!(decode(Bytes::from(rec[..cut].to_vec())).is_err());
        }
        let chunked = encode(7, 70_000, "k", b"m", BodyPart::Chunks(&[1, 2]));
        let back = decode(Bytes::from(chunked)).unwrap();
        assert_eq!(back.chunk_count(), 2);
        let wrong_count = encode(7, 70_000, "k", b"m", BodyPart::Chunks(&[1]));
        assert!(decode(Bytes::from(wrong_count)).is_err());
    }
}
