//! The event loop: one epoll set (the listener one-shot; the signalfd and every connection
//! edge-triggered), served by a team of threads ([`super::workers`]) that each take one event
//! at a time and run it to the end, SG_IO included. No per-wakeup scans: the cost of a
//! request does not depend on how many idle connections are open.
//!
//! Each connection has a slot of the [`Slab`], owned by one thread at a time. What the
//! threads share (the slab, the [`Acceptor`], the [`Commands`] queue, the [`Spare`] reply
//! buffers, the counters and what STATUS= said) is under one lock, held only for
//! bookkeeping, never across a system call that can wait.
//!
//! Fairness: epoll's ready list is first come, first served, and nothing jumps it. After a
//! reply the owner gives the connection back without reading it again; its next request is
//! read when an event for it comes in turn (the client's read of the reply brings one).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use rustix::buffer::spare_capacity;
use rustix::event::epoll::{self, EventData, EventFlags};
use rustix::event::{EventfdFlags, eventfd};
use rustix::io::Errno;
use rustix::time::Timespec;

use super::Error;
use super::accept::{Accepted, Acceptor};
use super::audit::{self, Audit};
use super::buffers::{self, Spare};
use super::commands::Commands;
use super::conn::{Close, Conn, Interest, Step};
use super::limits;
use super::listener::Listener;
use super::notify::{Notifier, STATUS_INTERVAL, Stats, Status, Watchdog};
use super::slab::Slab;
use super::workers::{Job, Team};
use crate::backend::{ExecOptions, ReplyBuffer};
use crate::cli::argbytes::print_error;
use crate::sys;
use crate::trace::{self, TracePoint};

mod dispatch;

const LISTENER: u64 = 0;
const SIGNALS: u64 = 1;
const FINISHED: u64 = 2;
const FIRST_CONN: u64 = 3;
/// What a connection is watched for: a request, the client leaving, and writability. A reply
/// rarely waits for room, but the event its read by the client brings (edge-triggered) is
/// the connection's turn in epoll's first-come-first-served queue for its next request:
/// reading it then readies a thread before the request's own event (p50 at 1 connection
/// 27 us with it, 32 us without), and brings a request that came before the last read.
const CONN_INTEREST: EventFlags = EventFlags::IN
    .union(EventFlags::OUT)
    .union(EventFlags::RDHUP)
    .union(EventFlags::ET);
/// A connection whose reply is blocked waits for room alone: readable data (a request sent
/// before this reply was read) would otherwise wake a thread again and again for nothing.
const WRITE_INTEREST: EventFlags = EventFlags::OUT
    .union(EventFlags::RDHUP)
    .union(EventFlags::ET);

/// How often to retry accept after running out of descriptors.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// The longest wait epoll_pwait takes (its timeout is an int of milliseconds, about 24.8
/// days): a longer one is waited in several. rustix would call epoll_pwait2 for it, which
/// the sandbox does not allow.
const MAX_WAIT: Duration = Duration::from_millis(i32::MAX as u64);
/// Failed waits in a row, beyond EINTR, that a thread lets pass before the loop fails.
const WAIT_FAILURES: u32 = 3;

/// How the loop behaves, beyond what it serves.
pub struct LoopOptions {
    /// Print per-connection errors (C prints them unless -q).
    pub print_errors: bool,
    /// -v: print each client's pid, uid and gid (SO_PEERCRED) as it connects, and what each
    /// command on a multipath map did (paths, multipathd).
    pub log_verbose: bool,
    /// Prefix of those messages.
    pub prog: String,
    /// Stop after this long with no connection.
    pub idle_timeout: Option<Duration>,
    /// sd_notify target.
    pub notifier: Option<Notifier>,
    /// `--max-workers`: commands running at once at most.
    pub max_workers: usize,
    /// How commands run.
    pub exec: ExecOptions,
    /// `--audit`: where records go.
    pub audit: Option<Arc<Audit>>,
    /// systemd's watchdog, when the unit has `WatchdogSec=` (and a notifier).
    pub watchdog: Option<Watchdog>,
    /// `PR_HELPER_TEST_WEDGE_LOOP=FILE`: a request that comes while FILE exists wedges the
    /// loop (its thread takes the lock and never lets go), so that a test can watch the
    /// watchdog restart the service, and the next instance serve once FILE is gone. A
    /// test-only switch, as `PR_HELPER_TEST_SGIO_DELAY_MS`: nothing under packaging/ sets it.
    pub test_wedge: Option<std::path::PathBuf>,
    /// `PR_HELPER_TEST_OPEN=PATH`: before each command, the thread that runs it opens PATH
    /// read-only and prints the outcome ("test open of PATH: ..."), so that a test sees what
    /// the sandbox lets a compromised daemon read (EACCES from Landlock for /etc/shadow).
    /// Test-only, as `PR_HELPER_TEST_WEDGE_LOOP`: nothing under packaging/ sets it.
    pub test_open: Option<std::path::PathBuf>,
}

