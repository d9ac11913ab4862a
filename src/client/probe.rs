//! `pr-client probe` and the command lines of `probe` and `bench`.

use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::args::{self, UsageError};
use super::bench::{BenchCommand, BenchConfig};
use super::report::{self, Obj, exit};
use super::{ClientError, Connection, Reply};
use crate::cli::argbytes;
use crate::cli::getopt::{self, HasArg, OptSpec, Options};
use crate::daemon::DEFAULT_SOCKET;
use crate::scsi::pr::{self, InSa};
use crate::scsi::{sense, status};

/// What a probe saw.
pub struct ProbeReport {
    pub socket: PathBuf,
    pub features: u32,
    pub connect: Duration,
    pub round_trip: Duration,
    pub reply: Reply,
}

impl ProbeReport {
    /// Whether the helper answered READ KEYS on /dev/null as the C helper does: CHECK
    /// CONDITION, sense 0B/00/06 (SG_IO on /dev/null fails with ENOTTY), no payload.
    pub fn healthy(&self) -> bool {
        self.reply.status() == status::CHECK_CONDITION
            && report::sense_code(&self.reply) == Some(sense::IO_ERROR)
            && self.reply.payload.is_empty()
    }
    pub fn exit_status(&self) -> u8 {
        if self.healthy() {
            exit::GOOD
        } else {
            exit::OTHER
        }
    }
    pub fn text(&self) -> String {
        let (socket, features) = (self.socket.display(), self.features);
        let (connect, round_trip) = (us(self.connect), us(self.round_trip));
        let answer = report::status_words(&self.reply);
        let verdict = if self.healthy() {
            "ok"
        } else {
            "MISBEHAVING: expected CHECK CONDITION with sense 0b/00/06 and no payload"
        };
        format!(
            "helper:    {socket}\n\
             features:  0x{features:08x}\n\
             connect:   {connect:.1} us (connect and negotiate)\n\
             request:   PR IN READ KEYS on /dev/null -> {answer} in {round_trip:.1} us\n\
             result:    {verdict}\n"
        )
    }
    pub fn json(&self) -> String {
        Obj::new()
            .str("socket", &self.socket.display().to_string())
            .num("features", self.features)
            .num("connect_us", format!("{:.1}", us(self.connect)))
            .num("round_trip_us", format!("{:.1}", us(self.round_trip)))
            .raw("status", report::status_json(&self.reply))
            .raw("sense", report::sense_json(&self.reply))
            .num("payload_bytes", self.reply.payload.len())
            .bool("ok", self.healthy())
            .finish()
    }
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Connects, negotiates and sends one READ KEYS with /dev/null attached.
///
/// # Errors
/// Connection failures, /dev/null missing, the helper closing the connection.
pub fn probe(socket: &Path, timeout: Option<Duration>) -> Result<ProbeReport, ClientError> {
    let null = std::fs::File::open("/dev/null").map_err(ClientError::Io)?;
    super::check_socket_path(socket)?;
    let t0 = Instant::now();
    let mut conn = Connection::connect(socket, timeout)?;
    let connect = t0.elapsed();
    let t1 = Instant::now();
    let reply = conn.request(&pr::pr_in_cdb(InSa::ReadKeys, 8192), null.as_fd(), &[])?;
    Ok(ProbeReport {
        socket: socket.to_owned(),
        features: conn.helper_features,
        connect,
        round_trip: t1.elapsed(),
        reply,
    })
}

const PROBE_SPECS: &[OptSpec] = &[
    OptSpec::new('h', "help", HasArg::No),
    OptSpec::long_only("socket", HasArg::Required),
    OptSpec::long_only("json", HasArg::No),
    OptSpec::long_only("timeout", HasArg::Required),
];

/// `probe` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    pub socket: PathBuf,
    pub json: bool,
    pub timeout: Duration,
}

/// Reads a subcommand's options as pr-client's sg_persist command line reads its own;
/// `None` means `--help`.
fn read(args: &[String], specs: &[OptSpec]) -> Result<Option<Options>, UsageError> {
    let parsed = getopt::normalize(args, specs, getopt::Order::from_env())
        .map_err(|e| UsageError::syntax(e.to_string()))?;
    let options = Options(parsed);
    Ok((!options.given("help")).then_some(options))
}

/// `--socket`, or the default.
pub fn socket(o: &Options) -> PathBuf {
    PathBuf::from(argbytes::decode(o.last("socket").unwrap_or(DEFAULT_SOCKET)))
}

/// Reads `probe`'s options; `Ok(None)` means `--help`.
///
/// # Errors
/// Usage errors.
pub fn parse_probe(args: &[String]) -> Result<Option<ProbeConfig>, UsageError> {
    let Some(o) = read(args, PROBE_SPECS)? else {
        return Ok(None);
    };
    args::no_more(o.positionals())?;
    Ok(Some(ProbeConfig {
        socket: socket(&o),
        json: o.given("json"),
        timeout: o
            .last("timeout")
            .map_or(Ok(Duration::from_secs(5)), args::timeout)?,
    }))
}

const BENCH_SPECS: &[OptSpec] = &[
    OptSpec::new('h', "help", HasArg::No),
    OptSpec::long_only("socket", HasArg::Required),
    OptSpec::long_only("connections", HasArg::Required),
    OptSpec::long_only("seconds", HasArg::Required),
    OptSpec::long_only("command", HasArg::Required),
    OptSpec::long_only("json", HasArg::No),
    OptSpec::long_only("timeout", HasArg::Required),
    OptSpec::long_only("burst", HasArg::No),
];

/// Most connections `bench` opens (one thread each).
pub const MAX_CONNECTIONS: usize = 10_000;

/// Reads `bench`'s options; `Ok(None)` means `--help`.
///
/// # Errors
/// Usage errors.
pub fn parse_bench(args: &[String]) -> Result<Option<BenchConfig>, UsageError> {
    let Some(o) = read(args, BENCH_SPECS)? else {
        return Ok(None);
    };
    let bad = |name, value, want| UsageError::syntax(crate::cli::bad_value(name, value, want));
    let connections = o.last("connections").map_or(Ok(1), |v| {
        v.parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_CONNECTIONS).contains(n))
            .ok_or_else(|| bad("connections", v, "1 to 10000"))
    })?;
    let duration = o.last("seconds").map_or(Ok(Duration::from_secs(5)), |v| {
        v.parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0 && *s <= 86_400.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| bad("seconds", v, "more than 0, at most 86400"))
    })?;
    let command = o.last("command").map_or(Ok(BenchCommand::ReadKeys), |v| {
        BenchCommand::parse(v).ok_or_else(|| bad("command", v, "read-keys or register"))
    })?;
    let mut rest = o.positionals();
    let device = rest.next().unwrap_or("/dev/null");
    args::no_more(rest)?;
    Ok(Some(BenchConfig {
        socket: socket(&o),
        device: PathBuf::from(argbytes::decode(device)),
        connections,
        duration,
        command,
        json: o.given("json"),
        burst: o.given("burst"),
        timeout: Some(
            o.last("timeout")
                .map_or(Ok(Duration::from_secs(10)), args::timeout)?,
        ),
    }))
}
