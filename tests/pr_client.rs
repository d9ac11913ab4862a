//! `pr-client` end to end, against our daemon and the C helper (/dev/null: the sense path),
//! plus a fake helper that hangs up, and every kind of bad input.

mod common;

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::{Helper, Impl, Scratch};

/// Our daemon and the C helper, each on its own socket (the C helper must be installed: the
/// README's test command installs it).
fn both() -> Vec<Helper> {
    vec![Helper::start(Impl::Ours, &[]), Helper::start(Impl::C, &[])]
}

fn socket_arg(h: &Helper) -> String {
    format!("--socket={}", h.socket.display())
}

fn client(args: &[&str]) -> Output {
    Command::new(common::binary())
        .arg("pr-client")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}
fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}
fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A one-line `pr-client: ...` message, nonzero exit, no panic.
fn assert_clean_failure(o: &Output, want_code: i32, needle: &str) {
    let err = stderr(o);
    assert_eq!(code(o), want_code, "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let first = err.lines().next().unwrap_or_default();
    assert!(first.starts_with("pr-client: "), "{err}");
    assert!(err.contains(needle), "want {needle:?} in {err:?}");
}

#[test]
fn pr_in_and_pr_out_on_dev_null_are_aborted_command() {
    for h in both() {
        let s = socket_arg(&h);
        for sa in ["-k", "-r", "-c", "-s"] {
            let o = client(&[&s, sa, "/dev/null"]);
            assert_clean_failure(&o, 11, "CHECK CONDITION (Aborted Command, asc/ascq 00/06");
        }
        let o = client(&[&s, "-o", "-G", "-S", "123abc", "/dev/null"]);
        assert_clean_failure(&o, 11, "PR out (Register)");
        let o = client(&[
            &s,
            "--out",
            "--reserve",
            "--param-rk=1",
            "--prout-type=wr_ex",
            "-v",
            "/dev/null",
        ]);
        assert_eq!(code(&o), 11);
        assert!(
            stderr(&o).contains("PERSISTENT RESERVE OUT cdb: 5f 01 01"),
            "{}",
            stderr(&o)
        );
        // A read-only fd: the helper refuses PR OUT itself (ILLEGAL REQUEST, invalid opcode).
        let o = client(&[&s, "-y", "-o", "-G", "/dev/null"]);
        assert_clean_failure(&o, 9, "Illegal Request, asc/ascq 20/00");
    }
}

#[test]
fn json_output_has_status_sense_and_exit_status() {
    for h in both() {
        let o = client(&[&socket_arg(&h), "--json", "-s", "/dev/null"]);
        assert_eq!(code(&o), 11);
        let out = stdout(&o);
        assert_eq!(out.lines().count(), 1);
        for want in [
            r#""status":{"value":2,"name":"CHECK CONDITION"}"#,
            r#""key":{"value":11,"name":"Aborted Command"},"asc":0,"ascq":6"#,
            r#""description":"I/O process terminated""#,
            r#""command":"PR in (Read full status)""#,
            r#""payload":null"#,
            r#""exit_status":11"#,
        ] {
            assert!(out.contains(want), "want {want} in {out}");
        }
    }
}

/// Device and socket paths are bytes, as sg_persist's `open(argv[optind])`: a name with a
/// byte that is not UTF-8 is opened as given (the helpers answer on /dev/null's fd, so the
/// device was opened), and a message quotes it raw.
#[test]
fn non_utf8_device_and_socket_paths_are_used_as_bytes() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let scratch = Scratch::new("client-bytes");
    let name = |bytes: &[u8]| {
        scratch
            .0
            .join(OsStr::from_bytes(&[b"dev-".as_slice(), bytes].concat()))
    };
    let device = name(b"\xff");
    std::os::unix::fs::symlink("/dev/null", &device).unwrap();
    for h in both() {
        // connect(2) follows a symlink to the socket: --socket's bytes reach it too.
        let socket = name(&[format!("sock-{}-", h.child.id()).as_bytes(), b"\xfe"].concat());
        std::os::unix::fs::symlink(&h.socket, &socket).unwrap();
        for (socket, via) in [(h.socket.clone(), "helper's socket"), (socket, "symlink")] {
            let o = Command::new(common::binary())
                .arg("pr-client")
                .arg(OsStr::from_bytes(
                    &[b"--socket=".as_slice(), socket.as_os_str().as_bytes()].concat(),
                ))
                .arg("-k")
                .arg(&device)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            assert_clean_failure(&o, 11, "CHECK CONDITION (Aborted Command");
            assert!(!stderr(&o).contains("cannot"), "{via}: {}", stderr(&o));
        }
    }
    let missing = name(b"\xfe-missing");
    let o = Command::new(common::binary())
        .arg("pr-client")
        .arg(&missing)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(code(&o), 15);
    let want = [
        b"pr-client: cannot open ".as_slice(),
        missing.as_os_str().as_bytes(),
        b" (rw): No such file or directory\n",
    ]
    .concat();
    assert_eq!(o.stderr, want, "{}", stderr(&o));
}

