//! `pr-client bench`: N connections, one thread each, sending requests back to back for a
//! fixed time; requests/s, latency percentiles, errors and a status histogram, and how evenly
//! the connections were served. `--burst`: N clients connect at the same instant and send one
//! request each, as a host failing over many VMs at once; latencies count from that instant.
//!
//! One thread per connection keeps every request strictly synchronous (as QEMU's client is:
//! one outstanding request per connection); threads get small stacks so a few thousand fit.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::os::fd::AsFd as _;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::action::Action;
use super::report::{self, Obj, array, json_str, named};
use super::{ClientError, Connection};
use crate::cli::argbytes::path;
use crate::errors::strerror;
use crate::scsi::pr::{InSa, OutSa, ProutParams};
use crate::scsi::{sense, status};

/// What each request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BenchCommand {
    /// PR IN READ KEYS, allocation length 8192.
    ReadKeys,
    /// PR OUT REGISTER with both keys 0 (a no-op on a device, a full round trip anyway).
    Register,
}

impl BenchCommand {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read-keys" => Some(BenchCommand::ReadKeys),
            "register" => Some(BenchCommand::Register),
            _ => None,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            BenchCommand::ReadKeys => "read-keys",
            BenchCommand::Register => "register",
        }
    }
    fn request(self) -> ([u8; 16], Vec<u8>) {
        let action = match self {
            BenchCommand::ReadKeys => Action::In {
                sa: InSa::ReadKeys,
                allocation_length: 8192,
            },
            BenchCommand::Register => Action::Out {
                sa: OutSa::Register,
                prout_type: 0,
                params: ProutParams::default(),
            },
        };
        action.encode()
    }
}

/// A benchmark run.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchConfig {
    pub socket: PathBuf,
    pub device: PathBuf,
    pub connections: usize,
    pub duration: Duration,
    pub command: BenchCommand,
    pub json: bool,
    pub timeout: Option<Duration>,
    /// Each connection opens at the start signal and sends one request (`--burst`).
    pub burst: bool,
}

/// Status byte and sense code (0/0/0 when there is none).
type StatusKey = (u8, u8, u8, u8);

#[derive(Default)]
struct Tally {
    latencies_ns: Vec<u32>,
    statuses: BTreeMap<StatusKey, u64>,
    errors: BTreeMap<String, u64>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.latencies_ns.extend(other.latencies_ns);
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
    }
}

/// What a run measured.
pub struct BenchResult {
    pub config: BenchConfig,
    pub elapsed: Duration,
    /// Sorted request latencies in nanoseconds.
    latencies_ns: Vec<u32>,
    statuses: BTreeMap<StatusKey, u64>,
    errors: BTreeMap<String, u64>,
    /// Requests answered on each connection, fewest first: a server that lets some clients
    /// jump the queue shows it here before it shows in the percentiles.
    per_connection: Vec<u64>,
}

/// Why a bench could not start.
#[derive(Debug)]
pub enum BenchError {
    Device(PathBuf, std::io::Error),
    Client(ClientError),
    Thread(std::io::Error),
}

impl std::fmt::Display for BenchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BenchError::Device(p, e) => write!(f, "cannot open {}: {}", path(p), strerror(e)),
            BenchError::Client(e) => e.fmt(f),
            BenchError::Thread(e) => write!(f, "cannot start a thread: {}", strerror(e)),
        }
    }
}

impl std::error::Error for BenchError {}

fn open_device(path: &PathBuf) -> Result<std::fs::File, BenchError> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .or_else(|_| std::fs::File::open(path))
        .map_err(|e| BenchError::Device(path.clone(), e))
}

