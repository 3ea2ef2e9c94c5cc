//! The Lua scripts that change entries atomically.
//!
//! Each script touches one entry: its record key (`KEYS[1]`) and chunk keys, which share one hash
//! tag and so one cluster slot, as does its fence. The chunks of a replaced generation are found from the old
//! record's fixed-offset header (see `record.rs`) and are in the same slot too.

use std::sync::LazyLock;
use std::time::Duration;

use cachio_core::store::StoreError;
use redis::Script;

use crate::conn::Core;

/// Keys per `DEL` when deleting the chunks of an abandoned write.
const DELETE_BATCH: usize = 256;

/// `retire(record_key, old_record, keep_generation, grace_ms)`: lets the chunks of the
/// generation in `old_record` expire within `grace_ms` (at once when 0), unless the old record
/// is inline or its generation is `keep_generation`. Never lengthens a chunk's life.
const RETIRE: &str = r"
local function retire(record_key, old, keep, grace)
  if string.len(old) < 33 or string.sub(old, 1, 4) ~= 'CRR\1' then return end
  if string.byte(old, 5) % 2 == 1 then return end
  local gen = string.sub(old, 6, 13)
  if gen == keep then return end
  local hex = string.format('%02x%02x%02x%02x%02x%02x%02x%02x', string.byte(gen, 1, 8))
  local a, b, c, d = string.byte(old, 22, 25)
  local n = ((a * 256 + b) * 256 + c) * 256 + d
  local base = string.sub(record_key, 1, -2) .. 'c:' .. hex .. ':'
  for i = 0, n - 1 do
    local k = base .. i
    if grace > 0 then
      local t = redis.call('PTTL', k)
      if t == -1 or t > grace then redis.call('PEXPIRE', k, grace) end
    else
      redis.call('DEL', k)
    end
  end
end
";

/// Sets `KEYS[1]` to `ARGV[1]` with a time to live of `ARGV[2]` ms (0: none) and gives the chunk
/// keys `KEYS[2..=last]` the same expiry.
const SET_ENTRY: &str = r"
local function set_entry(record, ttl, last)
  if ttl > 0 then
    redis.call('SET', KEYS[1], record, 'PX', ttl)
    for i = 2, last do redis.call('PEXPIRE', KEYS[i], ttl) end
  else
    redis.call('SET', KEYS[1], record)
    for i = 2, last do redis.call('PERSIST', KEYS[i]) end
  end
end
";

/// `now_micros()`: the Redis server's clock in microseconds since the Unix epoch;
/// `index_epoch(record)`: the epoch (8 bytes) of a record holding a variant index, else nil (the
/// record layout of `record.rs`, then `Meta::encode`'s: `CHM1`, a u16 version, kind 2, the
/// epoch); `raise(key, now, ttl)`: sets the fence or floor `key` to `now` unless it is later
/// already, with a time to live of `ttl` ms.
const FENCE: &str = r"
local function now_micros()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end
local function index_epoch(old)
  if string.len(old) < 37 or string.sub(old, 1, 4) ~= 'CRR\1' then return nil end
  local a, b, c, d = string.byte(old, 26, 29)
  local m = 29 + ((a * 256 + b) * 256 + c) * 256 + d + 5
  if string.len(old) < m + 14 or string.sub(old, m, m + 3) ~= 'CHM1' then return nil end
  if string.byte(old, m + 6) ~= 2 then return nil end
  return string.sub(old, m + 7, m + 14)
end
local function raise(key, now, ttl)
  local old = tonumber(redis.call('GET', key) or '0') or 0
  if old > now then now = old end
  redis.call('SET', key, string.format('%.0f', now), 'PX', ttl)
end
";

/// Commit: `KEYS[1]` the record key, `KEYS[2..]` the new generation's chunks (all written
/// before), then `ARGV[4]` guard keys (the fence and the floor, `fence.rs`), then, when
/// `ARGV[6]` (a variant index's epoch) is not empty, the key's dead epochs; `ARGV[1]` the
/// record, `ARGV[2]` the time to live in ms (0: none), `ARGV[3]` the grace in ms for the
/// replaced generation's chunks, `ARGV[5]` the threshold in microseconds. Returns 0, and changes
/// nothing, when a chunk is missing (it expired or was evicted); 2, and changes nothing, when a
/// guard is at or after the threshold (purged since the response was requested) or the index's
/// epoch was deleted; else 1.
pub(crate) static COMMIT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{RETIRE}{SET_ENTRY}
local guards = tonumber(ARGV[4])
local dead = ARGV[6] ~= ''
local last = #KEYS - guards
if dead then last = last - 1 end
local threshold = tonumber(ARGV[5])
for i = last + 1, last + guards do
  local t = tonumber(redis.call('GET', KEYS[i]) or '')
  if t and t >= threshold then return 2 end
