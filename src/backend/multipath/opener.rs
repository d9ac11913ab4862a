//! The path opener: privilege separation for a map's paths when the daemon runs as another
//! user (`-u`/`-g`).
//!
//! A path's node (`/dev/sdX`, root:disk 0660 on a host, 0600 in an initramfs) refuses the
//! unprivileged user, and the daemon opens paths on demand, long after it dropped to that
//! user. So the daemon forks, before the drop, a small process that keeps CAP_SYS_ADMIN (to
//! read the map's table from device-mapper) and CAP_DAC_READ_SEARCH (to open a node
//! read-only whatever its mode), runs as the same user under a seccomp filter of its own
//! ([`crate::daemon::sandbox::opener`]) and serves one kind of request over a
//! `SOCK_SEQPACKET` socketpair: "open path MAJ:MIN of map MAJ:MIN".
//!
//! * A request is [`OpenRequest`] (20 bytes) with two descriptors (SCM_RIGHTS): the map's
//!   descriptor the client passed the daemon, and one end of a socketpair the daemon made
//!   for the reply, so requests from many worker threads are answered side by side and each
//!   reply reaches the thread that asked.
//! * The opener takes no path names from the daemon. It checks ([`check_and_open`]) that the
//!   map descriptor is that block device, that device-mapper's table of it is one multipath
//!   target of a map multipathd made (`mpath-` uuid), and that the path is in the table; it
//!   finds the node's name in `/sys/dev/block/MAJ:MIN`, opens `/dev/NAME` read-only and
//!   checks with `fstat` that it is that device number.
//! * The reply is an errno (0: the descriptor comes with it) and a message for the daemon's
//!   log.
//! * Paths are opened on demand, so a path that comes back (or a new one multipathd puts in
//!   the table) is usable at once. Nodes are opened with O_NONBLOCK (the daemon clears it on
//!   the descriptor it gets), and the daemon waits [`ANSWER_TIMEOUT`] at most for an answer:
//!   a path whose open hangs fails that request, and holds no worker for longer.
//! * The opener ends with the daemon, not before: termination signals stay blocked in it
//!   (a SIGTERM to the whole service leaves it serving the daemon's requests in flight), and
//!   it ends on EOF on its socket when the daemon exits, or with PR_SET_PDEATHSIG. An opener
//!   that died anyway cannot be started again (the daemon, dropped to its user with an empty
//!   bounding set, cannot give a new one CAP_DAC_READ_SEARCH): a standby forked beside it at
//!   start-up takes over ([`Openers`]); once that one has died too, each request fails at
//!   once with "the path opener has exited". The kernel reaps them (SIGCHLD ignored).

use std::io::{self, IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketFlags, SocketType,
};

use super::table::{self, DevNum};
use crate::errors::strerror;

const MAGIC: [u8; 4] = *b"PRO1";
/// Bytes of a request on the wire.
pub const REQUEST_LEN: usize = 20;
/// Longest reply: errno and message.
const MAX_REPLY: usize = 512;
/// Requests served at once, each on its own thread; more wait for one to end.
const MAX_THREADS: usize = 32;
/// The refusal of anything but a request with its two descriptors.
const MALFORMED: &str = "malformed request";
/// How long an opener that ended a request without answering has to close its socket too,
/// for the daemon to count it as exited and turn to the standby.
const EXIT_GRACE: Duration = Duration::from_millis(500);
/// How long the daemon waits for the opener to take a request, and then for its answer.
pub const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// "Open path `path` of map `map`".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenRequest {
    pub map: DevNum,
    pub path: DevNum,
}

impl OpenRequest {
    /// The wire form: magic, then the four numbers (native byte order: both ends are one
    /// binary on one machine).
    pub fn encode(&self) -> [u8; REQUEST_LEN] {
        let mut b = [0u8; REQUEST_LEN];
        b[..4].copy_from_slice(&MAGIC);
        let numbers = [self.map, self.path].map(|d| [d.major, d.minor]);
        for (word, n) in b[4..].chunks_exact_mut(4).zip(numbers.as_flattened()) {
            word.copy_from_slice(&n.to_ne_bytes());
        }
        b
    }

