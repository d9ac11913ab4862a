//! `qemu-pr-helper`: the drop-in daemon's command line, exactly the C helper's.
//!
//! getopt reads argv once and the options are acted on in command-line order, as C does:
//! help and version exit where they stand, `-k` must be absolute, users and groups must
//! exist, `-T` must parse; the last of a repeated option wins.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::backend::{DEFAULT_SGIO_TIMEOUT_MS, ExecOptions, Route, TestDelay};
use crate::cli::getopt::{self, Arg, HasArg, OptSpec, Order};
use crate::cli::{self, argbytes};
use crate::daemon::{
    self, Config, DEFAULT_MAX_WORKERS, DEFAULT_PIDFILE, DEFAULT_SOCKET, audit, privileges,
};
use crate::trace::{self, TraceConfig};

/// The C helper's options (short string "hVk:f:dT:u:g:vq"), then ours, long-only.
pub const SPECS: &[OptSpec] = &[
    OptSpec::new('h', "help", HasArg::No),
    OptSpec::new('V', "version", HasArg::No),
    OptSpec::new('k', "socket", HasArg::Required),
    OptSpec::new('f', "pidfile", HasArg::Required),
    OptSpec::new('d', "daemon", HasArg::No),
    OptSpec::new('T', "trace", HasArg::Required),
    OptSpec::new('u', "user", HasArg::Required),
    OptSpec::new('g', "group", HasArg::Required),
    OptSpec::new('v', "verbose", HasArg::No),
    OptSpec::new('q', "quiet", HasArg::No),
    OptSpec::long_only("sgio-timeout", HasArg::Required),
    OptSpec::long_only("max-workers", HasArg::Required),
    OptSpec::long_only("idle-timeout", HasArg::Required),
    OptSpec::long_only("no-sandbox", HasArg::No),
    OptSpec::long_only("pr-backend", HasArg::Required),
    OptSpec::long_only("no-multipath", HasArg::No),
    OptSpec::long_only("audit", HasArg::Optional),
];

/// The help lines both daemon applets share, in the C helper's layout.
const COMMON_OPTIONS: &str = "  -T, --trace [[enable=]<pattern>][,events=<file>][,file=<file>]
                            specify tracing options
  -u, --user=USER           user to drop privileges to
  -g, --group=GROUP         group to drop privileges to
  -q, --quiet               do not print per-connection errors
  -v, --verbose             increase verbosity (may be repeated)
";

fn help_text(argv0: &str, pidfile: &str, socket: &str) -> String {
    format!(
        "Usage: {argv0} [OPTIONS] FILE
Persistent Reservation helper program for QEMU

  -h, --help                display this help and exit
  -V, --version             output version information and exit

  -d, --daemon              run in the background
  -f, --pidfile=PATH        PID file when running as a daemon
                            (default '{pidfile}')
  -k, --socket=PATH         path to the unix socket
                            (default '{socket}')
{COMMON_OPTIONS}
pr-helper extensions (long options only):
      --sgio-timeout=MS     SG_IO timeout in milliseconds, 0 for the device
                            queue's default (default {DEFAULT_SGIO_TIMEOUT_MS}; the C helper uses 1)
      --max-workers=N       threads running SG_IO at most (default {DEFAULT_MAX_WORKERS})
      --idle-timeout=SECS   exit after SECS without a connection
      --no-sandbox          serve without the seccomp system-call filter
      --pr-backend=BACKEND  auto (SG_IO, or the block PR ioctls for block devices
                            without SG_IO, such as NVMe), sg or block (default auto)
      --no-multipath        plain SG_IO on dm-multipath maps: no PR on every path,
                            no multipathd, and -u/-g keep CAP_SYS_RAWIO only
      --audit[=WHAT]        a record per PR OUT naming the peer process and its VM;
                            WHAT: comma-separated stderr (default), journal,
                            journal=/PATH, all (PR IN too)

See pr-helper(1) for how to report bugs.
More information on the QEMU project at <https://qemu.org>.
"
    )
}

