//! WARC/1.1 export (ISO 28500), the format web archives keep: [`export_warc`].
//!
//! The file is a series of records, each its own gzip member (a `.warc.gz`, which readers can
//! seek into record by record): a `warcinfo` record naming the software, then for each stored
//! response a `response` record and the `request` record it answered.
//!
//! - The `response` block is the HTTP message as stored: the status line, the stored header
//!   lines in order, an empty line, and the body bytes as the origin sent them (still in their
//!   `Content-Encoding`; the cache stores bodies unchunked, and drops hop-by-hop fields such as
//!   `Transfer-Encoding`). HTTP/2 and HTTP/3 responses are written as HTTP/1.1 messages, the
//!   only text form a WARC reader parses.
//! - The `request` block is the `GET` the response answers: the request line, `Host`, and the
//!   request fields that selected the response (`Vary`), which is what the cache keeps of a
//!   request.
//! - Each record has a `WARC-Record-ID` (`<urn:uuid:…>`, random), `WARC-Date` (when the
//!   request was sent, to the microsecond), `WARC-Target-URI`, `WARC-Warcinfo-ID`, a
//!   `WARC-Block-Digest` and, for responses, a `WARC-Payload-Digest` (SHA-1, base32, as web
//!   archives write them); the `request` record is `WARC-Concurrent-To` its response.
//!
//! Each body is read from the store twice, chunk by chunk: once for its length and digests,
//! which the record's header carries, once to write it.

use std::io::Write;
use std::time::SystemTime;

use cachio_core::meta::Meta;
use cachio_core::store::Store;
use flate2::Compression;
use flate2::write::GzEncoder;
use http::Version;
use sha1_smol::Sha1;

use crate::catalog::{StoredResponse, catalog, read_body};
use crate::{ArchiveError, ExportSummary};

fn record_id() -> String {
    format!("<urn:uuid:{}>", uuid::Uuid::new_v4())
}

fn sha1_label(hasher: Sha1) -> String {
    format!(
        "sha1:{}",
        data_encoding::BASE32.encode(&hasher.digest().bytes())
    )
}

fn warc_date(t: SystemTime) -> String {
    crate::har::iso_time(t)
}

