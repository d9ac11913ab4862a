//! The getopt_long normaliser and the canonical argv it builds, on arbitrary argument lists
//! (NUL-separated), with the daemon's option table.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pr_helper::applets::qemu_pr_helper::SPECS;
use pr_helper::cli::getopt;

fuzz_target!(|data: &[u8]| {
    let args: Vec<String> = data
        .split(|&b| b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let (parsed, _error) = getopt::normalize_until_error(&args, SPECS);
    let canonical = getopt::canonical_argv(&parsed, SPECS);
    // The canonical form must read back to the same options.
    if let Ok(again) = getopt::normalize(&canonical, SPECS) {
        assert_eq!(again, parsed);
    } else {
        panic!("canonical argv does not parse: {canonical:?}");
    }
});
