//! A small Structured Fields (RFC 8941) Dictionary parser: just enough to read targeted
//! cache-control fields, and strict, because a syntax error must invalidate the whole field.

/// A member value, reduced to what cache directives can use.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Value {
    Boolean(bool),
    Integer(i64),
    String(Vec<u8>),
    /// A token, decimal, byte sequence or inner list: never a valid cache directive value.
    Other,
}

/// Parses a Dictionary (RFC 8941 §4.2.2); `None` on any syntax error. A repeated key keeps
/// its last value.
pub(super) fn parse_dictionary(input: &[u8]) -> Option<Vec<(Vec<u8>, Value)>> {
    let mut p = Parser { s: input, i: 0 };
    p.skip_sp();
    let mut out: Vec<(Vec<u8>, Value)> = Vec::new();
    while !p.at_end() {
        let key = p.key()?;
        let value = if p.peek() == Some(b'=') {
            p.i += 1;
            p.item_or_inner_list()?
        } else {
            p.parameters()?;
            Value::Boolean(true)
        };
        match out.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => out.push((key, value)),
        }
        p.skip_ows();
        if p.at_end() {
            break;
        }
        if p.peek() != Some(b',') {
            return None;
        }
        p.i += 1;
        p.skip_ows();
        if p.at_end() {
            return None; // a trailing comma
        }
    }
    Some(out)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }

    fn skip_sp(&mut self) {
        while self.peek() == Some(b' ') {
            self.i += 1;
        }
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.i += 1;
        }
    }

    fn key(&mut self) -> Option<Vec<u8>> {
        let first = self.peek()?;
        if !(first.is_ascii_lowercase() || first == b'*') {
            return None;
        }
        let start = self.i;
        while let Some(c) = self.peek() {
            if c.is_ascii_lowercase()
                || c.is_ascii_digit()
                || matches!(c, b'_' | b'-' | b'.' | b'*')
            {
                self.i += 1;
            } else {
                break;
            }
        }
        Some(self.s[start..self.i].to_vec())
    }

    fn item_or_inner_list(&mut self) -> Option<Value> {
        if self.peek() == Some(b'(') {
            self.i += 1;
            loop {
                self.skip_sp();
                match self.peek()? {
                    b')' => {
                        self.i += 1;
                        self.parameters()?;
                        return Some(Value::Other);
                    }
                    _ => {
                        self.bare_item()?;
                        self.parameters()?;
                        if !matches!(self.peek()?, b' ' | b')') {
                            return None;
                        }
                    }
                }
            }
        }
        let v = self.bare_item()?;
        self.parameters()?;
        Some(v)
    }

    fn parameters(&mut self) -> Option<()> {
        while self.peek() == Some(b';') {
            self.i += 1;
            self.skip_sp();
            self.key()?;
            if self.peek() == Some(b'=') {
                self.i += 1;
                self.bare_item()?;
            }
        }
        Some(())
    }

    fn bare_item(&mut self) -> Option<Value> {
        match self.peek()? {
            b'-' | b'0'..=b'9' => self.number(),
            b'"' => self.string(),
            b':' => self.byte_sequence(),
            b'?' => self.boolean(),
            c if c.is_ascii_alphabetic() || c == b'*' => {
                self.i += 1;
                while let Some(c) = self.peek() {
                    if c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~:/".contains(&c) {
                        self.i += 1;
                    } else {
                        break;
                    }
                }
                Some(Value::Other)
            }
            _ => None,
        }
    }

    fn number(&mut self) -> Option<Value> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.i += 1;
        }
        if !self.peek()?.is_ascii_digit() {
            return None;
        }
        let start = self.i;
        let mut dot: Option<usize> = None;
        while let Some(c) = self.peek() {
            match c {
                b'0'..=b'9' => self.i += 1,
                b'.' if dot.is_none() => {
                    if self.i - start > 12 {
                        return None;
                    }
                    dot = Some(self.i);
                    self.i += 1;
                }
                _ => break,
            }
            let len = self.i - start;
            if (dot.is_none() && len > 15) || (dot.is_some() && len > 16) {
                return None;
            }
        }
        match dot {
            None => {
                let n = self.s[start..self.i]
                    .iter()
                    .fold(0i64, |n, d| n * 10 + i64::from(d - b'0'));
                Some(Value::Integer(if negative { -n } else { n }))
            }
            Some(d) => {
                let frac = self.i - d - 1;
                if frac == 0 || frac > 3 {
                    return None;
                }
                Some(Value::Other)
            }
        }
    }

    fn string(&mut self) -> Option<Value> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            match self.peek()? {
                b'\\' => {
                    self.i += 1;
                    let c = self.peek()?;
                    if c != b'"' && c != b'\\' {
                        return None;
                    }
                    out.push(c);
                    self.i += 1;
                }
                b'"' => {
                    self.i += 1;
                    return Some(Value::String(out));
                }
                c if (0x20..0x7f).contains(&c) => {
                    out.push(c);
                    self.i += 1;
                }
                _ => return None,
            }
        }
    }

    fn byte_sequence(&mut self) -> Option<Value> {
        self.i += 1;
        loop {
            match self.peek()? {
                b':' => {
                    self.i += 1;
                    return Some(Value::Other);
                }
                c if c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=') => self.i += 1,
                _ => return None,
            }
        }
    }

    fn boolean(&mut self) -> Option<Value> {
        self.i += 1;
        let v = match self.peek()? {
            b'0' => false,
            b'1' => true,
            _ => return None,
        };
        self.i += 1;
        Some(Value::Boolean(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc8941_dictionary_syntax() {
        let d = parse_dictionary(b"a=1, b, c=?0, d=\"x\\\"y\", e=1.5;p, f=(1 2);q=a, g=:AQ==:")
            .unwrap();
        assert_eq!(d[0], (b"a".to_vec(), Value::Integer(1)));
        assert_eq!(d[1], (b"b".to_vec(), Value::Boolean(true)));
        assert_eq!(d[2], (b"c".to_vec(), Value::Boolean(false)));
        assert_eq!(d[3], (b"d".to_vec(), Value::String(b"x\"y".to_vec())));
        assert_eq!(d[4].1, Value::Other);
        assert_eq!(d[5].1, Value::Other);
        assert_eq!(d[6].1, Value::Other);
        assert_eq!(
            parse_dictionary(b"a=1, a=2").unwrap(),
            vec![(b"a".to_vec(), Value::Integer(2))]
        );
        assert_eq!(parse_dictionary(b"a=-7").unwrap()[0].1, Value::Integer(-7));
        for bad in [
            &b"A=1"[..],
            b"a=1,",
            b"a=1 b=2",
            b"a=\"unterminated",
            b"a=1234567890123456",
            b"a=1.2345",
            b"a=1.",
            b"a=?2",
            b"a=(1",
            b"=1",
            b"a=\"\\n\"",
            b"a=-",
        ] {
            assert!(
                parse_dictionary(bad).is_none(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
