//! The body of a hit.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use cachio_core::store::StoreError;
use http_body::{Body, Frame, SizeHint};

use crate::entry::Chunks;

/// The body of a [`MokaStore`](crate::MokaStore) hit: yields the stored pieces of the body (up to
/// 64 KiB each, copied once at commit), each a reference-counted clone of the stored [`Bytes`]
/// (no copy per hit). Its [`size_hint`](Body::size_hint) is exact.
///
/// # Example
///
/// ```
/// use std::sync::Arc;
/// use std::time::SystemTime;
///
/// use bytes::Bytes;
/// use cachio_core::meta::{Meta, ResponseMeta};
/// use cachio_core::store::{Store, StoreWriter};
/// use cachio_moka::MokaStore;
/// use http_body::Body;
/// use http_body_util::BodyExt;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let store = MokaStore::new(1 << 20);
/// let now = SystemTime::now();
/// let meta = Arc::new(Meta::Response(ResponseMeta::new(
///     http::StatusCode::OK,
///     http::Version::HTTP_11,
///     http::HeaderMap::new(),
///     Vec::new(),
///     now,
///     now,
/// )));
/// let chunk = Bytes::from(vec![b'x'; 10_000]);
/// let mut writer = store.begin("k").unwrap();
/// writer.append(chunk.clone()).unwrap();
/// writer.commit(meta, None).await.unwrap();
///
/// let mut body = store.get("k").await.unwrap().unwrap().body;
/// assert_eq!(body.size_hint().exact(), Some(10_000));
/// let data = body.frame().await.unwrap().unwrap().into_data().unwrap();
/// assert_eq!(data, chunk);
/// let again = store.get("k").await.unwrap().unwrap().body;
/// let shared = again.collect().await.unwrap().to_bytes();
/// assert_eq!(shared.as_ptr(), data.as_ptr()); // the very same bytes
/// assert!(body.is_end_stream());
/// # }
/// ```
#[derive(Clone)]
pub struct MokaBody {
    chunks: Chunks,
    next: usize,
    remaining: u64,
}

impl fmt::Debug for MokaBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MokaBody")
            .field("chunks", &self.chunks.count())
            .field("next", &self.next)
            .field("remaining", &self.remaining)
            .finish()
    }
}

impl Body for MokaBody {
    type Data = Bytes;
    type Error = StoreError;

    #[inline]
    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, StoreError>>> {
        let this = self.get_mut();
        let chunk = match &mut this.chunks {
            // The one chunk's handle is this body's own copy: handed out, not cloned again.
            Chunks::One(chunk) if this.next == 0 => std::mem::take(chunk),
            chunks => match chunks.get(this.next) {
                Some(chunk) => chunk.clone(),
                None => return Poll::Ready(None),
            },
        };
        this.next += 1;
        this.remaining -= chunk.len() as u64;
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }

    #[inline]
    fn is_end_stream(&self) -> bool {
        // No chunk is empty, so no chunks left means no bytes left.
        self.next >= self.chunks.count()
    }

    #[inline]
    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

impl MokaBody {
    pub(crate) fn new(chunks: Chunks, remaining: u64) -> Self {
        MokaBody {
            chunks,
            next: 0,
            remaining,
        }
    }
}