fn activated_help_text(argv0: &str) -> String {
    format!(
        "Usage: {argv0} [OPTIONS]
Persistent Reservation helper program for QEMU, started by systemd socket activation

Serves the socket systemd passes (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES): a listening
socket (Accept=no) like qemu-pr-helper, or one connection (Accept=yes), then exits.
Reports READY=1, STATUS= and STOPPING=1 to $NOTIFY_SOCKET when set.

  -h, --help                display this help and exit
  -V, --version             output version information and exit
{COMMON_OPTIONS}      --idle-timeout=SECS   exit after SECS without a connection (systemd starts
                            the service again on the next one)
      --sgio-timeout=MS     SG_IO timeout in milliseconds (default {DEFAULT_SGIO_TIMEOUT_MS})
      --max-workers=N       threads running SG_IO at most (default {DEFAULT_MAX_WORKERS})
      --no-sandbox          serve without the seccomp system-call filter
      --pr-backend=BACKEND  auto, sg or block (default auto)
      --no-multipath        plain SG_IO on dm-multipath maps
      --audit[=WHAT]        a record per PR OUT: stderr (default), journal, all

-k, -d and -f are refused: systemd owns the socket and the process.
"
    )
}

fn version_text(argv0: &str) -> String {
    format!(
        "{argv0} {} (pr-helper)
Written by the pr-helper developers, after Paolo Bonzini's qemu-pr-helper.

Copyright (c) 2026 the pr-helper developers
This is free software; see the source for copying conditions.  There is NO
warranty; not even for MERCHANTABILITY or FITNESS FOR A PARTICULAR PURPOSE.
",
        crate::VERSION
    )
}

/// What parsing decided: run, exit now with a status (help, version, usage errors already
/// printed), or fail with a message the caller prints after the program name, status 1.
enum Parsed {
    Run(Box<Config>, TraceConfig),
    Exit(u8),
    Fail(String),
}

/// `argv0` as typed; messages use its basename, as QEMU's `error_init(argv[0])` does.
pub fn main(argv0: &str, args: &[String]) -> ExitCode {
    run(argv0, args, false)
}

/// `qemu-pr-helper-activated`: the same daemon, for systemd socket activation only, with
/// `Accept=no` (a listening socket) or `Accept=yes` (one connection per instance).
pub fn main_activated(argv0: &str, args: &[String]) -> ExitCode {
    run(argv0, args, true)
}

fn run(argv0: &str, args: &[String], activated: bool) -> ExitCode {
    let prog = Path::new(argv0)
        .file_name()
        .map_or_else(|| argv0.to_owned(), |b| b.to_string_lossy().into_owned());
    // Before anything else: threads spawned later inherit the blocked mask (C installs its
    // termination handler first too).
    let signals = match daemon::termination_signals() {
        Ok(fd) => fd,
        Err(e) => return fail(&prog, &e.to_string()),
    };
    let order = Order::from_env();
    let (config, trace_config) = match parse(argv0, &prog, args, activated, order) {
        Parsed::Run(config, trace_config) => (config, trace_config),
        Parsed::Fail(message) => return fail(&prog, &message),
        Parsed::Exit(status) => return ExitCode::from(status),
    };
    if let Err(e) = trace_config.activate() {
        argbytes::print_error(&e.line(&prog));
        return ExitCode::from(1);
    }
    match daemon::run(&config, signals) {
        Ok(()) => ExitCode::SUCCESS,
        Err(daemon::Error::ChildFailed) => ExitCode::from(1),
        Err(e) => fail(&prog, &e.to_string()),
    }
}

fn fail(prog: &str, message: &str) -> ExitCode {
    // The argument bytes a message quotes are printed as given, as C does.
    argbytes::print_error(&format!("{prog}: {message}\n"));
    ExitCode::from(1)
}