    /// A request of exactly [`REQUEST_LEN`] bytes with the magic.
    pub fn decode(b: &[u8]) -> Option<OpenRequest> {
        if b.len() != REQUEST_LEN || b[..4] != MAGIC {
            return None;
        }
        let n = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let dev = |i: usize| DevNum {
            major: n(i),
            minor: n(i + 4),
        };
        Some(OpenRequest {
            map: dev(4),
            path: dev(12),
        })
    }
}

/// Why a path was not opened: an errno and a message for the daemon's log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub errno: i32,
    pub message: String,
}

fn refuse(errno: i32, message: impl Into<String>) -> Refusal {
    Refusal {
        errno,
        message: message.into(),
    }
}

/// `Ok` when `ok`, else the refusal with `errno` and the message `message` makes.
fn check(ok: bool, errno: i32, message: impl FnOnce() -> String) -> Result<(), Refusal> {
    if ok {
        Ok(())
    } else {
        Err(refuse(errno, message()))
    }
}

/// A refusal with the errno of `e` (EIO without one) and `what` before its description.
fn refuse_io(what: &str, e: &io::Error) -> Refusal {
    let errno = e.raw_os_error().unwrap_or(libc::EIO);
    refuse(errno, format!("{what}: {}", strerror(e)))
}

fn encode_reply(result: &Result<(), Refusal>) -> Vec<u8> {
    match result {
        Ok(()) => 0i32.to_ne_bytes().to_vec(),
        Err(r) => {
            let mut b = r.errno.max(1).to_ne_bytes().to_vec();
            let msg = r.message.as_bytes();
            b.extend_from_slice(&msg[..msg.len().min(MAX_REPLY - 4)]);
            b
        }
    }
}

fn decode_reply(b: &[u8]) -> Result<(), Refusal> {
    let head = b
        .get(..4)
        .ok_or_else(|| refuse(libc::EPROTO, "the path opener's answer is too short"))?;
    match i32::from_ne_bytes([head[0], head[1], head[2], head[3]]) {
        0 => Ok(()),
        errno => Err(refuse(errno, String::from_utf8_lossy(&b[4..]).into_owned())),
    }
}

/// What the opener asks of the kernel, so its checks can be tested with fakes.
pub trait System {
    /// The device number of a block device descriptor; `None` for anything else.
    fn block_rdev(&self, fd: BorrowedFd<'_>) -> Option<DevNum>;
    /// The map's dm uuid and its table's targets (type, parameters).
    ///
    /// # Errors
    /// The device-mapper ioctl's.
    fn table(&self, map: DevNum) -> io::Result<(String, Vec<(String, String)>)>;
    /// The kernel name of a block device, from `/sys/dev/block/MAJ:MIN`.
    fn kernel_name(&self, dev: DevNum) -> Option<String>;
    /// Opens a node read-only and close-on-exec.
    ///
    /// # Errors
    /// The open's.
    fn open_read_only(&self, node: &str) -> io::Result<OwnedFd>;
}

/// The kernel.
pub struct RealSystem;

impl System for RealSystem {
    fn block_rdev(&self, fd: BorrowedFd<'_>) -> Option<DevNum> {
        super::block_dev_num(&crate::backend::BlockDevice::of(fd))
    }

    fn table(&self, map: DevNum) -> io::Result<(String, Vec<(String, String)>)> {
        let (info, targets) = crate::sys::dm::table_status(map.major, map.minor, true)?;
        let targets = targets.into_iter().map(|t| (t.target_type, t.params));
        Ok((info.uuid, targets.collect()))
    }

    fn kernel_name(&self, dev: DevNum) -> Option<String> {
        let link =
            rustix::fs::readlinkat(rustix::fs::CWD, format!("/sys/dev/block/{dev}"), Vec::new())
                .ok()?;
        super::parse_sysfs_link(&link.to_string_lossy()).0
    }

