//! `ls`, `show` and `stats`: what a cache holds, read without changing it.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, SystemTime};

use cachio_archive::catalog::{Catalog, StoredResponse, catalog};
use cachio_core::Policy;
use cachio_core::store::Store;
use http_body::Body as _;
use serde::Serialize;

use crate::format;
use crate::open::Opened;
use crate::{Failure, with_store};

/// One stored response as `ls --json` and `show --json` give it.
#[derive(Serialize)]
pub(crate) struct Row {
    url: String,
    key: String,
    status: u16,
    /// `null` when the store cannot tell without reading the body.
    body_bytes: Option<u64>,
    /// When the response was received (RFC 3339).
    stored_at: String,
    age_secs: u64,
    lifetime_secs: u64,
    fresh: bool,
    /// Set when fresh: how much longer.
    fresh_for_secs: Option<u64>,
    /// Set when stale: for how long.
    stale_since_secs: Option<u64>,
    /// How many stored responses the URL has (its `Vary` variants).
    variants: usize,
    /// The request values that selected this response, by field name (`null`: absent).
    vary: BTreeMap<String, Option<String>>,
}

impl Row {
    fn new(
        entry: &StoredResponse,
        listed: &Catalog,
        opened: &Opened,
        policy: &Policy,
        now: SystemTime,
    ) -> Row {
        let meta = &entry.meta;
        let lifetime = policy.freshness_lifetime(meta);
        let age = policy.current_age(meta, now);
        let fresh = lifetime > age;
        let vary = entry
            .vary_names()
            .iter()
            .zip(meta.vary_values())
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    v.as_ref()
                        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()),
                )
            })
            .collect();
        Row {
            url: entry.url().to_owned(),
            key: entry.key.clone(),
            status: meta.status().as_u16(),
            body_bytes: opened.body_len(&entry.key),
            stored_at: format::time(meta.response_time()),
            age_secs: age.as_secs(),
            lifetime_secs: lifetime.as_secs(),
            fresh,
            fresh_for_secs: fresh.then(|| (lifetime - age).as_secs()),
            stale_since_secs: (!fresh).then(|| (age - lifetime).as_secs()),
            variants: listed.variants_of(entry.primary_key()),
            vary,
        }
    }

    fn freshness(&self) -> String {
        match (self.fresh_for_secs, self.stale_since_secs) {
            (Some(s), _) => format!("fresh for {}", format::duration(Duration::from_secs(s))),
            (_, Some(s)) => format!("stale since {}", format::duration(Duration::from_secs(s))),
            _ => String::new(),
        }
    }

    /// The URL, with the request values that selected the response when it is a variant.
    fn label(&self) -> String {
        if self.vary.is_empty() {
            return self.url.clone();
        }
        let values: Vec<String> = self
            .vary
            .iter()
            .map(|(n, v)| format!("{n}: {}", v.as_deref().unwrap_or("(absent)")))
            .collect();
        format!("{} [{}]", self.url, values.join("; "))
    }
}

/// Whether `entry` is one of `url`'s: by its URL, its resource key, or its key as given.
fn is_of(entry: &StoredResponse, url: &str) -> bool {
    entry.url() == url
        || entry.primary_key() == url
        || entry.key == url
        || key_for_url(url).is_some_and(|k| k == entry.primary_key())
}

/// Whether `entry` was stored for every (name, value) of `vary`.
fn selects(entry: &StoredResponse, vary: &[(String, String)]) -> bool {
    let names = entry.vary_names();
    vary.iter().all(|(name, value)| {
        names.iter().zip(entry.meta.vary_values()).any(|(n, v)| {
            n.as_str() == name && v.as_ref().is_some_and(|v| v.as_bytes() == value.as_bytes())
        })
    })
}

/// The key the layer gives a `GET` of `url`.
pub(crate) fn key_for_url(url: &str) -> Option<String> {
    let (parts, ()) = http::Request::get(url).body(()).ok()?.into_parts();
    Some(cachio_core::key::primary_key(&parts))
}

