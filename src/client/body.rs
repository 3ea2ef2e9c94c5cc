//! The body of a [`Client`](super::Client)'s responses.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;

use super::{BoxError, Error};

/// The body of a response from [`Client`](super::Client): it streams, from the store on a hit and
/// from the origin on a miss (while the cache stores it), decompressed when the origin compressed
/// it.
///
/// It is an [`http_body::Body`]: read it frame by frame (`http_body_util::BodyExt::frame`) to
/// keep memory flat whatever its size, or collect it with [`bytes`](Self::bytes) or
/// [`text`](Self::text).
///
/// # Example
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), cachio::client::Error> {
/// let client = cachio::Client::new("./http-cache")?;
/// let res = client.get("https://www.example.com/").await?;
/// let text = res.into_body().text().await?;
/// # Ok(())
/// # }
/// ```
pub struct Body {
    inner: UnsyncBoxBody<Bytes, BoxError>,
}

impl Body {
    pub(crate) fn new<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes, Error = BoxError> + Send + 'static,
    {
        Self {
            inner: UnsyncBoxBody::new(body),
        }
    }

    /// The whole body, once it has arrived.
    ///
    /// # Errors
    ///
    /// When the body fails before its end ([`Error::is_body`]).
    pub async fn bytes(mut self) -> Result<Bytes, Error> {
        // A body of one chunk (a small response, or one the memory store keeps whole) is that
        // chunk, shared: no copy and no list of chunks to gather it in. A longer body is copied
        // once, into a buffer sized from what the body says is left.
        let mut first: Option<Bytes> = None;
        let mut joined: Option<BytesMut> = None;
        while let Some(frame) = self.frame().await {
            let Ok(data) = frame?.into_data() else {
                continue; // trailers: not part of the content
            };
            if let Some(joined) = joined.as_mut() {
                joined.extend_from_slice(&data);
            } else if let Some(head) = first.take() {
                let left = usize::try_from(http_body::Body::size_hint(&self).lower()).unwrap_or(0);
                let mut buf = BytesMut::with_capacity(head.len() + data.len() + left);
                buf.extend_from_slice(&head);
                buf.extend_from_slice(&data);
                joined = Some(buf);
            } else {
                first = Some(data);
                if http_body::Body::is_end_stream(&self) {
                    break;
                }
            }
        }
        Ok(match (joined, first) {
            (Some(joined), _) => joined.freeze(),
            (None, first) => first.unwrap_or_default(),
        })
    }

    /// The whole body as text, once it has arrived. It is read as UTF-8; a sequence that is not
    /// UTF-8 becomes U+FFFD, as a browser shows it.
    ///
    /// # Errors
    ///
    /// When the body fails before its end ([`Error::is_body`]).
    pub async fn text(self) -> Result<String, Error> {
        let bytes = self.bytes().await?;
        Ok(match String::from_utf8(bytes.into()) {
            Ok(text) => text,
            Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
        })
    }
}

impl http_body::Body for Body {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map(|frame| frame.map(|frame| frame.map_err(Error::body)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Body").finish_non_exhaustive()
    }
}

/// The body of the requests the client's stack carries: any body, boxed.
///
/// A type of its own rather than a `BoxBody<_, Box<dyn Error>>` alias: the trait object's
/// lifetime in such a generic makes rustc fail to prove the client's futures `Send`.
pub(crate) struct RequestBody {
    inner: http_body_util::combinators::BoxBody<Bytes, BoxError>,
}

impl RequestBody {
    pub(crate) fn new<B>(body: B) -> Self
    where
        B: http_body::Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BoxError>,
    {
        Self {
            inner: body.map_err(Into::into).boxed(),
        }
    }
}

impl Default for RequestBody {
    fn default() -> Self {
        Self::new(http_body_util::Empty::new())
    }
}

impl http_body::Body for RequestBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use http_body::Frame;

    use super::{Body, BoxError};

    /// Frames handed out one by one, each a poll of its own.
    struct Frames(VecDeque<Frame<Bytes>>);

    impl http_body::Body for Frames {
        type Data = Bytes;
        type Error = BoxError;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
            Poll::Ready(self.0.pop_front().map(Ok))
        }
    }

    fn body(frames: Vec<Frame<Bytes>>) -> Body {
        Body::new(Frames(frames.into()))
    }

    fn body_of(chunk: Bytes) -> Frames {
        Frames(VecDeque::from([Frame::data(chunk)]))
    }

    fn data(s: &'static str) -> Frame<Bytes> {
        Frame::data(Bytes::from_static(s.as_bytes()))
    }

    #[tokio::test]
    async fn bytes_joins_every_data_frame_and_skips_trailers() {
        let mut trailers = http::HeaderMap::new();
        trailers.insert("x-checksum", "1".parse().unwrap());
        let cases: Vec<(Vec<Frame<Bytes>>, &str)> = vec![
            (vec![], ""),
            (vec![data("one")], "one"),
            (vec![data("ab"), data("cd"), data("ef")], "abcdef"),
            (vec![data("ab"), Frame::trailers(trailers.clone())], "ab"),
            (vec![Frame::trailers(trailers), data("late")], "late"),
        ];
        for (frames, expected) in cases {
            assert_eq!(body(frames).bytes().await.unwrap(), expected);
        }
    }

    #[tokio::test]
    async fn a_single_chunk_is_returned_without_a_copy() {
        let chunk = Bytes::from(vec![7u8; 4096]);
        let got = Body::new(body_of(chunk.clone())).bytes().await.unwrap();
        assert_eq!(got.as_ptr(), chunk.as_ptr(), "the same bytes, shared");
    }
}