    fn open_read_only(&self, node: &str) -> io::Result<OwnedFd> {
        open_path_node(node).map_err(Into::into)
    }
}

/// Opens a path's node read-only, close-on-exec and with O_NONBLOCK, so that the open does
/// not wait where a device lets it not wait; whoever uses the descriptor clears O_NONBLOCK
/// ([`clear_nonblock`]).
///
/// # Errors
/// The open's.
pub fn open_path_node(node: &str) -> rustix::io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK;
    rustix::fs::open(node, flags, Mode::empty())
}

/// Clears O_NONBLOCK on a descriptor [`open_path_node`] opened (SG_IO waits for the device
/// whatever the flag says; the path's descriptor is then as libmpathpersist opens it).
///
/// # Errors
/// fcntl's.
pub fn clear_nonblock(fd: BorrowedFd<'_>) -> rustix::io::Result<()> {
    let flags = rustix::fs::fcntl_getfl(fd)?;
    if flags.contains(OFlags::NONBLOCK) {
        rustix::fs::fcntl_setfl(fd, flags - OFlags::NONBLOCK)?;
    }
    Ok(())
}

/// The opener's checks, then the open: `map_fd` must be block device `req.map`, a map
/// multipathd made with one multipath target whose table lists `req.path`; the node named
/// for `req.path` in sysfs is opened read-only and must be that device.
///
/// # Errors
/// What failed, as the daemon logs it.
pub fn check_and_open(
    sys: &impl System,
    req: OpenRequest,
    map_fd: BorrowedFd<'_>,
) -> Result<OwnedFd, Refusal> {
    let (map, path) = (req.map, req.path);
    check(sys.block_rdev(map_fd) == Some(map), libc::EBADF, || {
        format!("the descriptor passed with the request is not block device {map}")
    })?;
    let (uuid, targets) = sys
        .table(map)
        .map_err(|e| refuse_io(&format!("map {map}: cannot read its table"), &e))?;
    check(uuid.starts_with(super::UUID_PREFIX), libc::EPERM, || {
        format!("{map} is not a map multipathd made (uuid '{uuid}')")
    })?;
    let [(target_type, params)] = targets.as_slice() else {
        let message = format!("map {map} has {} targets", targets.len());
        return Err(refuse(libc::EPERM, message));
    };
    check(target_type == "multipath", libc::EPERM, || {
        format!("map {map} is not dm-multipath ({target_type})")
    })?;
    let parsed = table::parse_table(params)
        .map_err(|e| refuse(libc::EPERM, format!("map {map}: table not understood: {e}")))?;
    check(
        parsed.paths.iter().any(|p| p.dev == path),
        libc::EPERM,
        || format!("{path} is not a path of map {map}"),
    )?;
    let name = sys.kernel_name(path).ok_or_else(|| {
        refuse(
            libc::ENOENT,
            format!("no kernel name in /sys/dev/block/{path}"),
        )
    })?;
    let plain = !(name.is_empty() || name.contains('/') || name.starts_with('.'));
    check(plain, libc::EINVAL, || {
        format!("/sys/dev/block/{path} names '{name}'")
    })?;
    let node = format!("/dev/{name}");
    let fd = sys
        .open_read_only(&node)
        .map_err(|e| refuse_io(&format!("cannot open {node}"), &e))?;
    check(
        sys.block_rdev(fd.as_fd()) == Some(path),
        libc::ENXIO,
        || format!("{node} is another device"),
    )?;
    Ok(fd)
}

/// One message from the daemon.
enum Incoming {
    /// The daemon closed its end (or died).
    Eof,
    /// A request with the descriptors that came with it (anything but a well-formed request
    /// with two descriptors is answered with EINVAL when it brought a reply socket, else
    /// dropped).
    Request {
        req: Option<OpenRequest>,
        fds: Vec<OwnedFd>,
    },
}

/// A `SOCK_SEQPACKET` socketpair: the opener's socket, and each request's reply socket.
fn seqpacket_pair() -> rustix::io::Result<(OwnedFd, OwnedFd)> {
    let (family, kind) = (AddressFamily::UNIX, SocketType::SEQPACKET);
    rustix::net::socketpair(family, kind, SocketFlags::CLOEXEC, None)
}

