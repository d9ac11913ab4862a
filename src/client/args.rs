//! Option values as sg_persist reads them (keys and most numbers in hex), with errors as
//! values that carry their exit status.

use std::fmt;
use std::io::BufRead as _;
use std::time::Duration;

use super::report::exit;
use crate::cli::getopt::OptSpec;
use crate::scsi::pr::{PrType, transport_id};

/// A command-line problem: one line of text and the exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError {
    pub message: String,
    pub code: u8,
}

impl UsageError {
    pub fn syntax(message: String) -> Self {
        UsageError {
            message,
            code: exit::SYNTAX,
        }
    }
}

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for UsageError {}

/// Options that contradict each other.
pub fn contradiction<T>(message: &str) -> Result<T, UsageError> {
    Err(UsageError {
        message: message.to_owned(),
        code: exit::CONTRADICT,
    })
}

fn bad(option: &str, value: &str, want: &str) -> UsageError {
    UsageError::syntax(crate::cli::bad_value(option, value, want))
}

/// Hex digits with an optional 0x/0X prefix, as `sscanf("%x")` reads them, but strict:
/// nothing may follow the digits.
fn hex_u64(s: &str) -> Option<u64> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if digits.is_empty() || digits.len() > 16 || !digits.bytes().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(digits, 16).ok()
}

/// A reservation key (`--param-rk`, `--param-sark`): hex, up to 8 bytes, with or without
/// 0x, as sg_persist reads it (`123abc` is 0x123abc).
///
/// # Errors
/// Not 1..16 hex digits.
pub fn key(option: &str, s: &str) -> Result<u64, UsageError> {
    let want = "a key is up to 16 hex digits, with or without 0x";
    hex_u64(s).ok_or_else(|| bad(option, s, want))
}

/// `-T/--prout-type`: a type in hex, or its short name.
///
/// # Errors
/// Neither.
pub fn prout_type(s: &str) -> Result<u8, UsageError> {
    let want = "want 0..f in hex or wr_ex, ex_ac, wr_ex_ro, ex_ac_ro, wr_ex_ar, ex_ac_ar";
    PrType::parse(s).ok_or_else(|| bad("prout-type", s, want))
}

/// `-l/--alloc-length`: hex, 0..8192.
///
/// # Errors
/// Not hex, or too large.
pub fn alloc_length_hex(s: &str) -> Result<u16, UsageError> {
    hex_u64(s)
        .filter(|&n| n <= 8192)
        .map(|n| n as u16)
        .ok_or_else(|| bad("alloc-length", s, "hex, 0 to 2000"))
}

/// `-m/--maxlen`: decimal by default; 0x prefix or h suffix for hex; k suffix for 1024.
///
/// # Errors
/// Unreadable, or above 8192.
pub fn maxlen(s: &str) -> Result<u16, UsageError> {
    let n = if let Some(h) = s.strip_suffix(['h', 'H']) {
        hex_u64(h)
    } else if s.starts_with("0x") || s.starts_with("0X") {
        hex_u64(s)
    } else if let Some(k) = s.strip_suffix(['k', 'K']) {
        k.parse::<u64>().ok().and_then(|k| k.checked_mul(1024))
    } else {
        s.parse::<u64>().ok()
    };
    n.filter(|&n| n <= 8192)
        .map(|n| n as u16)
        .ok_or_else(|| bad("maxlen", s, "decimal (or 0x.., ..h, ..k), 0 to 8192"))
}

/// `-Q/--relative-target-port`: hex, 0..ffff.
///
/// # Errors
/// Not hex, or too large.
pub fn relative_target_port(s: &str) -> Result<u16, UsageError> {
    hex_u64(s)
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| bad("relative-target-port", s, "hex, 0 to ffff"))
}

/// `--timeout`: seconds, fractions allowed, more than 0.
///
/// # Errors
/// Not a positive number.
pub fn timeout(s: &str) -> Result<Duration, UsageError> {
    s.parse::<f64>()
        .ok()
        .filter(|t| t.is_finite() && *t > 0.0 && *t < 1e9)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| bad("timeout", s, "seconds, more than 0"))
}

/// Nothing may follow the arguments a command line takes.
///
/// # Errors
/// The first one that follows.
pub fn no_more<'a>(mut rest: impl Iterator<Item = &'a str>) -> Result<(), UsageError> {
    match rest.next() {
        Some(x) => Err(UsageError::syntax(format!(
            "unexpected extra argument: {x}"
        ))),
        None => Ok(()),
    }
}

/// `-X/--transport-id`: one TransportID in any form sg_persist takes, or `-` (stdin) or
/// `file=NAME` for one per line (blank lines and `#` comments skipped).
///
/// # Errors
/// Unreadable files, malformed IDs.
pub fn transport_ids(arg: &str) -> Result<Vec<Vec<u8>>, UsageError> {
    let wrap = |e: transport_id::ParseError| bad("transport-id", arg, &e.0);
    let file = arg
        .strip_prefix("file=")
        .or_else(|| arg.strip_prefix("FILE="));
    let lines: Vec<String> = match (arg, file) {
        ("-", _) => std::io::stdin()
            .lock()
            .lines()
            .map_while(Result::ok)
            .collect(),
        (_, Some(name)) => std::fs::read_to_string(name)
            .map_err(|e| {
                UsageError::syntax(format!(
                    "bad argument to '--transport-id': cannot read {name}: {}",
                    crate::errors::strerror(&e)
                ))
            })?
            .lines()
            .map(str::to_owned)
            .collect(),
        _ => return Ok(vec![transport_id::parse(arg).map_err(wrap)?]),
    };
    let mut out = Vec::new();
    for line in &lines {
        let line = line.split('#').next().unwrap_or_default().trim();
        if !line.is_empty() {
            out.push(transport_id::parse(line).map_err(wrap)?);
        }
    }
    if out.is_empty() {
        return Err(bad("transport-id", arg, "no TransportID found"));
    }
    Ok(out)
}

/// sg_persist also spells its long options with underscores (`--param_rk`); the option
/// names, not their values, become dashed. Arguments after `--`, and values that follow an
/// option needing one, are left alone.
pub fn underscores_to_dashes(args: &[String], specs: &[OptSpec]) -> Vec<String> {
    let mut out = Vec::with_capacity(args.len());
    let mut rest = args.iter();
    while let Some(a) = rest.next() {
        if a == "--" {
            out.push(a.clone());
            out.extend(rest.cloned());
            break;
        }
        let Some(body) = a.strip_prefix("--") else {
            out.push(a.clone());
            continue;
        };
        // The name is dashed; the value, with its '=' if there is one, is left as it is.
        let (name, value) = body.split_at(body.find('=').unwrap_or(body.len()));
        let name = name.replace('_', "-");
        out.push(format!("--{name}{value}"));
        let takes_value = value.is_empty()
            && specs
                .iter()
                .filter(|s| s.long.starts_with(name.as_str()))
                .all(|s| s.has_arg == crate::cli::getopt::HasArg::Required)
            && specs.iter().any(|s| s.long.starts_with(name.as_str()));
        if takes_value {
            if let Some(v) = rest.next() {
                out.push(v.clone());
            }
        }
    }
    out
}
