//! `pr-client`'s command line: sg_persist's options (same letters, long names and number
//! bases), then ours, long-only. Parsing returns values; the applet prints and exits.

use std::path::PathBuf;
use std::time::Duration;

use argh::FromArgs;

pub use super::action::Action;
use super::args::{self, Key, UsageError};
use crate::cli::getopt::{self, Arg, HasArg, OptSpec};
use crate::daemon::DEFAULT_SOCKET;
use crate::protocol::PR_HELPER_DATA_SIZE;
use crate::scsi::pr::{self, ProutParams, in_sa, out_sa};

/// sg_persist's short-option string "AcCd:GHhiIkK:l:Lm:MnoPQ:rRsS:T:UvVX:yYzZ", its
/// alternative long names, then ours.
pub const SPECS: &[OptSpec] = &[
    OptSpec::new('A', "preempt-abort", HasArg::No),
    OptSpec::new('c', "report-capabilities", HasArg::No),
    OptSpec::new('C', "clear", HasArg::No),
    OptSpec::new('d', "device", HasArg::Required),
    OptSpec::new('G', "register", HasArg::No),
    OptSpec::new('H', "hex", HasArg::No),
    OptSpec::new('h', "help", HasArg::No),
    OptSpec::new('i', "in", HasArg::No),
    OptSpec::new('I', "register-ignore", HasArg::No),
    OptSpec::new('k', "read-keys", HasArg::No),
    OptSpec::new('K', "param-rk", HasArg::Required),
    OptSpec::new('l', "alloc-length", HasArg::Required),
    OptSpec::new('L', "release", HasArg::No),
    OptSpec::new('m', "maxlen", HasArg::Required),
    OptSpec::new('M', "register-move", HasArg::No),
    OptSpec::new('n', "no-inquiry", HasArg::No),
    OptSpec::new('o', "out", HasArg::No),
    OptSpec::new('P', "preempt", HasArg::No),
    OptSpec::new('Q', "relative-target-port", HasArg::Required),
    OptSpec::new('r', "read-reservation", HasArg::No),
    OptSpec::new('R', "reserve", HasArg::No),
    OptSpec::new('s', "read-full-status", HasArg::No),
    OptSpec::new('S', "param-sark", HasArg::Required),
    OptSpec::new('T', "prout-type", HasArg::Required),
    OptSpec::new('U', "unreg", HasArg::No),
    OptSpec::new('v', "verbose", HasArg::No),
    OptSpec::new('V', "version", HasArg::No),
    OptSpec::new('X', "transport-id", HasArg::Required),
    OptSpec::new('y', "readonly", HasArg::No),
    OptSpec::new('Y', "param-alltgpt", HasArg::No),
    OptSpec::new('z', "replace-lost", HasArg::No),
    OptSpec::new('Z', "param-aptpl", HasArg::No),
    // sg_persist's second names for the same options.
    OptSpec::long_only("read-status", HasArg::No),
    OptSpec::long_only("param-unreg", HasArg::No),
    // pr-client's own.
    OptSpec::long_only("socket", HasArg::Required),
    OptSpec::long_only("json", HasArg::No),
    OptSpec::long_only("direct", HasArg::No),
    OptSpec::long_only("timeout", HasArg::Required),
];

/// Second names, and the option each one is.
const ALIASES: &[(&str, &str)] = &[
    ("read-status", "read-full-status"),
    ("param-unreg", "unreg"),
];

/// Options as argh reads them from the canonical argv (values checked afterwards).
#[derive(FromArgs, Debug, Default)]
#[allow(clippy::struct_excessive_bools)]
struct Raw {
    /// preempt and abort
    #[argh(switch)]
    preempt_abort: u8,
    /// report capabilities
    #[argh(switch)]
    report_capabilities: u8,
    /// clear
    #[argh(switch)]
    clear: u8,
    /// device
    #[argh(option)]
    device: Vec<String>,
    /// register
    #[argh(switch)]
    register: u8,
    /// hex output
    #[argh(switch)]
    hex: u8,
    /// PR IN
    #[argh(switch)]
    r#in: bool,
    /// register and ignore existing key
    #[argh(switch)]
    register_ignore: u8,
    /// read keys
    #[argh(switch)]
    read_keys: u8,
    /// reservation key
    #[argh(option)]
    param_rk: Vec<String>,
    /// allocation length (hex)
    #[argh(option)]
    alloc_length: Vec<String>,
    /// release
    #[argh(switch)]
    release: u8,
    /// allocation length (decimal)
    #[argh(option)]
    maxlen: Vec<String>,
    /// register and move
    #[argh(switch)]
    register_move: u8,
    /// accepted, no INQUIRY is sent anyway
    #[allow(dead_code)]
    #[argh(switch)]
    no_inquiry: bool,
    /// PR OUT
    #[argh(switch)]
    out: bool,
    /// preempt
    #[argh(switch)]
    preempt: u8,
    /// relative target port identifier (hex)
    #[argh(option)]
    relative_target_port: Vec<String>,
    /// read reservation
    #[argh(switch)]
    read_reservation: u8,
    /// reserve
    #[argh(switch)]
    reserve: u8,
    /// read full status
    #[argh(switch)]
    read_full_status: u8,
    /// service action reservation key
    #[argh(option)]
    param_sark: Vec<String>,
    /// type
    #[argh(option)]
    prout_type: Vec<String>,
    /// unregister after a move
    #[argh(switch)]
    unreg: bool,
    /// verbosity
    #[argh(switch)]
    verbose: u8,
    /// version
    #[argh(switch)]
    version: bool,
    /// transport IDs
    #[argh(option)]
    transport_id: Vec<String>,
    /// open read-only (twice: read-write)
    #[argh(switch)]
    readonly: u8,
    /// ALL_TG_PT
    #[argh(switch)]
    param_alltgpt: bool,
    /// replace lost reservation
    #[argh(switch)]
    replace_lost: u8,
    /// APTPL
    #[argh(switch)]
    param_aptpl: bool,
    /// helper socket
    #[argh(option)]
    socket: Vec<String>,
    /// JSON output
    #[argh(switch)]
    json: bool,
    /// SG_IO on the device, no helper
    #[argh(switch)]
    direct: bool,
    /// seconds
    #[argh(option)]
    timeout: Vec<String>,
    /// device
    #[argh(positional, greedy)]
    positional: Vec<String>,
}

