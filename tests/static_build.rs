//! The static build: `tests/static-build.sh` builds the release binary with
//! `+crt-static` for x86_64-unknown-linux-gnu (into /tmp/lab-target, shared with the PR lab),
//! checks that file(1) and ldd(1) call it static, runs `qemu-pr-helper --version` and the
//! daemon in an empty chroot, probes the daemon from outside with `pr-client probe`, stops it
//! with SIGTERM (exit 0), and enforces the size budget. See docs/static-builds.md.
//!
//! Heavy tier: `#[ignore]`d, run by tests/run-all.sh; it needs root (chroot) and fails saying so
//! otherwise.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

#[test]
#[ignore = "heavy tier: static release build and a chroot (root, minutes); tests/run-all.sh runs it"]
fn static_release_binary_runs_in_an_empty_chroot() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    common::require_root(
        "the static build check needs root (chroot, apt-get): run the suite as root",
    );

    let t0 = Instant::now();
    // A cold static build (fat LTO) took 14 s on two cores; timeout(1) bounds a stuck one.
    let run = Command::new("timeout")
        .args(["--kill-after=10", "900", "bash"])
        .arg(root.join("tests/static-build.sh"))
        .stdin(Stdio::null())
        .output()
        .expect("cannot run tests/static-build.sh under timeout(1)");
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    eprint!("{out}{err}");
    eprintln!("static-build: {:.1}s", t0.elapsed().as_secs_f64());
    assert!(
        run.status.success(),
        "tests/static-build.sh failed ({}):\n--- stdout\n{out}--- stderr\n{err}",
        run.status
    );
    assert!(
        out.lines().any(|l| l == "static-build: PASS"),
        "tests/static-build.sh exited 0 without reporting PASS:\n{out}"
    );
}
