//! The command queue: at most `--max-workers` commands run at once; a complete request
//! beyond them waits here, first come first served, until a thread finishing a command runs
//! it. Lives under the event loop's lock.

use std::collections::VecDeque;

use super::workers::Job;

pub struct Commands {
    /// Commands running now, at most `max_running`.
    running: usize,
    max_running: usize,
    /// Requests waiting for a command slot.
    queued: VecDeque<Job>,
}

impl Commands {
    pub fn new(max_running: usize) -> Commands {
        Commands {
            running: 0,
            max_running,
            queued: VecDeque::new(),
        }
    }

    /// Commands running now.
    pub fn running(&self) -> usize {
        self.running
    }

    /// Requests waiting.
    pub fn queued(&self) -> usize {
        self.queued.len()
    }

    /// Gives `job` a command slot (then it is returned, counted as running), or queues it
    /// when all are taken or others wait already (then `None`).
    pub fn admit(&mut self, job: Job) -> Option<Job> {
        // Behind queued requests, not before them.
        if self.running < self.max_running && self.queued.is_empty() {
            self.running += 1;
            Some(job)
        } else {
            self.queued.push_back(job);
            None
        }
    }

    /// The first queued request, counted as running, if a command slot is free.
    pub fn next(&mut self) -> Option<Job> {
        if self.running >= self.max_running {
            return None;
        }
        let job = self.queued.pop_front()?;
        self.running += 1;
        Some(job)
    }

    /// A command is done.
    pub fn finished(&mut self) {
        self.running -= 1;
    }
}