async fn rows(
    opened: &Opened,
    policy: &Policy,
    keep: impl Fn(&StoredResponse) -> bool,
) -> Result<Vec<Row>, Failure> {
    let listed = with_store!(opened, s => catalog(s).await)?;
    let now = SystemTime::now();
    Ok(listed
        .responses
        .iter()
        .filter(|e| keep(e))
        .map(|e| Row::new(e, &listed, opened, policy, now))
        .collect())
}

pub(crate) async fn ls(
    opened: &Opened,
    policy: &Policy,
    prefix: Option<&str>,
    json: bool,
) -> Result<(), Failure> {
    let rows = rows(opened, policy, |e| {
        prefix.is_none_or(|p| e.url().starts_with(p) || e.key.starts_with(p))
    })
    .await?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
        return Ok(());
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.status.to_string(),
                r.body_bytes.map_or_else(|| "?".into(), format::size),
                r.stored_at.clone(),
                r.freshness(),
                r.variants.to_string(),
                r.label(),
            ]
        })
        .collect();
    out.write_all(
        format::table(
            &[
                "STATUS",
                "SIZE",
                "STORED AT",
                "FRESHNESS",
                "VARIANTS",
                "URL",
            ],
            &cells,
        )
        .as_bytes(),
    )?;
    writeln!(out, "{} responses", rows.len())?;
    Ok(())
}

/// What `show` is asked for.
pub(crate) struct Shown<'a> {
    /// The URL or cache key.
    pub(crate) url: &'a str,
    /// Request field values (lowercase name, value) the variant was stored for.
    pub(crate) vary: &'a [(String, String)],
    /// Whether to write the body.
    pub(crate) body: bool,
}

#[derive(Serialize)]
struct Head {
    #[serde(flatten)]
    row: Row,
    http_version: String,
    requested_at: String,
    headers: Vec<(String, String)>,
}

pub(crate) async fn show(
    opened: &Opened,
    policy: &Policy,
    asked: Shown<'_>,
    json: bool,
) -> Result<(), Failure> {
    let (url, body) = (asked.url, asked.body);
    let listed = with_store!(opened, s => catalog(s).await)?;
    let now = SystemTime::now();
    let found: Vec<&StoredResponse> = listed
        .responses
        .iter()
        .filter(|e| is_of(e, url) && selects(e, asked.vary))
        .collect();
    if found.is_empty() {
        return Err(Failure::msg(format!("no stored response for {url}")));
    }
    if body {
        let [entry] = found[..] else {
            let list: Vec<String> = found
                .iter()
                .map(|e| Row::new(e, &listed, opened, policy, now).label())
                .collect();
            return Err(Failure::msg(format!(
                "{url} has {} stored variants; --body needs one. Pick it with --vary NAME=VALUE:\n  {}",
                found.len(),
                list.join("\n  ")
            )));
        };
        return with_store!(opened, s => write_body(s, &entry.key).await);
    }
    let shown: Vec<Head> = found
        .iter()
        .map(|e| Head {
            row: Row::new(e, &listed, opened, policy, now),
            http_version: format!("{:?}", e.meta.version()),
            requested_at: format::time(e.meta.request_time()),
            headers: e
                .meta
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
        })
        .collect();
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &shown)?;
        writeln!(out)?;
        return Ok(());
    }
    for (i, s) in shown.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        let r = &s.row;
        writeln!(out, "{}", r.label())?;
        writeln!(out, "  key:          {:?}", r.key)?;
        writeln!(out, "  requested at: {}", s.requested_at)?;
        writeln!(out, "  stored at:    {}", r.stored_at)?;
        writeln!(
            out,
            "  freshness:    {} (lifetime {}, age {})",
            r.freshness(),
            format::duration(Duration::from_secs(r.lifetime_secs)),
            format::duration(Duration::from_secs(r.age_secs))
        )?;
        let size = r
            .body_bytes
            .map_or_else(|| "?".into(), |n| format!("{n} bytes"));
        writeln!(out, "  body:         {size}")?;
        writeln!(out, "  variants:     {}", r.variants)?;
        writeln!(out)?;
        let reason = http::StatusCode::from_u16(r.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        writeln!(out, "  {} {} {reason}", s.http_version, r.status)?;
        for (n, v) in &s.headers {
            writeln!(out, "  {n}: {v}")?;
        }
    }
    Ok(())
}

