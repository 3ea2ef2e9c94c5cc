//! The service under the cache: hyper's pooled client over HTTP and HTTPS.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tower::Service;

use super::{Error, RequestBody};

/// Sends a request over a pooled connection; a failure becomes an [`Error`] that names the
/// request's host (the cache's own errors pass through the layers above as they are).
#[derive(Clone, Debug)]
pub(crate) struct Transport {
    client: HyperClient<HttpsConnector<HttpConnector>, RequestBody>,
}

impl Transport {
    pub(crate) fn new(connector: HttpsConnector<HttpConnector>) -> Self {
        let client = HyperClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new())
            .build(connector);
        Self { client }
    }
}

impl Service<Request<RequestBody>> for Transport {
    type Response = Response<Incoming>;
    type Error = super::BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Incoming>, super::BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.client.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<RequestBody>) -> Self::Future {
        let uri = req.uri().clone();
        let sent = self.client.call(req);
        Box::pin(async move {
            sent.await
                .map_err(|err| Error::transport(&uri, Box::new(err)).into())
        })
    }
}
