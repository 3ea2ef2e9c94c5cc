//! Encoders that take a body chunk by chunk: a JSON string's contents, base64, and a UTF-8 check.

use std::io::{self, Write};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Writes `bytes` as the inside of a JSON string (without the quotes). The bytes must be a
/// piece of valid UTF-8: bytes from 0x80 up pass as they are (a chunk boundary inside a
/// character does no harm), quotes, backslashes and control characters are escaped.
pub(crate) fn write_json_str(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escaped: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..0x20 => b"",
            _ => continue,
        };
        out.write_all(&bytes[start..i])?;
        if escaped.is_empty() {
            write!(out, "\\u{b:04x}")?;
        } else {
            out.write_all(escaped)?;
        }
        start = i + 1;
    }
    out.write_all(&bytes[start..])
}

/// Base64 (standard alphabet, padded) of a stream of chunks, written as it goes: the bytes of
/// an incomplete group wait for the next chunk.
#[derive(Default)]
pub(crate) struct Base64Writer {
    carry: Vec<u8>,
}

impl Base64Writer {
    pub(crate) fn push(&mut self, out: &mut impl Write, mut bytes: &[u8]) -> io::Result<()> {
        if !self.carry.is_empty() {
            let need = 3 - self.carry.len();
            let take = need.min(bytes.len());
            self.carry.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.carry.len() < 3 {
                return Ok(());
            }
            out.write_all(STANDARD.encode(&self.carry).as_bytes())?;
            self.carry.clear();
        }
        let whole = bytes.len() / 3 * 3;
        // Encoded a slice at a time: the buffer stays small whatever the chunk size.
        for piece in bytes[..whole].chunks(48 << 10) {
            out.write_all(STANDARD.encode(piece).as_bytes())?;
        }
        self.carry.extend_from_slice(&bytes[whole..]);
        Ok(())
    }

    pub(crate) fn finish(self, out: &mut impl Write) -> io::Result<()> {
        out.write_all(STANDARD.encode(&self.carry).as_bytes())
    }
}

/// Checks that a stream of chunks is UTF-8, with characters split across chunks.
#[derive(Default)]
pub(crate) struct Utf8Check {
    carry: Vec<u8>,
    bad: bool,
}

impl Utf8Check {
    pub(crate) fn push(&mut self, mut bytes: &[u8]) {
        if self.bad {
            return;
        }
        while !self.carry.is_empty() && !bytes.is_empty() {
            self.carry.push(bytes[0]);
            bytes = &bytes[1..];
            match std::str::from_utf8(&self.carry) {
                Ok(_) => self.carry.clear(),
                Err(e) if e.error_len().is_some() => {
                    self.bad = true;
                    return;
                }
                Err(_) => {}
            }
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => {}
            Err(e) if e.error_len().is_none() => {
                self.carry.extend_from_slice(&bytes[e.valid_up_to()..]);
            }
            Err(_) => self.bad = true,
        }
    }

    pub(crate) fn is_utf8(&self) -> bool {
        !self.bad && self.carry.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_in_pieces_is_base64_of_the_whole() {
        let data: Vec<u8> = (0..=255u8).cycle().take(1000).collect();
        for split in [1, 2, 3, 4, 7, 100, 999] {
            let mut out = Vec::new();
            let mut w = Base64Writer::default();
            for piece in data.chunks(split) {
                w.push(&mut out, piece).unwrap();
            }
            w.finish(&mut out).unwrap();
            assert_eq!(
                String::from_utf8(out).unwrap(),
                STANDARD.encode(&data),
                "{split}"
            );
        }
    }

    #[test]
    fn utf8_split_inside_characters() {
        let text = "héllo wörld ✓ 𝄞".as_bytes();
        for split in 1..text.len() {
            let mut c = Utf8Check::default();
            for piece in text.chunks(split) {
                c.push(piece);
            }
            assert!(c.is_utf8(), "{split}");
        }
        let mut c = Utf8Check::default();
        c.push(&text[..text.len() - 1]);
        assert!(!c.is_utf8(), "a character cut at the end");
        let mut c = Utf8Check::default();
        c.push(b"ok \xff");
        assert!(!c.is_utf8());
    }

    #[test]
    fn json_escapes_read_back() {
        let s = "a \"quote\" \\ back\nline\ttab \u{1} é";
        let mut out = b"\"".to_vec();
        for piece in s.as_bytes().chunks(3) {
            write_json_str(&mut out, piece).unwrap();
        }
        out.push(b'"');
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, s);
    }
}
