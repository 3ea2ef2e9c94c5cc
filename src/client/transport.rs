//! The service under the cache: hyper's pooled client over HTTP and HTTPS.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{HeaderValue, USER_AGENT};
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower::Service;

use super::{Error, RequestBody};

/// Sends a request over a pooled connection, with the client's `User-Agent` if it has none; a
/// failure becomes an [`Error`] that names the request's host (the cache's own errors pass
/// through the layers above as they are).
#[derive(Clone, Debug)]
pub(crate) struct Transport {
    // Behind an `Arc`: the stack is cloned for every request, hits included, and hyper's client
    // is a dozen reference counts to clone.
    client: Arc<HyperClient<HttpsConnector<HttpConnector>, RequestBody>>,
    user_agent: HeaderValue,
}

impl Transport {
    pub(crate) fn new(connector: HttpsConnector<HttpConnector>, user_agent: HeaderValue) -> Self {
        let client = HyperClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Self {
            client: Arc::new(client),
            user_agent,
        }
    }
}

impl Service<Request<RequestBody>> for Transport {
    type Response = Response<Incoming>;
    type Error = super::BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Incoming>, super::BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // hyper's pool is always ready: it waits for a connection in the request's future.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<RequestBody>) -> Self::Future {
        req.headers_mut()
            .entry(USER_AGENT)
            .or_insert_with(|| self.user_agent.clone());
        let uri = req.uri().clone();
        let sent = self.client.request(req);
        Box::pin(async move {
            sent.await
                .map_err(|err| Error::transport(&uri, Box::new(err)).into())
        })
    }
}
