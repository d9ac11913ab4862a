//! Every start-up failure leaves nothing behind and says why.
//!
//! strace's `-e inject=CALL:error=E[:when=N]` fails one system call of start-up at a time
//! (socket, bind, listen, rename, the pidfile's open/lock/truncate/write, the privilege drop,
//! the sandbox, the signalfd and epoll set-up, `-d`'s pipe, fork, setsid, stdio and hand-over),
//! in the foreground, with `-d` and under socket activation where the step exists there. Each
//! must end with exit status 1, a message naming the step, no socket (published or staging),
//! no pidfile (except when its lock failed: that one may be another instance's) and no
//! process: `strace -f` returns only once every process it traced has exited.
//!
//! `-e inject=CALL:delay_enter=US` holds start-up at a step instead, so that a termination
//! signal can arrive there: start-up then ends cleanly, with exit status 0 and nothing left.
//! /proc shows the process stopped at that call before the signal and still there after it,
//! or the case fails: the signal lands at the step it names, not wherever the clock put it.
//!
//! Needs root (the privilege drop) and strace (installed with apt-get when missing).

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;

/// Hang guard of every wait on a condition (an exit, a socket, a process held at a step):
/// only a case that never gets there reaches it.
const GUARD: Duration = Duration::from_secs(60);

/// How the daemon is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Foreground,
    Daemon,
    Activated,
}

const F: Mode = Mode::Foreground;
const D: Mode = Mode::Daemon;
const A: Mode = Mode::Activated;

/// One start-up step failed by injection.
struct Row {
    step: &'static str,
    /// strace arguments that fail it; `PIDFILE` is replaced by the pidfile's path.
    strace: &'static [&'static str],
    modes: &'static [Mode],
    /// What the message must contain.
    message: &'static str,
    /// The pidfile stays (its lock failed: it may be another instance's).
    pidfile_stays: bool,
}

const fn row(
    step: &'static str,
    strace: &'static [&'static str],
    modes: &'static [Mode],
    message: &'static str,
) -> Row {
    Row {
        step,
        strace,
        modes,
        message,
        pidfile_stays: false,
    }
}

const DROP: &str = "Failed to drop privileges: ";
const SANDBOX: &str = "Failed to install the seccomp sandbox: ";
const DAEMONIZE: &str = "Failed to daemonize: ";

