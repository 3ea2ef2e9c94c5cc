//! The messages of the invalidation channel: the sending node, and the keys to forget or
//! "everything".

const MAGIC: &[u8; 3] = b"CI1";
pub(super) const KIND_KEYS: u8 = b'K';
pub(super) const KIND_ALL: u8 = b'A';

pub(super) fn encode(node: &[u8; 16], kind: u8, keys: &[String]) -> Vec<u8> {
    let mut out = Vec::with_capacity(20 + keys.iter().map(|k| k.len() + 4).sum::<usize>());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(node);
    out.push(kind);
    for k in keys {
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k.as_bytes());
    }
    out
}

/// A received invalidation.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Invalidation {
    Keys(Vec<String>),
    All,
}

pub(super) fn decode(bytes: &[u8]) -> Option<([u8; 16], Invalidation)> {
    if bytes.len() < 20 || &bytes[..3] != MAGIC {
        return None;
    }
    let node: [u8; 16] = bytes[3..19].try_into().ok()?;
    match bytes[19] {
        KIND_ALL => Some((node, Invalidation::All)),
        KIND_KEYS => {
            let mut keys = Vec::new();
            let mut rest = &bytes[20..];
            while !rest.is_empty() {
                let n = u32::from_be_bytes(rest.get(..4)?.try_into().ok()?) as usize;
                let key = rest.get(4..4 + n)?;
                keys.push(String::from_utf8(key.to_vec()).ok()?);
                rest = &rest[4 + n..];
            }
            Some((node, Invalidation::Keys(keys)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let node = [7u8; 16];
        let keys = vec!["http://a/1".to_owned(), String::new(), "ключ".to_owned()];
        let m = encode(&node, KIND_KEYS, &keys);
        assert_eq!(decode(&m), Some((node, Invalidation::Keys(keys))));
        assert_eq!(
            decode(&encode(&node, KIND_ALL, &[])),
            Some((node, Invalidation::All))
        );
        assert_eq!(decode(b"hello"), None);
        let mut cut = m.clone();
        cut.pop();
        assert_eq!(decode(&cut), None);
    }
}
