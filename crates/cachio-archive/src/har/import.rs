//! Loading a HAR into a store: a checking pass over the whole file, then a writing pass.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use cachio_core::key::{primary_key, variant_hash, variant_key};
use cachio_core::meta::{Meta, VaryIndex};
use cachio_core::policy::{Policy, vary};
use cachio_core::store::{Store, StoreWriter};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, header};
use serde::Deserialize;

use super::walk::walk_entries;
use super::{content_encoded, parse_version};
use crate::{ArchiveError, EntryRef};

/// The default of [`ImportOptions::max_body_bytes`]: 64 MiB, the layer's default object limit.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 64 << 20;

/// How [`import_har`] stores what it reads.
///
/// # Example
///
/// ```
/// use cachio_archive::har::ImportOptions;
/// use cachio_core::Policy;
///
/// let options = ImportOptions::new().policy(Policy::shared()).max_body_bytes(8 << 20);
/// assert_eq!(options.max_body(), 8 << 20);
/// ```
#[derive(Clone, Debug)]
#[must_use]
pub struct ImportOptions {
    policy: Policy,
    max_body_bytes: u64,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ImportOptions {
    /// The defaults: a private cache's [`Policy`] (a browser's recording is a private cache's
    /// view) and a body limit of [`DEFAULT_MAX_BODY_BYTES`].
    pub fn new() -> Self {
        Self {
            policy: Policy::private(),
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        }
    }

    /// The policy that decides what may be stored and what of a response is kept
    /// ([`Policy::storable`], [`Policy::to_meta`]): give the one of the layer that will serve
    /// the entries.
    pub fn policy(self, policy: Policy) -> Self {
        Self { policy, ..self }
    }

    /// The largest body, decoded, that an entry may have; a larger one fails the import with
    /// [`ArchiveError::TooLarge`].
    pub fn max_body_bytes(self, bytes: u64) -> Self {
        Self {
            max_body_bytes: bytes,
            ..self
        }
    }

    /// The body limit in force.
    pub fn max_body(&self) -> u64 {
        self.max_body_bytes
    }
}

/// An entry of the archive that was not stored, and why.
///
/// # Example
///
/// ```
/// use cachio_archive::har::{ImportOptions, import_har};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("post.har");
/// std::fs::write(&path, r#"{"log": {"entries": [{
///     "startedDateTime": "2026-01-01T10:00:00Z",
///     "request": {"method": "POST", "url": "https://example.com/form"},
///     "response": {"status": 204, "headers": [], "content": {"size": 0}}
/// }]}}"#)?;
/// let store = cachio_moka::MokaStore::new(1 << 20);
/// let summary = import_har(&path, &store, &ImportOptions::new(), |_, _| {}).await?;
/// assert_eq!(summary.imported, 0);
/// let skipped = &summary.skipped[0];
/// assert_eq!(skipped.at.index, 0);
/// assert_eq!(
///     skipped.to_string(),
///     "log.entries[0] (https://example.com/form): only GET responses are stored (method POST)"
/// );
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The entry.
    pub at: EntryRef,
    /// Why it was not stored.
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.reason)
    }
}

/// What [`import_har`] did. See [`import_har`] and [`Skipped`] for examples.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ImportSummary {
    /// The entries of the archive.
    pub entries: u64,
    /// The responses stored.
    pub imported: u64,
    /// Their body bytes.
    pub body_bytes: u64,
    /// The entries not stored, with the reasons.
    pub skipped: Vec<Skipped>,
}