/// Streams the body under `key` to standard output.
async fn write_body<S: Store>(store: &S, key: &str) -> Result<(), Failure> {
    let hit = store
        .get(key)
        .await?
        .ok_or_else(|| Failure::msg(format!("{key:?} is gone or unreadable")))?;
    let mut body = hit.body;
    let mut out = std::io::stdout().lock();
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        if let Ok(data) = frame?.into_data() {
            out.write_all(&data)?;
        }
    }
    out.flush()?;
    Ok(())
}

#[derive(Serialize)]
struct Stats {
    kind: &'static str,
    responses: usize,
    resources: usize,
    variant_indexes: usize,
    body_bytes: u64,
    fresh: usize,
    stale: usize,
    statuses: BTreeMap<u16, usize>,
    /// What the store accounts for its entries (keys, records, bodies), when it keeps a count.
    store_bytes: Option<u64>,
    /// What its files take on disk, when it has files.
    disk_bytes: Option<u64>,
}

pub(crate) async fn stats(opened: &Opened, policy: &Policy, json: bool) -> Result<(), Failure> {
    let listed = with_store!(opened, s => catalog(s).await)?;
    let now = SystemTime::now();
    let rows: Vec<Row> = listed
        .responses
        .iter()
        .map(|e| Row::new(e, &listed, opened, policy, now))
        .collect();
    let mut resources: Vec<&str> = listed.responses.iter().map(|e| e.primary_key()).collect();
    resources.dedup();
    let mut statuses = BTreeMap::new();
    for r in &rows {
        *statuses.entry(r.status).or_insert(0) += 1;
    }
    let (store_bytes, disk_bytes) = match opened {
        Opened::Disk(s) => (Some(s.tracked_bytes()), s.disk_space().ok()),
        Opened::Cassette(c) => (None, Some(file_bytes(c.dir()))),
    };
    let fresh = rows.iter().filter(|r| r.fresh).count();
    let stats = Stats {
        kind: opened.kind(),
        responses: rows.len(),
        resources: resources.len(),
        variant_indexes: listed.indexes.len(),
        body_bytes: rows.iter().filter_map(|r| r.body_bytes).sum(),
        fresh,
        stale: rows.len() - fresh,
        statuses,
        store_bytes,
        disk_bytes,
    };
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &stats)?;
        writeln!(out)?;
        return Ok(());
    }
    let statuses: Vec<String> = stats
        .statuses
        .iter()
        .map(|(s, n)| format!("{s}: {n}"))
        .collect();
    let mut lines = vec![
        ("kind", stats.kind.to_owned()),
        ("responses", stats.responses.to_string()),
        ("resources", stats.resources.to_string()),
        ("variant indexes", stats.variant_indexes.to_string()),
        ("body bytes", format::size(stats.body_bytes)),
        ("fresh", stats.fresh.to_string()),
        ("stale", stats.stale.to_string()),
        ("statuses", statuses.join(", ")),
    ];
    if let Some(b) = stats.store_bytes {
        lines.push(("accounted", format::size(b)));
    }
    if let Some(b) = stats.disk_bytes {
        lines.push(("on disk", format::size(b)));
    }
    for (name, value) in lines {
        writeln!(out, "{:<16} {value}", format!("{name}:"))?;
    }
    Ok(())
}

/// The bytes the files directly in `dir` hold (a cassette keeps no subdirectories).
fn file_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
