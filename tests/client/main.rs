//! `cachio::Client` against real origins on 127.0.0.1: HTTPS over HTTP/1.1 and HTTP/2 with
//! certificates made in the test, redirects, compressed responses, and what a failing origin or
//! a bad certificate gives.

mod basics;
mod compression;
mod https;
mod origin;
mod redirects;

use cachio::{CACHE_STATUS, Client, MemoryStore};

/// The `Cache-Status` of a response.
fn status<B>(res: &http::Response<B>) -> String {
    res.headers()[CACHE_STATUS]
        .to_str()
        .expect("ASCII Cache-Status")
        .to_owned()
}

/// Whether the response was served from the cache.
fn is_hit<B>(res: &http::Response<B>) -> bool {
    status(res).contains("; hit")
}

/// A client over a memory store that trusts `ca_pem` as well as the built-in roots.
fn client_trusting(store: &MemoryStore, ca_pem: &str) -> Client {
    Client::builder("unused")
        .store(store.clone())
        .root_certificate_pem(ca_pem.as_bytes())
        .build()
        .expect("client")
}

/// A client over a memory store with the default roots only.
fn client(store: &MemoryStore) -> Client {
    Client::builder("unused")
        .store(store.clone())
        .build()
        .expect("client")
}

/// A fresh memory store.
fn memory() -> MemoryStore {
    MemoryStore::new(64 << 20)
}

/// Asks `client` for `url` without the network: whether the cache holds a response for it.
async fn is_stored(client: &Client, url: &str) -> bool {
    let mut req = http::Request::get(url)
        .body(String::new())
        .expect("request");
    req.extensions_mut().insert(cachio::CacheMode::OnlyIfCached);
    let res = client.request(req).await.expect("only-if-cached answers");
    res.status() != http::StatusCode::GATEWAY_TIMEOUT
}
