//! Shared test plumbing: scratch directories, starting our binary (under an applet name) or
//! the C helper, and raw protocol moves for the cases the client library refuses to make.
#![allow(dead_code)]

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

pub const C_HELPER: &str = "/usr/bin/qemu-pr-helper";

/// Our binary: `$PR_HELPER_BIN` when set (the static musl build, which is what ships; the test
/// command runs the integration suites once more against it), else the one cargo built.
pub fn binary() -> PathBuf {
    match std::env::var_os("PR_HELPER_BIN") {
        Some(path) if !path.is_empty() => {
            let path = PathBuf::from(path);
            assert!(
                path.is_absolute() && path.is_file(),
                "PR_HELPER_BIN={} is not an absolute path to a binary",
                path.display()
            );
            path
        }
        _ => PathBuf::from(env!("CARGO_BIN_EXE_pr-helper")),
    }
}

/// A fresh directory under /tmp, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "prh-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Our binary linked under `name` in `dir` (argv[0] dispatch).
pub fn applet_link(dir: &Path, name: &str) -> PathBuf {
    let link = dir.join(name);
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(binary(), &link).unwrap();
    link
}

/// Which helper a test runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Impl {
    Ours,
    C,
}

/// A running helper, stopped with SIGTERM on drop.
pub struct Helper {
    pub child: Child,
    pub socket: PathBuf,
    pub scratch: Scratch,
}

impl Helper {
    /// Starts `which` on a socket in a scratch directory, with extra arguments, and waits until
    /// the socket accepts.
    pub fn start(which: Impl, extra: &[&str]) -> Helper {
        Self::start_with_env(which, extra, &[])
    }

    /// [`Helper::start`] with extra environment variables.
    pub fn start_with_env(which: Impl, extra: &[&str], env: &[(&str, &str)]) -> Helper {
        let scratch = Scratch::new(match which {
            Impl::Ours => "ours",
            Impl::C => "c",
        });
        let socket = scratch.path("pr.sock");
        let program = match which {
            Impl::Ours => applet_link(&scratch.0, "qemu-pr-helper"),
            Impl::C => PathBuf::from(C_HELPER),
        };
        let child = Command::new(program)
            .arg("-k")
            .arg(&socket)
            .args(extra)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for_socket(&socket, Duration::from_secs(10));
        Helper {
            child,
            socket,
            scratch,
        }
    }

    /// Sends SIGTERM and collects exit status and stderr.
    pub fn stop(mut self) -> (std::process::ExitStatus, String) {
        signal(self.child.id(), libc_sigterm());
        let status = wait_timeout(&mut self.child, Duration::from_secs(10))
            .expect("helper did not exit on SIGTERM");
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        (status, err)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn libc_sigterm() -> i32 {
    15
}

/// Sends signal number `sig` (1 HUP, 2 INT, 15 TERM, 18 CONT, 19 STOP) to `pid`.
pub fn signal(pid: u32, sig: i32) {
    let signal = match sig {
        1 => rustix::process::Signal::HUP,
        2 => rustix::process::Signal::INT,
        18 => rustix::process::Signal::CONT,
        19 => rustix::process::Signal::STOP,
        _ => rustix::process::Signal::TERM,
    };
    let pid = rustix::process::Pid::from_raw(pid as i32).expect("pid 0");
    let _ = rustix::process::kill_process(pid, signal);
}

pub fn wait_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Polls `condition` until it holds (true) or `limit` has passed (false).
pub fn wait_until(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if condition() {
            return true;
        }
        if start.elapsed() >= limit {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The live (not zombie) children of `parent`, read from /proc (no procps on a minimal
/// Debian).
pub fn children_of(parent: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let after = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or("");
        let mut fields = after.split_whitespace();
        let state = fields.next().unwrap_or("");
        if fields.next() == Some(&parent.to_string()) && state != "Z" {
            out.push(pid);
        }
    }
    out
}

pub fn wait_for_socket(path: &Path, limit: Duration) {
    let accepts = || path.exists() && std::os::unix::net::UnixStream::connect(path).is_ok();
    assert!(
        wait_until(limit, accepts),
        "socket {} never accepted",
        path.display()
    );
}

/// A connected raw socket with a receive timeout, before negotiation.
pub fn raw_connect(path: &Path) -> OwnedFd {
    pr_helper::connect_unix(path, Some(Duration::from_secs(5))).unwrap()
}

/// Sends bytes, with these fds attached (any number, including none).
pub fn send_fds(sock: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(4))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        assert!(control.push(SendAncillaryMessage::ScmRights(fds)));
    }
    let n = rustix::net::sendmsg(
        sock,
        &[IoSlice::new(bytes)],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .unwrap();
    assert_eq!(n, bytes.len());
}

pub fn send(sock: BorrowedFd<'_>, bytes: &[u8]) {
    pr_helper::write_all(sock, bytes).unwrap();
}

/// What happens next on a socket: bytes up to `want`, or EOF, or nothing within `wait`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    Bytes(Vec<u8>),
    Closed(Vec<u8>),
    Silent(Vec<u8>),
}

pub fn read_next(sock: BorrowedFd<'_>, want: usize, wait: Duration) -> Next {
    rustix::net::sockopt::set_socket_timeout(sock, rustix::net::sockopt::Timeout::Recv, Some(wait))
        .unwrap();
    let mut buf = vec![0u8; want];
    let mut got = 0;
    while got < want {
        match rustix::io::read(sock, &mut buf[got..]) {
            Ok(0) => {
                buf.truncate(got);
                return Next::Closed(buf);
            }
            Ok(n) => got += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(rustix::io::Errno::AGAIN) => {
                buf.truncate(got);
                return Next::Silent(buf);
            }
            Err(rustix::io::Errno::CONNRESET) => {
                buf.truncate(got);
                return Next::Closed(buf);
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    Next::Bytes(buf)
}

/// A CDB of PR IN (`sa`) with allocation length `len`.
pub fn pr_in(sa: u8, len: u16) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x5e;
    c[1] = sa;
    c[7..9].copy_from_slice(&len.to_be_bytes());
    c
}

/// A CDB of PR OUT (`sa`, type) whose transfer length (bytes 7..8) is `len`.
pub fn pr_out(sa: u8, prtype: u8, len: u16) -> [u8; 16] {
    let mut c = [0u8; 16];
    c[0] = 0x5f;
    c[1] = sa;
    c[2] = prtype;
    c[7..9].copy_from_slice(&len.to_be_bytes());
    c
}

pub fn open_rw(path: &str) -> OwnedFd {
    rustix::fs::open(
        path,
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .unwrap()
}

pub fn open_ro(path: &str) -> OwnedFd {
    rustix::fs::open(
        path,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .unwrap()
}

pub fn as_fd(fd: &OwnedFd) -> BorrowedFd<'_> {
    fd.as_fd()
}

/// A child process killed on drop, so a failing test leaves no daemon behind (one would hold
/// the test runner's output pipe open).
pub struct Guard(pub Child);

impl Guard {
    pub fn spawn(cmd: &mut Command) -> Guard {
        Guard(cmd.spawn().unwrap())
    }
    pub fn id(&self) -> u32 {
        self.0.id()
    }
    /// SIGTERM, then the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        signal(self.0.id(), 15);
        wait_timeout(&mut self.0, Duration::from_secs(10)).expect("no exit after SIGTERM")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Fails the test unless it runs as root (effective uid 0, from /proc/self/status): the
/// tests that need root say why instead of skipping.
pub fn require_root(why: &str) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("?")
        .to_owned();
    assert_eq!(euid, "0", "{why}");
}
