//! Command-line plumbing shared by the applets.

pub mod argbytes;
pub mod getopt;

/// The one wording every applet uses for an option value it cannot use, as sg_persist words
/// it: `bad argument to '--timeout': 'abc' (seconds, more than 0)`.
pub fn bad_value(option: &str, value: &str, want: &str) -> String {
    format!("bad argument to '--{option}': '{value}' ({want})")
}
