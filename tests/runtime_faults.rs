//! Runtime faults: every system call the *serving* daemon makes, failed by strace while
//! clients keep it busy. QEMU waits for each reply with no timeout of its own, so a request
//! left unanswered hangs the guest's SCSI command, and a daemon alive but deaf is never
//! restarted. Each row attaches `strace -f -p PID -e inject=CALL:error=E:when=3..12` to the
//! running daemon while 8 clients (half PR IN, half PR OUT REGISTER, on /dev/null; each
//! reconnects when its connection closes, as QEMU does, and also every few requests, so that
//! accept, epoll_ctl and close run often) send requests, waits until strace has injected the
//! fault, detaches it, and asserts:
//! - no client waited longer than [`ANSWER_LIMIT`] for an answer (a closed connection is
//!   allowed: QEMU reconnects);
//! - the process is alive, and 100 new requests are answered exactly as before the faults;
//! - once the clients are gone, the daemon holds as many descriptors as before them.
//!
//! Rows run in the foreground; the ones whose code differs run under `-u`/`-g` and socket
//! activation too. Needs root and strace. `c_helper_through_the_same_rows` runs the C helper
//! through the same rows (by hand): docs/compatibility.md records both.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use pr_helper::Connection;

/// The longest a client may wait for an answer before the row fails as a hang.
const ANSWER_LIMIT: Duration = Duration::from_secs(10);
/// Clients sending at once while the fault is injected.
const CLIENTS: usize = 8;
/// A client reconnects after this many requests.
const REQUESTS_PER_CONNECTION: u64 = 4;
/// Guard against a fault that never comes: a row whose call is never made fails.
const INJECT_GUARD: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Foreground,
    /// `-u nobody -g nogroup`.
    Unprivileged,
    /// `qemu-pr-helper-activated` under `systemd-socket-activate`.
    Activated,
}

/// One fault: a system call (or several strace names for it), an errno, how many
/// injections to wait for, and what else the row needs.
#[derive(Debug, Clone, Copy)]
struct Row {
    calls: &'static str,
    errno: &'static str,
    /// Injections to see before detaching (each thread has its own window).
    injections: usize,
    /// Extra daemon arguments (e.g. `-v` so that connections write to stderr).
    args: &'static [&'static str],
    /// Commands held this long (`PR_HELPER_TEST_SGIO_DELAY_MS`), so that the team grows.
    delay_ms: Option<u32>,
    /// strace fails a call by not making it: a close it fails leaves its descriptor open,
    /// which no program could tell from a close that failed after closing (Linux closes
    /// first). Such a row allows the descriptors whose close strace skipped, read from its log.
    skipped_call_keeps_a_descriptor: bool,
    /// Only the release build survives this fault: the debug build's standard library checks
    /// each descriptor it closes with fcntl(F_GETFD) and aborts on EBADF ("IO Safety
    /// violation"). The test command's musl tier runs these rows on the static release binary.
    release_only: bool,
}

const fn row(calls: &'static str, errno: &'static str) -> Row {
    Row {
        calls,
        errno,
        injections: 10,
        args: &[],
        delay_ms: None,
        skipped_call_keeps_a_descriptor: false,
        release_only: false,
    }
}

/// What one client kind expects back: the reply of the same request before any fault.
#[derive(Clone, PartialEq, Eq, Debug)]
struct Answer {
    status: u8,
    payload: Vec<u8>,
}

#[derive(Clone, Copy)]
enum Kind {
    PrIn,
    PrOut,
}

impl Kind {
    fn of(i: usize) -> Kind {
        if i % 2 == 0 { Kind::PrIn } else { Kind::PrOut }
    }

    /// One request on a negotiated connection: READ KEYS, or REGISTER with a 24-byte list.
    fn request(self, conn: &mut Connection, dev: &std::os::fd::OwnedFd) -> Result<Answer, String> {
        let reply = match self {
            Kind::PrIn => conn.request(&pr_in(0, 8192), as_fd(dev), &[]),
            Kind::PrOut => {
                let mut params = [0u8; 24];
                params[8..16].copy_from_slice(&0x1234u64.to_be_bytes());
                conn.request(&pr_out(0, 0, 24), as_fd(dev), &params)
            }
        };
        reply
            .map(|r| Answer {
                status: r.status(),
                payload: r.payload,
            })
            .map_err(|e| e.to_string())
    }
}

