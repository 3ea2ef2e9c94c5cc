//! WARC export, read back by an independent reader (the `warc` crate).

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::Write as _;
use std::time::Duration;

use bytes::Bytes;
use cachio_archive::warc::export_warc;
use cachio_core::store::Store;
use cachio_fjall::FjallStore;
use cachio_tower::CacheLayer;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceExt, service_fn};
use warc::{RecordType, WarcHeader, WarcReader};

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A body of several store chunks, not UTF-8.
fn large() -> Vec<u8> {
    (0..300_000u32).map(|i| (i % 251) as u8).collect()
}

async fn origin(req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    let b = Response::builder().header("cache-control", "max-age=3600");
    let res = match req.uri().path() {
        "/text" => b
            .header("content-type", "text/plain")
            .header("set-cookie", "a=1")
            .header("set-cookie", "b=2")
            .body(Full::new(Bytes::from_static(b"plain text"))),
        "/zipped" => b
            .header("content-encoding", "gzip")
            .body(Full::new(Bytes::from(gzip(b"zipped")))),
        "/large" => b.body(Full::new(Bytes::from(large()))),
        "/lang" => b
            .header("vary", "accept-language")
            .body(Full::new(Bytes::from_static(b"varies"))),
        _ => b.status(404).body(Full::new(Bytes::new())),
    };
    Ok(res.unwrap())
}

fn base32_sha1(data: &[u8]) -> String {
    format!(
        "sha1:{}",
        data_encoding::BASE32.encode(&sha1_smol::Sha1::from(data).digest().bytes())
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn records_read_back_with_their_bytes_and_digests() {
    let dir = tempfile::tempdir().unwrap();
    let store = FjallStore::open(dir.path().join("store")).unwrap();
    let client = CacheLayer::private(store.clone()).layer(service_fn(origin));
    for (path, lang) in [
        ("/text", None),
        ("/zipped", None),
        ("/large", None),
        ("/lang", Some("fr")),
    ] {
        let mut req = Request::get(format!("http://warc.example{path}"));
        if let Some(lang) = lang {
            req = req.header("accept-language", lang);
        }
        let res = client
            .clone()
            .oneshot(req.body(Full::default()).unwrap())
            .await
            .unwrap();
        res.into_body().collect().await.unwrap();
    }
    for _ in 0..200 {
        if store.scan().await.unwrap().len() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let path = dir.path().join("out.warc.gz");
    let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let summary = export_warc(&store, file, |_, _| {}).await.unwrap();
    assert_eq!(summary.entries, 4);

    let records: Vec<_> = WarcReader::from_path_gzip(&path)
        .unwrap()
        .iter_records()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(records.len(), 1 + 2 * 4);
    assert_eq!(*records[0].warc_type(), RecordType::WarcInfo);
    assert!(String::from_utf8_lossy(records[0].body()).contains("software: cachio/"));
    let info_id = records[0].warc_id().to_owned();

    let mut responses = HashMap::new();
    for pair in records[1..].chunks(2) {
        let (res, req) = (&pair[0], &pair[1]);
        assert_eq!(*res.warc_type(), RecordType::Response);
        assert_eq!(*req.warc_type(), RecordType::Request);
        for r in pair {
            let id = r.warc_id();
            assert!(id.starts_with("<urn:uuid:") && id.ends_with('>'), "{id}");
            assert_eq!(r.header(WarcHeader::WarcInfoID).unwrap(), info_id);
            assert_eq!(
                r.header(WarcHeader::BlockDigest).unwrap(),
                base32_sha1(r.body())
            );
        }
        assert_eq!(req.header(WarcHeader::ConcurrentTo).unwrap(), res.warc_id());
        let uri = res.header(WarcHeader::TargetURI).unwrap().into_owned();
        assert_eq!(req.header(WarcHeader::TargetURI).unwrap(), uri);
        let block = res.body();
        let split = block.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        let (head, payload) = block.split_at(split);
        assert_eq!(
            res.header(WarcHeader::PayloadDigest).unwrap(),
            base32_sha1(payload)
        );
        assert_eq!(
            res.header(WarcHeader::ContentType).unwrap(),
            "application/http;msgtype=response"
        );
        responses.insert(
            uri,
            (
                String::from_utf8(head.to_vec()).unwrap(),
                payload.to_vec(),
                String::from_utf8(req.body().to_vec()).unwrap(),
            ),
        );
    }

    let (head, body, request) = &responses["http://warc.example/text"];
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
    assert!(
        head.contains("set-cookie: a=1\r\nset-cookie: b=2\r\n"),
        "{head}"
    );
    assert_eq!(body, b"plain text");
    assert_eq!(request, "GET /text HTTP/1.1\r\nhost: warc.example\r\n\r\n");

    let (head, body, _) = &responses["http://warc.example/zipped"];
    assert!(head.contains("content-encoding: gzip\r\n"));
    assert_eq!(body, &gzip(b"zipped"), "the bytes as stored, still coded");

    let (_, body, _) = &responses["http://warc.example/large"];
    assert_eq!(body, &large());

    let (_, body, request) = &responses["http://warc.example/lang"];
    assert_eq!(body, b"varies");
    assert_eq!(
        request,
        "GET /lang HTTP/1.1\r\nhost: warc.example\r\naccept-language: fr\r\n\r\n"
    );
}
