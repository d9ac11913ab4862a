//! Reply buffers, kept for reuse: a few per thread, at hand without the lock, and a shared
//! spare stock under the event loop's lock. A request takes one as its header is read; the
//! reply gives it back once sent.

use crate::backend::ReplyBuffer;

/// Reply buffers kept for reuse beyond those each thread holds.
const SPARE_BUFFERS: usize = 64;
/// Reply buffers a thread keeps for itself: one in use, one coming back from a connection
/// another thread started.
const THREAD_BUFFERS: usize = 2;

/// The shared stock (under the event loop's lock).
#[derive(Default)]
pub struct Spare(Vec<ReplyBuffer>);

impl Spare {
    /// A spare buffer, else a new one.
    pub fn take(&mut self) -> ReplyBuffer {
        self.0.pop().unwrap_or_default()
    }

    /// Keeps `buffer` unless the stock is full.
    pub fn give(&mut self, buffer: ReplyBuffer) {
        if self.0.len() < SPARE_BUFFERS {
            self.0.push(buffer);
        }
    }
}

/// A thread's own buffers.
pub struct Own(Vec<ReplyBuffer>);

impl Own {
    pub fn new() -> Own {
        Own(Vec::with_capacity(THREAD_BUFFERS))
    }

    /// One of the thread's buffers, else what `spare` gives.
    pub fn take(&mut self, spare: impl FnOnce() -> ReplyBuffer) -> ReplyBuffer {
        self.0.pop().unwrap_or_else(spare)
    }

    /// Keeps `buffer` if the thread has room; else returns it, for the spare stock.
    pub fn keep(&mut self, buffer: ReplyBuffer) -> Option<ReplyBuffer> {
        if self.0.len() < THREAD_BUFFERS {
            self.0.push(buffer);
            return None;
        }
        Some(buffer)
    }
}