// ---- the shape read -------------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawEntry {
    started_date_time: Option<String>,
    time: Option<f64>,
    request: Option<RawRequest>,
    response: Option<RawResponse>,
    #[serde(rename = "_cachioKey")]
    cachio_key: Option<String>,
    #[serde(rename = "_ttlOverride")]
    ttl_override: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRequest {
    method: Option<String>,
    url: Option<String>,
    #[serde(default)]
    headers: Vec<RawHeader>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawResponse {
    status: Option<i64>,
    http_version: Option<String>,
    #[serde(default)]
    headers: Vec<RawHeader>,
    content: Option<RawContent>,
}

#[derive(Deserialize)]
struct RawContent {
    size: Option<i64>,
    text: Option<String>,
    encoding: Option<String>,
    #[serde(rename = "_encodedBody")]
    encoded_body: Option<bool>,
}

#[derive(Deserialize)]
struct RawHeader {
    name: String,
    value: String,
}

/// An entry checked and ready to store.
struct Ready {
    primary: String,
    req_headers: HeaderMap,
    status: StatusCode,
    version: http::Version,
    headers: HeaderMap,
    body: Bytes,
    request_time: SystemTime,
    response_time: SystemTime,
    ttl_override: Option<Duration>,
    vary: Vec<HeaderName>,
}

enum Prepared {
    Store(Box<Ready>),
    Skip(String),
}

/// The cache key `CacheLayer` gives a `GET` of `url` (`None` for a string that is no URL).
pub(crate) fn key_for_url(url: &str) -> Option<String> {
    let (parts, ()) = http::Request::get(url).body(()).ok()?.into_parts();
    Some(primary_key(&parts))
}

fn header_map(lines: &[RawHeader], at: &EntryRef, which: &str) -> Result<HeaderMap, ArchiveError> {
    let mut map = HeaderMap::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        // HTTP/2 and HTTP/3 pseudo-header fields (`:status`, `:authority`) as some browsers
        // list them: not header fields.
        if line.name.starts_with(':') {
            continue;
        }
        let name = HeaderName::from_bytes(line.name.trim().as_bytes());
        let value = HeaderValue::from_str(line.value.trim());
        match (name, value) {
            (Ok(n), Ok(v)) => {
                map.append(n, v);
            }
            _ => {
                return Err(ArchiveError::BadEntry {
                    at: at.clone(),
                    problem: format!(
                        "{which} header {i} ({:?}: {:?}) is not a valid header field",
                        line.name, line.value
                    ),
                });
            }
        }
    }
    Ok(map)
}

fn parse_time(s: &str) -> Option<SystemTime> {
    use time::format_description::well_known::Rfc3339;
    let t = time::OffsetDateTime::parse(s.trim(), &Rfc3339).ok()?;
    let nanos = t.unix_timestamp_nanos();
    let micros = u64::try_from(nanos.div_euclid(1000)).ok()?;
    UNIX_EPOCH.checked_add(Duration::from_micros(micros))
}

/// Checks one entry and makes it ready to store, or says why it is not stored.
fn prepare(
    index: usize,
    raw: RawEntry,
    policy: &Policy,
    limit: u64,
) -> Result<(EntryRef, Prepared), ArchiveError> {
    let url = raw
        .request
        .as_ref()
        .and_then(|r| r.url.clone())
        .unwrap_or_default();
    let at = EntryRef::new(index, url.clone());
    let bad = |problem: String| ArchiveError::BadEntry {
        at: at.clone(),
        problem,
    };
    let Some(request) = raw.request else {
        return Err(bad("the entry has no request".into()));
    };
    if url.is_empty() {
        return Err(bad("the request has no URL".into()));
    }
    let Some(response) = raw.response else {
        return Err(bad("the entry has no response".into()));
    };
    let skip = |reason: String| Ok((at.clone(), Prepared::Skip(reason)));
    let method = request.method.as_deref().unwrap_or("GET");
    if !method.eq_ignore_ascii_case("GET") {
        return skip(format!("only GET responses are stored (method {method})"));
    }
    let status = match response.status {
        None => return Err(bad("the response has no status".into())),
        Some(0) => return skip("no response was received (status 0)".into()),
        Some(s) => u16::try_from(s)
            .ok()
            .and_then(|s| StatusCode::from_u16(s).ok())
            .ok_or_else(|| bad(format!("the response status {s} is not an HTTP status")))?,
    };
    let uri: Uri = url
        .parse()
        .map_err(|_| bad("the request URL is not a URL".into()))?;
    if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.authority().is_none() {
        return Err(bad("the request URL is not an absolute http(s) URL".into()));
    }
    let primary = match raw.cachio_key {
        Some(k) => k,
        None => key_for_url(&url).ok_or_else(|| bad("the request URL is not a URL".into()))?,
    };
    let req_headers = header_map(&request.headers, &at, "request")?;
    let mut headers = header_map(&response.headers, &at, "response")?;

    let Some(content) = response.content else {
        return Err(bad("the response has no content".into()));
    };
    let Some(body) = body_of(content, &mut headers, limit, &at)? else {
        return skip("the body was not saved in the file".into());
    };
    let (request_time, response_time) = times_of(raw.started_date_time.as_deref(), raw.time, &at)?;

    if let Err(why) = policy.storable(&Method::GET, &req_headers, status, &headers) {
        return skip(format!("a cache may not store it ({why})"));
    }
    let vary = vary::vary_names(&headers).unwrap_or_default();
    let version = parse_version(response.http_version.as_deref().unwrap_or(""));
    Ok((
        at,
        Prepared::Store(Box::new(Ready {
            primary,
            req_headers,
            status,
            version,
            headers,
            body,
            request_time,
            response_time,
            ttl_override: raw.ttl_override.map(Duration::from_millis),
            vary,
        })),
    ))
}

