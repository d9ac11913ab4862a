//! `--audit`: the real daemon writes a record per PR OUT (and PR IN with `all`) to a fake
//! journal socket with the fields `journalctl` filters on, to stderr in the `-v` format, and
//! counts what a missing or blocked sink drops without failing or delaying a command.

mod common;

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::*;
use pr_helper::Connection;
use pr_helper::{MESSAGE_ID, parse_journal_fields};

const TIMEOUT: Option<Duration> = Some(Duration::from_secs(5));

/// REGISTER's 24-byte parameter list with this service action key and APTPL.
fn register_params(sa_key: u64, aptpl: bool) -> [u8; 24] {
    let mut p = [0u8; 24];
    p[8..16].copy_from_slice(&sa_key.to_be_bytes());
    p[20] = u8::from(aptpl);
    p
}

fn next_record(journal: &UnixDatagram) -> HashMap<String, String> {
    let mut buf = vec![0u8; 65536];
    let n = journal.recv(&mut buf).expect("no audit record within 5 s");
    parse_journal_fields(&buf[..n])
        .expect("a well-formed datagram")
        .into_iter()
        .collect()
}

fn dev_null_rdev() -> String {
    let st = rustix::fs::stat("/dev/null").unwrap();
    format!(
        "{}:{}",
        rustix::fs::major(st.st_rdev),
        rustix::fs::minor(st.st_rdev)
    )
}

#[test]
fn journal_records_name_the_peer_the_device_and_the_keys() {
    let scratch = Scratch::new("audit-journal");
    let journal_path = scratch.path("journal.sock");
    let journal = UnixDatagram::bind(&journal_path).unwrap();
    journal
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let arg = format!("--audit=all,journal={}", journal_path.display());
    let helper = Helper::start(Impl::Ours, &[&arg]);
    let mut conn = Connection::connect(&helper.socket, TIMEOUT).unwrap();
    let null = open_rw("/dev/null");

    let reply = conn
        .request(
            &pr_out(0, 0, 24),
            null.as_fd(),
            &register_params(0xabc0_0000_0000_0def, true),
        )
        .unwrap();
    let out = next_record(&journal);
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    assert_eq!(out["PR_ACTION"], "REGISTER");
    assert_eq!(out["PR_DIRECTION"], "OUT");
    assert_eq!(out["PR_KEY"], "0x0000000000000000");
    assert_eq!(out["PR_SA_KEY"], "0xabc0000000000def");
    assert_eq!(out["PR_APTPL"], "1");
    assert_eq!(out["PR_TYPE"], "0");
    assert_eq!(out["PR_SCOPE"], "0");
    assert_eq!(out["PR_DEVICE"], dev_null_rdev());
    assert_eq!(out["PR_PEER_PID"], std::process::id().to_string());
    assert_eq!(
        out["PR_PEER_UID"],
        rustix::process::getuid().as_raw().to_string()
    );
    assert_eq!(
        out["PR_PEER_GID"],
        rustix::process::getgid().as_raw().to_string()
    );
    assert_eq!(out["PR_PEER_COMM"], comm.trim_end());
    // Read through the peer's pidfd (Linux 6.5 and later), else by pid, and said so.
    assert!(
        ["pidfd", "pid"].contains(&out["PR_PEER_READ"].as_str()),
        "{out:?}"
    );
    // No machine scope here: no verified name.
    assert!(!out.contains_key("PR_VM"), "{out:?}");
    assert_eq!(out["SYSLOG_IDENTIFIER"], "qemu-pr-helper");
    assert_eq!(out["MESSAGE_ID"], MESSAGE_ID);
    assert_eq!(out["PRIORITY"], "5");
    // The status the client got, in words, and a duration.
    let status = pr_helper::status_name(reply.status()).replace(' ', "_");
    assert_eq!(out["PR_STATUS"], status);
    if reply.status() == 2 {
        assert!(out.contains_key("PR_SENSE"), "{out:?}");
    }
    out["PR_DURATION_US"].parse::<u64>().unwrap();
    assert!(
        out["MESSAGE"].starts_with("PR OUT REGISTER "),
        "{}",
        out["MESSAGE"]
    );
    assert!(
        out["MESSAGE"].contains("sa_key=0xabc0000000000def"),
        "{}",
        out["MESSAGE"]
    );

    // PR IN too, with `all`; the peer is the same connection's, read once.
    conn.request(&pr_in(0, 24), null.as_fd(), &[]).unwrap();
    let read_keys = next_record(&journal);
    assert_eq!(read_keys["PR_ACTION"], "READ_KEYS");
    assert_eq!(read_keys["PR_DIRECTION"], "IN");
    assert_eq!(read_keys["PRIORITY"], "6");
    assert!(!read_keys.contains_key("PR_KEY"));
    assert_eq!(read_keys["PR_PEER_PID"], out["PR_PEER_PID"]);
    assert_eq!(read_keys["PR_PEER_COMM"], out["PR_PEER_COMM"]);

    let (status, err) = helper.stop();
    assert!(status.success(), "{err}");
    assert!(!err.contains("dropped"), "{err}");
}