end
if dead and redis.call('SISMEMBER', KEYS[#KEYS], ARGV[6]) == 1 then return 2 end
for i = 2, last do
  if redis.call('EXISTS', KEYS[i]) == 0 then return 0 end
end
local old = redis.call('GET', KEYS[1])
set_entry(ARGV[1], tonumber(ARGV[2]), last)
if old then retire(KEYS[1], old, string.sub(ARGV[1], 6, 13), tonumber(ARGV[3])) end
return 1
"
    ))
});

/// Purge of one key: `KEYS[1]` the record key, `KEYS[2]` its fence, `KEYS[3]` its dead epochs;
/// `ARGV[1]` the grace in ms for its chunks, `ARGV[2]` the fence's time to live in ms. Raises
/// the fence to now, deletes the record (if any), and when it held a variant index, notes its
/// epoch as dead (an index of it is never written again). Returns 1 when it deleted a record,
/// else 0.
pub(crate) static PURGE_KEY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{RETIRE}{FENCE}
raise(KEYS[2], now_micros(), tonumber(ARGV[2]))
local old = redis.call('GET', KEYS[1])
if not old then return 0 end
redis.call('DEL', KEYS[1])
retire(KEYS[1], old, '', tonumber(ARGV[1]))
local epoch = index_epoch(old)
if epoch then
  redis.call('SADD', KEYS[3], epoch)
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[2]))
end
return 1
"
    ))
});

/// Raises the floor `KEYS[1]` to now, with a time to live of `ARGV[1]` ms. Returns 1.
pub(crate) static RAISE_FLOOR: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{FENCE}
raise(KEYS[1], now_micros(), tonumber(ARGV[1]))
return 1
"
    ))
});

/// Update: `KEYS[1]` the record key, `KEYS[2..]` its chunks; `ARGV[1]` the new record (same
/// generation), `ARGV[2]` the time to live in ms (0: none). Returns 0, and changes nothing, when
/// the entry is gone or has another generation by now, else 1.
pub(crate) static UPDATE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{SET_ENTRY}
local old = redis.call('GET', KEYS[1])
if not old or string.sub(old, 6, 13) ~= string.sub(ARGV[1], 6, 13) then return 0 end
set_entry(ARGV[1], tonumber(ARGV[2]), #KEYS)
return 1
"
    ))
});

/// Delete: `KEYS[1]` the record key; `ARGV[1]` the grace in ms for its chunks, `ARGV[2]` the
/// generation (8 bytes) the record must have, or empty for any. Returns 1 when it deleted a
/// record, else 0.
pub(crate) static DELETE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(&format!(
        "{RETIRE}
local old = redis.call('GET', KEYS[1])
if not old then return 0 end
if ARGV[2] ~= '' and string.sub(old, 6, 13) ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
retire(KEYS[1], old, '', tonumber(ARGV[1]))
return 1
"
    ))
});

/// The time to live of an entry, as the scripts take it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Expiry {
    /// No expiry (`ttl` `None`).
    Never,
    /// Expire after this many milliseconds (at least 1).
    Millis(u64),
    /// A `ttl` under a millisecond: store nothing, remove the entry.
    Now,
}

impl Expiry {
    pub(crate) fn of(ttl: Option<Duration>) -> Expiry {
        match ttl {
            None => Expiry::Never,
            Some(d) => match u64::try_from(d.as_millis()).unwrap_or(u64::MAX) {
                0 => Expiry::Now,
                ms => Expiry::Millis(ms),
            },
        }
    }

    /// The script argument: milliseconds, 0 for none.
    pub(crate) fn arg(self) -> u64 {
        match self {
            Expiry::Millis(ms) => ms,
            Expiry::Never | Expiry::Now => 0,
        }
    }
}

/// `d` in whole milliseconds, at least 1 (grace and pending times as the scripts take them).
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Runs `script` with `keys` and `args` through [`Core::exec`].
pub(crate) async fn run_script(
    core: &Core,
    what: &'static str,
    script: &redis::Script,
    keys: &[String],
    args: &[Vec<u8>],
) -> Result<i64, StoreError> {
    let mut invocation = script.prepare_invoke();
    for k in keys {
        invocation.key(k);
    }
    for a in args {
        invocation.arg(&a[..]);
    }
    let mut c = core.conn.clone();
    core.exec(what, invocation.invoke_async::<i64>(&mut c))
        .await
}

/// Deletes `keys` in batches, ignoring failures (they expire anyway).
pub(crate) async fn delete_keys(core: &Core, keys: &[String]) {
    for batch in keys.chunks(DELETE_BATCH) {
        let mut c = core.conn.clone();
        let _ = core
            .exec(
                "DEL",
                redis::cmd("DEL").arg(batch).query_async::<i64>(&mut c),
            )
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_rounds_down_to_milliseconds() {
        assert_eq!(Expiry::of(None), Expiry::Never);
        assert_eq!(Expiry::of(Some(Duration::ZERO)), Expiry::Now);
        assert_eq!(Expiry::of(Some(Duration::from_micros(999))), Expiry::Now);
        assert_eq!(
            Expiry::of(Some(Duration::from_micros(1_999))),
            Expiry::Millis(1)
        );
        assert_eq!(Expiry::of(Some(Duration::from_secs(60))).arg(), 60_000);
    }
}