fn usage_error(argv0: &str, prog: &str, message: &str) -> Parsed {
    // getopt prefixes argv[0] as typed; QEMU's own hint uses the basename prefix.
    let hint = format!("{prog}: Try `{argv0} --help' for more information.");
    let _ = writeln!(std::io::stderr(), "{argv0}: {message}\n{hint}");
    Parsed::Exit(1)
}

/// Reads argv once, in order, acting on each option where C does (see [`Options::read`]).
fn parse(argv0: &str, prog: &str, args: &[String], activated: bool, order: Order) -> Parsed {
    let (parsed, getopt_error) = getopt::normalize_until_error(args, SPECS, order);
    let mut options = Options::default();
    let mut bad_value = None;
    // Non-option arguments (C's FILE) are ignored, as in C.
    for arg in &parsed {
        let Arg::Opt { name, value } = arg else {
            continue;
        };
        match options.read(argv0, activated, name, value.as_deref()) {
            Ok(()) => {}
            Err(Problem::Now(stop)) => return stop,
            Err(Problem::BadValue(message)) => {
                bad_value.get_or_insert(message);
            }
        }
    }
    match getopt_error.map(|e| e.to_string()).or(bad_value) {
        Some(message) => usage_error(argv0, prog, &message),
        None => options.into_run(prog, argv0, activated),
    }
}

/// Why an option ends the reading.
enum Problem {
    /// At once, as C stops where it meets the option: help or version printed, or a value C
    /// refuses on the spot (a relative socket, an unknown user).
    Now(Parsed),
    /// A value of one of our options that does not parse: a usage error, reported after any
    /// of getopt's (which C would meet first: it reads every option before using one).
    BadValue(String),
}

/// The options read so far; `None`, `false` and zero stand for the defaults.
#[derive(Default)]
struct Options {
    socket: Option<String>,
    pidfile: Option<String>,
    daemonize: bool,
    trace: TraceConfig,
    uid: Option<u32>,
    gid: Option<u32>,
    verbose: u8,
    quiet: bool,
    sgio_timeout_ms: Option<u32>,
    max_workers: Option<usize>,
    idle_timeout: Option<std::time::Duration>,
    no_sandbox: bool,
    route: Route,
    no_multipath: bool,
    audit: Option<audit::Config>,
}

impl Options {
    /// One option, in command-line order; the last of a repeated option wins.
    fn read(
        &mut self,
        argv0: &str,
        activated: bool,
        name: &str,
        value: Option<&str>,
    ) -> Result<(), Problem> {
        self.stop_before(argv0, activated, name)
            .map_or(Ok(()), |stop| Err(Problem::Now(stop)))?;
        let fail = |message: String| Problem::Now(Parsed::Fail(message));
        if name == "audit" {
            self.audit = Some(audit::Config::parse(value).map_err(fail)?);
            return Ok(());
        }
        let value = value.unwrap_or_default();
        match name {
            "socket" if !value.starts_with('/') => {
                return Err(fail("socket path must be absolute".to_owned()));
            }
            "socket" => self.socket = Some(value.to_owned()),
            "pidfile" => self.pidfile = Some(value.to_owned()),
            "daemon" => self.daemonize = true,
            "trace" => self.add_trace(value)?,
            "user" => {
                let uid = privileges::lookup_user(value);
                self.uid = Some(uid.ok_or_else(|| fail(format!("invalid user '{value}'")))?);
            }
            "group" => {
                let gid = privileges::lookup_group(value);
                self.gid = Some(gid.ok_or_else(|| fail(format!("invalid group '{value}'")))?);
            }
            "verbose" => self.verbose = self.verbose.saturating_add(1),
            "quiet" => self.quiet = true,
            "sgio-timeout" => {
                let ms = number(name, value, "milliseconds, 0 to 4294967295")?;
                self.sgio_timeout_ms = Some(ms);
            }
            "max-workers" => {
                self.max_workers = Some(number(name, value, "threads, a whole number")?);
            }
            "idle-timeout" => {
                let seconds = number(name, value, "seconds, a whole number")?;
                self.idle_timeout = Some(std::time::Duration::from_secs(seconds));
            }
            "no-sandbox" => self.no_sandbox = true,
            "pr-backend" => {
                self.route = Route::parse(value)
                    .ok_or_else(|| bad_value(name, value, "auto, sg or block"))?;
            }
            "no-multipath" => self.no_multipath = true,
            _ => {}
        }
        Ok(())
    }

