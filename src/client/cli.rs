//! `pr-client`'s command line: sg_persist's options (same letters, long names and number
//! bases), then ours, long-only. Parsing returns values; the applet prints and exits.

use std::path::PathBuf;
use std::time::Duration;

pub use super::action::Action;
use super::args::{self, UsageError, contradiction};
use crate::cli::getopt::{self, Arg, HasArg, OptSpec, Options};
use crate::protocol::PR_HELPER_DATA_SIZE;
use crate::scsi::pr::{InSa, OutSa, ProutParams};

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
    build(&Options(parsed.into_iter().map(first_name).collect()))
}

/// An option given by its second name, as the option it is.
fn first_name(arg: Arg) -> Arg {
    match arg {
        Arg::Opt { name, value } => Arg::Opt {
            name: ALIASES
                .iter()
                .find(|(alias, _)| *alias == name)
                .map_or(name, |(_, to)| to),
            value,
        },
        positional => positional,
    }
}

/// The checks in sg_persist's order: option values first (as getopt meets them), then help
/// and version, then the device, the service action and the options that go with it.
fn build(o: &Options) -> Result<Invocation, UsageError> {
    let device = device(o)?;
    let values = Values::read(o)?;
    if o.given("help") {
        return Ok(Invocation::Help(o.count("help")));
    }
    if o.given("version") {
        return Ok(Invocation::Version);
    }
    let Some(device) = device else {
        return Err(UsageError::syntax("no device name given".into()));
    };
    let action = action(o, &values)?;
    let warnings = check_combination(o, &action, &values)?;
    Ok(Invocation::Run(Box::new(RunConfig {
        device,
        socket: super::probe::socket(o),
        action,
        json: o.given("json"),
        hex: o.count("hex"),
        verbose: o.count("verbose"),
        direct: o.given("direct"),
        // -y read-only, -yy read-write (sg_persist: the second one forces read-write).
        readonly: o.count("readonly") == 1,
        timeout: values.timeout,
        warnings,
    })))
}

/// `-d DEVICE`, else the one argument.
fn device(o: &Options) -> Result<Option<String>, UsageError> {
    let mut extra = o.positionals();
    let device = o.last("device").or_else(|| extra.next());
    args::no_more(extra)?;
    Ok(device.map(str::to_owned))
}

/// The option values, checked.
struct Values {
    rk: u64,
    sark: u64,
    allocation_length: u16,
    rtp: u16,
    prout_type: u8,
    /// Every TransportID of every -X, concatenated, and how many there are.
    transport_ids: Vec<u8>,
    tid_count: usize,
    timeout: Option<Duration>,
}

impl Values {
    fn read(o: &Options) -> Result<Values, UsageError> {
        let key = |name| o.last(name).map_or(Ok(0), |s| args::key(name, s));
        let rk = key("param-rk")?;
        let sark = key("param-sark")?;
        let mut allocation_length = PR_HELPER_DATA_SIZE as u16;
        if let Some(s) = o.last("alloc-length") {
            allocation_length = args::alloc_length_hex(s)?;
        }
        if let Some(s) = o.last("maxlen") {
            allocation_length = args::maxlen(s)?;
        }
        let rtp = o
            .last("relative-target-port")
            .map_or(Ok(0), args::relative_target_port)?;
        let prout_type = o.last("prout-type").map_or(Ok(0), args::prout_type)?;
        let mut transport_ids = Vec::new();
        let mut tid_count = 0;
        for t in o.values("transport-id") {
            for tid in args::transport_ids(t)? {
                transport_ids.extend(tid);
                tid_count += 1;
            }
        }
        Ok(Values {
            rk,
            sark,
            allocation_length,
            rtp,
            prout_type,
            transport_ids,
            tid_count,
            timeout: o.last("timeout").map(args::timeout).transpose()?,
        })
    }
}

/// PR IN's service action options.
const PR_IN: &[(&str, InSa)] = &[
    ("read-keys", InSa::ReadKeys),
    ("read-reservation", InSa::ReadReservation),
    ("report-capabilities", InSa::ReportCapabilities),
    ("read-full-status", InSa::ReadFullStatus),
];