fn rows() -> Vec<Row> {
    vec![
        row(
            "signalfd",
            &["-e", "inject=signalfd4:error=ENOMEM"],
            &[F, D, A],
            "Cannot set up signal handling: ",
        ),
        row(
            "socket",
            &["-e", "inject=socket:error=EMFILE"],
            &[F, D],
            "Failed to create Unix socket: ",
        ),
        row(
            "bind",
            &["-e", "inject=bind:error=EADDRINUSE"],
            &[F, D],
            "Failed to bind socket to ",
        ),
        row(
            "listen",
            &["-e", "inject=listen:error=EOPNOTSUPP"],
            &[F, D],
            "Failed to listen on socket: ",
        ),
        row(
            "pipe (-d)",
            &["-e", "inject=pipe2:error=EMFILE"],
            &[D],
            DAEMONIZE,
        ),
        row(
            "fork (-d)",
            &["-e", "inject=clone,clone3,fork:error=EAGAIN"],
            &[D],
            DAEMONIZE,
        ),
        row(
            "setsid (-d)",
            &["-e", "inject=setsid:error=EPERM"],
            &[D],
            DAEMONIZE,
        ),
        row(
            "pidfile open",
            &["-P", "PIDFILE", "-e", "inject=open,openat:error=EACCES"],
            &[F, D],
            "Could not create '",
        ),
        Row {
            pidfile_stays: true,
            ..row(
                "pidfile lock",
                &["-P", "PIDFILE", "-e", "inject=fcntl:error=EAGAIN"],
                &[F, D],
                "Cannot lock pid file: ",
            )
        },
        row(
            "pidfile truncate",
            &["-P", "PIDFILE", "-e", "inject=ftruncate:error=EIO"],
            &[F, D],
            "Failed to truncate pid file: ",
        ),
        row(
            "pidfile write",
            &["-P", "PIDFILE", "-e", "inject=write:error=ENOSPC"],
            &[F, D],
            "Failed to write pid file: ",
        ),
        row(
            "rename into place",
            &["-e", "inject=rename,renameat,renameat2:error=EACCES"],
            &[F, D],
            "Failed to move the socket into place at ",
        ),
        row(
            "capget",
            &["-e", "inject=capget:error=EPERM"],
            &[F, D, A],
            DROP,
        ),
        row(
            "prctl (keep capabilities)",
            &["-e", "inject=prctl:error=EINVAL:when=1"],
            &[F, D, A],
            DROP,
        ),
        row(
            "capset",
            &["-e", "inject=capset:error=EPERM"],
            &[F, D, A],
            DROP,
        ),
        row(
            "setresgid",
            &["-e", "inject=setresgid:error=EPERM"],
            &[F, D, A],
            DROP,
        ),
        row(
            "setgroups",
            &["-e", "inject=setgroups:error=EPERM"],
            &[F, D, A],
            DROP,
        ),
        row(
            "setresuid",
            &["-e", "inject=setresuid:error=EPERM"],
            &[F, D, A],
            DROP,
        ),
        row(
            "epoll_create1",
            &["-e", "inject=epoll_create1:error=EMFILE"],
            &[F, D, A],
            "Cannot set up the event loop: epoll_create1: ",
        ),
        row(
            "eventfd",
            &["-e", "inject=eventfd2:error=EMFILE"],
            &[F, D, A],
            "Cannot set up the event loop: eventfd: ",
        ),
        row(
            "epoll_ctl",
            &["-e", "inject=epoll_ctl:error=ENOMEM:when=1"],
            &[F, D, A],
            "Cannot set up the event loop: epoll_ctl: ",
        ),
        row(
            "stdio to /dev/null (-d)",
            &["-e", "inject=dup2,dup3:error=EBADF"],
            &[D],
            DAEMONIZE,
        ),
        row(
            "seccomp",
            &["-e", "inject=seccomp:error=EINVAL"],
            &[F, D, A],
            SANDBOX,
        ),
        row(
            "hand-over to the parent (-d)",
            // The child's writes: the pidfile's pid, then "ready".
            &["-e", "inject=write:error=EIO:when=2"],
            &[D],
            "Cannot tell the waiting parent process that the daemon is ready: ",
        ),
        row(
            "activation: descriptor flags",
            &["-e", "inject=fcntl:error=EBADF:when=1"],
            &[A],
            "Socket activation failed: invalid file descriptor fd = 3: ",
        ),
    ]
}

/// The prctl calls before PR_SET_NO_NEW_PRIVS: PR_SET_KEEPCAPS, one PR_CAPBSET_DROP per
/// capability the kernel knows, PR_SET_KEEPCAPS again; so NO_NEW_PRIVS is this one.
fn no_new_privs_prctl() -> String {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    format!("inject=prctl:error=EINVAL:when={}", last + 4)
}

fn ensure_strace() {
    static APT: Mutex<()> = Mutex::new(());
    let _guard = APT.lock().unwrap_or_else(|e| e.into_inner());
    if Path::new("/usr/bin/strace").exists() {
        return;
    }
    let install = "DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install \
                   -y -q --no-install-recommends strace";
    let sh = |cmd: &str| {
        Command::new("sh")
            .args(["-c", cmd])
            .stdout(Stdio::null())
            .status()
            .unwrap()
            .success()
    };
    if !sh(install) {
        assert!(
            sh(&format!(
                "apt-get -o DPkg::Lock::Timeout=300 update -q && {install}"
            )),
            "cannot install strace"
        );
    }
}

fn sh_quote(s: &Path) -> String {
    format!("'{}'", s.display().to_string().replace('\'', "'\\''"))
}

