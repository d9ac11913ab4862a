//! The stderr sink: one line per record, as `-v` prints.

use std::io;

use rustix::io::Errno;
use rustix::net::SendFlags;

/// A line on stderr. Where stderr is a socket (systemd's journal stream) the first send does
/// not wait: a full buffer drops the line. A pipe, file or terminal is written as `-v`'s
/// lines are.
pub(super) fn write_line(bytes: &[u8]) -> bool {
    let stderr = io::stderr();
    let _guard = stderr.lock();
    let fd = rustix::stdio::stderr();
    let mut sent = match rustix::net::send(fd, bytes, SendFlags::DONTWAIT | SendFlags::NOSIGNAL) {
        Ok(n) => n,
        Err(Errno::NOTSOCK) => 0,
        Err(_) => return false,
    };
    // Not a socket, or a stream socket that took part of the line: finish it.
    while sent < bytes.len() {
        match rustix::io::write(fd, &bytes[sent..]) {
            Ok(0) => return false,
            Ok(n) => sent += n,
            Err(Errno::INTR) => {}
            Err(_) => return false,
        }
    }
    true
}