/// Runs the benchmark.
///
/// # Errors
/// The device cannot be opened, the first connection fails, or threads cannot start.
pub fn run(config: &BenchConfig) -> Result<BenchResult, BenchError> {
    let device = Arc::new(open_device(&config.device)?);
    // Fail fast, with the real reason, when the socket is wrong.
    super::check_socket_path(&config.socket).map_err(BenchError::Client)?;
    drop(Connection::connect(&config.socket, config.timeout).map_err(BenchError::Client)?);
    let n = config.connections.max(1);
    let gate = Arc::new(Gate::default());
    let mut handles = Vec::with_capacity(n);
    for _ in 0..n {
        let (device, gate2, cfg) = (Arc::clone(&device), Arc::clone(&gate), config.clone());
        match std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || worker(&cfg, &device, &gate2))
        {
            Ok(h) => handles.push(h),
            Err(e) => {
                gate.open(false);
                return Err(BenchError::Thread(e));
            }
        }
    }
    gate.wait_ready(n);
    let started = gate.open(true);
    let mut total = Tally::default();
    let mut per_connection = Vec::with_capacity(n);
    for h in handles {
        if let Ok(t) = h.join() {
            per_connection.push(t.latencies_ns.len() as u64);
            total.merge(t);
        }
    }
    let elapsed = started.elapsed();
    total.latencies_ns.sort_unstable();
    per_connection.sort_unstable();
    Ok(BenchResult {
        config: config.clone(),
        elapsed,
        latencies_ns: total.latencies_ns,
        statuses: total.statuses,
        errors: total.errors,
        per_connection,
    })
}

/// Start line: workers connect, report ready, and wait for the word to go (or to give up).
#[derive(Default)]
struct Gate {
    /// Workers ready, and the word: to run (from this instant) or to give up.
    state: Mutex<GateState>,
    cv: Condvar,
}

type GateState = (usize, Option<Option<Instant>>);

impl Gate {
    fn lock(&self) -> MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
    /// Waits while `busy` holds of the state, and returns it locked.
    fn wait_while(&self, busy: impl FnMut(&mut GateState) -> bool) -> MutexGuard<'_, GateState> {
        self.cv
            .wait_while(self.lock(), busy)
            .unwrap_or_else(PoisonError::into_inner)
    }
    /// A worker is ready; returns when to start, or `None` to give up.
    fn arrive(&self) -> Option<Instant> {
        self.lock().0 += 1;
        self.cv.notify_all();
        self.wait_while(|s| s.1.is_none()).1.flatten()
    }
    fn wait_ready(&self, n: usize) {
        drop(self.wait_while(|s| s.0 < n));
    }
    /// Gives the word; returns the start instant.
    fn open(&self, go: bool) -> Instant {
        let now = Instant::now();
        self.lock().1 = Some(go.then_some(now));
        self.cv.notify_all();
        now
    }
}

fn worker(cfg: &BenchConfig, device: &std::fs::File, gate: &Gate) -> Tally {
    if cfg.burst {
        return burst_worker(cfg, device, gate);
    }
    let mut tally = Tally::default();
    let (cdb, params) = cfg.command.request();
    let mut conn = Connection::connect(&cfg.socket, cfg.timeout);
    let Some(start) = gate.arrive() else {
        return tally;
    };
    let deadline = start + cfg.duration;
    while Instant::now() < deadline {
        let c = match &mut conn {
            Ok(c) => c,
            Err(e) => {
                *tally.errors.entry(format!("connect: {e}")).or_default() += 1;
                std::thread::sleep(Duration::from_millis(10));
                conn = Connection::connect(&cfg.socket, cfg.timeout);
                continue;
            }
        };
        let t0 = Instant::now();
        let answer = c.request(&cdb, device.as_fd(), &params);
        if answer.is_err() {
            conn = Connection::connect(&cfg.socket, cfg.timeout);
        }
        tally.count(answer, t0);
    }
    tally
}