/// The body of an entry's `content`, decoded and checked against its declared size and the
/// import limit; `None` when the file did not save it. A body saved decoded loses the coding
/// `headers` name (see the module docs).
fn body_of(
    content: RawContent,
    headers: &mut HeaderMap,
    limit: u64,
    at: &EntryRef,
) -> Result<Option<Bytes>, ArchiveError> {
    let bad = |problem: String| ArchiveError::BadEntry {
        at: at.clone(),
        problem,
    };
    let too_large = || ArchiveError::TooLarge {
        at: at.clone(),
        limit,
    };
    let RawContent {
        size,
        text,
        encoding,
        encoded_body,
    } = content;
    let body = match (text, encoding.as_deref()) {
        (None, _) if size.unwrap_or(0) > 0 => return Ok(None),
        (None, _) => Bytes::new(),
        (Some(text), Some("base64")) => {
            // Base64 grows a body by a third: a text far past the limit is not decoded.
            if text.len() as u64 / 4 * 3 > limit.saturating_add(3) {
                return Err(too_large());
            }
            let decoded = STANDARD.decode(text.as_bytes()).or_else(|e| {
                // Some tools wrap base64 in lines.
                if text.bytes().any(|b| b.is_ascii_whitespace()) {
                    let clean: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
                    STANDARD.decode(clean.as_bytes())
                } else {
                    Err(e)
                }
            });
            Bytes::from(decoded.map_err(|e| bad(format!("content.text is not valid base64: {e}")))?)
        }
        (Some(text), None | Some("")) => Bytes::from(text.into_bytes()),
        (Some(_), Some(other)) => {
            return Err(bad(format!("unknown content.encoding {other:?}")));
        }
    };
    if let Some(size) = size
        && size >= 0
        && u64::try_from(size).ok() != Some(body.len() as u64)
    {
        return Err(bad(format!(
            "the body has {} bytes but content.size says {size}",
            body.len()
        )));
    }
    if body.len() as u64 > limit {
        return Err(too_large());
    }
    if content_encoded(headers) && encoded_body != Some(true) {
        headers.remove(header::CONTENT_ENCODING);
        if headers.contains_key(header::CONTENT_LENGTH) {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
    }
    Ok(Some(body))
}

/// When an entry's request was sent (`startedDateTime`) and its response received (`time`
/// milliseconds later).
fn times_of(
    started: Option<&str>,
    took_ms: Option<f64>,
    at: &EntryRef,
) -> Result<(SystemTime, SystemTime), ArchiveError> {
    let bad = |problem: String| ArchiveError::BadEntry {
        at: at.clone(),
        problem,
    };
    let started = started.ok_or_else(|| bad("the entry has no startedDateTime".into()))?;
    let request_time = parse_time(started).ok_or_else(|| {
        bad(format!(
            "startedDateTime {started:?} is not an ISO 8601 date"
        ))
    })?;
    let took = took_ms
        .filter(|t| t.is_finite() && *t > 0.0)
        .map_or(0, |t| (t * 1000.0).round() as u64);
    Ok((request_time, request_time + Duration::from_micros(took)))
}

// ---- the import ---------------------------------------------------------------------------------

/// Loads the HAR file at `path` into `store`, and gives what it did.
///
/// Each response is stored as `CacheLayer` stores one it fetched: under the key the layer
/// computes for a `GET` of its URL ([`cachio_core::key`]), with the metadata
/// [`Policy::to_meta`] makes of its request and response heads and times, and for a response
/// with `Vary` as a variant, listed in the resource's variant index (an existing index with the
/// same field names is added to). A later entry for the same key replaces an earlier one, as a
/// later fetch would. See the [module](super) docs for what is checked and skipped, and what
/// happens to `Content-Encoding`. `progress` is called with (entries done, entries in all) as
/// the entries are written.
///
/// # Errors
///
/// [`ArchiveError::Io`] when the file cannot be read; [`ArchiveError::Json`],
/// [`ArchiveError::BadEntry`] and [`ArchiveError::TooLarge`] for bad input, before anything is
/// written; [`ArchiveError::Store`] when the store fails, after the entries already written are
/// removed again.
///
/// # Example
///
/// ```
/// use cachio_archive::har::{ImportOptions, import_har};
/// use cachio_core::Store;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("one.har");
/// std::fs::write(&path, r#"{"log": {"version": "1.2", "entries": [{
///     "startedDateTime": "2026-01-01T10:00:00Z", "time": 12,
///     "request": {"method": "GET", "url": "https://example.com/a", "headers": []},
///     "response": {"status": 200, "httpVersion": "HTTP/1.1",
///         "headers": [{"name": "cache-control", "value": "max-age=60"}],
///         "content": {"size": 5, "mimeType": "text/plain", "text": "hello"}}
/// }]}}"#)?;
///
/// let store = cachio_moka::MokaStore::new(1 << 20);
/// let summary = import_har(&path, &store, &ImportOptions::new(), |_, _| {}).await?;
/// assert_eq!(summary.imported, 1);
/// assert!(store.get("https://example.com/a").await?.is_some());
/// # Ok(())
/// # }
/// ```
pub async fn import_har<S: Store>(
    path: &Path,
    store: &S,
    options: &ImportOptions,
    mut progress: impl FnMut(usize, usize),
) -> Result<ImportSummary, ArchiveError> {
    let limit = options
        .max_body_bytes
        .min(store.max_body_size().unwrap_or(u64::MAX));
    let policy = options.policy.clone();

    // Pass 1: check every entry; note each resource's final Vary names.
    let plan = {
        let path = path.to_owned();
        let policy = policy.clone();
        run_blocking(move || check_all(&path, &policy, limit)).await?
    };

    let mut indexes = variant_indexes(store, &plan).await?;

    // Pass 2: parse again on a thread, one entry at a time, and write.
    let (tx, mut rx) = tokio::sync::mpsc::channel(1);
    let reader = spawn_reader(path.to_owned(), policy.clone(), limit, tx);

    let mut summary = ImportSummary {
        entries: plan.entries as u64,
        ..ImportSummary::default()
    };
    let mut written: Vec<String> = Vec::new();
    let outcome = async {
        let mut done = 0;
        while let Some(item) = rx.recv().await {
            let (at, prepared) = item?;
            done += 1;
            match prepared {
                Prepared::Skip(reason) => summary.skipped.push(Skipped { at, reason }),
                Prepared::Store(ready) => {
                    let final_names = plan.vary.get(&ready.primary).cloned().unwrap_or_default();
                    if ready.vary != final_names {
                        summary.skipped.push(Skipped {
                            at,
                            reason: "a later entry for the same URL varies on other fields".into(),
                        });
                    } else {
                        let index = indexes.get_mut(&ready.primary);
                        let len = ready.body.len() as u64;
                        write_entry(store, &policy, *ready, index, &mut written).await?;
                        summary.imported += 1;
                        summary.body_bytes += len;
                    }
                }
            }
            progress(done, plan.entries);
        }
        for (primary, index) in &indexes {
            let mut w = store.begin(primary)?;
            std::future::poll_fn(|cx| w.poll_ready(cx)).await?;
            written.push(primary.clone());
            w.commit(Arc::new(Meta::Variants(index.clone())), None)
                .await?;
        }
        Ok::<(), ArchiveError>(())
    }
    .await;
    drop(rx);
    let _ = reader.join();
    if let Err(e) = outcome {
        for key in &written {
            let _ = store.delete(key).await;
        }
        return Err(e);
    }
    Ok(summary)
}

/// The index of each resource that varies: the stored one when it names the same fields, or
/// a new one.
async fn variant_indexes<S: Store>(
    store: &S,
    plan: &Plan,
) -> Result<HashMap<String, VaryIndex>, ArchiveError> {
    let mut indexes = HashMap::new();
    for (primary, names) in &plan.vary {
        if names.is_empty() {
            continue;
        }
        let existing = match store.get(primary).await? {
            Some(hit) => match &*hit.meta {
                Meta::Variants(i) if &i.names == names => Some(i.clone()),
                _ => None,
            },
            None => None,
        };
        let index = existing.unwrap_or_else(|| VaryIndex::new(names.clone(), new_epoch()));
        indexes.insert(primary.clone(), index);
    }
    Ok(indexes)
}

/// Parses the file at `path` on a thread of its own, one entry at a time, and sends each
/// prepared entry to the writer; stops at the first error (sent too) or when the writer stops.
fn spawn_reader(
    path: PathBuf,
    policy: Policy,
    limit: u64,
    tx: tokio::sync::mpsc::Sender<Result<(EntryRef, Prepared), ArchiveError>>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        // Set once an entry's own error went to the writer, or the writer stopped.
        let mut stopped = false;
        let result = walk_entries(&path, limit, &mut |index, raw| {
            let prepared = prepare(index, raw, &policy, limit);
            let failed = prepared.is_err();
            if tx.blocking_send(prepared).is_err() || failed {
                stopped = true;
                return Err(ArchiveError::Io(std::io::Error::other("stopped")));
            }
            Ok(())
        });
        if let Err(e) = result
            && !stopped
        {
            let _ = tx.blocking_send(Err(e));
        }
    })
}

