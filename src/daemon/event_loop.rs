//! The event loop: one thread, one epoll set (listener, signalfd, worker completions, and every
//! connection, edge-triggered), no per-wakeup scans, so the cost of a request does not depend
//! on how many idle connections are open.

use std::io::Write as _;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::buffer::spare_capacity;
use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::io::Errno;
use rustix::net::SocketFlags;
use rustix::time::Timespec;

use super::Error;
use super::conn::{Close, Conn, Step};
use super::limits;
use super::listener::Listener;
use super::notify::Notifier;
use super::workers::{Job, Pool};
use crate::backend::ReplyBuffer;
use crate::sys;
use crate::trace::{self, TracePoint};

const LISTENER: u64 = 0;
const SIGNALS: u64 = 1;
const COMPLETIONS: u64 = 2;
const FIRST_CONN: u64 = 3;

/// Reply buffers kept for reuse: enough for the usual number of requests in flight.
const SPARE_BUFFERS: usize = 64;
/// How often to retry accept after running out of descriptors.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// Least time between two STATUS= notifications.
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// Counters reported by sd_notify STATUS= and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub connections: u64,
    pub requests: u64,
}

/// How the loop behaves, beyond what it serves.
pub struct LoopOptions {
    /// Print per-connection errors (C prints them unless -q).
    pub print_errors: bool,
    /// Print each client's pid, uid and gid (SO_PEERCRED) as it connects (-v).
    pub log_peers: bool,
    /// Prefix of those messages.
    pub prog: String,
    /// Stop after this long with no connection.
    pub idle_timeout: Option<Duration>,
    /// sd_notify target.
    pub notifier: Option<Notifier>,
}

/// The daemon's runtime state.
pub struct EventLoop {
    epoll: OwnedFd,
    listener: Option<Listener>,
    signals: OwnedFd,
    pool: Pool,
    conns: Vec<Option<Conn>>,
    free_slots: Vec<usize>,
    spare: Vec<ReplyBuffer>,
    executing: usize,
    stopping: bool,
    accept_paused: bool,
    /// Connections at most, so that descriptors remain for the device fds requests carry.
    conn_limit: usize,
    live_conns: usize,
    print_errors: bool,
    log_peers: bool,
    prog: String,
    idle_timeout: Option<Duration>,
    idle_since: Instant,
    notifier: Option<Notifier>,
    /// When STATUS= was last sent, with what it said.
    status_sent: Option<(Instant, Stats, usize)>,
    /// Serving one inherited connection (`Accept=yes`): stop when it closes.
    single_connection: bool,
    unlink_error: Option<(std::path::PathBuf, std::io::Error)>,
    pub stats: Stats,
}