/// One client of a burst: connects at the start signal, sends one request; its latency
/// counts from the signal, connecting included.
fn burst_worker(cfg: &BenchConfig, device: &std::fs::File, gate: &Gate) -> Tally {
    let mut tally = Tally::default();
    let (cdb, params) = cfg.command.request();
    let Some(start) = gate.arrive() else {
        return tally;
    };
    match Connection::connect(&cfg.socket, cfg.timeout) {
        Ok(mut c) => tally.count(c.request(&cdb, device.as_fd(), &params), start),
        Err(e) => *tally.errors.entry(format!("connect: {e}")).or_default() += 1,
    }
    tally
}

impl Tally {
    /// Counts one answer (or failure) to a request sent at `t0`.
    fn count(&mut self, answer: Result<super::Reply, ClientError>, t0: Instant) {
        match answer {
            Ok(reply) => {
                let ns = u32::try_from(t0.elapsed().as_nanos()).unwrap_or(u32::MAX);
                self.latencies_ns.push(ns);
                let code = report::sense_code(&reply).unwrap_or(sense::NO_SENSE);
                let key = (reply.status(), code.key, code.asc, code.ascq);
                *self.statuses.entry(key).or_default() += 1;
            }
            Err(e) => *self.errors.entry(e.to_string()).or_default() += 1,
        }
    }
}