/// What the checking pass learned.
struct Plan {
    entries: usize,
    /// Each resource's `Vary` names, as its last entry in the file gives them.
    vary: HashMap<String, Vec<HeaderName>>,
}

fn check_all(path: &Path, policy: &Policy, limit: u64) -> Result<Plan, ArchiveError> {
    let mut vary = HashMap::new();
    let entries = walk_entries(path, limit, &mut |index, raw| {
        if let (_, Prepared::Store(ready)) = prepare(index, raw, policy, limit)? {
            vary.insert(ready.primary, ready.vary);
        }
        Ok(())
    })?;
    Ok(Plan { entries, vary })
}

async fn run_blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ArchiveError> + Send + 'static,
) -> Result<T, ArchiveError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.await
        .map_err(|_| ArchiveError::Io(std::io::Error::other("the reading thread failed")))?
}

/// Writes one checked entry, as the layer would store the response, and records its variant.
async fn write_entry<S: Store>(
    store: &S,
    policy: &Policy,
    ready: Ready,
    index: Option<&mut VaryIndex>,
    written: &mut Vec<String>,
) -> Result<(), ArchiveError> {
    let meta = policy
        .to_meta(
            &ready.req_headers,
            ready.status,
            ready.version,
            &ready.headers,
            ready.request_time,
            ready.response_time,
        )
        .with_ttl_override(ready.ttl_override);
    let key = match &index {
        Some(index) => variant_key(&ready.primary, index.epoch, meta.vary_values()),
        None => ready.primary.clone(),
    };
    let hash = variant_hash(meta.vary_values());
    let mut w = store.begin(&key)?;
    let mut rest = ready.body;
    while !rest.is_empty() {
        let piece = rest.split_to(rest.len().min(64 << 10));
        std::future::poll_fn(|cx| w.poll_ready(cx)).await?;
        w.append(piece)?;
    }
    written.push(key);
    w.commit(Arc::new(Meta::Response(meta)), None).await?;
    if let Some(index) = index {
        index.variants.retain(|h| *h != hash);
        index.variants.push(hash);
        while index.variants.len() > policy.variant_limit() {
            let old = index.variants.remove(0);
            let old_key = format!("{}\u{0}v{:016x}:{old:016x}", ready.primary, index.epoch);
            store.delete(&old_key).await?;
        }
    }
    Ok(())
}

/// A fresh epoch for a variant index, as the layer makes one.
fn new_epoch() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(SystemTime::now())
}
