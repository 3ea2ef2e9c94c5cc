//! The [`Store`] contract on Redis: every call runs on the store's own runtime, through the
//! circuit breaker.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use cachio_core::meta::Meta;
use cachio_core::store::{ErrorKind, Hit, Store, StoreError};

use crate::conn::Core;
use crate::fence::{self, FENCE_TTL};
use crate::record::{self, Names, StoredBody};
use crate::scripts::{self, Expiry, millis, run_script};
use crate::{RedisBody, RedisStore, RedisWriter};

/// Records read per `MGET` while purging.
const PURGE_BATCH: usize = 16;

impl RedisStore {
    fn check_open(&self) -> Result<(), StoreError> {
        let core = &self.shared.core;
        if core.breaker.is_open() {
            Err(core.refused())
        } else {
            Ok(())
        }
    }

    /// Runs a script for the entry named by `names`, on the store's runtime.
    async fn script(
        &self,
        what: &'static str,
        script: &'static redis::Script,
        keys: Vec<String>,
        args: Vec<Vec<u8>>,
    ) -> Result<i64, StoreError> {
        let core = Arc::clone(&self.shared.core);
        self.shared
            .runtime
            .run(async move { run_script(&core, what, script, &keys, &args).await })
            .await
    }

    /// Deletes the record under `names` (only if it still has `generation`, when given).
    async fn delete_record(
        &self,
        names: &Names,
        generation: Option<u64>,
    ) -> Result<bool, StoreError> {
        let grace = millis(self.shared.core.settings.retired_grace);
        let generation = generation.map_or_else(Vec::new, |g| g.to_be_bytes().to_vec());
        let n = self
            .script(
                "delete",
                &scripts::DELETE,
                vec![names.record()],
                vec![grace.to_string().into_bytes(), generation],
            )
            .await?;
        Ok(n == 1)
    }

    /// Removes a corrupt record in the background.
    fn drop_corrupt(&self, names: &Names, why: &StoreError) {
        let core = Arc::clone(&self.shared.core);
        core.counters.corrupt.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(error = %why, key = %names.record(), "removing a corrupt Redis record");
        let record = names.record();
        self.shared.runtime.handle.spawn(async move {
            let mut c = core.conn.clone();
            let _ = core
                .exec(
                    "DEL",
                    redis::cmd("DEL").arg(&record).query_async::<i64>(&mut c),
                )
                .await;
        });
    }
}

impl Store for RedisStore {
    type Body = RedisBody;
    type Writer = RedisWriter;

    async fn get(&self, key: &str) -> Result<Option<Hit<RedisBody>>, StoreError> {
        self.check_open()?;
        let names = Names::new(self.prefix(), key);
        let record_key = names.record();
        let mut cmd = redis::cmd("GET");
        cmd.arg(&record_key);
        let found: Option<Bytes> = self
            .shared
            .core
            .read(&self.shared.runtime, "GET", cmd)
            .await?;
        let Some(bytes) = found else {
            return Ok(None);
        };
        let record = match record::decode(bytes) {
            Ok(r) => r,
            Err(e) if e.kind() == ErrorKind::UnknownFormat => {
                tracing::debug!(error = %e, key, "a Redis record of another format: a miss");
                return Ok(None);
            }
            Err(e) => {
                self.drop_corrupt(&names, &e);
                return Ok(None);
            }
        };
        if record.key != key {
            // Another key with the same hash.
            return Ok(None);
        }
        let meta = match record.decode_meta() {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::UnknownFormat => return Ok(None),
            Err(e) => {
                self.drop_corrupt(&names, &e);
                return Ok(None);
            }
        };
        let body = match record.body {
            StoredBody::Inline(body) => RedisBody::inline(body),
            StoredBody::Chunks(crcs) => {
                let keys = names.chunks(record.generation, crcs.len() as u32);
                let mut cmd = redis::cmd("EXISTS");
                cmd.arg(&keys);
                let present: u64 = self
                    .shared
                    .core
                    .read(&self.shared.runtime, "EXISTS", cmd)
                    .await?;
                if present != crcs.len() as u64 {
                    // A chunk expired or was evicted: the entry is gone.
                    self.shared
                        .core
                        .counters
                        .corrupt
                        .fetch_add(1, Ordering::Relaxed);
                    let _ = self.delete_record(&names, Some(record.generation)).await;
                    return Ok(None);
                }
                RedisBody::chunked(
                    Arc::clone(&self.shared),
                    names,
                    record.generation,
                    record.len,
                    crcs,
                )
            }
        };
        Ok(Some(Hit {
            meta: Arc::new(meta),
            body,
        }))
    }

    fn begin(&self, key: &str) -> Result<RedisWriter, StoreError> {
        self.check_open()?;
        Ok(RedisWriter::new(
            Arc::clone(&self.shared),
            key,
            Names::new(self.prefix(), key),
        ))
    }

