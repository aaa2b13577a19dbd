//! What the hub hands one socket's task: a bounded queue of encoded frames and, once the hub
//! drops the socket, why. Both wake the same task through one waker.
//!
//! This is a `VecDeque` under a lock rather than a `tokio::sync::mpsc` channel because most
//! sockets are idle: an empty queue here holds no buffer at all, where a channel holds a block of
//! 32 slots and cache-padded state (about 1.5 KiB) for as long as the socket is open.

use std::collections::VecDeque;
use std::task::{Context, Poll};

use axum::extract::ws::Utf8Bytes;
use futures_util::task::AtomicWaker;
use parking_lot::Mutex;

/// Why the hub dropped a socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// The client fell behind.
    TooSlow,
    /// The socket's session was revoked.
    SessionEnded,
    /// The server is shutting down.
    ShuttingDown,
}

/// A queue emptied down from more than this many slots gives its buffer back: a socket that
/// once fell behind does not keep the memory of its worst moment.
const KEEP_CAPACITY: usize = 16;

pub struct SocketQueue {
    state: Mutex<State>,
    /// The socket's task, woken by a frame or by the drop.
    waker: AtomicWaker,
}

#[derive(Default)]
struct State {
    frames: VecDeque<Utf8Bytes>,
    /// Set once; the first reason wins.
    dropped: Option<Dropped>,
}

/// The queue held as many frames as it may.
#[derive(Debug)]
pub struct Full;

impl SocketQueue {
    pub fn new() -> Self {
        Self { state: Mutex::new(State::default()), waker: AtomicWaker::new() }
    }

    /// Queues `frame` unless `capacity` frames are already waiting.
    pub fn push(&self, frame: Utf8Bytes, capacity: usize) -> Result<(), Full> {
        {
            let mut state = self.state.lock();
            if state.frames.len() >= capacity {
                return Err(Full);
            }
            state.frames.push_back(frame);
        }
        self.waker.wake();
        Ok(())
    }

    /// Tells the socket's task to close (a second reason is ignored).
    pub fn drop_socket(&self, why: Dropped) {
        self.state.lock().dropped.get_or_insert(why);
        self.waker.wake();
    }

    /// Why the hub dropped the socket, if it did.
    pub fn dropped(&self) -> Option<Dropped> {
        self.state.lock().dropped
    }

    /// Ready once the hub dropped the socket. Registers the task to be woken by the drop and by
    /// every frame pushed from now on, so a `Pending` here covers [`SocketQueue::pop`] too.
    pub fn poll_dropped(&self, cx: &mut Context<'_>) -> Poll<Dropped> {
        self.waker.register(cx.waker());
        match self.dropped() {
            Some(why) => Poll::Ready(why),
            None => Poll::Pending,
        }
    }

    /// The oldest queued frame.
    pub fn pop(&self) -> Option<Utf8Bytes> {
        let mut state = self.state.lock();
        let frame = state.frames.pop_front();
        if state.frames.is_empty() && state.frames.capacity() > KEEP_CAPACITY {
            state.frames = VecDeque::new();
        }
        frame
    }
}

impl Default for SocketQueue {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    use super::*;

    #[derive(Default)]
    struct CountingWaker(AtomicUsize);

    impl Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn text(s: &'static str) -> Utf8Bytes {
        Utf8Bytes::from_static(s)
    }

    #[test]
    fn frames_come_out_in_order_up_to_the_capacity() {
        let queue = SocketQueue::new();
        queue.push(text("a"), 2).expect("room for a");
        queue.push(text("b"), 2).expect("room for b");
        assert!(queue.push(text("c"), 2).is_err(), "a full queue refuses");
        assert_eq!(queue.pop().as_ref().map(Utf8Bytes::as_str), Some("a"));
        queue.push(text("c"), 2).expect("room again");
        assert_eq!(queue.pop().as_ref().map(Utf8Bytes::as_str), Some("b"));
        assert_eq!(queue.pop().as_ref().map(Utf8Bytes::as_str), Some("c"));
        assert!(queue.pop().is_none());
    }

    #[test]
    fn an_emptied_queue_gives_back_a_large_buffer() {
        let queue = SocketQueue::new();
        for _ in 0..100 {
            queue.push(text("x"), 1024).expect("room");
        }
        while queue.pop().is_some() {}
        assert_eq!(queue.state.lock().frames.capacity(), 0);
    }

    #[test]
    fn the_first_drop_reason_wins_and_wakes_the_task() {
        let queue = SocketQueue::new();
        let woken = Arc::new(CountingWaker::default());
        let waker = woken.clone().into();
        let mut cx = Context::from_waker(&waker);
        assert!(queue.poll_dropped(&mut cx).is_pending());
        queue.push(text("a"), 8).expect("room");
        assert_eq!(woken.0.load(Ordering::Relaxed), 1, "a frame wakes the task");
        assert!(queue.poll_dropped(&mut cx).is_pending());
        queue.drop_socket(Dropped::TooSlow);
        queue.drop_socket(Dropped::ShuttingDown);
        assert_eq!(woken.0.load(Ordering::Relaxed), 2, "the drop wakes the task");
        assert_eq!(queue.poll_dropped(&mut cx), Poll::Ready(Dropped::TooSlow));
    }
}
