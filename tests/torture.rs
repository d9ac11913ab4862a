//! Clients that misbehave must cost the daemon nothing but their own connection: slow
//! senders, clients that never read, clients that die, and a long run that must leak no
//! descriptor and no memory. Bounded in count; no outcome depends on the machine's speed:
//! the tests wait on conditions (replies, /proc, the daemon's trace), and their time limits
//! are hang guards only.

mod common;

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use common::*;
use pr_helper::Connection;

const TIMEOUT: Option<Duration> = Some(Duration::from_secs(10));

/// Hang guard of the waits on a condition: only a daemon that never gets there reaches it.
const GUARD: Duration = Duration::from_secs(60);

/// The daemon's descriptors above stdio, when none is a client's connection (a socket
/// other than its listening one): those of a daemon that has closed every connection whose
/// client left.
fn fds_without_connections(pid: u32) -> Result<usize, Vec<String>> {
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().parse::<u32>().unwrap_or(0) > 2)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .collect();
    match fds.iter().filter(|l| l.starts_with("socket:")).count() {
        1 => Ok(fds.len()),
        _ => Err(fds),
    }
}

/// The daemon's descriptors above stdio once it serves and has closed every connection whose
/// client left: polls /proc for it (the hang guard fails a daemon that never closes them).
/// Serving first: the socket accepts before the event loop's epoll set and eventfd exist,
/// and a count taken then was two short (seen under parallel tests). The feature word comes
/// from the event loop.
fn settled_fd_count(helper: &Helper) -> usize {
    drop(Connection::connect(&helper.socket, TIMEOUT).expect("the daemon serves"));
    let pid = helper.pid();
    let start = Instant::now();
    loop {
        match fds_without_connections(pid) {
            Ok(count) => return count,
            Err(fds) => assert!(
                start.elapsed() < GUARD,
                "the daemon never closed its clients' connections: {fds:?}"
            ),
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until the daemon, its clients gone, holds `before` descriptors again: a descriptor
/// of theirs that it kept (a leak) fails at the hang guard.
fn assert_fds_back_to(pid: u32, before: usize) {
    let start = Instant::now();
    loop {
        let now = fds_without_connections(pid);
        if now == Ok(before) {
            return;
        }
        assert!(
            start.elapsed() < GUARD,
            "descriptors leaked: {before} before, now {now:?} ({:?})",
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .unwrap()
                .flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Requests back to back on one connection for `device` (/dev/null or /dev/zero: SG_IO fails
/// on both alike); every reply must be that answer.
fn hammer(socket: &std::path::Path, count: usize, device: &str) {
    let mut conn = Connection::connect(socket, TIMEOUT).unwrap();
    let null = open_rw(device);
    for i in 0..count {
        let reply = conn
            .request(&pr_in((i % 4) as u8, 24), null.as_fd(), &[])
            .unwrap();
        assert_eq!(reply.status(), 2);
    }
}

/// Ten slow senders each hold a request half sent while a fast client makes its requests:
/// they send one more byte after every 20 of its replies, and their last only after its
/// last reply, so every one of its 300 requests is answered while the daemon holds ten
/// incomplete requests. A daemon that waited on a slow sender's next byte would never
/// answer the fast client (the slow sender's byte waits for that answer): its receive
/// timeout fails the test.
#[test]
fn slow_senders_do_not_delay_others() {
    const REQUESTS: usize = 300;
    const SLOW: usize = 10;
    let helper = Helper::start(Impl::Ours, &[]);
    let cdb = pr_in(0, 24);
    let null = open_rw("/dev/null");
    let mut slow: Vec<Connection> = (0..SLOW)
        .map(|_| {
            let conn = Connection::connect(&helper.socket, TIMEOUT).unwrap();
            send_fds(conn.socket(), &cdb[..1], &[null.as_fd()]);
            conn
        })
        .collect();
    // The fast client on /dev/zero (1:5), which nothing else here uses: see
    // docs/testing.md for PR_HELPER_TEST_SGIO_DELAY_MS=MS@1:5, which holds it alone.
    let mut fast = Connection::connect(&helper.socket, TIMEOUT).unwrap();
    let zero = open_rw("/dev/zero");
    let per_byte = REQUESTS / (cdb.len() - 1);
    let mut sent = 1;
    let start = Instant::now();
    for i in 1..=REQUESTS {
        let reply = fast
            .request(&pr_in((i % 4) as u8, 24), zero.as_fd(), &[])
            .expect("the fast client was not answered beside the slow senders");
        assert_eq!(reply.status(), 2);
        // One more byte each, all but the last.
        if i % per_byte == 0 && sent < cdb.len() - 1 {
            for conn in &slow {
                send(conn.socket(), &cdb[sent..=sent]);
            }
            sent += 1;
        }
    }
    let fast_time = start.elapsed();
    assert_eq!(sent, cdb.len() - 1, "the slow senders were not mid-request");
    // Now the slow senders finish, and are answered too.
    for conn in &mut slow {
        send(conn.socket(), &cdb[sent..]);
        assert_eq!(conn.read_reply(8192).unwrap().status(), 2);
    }
    eprintln!("{REQUESTS} requests in {fast_time:?} beside {SLOW} slow senders");
    let (status, _) = helper.stop();
    assert!(status.success());
}

#[test]
fn clients_that_never_read_cost_only_their_connection() {
    let helper = Helper::start(Impl::Ours, &[]);
    let before = settled_fd_count(&helper);
    // Pipeline thousands of requests and never read: replies pile up until the socket buffer
    // is full, then that connection waits. The loop must not block on it.
    let greedy = Connection::connect(&helper.socket, TIMEOUT).unwrap();
    let null = open_rw("/dev/null");
    rustix::net::sockopt::set_socket_timeout(
        greedy.socket(),
        rustix::net::sockopt::Timeout::Send,
        Some(Duration::from_millis(500)),
    )
    .unwrap();
    let mut sent = 0;
    for _ in 0..20_000 {
        let fds = [null.as_fd()];
        let mut space = [std::mem::MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
        control.push(rustix::net::SendAncillaryMessage::ScmRights(&fds));
        match rustix::net::sendmsg(
            greedy.socket(),
            &[std::io::IoSlice::new(&pr_in(0, 24))],
            &mut control,
            rustix::net::SendFlags::NOSIGNAL,
        ) {
            Ok(16) => sent += 1,
            _ => break,
        }
    }
    assert!(sent > 10, "sent {sent}");
    hammer(&helper.socket, 500, "/dev/null");
    drop(greedy);
    // Its descriptors (socket and queued device fds) all go away with it.
    assert_fds_back_to(helper.pid(), before);
    hammer(&helper.socket, 10, "/dev/null");
}

#[test]
fn clients_dying_at_every_phase() {
    let helper = Helper::start(Impl::Ours, &[]);
    let before = settled_fd_count(&helper);
    for round in 0..200 {
        let sock = raw_connect(&helper.socket);
        match round % 5 {
            0 => {} // before reading the feature word
            1 => {
                let _ = read_next(sock.as_fd(), 4, Duration::from_secs(5));
                send(sock.as_fd(), &[0, 0]); // mid-negotiation
            }
            2 => {
                let _ = read_next(sock.as_fd(), 4, Duration::from_secs(5));
                send(sock.as_fd(), &[0; 4]);
                send_fds(
                    sock.as_fd(),
                    &pr_in(0, 24)[..9],
                    &[open_rw("/dev/null").as_fd()],
                ); // mid-CDB
            }
            3 => {
                let _ = read_next(sock.as_fd(), 4, Duration::from_secs(5));
                send(sock.as_fd(), &[0; 4]);
                send_fds(
                    sock.as_fd(),
                    &pr_out(0, 0, 24),
                    &[open_rw("/dev/null").as_fd()],
                );
                send(sock.as_fd(), &[0; 7]); // mid-parameter list
            }
            _ => {
                let _ = read_next(sock.as_fd(), 4, Duration::from_secs(5));
                send(sock.as_fd(), &[0; 4]);
                send_fds(
                    sock.as_fd(),
                    &pr_in(0, 8192),
                    &[open_rw("/dev/null").as_fd()],
                ); // before the reply is read
            }
        }
        drop(sock);
    }
    hammer(&helper.socket, 100, "/dev/null");
    assert_fds_back_to(helper.pid(), before);
}

#[test]
#[ignore = "heavy tier: 1,000,000 requests (about 30 s); tests/run-all.sh runs it"]
fn a_long_run_leaks_no_descriptor_and_no_memory() {
    let helper = Helper::start(Impl::Ours, &[]);
    // Warm up: worker threads and buffers exist after this.
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| hammer(&helper.socket, 2_000, "/dev/null"));
        }
    });
    let fds = settled_fd_count(&helper);
    let rss = rss_kib(helper.pid());
    std::thread::scope(|s| {
        for _ in 0..8 {
            s.spawn(|| hammer(&helper.socket, 125_000, "/dev/null"));
        }
    });
    assert_fds_back_to(helper.pid(), fds);
    let rss_after = rss_kib(helper.pid());
    eprintln!("1,000,000 requests: {fds} descriptors, RSS {rss} -> {rss_after} KiB");
    assert!(
        rss_after <= rss + 256,
        "RSS grew from {rss} to {rss_after} KiB"
    );
}

/// The trace lines of `file` that name `point`, by their place in the file (the daemon
/// writes them under one lock, in the order it emits them).
fn trace_places(trace: &str, point: &str) -> Vec<usize> {
    trace
        .lines()
        .enumerate()
        .filter(|(_, l)| l.split_once(':').is_some_and(|(_, r)| r.starts_with(point)))
        .map(|(i, _)| i)
        .collect()
}

/// SIGTERM with 64 requests in flight: the daemon answers every one, then exits 0 and
/// removes its socket. In flight is read in the daemon's trace, not timed: the shutdown
/// line comes after all 64 request lines and before every reply line.
///
/// PR_HELPER_TEST_SGIO_DELAY_MS holds each command (every build; see docs/testing.md) so
/// that the signal can come while they are held. A run whose trace shows a reply before the
/// shutdown (the machine was too slow to signal within the hold) proves nothing either way:
/// it is run again with a longer hold.
#[test]
fn sigterm_answers_every_request_in_flight() {
    for hold_ms in [1500, 5000, 20000] {
        if sigterm_with_requests_held(hold_ms) {
            return;
        }
        eprintln!("a reply came before SIGTERM with commands held {hold_ms} ms: again, longer");
    }
    panic!("SIGTERM never reached the daemon while its requests were held");
}

/// One run of [`sigterm_answers_every_request_in_flight`]; false when its trace shows the
/// signal came after a reply.
fn sigterm_with_requests_held(hold_ms: u64) -> bool {
    const REQUESTS: usize = 64;
    let scratch = Scratch::new("inflight");
    let trace = scratch.path("trace");
    let trace_opt = format!("pr_helper_request,file={}", trace.display());
    let hold = hold_ms.to_string();
    let mut helper = Helper::start_with_env(
        Impl::Ours,
        &[
            "-T",
            &trace_opt,
            "-T",
            "pr_helper_reply",
            "-T",
            "pr_helper_shutdown",
        ],
        &[("PR_HELPER_TEST_SGIO_DELAY_MS", &hold)],
    );
    let null = open_rw("/dev/null");
    let mut conns: Vec<Connection> = (0..REQUESTS)
        .map(|_| Connection::connect(&helper.socket, TIMEOUT).unwrap())
        .collect();
    for conn in &conns {
        pr_helper::send_with_fd(conn.socket(), &pr_in(0, 24), null.as_fd()).unwrap();
    }
    // Every request has reached a worker once the daemon has traced all 64.
    let read_trace = || std::fs::read_to_string(&trace).unwrap_or_default();
    let sent = Instant::now();
    while trace_places(&read_trace(), "pr_helper_request").len() < REQUESTS {
        assert!(sent.elapsed() < GUARD, "requests never arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    let socket = helper.socket.clone();
    signal(helper.pid(), 15);
    // Every request in flight gets its reply: a receive timeout is the hang guard.
    for conn in &mut conns {
        rustix::net::sockopt::set_socket_timeout(
            conn.socket(),
            rustix::net::sockopt::Timeout::Recv,
            Some(GUARD),
        )
        .unwrap();
        let reply = conn
            .read_reply(8192)
            .expect("a request in flight lost its reply");
        assert_eq!(reply.status(), 2);
    }
    let status = wait_timeout(&mut helper.child, GUARD).expect("no exit after SIGTERM");
    assert!(status.success(), "{status}");
    assert!(!socket.exists());
    let text = read_trace();
    let requests = trace_places(&text, "pr_helper_request");
    let replies = trace_places(&text, "pr_helper_reply");
    let shutdown = trace_places(&text, "pr_helper_shutdown");
    assert_eq!(
        (requests.len(), replies.len(), shutdown.len()),
        (REQUESTS, REQUESTS, 1),
        "{text}"
    );
    assert!(requests.iter().all(|&r| r < shutdown[0]), "{text}");
    replies.iter().all(|&r| r > shutdown[0])
}
