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
    // Both of glibc's orders (POSIXLY_CORRECT unset and set); the canonical form, options
    // first, reads back the same in either.
    for order in [getopt::Order::Permute, getopt::Order::RequireOrder] {
        let (parsed, _error) = getopt::normalize_until_error(&args, SPECS, order);
        let canonical = getopt::canonical_argv(&parsed, SPECS);
        for reread in [getopt::Order::Permute, getopt::Order::RequireOrder] {
            match getopt::normalize(&canonical, SPECS, reread) {
                Ok(again) => assert_eq!(again, parsed),
                Err(e) => panic!("canonical argv does not parse: {canonical:?}: {e}"),
            }
        }
    }
});
