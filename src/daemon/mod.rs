//! The daemon: start-up in the C helper's order, then the event loop.
//!
//! Start-up: block the termination signals (every later thread inherits the mask), tracing,
//! socket activation or bind, daemonize, pidfile, publish the socket path, drop privileges,
//! serve. The socket path appears only once the socket accepts and everything that can fail
//! has succeeded, and `-d` returns in the parent only then.

pub mod conn;
pub mod event_loop;
pub mod limits;
pub mod listener;
pub mod notify;
pub mod pidfile;
pub mod privileges;
pub mod workers;

use std::fmt;
use std::io;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use crate::backend::ExecOptions;
use crate::errors::strerror;
use crate::sys;
use listener::{Activation, Inherited, Listener};

/// Default run-time state directory, as Debian's QEMU is configured (`--localstatedir=/var`).
pub const RUN_DIR: &str = "/var/run";
/// Default socket path.
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
}

/// A start-up or fatal run-time failure; each names its step as the C helper words it.
#[derive(Debug)]
pub enum Error {
    SocketPathTooLong(PathBuf),
    Bind(PathBuf, io::Error),
    Listen(PathBuf, io::Error),
    ActivationWithSocket,
    NotActivated,
    ActivationNoNamedFd(u32),
    ActivationTooManyFds(String),
    ActivationFd(i32, io::Error),
    Activation(io::Error),
    Daemonize(io::Error),
    PidfileOpen(PathBuf, io::Error),
    PidfileLock(PathBuf, io::Error),
    PidfileWrite(PathBuf, io::Error),
    DropPrivileges(io::Error),
    Sandbox(io::Error),
    Signals(io::Error),
    EventLoop(io::Error),
    /// The daemonized child failed and already said why on our stderr.
    ChildFailed,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::SocketPathTooLong(p) => write!(
                f,
                "UNIX socket path '{}' is too long\nPath must be less than {} bytes",
                p.display(),
                listener::UNIX_PATH_MAX
            ),
            Error::Bind(p, e) => write!(
                f,
                "Failed to bind socket to {}: {}",
                p.display(),
                strerror(e)
            ),
            Error::Listen(p, e) => write!(
                f,
                "Failed to listen on socket {}: {}",
                p.display(),
                strerror(e)
            ),
            Error::ActivationWithSocket => {
                write!(f, "Unix socket can't be set when using socket activation")
            }
            Error::NotActivated => write!(
                f,
                "not started by socket activation (LISTEN_PID/LISTEN_FDS unset or for another \
                 process): start it from a systemd .socket unit, or run qemu-pr-helper instead"
            ),
            Error::ActivationNoNamedFd(n) => write!(
                f,
                "{n} sockets passed and none named 'qemu-pr-helper' in LISTEN_FDNAMES \
                 (FileDescriptorName=)"
            ),
            Error::ActivationTooManyFds(argv0) => {
                write!(
                    f,
                    "{argv0} does not support socket activation with LISTEN_FDS > 1"
                )
            }
            Error::ActivationFd(fd, e) => {
                write!(
                    f,
                    "Socket activation failed: invalid file descriptor fd = {fd}: {}",
                    strerror(e)
                )
            }
            Error::Activation(e) => write!(f, "Failed to use socket activation: {}", strerror(e)),
            Error::Daemonize(e) => write!(f, "Failed to daemonize: {}", strerror(e)),
            Error::PidfileOpen(p, e) => {
                write!(f, "Could not create '{}': {}", p.display(), strerror(e))
            }
            Error::PidfileLock(_, e) => write!(f, "Cannot lock pid file: {}", strerror(e)),
            Error::PidfileWrite(_, e) => write!(f, "Failed to write pid file: {}", strerror(e)),
            Error::DropPrivileges(e) => write!(f, "Failed to drop privileges: {}", strerror(e)),
            Error::Sandbox(e) => write!(
                f,
                "Failed to install the seccomp sandbox: {} (--no-sandbox runs without it)",
                strerror(e)
            ),
            Error::Signals(e) => write!(f, "Cannot set up signal handling: {}", strerror(e)),
            Error::EventLoop(e) => write!(f, "event loop failed: {}", strerror(e)),
            Error::ChildFailed => write!(f, "the daemon process failed to start"),
        }
    }
}

