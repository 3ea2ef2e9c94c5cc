//! Fences: what orders a purge on one node with the commits of every node.
//!
//! A delete records the Redis server's time under the key's fence (`{PREFIX:HASH}:p`, in the
//! entry's slot; a variant key `K \0 v...` is fenced by its primary key `K`'s), and a purge by a
//! predicate records it under a floor for every key. A commit is refused when a fence or the
//! floor of its slot is at or after its response's request time minus the clock-skew allowance:
//! the response may describe the resource as it was before the purge.
//!
//! On a single server the floor is one key, `PREFIX:purged`. A Redis Cluster runs a script on
//! the keys of one slot only, so there is a floor in every slot (`{PREFIX:purged:N}`, N chosen
//! so that the key hashes to that slot), and a purge sets them all. On a cluster a variant
//! key's commit cannot read its primary key's fence (another slot); it is refused by floors
//! only, and what makes it reachable, the variant index under the primary key, is fenced: with
//! the request time of the variant committed just before it ([`VariantTimes`]), and by the
//! epochs of the indexes deleted under the key (`{PREFIX:HASH}:e`), never written back.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::record::Names;

/// The slots of a Redis Cluster.
const SLOTS: usize = 16_384;

/// How long a fence or a floor is kept: a fetch whose commit comes later than this after a
/// purge of its key is no longer ordered with it.
pub(crate) const FENCE_TTL: Duration = Duration::from_secs(3600);

/// The fence and floor key names of a store.
pub(crate) struct Fences {
    prefix: String,
    cluster: bool,
    /// `{PREFIX:purged:N}` for each slot, built when first needed.
    slot_floors: OnceLock<Vec<String>>,
}

impl Fences {
    pub(crate) fn new(prefix: &str, cluster: bool) -> Self {
        Fences {
            prefix: prefix.to_owned(),
            cluster,
            slot_floors: OnceLock::new(),
        }
    }

    /// The fence of `key`: its primary key's, in the primary's slot.
    pub(crate) fn fence(&self, key: &str) -> String {
        Names::new(&self.prefix, primary(key)).fence()
    }

    /// Every floor: the one key of a single server, or one per slot of a cluster.
    pub(crate) fn floors(&self) -> &[String] {
        if self.cluster {
            self.slot_floors()
        } else {
            self.single_floor()
        }
    }

    fn single_floor(&self) -> &[String] {
        self.slot_floors
            .get_or_init(|| vec![format!("{}:purged", self.prefix)])
    }

    fn slot_floors(&self) -> &[String] {
        self.slot_floors.get_or_init(|| {
            let mut floors: Vec<Option<String>> = vec![None; SLOTS];
            let mut missing = SLOTS;
            let mut n = 0u64;
            while missing > 0 {
                let tag = format!("{}:purged:{n}", self.prefix);
                let slot = slot_of(tag.as_bytes());
                if floors[slot].is_none() {
                    floors[slot] = Some(format!("{{{tag}}}"));
                    missing -= 1;
                }
                n += 1;
            }
            floors.into_iter().map(Option::unwrap_or_default).collect()
        })
    }

    /// The keys a commit of the entry named `names` under cache key `key` checks: the fence of
    /// its primary key (when in its slot, or on a single server) and the floor of its slot.
    pub(crate) fn guards(&self, key: &str, names: &Names) -> Vec<String> {
        let mut out = Vec::with_capacity(2);
        if !self.cluster || primary(key).len() == key.len() {
            out.push(self.fence(key));
        }
        if self.cluster {
            let record = names.record();
            let slot = slot_of(hash_tag(record.as_bytes()));
            out.push(self.slot_floors()[slot].clone());
        } else {
            out.push(self.single_floor()[0].clone());
        }
        out
    }
}

/// The request times of the variants this store committed last, by primary key and epoch, for
/// the commit of the variant index that follows each (an index carries no request time of its
/// own): so the index of a variant requested before a purge of its resource is refused too, also
/// on a cluster, where the variant's own commit cannot read the resource's fence.
#[derive(Default)]
pub(crate) struct VariantTimes(Mutex<HashMap<(String, u64), SystemTime>>);

/// The most variant request times kept; past it they are all forgotten (their indexes are then
/// ordered by the floors only).
const VARIANT_TIMES: usize = 4096;

impl VariantTimes {
    /// Notes that a response for `key` requested at `requested` is being committed, when `key`
    /// is a variant key.
    pub(crate) fn note(&self, key: &str, requested: SystemTime) {
        if let Some((primary, epoch)) = variant_of(key) {
            let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            if map.len() >= VARIANT_TIMES {
                map.clear();
            }
            map.insert((primary.to_owned(), epoch), requested);
        }
    }