    /// Help and version end the program where they stand, as do the options systemd owns
    /// under socket activation.
    fn stop_before(&self, argv0: &str, activated: bool, name: &str) -> Option<Parsed> {
        let text = match name {
            "help" if activated => activated_help_text(argv0),
            "help" => help_text(
                argv0,
                self.pidfile.as_deref().unwrap_or(DEFAULT_PIDFILE),
                self.socket.as_deref().unwrap_or(DEFAULT_SOCKET),
            ),
            "version" => version_text(argv0),
            "socket" | "pidfile" | "daemon" if activated => {
                let short = SPECS.iter().find(|s| s.long == name)?.short?;
                return Some(Parsed::Fail(format!(
                    "-{short}/--{name} is not available here: systemd owns the socket and the \
                     process (see ListenStream= and Accept= in the .socket unit); run \
                     qemu-pr-helper for a daemon of its own"
                )));
            }
            _ => return None,
        };
        let _ = std::io::stdout().write_all(text.as_bytes());
        Some(Parsed::Exit(0))
    }

    /// `-T`: checked as C checks it; `-T help` lists the trace points and exits.
    fn add_trace(&mut self, value: &str) -> Result<(), Problem> {
        self.trace
            .add(value)
            .map_err(|message| Problem::Now(Parsed::Fail(message)))?;
        if self.trace.help {
            let _ = std::io::stdout().write_all(trace::help_text().as_bytes());
            return Err(Problem::Now(Parsed::Exit(0)));
        }
        Ok(())
    }

    fn into_run(self, prog: &str, argv0: &str, activated: bool) -> Parsed {
        let path = |given: &Option<String>, default| {
            PathBuf::from(argbytes::decode(given.as_deref().unwrap_or(default)))
        };
        let sgio_timeout_ms = self.sgio_timeout_ms.unwrap_or(DEFAULT_SGIO_TIMEOUT_MS);
        let config = Config {
            prog: prog.to_owned(),
            argv0: argv0.to_owned(),
            socket: path(&self.socket, DEFAULT_SOCKET),
            socket_specified: self.socket.is_some(),
            pidfile: path(&self.pidfile, DEFAULT_PIDFILE),
            pidfile_specified: self.pidfile.is_some(),
            daemonize: self.daemonize,
            quiet: self.quiet,
            // C: 1, one more per -v up to 3; 0 with -q.
            verbose: if self.quiet {
                0
            } else {
                self.verbose.saturating_add(1).min(3)
            },
            uid: self.uid,
            gid: self.gid,
            exec: ExecOptions {
                route: self.route,
                multipath: !self.no_multipath,
                sgio_timeout_ms,
                test_delay: TestDelay::from_env(),
                // Started by the daemon, which hands it to the backend.
                path_opener: None,
            },
            require_activation: activated,
            sandbox: !self.no_sandbox,
            audit: self.audit,
            idle_timeout: self.idle_timeout,
            max_workers: self.max_workers.unwrap_or(DEFAULT_MAX_WORKERS).max(1),
        };
        Parsed::Run(Box::new(config), self.trace)
    }
}

/// A whole number for one of our options, or the usage error that names the option.
fn number<T: std::str::FromStr>(name: &str, value: &str, want: &str) -> Result<T, Problem> {
    value.parse().map_err(|_| bad_value(name, value, want))
}

