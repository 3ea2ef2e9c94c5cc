//! Building blocks for the crates that implement a [`Store`](crate::Store), the cache layer or a
//! proxy on top of this crate. A program that only uses the cache does not need them.
//!
//! - [`KeyLocks`]: async locks, each for a share of the keys, to order one key's read-then-write
//!   operations.
//! - [`hop`]: the hop-by-hop header fields (RFC 9110 §7.6.1) a proxy removes and a cache does not
//!   store.
//! - [`stable_hash`] and [`fnv1a_128`]: hashes that are the same in every process and version,
//!   for sharding and naming entries.
//! - [`content_length`]: a message's declared body length.
//! - [`Fields`]: a stored response's header lines packed in one buffer.
//! - [`served`]: the header maps a memory store keeps with its heads, for hits to clone.
//! - [`micros`] and [`from_micros`]: times as the microseconds since the epoch stores keep.
//! - [`carries_tag`]: whether a stored response carries a purge tag (`Surrogate-Key`,
//!   `Cache-Tag`).

mod hash;
pub mod hop;
mod locks;
pub mod served;
mod tag;
mod time;

use http::header::{self, HeaderMap};

pub use crate::fields::Fields;
pub(crate) use hash::Fnv;
pub use hash::{fnv1a_128, stable_hash};
pub use locks::KeyLocks;
pub use tag::carries_tag;
pub use time::{from_micros, micros};

/// The `Content-Length` a message declares, when it is a number (surrounding whitespace
/// allowed); `None` when it is absent or not a number.
///
/// # Example
///
/// ```
/// use http::{HeaderMap, HeaderValue, header};
/// use cachio_core::backend::content_length;
///
/// let mut headers = HeaderMap::new();
/// assert_eq!(content_length(&headers), None);
/// headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("42"));
/// assert_eq!(content_length(&headers), Some(42));
/// headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("4x"));
/// assert_eq!(content_length(&headers), None);
/// ```
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    parse_content_length(headers.get(header::CONTENT_LENGTH)?.as_bytes())
}

/// A `Content-Length` value as a number (surrounding whitespace allowed), as
/// [`content_length`] reads it; for values kept outside a [`HeaderMap`], such as [`Fields`].
///
/// # Example
///
/// ```
/// use cachio_core::backend::parse_content_length;
///
/// assert_eq!(parse_content_length(b" 7 "), Some(7));
/// assert_eq!(parse_content_length(b"-1"), None);
/// assert_eq!(parse_content_length(b"+1"), None); // 1*DIGIT (RFC 9110 §8.6)
/// ```
pub fn parse_content_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}
