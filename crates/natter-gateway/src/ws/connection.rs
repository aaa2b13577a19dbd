//! One socket's WebSocket, unsplit and owned by its task, and the one place that polls it: what
//! happens next on a socket (a client frame, a request's answer, the hub dropping it, its timer)
//! while whatever is due to be written goes out, queued frames batched into one flush.
//!
//! Reading and writing are polled side by side in one `poll` rather than from two halves of a
//! split socket (which would put a lock around every read and write): a client that stops
//! reading stalls only the writing, never the reading of its close or ping frames, and its
//! queue fills up until the hub drops it as too slow.

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::task::{Context, Poll};

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures_util::{SinkExt, StreamExt};
use tokio::time::Sleep;

use crate::socket_queue::{Dropped, SocketQueue};

/// A request in progress: the future of one client frame's service call, answering with the
/// frame to reply with (encoded), if any.
pub(super) type Request<'a> = Pin<Box<dyn Future<Output = Option<Utf8Bytes>> + Send + 'a>>;

/// Most frames fed to the socket in one go: past it the task flushes and lets others run.
const WRITE_BATCH: usize = 64;

pub(super) struct Connection {
    socket: WebSocket,
    /// A ping is to go out before anything else.
    ping_due: bool,
    /// This server's own frame for the client (`hello`, a reply), to go out before queued
    /// frames. Frames are read from the client only while this is empty, so a client that does
    /// not read its replies cannot make them pile up.
    reply: Option<Message>,
    /// Frames were fed to the socket since the last completed flush.
    unflushed: bool,
    /// Reading from the client is paused (it sent more frames than its budget allows).
    paused: bool,
}

/// What happened on a socket.
pub(super) enum Event {
    /// The client sent a frame, or its frames ended (`None`: closed or gone).
    Received(Option<Result<Message, axum::Error>>),
    /// The request in progress answered.
    Answered(Option<Utf8Bytes>),
    /// The hub dropped the socket.
    Dropped(Dropped),
    /// The timer passed to [`Connection::next_event`] fired.
    Timer,
    /// A write failed: the connection is gone.
    WriteFailed,
}

impl Connection {
    pub(super) fn new(socket: WebSocket) -> Self {
        Self { socket, ping_due: false, reply: None, unflushed: false, paused: false }
    }

    /// Queues `text` to be written before the next queued frames. Only one reply waits at a
    /// time: callers reply at most once per frame read (see [`Connection::next_event`]).
    pub(super) fn reply(&mut self, text: Utf8Bytes) {
        debug_assert!(self.reply.is_none(), "one reply at a time");
        self.reply = Some(Message::Text(text));
    }

    /// Stops (or resumes) reading the client's frames; writing goes on.
    pub(super) fn pause_reading(&mut self, paused: bool) {
        self.paused = paused;
    }

    /// Sends a ping soon, unless writing is already backed up (the client reads nothing: a
    /// ping would tell nothing either).
    pub(super) fn ping(&mut self) {
        if !self.unflushed {
            self.ping_due = true;
        }
    }

    /// Waits for what happens next, writing meanwhile. While `request` runs only it and the
    /// writing are polled: a socket's requests are handled one after another, in order, and one
    /// that runs is not abandoned for a drop or a timer (those are seen once it answers).
    pub(super) async fn next_event(
        &mut self,
        queue: &SocketQueue,
        mut timer: Pin<&mut Sleep>,
        mut request: Option<&mut Request<'_>>,
    ) -> Event {
        poll_fn(|cx| {
            if let Some(request) = request.as_mut() {
                if let Poll::Ready(answer) = request.as_mut().poll(cx) {
                    return Poll::Ready(Event::Answered(answer));
                }
                // Registers for queued frames (a drop is seen after the answer).
                let _ = queue.poll_dropped(cx);
                return match self.poll_write(cx, queue) {
                    Ok(()) => Poll::Pending,
                    Err(_) => Poll::Ready(Event::WriteFailed),
                };
            }
            if let Poll::Ready(why) = queue.poll_dropped(cx) {
                return Poll::Ready(Event::Dropped(why));
            }
            if timer.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Timer);
            }
            if self.poll_write(cx, queue).is_err() {
                return Poll::Ready(Event::WriteFailed);
            }
            if self.reply.is_none()
                && !self.paused
                && let Poll::Ready(received) = self.socket.poll_next_unpin(cx)
            {
                if let Some(Ok(Message::Ping(_))) = received {
                    // The automatic pong goes out with the next flush.
                    self.unflushed = true;
                }
                return Poll::Ready(Event::Received(received));
            }
            Poll::Pending
        })
        .await
    }

    /// Feeds what is due (a ping, the reply, then queued frames) while the socket takes it, up
    /// to [`WRITE_BATCH`] frames, and flushes. The caller has registered for queued frames.
    fn poll_write(&mut self, cx: &mut Context<'_>, queue: &SocketQueue) -> Result<(), axum::Error> {
        let mut fed = 0;
        while fed < WRITE_BATCH {
            // Pending: the socket is backed up (the client is not reading); it wakes this task
            // when it can take more.
            match self.socket.poll_ready_unpin(cx) {
                Poll::Ready(ready) => ready?,
                Poll::Pending => break,
            }
            let message = if std::mem::take(&mut self.ping_due) {
                Message::Ping(Default::default())
            } else if let Some(reply) = self.reply.take() {
                reply
            } else if let Some(frame) = queue.pop() {
                Message::Text(frame)
            } else {
                break;
            };
            self.socket.start_send_unpin(message)?;
            self.unflushed = true;
            fed += 1;
        }
        if fed == WRITE_BATCH {
            // More may be queued: come back once the other tasks had their turn.
            cx.waker().wake_by_ref();
        }
        if self.unflushed {
            match self.socket.poll_flush_unpin(cx) {
                Poll::Ready(flushed) => {
                    flushed?;
                    self.unflushed = false;
                }
                Poll::Pending => {}
            }
        }
        Ok(())
    }

    /// Closes the connection: the pending reply first, then a close frame with `code` and
    /// `reason` (if given), waiting for the client's answering close (the closing handshake:
    /// whatever the client was still sending is read rather than answered with a TCP reset).
    /// The caller bounds how long this may take.
    pub(super) async fn close(&mut self, close: Option<(u16, String)>) {
        if let Some(reply) = self.reply.take()
            && self.socket.feed(reply).await.is_err()
        {
            return;
        }
        if let Some((code, reason)) = close {
            let frame = axum::extract::ws::CloseFrame { code, reason: reason.into() };
            if self.socket.send(Message::Close(Some(frame))).await.is_ok() {
                while let Some(Ok(message)) = self.socket.next().await {
                    if matches!(message, Message::Close(_)) {
                        break;
                    }
                }
            }
        }
        let _ = self.socket.close().await;
    }
}
