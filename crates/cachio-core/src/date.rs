//! HTTP-date parsing (RFC 9110 §5.6.7), tolerant where the RFC lets a recipient be.
//!
//! All three formats are read: the IMF-fixdate `Sun, 06 Nov 1994 08:49:37 GMT`, the obsolete
//! RFC 850 form `Sunday, 06-Nov-94 08:49:37 GMT` and ANSI C's asctime `Sun Nov  6 08:49:37 1994`.
//! Names of days and months and `GMT` are matched without regard to case (RFC 9111 §4.2 asks
//! caches to be lenient), and the day name is read but not checked against the date: it adds
//! nothing, and senders get it wrong (`Thu Aug  8 2050` is a Monday). A date that does not exist
//! (30 February, hour 24) is invalid.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const DAYS: [&str; 7] = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
];

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Parses `s` as an HTTP-date; `None` when it is none of the three formats or names no real time.
/// `now` places a two-digit RFC 850 year (RFC 9110 §5.6.7).
///
/// The layout of each format is kept to the letter (one space between parts, two digits for the
/// day of an IMF-fixdate, a four-digit year but in RFC 850's form): RFC 9111 §5.3 has a cache
/// treat any other `Expires` as already expired, and reading a malformed date as a future one
/// would serve responses their origin never allowed.
pub(crate) fn parse(s: &str, now: impl FnOnce() -> SystemTime) -> Option<SystemTime> {
    let s = s.trim_matches([' ', '\t']);
    let (day_name, rest) = s.split_once([',', ' '])?;
    if !is_day_name(day_name) {
        return None;
    }
    // No format has more than six parts after the day name: more is no HTTP-date.
    let (parts, n) = split_n::<6>(rest, ' ')?;
    let parts = &parts[..n];
    let (year, month, day, time) = if s.as_bytes()[day_name.len()] == b',' {
        match *parts {
            // IMF-fixdate: `, DD Mon YYYY HH:MM:SS GMT`.
            ["", day, month, year, time, gmt] if is_gmt(gmt) => {
                (four_digit_year(year)?, month, two_digits(day)?, time)
            }
            // RFC 850: `, DD-Mon-YY HH:MM:SS GMT`.
            ["", date, time, gmt] if is_gmt(gmt) => {
                let ([day, month, year], 3) = split_n::<3>(date, '-')? else {
                    return None;
                };
                let year = two_digit_year(two_digits(year)?, now());
                (year, month, two_digits(day)?, time)
            }
            _ => return None,
        }
    } else {
        // asctime: `Mon DD HH:MM:SS YYYY`, a day below 10 written with a space before it.
        let (month, day, time, year) = match *parts {
            [month, "", day, time, year] if day.len() == 1 => (month, day, time, year),
            [month, day, time, year] if day.len() == 2 => (month, day, time, year),
            _ => return None,
        };
        (four_digit_year(year)?, month, number(day)?, time)
    };
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))? as u32 + 1;
    if day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let secs = time_of_day(time)?;
    let days = days_from_civil(year, month, day);
    let at = days * 86_400 + i64::from(secs);
    match u64::try_from(at) {
        Ok(after) => UNIX_EPOCH.checked_add(Duration::from_secs(after)),
        Err(_) => UNIX_EPOCH.checked_sub(Duration::from_secs(at.unsigned_abs())),
    }
}

/// The parts of `s` between `sep`s, in an array (dates are parsed on every miss: no allocation),
/// with how many there are; `None` when there are more than `N`.
fn split_n<const N: usize>(s: &str, sep: char) -> Option<([&str; N], usize)> {
    let mut out = [""; N];
    let mut n = 0;
    for part in s.split(sep) {
        *out.get_mut(n)? = part;
        n += 1;
    }
    Some((out, n))
}

fn is_gmt(zone: &str) -> bool {
    zone.eq_ignore_ascii_case("gmt")
}

/// Exactly two digits.
fn two_digits(s: &str) -> Option<u32> {
    (s.len() == 2).then(|| number(s)).flatten()
}

fn is_day_name(name: &str) -> bool {
    DAYS.iter()
        .any(|d| d.eq_ignore_ascii_case(name) || d[..3].eq_ignore_ascii_case(name))
}

