//! The stderr sink: a serving thread only queues its record's line; one writer thread writes
//! the lines. A stderr that nobody reads (a full pipe) holds up the writer alone: the queue
//! is bounded, and a line that finds it full is dropped and counted, as the journal's are.

use std::os::fd::{AsFd as _, BorrowedFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use rustix::io::Errno;

use super::Counters;

/// Lines held at most, queued or being written (about 400 KiB of typical records).
pub(super) const QUEUE_LINES: usize = 1024;

/// Where the lines go.
#[derive(Debug)]
pub(super) enum Output {
    /// File descriptor 2.
    Stderr,
    /// Another descriptor (tests).
    #[cfg_attr(not(test), allow(dead_code))]
    Fd(OwnedFd),
}

impl Output {
    fn fd(&self) -> BorrowedFd<'_> {
        match self {
            Output::Stderr => rustix::stdio::stderr(),
            Output::Fd(fd) => fd.as_fd(),
        }
    }
}

/// The queue and its writer.
#[derive(Debug)]
pub(super) struct StderrQueue {
    shared: Arc<Shared>,
    /// Whether the writer thread runs: started at the first line, from a serving thread, so
    /// that it is made after the sandbox is installed and inherits it.
    writer: OnceLock<bool>,
}

#[derive(Debug)]
struct Shared {
    state: Mutex<State>,
    /// Lines were queued while the writer slept.
    queued: Condvar,
    /// The queue is empty and no line is being written (told only while a flush waits).
    idle: Condvar,
    out: Output,
    counters: Arc<Counters>,
}

/// What the serving threads and the writer share. The lines wait back to back in one buffer
/// that the writer takes whole and writes with one call: no allocation per record once warm,
/// and no wake-up for a record that finds the writer busy.
#[derive(Debug, Default)]
struct State {
    /// Whole lines, back to back.
    pending: Vec<u8>,
    /// Lines in `pending`.
    lines: usize,
    /// Lines the writer took and is writing.
    writing: usize,
    /// The writer sleeps on `queued`: the next line wakes it.
    writer_asleep: bool,
    /// A flush waits on `idle`.
    flushing: bool,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding it left a queue of whole lines: still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl StderrQueue {
    pub(super) fn new(out: Output, counters: Arc<Counters>) -> StderrQueue {
        StderrQueue {
            shared: Arc::new(Shared {
                state: Mutex::new(State::default()),
                queued: Condvar::new(),
                idle: Condvar::new(),
                out,
                counters,
            }),
            writer: OnceLock::new(),
        }
    }

    /// Queues one line for the writer; false (and counted as dropped) when the queue is full
    /// or there is no writer thread.
    pub(super) fn push(&self, line: &[u8]) -> bool {
        let started = *self.writer.get_or_init(|| {
            let shared = Arc::clone(&self.shared);
            std::thread::Builder::new()
                .name("pr-audit".into())
                .spawn(move || write_lines(&shared))
                .is_ok()
        });
        let mut wake = false;
        let queued = started && {
            let mut state = self.shared.state();
            // The lines the writer holds count: at most QUEUE_LINES wait in all.
            let room = state.lines + state.writing < QUEUE_LINES;
            if room {
                state.pending.extend_from_slice(line);
                state.lines += 1;
                wake = std::mem::take(&mut state.writer_asleep);
            }
            room
        };
        if wake {
            self.shared.queued.notify_one();
        }
        if !queued {
            self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
        queued
    }

    /// Waits until every queued line is written, or `limit` passed; the lines still queued
    /// then are counted as dropped (the process is about to exit without them). At exit.
    pub(super) fn flush(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut state = self.shared.state();
        state.flushing = true;
        while state.lines > 0 || state.writing > 0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                // (The lines being written count when their write ends.)
                let lost = std::mem::take(&mut state.lines);
                state.pending.clear();
                let counters = &self.shared.counters;
                counters.dropped.fetch_add(lost as u64, Ordering::Relaxed);
                break;
            };
            state = match self.shared.idle.wait_timeout(state, left) {
                Ok((state, _)) => state,
                Err(p) => p.into_inner().0,
            };
        }
        state.flushing = false;
    }
}

/// The writer thread: takes every queued line at once and writes them whole, in order, with
/// as few calls as the output takes, waiting as long as it takes.
fn write_lines(shared: &Shared) {
    let mut batch = Vec::new();
    loop {
        let lines = {
            let mut state = shared.state();
            state.writing = 0;
            while state.lines == 0 {
                if state.flushing {
                    shared.idle.notify_all();
                }
                state.writer_asleep = true;
                state = shared.queued.wait(state).unwrap_or_else(|p| p.into_inner());
            }
            state.writer_asleep = false;
            std::mem::swap(&mut batch, &mut state.pending);
            let lines = std::mem::take(&mut state.lines);
            state.writing = lines;
            lines
        };
        let counter = if write_all(shared.out.fd(), &batch) {
            &shared.counters.written
        } else {
            &shared.counters.dropped
        };
        counter.fetch_add(lines as u64, Ordering::Relaxed);
        batch.clear();
    }
}

/// The whole line, in as many writes as the output takes; false on an error (EPIPE: nobody
/// reads any more).
fn write_all(fd: BorrowedFd<'_>, mut bytes: &[u8]) -> bool {
    while !bytes.is_empty() {
        match rustix::io::write(fd, bytes) {
            Ok(0) => return false,
            Ok(n) => bytes = &bytes[n..],
            Err(Errno::INTR) => {}
            Err(_) => return false,
        }
    }
    true
}
