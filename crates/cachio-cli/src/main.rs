//! `cachio`: look inside a cachio cache directory, purge it, check it, and copy it to and from
//! HAR and WARC archives.
//!
//! ```text
//! cachio ls DIR [--prefix URL] [--json]      every stored response
//! cachio show DIR URL [--body]               one URL's responses, head or body
//! cachio stats DIR                           counts and sizes
//! cachio purge DIR (URL | --prefix P | --tag T)
//! cachio verify DIR                          every checksum; exit status 1 if any entry is bad
//! cachio export DIR FILE.har | FILE.warc.gz
//! cachio import FILE.har DIR
//! ```
//!
//! `DIR` is the directory of `cachio::embedded` or a gateway's `--disk-dir`, while no program
//! has it open, or a cassette (`cachio::cassette`). Run `cachio help COMMAND` for each command's options.

mod format;
mod inspect;
mod maintain;
mod open;

use std::path::PathBuf;
use std::process::ExitCode;

use cachio_core::Policy;
use clap::{Args, Parser, Subcommand};
use http::HeaderName;

/// Look inside a cachio cache directory: list, show, purge, verify, export and import.
///
/// DIR is the directory of `cachio::embedded` or a gateway's `--disk-dir`, or a cassette of
/// recorded exchanges. A disk directory is open in one program at a time: stop the application
/// or gateway that uses it first.
#[derive(Parser)]
#[command(name = "cachio", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Args)]
struct Output {
    /// Print JSON for scripts instead of a table for people.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct View {
    /// Compute freshness as a shared cache does (a gateway, a CDN: `s-maxage`, `private` not
    /// stored) instead of as a private one (an application's client, `cachio::embedded`).
    #[arg(long)]
    shared: bool,
}

impl View {
    fn policy(&self) -> Policy {
        if self.shared {
            Policy::shared()
        } else {
            Policy::private()
        }
    }
}

#[derive(Subcommand)]
enum Command {
    /// List every stored response: status, body size, when it was stored, how long it stays
    /// fresh (or since when it is stale), and how many variants its URL has.
    Ls {
        /// The cache directory.
        dir: PathBuf,
        /// Only the responses whose URL (or cache key) starts with this.
        #[arg(long, value_name = "URL")]
        prefix: Option<String>,
        #[command(flatten)]
        view: View,
        #[command(flatten)]
        output: Output,
    },
    /// Show the stored responses of one URL (every variant): key, times, freshness, status and
    /// header lines; or with --body, the body bytes.
    Show {
        /// The cache directory.
        dir: PathBuf,
        /// The URL (or a cache key, as `ls --json` prints it).
        url: String,
        /// Write the body to standard output instead (of one stored response: pick a variant
        /// with --vary).
        #[arg(long)]
        body: bool,
        /// Only the variant stored for this request field value (repeat for several fields).
        #[arg(long, value_name = "NAME=VALUE")]
        vary: Vec<String>,
        #[command(flatten)]
        view: View,
        #[command(flatten)]
        output: Output,
    },
    /// Count the entries, resources, bytes, fresh and stale responses, statuses.
    Stats {
        /// The cache directory.
        dir: PathBuf,
        #[command(flatten)]
        view: View,
        #[command(flatten)]
        output: Output,
    },
    /// Remove stored responses: one URL's, those under a prefix, or those with a tag.
    Purge {
        /// The cache directory.
        dir: PathBuf,
        /// The URL whose responses (every variant) go.
        #[arg(required_unless_present_any = ["prefix", "tag"], conflicts_with_all = ["prefix", "tag"])]
        url: Option<String>,
        /// Every response whose URL (or cache key) starts with this.
        #[arg(long, conflicts_with = "tag")]
        prefix: Option<String>,
        /// Every response tagged with this surrogate key.
        #[arg(long)]
        tag: Option<String>,
        /// The response fields that carry tags, their values split on spaces and commas
        /// (repeat for several).
        #[arg(long = "tag-header", value_name = "NAME", default_values = ["surrogate-key", "cache-tag"])]
        tag_headers: Vec<HeaderName>,
        #[command(flatten)]
        output: Output,
    },
    /// Read every entry and every body chunk and check its checksum; print the bad ones and
    /// their count. Exit status 1 when any is bad. Nothing is removed.
    Verify {
        /// The cache directory.
        dir: PathBuf,
        #[command(flatten)]
        output: Output,
    },
    /// Write every stored response to FILE: a HAR 1.2 log (`.har`) or a WARC/1.1 file, gzip per
    /// record (`.warc.gz`).
    Export {
        /// The cache directory.
        dir: PathBuf,
        /// The archive to write: its name ends in `.har` or `.warc.gz`.
        file: PathBuf,
        #[command(flatten)]
        output: Output,
    },
    /// Load a HAR file (saved from a browser's developer tools, mitmproxy, or `cachio export`)
    /// into DIR, as the cache would have stored each response. DIR is created if needed. A bad
    /// entry fails the import before anything is written.
    Import {
        /// The HAR file.
        file: PathBuf,
        /// The cache directory.
        dir: PathBuf,
        /// The largest body an entry may have, in MiB.
        #[arg(long, value_name = "MIB", default_value_t = 64)]
        max_body_mb: u64,
        /// Store as a shared cache would (a gateway's directory): `private` responses and
        /// fields are not stored.
        #[arg(long)]
        shared: bool,
        #[command(flatten)]
        output: Output,
    },
}