    async fn update(
        &self,
        key: &str,
        previous: &Meta,
        meta: Arc<Meta>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        self.check_open()?;
        let names = Names::new(self.prefix(), key);
        let expiry = Expiry::of(ttl);
        if expiry == Expiry::Now {
            return self.delete_record(&names, None).await;
        }
        let record_key = names.record();
        let mut cmd = redis::cmd("GET");
        cmd.arg(&record_key);
        let found: Option<Bytes> = self
            .shared
            .core
            .read(&self.shared.runtime, "GET", cmd)
            .await?;
        let Some(bytes) = found else {
            return Ok(false);
        };
        let record = match record::decode(bytes) {
            Ok(r) if r.key == key => r,
            _ => return Ok(false),
        };
        // Another entry was written under the key since `previous` was read: its body is not the
        // one `meta` describes. (The script checks that the generation read here is still there.)
        if *record.meta != *previous.encode() {
            return Ok(false);
        }
        let mut keys = vec![names.record()];
        keys.extend(names.chunks(record.generation, record.chunk_count()));
        let updated = record.with_meta(&meta.encode());
        let n = self
            .script(
                "update",
                &scripts::UPDATE,
                keys,
                vec![updated, expiry.arg().to_string().into_bytes()],
            )
            .await?;
        Ok(n == 1)
    }

    /// Deletes the entry and raises its key's fence, so that no commit of a response requested
    /// before lands after it, on any node (see `fence.rs`). A variant key's delete (an old variant
    /// dropped) raises no fence.
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.check_open()?;
        let names = Names::new(self.prefix(), key);
        if fence::primary(key).len() != key.len() {
            return self.delete_record(&names, None).await.map(|_| ());
        }
        let settings = &self.shared.core.settings;
        let grace = millis(settings.retired_grace).to_string().into_bytes();
        let fence_ttl = millis(FENCE_TTL).to_string().into_bytes();
        self.script(
            "delete",
            &scripts::PURGE_KEY,
            vec![names.record(), names.fence(), names.dead_epochs()],
            vec![grace, fence_ttl],
        )
        .await
        .map(|_| ())
    }

    fn max_body_size(&self) -> Option<u64> {
        Some(self.shared.core.settings.max_object)
    }

    /// `SCAN`s the prefix's records (on every master of a cluster), offers each to `matches`,
    /// and deletes the ones it picks that were not replaced meanwhile. See the [crate]
    /// documentation.
    async fn purge<F>(&self, matches: F) -> Result<u64, StoreError>
    where
        F: Fn(&str, &Meta) -> bool + Send + Sync + 'static,
    {
        self.check_open()?;
        let core = Arc::clone(&self.shared.core);
        self.shared
            .runtime
            .run(async move { purge(&core, &matches).await })
            .await
    }
}

async fn purge<F>(core: &Core, matches: &F) -> Result<u64, StoreError>
where
    F: Fn(&str, &Meta) -> bool,
{
    // The floors first: a commit after them is refused, one before them is found by the scan.
    raise_floors(core).await?;
    let prefix = core.settings.prefix.clone();
    let pattern = record::record_pattern(&prefix);
    let masters = core.exec("CLUSTER SLOTS", core.conn.masters()).await?;
    let nodes: Vec<Option<(String, u16)>> = match masters {
        None => vec![None],
        Some(m) => m.into_iter().map(Some).collect(),
    };
    let grace = millis(core.settings.retired_grace).to_string().into_bytes();
    let mut removed = 0u64;
    for node in &nodes {
        let mut cursor = 0u64;
        loop {
            let (next, keys) = core
                .exec("SCAN", core.conn.scan(node.as_ref(), cursor, &pattern, 500))
                .await?;
            for batch in keys.chunks(PURGE_BATCH) {
                let mut c = core.conn.clone();
                let values: Vec<Option<Bytes>> = core
                    .exec("MGET", redis::cmd("MGET").arg(batch).query_async(&mut c))
                    .await?;
                for (record_key, value) in batch.iter().zip(values) {
                    let Some(value) = value else { continue };
                    let Ok(rec) = record::decode(value) else {
                        continue;
                    };
                    let Ok(meta) = rec.decode_meta() else {
                        continue;
                    };
                    if !matches(&rec.key, &meta) {
                        continue;
                    }
                    let n = run_script(
                        core,
                        "delete",
                        &scripts::DELETE,
                        std::slice::from_ref(record_key),
                        &[grace.clone(), rec.generation.to_be_bytes().to_vec()],
                    )
                    .await?;
                    removed += u64::try_from(n).unwrap_or(0);
                }
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(removed)
}

/// How many floors are raised at once on a cluster.
const FLOORS_AT_ONCE: usize = 64;

/// How many times a floor is tried before the purge fails (a cluster's purge raises 16 384).
const FLOOR_TRIES: usize = 3;

/// Raises every floor to Redis's time now: one key on a single server, one per slot on a
/// cluster (`fence.rs`). A floor whose call fails is tried again, up to [`FLOOR_TRIES`] times.
async fn raise_floors(core: &Core) -> Result<(), StoreError> {
    let ttl = millis(FENCE_TTL).to_string().into_bytes();
    let ttl = std::slice::from_ref(&ttl);
    for batch in core.fences.floors().chunks(FLOORS_AT_ONCE) {
        let mut pending: Vec<&String> = batch.iter().collect();
        for attempt in 1..=FLOOR_TRIES {
            let calls = pending.iter().map(|floor| {
                run_script(
                    core,
                    "raise floor",
                    &scripts::RAISE_FLOOR,
                    std::slice::from_ref(*floor),
                    ttl,
                )
            });
            let results = futures_util::future::join_all(calls).await;
            let mut failed = Vec::new();
            let mut error = None;
            for (floor, result) in pending.into_iter().zip(results) {
                if let Err(e) = result {
                    failed.push(floor);
                    error = Some(e);
                }
            }
            match error {
                None => break,
                Some(e) if attempt == FLOOR_TRIES => return Err(e),
                Some(_) => pending = failed,
            }
        }
    }
    Ok(())
}
