//! The command line against the C helper's: every getopt spelling, usage errors (same text,
//! same exit status), help and version layout; and the multicall dispatcher.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use common::*;

fn run(program: &Path, args: &[&str]) -> Output {
    run_env(program, args, None)
}

/// `posixly_correct`: the value of `POSIXLY_CORRECT`, or unset (whatever the test runner's).
fn run_env(program: &Path, args: &[&str], posixly_correct: Option<&str>) -> Output {
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDS")
        .env_remove("POSIXLY_CORRECT");
    if let Some(value) = posixly_correct {
        cmd.env("POSIXLY_CORRECT", value);
    }
    cmd.output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Runs the same arguments through the C helper and ours (linked at the same path length so
/// that messages quoting argv[0] compare after substitution).
fn both(args: &[&str]) -> (Output, Output) {
    both_env(args, None)
}

fn both_env(args: &[&str], posixly_correct: Option<&str>) -> (Output, Output) {
    let scratch = Scratch::new("cli");
    let ours = applet_link(&scratch.0, "qemu-pr-helper");
    let c = run_env(Path::new(C_HELPER), args, posixly_correct);
    let o = run_env(&ours, args, posixly_correct);
    let fix = |out: Output| Output {
        stdout: text(&out.stdout)
            .replace(ours.to_str().unwrap(), C_HELPER)
            .into_bytes(),
        stderr: text(&out.stderr)
            .replace(ours.to_str().unwrap(), C_HELPER)
            .into_bytes(),
        status: out.status,
    };
    (c, fix(o))
}

#[test]
fn usage_errors_match_the_c_helper_exactly() {
    let cases: &[&[&str]] = &[
        &["-x"],
        &["-k"],
        &["--socket"],
        &["--sock"],
        &["--pid"],
        &["--foo"],
        &["--foo=bar"],
        &["--v"],
        &["--ver"],
        &["--verb=3"],
        &["--help=x"],
        &["-dvqk"],
        &["-q", "-v", "-k"],
        &["-k", "/x", "-k"],
        &["-k", "relative"],
        &["--socket="],
        &["-krel"],
        &["--socket=rel", "-h"],
        &["-u", "no-such-user-anywhere"],
        &["-g", "no-such-group-anywhere"],
        &["-u", "99999999999"],
        &["-g", "-1"],
        &["-T", "enable=foo,bogus=1"],
        &["-T", "nosuchkey=1"],
    ];
    for args in cases {
        let (c, o) = both(args);
        assert_eq!(text(&o.stderr), text(&c.stderr), "stderr for {args:?}");
        assert_eq!(o.status.code(), c.status.code(), "exit status for {args:?}");
        assert_eq!(text(&o.stdout), text(&c.stdout), "stdout for {args:?}");
    }
}

/// glibc's getopt_long permutes argv unless `POSIXLY_CORRECT` is set (to anything, even
/// empty): then the first non-option ends the options, as `-`, and `--` always does. Each case
/// fails at the bind (nothing is started) unless an option after the non-option is read.
#[test]
fn permutation_and_posixly_correct_as_c() {
    const SOCKET: &str = "/nonexistent/prh-test.sock";
    let cases: &[&[&str]] = &[
        &["extra", "-k", SOCKET],
        &["-k", SOCKET, "extra", "-V"],
        &["-k", SOCKET, "-", "-V"],
        &["-k", SOCKET, "--", "-V"],
        &["-k", SOCKET, "-V", "extra"],
        &["-k", SOCKET, "extra", "-x"],
        &["-k", SOCKET, "extra", "-k", "rel"],
        &["-k", SOCKET, "extra", "--foo"],
        &["-k", SOCKET, "extra", "--", "-x"],
        &["-x", "extra"],
    ];
    for env in [None, Some("1"), Some("")] {
        for args in cases {
            if env.is_some() && args[0] == "extra" {
                // The default socket would be used: not on a machine that may serve it.
                continue;
            }
            let (c, o) = both_env(args, env);
            let what = format!("{args:?} with POSIXLY_CORRECT={env:?}");
            assert_eq!(text(&o.stderr), text(&c.stderr), "stderr for {what}");
            assert_eq!(o.status.code(), c.status.code(), "exit status for {what}");
            // -V prints each program's own version: the same lines, not the same text.
            assert_eq!(
                text(&o.stdout).lines().count(),
                text(&c.stdout).lines().count(),
                "stdout for {what}"
            );
        }
    }
}

/// The C help, minus nothing: every line of it appears in ours, in order, except the two
/// bottom lines that point at QEMU's bug tracker; the defaults shown follow -k/-f given
/// before -h.
#[test]
fn help_keeps_the_c_layout_with_current_defaults() {
    for args in [
        &["-h"][..],
        &["--help"],
        &["-k", "/x", "-h"],
        &["-f", "/p", "--he"],
        &["-", "-h"],
    ] {
        let (c, o) = both(args);
        assert_eq!(o.status.code(), Some(0));
        let ours = text(&o.stdout);
        let theirs = text(&c.stdout);
        let mut our_lines = ours.lines();
        for line in theirs
            .lines()
            .filter(|l| !l.starts_with("See <https://qemu.org"))
        {
            assert!(
                our_lines.any(|l| l == line),
                "help line {line:?} missing or out of order for {args:?}:\n{ours}"
            );
        }
        assert!(ours.contains("  -q, --quiet"));
        assert!(ours.contains("  -v, --verbose"));
    }
}

#[test]
fn version_layout() {
    let (c, o) = both(&["-V"]);
    assert_eq!(o.status.code(), Some(0));
    let (ours, theirs) = (text(&o.stdout), text(&c.stdout));
    assert_eq!(ours.lines().count(), theirs.lines().count());
    assert!(ours.starts_with(&format!("{C_HELPER} ")));
    for (a, b) in ours.lines().zip(theirs.lines()).skip(3) {
        if !b.starts_with("Copyright") {
            assert_eq!(a, b);
        }
    }
    let (_, o) = both(&["--version", "-x"]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "-V exits before a later bad option"
    );
}

#[test]
fn trace_help_lists_our_trace_points() {
    let scratch = Scratch::new("trace");
    let ours = applet_link(&scratch.0, "qemu-pr-helper");
    let out = run(&ours, &["-T", "help"]);
    assert_eq!(out.status.code(), Some(0));
    let listing = text(&out.stdout);
    for point in [
        "pr_helper_accept",
        "pr_helper_request",
        "pr_helper_sgio_done",
        "pr_helper_reply",
        "pr_helper_close",
    ] {
        assert!(
            listing.lines().any(|l| l == point),
            "{point} missing from:\n{listing}"
        );
    }
    let out = run(
        &ours,
        &["-T", "events=/nonexistent/events", "-k", "/tmp/x.sock"],
    );
    assert_eq!(out.status.code(), Some(1));
    let (c, o) = both(&[
        "-T",
        "events=/nonexistent/events",
        "-k",
        "/nonexistent/x.sock",
    ]);
    assert_eq!(text(&o.stderr), text(&c.stderr));
}

#[test]
fn multicall_dispatch() {
    let bin = binary();
    let list = run(&bin, &["--list"]);
    assert_eq!(list.status.code(), Some(0));
    assert!(text(&list.stdout).lines().any(|l| l == "qemu-pr-helper"));
    let unknown = run(&bin, &["no-such-applet"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(text(&unknown.stderr).contains("unknown applet 'no-such-applet'"));
    assert!(text(&unknown.stderr).contains("qemu-pr-helper"));
    let via_multicall = run(&bin, &["qemu-pr-helper", "-V"]);
    assert_eq!(via_multicall.status.code(), Some(0));
    assert!(text(&via_multicall.stdout).starts_with("qemu-pr-helper "));
    let nothing = run(&bin, &[]);
    assert_eq!(nothing.status.code(), Some(1));
    assert!(text(&nothing.stderr).starts_with("Usage: pr-helper"));
    // The multicall's own options are read by argh: its help, and a one-line mistake.
    let help = run(&bin, &["--help"]);
    assert_eq!(help.status.code(), Some(0));
    assert!(
        text(&help.stdout).contains("--install"),
        "{}",
        text(&help.stdout)
    );
    for wrong in [
        &["--bogus"][..],
        &["--install"],
        &["--list", "extra"],
        &["--force"],
    ] {
        let out = run(&bin, wrong);
        assert_eq!(out.status.code(), Some(1), "{wrong:?}");
        let err = text(&out.stderr);
        assert!(err.starts_with("pr-helper: "), "{wrong:?}: {err}");
        assert!(
            err.ends_with("Try 'pr-helper --help' for more information.\n"),
            "{wrong:?}: {err}"
        );
        assert!(out.stdout.is_empty(), "{wrong:?}");
    }
}

#[test]
fn install_creates_applet_links() {
    let scratch = Scratch::new("install");
    let dir = scratch.path("bin");
    std::fs::create_dir(&dir).unwrap();
    let out = run(&binary(), &["--install", dir.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let link = dir.join("qemu-pr-helper");
    assert_eq!(
        std::fs::read_link(&link).unwrap(),
        std::fs::canonicalize(binary()).unwrap()
    );
    let again = run(&binary(), &["--install", dir.to_str().unwrap()]);
    assert_eq!(
        again.status.code(),
        Some(1),
        "existing links are kept without --force"
    );
    let forced = run(&binary(), &["--install", "--force", dir.to_str().unwrap()]);
    assert_eq!(forced.status.code(), Some(0));
    let forced_after = run(&binary(), &["--install", dir.to_str().unwrap(), "--force"]);
    assert_eq!(
        forced_after.status.code(),
        Some(0),
        "{}",
        text(&forced_after.stderr)
    );
    let out = run(&link, &["-V"]);
    assert!(text(&out.stdout).starts_with(link.to_str().unwrap()));
}

fn sigterm_and_wait(child: &mut Guard, timeout: Duration) -> Option<std::process::ExitStatus> {
    signal(child.id(), 15);
    wait_timeout(&mut child.0, timeout)
}

/// Arguments are bytes: a socket path, pidfile, trace file and user name with a byte that is
/// not UTF-8 reach the system calls (and messages) as given, as with the C helper.
#[test]
fn non_utf8_arguments_are_used_as_bytes_like_c() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let scratch = Scratch::new("bytes");
    let ours = applet_link(&scratch.0, "qemu-pr-helper");
    for (which, program) in [("c", Path::new(C_HELPER)), ("ours", ours.as_path())] {
        let mut socket = scratch.0.as_os_str().as_bytes().to_vec();
        socket.extend_from_slice(format!("/{which}-").as_bytes());
        socket.extend_from_slice(b"\xff.sock");
        let socket = Path::new(OsStr::from_bytes(&socket)).to_owned();
        let mut pidfile = scratch.0.as_os_str().as_bytes().to_vec();
        pidfile.extend_from_slice(format!("/{which}-").as_bytes());
        pidfile.extend_from_slice(b"\xfe.pid");
        let pidfile = Path::new(OsStr::from_bytes(&pidfile)).to_owned();
        let mut trace = scratch.0.as_os_str().as_bytes().to_vec();
        trace.extend_from_slice(format!("/{which}-").as_bytes());
        trace.extend_from_slice(b"\xfd.trace");
        let trace = Path::new(OsStr::from_bytes(&trace)).to_owned();
        let mut child = Guard::spawn(
            Command::new(program)
                .arg("-k")
                .arg(&socket)
                .arg("-f")
                .arg(&pidfile)
                .arg("-T")
                .arg(OsStr::from_bytes(
                    &[b"file=".as_slice(), trace.as_os_str().as_bytes()].concat(),
                ))
                .env_remove("LISTEN_PID")
                .stderr(std::process::Stdio::null()),
        );
        wait_for_socket(&socket, Duration::from_secs(10));
        // C binds the socket before it writes the pidfile: wait for both.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let pid = loop {
            match std::fs::read_to_string(&pidfile) {
                Ok(pid) if pid.ends_with('\n') => break pid,
                _ if std::time::Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                other => panic!("{which}: no pidfile: {other:?}"),
            }
        };
        assert_eq!(pid.trim(), child.id().to_string(), "{which}");
        assert!(
            trace.is_file(),
            "{which}: no trace file {}",
            trace.display()
        );
        // C ignores a termination signal until its main loop runs (it sets state = RUNNING
        // only there, after the pidfile), so one sent now may be lost: repeat it.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while sigterm_and_wait(&mut child, Duration::from_millis(200)).is_none() {
            assert!(std::time::Instant::now() < deadline, "{which}: no exit");
        }
    }
    // Messages quote such paths byte for byte as C does (C prints the raw byte).
    let missing = |name: &[u8]| [b"/nonexistent/".as_slice(), name].concat();
    let cases: Vec<Vec<Vec<u8>>> = vec![
        vec![b"-k".to_vec(), missing(b"\xff.sock")],
        vec![
            b"-k".to_vec(),
            // C leaves this socket when the pidfile fails: the scratch directory takes it.
            scratch.path("x.sock").into_os_string().into_encoded_bytes(),
            b"-f".to_vec(),
            missing(b"\xfe.pid"),
        ],
        vec![
            b"-T".to_vec(),
            [b"file=".as_slice(), &missing(b"\xfd")].concat(),
        ],
        vec![
            b"-T".to_vec(),
            [b"events=".as_slice(), &missing(b"\xfc")].concat(),
        ],
        vec![b"-k".to_vec(), b"rel\xfb".to_vec()],
    ];
    for args in &cases {
        let args: Vec<&OsStr> = args.iter().map(|a| OsStr::from_bytes(a)).collect();
        let outputs: Vec<Output> = [Path::new(C_HELPER), ours.as_path()]
            .iter()
            .map(|p| {
                Command::new(p)
                    .args(&args)
                    .env_remove("LISTEN_PID")
                    .output()
                    .unwrap()
            })
            .collect();
        assert_eq!(outputs[0].status.code(), Some(1), "C, {args:?}");
        assert_eq!(outputs[1].status.code(), Some(1), "{args:?}");
        assert_eq!(outputs[1].stderr, outputs[0].stderr, "{args:?}");
        let raw = args
            .iter()
            .map(|a| a.as_bytes())
            .find(|a| a.contains(&b'/'));
        if let Some(path) = raw.filter(|a| a.starts_with(b"/nonexistent")) {
            let quoted = outputs[1].stderr.windows(path.len()).any(|w| w == path);
            assert!(quoted, "{args:?}: the raw path in {:?}", outputs[1].stderr);
        }
    }
    for option in ["-u", "-g"] {
        let name = OsStr::from_bytes(b"no-\xff-such");
        let outputs: Vec<Output> = [Path::new(C_HELPER), ours.as_path()]
            .iter()
            .map(|p| {
                Command::new(p)
                    .arg(option)
                    .arg(name)
                    .env_remove("LISTEN_PID")
                    .output()
                    .unwrap()
            })
            .collect();
        assert_eq!(outputs[0].status.code(), Some(1));
        assert_eq!(outputs[1].status.code(), Some(1));
        assert_eq!(outputs[1].stderr, outputs[0].stderr, "{option}");
        let kind = if option == "-u" { "user" } else { "group" };
        assert_eq!(
            outputs[1].stderr,
            [
                format!("qemu-pr-helper: invalid {kind} 'no-").as_bytes(),
                b"\xff-such'\n"
            ]
            .concat()
        );
    }
}

/// A value an option cannot take is worded one way in every applet, as sg_persist words it
/// ("bad argument to '--OPTION': 'VALUE' (what it wants)"), then the hint to `--help`, exit 1:
/// the daemon's own options as pr-client's and its subcommands'.
#[test]
fn a_bad_value_is_worded_alike_by_every_applet() {
    let scratch = Scratch::new("bad-value");
    let daemon = applet_link(&scratch.0, "qemu-pr-helper");
    let activated = applet_link(&scratch.0, "qemu-pr-helper-activated");
    let client = applet_link(&scratch.0, "pr-client");
    let cases: &[(&Path, &[&str], &str)] = &[
        (&daemon, &["--sgio-timeout=xyz"], "sgio-timeout"),
        (&daemon, &["--max-workers", "xyz"], "max-workers"),
        (&daemon, &["--idle-timeout=xyz"], "idle-timeout"),
        (&daemon, &["--pr-backend=xyz"], "pr-backend"),
        (&activated, &["--sgio-timeout=xyz"], "sgio-timeout"),
        (&client, &["--timeout=xyz", "/dev/null"], "timeout"),
        (&client, &["-K", "xyz", "/dev/null"], "param-rk"),
        (&client, &["bench", "--seconds=xyz"], "seconds"),
        (&client, &["probe", "--timeout=xyz"], "timeout"),
    ];
    for (program, args, option) in cases {
        let out = run(program, args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = text(&out.stderr);
        let first = stderr.lines().next().unwrap_or_default();
        let wording = format!("bad argument to '--{option}': 'xyz' (");
        assert!(
            first.contains(&format!(": {wording}")) && first.ends_with(')'),
            "{args:?}: {stderr}"
        );
    }
}