/// PR OUT's service action options.
const PR_OUT: &[(&str, OutSa)] = &[
    ("register", OutSa::Register),
    ("reserve", OutSa::Reserve),
    ("release", OutSa::Release),
    ("clear", OutSa::Clear),
    ("preempt", OutSa::Preempt),
    ("preempt-abort", OutSa::PreemptAndAbort),
    ("register-ignore", OutSa::RegisterAndIgnoreExistingKey),
    ("register-move", OutSa::RegisterAndMove),
    ("replace-lost", OutSa::ReplaceLostReservation),
];

/// The service action of each option of `table` given, once per time it was given.
fn service_actions<T: Copy>(o: &Options, table: &[(&str, T)]) -> Vec<T> {
    table
        .iter()
        .flat_map(|&(name, sa)| std::iter::repeat_n(sa, usize::from(o.count(name))))
        .collect()
}

/// PR IN or PR OUT, with exactly one service action.
fn action(o: &Options, v: &Values) -> Result<Action, UsageError> {
    let prin = service_actions(o, PR_IN);
    let prout = service_actions(o, PR_OUT);
    if o.given("out") && o.given("in") {
        return contradiction("choose '--in' _or_ '--out' (not both)");
    }
    if o.given("out") {
        let ([sa], []) = (prout.as_slice(), prin.as_slice()) else {
            return contradiction(
                "for PR OUT one and only one service action must be chosen (e.g. '--register')",
            );
        };
        return Ok(Action::Out {
            sa: *sa,
            prout_type: v.prout_type,
            params: ProutParams {
                reservation_key: v.rk,
                service_action_key: v.sark,
                aptpl: o.given("param-aptpl"),
                all_tg_pt: o.given("param-alltgpt"),
                unreg: o.given("unreg"),
                relative_target_port: v.rtp,
                transport_ids: v.transport_ids.clone(),
                ..ProutParams::default()
            },
        });
    }
    if !prout.is_empty() {
        return contradiction("a PR OUT service action needs '--out' (as a safeguard)");
    }
    let sa = match prin.as_slice() {
        [] => InSa::ReadKeys,
        [sa] => *sa,
        _ => return contradiction("too many service actions given; choose one only"),
    };
    Ok(Action::In {
        sa,
        allocation_length: v.allocation_length,
    })
}

/// The options that only go with some service actions, or not with each other; the warnings
/// sg_persist prints for a combination it runs anyway.
fn check_combination(o: &Options, action: &Action, v: &Values) -> Result<Vec<String>, UsageError> {
    let out_sa = match action {
        Action::Out { sa, .. } => Some(*sa),
        Action::In { .. } => None,
    };
    if (o.given("unreg") || v.rtp != 0) && out_sa != Some(OutSa::RegisterAndMove) {
        return contradiction("--unreg or --relative-target-port only useful with --register-move");
    }
    if out_sa == Some(OutSa::RegisterAndMove) && v.tid_count != 1 {
        return contradiction(
            "with --register-move one (and only one) --transport-id should be given",
        );
    }
    if out_sa.is_none() && v.tid_count > 0 {
        return contradiction("--transport-id is for PR OUT (with --out)");
    }
    let mut warnings = Vec::new();
    if matches!(
        out_sa,
        Some(OutSa::Reserve | OutSa::Release | OutSa::Preempt | OutSa::PreemptAndAbort)
    ) && v.prout_type == 0
    {
        warnings.push("warning>>> --prout-type probably needs to be given".to_owned());
    }
    if o.given("json") && o.given("hex") {
        return contradiction("choose '--json' _or_ '--hex' (not both)");
    }
    if o.given("direct") && o.given("socket") {
        return contradiction("'--direct' sends SG_IO itself; '--socket' makes no sense with it");
    }
    Ok(warnings)
}

#[cfg(test)]
#[path = "cli_tests.rs"]
mod tests;
