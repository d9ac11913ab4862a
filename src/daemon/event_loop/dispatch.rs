//! Admission and execution: a complete request gets a command slot (or waits in the queue
//! for one), runs in the thread that read it, SG_IO included, and starts its reply; the
//! `-v` note and the `--audit` record follow the reply. The loop around it
//! ([`super`]) owns waiting and the connections.

use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, MutexGuard};

use super::{Local, Shared, State};
use crate::cli::argbytes::print_error;
use crate::daemon::audit::{self, Audit};
use crate::daemon::conn::{Conn, Step};
use crate::daemon::workers::{self, Job};
use crate::trace::{self, TracePoint};

impl Shared {
    /// Counts a complete request and gives it a command slot, or queues it when all
    /// `--max-workers` are taken (then `None`: a thread finishing a command runs it).
    ///
    /// A command may block for as long as the device takes, so when it would leave no
    /// thread outside a command, a follower is promoted first: a thread outside a command
    /// only does non-blocking socket I/O and is back in `epoll_wait` within microseconds, so
    /// a slow device never delays other clients. Threads are not added merely because all
    /// are busy: on a loaded machine they would only lengthen the run queue.
    pub(super) fn admit(self: &Arc<Self>, job: Job) -> Option<Job> {
        let mut state = self.state();
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        state.stats.requests += 1;
        let admitted = state.commands.admit(job);
        if admitted.is_some() {
            self.take_command_slot(state);
        } else {
            self.queued
                .store(state.commands.queued(), Ordering::Release);
        }
        admitted
    }

    /// A queued request, if a command slot is free.
    pub(super) fn next_queued(self: &Arc<Self>) -> Option<Job> {
        let mut state = self.state();
        let job = state.commands.next()?;
        self.queued
            .store(state.commands.queued(), Ordering::Release);
        self.take_command_slot(state);
        Some(job)
    }

    /// After a command was counted as running, promotes a follower if no thread would be
    /// left outside a command.
    fn take_command_slot(self: &Arc<Self>, state: MutexGuard<'_, State>) {
        let promote = state.commands.running() >= self.team.threads();
        drop(state);
        if promote {
            let shared = Arc::clone(self);
            self.team.promote_follower(move || {
                if !shared.serve(&mut Local::new(), true) {
                    shared.team.thread_exited();
                }
            });
        }
    }

    pub(super) fn run_job(self: &Arc<Self>, job: Job, local: &mut Local) {
        let slot = job.slot;
        let (conn, step) = self.execute(job);
        self.drive(slot, conn, step, local);
    }

    /// Runs an admitted request, gives the command slot back, and starts the reply.
    pub(super) fn execute(&self, job: Job) -> (Conn, Step) {
        let Job {
            slot,
            mut conn,
            request,
            mut reply,
        } = job;
        if self.opts.test_wedge.as_ref().is_some_and(|f| f.exists()) {
            let _held = self.state();
            loop {
                std::thread::park();
            }
        }
        if let Some(path) = &self.opts.test_open {
            let opened = rustix::fs::open(
                path,
                rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            );
            let outcome = match opened {
                Ok(_) => "opened".to_owned(),
                Err(e) => crate::errors::strerror(&e.into()),
            };
            let path = crate::cli::argbytes::path(path);
            print_error(&format!(
                "{}: test open of {path}: {outcome}\n",
                self.opts.prog
            ));
        }
        let pending = match &self.opts.audit {
            Some(a) if a.wants(&request.cdb) => Some(audit::Pending::capture(
                &request.cdb,
                request.device.as_fd(),
                reply.payload(),
            )),
            _ => None,
        };
        let (outcome, note) = workers::execute(request, &mut reply, &self.opts.exec);
        let sense = match &pending {
            Some(_) if outcome.status == crate::scsi::status::CHECK_CONDITION => {
                crate::scsi::sense::decode(
                    &reply.wire(outcome.wire_len())
                        [8..crate::protocol::PR_HELPER_REPLY_HEADER_SIZE],
                )
            }
            _ => None,
        };
        let (status, size) = (outcome.status, outcome.payload_len);
        trace::emit(TracePoint::Reply, || {
            format!("conn={slot} status=0x{status:02x} size={size}")
        });
        // Before the reply: the send wakes the client, which may preempt this thread, and a
        // preempted thread counted as running a command would make others promote followers.
        self.state().commands.finished();
        let step = conn.start_reply(reply, outcome.wire_len());
        // The -v log of a multipath command after the reply is on its way (stderr may be a
        // slow pipe), and before the request stops counting as in flight, so a shutdown
        // waits for it.
        if let Some(note) = note.as_ref().filter(|_| self.opts.log_verbose) {
            let mut text = String::new();
            for line in note.report.lines() {
                text.push_str(&format!("{}: {}: {line}\n", self.opts.prog, note.map));
            }
            print_error(&text);
        }
        // The audit record likewise, read from /proc and /sys and written after the reply.
        if let (Some(audit), Some(pending)) = (&self.opts.audit, pending) {
            self.audit_record(audit, &mut conn, &pending, outcome.status, sense, note);
        }
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.finish_if_done();
        (conn, step)
    }

    /// Writes the audit record of a command whose reply is on its way; the peer was read
    /// when it connected, the device's names are read at its first command on it.
    fn audit_record(
        &self,
        audit: &Audit,
        conn: &mut Conn,
        pending: &audit::Pending,
        status: u8,
        sense: Option<crate::scsi::sense::SenseCode>,
        note: Option<crate::backend::MultipathNote>,
    ) {
        let duration = pending.started.elapsed();
        let state = conn
            .audit
            .get_or_insert_with(|| Box::new(audit::conn_audit(&conn.sock)));
        let audit::ConnAudit {
            peer,
            device: cache,
        } = &mut **state;
        let device = pending
            .rdev
            .filter(|_| pending.block)
            .map(|rdev| audit::device_info(cache, rdev, std::path::Path::new("/sys")));
        let mut paths: Vec<String> = Vec::new();
        let devs = note.iter().flat_map(|n| &n.report.paths);
        for dev in devs.map(|c| c.dev.to_string()) {
            if !paths.contains(&dev) {
                paths.push(dev);
            }
        }
        let record = audit::Record {
            peer,
            pending,
            device,
            status,
            sense,
            paths,
            duration,
        };
        if !audit.emit(&record) {
            self.state().stats.audit_dropped = audit.dropped();
        }
    }
}
