//! `purge`, `verify`, `export` and `import`: the commands that change a cache or copy it.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use cachio_archive::catalog::{primary_of, url_of};
use cachio_archive::har::{ImportOptions, export_har, import_har};
use cachio_archive::warc::export_warc;
use cachio_core::Policy;
use cachio_core::backend::carries_tag;
use cachio_core::meta::Meta;
use cachio_core::store::Store;
use http::HeaderName;
use serde::Serialize;

use crate::inspect::key_for_url;
use crate::open::Opened;
use crate::{Failure, format, with_store};

/// What `purge` removes.
pub(crate) enum Target {
    /// The responses of one URL (every variant) and its variant index.
    Url(String),
    /// Every entry whose URL or key starts with this.
    Prefix(String),
    /// Every response tagged with this surrogate key in one of the fields.
    Tag(String, Vec<HeaderName>),
}

pub(crate) async fn purge(opened: &Opened, target: Target, json: bool) -> Result<(), Failure> {
    let n = match target {
        Target::Url(url) => {
            let key = key_for_url(&url).unwrap_or_else(|| url.clone());
            with_store!(opened, s => s.purge(move |k, _| {
                let primary = primary_of(k);
                primary == key || primary == url
            }).await)?
        }
        Target::Prefix(prefix) => with_store!(opened, s => s.purge(move |k, _| {
                url_of(k).starts_with(&prefix) || k.starts_with(&prefix)
            }).await)?,
        Target::Tag(tag, names) => {
            let n = with_store!(opened, s => s.purge(move |_, meta| carries_tag(meta, &names, &tag)).await)?;
            // The variant index of a resource whose every variant went is of no more use.
            let left: std::collections::HashSet<String> = with_store!(opened, s => s.scan().await)?
                .into_iter()
                .filter(|(_, m)| m.as_response().is_some())
                .map(|(k, _)| primary_of(&k).to_owned())
                .collect();
            n + with_store!(opened, s => s.purge(move |k, meta| {
                matches!(meta, Meta::Variants(_)) && !left.contains(k)
            }).await)?
        }
    };
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{{\"purged\":{n}}}")?;
    } else {
        writeln!(out, "purged {n} entries")?;
    }
    Ok(())
}

#[derive(Serialize)]
struct Bad {
    key: String,
    problem: String,
}

#[derive(Serialize)]
struct Verified {
    entries: u64,
    chunks: u64,
    body_bytes: u64,
    bad_entries: usize,
    bad: Vec<Bad>,
    /// Set when the walk could not read past a point of the database.
    stopped: Option<String>,
}

/// Checks every entry and chunk; gives whether all were good.
pub(crate) async fn verify(opened: Opened, json: bool) -> Result<bool, Failure> {
    let verified = match opened {
        Opened::Disk(store) => {
            let bar = format::progress(store.entry_count(), "verify");
            let walk_bar = bar.clone();
            let report = tokio::task::spawn_blocking(move || store.verify(|_| walk_bar.inc(1)))
                .await
                .map_err(|e| Failure::msg(format!("the check failed: {e}")))??;
            bar.finish_and_clear();
            Verified {
                entries: report.entries,
                chunks: report.chunks,
                body_bytes: report.bytes,
                bad_entries: report.bad.len(),
                bad: report
                    .bad
                    .iter()
                    .map(|b| Bad {
                        key: b.key.clone(),
                        problem: b.problem.clone(),
                    })
                    .collect(),
                stopped: report.stopped.clone(),
            }
        }
        Opened::Cassette(cassette) => read_every_entry(&cassette).await?,
    };
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &verified)?;
        writeln!(out)?;
    } else {
        for b in &verified.bad {
            writeln!(out, "bad: {:?}: {}", b.key, b.problem)?;
        }
        if let Some(why) = &verified.stopped {
            writeln!(out, "the check stopped early: {why}")?;
        }
        writeln!(
            out,
            "{} entries, {} chunks, {} checked: {} bad",
            verified.entries,
            verified.chunks,
            format::size(verified.body_bytes),
            verified.bad_entries
        )?;
    }
    Ok(verified.bad.is_empty() && verified.stopped.is_none())
}

/// The formats `export` writes, by the file's name.
enum Format {
    Har,
    Warc,
}