/// Everything a single-command run needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConfig {
    /// As on the command line, encoded by `cli::argbytes`: decode it to open it.
    pub device: String,
    pub socket: PathBuf,
    pub action: Action,
    pub json: bool,
    pub hex: u8,
    pub verbose: u8,
    pub direct: bool,
    pub readonly: bool,
    pub timeout: Option<Duration>,
    /// Notes sg_persist prints on stderr before running (warnings).
    pub warnings: Vec<String>,
}

/// What the command line asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invocation {
    /// `-h` (count: `-hh` shows more).
    Help(u8),
    Version,
    Run(Box<RunConfig>),
}

/// Reads `args` (after argv[0]) as sg_persist would, plus our long options.
///
/// # Errors
/// A usage error with its exit status (1 syntax, 31 contradictory options).
pub fn parse(args: &[String], order: getopt::Order) -> Result<Invocation, UsageError> {
    let args = args::underscores_to_dashes(args, SPECS);
    let parsed =
        getopt::normalize(&args, SPECS, order).map_err(|e| UsageError::syntax(e.to_string()))?;
    let parsed: Vec<Arg> = parsed
        .into_iter()
        .map(|a| match a {
            Arg::Opt { index, value } => {
                let index = ALIASES
                    .iter()
                    .find(|(alias, _)| *alias == SPECS[index].long)
                    .and_then(|(_, to)| SPECS.iter().position(|s| s.long == *to))
                    .unwrap_or(index);
                Arg::Opt { index, value }
            }
            p => p,
        })
        .collect();
    // argh keeps `--help` for itself: count it here and hand argh the rest.
    let is_help = |a: &Arg| matches!(a, Arg::Opt { index, .. } if SPECS[*index].long == "help");
    let help = parsed.iter().filter(|a| is_help(a)).count();
    let parsed: Vec<Arg> = parsed.into_iter().filter(|a| !is_help(a)).collect();
    let canonical = getopt::canonical_argv(&parsed, SPECS);
    let refs: Vec<&str> = canonical.iter().map(String::as_str).collect();
    let raw = Raw::from_args(&["pr-client"], &refs)
        .map_err(|e| UsageError::syntax(e.output.trim_end().to_owned()))?;
    build(raw, u8::try_from(help).unwrap_or(u8::MAX))
}

fn last(v: &[String]) -> Option<&str> {
    v.last().map(String::as_str)
}

