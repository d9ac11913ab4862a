//! Command-line plumbing shared by the applets.

pub mod getopt;
