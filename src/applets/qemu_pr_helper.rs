//! `qemu-pr-helper`: the drop-in daemon's command line, exactly the C helper's.
//!
//! Options are read twice: in command-line order for what C does while parsing (help and
//! version exit where they stand, `-k` must be absolute, users and groups must exist, `-T`
//! must parse), then by argh from the canonical argv for the final values.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use argh::FromArgs;

use crate::backend::{DEFAULT_SGIO_TIMEOUT_MS, ExecOptions, Route};
use crate::cli::argbytes;
use crate::cli::getopt::{self, Arg, HasArg, OptSpec, Order};
use crate::daemon::{
    self, Config, DEFAULT_MAX_WORKERS, DEFAULT_PIDFILE, DEFAULT_SOCKET, privileges,
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

/// Persistent Reservation helper program for QEMU.
#[derive(FromArgs, Debug)]
struct Options {
    /// path to the unix socket (last one wins)
    #[argh(option, short = 'k')]
    socket: Vec<String>,
    /// PID file when running as a daemon
    #[argh(option, short = 'f')]
    pidfile: Vec<String>,
    /// run in the background
    #[argh(switch, short = 'd')]
    daemon: bool,
    /// tracing options (applied from the ordered pass, which also validates them)
    #[allow(dead_code)]
    #[argh(option, short = 'T')]
    trace: Vec<String>,
    /// user to drop privileges to
    #[argh(option, short = 'u')]
    user: Vec<String>,
    /// group to drop privileges to
    #[argh(option, short = 'g')]
    group: Vec<String>,
    /// more messages
    #[argh(switch, short = 'v')]
    verbose: u8,
    /// fewer messages
    #[argh(switch, short = 'q')]
    quiet: bool,
    /// SG_IO timeout in milliseconds
    #[argh(option)]
    sgio_timeout: Vec<u32>,
    /// worker threads at most
    #[argh(option)]
    max_workers: Vec<usize>,
    /// seconds without a connection before exiting
    #[argh(option)]
    idle_timeout: Vec<u64>,
    /// run without the seccomp filter
    #[argh(switch)]
    no_sandbox: bool,
    /// backend for fds that are not multipath maps: auto, sg or block
    #[argh(option, from_str_fn(parse_route))]
    pr_backend: Vec<Route>,
    /// SG_IO on multipath maps instead of PR on every path
    #[argh(switch)]
    no_multipath: bool,
    /// ignored, as in C
    #[argh(positional, greedy)]
    _file: Vec<String>,
}

fn parse_route(value: &str) -> Result<Route, String> {
    Route::parse(value).ok_or_else(|| format!("invalid value '{value}': auto, sg or block"))
}

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
/// printed), or fail with a message the caller prints after the program name.
enum Parsed {
    Run(Box<Config>, TraceConfig),
    Exit(u8),
    Fail(String),
}

impl Parsed {
    /// The exit status when the process ends here.
    fn exit_status(&self) -> Option<u8> {
        match self {
            Parsed::Run(..) => None,
            Parsed::Exit(status) => Some(*status),
            Parsed::Fail(_) => Some(1),
        }
    }
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
        exit => return ExitCode::from(exit.exit_status().unwrap_or(1)),
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
    let _ = writeln!(std::io::stderr(), "{argv0}: {message}");
    let _ = writeln!(
        std::io::stderr(),
        "{prog}: Try `{argv0} --help' for more information."
    );
    Parsed::Exit(1)
}

fn parse(argv0: &str, prog: &str, args: &[String], activated: bool, order: Order) -> Parsed {
    let (parsed, getopt_error) = getopt::normalize_until_error(args, SPECS, order);
    // First pass, in order: what C does at the moment it meets each option.
    let mut socket = DEFAULT_SOCKET.to_owned();
    let mut pidfile = DEFAULT_PIDFILE.to_owned();
    let mut trace_config = TraceConfig::default();
    let mut audit = None;
    for arg in &parsed {
        let Arg::Opt { index, value } = arg else {
            continue;
        };
        if SPECS[*index].long == "audit" {
            match crate::daemon::audit::Config::parse(value.as_deref()) {
                Ok(c) => audit = Some(c),
                Err(message) => return Parsed::Fail(message),
            }
            continue;
        }
        let value = value.as_deref().unwrap_or_default();
        match SPECS[*index].long {
            "help" if activated => {
                let _ = std::io::stdout().write_all(activated_help_text(argv0).as_bytes());
                return Parsed::Exit(0);
            }
            "help" => {
                let _ = std::io::stdout().write_all(help_text(argv0, &pidfile, &socket).as_bytes());
                return Parsed::Exit(0);
            }
            name @ ("socket" | "pidfile" | "daemon") if activated => {
                let short = SPECS[*index].short.unwrap_or('?');
                return Parsed::Fail(format!(
                    "-{short}/--{name} is not available here: systemd owns the socket and the \
                         process (see ListenStream= and Accept= in the .socket unit); run \
                         qemu-pr-helper for a daemon of its own"
                ));
            }
            "version" => {
                let _ = std::io::stdout().write_all(version_text(argv0).as_bytes());
                return Parsed::Exit(0);
            }
            "socket" => {
                if !value.starts_with('/') {
                    return Parsed::Fail("socket path must be absolute".to_owned());
                }
                value.clone_into(&mut socket);
            }
            "pidfile" => value.clone_into(&mut pidfile),
            "trace" => {
                if let Err(message) = trace_config.add(value) {
                    return Parsed::Fail(message);
                }
                if trace_config.help {
                    let _ = std::io::stdout().write_all(trace::help_text().as_bytes());
                    return Parsed::Exit(0);
                }
            }
            "user" if privileges::lookup_user(value).is_none() => {
                return Parsed::Fail(format!("invalid user '{value}'"));
            }
            "group" if privileges::lookup_group(value).is_none() => {
                return Parsed::Fail(format!("invalid group '{value}'"));
            }
            _ => {}
        }
    }
    if let Some(e) = getopt_error {
        return usage_error(argv0, prog, &e.to_string());
    }
    // Second pass: argh reads the canonical argv into the final values.
    // --audit was read above; argh does not know optional arguments.
    let for_argh: Vec<Arg> = parsed
        .into_iter()
        .filter(|a| !matches!(a, Arg::Opt { index, .. } if SPECS[*index].long == "audit"))
        .collect();
    let canonical = getopt::canonical_argv(&for_argh, SPECS);
    let canonical_refs: Vec<&str> = canonical.iter().map(String::as_str).collect();
    let options = match Options::from_args(&[prog], &canonical_refs) {
        Ok(o) => o,
        Err(early) => return usage_error(argv0, prog, early.output.trim_end()),
    };
    let loglevel = 1u8.saturating_add(options.verbose);
    let config = Config {
        prog: prog.to_owned(),
        argv0: argv0.to_owned(),
        socket: PathBuf::from(argbytes::decode(
            options.socket.last().map_or(DEFAULT_SOCKET, String::as_str),
        )),
        socket_specified: !options.socket.is_empty(),
        pidfile: PathBuf::from(argbytes::decode(
            options
                .pidfile
                .last()
                .map_or(DEFAULT_PIDFILE, String::as_str),
        )),
        pidfile_specified: !options.pidfile.is_empty(),
        daemonize: options.daemon,
        quiet: options.quiet,
        verbose: if options.quiet { 0 } else { loglevel.min(3) },
        uid: options.user.last().and_then(|u| privileges::lookup_user(u)),
        gid: options
            .group
            .last()
            .and_then(|g| privileges::lookup_group(g)),
        exec: ExecOptions {
            route: options.pr_backend.last().copied().unwrap_or_default(),
            multipath: !options.no_multipath,
            ..ExecOptions::with_timeout(
                options
                    .sgio_timeout
                    .last()
                    .copied()
                    .unwrap_or(DEFAULT_SGIO_TIMEOUT_MS),
            )
        },
        require_activation: activated,
        sandbox: !options.no_sandbox,
        audit,
        idle_timeout: options
            .idle_timeout
            .last()
            .map(|&s| std::time::Duration::from_secs(s)),
        max_workers: options
            .max_workers
            .last()
            .copied()
            .unwrap_or(DEFAULT_MAX_WORKERS)
            .max(1),
    };
    Parsed::Run(Box::new(config), trace_config)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The daemon applet's parse of `args`, in getopt's default (permuting) order.
    fn parse_args(args: &[&str]) -> Parsed {
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        parse(
            "qemu-pr-helper",
            "qemu-pr-helper",
            &args,
            false,
            Order::Permute,
        )
    }

    #[test]
    fn audit_is_off_unless_asked_and_takes_its_list_inline() {
        use crate::daemon::audit::{Config as Audit, Sink};
        assert_eq!(run_parse(&[]).unwrap().audit, None);
        assert_eq!(
            run_parse(&["--audit", "-v"]).unwrap().audit,
            Some(Audit {
                sink: Sink::Stderr,
                all: false
            })
        );
        let config = run_parse(&["--audit=journal,all", "-k", "/tmp/s"]).unwrap();
        assert_eq!(
            config.audit.unwrap().sink,
            Sink::Journal("/run/systemd/journal/socket".into())
        );
        assert_eq!(config.socket, std::path::PathBuf::from("/tmp/s"));
        assert!(matches!(parse_args(&["--audit=bogus"]), Parsed::Fail(m) if m.contains("bogus")));
    }

    fn run_parse(args: &[&str]) -> Option<Config> {
        match parse_args(args) {
            Parsed::Run(c, _) => Some(*c),
            Parsed::Exit(_) | Parsed::Fail(_) => None,
        }
    }

    #[test]
    fn defaults() {
        let c = run_parse(&[]).unwrap();
        assert_eq!(c.socket, PathBuf::from("/var/run/qemu-pr-helper.sock"));
        assert_eq!(c.pidfile, PathBuf::from("/var/run/qemu-pr-helper.pid"));
        assert!(!c.socket_specified && !c.pidfile_specified && !c.daemonize);
        assert_eq!(c.verbose, 1);
        assert_eq!(c.exec.sgio_timeout_ms, 30_000);
    }

    #[test]
    fn verbosity_as_c_derives_it() {
        assert_eq!(run_parse(&["-v"]).unwrap().verbose, 2);
        assert_eq!(run_parse(&["-vvvv"]).unwrap().verbose, 3);
        let q = run_parse(&["-qv"]).unwrap();
        assert_eq!(q.verbose, 0);
        assert!(q.quiet);
    }

    #[test]
    fn last_socket_wins_and_numeric_ids() {
        let c = run_parse(&[
            "-k",
            "/a",
            "--sock=/b",
            "-u",
            "65534",
            "-g",
            "0",
            "x",
            "--sgio-timeout",
            "5",
        ])
        .unwrap();
        assert_eq!(c.socket, PathBuf::from("/b"));
        assert!(c.socket_specified);
        assert_eq!(c.uid, Some(65534));
        assert_eq!(c.gid, Some(0));
        assert_eq!(c.exec.sgio_timeout_ms, 5);
    }

    #[test]
    fn trace_patterns_may_start_with_a_dash() {
        match parse_args(&["-T", "-pr_helper_sgio*", "-T", "pr_helper_*"]) {
            Parsed::Run(_, t) => assert_eq!(t.patterns, vec!["-pr_helper_sgio*", "pr_helper_*"]),
            _ => panic!("parse failed"),
        }
    }

    #[test]
    fn relative_socket_and_unknown_user_fail() {
        // The C helper's messages (after "qemu-pr-helper: ") and exit status 1.
        let cases: &[(&[&str], &str)] = &[
            (&["-k", "rel"], "socket path must be absolute"),
            (
                &["-u", "no-such-user-here"],
                "invalid user 'no-such-user-here'",
            ),
            (
                &["-g", "no-such-group-here"],
                "invalid group 'no-such-group-here'",
            ),
        ];
        for (args, message) in cases {
            let parsed = parse_args(args);
            assert_eq!(parsed.exit_status(), Some(1), "{args:?}");
            match parsed {
                Parsed::Fail(said) => assert_eq!(said, *message, "{args:?}"),
                _ => panic!("{args:?}: no failure message"),
            }
        }
    }
}
