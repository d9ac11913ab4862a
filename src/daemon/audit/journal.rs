//! The journal's native protocol: a record's fields encoded as journald reads them, sent as
//! one datagram that never waits, or, for a record too large for one datagram, in a sealed
//! memfd passed with an empty datagram (as `sd_journal_send` does); and the parser that
//! reads a datagram back (tests, `pr-client audit`).

use std::fmt;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::Path;

use rustix::fs::{MemfdFlags, SealFlags};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix,
    SocketFlags, SocketType,
};

/// The journal's native protocol socket.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";

/// The journal sink's socket: unconnected, so a journald restarted meanwhile is reached.
#[derive(Debug)]
pub(super) struct JournalSocket {
    sock: OwnedFd,
    addr: SocketAddrUnix,
}

impl JournalSocket {
    /// A non-blocking datagram socket for `path`. Made during start-up, before the sandbox,
    /// which refuses `socket`.
    ///
    /// # Errors
    /// The socket could not be made, or the path is too long for a socket address.
    pub(super) fn open(path: &Path) -> io::Result<JournalSocket> {
        let addr = SocketAddrUnix::new(path)?;
        let sock = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )?;
        Ok(JournalSocket { sock, addr })
    }

    /// Sends one record, never waiting; false when it was dropped: EAGAIN (journald behind),
    /// ENOENT or ECONNREFUSED (no journald) and the rest. A record larger than the socket
    /// takes (EMSGSIZE; ENOBUFS where the kernel says so) goes through a memfd instead.
    pub(super) fn send(&self, bytes: &[u8]) -> bool {
        let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
        loop {
            return match rustix::net::sendto(&self.sock, bytes, flags, &self.addr) {
                Ok(n) => n == bytes.len(),
                Err(Errno::INTR) => continue,
                Err(Errno::MSGSIZE | Errno::NOBUFS) => self.send_memfd(bytes).is_ok(),
                Err(_) => false,
            };
        }
    }

    /// The record in a sealed memfd, passed (SCM_RIGHTS) with an empty datagram: journald
    /// reads the whole file, and takes it only sealed against writing, growing and shrinking.
    fn send_memfd(&self, bytes: &[u8]) -> io::Result<()> {
        let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
        let memfd = rustix::fs::memfd_create("pr-helper-audit", flags)?;
        write_all(&memfd, bytes)?;
        let seals = SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE | SealFlags::SEAL;
        rustix::fs::fcntl_add_seals(&memfd, seals)?;
        let fds = [memfd.as_fd()];
        let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
            return Err(io::Error::other("no room for SCM_RIGHTS"));
        }
        let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
        loop {
            match rustix::net::sendmsg_addr(&self.sock, &self.addr, &[], &mut control, flags) {
                Err(Errno::INTR) => {}
                sent => return sent.map(drop).map_err(io::Error::from),
            }
        }
    }

    /// The socket, for tests that make its send buffer small.
    #[cfg(test)]
    pub(super) fn socket(&self) -> &OwnedFd {
        &self.sock
    }
}

/// All of `bytes` to `fd` (a memfd: no short writes but at ENOSPC).
fn write_all(fd: &OwnedFd, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// One field of the journal's native protocol: `NAME=value\n`, or for a value with a newline
/// `NAME\n`, its length as 64-bit little-endian, the value, `\n`.
pub(super) fn field(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    if value.contains('\n') {
        out.push(b'\n');
        out.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        out.push(b'=');
    }
    out.extend_from_slice(value.as_bytes());
    out.push(b'\n');
}

/// A datagram that is not the native protocol, and where it stops being.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedJournal {
    /// Offset in the datagram of the field that is wrong.
    pub at: usize,
    pub why: &'static str,
}

impl fmt::Display for MalformedJournal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "malformed journal datagram at byte {}: {}",
            self.at, self.why
        )
    }
}

impl std::error::Error for MalformedJournal {}

/// Reads the journal's native datagram back into (name, value) pairs.
///
/// # Errors
/// A field that is cut short (no newline, fewer length bytes or value bytes than it says, no
/// newline after a binary value) or whose length does not fit in memory.
pub fn parse_journal_fields(datagram: &[u8]) -> Result<Vec<(String, String)>, MalformedJournal> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut out = Vec::new();
    let mut at = 0;
    while at < datagram.len() {
        let bad = |why| MalformedJournal { at, why };
        let rest = &datagram[at..];
        let nl = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or(bad("a field without its newline"))?;
        let line = &rest[..nl];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            out.push((text(&line[..eq]), text(&line[eq + 1..])));
            at += nl + 1;
            continue;
        }
        // NAME\n, u64 little-endian length, value, \n.
        let binary = &rest[nl + 1..];
        let len = binary
            .get(..8)
            .ok_or(bad("a binary field without its length"))?;
        let len = u64::from_le_bytes(len.try_into().expect("8 bytes"));
        let end = usize::try_from(len)
            .ok()
            .and_then(|len| len.checked_add(8))
            .ok_or(bad("a binary field's length beyond memory"))?;
        let value = binary
            .get(8..end)
            .ok_or(bad("a binary field shorter than its length"))?;
        if binary.get(end) != Some(&b'\n') {
            return Err(bad("a binary field without its newline"));
        }
        out.push((text(line), text(value)));
        // nl + 1 + end + 1 <= rest.len(): `end` indexes into `binary`, which is in `rest`.
        at += nl + 1 + end + 1;
    }
    Ok(out)
}
