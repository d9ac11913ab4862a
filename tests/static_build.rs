//! The shipped artifact, the static musl binary (`packaging/build-static.sh`):
//! - `tests/static-build.sh` builds it for x86_64, checks that file(1) and ldd(1) call it
//!   static, runs `qemu-pr-helper --version` and the daemon (sandbox on) in an empty chroot,
//!   probes the daemon from outside with `pr-client probe`, stops it with SIGTERM (exit 0), and
//!   enforces the size budget;
//! - `tests/foreign-arch.sh` builds it for aarch64 and s390x, runs each under qemu-user serving
//!   the native pr-client (the answers must equal the native daemon's), and runs the library's
//!   unit tests there (s390x is big-endian).
//!
//! See docs/static-builds.md. Heavy tier: `#[ignore]`d, run by tests/run-all.sh; they need root
//! (chroot, apt-get on a fresh machine) and fail saying so otherwise.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

/// Runs a check script under timeout(1) and requires exit 0 and `passed` to hold for its stdout.
fn run_script(script: &str, args: &[&str], env: &[(&str, &str)], passed: impl Fn(&str) -> bool) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    common::require_root(&format!(
        "{script} needs root (chroot, apt-get): run the suite as root"
    ));
    let t0 = Instant::now();
    // Cold builds of std for a target take one to five minutes on two cores.
    let run = Command::new("timeout")
        .args(["--kill-after=10", "1800", "bash"])
        .arg(root.join(script))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script} under timeout(1): {e}"));
    let out = String::from_utf8_lossy(&run.stdout);
    let err = String::from_utf8_lossy(&run.stderr);
    eprint!("{out}{err}");
    eprintln!("{script}: {:.1}s", t0.elapsed().as_secs_f64());
    assert!(
        run.status.success(),
        "{script} failed ({}):\n--- stdout\n{out}--- stderr\n{err}",
        run.status
    );
    assert!(
        passed(&out),
        "{script} exited 0 without reporting every check passed:\n{out}"
    );
}

#[test]
#[ignore = "heavy tier: the static musl build and a chroot (root, minutes); tests/run-all.sh runs it"]
fn static_release_binary_runs_in_an_empty_chroot() {
    run_script("tests/static-build.sh", &[], &[], |out| {
        out.lines().any(|l| l == "static-build: PASS")
    });
}

#[test]
#[ignore = "heavy tier: musl builds for aarch64 and s390x run under qemu-user (root, minutes); tests/run-all.sh runs it"]
fn foreign_architectures_serve_the_native_client_under_qemu_user() {
    let targets = ["aarch64-unknown-linux-musl", "s390x-unknown-linux-musl"];
    run_script(
        "tests/foreign-arch.sh",
        &targets,
        &[("PR_HELPER_FOREIGN_UNIT_TESTS", "1")],
        |out| {
            // Each target: serving the native client, and the unit tests.
            targets.iter().all(|t| {
                let passes = out
                    .lines()
                    .filter(|l| l.starts_with(&format!("foreign-arch: PASS {t} ")))
                    .count();
                passes == 2
            })
        },
    );
}
