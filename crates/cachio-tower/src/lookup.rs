//! Lookup: the stored response a request may be answered with (RFC 9111 §4), through the
//! resource's variant index when its responses vary (§4.1).

use std::sync::Arc;
use std::time::SystemTime;

use cachio_core::key::variant_key;
use cachio_core::meta::{Meta, ResponseMeta, VaryIndex};
use cachio_core::policy::vary;
use cachio_core::store::{Hit, Store, StoreError};

use crate::config::Ctx;
use crate::stats::Event;

/// A store read, as `get` gives it.
pub(crate) type Read<B> = Result<Option<Hit<B>>, StoreError>;

/// The outcome of looking a request up.
pub(crate) enum Lookup<B> {
    Found(Found<B>),
    UriMiss,
    VaryMiss { index: VaryIndex },
}

/// Looks `key` up for `request`, starting from `first` when the store has been read already.
pub(crate) async fn lookup<St: Store>(
    cx: &Ctx<St>,
    key: &str,
    request: &http::request::Parts,
    first: Option<Read<St::Body>>,
) -> Lookup<St::Body> {
    let store = &cx.store;
    let headers = &request.headers;
    let read = match first {
        Some(read) => read,
        None => store.get_for(key, request).await,
    };
    let hit = match read {
        Ok(Some(hit)) => hit,
        Ok(None) => return Lookup::UriMiss,
        Err(e) => {
            cx.config.count(Event::StoreError);
            tracing::warn!(key, error = %e, "cache store read failed; treated as a miss");
            return Lookup::UriMiss;
        }
    };
    match &*hit.meta {
        Meta::Response(_) => Lookup::Found(Found {
            meta: hit.meta,
            body: hit.body,
            variant_key: None,
            index: None,
            at: cx.now(),
        }),
        Meta::Variants(index) => {
            let index = index.clone();
            drop(hit);
            let values = vary::request_values(headers, &index.names);
            let vkey = variant_key(key, index.epoch, &values);
            // Boxed: a resource that varies is the rarer case, and the future of every lookup
            // would otherwise be as large as two store reads.
            match Box::pin(store.get(&vkey)).await {
                Ok(Some(Hit { meta, body })) => match &*meta {
                    Meta::Response(r) if r.vary_values() == values.as_slice() => {
                        Lookup::Found(Found {
                            meta,
                            body,
                            variant_key: Some(vkey),
                            index: Some(index),
                            at: cx.now(),
                        })
                    }
                    _ => Lookup::VaryMiss { index },
                },
                Ok(None) => Lookup::VaryMiss { index },
                Err(e) => {
                    cx.config.count(Event::StoreError);
                    tracing::warn!(key = vkey, error = %e, "cache store read failed; treated as a miss");
                    Lookup::VaryMiss { index }
                }
            }
        }
    }
}

/// A stored response a lookup found.
pub(crate) struct Found<B> {
    /// Always a [`Meta::Response`].
    pub(crate) meta: Arc<Meta>,
    pub(crate) body: B,
    /// The variant key the response is stored under, for a resource that varies (`None`: the
    /// primary key).
    pub(crate) variant_key: Option<String>,
    /// The resource's variant index, for a resource that varies.
    pub(crate) index: Option<VaryIndex>,
    /// When it was looked up.
    pub(crate) at: SystemTime,
}

impl<B> Found<B> {
    /// The stored response.
    pub(crate) fn response(&self) -> &ResponseMeta {
        self.meta
            .as_response()
            .expect("lookup only finds responses")
    }

    /// The key it is stored under, for a request whose key is `key`.
    pub(crate) fn store_key<'a>(&'a self, key: &'a str) -> &'a str {
        self.variant_key.as_deref().unwrap_or(key)
    }
}
