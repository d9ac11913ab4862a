//! `qemu-pr-helper-activated` under `systemd-socket-activate`: Accept=no and Accept=yes,
//! sd_notify messages, the idle timeout, and the refusals.

mod common;

use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use pr_helper::Connection;

const TIMEOUT: Option<Duration> = Some(Duration::from_secs(5));

fn serve_once(socket: &Path) -> Connection {
    let mut conn = Connection::connect(socket, TIMEOUT).unwrap();
    let reply = conn
        .request(&pr_in(0, 24), open_rw("/dev/null").as_fd(), &[])
        .unwrap();
    assert_eq!(reply.status(), 2);
    assert_eq!(reply.header.sense[2], 0x0b);
    conn
}

fn gone(pid: u32, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if !Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|s| s.contains(") Z "))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

/// Hang guard of the waits on a condition: only a helper that never gets there reaches it.
const GUARD: Duration = Duration::from_secs(30);

/// A datagram socket standing in for systemd's notification socket.
struct NotifySocket {
    sock: std::os::unix::net::UnixDatagram,
    path: std::path::PathBuf,
}

impl NotifySocket {
    fn new(scratch: &Scratch) -> NotifySocket {
        let path = scratch.path("notify");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        NotifySocket { sock, path }
    }
    /// The messages received until one satisfies `want` (that one last); fails at the hang
    /// guard, with what came, if none does.
    fn until(&self, want: impl Fn(&str) -> bool) -> Vec<String> {
        let start = Instant::now();
        let mut out = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            let left = GUARD.saturating_sub(start.elapsed());
            assert!(!left.is_zero(), "no such notification: {out:?}");
            self.sock.set_read_timeout(Some(left)).unwrap();
            if let Ok(n) = self.sock.recv(&mut buf) {
                out.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                if want(out.last().unwrap()) {
                    return out;
                }
            }
        }
    }
}

fn activate(
    scratch: &Scratch,
    extra_activate: &[&str],
    helper_args: &[&str],
    notify: Option<&Path>,
) -> (Guard, std::path::PathBuf) {
    let program = applet_link(&scratch.0, "qemu-pr-helper-activated");
    let socket = scratch.path("act.sock");
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.arg("-l").arg(&socket).args(extra_activate);
    if let Some(n) = notify {
        cmd.arg("-E").arg(format!("NOTIFY_SOCKET={}", n.display()));
    }
    cmd.arg(&program).args(helper_args).stderr(Stdio::null());
    let guard = Guard::spawn(&mut cmd);
    wait_for_socket(&socket, Duration::from_secs(10));
    (guard, socket)
}

#[test]
fn listening_socket_is_served_with_notifications() {
    let scratch = Scratch::new("act-listen");
    let notify = NotifySocket::new(&scratch);
    let (mut guard, socket) = activate(&scratch, &[], &[], Some(&notify.path));
    let _first = serve_once(&socket);
    // READY=1 was sent before the first reply: the first message.
    let messages = notify.until(|m| m == "READY=1");
    assert_eq!(messages, ["READY=1"]);
    for _ in 0..5 {
        serve_once(&socket);
    }
    // STATUS= follows the counters (at most once a second): it comes to say all six.
    notify.until(|m| m.starts_with("STATUS=") && m.ends_with(" and 6 requests so far"));
    signal(guard.id(), 15);
    notify.until(|m| m == "STOPPING=1");
    let status = wait_timeout(&mut guard.0, GUARD).expect("no exit after SIGTERM");
    assert!(status.success(), "{status}");
    assert!(socket.exists(), "systemd's socket path must stay");
}

#[test]
fn accept_yes_serves_one_connection_per_process() {
    let scratch = Scratch::new("act-accept");
    let (guard, socket) = activate(&scratch, &["--accept"], &[], None);
    let mut pids = Vec::new();
    for _ in 0..3 {
        let mut conn = serve_once(&socket);
        // SO_PEERCRED names the listener's owner (systemd-socket-activate): find its child.
        // (wait_for_socket's probe connection had an instance too, which exits on its own.)
        let start = Instant::now();
        let mut children = children_of(guard.id());
        while children.len() != 1 && start.elapsed() < GUARD {
            std::thread::sleep(Duration::from_millis(10));
            children = children_of(guard.id());
        }
        assert_eq!(
            children.len(),
            1,
            "one instance per connection: {children:?}"
        );
        let pid = children[0];
        // The instance keeps serving its connection until the client closes it.
        let reply = conn
            .request(&pr_in(1, 8), open_rw("/dev/null").as_fd(), &[])
            .unwrap();
        assert_eq!(reply.status(), 2);
        drop(conn);
        assert!(
            gone(pid, GUARD),
            "instance {pid} did not exit after its connection"
        );
        pids.push(pid);
    }
    pids.dedup();
    assert_eq!(pids.len(), 3, "each connection had its own process");
}

/// The idle timeout ends the helper (its trace says why), cleanly, and not before a second
/// without a connection; how long after is the machine's business (a hang guard only).
#[test]
fn idle_timeout_exits_cleanly() {
    let scratch = Scratch::new("act-idle");
    let trace = scratch.path("trace");
    let trace_opt = format!("pr_helper_shutdown,file={}", trace.display());
    let (mut guard, socket) = activate(
        &scratch,
        &[],
        &["--idle-timeout", "1", "-T", &trace_opt],
        None,
    );
    let start = Instant::now();
    drop(serve_once(&socket));
    let status = wait_timeout(&mut guard.0, GUARD).expect("no exit on idle timeout");
    let took = start.elapsed();
    assert!(status.success(), "{status}");
    let trace = std::fs::read_to_string(&trace).unwrap();
    assert!(
        trace.lines().count() == 1 && trace.contains(":pr_helper_shutdown idle timeout"),
        "{trace:?}"
    );
    // The last connection closed after `start`: a second of idleness comes after it.
    assert!(took >= Duration::from_secs(1), "exited after {took:?}");
}

#[test]
fn refuses_to_run_without_activation_or_with_daemon_options() {
    let scratch = Scratch::new("act-refuse");
    let program = applet_link(&scratch.0, "qemu-pr-helper-activated");
    let out = Command::new(&program)
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("qemu-pr-helper-activated: not started by socket activation"),
        "{err}"
    );
    assert!(err.contains(".socket unit"), "{err}");
    for args in [&["-k", "/tmp/x.sock"][..], &["-d"], &["--pidfile=/tmp/p"]] {
        let out = Command::new(&program).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("systemd owns the socket"),
            "{args:?}"
        );
    }
    let help = Command::new(&program).arg("--help").output().unwrap();
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("--idle-timeout"));
    let via_multicall = Command::new(binary())
        .args(["qemu-pr-helper-activated", "-V"])
        .output()
        .unwrap();
    assert_eq!(via_multicall.status.code(), Some(0));
}