fn bad_value(name: &str, value: &str, want: &str) -> Problem {
    Problem::BadValue(cli::bad_value(name, value, want))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The daemon applet's parse of `line` split at whitespace, in getopt's default
    /// (permuting) order.
    fn parse_args(line: &str) -> Parsed {
        let args: Vec<String> = line.split_whitespace().map(String::from).collect();
        let prog = "qemu-pr-helper";
        parse(prog, prog, &args, false, Order::Permute)
    }

    fn run_parse(line: &str) -> Option<Config> {
        match parse_args(line) {
            Parsed::Run(c, _) => Some(*c),
            Parsed::Exit(_) | Parsed::Fail(_) => None,
        }
    }

    #[test]
    fn audit_is_off_unless_asked_and_takes_its_list_inline() {
        use crate::daemon::audit::{Config as Audit, Sink};
        assert_eq!(run_parse("").unwrap().audit, None);
        let (sink, all) = (Sink::Stderr, false);
        assert_eq!(
            run_parse("--audit -v").unwrap().audit,
            Some(Audit { sink, all })
        );
        let config = run_parse("--audit=journal,all -k /tmp/s").unwrap();
        let journal = Sink::Journal("/run/systemd/journal/socket".into());
        assert_eq!(config.audit.unwrap().sink, journal);
        assert_eq!(config.socket, PathBuf::from("/tmp/s"));
        assert!(matches!(parse_args("--audit=bogus"), Parsed::Fail(m) if m.contains("bogus")));
    }

    #[test]
    fn defaults() {
        let c = run_parse("").unwrap();
        assert_eq!(c.socket, PathBuf::from("/var/run/qemu-pr-helper.sock"));
        assert_eq!(c.pidfile, PathBuf::from("/var/run/qemu-pr-helper.pid"));
        assert!(!c.socket_specified && !c.pidfile_specified && !c.daemonize);
        assert_eq!(c.verbose, 1);
        assert_eq!(c.exec.sgio_timeout_ms, 30_000);
    }

    #[test]
    fn verbosity_as_c_derives_it() {
        assert_eq!(run_parse("-v").unwrap().verbose, 2);
        assert_eq!(run_parse("-vvvv").unwrap().verbose, 3);
        let q = run_parse("-qv").unwrap();
        assert_eq!(q.verbose, 0);
        assert!(q.quiet);
    }

    #[test]
    fn last_socket_wins_and_numeric_ids() {
        let c = run_parse("-k /a --sock=/b -u 65534 -g 0 x --sgio-timeout 5").unwrap();
        assert_eq!(c.socket, PathBuf::from("/b"));
        assert!(c.socket_specified);
        assert_eq!(c.uid, Some(65534));
        assert_eq!(c.gid, Some(0));
        assert_eq!(c.exec.sgio_timeout_ms, 5);
    }

    #[test]
    fn trace_patterns_may_start_with_a_dash() {
        match parse_args("-T -pr_helper_sgio* -T pr_helper_*") {
            Parsed::Run(_, t) => assert_eq!(t.patterns, vec!["-pr_helper_sgio*", "pr_helper_*"]),
            _ => panic!("parse failed"),
        }
    }

    #[test]
    fn relative_socket_and_unknown_user_fail() {
        // The C helper's messages (after "qemu-pr-helper: "); a failure exits with status 1.
        let cases = [
            ("-k rel", "socket path must be absolute"),
            ("-u no-such-user-here", "invalid user 'no-such-user-here'"),
            (
                "-g no-such-group-here",
                "invalid group 'no-such-group-here'",
            ),
        ];
        for (line, message) in cases {
            match parse_args(line) {
                Parsed::Fail(said) => assert_eq!(said, message, "{line}"),
                _ => panic!("{line}: no failure message"),
            }
        }
    }
}