/// The command that starts the daemon in `mode` under `strace -f` with `injection`.
fn command(mode: Mode, scratch: &Scratch, injection: &[String]) -> Command {
    let socket = scratch.path("pr.sock");
    let pidfile = scratch.path("pr.pid");
    let mut strace: Vec<String> = ["strace", "-f", "-qq", "-o", "/dev/null"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    strace.extend(
        injection
            .iter()
            .map(|a| a.replace("PIDFILE", &pidfile.to_string_lossy())),
    );
    match mode {
        Mode::Foreground | Mode::Daemon => {
            let mut cmd = Command::new(&strace[0]);
            cmd.args(&strace[1..])
                .arg(binary())
                .arg("qemu-pr-helper")
                .arg("-k")
                .arg(&socket)
                .arg("-f")
                .arg(&pidfile);
            if mode == Mode::Daemon {
                cmd.arg("-d");
            }
            cmd
        }
        Mode::Activated => {
            // systemd-socket-activate listens and execs in the same process; strace then
            // forks a shell that names itself in LISTEN_PID before it execs the daemon.
            let strace_line: Vec<String> = strace.iter().map(|a| sh_quote(Path::new(a))).collect();
            let inner = format!(
                "LISTEN_PID=$$ exec {} qemu-pr-helper-activated",
                sh_quote(&binary())
            );
            let mut cmd = Command::new("systemd-socket-activate");
            cmd.arg("-l").arg(&socket).args([
                "sh",
                "-c",
                &format!(
                    "exec {} sh -c {}",
                    strace_line.join(" "),
                    sh_quote(Path::new(&inner))
                ),
            ]);
            cmd
        }
    }
}

/// Runs `cmd` to its end, or kills it (and whatever daemon it started) after `limit`.
fn run_bounded(mut cmd: Command, mode: Mode, scratch: &Scratch, limit: Duration) -> Option<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _trigger = activate(mode, scratch);
    if wait_timeout(&mut child, limit).is_none() {
        if let Some(pid) = std::fs::read_to_string(scratch.path("pr.pid"))
            .ok()
            .and_then(|p| p.trim().parse().ok())
        {
            signal(pid, 9);
        }
        let _ = child.kill();
        let _ = child.wait();
        return None;
    }
    Some(child.wait_with_output().unwrap())
}

