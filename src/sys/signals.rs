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

/// Blocks the termination signals in the calling thread, without a signalfd: for the path
/// opener, which must outlive a SIGTERM sent to the whole service while the daemon still
/// serves requests, and ends when the daemon does.
///
/// # Errors
/// `pthread_sigmask` failures.
pub fn block_termination_signals() -> io::Result<()> {
    let set = termination_set();
    // SAFETY: `set` is an initialised sigset_t; the old mask is not requested (null).
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(())
}

/// Has the kernel reap this process's children as they exit (SIGCHLD ignored): the daemon's
/// one child, the path opener, is never waited for, and must not stay a zombie if it dies.
///
/// # Errors
/// `sigaction` failures.
pub fn reap_children_automatically() -> io::Result<()> {
    // SAFETY: sigaction is plain data; zeroed it is an empty mask, no flags and SIG_DFL,
    // then the handler is set to SIG_IGN, which runs no code of ours.
    let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
    action.sa_sigaction = libc::SIG_IGN;
    // SAFETY: `action` is initialised; the old action is not requested (null).
    let rc = unsafe { libc::sigaction(libc::SIGCHLD, &action, std::ptr::null_mut()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
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

/// std installs its stack-overflow handler for SIGSEGV and SIGBUS before `main` when both are
/// at their default, and then gives each new thread an alternate signal stack of its own,
/// mapped as the thread starts: when that mmap fails (ENOMEM under strict overcommit or at
/// vm.max_map_count), std panics in the new thread before any code of ours runs, and the
/// panic aborts the daemon (tests/runtime_faults.rs, the mmap row). Ignoring both signals
/// before std's start-up (an `.init_array` entry runs before `main`) keeps std from
/// installing its handler, so threads start without mapping anything of std's. A fault
/// still kills the process with SIGSEGV or SIGBUS and a core: the kernel resets an ignored
/// handler when it raises the signal itself. Only std's "has overflowed its stack" line is
/// lost.
#[used]
#[unsafe(link_section = ".init_array")]
static IGNORE_FAULT_SIGNALS_BEFORE_STD: extern "C" fn() = ignore_fault_signals;

extern "C" fn ignore_fault_signals() {
    for signal in [libc::SIGSEGV, libc::SIGBUS] {
        // SAFETY: signal(2) with SIG_IGN changes the disposition alone; it runs before any
        // thread exists and touches no memory of ours.
        unsafe {
            libc::signal(signal, libc::SIG_IGN);
        }
    }
}

#[cfg(test)]
mod fault_signal_tests {
    fn disposition(signal: i32) -> libc::sighandler_t {
        // SAFETY: sigaction with a null new action only reads the disposition into `old`.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: `old` is a valid, exclusively borrowed sigaction.
        unsafe { libc::sigaction(signal, std::ptr::null(), &mut old) };
        old.sa_sigaction
    }

    /// std found SIGSEGV and SIGBUS taken, so it installed no handler (and maps no alternate
    /// stack per thread); a thread starts without an mmap of std's.
    #[test]
    fn fault_signals_are_ignored_so_threads_map_no_signal_stack() {
        assert_eq!(disposition(libc::SIGSEGV), libc::SIG_IGN);
        assert_eq!(disposition(libc::SIGBUS), libc::SIG_IGN);
        let stack = std::thread::spawn(|| {
            // SAFETY: sigaltstack with a null new stack only reads the current one.
            let mut current: libc::stack_t = unsafe { std::mem::zeroed() };
            // SAFETY: `current` is a valid, exclusively borrowed stack_t.
            unsafe { libc::sigaltstack(std::ptr::null(), &mut current) };
            current.ss_flags
        })
        .join()
        .unwrap();
        assert_ne!(
            stack & libc::SS_DISABLE,
            0,
            "std gave the thread a signal stack"
        );
    }

    /// A fault the kernel raises still kills the process with SIGSEGV: an ignored handler is
    /// reset for it. Runs in a child process (this test binary again).
    #[test]
    fn a_fault_still_kills_with_sigsegv() {
        use std::os::unix::process::ExitStatusExt as _;
        if std::env::var_os("PRH_FAULT_CHILD").is_some() {
            let null = std::hint::black_box(std::ptr::null::<u8>());
            // SAFETY: deliberately not: reads address 0, so that the kernel raises SIGSEGV.
            let _ = unsafe { std::ptr::read_volatile(null) };
            return;
        }
        let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
        cmd.args([
            "--exact",
            "sys::signals::fault_signal_tests::a_fault_still_kills_with_sigsegv",
            "--test-threads=1",
        ]);
        if cfg!(panic = "abort") {
            cmd.args(["-Z", "unstable-options", "--force-run-in-process"])
                .env("RUSTC_BOOTSTRAP", "1");
        }
        let child = cmd.env("PRH_FAULT_CHILD", "1").output().unwrap();
        assert_eq!(child.status.signal(), Some(libc::SIGSEGV), "{child:?}");
    }
}

#[cfg(test)]
mod blocked_tests {
    /// Whether SIGTERM is pending for the whole process `pid` (`ShdPnd`, bit 15).
    fn sigterm_pending(pid: u32) -> bool {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let mask = status
            .lines()
            .find_map(|l| l.strip_prefix("ShdPnd:"))
            .map(|v| u64::from_str_radix(v.trim(), 16).unwrap())
            .unwrap();
        mask & (1 << (libc::SIGTERM - 1)) != 0
    }

    /// The path opener's life: with the termination signals blocked, a SIGTERM leaves the
    /// process running (the signal pending) until its input ends, and it then exits
    /// normally. The process is `cat`, with the mask set between fork and exec (exec keeps
    /// it): every thread of it has the signals blocked, as every thread of the opener has.
    #[test]
    fn a_sigterm_leaves_the_process_running_until_its_input_ends() {
        use std::os::unix::process::CommandExt as _;
        let mut cmd = std::process::Command::new("cat");
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null());
        // SAFETY: runs in the forked child before exec; pthread_sigmask (and the sigset
        // calls that build the set) are async-signal-safe, and nothing is allocated.
        unsafe { cmd.pre_exec(super::block_termination_signals) };
        let mut child = cmd.spawn().unwrap();
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        // Queued by kill() before it returns; blocked, it stays pending while cat runs.
        assert!(sigterm_pending(child.id()));
        assert!(child.try_wait().unwrap().is_none());
        drop(child.stdin.take());
        let status = child.wait().unwrap();
        assert!(status.success(), "{status:?}");
    }
}
