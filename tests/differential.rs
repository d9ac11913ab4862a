//! The same protocol cases against the installed C helper and ours: the bytes each one sends,
//! and whether it closes or keeps the connection, must be identical, and so must what each
//! prints on stderr.

mod common;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::Duration;

use common::*;

const SHORT: Duration = Duration::from_millis(300);
const LONG: Duration = Duration::from_secs(5);

/// A transcript line per observation.
type Transcript = Vec<String>;

fn describe(next: &Next) -> String {
    match next {
        Next::Bytes(b) => format!("bytes {}", hex(b)),
        Next::Closed(b) => format!("closed after {}", hex(b)),
        Next::Silent(b) => format!("silent after {}", hex(b)),
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Connects and negotiates; records the helper's feature word.
fn open(path: &Path, t: &mut Transcript) -> OwnedFd {
    let sock = raw_connect(path);
    t.push(format!(
        "features {}",
        describe(&read_next(sock.as_fd(), 4, LONG))
    ));
    send(sock.as_fd(), &[0, 0, 0, 0]);
    sock
}

/// Reads what follows a request: a whole reply header (and payload), or a close.
fn observe(sock: BorrowedFd<'_>, t: &mut Transcript) {
    let header = read_next(sock, 104, LONG);
    match &header {
        Next::Bytes(h) => {
            let size = i32::from_be_bytes([h[4], h[5], h[6], h[7]]);
            t.push(format!("reply {}", hex(h)));
            if size > 0 {
                t.push(format!(
                    "payload {}",
                    describe(&read_next(sock, size as usize, LONG))
                ));
            }
        }
        other => t.push(describe(other)),
    }
}

/// After the last observation: still open (silent) or closed.
fn fate(sock: BorrowedFd<'_>, t: &mut Transcript) {
    t.push(format!("then {}", describe(&read_next(sock, 1, SHORT))));
}

fn request(
    sock: BorrowedFd<'_>,
    cdb: &[u8; 16],
    fd: BorrowedFd<'_>,
    params: &[u8],
    t: &mut Transcript,
) {
    send_fds(sock, cdb, &[fd]);
    if !params.is_empty() {
        send(sock, params);
    }
    observe(sock, t);
}

type Case = fn(&Path, &mut Transcript);

fn cases() -> Vec<(&'static str, Case)> {
    vec![
        ("nonzero features close", |p, t| {
            let sock = raw_connect(p);
            t.push(describe(&read_next(sock.as_fd(), 4, LONG)));
            send(sock.as_fd(), &[0, 0, 0, 1]);
            fate(sock.as_fd(), t);
        }),
        ("pr in on every fd kind and length", |p, t| {
            let sock = open(p, t);
            let scratch = Scratch::new("file");
            std::fs::write(scratch.path("f"), b"data").unwrap();
            let file = scratch.path("f");
            let (pipe_r, pipe_w) = rustix::pipe::pipe().unwrap();
            let fds = [
                open_rw("/dev/null"),
                open_ro("/dev/null"),
                open_rw(file.to_str().unwrap()),
                open_ro(file.to_str().unwrap()),
                pipe_r,
                pipe_w,
            ];
            for fd in &fds {
                for len in [0u16, 24, 8192] {
                    for sa in [0u8, 1, 2, 3, 0x1f] {
                        request(sock.as_fd(), &pr_in(sa, len), fd.as_fd(), &[], t);
                    }
                }
            }
            fate(sock.as_fd(), t);
        }),
        (
            "pr out lengths 0 24 8192 and read-only fds keep the connection",
            |p, t| {
                let sock = open(p, t);
                let rw = open_rw("/dev/null");
                let ro = open_ro("/dev/null");
                for len in [0u16, 24, 8192] {
                    let params = vec![0xa5u8; len as usize];
                    request(sock.as_fd(), &pr_out(0, 0, len), rw.as_fd(), &params, t);
                    request(sock.as_fd(), &pr_out(1, 1, len), ro.as_fd(), &params, t);
                }
                fate(sock.as_fd(), t);
            },
        ),
        ("pr out bytes 5 and 6 are ignored for the length", |p, t| {
            let sock = open(p, t);
            let rw = open_rw("/dev/null");
            let mut cdb = pr_out(0, 0, 24);
            cdb[5] = 0xff;
            cdb[6] = 0xff;
            request(sock.as_fd(), &cdb, rw.as_fd(), &[0u8; 24], t);
            fate(sock.as_fd(), t);
        }),
        ("pr in 8193 closes", |p, t| {
            let sock = open(p, t);
            send_fds(
                sock.as_fd(),
                &pr_in(0, 8193),
                &[open_rw("/dev/null").as_fd()],
            );
            fate(sock.as_fd(), t);
        }),
        ("pr out 8193 closes", |p, t| {
            let sock = open(p, t);
            send_fds(
                sock.as_fd(),
                &pr_out(0, 0, 8193),
                &[open_rw("/dev/null").as_fd()],
            );
            fate(sock.as_fd(), t);
        }),
        ("no fd closes", |p, t| {
            let sock = open(p, t);
            send(sock.as_fd(), &pr_in(0, 24));
            fate(sock.as_fd(), t);
        }),
        ("two fds close", |p, t| {
            let sock = open(p, t);
            let a = open_rw("/dev/null");
            let b = open_rw("/dev/null");
            send_fds(sock.as_fd(), &pr_in(0, 24), &[a.as_fd(), b.as_fd()]);
            fate(sock.as_fd(), t);
        }),
        ("one fd on each of two fragments closes", |p, t| {
            let sock = open(p, t);
            let a = open_rw("/dev/null");
            let b = open_rw("/dev/null");
            let cdb = pr_in(0, 24);
            send_fds(sock.as_fd(), &cdb[..8], &[a.as_fd()]);
            std::thread::sleep(Duration::from_millis(50));
            send_fds(sock.as_fd(), &cdb[8..], &[b.as_fd()]);
            fate(sock.as_fd(), t);
        }),
        ("wrong opcode closes", |p, t| {
            let sock = open(p, t);
            let mut cdb = pr_in(0, 24);
            cdb[0] = 0x12;
            send_fds(sock.as_fd(), &cdb, &[open_rw("/dev/null").as_fd()]);
            fate(sock.as_fd(), t);
        }),
        ("cdb byte by byte, fd on the second fragment", |p, t| {
            let sock = open(p, t);
            let fd = open_rw("/dev/null");
            let cdb = pr_in(1, 24);
            for (i, b) in cdb.iter().enumerate() {
                if i == 1 {
                    send_fds(sock.as_fd(), &[*b], &[fd.as_fd()]);
                } else {
                    send(sock.as_fd(), &[*b]);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            observe(sock.as_fd(), t);
            fate(sock.as_fd(), t);
        }),
        ("parameter list trickled byte by byte", |p, t| {
            let sock = open(p, t);
            let fd = open_rw("/dev/null");
            send_fds(sock.as_fd(), &pr_out(0, 0, 24), &[fd.as_fd()]);
            for b in [7u8; 24] {
                send(sock.as_fd(), &[b]);
                std::thread::sleep(Duration::from_millis(5));
            }
            observe(sock.as_fd(), t);
            fate(sock.as_fd(), t);
        }),
        ("pipelined requests", |p, t| {
            let sock = open(p, t);
            let fd = open_rw("/dev/null");
            send_fds(sock.as_fd(), &pr_in(0, 24), &[fd.as_fd()]);
            send_fds(sock.as_fd(), &pr_out(0, 0, 24), &[fd.as_fd()]);
            send(sock.as_fd(), &[1u8; 24]);
            send_fds(sock.as_fd(), &pr_in(2, 8), &[fd.as_fd()]);
            observe(sock.as_fd(), t);
            observe(sock.as_fd(), t);
            observe(sock.as_fd(), t);
            fate(sock.as_fd(), t);
        }),
        (
            "fd sent with the feature word or the parameters is discarded",
            |p, t| {
                let sock = raw_connect(p);
                t.push(describe(&read_next(sock.as_fd(), 4, LONG)));
                let fd = open_rw("/dev/null");
                send_fds(sock.as_fd(), &[0, 0, 0, 0], &[fd.as_fd()]);
                send_fds(sock.as_fd(), &pr_out(0, 0, 24), &[fd.as_fd()]);
                send_fds(sock.as_fd(), &[0u8; 24], &[fd.as_fd()]);
                observe(sock.as_fd(), t);
                send(sock.as_fd(), &pr_in(0, 24));
                fate(sock.as_fd(), t);
            },
        ),
        ("end of file in the parameter list", |p, t| {
            let sock = open(p, t);
            send_fds(
                sock.as_fd(),
                &pr_out(0, 0, 24),
                &[open_rw("/dev/null").as_fd()],
            );
            send(sock.as_fd(), &[0u8; 10]);
            rustix::net::shutdown(&sock, rustix::net::Shutdown::Write).unwrap();
            fate(sock.as_fd(), t);
        }),
        ("end of file in the cdb and in negotiation", |p, t| {
            let sock = open(p, t);
            send_fds(
                sock.as_fd(),
                &pr_in(0, 24)[..5],
                &[open_rw("/dev/null").as_fd()],
            );
            rustix::net::shutdown(&sock, rustix::net::Shutdown::Write).unwrap();
            fate(sock.as_fd(), t);
            let sock = raw_connect(p);
            t.push(describe(&read_next(sock.as_fd(), 4, LONG)));
            send(sock.as_fd(), &[0, 0]);
            rustix::net::shutdown(&sock, rustix::net::Shutdown::Write).unwrap();
            fate(sock.as_fd(), t);
        }),
        (
            "a client dying mid-request does not disturb another",
            |p, t| {
                let dying = open(p, t);
                send_fds(
                    dying.as_fd(),
                    &pr_in(0, 24)[..7],
                    &[open_rw("/dev/null").as_fd()],
                );
                let other = open(p, t);
                drop(dying);
                request(
                    other.as_fd(),
                    &pr_in(0, 24),
                    open_rw("/dev/null").as_fd(),
                    &[],
                    t,
                );
                fate(other.as_fd(), t);
            },
        ),
    ]
}

fn run_all(which: Impl) -> (Vec<(&'static str, Transcript)>, String) {
    let helper = Helper::start(which, &[]);
    let mut results = Vec::new();
    for (name, case) in cases() {
        let mut t = Transcript::new();
        case(&helper.socket, &mut t);
        results.push((name, t));
        // Let the helper print anything this case made it print before the next one.
        std::thread::sleep(Duration::from_millis(50));
    }
    let (status, stderr) = helper.stop();
    assert!(status.success(), "{which:?} exited with {status}");
    (results, stderr)
}

#[test]
fn ours_and_the_c_helper_answer_byte_for_byte_alike() {
    if !Path::new(C_HELPER).exists() {
        panic!(
            "{C_HELPER} is missing: install qemu-system-common (the README's test command does)"
        );
    }
    let (c, c_err) = run_all(Impl::C);
    let (ours, our_err) = run_all(Impl::Ours);
    let mut differences = 0;
    for ((name, ct), (_, ot)) in c.iter().zip(&ours) {
        if ct != ot {
            differences += 1;
            eprintln!("case '{name}' differs:\n  C:    {ct:?}\n  ours: {ot:?}");
        }
    }
    assert_eq!(
        differences, 0,
        "{differences} cases differ from the C helper"
    );
    assert_eq!(our_err, c_err, "stderr differs");
    assert!(
        c_err.contains("No file descriptor in request."),
        "C stderr: {c_err}"
    );
    let lines: usize = ours.iter().map(|(_, t)| t.len()).sum();
    eprintln!("{} cases, {lines} observations, 0 differences", ours.len());
    if std::env::var_os("PRH_SHOW_TRANSCRIPTS").is_some() {
        for (name, t) in &ours {
            eprintln!("== {name}");
            for line in t {
                eprintln!("   {}", &line[..line.len().min(120)]);
            }
        }
        eprintln!("== stderr\n{our_err}");
    }
}
