//! Times as the whole microseconds since the Unix epoch that stores keep.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `t` as microseconds since the epoch (negative before it), saturating.
///
/// # Example
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
///
/// use cachio_core::backend::{from_micros, micros};
///
/// let t = UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
/// assert_eq!(micros(t), 1_700_000_000_123_456);
/// assert_eq!(from_micros(micros(t)), t);
/// ```
pub fn micros(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_micros()).map_or(i64::MIN, |us| -us),
    }
}

/// The time `us` microseconds after the epoch (before it when negative); the epoch itself when
/// the time cannot be represented.
pub fn from_micros(us: i64) -> SystemTime {
    let d = Duration::from_micros(us.unsigned_abs());
    if us >= 0 {
        UNIX_EPOCH.checked_add(d).unwrap_or(UNIX_EPOCH)
    } else {
        UNIX_EPOCH.checked_sub(d).unwrap_or(UNIX_EPOCH)
    }
}