/// As sg_persist's getopt_long: options after the device are read, unless POSIXLY_CORRECT is
/// set; then they are extra arguments (sg_persist: "Unexpected extra argument: -k").
#[test]
fn posixly_correct_stops_options_at_the_device() {
    let run = |posixly: bool| {
        let mut cmd = Command::new(common::binary());
        cmd.args(["pr-client", "--socket=/nonexistent/s", "/dev/null", "-k"])
            .env_remove("POSIXLY_CORRECT")
            .stdin(Stdio::null());
        if posixly {
            cmd.env("POSIXLY_CORRECT", "");
        }
        cmd.output().unwrap()
    };
    assert_clean_failure(&run(false), 15, "cannot connect to /nonexistent/s");
    assert_clean_failure(&run(true), 1, "unexpected extra argument: -k");
}

#[test]
fn direct_sg_io_matches_the_helper_path() {
    let o = client(&["--direct", "-v", "-k", "/dev/null"]);
    assert_eq!(code(&o), 11);
    assert!(stderr(&o).contains("SG_IO: Inappropriate ioctl for device"));
    let o = client(&["--direct", "--json", "--timeout=2", "/dev/null"]);
    assert!(stdout(&o).contains(r#""via":"SG_IO""#));
    assert!(stdout(&o).contains(r#""exit_status":11"#));
}

#[test]
fn probe_against_both_helpers() {
    for h in both() {
        let o = client(&["probe", &socket_arg(&h)]);
        assert_eq!(code(&o), 0, "{}{}", stdout(&o), stderr(&o));
        assert!(stdout(&o).contains("features:  0x00000000"));
        assert!(stdout(&o).contains("result:    ok"));
        let o = client(&["probe", &socket_arg(&h), "--json", "--timeout", "5"]);
        assert_eq!(code(&o), 0);
        assert!(stdout(&o).contains(r#""ok":true"#), "{}", stdout(&o));
    }
}

#[test]
fn bench_against_both_helpers() {
    for h in both() {
        for (n, cmd) in [("1", "read-keys"), ("8", "register")] {
            let o = client(&[
                "bench",
                &socket_arg(&h),
                "--connections",
                n,
                "--seconds=0.5",
                "--command",
                cmd,
            ]);
            let out = stdout(&o);
            assert_eq!(code(&o), 0, "{out}{}", stderr(&o));
            assert!(out.contains("errors:   0"), "{out}");
            assert!(out.contains("p999"), "{out}");
            assert!(out.contains("CHECK CONDITION 0b/00/06"), "{out}");
        }
        let o = client(&[
            "bench",
            &socket_arg(&h),
            "--connections=64",
            "--seconds=0.5",
            "--json",
            "--timeout=10",
            "/dev/null",
        ]);
        let out = stdout(&o);
        assert_eq!(code(&o), 0, "{out}");
        assert!(
            out.contains(r#""connections":64"#) && out.contains(r#""errors":0"#),
            "{out}"
        );
    }
}

#[test]
fn bench_burst_sends_one_request_per_client_to_both_helpers() {
    // The C helper listens with a backlog of 1: its clients wait in connect, and are all
    // answered anyway.
    for h in both() {
        let o = client(&[
            "bench",
            &socket_arg(&h),
            "--burst",
            "--connections=32",
            "--json",
        ]);
        let out = stdout(&o);
        assert_eq!(code(&o), 0, "{out}{}", stderr(&o));
        for field in [
            r#""burst":true"#,
            r#""connections":32"#,
            r#""requests":32"#,
            r#""errors":0"#,
            r#""per_connection":{"min":1,"max":1}"#,
        ] {
            assert!(out.contains(field), "{field} in {out}");
        }
        let text = stdout(&client(&[
            "bench",
            &socket_arg(&h),
            "--burst",
            "--connections=4",
        ]));
        assert!(
            text.contains("burst:    4 clients at once, last answer after"),
            "{text}"
        );
    }
}

#[test]
fn bench_reports_how_evenly_connections_were_served() {
    let h = Helper::start(Impl::Ours, &[]);
    let o = client(&[
        "bench",
        &socket_arg(&h),
        "--connections=4",
        "--seconds=0.3",
        "--json",
    ]);
    let out = stdout(&o);
    assert_eq!(code(&o), 0, "{out}");
    let field = |name: &str| -> u64 {
        let at = out
            .find(&format!(r#""{name}":"#))
            .unwrap_or_else(|| panic!("{name} in {out}"));
        out[at + name.len() + 3..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    let (fewest, most, requests) = (field("min"), field("max"), field("requests"));
    assert!(fewest >= 1 && fewest <= most, "{out}");
    assert!(most * 4 >= requests && fewest * 4 <= requests, "{out}");
}

/// A helper that negotiates, then hangs up on the first request.
fn hanging_up_helper(dir: &Path) -> PathBuf {
    let path = dir.join("hangup.sock");
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { return };
            let _ = s.write_all(&[0, 0, 0, 0]);
            let mut buf = [0u8; 20];
            let _ = s.read_exact(&mut buf);
        }
    });
    path
}

#[test]
fn bad_input_is_one_line_and_nonzero() {
    let scratch = Scratch::new("bad");
    let dir = scratch.0.clone();
    let hangup = format!("--socket={}", hanging_up_helper(&dir).display());
    assert_clean_failure(
        &client(&[&hangup, "/dev/null"]),
        15,
        "the helper closed the connection",
    );
    assert_clean_failure(&client(&["probe", &hangup]), 15, "closed the connection");
    let o = client(&["bench", &hangup, "--seconds=0.3"]);
    assert_ne!(code(&o), 0);
    assert!(
        stdout(&o).contains("error: the helper closed the connection"),
        "{}",
        stdout(&o)
    );
    assert_clean_failure(
        &client(&["--socket=/etc/passwd", "/dev/null"]),
        15,
        "not a socket",
    );
    assert_clean_failure(
        &client(&["probe", "--socket=/etc/passwd"]),
        15,
        "not a socket",
    );
    assert_clean_failure(
        &client(&["bench", "--socket=/etc/passwd"]),
        15,
        "not a socket",
    );
    let missing = format!("--socket={}", dir.join("none.sock").display());
    assert_clean_failure(
        &client(&[&missing, "/dev/null"]),
        15,
        "No such file or directory",
    );
    assert_clean_failure(&client(&[&hangup]), 1, "no device name given");
    assert_clean_failure(
        &client(&[&hangup, "/nonexistent/dev"]),
        15,
        "cannot open /nonexistent/dev",
    );
    assert_clean_failure(
        &client(&["-o", "-G", "-K", "0xfoo", "/dev/null"]),
        1,
        "--param-rk",
    );
    assert_clean_failure(
        &client(&["-o", "-G", "-R", "/dev/null"]),
        31,
        "one and only one",
    );
    assert_clean_failure(&client(&["-G", "/dev/null"]), 31, "--out");
    assert_clean_failure(&client(&["--json", "--hex", "/dev/null"]), 31, "--json");
    assert_clean_failure(
        &client(&["--frobnicate", "/dev/null"]),
        1,
        "unrecognized option",
    );
    assert_clean_failure(&client(&["bench", "--connections=x"]), 1, "--connections");
    assert_clean_failure(&client(&["bench", "--seconds=-1"]), 1, "--seconds");
    assert_clean_failure(&client(&["bench", "--command=inquiry"]), 1, "--command");
    assert_clean_failure(&client(&["probe", "extra"]), 1, "unexpected extra argument");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn help_documents_every_option_and_exit_status() {
    let o = client(&["--help"]);
    assert_eq!(code(&o), 0);
    let help = stdout(&o);
    for opt in [
        "--read-keys",
        "--read-reservation",
        "--report-capabilities",
        "--read-full-status",
        "--read-status",
        "--alloc-length",
        "--maxlen",
        "--in",
        "--out",
        "--register",
        "--register-ignore",
        "--reserve",
        "--release",
        "--clear",
        "--preempt",
        "--preempt-abort",
        "--register-move",
        "--replace-lost",
        "--param-rk",
        "--param-sark",
        "--prout-type",
        "--param-aptpl",
        "--param-alltgpt",
        "--transport-id",
        "--relative-target-port",
        "--unreg",
        "--hex",
        "--verbose",
        "--device",
        "--readonly",
        "--no-inquiry",
        "--help",
        "--version",
        "--socket",
        "--json",
        "--direct",
        "--timeout",
        "probe",
        "bench",
        "--connections",
        "--seconds",
        "--command",
    ] {
        assert!(help.contains(opt), "--help lacks {opt}");
    }
    for status in [
        " 0  GOOD",
        " 1  syntax",
        " 2  NOT READY",
        " 5  ILLEGAL REQUEST",
        " 6  UNIT ATTENTION",
        "11  ABORTED COMMAND",
        "15  cannot open",
        "24  RESERVATION CONFLICT",
        "99  any other",
    ] {
        assert!(help.contains(status), "--help lacks exit status {status}");
    }
    assert!(stdout(&client(&["-hh"])).contains("wr_ex_ro"));
    assert!(stdout(&client(&["bench", "--help"])).contains("--connections"));
    assert!(stdout(&client(&["probe", "-h"])).contains("probe"));
    let o = client(&["-V"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).starts_with("pr-client "));
}

#[test]
fn argv0_dispatch_as_pr_client() {
    let scratch = Scratch::new("argv0");
    let dir = scratch.0.clone();
    let link = dir.join("pr-client");
    std::os::unix::fs::symlink(common::binary(), &link).unwrap();
    let o = Command::new(&link).arg("--version").output().unwrap();
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).starts_with("pr-client "));
    let _ = std::fs::remove_dir_all(dir);
}