/// A run of ASCII digits as a number (no sign, no spaces).
fn number(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn four_digit_year(s: &str) -> Option<i64> {
    (s.len() == 4).then(|| number(s)).flatten().map(i64::from)
}

/// RFC 9110 §5.6.7: a two-digit year more than 50 years in the future is the most recent past
/// year with those digits.
fn two_digit_year(yy: u32, now: SystemTime) -> i64 {
    let this_year = civil_year(now);
    let century = this_year - this_year.rem_euclid(100);
    let year = century + i64::from(yy);
    if year > this_year + 50 {
        year - 100
    } else {
        year
    }
}

/// `HH:MM:SS` as seconds into the day; a leap second (`:60`) counts as `:59`.
fn time_of_day(s: &str) -> Option<u32> {
    let mut parts = s.split(':');
    let mut field = |max: u32| {
        let p = parts.next()?;
        (p.len() == 2)
            .then(|| number(p))
            .flatten()
            .filter(|&n| n <= max)
    };
    let (h, m, sec) = (field(23)?, field(59)?, field(60)?.min(59));
    parts.next().is_none().then_some(h * 3600 + m * 60 + sec)
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 to the given date (proleptic Gregorian; H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The calendar year `t` falls in (UTC).
fn civil_year(t: SystemTime) -> i64 {
    let days = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() / 86_400) as i64,
        Err(e) => -((e.duration().as_secs() / 86_400) as i64) - 1,
    };
    // The inverse of `days_from_civil`, for the year only.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let year = yoe + era * 400;
    if mp >= 10 { year + 1 } else { year }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Option<u64> {
        let now = UNIX_EPOCH + Duration::from_secs(1_795_000_000); // 2026
        parse(s, || now).map(|t| t.duration_since(UNIX_EPOCH).unwrap().as_secs())
    }

    #[test]
    fn rfc9110_5_6_7_the_three_formats_name_the_same_time() {
        let t = Some(784_111_777);
        assert_eq!(at("Sun, 06 Nov 1994 08:49:37 GMT"), t);
        assert_eq!(at("Sunday, 06-Nov-94 08:49:37 GMT"), t);
        assert_eq!(at("Sun Nov  6 08:49:37 1994"), t);
    }

    #[test]
    fn rfc9110_5_6_7_names_in_any_case_and_the_day_name_unchecked() {
        let t = Some(784_111_777);
        assert_eq!(at("sun, 06 nov 1994 08:49:37 gmt"), t);
        assert_eq!(at("SUNDAY, 06-NOV-94 08:49:37 GMT"), t);
        // 6 November 1994 was a Sunday; a wrong day name does not change the date.
        assert_eq!(at("Wed, 06 Nov 1994 08:49:37 GMT"), t);
        assert_eq!(
            at("Thu Aug  8 02:01:18 2050"),
            at("Mon, 08 Aug 2050 02:01:18 GMT")
        );
        assert!(at("Thu Aug  8 02:01:18 2050").is_some());
    }

    #[test]
    fn rfc9110_5_6_7_two_digit_years_within_fifty_years_ahead() {
        // From 2026: `76` is 2076 (50 years ahead), `77` is 1977.
        assert_eq!(
            at("Sunday, 01-Jan-76 00:00:00 GMT"),
            at("Wed, 01 Jan 2076 00:00:00 GMT")
        );
        assert_eq!(
            at("Sunday, 01-Jan-77 00:00:00 GMT"),
            at("Sat, 01 Jan 1977 00:00:00 GMT")
        );
    }

    #[test]
    fn rfc9110_5_6_7_malformed_or_impossible_dates_are_invalid() {
        for bad in [
            "Sun, 30 Feb 2026 00:00:00 GMT",
            "Sun, 29 Feb 2026 00:00:00 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT",
            "Sun, 06 Nov 1994 08:60:00 GMT",
            "Sun, 00 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sun, 06 Nov 1994 08:49:37",
            "Sun, 06 Nov 1994 08:49:37 GMT extra",
            "Sun, 06 Nox 1994 08:49:37 GMT",
            "Sun, 06 Nov 94 08:49:37 GMT",
            "Funday, 06 Nov 1994 08:49:37 GMT",
            "Sun, +6 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 8:49:37 GMT",
            "Thu, 18  Aug  2050 02:01:18 GMT",
            "Thu,  18 Aug 2050 02:01:18 GMT",
            "Thu, 18-Aug-2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 02.01.18 GMT",
            "Thu 18 Aug 2050 02:01:18 GMT",
            "Thu, 18 Aug 2050 02:01:18 AEST",
            "Thu, 8 Aug 2050 02:01:18 GMT",
            "Thu Aug 8 02:01:18 2050",
            "Thu Aug   8 02:01:18 2050",
            "Thu Aug  18 02:01:18 2050",
            "Thursday, 18-Aug-50  02:01:18 GMT",
            "Sunday, 06-Nov-94-1 08:49:37 GMT",
            "Sunday, 06-Nov 08:49:37 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT a b c d e f",
            "0",
            "-1",
            "",
            "Sun,",
        ] {
            assert_eq!(at(bad), None, "{bad}");
        }
        assert!(at("Sun, 29 Feb 2028 00:00:00 GMT").is_some());
        assert_eq!(
            at("Sun, 06 Nov 1994 08:49:60 GMT"),
            at("Sun, 06 Nov 1994 08:49:59 GMT")
        );
    }

    #[test]
    fn dates_before_1970_are_before_the_epoch() {
        let now = SystemTime::now();
        let t = parse("Thu, 01 Jan 1925 00:00:00 GMT", || now).unwrap();
        assert!(t < UNIX_EPOCH);
        assert_eq!(
            UNIX_EPOCH.duration_since(t).unwrap().as_secs(),
            45 * 365 * 86_400 + 11 * 86_400
        );
    }

    /// Every time written by `httpdate` reads back the same.
    #[test]
    fn reads_back_what_httpdate_writes() {
        let now = SystemTime::now();
        let mut secs: u64 = 1;
        while secs < 253_402_300_799 {
            let t = UNIX_EPOCH + Duration::from_secs(secs);
            let text = httpdate::fmt_http_date(t);
            assert_eq!(parse(&text, || now), Some(t), "{text}");
            secs = secs * 3 + 7_777;
        }
        assert_eq!(civil_year(UNIX_EPOCH), 1970);
        assert_eq!(civil_year(UNIX_EPOCH - Duration::from_secs(1)), 1969);
    }
}