#[test]
fn stderr_records_pr_out_only_by_default() {
    let helper = Helper::start(Impl::Ours, &["--audit"]);
    let mut conn = Connection::connect(&helper.socket, TIMEOUT).unwrap();
    let null = open_rw("/dev/null");
    conn.request(&pr_in(0, 24), null.as_fd(), &[]).unwrap();
    conn.request(
        &pr_out(0, 0, 24),
        null.as_fd(),
        &register_params(0x5, false),
    )
    .unwrap();
    conn.request(&pr_in(1, 24), null.as_fd(), &[]).unwrap();
    drop(conn);
    let (status, err) = helper.stop();
    assert!(status.success(), "{err}");
    let records: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("qemu-pr-helper: audit: "))
        .collect();
    assert_eq!(records.len(), 1, "{err}");
    let line = records[0];
    assert!(
        line.starts_with("qemu-pr-helper: audit: REGISTER type=0 scope=0 "),
        "{line}"
    );
    assert!(
        line.contains(" sa_key=0x0000000000000005 aptpl=0 "),
        "{line}"
    );
    assert!(
        line.contains(&format!(" peer_pid={} ", std::process::id())),
        "{line}"
    );
    assert!(
        line.contains(&format!(" device={} ", dev_null_rdev())),
        "{line}"
    );
}

#[test]
fn a_missing_journal_drops_records_and_commands_still_answer() {
    let scratch = Scratch::new("audit-missing");
    let arg = format!(
        "--audit=journal={}",
        scratch.path("nobody-listens.sock").display()
    );
    let helper = Helper::start(Impl::Ours, &[&arg]);
    let mut conn = Connection::connect(&helper.socket, TIMEOUT).unwrap();
    let null = open_rw("/dev/null");
    for _ in 0..3 {
        let reply = conn
            .request(&pr_out(0, 0, 24), null.as_fd(), &register_params(1, false))
            .unwrap();
        // /dev/null's answer, as without --audit.
        assert_eq!(reply.status(), 2);
    }
    drop(conn);
    let (status, err) = helper.stop();
    assert!(status.success(), "{err}");
    assert!(
        err.contains("qemu-pr-helper: audit: 3 records dropped (0 written)"),
        "{err}"
    );
}

