//! pr-helper: a drop-in replacement for QEMU's `qemu-pr-helper`, with a tester client.
//!
//! The library holds everything; `main.rs` only dispatches on argv[0]. `unsafe` lives in
//! `sys` alone.
//!
//! Every module is crate-private, so that the compiler reports code nothing uses. The surface
//! is what `main.rs` and the integration tests (`tests/`) call, re-exported below; the fuzz
//! targets (`fuzz/`) drive parsers and decoders from inside, and see the modules through the
//! `fuzzing` feature.

macro_rules! modules {
    ($($name:ident),* $(,)?) => {$(
        #[cfg(feature = "fuzzing")]
        pub mod $name;
        #[cfg(not(feature = "fuzzing"))]
        mod $name;
    )*};
}

modules!(
    applets, backend, cli, client, daemon, errors, protocol, scsi, sys, trace,
);

pub use applets::dispatch;
pub use cli::argbytes::encode as encode_arg;
pub use client::{Connection, connect_unix, send_with_fd, write_all};
pub use daemon::audit::{MESSAGE_ID, parse_journal_fields};
pub use daemon::limits::usable_cpus;
pub use scsi::status::name as status_name;
pub use trace::TracePoint;

/// Version reported by every applet.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
