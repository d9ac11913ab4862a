//! One client connection as a state machine over a non-blocking socket: negotiate, read a
//! request (CDB with its fd, then the PR OUT parameter list), let a thread run it, write the
//! reply, and again. Every read and write may stop half-way and resume on the next event.

use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;

use rustix::fs::OFlags;
use rustix::io::Errno;
use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendFlags};

use crate::backend::{ReplyBuffer, Request};
use crate::protocol::{self, CdbError, PR_HELPER_CDB_SIZE, PR_HELPER_FEATURES_SIZE};
use crate::trace::{self, TracePoint};

/// Descriptors one read may carry before the kernel truncates: QEMU's `SOCKET_MAX_FDS`.
const SOCKET_MAX_FDS: usize = 16;

/// Where a connection is in the protocol.
pub enum State {
    /// Waiting for the client's feature word.
    Negotiating {
        got: u8,
        buf: [u8; PR_HELPER_FEATURES_SIZE],
    },
    /// Reading the 16-byte CDB and collecting the fd that rides on it.
    ReadingCdb {
        got: u8,
        cdb: [u8; PR_HELPER_CDB_SIZE],
        device: Option<(OwnedFd, bool)>,
    },
    /// Reading the PR OUT parameter list into the reply buffer's payload area.
    ReadingParams {
        request: Request,
        reply: ReplyBuffer,
        got: usize,
    },
    /// A thread is running the request.
    Executing,
    /// Writing the reply.
    Writing {
        reply: ReplyBuffer,
        len: usize,
        sent: usize,
    },
}

impl State {
    /// Waiting for a request's CDB.
    fn reading_cdb() -> State {
        State::ReadingCdb {
            got: 0,
            cdb: [0; PR_HELPER_CDB_SIZE],
            device: None,
        }
    }
}

/// Why a connection closes; `message` is what C prints for it (unless -q).
#[derive(Debug)]
pub struct Close {
    pub reason: &'static str,
    pub message: Option<String>,
}

impl Close {
    /// A close that prints nothing.
    pub fn silent(reason: &'static str) -> Self {
        Close {
            reason,
            message: None,
        }
    }

    /// Closing because epoll refused to watch the connection again: the client reconnects, as
    /// QEMU does, and gets a connection that is watched.
    pub fn epoll(e: Errno) -> Self {
        let why = crate::errors::strerror(&e.into());
        Close {
            reason: "epoll_ctl failed",
            message: Some(format!("Cannot watch the connection: {why}")),
        }
    }

    /// Closing, with what C prints for it.
    fn loud(reason: &'static str, message: impl Into<String>) -> Step {
        let message = Some(message.into());
        Step::Close(Close { reason, message })
    }
}

/// What the event loop must do after a connection made progress.
pub enum Step {
    /// Nothing until the next readiness event.
    Wait,
    /// The socket said EAGAIN: wait for this readiness, asking epoll for it again first. The
    /// connection is edge-triggered, and a call can fail with EAGAIN while its readiness holds
    /// (strace showed it): the edge that readiness came with is spent, and no new one would
    /// come before the client hears from us, which it waits for.
    Blocked(Interest),
    /// Run this request; the connection is now `Executing`.
    Dispatch(Request, ReplyBuffer),
    /// The reply went out: recycle the buffer and read the next request.
    Replied(ReplyBuffer),
    /// Drop the connection.
    Close(Close),
}

/// The readiness a blocked connection waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interest {
    /// A request (or its end).
    Read,
    /// Room for the rest of a reply; requests that come meanwhile wait, as C answers them in
    /// order (and a client that sends without reading must not make the loop spin).
    Write,
}

/// A client connection.
pub struct Conn {
    pub sock: OwnedFd,
    pub state: State,
    /// `--audit`: the peer, read when it connected.
    pub audit: Option<Box<crate::daemon::audit::ConnAudit>>,
    /// Armed for writability alone ([`Interest::Write`]), until the blocked reply is out.
    pub write_only: bool,
}

impl Conn {
    /// A connection whose feature word has been sent.
    pub fn new(sock: OwnedFd) -> Conn {
        Conn {
            sock,
            state: State::Negotiating {
                got: 0,
                buf: [0; PR_HELPER_FEATURES_SIZE],
            },
            audit: None,
            write_only: false,
        }
    }

    /// Whether a thread is running this connection's request.
    pub fn is_executing(&self) -> bool {
        matches!(self.state, State::Executing)
    }

