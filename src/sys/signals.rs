//! Termination signals delivered as readable events: a blocked signal mask plus `signalfd(2)`.
//!
//! The mask is set while the process has a single thread, so every worker thread spawned later
//! inherits it and the signals can only ever be consumed through the signalfd on the event loop.

use std::io;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};

/// The signals that ask the daemon to stop, as the C helper installs them.
pub const TERMINATION_SIGNALS: [i32; 3] = [libc::SIGTERM, libc::SIGINT, libc::SIGHUP];

fn termination_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before any other use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, exclusively borrowed sigset_t.
    unsafe { libc::sigemptyset(&mut set) };
    for sig in TERMINATION_SIGNALS {
        // SAFETY: `set` is initialised and `sig` is a valid signal number.
        unsafe { libc::sigaddset(&mut set, sig) };
    }
    set
}

/// Blocks the termination signals in the calling thread and returns a signalfd that reports
/// them, non-blocking and close-on-exec.
///
/// Call before spawning any thread, so that all threads inherit the blocked mask.
///
/// # Errors
/// `pthread_sigmask` or `signalfd` failures (`EMFILE`, `ENOMEM`).
pub fn termination_signalfd() -> io::Result<OwnedFd> {
    let set = termination_set();
    // SAFETY: `set` is an initialised sigset_t; the old mask is not requested (null).
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    // SAFETY: -1 asks for a new descriptor; `set` is initialised and only read.
    let fd = unsafe { libc::signalfd(-1, &set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: signalfd just returned this new descriptor, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Unblocks the termination signals in the calling thread: for a process forked from the
/// daemon (the path opener) that has no signalfd and should die of them as any process.
///
/// # Errors
/// `pthread_sigmask` failures.
pub fn unblock_termination_signals() -> io::Result<()> {
    let set = termination_set();
    // SAFETY: `set` is an initialised sigset_t; the old mask is not requested (null).
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Reads one pending signal from a signalfd; `Ok(None)` when none is pending.
///
/// # Errors
/// Read errors other than `EAGAIN`.
pub fn read_signal(fd: BorrowedFd<'_>) -> io::Result<Option<i32>> {
    let mut info = [0u8; std::mem::size_of::<libc::signalfd_siginfo>()];
    match rustix::io::read(fd, &mut info) {
        Ok(n) if n == info.len() => {
            // ssi_signo is the first u32 of struct signalfd_siginfo.
            let signo = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]);
            Ok(Some(signo as i32))
        }
        Ok(_) => Ok(None),
        Err(rustix::io::Errno::AGAIN) => Ok(None),
        Err(e) => Err(e.into()),
    }
}
