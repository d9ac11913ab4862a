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

/// systemd's watchdog (`WatchdogSec=`): `$WATCHDOG_USEC` asks for `WATCHDOG=1` at least that
/// often, else the service is killed and restarted. The event loop sends it from its own
/// timer, when a thread comes back from epoll_wait and can take the loop's lock: a loop that
/// no longer turns (every thread stuck, the lock never released) stops sending it, which is
/// the point. No timer thread of its own, which would keep a deaf daemon alive.
#[derive(Debug)]
pub struct Watchdog {
    /// Half of what systemd allows, as sd_watchdog_enabled(3) recommends.
    interval: Duration,
    next: Instant,
}

impl Watchdog {
    /// From `$WATCHDOG_USEC` (and `$WATCHDOG_PID`, when set, naming this process).
    pub fn from_env() -> Option<Watchdog> {
        let usec = std::env::var("WATCHDOG_USEC").ok()?;
        let pid = std::env::var("WATCHDOG_PID").ok();
        Watchdog::parse(&usec, pid.as_deref(), std::process::id())
    }

    pub fn parse(usec: &str, pid: Option<&str>, own_pid: u32) -> Option<Watchdog> {
        if pid.is_some_and(|p| p.parse() != Ok(own_pid)) {
            return None;
        }
        let usec: u64 = usec.parse().ok().filter(|&u| u > 0)?;
        let interval = Duration::from_micros(usec / 2);
        Some(Watchdog {
            interval,
            next: Instant::now(),
        })
    }

    /// How long until the next `WATCHDOG=1` is due.
    pub fn due_in(&self) -> Duration {
        self.next.saturating_duration_since(Instant::now())
    }

    /// Whether `WATCHDOG=1` is due now; if so, the next one is an interval later.
    pub fn due(&mut self) -> bool {
        let now = Instant::now();
        if now < self.next {
            return false;
        }
        self.next = now + self.interval;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_is_for_this_process_only_and_pings_at_half_the_limit() {
        let w = Watchdog::parse("30000000", None, 7).unwrap();
        assert_eq!(w.interval, Duration::from_secs(15));
        assert!(Watchdog::parse("30000000", Some("7"), 7).is_some());
        assert!(Watchdog::parse("30000000", Some("8"), 7).is_none());
        assert!(Watchdog::parse("0", None, 7).is_none());
        assert!(Watchdog::parse("x", None, 7).is_none());
        let mut w = Watchdog::parse("2000000", None, 7).unwrap();
        assert!(w.due(), "the first one at once");
        assert!(!w.due(), "then not before the interval");
        assert!(w.due_in() > Duration::from_millis(900));
    }
}
