//! Keeping HTTP/1.1 connections usable after an answer that did not read the request
//! body (issue 17).
//!
//! Go clients (docker, containerd, the conformance suite) send a PUT or PATCH with a body
//! first without credentials, get 401, and retry with credentials on the same kept-alive
//! connection. If the server answers before reading the body and then quietly closes the
//! connection (hyper cannot reuse a connection with unread body bytes), the retry dies
//! with EOF or a broken pipe, and a PUT with a body is not retried by the client. The
//! same holds for every early answer: 401, 403, 404, 405, 400, 413 …
//!
//! So: an answer decided before the handler ran ([`settle`]) first drains the body, up
//! to [`DRAIN_LIMIT`] bytes within [`DRAIN_TIME`], and keeps the connection; a body that
//! is larger, slower, or that a handler left unread ([`close_unless_read`]) gets
//! `Connection: close`, which tells the client not to reuse the connection.

use axum::body::Body;
use axum::http::{header, HeaderValue};
use axum::response::Response;
use bytes::Bytes;
use http_body::Body as _;
use http_body_util::BodyExt;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// The most an early answer reads of a body it does not use, to keep the connection.
pub const DRAIN_LIMIT: u64 = 1 << 20;

/// How long an early answer waits for that body.
pub const DRAIN_TIME: Duration = Duration::from_secs(2);

/// How much more of a larger body is read and discarded after the answer went out with
/// `Connection: close` ("lingering close", as nginx does): a client still writing its
/// body then reads the answer instead of failing with a broken pipe.
pub const LINGER_LIMIT: usize = 64 << 20;

/// How long that lingering read may last.
pub const LINGER_TIME: Duration = Duration::from_secs(10);

/// Whether a request body has been read to its end.
#[derive(Clone, Debug)]
pub struct ReadToEnd(Arc<AtomicBool>);

impl ReadToEnd {
    /// Whether the body's end was reached.
    pub fn get(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A body that records when its end is reached.
struct Tracked {
    inner: Body,
    done: Arc<AtomicBool>,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        let r = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(r, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.done.store(true, Ordering::Relaxed);
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Wraps `body` so [`ReadToEnd`] tells whether anything read it to its end.
pub fn track(body: Body) -> (Body, ReadToEnd) {
    let done = Arc::new(AtomicBool::new(body.is_end_stream()));
    let flag = ReadToEnd(done.clone());
    (Body::new(Tracked { inner: body, done }), flag)
}

/// Adds `Connection: close` to `resp`.
fn close(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// Reads and discards up to `limit` bytes of `body`; `Ok(true)` when its end was reached.
async fn discard(body: &mut Body, limit: u64) -> Result<bool, ()> {
    let mut read = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ())?;
        read += frame.data_ref().map_or(0, |d| d.len() as u64);
        if read > limit {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `resp` for a request whose `body` the handler did not use: the body is drained (up to
/// [`DRAIN_LIMIT`] within [`DRAIN_TIME`]) so the connection stays usable, else the
/// answer announces `Connection: close` and the rest of the body is read in the
/// background (up to [`LINGER_LIMIT`] within [`LINGER_TIME`]) so the client sees it.
pub async fn settle(resp: Response, mut body: Body) -> Response {
    if body.is_end_stream() {
        return resp;
    }
    if body.size_hint().lower() <= DRAIN_LIMIT {
        if let Ok(Ok(true)) =
            tokio::time::timeout(DRAIN_TIME, discard(&mut body, DRAIN_LIMIT)).await
        {
            return resp;
        }
    }
    tokio::spawn(async move {
        let _ = tokio::time::timeout(LINGER_TIME, discard(&mut body, LINGER_LIMIT as u64)).await;
    });
    close(resp)
}

/// `resp`, with `Connection: close` unless the request body was read to its end.
pub fn close_unless_read(resp: Response, read: &ReadToEnd) -> Response {
    if read.get() {
        resp
    } else {
        close(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::response::IntoResponse;

    fn closes(r: &Response) -> bool {
        r.headers()
            .get(header::CONNECTION)
            .is_some_and(|v| v == "close")
    }

    #[tokio::test]
    async fn small_unread_bodies_are_drained_and_the_connection_kept() {
        let resp = settle(().into_response(), Body::from(vec![0u8; 1000])).await;
        assert!(!closes(&resp));
        let resp = settle(().into_response(), Body::empty()).await;
        assert!(!closes(&resp));
    }

    #[tokio::test]
    async fn large_unread_bodies_close_the_connection() {
        let big = vec![0u8; DRAIN_LIMIT as usize + 1];
        let resp = settle(().into_response(), Body::from(big.clone())).await;
        assert!(closes(&resp));
        // Also when the size is not known in advance (chunked).
        let stream = futures::stream::iter(
            big.chunks(4096)
                .map(|c| Ok::<_, std::io::Error>(Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        );
        let resp = settle(().into_response(), Body::from_stream(stream)).await;
        assert!(closes(&resp));
    }

    #[tokio::test]
    async fn tracking_sees_whether_the_handler_read_the_body() {
        let (body, read) = track(Body::from("abc"));
        assert!(!read.get());
        assert!(closes(&close_unless_read(().into_response(), &read)));
        let _ = body.collect().await.unwrap();
        assert!(read.get());
        assert!(!closes(&close_unless_read(().into_response(), &read)));
        let (_body, read) = track(Body::empty());
        assert!(read.get());
    }
}