/// Sends one message with descriptors `fds` (SCM_RIGHTS, two at most), again after EINTR.
fn send_with_fds(
    sock: BorrowedFd<'_>,
    bytes: &[u8],
    fds: &[BorrowedFd<'_>],
) -> rustix::io::Result<()> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        control.push(SendAncillaryMessage::ScmRights(fds));
    }
    let iov = [IoSlice::new(bytes)];
    loop {
        match rustix::net::sendmsg(sock, &iov, &mut control, SendFlags::NOSIGNAL) {
            Err(Errno::INTR) => continue,
            sent => return sent.map(drop),
        }
    }
}

/// Receives one message into `buf`, again after EINTR: its length, whether it or its
/// descriptors were cut short, and the descriptors that came with it (two at most).
fn recv_with_fds(
    sock: BorrowedFd<'_>,
    buf: &mut [u8],
) -> rustix::io::Result<(usize, bool, Vec<OwnedFd>)> {
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(2))];
    loop {
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(buf)];
        let received =
            match rustix::net::recvmsg(sock, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC) {
                Ok(r) => r,
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e),
            };
        let mut fds = Vec::new();
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(received_fds) = message {
                fds.extend(received_fds);
            }
        }
        let clipped = received
            .flags
            .intersects(ReturnFlags::TRUNC | ReturnFlags::CTRUNC);
        return Ok((received.bytes, clipped, fds));
    }
}

fn receive(sock: BorrowedFd<'_>) -> io::Result<Incoming> {
    let mut buf = [0u8; REQUEST_LEN + 1];
    let (bytes, clipped, fds) = recv_with_fds(sock, &mut buf)?;
    if bytes == 0 && fds.is_empty() {
        return Ok(Incoming::Eof);
    }
    let req = OpenRequest::decode(&buf[..bytes]).filter(|_| !clipped);
    Ok(Incoming::Request { req, fds })
}

fn send_reply(reply_sock: BorrowedFd<'_>, result: Result<OwnedFd, Refusal>) {
    let (bytes, fd) = match result {
        Ok(fd) => (encode_reply(&Ok(())), Some(fd)),
        Err(r) => (encode_reply(&Err(r)), None),
    };
    let fds = fd.as_ref().map(|fd| fd.as_fd());
    // An error: the daemon's thread gone, nothing to tell.
    let _ = send_with_fds(reply_sock, &bytes, fds.as_slice());
}

fn handle(sys: &impl System, req: Option<OpenRequest>, map_fd: OwnedFd, reply_sock: OwnedFd) {
    let result = match req {
        Some(req) => check_and_open(sys, req, map_fd.as_fd()),
        None => Err(refuse(libc::EINVAL, MALFORMED)),
    };
    send_reply(reply_sock.as_fd(), result);
}

/// Serves requests on `sock` until the daemon closes its end; each on its own thread (at
/// most [`MAX_THREADS`] at once, then on this one), so a path whose open waits (a SCSI host
/// in error recovery) does not hold the others.
pub fn serve<S: System + Sync>(sock: BorrowedFd<'_>, sys: &S) {
    let running = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        loop {
            let Ok(Incoming::Request { req, fds }) = receive(sock) else {
                return;
            };
            let [map_fd, reply_sock] = match <[OwnedFd; 2]>::try_from(fds) {
                Ok(pair) => pair,
                Err(fds) => {
                    handle_malformed(fds);
                    continue;
                }
            };
            if running.load(Ordering::Acquire) < MAX_THREADS {
                running.fetch_add(1, Ordering::AcqRel);
                let running = &running;
                let work = move || {
                    handle(sys, req, map_fd, reply_sock);
                    running.fetch_sub(1, Ordering::AcqRel);
                };
                let spawned = std::thread::Builder::new().spawn_scoped(scope, work);
                if spawned.is_err() {
                    // The closure is gone with the error; its descriptors closed: the
                    // daemon's thread sees EOF and reports the path as not opened.
                    running.fetch_sub(1, Ordering::AcqRel);
                }
            } else {
                handle(sys, req, map_fd, reply_sock);
            }
        }
    });
}

/// Anything but two descriptors: EINVAL on the last one (the reply socket, if it is one).
fn handle_malformed(mut fds: Vec<OwnedFd>) {
    if let Some(reply) = fds.pop() {
        send_reply(reply.as_fd(), Err(refuse(libc::EINVAL, MALFORMED)));
    }
}