/// systemd-socket-activate starts its program at the first connection: make one.
fn activate(mode: Mode, scratch: &Scratch) -> Option<std::os::unix::net::UnixStream> {
    if mode != Mode::Activated {
        return None;
    }
    let socket = scratch.path("pr.sock");
    let begin = Instant::now();
    while begin.elapsed() < GUARD {
        if let Ok(stream) = std::os::unix::net::UnixStream::connect(&socket) {
            return Some(stream);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!(
        "systemd-socket-activate never listened on {}",
        socket.display()
    );
}

/// Files left in the scratch directory (socket, staging socket, pidfile).
fn leftovers(scratch: &Scratch) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(&scratch.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "qemu-pr-helper")
        .collect();
    names.sort();
    names
}

#[test]
fn every_start_up_failure_exits_1_with_its_reason_and_leaves_nothing() {
    require_root("the privilege drop and its failures need root: run the suite as root");
    ensure_strace();
    let mut table = rows();
    table.push(row(
        "prctl (no new privileges)",
        Box::leak(Box::new([
            "-e",
            Box::leak(no_new_privs_prctl().into_boxed_str()),
        ])),
        &[F, D, A],
        SANDBOX,
    ));
    let mut failures = Vec::new();
    let start = Instant::now();
    for row in &table {
        for &mode in row.modes {
            let scratch = Scratch::new("fault");
            let injection: Vec<String> = row.strace.iter().map(|s| s.to_string()).collect();
            let cmd = command(mode, &scratch, &injection);
            let what = format!("{} ({mode:?})", row.step);
            let Some(out) = run_bounded(cmd, mode, &scratch, GUARD) else {
                failures.push(format!("{what}: still running (a process was left)"));
                continue;
            };
            let stderr = String::from_utf8_lossy(&out.stderr);
            let mut left = leftovers(&scratch);
            if mode == Mode::Activated {
                // systemd-socket-activate's own socket: systemd owns that path.
                left.retain(|n| n != "pr.sock");
            }
            if row.pidfile_stays {
                left.retain(|n| n != "pr.pid");
            }
            let expected = format!("qemu-pr-helper: {}", row.message);
            let expected_activated = format!("qemu-pr-helper-activated: {}", row.message);
            let said = stderr.contains(&expected) || stderr.contains(&expected_activated);
            if out.status.code() != Some(1) || !said || !left.is_empty() {
                failures.push(format!(
                    "{what}: status {:?} (signal {:?}), left {left:?}, stderr {stderr:?}, \
                     wanted {:?}",
                    out.status.code(),
                    out.status.signal(),
                    row.message
                ));
            }
            eprintln!("{what}: {}", stderr.trim_end());
        }
    }
    eprintln!("{} rows in {:?}", table.len(), start.elapsed());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The C helper (QEMU 7.2) failing the same steps, as docs/compatibility.md describes it: a
/// failed `listen` leaves the socket; after the pidfile (truncate, the privilege drop) socket
/// and pidfile stay, and with `-d` C exits 0 without a word, its daemon dead; a failed thread
/// creation aborts. If C changes, the notes must too.
#[test]
fn the_c_helper_at_the_same_steps_as_the_notes_say() {
    require_root("strace's injection and the privilege drop need root");
    ensure_strace();
    // (injection, -d, exit status, message or "" for none, files left)
    let cases: &[(&str, bool, i32, &str, &[&str])] = &[
        (
            "bind:error=EADDRINUSE",
            false,
            1,
            "Failed to bind socket to ",
            &[],
        ),
        (
            "listen:error=EOPNOTSUPP",
            false,
            1,
            "Failed to listen on socket: ",
            &["pr.sock"],
        ),
        (
            "listen:error=EOPNOTSUPP",
            true,
            1,
            "Failed to listen on socket: ",
            &["pr.sock"],
        ),
        (
            "ftruncate:error=EIO",
            false,
            1,
            "Failed to truncate pid file: ",
            &["pr.pid", "pr.sock"],
        ),
        ("ftruncate:error=EIO", true, 0, "", &["pr.pid", "pr.sock"]),
        ("capset:error=EPERM", false, 1, DROP, &["pr.pid", "pr.sock"]),
        ("capset:error=EPERM", true, 0, "", &["pr.pid", "pr.sock"]),
        (
            "clone3:error=EAGAIN",
            false,
            134,
            "qemu_thread_create: ",
            &[],
        ),
    ];
    let mut failures = Vec::new();
    for &(injection, daemon, status, message, files) in cases {
        let scratch = Scratch::new("fault-c");
        let mut cmd = Command::new("strace");
        cmd.args(["-f", "-qq", "-o", "/dev/null", "-e"])
            .arg(format!("inject={injection}"))
            .arg(C_HELPER)
            .arg("-k")
            .arg(scratch.path("pr.sock"))
            .arg("-f")
            .arg(scratch.path("pr.pid"));
        if daemon {
            cmd.arg("-d");
        }
        let what = format!("C, {injection}{}", if daemon { " -d" } else { "" });
        // strace -f returns once every traced process has exited: no daemon is left.
        let Some(out) = run_bounded(cmd, F, &scratch, GUARD) else {
            failures.push(format!("{what}: still running"));
            continue;
        };
        let stderr = String::from_utf8_lossy(&out.stderr);
        let said = if message.is_empty() {
            stderr.is_empty()
        } else {
            stderr.contains(message)
        };
        let left = leftovers(&scratch);
        if out.status.code().or(out.status.signal().map(|s| 128 + s)) != Some(status)
            || !said
            || left != files
        {
            failures.push(format!(
                "{what}: status {:?} (signal {:?}), left {left:?}, stderr {stderr:?}; the notes \
                 say status {status}, {message:?}, left {files:?}",
                out.status.code(),
                out.status.signal(),
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Start-up creates no thread (the team grows on demand while serving), so a failing clone
/// is no start-up failure: the daemon starts, answers on its one thread, and stops cleanly.
#[test]
fn failing_thread_creation_still_serves() {
    require_root("strace's injection and the privilege drop need root");
    ensure_strace();
    let scratch = Scratch::new("fault-clone");
    let socket = scratch.path("pr.sock");
    let injection = vec![
        "-e".to_owned(),
        "inject=clone,clone3:error=EAGAIN".to_owned(),
    ];
    let mut cmd = command(Mode::Foreground, &scratch, &injection);
    let mut child = Guard::spawn(cmd.stdin(Stdio::null()).stderr(Stdio::piped()));
    wait_for_socket(&socket, GUARD);
    let null = open_rw("/dev/null");
    let mut conn = pr_helper::Connection::connect(&socket, Some(Duration::from_secs(10))).unwrap();
    for _ in 0..3 {
        let reply = conn
            .request(&pr_in(0, 24), std::os::fd::AsFd::as_fd(&null), &[])
            .unwrap();
        assert_eq!(reply.status(), 2);
    }
    drop(conn);
    let pid: u32 = std::fs::read_to_string(scratch.path("pr.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    signal(pid, 15);
    let status = wait_timeout(&mut child.0, GUARD).expect("no exit");
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(leftovers(&scratch).is_empty(), "{:?}", leftovers(&scratch));
}

/// The processes strace traces, in order of descent: the daemon, and with `-d` its child.
fn traced_pids(strace_pid: u32) -> Vec<u32> {
    let mut pids = Vec::new();
    let mut frontier = vec![strace_pid];
    while let Some(pid) = frontier.pop() {
        let Ok(children) = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        else {
            continue;
        };
        for child in children.split_whitespace().filter_map(|c| c.parse().ok()) {
            pids.push(child);
            frontier.push(child);
        }
    }
    pids
}

/// The system call number of a step strace holds (x86_64 and the other 64-bit ABIs libc
/// knows: the number /proc/PID/syscall shows).
fn syscall_number(name: &str) -> i64 {
    match name {
        "socket" => libc::SYS_socket,
        "renameat" => libc::SYS_renameat,
        "seccomp" => libc::SYS_seccomp,
        "capset" => libc::SYS_capset,
        _ => panic!("no system call number for {name}"),
    }
}

/// One look at a process, taken while it did not run: its state, the system call it is in
/// (/proc/PID/syscall: the number, its arguments, stack and instruction pointers), its
/// context switches (unchanged while a process stays stopped: a process that ran, even to
/// stop again, switched at least once) and its pending signals (own and shared).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Look {
    state: char,
    syscall: String,
    switches: (u64, u64),
    pending: u64,
}

impl Look {
    /// Status, syscall, status again: `None` unless both statuses say the same state and the
    /// same switches, so the syscall line read between them is of that same moment.
    fn take(pid: u32) -> Option<Look> {
        let status = |pid: u32| -> Option<(char, (u64, u64), u64)> {
            let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::trim)
                    .map(str::to_owned)
            };
            let state = field("State:")?.chars().next()?;
            let voluntary = field("voluntary_ctxt_switches:")?.parse().ok()?;
            let forced = field("nonvoluntary_ctxt_switches:")?.parse().ok()?;
            let mask = |name| u64::from_str_radix(&field(name)?, 16).ok();
            let pending = mask("SigPnd:")? | mask("ShdPnd:")?;
            Some((state, (voluntary, forced), pending))
        };
        let (state, switches, _) = status(pid)?;
        let syscall = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
        let (state2, switches2, pending) = status(pid)?;
        (state == state2 && switches == switches2).then(|| Look {
            state,
            syscall: syscall.trim().to_owned(),
            switches,
            pending,
        })
    }

    /// Stopped by its tracer at the entry of system call `nr`: where strace's `delay_enter`
    /// holds it.
    fn held_at(&self, nr: i64) -> bool {
        self.state == 't'
            && self
                .syscall
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<i64>().ok())
                == Some(nr)
    }
}

/// A termination signal while start-up is held at a step (strace delays the call): the
/// daemon stops cleanly, exit status 0, nothing left, no process left.
///
/// The signal is sent once /proc shows the process stopped at the entry of the delayed
/// call, and the case fails unless a second look after the signal shows that same stop
/// (same call, arguments and pointers, no context switch in between) with, when that
/// process was the one signalled, the signal pending: it landed at the step, not before or
/// after it, however loaded the machine.
#[test]
fn a_termination_signal_at_any_moment_of_start_up_ends_cleanly() {
    require_root("strace's injection and the privilege drop need root");
    ensure_strace();
    // (step held, mode, the process held there and the one that gets the signal: 0 the
    // first, 1 the daemonized child)
    let cases: &[(&str, Mode, usize, usize)] = &[
        ("socket", F, 0, 0),
        ("renameat", F, 0, 0),
        ("seccomp", F, 0, 0),
        ("socket", D, 0, 0),
        ("renameat", D, 1, 1),
        ("seccomp", D, 1, 1),
        // -d's hand-over: the parent waits while the child is held before its sandbox.
        ("seccomp", D, 1, 0),
        ("capset", A, 0, 0),
    ];
    let mut failures = Vec::new();
    for &(held, mode, holder, target) in cases {
        let nr = syscall_number(held);
        for sig in [15, 2, 1] {
            let scratch = Scratch::new("fault-signal");
            let injection = vec!["-e".to_owned(), format!("inject={held}:delay_enter=700000")];
            let mut cmd = command(mode, &scratch, &injection);
            let mut child = Guard::spawn(
                cmd.stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped()),
            );
            let _trigger = activate(mode, &scratch);
            let what = format!(
                "signal {sig} to process {target} while process {holder} is held at {held} \
                 ({mode:?})"
            );
            // Activated: systemd-socket-activate became strace, whose child became the daemon.
            let strace_pid = child.id();
            // Wait until the holder is stopped at the entry of the delayed call.
            let begin = Instant::now();
            let held_now = loop {
                let pids = traced_pids(strace_pid);
                if let (Some(&h), Some(&t)) = (pids.get(holder), pids.get(target)) {
                    if let Some(look) = Look::take(h).filter(|l| l.held_at(nr)) {
                        break Some((h, t, look));
                    }
                }
                if begin.elapsed() > GUARD {
                    break None;
                }
                std::thread::sleep(Duration::from_millis(2));
            };
            let Some((holder_pid, target_pid, before)) = held_now else {
                failures.push(format!(
                    "{what}: never held there (processes {:?})",
                    traced_pids(strace_pid)
                ));
                continue;
            };
            signal(target_pid, sig);
            // The same stop after the signal: it landed while the call was held.
            let after = Look::take(holder_pid);
            let bit = 1u64 << (sig - 1);
            let landed = after.as_ref().is_some_and(|a| {
                a.held_at(nr)
                    && a.syscall == before.syscall
                    && a.switches == before.switches
                    && (holder_pid != target_pid || a.pending & bit != 0)
            });
            if !landed {
                failures.push(format!(
                    "{what}: the signal did not land at the step: before it {before:?}, \
                     after it {after:?}"
                ));
            }
            let Some(status) = wait_timeout(&mut child.0, GUARD) else {
                failures.push(format!("{what}: still running"));
                continue;
            };
            let mut left = leftovers(&scratch);
            if mode == Mode::Activated {
                left.retain(|n| n != "pr.sock");
            }
            if status.code() != Some(0) || !left.is_empty() {
                let mut err = String::new();
                if let Some(mut e) = child.0.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                failures.push(format!("{what}: {status:?}, left {left:?}, stderr {err:?}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
