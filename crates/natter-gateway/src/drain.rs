//! Refusals that leave a request body unread (a 401 before an upload is read, a 413 in the
//! middle of one) must still reach a client that is busy sending.
//!
//! hyper, when a handler answers without reading the whole body, reads what is already buffered
//! and then closes the connection, without `Connection: close`. The client's further bytes then
//! meet a closed socket, the kernel answers them with a reset, and a client that reads the
//! answer only after sending (most do) sees "connection reset" instead of the JSON error.
//!
//! So every request body goes through [`Shared`], which lets this middleware take the body back
//! once the handler is done. If the body was not read to its end, the answer gets
//! `Connection: close` and is returned at once, while a task reads and discards the rest of the
//! body — bounded in bytes and in time — so hyper keeps reading the socket until the client has
//! sent everything, and then closes it cleanly.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use futures_util::StreamExt;
use parking_lot::Mutex;

/// How much of a refused body is read at most, and for how long.
#[derive(Clone, Copy, Debug)]
pub(crate) struct DrainLimits {
    pub(crate) max_bytes: u64,
    pub(crate) max_time: Duration,
}

/// The request body, shared between the handler (which reads it through this) and the
/// middleware (which takes the rest back afterwards).
struct Shared {
    body: Arc<Mutex<Option<Body>>>,
    state: Arc<ReadState>,
}

#[derive(Default)]
struct ReadState {
    /// The handler asked for body bytes at least once.
    polled: AtomicBool,
    /// The body ended (or failed): nothing is left to read.
    finished: AtomicBool,
}

impl HttpBody for Shared {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        self.state.polled.store(true, Ordering::Relaxed);
        let mut guard = self.body.lock();
        let Some(body) = guard.as_mut() else { return Poll::Ready(None) };
        let polled = Pin::new(body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            self.state.finished.store(true, Ordering::Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.lock().as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.lock().as_ref().map(HttpBody::size_hint).unwrap_or_default()
    }
}

/// The middleware (see the module documentation).
pub(crate) async fn drain_unread_body(State(limits): State<DrainLimits>, request: Request, next: Next) -> Response {
    if request.body().is_end_stream() {
        return next.run(request).await;
    }
    let expects_continue = request
        .headers()
        .get(header::EXPECT)
        .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    let (parts, body) = request.into_parts();
    let body = Arc::new(Mutex::new(Some(body)));
    let state = Arc::new(ReadState::default());
    let shared = Shared { body: body.clone(), state: state.clone() };
    let mut response = next.run(Request::from_parts(parts, Body::new(shared))).await;
    if state.finished.load(Ordering::Relaxed) {
        return response;
    }
    let Some(rest) = body.lock().take() else { return response };
    // A reader may stop at the last byte without asking for the end: nothing is left then.
    if rest.is_end_stream() {
        return response;
    }
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    // A client waiting for `100 Continue` has not sent the body and, answered already, will not:
    // reading would make hyper invite it to.
    if expects_continue && !state.polled.load(Ordering::Relaxed) {
        return response;
    }
    tokio::spawn(discard(rest, limits));
    response
}

async fn discard(body: Body, limits: DrainLimits) {
    let mut stream = body.into_data_stream();
    let read_all = async {
        let mut read: u64 = 0;
        while let Some(Ok(chunk)) = stream.next().await {
            read = read.saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
            if read > limits.max_bytes {
                return false;
            }
        }
        true
    };
    match tokio::time::timeout(limits.max_time, read_all).await {
        Ok(true) => {}
        Ok(false) | Err(_) => {
            tracing::debug!("gave up reading the rest of a refused request body");
        }
    }
}
