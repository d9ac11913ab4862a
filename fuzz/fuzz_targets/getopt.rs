//! The getopt_long normaliser on arbitrary argument lists (NUL-separated), with the daemon's
//! option table: what it reads, written back as one canonical argv, reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pr_helper::applets::qemu_pr_helper::SPECS;
use pr_helper::cli::getopt::{self, Arg, HasArg};

/// `--long value` (an optional argument as `--long=value`, its only spelling that reads back
/// the same), positionals after `--`.
fn canonical_argv(parsed: &[Arg]) -> Vec<String> {
    let mut argv = Vec::new();
    let mut tail = Vec::new();
    for arg in parsed {
        match arg {
            Arg::Opt { name, value } => {
                let optional = SPECS
                    .iter()
                    .any(|s| s.long == *name && s.has_arg == HasArg::Optional);
                match value {
                    Some(v) if optional => argv.push(format!("--{name}={v}")),
                    Some(v) => argv.extend([format!("--{name}"), v.clone()]),
                    None => argv.push(format!("--{name}")),
                }
            }
            Arg::Positional(p) => tail.push(p.clone()),
        }
    }
    if !tail.is_empty() {
        argv.push("--".to_owned());
        argv.extend(tail);
    }
    argv
}

fuzz_target!(|data: &[u8]| {
    let args: Vec<String> = data
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    // Both of glibc's orders (POSIXLY_CORRECT unset and set); the canonical form, options
    // first, reads back the same in either.
    for order in [getopt::Order::Permute, getopt::Order::RequireOrder] {
        let (parsed, _error) = getopt::normalize_until_error(&args, SPECS, order);
        let canonical = canonical_argv(&parsed);
        for reread in [getopt::Order::Permute, getopt::Order::RequireOrder] {
            match getopt::normalize(&canonical, SPECS, reread) {
                Ok(again) => assert_eq!(again, parsed),
                Err(e) => panic!("canonical argv does not parse: {canonical:?}: {e}"),
            }
        }
    }
});