impl BenchResult {
    pub fn requests(&self) -> u64 {
        self.latencies_ns.len() as u64
    }
    pub fn errors(&self) -> u64 {
        self.errors.values().sum()
    }
    pub fn rate(&self) -> f64 {
        self.requests() as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
    /// The `p` quantile (0..1) in microseconds; 0 without samples.
    pub fn percentile_us(&self, p: f64) -> f64 {
        let n = self.latencies_ns.len();
        if n == 0 {
            return 0.0;
        }
        let rank = ((p * n as f64).ceil() as usize).clamp(1, n);
        f64::from(self.latencies_ns[rank - 1]) / 1000.0
    }
    fn mean_us(&self) -> f64 {
        let n = self.latencies_ns.len().max(1) as f64;
        self.latencies_ns.iter().map(|&x| f64::from(x)).sum::<f64>() / n / 1000.0
    }

    fn status_label((st, key, asc, ascq): StatusKey) -> String {
        let name = status::name(st);
        if st != status::CHECK_CONDITION {
            return name.to_owned();
        }
        let words = report::sense_words(sense::SenseCode { key, asc, ascq });
        format!("{name} {key:02x}/{asc:02x}/{ascq:02x} ({words})")
    }

    /// Human-readable report.
    pub fn text(&self) -> String {
        let c = &self.config;
        let mut o = String::new();
        let (socket, device, command) = (c.socket.display(), c.device.display(), c.command.name());
        let (n, seconds) = (c.connections, self.elapsed.as_secs_f64());
        let plural = if n == 1 { "" } else { "s" };
        let _ = writeln!(
            o,
            "bench: socket {socket}, device {device}, command {command}, {n} connection{plural}, {seconds:.2} s"
        );
        let (requests, rate) = (self.requests(), self.rate());
        let _ = writeln!(o, "  requests: {requests} ({rate:.0} req/s)");
        let _ = writeln!(o, "  errors:   {}", self.errors());
        if c.burst {
            let (n, last) = (c.connections, self.percentile_us(1.0));
            let _ = writeln!(
                o,
                "  burst:    {n} clients at once, last answer after {last:.1} us"
            );
        } else if let (Some(fewest), Some(most)) =
            (self.per_connection.first(), self.per_connection.last())
        {
            let _ = writeln!(o, "  per connection: {fewest} to {most} requests");
        }
        let _ = writeln!(
            o,
            "  latency:  p50 {:.1} us, p99 {:.1} us, p999 {:.1} us (min {:.1}, mean {:.1}, max {:.1})",
            self.percentile_us(0.5),
            self.percentile_us(0.99),
            self.percentile_us(0.999),
            self.percentile_us(0.0),
            self.mean_us(),
            self.percentile_us(1.0)
        );
        let _ = writeln!(o, "  statuses:");
        for (k, n) in &self.statuses {
            let _ = writeln!(o, "    {n:>10}  {}", Self::status_label(*k));
        }
        for (e, n) in &self.errors {
            let _ = writeln!(o, "    {n:>10}  error: {e}");
        }
        o
    }

    /// One JSON object.
    pub fn json(&self) -> String {
        let c = &self.config;
        let lat = Obj::new()
            .num("min", format!("{:.3}", self.percentile_us(0.0)))
            .num("p50", format!("{:.3}", self.percentile_us(0.5)))
            .num("p99", format!("{:.3}", self.percentile_us(0.99)))
            .num("p999", format!("{:.3}", self.percentile_us(0.999)))
            .num("max", format!("{:.3}", self.percentile_us(1.0)))
            .num("mean", format!("{:.3}", self.mean_us()))
            .finish();
        let statuses = self.statuses.iter().map(|(&(st, key, asc, ascq), n)| {
            let sense = if st == status::CHECK_CONDITION {
                Obj::new()
                    .raw("key", named(key, sense::key_name(key)))
                    .num("asc", asc)
                    .num("ascq", ascq)
                    .finish()
            } else {
                "null".to_owned()
            };
            Obj::new()
                .raw("status", named(st, status::name(st)))
                .raw("sense", sense)
                .num("count", n)
                .finish()
        });
        let errors = self
            .errors
            .iter()
            .map(|(e, n)| Obj::new().str("error", e).num("count", n).finish());
        Obj::new()
            .raw("socket", json_str(&c.socket.display().to_string()))
            .raw("device", json_str(&c.device.display().to_string()))
            .str("command", c.command.name())
            .num("connections", c.connections)
            .raw("burst", c.burst.to_string())
            .raw(
                "per_connection",
                Obj::new()
                    .num("min", self.per_connection.first().copied().unwrap_or(0))
                    .num("max", self.per_connection.last().copied().unwrap_or(0))
                    .finish(),
            )
            .num("seconds", format!("{:.3}", self.elapsed.as_secs_f64()))
            .num("requests", self.requests())
            .num("errors", self.errors())
            .num("requests_per_second", format!("{:.1}", self.rate()))
            .raw("latency_us", lat)
            .raw("statuses", array(statuses))
            .raw("error_kinds", array(errors))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(latencies_ns: Vec<u32>) -> BenchResult {
        BenchResult {
            config: BenchConfig {
                socket: "/s".into(),
                device: "/dev/null".into(),
                connections: 1,
                duration: Duration::from_secs(1),
                command: BenchCommand::ReadKeys,
                json: false,
                timeout: None,
                burst: false,
            },
            elapsed: Duration::from_secs(2),
            latencies_ns,
            statuses: BTreeMap::from([((2, 0xb, 0, 6), 1000)]),
            errors: BTreeMap::new(),
            per_connection: vec![1000],
        }
    }

    #[test]
    fn percentiles_and_rate() {
        let r = result((1..=1000).map(|i| i * 1000).collect());
        assert_eq!(r.percentile_us(0.5), 500.0);
        assert_eq!(r.percentile_us(0.99), 990.0);
        assert_eq!(r.percentile_us(0.999), 999.0);
        assert_eq!(r.percentile_us(1.0), 1000.0);
        assert_eq!(r.rate(), 500.0);
        assert_eq!(result(vec![]).percentile_us(0.5), 0.0);
        let text = r.text();
        assert!(
            text.contains("CHECK CONDITION 0b/00/06 (Aborted Command"),
            "{text}"
        );
        assert!(r.json().contains(r#""requests":1000"#));
        assert_eq!(
            BenchCommand::parse("register"),
            Some(BenchCommand::Register)
        );
        assert_eq!(BenchCommand::parse("x"), None);
        let (cdb, params) = BenchCommand::Register.request();
        assert_eq!((cdb[0], cdb[8], params.len()), (0x5f, 24, 24));
    }
}
