//! The PR lab on a foreign architecture (LAB_ARCH, default arm64): Debian 12's kernel of that
//! architecture under its qemu-system-* (TCG), our static musl binary built for it, LIO
//! tcm_loop exporting one LUN through two nexuses. Runs tests/lab/portable/: register, read
//! keys, reserve, read reservation and release through the helper with its seccomp filter on,
//! each compared with SG_IO from the guest, and the crate's seccomp unit test (a forbidden call
//! kills) under that kernel. See tests/lab/run.sh.
//!
//! Ignored by plain `cargo test` (minutes of emulation and a cross build); the test command
//! runs it: `cargo test --test lab_foreign -- --ignored`. Needs root and fails saying so
//! otherwise. `LAB_ARCH=s390x` or `ppc64el` for the other architectures.

mod common;
#[path = "lab/harness.rs"]
mod harness;

#[test]
#[ignore = "boots an emulated foreign-architecture VM: run with --ignored, as root"]
fn pr_lab_foreign_arch() {
    let arch = std::env::var("LAB_ARCH").unwrap_or_else(|_| "arm64".to_owned());
    harness::run_lab("portable", &[("LAB_ARCH", arch.as_str())]);
}
