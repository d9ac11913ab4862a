//! A bounded pool of threads that run requests, since SG_IO blocks for as long as the device
//! takes. The event loop hands a [`Job`] over and learns of its completion through an eventfd
//! on its epoll set, so neither side ever waits for the other.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use rustix::event::{EventfdFlags, eventfd};

use crate::backend::{self, ExecOptions, Outcome, ReplyBuffer, Request};

/// Stack for a worker: SG_IO and a trace line need little.
const WORKER_STACK_SIZE: usize = 128 * 1024;

/// A request travelling to a worker and back with its reply.
pub struct Job {
    /// The connection it belongs to.
    pub token: usize,
    /// Taken (and the device fd closed) once the command has run.
    pub request: Option<Request>,
    pub reply: ReplyBuffer,
    /// Set by the worker.
    pub outcome: Option<Outcome>,
}

struct Queue {
    jobs: VecDeque<Job>,
    idle: usize,
    stopping: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    work_ready: Condvar,
    done: Mutex<Vec<Job>>,
    done_event: OwnedFd,
    exec: ExecOptions,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A worker never panics while holding these locks; if one did, the data is still valid.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The pool: threads are spawned on demand up to `max_threads` and then kept.
pub struct Pool {
    shared: Arc<Shared>,
    threads: usize,
    max_threads: usize,
}

impl Pool {
    /// A pool with no thread yet.
    ///
    /// # Errors
    /// The completion eventfd could not be created.
    pub fn new(max_threads: usize, exec: ExecOptions) -> io::Result<Pool> {
        let done_event = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)?;
        Ok(Pool {
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue {
                    jobs: VecDeque::new(),
                    idle: 0,
                    stopping: false,
                }),
                work_ready: Condvar::new(),
                done: Mutex::new(Vec::new()),
                done_event,
                exec,
            }),
            threads: 0,
            max_threads: max_threads.max(1),
        })
    }

    /// The eventfd that becomes readable when jobs have completed.
    pub fn completion_fd(&self) -> BorrowedFd<'_> {
        self.shared.done_event.as_fd()
    }

    /// Queues a job, starting a thread when every existing one is busy.
    pub fn submit(&mut self, job: Job) {
        let need_thread = {
            let mut q = lock(&self.shared.queue);
            q.jobs.push_back(job);
            q.jobs.len() > q.idle && self.threads < self.max_threads
        };
        if need_thread {
            let shared = Arc::clone(&self.shared);
            let spawned = std::thread::Builder::new()
                .name("pr-worker".into())
                .stack_size(WORKER_STACK_SIZE)
                .spawn(move || worker(&shared));
            match spawned {
                Ok(_) => self.threads += 1,
                // With no thread at all the job would wait forever: run it here instead.
                Err(_) if self.threads == 0 => run_queued_inline(&self.shared),
                Err(_) => {}
            }
        }
        self.shared.work_ready.notify_one();
    }

    /// Moves completed jobs into `out` and re-arms the eventfd.
    pub fn take_completed(&self, out: &mut Vec<Job>) {
        let mut counter = [0u8; 8];
        let _ = rustix::io::read(&self.shared.done_event, &mut counter);
        out.append(&mut lock(&self.shared.done));
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        lock(&self.shared.queue).stopping = true;
        self.shared.work_ready.notify_all();
    }
}

fn run_queued_inline(shared: &Shared) {
    while let Some(job) = lock(&shared.queue).jobs.pop_front() {
        complete(shared, run(job, &shared.exec));
    }
}

fn run(mut job: Job, exec: &ExecOptions) -> Job {
    if let Some(request) = job.request.take() {
        job.outcome = Some(backend::execute(&request, &mut job.reply, exec));
        // The device fd closes here, after the command and before the reply, as in C.
    }
    job
}

fn complete(shared: &Shared, job: Job) {
    let first = {
        let mut done = lock(&shared.done);
        done.push(job);
        done.len() == 1
    };
    // One wake-up per batch: the loop drains everything that is done when it reads the fd.
    if first {
        let _ = rustix::io::write(&shared.done_event, &1u64.to_ne_bytes());
    }
}

fn worker(shared: &Shared) {
    loop {
        let job = {
            let mut q = lock(&shared.queue);
            loop {
                if let Some(job) = q.jobs.pop_front() {
                    break job;
                }
                if q.stopping {
                    return;
                }
                q.idle += 1;
                q = shared.work_ready.wait(q).unwrap_or_else(|p| p.into_inner());
                q.idle -= 1;
            }
        };
        complete(shared, run(job, &shared.exec));
    }
}
