//! The journal's native protocol: a record's fields encoded as journald reads them, sent as
//! one datagram that never waits; and the parser that reads a datagram back (tests).

use std::io;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::io::Errno;
use rustix::net::{AddressFamily, SendFlags, SocketAddrUnix, SocketFlags, SocketType};

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
    /// ENOENT or ECONNREFUSED (no journald) and the rest.
    pub(super) fn send(&self, bytes: &[u8]) -> bool {
        let flags = SendFlags::DONTWAIT | SendFlags::NOSIGNAL;
        loop {
            return match rustix::net::sendto(&self.sock, bytes, flags, &self.addr) {
                Ok(n) => n == bytes.len(),
                Err(Errno::INTR) => continue,
                Err(_) => false,
            };
        }
    }
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

/// Reads the journal's native datagram back into (name, value) pairs (tests, `pr-client`).
pub fn parse_journal_fields(mut bytes: &[u8]) -> Vec<(String, String)> {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    let mut out = Vec::new();
    while let Some(nl) = bytes.iter().position(|&b| b == b'\n') {
        let (line, rest) = (&bytes[..nl], &bytes[nl + 1..]);
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            out.push((text(&line[..eq]), text(&line[eq + 1..])));
            bytes = rest;
            continue;
        }
        let Some(len) = rest.get(..8) else { break };
        let len = u64::from_le_bytes(len.try_into().expect("8 bytes")) as usize;
        let Some(value) = rest.get(8..8 + len) else {
            break;
        };
        out.push((text(line), text(value)));
        bytes = rest.get(8 + len + 1..).unwrap_or_default();
    }
    out
}