impl std::error::Error for Error {}

/// Runs the daemon to completion. Returns after a clean shutdown.
///
/// # Errors
/// Any start-up failure; the caller prints it with the program prefix and exits 1.
pub fn run(config: &Config, signals: OwnedFd) -> Result<(), Error> {
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
    let (mut listener, connection) = match source {
        Inherited::Listener(l) => (Some(l), None),
        Inherited::Connection(c) => (None, Some(c)),
    };

    let readiness = if config.daemonize {
        Some(daemonize()?)
    } else {
        None
    };

    let pidfile = if config.daemonize || config.pidfile_specified {
        Some(pidfile::Pidfile::write(&config.pidfile)?)
    } else {
        None
    };
    if let Some(l) = listener.as_mut() {
        l.publish()?;
    }
    if config.exec.multipath {
        // /dev/mapper/control is opened read-write, which the sandbox refuses later.
        if let Err(e) = crate::backend::multipath::init() {
            if config.verbose >= 2 {
                use std::io::Write as _;
                let _ = writeln!(
                    std::io::stderr(),
                    "{}: multipath support off: {}",
                    config.prog,
                    strerror(&e)
                );
            }
        }
    }
    if let Err(e) = privileges::drop_privileges(config.uid, config.gid, config.exec.multipath) {
        if let Some(l) = listener {
            let _ = l.close();
        }
        if let Some(p) = pidfile {
            p.remove();
        }
        return Err(Error::DropPrivileges(e));
    }

    limits::raise_descriptor_limit();
    let options = event_loop::LoopOptions {
        print_errors: !config.quiet,
        log_verbose: config.verbose >= 2,
        prog: config.prog.clone(),
        idle_timeout: config.idle_timeout,
        notifier: notify::Notifier::from_env(),
        max_workers: config.max_workers,
        exec: config.exec,
    };
    let event_loop = event_loop::EventLoop::new(listener, connection, signals, options)?;
    if let Some(ready) = readiness {
        ready.notify_parent();
    }
    // Last step of start-up, with one thread: the threads started later inherit the filter.
    if config.sandbox {
        sys::seccomp::install(&crate::backend::sandbox_policy(&config.exec))
            .map_err(Error::Sandbox)?;
    }
    let unlink_failure = event_loop.run()?;
    if let Some((path, e)) = unlink_failure {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "{}: Failed to unlink socket {}: {}",
            config.prog,
            path.display(),
            strerror(&e)
        );
    }
    if let Some(p) = pidfile {
        p.remove();
    }
    Ok(())
}

/// The daemonized child's way to tell the waiting parent it serves.
struct Readiness {
    pipe: OwnedFd,
}

impl Readiness {
    /// Tells the parent to exit 0, then detaches stdio as daemon(3) does.
    fn notify_parent(self) {
        let _ = rustix::io::write(&self.pipe, b"1");
        drop(self.pipe);
        if let Ok(null) = listener::open_dev_null() {
            let _ = rustix::stdio::dup2_stdin(&null);
            let _ = rustix::stdio::dup2_stdout(&null);
            let _ = rustix::stdio::dup2_stderr(&null);
        }
    }
}

/// Forks; the parent waits until the child serves (or fails) and exits with that result, so
/// `qemu-pr-helper -d && connect` never races. The child starts a new session and moves to /.
fn daemonize() -> Result<Readiness, Error> {
    let (read_end, write_end) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::Daemonize(e.into()))?;
    match sys::fork_single_threaded().map_err(Error::Daemonize)? {
        sys::Fork::Parent(_) => {
            drop(write_end);
            let mut byte = [0u8; 1];
            let ok = matches!(rustix::io::read(&read_end, &mut byte), Ok(1));
            std::process::exit(if ok { 0 } else { 1 });
        }
        sys::Fork::Child => {
            drop(read_end);
            rustix::process::setsid().map_err(|e| Error::Daemonize(e.into()))?;
            let _ = rustix::process::chdir("/");
            Ok(Readiness { pipe: write_end })
        }
    }
}

/// Sets up the signalfd before anything else, as C installs its handlers first.
///
/// # Errors
/// signalfd creation failed.
pub fn termination_signals() -> Result<OwnedFd, Error> {
    sys::signals::termination_signalfd().map_err(Error::Signals)
}
