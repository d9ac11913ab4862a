//! sd_notify(3) without libsystemd: datagrams to `$NOTIFY_SOCKET` (a path, or an abstract
//! name written with a leading `@`). Without the variable nothing is sent. The serving
//! daemon's STATUS= line and its rate limit ([`Status`]).

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

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

/// Least time between two STATUS= notifications.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// Counters reported by STATUS=.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub connections: u64,
    pub requests: u64,
    /// `--audit` records dropped (sink full or missing).
    pub audit_dropped: u64,
}

/// What STATUS= said last, and when: it is sent when the counters or the connections open
/// changed, at most once a [`STATUS_INTERVAL`].
#[derive(Default)]
pub struct Status {
    sent: Option<(Instant, Stats, usize)>,
}

impl Status {
    /// Whether `stats` and `live` connections differ from what was sent.
    pub fn pending(&self, stats: Stats, live: usize) -> bool {
        !matches!(self.sent, Some((_, s, l)) if s == stats && l == live)
    }

    /// The STATUS= message, when it is pending and due.
    pub fn due(&mut self, stats: Stats, live: usize) -> Option<String> {
        if !self.pending(stats, live)
            || matches!(self.sent, Some((at, _, _)) if at.elapsed() < STATUS_INTERVAL)
        {
            return None;
        }
        self.sent = Some((Instant::now(), stats, live));
        let mut status = format!(
            "STATUS=Serving {live} connections; {} accepted and {} requests so far",
            stats.connections, stats.requests
        );
        if stats.audit_dropped > 0 {
            status.push_str(&format!("; {} audit records dropped", stats.audit_dropped));
        }
        Some(status)
    }
}