/// What the opener needs of the sandbox beyond its short base list (recvmsg, sendmsg,
/// readlinkat, fstat, threads and memory: `sys/seccomp.rs`): device-mapper's table ioctl,
/// and read-only opens of /sys and the path nodes in /dev. No socket, connect, SG_IO or
/// write.
pub fn sandbox_needs() -> crate::daemon::sandbox::Needs {
    crate::daemon::sandbox::Needs {
        ioctls: vec![crate::sys::dm::DM_TABLE_STATUS],
        read: vec!["/dev".into(), "/sys".into()],
        ..Default::default()
    }
}

/// How the multipath backend gets a path's descriptor when the daemon cannot open the node
/// itself (`-u`/`-g`): handed to it at start-up in [`crate::backend::ExecOptions`], an
/// [`Opener`] process in the daemon, a fake in tests.
pub trait PathOpener: Send + Sync + std::fmt::Debug {
    /// Path `req.path` of the map behind `map_fd`, without O_NONBLOCK.
    ///
    /// # Errors
    /// Why it was not opened, for the daemon's log.
    fn open(&self, map_fd: BorrowedFd<'_>, req: OpenRequest) -> Result<OwnedFd, Refusal>;
}

impl PathOpener for Opener {
    fn open(&self, map_fd: BorrowedFd<'_>, req: OpenRequest) -> Result<OwnedFd, Refusal> {
        Opener::open(self, map_fd, req)
    }
}

/// The daemon's path openers: the one in use, then standbys forked beside it at start-up
/// (before the privilege drop, which leaves the daemon unable to give a new one
/// CAP_DAC_READ_SEARCH: so with the same limits), idle until the one before has exited. A
/// request whose opener has exited goes to the next one; once none is left it fails as a
/// lone opener's death does ("has exited ... until pr-helper is restarted").
#[derive(Debug)]
pub struct Openers {
    openers: Vec<Opener>,
    /// Index of the opener in use.
    current: AtomicUsize,
    /// With -v: the program name, to say when a standby takes over.
    log_as: Option<String>,
}

impl Openers {
    /// `openers` in the order they take over; `log_as`: the prefix of the -v line.
    pub fn new(openers: Vec<Opener>, log_as: Option<String>) -> Openers {
        Openers {
            openers,
            current: AtomicUsize::new(0),
            log_as,
        }
    }
}

impl PathOpener for Openers {
    fn open(&self, map_fd: BorrowedFd<'_>, req: OpenRequest) -> Result<OwnedFd, Refusal> {
        loop {
            let i = self.current.load(Ordering::Acquire);
            let Some(opener) = self.openers.get(i) else {
                return Err(refuse(libc::EPIPE, "no path opener"));
            };
            let result = opener.open(map_fd, req);
            let gone = matches!(&result, Err(r) if r.errno == libc::EPIPE) && opener.exited();
            let Some(next) = self.openers.get(i + 1).filter(|_| gone) else {
                return result;
            };
            // One thread says it; the others, which saw the same death, just move on.
            let moved =
                self.current
                    .compare_exchange(i, i + 1, Ordering::AcqRel, Ordering::Acquire);
            if let (Ok(_), Some(prog)) = (moved, &self.log_as) {
                crate::cli::argbytes::print_error(&format!(
                    "{prog}: {} has exited: its standby, {}, opens paths from now on\n",
                    opener.name(),
                    next.name()
                ));
            }
        }
    }
}

/// The daemon's end of the opener's socket.
#[derive(Debug)]
pub struct Opener {
    sock: OwnedFd,
    /// The opener's process id, for messages.
    pid: Option<i32>,
    timeout: Duration,
    /// Seen to have exited ([`Opener::exited`]).
    gone: AtomicBool,
}

impl Opener {
    /// Wraps the daemon's end of the socketpair, with the opener's pid (for messages) and the
    /// wait for each answer ([`ANSWER_TIMEOUT`] in the daemon).
    ///
    /// # Errors
    /// Setting the socket's send timeout (SO_SNDTIMEO) failed.
    pub fn new(sock: OwnedFd, pid: Option<i32>, timeout: Duration) -> io::Result<Opener> {
        use rustix::net::sockopt::{Timeout, set_socket_timeout};
        // A request waits this long at most for room in the opener's queue.
        set_socket_timeout(&sock, Timeout::Send, Some(timeout))?;
        // Nothing is ever received on it: a receive is the check that the opener has exited.
        set_socket_timeout(&sock, Timeout::Recv, Some(EXIT_GRACE))?;
        Ok(Opener {
            sock,
            pid,
            timeout,
            gone: AtomicBool::new(false),
        })
    }

