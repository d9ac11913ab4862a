//! The daemon's connection state machine fed arbitrary bytes, split arbitrarily, with zero, one
//! or two descriptors on any fragment and the write side shut at any point. Requests that get
//! through run for real against /dev/null (SG_IO fails fast with ENOTTY).
#![no_main]

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pr_helper::backend::{self, ExecOptions, ReplyBuffer};
use pr_helper::daemon::conn::{Conn, Step};
use rustix::fs::{Mode, OFlags};
use rustix::net::{
    AddressFamily, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};

fn devices() -> &'static (OwnedFd, OwnedFd) {
    static DEVICES: OnceLock<(OwnedFd, OwnedFd)> = OnceLock::new();
    DEVICES.get_or_init(|| {
        let rw =
            rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty()).unwrap();
        let ro =
            rustix::fs::open("/dev/null", OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).unwrap();
        (rw, ro)
    })
}

fn send(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        control.push(SendAncillaryMessage::ScmRights(fds));
    }
    let _ = rustix::net::sendmsg(
        sock,
        &[IoSlice::new(bytes)],
        &mut control,
        SendFlags::NOSIGNAL | SendFlags::DONTWAIT,
    );
}

fn drain(sock: BorrowedFd<'_>) {
    let mut buf = [0u8; 16384];
    while let Ok((n, _)) = rustix::net::recv(sock, &mut buf, rustix::net::RecvFlags::DONTWAIT) {
        if n == 0 {
            break;
        }
    }
}

/// Drives the connection as the event loop would; false once it closes.
fn drive(conn: &mut Conn, peer: BorrowedFd<'_>) -> bool {
    let exec = ExecOptions::default();
    let mut step = conn.on_readable(&mut ReplyBuffer::new);
    loop {
        step = match step {
            Step::Wait | Step::Blocked(_) => return true,
            Step::Close(_) => return false,
            Step::Replied(_) => conn.on_readable(&mut ReplyBuffer::new),
            Step::Dispatch(request, mut reply) => {
                let (outcome, _) = backend::execute(&request, &mut reply, &exec);
                drop(request);
                let mut s = conn.start_reply(reply, outcome.wire_len());
                while matches!(s, Step::Wait | Step::Blocked(_)) {
                    drain(peer);
                    s = conn.on_writable();
                }
                s
            }
        };
    }
}

fuzz_target!(|data: &[u8]| {
    let (daemon_side, client_side) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::STREAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )
    .unwrap();
    let (rw, ro) = devices();
    let mut conn = Conn::new(daemon_side);
    let mut rest = data;
    while let [flags, len, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (chunk, next) = tail.split_at(n);
        rest = next;
        match flags & 3 {
            0 => send(client_side.as_fd(), chunk, &[]),
            1 => send(client_side.as_fd(), chunk, &[rw.as_fd()]),
            2 => send(client_side.as_fd(), chunk, &[rw.as_fd(), ro.as_fd()]),
            _ => send(client_side.as_fd(), chunk, &[ro.as_fd()]),
        }
        if flags & 0x80 != 0 {
            let _ = rustix::net::shutdown(&client_side, rustix::net::Shutdown::Write);
        }
        let open = drive(&mut conn, client_side.as_fd());
        drain(client_side.as_fd());
        if !open {
            return;
        }
    }
});
