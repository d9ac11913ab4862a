//! Command-line plumbing shared by the applets.

pub mod argbytes;
pub mod getopt;