/// A failure the command reports on standard error, with exit status 1.
#[derive(Debug)]
pub(crate) struct Failure(Box<dyn std::error::Error + Send + Sync>);

impl Failure {
    pub(crate) fn msg(message: String) -> Self {
        Failure(message.into())
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure(Box::new(e))
    }
}

async fn run(command: Command) -> Result<bool, Failure> {
    match command {
        Command::Ls {
            dir,
            prefix,
            view,
            output,
        } => {
            let opened = open::open(&dir)?;
            inspect::ls(&opened, &view.policy(), prefix.as_deref(), output.json).await?;
        }
        Command::Show {
            dir,
            url,
            body,
            vary,
            view,
            output,
        } => {
            let opened = open::open(&dir)?;
            let vary = vary
                .iter()
                .map(|v| {
                    v.split_once('=')
                        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
                        .ok_or_else(|| Failure::msg(format!("--vary {v}: give NAME=VALUE")))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let shown = inspect::Shown {
                url: &url,
                vary: &vary,
                body,
            };
            inspect::show(&opened, &view.policy(), shown, output.json).await?;
        }
        Command::Stats { dir, view, output } => {
            let opened = open::open(&dir)?;
            inspect::stats(&opened, &view.policy(), output.json).await?;
        }
        Command::Purge {
            dir,
            url,
            prefix,
            tag,
            tag_headers,
            output,
        } => {
            let target = match (url, prefix, tag) {
                (Some(url), _, _) => maintain::Target::Url(url),
                (_, Some(prefix), _) => maintain::Target::Prefix(prefix),
                (_, _, Some(tag)) => maintain::Target::Tag(tag, tag_headers),
                _ => return Err(Failure::msg("give a URL, --prefix or --tag".into())),
            };
            let opened = open::open(&dir)?;
            maintain::purge(&opened, target, output.json).await?;
        }
        Command::Verify { dir, output } => {
            let opened = open::open(&dir)?;
            return maintain::verify(opened, output.json).await;
        }
        Command::Export { dir, file, output } => {
            let opened = open::open(&dir)?;
            maintain::export(&opened, &file, output.json).await?;
        }
        Command::Import {
            file,
            dir,
            max_body_mb,
            shared,
            output,
        } => {
            let created = !dir.exists();
            let opened = open::open_or_create(&dir)?;
            let policy = if shared {
                Policy::shared()
            } else {
                Policy::private()
            };
            let max_body = max_body_mb.saturating_mul(1 << 20);
            let imported = maintain::import(&opened, &file, policy, max_body, output.json).await;
            if imported.is_err() && created {
                // A failed import into a new directory leaves no directory behind.
                drop(opened);
                let _ = std::fs::remove_dir_all(&dir);
            }
            imported?;
        }
    }
    Ok(true)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(Failure(e)) => {
            eprintln!("error: {e}");
            let mut source = e.source();
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}