    /// Whether the opener has exited: its end of the socket is closed (a peek finds EOF; it
    /// never sends on this socket, so nothing else is ever there to find). The peek waits
    /// [`EXIT_GRACE`] at most: a process killed mid-request may close a request's reply
    /// socket (a lower descriptor number) a moment before this one. Once seen, kept.
    fn exited(&self) -> bool {
        if self.gone.load(Ordering::Acquire) {
            return true;
        }
        let mut byte = [0u8; 1];
        let gone = match rustix::net::recv(&self.sock, &mut byte, RecvFlags::PEEK) {
            Ok((0, _)) => true,
            Ok(_) | Err(Errno::AGAIN | Errno::INTR) => false,
            Err(_) => true,
        };
        self.gone.store(gone, Ordering::Release);
        gone
    }

    /// "the path opener (pid N)".
    fn name(&self) -> String {
        match self.pid {
            Some(pid) => format!("the path opener (pid {pid})"),
            None => "the path opener".to_owned(),
        }
    }

    /// Asks the opener for path `req.path` of the map behind `map_fd`, waiting for its answer
    /// [`ANSWER_TIMEOUT`] at most. The descriptor comes without O_NONBLOCK.
    ///
    /// # Errors
    /// The opener's refusal, or why it could not be asked or did not answer: it has exited
    /// (EPIPE), or did not take the request or answer in time (ETIMEDOUT).
    pub fn open(&self, map_fd: BorrowedFd<'_>, req: OpenRequest) -> Result<OwnedFd, Refusal> {
        let secs = self.timeout.as_secs_f32();
        let failed = |e: Errno, waiting_for: &str| match e {
            Errno::PIPE | Errno::CONNRESET | Errno::NOTCONN => refuse(
                libc::EPIPE,
                format!(
                    "{} has exited: paths of multipath maps cannot be opened until \
                     pr-helper is restarted",
                    self.name()
                ),
            ),
            Errno::AGAIN => refuse(
                libc::ETIMEDOUT,
                format!(
                    "{} did not {waiting_for} within {secs} s (an open of path {} waits on \
                     the device?)",
                    self.name(),
                    req.path
                ),
            ),
            e => refuse_io(&format!("{} cannot be asked", self.name()), &e.into()),
        };
        let (mine, theirs) = seqpacket_pair().map_err(|e| failed(e, "take the request"))?;
        rustix::net::sockopt::set_socket_timeout(
            &mine,
            rustix::net::sockopt::Timeout::Recv,
            Some(self.timeout),
        )
        .map_err(|e| failed(e, "answer"))?;
        let fds = [map_fd, theirs.as_fd()];
        send_with_fds(self.sock.as_fd(), &req.encode(), &fds)
            .map_err(|e| failed(e, "take the request"))?;
        drop(theirs);
        let mut buf = [0u8; MAX_REPLY];
        let (bytes, _, fds) =
            recv_with_fds(mine.as_fd(), &mut buf).map_err(|e| failed(e, "answer"))?;
        if bytes == 0 {
            let message = format!("{} ended without answering", self.name());
            return Err(refuse(libc::EPIPE, message));
        }
        decode_reply(&buf[..bytes])?;
        let message = "the path opener answered without a descriptor";
        let fd = fds
            .into_iter()
            .next()
            .ok_or_else(|| refuse(libc::EPROTO, message))?;
        clear_nonblock(fd.as_fd()).map_err(|e| refuse_io("path descriptor", &e.into()))?;
        Ok(fd)
    }
}

#[cfg(test)]
mod tests;
