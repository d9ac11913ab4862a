//! sd_notify(3) without libsystemd: datagrams to `$NOTIFY_SOCKET` (a path, or an abstract
//! name written with a leading `@`). Without the variable nothing is sent.

use std::os::fd::OwnedFd;

use rustix::net::{AddressFamily, SendFlags, SocketAddrUnix, SocketFlags, SocketType};

/// A connection to the service manager's notification socket.
#[derive(Debug)]
pub struct Notifier {
    sock: OwnedFd,
    addr: SocketAddrUnix,
}

impl Notifier {
    /// Reads `$NOTIFY_SOCKET`; `None` when it is unset or unusable.
    pub fn from_env() -> Option<Notifier> {
        let target = std::env::var_os("NOTIFY_SOCKET")?;
        let bytes = std::os::unix::ffi::OsStrExt::as_bytes(target.as_os_str()).to_vec();
        let addr = match bytes.split_first() {
            Some((b'@', name)) => SocketAddrUnix::new_abstract_name(name).ok()?,
            Some((b'/', _)) => SocketAddrUnix::new(bytes.as_slice()).ok()?,
            _ => return None,
        };
        let sock = rustix::net::socket_with(
            AddressFamily::UNIX,
            SocketType::DGRAM,
            SocketFlags::CLOEXEC,
            None,
        )
        .ok()?;
        Some(Notifier { sock, addr })
    }

    /// Sends one state message ("READY=1", "STATUS=...", "STOPPING=1"); failures are ignored,
    /// as sd_notify's callers do: the service works without its manager hearing about it.
    pub fn send(&self, state: &str) {
        let _ = rustix::net::sendto(
            &self.sock,
            state.as_bytes(),
            SendFlags::NOSIGNAL,
            &self.addr,
        );
    }
}