impl EventLoop {
    /// Sets up epoll over the listener (or the one inherited connection), the signalfd and
    /// the pool's completion eventfd.
    ///
    /// # Errors
    /// epoll creation or registration failures.
    pub fn new(
        listener: Option<Listener>,
        connection: Option<OwnedFd>,
        signals: OwnedFd,
        pool: Pool,
        options: LoopOptions,
    ) -> Result<Self, Error> {
        let epoll =
            epoll::create(epoll::CreateFlags::CLOEXEC).map_err(|e| Error::EventLoop(e.into()))?;
        let add = |fd: std::os::fd::BorrowedFd<'_>, token: u64| {
            epoll::add(&epoll, fd, EventData::new_u64(token), EventFlags::IN)
                .map_err(|e| Error::EventLoop(e.into()))
        };
        if let Some(l) = &listener {
            add(l.as_fd(), LISTENER)?;
            trace::emit(TracePoint::Listen, || format!("path={:?}", l.path()));
        }
        add(signals.as_fd(), SIGNALS)?;
        add(pool.completion_fd(), COMPLETIONS)?;
        let mut event_loop = EventLoop {
            epoll,
            listener,
            signals,
            pool,
            conns: Vec::new(),
            free_slots: Vec::new(),
            spare: Vec::new(),
            executing: 0,
            stopping: false,
            accept_paused: false,
            conn_limit: limits::connection_limit(),
            live_conns: 0,
            print_errors: options.print_errors,
            log_peers: options.log_peers,
            prog: options.prog,
            idle_timeout: options.idle_timeout,
            idle_since: Instant::now(),
            notifier: options.notifier,
            status_sent: None,
            single_connection: connection.is_some(),
            unlink_error: None,
            stats: Stats::default(),
        };
        if let Some(conn) = connection {
            event_loop.add_conn(conn);
        }
        Ok(event_loop)
    }

    /// Serves until a termination signal (or the idle timeout, or the end of the one
    /// inherited connection), then finishes the requests in flight.
    ///
    /// Returns the listener's unlink failure, which the caller reports as C does.
    ///
    /// # Errors
    /// `epoll_wait` failing for a reason other than EINTR.
    pub fn run(mut self) -> Result<Option<(std::path::PathBuf, std::io::Error)>, Error> {
        let mut events = Vec::with_capacity(256);
        self.notify("READY=1");
        self.notify_status();
        loop {
            if self.single_connection && self.live_conns == 0 {
                self.begin_shutdown();
            }
            let timeout = self.wait_timeout();
            if self.stopping && self.executing == 0 {
                break;
            }
            let timeout = timeout.map(|d| Timespec {
                tv_sec: d.as_secs() as i64,
                tv_nsec: i64::from(d.subsec_nanos()),
            });
            events.clear();
            match epoll::wait(&self.epoll, spare_capacity(&mut events), timeout.as_ref()) {
                Ok(_) => {}
                Err(Errno::INTR) => continue,
                Err(e) => return Err(Error::EventLoop(e.into())),
            }
            for event in &events {
                let flags = event.flags;
                match event.data.u64() {
                    LISTENER => self.accept_all(),
                    SIGNALS => self.on_signal(),
                    COMPLETIONS => self.on_completions(),
                    token => self.on_conn_event((token - FIRST_CONN) as usize, flags),
                }
            }
            if self.accept_paused && !self.stopping {
                self.resume_accept();
            }
            self.notify_status();
        }
        let at_exit = self.listener.take().and_then(Listener::close);
        Ok(self.unlink_error.take().or(at_exit))
    }

    /// How long epoll may sleep: until the idle deadline, the accept retry, a rate-limited
    /// STATUS=, or forever. Starts the shutdown when the idle deadline has passed.
    fn wait_timeout(&mut self) -> Option<Duration> {
        let mut timeout = if self.accept_paused {
            Some(ACCEPT_RETRY)
        } else {
            None
        };
        if let Some(idle) = self.idle_timeout {
            if self.live_conns == 0 && self.executing == 0 && !self.stopping {
                let left = idle.saturating_sub(self.idle_since.elapsed());
                if left.is_zero() {
                    trace::emit(TracePoint::Shutdown, || "idle timeout".into());
                    self.begin_shutdown();
                    return Some(Duration::ZERO);
                }
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
        }
        if self.status_pending() {
            timeout = Some(timeout.map_or(STATUS_INTERVAL, |t| t.min(STATUS_INTERVAL)));
        }
        timeout
    }

    fn notify(&self, state: &str) {
        if let Some(n) = &self.notifier {
            n.send(state);
        }
    }

    fn status_pending(&self) -> bool {
        self.notifier.is_some()
            && !matches!(self.status_sent, Some((_, stats, live)) if stats == self.stats && live == self.live_conns)
    }

    /// STATUS= with the counters, when they changed, at most once a second.
    fn notify_status(&mut self) {
        if !self.status_pending() {
            return;
        }
        if matches!(self.status_sent, Some((at, _, _)) if at.elapsed() < STATUS_INTERVAL) {
            return;
        }
        self.status_sent = Some((Instant::now(), self.stats, self.live_conns));
        self.notify(&format!(
            "STATUS=Serving {} connections; {} accepted and {} requests so far",
            self.live_conns, self.stats.connections, self.stats.requests
        ));
    }

    fn accept_all(&mut self) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            if self.live_conns >= self.conn_limit {
                self.pause_accept();
                return;
            }
            match rustix::net::accept_with(listener, SocketFlags::NONBLOCK | SocketFlags::CLOEXEC) {
                Ok(sock) => self.add_conn(sock),
                Err(Errno::AGAIN) => return,
                Err(Errno::INTR | Errno::CONNABORTED) => continue,
                Err(Errno::MFILE | Errno::NFILE | Errno::NOBUFS | Errno::NOMEM) => {
                    self.pause_accept();
                    return;
                }
                Err(_) => return,
            }
        }
    }

    /// Stops listening for a while instead of spinning on a level-triggered listener that
    /// cannot be served; retried on a timer and whenever a connection closes.
    fn pause_accept(&mut self) {
        if let Some(listener) = &self.listener {
            let _ = epoll::modify(
                &self.epoll,
                listener,
                EventData::new_u64(LISTENER),
                EventFlags::empty(),
            );
            self.accept_paused = true;
        }
    }

    fn resume_accept(&mut self) {
        if self.live_conns >= self.conn_limit {
            return;
        }
        if let Some(listener) = &self.listener {
            if epoll::modify(
                &self.epoll,
                listener,
                EventData::new_u64(LISTENER),
                EventFlags::IN,
            )
            .is_ok()
            {
                self.accept_paused = false;
                self.accept_all();
            }
        }
    }

    fn add_conn(&mut self, sock: OwnedFd) {
        // The helper speaks first: its feature word fits any fresh socket's buffer.
        let features = crate::protocol::encode_features(crate::protocol::SUPPORTED_FEATURES);
        match rustix::net::send(&sock, &features, rustix::net::SendFlags::NOSIGNAL) {
            Ok(n) if n == features.len() => {}
            _ => return,
        }
        let slot = match self.free_slots.pop() {
            Some(slot) => slot,
            None => {
                self.conns.push(None);
                self.conns.len() - 1
            }
        };
        let token = slot as u64 + FIRST_CONN;
        let interest = EventFlags::IN | EventFlags::OUT | EventFlags::RDHUP | EventFlags::ET;
        if epoll::add(&self.epoll, &sock, EventData::new_u64(token), interest).is_err() {
            self.free_slots.push(slot);
            return;
        }
        if trace::enabled(TracePoint::Accept) || self.log_peers {
            let peer = rustix::net::sockopt::socket_peercred(&sock)
                .map(|c| {
                    format!(
                        "pid={} uid={} gid={}",
                        c.pid.as_raw_nonzero(),
                        c.uid.as_raw(),
                        c.gid.as_raw()
                    )
                })
                .unwrap_or_else(|_| "peer=unknown".into());
            trace::emit(TracePoint::Accept, || format!("conn={slot} {peer}"));
            if self.log_peers {
                let _ = writeln!(std::io::stderr(), "{}: connection from {peer}", self.prog);
            }
        }
        self.stats.connections += 1;
        self.live_conns += 1;
        self.conns[slot] = Some(Conn::new(sock));
        // The client may already have answered: edge-triggered readiness would not say so again.
        self.on_conn_event(slot, EventFlags::IN);
    }

    fn on_conn_event(&mut self, slot: usize, flags: EventFlags) {
        let Some(Some(conn)) = self.conns.get_mut(slot) else {
            return;
        };
        let spare = &mut self.spare;
        let mut take_buffer = || spare.pop().unwrap_or_default();
        let mut step = if flags.contains(EventFlags::OUT) {
            conn.on_writable()
        } else {
            Step::Wait
        };
        if matches!(step, Step::Wait)
            && flags
                .intersects(EventFlags::IN | EventFlags::HUP | EventFlags::ERR | EventFlags::RDHUP)
        {
            step = conn.on_readable(&mut take_buffer);
        }
        self.apply(slot, step);
    }

    /// Acts on a connection's step until it waits, dispatches or closes.
    fn apply(&mut self, slot: usize, mut step: Step) {
        loop {
            match step {
                Step::Wait => return,
                Step::Dispatch(request, reply) => {
                    self.executing += 1;
                    self.stats.requests += 1;
                    self.pool.submit(Job {
                        token: slot,
                        request: Some(request),
                        reply,
                        outcome: None,
                    });
                    return;
                }
                Step::Replied(reply) => {
                    if self.spare.len() < SPARE_BUFFERS {
                        self.spare.push(reply);
                    }
                    if self.stopping {
                        self.close_conn(slot, Close::silent("shutting down"));
                        return;
                    }
                    let Some(Some(conn)) = self.conns.get_mut(slot) else {
                        return;
                    };
                    let spare = &mut self.spare;
                    step = conn.on_readable(&mut || spare.pop().unwrap_or_default());
                }
                Step::Close(close) => {
                    self.close_conn(slot, close);
                    return;
                }
            }
        }
    }

    fn close_conn(&mut self, slot: usize, close: Close) {
        if let Some(message) = &close.message {
            if self.print_errors {
                let _ = writeln!(std::io::stderr(), "{}: {message}", self.prog);
            }
        }
        trace::emit(TracePoint::Close, || {
            format!("conn={slot} reason=\"{}\"", close.reason)
        });
        // Closing the socket removes it from the epoll set.
        if self.conns.get_mut(slot).and_then(Option::take).is_some() {
            self.free_slots.push(slot);
            self.live_conns -= 1;
            if self.live_conns == 0 {
                self.idle_since = Instant::now();
            }
        }
        if self.accept_paused && !self.stopping {
            self.resume_accept();
        }
    }

    fn on_completions(&mut self) {
        let mut done = Vec::new();
        self.pool.take_completed(&mut done);
        for job in done {
            self.executing -= 1;
            let Some(outcome) = job.outcome else { continue };
            trace::emit(TracePoint::Reply, || {
                format!(
                    "conn={} status=0x{:02x} size={}",
                    job.token, outcome.status, outcome.payload_len
                )
            });
            let Some(Some(conn)) = self.conns.get_mut(job.token) else {
                continue;
            };
            let step = conn.start_reply(job.reply, outcome.wire_len());
            self.apply(job.token, step);
        }
    }

    fn on_signal(&mut self) {
        while let Ok(Some(signo)) = sys::signals::read_signal(self.signals.as_fd()) {
            trace::emit(TracePoint::Shutdown, || format!("signal={signo}"));
            self.begin_shutdown();
        }
    }

    /// Stops accepting and drops every connection that has no request in flight; those that
    /// have one get their reply first (as C checks its state only between requests).
    fn begin_shutdown(&mut self) {
        if self.stopping {
            return;
        }
        self.stopping = true;
        self.notify("STOPPING=1");
        // The path goes away now, as C closes its server socket on the first signal.
        if let Some(listener) = self.listener.take() {
            self.unlink_error = listener.close();
        }
        for slot in 0..self.conns.len() {
            if matches!(&self.conns[slot], Some(conn) if !conn.is_executing()) {
                self.close_conn(slot, Close::silent("shutting down"));
            }
        }
    }
}
