//! Trace points for `-T`: QEMU's `[enable=]PATTERN,events=FILE,file=FILE` syntax over this
//! program's own events, printed like QEMU's log backend (`tid@sec.usec:name args`).
//!
//! A disabled point costs one relaxed atomic load: the message is only formatted when enabled.

use std::fmt::Write as _;
use std::io::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! trace_points {
    ($($variant:ident = $name:literal, $doc:literal;)*) => {
        /// Every trace point, in `-T help` order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        #[repr(u8)]
        pub enum TracePoint { $(#[doc = $doc] $variant,)* }

        impl TracePoint {
            /// All points.
            pub const ALL: &'static [TracePoint] = &[$(TracePoint::$variant,)*];
            /// The name patterns match against.
            pub fn name(self) -> &'static str {
                match self { $(TracePoint::$variant => $name,)* }
            }
            /// What the point reports.
            pub fn description(self) -> &'static str {
                match self { $(TracePoint::$variant => $doc,)* }
            }
        }
    };
}

trace_points! {
    Listen = "pr_helper_listen", "listening socket ready (bound or inherited from systemd)";
    Accept = "pr_helper_accept", "connection accepted, with the peer's pid, uid and gid";
    Negotiate = "pr_helper_negotiate", "client's requested feature word";
    Request = "pr_helper_request", "request received: opcode, service action, transfer length";
    SgioIssue = "pr_helper_sgio_issue", "SG_IO about to be issued";
    SgioDone = "pr_helper_sgio_done", "SG_IO completed: device, host and driver status, duration";
    Reply = "pr_helper_reply", "reply queued: status and payload size";
    Close = "pr_helper_close", "connection closed, with the reason";
    Shutdown = "pr_helper_shutdown", "termination signal received";
}

static ENABLED: AtomicU64 = AtomicU64::new(0);
static SINK: Mutex<Option<std::fs::File>> = Mutex::new(None);

/// Whether `point` is enabled.
#[inline]
pub fn enabled(point: TracePoint) -> bool {
    ENABLED.load(Ordering::Relaxed) & (1 << point as u8) != 0
}

/// Prints `point` with the arguments `args()` builds, if it is enabled.
#[inline]
pub fn emit(point: TracePoint, args: impl FnOnce() -> String) {
    if enabled(point) {
        write_line(point, &args());
    }
}

fn write_line(point: TracePoint, args: &str) {
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    let mut line = String::with_capacity(64 + args.len());
    let _ = writeln!(
        line,
        "{}@{}.{:06}:{} {}",
        rustix::thread::gettid().as_raw_nonzero(),
        now.tv_sec,
        now.tv_nsec / 1000,
        point.name(),
        args
    );
    let mut sink = SINK.lock().unwrap_or_else(|p| p.into_inner());
    // Tracing must never take the daemon down: write errors are dropped.
    let _ = match sink.as_mut() {
        Some(file) => file.write_all(line.as_bytes()),
        None => std::io::stderr().write_all(line.as_bytes()),
    };
}

/// Why tracing could not start, worded as QEMU words it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActivateError {
    /// `events=FILE` unreadable: `FILE: strerror`, which QEMU prints after `PROG:` with no
    /// space (its error location is the file).
    Events(String),
    /// `file=FILE` cannot be created: `Error opening logfile FILE: strerror`.
    Output(String),
}

impl ActivateError {
    /// The line QEMU prints for it, after the program name `prog`.
    pub fn line(&self, prog: &str) -> String {
        match self {
            ActivateError::Events(m) => format!("{prog}:{m}\n"),
            ActivateError::Output(m) => format!("{prog}: {m}\n"),
        }
    }
}

/// What the `-T` options asked for, accumulated over repeated options.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TraceConfig {
    /// Patterns in order; a leading `-` disables what it matches.
    pub patterns: Vec<String>,
    /// `events=FILE` files, read at start-up.
    pub events_files: Vec<String>,
    /// `file=FILE`: where trace lines go instead of stderr.
    pub output: Option<String>,
    /// `-T help` was given.
    pub help: bool,
}

