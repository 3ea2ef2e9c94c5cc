//! What a store holds, listed as the responses an archive is made of.

use std::sync::Arc;

use bytes::Bytes;
use cachio_core::meta::{Meta, ResponseMeta, VaryIndex};
use cachio_core::policy::vary;
use cachio_core::store::Store;
use http::{HeaderMap, HeaderName};
use http_body_util::BodyExt;

use crate::ArchiveError;

/// One stored response: its cache key and its head.
///
/// # Example
///
/// ```
/// use std::time::SystemTime;
/// use cachio_archive::catalog::StoredResponse;
/// use cachio_core::meta::ResponseMeta;
///
/// let now = SystemTime::now();
/// let head = ResponseMeta::new(http::StatusCode::OK, http::Version::HTTP_11, http::HeaderMap::new(), vec![], now, now);
/// let entry = StoredResponse::new("https://example.com/a\u{0}v0000000000000001:00000000000000ff".into(), head);
/// assert_eq!(entry.url(), "https://example.com/a");
/// assert!(entry.is_variant());
/// ```
#[derive(Clone, Debug)]
pub struct StoredResponse {
    /// The key the response is stored under.
    pub key: String,
    /// Its head and the times of its exchange.
    pub meta: ResponseMeta,
}

impl StoredResponse {
    /// An entry for `meta` under `key`.
    pub fn new(key: String, meta: ResponseMeta) -> Self {
        Self { key, meta }
    }

    /// The URL the response answers ([`url_of`] its key).
    pub fn url(&self) -> &str {
        url_of(&self.key)
    }

    /// The key of the resource ([`primary_of`] its key): for a variant, the key of its index.
    pub fn primary_key(&self) -> &str {
        primary_of(&self.key)
    }

    /// Whether this is one variant of a resource whose responses vary (RFC 9111 §4.1).
    pub fn is_variant(&self) -> bool {
        self.key.len() != self.primary_key().len()
    }

    /// The request header fields that selected this response: the normalised values of the
    /// fields its `Vary` names, as stored with it. Absent fields are absent.
    pub fn request_headers(&self) -> HeaderMap {
        let mut out = HeaderMap::new();
        let names = vary::vary_names(self.meta.headers()).unwrap_or_default();
        for (name, value) in names.iter().zip(self.meta.vary_values()) {
            if let Some(value) = value {
                out.append(name.clone(), value.clone());
            }
        }
        out
    }

    /// The names of the fields its `Vary` names, lowercased, in order.
    pub fn vary_names(&self) -> Vec<HeaderName> {
        vary::vary_names(self.meta.headers()).unwrap_or_default()
    }

    /// The order archives list responses in: by resource, then by the values that selected
    /// the variant (a variant's key holds a random epoch, so the key itself is not stable).
    fn sort_key(&self) -> (&str, Vec<&[u8]>) {
        let values = self
            .meta
            .vary_values()
            .iter()
            .map(|v| v.as_ref().map_or(&b"\xff"[..], |v| v.as_bytes()))
            .collect();
        (self.primary_key(), values)
    }
}

/// Everything a store holds, as [`catalog`] lists it.
///
/// # Example
///
/// ```
/// use cachio_archive::catalog::catalog;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cachio_core::store::StoreError> {
/// let store = cachio_moka::MokaStore::new(1 << 20);
/// let listed = catalog(&store).await?;
/// assert!(listed.responses.is_empty() && listed.indexes.is_empty());
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    /// The stored responses, ordered by resource key and then by the request values that
    /// selected them.
    pub responses: Vec<StoredResponse>,
    /// The variant indexes of resources that vary, by key.
    pub indexes: Vec<(String, VaryIndex)>,
}

impl Catalog {
    /// How many stored responses belong to the resource of `primary_key`.
    pub fn variants_of(&self, primary_key: &str) -> usize {
        let start = self
            .responses
            .partition_point(|r| r.primary_key() < primary_key);
        self.responses[start..]
            .iter()
            .take_while(|r| r.primary_key() == primary_key)
            .count()
    }
}

/// Lists every entry of `store` ([`Store::scan`]), responses and variant indexes apart, in a
/// stable order.
///
/// # Errors
///
/// The store's, for one that cannot enumerate its entries.
pub async fn catalog<S: Store>(store: &S) -> Result<Catalog, cachio_core::store::StoreError> {
    let mut out = Catalog::default();
    for (key, meta) in store.scan().await? {
        match meta {
            Meta::Response(r) => out.responses.push(StoredResponse::new(key, r)),
            Meta::Variants(v) => out.indexes.push((key, v)),
        }
    }
    out.responses.sort_by(|a, b| {
        a.sort_key()
            .cmp(&b.sort_key())
            .then_with(|| a.key.cmp(&b.key))
    });
    out.indexes.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// The resource part of a cache key: a variant key (`KEY \0 v<epoch>:<hash>`) without its
/// variant suffix; any other key as it is.
///
/// # Example
///
/// ```
/// use cachio_archive::catalog::primary_of;
///
/// assert_eq!(primary_of("http://x/a"), "http://x/a");
/// assert_eq!(primary_of("http://x/a\u{0}v1:2"), "http://x/a");
/// ```
pub fn primary_of(key: &str) -> &str {
    key.split_once('\u{0}').map_or(key, |(p, _)| p)
}

/// The URL in a cache key: the [`primary_of`] part, without the `[site]` prefix and the keyed
/// header and cookie values (after a space) a gateway adds to its keys.
///
/// # Example
///
/// ```
/// use cachio_archive::catalog::url_of;
///
/// assert_eq!(url_of("https://x/a?b=1"), "https://x/a?b=1");
/// assert_eq!(url_of("[shop]https://x/a h:accept=text/html\u{0}v1:2"), "https://x/a");
/// ```
pub fn url_of(key: &str) -> &str {
    let primary = primary_of(key);
    let unsited = match primary.strip_prefix('[') {
        Some(rest) => rest.split_once(']').map_or(primary, |(_, url)| url),
        None => primary,
    };
    unsited.split_once(' ').map_or(unsited, |(url, _)| url)
}

/// Reads the body of the entry under `key` chunk by chunk, handing each to `chunk`; gives the
/// metadata the read found. The entry must still be a response described by `expected` when
/// one is given.
pub(crate) async fn read_body<S: Store>(
    store: &S,
    key: &str,
    expected: Option<&Meta>,
    mut chunk: impl FnMut(&Bytes) -> Result<(), ArchiveError>,
) -> Result<Arc<Meta>, ArchiveError> {
    let changed = || ArchiveError::Changed {
        key: key.to_owned(),
    };
    let hit = store.get(key).await?.ok_or_else(changed)?;
    if expected.is_some_and(|m| !m.same_as(&hit.meta)) || hit.meta.as_response().is_none() {
        return Err(changed());
    }
    let mut body = hit.body;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            chunk(&data)?;
        }
    }
    Ok(hit.meta)
}