/// Everything the threads change together, under one lock held only for bookkeeping (never
/// across a system call that can wait).
struct State {
    accept: Acceptor,
    conns: Slab,
    commands: Commands,
    spare: Spare,
    status: Status,
    unlink_error: Option<(std::path::PathBuf, std::io::Error)>,
    stats: Stats,
    watchdog: Option<Watchdog>,
}

/// What every thread of the team shares.
struct Shared {
    epoll: OwnedFd,
    signals: OwnedFd,
    /// Written once the daemon is done: level-triggered, so it wakes every waiting thread.
    finished_event: OwnedFd,
    finished: AtomicBool,
    /// Mirrors of `State` fields read on every request without the lock.
    stopping: AtomicBool,
    accept_paused: AtomicBool,
    queued: AtomicUsize,
    /// Requests read whose reply has not been sent. Outside the lock, so that a thread
    /// preempted as its reply wakes the client holds no bookkeeping up; `SeqCst` with
    /// `stopping`, so that the last reply and the shutdown cannot both miss the finish.
    in_flight: AtomicUsize,
    state: Mutex<State>,
    /// Why the loop failed, in whichever thread: the daemon ends with it.
    failure: Mutex<Option<Error>>,
    team: Team,
    opts: LoopOptions,
    /// Serving one inherited connection (`Accept=yes`): stop when it closes.
    single_connection: bool,
}

/// Per-thread scratch: the event buffer and reply buffers kept close at hand.
struct Local {
    events: Vec<epoll::Event>,
    buffers: buffers::Own,
}

impl Local {
    fn new() -> Local {
        Local {
            // One event per wait: a thread runs what it takes to the end, and a slow device
            // must not hold up events it took along.
            events: Vec::with_capacity(1),
            buffers: buffers::Own::new(),
        }
    }

    /// A reply buffer for a request: the thread's own, else a spare, else a new one.
    fn take_buffer(&mut self, shared: &Shared) -> ReplyBuffer {
        self.buffers.take(|| shared.state().spare.take())
    }

    fn recycle(&mut self, buffer: ReplyBuffer, shared: &Shared) {
        if let Some(buffer) = self.buffers.keep(buffer) {
            shared.state().spare.give(buffer);
        }
    }
}

/// The daemon's runtime state.
pub struct EventLoop {
    shared: Arc<Shared>,
    connection: Option<OwnedFd>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding the lock; if something did, the bookkeeping is still valid.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl EventLoop {
    /// Sets up epoll over the listener (or the one inherited connection) and the signalfd.
    ///
    /// # Errors
    /// epoll or eventfd creation, or registration failures.
    pub fn new(
        listener: Option<Listener>,
        connection: Option<OwnedFd>,
        signals: OwnedFd,
        mut options: LoopOptions,
    ) -> Result<Self, Error> {
        let epoll = epoll::create(epoll::CreateFlags::CLOEXEC)
            .map_err(|e| Error::EventLoopSetup("epoll_create1", e.into()))?;
        let finished_event = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
            .map_err(|e| Error::EventLoopSetup("eventfd", e.into()))?;
        let add = |fd: BorrowedFd<'_>, token, interest| {
            epoll::add(&epoll, fd, EventData::new_u64(token), interest)
                .map_err(|e| Error::EventLoopSetup("epoll_ctl", e.into()))
        };
        if let Some(l) = &listener {
            // One thread accepts at a time; it re-arms the listener when done.
            add(l.as_fd(), LISTENER, EventFlags::IN | EventFlags::ONESHOT)?;
            trace::emit(TracePoint::Listen, || match l.path() {
                Some(path) => format!("path={}", path.display()),
                None => "path=none".into(),
            });
        }
        add(signals.as_fd(), SIGNALS, EventFlags::IN | EventFlags::ET)?;
        add(finished_event.as_fd(), FINISHED, EventFlags::IN)?;
        let team = Team::new(options.max_workers, limits::usable_cpus());
        let state = State {
            accept: Acceptor::new(listener, LISTENER),
            conns: Slab::new(limits::connection_limit()),
            commands: Commands::new(team.max_running),
            spare: Spare::default(),
            status: Status::default(),
            unlink_error: None,
            stats: Stats::default(),
            watchdog: options
                .watchdog
                .take()
                .filter(|_| options.notifier.is_some()),
        };
        let shared = Shared {
            epoll,
            signals,
            finished_event,
            finished: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            accept_paused: AtomicBool::new(false),
            queued: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            state: Mutex::new(state),
            failure: Mutex::new(None),
            team,
            opts: options,
            single_connection: connection.is_some(),
        };
        Ok(EventLoop {
            shared: Arc::new(shared),
            connection,
        })
    }