fn build(raw: Raw, help: u8) -> Result<Invocation, UsageError> {
    let mut device = last(&raw.device).map(str::to_owned);
    let mut extra = raw.positional.iter();
    if device.is_none() {
        device = extra.next().cloned();
    }
    if let Some(x) = extra.next() {
        return Err(UsageError::syntax(format!(
            "unexpected extra argument: {x}"
        )));
    }
    // Values first, as getopt meets them in sg_persist.
    let rk = match last(&raw.param_rk) {
        Some(s) => Key::parse(s, "param-rk")?.0,
        None => 0,
    };
    let sark = match last(&raw.param_sark) {
        Some(s) => Key::parse(s, "param-sark")?.0,
        None => 0,
    };
    let mut allocation_length = PR_HELPER_DATA_SIZE as u16;
    if let Some(s) = last(&raw.alloc_length) {
        allocation_length = args::alloc_length_hex(s)?;
    }
    if let Some(s) = last(&raw.maxlen) {
        allocation_length = args::maxlen(s)?;
    }
    let rtp = match last(&raw.relative_target_port) {
        Some(s) => args::relative_target_port(s)?,
        None => 0,
    };
    let prout_type = match last(&raw.prout_type) {
        Some(s) => pr::parse_type(s).ok_or_else(|| {
            UsageError::syntax(format!(
                "bad argument to '--prout-type': '{s}' (want 0..f in hex or wr_ex, ex_ac, \
                 wr_ex_ro, ex_ac_ro, wr_ex_ar, ex_ac_ar)"
            ))
        })?,
        None => 0,
    };
    let mut transport_ids = Vec::new();
    let mut tid_count = 0usize;
    for t in &raw.transport_id {
        for tid in args::transport_ids(t)? {
            transport_ids.extend(tid);
            tid_count += 1;
        }
    }
    let timeout = last(&raw.timeout).map(args::timeout).transpose()?;
    if help > 0 {
        return Ok(Invocation::Help(help));
    }
    if raw.version {
        return Ok(Invocation::Version);
    }
    let Some(device) = device else {
        return Err(UsageError::syntax("no device name given".into()));
    };
    let prin: Vec<u8> = [
        (raw.read_keys, in_sa::READ_KEYS),
        (raw.read_reservation, in_sa::READ_RESERVATION),
        (raw.report_capabilities, in_sa::REPORT_CAPABILITIES),
        (raw.read_full_status, in_sa::READ_FULL_STATUS),
    ]
    .iter()
    .flat_map(|&(n, sa)| std::iter::repeat_n(sa, usize::from(n)))
    .collect();
    let prout: Vec<u8> = [
        (raw.register, out_sa::REGISTER),
        (raw.reserve, out_sa::RESERVE),
        (raw.release, out_sa::RELEASE),
        (raw.clear, out_sa::CLEAR),
        (raw.preempt, out_sa::PREEMPT),
        (raw.preempt_abort, out_sa::PREEMPT_AND_ABORT),
        (
            raw.register_ignore,
            out_sa::REGISTER_AND_IGNORE_EXISTING_KEY,
        ),
        (raw.register_move, out_sa::REGISTER_AND_MOVE),
        (raw.replace_lost, out_sa::REPLACE_LOST_RESERVATION),
    ]
    .iter()
    .flat_map(|&(n, sa)| std::iter::repeat_n(sa, usize::from(n)))
    .collect();
    let mut warnings = Vec::new();
    let action = if raw.out && raw.r#in {
        return Err(UsageError::contradict(
            "choose '--in' _or_ '--out' (not both)",
        ));
    } else if raw.out {
        let ([sa], []) = (prout.as_slice(), prin.as_slice()) else {
            return Err(UsageError::contradict(
                "for PR OUT one and only one service action must be chosen (e.g. '--register')",
            ));
        };
        Action::Out {
            sa: *sa,
            prout_type,
            params: ProutParams {
                reservation_key: rk,
                service_action_key: sark,
                aptpl: raw.param_aptpl,
                all_tg_pt: raw.param_alltgpt,
                unreg: raw.unreg,
                relative_target_port: rtp,
                transport_ids,
            },
        }
    } else {
        if !prout.is_empty() {
            return Err(UsageError::contradict(
                "a PR OUT service action needs '--out' (as a safeguard)",
            ));
        }
        let sa = match prin.as_slice() {
            [] => in_sa::READ_KEYS,
            [sa] => *sa,
            _ => {
                return Err(UsageError::contradict(
                    "too many service actions given; choose one only",
                ));
            }
        };
        Action::In {
            sa,
            allocation_length,
        }
    };
    let out_sa = match &action {
        Action::Out { sa, .. } => Some(*sa),
        Action::In { .. } => None,
    };
    if (raw.unreg || rtp != 0) && out_sa != Some(out_sa::REGISTER_AND_MOVE) {
        return Err(UsageError::contradict(
            "--unreg or --relative-target-port only useful with --register-move",
        ));
    }
    if out_sa == Some(out_sa::REGISTER_AND_MOVE) && tid_count != 1 {
        return Err(UsageError::contradict(
            "with --register-move one (and only one) --transport-id should be given",
        ));
    }
    if out_sa.is_none() && tid_count > 0 {
        return Err(UsageError::contradict(
            "--transport-id is for PR OUT (with --out)",
        ));
    }
    if matches!(
        out_sa,
        Some(out_sa::RESERVE | out_sa::RELEASE | out_sa::PREEMPT | out_sa::PREEMPT_AND_ABORT)
    ) && prout_type == 0
    {
        warnings.push("warning>>> --prout-type probably needs to be given".to_owned());
    }
    if raw.json && raw.hex > 0 {
        return Err(UsageError::contradict(
            "choose '--json' _or_ '--hex' (not both)",
        ));
    }
    if raw.direct && !raw.socket.is_empty() {
        return Err(UsageError::contradict(
            "'--direct' sends SG_IO itself; '--socket' makes no sense with it",
        ));
    }
    Ok(Invocation::Run(Box::new(RunConfig {
        device,
        socket: PathBuf::from(crate::cli::argbytes::decode(
            last(&raw.socket).unwrap_or(DEFAULT_SOCKET),
        )),
        action,
        json: raw.json,
        hex: raw.hex,
        verbose: raw.verbose,
        direct: raw.direct,
        // -y read-only, -yy read-write (sg_persist: the second one forces read-write).
        readonly: raw.readonly == 1,
        timeout,
        warnings,
    })))
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