impl TraceConfig {
    /// Adds one `-T` argument: `[enable=]PATTERN`, `events=FILE`, `file=FILE`, comma-separated.
    ///
    /// # Errors
    /// QEMU's message for an unknown key: `Invalid parameter 'KEY'`.
    pub fn add(&mut self, opts: &str) -> Result<(), String> {
        for (i, item) in opts.split(',').enumerate() {
            match item.split_once('=') {
                None if i == 0 => {
                    if item == "help" {
                        self.help = true;
                    } else if !item.is_empty() {
                        self.patterns.push(item.to_owned());
                    }
                }
                None => return Err(format!("Invalid parameter '{item}'")),
                Some(("enable", pattern)) => {
                    if pattern == "help" {
                        self.help = true;
                    } else {
                        self.patterns.push(pattern.to_owned());
                    }
                }
                Some(("events", file)) => self.events_files.push(file.to_owned()),
                Some(("file", file)) => self.output = Some(file.to_owned()),
                Some((key, _)) => return Err(format!("Invalid parameter '{key}'")),
            }
        }
        Ok(())
    }

    /// Reads the events files, opens the output file and turns the matching points on.
    ///
    /// File names are arguments as `cli::argbytes` encodes them: opened as their bytes, and
    /// quoted so in the message.
    ///
    /// # Errors
    /// A file that cannot be read or created, with QEMU's message (see [`ActivateError`]).
    pub fn activate(&self) -> Result<(), ActivateError> {
        use crate::cli::argbytes;
        let mut patterns: Vec<String> = Vec::new();
        for file in &self.events_files {
            let text = std::fs::read_to_string(argbytes::decode(file)).map_err(|e| {
                ActivateError::Events(format!("{file}: {}", crate::errors::strerror(&e)))
            })?;
            patterns.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(String::from),
            );
        }
        patterns.extend(self.patterns.iter().cloned());
        if let Some(path) = &self.output {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(true)
                .open(argbytes::decode(path))
                .map_err(|e| {
                    ActivateError::Output(format!(
                        "Error opening logfile {path}: {}",
                        crate::errors::strerror(&e)
                    ))
                })?;
            *SINK.lock().unwrap_or_else(|p| p.into_inner()) = Some(file);
        }
        let mut mask = 0u64;
        for pattern in &patterns {
            let (disable, glob) = match pattern.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, pattern.as_str()),
            };
            for point in TracePoint::ALL {
                if glob_match(glob.as_bytes(), point.name().as_bytes()) {
                    if disable {
                        mask &= !(1 << *point as u8);
                    } else {
                        mask |= 1 << *point as u8;
                    }
                }
            }
        }
        ENABLED.store(mask, Ordering::Relaxed);
        Ok(())
    }
}

/// The `-T help` listing: one trace point name a line, as QEMU prints its events.
pub fn help_text() -> String {
    let mut out = String::new();
    for point in TracePoint::ALL {
        let _ = writeln!(out, "{}", point.name());
    }
    out
}

/// Shell-style glob with `*` and `?`, as QEMU's `g_pattern_match_simple`.
pub fn glob_match(pattern: &[u8], name: &[u8]) -> bool {
    let (mut p, mut n) = (0, 0);
    let (mut star, mut star_n) = (None, 0);
    while n < name.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == name[n]) {
            p += 1;
            n += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some(p);
            star_n = n;
            p += 1;
        } else if let Some(s) = star {
            p = s + 1;
            star_n += 1;
            n = star_n;
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match(b"pr_helper_*", b"pr_helper_accept"));
        assert!(glob_match(b"*sgio*", b"pr_helper_sgio_done"));
        assert!(glob_match(b"pr_helper_acc?pt", b"pr_helper_accept"));
        assert!(!glob_match(b"pr_helper_a", b"pr_helper_accept"));
        assert!(glob_match(b"*", b""));
    }

    #[test]
    fn option_syntax() {
        let mut c = TraceConfig::default();
        c.add("pr_helper_*,file=/tmp/t").unwrap();
        c.add("enable=-pr_helper_sgio*").unwrap();
        c.add("events=/x").unwrap();
        assert_eq!(c.patterns, vec!["pr_helper_*", "-pr_helper_sgio*"]);
        assert_eq!(c.output.as_deref(), Some("/tmp/t"));
        assert_eq!(c.events_files, vec!["/x"]);
        assert_eq!(
            c.add("enable=foo,bogus=1"),
            Err("Invalid parameter 'bogus'".into())
        );
        let mut h = TraceConfig::default();
        h.add("help").unwrap();
        assert!(h.help);
    }

    #[test]
    fn help_lists_every_point() {
        let text = help_text();
        assert_eq!(text.lines().count(), TracePoint::ALL.len());
        assert!(text.contains("pr_helper_sgio_done\n"));
    }
}