    /// Reads as far as the socket allows. `take_buffer` provides a reply buffer when a request
    /// needs one.
    pub fn on_readable(&mut self, take_buffer: &mut dyn FnMut() -> ReplyBuffer) -> Step {
        loop {
            match &mut self.state {
                State::Negotiating { got, buf } => {
                    let n = match recv_into(&self.sock, &mut buf[usize::from(*got)..]) {
                        Ok(n) => n,
                        Err(stop) => return stop.into_step("negotiation"),
                    };
                    *got += n as u8;
                    if usize::from(*got) < PR_HELPER_FEATURES_SIZE {
                        continue;
                    }
                    let requested = *buf;
                    trace::emit(TracePoint::Negotiate, || {
                        format!("features=0x{:08x}", u32::from_be_bytes(requested))
                    });
                    if !protocol::features_acceptable(requested) {
                        return Step::Close(Close::silent("unsupported features requested"));
                    }
                    self.state = State::reading_cdb();
                }
                State::ReadingCdb { got, cdb, device } => {
                    let n = match recv_with_fd(&self.sock, &mut cdb[usize::from(*got)..], device) {
                        Ok(n) => n,
                        Err(stop) => return stop.into_step("reading request"),
                    };
                    *got += n as u8;
                    if usize::from(*got) < PR_HELPER_CDB_SIZE {
                        continue;
                    }
                    let (cdb, device) = (*cdb, device.take());
                    if let Some(step) = self.request_complete_cdb(cdb, device, take_buffer) {
                        return step;
                    }
                }
                State::ReadingParams {
                    request,
                    reply,
                    got,
                } => {
                    let need = request.cdb.parameter_length();
                    *got += match recv_into(&self.sock, &mut reply.payload_mut()[*got..need]) {
                        Ok(n) => n,
                        Err(Interrupted::WouldBlock) => return Step::Blocked(Interest::Read),
                        Err(Interrupted::Eof) => {
                            let words = "Unexpected end-of-file before all data were read";
                            return Close::loud("end of file in parameter list", words);
                        }
                        Err(Interrupted::Failed(e)) => {
                            return socket_error("read error in parameter list", "read from", e);
                        }
                    };
                    if *got == need {
                        return self.dispatch();
                    }
                }
                State::Executing | State::Writing { .. } => return Step::Wait,
            }
        }
    }

    /// Checks a complete CDB as `prh_read_request` does; `None` to keep reading (parameters).
    fn request_complete_cdb(
        &mut self,
        cdb: [u8; PR_HELPER_CDB_SIZE],
        device: Option<(OwnedFd, bool)>,
        take_buffer: &mut dyn FnMut() -> ReplyBuffer,
    ) -> Option<Step> {
        let Some((device, read_only)) = device else {
            return Some(Close::loud("no fd", "No file descriptor in request."));
        };
        let checked = match protocol::check_cdb(cdb) {
            Ok(c) => c,
            Err(CdbError::InvalidOpcode(_)) => {
                return Some(Close::loud(
                    "invalid opcode",
                    "Invalid CDB, closing socket.",
                ));
            }
            Err(CdbError::TooLong(_)) => {
                return Some(Step::Close(Close::silent("transfer length over 8192")));
            }
        };
        trace::emit(TracePoint::Request, || {
            format!(
                "opcode=0x{:02x} sa=0x{:02x} len={}",
                cdb[0],
                cdb[1] & 0x1f,
                checked.transfer_length
            )
        });
        let request = Request {
            cdb: checked,
            device,
            read_only,
        };
        self.state = State::ReadingParams {
            request,
            reply: take_buffer(),
            got: 0,
        };
        (checked.parameter_length() == 0).then(|| self.dispatch())
    }

    fn dispatch(&mut self) -> Step {
        match std::mem::replace(&mut self.state, State::Executing) {
            State::ReadingParams { request, reply, .. } => Step::Dispatch(request, reply),
            other => {
                self.state = other;
                Step::Wait
            }
        }
    }

    /// Starts writing a reply of `len` bytes.
    pub fn start_reply(&mut self, reply: ReplyBuffer, len: usize) -> Step {
        self.state = State::Writing {
            reply,
            len,
            sent: 0,
        };
        self.on_writable()
    }

    /// Writes as much of the pending reply as the socket takes.
    pub fn on_writable(&mut self) -> Step {
        let State::Writing { reply, len, sent } = &mut self.state else {
            return Step::Wait;
        };
        while *sent < *len {
            match rustix::net::send(&self.sock, &reply.wire(*len)[*sent..], SendFlags::NOSIGNAL) {
                Ok(n) => *sent += n,
                Err(Errno::INTR) => {}
                Err(Errno::AGAIN) => return Step::Blocked(Interest::Write),
                Err(e) => return socket_error("write error", "write to", e),
            }
        }
        match std::mem::replace(&mut self.state, State::reading_cdb()) {
            State::Writing { reply, .. } => Step::Replied(reply),
            _ => Step::Wait,
        }
    }
}

/// A close for a failed read or write: `Unable to VERB socket: ERROR`, as C prints it.
fn socket_error(reason: &'static str, verb: &str, e: Errno) -> Step {
    let message = format!(
        "Unable to {verb} socket: {}",
        crate::errors::strerror(&e.into())
    );
    Close::loud(reason, message)
}

/// Why a read stopped short.
enum Interrupted {
    WouldBlock,
    Eof,
    Failed(Errno),
}

impl Interrupted {
    /// Before a request is complete C closes silently on EOF and errors.
    fn into_step(self, phase: &'static str) -> Step {
        match self {
            Interrupted::WouldBlock => Step::Blocked(Interest::Read),
            Interrupted::Eof | Interrupted::Failed(_) => Step::Close(Close::silent(phase)),
        }
    }
}

