//! The byte layouts of everything the store keeps in fjall. Decoding never panics: every length is
//! checked, and every value that matters carries a CRC-32 that is verified before it is used.

use bytes::Bytes;
use cachio_core::store::{ErrorKind, StoreError};

/// The version byte of entry records and chunk values written by this crate.
pub(crate) const FORMAT: u8 = 1;

/// The fixed part of a record: version, generation, body length, chunk count, access time,
/// expiry time and the metadata length.
const RECORD_HEADER: usize = 1 + 8 + 8 + 4 + 8 + 8 + 4;
/// The CRC-32 at the end of a record.
const RECORD_TRAILER: usize = 4;
/// The header of a chunk value: version and CRC-32.
pub(crate) const CHUNK_HEADER: usize = 1 + 4;

/// What the entries keyspace keeps under a cache key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    /// The generation whose chunks hold the body.
    pub(crate) gen_id: u64,
    /// The body length in bytes.
    pub(crate) body_len: u64,
    /// How many chunks the body has.
    pub(crate) chunks: u32,
    /// The last access time (ms since the epoch, from the writer's monotonic clock).
    pub(crate) atime: u64,
    /// When the entry expires (ms since the epoch); 0 means never.
    pub(crate) expires: u64,
    /// `Meta::encode` bytes.
    pub(crate) meta: Vec<u8>,
}

pub(crate) fn corrupt(what: impl Into<String>) -> StoreError {
    StoreError::new(ErrorKind::Corrupt, what.into())
}

fn be_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn be_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

impl Record {
    /// The encoded length of this record.
    pub(crate) fn encoded_len(&self) -> usize {
        RECORD_HEADER + self.meta.len() + RECORD_TRAILER
    }

    /// Encodes the record; the CRC-32 covers `key` too, so a record never passes for another
    /// key's.
    pub(crate) fn encode(&self, key: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push(FORMAT);
        out.extend_from_slice(&self.gen_id.to_be_bytes());
        out.extend_from_slice(&self.body_len.to_be_bytes());
        out.extend_from_slice(&self.chunks.to_be_bytes());
        out.extend_from_slice(&self.atime.to_be_bytes());
        out.extend_from_slice(&self.expires.to_be_bytes());
        out.extend_from_slice(&(self.meta.len() as u32).to_be_bytes());
        out.extend_from_slice(&self.meta);
        let mut crc = crc32fast::Hasher::new();
        crc.update(key);
        crc.update(&out);
        out.extend_from_slice(&crc.finalize().to_be_bytes());
        out
    }

    /// Decodes and verifies a record stored under `key`.
    pub(crate) fn decode(key: &[u8], bytes: &[u8]) -> Result<Record, StoreError> {
        match bytes.first() {
            None => return Err(corrupt("empty record")),
            Some(&FORMAT) => {}
            Some(&v) => {
                return Err(StoreError::new(
                    ErrorKind::UnknownFormat,
                    format!("record format {v}"),
                ));
            }
        }
        if bytes.len() < RECORD_HEADER + RECORD_TRAILER {
            return Err(corrupt("truncated record"));
        }
        let (body, trailer) = bytes.split_at(bytes.len() - RECORD_TRAILER);
        let mut crc = crc32fast::Hasher::new();
        crc.update(key);
        crc.update(body);
        if be_u32(trailer, 0) != Some(crc.finalize()) {
            return Err(corrupt("record checksum mismatch"));
        }
        let field = |at| be_u64(body, at).ok_or_else(|| corrupt("truncated record"));
        let gen_id = field(1)?;
        let body_len = field(9)?;
        let chunks = be_u32(body, 17).ok_or_else(|| corrupt("truncated record"))?;
        let atime = field(21)?;
        let expires = field(29)?;
        let meta_len = be_u32(body, 37).ok_or_else(|| corrupt("truncated record"))? as usize;
        let meta = body
            .get(RECORD_HEADER..)
            .filter(|m| m.len() == meta_len)
            .ok_or_else(|| corrupt("record metadata length mismatch"))?;
        if (chunks == 0) != (body_len == 0) || u64::from(chunks) > body_len {
            return Err(corrupt("record chunk count does not fit its body length"));
        }
        Ok(Record {
            gen_id,
            body_len,
            chunks,
            atime,
            expires,
            meta: meta.to_vec(),
        })
    }

    /// Whether the entry is past its expiry at `now_ms`.
    pub(crate) fn expired(&self, now_ms: u64) -> bool {
        self.expires != 0 && self.expires <= now_ms
    }
}

/// The bytes an entry is accounted for: its key (kept three times: entries, LRU and expiry
/// indexes), its record, its body, [`CHUNK_OVERHEAD`] per chunk and [`ENTRY_OVERHEAD`].
pub(crate) fn entry_size(key_len: usize, record_len: usize, body_len: u64, chunks: u32) -> u64 {
    3 * key_len as u64
        + record_len as u64
        + body_len
        + u64::from(chunks) * crate::CHUNK_OVERHEAD
        + crate::ENTRY_OVERHEAD
}

// ---- chunks -------------------------------------------------------------------------------------

/// The key of chunk `index` of generation `gen_id`: both big-endian, so a generation's chunks are
/// adjacent and in order.
pub(crate) fn chunk_key(gen_id: u64, index: u32) -> [u8; 12] {
    let mut k = [0u8; 12];
    k[..8].copy_from_slice(&gen_id.to_be_bytes());
    k[8..].copy_from_slice(&index.to_be_bytes());
    k
}