    /// The request time of the variant whose index, of epoch `epoch`, is committed under
    /// `primary`.
    pub(crate) fn take(&self, primary: &str, epoch: u64) -> Option<SystemTime> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.remove(&(primary.to_owned(), epoch))
    }
}

/// The primary key and the epoch of a variant key `primary \0 v<epoch>:<hash>`.
fn variant_of(key: &str) -> Option<(&str, u64)> {
    let (primary, rest) = key.split_once('\0')?;
    let epoch = rest.strip_prefix('v')?.get(..16)?;
    Some((primary, u64::from_str_radix(epoch, 16).ok()?))
}

/// The primary key of `key`: the part before a variant's `\0`.
pub(crate) fn primary(key: &str) -> &str {
    key.split_once('\0').map_or(key, |(p, _)| p)
}

/// The oldest fence a commit of a response requested at `request_time` passes, in microseconds
/// since the Unix epoch (the scripts' unit): a fence at or after it refuses the commit.
pub(crate) fn threshold(request_time: SystemTime, skew: Duration) -> i64 {
    let micros = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX);
    let t = match request_time.duration_since(UNIX_EPOCH) {
        Ok(d) => micros(d),
        Err(e) => -micros(e.duration()),
    };
    t.saturating_sub(micros(skew))
}

/// The part of `key` Redis Cluster hashes: the first `{...}` with something inside, else all.
fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{')
        && let Some(len) = key[open + 1..].iter().position(|&b| b == b'}')
        && len > 0
    {
        return &key[open + 1..open + 1 + len];
    }
    key
}

/// The cluster slot of a hash tag: CRC16 (XMODEM) modulo 16384.
fn slot_of(tag: &[u8]) -> usize {
    let mut crc: u16 = 0;
    for &b in tag {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    usize::from(crc) % SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_those_redis_computes() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(slot_of(b"123456789"), 0x31c3 % SLOTS);
        assert_eq!(slot_of(hash_tag(b"foo")), 12182);
        assert_eq!(slot_of(hash_tag(b"{user1000}.following")), 3443);
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
    }

    #[test]
    fn every_slot_has_a_floor_in_it() {
        let fences = Fences::new("p", true);
        let floors = fences.floors();
        assert_eq!(floors.len(), SLOTS);
        for (slot, floor) in floors.iter().enumerate() {
            assert_eq!(slot_of(hash_tag(floor.as_bytes())), slot, "{floor}");
        }
        let names = Names::new("p", "http://x/");
        let guards = fences.guards("http://x/", &names);
        let slot = slot_of(hash_tag(names.record().as_bytes()));
        assert_eq!(guards, vec![names.fence(), floors[slot].clone()]);
    }

    #[test]
    fn variants_are_fenced_by_their_primary_key() {
        let single = Fences::new("p", false);
        let variant = "http://x/\0v0000000000000001:0000000000000002";
        assert_eq!(single.fence(variant), single.fence("http://x/"));
        let names = Names::new("p", variant);
        assert_eq!(
            single.guards(variant, &names),
            vec![single.fence("http://x/"), "p:purged".to_owned()]
        );
        // On a cluster the primary's fence is in another slot: the floor only.
        let cluster = Fences::new("p", true);
        assert_eq!(cluster.guards(variant, &names).len(), 1);
    }

    #[test]
    fn an_index_commit_finds_its_variants_request_time() {
        let times = VariantTimes::default();
        let t = UNIX_EPOCH + Duration::from_secs(7);
        times.note("http://x/", t);
        assert_eq!(
            times.take("http://x/", 0),
            None,
            "a primary key is no variant"
        );
        times.note("http://x/\0v00000000000000ab:0000000000000001", t);
        assert_eq!(times.take("http://x/", 0xac), None, "another epoch");
        assert_eq!(times.take("http://x/", 0xab), Some(t));
        assert_eq!(times.take("http://x/", 0xab), None, "taken once");
        assert_eq!(variant_of("http://x/\0vnothex!:1"), None);
    }

    #[test]
    fn the_threshold_allows_for_clock_skew() {
        let t = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let base = 1_800_000_000_000_000i64;
        assert_eq!(threshold(t, Duration::ZERO), base);
        assert_eq!(threshold(t, Duration::from_secs(1)), base - 1_000_000);
        assert_eq!(threshold(t, Duration::from_millis(1500)), base - 1_500_000);
        // A fence 0.9 s before the request time refuses the commit with a 1 s allowance (a
        // node whose clock runs ahead of Redis's), and not with none.
        let fence = base - 900_000;
        assert!(fence >= threshold(t, Duration::from_secs(1)));
        assert!(fence < threshold(t, Duration::ZERO));
        assert_eq!(
            threshold(UNIX_EPOCH - Duration::from_secs(1), Duration::ZERO),
            -1_000_000
        );
        assert!(
            threshold(t, Duration::MAX) < 0,
            "saturates, never overflows"
        );
    }
}