/// What the clients saw during a row.
#[derive(Default)]
struct Tally {
    answered: AtomicU64,
    closed: AtomicU64,
    connect_failed: AtomicU64,
    /// Waits longer than [`ANSWER_LIMIT`], and wrong answers.
    failures: Mutex<Vec<String>>,
}

/// A daemon under test, ours or C's, in one mode.
struct Daemon {
    _guard: Guard,
    pid: u32,
    socket: PathBuf,
    _scratch: Scratch,
}

impl Daemon {
    fn start(which: Impl, mode: Mode, row: &Row) -> Daemon {
        let scratch = Scratch::new("faults");
        let socket = scratch.path("pr.sock");
        let mut args: Vec<&str> = row.args.to_vec();
        if mode == Mode::Unprivileged {
            args.extend(["-u", "nobody", "-g", "nogroup"]);
        }
        let mut cmd = match (which, mode) {
            (Impl::C, _) => {
                let mut c = Command::new(C_HELPER);
                c.arg("-k").arg(&socket).args(&args);
                c
            }
            (Impl::Ours, Mode::Activated) => {
                let program = applet_link(&scratch.0, "qemu-pr-helper-activated");
                let mut c = Command::new("systemd-socket-activate");
                c.arg("-l").arg(&socket).arg(program).args(&args);
                c
            }
            (Impl::Ours, _) => {
                let program = applet_link(&scratch.0, "qemu-pr-helper");
                let mut c = Command::new(program);
                c.arg("-k").arg(&socket).args(&args);
                c
            }
        };
        if let Some(ms) = row.delay_ms {
            cmd.env("PR_HELPER_TEST_SGIO_DELAY_MS", ms.to_string());
        }
        let stderr = File::create(scratch.path("stderr")).unwrap();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let guard = Guard::spawn(&mut cmd);
        // systemd-socket-activate execs the helper in its own process on the first connection,
        // which this wait makes.
        wait_for_socket(&socket, Duration::from_secs(10));
        let pid = guard.id();
        if mode == Mode::Activated {
            // ... once the listener has a connection queued: wait for the exec.
            let ours = binary().canonicalize().unwrap();
            let start = Instant::now();
            while std::fs::read_link(format!("/proc/{pid}/exe")).ok().as_ref() != Some(&ours) {
                assert!(
                    start.elapsed() < ANSWER_LIMIT,
                    "systemd-socket-activate never ran the helper"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Daemon {
            _guard: guard,
            pid,
            socket,
            _scratch: scratch,
        }
    }

    fn alive(&self) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
            .is_ok_and(|s| !s.split(") ").nth(1).unwrap_or("").starts_with('Z'))
    }

    fn descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Connections open on the daemon's socket: the connected sockets that /proc/net/unix
    /// lists under the name of the daemon's listener (bound under a staging name by ours).
    fn connections(&self) -> usize {
        let Ok(table) = std::fs::read_to_string(format!("/proc/{}/net/unix", self.pid)) else {
            return 0;
        };
        let ours: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| std::fs::read_link(e.path()).ok())
            .filter_map(|l| {
                let l = l.to_str()?.to_owned();
                Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_owned())
            })
            .collect();
        let rows: Vec<Vec<&str>> = table
            .lines()
            .skip(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .filter(|f| f.len() >= 8)
            .collect();
        let listener = rows
            .iter()
            .find(|f| f[3] == "00010000" && ours.iter().any(|i| i == f[6]));
        let Some(listener) = listener else { return 0 };
        rows.iter()
            .filter(|f| f[7] == listener[7] && f[5] == "03")
            .count()
    }

    /// The descriptors the daemon holds with no connection open.
    fn idle_descriptors(&self) -> usize {
        let start = Instant::now();
        while self.connections() > 0 && start.elapsed() < ANSWER_LIMIT {
            std::thread::sleep(Duration::from_millis(10));
        }
        self.descriptors()
    }

    fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.pid))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Whether descriptor `fd` of the daemon is a socket or /dev/null (a connection, or the
    /// device of a request).
    fn is_connection_or_device(&self, fd: u32) -> bool {
        std::fs::read_link(format!("/proc/{}/fd/{fd}", self.pid)).is_ok_and(|target| {
            let target = target.to_string_lossy();
            target.starts_with("socket:[") || target == "/dev/null"
        })
    }

    fn fd_numbers(&self) -> Vec<u32> {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect()
    }

    /// Waits until the daemon holds the descriptors it held before the clients (and those
    /// whose close strace skipped); the others it still holds then, and any of `baseline`
    /// it lost.
    fn settle_fds(&self, baseline: &[u32], skipped: &[u32]) -> Vec<u32> {
        let start = Instant::now();
        loop {
            let now = self.fd_numbers();
            let mut odd: Vec<u32> = now
                .iter()
                .filter(|fd| !baseline.contains(fd) && !skipped.contains(fd))
                .copied()
                .collect();
            odd.extend(baseline.iter().filter(|fd| !now.contains(fd)));
            if odd.is_empty() || start.elapsed() > ANSWER_LIMIT {
                return odd;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// The reply each kind of request gets from a daemon untouched by faults.
fn reference_answers(socket: &Path) -> [Answer; 2] {
    let null = open_rw("/dev/null");
    let mut conn = Connection::connect(socket, Some(ANSWER_LIMIT)).unwrap();
    [Kind::PrIn, Kind::PrOut].map(|k| k.request(&mut conn, &null).unwrap())
}

/// One client's loop until `stop`: connect, send, check, reconnect.
fn client(
    socket: PathBuf,
    kind: Kind,
    expected: Answer,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> impl FnOnce() {
    move || {
        let dev = open_rw("/dev/null");
        let fail = |what: String| tally.failures.lock().unwrap().push(what);
        while !stop.load(Ordering::Acquire) {
            let mut conn = match Connection::connect(&socket, Some(ANSWER_LIMIT)) {
                Ok(c) => c,
                Err(e) if e.to_string().contains("did not answer in time") => {
                    fail(format!("no feature word within {ANSWER_LIMIT:?}"));
                    continue;
                }
                Err(_) => {
                    tally.connect_failed.fetch_add(1, Ordering::Relaxed);
                    std::thread::yield_now();
                    continue;
                }
            };
            for _ in 0..REQUESTS_PER_CONNECTION {
                let sent = Instant::now();
                match kind.request(&mut conn, &dev) {
                    Ok(answer) if answer == expected => {
                        tally.answered.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(answer) => {
                        fail(format!("wrong answer {answer:?}, expected {expected:?}"));
                        break;
                    }
                    Err(e) if e.contains("did not answer in time") => {
                        fail(format!("no answer within {:?}", sent.elapsed()));
                        break;
                    }
                    Err(_) => {
                        tally.closed.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                }
            }
        }
    }
}

/// strace attached to the daemon, injecting the row's fault; its log counts injections.
struct Strace {
    child: Child,
    log: PathBuf,
}

impl Strace {
    fn attach(pid: u32, row: &Row, log: PathBuf) -> Strace {
        let child = Command::new("strace")
            .args(["-f", "-qq", "-o"])
            .arg(&log)
            .arg("-p")
            .arg(pid.to_string())
            .arg(format!("-etrace={}", row.calls))
            .arg(format!(
                // From each thread's third call, so that a connection or two goes through.
                "-einject={}:error={}:when=3..{}",
                row.calls,
                row.errno,
                row.injections + 2
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("strace (apt-get install strace)");
        Strace { child, log }
    }

    fn injected(&self) -> usize {
        File::open(&self.log)
            .map(|f| {
                BufReader::new(f)
                    .lines()
                    .map_while(Result::ok)
                    .filter(|l| l.contains("(INJECTED)"))
                    .count()
            })
            .unwrap_or(0)
    }

    /// Waits for `want` injections (or the guard); detaches; the count.
    fn wait_and_detach(mut self, want: usize) -> usize {
        let start = Instant::now();
        while self.injected() < want && start.elapsed() < INJECT_GUARD {
            std::thread::sleep(Duration::from_millis(5));
        }
        signal(self.child.id(), 15);
        let _ = wait_timeout(&mut self.child, Duration::from_secs(30)).expect("strace detaches");
        self.injected()
    }
}

/// The descriptors whose close strace failed (so never made), or left unfinished when it
/// detached, from its log: `PID close(N) = -1 E... (INJECTED)`, or `PID close(N <unfinished ...>`
/// and later `PID <... close resumed>) = -1 E... (INJECTED)`.
fn skipped_closes(log: &Path) -> Vec<u32> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut pending: Vec<(String, u32)> = Vec::new();
    let mut skipped = Vec::new();
    for line in text.lines() {
        let Some((pid, rest)) = line.split_once(char::is_whitespace) else {
            continue;
        };
        let rest = rest.trim_start();
        if let Some(args) = rest.strip_prefix("close(") {
            let fd: u32 = args
                .chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .unwrap_or(u32::MAX);
            if rest.contains("<unfinished") {
                pending.push((pid.to_owned(), fd));
            } else if rest.contains("(INJECTED)") {
                skipped.push(fd);
            }
        } else if rest.starts_with("<... close resumed>") {
            if let Some(i) = pending.iter().position(|(p, _)| p == pid) {
                let (_, fd) = pending.remove(i);
                if rest.contains("(INJECTED)") {
                    skipped.push(fd);
                }
            }
        }
    }
    skipped.extend(pending.into_iter().map(|(_, fd)| fd));
    skipped
}

/// What happened in one row.
#[derive(Debug)]
struct Outcome {
    injected: usize,
    alive: bool,
    hangs: Vec<String>,
    answered_after: usize,
    descriptors: (usize, usize),
    /// Descriptors open after the clients left that were not before, less those whose close
    /// strace skipped.
    leaked: Vec<u32>,
    answered: u64,
    closed: u64,
    /// The daemon's stderr, when it died.
    stderr: String,
}

impl Outcome {
    fn survived(&self) -> bool {
        self.alive && self.hangs.is_empty() && self.answered_after == 100 && self.leaked.is_empty()
    }

    fn summary(&self) -> String {
        if !self.alive {
            return format!("dies: {}", self.stderr.trim());
        }
        let mut words = Vec::new();
        if !self.hangs.is_empty() {
            words.push(format!("{} clients hung", self.hangs.len()));
        }
        if self.answered_after < 100 {
            words.push(format!("{} of 100 answered after", self.answered_after));
        }
        if !self.leaked.is_empty() {
            words.push(format!(
                "descriptors {} -> {}",
                self.descriptors.0, self.descriptors.1
            ));
        }
        if words.is_empty() {
            "survives".into()
        } else {
            words.join(", ")
        }
    }
}

fn run_row(which: Impl, mode: Mode, row: &Row) -> Outcome {
    let daemon = Daemon::start(which, mode, row);
    let expected = reference_answers(&daemon.socket);
    let baseline = daemon.idle_descriptors();
    let baseline_fds = daemon.fd_numbers();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let strace = Strace::attach(daemon.pid, row, daemon._scratch.path("strace.log"));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let kind = Kind::of(i);
            let expected = expected[i % 2].clone();
            std::thread::spawn(client(
                daemon.socket.clone(),
                kind,
                expected,
                Arc::clone(&stop),
                Arc::clone(&tally),
            ))
        })
        .collect();
    let threads_before = daemon.threads();
    let injected = strace.wait_and_detach(row.injections);
    // The team grows and shrinks with the load: the larger of the two counts.
    let threads_at_detach = threads_before.max(daemon.threads());
    stop.store(true, Ordering::Release);
    for c in clients {
        c.join().unwrap();
    }
    let alive = daemon.alive();
    let answered_after = if alive {
        answer_count_after(&daemon.socket, &expected)
    } else {
        0
    };
    let log = daemon._scratch.path("strace.log");
    let skipped = if row.skipped_call_keeps_a_descriptor {
        skipped_closes(&log)
    } else {
        Vec::new()
    };
    let mut leaked = daemon.settle_fds(&baseline_fds, &skipped);
    if row.skipped_call_keeps_a_descriptor
        && leaked.len() <= threads_at_detach
        && leaked.iter().all(|&fd| daemon.is_connection_or_device(fd))
    {
        // strace, told to detach, lets a thread go on from a call it was failing (so skipping)
        // before it logged it: at most one such close per thread, of a connection's socket or
        // a request's device, unlogged.
        leaked.clear();
    }
    let after = daemon.descriptors();
    Outcome {
        injected,
        alive,
        hangs: tally.failures.lock().unwrap().clone(),
        answered_after,
        descriptors: (baseline, after),
        leaked,
        answered: tally.answered.load(Ordering::Relaxed),
        closed: tally.closed.load(Ordering::Relaxed),
        stderr: if alive {
            String::new()
        } else {
            std::fs::read_to_string(daemon._scratch.path("stderr")).unwrap_or_default()
        },
    }
}

/// 100 requests on 10 fresh connections once the fault is gone: how many got the answer
/// they got before it.
fn answer_count_after(socket: &Path, expected: &[Answer; 2]) -> usize {
    let null = open_rw("/dev/null");
    let answered = AtomicUsize::new(0);
    for c in 0..10 {
        let Ok(mut conn) = Connection::connect(socket, Some(ANSWER_LIMIT)) else {
            continue;
        };
        for i in 0..10 {
            let kind = Kind::of(c + i);
            match kind.request(&mut conn, &null) {
                Ok(a) if a == expected[(c + i) % 2] => {
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                _ => break,
            }
        }
    }
    answered.into_inner()
}

fn check_rows(modes: &[Mode], rows: &[Row]) {
    require_root("strace attaches to the daemon, which runs as root");
    let debug_build = cfg!(debug_assertions) && std::env::var_os("PR_HELPER_BIN").is_none();
    let mut failed = Vec::new();
    for row in rows {
        if row.release_only && debug_build {
            eprintln!(
                "{} {}: release builds only (the musl tier runs it): the debug build's std \
                 aborts on a descriptor that fcntl says is closed",
                row.calls, row.errno
            );
            continue;
        }
        for &mode in modes {
            let outcome = run_row(Impl::Ours, mode, row);
            eprintln!(
                "{} {} {mode:?}: {} ({} injected; {} answered, {} closed during the faults)",
                row.calls,
                row.errno,
                outcome.summary(),
                outcome.injected,
                outcome.answered,
                outcome.closed
            );
            if outcome.injected == 0 || !outcome.survived() {
                failed.push(format!("{} {} {mode:?}: {outcome:?}", row.calls, row.errno));
            }
        }
    }
    assert!(failed.is_empty(), "rows failed:\n{}", failed.join("\n"));
}

const ALL: &[Mode] = &[Mode::Foreground, Mode::Unprivileged, Mode::Activated];
const FG: &[Mode] = &[Mode::Foreground];

fn errnos(calls: &'static str, list: &[&'static str]) -> Vec<Row> {
    list.iter().map(|&e| row(calls, e)).collect()
}

#[test]
fn accept_faults() {
    check_rows(
        ALL,
        &errnos(
            "accept4",
            &[
                "EMFILE",
                "ENFILE",
                "ENOMEM",
                "ENOBUFS",
                "ECONNABORTED",
                "EINTR",
                "EAGAIN",
                "EPERM",
            ],
        ),
    );
}

#[test]
fn receive_faults() {
    check_rows(ALL, &errnos("recvmsg", &["EAGAIN", "EINTR"]));
    check_rows(
        FG,
        &errnos("recvmsg", &["ECONNRESET", "ENOMEM", "ENOBUFS", "EFAULT"]),
    );
    // The PR OUT parameter list and the signalfd are read with read(2).
    check_rows(
        FG,
        &errnos("read", &["EAGAIN", "EINTR", "ECONNRESET", "EIO"]),
    );
}

#[test]
fn send_faults() {
    check_rows(ALL, &errnos("sendto", &["EAGAIN", "EINTR"]));
    check_rows(
        FG,
        &errnos("sendto", &["EPIPE", "ECONNRESET", "ENOBUFS", "ENOMEM"]),
    );
}

#[test]
fn epoll_faults() {
    check_rows(ALL, &errnos("epoll_ctl", &["ENOMEM", "ENOSPC"]));
    check_rows(FG, &errnos("epoll_ctl", &["EINTR", "EAGAIN"]));
    check_rows(FG, &errnos("epoll_pwait", &["EINTR", "EAGAIN"]));
}

#[test]
fn device_faults() {
    let ebadf = Row {
        release_only: true,
        ..row("fcntl", "EBADF")
    };
    check_rows(FG, &[ebadf, row("fcntl", "EINTR"), row("fcntl", "EAGAIN")]);
    check_rows(
        FG,
        &errnos(
            "fstat,newfstatat,statx",
            &["EIO", "ENOMEM", "EINTR", "EOVERFLOW"],
        ),
    );
    check_rows(ALL, &errnos("ioctl", &["EINTR", "EAGAIN"]));
    check_rows(FG, &errnos("ioctl", &["EIO", "ENOMEM", "ENODEV", "ENOTTY"]));
}

#[test]
fn close_and_thread_faults() {
    let close = |errno| Row {
        skipped_call_keeps_a_descriptor: true,
        ..row("close", errno)
    };
    check_rows(FG, &[close("EINTR"), close("EIO")]);
    let clone = |errno| Row {
        injections: 2,
        delay_ms: Some(20),
        ..row("clone,clone3", errno)
    };
    check_rows(FG, &[clone("EAGAIN"), clone("ENOMEM"), clone("EINTR")]);
    // No mmap row: a thread's stack that cannot be mapped is a spawn error (handled above),
    // but an allocation that fails aborts, as Rust's allocation error handler does (and
    // glib's g_malloc in C): with musl's malloc a new thread's first allocation maps memory.
    // std's own per-thread signal stack, whose failed mmap also aborted, is gone
    // (sys::signals::IGNORE_FAULT_SIGNALS_BEFORE_STD).
}

#[test]
fn stderr_faults() {
    let verbose = |errno| Row {
        args: &["-v"],
        ..row("write", errno)
    };
    check_rows(
        FG,
        &[
            verbose("EAGAIN"),
            verbose("EPIPE"),
            verbose("EIO"),
            verbose("ENOSPC"),
        ],
    );
}

/// Waits until every thread of `pid` is traced (strace has attached), or `pid` is gone.
fn wait_traced(pid: u32) {
    let start = Instant::now();
    loop {
        if matches!(process_state(pid), 'Z' | '?') {
            return;
        }
        let tasks: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
            .collect();
        let traced = |status: &String| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("TracerPid:"))
                .is_some_and(|v| v.trim() != "0")
        };
        if !tasks.is_empty() && tasks.iter().all(traced) {
            return;
        }
        assert!(start.elapsed() < INJECT_GUARD, "strace never attached");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The signalfd is edge-triggered: a read of it that fails while SIGTERM is pending must not
/// leave the daemon deaf to the signal (systemd would wait, then SIGKILL it).
#[test]
fn a_failed_signal_read_does_not_lose_the_signal() {
    require_root("strace attaches to the daemon, which runs as root");
    for errno in ["EAGAIN", "EINTR", "EIO"] {
        let mut helper = Helper::start(Impl::Ours, &[]);
        let log = helper.scratch.path("strace.log");
        let strace = Command::new("strace")
            .args(["-f", "-qq", "-etrace=read"])
            .arg(format!("-einject=read:error={errno}:when=1"))
            .arg("-o")
            .arg(&log)
            .arg("-p")
            .arg(helper.pid().to_string())
            .stderr(Stdio::null())
            .spawn()
            .expect("strace");
        let _strace = Guard(strace);
        wait_traced(helper.pid());
        signal(helper.pid(), libc_sigterm());
        let status = wait_timeout(&mut helper.child, Duration::from_secs(30));
        let injected = std::fs::read_to_string(&log).unwrap_or_default();
        assert!(
            injected.contains("(INJECTED)"),
            "{errno}: the signalfd read was not failed: {injected}"
        );
        assert_eq!(
            status.map(|s| s.code()),
            Some(Some(0)),
            "{errno}: SIGTERM after a failed signalfd read: the daemon must exit 0 ({injected})"
        );
    }
}

/// Serves with `args`, answers one request on /dev/null, and is still alive.
fn answers_with(args: &[&str], env: &[(&str, &str)]) -> Helper {
    let helper = Helper::start_with_env(Impl::Ours, args, env);
    let null = open_rw("/dev/null");
    let mut conn = Connection::connect(&helper.socket, Some(ANSWER_LIMIT)).unwrap();
    Kind::PrIn
        .request(&mut conn, &null)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    helper
}

/// epoll_pwait takes at most i32::MAX milliseconds (24.8 days); a longer idle timeout is
/// accepted, and must neither end the daemon (rustix would call epoll_pwait2, which the
/// sandbox kills) nor make the wait fail.
#[test]
fn any_accepted_idle_timeout_keeps_serving() {
    require_root("the daemon drops privileges");
    for secs in ["2147484", "4000000", "18446744073709551615"] {
        let arg = format!("--idle-timeout={secs}");
        let mut helper = answers_with(&[&arg], &[]);
        assert!(
            helper.child.try_wait().unwrap().is_none(),
            "{arg}: the daemon died"
        );
        let (status, err) = helper.stop();
        assert_eq!(status.code(), Some(0), "{arg}: {err}");
    }
}

/// Which system call each thread of `pid` is blocked in (/proc/PID/task/*/syscall).
fn blocked_in(pid: u32) -> Vec<libc::c_long> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("syscall")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse().ok())
        .collect()
}

fn process_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    stat.rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next())
        .unwrap_or('?')
}

/// A thread asleep (here the test delay; in the multipath backend's retries) in a process
/// that is stopped and continued (SIGSTOP/SIGCONT, a cgroup freeze, a debugger) resumes its
/// sleep through restart_syscall, which the seccomp filter must allow.
#[test]
fn a_stopped_and_continued_daemon_keeps_serving() {
    require_root("the daemon drops privileges");
    let helper =
        Helper::start_with_env(Impl::Ours, &[], &[("PR_HELPER_TEST_SGIO_DELAY_MS", "1500")]);
    let pid = helper.pid();
    let socket = helper.socket.clone();
    let request = std::thread::spawn(move || {
        let null = open_rw("/dev/null");
        let mut conn = Connection::connect(&socket, Some(Duration::from_secs(30))).unwrap();
        Kind::PrIn.request(&mut conn, &null)
    });
    let sleeping = [libc::SYS_clock_nanosleep, nanosleep_nr()];
    let start = Instant::now();
    while !blocked_in(pid).iter().any(|nr| sleeping.contains(nr)) {
        assert!(start.elapsed() < ANSWER_LIMIT, "no thread went to sleep");
        std::thread::sleep(Duration::from_millis(5));
    }
    signal(pid, 19); // SIGSTOP
    let start = Instant::now();
    while process_state(pid) != 'T' {
        assert!(start.elapsed() < ANSWER_LIMIT, "the daemon did not stop");
        std::thread::sleep(Duration::from_millis(5));
    }
    signal(pid, 18); // SIGCONT
    let answer = request.join().unwrap();
    assert!(
        answer.is_ok(),
        "the request held across the stop: {answer:?}"
    );
    let mut helper = helper;
    assert!(
        helper.child.try_wait().unwrap().is_none(),
        "the daemon died after SIGCONT"
    );
    let (status, err) = helper.stop();
    assert_eq!(status.code(), Some(0), "{err}");
}

/// nanosleep's number where the architecture has it (musl calls it on some), else none.
fn nanosleep_nr() -> libc::c_long {
    #[cfg(any(
        target_arch = "x86_64",
        target_arch = "s390x",
        target_arch = "powerpc64"
    ))]
    {
        libc::SYS_nanosleep
    }
    #[cfg(not(any(
        target_arch = "x86_64",
        target_arch = "s390x",
        target_arch = "powerpc64"
    )))]
    {
        -2
    }
}

