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
        self.get_as(key, http::Method::GET).await
    }

    /// As [`get`](Store::get); a replay miss names `request`'s method.
    async fn get_for(
        &self,
        key: &str,
        request: &http::request::Parts,
    ) -> Result<Option<Hit<CassetteBody>>, StoreError> {
        self.get_as(key, request.method.clone()).await
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

impl Cassette {
    /// The entry under `key`, or in replay the answer naming a request of `method` that has no
    /// recording.
    async fn get_as(
        &self,
        key: &str,
        method: http::Method,
    ) -> Result<Option<Hit<CassetteBody>>, StoreError> {
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
                    Some(this.unmatched(&key, method))
                }
                None => None,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bytes::Bytes;
    use http_body_util::{BodyExt, Empty, Full};
    use tower::{Layer, ServiceExt};

    use crate::{Cassette, Mode, Unmatched};

    /// A request the replaying cassette has no recording for is answered with a `504` that
    /// names its method, `HEAD` as well as `GET`, and never reaches the origin.
    #[tokio::test]
    async fn a_replay_miss_names_the_request_method() {
        let dir = tempfile::tempdir().unwrap();
        let cassette = Cassette::open(dir.path(), Mode::Replay).unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&calls);
        let origin = tower::service_fn(move |_req: http::Request<Empty<Bytes>>| {
            seen.fetch_add(1, Ordering::SeqCst);
            async {
                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::new())))
            }
        });
        let svc = cassette.layer().layer(origin);
        let url = "http://127.0.0.1:9/missing";
        for method in [http::Method::HEAD, http::Method::GET] {
            let req = http::Request::builder()
                .method(method.clone())
                .uri(url)
                .body(Empty::new())
                .unwrap();
            let res = svc.clone().oneshot(req).await.unwrap();
            assert_eq!(res.status(), 504, "{method}");
            let unmatched = Unmatched::from_response(&res).expect("a replay miss");
            assert_eq!(unmatched.method, method);
            assert_eq!(unmatched.url, url);
            let body = res.into_body().collect().await.unwrap().to_bytes();
            if method == http::Method::HEAD {
                assert!(body.is_empty());
            } else {
                let text = String::from_utf8(body.to_vec()).unwrap();
                assert!(
                    text.contains(&format!("no recording for GET {url}")),
                    "{text}"
                );
            }
        }
        assert_eq!(
            calls.load(Ordering::SeqCst),
            0,
            "a replay never reaches the origin"
        );
    }
}
