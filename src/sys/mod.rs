//! Every `unsafe` block of the project: the few kernel interfaces rustix does not wrap.
//!
//! rustix covers sockets, epoll, files and capabilities. What is left is the SG_IO ioctl
//! (its header carries raw pointers), the process-wide signal mask with signalfd, fork for
//! `--daemon` and the path opener, the capability bounding set past rustix's enum,
//! environment removal (unsafe since Rust 2024), adopting systemd's inherited socket,
//! closing what the path opener inherited and open file description locks (rustix's
//! `fcntl_lock` takes process-associated ones). Each wrapper is safe to call.
#![allow(unsafe_code)]

pub mod blkpr;
pub mod dm;
pub mod landlock;
pub mod pidfd;
pub mod seccomp;
pub mod sg;
pub mod signals;

use std::io;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};

/// An ioctl request as the kernel reads it (`unsigned int cmd`) and as the seccomp filter
/// compares it. rustix's `Opcode` is `u32` where it issues system calls itself (x86_64,
/// aarch64), but the C library's type where it goes through libc: `c_int` on musl, `c_ulong`
/// on glibc (powerpc64le, s390x); the request numbers fit 32 bits everywhere.
#[allow(clippy::unnecessary_cast)]
pub const fn ioctl_request(op: rustix::ioctl::Opcode) -> u32 {
    op as u32
}

/// First file descriptor systemd passes with socket activation (`SD_LISTEN_FDS_START`).
pub const SD_LISTEN_FDS_START: i32 = 3;

/// Takes ownership of an inherited descriptor that systemd passed at `SD_LISTEN_FDS_START + n`.
///
/// Call at most once per descriptor number, before anything else could have closed or
/// reused it. `fcntl(F_GETFD)` checks that the number is open at all.
///
/// # Errors
/// `EBADF` when no descriptor is open at that number.
pub fn adopt_inherited_fd(fd: i32) -> io::Result<OwnedFd> {
    // SAFETY: fcntl(F_GETFD) only reads the flags of a descriptor number; it touches no memory.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the number is open (checked above) and was handed to this process by its
    // parent for it to own; nothing in this process has wrapped it before (caller's contract).
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Removes an environment variable.
///
/// Only call while the process has one thread (start-up), as `std::env::remove_var` requires.
pub fn remove_env_single_threaded(key: &str) {
    // SAFETY: called during start-up before any thread is spawned, so no other thread can be
    // reading the environment concurrently.
    unsafe { std::env::remove_var(key) };
}

/// The two sides of `fork(2)`.
pub enum Fork {
    /// In the parent: the child's pid.
    Parent(i32),
    /// In the child.
    Child,
}

/// Safe wrapper for `fork(2)`, for `--daemon`.
///
/// Only call while the process has one thread: the child gets a copy of the calling thread
/// alone, and locks held by other threads would stay held forever.
///
/// # Errors
/// The errno of a failed fork (`EAGAIN`, `ENOMEM`).
pub fn fork_single_threaded() -> io::Result<Fork> {
    // SAFETY: the daemon forks during start-up while it has a single thread, so the child
    // inherits no lock held by another thread; both sides continue in ordinary Rust code.
    match unsafe { libc::fork() } {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid)),
    }
}

/// Replaces the process with `argv[0]` found on PATH (`execvp(3)`), for `pr-client audit`:
/// std's `Command` would bring its environment map and spawn machinery into the static
/// binary (about 10 KB) for one exec. Returns only on failure.
pub fn exec_path(argv: &[String]) -> io::Error {
    let Ok(args) = argv
        .iter()
        .map(|a| std::ffi::CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return io::Error::from(io::ErrorKind::InvalidInput);
    };
    if args.is_empty() {
        return io::Error::from(io::ErrorKind::InvalidInput);
    }
    let mut pointers: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    pointers.push(std::ptr::null());
    // SAFETY: `pointers` is a null-terminated array of pointers to NUL-terminated strings
    // owned by `args`, both alive across the call; execvp only reads them.
    unsafe { libc::execvp(pointers[0], pointers.as_ptr()) };
    io::Error::last_os_error()
}

/// Safe wrapper for `prctl(PR_CAPBSET_DROP)`: removes `cap` from the bounding set.
///
/// # Errors
/// `EINVAL` when the kernel does not know `cap` (past its last capability), `EPERM` without
/// `CAP_SETPCAP`.
pub fn drop_bounding_capability(cap: u32) -> io::Result<()> {
    // SAFETY: PR_CAPBSET_DROP takes a capability number by value and no pointers.
    let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Sets FD_CLOEXEC on a descriptor known only by number (systemd's passed sockets).
///
/// # Errors
/// `EBADF` when the number is not open.
pub fn set_cloexec_by_number(fd: i32) -> io::Result<()> {
    // SAFETY: F_GETFD/F_SETFD read and write one descriptor's flags; no memory is passed.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Takes a write lock on the whole file behind `fd` that belongs to its open file description
/// (`F_OFD_SETLK`): it lasts until the last descriptor of that description is closed, a
/// forked child's copy closed or not, and conflicts with any other open of the file, in this
/// process too (a POSIX lock would not). `Ok(false)` when another description holds a lock.
///
/// # Errors
/// The fcntl's errno but EAGAIN/EACCES (e.g. `EINVAL` on a kernel older than 3.15).
pub fn ofd_write_lock(fd: BorrowedFd<'_>) -> io::Result<bool> {
    use std::os::fd::AsRawFd as _;
    // SAFETY: flock is plain data; all zero is a valid value (l_start 0, l_len 0: the whole
    // file; l_pid must be 0 for OFD locks).
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as _;
    lock.l_whence = libc::SEEK_SET as _;
    // SAFETY: F_OFD_SETLK reads the flock we pass, which lives across the call.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_OFD_SETLK, &lock) } == 0 {
        return Ok(true);
    }
    let e = io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EAGAIN | libc::EACCES) => Ok(false),
        _ => Err(e),
    }
}

/// Closes every descriptor from 3 up except those in `keep`, in a process just forked from
/// the daemon (the path opener): it must not hold the listening socket, the pidfile or
/// anything else of the daemon's. The numbers come from /proc/self/fd, else every number below
/// the descriptor limit is tried.
///
/// Only call in a forked child that will never use or drop the Rust values owning those
/// descriptors (it ends with `exit`, which runs no destructors).
pub fn close_inherited_fds_except(keep: &[i32]) {
    let open: Vec<i32> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect(),
        Err(_) => {
            let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile)
                .current
                .unwrap_or(1024)
                .min(65536);
            (3..i32::try_from(limit).unwrap_or(1024)).collect()
        }
    };
    for fd in open.into_iter().filter(|fd| *fd > 2 && !keep.contains(fd)) {
        // SAFETY: the caller's contract: this forked child never touches the values that own
        // these descriptors again, so no owner sees its number closed under it. The read_dir
        // descriptor is closed already (the iterator is consumed); closing a number that is
        // not open fails with EBADF, which is ignored.
        unsafe { libc::close(fd) };
    }
}