/// `WATCHDOG=1` comes from the loop while it turns, and stops once it is wedged (the
/// test-only `PR_HELPER_TEST_WEDGE_LOOP`), so systemd's `WatchdogSec=` restarts a daemon that
/// is alive but deaf. Under systemd as PID 1: the lab's systemd flavour, step `watchdog`.
#[test]
fn the_watchdog_is_fed_while_the_loop_turns_and_starves_once_it_is_wedged() {
    require_root("the daemon drops privileges");
    let scratch = Scratch::new("watchdog");
    let notify_path = scratch.path("notify");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(ANSWER_LIMIT)).unwrap();
    let wedge = scratch.path("wedge");
    let notify_env = notify_path.to_str().unwrap();
    let wedge_env = wedge.to_str().unwrap();
    // Every 100 ms at a limit of 200 ms.
    let helper = Helper::start_with_env(
        Impl::Ours,
        &[],
        &[
            ("NOTIFY_SOCKET", notify_env),
            ("WATCHDOG_USEC", "200000"),
            ("PR_HELPER_TEST_WEDGE_LOOP", wedge_env),
        ],
    );
    let pings = |n: usize| {
        let mut seen = 0;
        let mut buf = [0u8; 512];
        while seen < n {
            let got = notify
                .recv(&mut buf)
                .expect("WATCHDOG=1 while the loop turns");
            if &buf[..got] == b"WATCHDOG=1" {
                seen += 1;
            }
        }
    };
    pings(5);
    // Served while the file is absent, and fed meanwhile.
    drop(answers_with_socket(&helper.socket));
    pings(3);
    std::fs::write(&wedge, "").unwrap();
    let socket = helper.socket.clone();
    let _wedged = std::thread::spawn(move || {
        let null = open_rw("/dev/null");
        let mut conn = Connection::connect(&socket, Some(Duration::from_secs(60))).unwrap();
        let _ = Kind::PrIn.request(&mut conn, &null);
    });
    // Once wedged, silence: 2 s (20 intervals) without WATCHDOG=1 must come.
    notify
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let wedged_at = Instant::now();
    let mut buf = [0u8; 512];
    while let Ok(n) = notify.recv(&mut buf) {
        assert!(
            &buf[..n] != b"WATCHDOG=1" || wedged_at.elapsed() < ANSWER_LIMIT,
            "WATCHDOG=1 never stopped after the wedge"
        );
    }
}

