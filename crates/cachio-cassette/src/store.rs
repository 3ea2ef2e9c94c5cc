//! The [`Store`] contract of a [`Cassette`].

use std::sync::Arc;
use std::time::Duration;

use cachio_core::meta::Meta;
use cachio_core::store::{ErrorKind, Hit, Store, StoreError};

use crate::{Cassette, CassetteBody, CassetteWriter, Mode, Names, blocking, file, writer};

impl Store for Cassette {
    type Body = CassetteBody;
    type Writer = CassetteWriter;

    async fn get(&self, key: &str) -> Result<Option<Hit<CassetteBody>>, StoreError> {
        let this = self.clone();
        let key = key.to_owned();
        blocking(move || {
            let found = this.read(&key)?;
            let found = match (this.inner.mode, found) {
                // Recordings from before the run are not used; a resource's list of variants is,
                // so that its variants keep their names when they are recorded again.
                (Mode::Record, Some((meta @ Meta::Response(_), _)))
                    if !this.inner.recorded_in_run(&Names::of(&key).json) =>
                {
                    drop(meta);
                    None
                }
                (_, found) => found,
            };
            Ok(match found {
                Some((meta, body)) => Some(Hit {
                    meta: file::shared(meta),
                    body,
                }),
                None if this.inner.mode == Mode::Replay && !key.contains('\0') => {
                    Some(this.unmatched(&key))
                }
                None => None,
            })
        })
        .await
    }

    fn begin(&self, key: &str) -> Result<CassetteWriter, StoreError> {
        CassetteWriter::start(self.inner.clone(), key.to_owned())
    }

    async fn update(
        &self,
        key: &str,
        previous: &Meta,
        meta: Arc<Meta>,
        _ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let this = self.clone();
        let key = key.to_owned();
        let previous = previous.clone();
        blocking(move || {
            let names = Names::of(&key);
            let path = this.inner.dir.join(&names.json);
            let io = |e| StoreError::new(ErrorKind::Io, e);
            let _change = this.inner.write_lock();
            let bytes = match std::fs::read(&path) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(io(e)),
            };
            let Some(entry) = file::parse(&bytes).ok().filter(|e| e.key() == key) else {
                return Ok(false);
            };
            if !entry.meta().is_ok_and(|m| m.same_as(&previous)) {
                return Ok(false);
            }
            let body = match &*meta {
                Meta::Response(_) => entry.body().cloned(),
                Meta::Variants(_) => None,
            };
            let new = file::to_file(&key, &meta, body.clone(), &this.inner.redact)
                .map_err(|e| StoreError::new(ErrorKind::Other, e))?;
            let tmp = this.inner.dir.join(format!(
                ".{}-{}.json.tmp",
                std::process::id(),
                this.inner
                    .next_temp
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            std::fs::write(&tmp, file::render(&new)).map_err(io)?;
            if let Err(e) = std::fs::rename(&tmp, &path) {
                let _ = std::fs::remove_file(&tmp);
                return Err(io(e));
            }
            if body.is_none()
                && let Some(old) = entry.body().filter(|b| file::plain_name(&b.file))
            {
                writer::remove_if_present(&this.inner.dir.join(&old.file)).map_err(io)?;
            }
            this.inner.recorded(&names.json);
            Ok(true)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let this = self.clone();
        let key = key.to_owned();
        blocking(move || {
            let names = Names::of(&key);
            // With the body file the entry names.
            let named = std::fs::read(this.inner.dir.join(&names.json))
                .ok()
                .and_then(|b| file::parse(&b).ok())
                .filter(|e| e.key() == key)
                .and_then(|e| e.body().map(|b| b.file.clone()));
            this.remove(&names.json, named.as_deref())
                .map_err(|e| StoreError::new(ErrorKind::Io, e))
        })
        .await
    }

    async fn purge<F>(&self, matches: F) -> Result<u64, StoreError>
    where
        F: Fn(&str, &Meta) -> bool + Send + Sync + 'static,
    {
        let this = self.clone();
        blocking(move || {
            let mut removed = 0;
            for (name, entry) in this.entries()? {
                let key = entry.key();
                let meta = match entry.meta() {
                    Ok(m) => m,
                    Err(e) => {
                        tracing::warn!(file = name, "cassette entry unreadable, skipped: {e}");
                        continue;
                    }
                };
                if matches(&key, &meta) {
                    this.remove(&name, entry.body().map(|b| b.file.as_str()))
                        .map_err(|e| StoreError::new(ErrorKind::Io, e))?;
                    removed += 1;
                }
            }
            Ok(removed)
        })
        .await
    }
}
