//! The facts freshness reads of a stored head, packed small.

use std::time::SystemTime;

use super::{Directives, Facts, from_micros, micros};

/// [`Facts`] as a stored head keeps them, in 64 bytes instead of 140: the delta-seconds of
/// both fields in `u32`s (none: `u32::MAX`, above every valid value), their flags in a byte each,
/// and the dates (whole seconds, as HTTP-dates are) in `i64`s of seconds. Read back by
/// [`ResponseMeta::facts`].
#[derive(Clone, Copy, Debug)]
pub(super) struct PackedFacts {
    /// `max-age`, `s-maxage`, `stale-while-revalidate`, `stale-if-error` of `Cache-Control`, then
    /// of `CDN-Cache-Control`.
    pub(super) secs: [u32; 8],
    /// The flags of `Cache-Control`, then of `CDN-Cache-Control`.
    pub(super) flags: [u8; 2],
    pub(super) age: u32,
    pub(super) date: i64,
    pub(super) expires: i64,
    pub(super) last_modified: i64,
}

pub(super) const NO_SECS: u32 = u32::MAX;
pub(super) const NO_DATE: i64 = i64::MIN;
pub(super) const BAD_DATE: i64 = i64::MIN + 1;

pub(super) const NO_CACHE: u8 = 1;
pub(super) const MUST_REVALIDATE: u8 = 1 << 1;
pub(super) const PROXY_REVALIDATE: u8 = 1 << 2;
pub(super) const PUBLIC: u8 = 1 << 3;
pub(super) const PRIVATE: u8 = 1 << 4;
pub(super) const PRIVATE_FIELDS: u8 = 1 << 5;
pub(super) const IMMUTABLE: u8 = 1 << 6;
/// Set when the field is present.
pub(super) const PRESENT: u8 = 1 << 7;

pub(super) fn pack_directives(d: Option<&Directives>, secs: &mut [u32], flags: &mut u8) {
    let Some(d) = d else {
        secs.fill(NO_SECS);
        *flags = 0;
        return;
    };
    let pack = |v: Option<u32>| v.map_or(NO_SECS, |n| n.min(NO_SECS - 1));
    secs.copy_from_slice(&[
        pack(d.max_age),
        pack(d.s_maxage),
        pack(d.stale_while_revalidate),
        pack(d.stale_if_error),
    ]);
    let flag = |set: bool, bit: u8| if set { bit } else { 0 };
    *flags = PRESENT
        | flag(d.no_cache, NO_CACHE)
        | flag(d.must_revalidate, MUST_REVALIDATE)
        | flag(d.proxy_revalidate, PROXY_REVALIDATE)
        | flag(d.public, PUBLIC)
        | flag(d.private, PRIVATE)
        | flag(d.private_fields, PRIVATE_FIELDS)
        | flag(d.immutable, IMMUTABLE);
}

pub(super) fn unpack_directives(secs: &[u32], flags: u8) -> Directives {
    let secs = |i: usize| (secs[i] != NO_SECS).then_some(secs[i]);
    let flag = |bit: u8| flags & bit != 0;
    Directives {
        max_age: secs(0),
        s_maxage: secs(1),
        stale_while_revalidate: secs(2),
        stale_if_error: secs(3),
        no_cache: flag(NO_CACHE),
        must_revalidate: flag(MUST_REVALIDATE),
        proxy_revalidate: flag(PROXY_REVALIDATE),
        public: flag(PUBLIC),
        private: flag(PRIVATE),
        private_fields: flag(PRIVATE_FIELDS),
        immutable: flag(IMMUTABLE),
    }
}

pub(super) fn packed_date(secs: i64) -> Option<SystemTime> {
    (secs > BAD_DATE).then(|| from_micros(secs.saturating_mul(1_000_000)))
}

impl PackedFacts {
    pub(super) fn pack(f: &Facts) -> Self {
        let date = |t: Option<SystemTime>| {
            t.map_or(NO_DATE, |t| (micros(t) / 1_000_000).max(BAD_DATE + 1))
        };
        let mut packed = Self {
            secs: [NO_SECS; 8],
            flags: [0; 2],
            age: f.age.map_or(NO_SECS, |a| a.min(NO_SECS - 1)),
            date: date(f.date),
            expires: match f.expires {
                None => NO_DATE,
                Some(None) => BAD_DATE,
                Some(t) => date(t),
            },
            last_modified: date(f.last_modified),
        };
        let (cc, cdn) = packed.secs.split_at_mut(4);
        let [cc_flags, cdn_flags] = &mut packed.flags;
        pack_directives(Some(&f.cache_control), cc, cc_flags);
        pack_directives(f.cdn_cache_control.as_ref(), cdn, cdn_flags);
        packed
    }

    pub(super) fn unpack(&self) -> Facts {
        let date = packed_date;
        Facts {
            cache_control: unpack_directives(&self.secs[..4], self.flags[0]),
            cdn_cache_control: (self.flags[1] & PRESENT != 0)
                .then(|| unpack_directives(&self.secs[4..], self.flags[1])),
            date: date(self.date),
            expires: match self.expires {
                NO_DATE => None,
                BAD_DATE => Some(None),
                s => Some(date(s)),
            },
            last_modified: date(self.last_modified),
            age: (self.age != NO_SECS).then_some(self.age),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn packed_facts_read_back_what_was_parsed() {
        let t = |s: u64| Some(UNIX_EPOCH + Duration::from_secs(s));
        let all = Directives {
            max_age: Some(0),
            s_maxage: Some(u32::MAX),
            stale_while_revalidate: Some(1 << 31),
            stale_if_error: None,
            no_cache: true,
            must_revalidate: false,
            proxy_revalidate: true,
            public: false,
            private: true,
            private_fields: false,
            immutable: true,
        };
        for facts in [
            Facts::default(),
            Facts {
                cache_control: all,
                cdn_cache_control: Some(Directives::default()),
                date: t(1_700_000_000),
                expires: Some(None),
                last_modified: t(0),
                age: Some(0),
            },
            Facts {
                cache_control: Directives::default(),
                cdn_cache_control: Some(all),
                date: None,
                expires: Some(t(253_402_300_799)),
                last_modified: None,
                age: Some(1 << 31),
            },
        ] {
            let mut expected = facts;
            // Delta-seconds are at most 2^31: u32::MAX is the packed form's "none".
            for d in [
                Some(&mut expected.cache_control),
                expected.cdn_cache_control.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                d.s_maxage = d.s_maxage.map(|s| s.min(u32::MAX - 1));
            }
            assert_eq!(PackedFacts::pack(&facts).unpack(), expected);
        }
    }
}