fn answers_with_socket(socket: &Path) -> Answer {
    let null = open_rw("/dev/null");
    let mut conn = Connection::connect(socket, Some(ANSWER_LIMIT)).unwrap();
    Kind::PrIn.request(&mut conn, &null).unwrap()
}

/// The C helper through the foreground rows, for docs/compatibility.md: what it does, printed
/// as a table (it is the reference, not under test; it dies of some faults ours survives).
/// Asserts only that every row reached it (the fault was injected).
#[test]
#[ignore = "comparison with the C helper (about 3 min), run by hand (tests/run-all.sh skips it): cargo test --test runtime_faults -- --ignored --nocapture"]
fn c_helper_through_the_same_rows() {
    require_root("strace attaches to the daemon, which runs as root");
    let rows: Vec<Row> = [
        (
            "accept4",
            &[
                "EMFILE",
                "ENOMEM",
                "ECONNABORTED",
                "EINTR",
                "EAGAIN",
                "EPERM",
            ][..],
        ),
        ("recvmsg", &["EAGAIN", "EINTR", "ECONNRESET", "ENOMEM"]),
        ("read", &["EAGAIN", "EINTR", "EIO"]),
        (
            "sendmsg,sendto,write",
            &["EAGAIN", "EINTR", "EPIPE", "ENOBUFS"],
        ),
        // glib's loop: poll, not epoll.
        ("ppoll,poll", &["EINTR", "ENOMEM"]),
        ("fcntl", &["EBADF", "EINTR"]),
        ("ioctl", &["EINTR", "EAGAIN", "EIO", "ENOMEM"]),
        ("close", &["EINTR", "EIO"]),
        ("mmap", &["ENOMEM"]),
    ]
    .iter()
    .flat_map(|(calls, list)| errnos(calls, list))
    .collect();
    let mut table = Vec::new();
    for row in &rows {
        let outcome = run_row(Impl::C, Mode::Foreground, row);
        table.push(format!(
            "| `{}` {} | {} | {} |",
            row.calls,
            row.errno,
            outcome.summary(),
            outcome.injected
        ));
        assert!(
            outcome.injected > 0,
            "{} {}: never injected",
            row.calls,
            row.errno
        );
    }
    eprintln!(
        "| fault | C helper | injected |\n|---|---|---|\n{}",
        table.join("\n")
    );
}

/// A wait that keeps failing (here EBADF on every call) cannot be served through: the daemon
/// must end with the reason, for systemd to restart it, rather than live on deaf.
#[test]
fn a_wait_that_keeps_failing_ends_the_daemon_with_the_reason() {
    require_root("strace attaches to the daemon, which runs as root");
    let mut helper = Helper::start(Impl::Ours, &[]);
    let strace = Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-etrace=epoll_pwait"])
        .arg("-einject=epoll_pwait:error=EBADF:when=1+")
        .arg("-p")
        .arg(helper.pid().to_string())
        .stderr(Stdio::null())
        .spawn()
        .expect("strace");
    let _strace = Guard(strace);
    wait_traced(helper.pid());
    // strace's attach restarts the wait it interrupts, or a connection wakes it: failing calls.
    let _conn = std::os::unix::net::UnixStream::connect(&helper.socket);
    let status = wait_timeout(&mut helper.child, Duration::from_secs(60))
        .expect("the daemon lived on with a wait that always fails");
    let mut err = String::new();
    use std::io::Read as _;
    let _ = helper.child.stderr.take().unwrap().read_to_string(&mut err);
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("event loop failed: Bad file descriptor"),
        "the reason: {err}"
    );
}