/// The HTTP/1 head of a stored response: status line, header lines, empty line.
fn response_head(entry: &StoredResponse) -> Vec<u8> {
    let meta = &entry.meta;
    let version = if meta.version() == Version::HTTP_10 {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    };
    let status = meta.status();
    let mut head = format!(
        "{version} {} {}\r\n",
        status.as_str(),
        status.canonical_reason().unwrap_or("")
    )
    .into_bytes();
    for (name, value) in meta.headers() {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// The request a stored response answers: request line, `Host`, the fields `Vary` selected on.
fn request_block(entry: &StoredResponse) -> Vec<u8> {
    let url = entry.url();
    let (authority, target) = match url.parse::<http::Uri>() {
        Ok(uri) => (
            uri.authority()
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default(),
            uri.path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        ),
        Err(_) => (String::new(), url.to_owned()),
    };
    let mut out = format!("GET {target} HTTP/1.1\r\nhost: {authority}\r\n").into_bytes();
    for (name, value) in &entry.request_headers() {
        if name == http::header::HOST {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// The header of one record, ending with its empty line.
fn record_header(fields: &[(&str, &str)], content_length: u64) -> Vec<u8> {
    let mut out = b"WARC/1.1\r\n".to_vec();
    for (name, value) in fields {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {content_length}\r\n\r\n").as_bytes());
    out
}

/// Writes one record, header and block, as a gzip member of its own.
fn write_record(
    out: &mut impl Write,
    fields: &[(&str, &str)],
    block: &[u8],
) -> Result<(), ArchiveError> {
    let mut gz = GzEncoder::new(out, Compression::default());
    gz.write_all(&record_header(fields, block.len() as u64))?;
    gz.write_all(block)?;
    gz.write_all(b"\r\n\r\n")?;
    gz.finish()?;
    Ok(())
}

/// Writes every response `store` holds to `out` as a gzipped WARC/1.1 file (see the
/// [module](self) docs for its records) and gives what it wrote. `progress` is called with
/// (entries written, entries in all) after each entry.
///
/// `out` is written with blocking calls: give it a buffered file, or a `Vec<u8>`.
///
/// # Errors
///
/// [`ArchiveError::Store`] for a store that fails or cannot list its entries,
/// [`ArchiveError::Io`] when `out` fails, [`ArchiveError::Changed`] when an entry is written
/// or removed while it is exported.
///
/// # Example
///
/// ```
/// use std::io::Read;
/// use std::sync::Arc;
/// use std::time::SystemTime;
/// use bytes::Bytes;
/// use cachio_core::{Meta, Policy, Store, StoreWriter};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let store = cachio_moka::MokaStore::new(1 << 20);
/// let now = SystemTime::now();
/// let meta = Policy::private().to_meta(&http::HeaderMap::new(), http::StatusCode::OK, http::Version::HTTP_11, &http::HeaderMap::new(), now, now);
/// let mut w = store.begin("https://example.com/")?;
/// w.append(Bytes::from_static(b"hello"))?;
/// w.commit(Arc::new(Meta::Response(meta)), None).await?;
///
/// let mut warc = Vec::new();
/// cachio_archive::warc::export_warc(&store, &mut warc, |_, _| {}).await?;
/// let mut text = String::new();
/// flate2::read::MultiGzDecoder::new(&warc[..]).read_to_string(&mut text)?;
/// assert!(text.starts_with("WARC/1.1\r\nWARC-Type: warcinfo\r\n"));
/// assert!(text.contains("WARC-Target-URI: https://example.com/\r\n"));
/// assert!(text.contains("\r\n\r\nhello\r\n\r\n"));
/// # Ok(())
/// # }
/// ```
pub async fn export_warc<S: Store, W: Write>(
    store: &S,
    mut out: W,
    mut progress: impl FnMut(usize, usize),
) -> Result<ExportSummary, ArchiveError> {
    let listed = catalog(store).await?;
    let total = listed.responses.len();

    let info_id = record_id();
    let info = format!(
        "software: cachio/{}\r\nformat: WARC File Format 1.1\r\nconformsTo: http://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/\r\n",
        env!("CARGO_PKG_VERSION")
    );
    let now = warc_date(SystemTime::now());
    write_record(
        &mut out,
        &[
            ("WARC-Type", "warcinfo"),
            ("WARC-Record-ID", &info_id),
            ("WARC-Date", &now),
            ("Content-Type", "application/warc-fields"),
        ],
        info.as_bytes(),
    )?;

    let mut summary = ExportSummary::default();
    for (i, entry) in listed.responses.iter().enumerate() {
        summary.body_bytes += write_exchange(store, entry, &info_id, &mut out).await?;
        summary.entries += 1;
        progress(i + 1, total);
    }
    out.flush()?;
    Ok(summary)
}

/// Writes the response and request records of one entry; gives its body length.
async fn write_exchange<S: Store, W: Write>(
    store: &S,
    entry: &StoredResponse,
    info_id: &str,
    out: &mut W,
) -> Result<u64, ArchiveError> {
    let expected = Meta::Response(entry.meta.clone());
    let head = response_head(entry);

    // First read: the length and the digests the header carries.
    let mut payload = Sha1::new();
    let mut block = Sha1::new();
    block.update(&head);
    let mut len = 0u64;
    read_body(store, &entry.key, Some(&expected), |chunk| {
        payload.update(chunk);
        block.update(chunk);
        len += chunk.len() as u64;
        Ok(())
    })
    .await?;

    let response_id = record_id();
    let date = warc_date(entry.meta.request_time());
    let url = entry.url();
    let block_digest = sha1_label(block);
    let payload_digest = sha1_label(payload);
    {
        let mut gz = GzEncoder::new(&mut *out, Compression::default());
        gz.write_all(&record_header(
            &[
                ("WARC-Type", "response"),
                ("WARC-Record-ID", &response_id),
                ("WARC-Date", &date),
                ("WARC-Target-URI", url),
                ("WARC-Warcinfo-ID", info_id),
                ("WARC-Block-Digest", &block_digest),
                ("WARC-Payload-Digest", &payload_digest),
                ("Content-Type", "application/http;msgtype=response"),
            ],
            head.len() as u64 + len,
        ))?;
        gz.write_all(&head)?;
        // Second read: the body itself, as it streams.
        let mut written = 0u64;
        read_body(store, &entry.key, Some(&expected), |chunk| {
            written += chunk.len() as u64;
            gz.write_all(chunk)?;
            Ok(())
        })
        .await?;
        if written != len {
            return Err(ArchiveError::Changed {
                key: entry.key.clone(),
            });
        }
        gz.write_all(b"\r\n\r\n")?;
        gz.finish()?;
    }

    let request = request_block(entry);
    let mut digest = Sha1::new();
    digest.update(&request);
    let request_digest = sha1_label(digest);
    let request_id = record_id();
    write_record(
        out,
        &[
            ("WARC-Type", "request"),
            ("WARC-Record-ID", &request_id),
            ("WARC-Date", &date),
            ("WARC-Target-URI", url),
            ("WARC-Warcinfo-ID", info_id),
            ("WARC-Concurrent-To", &response_id),
            ("WARC-Block-Digest", &request_digest),
            ("Content-Type", "application/http;msgtype=request"),
        ],
        &request,
    )?;
    Ok(len)
}