#[test]
fn a_bad_audit_value_is_a_usage_error() {
    let scratch = Scratch::new("audit-usage");
    let out = std::process::Command::new(applet_link(&scratch.0, "qemu-pr-helper"))
        .args([
            "-k",
            scratch.path("pr.sock").to_str().unwrap(),
            "--audit=syslog",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid --audit value 'syslog'"), "{err}");
    assert!(!scratch.path("pr.sock").exists());
}

#[test]
fn under_u_the_daemon_still_reads_a_root_peers_proc() {
    require_root("-u 65534 needs root");
    let helper = Helper::start(Impl::Ours, &["-u", "65534", "-g", "65534", "--audit"]);
    let mut conn = Connection::connect(&helper.socket, TIMEOUT).unwrap();
    let null = open_rw("/dev/null");
    conn.request(&pr_out(0, 0, 24), null.as_fd(), &register_params(7, false))
        .unwrap();
    drop(conn);
    // (Its exit status is not the point: unlinking a socket in a root-only directory fails
    // under -u, as C's does.)
    let (_, err) = helper.stop();
    let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
    let line = err
        .lines()
        .find(|l| l.starts_with("qemu-pr-helper: audit: REGISTER "))
        .unwrap_or_else(|| panic!("no record: {err}"));
    assert!(line.contains(" peer_uid=0 "), "{line}");
    assert!(
        line.contains(&format!(" peer_comm={} ", comm.trim_end())),
        "{line}"
    );
}

#[test]
fn dropped_records_are_reported_in_sd_notify_status() {
    let scratch = Scratch::new("audit-notify");
    let notify_path = scratch.path("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let arg = format!("--audit=journal={}", scratch.path("missing.sock").display());
    let helper = Helper::start_with_env(
        Impl::Ours,
        &[&arg],
        &[("NOTIFY_SOCKET", notify_path.to_str().unwrap())],
    );
    let mut conn = Connection::connect(&helper.socket, TIMEOUT).unwrap();
    let null = open_rw("/dev/null");
    for _ in 0..2 {
        conn.request(&pr_out(0, 0, 24), null.as_fd(), &register_params(1, false))
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    // STATUS= is rate-limited to one a second; the drops show in the next one.
    while let Ok(n) = notify.recv(&mut buf) {
        let message = String::from_utf8_lossy(&buf[..n]).into_owned();
        let done = message.contains("; 2 audit records dropped");
        seen.push(message);
        if done {
            break;
        }
    }
    assert!(
        seen.iter().any(|m| m.contains("; 2 audit records dropped")),
        "{seen:?}"
    );
    drop(conn);
    let (status, err) = helper.stop();
    assert!(status.success(), "{err}");
}

/// The `N records dropped (M written)` of the exit message.
fn dropped_and_written(err: &str) -> (usize, usize) {
    let line = err
        .lines()
        .find(|l| l.starts_with("qemu-pr-helper: audit: ") && l.contains(" records dropped ("))
        .unwrap_or_else(|| panic!("no count of dropped records: {err}"));
    let numbers: Vec<usize> = line
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect();
    (numbers[0], numbers[1])
}

#[test]
fn a_stderr_nobody_reads_delays_no_request_and_the_dropped_are_counted() {
    let scratch = Scratch::new("audit-blocked");
    let notify_path = scratch.path("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut helper = Helper::start_with_env(
        Impl::Ours,
        &["--audit"],
        &[("NOTIFY_SOCKET", notify_path.to_str().unwrap())],
    );
    // The daemon's stderr: a pipe of one page that nobody reads until the end.
    let stderr = helper.child.stderr.take().unwrap();
    rustix::pipe::fcntl_setpipe_size(&stderr, 4096).unwrap();
    let mut conn = Connection::connect(&helper.socket, TIMEOUT).unwrap();
    let null = open_rw("/dev/null");
    // More records than the pipe and the daemon's queue (1024 lines) hold: each request is
    // still answered (within TIMEOUT: a serving thread stuck on the pipe would answer none).
    const REQUESTS: usize = 2000;
    for i in 0..REQUESTS {
        let reply = conn
            .request(&pr_out(0, 0, 24), null.as_fd(), &register_params(1, false))
            .unwrap_or_else(|e| panic!("request {i} with stderr blocked: {e}"));
        assert_eq!(reply.status(), 2);
    }
    // STATUS= counts the dropped while stderr is still blocked.
    let mut buf = [0u8; 4096];
    let mut seen = Vec::new();
    while let Ok(n) = notify.recv(&mut buf) {
        let message = String::from_utf8_lossy(&buf[..n]).into_owned();
        let done = message.contains(" audit records dropped");
        seen.push(message);
        if done {
            break;
        }
    }
    assert!(
        seen.iter().any(|m| m.contains(" audit records dropped")),
        "{seen:?}"
    );
    drop(conn);
    // Read now: the queued lines come out, then the exit message with the counts.
    let drain = std::thread::spawn(move || {
        use std::io::Read as _;
        let mut err = String::new();
        let mut stderr = stderr;
        stderr.read_to_string(&mut err).unwrap();
        err
    });
    let (status, _) = helper.stop();
    let err = drain.join().unwrap();
    assert!(status.success(), "{err}");
    let (dropped, written) = dropped_and_written(&err);
    assert!(dropped > 0, "{err}");
    assert_eq!(
        dropped + written,
        REQUESTS,
        "every record written or counted"
    );
    let lines = err
        .lines()
        .filter(|l| l.starts_with("qemu-pr-helper: audit: REGISTER "))
        .count();
    assert_eq!(lines, written, "whole lines, as many as written");
}
