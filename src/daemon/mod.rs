//! The daemon: start-up in the C helper's order, then the event loop.
//!
//! Start-up: block the termination signals (every later thread inherits the mask), tracing,
//! socket activation or bind, daemonize, pidfile, publish the socket path, drop privileges,
//! serve. The socket path appears only once the socket accepts and everything that can fail
//! has succeeded, and `-d` returns in the parent only then.

mod accept;
pub mod audit;
mod buffers;
mod commands;
pub mod conn;
pub mod event_loop;
pub mod limits;
pub mod listener;
pub mod notify;
pub mod pidfile;
pub mod privileges;
pub mod sandbox;
mod slab;
pub mod workers;

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::os::fd::{AsFd as _, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use crate::backend::ExecOptions;
use crate::backend::multipath::opener::{ANSWER_TIMEOUT, Opener, Openers, PathOpener};
use crate::cli::argbytes;
use crate::errors::strerror;
use crate::sys;
use listener::{Activation, Inherited, Listener};

/// Default socket path, in the run-time state directory as Debian's QEMU is configured
/// (`--localstatedir=/var`).
pub const DEFAULT_SOCKET: &str = "/var/run/qemu-pr-helper.sock";
/// Default pidfile path.
pub const DEFAULT_PIDFILE: &str = "/var/run/qemu-pr-helper.pid";
/// Commands running at once at most, each on its own thread: QEMU's thread pool default.
pub const DEFAULT_MAX_WORKERS: usize = 64;

/// Everything the daemon needs, resolved from the command line.
#[derive(Debug, Clone)]
pub struct Config {
    /// Basename used as the prefix of messages.
    pub prog: String,
    /// argv[0] as typed, for messages that C prints with it.
    pub argv0: String,
    pub socket: PathBuf,
    pub socket_specified: bool,
    pub pidfile: PathBuf,
    pub pidfile_specified: bool,
    pub daemonize: bool,
    /// Per-connection errors are printed unless -q.
    pub quiet: bool,
    /// C's `verbose`: 1 by default, +1 per -v up to 3, 0 with -q.
    pub verbose: u8,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub exec: ExecOptions,
    pub max_workers: usize,
    /// Only run under socket activation (the `qemu-pr-helper-activated` applet).
    pub require_activation: bool,
    /// Exit after this long without a connection.
    pub idle_timeout: Option<std::time::Duration>,
    /// Install the seccomp filter once serving (`--no-sandbox` turns it off).
    pub sandbox: bool,
    /// `--audit`: a record per PR OUT (and PR IN with `all`).
    pub audit: Option<audit::Config>,
}

/// A start-up or fatal run-time failure; each names its step as the C helper words it.
#[derive(Debug)]
pub enum Error {
    SocketPathTooLong(PathBuf),
    Socket(io::Error),
    Bind(PathBuf, io::Error),
    /// C's words name no path: the bind before it did.
    Listen(io::Error),
    /// Renaming the bound socket into place (or finding it there) failed.
    Publish(PathBuf, io::Error),
    ActivationWithSocket,
    NotActivated,
    ActivationNoNamedFd(u32),
    ActivationTooManyFds(String),
    ActivationFd(i32, io::Error),
    Activation(io::Error),
    Daemonize(io::Error),
    PidfileOpen(PathBuf, io::Error),
    /// C's words for these name no path: opening the pid file did.
    PidfileLock(io::Error),
    PidfileTruncate(io::Error),
    PidfileWrite(io::Error),
    DropPrivileges(io::Error),
    /// The path opener could not be started (socketpair or fork).
    PathOpener(io::Error),
    Sandbox(io::Error),
    /// `--audit`: the journal socket could not be made.
    Audit(io::Error),
    Signals(io::Error),
    /// Setting up the event loop: which call, and its error.
    EventLoopSetup(&'static str, io::Error),
    EventLoop(io::Error),
    /// `-d`: the daemon could not tell the waiting parent it serves.
    Handover(io::Error),
    /// The daemonized child failed; the parent process has printed why.
    ChildFailed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Most are C's words for the step, then the error; those with a path name it as given.
        let path = |p: &PathBuf| argbytes::path(p);
        let (step, e): (Cow<'_, str>, _) = match self {
            Error::SocketPathTooLong(p) => {
                let max = listener::UNIX_PATH_MAX;
                let p = path(p);
                return write!(
                    f,
                    "UNIX socket path '{p}' is too long\nPath must be less than {max} bytes"
                );
            }
            Error::Bind(p, e) => (format!("Failed to bind socket to {}", path(p)).into(), e),
            Error::Socket(e) => ("Failed to create Unix socket".into(), e),
            Error::Publish(p, e) => {
                let words = format!("Failed to move the socket into place at {}", path(p));
                (words.into(), e)
            }
            // C's words: the bind before it named the path.
            Error::Listen(e) => ("Failed to listen on socket".into(), e),
            Error::ActivationWithSocket => {
                return f.write_str("Unix socket can't be set when using socket activation");
            }
            Error::NotActivated => {
                return f.write_str(
                    "not started by socket activation (LISTEN_PID/LISTEN_FDS unset or for \
                     another process): start it from a systemd .socket unit, or run \
                     qemu-pr-helper instead",
                );
            }
            Error::ActivationNoNamedFd(n) => {
                return write!(
                    f,
                    "{n} sockets passed and none named 'qemu-pr-helper' in LISTEN_FDNAMES \
                     (FileDescriptorName=)"
                );
            }
            Error::ActivationTooManyFds(argv0) => {
                return write!(
                    f,
                    "{argv0} does not support socket activation with LISTEN_FDS > 1"
                );
            }
            Error::ActivationFd(fd, e) => (
                format!("Socket activation failed: invalid file descriptor fd = {fd}").into(),
                e,
            ),
            Error::Activation(e) => ("Failed to use socket activation".into(), e),
            Error::Daemonize(e) => ("Failed to daemonize".into(), e),
            Error::PidfileOpen(p, e) => (format!("Could not create '{}'", path(p)).into(), e),
            Error::PidfileLock(e) => ("Cannot lock pid file".into(), e),
            Error::PidfileTruncate(e) => ("Failed to truncate pid file".into(), e),
            Error::PidfileWrite(e) => ("Failed to write pid file".into(), e),
            Error::DropPrivileges(e) => ("Failed to drop privileges".into(), e),
            Error::PathOpener(e) => ("Cannot start the multipath path opener".into(), e),
            Error::Audit(e) => ("Failed to open the audit sink (--audit=journal)".into(), e),
            Error::Sandbox(e) => {
                let e = strerror(e);
                return write!(
                    f,
                    "Failed to install the seccomp sandbox: {e} (--no-sandbox runs without it)"
                );
            }
            Error::Signals(e) => ("Cannot set up signal handling".into(), e),
            Error::EventLoopSetup(call, e) => {
                (format!("Cannot set up the event loop: {call}").into(), e)
            }
            Error::EventLoop(e) => ("event loop failed".into(), e),
            Error::Handover(e) => (
                "Cannot tell the waiting parent process that the daemon is ready".into(),
                e,
            ),
            Error::ChildFailed => return f.write_str("the daemon process failed to start"),
        };
        write!(f, "{step}: {}", strerror(e))
    }
}

impl std::error::Error for Error {}

/// Runs the daemon to completion. Returns after a clean shutdown.
///
/// Everything start-up creates on the file system is owned by a value that removes it when
/// dropped ([`Listener`] the staging name and the published socket, [`pidfile::Pidfile`] the
/// pidfile), so every return from here, error or not, leaves nothing behind. With `-d`, the
/// waiting parent hears the result only after that clean-up: "ready" once the last start-up
/// step (the sandbox) is done, or the failure with its message.
///
/// # Errors
/// Any start-up failure; the caller prints it with the program prefix and exits 1.
/// [`Error::ChildFailed`] when the `-d` parent has already printed it.
pub fn run(config: &Config, signals: OwnedFd) -> Result<(), Error> {
    let mut handover = None;
    let result = start_and_serve(config, signals, &mut handover);
    // start_and_serve's values are gone: the socket and the pidfile with them.
    match (handover, result) {
        (Some(handover), Err(e)) => {
            handover.failed(&e.to_string());
            Err(Error::ChildFailed)
        }
        (_, result) => result,
    }
}

fn start_and_serve(
    config: &Config,
    signals: OwnedFd,
    handover: &mut Option<Handover>,
) -> Result<(), Error> {
    let (mut listener, connection) = open_socket(config)?;
    if config.daemonize {
        // Only the child returns; the parent exits with the child's start-up result.
        *handover = Some(daemonize(&config.prog, &signals)?);
    }
    let pidfile = write_pidfile(config)?;
    if let Some(l) = listener.as_mut() {
        l.publish()?;
    }
    let path_opener = start_multipath(config)?;
    privileges::drop_privileges(config.uid, config.gid, config.exec.multipath)
        .map_err(Error::DropPrivileges)?;
    limits::raise_descriptor_limit();
    let audit = open_audit(config)?;
    // Composed while the listener still says which path it removes at exit.
    let remove: Vec<&std::path::Path> = [
        listener.as_ref().and_then(Listener::path),
        pidfile.as_ref().map(pidfile::Pidfile::path),
        crate::backend::multipath::record::installed_path(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let sandbox = sandbox::daemon(&sandbox::Features {
        exec: &config.exec,
        audit: config.audit.is_some(),
        path_opener: path_opener.is_some(),
        remove: &remove,
    });
    let options = loop_options(config, audit.clone(), path_opener);
    let event_loop = event_loop::EventLoop::new(listener, connection, signals, options)?;
    // -d: stdio goes to /dev/null before the sandbox, which refuses open and dup2; a
    // failure from here on reaches the parent through the hand-over pipe instead.
    if handover.is_some() {
        let null = listener::open_dev_null().map_err(Error::Daemonize)?;
        detach_stdio(&null).map_err(Error::Daemonize)?;
    }
    // Last step of start-up, with one thread: the threads started later inherit the filter.
    if config.sandbox {
        sandbox
            .install(&|note| verbose_note(config, note))
            .map_err(Error::Sandbox)?;
    }
    if let Some(ready) = handover.as_ref() {
        // Kept on failure: run() still tries to tell the parent why.
        ready.ready()?;
        *handover = None;
    }
    let unlink_failure = event_loop.run()?;
    report_at_exit(config, audit.as_deref(), unlink_failure);
    Ok(())
}

/// The listening socket, bound or inherited from socket activation, or the one connection
/// inherited (`Accept=yes`).
fn open_socket(config: &Config) -> Result<(Option<Listener>, Option<OwnedFd>), Error> {
    let source = match listener::check_socket_activation()? {
        Activation::Fds(n, names) => {
            if config.socket_specified {
                return Err(Error::ActivationWithSocket);
            }
            let index = if n == 1 {
                0
            } else if config.require_activation {
                // Several sockets: the one this unit named for us.
                names
                    .iter()
                    .position(|name| name == "qemu-pr-helper" || name == "pr-helper")
                    .filter(|&i| (i as u32) < n)
                    .ok_or(Error::ActivationNoNamedFd(n))? as u32
            } else {
                return Err(Error::ActivationTooManyFds(config.argv0.clone()));
            };
            Listener::inherited(index)?
        }
        Activation::None if config.require_activation => return Err(Error::NotActivated),
        Activation::None => Inherited::Listener(Listener::bind(&config.socket)?),
    };
    Ok(match source {
        Inherited::Listener(l) => (Some(l), None),
        Inherited::Connection(c) => (None, Some(c)),
    })
}

/// The pidfile, with `-d` or `-f`.
fn write_pidfile(config: &Config) -> Result<Option<pidfile::Pidfile>, Error> {
    if config.daemonize || config.pidfile_specified {
        return pidfile::Pidfile::write(&config.pidfile).map(Some);
    }
    Ok(None)
}

/// Multipath support: /dev/mapper/control (opened read-write, which the sandbox refuses
/// later), and the path opener when the daemon drops to another user, for the backend.
fn start_multipath(config: &Config) -> Result<Option<Arc<dyn PathOpener>>, Error> {
    if !config.exec.multipath {
        return Ok(None);
    }
    if let Err(e) = crate::backend::multipath::init() {
        if config.verbose >= 2 {
            let (prog, e) = (&config.prog, strerror(&e));
            argbytes::print_error(&format!("{prog}: multipath support off: {e}\n"));
        }
    }
    if sys::dm::control_raw_fd().is_some() {
        // Before the opener's fork, which must not inherit the record's lock as its own (it
        // closes the descriptor), and while still root: the directory is root's.
        recover_suspended_maps(config);
    }
    if sys::dm::control_raw_fd().is_some() && needs_path_opener(config) {
        // A standby beside it, forked now because after the drop the daemon cannot give a
        // new opener CAP_DAC_READ_SEARCH: it idles until the first has exited.
        let openers = [start_path_opener(config), start_path_opener(config)];
        let openers = openers.into_iter().collect::<io::Result<Vec<_>>>();
        let log_as = (config.verbose >= 2).then(|| config.prog.clone());
        let openers = Openers::new(openers.map_err(Error::PathOpener)?, log_as);
        return Ok(Some(Arc::new(openers)));
    }
    Ok(None)
}

/// A line at `-v` (verbose 2 and up), with the program's name.
fn verbose_note(config: &Config, note: &str) {
    if config.verbose >= 2 {
        argbytes::print_error(&format!("{}: {note}\n", config.prog));
    }
}

/// Resumes the maps a killed pr-helper left suspended, warns about other suspended multipath
/// maps, and makes this daemon's record of the maps it suspends
/// (`backend::multipath::record`). Nothing here stops the start: without a record, a map
/// left suspended by a kill needs `dmsetup resume`, as before.
fn recover_suspended_maps(config: &Config) {
    use crate::backend::multipath::record;
    let prog = &config.prog;
    let say = |line: String| argbytes::print_error(&format!("{prog}: {line}\n"));
    let dir = std::path::Path::new(record::DIR);
    let found = record::recover(dir, &record::SysMaps);
    for (name, file) in &found.resumed {
        let file = argbytes::path(file);
        say(format!(
            "resumed multipath map {name}: a pr-helper that died while moving a reservation \
             left it suspended (its record: {file})"
        ));
    }
    for (name, file, e) in &found.failed {
        let (file, e) = (argbytes::path(file), strerror(e));
        say(format!(
            "cannot resume multipath map {name}, left suspended by a pr-helper that died \
             (its record: {file}): {e}; its I/O waits until `dmsetup resume {name}`"
        ));
    }
    for name in &found.others {
        say(format!(
            "warning: multipath map {name} is suspended, and no pr-helper's record says it \
             suspended it: left alone; its I/O waits until it is resumed (`dmsetup resume \
             {name}` once whoever suspended it is done)"
        ));
    }
    if config.verbose >= 2 {
        for name in &found.live {
            say(format!(
                "multipath map {name} is suspended by a running pr-helper moving a reservation"
            ));
        }
        for (file, e) in &found.problems {
            let (file, e) = (argbytes::path(file), strerror(e));
            say(format!("record of suspended maps {file}: {e}"));
        }
    }
    match record::Record::create(dir) {
        Ok(rec) => {
            if config.verbose >= 2 {
                let file = argbytes::path(rec.path());
                say(format!(
                    "maps suspended to move a reservation are recorded in {file}"
                ));
            }
            rec.install();
        }
        Err(e) if config.verbose >= 2 => {
            let e = strerror(&e);
            say(format!(
                "no record of suspended maps in {}: {e}: a map this daemon leaves suspended \
                 if it is killed while moving a reservation will need `dmsetup resume`",
                record::DIR
            ));
        }
        Err(_) => {}
    }
}

/// `--audit`'s sink.
fn open_audit(config: &Config) -> Result<Option<Arc<audit::Audit>>, Error> {
    let open = |c: &audit::Config| audit::Audit::new(c.clone(), &config.prog).map(Arc::new);
    config
        .audit
        .as_ref()
        .map(open)
        .transpose()
        .map_err(Error::Audit)
}

fn loop_options(
    config: &Config,
    audit: Option<Arc<audit::Audit>>,
    path_opener: Option<Arc<dyn PathOpener>>,
) -> event_loop::LoopOptions {
    event_loop::LoopOptions {
        print_errors: !config.quiet,
        log_verbose: config.verbose >= 2,
        prog: config.prog.clone(),
        idle_timeout: config.idle_timeout,
        notifier: notify::Notifier::from_env(),
        max_workers: config.max_workers,
        exec: crate::backend::ExecOptions {
            path_opener,
            ..config.exec.clone()
        },
        audit,
        watchdog: notify::Watchdog::from_env(),
        test_wedge: std::env::var_os("PR_HELPER_TEST_WEDGE_LOOP").map(PathBuf::from),
        test_open: std::env::var_os("PR_HELPER_TEST_OPEN").map(PathBuf::from),
    }
}

/// What to say once the daemon has stopped: audit records dropped, a socket path that
/// could not be removed.
fn report_at_exit(
    config: &Config,
    audit: Option<&audit::Audit>,
    unlink_failure: Option<(PathBuf, io::Error)>,
) {
    crate::backend::multipath::record::finish();
    if let Some(audit) = audit {
        audit.flush();
    }
    if let Some(audit) = audit.filter(|a| a.dropped() > 0) {
        argbytes::print_error(&format!(
            "{}: audit: {} records dropped ({} written): the sink was full or missing\n",
            config.prog,
            audit.dropped(),
            audit.written()
        ));
    }
    if let Some((path, e)) = unlink_failure {
        argbytes::print_error(&format!(
            "{}: Failed to unlink socket {}: {}\n",
            config.prog,
            argbytes::path(&path),
            strerror(&e)
        ));
    }
}

/// Whether paths of multipath maps need the path opener: the daemon drops to a user other
/// than root (a node root:disk 0660 or 0600 refuses it), and can (it holds CAP_SETUID, so the
/// drop can succeed; without it the drop fails and says so).
fn needs_path_opener(config: &Config) -> bool {
    let uid = config
        .uid
        .unwrap_or_else(|| rustix::process::getuid().as_raw());
    let can_switch = rustix::thread::capabilities(None)
        .is_ok_and(|c| c.permitted.contains(rustix::thread::CapabilitySet::SETUID));
    uid != 0 && can_switch
}

/// Forks the path opener (`backend::multipath::opener`) while the process has one thread and
/// all its privileges. The child closes what it inherited but its socket and
/// /dev/mapper/control, takes the user and group the daemon will take with
/// CAP_SYS_ADMIN and CAP_DAC_READ_SEARCH, installs its own seccomp filter and serves until
/// the daemon is gone (termination signals stay blocked in it: it ends on EOF or
/// PR_SET_PDEATHSIG, after the daemon's last request).
fn start_path_opener(config: &Config) -> io::Result<Opener> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    let (daemon_end, opener_end) = rustix::net::socketpair(
        AddressFamily::UNIX,
        SocketType::SEQPACKET,
        SocketFlags::CLOEXEC,
        None,
    )?;
    let parent = rustix::process::getpid();
    // The opener is never waited for: if it dies, the kernel reaps it.
    sys::signals::reap_children_automatically()?;
    match sys::fork_single_threaded()? {
        sys::Fork::Parent(child) => {
            drop(opener_end);
            Opener::new(daemon_end, Some(child), ANSWER_TIMEOUT)
        }
        sys::Fork::Child => {
            drop(daemon_end);
            // Never returns: the daemon's values (socket, pidfile) are not this process's.
            std::process::exit(path_opener_main(config, opener_end, parent))
        }
    }
}

/// The path opener's life, in the forked child; its exit status.
fn path_opener_main(config: &Config, sock: OwnedFd, parent: rustix::process::Pid) -> i32 {
    use std::os::fd::AsRawFd as _;
    let say = |what: &str| {
        argbytes::print_error(&format!("{}: path opener: {what}\n", config.prog));
    };
    // Dies with the daemon; if the daemon is gone already, at once.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    if rustix::process::getppid() != Some(parent) {
        return 0;
    }
    let mut keep = vec![sock.as_raw_fd()];
    keep.extend(sys::dm::control_raw_fd());
    sys::close_inherited_fds_except(&keep);
    // Blocked as in the daemon (inherited; again in case): a SIGTERM to the whole service
    // leaves the opener serving the requests the daemon finishes before it exits.
    let _ = sys::signals::block_termination_signals();
    if config.daemonize {
        // As the daemon's own stdio after -d: nothing holds the caller's terminal or pipe.
        if let Ok(null) = listener::open_dev_null() {
            let _ = detach_stdio(&null);
        }
    }
    let kept = match privileges::drop_privileges_for_opener(config.uid, config.gid) {
        Ok(kept) => kept,
        Err(e) => {
            say(&format!("Failed to drop privileges: {}", strerror(&e)));
            return 1;
        }
    };
    if !kept.contains(rustix::thread::CapabilitySet::DAC_READ_SEARCH) && config.verbose >= 2 {
        say(
            "no CAP_DAC_READ_SEARCH (not in the bounding set?): path nodes the user cannot read \
             will not open",
        );
    }
    if config.sandbox {
        let note = |note: &str| {
            if config.verbose >= 2 {
                say(note);
            }
        };
        if let Err(e) = sandbox::opener().install(&note) {
            say(&format!(
                "Failed to install the seccomp sandbox: {}",
                strerror(&e)
            ));
            return 1;
        }
    }
    crate::backend::multipath::opener::serve(
        sock.as_fd(),
        &crate::backend::multipath::opener::RealSystem,
    );
    0
}

/// stdin, stdout and stderr onto /dev/null, as daemon(3) does.
fn detach_stdio(null: &OwnedFd) -> io::Result<()> {
    rustix::stdio::dup2_stdin(null)?;
    rustix::stdio::dup2_stdout(null)?;
    rustix::stdio::dup2_stderr(null)?;
    Ok(())
}

/// What the daemonized child sends its waiting parent: one of these bytes, then for a
/// failure the message.
const HANDOVER_READY: u8 = b'R';
const HANDOVER_FAILED: u8 = b'F';

/// The daemonized child's end of the pipe its parent waits on.
#[derive(Debug)]
struct Handover {
    pipe: OwnedFd,
}

impl Handover {
    /// Tells the parent to exit 0.
    fn ready(&self) -> Result<(), Error> {
        match rustix::io::write(&self.pipe, &[HANDOVER_READY]) {
            Ok(1) => Ok(()),
            Ok(_) => Err(Error::Handover(io::ErrorKind::WriteZero.into())),
            Err(e) => Err(Error::Handover(e.into())),
        }
    }

    /// Tells the parent why start-up failed; it prints the message and exits 1.
    fn failed(self, message: &str) {
        let mut report = vec![HANDOVER_FAILED];
        // The bytes the message stands for: paths in it are printed as given.
        report.extend_from_slice(&argbytes::decode_bytes(message));
        // Under PIPE_BUF: one write, whole or not at all. The parent gone is no matter.
        let _ = rustix::io::write(&self.pipe, &report);
    }
}

/// Forks; the parent waits until the child serves (or fails) and exits with that result, so
/// `qemu-pr-helper -d && connect` never races. The child starts a new session and moves to /.
fn daemonize(prog: &str, signals: &OwnedFd) -> Result<Handover, Error> {
    let (read_end, write_end) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::Daemonize(e.into()))?;
    match sys::fork_single_threaded().map_err(Error::Daemonize)? {
        sys::Fork::Parent(child) => {
            drop(write_end);
            // Exits without running destructors: the socket and the rest belong to the child.
            std::process::exit(wait_for_daemon(prog, child, &read_end, signals));
        }
        sys::Fork::Child => {
            drop(read_end);
            rustix::process::setsid().map_err(|e| Error::Daemonize(e.into()))?;
            let _ = rustix::process::chdir("/");
            Ok(Handover { pipe: write_end })
        }
    }
}

