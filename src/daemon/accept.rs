//! Accepting, and its throttle: the listener is one-shot in the epoll set, so one thread
//! accepts at a time and arms it again. Out of descriptors (or at the connection limit) the
//! listener stays disarmed for a while instead of spinning; it is retried on a timer and
//! whenever a connection closes. Lives under the event loop's lock.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::io::Errno;
use rustix::net::SocketFlags;

use super::listener::Listener;

/// What one accept gave.
pub enum Accepted {
    /// A connection; the listener is armed again (or accepting is paused).
    Conn(OwnedFd),
    /// Nothing to accept now; the listener is armed again (or accepting is paused).
    Empty,
    /// Out of descriptors or memory (or another failure): the caller pauses accepting.
    Exhausted,
    /// No listener (shutting down, or serving one inherited connection).
    Closed,
}

pub struct Acceptor {
    listener: Option<Listener>,
    paused: bool,
    /// The listener's token in the epoll set.
    token: u64,
}

impl Acceptor {
    pub fn new(listener: Option<Listener>, token: u64) -> Acceptor {
        Acceptor {
            listener,
            paused: false,
            token,
        }
    }

    /// Whether accepting is paused.
    pub fn paused(&self) -> bool {
        self.paused
    }

    /// Accepts one connection. The listener is one-shot and the caller may run this
    /// connection's first request for as long as its device takes: another thread must be
    /// able to accept meanwhile, so it is armed again first. When that fails the listener
    /// stays disarmed and accepting is paused (see [`Acceptor::paused`]), to be retried.
    pub fn accept(&mut self, epoll: &OwnedFd) -> Accepted {
        let Some(listener) = &self.listener else {
            return Accepted::Closed;
        };
        loop {
            match rustix::net::accept_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC) {
                Ok(sock) => {
                    self.rearm(epoll);
                    return Accepted::Conn(sock);
                }
                Err(Errno::INTR | Errno::CONNABORTED | Errno::PROTO) => {}
                Err(Errno::AGAIN) => {
                    // All accepted. The listener is one-shot: arm it again.
                    self.rearm(epoll);
                    return Accepted::Empty;
                }
                // Out of descriptors or memory, or a failure that would fail again at once:
                // wait a little rather than spin on a listener that stays readable.
                Err(_) => return Accepted::Exhausted,
            }
        }
    }

    /// Arms the listener again, or pauses accepting when epoll refuses (ENOMEM, ENOSPC): a
    /// listener left disarmed and not paused would never be served again.
    fn rearm(&mut self, epoll: &OwnedFd) {
        if !self.arm(epoll) {
            self.paused = true;
        }
    }

    fn arm(&self, epoll: &OwnedFd) -> bool {
        let Some(listener) = &self.listener else {
            return false;
        };
        epoll::modify(
            epoll,
            listener,
            EventData::new_u64(self.token),
            EventFlags::IN | EventFlags::ONESHOT,
        )
        .is_ok()
    }

    /// Stops accepting for a while (the one-shot listener stays disarmed). Returns whether
    /// accepting is paused now.
    pub fn pause(&mut self) -> bool {
        if self.listener.is_some() {
            self.paused = true;
        }
        self.paused
    }

    /// Arms the listener again (the thread that gets its event accepts). Returns whether
    /// accepting is resumed.
    pub fn resume(&mut self, epoll: &OwnedFd) -> bool {
        if self.arm(epoll) {
            self.paused = false;
            return true;
        }
        false
    }

    /// Closes the listener and removes its path; the unlink error to report, if any.
    pub fn close(&mut self) -> Option<(PathBuf, std::io::Error)> {
        self.listener.take().and_then(Listener::close)
    }
}