/// `call` again while a signal interrupts it; EAGAIN as `WouldBlock`.
fn retry<T>(mut call: impl FnMut() -> Result<T, Errno>) -> Result<T, Interrupted> {
    loop {
        match call() {
            Err(Errno::INTR) => {}
            Err(Errno::AGAIN) => return Err(Interrupted::WouldBlock),
            result => return result.map_err(Interrupted::Failed),
        }
    }
}

/// Plain read: descriptors sent with these bytes are discarded by the kernel, as in C.
fn recv_into(sock: &OwnedFd, buf: &mut [u8]) -> Result<usize, Interrupted> {
    match retry(|| rustix::io::read(sock, &mut *buf))? {
        0 => Err(Interrupted::Eof),
        n => Ok(n),
    }
}

/// Reads CDB bytes and keeps the one descriptor that may come with them. A second descriptor,
/// in this read or an earlier one, fails the request (all of them are closed).
fn recv_with_fd(
    sock: &OwnedFd,
    buf: &mut [u8],
    device: &mut Option<(OwnedFd, bool)>,
) -> Result<usize, Interrupted> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(SOCKET_MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [std::io::IoSliceMut::new(buf)];
    let flags = RecvFlags::CMSG_CLOEXEC;
    let received = retry(|| rustix::net::recvmsg(sock, &mut iov, &mut control, flags))?;
    let mut too_many = false;
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = message {
            for fd in fds {
                if device.is_some() {
                    too_many = true;
                    continue; // dropped, so closed
                }
                *device = Some(adopt_device(fd).map_err(Interrupted::Failed)?);
            }
        }
    }
    if too_many {
        *device = None;
        return Err(Interrupted::Failed(Errno::INVAL));
    }
    match received.bytes {
        0 => Err(Interrupted::Eof),
        n => Ok(n),
    }
}

/// Clears O_NONBLOCK on a received device fd, as QEMU's channel does for every fd it
/// receives ("O_NONBLOCK is preserved across SCM_RIGHTS so reset it"), and notes whether it
/// was opened read-only (PR OUT is refused on those).
fn adopt_device(fd: OwnedFd) -> Result<(OwnedFd, bool), Errno> {
    let flags = rustix::fs::fcntl_getfl(&fd)?;
    if flags.contains(OFlags::NONBLOCK) {
        rustix::fs::fcntl_setfl(&fd, flags - OFlags::NONBLOCK)?;
    }
    let read_only = (flags & OFlags::RWMODE) == OFlags::RDONLY;
    Ok((fd, read_only))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    use std::os::fd::AsFd;

    fn pair() -> (OwnedFd, OwnedFd) {
        rustix::net::socketpair(
            AddressFamily::UNIX,
            SocketType::STREAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )
        .unwrap()
    }

    fn no_buffer() -> ReplyBuffer {
        panic!("no request yet")
    }

    /// Every phase that runs out of bytes says so: the loop must ask epoll again.
    #[test]
    fn a_read_that_would_block_asks_for_readability_again() {
        let (ours, theirs) = pair();
        let mut conn = Conn::new(ours);
        assert!(matches!(
            conn.on_readable(&mut no_buffer),
            Step::Blocked(Interest::Read)
        ));
        rustix::io::write(&theirs, &[0, 0]).unwrap();
        assert!(matches!(
            conn.on_readable(&mut no_buffer),
            Step::Blocked(Interest::Read)
        ));
        rustix::io::write(&theirs, &[0, 0]).unwrap();
        // Negotiated; the CDB has not come.
        assert!(matches!(
            conn.on_readable(&mut no_buffer),
            Step::Blocked(Interest::Read)
        ));
        assert!(matches!(conn.state, State::ReadingCdb { .. }));
        drop(theirs);
        assert!(matches!(conn.on_readable(&mut no_buffer), Step::Close(_)));
    }

    /// A reply the socket has no room for waits for writability alone, and resumes where it
    /// stopped.
    #[test]
    fn a_reply_without_room_asks_for_writability_and_resumes() {
        let (ours, theirs) = pair();
        rustix::net::sockopt::set_socket_send_buffer_size(&ours, 4096).unwrap();
        // Fill the socket until it refuses.
        let junk = [0u8; 4096];
        while rustix::io::write(&ours, &junk).is_ok() {}
        let mut conn = Conn::new(ours);
        conn.state = State::reading_cdb();
        let len = crate::protocol::PR_HELPER_REPLY_HEADER_SIZE;
        assert!(matches!(
            conn.start_reply(ReplyBuffer::new(), len),
            Step::Blocked(Interest::Write)
        ));
        // The client reads everything: the reply goes out, and the connection reads again.
        let mut sink = [0u8; 65536];
        let mut step = conn.on_writable();
        while !matches!(step, Step::Replied(_)) {
            assert!(matches!(step, Step::Blocked(Interest::Write)));
            while rustix::io::read(theirs.as_fd(), &mut sink).is_ok() {}
            step = conn.on_writable();
        }
        assert!(matches!(conn.state, State::ReadingCdb { .. }));
    }
}