    /// Serves until a termination signal (or the idle timeout, or the end of the one
    /// inherited connection), then finishes the requests in flight.
    ///
    /// Returns the listener's unlink failure, which the caller reports as C does.
    ///
    /// # Errors
    /// `epoll_wait` failing, in any thread, for a reason other than EINTR: the loop cannot go
    /// on, and a daemon alive but deaf would never be restarted.
    pub fn run(mut self) -> Result<Option<(std::path::PathBuf, std::io::Error)>, Error> {
        let shared = Arc::clone(&self.shared);
        let mut local = Local::new();
        shared.notify("READY=1");
        shared.tick();
        if let Some(conn) = self.connection.take() {
            // The one inherited connection (`Accept=yes`): no connection limit applies.
            let slot = shared.state().conns.reserve();
            shared.add_conn(slot, conn, &mut local);
        }
        shared.serve(&mut local, false);
        if let Some(failure) = lock(&shared.failure).take() {
            return Err(failure);
        }
        let mut state = lock(&shared.state);
        let at_exit = state.accept.close();
        Ok(state.unlink_error.take().or(at_exit))
    }
}

impl Shared {
    /// One thread's life: wait for an event, run it, again, until the daemon is done, or
    /// (a `follower`) until the team no longer needs it. Returns whether it left the team.
    fn serve(self: &Arc<Self>, local: &mut Local, follower: bool) -> bool {
        let mut failures = 0;
        loop {
            if self.finished.load(Ordering::Acquire) {
                return false;
            }
            let timeout = self
                .wait_timeout()
                .and_then(|d| Timespec::try_from(d.min(MAX_WAIT)).ok());
            local.events.clear();
            let waited = epoll::wait(
                &self.epoll,
                spare_capacity(&mut local.events),
                timeout.as_ref(),
            );
            match waited {
                Ok(_) => failures = 0,
                Err(Errno::INTR | Errno::AGAIN) => continue,
                // What epoll_pwait can fail with otherwise (EBADF, EINVAL, EFAULT) fails again
                // at once: a few in a row end the daemon with the reason. One alone is let
                // pass: a tracer that detaches while it fails a call leaves ENOSYS behind.
                Err(_) if failures < WAIT_FAILURES => {
                    failures += 1;
                    continue;
                }
                Err(e) => {
                    self.fail(Error::EventLoop(e.into()));
                    return false;
                }
            }
            let Some(event) = local.events.pop() else {
                self.tick();
                continue;
            };
            match event.data.u64() {
                FINISHED => continue,
                LISTENER => self.accept_next(local),
                SIGNALS => self.on_signal(),
                token => self.on_conn_event((token - FIRST_CONN) as usize, event.flags, local),
            }
            while self.queued.load(Ordering::Acquire) > 0 {
                let Some(job) = self.next_queued() else { break };
                self.run_job(job, local);
            }
            if self.timed() {
                self.tick();
            }
            if follower
                && self.team.beyond_idle_size()
                && self.team.retire_if_surplus(self.state().commands.running())
            {
                return true;
            }
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// Whether some state needs the threads to wake on a timer.
    fn timed(&self) -> bool {
        self.opts.idle_timeout.is_some()
            || self.opts.notifier.is_some()
            || self.accept_paused.load(Ordering::Acquire)
    }

    /// How long epoll may sleep: until the idle deadline, the accept retry, a rate-limited
    /// STATUS=, or forever. Starts the shutdown when the idle deadline has passed.
    fn wait_timeout(&self) -> Option<Duration> {
        if !self.timed() {
            return None;
        }
        let mut state = self.state();
        let mut timeout = state.accept.paused().then_some(ACCEPT_RETRY);
        if let Some(idle) = self.opts.idle_timeout {
            if state.conns.live() == 0
                && self.in_flight.load(Ordering::SeqCst) == 0
                && !self.stopping()
            {
                let left = idle.saturating_sub(state.conns.idle_since().elapsed());
                if left.is_zero() {
                    trace::emit(TracePoint::Shutdown, || "idle timeout".into());
                    let idle_conns = self.begin_shutdown(&mut state);
                    drop(state);
                    self.close_all(idle_conns);
                    return Some(Duration::ZERO);
                }
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
        }
        if self.status_pending(&state) {
            timeout = Some(timeout.map_or(STATUS_INTERVAL, |t| t.min(STATUS_INTERVAL)));
        }
        if let Some(watchdog) = &state.watchdog {
            let due = watchdog.due_in();
            timeout = Some(timeout.map_or(due, |t| t.min(due)));
        }
        timeout
    }

    /// Timed duties: retry a paused accept, send a due STATUS=, tell the watchdog the loop
    /// turns.
    fn tick(&self) {
        let mut state = self.state();
        if state.accept.paused() && !self.stopping() {
            self.resume_accept(&mut state);
        }
        self.notify_status(&mut state);
        if state.watchdog.as_mut().is_some_and(Watchdog::due) {
            self.notify("WATCHDOG=1");
        }
    }

    fn stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    fn notify(&self, message: &str) {
        if let Some(n) = &self.opts.notifier {
            n.send(message);
        }
    }

    fn status_pending(&self, state: &State) -> bool {
        self.opts.notifier.is_some() && state.status.pending(state.stats, state.conns.live())
    }

    /// STATUS= with the counters, when they changed, at most once a second.
    fn notify_status(&self, state: &mut State) {
        if self.opts.notifier.is_none() {
            return;
        }
        let (stats, live) = (state.stats, state.conns.live());
        if let Some(status) = state.status.due(stats, live) {
            self.notify(&status);
        }
    }

    /// Accepts one connection and serves it; the listener is armed again before that, so a
    /// first request that blocks on its device never stops the helper from accepting.
    fn accept_next(self: &Arc<Self>, local: &mut Local) {
        let (sock, slot) = {
            let mut state = self.state();
            if state.conns.full() {
                self.pause_accept(&mut state);
                return;
            }
            let accepted = state.accept.accept(&self.epoll);
            if state.accept.paused() {
                // The listener could not be armed again: retried on the timer.
                self.pause_accept(&mut state);
            }
            match accepted {
                Accepted::Conn(sock) => (sock, state.conns.reserve()),
                Accepted::Exhausted => {
                    self.pause_accept(&mut state);
                    return;
                }
                Accepted::Empty | Accepted::Closed => return,
            }
        };
        // The armed listener brings the next connection to whichever thread is free.
        self.add_conn(slot, sock, local);
    }

    /// Stops listening for a while instead of spinning on a listener that cannot be served;
    /// retried on a timer and whenever a connection closes.
    fn pause_accept(&self, state: &mut State) {
        if state.accept.pause() {
            self.accept_paused.store(true, Ordering::Release);
        }
    }

    /// Arms the listener again, below the connection limit.
    fn resume_accept(&self, state: &mut State) {
        if !state.conns.full() && state.accept.resume(&self.epoll) {
            self.accept_paused.store(false, Ordering::Release);
        }
    }

    /// Starts serving an accepted socket in a reserved slot, owned by the calling thread.
    fn add_conn(self: &Arc<Self>, slot: usize, sock: OwnedFd, local: &mut Local) {
        // The helper speaks first: its feature word fits any fresh socket's buffer.
        let features = crate::protocol::encode_features(crate::protocol::SUPPORTED_FEATURES);
        let sent = rustix::net::send(&sock, &features, rustix::net::SendFlags::NOSIGNAL);
        let token = conn_token(slot);
        if sent != Ok(features.len())
            || epoll::add(&self.epoll, &sock, token, CONN_INTEREST).is_err()
        {
            drop(sock);
            self.release_slot(slot);
            return;
        }
        if trace::enabled(TracePoint::Accept) || self.opts.log_verbose {
            let peer = match rustix::net::sockopt::socket_peercred(&sock) {
                Ok(c) => {
                    let (pid, uid, gid) = (c.pid.as_raw_nonzero(), c.uid.as_raw(), c.gid.as_raw());
                    format!("pid={pid} uid={uid} gid={gid}")
                }
                Err(_) => "peer=unknown".into(),
            };
            trace::emit(TracePoint::Accept, || format!("conn={slot} {peer}"));
            if self.opts.log_verbose {
                print_error(&format!("{}: connection from {peer}\n", self.opts.prog));
            }
        }
        self.state().stats.connections += 1;
        let mut conn = Conn::new(sock);
        if self.opts.audit.is_some() {
            // --audit: the peer's /proc files, once per connection, as it connects: it is
            // certainly there (after a reply a short-lived client may be gone, or a zombie
            // whose cgroup reads empty), and no command waits for the reading.
            conn.audit = Some(Box::new(audit::conn_audit(&conn.sock)));
        }
        // The client may already have answered: edge-triggered readiness would not say so again.
        let step = poll(&mut conn, EventFlags::IN, local, self);
        self.drive(slot, conn, step, local);
    }

    fn on_conn_event(self: &Arc<Self>, slot: usize, flags: EventFlags, local: &mut Local) {
        let Some(mut conn) = self.state().conns.take(slot, flags) else {
            return;
        };
        let step = poll(&mut conn, flags, local, self);
        self.drive(slot, conn, step, local);
    }

    /// Acts on the steps of a connection the calling thread owns, running its requests here,
    /// until it waits (and goes back to its slot), is queued, or closes.
    fn drive(self: &Arc<Self>, slot: usize, mut conn: Conn, mut step: Step, local: &mut Local) {
        loop {
            step = match step {
                Step::Wait => {
                    let mut state = self.state();
                    if self.stopping() && !conn.is_executing() {
                        drop(state);
                        self.close_conn(slot, conn, Close::silent("shutting down"));
                        return;
                    }
                    let Some((again, flags)) = state.conns.park(slot, conn) else {
                        return;
                    };
                    conn = again;
                    drop(state);
                    poll(&mut conn, flags, local, self)
                }
                Step::Blocked(interest) => match self.rearm(slot, &mut conn, interest) {
                    Ok(()) => Step::Wait,
                    Err(e) => Step::Close(Close::epoll(e)),
                },
                Step::Dispatch(request, reply) => {
                    let job = Job {
                        slot,
                        conn,
                        request,
                        reply,
                    };
                    let Some(job) = self.admit(job) else {
                        return;
                    };
                    (conn, step) = self.execute(job);
                    continue;
                }
                Step::Replied(reply) => {
                    local.recycle(reply, self);
                    if self.stopping() {
                        self.close_conn(slot, conn, Close::silent("shutting down"));
                        return;
                    }
                    if conn.write_only {
                        // The reply had to wait for room: watch for requests again.
                        if let Err(e) = self.rearm(slot, &mut conn, Interest::Read) {
                            self.close_conn(slot, conn, Close::epoll(e));
                            return;
                        }
                    }
                    // Not read again now: the client's read of this reply brings the
                    // connection's next turn in epoll's queue. Reading at once let a client
                    // whose next request came quickly be served again and again while
                    // others waited (one thread, 64 connections: 26 to 7,699 requests per
                    // connection, p99 82 ms).
                    Step::Wait
                }
                Step::Close(close) => {
                    self.close_conn(slot, conn, close);
                    return;
                }
            };
        }
    }

    /// Asks epoll again for a blocked connection's readiness: EPOLL_CTL_MOD evaluates it anew,
    /// so an event comes at once if it already holds.
    fn rearm(&self, slot: usize, conn: &mut Conn, interest: Interest) -> Result<(), Errno> {
        let flags = match interest {
            Interest::Read => CONN_INTEREST,
            Interest::Write => WRITE_INTEREST,
        };
        epoll::modify(&self.epoll, &conn.sock, conn_token(slot), flags)?;
        conn.write_only = interest == Interest::Write;
        Ok(())
    }

    /// Once stopping with nothing in flight, tells every thread to return.
    fn finish_if_done(&self) {
        if self.stopping.load(Ordering::SeqCst) && self.in_flight.load(Ordering::SeqCst) == 0 {
            self.finish();
        }
    }

    /// Tells every thread to return, once.
    fn finish(&self) {
        if self.finished.swap(true, Ordering::AcqRel) {
            return;
        }
        // Threads asleep in epoll_wait see the flag only through this event: a failed write
        // (only ever transient on an eventfd far from its limit) is tried again.
        for _ in 0..100 {
            if rustix::io::write(&self.finished_event, &1u64.to_ne_bytes()).is_ok() {
                return;
            }
            std::thread::yield_now();
        }
    }

    /// Ends the daemon after a failure of the loop itself, with the reason.
    fn fail(&self, error: Error) {
        lock(&self.failure).get_or_insert(error);
        self.finish();
    }

    /// Frees a slot whose connection is gone.
    fn release_slot(&self, slot: usize) {
        let mut state = self.state();
        state.conns.release(slot);
        let idle_conns = if self.single_connection && state.conns.live() == 0 {
            self.begin_shutdown(&mut state)
        } else {
            Vec::new()
        };
        if state.accept.paused() && !self.stopping() {
            self.resume_accept(&mut state);
        }
        drop(state);
        self.close_all(idle_conns);
    }

    fn close_conn(&self, slot: usize, conn: Conn, close: Close) {
        if let Some(message) = &close.message {
            if self.opts.print_errors {
                print_error(&format!("{}: {message}\n", self.opts.prog));
            }
        }
        trace::emit(TracePoint::Close, || {
            // Last, as it is text with spaces: unquoted, as a person writes it.
            format!("conn={slot} reason={}", close.reason)
        });
        // Closing the socket removes it from the epoll set.
        drop(conn);
        self.release_slot(slot);
    }

    fn close_all(&self, idle_conns: Vec<(usize, Conn)>) {
        for (slot, conn) in idle_conns {
            self.close_conn(slot, conn, Close::silent("shutting down"));
        }
    }

    fn on_signal(&self) {
        loop {
            match sys::signals::read_signal(self.signals.as_fd()) {
                Ok(Some(signo)) => {
                    trace::emit(TracePoint::Shutdown, || format!("signal={signo}"));
                    let idle_conns = self.begin_shutdown(&mut self.state());
                    self.close_all(idle_conns);
                }
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Ok(None) | Err(_) => break,
            }
        }
        // Edge-triggered: a read that failed while a signal was pending spent the edge. Asking
        // again brings an event at once if one still is (signals are rare: one call each).
        let interest = EventFlags::IN | EventFlags::ET;
        let token = EventData::new_u64(SIGNALS);
        if let Err(e) = epoll::modify(&self.epoll, &self.signals, token, interest) {
            // Without it a termination signal could go unseen: end now rather than be deaf.
            self.fail(Error::EventLoop(e.into()));
        }
    }

    /// Stops accepting and takes out every idle connection for the caller to close: those
    /// that have a request in flight get their reply first (as C checks its state only
    /// between requests), and their threads close them then.
    fn begin_shutdown(&self, state: &mut State) -> Vec<(usize, Conn)> {
        if self.stopping.swap(true, Ordering::SeqCst) {
            return Vec::new();
        }
        self.notify("STOPPING=1");
        // The path goes away now, as C closes its server socket on the first signal.
        if let Some(failure) = state.accept.close() {
            state.unlink_error = Some(failure);
        }
        let idle_conns = state.conns.take_idle();
        self.finish_if_done();
        idle_conns
    }
}

/// The epoll token of the connection in `slot`.
fn conn_token(slot: usize) -> EventData {
    EventData::new_u64(slot as u64 + FIRST_CONN)
}

/// Lets a connection act on readiness `flags`: finish a pending reply, then read.
fn poll(conn: &mut Conn, flags: EventFlags, local: &mut Local, shared: &Shared) -> Step {
    let mut step = if flags.contains(EventFlags::OUT) {
        conn.on_writable()
    } else {
        Step::Wait
    };
    if matches!(step, Step::Wait)
        && flags.intersects(EventFlags::IN | EventFlags::HUP | EventFlags::ERR | EventFlags::RDHUP)
    {
        step = conn.on_readable(&mut || local.take_buffer(shared));
    }
    step
}
