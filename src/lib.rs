//! pr-helper: a drop-in replacement for QEMU's `qemu-pr-helper`, with a tester client.
//!
//! The library holds everything; `main.rs` only dispatches on argv[0]. `unsafe` lives in
//! [`sys`] alone.

pub mod applets;
pub mod backend;
pub mod cli;
pub mod client;
pub mod daemon;
pub mod errors;
pub mod protocol;
pub mod scsi;
pub mod sys;
pub mod trace;

/// Version reported by every applet.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