/// The generation a chunk key belongs to.
pub(crate) fn chunk_key_gen(key: &[u8]) -> Option<u64> {
    if key.len() == 12 {
        be_u64(key, 0)
    } else {
        None
    }
}

fn chunk_crc(gen_id: u64, index: u32, payload: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&chunk_key(gen_id, index));
    crc.update(payload);
    crc.finalize()
}

/// Encodes a chunk value; the CRC-32 covers the generation and index, so a chunk never passes
/// for another.
pub(crate) fn encode_chunk(gen_id: u64, index: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CHUNK_HEADER + payload.len());
    out.push(FORMAT);
    out.extend_from_slice(&chunk_crc(gen_id, index, payload).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Verifies a chunk value and returns its payload (a view of `value`, not a copy).
pub(crate) fn decode_chunk(gen_id: u64, index: u32, value: Bytes) -> Result<Bytes, StoreError> {
    match value.first() {
        None => return Err(corrupt(format!("chunk {index} is empty"))),
        Some(&FORMAT) => {}
        Some(&v) => {
            return Err(StoreError::new(
                ErrorKind::UnknownFormat,
                format!("chunk format {v}"),
            ));
        }
    }
    let payload = value
        .get(CHUNK_HEADER..)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| corrupt(format!("chunk {index} is truncated")))?;
    if be_u32(&value, 1) != Some(chunk_crc(gen_id, index, payload)) {
        return Err(corrupt(format!("chunk {index} checksum mismatch")));
    }
    Ok(value.slice(CHUNK_HEADER..))
}

// ---- indexes ------------------------------------------------------------------------------------

/// The key of an LRU or expiry index item: a time (ms, big-endian) and the generation.
pub(crate) fn index_key(time: u64, gen_id: u64) -> [u8; 16] {
    let mut k = [0u8; 16];
    k[..8].copy_from_slice(&time.to_be_bytes());
    k[8..].copy_from_slice(&gen_id.to_be_bytes());
    k
}

/// The time and generation of an index key.
pub(crate) fn parse_index_key(key: &[u8]) -> Option<(u64, u64)> {
    if key.len() == 16 {
        Some((be_u64(key, 0)?, be_u64(key, 8)?))
    } else {
        None
    }
}

/// The value of an LRU item: a CRC-32, the entry's accounted size and its cache key.
pub(crate) fn encode_lru_value(size: u64, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + key.len());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(key);
    let crc = crc32fast::hash(&out[4..]);
    out[..4].copy_from_slice(&crc.to_be_bytes());
    out
}

/// The accounted size and cache key of an LRU item, if its checksum holds.
pub(crate) fn decode_lru_value(value: &[u8]) -> Option<(u64, &[u8])> {
    let rest = value.get(4..)?;
    if be_u32(value, 0)? != crc32fast::hash(rest) {
        return None;
    }
    Some((be_u64(rest, 0)?, rest.get(8..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            gen_id: 7,
            body_len: 100,
            chunks: 2,
            atime: 1_700_000_000_000,
            expires: 0,
            meta: b"meta bytes".to_vec(),
        }
    }

    #[test]
    fn record_round_trips_and_rejects_every_truncation_and_flip() {
        let r = sample();
        let bytes = r.encode(b"key");
        assert_eq!(bytes.len(), r.encoded_len());
        assert_eq!(Record::decode(b"key", &bytes).unwrap(), r);
        assert!(Record::decode(b"other", &bytes).is_err());
        for cut in 0..bytes.len() {
            assert!(Record::decode(b"key", &bytes[..cut]).is_err(), "cut {cut}");
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.clone();
                b[i] ^= 1 << bit;
                assert!(Record::decode(b"key", &b).is_err(), "flip {i}.{bit}");
            }
        }
        let mut other = bytes.clone();
        other[0] = 99;
        assert_eq!(
            Record::decode(b"key", &other).unwrap_err().kind(),
            ErrorKind::UnknownFormat
        );
    }

    #[test]
    fn chunks_verify_their_place() {
        let v = encode_chunk(3, 4, b"payload");
        let check =
            |gen_id, index, v: &[u8]| decode_chunk(gen_id, index, Bytes::copy_from_slice(v));
        assert_eq!(check(3, 4, &v).unwrap(), &b"payload"[..]);
        assert!(check(3, 5, &v).is_err());
        assert!(check(2, 4, &v).is_err());
        for cut in 0..v.len() {
            assert!(check(3, 4, &v[..cut]).is_err());
        }
        for i in 0..v.len() {
            let mut b = v.clone();
            b[i] ^= 0x10;
            assert!(check(3, 4, &b).is_err());
        }
    }

    #[test]
    fn index_keys_sort_by_time_then_generation() {
        assert!(index_key(1, 9) < index_key(2, 0));
        assert!(index_key(2, 0) < index_key(2, 1));
        assert_eq!(parse_index_key(&index_key(5, 6)), Some((5, 6)));
        assert_eq!(parse_index_key(b"short"), None);
        let v = encode_lru_value(42, b"k");
        assert_eq!(decode_lru_value(&v), Some((42, &b"k"[..])));
        let mut bad = v.clone();
        bad[6] ^= 1;
        assert_eq!(decode_lru_value(&bad), None);
        assert_eq!(decode_lru_value(b"x"), None);
        assert!(chunk_key(1, 0) < chunk_key(1, 1) && chunk_key(1, u32::MAX) < chunk_key(2, 0));
        assert_eq!(chunk_key_gen(&chunk_key(77, 3)), Some(77));
    }
}