/// The `-d` parent: waits for the child's word and returns the exit status. A termination
/// signal meanwhile is passed on to the child, which then stops cleanly (at once, or right
/// after start-up), and the parent waits for that and exits with the child's status.
fn wait_for_daemon(prog: &str, child: i32, report: &OwnedFd, signals: &OwnedFd) -> i32 {
    use rustix::event::{PollFd, PollFlags};
    use std::io::Write as _;
    let child_pid = rustix::process::Pid::from_raw(child);
    let mut received = Vec::new();
    let mut forwarded = false;
    let mut chunk = [0u8; 512];
    loop {
        let mut fds = [
            PollFd::new(report, PollFlags::IN),
            PollFd::new(signals, PollFlags::IN),
        ];
        match rustix::event::poll(&mut fds, None) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(_) => break,
        }
        let (report_ready, signal_ready) =
            (!fds[0].revents().is_empty(), !fds[1].revents().is_empty());
        if signal_ready {
            while let Ok(Some(signo)) = sys::signals::read_signal(signals.as_fd()) {
                if let (Some(pid), Some(sig)) =
                    (child_pid, rustix::process::Signal::from_named_raw(signo))
                {
                    let _ = rustix::process::kill_process(pid, sig);
                    forwarded = true;
                }
            }
        }
        if report_ready {
            match rustix::io::read(report, &mut chunk) {
                Ok(0) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => break,
            }
        }
    }
    if received.first() == Some(&HANDOVER_READY) && !forwarded {
        return 0;
    }
    // Failed, died, or asked to stop: the child's exit is the end of it, its clean-up done.
    let status = child_pid
        .and_then(|pid| {
            rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()).ok()
        })
        .flatten()
        .map(|(_, status)| status);
    let message = match received.split_first() {
        Some((&HANDOVER_READY, _)) => return status.and_then(|s| s.exit_status()).unwrap_or(1),
        Some((&HANDOVER_FAILED, message)) => message.to_vec(),
        _ => match status {
            Some(s) if s.exit_status() == Some(0) && forwarded => return 0,
            Some(s) => {
                let how = match s.terminating_signal() {
                    Some(sig) => format!("was killed by signal {sig}"),
                    None => format!("exited with status {}", s.exit_status().unwrap_or_default()),
                };
                format!("the daemon process {how} during start-up").into_bytes()
            }
            None => b"the daemon process failed to start".to_vec(),
        },
    };
    // One write, so that the line stays whole beside other output; the message's bytes as the
    // child sent them (paths as given).
    let prog = argbytes::decode_bytes(prog);
    let _ = std::io::stderr().write_all(&[prog.as_slice(), b": ", &message, b"\n"].concat());
    1
}

/// Sets up the signalfd before anything else, as C installs its handlers first.
///
/// # Errors
/// signalfd creation failed.
pub fn termination_signals() -> Result<OwnedFd, Error> {
    sys::signals::termination_signalfd().map_err(Error::Signals)
}