fn format_of(file: &Path) -> Result<Format, Failure> {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.ends_with(".har") {
        Ok(Format::Har)
    } else if name.ends_with(".warc.gz") {
        Ok(Format::Warc)
    } else {
        Err(Failure::msg(format!(
            "{}: the file name must end in .har (HAR 1.2) or .warc.gz (WARC/1.1, gzip per record)",
            file.display()
        )))
    }
}

/// Writes the whole store to `file`: into a temporary file beside it first, renamed once
/// complete, so a failed export leaves no partial archive.
pub(crate) async fn export(opened: &Opened, file: &Path, json: bool) -> Result<(), Failure> {
    let format = format_of(file)?;
    let mut partial = file.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let out = BufWriter::new(std::fs::File::create(&partial)?);
    let bar = format::progress(0, "export");
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let result = match format {
        Format::Har => with_store!(opened, s => export_har(s, out, progress).await),
        Format::Warc => with_store!(opened, s => export_warc(s, out, progress).await),
    };
    bar.finish_and_clear();
    let summary = match result {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.into());
        }
    };
    std::fs::rename(&partial, file)?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(
            out,
            "{{\"entries\":{},\"body_bytes\":{}}}",
            summary.entries, summary.body_bytes
        )?;
    } else {
        writeln!(
            out,
            "exported {} responses ({}) to {}",
            summary.entries,
            format::size(summary.body_bytes),
            file.display()
        )?;
    }
    Ok(())
}

#[derive(Serialize)]
struct Imported {
    entries: u64,
    imported: u64,
    body_bytes: u64,
    skipped: Vec<SkippedRow>,
}

#[derive(Serialize)]
struct SkippedRow {
    index: usize,
    url: String,
    reason: String,
}

pub(crate) async fn import(
    opened: &Opened,
    file: &Path,
    policy: Policy,
    max_body: u64,
    json: bool,
) -> Result<(), Failure> {
    let options = ImportOptions::new().policy(policy).max_body_bytes(max_body);
    let bar = format::progress(0, "import");
    let progress = |done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    };
    let result = with_store!(opened, s => import_har(file, s, &options, progress).await);
    bar.finish_and_clear();
    let summary = result?;
    let imported = Imported {
        entries: summary.entries,
        imported: summary.imported,
        body_bytes: summary.body_bytes,
        skipped: summary
            .skipped
            .iter()
            .map(|s| SkippedRow {
                index: s.at.index,
                url: s.at.url.clone(),
                reason: s.reason.clone(),
            })
            .collect(),
    };
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &imported)?;
        writeln!(out)?;
    } else {
        for s in &summary.skipped {
            writeln!(out, "skipped {s}")?;
        }
        writeln!(
            out,
            "imported {} of {} entries ({})",
            imported.imported,
            imported.entries,
            format::size(imported.body_bytes)
        )?;
    }
    Ok(())
}

/// Checks a store that keeps no checksums of its own walk: reads every entry and every body to
/// its end, so each check the store makes on the way (lengths, a body file that is missing) runs.
async fn read_every_entry<S: Store>(store: &S) -> Result<Verified, Failure> {
    use http_body_util::BodyExt as _;

    let listed = store.scan().await?;
    let bar = format::progress(listed.len() as u64, "verify");
    let mut verified = Verified {
        entries: 0,
        chunks: 0,
        body_bytes: 0,
        bad_entries: 0,
        bad: Vec::new(),
        stopped: None,
    };
    for (key, _) in listed {
        verified.entries += 1;
        bar.inc(1);
        let problem = match store.get(&key).await {
            Err(e) => Some(e.to_string()),
            Ok(None) => Some("listed, but cannot be read".to_owned()),
            Ok(Some(hit)) => {
                let mut body = hit.body;
                let mut problem = None;
                while let Some(frame) = body.frame().await {
                    match frame {
                        Ok(frame) => {
                            if let Some(data) = frame.data_ref() {
                                verified.chunks += 1;
                                verified.body_bytes += data.len() as u64;
                            }
                        }
                        Err(e) => {
                            problem = Some(e.to_string());
                            break;
                        }
                    }
                }
                problem
            }
        };
        if let Some(problem) = problem {
            verified.bad.push(Bad { key, problem });
        }
    }
    bar.finish_and_clear();
    verified.bad_entries = verified.bad.len();
    Ok(verified)
}
