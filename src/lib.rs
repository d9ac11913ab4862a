//! pr-helper: a drop-in replacement for QEMU's `qemu-pr-helper`, with a tester client.
//!
//! The library holds everything; `main.rs` only dispatches on argv[0]. `unsafe` lives in
//! `sys` alone.
//!
//! Every module is crate-private, so that the compiler reports code nothing uses. The surface
//! is what `main.rs` and the integration tests (`tests/`) call, re-exported below; the fuzz
//! targets (`fuzz/`) drive parsers and decoders from inside, and see the modules through the
//! `fuzzing` feature.

// Each module twice, one line per build: written out rather than by a macro, because rustfmt
// (`cargo fmt`) reaches only the modules it sees declared.
#[cfg(not(feature = "fuzzing"))]
mod applets;
#[cfg(feature = "fuzzing")]
pub mod applets;
#[cfg(not(feature = "fuzzing"))]
mod backend;
#[cfg(feature = "fuzzing")]
pub mod backend;
#[cfg(not(feature = "fuzzing"))]
mod cli;
#[cfg(feature = "fuzzing")]
pub mod cli;
#[cfg(not(feature = "fuzzing"))]
mod client;
#[cfg(feature = "fuzzing")]
pub mod client;
#[cfg(not(feature = "fuzzing"))]
mod daemon;
#[cfg(feature = "fuzzing")]
pub mod daemon;
#[cfg(not(feature = "fuzzing"))]
mod errors;
#[cfg(feature = "fuzzing")]
pub mod errors;
#[cfg(not(feature = "fuzzing"))]
mod protocol;
#[cfg(feature = "fuzzing")]
pub mod protocol;
#[cfg(not(feature = "fuzzing"))]
mod scsi;
#[cfg(feature = "fuzzing")]
pub mod scsi;
#[cfg(not(feature = "fuzzing"))]
mod sys;
#[cfg(feature = "fuzzing")]
pub mod sys;
#[cfg(not(feature = "fuzzing"))]
mod trace;
#[cfg(feature = "fuzzing")]
pub mod trace;

pub use applets::dispatch;
pub use cli::argbytes::encode as encode_arg;
pub use client::{Connection, connect_unix, send_with_fd, write_all};
pub use daemon::audit::{MESSAGE_ID, MalformedJournal, parse_journal_fields};
pub use daemon::limits::usable_cpus;
pub use scsi::status::name as status_name;
pub use trace::TracePoint;

/// Version reported by every applet.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
