//! The team of threads that serve the event loop, leader/followers style: every thread waits
//! on the one epoll set and runs what it takes from there, SG_IO included, on its own stack.
//! Handing each request to a worker thread and its completion back cost two wake-ups and
//! most of a request's time; running it where it was read costs none. What keeps a slow
//! device from delaying other clients is the rule the event loop keeps with this team: a
//! thread about to run a command that would leave no thread outside one promotes a follower
//! first, so the socket is always served while commands block.
//!
//! Once those commands are done the followers they brought are surplus. Threads beyond what
//! the CPUs can run only compete with the clients for them, and one preempted while it holds
//! a connection delays that client until it runs again; too few, and a thread preempted by
//! the client it just woke leaves nobody to serve the others. Measured on 2 CPUs with the
//! team held at 2, 4 and the 4-6 that preemption used to grow it to (p99 at 64 connections
//! 2.2-3.4, 1.8-3.0 and 5.2-6.0 ms; at 8 connections 2 threads cost 15% of requests/s and
//! 4 did not), a follower now leaves when the team is larger than twice the CPUs and than
//! the commands running plus one.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::conn::Conn;
use crate::backend::{self, ExecOptions, MultipathNote, Outcome, ReplyBuffer, Request};

/// Stack for a thread of the team: the event loop, SG_IO and a trace line need little.
const THREAD_STACK_SIZE: usize = 128 * 1024;

/// A complete request that waits for a command slot (every one of `--max-workers` is busy),
/// with the connection it came on: that connection is owned by whoever holds the job.
pub struct Job {
    pub slot: usize,
    pub conn: Conn,
    pub request: Request,
    pub reply: ReplyBuffer,
}

/// Thread accounting of the team.
pub struct Team {
    /// Threads alive, the one that called `run` included.
    threads: AtomicUsize,
    max_threads: usize,
    /// Commands running at once at most (`--max-workers`).
    pub max_running: usize,
    /// Threads worth keeping when no command blocks: twice the CPUs this process may use.
    keep_idle: usize,
}

impl Team {
    /// A team of one thread (the caller's). `max_workers` threads may run commands at once;
    /// one more keeps serving the socket while they all block. `cpus`: the CPUs the process
    /// may use ([`super::limits::usable_cpus`]).
    pub fn new(max_workers: usize, cpus: usize) -> Team {
        let max_running = max_workers.max(1);
        Team {
            threads: AtomicUsize::new(1),
            max_threads: max_running + 1,
            max_running,
            keep_idle: 2 * cpus.max(1),
        }
    }

    /// Whether a follower should leave, with `running` commands in progress: the team is
    /// larger than twice the CPUs and than the commands plus the one thread serving the
    /// socket. Called under the event loop's lock, which also guards `running` and promotion,
    /// so two followers never both leave a team that needs one of them.
    pub fn retire_if_surplus(&self, running: usize) -> bool {
        let keep = self.keep_idle.max(running + 1);
        self.threads
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n > keep).then_some(n - 1)
            })
            .is_ok()
    }

    /// Whether the team may be larger than it needs (a cheap test before taking the lock).
    pub fn beyond_idle_size(&self) -> bool {
        self.threads() > self.keep_idle
    }

    /// Threads alive now.
    pub fn threads(&self) -> usize {
        self.threads.load(Ordering::Acquire)
    }

    /// Starts a follower running `body` unless the team is at its size limit.
    pub fn promote_follower(&self, body: impl FnOnce() + Send + 'static) {
        let grown = self
            .threads
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max_threads).then_some(n + 1)
            });
        if grown.is_err() {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("pr-helper".into())
            .stack_size(THREAD_STACK_SIZE)
            .spawn(body);
        if spawned.is_err() {
            // The caller still serves the socket once its request is done.
            self.threads.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// A follower is exiting.
    pub fn thread_exited(&self) {
        self.threads.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Runs a request on the calling thread, noting what a multipath map's paths did when asked.
/// The device fd closes here, after the command and before the reply, as in C.
pub fn execute(
    request: Request,
    reply: &mut ReplyBuffer,
    exec: &ExecOptions,
) -> (Outcome, Option<MultipathNote>) {
    let done = backend::execute(&request, reply, exec);
    drop::<OwnedFd>(request.device);
    done
}
